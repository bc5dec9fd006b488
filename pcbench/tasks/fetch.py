"""`pcbench data fetch NAME`: the public datasets the GPU presets read, written where they look.

Run it on a machine with hub access; training never downloads (DESIGN §5). Each source is one
Hugging Face dataset repository. Training sets keep their shard layout under data/<name>/ (the
presets name them with a glob); benchmarks become one JSON-lines file data/benchmarks/<name>.jsonl
in the fields `load_benchmark` reads, checked by loading it before it is kept.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from pcbench.tasks.benchmarks import DatasetError, load_benchmark, read_records
from pcbench.tasks.templates import TextTemplate


class FetchError(RuntimeError):
    """A dataset could not be fetched (no network, unknown repository, unusable files)."""


@dataclass(frozen=True)
class Source:
    repo: str  # Hugging Face dataset repository
    patterns: tuple[str, ...]  # files to take from it
    kind: str  # "train": shards kept as they are | "benchmark": one jsonl file
    note: str = ""


SOURCES = {
    "deepmath": Source("zwhe99/DeepMath-103K", ("data/train-*.parquet",), "train",
                       "103k problems with final_answer; the paper presets' training set"),
    "polaris": Source("POLARIS-Project/Polaris-Dataset-53K", ("*.jsonl", "*.parquet"), "train",
                      "53k problems with answers (POLARIS)"),
    "math500": Source("HuggingFaceH4/MATH-500", ("test.jsonl",), "benchmark", "MATH-500"),
    "aime24": Source("math-ai/aime24", ("*.jsonl", "**/*.parquet", "*.parquet"), "benchmark",
                     "AIME 2024 (30)"),
    "aime25": Source("math-ai/aime25", ("*.jsonl", "**/*.parquet", "*.parquet"), "benchmark",
                     "AIME 2025 (30)"),
    "amc23": Source("math-ai/amc23", ("*.jsonl", "**/*.parquet", "*.parquet"), "benchmark",
                    "AMC 2023 (40)"),
}  # fmt: skip

Download = Callable[[str, tuple[str, ...], Path], None]  # (repo, patterns, into directory)


def hub_download(repo: str, patterns: tuple[str, ...], into: Path) -> None:
    """The matching files of a hub dataset repository, into `into` with their layout."""
    from huggingface_hub import snapshot_download

    snapshot_download(repo, repo_type="dataset", allow_patterns=list(patterns), local_dir=into)


def destination(name: str, root: str | Path = "data") -> Path:
    """Where a fetched dataset goes: data/<name>/ (training shards) or data/benchmarks/<name>.jsonl."""
    source = SOURCES[name]
    root = Path(root)
    return root / name if source.kind == "train" else root / "benchmarks" / f"{name}.jsonl"


def fetch(name: str, root: str | Path = "data", download: Download = hub_download) -> Path:
    """Fetch one named dataset (see SOURCES) under `root`; returns where it now is."""
    if name not in SOURCES:
        raise FetchError(f"no dataset {name!r} to fetch; known: {', '.join(SOURCES)}")
    source, dest = SOURCES[name], destination(name, root)
    with tempfile.TemporaryDirectory(prefix=f"pcbench-fetch-{name}-") as tmp:
        try:
            download(source.repo, source.patterns, Path(tmp))
        except Exception as e:  # hub errors come in many classes; all mean "not fetched"
            raise FetchError(
                f"could not download {source.repo} from the Hugging Face hub "
                f"({type(e).__name__}: {str(e).splitlines()[0] if str(e) else 'no detail'}). "
                f"If this machine has no network, run `pcbench data fetch {name}` where there is "
                f"one and copy {dest} here: the presets read it from there."
            ) from e
        files = sorted(
            p for p in Path(tmp).rglob("*")
            if p.is_file() and p.suffix in (".parquet", ".jsonl", ".json")
            and ".cache" not in p.parts
        )  # fmt: skip
        if not files:
            raise FetchError(f"{source.repo}: no files match {', '.join(source.patterns)}")
        if source.kind == "train":
            return _keep_shards(Path(tmp), files, dest)
        return _write_benchmark(name, files, dest)


def _keep_shards(tmp: Path, files: list[Path], dest: Path) -> Path:
    """Stage the shards beside `dest` (same filesystem), prove they load, then swap them in
    whole: an interrupted fetch leaves the old set (or none), never a partial or mixed one."""
    staged = dest.with_name(dest.name + ".partial")
    shutil.rmtree(staged, ignore_errors=True)
    for f in files:
        target = staged / f.relative_to(tmp)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(f), target)
    try:  # the fields load_benchmark reads (problem or question, an answer) are there
        for shards in sorted({f.parent for f in staged.rglob("*") if f.is_file()}):
            for suffix in {f.suffix for f in shards.iterdir() if f.is_file()}:
                load_benchmark(shards / f"*{suffix}", TextTemplate("{problem}"), name=dest.name)
    except DatasetError as e:
        shutil.rmtree(staged)
        raise FetchError(
            f"{dest.name}: the downloaded files are not a dataset pcbench reads: {e}"
        ) from None
    if dest.exists():
        shutil.rmtree(dest)  # a previous fetch, possibly sharded differently
    staged.rename(dest)
    return dest


def _write_benchmark(name: str, files: list[Path], dest: Path) -> Path:
    """All records of the files as one jsonl file, kept only if `load_benchmark` reads it."""
    records = [r for f in files for _, r in read_records(str(f))]
    dest.parent.mkdir(parents=True, exist_ok=True)
    partial = dest.with_suffix(".jsonl.partial")
    partial.write_text("".join(json.dumps(r, default=str) + "\n" for r in records))
    try:  # read once to prove it loads; the presets load it again with their own template
        load_benchmark(partial, TextTemplate("{problem}"), name=name)
    except DatasetError as e:
        partial.unlink()
        raise FetchError(
            f"{name}: the downloaded files are not a benchmark pcbench reads: {e}"
        ) from None
    partial.replace(dest)
    return dest
