"""No run lost to a signal: a real ``npucheck run`` process, real SIGTERM / SIGHUP / SIGINT, the files it leaves.

Each run is the CLI's own ``main`` in a child process (what ``python -m npucheck`` runs). A small wrapper only
announces the runner's events on stderr (``EVENT case_start 2``, ``EVENT phase energy window 1/1: …``) so that the
test signals at a known moment instead of after a guessed sleep; ``NPUCHECK_TEST_SIGNAL_IN_SAVE`` makes the process
send itself real signals while it saves (inside ``store.save_result`` and just before the atomic writer links the
file to its name), the one moment a test cannot hit from outside.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from npucheck.store import load_result

CHILD = r"""
import os, signal, sys
from npucheck import cli, store

def on_event(self, kind, data, _orig=cli._Progress.on_event):
    if kind == "case_start":
        print(f"EVENT case_start {data['index']}", file=sys.stderr, flush=True)
    elif kind == "phase":
        print(f"EVENT phase {data['name']}", file=sys.stderr, flush=True)
    _orig(self, kind, data)

cli._Progress.on_event = on_event
in_save = [int(s) for s in os.environ.get("NPUCHECK_TEST_SIGNAL_IN_SAVE", "").split(",") if s]
if in_save:
    def kill_self():
        for signum in in_save:
            os.kill(os.getpid(), signum)  # the handler runs at the next bytecode, still inside this save

    def save_result(*args, _orig=store.save_result, **kwargs):
        print("EVENT saving", file=sys.stderr, flush=True)
        kill_self()
        return _orig(*args, **kwargs)

    def link(src, dst, _orig=os.link, **kwargs):
        kill_self()  # the complete temporary file exists; its final name does not yet
        return _orig(src, dst, **kwargs)

    store.save_result = save_result
    os.link = link
if os.environ.get("NPUCHECK_TEST_STOP_BEFORE_RUN"):
    from npucheck.measure import runner

    def time_plan(self, _orig=runner.Runner.time_plan):
        os.kill(os.getpid(), signal.SIGHUP)
        return _orig(self)

    runner.Runner.time_plan = time_plan
cli.main(sys.argv[1:])
"""

RUN = ["run", "--device", "cpu", "--suite", "quick", "--kernels", "gemm", "--dtypes", "bf16", "--warmup", "0"]


class Child:
    """One ``npucheck run`` in a child process, its stderr read line by line."""

    def __init__(self, args: list[str], env: dict[str, str] | None = None, **popen):
        self.proc = subprocess.Popen(
            [sys.executable, "-c", CHILD, *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
            **popen,
        )
        self.lines: list[str] = []

    def wait_for(self, prefix: str, timeout: float = 30.0) -> str:
        assert self.proc.stderr is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            line = self.proc.stderr.readline()
            if not line:
                break
            self.lines.append(line)
            if line.startswith(prefix):
                return line
        self.proc.kill()
        raise AssertionError(f"never saw {prefix!r}; stderr so far:\n{''.join(self.lines)[-3000:]}")

    def finish(self, timeout: float = 60.0) -> tuple[int, str, str]:
        out, err = self.proc.communicate(timeout=timeout)
        return self.proc.returncode, out, "".join(self.lines) + err


def _left_behind(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir())


def _assert_saved_interrupted(folder: Path, signame: str) -> dict:
    """The one file left in ``folder`` parses, validates, says interrupted by ``signame``; no temporary file."""
    files = _left_behind(folder)
    assert [p.name for p in files] == ["r.json"], files  # no .npucheck-*.tmp, no probe, no second copy
    doc = json.loads(files[0].read_text())
    load_result(files[0])  # the schema, as every reader checks it
    assert doc["interrupted"] is True
    assert any(w.startswith(f"interrupted by {signame}: ") for w in doc["warnings"]), doc["warnings"]
    return doc


@pytest.mark.parametrize(
    ("signum", "code"), [(signal.SIGTERM, 143), (signal.SIGHUP, 129), (signal.SIGINT, 130)], ids=lambda v: str(v)
)
def test_a_signal_during_a_case_saves_the_cases_measured_and_exits_128_plus_n(tmp_path, signum, code):
    out = tmp_path / "out"
    child = Child([*RUN, "--power", "none", "-o", str(out / "r.json")])
    child.wait_for("EVENT case_start 2")  # two cases measured, the third starting
    time.sleep(0.05)
    child.proc.send_signal(signum)
    sent = time.monotonic()
    rc, stdout, stderr = child.finish()
    assert rc == code, stderr[-2000:]
    assert time.monotonic() - sent < 10  # stopped at once, not at the suite's end
    doc = _assert_saved_interrupted(out, signal.Signals(signum).name)
    assert len(doc["measurements"]) == 2  # the two cases that ended; the third, stopped midway, is not recorded
    assert all(m["status"] in ("ok", "skipped") for m in doc["measurements"])  # skipped: a loaded host's budget
    assert f"npucheck: interrupted by {signal.Signals(signum).name}; partial result saved to {out / 'r.json'}" in (
        stderr
    )
    assert "Traceback" not in stderr


METER_WRITER = """
import sys, time
path, watts = sys.argv[1], float(sys.argv[2])
with open(path, "a", buffering=1) as f:
    while True:
        f.write(f"{time.time():.3f},{watts}\\n")
        time.sleep(0.1)
