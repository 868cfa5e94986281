"""The command line, driven through click's CliRunner: exit codes, one-line errors, no torch for readers."""

import json
import subprocess
import sys

import pytest
from click.testing import CliRunner

from npucheck.cli import cli
from npucheck.model import ResultProfile
from npucheck.store import save_result


@pytest.fixture
def runner():
    return CliRunner()


@pytest.fixture
def result_file(tmp_path, minimal_profile):
    return save_result(minimal_profile, tmp_path / "result.json")


def _target(tmp_path, body):
    path = tmp_path / "mine.toml"
    path.write_text('format = 1\nname = "mine"\ntitle = "t"\n' + body)
    return str(path)


def test_targets_lists_the_builtins(runner):
    result = runner.invoke(cli, ["targets"])
    assert result.exit_code == 0
    for name in ("miit-2020-cloud", "miit-2020-terminal", "miit-2020-terminal-strict"):
        assert name in result.output


def test_unknown_target_is_one_line_and_exit_2(runner):
    result = runner.invoke(cli, ["targets", "no-such-target"])
    assert result.exit_code == 2
    assert result.output.strip().count("\n") == 0
    assert "unknown built-in target 'no-such-target'" in result.output


def test_check_exit_codes_follow_the_verdicts(runner, tmp_path, result_file):
    low = _target(tmp_path, '[[criteria]]\nmetric = "peak_tflops"\ndtype = "fp16"\nop = ">="\nthreshold = 0.0001\n')
    assert runner.invoke(cli, ["check", str(result_file), "--target", low]).exit_code == 0
    high = _target(tmp_path, '[[criteria]]\nmetric = "peak_tflops"\ndtype = "fp16"\nop = ">="\nthreshold = 128.0\n')
    assert runner.invoke(cli, ["check", str(result_file), "--target", high]).exit_code == 1
    power = _target(tmp_path, '[[criteria]]\nmetric = "tflops_per_watt"\ndtype = "fp16"\nop = ">"\nthreshold = 1.0\n')
    result = runner.invoke(cli, ["check", str(result_file), "--target", power])
    assert result.exit_code == 3
    assert "INCONCLUSIVE" in result.output


@pytest.mark.parametrize(
    "content,message",
    [
        (None, "does not exist"),
        ('{"schema_version": 1, "measure', "truncated"),
        ("[1, 2]", "not a json object"),
        ('{"schema_version": 99}', "newer npucheck"),
    ],
)
def test_bad_result_files_are_one_line_and_exit_2(runner, tmp_path, content, message):
    path = tmp_path / "bad.json"
    if content is not None:
        path.write_text(content)
    for command in ("check", "show"):
        result = runner.invoke(cli, [command, str(path)])
        assert result.exit_code == 2, result.output
        assert result.output.strip().startswith("npucheck: error:")
        assert len(result.output.strip().splitlines()) == 1
        assert message in result.output.lower()


def test_hostile_target_file_is_refused_before_anything_is_measured(runner, tmp_path):
    hostile = tmp_path / "hostile.toml"
    hostile.write_text("a = " + "[" * 100000)
    result = runner.invoke(cli, ["run", "--suite", "quick", "--target", str(hostile), "-o", str(tmp_path / "r.json")])
    assert result.exit_code == 2
    assert not (tmp_path / "r.json").exists()


@pytest.mark.parametrize(
    "args,message",
    [
        (["--device", "tpu9"], "device"),
        (["--device", "cuda:7"], "device"),
        (["--dtypes", "fp8"], "unknown dtype 'fp8'"),
        (["--kernels", "fft"], "unknown kernel 'fft'"),
        (["--suite", "huge"], "unknown suite 'huge'"),
        (["--threads", "0"], "--threads"),
    ],
)
def test_bad_run_options_exit_2_with_one_line(runner, tmp_path, args, message):
    result = runner.invoke(cli, ["run", *args, "-o", str(tmp_path / "r.json")])
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert "Traceback" not in result.output


