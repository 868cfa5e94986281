"""results, compare, plot and report: read stored profiles only, degrade gracefully, escape what they show."""

from __future__ import annotations

import copy
import json
import struct

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import GEMM_FLOPS, make_measurement, make_profile, verdict_giving

from npucheck.cli import cli
from npucheck.read import compare as comparing
from npucheck.read import plot as plotting
from npucheck.read.text import comparison_summary_lines
from npucheck.stats import summarize
from npucheck.store import save_result


def _case(
    case_id: str,
    median_s: float,
    seed: int,
    flops: int = GEMM_FLOPS,
    dtype: str = "fp16",
    energy: dict | None = None,
    **extra,
) -> dict:
    """A measured GEMM with 30 samples scattered 2% around ``median_s``."""
    samples = list(np.random.default_rng(seed).normal(median_s, 0.02 * median_s, 30))
    stats = summarize(samples)
    m = make_measurement(
        id=case_id,
        dtype=dtype,
        flops=flops,
        samples_s=samples,
        stats=stats.to_dict(),
        tflops=flops / stats.median_s / 1e12,
        tflops_ci=[flops / stats.ci_high_s / 1e12, flops / stats.ci_low_s / 1e12],
        energy=energy,
        **extra,
    )
    return m


def _energy(tflops: float, watts: float, source: str = "rapl", scope: str = "package", kind: str = "sweep") -> dict:
    return {
        "kind": kind,
        "case": "x",
        "source": source,
        "scope": scope,
        "quality": "Q2",
        "uncertainty_rel": 0.1,
        "window_s": 2.0,
        "start_unix": 1795600000.0,
        "valid": True,
        "reason": None,
        "joules": 2 * watts,
        "avg_watts": watts,
        "tflops": tflops,
        "tflops_per_watt": tflops / watts,
        "tflops_per_watt_net": None,
        "trace": [[0.0, watts], [1.0, watts], [2.0, watts]],
        "warnings": [],
    }


def _pair():
    """A base and an 'other' profile: one GEMM twice as slow, one the same (noise), one only in the base."""
    base = make_profile(
        measurements=[
            _case("gemm/fp16/slow", 1e-4, 1),
            _case("gemm/fp16/same", 2e-4, 2),
            _case("gemm/fp16/gone", 3e-4, 3),
        ]
    )
    other = make_profile(
        created_utc="2026-11-24T10:00:00Z",
        measurements=[_case("gemm/fp16/slow", 2e-4, 4), _case("gemm/fp16/same", 2e-4, 5)],
    )
    return base, other


@pytest.fixture
def runner():
    return CliRunner()


# ------------------------------------------------------------------------------------------------------ compare
def test_a_real_slowdown_is_a_regression_and_noise_is_not():
    base, other = _pair()
    frame = comparing.compare_frames(base, [("other", other)]).set_index("case")
    assert frame.loc["gemm/fp16/slow", "verdict"] == comparing.REGRESSION
    assert frame.loc["gemm/fp16/slow", "ratio"] == pytest.approx(0.5, rel=0.03)
    assert frame.loc["gemm/fp16/slow", "ratio_high"] < 1
    assert frame.loc["gemm/fp16/same", "verdict"] == comparing.NOISE
    assert frame.loc["gemm/fp16/gone", "verdict"] == comparing.MISSING


def test_a_significant_change_below_the_threshold_is_not_a_regression():
    assert comparing.classify(0.97, 0.96, 0.98, threshold=0.05) == comparing.SMALL
    assert comparing.classify(0.90, 0.85, 1.01, threshold=0.05) == comparing.NOISE
    assert comparing.classify(1.20, 1.10, 1.30, threshold=0.05) == comparing.IMPROVEMENT


def test_cases_measured_differently_are_incomparable():
    base, other = _pair()
    other["measurements"][0]["timing_method"] = "device_events"
    frame = comparing.compare_frames(base, [("other", other)]).set_index("case")
    assert frame.loc["gemm/fp16/slow", "verdict"] == comparing.INCOMPARABLE
    assert "timing method" in frame.loc["gemm/fp16/slow", "note"]


