"""Target profiles: the built-ins load, and every kind of bad file is refused with one clear line."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from npucheck.errors import TargetProfileError
from npucheck.targets import BUILTIN_DIR, METRICS, Criterion, builtin_names, load_target, load_targets, parse_target

BUILTINS = ["miit-2020-cloud", "miit-2020-terminal", "miit-2020-terminal-strict"]

VALID = """\
format = 1
name = "my-target"
title = "A user target"
source = "made up for a test"

[[criteria]]
metric = "peak_tflops"
dtype = "fp16"
op = ">="
threshold = 128.0

[[criteria]]
metric = "supported_families"
families = ["cnn", "rnn", "lstm"]
op = ">="
threshold = 1
note = "one or several"
"""

PEAK = 'metric = "peak_tflops"\ndtype = "fp16"\nop = ">="\n'
FAMILIES = 'metric = "supported_families"\nop = ">="\n'


def target_text(bodies: list[str] | None = None, **top: str) -> str:
    """TOML for a target: one [[criteria]] per body; ``top`` sets top-level keys to raw TOML, '' drops one."""
    lines = {"format": "1", "name": '"t"', "title": '"T"'} | top
    head = "".join(f"{key} = {value}\n" for key, value in lines.items() if value != "")
    if bodies is None:
        bodies = [PEAK + "threshold = 1.0\n"]
    return head + "".join(f"\n[[criteria]]\n{body}" for body in bodies)


def refused(text: str, origin: str = "t.toml") -> str:
    """The message of the TargetProfileError that parsing ``text`` raises; asserts it is one line."""
    with pytest.raises(TargetProfileError) as info:
        parse_target(text, origin)
    message = str(info.value)
    assert len(message.splitlines()) == 1, message
    assert message.startswith(origin), message
    return message


# ------------------------------------------------------------------------------------------------- built-ins
def test_builtin_names_are_the_three_miit_targets():
    assert builtin_names() == BUILTINS


@pytest.mark.parametrize("name", BUILTINS)
def test_each_builtin_loads_with_its_name_source_and_criteria(name):
    target = load_target(name)
    assert target.name == name
    assert "MIIT" in target.source and "Three-Year Action Plan" in target.source
    assert target.criteria
    assert Path(target.path).name == f"{name}.toml"


def test_builtin_dir_is_the_installed_profiles_package():
    assert (BUILTIN_DIR / "miit-2020-cloud.toml").is_file()


def test_cloud_target_is_128_fp16_tflops_and_more_than_1_tflops_per_watt():
    criteria = load_target("miit-2020-cloud").criteria
    assert [(c.label, c.op, c.threshold, c.unit) for c in criteria] == [
        ("peak_tflops.fp16", ">=", 128.0, "TFLOPS"),
        ("tflops_per_watt.fp16", ">", 1.0, "TFLOPS/W"),
    ]


def test_terminal_target_needs_one_of_cnn_rnn_lstm_and_strict_needs_all_three():
    terminal = load_target("miit-2020-terminal").criteria
    strict = load_target("miit-2020-terminal-strict").criteria
    assert [(c.label, c.op, c.threshold) for c in terminal] == [
        ("tflops_per_watt.fp16", ">", 1.0),
        ("supported_families(cnn,rnn,lstm)", ">=", 1),
    ]
    assert [(c.label, c.threshold) for c in strict][1] == ("supported_families(cnn,rnn,lstm)", 3)
    assert terminal[1].unit == "families"


def test_load_targets_without_names_gives_every_builtin_sorted():
    assert [t.name for t in load_targets(None)] == BUILTINS
    assert [t.name for t in load_targets([])] == BUILTINS


def test_load_targets_keeps_the_order_given():
    names = ["miit-2020-terminal", "miit-2020-cloud"]
    assert [t.name for t in load_targets(names)] == names


def test_the_same_target_twice_is_refused():
    with pytest.raises(TargetProfileError, match="two targets are named 'miit-2020-cloud'"):
        load_targets(["miit-2020-cloud", "miit-2020-cloud"])


def test_unknown_builtin_name_lists_the_known_ones():
    with pytest.raises(TargetProfileError) as info:
        load_target("miit-2030")
    message = str(info.value)
    assert "unknown built-in target 'miit-2030'" in message
    assert all(name in message for name in BUILTINS)


# ------------------------------------------------------------------------------------------------ user files
def test_a_user_file_loads_by_path(tmp_path):
    path = tmp_path / "my-target.toml"
    path.write_text(VALID, encoding="utf-8")
    target = load_target(str(path))
    assert target.name == "my-target"
    assert target.path == str(path)
    assert target.criteria[1] == Criterion(
        "supported_families", ">=", 1, None, ("cnn", "rnn", "lstm"), "one or several"
    )


def test_a_name_ending_in_toml_is_a_path_not_a_builtin(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "local.toml").write_text(VALID, encoding="utf-8")
    assert load_target("local.toml").name == "my-target"


def test_source_and_description_are_optional():
    target = parse_target(target_text(), "t.toml")
    assert (target.source, target.description) == ("", "")


def test_missing_file_is_refused(tmp_path):
    path = tmp_path / "absent.toml"
    with pytest.raises(TargetProfileError, match="no such file"):
        load_target(str(path))


def test_directory_is_refused(tmp_path):
    with pytest.raises(TargetProfileError, match="is a directory"):
        load_target(str(tmp_path) + os.sep)


def test_file_over_256_kib_is_refused(tmp_path):
    path = tmp_path / "huge.toml"
    path.write_text(target_text() + "#" * (256 * 1024), encoding="utf-8")
    with pytest.raises(TargetProfileError, match="larger than 256 KiB"):
        load_target(str(path))


def test_text_over_256_kib_is_refused():
    assert "larger than 256 KiB" in refused(target_text() + "#" * (256 * 1024))


def test_file_that_is_not_utf8_is_refused(tmp_path):
    path = tmp_path / "latin1.toml"
    path.write_bytes(target_text(title='"caf\xe9"').encode("latin-1"))
    with pytest.raises(TargetProfileError, match="not UTF-8"):
        load_target(str(path))


def test_file_error_names_the_file_on_one_line(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text("format = \n", encoding="utf-8")
    with pytest.raises(TargetProfileError) as info:
        load_target(str(path))
    assert str(info.value).startswith(str(path))
    assert len(str(info.value).splitlines()) == 1


def test_error_chains_the_underlying_exception(tmp_path):
    with pytest.raises(TargetProfileError) as info:
        load_target(str(tmp_path / "absent.toml"))
    assert isinstance(info.value.__cause__, FileNotFoundError)


# ------------------------------------------------------------------------------------------------ validation
def test_toml_syntax_error_includes_tomllib_message():
    message = refused("format = 1\nname = \n")
    assert "not valid TOML" in message and "line 2" in message


def test_deeply_nested_toml_is_refused_not_a_crash():
    assert "nested too deeply" in refused("x = " + "[" * 100_000)


def test_origin_with_a_line_break_still_gives_one_line():
    with pytest.raises(TargetProfileError) as info:
        parse_target("format = ", "evil\nname.toml")
    assert len(str(info.value).splitlines()) == 1


def test_unknown_top_level_key_is_refused():
    assert "unknown keys 'colour'" in refused(target_text(colour='"red"'))


def test_unknown_criterion_key_is_refused():
    message = refused(target_text([PEAK + "threshold = 1.0\nunit = 'TFLOPS'\n"]))
    assert "criteria[0]" in message and "unknown keys 'unit'" in message


@pytest.mark.parametrize(
    "key,expected",
    [
        ("format", "expected format = 1"),
        ("name", 'expected name = "my-target" (lower-case letters, digits'),
        ("title", 'expected title = "a one-line title"'),
    ],
)
def test_missing_top_level_key_is_refused_with_the_expected_form(key, expected):
    assert f"missing key '{key}': {expected}" in refused(target_text(**{key: ""}))


def test_missing_criteria_key_is_refused():
    assert "missing key 'criteria': expected at least one [[criteria]] table" in refused(target_text([]))


@pytest.mark.parametrize(
    "key,expected",
    [
        ("metric", 'expected metric = one of "peak_tflops", "tflops_per_watt", "supported_families"'),
        ("op", 'expected op = one of ">=", ">", "<=", "<"'),
        ("threshold", "expected threshold = a number >= 0 in the metric's unit"),
    ],
)
def test_missing_criterion_key_is_refused_with_the_expected_form(key, expected):
    body = {"metric": '"peak_tflops"', "op": '">="', "threshold": "1.0", "dtype": '"fp16"'}
    del body[key]
    text = target_text(["".join(f"{k} = {v}\n" for k, v in body.items())])
    assert f"criteria[0]: missing key '{key}': {expected}" in refused(text)


def test_every_missing_key_is_named_on_one_line():
    message = refused('[[criteria]]\nmetric = "peak_tflops"\ndtype = "fp16"\nop = ">="\nthreshold = 1.0\n')
    for key in ("format", "name", "title"):
        assert f"missing key '{key}': expected" in message


def test_zero_criteria_is_refused():
    assert "no criteria" in refused(target_text([], criteria="[]"))


def test_criteria_that_is_not_an_array_is_refused():
    assert "'criteria' must be an array of tables" in refused(target_text([], criteria="5"))


def test_criterion_that_is_not_a_table_is_refused():
    assert "criteria[0]: must be a table" in refused(target_text([], criteria="[1]"))


@pytest.mark.parametrize("value", ["2", "0"])
def test_format_other_than_1_is_refused(value):
    message = refused(target_text(format=value))
    assert f"format {value} is not supported" in message and "expected format = 1" in message


def test_format_as_a_string_is_refused():
    assert "'format' must be an integer, not a string: expected format = 1" in refused(target_text(format='"1"'))


@pytest.mark.parametrize("name", ['"My Target"', '"-lead"', '""', '"a/b"', '"ümlaut"'])
def test_name_outside_the_pattern_is_refused(name):
    assert "must match [a-z0-9][a-z0-9._-]*" in refused(target_text(name=name))


def test_name_that_is_not_a_string_is_refused():
    assert "'name' must be a string, not an integer" in refused(target_text(name="7"))


def test_empty_title_is_refused():
    assert "'title' is empty" in refused(target_text(title='"  "'))


def test_note_that_is_not_a_string_is_refused():
    assert "'note' must be a string" in refused(target_text([PEAK + "threshold = 1.0\nnote = 3\n"]))


def test_boolean_threshold_is_not_a_number():
    message = refused(target_text([PEAK + "threshold = true\n"]))
    assert "'threshold' must be a number, not a boolean" in message


def test_string_threshold_is_refused():
    message = refused(target_text([PEAK + 'threshold = "128"\n']))
    assert "'threshold' must be a number, not a string" in message


@pytest.mark.parametrize("value", ["nan", "inf", "-inf"])
def test_non_finite_threshold_is_refused(value):
    assert "'threshold' must be finite" in refused(target_text([PEAK + f"threshold = {value}\n"]))


def test_negative_threshold_is_refused():
    assert "'threshold' must not be negative" in refused(target_text([PEAK + "threshold = -1.0\n"]))


def test_unknown_metric_is_refused_with_the_known_ones():
    message = refused(target_text(['metric = "gflops"\ndtype = "fp16"\nop = ">="\nthreshold = 1.0\n']))
    assert f"unknown metric 'gflops' (known: {', '.join(METRICS)})" in message


def test_unknown_op_is_refused_with_the_known_ones():
    message = refused(target_text(['metric = "peak_tflops"\ndtype = "fp16"\nop = "=="\nthreshold = 1.0\n']))
    assert "unknown op '==' (known: >=, >, <=, <)" in message


def test_unknown_dtype_is_refused():
    message = refused(target_text(['metric = "peak_tflops"\ndtype = "int4"\nop = ">="\nthreshold = 1.0\n']))
    assert "unknown dtype 'int4' (known: fp16, bf16, fp32, int8, fp8_e4m3, fp8_e5m2)" in message


@pytest.mark.parametrize("metric", ["peak_tflops", "tflops_per_watt"])
def test_dtype_is_required_for_throughput_metrics(metric):
    message = refused(target_text([f'metric = "{metric}"\nop = ">="\nthreshold = 1.0\n']))
    assert f"{metric} needs 'dtype'" in message


def test_families_are_refused_on_throughput_metrics():
    message = refused(target_text([PEAK + 'threshold = 1.0\nfamilies = ["cnn"]\n']))
    assert "'families' applies only to supported_families" in message


def test_dtype_is_forbidden_for_supported_families():
    message = refused(target_text([FAMILIES + 'families = ["cnn"]\nthreshold = 1\ndtype = "fp16"\n']))
    assert "'dtype' does not apply to supported_families" in message


def test_families_are_required_for_supported_families():
    message = refused(target_text([FAMILIES + "threshold = 1\n"]))
    assert "supported_families needs 'families'" in message and "(known: cnn, rnn, lstm, gru, transformer)" in message


def test_empty_families_are_refused():
    assert "'families' is empty" in refused(target_text([FAMILIES + "families = []\nthreshold = 0\n"]))


def test_unknown_family_is_refused():
    message = refused(target_text([FAMILIES + 'families = ["cnn", "mlp"]\nthreshold = 1\n']))
    assert "unknown families 'mlp' (known: cnn, rnn, lstm, gru, transformer)" in message


def test_duplicate_family_is_refused():
    message = refused(target_text([FAMILIES + 'families = ["cnn", "rnn", "cnn"]\nthreshold = 1\n']))
    assert "'families' lists cnn more than once" in message


def test_families_that_are_not_strings_are_refused():
    message = refused(target_text([FAMILIES + "families = [1, 2]\nthreshold = 1\n"]))
    assert "'families' must be an array of strings" in message


@pytest.mark.parametrize("threshold", ["4", "1.5", "1.0"])
def test_supported_families_threshold_must_be_an_integer_up_to_the_family_count(threshold):
    body = FAMILIES + f'families = ["cnn", "rnn", "lstm"]\nthreshold = {threshold}\n'
    message = refused(target_text([body]))
    assert "must be an integer from 0 to 3" in message


@given(st.text(max_size=200))
def test_arbitrary_text_either_parses_or_raises_one_line_target_error(text):
    try:
        parse_target(text, "fuzz.toml")
    except TargetProfileError as e:
        assert len(str(e).splitlines()) == 1
        assert str(e).startswith("fuzz.toml: ")


@given(
    st.sampled_from(["peak_tflops", "tflops_per_watt"]),
    st.sampled_from(["fp16", "bf16", "fp32"]),
    st.sampled_from([">=", ">", "<=", "<"]),
    st.floats(min_value=0, max_value=1e6),
)
def test_any_valid_throughput_criterion_round_trips(metric, dtype, op, threshold):
    text = target_text([f'metric = "{metric}"\ndtype = "{dtype}"\nop = "{op}"\nthreshold = {threshold!r}\n'])
    criterion = parse_target(text, "t.toml").criteria[0]
    assert criterion == Criterion(metric, op, threshold, dtype, None, None)
    assert criterion.label == f"{metric}.{dtype}"


@pytest.mark.parametrize(
    "key,value,known",
    [
        ("metric", "7", f"known: {', '.join(METRICS)}"),
        ("op", "1", "known: >=, >, <=, <"),
        ("dtype", "16", "known: fp16, bf16, fp32, int8, fp8_e4m3, fp8_e5m2"),
    ],
)
def test_choice_that_is_not_a_string_lists_the_known_values(key, value, known):
    body = {"metric": '"peak_tflops"', "op": '">="', "threshold": "1.0", "dtype": '"fp16"'} | {key: value}
    message = refused(target_text(["".join(f"{k} = {v}\n" for k, v in body.items())]))
    assert f"'{key}' must be a string, not an integer ({known})" in message


def test_missing_dtype_lists_the_known_dtypes():
    message = refused(target_text(['metric = "tflops_per_watt"\nop = ">"\nthreshold = 1.0\n']))
    assert "tflops_per_watt needs 'dtype' (one of fp16, bf16, fp32, int8, fp8_e4m3, fp8_e5m2)" in message


def test_empty_families_list_the_known_families():
    message = refused(target_text([FAMILIES + "families = []\nthreshold = 0\n"]))
    assert "list at least one of cnn, rnn, lstm, gru" in message
