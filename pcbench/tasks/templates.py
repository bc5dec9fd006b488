"""Prompt templates: how a problem statement becomes the exact text fed to the model.

The rendered text is final: a plain tokenizer call on it (with the tokenizer's own special-token
settings) gives the model's input, identically for transformers and vLLM. A chat template whose
output already starts with the BOS token would get a second BOS from that call, so ChatTemplate
strips it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class TextTemplate:
    """A format string with one `{problem}` field."""

    text: str

    def __post_init__(self):
        if "{problem}" not in self.text:
            raise ValueError("a TextTemplate needs a '{problem}' field in its text")

    def render(self, problem: str) -> str:
        return self.text.replace("{problem}", problem)


# The instruction comes first and the expression last, so the worked solution continues the
# prompt's "... =" directly (short inputs keep the CPU-trained tiny policy cheap).
ARITH_TEMPLATE = TextTemplate("Answer in \\boxed{}.\n{problem} =")

# The same template as Jinja, stored as the tiny policy's chat template so that
# `template_for(model)` renders benchmark problems the way the policy was trained.
ARITH_CHAT_TEMPLATE = (
    "{% for message in messages %}{% if message['role'] == 'user' %}"
    "Answer in \\boxed{}.\n{{ message['content'] }} ="
    "{% endif %}{% endfor %}"
)


class ChatTemplate:
    """A tokenizer's chat template with one user turn (and an optional system prompt)."""

    def __init__(self, tokenizer, system: str | None = None, suffix: str = ""):
        if not getattr(tokenizer, "chat_template", None):
            raise ValueError(f"{tokenizer.name_or_path} has no chat template; use a TextTemplate")
        self.tokenizer, self.system, self.suffix = tokenizer, system, suffix

    def render(self, problem: str) -> str:
        messages = [{"role": "user", "content": problem + self.suffix}]
        if self.system:
            messages.insert(0, {"role": "system", "content": self.system})
        text = self.tokenizer.apply_chat_template(
            messages, tokenize=False, add_generation_prompt=True
        )
        bos = self.tokenizer.bos_token
        adds_bos = bos and self.tokenizer("").input_ids[:1] == [self.tokenizer.bos_token_id]
        return text[len(bos) :] if adds_bos and text.startswith(bos) else text

    def __repr__(self):
        return f"ChatTemplate({self.tokenizer.name_or_path!r}, system={self.system!r})"


# Qwen2.5-Math's recommended instruction for boxed answers.
BOXED_INSTRUCTION = "\nPlease reason step by step, and put your final answer within \\boxed{}."


def template_for(model_path: str | Path, *, system: str | None = None):
    """The model's own template: its chat template where it has one, else plain ARITH_TEMPLATE."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(model_path))
    if not getattr(tokenizer, "chat_template", None):
        return TextTemplate("{problem}" + BOXED_INSTRUCTION)
    if tokenizer.chat_template == ARITH_CHAT_TEMPLATE:
        return ARITH_TEMPLATE  # the tiny policy: render exactly as its training data
    return ChatTemplate(tokenizer, system=system, suffix=BOXED_INSTRUCTION)