def test_tflops_per_watt_is_compared_only_within_one_source_and_scope():
    base, other = _pair()
    base["measurements"][1]["energy"] = _energy(1.0, 100.0)
    other["measurements"][1]["energy"] = _energy(1.0, 50.0, source="nvml", scope="board")
    row = comparing.compare_frames(base, [("o", other)]).set_index("case").loc["gemm/fp16/same"]
    assert row["tflops_per_watt_ratio"] is None or row["tflops_per_watt_ratio"] != row["tflops_per_watt_ratio"]
    assert "not compared: rapl/package vs nvml/board" in row["note"] and "nan" not in row["note"]


def test_a_case_without_raw_samples_is_not_measured_rather_than_noise():
    base, other = _pair()
    other["measurements"][1]["samples_s"] = []
    row = comparing.compare_frames(base, [("o", other)]).set_index("case").loc["gemm/fp16/same"]
    assert row["verdict"] == comparing.NOT_MEASURED and "no raw samples" in row["note"]


def test_summary_has_the_geometric_mean_per_family_and_verdict_changes():
    base, other = _pair()
    other["verdicts"] = copy.deepcopy(base["verdicts"])
    other["verdicts"] = [verdict_giving("INCONCLUSIVE")]
    others = [("o", other)]
    summary = comparing.summary(comparing.compare_frames(base, others), base, others)
    assert summary["geomean"]["o"]["gemm"] == pytest.approx(np.sqrt(0.5), rel=0.03)
    assert summary["verdict_changes"]["o"] == [{"target": "miit-2020-cloud", "base": "FAIL", "other": "INCONCLUSIVE"}]


def test_comparison_summary_lines_in_the_command_and_the_report_wording():
    summary = {
        "geomean": {"o": {"cnn": 1.25, "gemm": 0.5}},
        "counts": {"o": {"regression": 2, "noise": 1}},
        "verdict_changes": {"o": [{"target": "t", "base": "FAIL", "other": "PASS"}]},
    }
    assert comparison_summary_lines(summary) == [
        "o: geometric-mean speed ratio cnn 1.250, gemm 0.500",
        "o: regression 2, noise 1",
        "o: verdict t changed FAIL -> PASS",
    ]
    assert comparison_summary_lines(summary, style="report") == [
        "cnn: geometric-mean speed ratio 1.250",
        "gemm: geometric-mean speed ratio 0.500",
        "regression: 2, noise: 1",
        "verdict change: t FAIL → PASS",
    ]
    assert comparison_summary_lines(summary, style="report", counts=False) == [
        "cnn: geometric-mean speed ratio 1.250",
        "gemm: geometric-mean speed ratio 0.500",
        "verdict change: t FAIL → PASS",
    ]
    assert comparison_summary_lines({"geomean": {}, "counts": {}, "verdict_changes": {}}) == []


def test_every_rendering_of_the_comparison_summary_takes_its_lines_from_one_function(runner, tmp_path, monkeypatch):
    import npucheck.read.report
    import npucheck.read.text

    def marked(summary, style="command", counts=True):
        return [f"SUMMARY-{style}-{counts}"]

    monkeypatch.setattr(npucheck.read.text, "comparison_summary_lines", marked)
    monkeypatch.setattr(npucheck.read.report, "comparison_summary_lines", marked)
    base, other = _pair()
    other["verdicts"] = copy.deepcopy(base["verdicts"])
    other["verdicts"] = [verdict_giving("INCONCLUSIVE")]  # a verdict change, so every kind of line has a source
    b, o = save_result(base, tmp_path / "b.json"), save_result(other, tmp_path / "o.json")
    outputs = {}
    for fmt in ("table", "markdown"):
        result = runner.invoke(cli, ["compare", str(b), str(o), "--format", fmt])
        assert result.exit_code == 0, result.output
        outputs[fmt] = result.output
    for name in ("report.md", "report.html"):
        result = runner.invoke(cli, ["report", str(o), str(b), "-o", str(tmp_path / name)])
        assert result.exit_code == 0, result.output
        outputs[name] = (tmp_path / name).read_text()
    assert "SUMMARY-command-True" in outputs["table"] and "- SUMMARY-command-True" in outputs["markdown"]
    assert "- SUMMARY-report-False" in outputs["report.md"]
    assert "<li>SUMMARY-report-True</li>" in outputs["report.html"]
    for name, text in outputs.items():  # nothing renders the summary on its own
        assert "geometric-mean" not in text and "verdict change" not in text and "changed FAIL" not in text, name


