"""docs/targets.md and its examples cannot rot: every example loads and judges, the template is a valid target,
and the reference names every key, metric, operator, dtype and family that npucheck accepts."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from npucheck import targets
from npucheck.cli import cli
from npucheck.store import save_result
from npucheck.targets import DTYPES, FAMILIES, METRICS, OPS, TEMPLATE, load_target, load_targets
from tests.conftest import make_profile

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "targets.md"
EXAMPLES = sorted((ROOT / "docs" / "examples" / "targets").glob("*.toml"))
KEYS = (
    targets._TOP_REQUIRED + targets._TOP_OPTIONAL + targets._CRITERION_REQUIRED + targets._CRITERION_OPTIONAL  # noqa: SLF001
)


@pytest.fixture
def runner():
    return CliRunner()


@pytest.fixture
def result_file(tmp_path):
    return str(save_result(make_profile(), tmp_path / "result.json"))


# -------------------------------------------------------------------------------------------------- examples
def test_there_are_the_three_worked_examples():
    assert [p.name for p in EXAMPLES] == [
        "efficiency-per-dtype.toml",
        "example-terminal-npu-int8.toml",
        "lenient-cpu-smoke.toml",
        "strict-cloud-all-dtypes.toml",
    ]


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_every_example_loads_and_is_named_after_its_file(path):
    target = load_target(str(path))
    assert target.name == path.stem
    assert target.criteria


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_every_example_is_shown_by_the_targets_command(runner, path):
    result = runner.invoke(cli, ["targets", str(path)])
    assert result.exit_code == 0, result.output
    assert path.stem in result.output


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_every_example_is_judged_by_check(runner, result_file, path):
    result = runner.invoke(cli, ["check", result_file, "--target", str(path)])
    assert result.exit_code in (0, 1, 3), result.output
    assert path.stem in result.output


def test_examples_load_together_with_the_builtins():
    names = [t.name for t in load_targets([str(p) for p in EXAMPLES] + targets.builtin_names())]
    assert len(names) == len(set(names))


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_every_example_is_linked_from_the_doc(path):
    assert f"](examples/targets/{path.name})" in DOC.read_text(encoding="utf-8")


def test_doc_toml_blocks_match_the_example_files():
    """Each ```toml block in the doc is the example file without its comments and optional keys."""
    text = DOC.read_text(encoding="utf-8")
    blocks = re.findall(r"```toml\n(.*?)```", text, flags=re.S)
    assert len(blocks) == len(EXAMPLES)
    by_name = {load_target(str(p)).name: load_target(str(p)) for p in EXAMPLES}
    for block in blocks:
        shown = targets.parse_target(block, "doc.toml")
        full = by_name[shown.name]
        assert shown.title == full.title
        assert [(c.metric, c.dtype, c.families, c.op, c.threshold) for c in shown.criteria] == [
            (c.metric, c.dtype, c.families, c.op, c.threshold) for c in full.criteria
        ]


# ------------------------------------------------------------------------------------------------- reference
@pytest.mark.parametrize("word", [*KEYS, *METRICS, *DTYPES, *FAMILIES])
def test_doc_names_every_key_metric_dtype_and_family(word):
    assert f"`{word}`" in DOC.read_text(encoding="utf-8") or f'`"{word}"`' in DOC.read_text(encoding="utf-8")


@pytest.mark.parametrize("op", OPS)
def test_doc_names_every_operator(op):
    assert f'`"{op}"`' in DOC.read_text(encoding="utf-8")


def test_doc_states_the_real_format_value():
    assert f"`format = {targets.FORMAT}`" in DOC.read_text(encoding="utf-8")


# -------------------------------------------------------------------------------------------------- template
def test_template_is_printed_verbatim(runner):
    result = runner.invoke(cli, ["targets", "--template"])
    assert result.exit_code == 0
    assert result.output == TEMPLATE


def test_printed_template_saved_to_a_file_loads_and_is_accepted_by_check(runner, tmp_path, result_file):
    path = tmp_path / "my-target.toml"
    path.write_text(runner.invoke(cli, ["targets", "--template"]).output, encoding="utf-8")
    target = load_target(str(path))
    assert target.name == "my-target"
    assert {c.metric for c in target.criteria} == set(METRICS)
    shown = runner.invoke(cli, ["targets", str(path)])
    assert shown.exit_code == 0, shown.output
    checked = runner.invoke(cli, ["check", result_file, "--target", str(path)])
    assert checked.exit_code in (0, 1, 3), checked.output
    assert "my-target" in checked.output


@pytest.mark.parametrize("key", KEYS)
def test_template_sets_and_explains_every_key(key):
    lines = TEMPLATE.splitlines()
    assert any(line.startswith(f"{key} = ") or line == f"[[{key}]]" for line in lines), key
    assert any(line.startswith("#") and re.search(rf"\b{key}\b", line) for line in lines), key


@pytest.mark.parametrize("word", [*METRICS, *DTYPES, *FAMILIES, *OPS])
def test_template_comments_list_every_allowed_value(word):
    assert any(line.startswith("#") and word in line for line in TEMPLATE.splitlines()), word


def test_template_with_a_name_is_a_usage_error(runner):
    result = runner.invoke(cli, ["targets", "--template", "miit-2020-cloud"])
    assert result.exit_code == 2


# ---------------------------------------------------------------------------------------- messages via the CLI
@pytest.mark.parametrize(
    "text,expected",
    [
        (
            'name = "a"\ntitle = "b"\n[[criteria]]\nmetric = "peak_tflops"\ndtype = "fp16"\nop = ">="\nthreshold = 1\n',
            "missing key 'format': expected format = 1",
        ),
        (
            'format = 1\nname = "a"\ntitle = "b"\n[[criteria]]\nmetric = "gflops"\nop = ">="\nthreshold = 1\n',
            f"unknown metric 'gflops' (known: {', '.join(METRICS)})",
        ),
        (
            'format = 1\nname = "a"\ntitle = "b"\n[[criteria]]\nmetric = "peak_tflops"\ndtype = "fp16"\nop = "=>"\n'
            "threshold = 1\n",
            "unknown op '=>' (known: >=, >, <=, <)",
        ),
        (
            'format = 1\nname = "a"\ntitle = "b"\n[[criteria]]\nmetric = "peak_tflops"\ndtype = "int4"\nop = ">="\n'
            "threshold = 1\n",
            "unknown dtype 'int4' (known: fp16, bf16, fp32, int8, fp8_e4m3, fp8_e5m2)",
        ),
        (
            'format = 1\nname = "a"\ntitle = "b"\n[[criteria]]\nmetric = "supported_families"\nfamilies = ["mlp"]\n'
            'op = ">="\nthreshold = 1\n',
            "unknown families 'mlp' (known: cnn, rnn, lstm, gru, transformer)",
        ),
    ],
)
def test_bad_file_is_one_line_saying_what_is_expected_and_exit_2(runner, tmp_path, text, expected):
    path = tmp_path / "bad.toml"
    path.write_text(text, encoding="utf-8")
    result = runner.invoke(cli, ["targets", str(path)])
    assert result.exit_code == 2
    assert result.output.count("\n") == 1, result.output
    assert f"{path}: criteria[0]: {expected}" in result.output or f"{path}: {expected}" in result.output
