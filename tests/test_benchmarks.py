import json

import polars as pl
import pytest

from pcbench.schema import PROMPTS
from pcbench.tasks import ARITH_TEMPLATE, DatasetError, TextTemplate, last_boxed, load_benchmark
from pcbench.tasks.benchmarks import clean_answer

from conftest import ARITH, TINY_POLICY

TEMPLATE = TextTemplate("{problem}\nPut the final answer in \\boxed{}.")
EXPECTED_ROWS = {"math500": 500, "aime24": 30, "amc23": 40, "minerva_math": 272}


@pytest.mark.parametrize("name, rows", sorted(EXPECTED_ROWS.items()))
def test_every_row_loads_with_an_answer(benchmarks, name, rows):
    bench = load_benchmark(benchmarks / f"{name}.jsonl", TEMPLATE)
    PROMPTS.check(bench.prompts)
    assert len(bench) == rows and bench.skipped == []
    assert bench.prompts["answer"].str.strip_chars().str.len_chars().min() > 0
    assert bench.prompts["prompt_id"].n_unique() == rows
    assert bench.prompts["prompt"].str.ends_with("Put the final answer in \\boxed{}.").all()
    assert (bench.prompts["source"] == name).all()


def test_minerva_answer_is_the_last_boxed_of_its_solution(benchmarks):
    raw = [json.loads(line) for line in (benchmarks / "minerva_math.jsonl").open()]
    bench = load_benchmark(benchmarks / "minerva_math.jsonl", TEMPLATE)
    assert bench.prompts["answer"].to_list() == [last_boxed(r["solution"]).strip() for r in raw]
    assert bench.prompts["answer"][1] == "4.5e33"


def test_amc_float_answers_become_clean_strings(benchmarks):
    answers = load_benchmark(benchmarks / "amc23.jsonl", TEMPLATE).prompts["answer"].to_list()
    raw = [json.loads(line)["answer"] for line in (benchmarks / "amc23.jsonl").open()]
    assert all(isinstance(a, float) for a in raw)
    assert answers[:3] == ["27", "36", "45"] and "-1" in answers
    assert not any(a.endswith(".0") or "e" in a for a in answers)


def test_math500_keeps_level_and_solution(benchmarks):
    prompts = load_benchmark(benchmarks / "math500.jsonl", TEMPLATE).prompts
    assert set(prompts["difficulty"].unique()) == {1, 2, 3, 4, 5}
    assert prompts["solution"].null_count() == 0
    assert prompts["prompt_id"][0] == "math500/test/precalculus/807.json"


@pytest.mark.parametrize(
    "value, text",
    [(27.0, "27"), (0.5, "0.5"), (1e-05, "0.00001"), (-1.0, "-1"), (12, "12"), (" 3 ", "3")],
)
def test_clean_answer(value, text):
    assert clean_answer(value) == text


def test_clean_answer_refuses_non_numbers():
    for bad in (float("nan"), float("inf"), True, None, [1]):
        with pytest.raises(DatasetError):
            clean_answer(bad)


def write_lines(path, lines):
    path.write_text("\n".join(lines) + "\n")
    return path


def test_malformed_rows_name_file_line_and_problem(tmp_path):
    good = json.dumps({"problem": "1+1?", "answer": "2"})
    cases = {
        "{not json": "not valid JSON",
        json.dumps({"answer": "2"}): "no 'problem' text",
        json.dumps({"problem": "x"}): "no 'answer' field and no 'solution'",
        json.dumps(
            {"problem": "x", "solution": "no box"}
        ): "no .answer. field and no .boxed.. answer in .solution.",
        json.dumps({"problem": "x", "answer": "  "}): "empty answer",
        json.dumps([1, 2]): "expected a JSON object",
    }
    for i, (bad, problem) in enumerate(cases.items()):
        path = write_lines(tmp_path / f"bad{i}.jsonl", [good, "", bad])
        with pytest.raises(DatasetError, match=f"bad{i}.jsonl, line 3: {problem}"):
            load_benchmark(path, TEMPLATE)


def test_lenient_mode_skips_and_counts(tmp_path):
    rows = [json.dumps({"id": i, "problem": f"{i}+1?", "answer": i + 1}) for i in range(5)]
    path = write_lines(
        tmp_path / "mixed.jsonl", rows[:2] + ["{oops", json.dumps({"id": 9})] + rows[2:]
    )
    with pytest.warns(UserWarning, match="skipped 2 malformed rows"):
        bench = load_benchmark(path, TEMPLATE, lenient=True)
    assert len(bench) == 5 and [line for line, _ in bench.skipped] == [3, 4]
    assert bench.prompts["prompt_id"].to_list() == [f"mixed/{i}" for i in range(5)]


def test_empty_missing_and_duplicate_files_fail_clearly(tmp_path):
    with pytest.raises(DatasetError, match="no such file"):
        load_benchmark(tmp_path / "nope.jsonl", TEMPLATE)
    with pytest.raises(DatasetError, match="no usable rows"):
        load_benchmark(write_lines(tmp_path / "empty.jsonl", [""]), TEMPLATE)
    dup = json.dumps({"id": 1, "problem": "x", "answer": 1})
    with pytest.raises(DatasetError, match="duplicate prompt ids"):
        load_benchmark(write_lines(tmp_path / "dup.jsonl", [dup, dup]), TEMPLATE)


def test_parquet_and_json_array_formats(tmp_path, benchmarks):
    rows = [json.loads(line) for line in (benchmarks / "aime24.jsonl").open()]
    pl.DataFrame(rows).write_parquet(tmp_path / "aime.parquet")
    (tmp_path / "aime.json").write_text(json.dumps(rows))
    from_jsonl = load_benchmark(benchmarks / "aime24.jsonl", TEMPLATE, name="aime").prompts
    for path in (tmp_path / "aime.parquet", tmp_path / "aime.json"):
        assert load_benchmark(path, TEMPLATE).prompts.equals(from_jsonl)


def test_tiny_policy_template_renders_like_the_arith_split():
    from pcbench.tasks import template_for

    template = template_for(TINY_POLICY)
    first = pl.read_parquet(ARITH / "test.parquet").row(0, named=True)
    problem = first["prompt"].rsplit("\n", 1)[1].removesuffix(" =")
    assert template.render(problem) == first["prompt"] == ARITH_TEMPLATE.render(problem)


def test_deepmath_question_and_final_answer(tmp_path):
    """DeepMath-103K rows: question + final_answer (+ a float difficulty, not a level)."""
    rows = [
        {"question": "What is 2+2?", "final_answer": "4", "difficulty": 1.5},
        {"question": "Solve x^2 = 9 for x > 0.", "final_answer": "3", "difficulty": 2.0},
    ]
    path = tmp_path / "deepmath.parquet"
    pl.DataFrame(rows).write_parquet(path)
    prompts = load_benchmark(path, TEMPLATE).prompts
    assert prompts["answer"].to_list() == ["4", "3"]
    assert prompts["prompt_id"].to_list() == ["deepmath/1", "deepmath/2"]  # 1-based lines
    assert prompts["difficulty"].null_count() == 2
