"""`pcbench check CONFIG...`: is a run config ready to run, without loading an engine?

It validates the config, finds the data files, reads the model's config (its directory, the
local hub cache, or the offline copy in configs/models/), checks positions, vocabulary and
architecture against the run, and prints the memory plan (pcbench.memory). Each finding is
`ok`, `info`, `download` (something must be fetched first: not an error, since this project's
machines cannot download) or `error`; only errors fail the check.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from pcbench.config import CONFIGS_DIR, ConfigError, RunConfig, load_config
from pcbench.state import looks_like_hub_id
from pcbench.tasks.fetch import SOURCES, destination
from pcbench.tasks.files import describe_missing, expand, is_remote

OFFLINE_CONFIGS = CONFIGS_DIR / "models"


@dataclass
class Report:
    path: str
    findings: list[tuple[str, str]] = field(default_factory=list)  # (status, message)

    def add(self, status: str, message: str) -> None:
        self.findings.append((status, message))

    @property
    def ok(self) -> bool:
        return all(status != "error" for status, _ in self.findings)

    def text(self) -> str:
        return "\n".join(
            [self.path, *(f"  {status:<9} {message}" for status, message in self.findings)]
        )


def check(path: str | Path, gpu_gib: float = 80.0, overrides: list[str] = ()) -> Report:
    """What `pcbench check` says of one config (with `--set` overrides, as `pcbench run`)."""
    report = Report(" ".join([str(path), *(f"--set {o}" for o in overrides)]))
    try:
        cfg = load_config(path, list(overrides))
    except (ConfigError, ValueError, OSError) as e:
        report.add("error", f"config: {e}")
        return report
    report.add(
        "ok",
        f"config: {cfg.strategy}, B {cfg.batch_prompts} x n {cfg.group_size}, {cfg.steps} steps, "
        f"{cfg.engine.kind} engine on {cfg.engine.device} in {cfg.engine.dtype}",
    )
    _check_data(cfg, report)
    try:  # a model config transformers cannot read, or build as a causal LM, is this config's
        model_config = _model_config(cfg, report)  # error, not the end of the whole check
        if model_config is not None:
            _check_model(cfg, model_config, report, gpu_gib)
    except (OSError, ValueError, KeyError, TypeError) as e:
        report.add("error", f"model = {cfg.model}: {type(e).__name__}: {e}")
    return report


def _fetch_name(path: str) -> str | None:
    """The `pcbench data fetch` source that writes `path`, if any."""
    for name in SOURCES:
        dest = destination(name)
        if Path(path) == dest or dest in Path(path).parents:
            return name
    return None


def _check_data(cfg: RunConfig, report: Report) -> None:
    for what, path in [("train", cfg.train), ("test", cfg.test)] + [
        ("extra_eval", p) for p in cfg.extra_eval
    ]:
        if is_remote(path):
            report.add("download", f"{what} = {path}: read from the hub when the run starts")
        elif files := expand(path):
            report.add("ok", f"{what} = {path}: {len(files)} file{'s' * (len(files) > 1)}")
        elif name := _fetch_name(path):
            report.add("download", f"{what} = {path}: run `pcbench data fetch {name}`")
        else:
            report.add("error", f"{what}: {describe_missing(path)}")


def _model_config(cfg: RunConfig, report: Report):
    """The model's transformers config from its directory, the hub cache or the offline copy."""
    from transformers import AutoConfig

    model = cfg.model
    if Path(model).exists():
        try:
            return AutoConfig.from_pretrained(model)
        except (OSError, ValueError) as e:
            report.add("error", f"model = {model}: not a model directory ({e})")
            return None
    if not looks_like_hub_id(model):  # a local path that is not there: the run refuses it too
        report.add("error", f"model = {model}: no such directory")
        return None
    try:
        found = AutoConfig.from_pretrained(model, local_files_only=True)
        report.add("ok", f"model = {model}: in the local hub cache")
        return found
    except (OSError, ValueError):
        pass
    offline = OFFLINE_CONFIGS / f"{model.replace('/', '--')}.json"
    fetch = f"`huggingface-cli download {model}` (or set model to a local directory)"
    if not offline.exists():
        report.add("download", f"model = {model}: not on disk: {fetch}; model checks skipped")
        return None
    report.add("download", f"model = {model}: not on disk: {fetch}; checked on {offline.name}")
    import json

    return AutoConfig.for_model(**json.loads(offline.read_text()))


