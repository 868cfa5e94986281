"""compare and plot read a ResultProfile: a model object and the loaded dict it came from give the same frames,
summaries and figures; a dict that does not fit the model is one clear error."""

from __future__ import annotations

import io
from pathlib import Path

import matplotlib
import pandas as pd
import pytest
from conftest import make_profile, verdict_giving
from test_compare_plot_report import _case, _energy, _pair, _power_profile

from npucheck.errors import ResultFileError
from npucheck.model import ResultProfile, as_profile
from npucheck.read import compare as comparing
from npucheck.read import plot as plotting


def _svg(fig) -> bytes:
    """The figure as SVG text without a date or random ids, so two renderings can be compared byte for byte."""
    buffer = io.BytesIO()
    with matplotlib.rc_context({"svg.hashsalt": "npucheck-test"}):
        fig.savefig(buffer, format="svg", metadata={"Date": None})
    return buffer.getvalue()


def test_compare_frames_and_summary_are_the_same_for_a_model_object_and_its_dict():
    base, other = _pair()
    other["measurements"][0]["energy"] = _energy(1.0, 40.0)
    base["measurements"][0]["energy"] = _energy(1.0, 50.0)
    other["verdicts"] = [verdict_giving("PASS")]  # judged again from its criterion: PASS
    from_dicts = comparing.compare_frames(base, [("o", other)])
    from_models = comparing.compare_frames(as_profile(base), [("o", as_profile(other))])
    pd.testing.assert_frame_equal(from_dicts, from_models)
    assert from_dicts.set_index("case").loc["gemm/fp16/slow", "tflops_per_watt_ratio"] == pytest.approx(1.25)
    mixed = comparing.summary(from_models, base, [("o", as_profile(other))])
    assert mixed == comparing.summary(from_dicts, as_profile(base), [("o", other)])
    assert mixed["verdict_changes"]["o"] == [{"target": "miit-2020-cloud", "base": "FAIL", "other": "PASS"}]


def test_cases_frame_keeps_raw_samples_as_lists_and_reads_only_valid_windows():
    invalid = _energy(1.0, 40.0) | {"valid": False, "reason": "window too short"}
    profile = as_profile(make_profile(measurements=[_case("gemm/fp16/a", 1e-4, 1, energy=invalid)]))
    frame = comparing.cases_frame(profile)
    pd.testing.assert_frame_equal(frame, comparing.cases_frame(profile.to_dict()))
    row = frame.loc["gemm/fp16/a"]
    assert isinstance(row["samples_s"], list) and len(row["samples_s"]) == 30
    assert row["tflops_per_watt"] is None and row["power_source"] is None and row["family"] == "gemm"


def test_results_frame_reads_model_objects_and_dicts_alike():
    profile = make_profile()
    measured = profile["summary"]["peak_tflops"]["fp16"]
    profile["summary"]["peak_tflops"] = {"fp16": 0.33}  # an edit: both read the peak the raw samples give
    entries = [(Path("a.json"), profile), (Path("b.json"), as_profile(profile))]
    frame = comparing.results_frame(entries)
    assert frame.iloc[0].to_dict() == frame.iloc[1].to_dict() | {"file": "a.json"}
    assert frame.iloc[0]["peak_fp16_tflops"] == measured and pd.isna(frame.iloc[0]["fp16_tflops_per_watt"])


@pytest.mark.parametrize("kind", ["sweep", "efficiency", "trace", "compare"])
def test_every_plot_kind_draws_the_same_figure_from_a_model_object_and_its_dict(kind):
    profiles = [_power_profile(), make_profile()] if kind == "compare" else [_power_profile()]
    thresholds = [("miit-2020-cloud", 1.0)]
    from_dicts = plotting.build(kind, profiles, ["a", "b"], thresholds)
    models = [as_profile(p) for p in profiles]
    assert all(isinstance(p, ResultProfile) for p in models)
    assert _svg(plotting.build(kind, models, ["a", "b"], thresholds)) == _svg(from_dicts)


def test_the_trace_shows_clock_and_temperature_from_the_models_context_trace():
    fig = plotting.trace([as_profile(_power_profile())])
    assert len(fig.get_axes()) == 2 and "temperature" in fig.get_axes()[1].get_ylabel()


def test_a_dict_the_model_refuses_is_one_result_file_error():
    broken = make_profile()
    broken["measurements"][0]["status"] = "finished"  # not a status
    with pytest.raises(ResultFileError, match="not a valid result profile"):
        comparing.cases_frame(broken)
    with pytest.raises(ResultFileError, match="not a valid result profile"):
        plotting.build("sweep", [broken], ["a"])
