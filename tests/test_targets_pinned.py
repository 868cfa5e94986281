"""targets, pinned: what tests/test_targets.py leaves loose (issue 11, item 8).

Every refusal word for word (the file it names, the value it shows, the type it names), the size limit at its
exact boundary, the bounded read, and every key of a valid file reaching the Target. Each test here was checked
to fail when the code it pins is broken (docs/mutation.md).
"""

from __future__ import annotations

import errno
import io

import pytest

from npucheck import targets
from npucheck.errors import TargetProfileError
from npucheck.targets import MAX_FILE_BYTES, Criterion, load_target, load_targets, parse_target

BUILTINS = "miit-2020-cloud, miit-2020-terminal, miit-2020-terminal-strict"
PEAK = 'metric = "peak_tflops"\ndtype = "fp16"\nop = ">="\nthreshold = 1.0\n'
FAMILIES = 'metric = "supported_families"\nop = ">="\n'
ALLOWED_TOP = "format, name, title, criteria, source, description"
ALLOWED_CRITERION = "metric, op, threshold, dtype, families, note"


def text(*bodies: str, **top: str) -> str:
    """TOML of a target: one [[criteria]] per body (one peak criterion when none); ``top`` sets raw TOML values of
    top-level keys, '' drops one."""
    lines = {"format": "1", "name": '"t"', "title": '"T"'} | top
    head = "".join(f"{key} = {value}\n" for key, value in lines.items() if value != "")
    return head + "".join(f"\n[[criteria]]\n{body}" for body in (bodies or (PEAK,)))


def bare(**top: str) -> str:
    """As :func:`text` without any [[criteria]] table (set ``criteria`` in ``top``)."""
    return "".join(
        f"{key} = {value}\n" for key, value in ({"format": "1", "name": '"t"', "title": '"T"'} | top).items()
    )


def error(source: str, origin: str = "t.toml") -> str:
    with pytest.raises(TargetProfileError) as info:
        parse_target(source, origin)
    return str(info.value)


def load_error(name_or_path: str) -> str:
    with pytest.raises(TargetProfileError) as info:
        load_target(name_or_path)
    return str(info.value)


# -------------------------------------------------------------------------------------------- a valid file
def test_every_key_of_a_valid_file_reaches_the_target():
    source = text(
        PEAK + 'note = "a note on a throughput criterion"\n',
        FAMILIES + 'families = ["gru", "cnn"]\nthreshold = 0\nnote = "none needed"\n',
        title='"The title"',
        source='"a source"',
        description='"a description"',
    )
    target = parse_target(source, "dir/t.toml")
    assert (target.name, target.title, target.source, target.description, target.path) == (
        "t",
        "The title",
        "a source",
        "a description",
        "dir/t.toml",
    )
    assert target.criteria == (
        Criterion("peak_tflops", ">=", 1.0, "fp16", None, "a note on a throughput criterion"),
        Criterion("supported_families", ">=", 0, None, ("gru", "cnn"), "none needed"),
    )


@pytest.mark.parametrize("threshold", [0, 1, 2])
def test_supported_families_threshold_may_be_anything_from_zero_to_the_count(threshold):
    criterion = parse_target(text(FAMILIES + f'families = ["cnn", "rnn"]\nthreshold = {threshold}\n'), "t").criteria[0]
    assert criterion.threshold == threshold and type(criterion.threshold) is int


def test_supported_families_threshold_above_the_count_is_refused_word_for_word():
    assert error(text(FAMILIES + 'families = ["cnn", "rnn"]\nthreshold = 3\n')) == (
        "t.toml: criteria[0]: 'threshold' of supported_families must be an integer from 0 to 2 "
        "(the number of families listed), not 3"
    )


# ------------------------------------------------------------------------------------ the size limit, exactly
def _padded(size: int) -> str:
    body = text()
    return body + "#" * (size - len(body.encode("utf-8")) - 1) + "\n"


def test_text_of_exactly_256_kib_is_accepted_and_one_byte_more_is_not():
    assert len(_padded(MAX_FILE_BYTES).encode("utf-8")) == MAX_FILE_BYTES
    assert parse_target(_padded(MAX_FILE_BYTES), "t.toml").name == "t"
    assert error(_padded(MAX_FILE_BYTES + 1)) == "t.toml: larger than 256 KiB; not a target profile"


def test_a_file_of_exactly_256_kib_loads_and_one_byte_more_is_refused(tmp_path):
    path = tmp_path / "exact.toml"
    path.write_text(_padded(MAX_FILE_BYTES), encoding="utf-8")
    assert load_target(str(path)).name == "t"
    path.write_text(_padded(MAX_FILE_BYTES + 1), encoding="utf-8")
    assert load_error(str(path)) == f"{path}: larger than 256 KiB; not a target profile"