def _check_model(cfg: RunConfig, model_config, report: Report, gpu_gib: float) -> None:
    from pcbench.logprobs import LEAN_LOGPROB_ARCHITECTURES
    from pcbench.memory import memory_plan, parameter_count, step_seconds

    ec, sampling = cfg.engine, cfg.sampling
    positions = getattr(model_config, "max_position_embeddings", None)
    if positions is not None and ec.max_model_len > positions:
        report.add(
            "error",
            f"engine.max_model_len = {ec.max_model_len} exceeds the model's {positions} "
            "positions: lower it (and sampling.max_tokens with it)",
        )
    else:
        report.add("ok", f"positions: max_model_len {ec.max_model_len} <= {positions}")
    for what, tokens in (("sampling.max_tokens", sampling.max_tokens),
                         ("eval.max_tokens", getattr(cfg.eval, "max_tokens", None))):  # fmt: skip
        if tokens is not None and tokens >= ec.max_model_len:
            report.add(
                "error",
                f"{what} = {tokens} leaves no room for the prompt in max_model_len = "
                f"{ec.max_model_len}",
            )
    _check_vocab(cfg, model_config, report)
    arch = getattr(model_config, "model_type", "?")
    if arch in LEAN_LOGPROB_ARCHITECTURES:
        report.add("ok", f"architecture {arch}: chunked (memory-lean) log-probs")
    else:
        report.add("info", f"architecture {arch}: full-vocabulary log-probs (B, T, V) in fp32")
    _check_vllm_architecture(cfg, model_config, report)
    params = parameter_count(model_config)
    plan = memory_plan(cfg, model_config, params, gpu_gib)
    for line in plan.lines():
        report.add("plan", line)
    for problem in plan.problems(ec.max_model_len):
        report.add("error", f"memory: {problem}")
    if ec.device == "cuda":
        generate, train = step_seconds(cfg, params)  # per replica and rank on a cluster
        report.add(
            "plan",
            f"time per step ~{generate + train:,.0f} s (generation ~{generate:,.0f}, "
            f"training ~{train:,.0f}; rough, see pcbench.memory.step_seconds)",
        )


def _check_vocab(cfg: RunConfig, model_config, report: Report) -> None:
    from transformers import AutoTokenizer

    try:  # on disk, or in the local hub cache
        tokens = len(AutoTokenizer.from_pretrained(cfg.model, local_files_only=True))
    except (OSError, ValueError):
        report.add("info", "vocab: the tokenizer comes with the model's download; not checked")
        return
    if tokens > model_config.vocab_size:
        report.add(
            "error", f"tokenizer has {tokens} tokens, the model's vocab {model_config.vocab_size}"
        )
    else:
        report.add("ok", f"vocab: tokenizer {tokens} <= model {model_config.vocab_size}")


def _check_vllm_architecture(cfg: RunConfig, model_config, report: Report) -> None:
    if cfg.engine.kind != "vllm":
        return
    try:
        from vllm import ModelRegistry
    except ImportError:
        report.add("info", "vLLM not installed here: its architecture support not checked")
        return
    archs = getattr(model_config, "architectures", None) or []
    supported = set(ModelRegistry.get_supported_archs())
    if archs and not any(a in supported for a in archs):
        report.add("error", f"vLLM does not support {', '.join(archs)}")
    else:
        report.add("ok", f"vLLM supports {', '.join(archs) or 'it'}")
