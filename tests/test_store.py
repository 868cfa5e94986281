"""Result files: schema, validation messages, loading hostile files, migrations, atomic never-overwriting saves."""

from __future__ import annotations

import copy
import errno
import json
import os
import subprocess
import sys
import tempfile

import pytest
from conftest import make_measurement, make_profile
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from npucheck import store
from npucheck.errors import ResultFileError, UsageError
from npucheck.evidence import seal


def write(path, content):
    path.write_text(content, encoding="utf-8")
    return path


def validation_message(doc):
    with pytest.raises(ResultFileError) as info:
        store.validate(doc, "r.json")
    return str(info.value)


# ------------------------------------------------------------------------------------------------------- schema
def test_schema_is_valid_draft_2020_12():
    from jsonschema import Draft202012Validator

    Draft202012Validator.check_schema(store.load_schema())


def test_every_schema_property_has_a_description():
    def undescribed(schema, where):
        for name, sub in schema.get("properties", {}).items():
            if "description" not in sub:
                yield f"{where}.{name}"
            yield from undescribed(sub, f"{where}.{name}")
        for keyword in ("items", "additionalProperties"):
            if isinstance(schema.get(keyword), dict):
                yield from undescribed(schema[keyword], f"{where}[{keyword}]")
        for index, sub in enumerate(schema.get("anyOf", [])):
            yield from undescribed(sub, f"{where}[anyOf {index}]")
        for name, sub in schema.get("$defs", {}).items():
            yield from undescribed(sub, f"#/$defs/{name}")

    assert list(undescribed(store.load_schema(), "$")) == []


def test_schema_accepts_the_minimal_profile(minimal_profile):
    store.validate(minimal_profile, "r.json")


def test_schema_accepts_unknown_keys_for_forward_compatibility(minimal_profile):
    minimal_profile["future_key"] = {"anything": [1, 2]}
    minimal_profile["measurements"][0]["energy_j"] = 1.5
    store.validate(minimal_profile, "r.json")


def test_missing_key_is_reported_with_its_json_path(minimal_profile):
    del minimal_profile["measurements"][0]["samples_s"]
    message = validation_message(minimal_profile)
    assert message == "r.json: $.measurements[0]: 'samples_s' is a required property"


def test_missing_top_level_key_is_reported_at_the_root(minimal_profile):
    del minimal_profile["verdicts"]
    assert validation_message(minimal_profile) == "r.json: $: 'verdicts' is a required property"


def test_wrong_type_is_reported_with_its_json_path(minimal_profile):
    minimal_profile["measurements"][0]["flops"] = "a lot"
    message = validation_message(minimal_profile)
    assert message.startswith("r.json: $.measurements[0].flops: ")
    assert "integer" in message


def test_boolean_is_not_a_number(minimal_profile):
    minimal_profile["measurements"][0]["tflops"] = True
    assert "$.measurements[0].tflops" in validation_message(minimal_profile)


def test_bad_measurement_status_is_reported_with_its_json_path(minimal_profile):
    minimal_profile["measurements"][1]["status"] = "great"
    message = validation_message(minimal_profile)
    assert message.startswith("r.json: $.measurements[1].status: 'great' is not one of")


def test_bad_verdict_status_is_reported_with_its_json_path(minimal_profile):
    minimal_profile["verdicts"][0]["criteria"][1]["status"] = "MAYBE"
    assert "$.verdicts[0].criteria[1].status" in validation_message(minimal_profile)


def test_non_positive_sample_is_rejected(minimal_profile):
    minimal_profile["measurements"][0]["samples_s"][3] = 0.0
    assert "$.measurements[0].samples_s[3]" in validation_message(minimal_profile)


def test_validation_message_is_one_short_line(minimal_profile):
    minimal_profile["measurements"] = {"x": ["y" * 1000] * 50}
    message = validation_message(minimal_profile)
    assert "\n" not in message
    assert len(message) < 300