# ---------------------------------------------------------------------------- reading files: the origin named
def test_a_missing_file_is_named(tmp_path):
    path = tmp_path / "absent.toml"
    assert load_error(str(path)) == f"{path}: no such file"


def test_a_directory_is_named(tmp_path):
    where = str(tmp_path) + "/"
    assert load_error(where) == f"{where}: is a directory, not a .toml file"


def test_a_file_that_is_not_utf8_is_named_with_the_byte(tmp_path):
    path = tmp_path / "latin1.toml"
    path.write_bytes(b'format = 1\nname = "caf\xe9"\n')
    assert load_error(str(path)) == f"{path}: not UTF-8 text (byte 22: invalid continuation byte)"


def test_a_path_error_is_one_line_with_the_line_break_as_a_space(tmp_path):
    path = tmp_path / "two\nlines.toml"
    assert load_error(str(path)) == f"{tmp_path}/two lines.toml: no such file"


class _Stream(io.RawIOBase):
    """A stream with no end (/dev/zero, a FIFO): reading it all would never return."""

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> bytes:
        if size is None or size < 0:
            raise AssertionError("read to the end of an endless stream")
        return b"#" * size


class _Entry:
    """One entry of a built-in folder: opening it gives ``content`` (bytes, an exception, or an endless stream)."""

    def __init__(self, name: str, content: bytes | OSError | None):
        self.name, self.content = name, content

    def is_file(self) -> bool:
        return True

    def open(self, mode: str = "r"):
        assert mode == "rb"
        if isinstance(self.content, OSError):
            raise self.content
        return io.BytesIO(self.content) if self.content is not None else _Stream()

    def __str__(self) -> str:
        return f"/builtins/{self.name}"


class _Folder:
    def __init__(self, **entries: bytes | OSError | None):
        self.entries = {f"{name}.toml": _Entry(f"{name}.toml", content) for name, content in entries.items()}

    def iterdir(self):
        return iter(self.entries.values())

    def __truediv__(self, name: str) -> _Entry:
        return self.entries[name]

    def __str__(self) -> str:
        return "/builtins"


@pytest.fixture
def builtins(monkeypatch):
    """Replace the built-in folder: ``builtins(name=content, …)``."""

    def use(**entries: bytes | OSError | None) -> None:
        monkeypatch.setattr(targets, "BUILTIN_DIR", _Folder(**entries))

    return use


def test_an_endless_built_in_is_read_only_to_the_limit(builtins):
    builtins(endless=None)
    assert load_error("endless") == "/builtins/endless.toml: larger than 256 KiB; not a target profile"


@pytest.mark.parametrize(
    "raised, problem",
    [
        (PermissionError(errno.EACCES, "Permission denied"), "permission denied"),
        (FileNotFoundError(errno.ENOENT, "No such file"), "no such file"),
        (IsADirectoryError(errno.EISDIR, "Is a directory"), "is a directory, not a .toml file"),
        (OSError(errno.EIO, "Input/output error"), "cannot read: Input/output error"),
        (OSError("the disk went away"), "cannot read: the disk went away"),
    ],
)
def test_a_built_in_that_cannot_be_read_is_named_with_the_reason(builtins, raised, problem):
    builtins(broken=raised)
    with pytest.raises(TargetProfileError) as info:
        load_target("broken")
    assert str(info.value) == f"/builtins/broken.toml: {problem}"
    assert info.value.__cause__ is raised


def test_a_built_in_whose_name_differs_from_its_file_is_refused(builtins):
    builtins(alpha=text(name='"beta"').encode())
    assert load_error("alpha") == "/builtins/alpha.toml: name 'beta' differs from the file name 'alpha'"


def test_a_built_in_with_an_error_names_its_file(builtins):
    builtins(bad=b"format = 2\n" + text(format="").encode())
    assert load_error("bad").startswith("/builtins/bad.toml: format 2 is not supported")


def test_an_unknown_built_in_lists_the_known_ones_word_for_word(builtins):
    assert load_error("miit-2030") == (
        f"unknown built-in target 'miit-2030' (known: {BUILTINS}); give a path to a .toml file for your own target"
    )
    builtins()
    assert load_error("miit-2030") == (
        "unknown built-in target 'miit-2030' (known: none); give a path to a .toml file for your own target"
    )


def test_two_targets_with_one_name_are_refused_naming_both_files(tmp_path):
    first, second = tmp_path / "a.toml", tmp_path / "b.toml"
    first.write_text(text(name='"same"'), encoding="utf-8")
    second.write_text(text(name='"same"'), encoding="utf-8")
    with pytest.raises(TargetProfileError) as info:
        load_targets([str(first), str(second)])
    assert str(info.value) == f"two targets are named 'same': {first} and {second}"