def test_compare_exits_1_on_regression_only_when_asked(runner, tmp_path):
    base, other = _pair()
    b, o = save_result(base, tmp_path / "b.json"), save_result(other, tmp_path / "o.json")
    plain = runner.invoke(cli, ["compare", str(b), str(o)])
    assert plain.exit_code == 0 and "regression" in plain.output
    strict = runner.invoke(cli, ["compare", str(b), str(o), "--fail-on-regression"])
    assert strict.exit_code == 1 and "1 regression(s)" in strict.output


@pytest.mark.parametrize(
    "fmt,check",
    [
        ("json", lambda text: json.loads(text)["summary"]["counts"]),
        ("csv", lambda text: text.splitlines()[0].startswith("other,case,")),
        ("markdown", lambda text: "| case" in text or "|    | other" in text or "| other" in text),
    ],
)
def test_compare_formats(runner, tmp_path, fmt, check):
    base, other = _pair()
    b, o = save_result(base, tmp_path / "b.json"), save_result(other, tmp_path / "o.json")
    result = runner.invoke(cli, ["compare", str(b), str(o), "--format", fmt])
    assert result.exit_code == 0, result.output
    assert check(result.output)


def test_compare_with_a_corrupt_file_is_one_line_and_exit_2(runner, tmp_path):
    base, _ = _pair()
    b = save_result(base, tmp_path / "b.json")
    (tmp_path / "bad.json").write_text('{"schema_version": 2, "measurements": [')
    result = runner.invoke(cli, ["compare", str(b), str(tmp_path / "bad.json")])
    assert result.exit_code == 2 and result.output.count("\n") == 1 and "truncated" in result.output


# ------------------------------------------------------------------------------------------------------ results
def test_results_lists_good_files_and_names_the_bad_ones(runner, tmp_path):
    base, other = _pair()
    save_result(base, tmp_path / "a.json")
    save_result(other, tmp_path / "b.json")
    newer = make_profile(schema_version=99)
    (tmp_path / "c.json").write_text(json.dumps(newer))
    result = runner.invoke(cli, ["results", str(tmp_path), "--format", "json"])
    assert result.exit_code == 0
    rows = json.loads(result.stdout)
    assert [r["date"] for r in rows] == ["2026-11-24T10:00:00Z", "2026-11-23T10:00:00Z"]  # newest first
    assert "c.json: written by a newer npucheck" in result.stderr


def test_results_of_a_missing_directory_is_exit_2(runner, tmp_path):
    result = runner.invoke(cli, ["results", str(tmp_path / "nope")])
    assert result.exit_code == 2 and "no such folder" in result.output


# ------------------------------------------------------------------------------------------------------ plot
def _png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", data[16:24])


def _power_profile():
    sizes = [(128, 2e-6), (256, 1e-5), (512, 6e-5)]
    measurements = []
    for index, (n, seconds) in enumerate(sizes):
        flops = 2 * n**3
        energy = _energy(flops / seconds / 1e12, 40.0 + index, kind="headline" if index == 2 else "sweep")
        energy["context_trace"] = [[0.5, {"sm_clock_mhz": 1800, "temperature_c": 55}]]
        energy["start_unix"] = 1795600000.0 + 3 * index
        measurements.append(_case(f"gemm/fp16/m{n}", seconds, index, flops=flops, energy=energy))
    profile = make_profile(measurements=measurements)
    profile["power"]["idle"] = _energy(0.0, 20.0, kind="idle") | {"tflops_per_watt": None, "start_unix": 1795599990.0}
    return profile


@pytest.mark.parametrize("kind", ["sweep", "efficiency", "trace", "compare"])
def test_every_plot_kind_has_titled_labelled_axes_and_renders_to_png(kind):
    profile = _power_profile()
    fig = plotting.build(
        kind,
        [profile, make_profile()] if kind == "compare" else [profile],
        ["a", "b"],
        [("miit-2020-cloud, miit-2020-terminal", 1.0)],
    )
    axes = fig.get_axes()
    assert fig.get_suptitle()
    assert axes[0].get_xlabel()
    for ax in axes:  # a twin axis (clock/temperature on the trace) shares the main one's x label
        assert ax.get_ylabel()
    units = " ".join(ax.get_xlabel() + ax.get_ylabel() for ax in axes)
    assert {"sweep": "TFLOPS", "efficiency": "TFLOPS/W", "trace": "W", "compare": "TFLOPS"}[kind] in units
    if kind in ("sweep", "efficiency", "compare"):
        assert axes[0].get_xscale() == "log"
    if kind == "efficiency":
        assert any(text.get_text().endswith("> 1") for text in axes[0].texts)  # the target's threshold, labelled
    width, height = _png_size(plotting.render(fig, "png"))
    assert width > 500 and height > 300