def test_run_refuses_to_overwrite_an_existing_output(runner, tmp_path):
    existing = tmp_path / "r.json"
    existing.write_text("keep me")
    result = runner.invoke(cli, ["run", "--suite", "quick", "-o", str(existing)])
    assert result.exit_code == 2
    assert existing.read_text() == "keep me"


@pytest.mark.parametrize(
    "fmt,needle", [("table", "Verdicts"), ("markdown", "## Verdicts"), ("json", '"schema_version"')]
)
def test_show_renders_each_format(runner, result_file, fmt, needle):
    result = runner.invoke(cli, ["show", str(result_file), "--format", fmt])
    assert result.exit_code == 0, result.output
    assert needle in result.output
    if fmt == "json":
        assert json.loads(result.output)["schema_version"] == 2


@pytest.mark.parametrize("command", [["show"], ["check"], ["show", "--format", "markdown"]])
def test_commands_that_read_results_do_not_import_torch(result_file, command):
    code = (
        f"import sys\nfrom npucheck.cli import cli\n"
        f"try:\n    cli.main({[*command, str(result_file)]!r}, standalone_mode=False)\nexcept SystemExit:\n    pass\n"
        f"assert 'torch' not in sys.modules, 'torch was imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)


def test_targets_command_does_not_import_torch():
    code = (
        "import sys\nfrom npucheck.cli import cli\ncli.main(['targets'], standalone_mode=False)\n"
        "assert 'torch' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)


def test_env_lists_the_cpu_and_says_why_power_sources_are_missing(runner, tmp_path, monkeypatch):
    monkeypatch.setenv("NPUCHECK_SYSFS_ROOT", str(tmp_path))
    result = runner.invoke(cli, ["env"])
    assert result.exit_code == 0, result.output
    assert "cpu" in result.output
    flat = " ".join(result.output.split())  # lines wrap at the width
    assert "rapl" in flat and "is not present" in flat
    assert "meter:PATH" in result.output


@pytest.mark.parametrize("command", ["results", "compare", "plot", "report"])
def test_commands_that_compare_plot_and_report_do_not_import_torch(result_file, tmp_path, command):
    argv = {
        "results": ["results", str(result_file.parent)],
        "compare": ["compare", str(result_file), str(result_file)],
        "plot": ["plot", str(result_file), "-o", str(tmp_path / "p.png")],
        "report": ["report", str(result_file), "-o", str(tmp_path / "r.html")],
    }[command]
    code = (
        f"import sys\nfrom npucheck.cli import cli\n"
        f"try:\n    cli.main({argv!r}, standalone_mode=False)\nexcept SystemExit as e:\n    assert not e.code, e\n"
        f"assert 'torch' not in sys.modules, 'torch was imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)


@pytest.mark.parametrize(
    "argv",
    [
        ["show", "x.json", "--format", "yaml"],
        ["run", "--bogus"],
        ["compare", "a.json", "b.json", "--threshold", "abc"],
        ["plot", "x.json", "--kind", "nope", "-o", "p.png"],
    ],
)
def test_bad_options_are_one_line_and_exit_2(runner, argv):
    result = runner.invoke(cli, argv)
    assert result.exit_code == 2
    assert result.output.startswith("npucheck: error: ") and result.output.count("\n") == 1
    assert "--help" in result.output


def test_a_run_whose_judging_fails_is_still_saved(runner, tmp_path, monkeypatch):
    import npucheck.measure.runner
    import npucheck.read.judge
    from npucheck.errors import ResultFileError
    from tests.conftest import make_profile

    monkeypatch.setattr(
        npucheck.measure.runner.Runner, "run", lambda self: ResultProfile.from_dict(make_profile(verdicts=[]))
    )

    def broken_judge(profile, targets):
        raise ResultFileError("not a valid result profile: a runner bug")

    monkeypatch.setattr(npucheck.read.judge, "judge", broken_judge)
    out = tmp_path / "r.json"
    result = runner.invoke(cli, ["run", "--device", "cpu", "--suite", "quick", "--power", "none", "-o", str(out)])
    assert result.exit_code == 0, result.output
    saved = json.loads(out.read_text())
    assert any("not judged: not a valid result profile" in w for w in saved["warnings"])
