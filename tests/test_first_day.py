"""Issue 9's silent edge cases: empty selections, windows too short for the source, subset runs named as such,
precise messages for a missing or empty results folder, and reasons that name the real cause."""

from __future__ import annotations

import pytest
from click.testing import CliRunner
from conftest import make_profile

from npucheck.cli import cli
from npucheck.errors import UsageError
from npucheck.measure.energy import window_too_short
from npucheck.measure.power.base import PowerSource
from npucheck.measure.runner import Runner, RunOptions
from npucheck.read.judge import judge
from npucheck.store import default_name, save_result
from npucheck.targets import load_targets


@pytest.mark.parametrize("option", [["--kernels", ""], ["--kernels", ","], ["--dtypes", ""]])
def test_an_empty_selection_is_refused_with_exit_2(option):
    result = CliRunner().invoke(cli, ["run", "--device", "cpu", "--power", "none", *option])
    assert result.exit_code == 2
    assert result.output.startswith("npucheck: error: --") and result.output.count("\n") == 1
    assert "names no" in result.output and "choose from" in result.output


class _Counter(PowerSource):
    name, scope, quality = "tenth", "board", "Q2"
    has_counter = True
    counter_update_s = 0.1

    def __init__(self):
        self.closed = False

    def read_energy_j(self):
        return 1.0

    def close(self):
        self.closed = True


@pytest.mark.parametrize("window, refused", [(0.0, "more than 0 s"), (0.5, "at least 1 s"), (1.0, None)])
def test_a_window_shorter_than_ten_updates_of_the_source_is_refused(window, refused):
    source = _Counter()
    reason = window_too_short(source, window)
    assert (reason is None) if refused is None else (refused in reason)
    if refused:
        with pytest.raises(UsageError, match="power-window"):
            Runner(RunOptions(device="cpu", power_window_s=window), power_source=source)
        assert source.closed  # refused before measuring, and the source is not left open


def test_a_stated_figure_has_no_updates_to_span():
    class Stated(_Counter):
        quality = "Q0"

    assert window_too_short(Stated(), 0.0) is None


def test_a_subset_run_is_named_by_its_kernels_and_dtypes(tmp_path):
    doc = make_profile()
    whole = default_name(doc)  # the whole suite: no selection in the name
    assert whole.endswith(f"-{doc['settings']['suite']}.json")
    doc["settings"]["selected"] = {"kernels": ["gemm", "lstm"], "dtypes": ["bf16"]}
    assert default_name(doc) == whole.removesuffix(".json") + "-gemm-lstm-bf16.json"
    doc["settings"]["selected"] = {"kernels": None, "dtypes": ["fp32"]}
    assert default_name(doc) == whole.removesuffix(".json") + "-fp32.json"
    path = save_result(doc, None, tmp_path)  # the schema accepts the new key
    assert path.name.endswith("-fp32.json")


def test_results_lists_kernels_dtypes_and_threads(tmp_path):
    doc = make_profile()
    doc["settings"]["kernels"], doc["settings"]["dtypes"] = ["gemm"], ["bf16"]
    save_result(doc, None, tmp_path)
    result = CliRunner().invoke(cli, ["results", str(tmp_path)], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    header = result.output.splitlines()[1]
    assert "kernels" in header and "dtypes" in header and "threads" in header and "_" not in header


def test_a_missing_or_empty_results_folder_gets_a_precise_message(tmp_path):
    runner = CliRunner()
    missing = runner.invoke(cli, ["results", str(tmp_path / "nope")])
    assert missing.exit_code == 2 and "no such folder" in missing.output
    afile = tmp_path / "a.json"
    afile.write_text("{}")
    assert "is a file, not a folder" in runner.invoke(cli, ["results", str(afile)]).output
    empty = tmp_path / "empty"
    empty.mkdir()
    listed = runner.invoke(cli, ["results", str(empty)])
    assert listed.exit_code == 0 and "no result profiles in" in listed.output


def test_a_dtype_that_did_not_run_is_named_as_the_cause_not_the_power_source():
    doc = make_profile()
    doc["settings"]["dtypes"] = ["bf16"]
    doc["measurements"] = [m for m in doc["measurements"] if m["dtype"] == "bf16"]
    (verdict,) = [v for v in judge(doc, load_targets(["miit-2020-terminal"]))]
    per_watt = next(c for c in verdict["criteria"] if c["metric"].startswith("tflops_per_watt"))
    assert per_watt["status"] == "INCONCLUSIVE"
    assert "no fp16 GEMM case ran (bf16 ran)" in per_watt["reason"]


def test_the_announced_time_includes_the_idle_and_energy_windows():
    from test_runner import TINY

    quiet = Runner(RunOptions(device="cpu", dtypes=["fp32"], power="none"), suite=TINY).time_plan()
    assert quiet["idle_s"] == quiet["energy_s"] == 0
    assert quiet["total_s"] >= TINY.suite_budget_s
    measured = Runner(
        RunOptions(device="cpu", dtypes=["fp16", "fp32"], power_window_s=2.0, idle_s=1.0),
        suite=TINY,
        power_source=_Counter(),
    ).time_plan()
    assert measured["idle_s"] == 1.0
    assert measured["energy_s"] >= 2 * 2.0  # a headline window per dtype, at least
    assert measured["total_s"] == pytest.approx(sum(v for k, v in measured.items() if k != "total_s"))
    assert measured["total_s"] > quiet["total_s"] + 5.0


def test_the_suites_own_window_is_lengthened_to_ten_updates_and_says_so():
    from test_runner import TINY  # power_window_s = 0.3 s; the source updates every 0.1 s

    runner = Runner(RunOptions(device="cpu", dtypes=["fp32"]), suite=TINY, power_source=_Counter())
    assert runner._window_s == pytest.approx(1.0)
    assert any("lengthened from the suite's 0.3 s to 1 s" in note for note in runner.power_notes)


def test_results_marks_an_interrupted_run_at_every_width(tmp_path):
    save_result(make_profile(interrupted=True), None, tmp_path)
    for width in ("80", "200"):
        result = CliRunner().invoke(cli, ["results", str(tmp_path)], env={"COLUMNS": width})
        assert result.exit_code == 0 and "(interrupted)" in result.output, width