def test_efficiency_without_power_data_is_one_clear_error(runner, tmp_path):
    stored = save_result(make_profile(), tmp_path / "r.json")
    result = runner.invoke(cli, ["plot", str(stored), "--kind", "efficiency", "-o", str(tmp_path / "e.png")])
    assert result.exit_code == 2 and "no valid energy window" in result.output
    assert not (tmp_path / "e.png").exists()


def test_plot_writes_the_format_its_extension_names(runner, tmp_path):
    stored = save_result(make_profile(), tmp_path / "r.json")
    for ext, magic in (("svg", b"<?xml"), ("pdf", b"%PDF"), ("png", b"\x89PNG")):
        out = tmp_path / f"p.{ext}"
        result = runner.invoke(cli, ["plot", str(stored), "-o", str(out)])
        assert result.exit_code == 0, result.output
        assert out.read_bytes().startswith(magic)
    bad = runner.invoke(cli, ["plot", str(stored), "-o", str(tmp_path / "p.jpg")])
    assert bad.exit_code == 2 and ".png, .svg or .pdf" in bad.output


# ------------------------------------------------------------------------------------------------------ report
HOSTILE = "<script>alert('x')</script>"


def test_html_report_is_self_contained_and_escapes_profile_strings(runner, tmp_path):
    profile = _power_profile()
    profile["device"]["name"] = HOSTILE
    profile["warnings"].append(HOSTILE)
    base, _ = _pair()
    r, b = save_result(profile, tmp_path / "r.json"), save_result(base, tmp_path / "b.json")
    out = tmp_path / "report.html"
    result = runner.invoke(cli, ["report", str(r), str(b), "-o", str(out)])
    assert result.exit_code == 0, result.output
    text = out.read_text()
    assert HOSTILE not in text and "&lt;script&gt;" in text
    assert text.count("data:image/png;base64,") == 4  # sweep, efficiency, trace, comparison
    assert "Comparison with" in text and "Verdicts" in text and "src='http" not in text


def test_markdown_report_puts_plots_beside_it_and_says_what_is_missing(runner, tmp_path):
    stored = save_result(make_profile(), tmp_path / "r.json")  # no power data
    out = tmp_path / "report.md"
    result = runner.invoke(cli, ["report", str(stored), "-o", str(out)])
    assert result.exit_code == 0, result.output
    text = out.read_text()
    assert "![GEMM throughput against size](report_files/sweep.png)" in text
    assert (tmp_path / "report_files/sweep.png").read_bytes().startswith(b"\x89PNG")
    assert "Efficiency curves: not drawn, no valid energy window" in text
    assert "no energy windows: power was not measured" in text


