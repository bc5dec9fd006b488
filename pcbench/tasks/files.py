"""Dataset paths: one file, a local glob over shards, or an `hf://` path (globs allowed).

Real training sets ship as shards (DeepMath-103K: data/train-0000{0..9}-of-00010.parquet), so a
config names them with a glob, `data/deepmath/data/train-*.parquet`. A local glob is expanded
here, sorted (shard order is the dataset's order), and must match at least one file; `hf://`
paths go to polars as they are (it expands globs on the hub itself).
"""

from __future__ import annotations

import glob
from pathlib import Path

GLOB_CHARS = ("*", "?", "[")


def is_remote(path: str) -> bool:
    return str(path).startswith("hf://")


def is_glob(path: str) -> bool:
    return any(c in str(path) for c in GLOB_CHARS)


def expand(path: str | Path) -> list[str]:
    """The files a dataset path names, in order ([] for a local glob matching nothing, or a
    path that is not a file); an `hf://` path is returned as is."""
    path = str(path)
    if is_remote(path):
        return [path]
    if is_glob(path):
        return sorted(p for p in glob.glob(path) if Path(p).is_file())
    return [path] if Path(path).is_file() else []


def describe_missing(path: str | Path) -> str:
    """Why a local dataset path names no file, for error messages."""
    if is_glob(str(path)):
        return f"{path}: no file matches this pattern"
    if Path(path).is_dir():
        return f"{path}: a directory; name its files (a glob such as {Path(path) / '*.parquet'})"
    return f"{path}: no such file"
