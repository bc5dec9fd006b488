"""Tasks: the embedded arithmetic task, prompt templates and benchmark loaders."""

from pcbench.tasks.arith import LEVELS, generate_problems, write_splits
from pcbench.tasks.benchmarks import Benchmark, DatasetError, load_benchmark
from pcbench.tasks.boxed import last_boxed
from pcbench.tasks.stream import PromptStream
from pcbench.tasks.templates import ARITH_TEMPLATE, ChatTemplate, TextTemplate, template_for

__all__ = [
    "PromptStream",
    "ARITH_TEMPLATE",
    "LEVELS",
    "Benchmark",
    "ChatTemplate",
    "DatasetError",
    "TextTemplate",
    "generate_problems",
    "last_boxed",
    "load_benchmark",
    "template_for",
    "write_splits",
]