# --------------------------------------------------------------------------------------- parsing, refusals
def test_toml_errors_word_for_word():
    assert error("format = \n") == "t.toml: not valid TOML: Invalid value (at line 1, column 10)"
    assert error("x = " + "[" * 100_000) == "t.toml: not valid TOML: nested too deeply"
    assert error("x = 1" + "0" * 5000) == (
        "t.toml: not valid TOML: Exceeds the limit (4300 digits) for integer string conversion: value has 5001 "
        "digits; use sys.set_int_max_str_digits() to increase the limit"
    )


def test_an_origin_with_a_line_break_is_joined_by_a_space():
    assert error("format = \n", "a\nb.toml") == "a b.toml: not valid TOML: Invalid value (at line 1, column 10)"


@pytest.mark.parametrize("key", ["title", "source", "description"])
def test_a_top_level_string_that_is_not_one_is_refused_naming_the_file(key):
    assert error(text(**{key: "5"})) == f"t.toml: '{key}' must be a string, not an integer"


def test_a_name_outside_the_pattern_is_shown():
    assert error(text(name='"My Target"')) == (
        "t.toml: name 'My Target' must match [a-z0-9][a-z0-9._-]* (lower-case letters, digits, '.', '_', '-')"
    )


def test_an_empty_title_and_no_criteria_word_for_word():
    assert error(text(title='" "')) == "t.toml: 'title' is empty"
    assert error(bare(criteria="[]")) == "t.toml: no criteria; a target needs at least one [[criteria]]"


@pytest.mark.parametrize(
    "value, kind",
    [("1.5", "a float"), ('"x"', "a string"), ("true", "a boolean"), ("{a = 1}", "a table"), ("1979-05-27", "date")],
)
def test_criteria_that_is_not_an_array_names_its_type(value, kind):
    assert error(bare(criteria=value)) == f"t.toml: 'criteria' must be an array of tables ([[criteria]]), not {kind}"


@pytest.mark.parametrize("value, kind", [("1", "an integer"), ("[1]", "an array"), ('"x"', "a string")])
def test_a_criterion_that_is_not_a_table_names_its_type(value, kind):
    assert error(bare(criteria=f"[{value}]")) == f"t.toml: criteria[0]: must be a table, not {kind}"


def test_every_unknown_key_and_the_allowed_ones_word_for_word():
    assert error(text(colour='"red"', b_side="1")) == (
        f"t.toml: unknown keys 'b_side', 'colour' (allowed: {ALLOWED_TOP})"
    )
    assert error(text(PEAK + "unit = 1\nscale = 2\n")) == (
        f"t.toml: criteria[0]: unknown keys 'scale', 'unit' (allowed: {ALLOWED_CRITERION})"
    )


def test_every_missing_key_is_named_in_order_separated_by_semicolons():
    assert error(text(name="", title="")) == (
        "t.toml: missing key 'name': expected name = \"my-target\" (lower-case letters, digits, '.', '_', '-'); "
        "missing key 'title': expected title = \"a one-line title\""
    )


def test_dtype_on_supported_families_word_for_word():
    assert error(text(FAMILIES + 'families = ["cnn"]\nthreshold = 1\ndtype = "fp16"\n')) == (
        "t.toml: criteria[0]: 'dtype' does not apply to supported_families (support is checked in fp16)"
    )


@pytest.mark.parametrize("value, kind", [('"cnn"', "a string"), ("[1]", "an array"), ("{a = 1}", "a table")])
def test_families_that_are_not_an_array_of_strings_name_the_type(value, kind):
    assert error(text(FAMILIES + f"families = {value}\nthreshold = 1\n")) == (
        f"t.toml: criteria[0]: 'families' must be an array of strings, not {kind}"
    )


def test_every_unknown_and_duplicate_family_is_listed():
    assert error(text(FAMILIES + 'families = ["cnn", "vit", "mlp"]\nthreshold = 1\n')) == (
        "t.toml: criteria[0]: unknown families 'vit', 'mlp' (known: cnn, rnn, lstm, gru, transformer)"
    )
    assert error(text(FAMILIES + 'families = ["rnn", "cnn", "rnn", "cnn"]\nthreshold = 1\n')) == (
        "t.toml: criteria[0]: 'families' lists cnn, rnn more than once"
    )


# ---------------------------------------------------------------------------------------- values in messages
def test_a_value_up_to_60_characters_is_shown_whole_and_a_longer_one_cut():
    rule = " must match [a-z0-9][a-z0-9._-]* (lower-case letters, digits, '.', '_', '-')"
    fits = "X" * 58  # its repr, with the quotes, is 60 characters
    assert error(text(name=f'"{fits}"')) == f"t.toml: name '{fits}'{rule}"
    assert error(text(name=f'"{fits}Y"')) == f"t.toml: name '{fits[:56]}...{rule}"


def test_a_type_outside_the_usual_ones_is_named_by_its_python_name():
    assert error(text(title="1979-05-27")) == "t.toml: 'title' must be a string, not date"
    assert error(text(title="07:32:00")) == "t.toml: 'title' must be a string, not time"