# ------------------------------------------------------------------------------------------------------- load
def test_save_then_load_round_trips(tmp_path, minimal_profile):
    path = store.save_result(minimal_profile, tmp_path / "r.json")
    assert store.load_result(path) == seal(minimal_profile)  # what was given, sealed with its digest


def test_missing_file_says_it_does_not_exist(tmp_path):
    with pytest.raises(ResultFileError, match="does not exist"):
        store.load_result(tmp_path / "nope.json")


def test_directory_is_refused(tmp_path):
    with pytest.raises(ResultFileError, match="is a directory"):
        store.load_result(tmp_path)


def test_unreadable_file_says_permission_denied(tmp_path, monkeypatch):
    path = write(tmp_path / "r.json", "{}")

    def denied(*args, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(store, "open", denied, raising=False)  # chmod does not stop root, who may run the tests
    with pytest.raises(ResultFileError, match="permission denied"):
        store.load_result(path)


def test_oversized_file_is_refused_before_reading(tmp_path, monkeypatch):
    monkeypatch.setattr(store, "MAX_RESULT_BYTES", 10)
    path = write(tmp_path / "r.json", '{"schema_version": 1}')
    with pytest.raises(ResultFileError, match="larger than"):
        store.load_result(path)


def test_non_utf8_file_is_refused(tmp_path):
    path = tmp_path / "r.json"
    path.write_bytes(b'{"name": "\xff"}')
    with pytest.raises(ResultFileError, match="not UTF-8"):
        store.load_result(path)


def test_truncated_file_says_truncated(tmp_path, minimal_profile):
    full = json.dumps(minimal_profile, indent=1)
    for cut in range(1, len(full) - 1, 7):  # every kind of cut: mid-key, mid-string, mid-number, mid-literal
        path = write(tmp_path / "r.json", full[:cut])
        with pytest.raises(ResultFileError, match="truncated JSON") as info:
            store.load_result(path)
        assert "line" in str(info.value) and "column" in str(info.value)


def test_non_json_gives_line_and_column(tmp_path):
    path = write(tmp_path / "r.json", '{\n "schema_version": 1,\n oops\n}')
    with pytest.raises(ResultFileError, match=r"invalid JSON at line 3, column 2"):
        store.load_result(path)


def test_empty_file_says_empty(tmp_path):
    with pytest.raises(ResultFileError, match="is empty"):
        store.load_result(write(tmp_path / "r.json", "  \n"))


def test_nan_literal_in_a_file_is_invalid_json(tmp_path, minimal_profile):
    text = json.dumps(minimal_profile).replace('"tflops_per_watt": {"fp16": null}', '"tflops_per_watt": {"fp16": NaN}')
    with pytest.raises(ResultFileError, match="NaN is not a JSON number"):
        store.load_result(write(tmp_path / "r.json", text))


def test_deeply_nested_file_is_one_clear_error(tmp_path):
    with pytest.raises(ResultFileError, match="invalid JSON"):
        store.load_result(write(tmp_path / "r.json", "[" * 100_000 + "]" * 100_000))


@pytest.mark.parametrize("content,found", [("[1, 2]", "an array"), ('"text"', "a string"), ("3", "an integer")])
def test_top_level_must_be_an_object(tmp_path, content, found):
    with pytest.raises(ResultFileError, match=f"not a JSON object at the top level \\(found {found}\\)"):
        store.load_result(write(tmp_path / "r.json", content))


def test_missing_schema_version_is_refused(tmp_path, minimal_profile):
    del minimal_profile["schema_version"]
    with pytest.raises(ResultFileError, match="no schema_version"):
        store.load_result(write(tmp_path / "r.json", json.dumps(minimal_profile)))


@pytest.mark.parametrize("version,kind", [("1", "a string"), (True, "a boolean"), (1.5, "a number")])
def test_non_integer_schema_version_is_refused(tmp_path, minimal_profile, version, kind):
    minimal_profile["schema_version"] = version
    with pytest.raises(ResultFileError, match=f"schema_version must be an integer, not {kind}"):
        store.load_result(write(tmp_path / "r.json", json.dumps(minimal_profile)))


def test_newer_schema_is_refused_with_the_upgrade_message(tmp_path, minimal_profile):
    minimal_profile["schema_version"] = 3
    path = write(tmp_path / "r.json", json.dumps(minimal_profile))
    with pytest.raises(ResultFileError) as info:
        store.load_result(path)
    assert str(info.value) == f"{path}: written by a newer npucheck (schema 3 > 2); upgrade npucheck"


def test_a_version_1_file_is_upgraded_with_no_power_and_no_energy(tmp_path):
    from conftest import make_v1_profile

    loaded = store.load_result(write(tmp_path / "r.json", json.dumps(make_v1_profile())))
    assert loaded["schema_version"] == 2
    assert loaded["power"]["source"] is None and "schema 1" in loaded["power"]["notes"][0]
    assert all(m["energy"] is None for m in loaded["measurements"])


def test_unknown_older_schema_is_refused(tmp_path, minimal_profile):
    minimal_profile["schema_version"] = 0
    with pytest.raises(ResultFileError, match="schema_version 0 is not a format npucheck knows"):
        store.load_result(write(tmp_path / "r.json", json.dumps(minimal_profile)))


def test_invalid_file_error_starts_with_the_path_and_chains_nothing_unexpected(tmp_path, minimal_profile):
    minimal_profile["interrupted"] = "no"
    path = write(tmp_path / "r.json", json.dumps(minimal_profile))
    with pytest.raises(ResultFileError) as info:
        store.load_result(path)
    assert str(info.value).startswith(f"{path}: $.interrupted: ")


def test_decode_errors_are_chained(tmp_path):
    with pytest.raises(ResultFileError) as info:
        store.load_result(write(tmp_path / "r.json", "{oops"))
    assert isinstance(info.value.__cause__, json.JSONDecodeError)


# ------------------------------------------------------------------------------------------------------- migrations
def test_migrations_are_applied_in_order_and_set_the_version():
    calls = []

    def one_to_two(doc):
        calls.append((1, doc["schema_version"]))
        doc["renamed"] = doc.pop("old")
        return doc

    def two_to_three(doc):
        calls.append((2, doc["schema_version"]))
        doc["renamed"] *= 10
        return doc

    migrated = store.migrate(
        {"schema_version": 1, "old": 4}, migrations={2: two_to_three, 1: one_to_two}, target_version=3
    )
    assert calls == [(1, 1), (2, 2)]
    assert migrated == {"schema_version": 3, "renamed": 40}


def test_current_version_needs_no_migration(minimal_profile):
    assert store.migrate(copy.deepcopy(minimal_profile)) == minimal_profile


def test_missing_migration_step_is_an_error():
    with pytest.raises(ValueError, match="no migration from schema 2 to 3"):
        store.migrate({"schema_version": 1}, migrations={1: lambda doc: doc}, target_version=3)


def test_load_migrates_an_older_file_before_validating(tmp_path, monkeypatch, minimal_profile):
    old = copy.deepcopy(minimal_profile)
    old["schema_version"] = 0
    old["results"] = old.pop("measurements")  # a pretend version-0 name for the same data

    def zero_to_one(doc):
        doc["measurements"] = doc.pop("results")
        return doc

    monkeypatch.setattr(store, "MIGRATIONS", {0: zero_to_one, 1: store.MIGRATIONS[1]})
    assert store.load_result(write(tmp_path / "r.json", json.dumps(old))) == minimal_profile


def test_a_failing_migration_is_a_result_file_error(tmp_path, monkeypatch, minimal_profile):
    minimal_profile["schema_version"] = 0
    monkeypatch.setattr(store, "MIGRATIONS", {0: lambda doc: doc["results"], 1: store.MIGRATIONS[1]})
    with pytest.raises(ResultFileError, match="cannot upgrade from schema 0: KeyError"):
        store.load_result(write(tmp_path / "r.json", json.dumps(minimal_profile)))


# ------------------------------------------------------------------------------------------------------- save
def test_default_name_is_time_device_and_suite(tmp_path, minimal_profile):
    path = store.save_result(minimal_profile, results_dir=tmp_path / "results")
    assert path == tmp_path / "results" / "20261123T100000Z-intel-r-xeon-r-platinum-8480-quick.json"


@pytest.mark.parametrize(
    "text,expected",
    [
        ("NVIDIA H100 80GB HBM3", "nvidia-h100-80gb-hbm3"),
        ("  Ascend/910B (x) ", "ascend-910b-x"),
        ("Ünïcode GPU", "unicode-gpu"),
        ("???", "unknown"),
        ("a" * 39 + " b", "a" * 39),
    ],
)
def test_slug_is_short_lowercase_ascii(text, expected):
    assert store.slug(text) == expected


def test_never_overwrites_a_default_name(tmp_path, minimal_profile):
    first = store.save_result(minimal_profile, results_dir=tmp_path)
    before = first.read_bytes()
    second = store.save_result(make_profile(npucheck_version="0.1.1"), results_dir=tmp_path)
    third = store.save_result(minimal_profile, results_dir=tmp_path)
    assert second == first.with_name(first.stem + "-1.json")
    assert third == first.with_name(first.stem + "-2.json")
    assert first.read_bytes() == before
    assert store.load_result(second)["npucheck_version"] == "0.1.1"


def test_save_leaves_no_temporary_files(tmp_path, minimal_profile):
    store.save_result(minimal_profile, results_dir=tmp_path)
    store.save_result(minimal_profile, results_dir=tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "20261123T100000Z-intel-r-xeon-r-platinum-8480-quick-1.json",
        "20261123T100000Z-intel-r-xeon-r-platinum-8480-quick.json",
    ]


def test_invalid_profile_is_not_written(tmp_path, minimal_profile):
    minimal_profile["measurements"][0]["status"] = "great"
    with pytest.raises(ResultFileError, match=r"\$\.measurements\[0\]\.status"):
        store.save_result(minimal_profile, results_dir=tmp_path / "results")
    assert not (tmp_path / "results").exists()


def test_explicit_path_that_exists_is_refused_and_kept(tmp_path, minimal_profile):
    existing = write(tmp_path / "r.json", "keep me")
    with pytest.raises(UsageError, match="already exists"):
        store.save_result(minimal_profile, existing)
    assert existing.read_text() == "keep me"
    assert [p.name for p in tmp_path.iterdir()] == ["r.json"]


def test_output_path_available_refuses_an_existing_path(tmp_path):
    store.output_path_available(tmp_path / "new.json")
    with pytest.raises(UsageError, match="already exists"):
        store.output_path_available(write(tmp_path / "r.json", "x"))


def test_output_path_available_refuses_a_dangling_symlink(tmp_path):
    (tmp_path / "r.json").symlink_to(tmp_path / "missing")
    with pytest.raises(UsageError):
        store.output_path_available(tmp_path / "r.json")


def test_explicit_path_creates_its_directory(tmp_path, minimal_profile):
    path = store.save_result(minimal_profile, str(tmp_path / "a" / "b" / "r.json"))
    assert path == tmp_path / "a" / "b" / "r.json"
    assert store.load_result(path) == seal(minimal_profile)  # what was given, sealed with its digest


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
def test_non_finite_numbers_are_refused_with_their_path(tmp_path, minimal_profile, bad):
    minimal_profile["measurements"][0]["stats"]["iqr_rel"] = bad
    with pytest.raises(ValueError, match=r"\$\.measurements\[0\]\.stats\.iqr_rel"):
        store.save_result(minimal_profile, results_dir=tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_file_is_indented_json_in_document_order(tmp_path, minimal_profile):
    text = store.save_result(minimal_profile, tmp_path / "r.json").read_text(encoding="utf-8")
    assert text.startswith('{\n "schema_version": 2,\n "npucheck_version": "0.1.0",')
    assert text.endswith("}\n")


@pytest.mark.parametrize("code", [errno.EPERM, errno.ENOTSUP])
def test_falls_back_to_exclusive_create_without_hard_links(tmp_path, monkeypatch, minimal_profile, code):
    def no_links(source, target):
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(store.os, "link", no_links)
    first = store.save_result(minimal_profile, results_dir=tmp_path)
    second = store.save_result(minimal_profile, results_dir=tmp_path)
    assert second.name.endswith("-1.json")
    assert store.load_result(first) == store.load_result(second) == seal(minimal_profile)
    assert sorted(tmp_path.iterdir()) == sorted([first, second])


def test_other_link_failures_are_raised_and_leave_nothing(tmp_path, monkeypatch, minimal_profile):
    def full_disk(source, target):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(store.os, "link", full_disk)
    with pytest.raises(OSError, match="No space"):
        store.save_result(minimal_profile, results_dir=tmp_path)
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------------------------------------------------- listing
def test_iter_results_lists_json_files_by_name_with_their_errors(tmp_path, minimal_profile):
    good = store.save_result(minimal_profile, tmp_path / "b.json")
    bad = write(tmp_path / "a.json", "[]")
    write(tmp_path / "notes.txt", "ignored")
    listed = list(store.iter_results(tmp_path))
    assert [path for path, _ in listed] == [bad, good]
    assert isinstance(listed[0][1], ResultFileError)
    assert listed[1][1] == seal(minimal_profile)


def test_iter_results_refuses_a_missing_directory(tmp_path):
    with pytest.raises(ResultFileError, match="no such folder|is a file, not a folder"):
        list(store.iter_results(tmp_path / "nope"))


# ------------------------------------------------------------------------------------------------------- import cost
def test_importing_the_store_loads_neither_torch_nor_jsonschema():
    code = (
        "import sys, npucheck.store\n"
        "assert 'torch' not in sys.modules, 'torch'\nassert 'jsonschema' not in sys.modules, 'jsonschema'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)


# ------------------------------------------------------------------------------------------------------- property
positive_seconds = st.floats(min_value=0.0, exclude_min=True, allow_nan=False, allow_infinity=False)
measurements = st.lists(
    st.builds(
        make_measurement,
        kernel=st.sampled_from(["gemm", "conv2d", "rnn_tanh", "rnn_relu", "lstm", "gru"]),
        dtype=st.sampled_from(["fp16", "bf16", "fp32"]),
        shape=st.dictionaries(
            st.text(min_size=1, max_size=8), st.one_of(st.integers(0, 2**40), st.text(max_size=8)), max_size=6
        ),
        flops=st.integers(0, 2**70),
        samples_s=st.lists(positive_seconds, max_size=50),
        tflops=st.one_of(st.none(), st.floats(min_value=0, max_value=1e6)),
        status=st.sampled_from(["ok", "error", "skipped"]),
        correct=st.one_of(st.none(), st.booleans()),
        error=st.one_of(st.none(), st.text(max_size=40)),
    ),
    max_size=5,
)


@settings(database=None, deadline=None, max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(measurements)
def test_any_valid_measurement_list_round_trips(tmp_path, measurement_list):
    for index, measurement in enumerate(measurement_list):
        measurement["id"] = f"{measurement['kernel']}/{measurement['dtype']}/case{index}"
    profile = make_profile(measurements=measurement_list)
    with tempfile.TemporaryDirectory(dir=tmp_path) as directory:
        path = store.save_result(profile, results_dir=directory)
        assert store.load_result(path) == seal(profile)


def test_a_file_the_schema_allows_but_the_model_refuses_is_one_line_error(tmp_path):
    from npucheck.errors import ResultFileError
    from npucheck.store import load_result
    from tests.conftest import make_profile

    profile = make_profile()
    low, high = profile["measurements"][0]["tflops_ci"]
    profile["measurements"][0]["tflops_ci"] = [high, low]  # a reversed interval: never written by npucheck
    path = tmp_path / "reversed.json"
    path.write_text(__import__("json").dumps(profile))
    with pytest.raises(ResultFileError, match=r"reversed\.json: .*tflops_ci"):
        load_result(path)
