"""text and report read ResultProfiles: a model object and the loaded dict it came from render the same."""

from __future__ import annotations

import json

from conftest import make_profile

from npucheck import model
from npucheck.read import report, text
from npucheck.store import load_result, save_result


def _loaded(tmp_path, profile=None):
    return load_result(save_result(profile or make_profile(), tmp_path / "r.json"))


def test_a_profile_object_and_its_dict_render_the_same(tmp_path):
    loaded = _loaded(tmp_path)
    profile = model.as_profile(loaded)
    for name in (
        "summary_rows",
        "datasheet_source_lines",
        "datasheet_line",
        "power_line",
        "header_lines",
        "to_markdown",
    ):
        assert getattr(text, name)(profile) == getattr(text, name)(loaded), name
    assert list(text.measurement_rows(profile)) == list(text.measurement_rows(loaded))
    assert list(text.energy_rows(profile)) == list(text.energy_rows(loaded))
    assert text.profile_label("", profile) == text.profile_label("", loaded)
    assert text.bottom_lines(profile.verdicts) == text.bottom_lines(loaded["verdicts"])
    assert json.loads(text.to_json(profile)) == loaded


def test_a_report_of_profile_objects_is_the_report_of_their_dicts(tmp_path):
    loaded = _loaded(tmp_path)
    base = load_result(save_result(make_profile(created_utc="2026-11-24T10:00:00Z"), tmp_path / "b.json"))
    for fmt in ("html", "markdown"):
        from_dicts = report.build(loaded, base, fmt, [], "f")
        from_objects = report.build(model.as_profile(loaded), model.as_profile(base), fmt, [], "f")
        assert from_objects == from_dicts


def test_an_absent_key_and_a_null_one_still_read_as_before(tmp_path):
    profile = make_profile()
    profile["device"].pop("datasheet", None)
    profile["device"].pop("datasheet_reason", None)
    assert text.datasheet_line(_loaded(tmp_path, profile)) is None  # a file from before datasheets
    profile["device"]["datasheet"] = None  # an unmatched device
    assert text.datasheet_line(profile).startswith("datasheet: none")
    device = model.as_profile(profile).device
    assert text.written(device, "datasheet") and not text.written(device, "datasheet_reason")
    assert text.value_or(device, "datasheet_reason", "absent") == "absent"
