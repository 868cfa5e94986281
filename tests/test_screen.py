"""What the commands print fits the width: checked at 80, 120 and 200 columns on a profile with long shapes, long
errors, skipped sizes and repeated verdict reasons (issue 9)."""

from __future__ import annotations

import io
import re

import pytest
from click.testing import CliRunner
from conftest import make_measurement, make_profile

from npucheck.cli import cli
from npucheck.model import ResultProfile
from npucheck.read.judge import judge
from npucheck.read.screen import make_console, print_profile
from npucheck.store import save_result
from npucheck.targets import load_targets

CONV = "n1_c256_14x14_k256_3x3_s1x1_p1x1_g1"
LONG_ERROR = "out of memory: " + "CUDA out of memory. Tried to allocate 32.00 GiB; " * 4


def _profile() -> ResultProfile:
    measurements = [make_measurement()]
    for size in (1024, 2048, 4096, 8192):
        measurements.append(
            make_measurement(
                id=f"gemm/fp16/m{size}_n{size}_k{size}_NN",
                shape={"m": size, "n": size, "k": size, "layout": "NN"},
                status="skipped",
                reason=f"predicted {size / 100:.3g} s for warm-up, check and 6 samples at ~0.00276 TFLOPS exceeds "
                "the case budget of 1 s",
                samples_s=[],
                stats=None,
                tflops=None,
                tflops_ci=None,
            )
        )
    measurements.append(
        make_measurement(
            id=f"conv2d/fp16/{CONV}",
            kernel="conv2d",
            family="cnn",
            shape={"n": 1, "c": 256},
            status="error",
            error=LONG_ERROR,
            samples_s=[],
            stats=None,
            tflops=None,
            tflops_ci=None,
        )
    )
    doc = make_profile(measurements=measurements)
    doc["verdicts"] = judge(doc, load_targets(None))
    return ResultProfile.from_dict(doc)


def _render(width: int, monkeypatch, all_cases: bool = False) -> str:
    monkeypatch.setenv("COLUMNS", str(width))
    out = io.StringIO()
    print_profile(make_console(stream=out), _profile(), all_cases=all_cases)
    return out.getvalue()


@pytest.mark.parametrize("width", [80, 120, 200])
def test_every_line_fits_and_no_identifier_or_number_is_cut(width, monkeypatch):
    text = _render(width, monkeypatch)
    lines = text.splitlines()
    assert max(len(line) for line in lines) <= width
    assert "…" not in text  # nothing truncated
    for shape in ("m256_n256_k256_NN", CONV):
        assert re.search(rf"(^|\s){shape}(\s|$)", text, re.M), shape
    assert "─" not in text and "│" not in text  # piped: plain text, no box drawing


@pytest.mark.parametrize("width", [80, 120, 200])
def test_skipped_sizes_fold_into_one_line_per_kernel_and_dtype(width, monkeypatch):
    text = _render(width, monkeypatch)
    assert text.count("m4096_n4096_k4096_NN") == 0  # neither first nor last of the group: folded away
    assert len([line for line in text.splitlines() if line.startswith("skipped gemm fp16")]) == 1
    folded = " ".join(text.split("skipped gemm fp16")[1].split("(--all-cases")[0].split())
    assert folded.startswith(": 4 (m1024_n1024_k1024_NN to m8192_n8192_k8192_NN): predicted time exceeds")
    listed = _render(width, monkeypatch, all_cases=True)
    assert listed.count("m4096_n4096_k4096_NN") == 1
    assert not any(line.startswith("skipped gemm") for line in listed.splitlines())


def test_a_long_error_is_a_footnote_written_once(monkeypatch):
    text = _render(80, monkeypatch)
    flat = " ".join(text.split())
    assert flat.count("Tried to allocate 32.00 GiB") == 4  # the one footnote (the message repeats itself 4x)
    row = next(line for line in text.splitlines() if line.startswith(CONV))
    assert re.search(r"\[\d+\]\s*$", row)


def test_the_bottom_line_comes_first_and_last_and_a_repeated_reason_once(monkeypatch):
    text = _render(120, monkeypatch)
    lines = [line for line in text.splitlines() if line.strip()]
    assert lines[0].startswith("miit-2020-cloud: FAIL")
    assert lines[-3].startswith("miit-2020-cloud: FAIL")  # at 120 columns each verdict fits one line
    assert lines[-1].startswith("miit-2020-terminal-strict: ")
    reason = "fp16 TFLOPS/W is unknown"
    assert text.count(reason) == 1  # three criteria share it: one footnote


def test_show_and_check_through_the_cli_fit_80_columns(tmp_path):
    path = save_result(_profile(), tmp_path / "r.json")
    runner = CliRunner()
    for args in (["show", str(path)], ["check", str(path)]):
        result = runner.invoke(cli, args, env={"COLUMNS": "80"})
        assert result.exit_code in (0, 1), result.output
        assert max(len(line) for line in result.output.splitlines()) <= 80, args
        assert result.output.startswith("miit-2020-cloud: FAIL") or args[0] == "check"
        assert any(line.startswith("miit-2020-cloud: FAIL") for line in result.output.splitlines()[-6:])
    listed = runner.invoke(cli, ["show", "--all-cases", str(path)], env={"COLUMNS": "80"})
    assert "m4096_n4096_k4096_NN" in listed.output


def test_compare_wraps_between_words_never_inside_one(tmp_path):
    """A word broken in two makes tokens that the wide rendering does not have (narrow widths may print rows as
    ``header: value`` blocks, so punctuation is set aside)."""
    base = save_result(_profile(), tmp_path / "base.json")
    doc = _profile().to_dict()
    doc["measurements"][0]["tflops"] *= 0.5
    doc["measurements"][0]["tflops_ci"] = [v * 0.5 for v in doc["measurements"][0]["tflops_ci"]]
    other = save_result(doc, tmp_path / "other.json")
    runner = CliRunner()

    def tokens(width):
        result = runner.invoke(cli, ["compare", str(base), str(other)], env={"COLUMNS": str(width)})
        assert result.exit_code == 0, result.output
        assert max(len(line) for line in result.output.splitlines()) <= width
        return {token.strip(":;,[]()") for token in result.output.split()} - {""}

    wide = tokens(300)
    for width in (80, 120):
        assert tokens(width) <= wide, width
