"""Peak memory of the policy's log-probs (forward + backward), full vocabulary vs chunked.

    .venv/bin/python bench/logprobs.py [--write docs/RESULTS.md]

A random Qwen2-shaped model with the real vocabulary (151,936; hidden 64, 1 layer, so the
logits dominate), B sequences x T tokens, fp32 on CPU. "full" is the computation pcbench used
before (log_softmax over (B, T, V) logits); "chunked" is `pcbench.logprobs.token_logprobs`
(logit minus logsumexp over chunks of positions under 256 MiB, checkpointed). Each is measured
in a fresh subprocess: peak resident memory (ru_maxrss) minus the resident memory before the
forward, and the wall time of forward + backward.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

from common import publish

SCRIPT = """
import json, resource, sys, time
import torch
from transformers import Qwen2Config, Qwen2ForCausalLM
from pcbench.logprobs import make_batch, token_logprobs
mode, rows, length = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
torch.manual_seed(0)
cfg = Qwen2Config(vocab_size=151_936, hidden_size=64, intermediate_size=128, num_hidden_layers=1,
                  num_attention_heads=2, num_key_value_heads=1, tie_word_embeddings=True)
model = Qwen2ForCausalLM(cfg)
ids = torch.randint(0, cfg.vocab_size, (rows, length))
batch = make_batch([r[:16].tolist() for r in ids], [r[16:].tolist() for r in ids], pad_id=0)
def full():
    logits = model(input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits
    lp = torch.log_softmax(logits[:, :-1].float(), dim=-1)
    lp = lp.gather(-1, batch.input_ids[:, 1:, None])[..., 0]
    return torch.nn.functional.pad(lp, (1, 0)) * batch.completion_mask
fn = full if mode == "full" else (lambda: token_logprobs(model, batch, "cpu"))
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
start = time.perf_counter()
lp = fn()
(lp.sum() / batch.completion_mask.sum()).backward()
seconds = time.perf_counter() - start
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print("RESULT", json.dumps({"extra_mib": (peak - before) / 1024, "seconds": seconds,
                            "logprob_sum": float(lp.sum())}))
"""


def measure(mode: str, rows: int, length: int) -> dict:
    out = subprocess.run([sys.executable, "-c", SCRIPT, mode, str(rows), str(length)],
                         capture_output=True, text=True, check=True)  # fmt: skip
    line = next(x for x in out.stdout.splitlines() if x.startswith("RESULT "))
    return json.loads(line.removeprefix("RESULT "))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--write", metavar="MD", help="also write the table into this file")
    parser.add_argument("--rows", type=int, default=4)
    parser.add_argument("--length", type=int, default=1024)
    args = parser.parse_args()
    full, lean = (measure(m, args.rows, args.length) for m in ("full", "chunked"))
    fp32_logits = args.rows * args.length * 151_936 * 4 / 2**20
    text = "\n".join([
        f"Log-probs of B {args.rows} x T {args.length} tokens, vocabulary 151,936, forward + "
        f"backward, fp32 on CPU (one (B, T, V) fp32 tensor is {fp32_logits:,.0f} MiB):",
        "",
        "| computation | extra peak memory | forward + backward |",
        "|---|---|---|",
        f"| full vocabulary (log_softmax over (B, T, V), before) | {full['extra_mib']:,.0f} MiB "
        f"| {full['seconds']:.2f} s |",
        f"| chunked (logit − logsumexp, ≤ 256 MiB per chunk, checkpointed; now) "
        f"| {lean['extra_mib']:,.0f} MiB | {lean['seconds']:.2f} s |",
        "",
        f"Same log-probs: summed {full['logprob_sum']:.2f} vs {lean['logprob_sum']:.2f} (the "
        "tests check 1e-5 per token and the gradients).",
    ])  # fmt: skip
    publish(text, "bench-logprobs", args.write)


if __name__ == "__main__":
    main()