def test_a_report_of_a_run_whose_cases_all_errored_still_renders(runner, tmp_path):
    profile = make_profile()
    for m in profile["measurements"]:
        m.update(status="error", error="RuntimeError: boom", tflops=None, tflops_ci=None, stats=None, samples_s=[])
    out = tmp_path / "r.html"
    result = runner.invoke(cli, ["report", str(save_result(profile, tmp_path / "r.json")), "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert "RuntimeError: boom" in out.read_text() and "no correct GEMM measurement" in out.read_text()


def test_markdown_outputs_show_missing_values_as_a_dash_never_nan(runner, tmp_path):
    base, other = _pair()
    b, o = save_result(base, tmp_path / "b.json"), save_result(other, tmp_path / "o.json")
    compared = runner.invoke(cli, ["compare", str(b), str(o), "--format", "markdown"])
    report = runner.invoke(cli, ["report", str(o), str(b), "-o", str(tmp_path / "r.md")])
    assert compared.exit_code == 0 and report.exit_code == 0
    for text in (compared.output, (tmp_path / "r.md").read_text()):
        assert "nan" not in text.lower().replace("nanos", "") and "—" in text


# ------------------------------------------------------------------------------------------------ datasheet
def _with_datasheet(name: str = "NVIDIA H100 80GB HBM3") -> dict:
    from npucheck.datasheets import match_datasheet

    # raw samples that give ~791.6 TFLOPS (the summary's peak is re-derived from them): 80% of 989.5
    profile = make_profile(measurements=[_case("gemm/fp16/m256_n256_k256_NN", GEMM_FLOPS / 791.6e12, 1)])
    profile["device"]["name"] = name
    profile["device"]["datasheet"] = match_datasheet(name)[0].to_dict()
    return profile


def test_show_gives_percent_of_datasheet_and_datasheet_tflops_per_watt_when_there_is_one(runner, tmp_path):
    stored = save_result(_with_datasheet(), tmp_path / "r.json")
    table = runner.invoke(cli, ["show", str(stored)], env={"COLUMNS": "250"})
    assert table.exit_code == 0, table.output
    assert "% of datasheet" in table.output and "datasheet TFLOPS/W" in table.output
    assert "80.0%" in table.output or "79.9%" in table.output or "80.1%" in table.output
    assert "1.414" in table.output  # 989.5 TFLOPS / 700 W
    assert "datasheet: NVIDIA H100 SXM5 80GB" in table.output
    markdown = runner.invoke(cli, ["show", str(stored), "--format", "markdown"])
    assert "| % of datasheet | datasheet TFLOPS/W |" in markdown.output


def test_show_without_a_datasheet_has_no_datasheet_columns(runner, tmp_path):
    profile = make_profile()
    del profile["device"]["datasheet"]  # a file from before datasheets
    stored = save_result(profile, tmp_path / "old.json")
    result = runner.invoke(cli, ["show", str(stored)], env={"COLUMNS": "250"})
    assert result.exit_code == 0, result.output
    assert "% of datasheet" not in result.output and "datasheet:" not in result.output
    unmatched = save_result(make_profile(), tmp_path / "none.json")  # datasheet: null
    result = runner.invoke(cli, ["show", str(unmatched)], env={"COLUMNS": "250"})
    assert "% of datasheet" not in result.output and "datasheet: none" in result.output


def test_a_datasheet_missing_keys_still_renders():
    from npucheck.read.text import datasheet_line, summary_rows, to_markdown

    profile = _with_datasheet()
    profile["device"]["datasheet"] = {"part": "Homemade"}
    headers, rows = summary_rows(profile)
    assert headers[-2:] == ["% of datasheet", "datasheet TFLOPS/W"] and rows[0][-2:] == ["—", "—"]
    assert "Homemade" in datasheet_line(profile)
    to_markdown(profile)


def test_reports_show_the_datasheet_comparison_and_its_sources(runner, tmp_path):
    stored = save_result(_with_datasheet(), tmp_path / "r.json")
    for name in ("r.html", "r.md"):
        result = runner.invoke(cli, ["report", str(stored), "-o", str(tmp_path / name)])
        assert result.exit_code == 0, result.output
        text = (tmp_path / name).read_text()
        assert "% of datasheet" in text and "Datasheet figures" in text and "FP16 Tensor Core" in text
    old = make_profile()
    del old["device"]["datasheet"]
    result = runner.invoke(cli, ["report", str(save_result(old, tmp_path / "o.json")), "-o", str(tmp_path / "o.md")])
    assert result.exit_code == 0 and "Datasheet figures" not in (tmp_path / "o.md").read_text()


def test_the_summary_shows_the_confirmation_and_the_sustained_figure_beside_the_burst_peak():
    from npucheck.read.text import summary_rows
    from tests.conftest import make_profile as full_profile

    profile = full_profile()
    profile["summary"]["peak"]["fp16"].update(
        confirmed_tflops=0.31, confirmed_ci=[0.30, 0.32], confirmation_status="ok", sustained_tflops=0.29
    )
    headers, rows = summary_rows(profile)
    assert "confirmed" in headers and "sustained" in headers
    row = dict(zip(headers, rows[0]))
    assert row["confirmed"] == "0.3100 [0.3000–0.3200]" and row["sustained"] == "0.2900"


def test_an_old_summary_without_confirmation_has_no_confirmation_column():
    from npucheck.read.text import summary_rows
    from tests.conftest import make_profile as full_profile

    headers, _ = summary_rows(full_profile())
    assert "confirmed" not in headers and "sustained" not in headers
