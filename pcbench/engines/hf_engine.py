"""HFEngine: transformers `generate` with KV cache, batched, behind the VLLMEngine interface.

For machines without vLLM (e.g. a GPU box with only torch) and as a reference to test vLLM
against. Mixed `n` per prompt is served by repeating prompts in left-padded batches; per-token
log-probs are the raw (temperature-1) log-softmax of the logits, as vLLM reports them.
Seeded: generator state comes from (seed, call number), so a fresh engine with the same seed
and requests reproduces its rollouts.
"""

from __future__ import annotations

import polars as pl
import torch

from pcbench.config import SamplingConfig
from pcbench.engines.requests import RequestError, validate_requests
from pcbench.schema import ROLLOUTS


class HFEngine:
    def __init__(
        self,
        model_path: str,
        *,
        dtype: str = "float32",
        device: str = "cpu",
        max_model_len: int = 512,
        seed: int = 0,
        batch_size: int = 64,
    ):
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.tokenizer = AutoTokenizer.from_pretrained(model_path)
        self.model = AutoModelForCausalLM.from_pretrained(model_path, dtype=getattr(torch, dtype))
        self.model.to(device).eval()
        self.device, self.max_model_len, self.seed = device, max_model_len, seed
        self.batch_size, self.calls, self.policy_version = batch_size, 0, 0
        self.rollouts_generated, self.tokens_generated = 0, 0  # as VLLMEngine's
        self.rollouts_lost = 0  # one process: nothing dies on its own
        self.pad_id = self.tokenizer.pad_token_id
        if self.pad_id is None:
            self.pad_id = self.tokenizer.eos_token_id

    def validate(self, requests: pl.DataFrame) -> list[list[int]]:
        return validate_requests(requests, self.tokenizer, self.max_model_len)

    @torch.no_grad()
    def generate(
        self,
        requests: pl.DataFrame,
        sampling: SamplingConfig,
        *,
        step: int = 0,
        round: int = 0,
        seed: int | None = None,
    ) -> pl.DataFrame:
        """ROLLOUTS (without rewards): `n` completions for each request row.

        `seed` fixes this call's samples (a resumed run replays them); without it calls are
        seeded from the engine seed and a call counter.
        """
        prompt_ids = self.validate(requests)
        torch.manual_seed(seed if seed is not None else self.seed * 1_000_003 + self.calls)
        self.calls += 1
        jobs = [(r, s) for r, n in enumerate(requests["n"]) for s in range(n)]
        rows = []
        for start in range(0, len(jobs), self.batch_size):
            chunk = jobs[start : start + self.batch_size]
            outs = self._generate_batch([prompt_ids[r] for r, _ in chunk], sampling)
            for (r, s), (tokens, logprobs, finish) in zip(chunk, outs, strict=True):
                rows.append(
                    {
                        "step": step,
                        "round": round,
                        "phase": requests["phase"][r],
                        "prompt_id": requests["prompt_id"][r],
                        "sample": s,
                        "policy_version": self.policy_version,
                        "completion": self.tokenizer.decode(tokens, skip_special_tokens=True),
                        "token_ids": tokens,
                        "logprobs": logprobs,
                        "n_tokens": len(tokens),
                        "finish": finish,
                    }
                )
        self.rollouts_generated += len(rows)
        self.tokens_generated += sum(row["n_tokens"] for row in rows)
        return ROLLOUTS.frame(rows) if rows else ROLLOUTS.empty()

    def _generate_batch(self, prompts: list[list[int]], sampling: SamplingConfig):
        T = max(map(len, prompts))
        ids = torch.tensor([[self.pad_id] * (T - len(p)) + p for p in prompts], device=self.device)
        attn = torch.tensor(
            [[0] * (T - len(p)) + [1] * len(p) for p in prompts], device=self.device
        )
        greedy = sampling.temperature == 0
        out = self.model.generate(
            input_ids=ids,
            attention_mask=attn,
            max_new_tokens=sampling.max_tokens,
            do_sample=not greedy,
            temperature=None if greedy else sampling.temperature,
            top_p=None if greedy else sampling.top_p,
            top_k=None,
            pad_token_id=self.pad_id,
            return_dict_in_generate=True,
            output_logits=True,
        )
        new = out.sequences[:, T:]  # (B, L)
        lp = torch.stack(out.logits, dim=1).float().log_softmax(-1)  # (B, L, V) raw logits
        token_lp = lp.gather(-1, new[..., None])[..., 0]  # (B, L)
        eos = self.tokenizer.eos_token_id
        results = []
        for i in range(len(prompts)):
            tokens = new[i].tolist()
            end = tokens.index(eos) + 1 if eos in tokens else len(tokens)
            finish = "stop" if eos in tokens[:end] else "length"
            results.append((tokens[:end], token_lp[i, :end].tolist(), finish))
        return results

    def load_weights(self, policy, check: bool | None = None) -> float:
        """Copy the policy's weights in (same process, so a plain state-dict load; no check)."""
        self.model.load_state_dict(dict(policy.named_weights()))
        self.policy_version = policy.version
        return 0.0

    def abort_unfinished(self) -> int:
        """Nothing to abort: each call's batches run to the end or raise, leaving nothing."""
        return 0

    def sleep(self) -> None:
        """No-op: the HF engine holds no cache between calls."""

    def wake(self) -> None:
        """No-op, as sleep()."""


__all__ = ["HFEngine", "RequestError"]
