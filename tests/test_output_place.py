"""The output place is checked before measuring (exit 2, one line, nothing measured); a save that still fails at
the end keeps a copy and exits 6, saying where the copy is."""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from click.testing import CliRunner

from npucheck import cli as cli_module
from npucheck.cli import cli
from npucheck.errors import UsageError
from npucheck.store import check_output_folder, load_result

RUN = ["run", "--device", "cpu", "--suite", "quick", "--kernels", "gemm", "--dtypes", "bf16", "--warmup", "0"]
RUN += ["--power", "none"]

# Places that fail even for root (these tests run as root, where a chmod'ed folder does not stop a write).
UNWRITABLE = {
    "under a file": lambda tmp: tmp / "file.txt" / "sub" / "x.json",
    "a file as the folder": lambda tmp: tmp / "file.txt" / "x.json",
    "/proc": lambda tmp: Path("/proc/npucheck-x.json"),
    "/sys": lambda tmp: Path("/sys/npucheck-x/x.json"),
}


@pytest.mark.parametrize("where", list(UNWRITABLE))
def test_an_unwritable_output_folder_is_exit_2_before_torch_is_imported(tmp_path, where):
    (tmp_path / "file.txt").write_text("not a folder\n")
    target = UNWRITABLE[where](tmp_path)
    if not Path("/proc/self").exists() and str(target).startswith(("/proc", "/sys")):
        pytest.skip("no /proc or /sys here")
    probe = (
        "import sys\nfrom npucheck.cli import main\ntry:\n    main(sys.argv[1:])\n"
        "finally:\n    print('torch imported' if 'torch' in sys.modules else 'torch not imported')\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe, *RUN, "-o", str(target)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"npucheck: error: {target.parent}: a result cannot be written")
    assert "nothing was measured" in lines[0] and "(choose another -o)" in lines[0]
    assert done.stdout.strip() == "torch not imported"
    assert not target.exists()


def test_an_unwritable_results_dir_is_exit_2(tmp_path):
    (tmp_path / "file.txt").write_text("")
    result = CliRunner().invoke(cli, [*RUN, "--results-dir", str(tmp_path / "file.txt" / "results")])
    assert result.exit_code == 2
    assert "a result cannot be written there (the folder cannot be created: Not a directory)" in result.output
    assert "(choose another --results-dir)" in result.output


def test_an_unwritable_fleet_directory_is_exit_2_before_any_rank_starts(tmp_path, monkeypatch):
    from npucheck.measure import fleet

    started: list[object] = []
    monkeypatch.setattr(fleet, "launch_node", lambda *args: started.append(args))
    (tmp_path / "file.txt").write_text("")
    bad = tmp_path / "file.txt" / "fleet"
    result = CliRunner().invoke(cli, ["run", "--device", "all", "--fleet", str(bad), "--suite", "quick"])
    assert result.exit_code == 2 and f"{bad}: a result cannot be written there" in result.output
    assert "(choose another --fleet DIR)" in result.output
    assert started == []
    # and a rank under torchrun, before it starts its measuring process
    for name, value in {"RANK": "0", "WORLD_SIZE": "1", "LOCAL_RANK": "0", "MASTER_ADDR": "127.0.0.1"}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("MASTER_PORT", "29999")
    monkeypatch.setattr(fleet.Rank, "run", lambda self: started.append(self) or 0)
    result = CliRunner().invoke(cli, ["run", "--fleet", str(bad), "--suite", "quick"])
    assert result.exit_code == 2 and f"{bad}: a result cannot be written there" in result.output
    assert started == []


def test_the_check_creates_a_missing_folder_and_leaves_no_probe_behind(tmp_path):
    check_output_folder(tmp_path / "a" / "b")
    assert (tmp_path / "a" / "b").is_dir() and list((tmp_path / "a" / "b").iterdir()) == []
    check_output_folder(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a"]
    with pytest.raises(UsageError, match="it is not a folder"):
        (tmp_path / "f").write_text("")
        check_output_folder(tmp_path / "f")


@pytest.fixture
def own_tmp(tmp_path, monkeypatch):
    """Temporary folders (the save's fallback) under this test's tmp_path."""
    folder = tmp_path / "tmp"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    return folder


def _during_the_run(monkeypatch, action):
    """Run ``action`` once, when the first case has been measured."""
    original = cli_module._Progress.on_event
    done: list[bool] = []

    def on_event(self, kind, data):
        if kind == "case_done" and not done:
            done.append(True)
            action()
        original(self, kind, data)

    monkeypatch.setattr(cli_module._Progress, "on_event", on_event)


def test_a_folder_gone_at_save_time_keeps_a_copy_and_exits_6(tmp_path, own_tmp, monkeypatch):
    """The output folder is removed during the run and a file takes its name: the save cannot recreate it."""
    folder = tmp_path / "out"
    target = folder / "r.json"

    def vanish():
        folder.rmdir()
        folder.write_text("a file where the folder was\n")

    _during_the_run(monkeypatch, vanish)
    result = CliRunner().invoke(cli, [*RUN, "-o", str(target)])
    assert result.exit_code == 6, result.output
    copies = list(own_tmp.glob("npucheck-*/*.json"))
    assert len(copies) == 1
    assert "npucheck: not saved where asked (" in result.output
    assert f"the result's copy is at {copies[0]}" in result.output
    doc = load_result(copies[0])
    assert doc["interrupted"] is False and len(doc["measurements"]) == 6


def test_an_output_file_created_during_the_run_is_not_overwritten_and_exits_6(tmp_path, own_tmp, monkeypatch):
    """Someone else wrote the -o file meanwhile: the result goes beside it, and `run -o X && check X` stops."""
    target = tmp_path / "r.json"
    _during_the_run(monkeypatch, lambda: target.write_text("someone else's\n"))
    result = CliRunner().invoke(cli, [*RUN, "-o", str(target)])
    assert result.exit_code == 6, result.output
    assert target.read_text() == "someone else's\n"
    (copy,) = [p for p in tmp_path.glob("*.json") if p != target]
    assert f"the result's copy is at {copy}" in result.output
    load_result(copy)


def test_a_results_dir_that_cannot_be_written_at_save_time_keeps_a_copy_and_exits_6(tmp_path, own_tmp, monkeypatch):
    results = tmp_path / "results"

    def vanish():
        results.rmdir()
        results.write_text("")

    _during_the_run(monkeypatch, vanish)
    result = CliRunner().invoke(cli, [*RUN, "--results-dir", str(results)])
    assert result.exit_code == 6, result.output
    (copy,) = own_tmp.glob("npucheck-*/*.json")
    assert f"the result's copy is at {copy}" in result.output
    load_result(copy)
