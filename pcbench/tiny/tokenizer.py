"""The tiny policy's tokenizer: one token per UTF-8 byte, plus BOS, EOS and PAD.

Byte-level with no merges keeps every digit its own token (merged digit strings make arithmetic
much harder for a small model) and can encode any text, so hostile or unicode prompts never hit
an unknown token. It is a plain `tokenizers` object saved as tokenizer.json, which
transformers' AutoTokenizer and vLLM both load.
"""

from __future__ import annotations

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors

BOS, EOS, PAD = "<|bos|>", "<|eos|>", "<|pad|>"
SPECIAL_TOKENS = (PAD, BOS, EOS)  # ids 0, 1, 2


def build_tokenizer() -> Tokenizer:
    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())  # the 256 byte stand-in characters
    vocab = {tok: i for i, tok in enumerate(SPECIAL_TOKENS)}
    vocab.update({ch: len(SPECIAL_TOKENS) + i for i, ch in enumerate(alphabet)})
    tokenizer = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tokenizer.add_special_tokens(list(SPECIAL_TOKENS))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    tokenizer.decoder = decoders.ByteLevel()
    # A plain tokenizer call prepends BOS: the model's input is exactly tokenizer(prompt).
    tokenizer.post_processor = processors.TemplateProcessing(
        single=f"{BOS} $A", pair=f"{BOS} $A $B", special_tokens=[(BOS, vocab[BOS])]
    )
    return tokenizer


def to_transformers(tokenizer: Tokenizer, chat_template: str):
    """Wrap for transformers; saving it writes tokenizer.json and tokenizer_config.json."""
    from transformers import PreTrainedTokenizerFast

    wrapped = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, bos_token=BOS, eos_token=EOS, pad_token=PAD
    )
    wrapped.chat_template = chat_template
    return wrapped