"""


def test_sigterm_during_an_energy_window_saves_the_timed_cases_and_stops_the_window(tmp_path):
    """A meter log written live by another process gives real energy windows (no RAPL needed)."""
    log = tmp_path / "meter.csv"
    log.write_text("timestamp,watts\n")
    writer = subprocess.Popen([sys.executable, "-c", METER_WRITER, str(log), "77"])
    out = tmp_path / "out"
    try:
        time.sleep(0.3)
        power = f"meter:{log},period=0.1,accuracy=0.01,sample=instant"
        args = [*RUN, "--power", power, "--power-window", "8", "--power-trials", "1", "--idle-seconds", "0.3"]
        child = Child([*args, "-o", str(out / "r.json")])
        child.wait_for("EVENT phase energy window 1/")
        time.sleep(1.0)  # well inside the 8 s window: the sampler thread is running
        child.proc.send_signal(signal.SIGTERM)
        sent = time.monotonic()
        rc, stdout, stderr = child.finish()
    finally:
        writer.kill()
        writer.wait()
    assert rc == 143, stderr[-2000:]
    assert time.monotonic() - sent < 6  # the window was abandoned, not run to its end
    doc = _assert_saved_interrupted(out, "SIGTERM")
    timed = [m for m in doc["measurements"] if m["status"] == "ok"]
    assert timed and all(m["tflops"] > 0 for m in timed)  # every case was timed before the windows began
    assert doc["power"]["source"]["name"] == "meter"
    assert not any((m.get("energy") or {}).get("kind") == "headline" for m in doc["measurements"])
    assert "Traceback" not in stderr


def test_signals_hammered_while_an_interrupted_run_saves_never_lose_or_half_write_the_file(tmp_path):
    """The first SIGTERM stops the run; then SIGTERM, SIGHUP and SIGINT every 2 ms until the process is gone."""
    out = tmp_path / "out"
    child = Child([*RUN, "--power", "none", "-o", str(out / "r.json")])
    child.wait_for("EVENT case_start 1")
    child.proc.send_signal(signal.SIGTERM)
    sent, cycle = 1, (signal.SIGTERM, signal.SIGHUP, signal.SIGINT)
    while child.proc.poll() is None:
        try:
            child.proc.send_signal(cycle[sent % 3])
        except ProcessLookupError:
            break
        sent += 1
        time.sleep(0.002)
    rc, stdout, stderr = child.finish()
    assert sent > 20, sent  # many signals arrived while it saved and exited
    # Signals pending together are handled in number order (SIGHUP 1 before SIGTERM 15): the first one HANDLED stops
    # the run, names it and gives the exit code; every later one is only noted, never a second exit or a kill.
    first = signal.Signals(rc - 128) if rc > 128 else None
    assert first in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT), (rc, stderr[-2000:])
    _assert_saved_interrupted(out, first.name)
    assert f"npucheck: interrupted by {first.name}; partial result saved" in stderr


def test_signals_inside_the_save_itself_are_held_until_the_file_is_written(tmp_path):
    """SIGTERM during a case; then the process sends itself SIGINT, SIGHUP and SIGTERM inside ``save_result`` and
    again between the complete temporary file and its final name."""
    out = tmp_path / "out"
    in_save = f"{int(signal.SIGINT)},{int(signal.SIGHUP)},{int(signal.SIGTERM)}"
    child = Child([*RUN, "--power", "none", "-o", str(out / "r.json")], env={"NPUCHECK_TEST_SIGNAL_IN_SAVE": in_save})
    child.wait_for("EVENT case_start 1")
    child.proc.send_signal(signal.SIGTERM)
    child.wait_for("EVENT saving")
    rc, stdout, stderr = child.finish()
    assert rc == 143, stderr[-2000:]
    _assert_saved_interrupted(out, "SIGTERM")
    assert "Traceback" not in stderr


def test_a_signal_while_a_complete_run_saves_keeps_the_complete_file_and_exits_128_plus_n(tmp_path):
    out = tmp_path / "out"
    child = Child(
        [*RUN, "--power", "none", "-o", str(out / "r.json")],
        env={"NPUCHECK_TEST_SIGNAL_IN_SAVE": str(int(signal.SIGTERM))},
    )
    rc, stdout, stderr = child.finish()
    assert rc == 143, stderr[-2000:]
    assert [p.name for p in _left_behind(out)] == ["r.json"]
    doc = load_result(out / "r.json")
    assert doc["interrupted"] is False and not any(w.startswith("interrupted") for w in doc["warnings"])
    assert len(doc["measurements"]) == 6
    assert f"npucheck: SIGTERM arrived while the complete result was saved; it is at {out / 'r.json'}" in stderr


def test_sighup_ignored_by_nohup_stays_ignored(tmp_path):
    """``nohup npucheck run …``: SIGHUP was ignored when npucheck started, so the run goes on to the end."""
    out = tmp_path / "out"

    def ignore_hup() -> None:
        signal.signal(signal.SIGHUP, signal.SIG_IGN)

    child = Child([*RUN, "--power", "none", "-o", str(out / "r.json")], preexec_fn=ignore_hup)
    child.wait_for("EVENT case_start 1")
    child.proc.send_signal(signal.SIGHUP)
    rc, stdout, stderr = child.finish()
    assert rc == 0, stderr[-2000:]
    assert load_result(out / "r.json")["interrupted"] is False


def test_handlers_are_restored_after_an_in_process_run(tmp_path):
    """``run`` called in-process (CliRunner, a library caller) leaves the caller's signal handlers as they were."""
    from click.testing import CliRunner

    from npucheck.cli import cli

    before = {signum: signal.getsignal(signum) for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    result = CliRunner().invoke(cli, [*RUN, "--power", "none", "-o", str(tmp_path / "r.json")])
    assert result.exit_code == 0, result.output
    assert {signum: signal.getsignal(signum) for signum in before} == before


def test_a_signal_before_anything_was_measured_saves_nothing_and_exits_128_plus_n(tmp_path):
    """Stopped while the device is being set up (before the runner's first phase): nothing to save."""
    out = tmp_path / "out"
    child = Child(
        [*RUN, "--power", "none", "-o", str(out / "r.json")],
        env={"NPUCHECK_TEST_STOP_BEFORE_RUN": "1"},
    )
    rc, stdout, stderr = child.finish()
    assert rc == 129, stderr[-2000:]
    assert "npucheck: interrupted by SIGHUP" in stderr and "Traceback" not in stderr
    assert not (out / "r.json").exists()
