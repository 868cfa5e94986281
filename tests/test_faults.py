"""Faults around a run (issue 11, item 5): a case too large for the free memory is skipped, never left to the OOM
killer; a results folder that vanishes or fills up during the run loses nothing (a copy elsewhere, exit 6, no
partial file); runs that save into one folder at once never overwrite each other."""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

import psutil
import pytest
from click.testing import CliRunner

import npucheck.measure.runner as runner_module
from npucheck import atomic
from npucheck.cli import cli
from npucheck.kernels import KERNELS, build_workload
from npucheck.measure.devices import resolve_device
from npucheck.measure.planning import (
    MEMORY_MARGIN,
    MEMORY_RESERVE_BYTES,
    case_bytes,
    cgroup_available_bytes,
    host_available_bytes,
    memory_skip_reason,
)
from npucheck.measure.runner import Runner, RunOptions, available_memory_bytes
from npucheck.store import load_result, save_result
from tests.test_runner import TINY

REPO = Path(__file__).resolve().parents[1]
RUN = ["run", "--device", "cpu", "--suite", "quick", "--kernels", "gemm", "--dtypes", "bf16", "--warmup", "0"]
RUN += ["--power", "none", "--min-sample-time", "0.001"]

SMALL = replace(TINY, entries=({"kernel": "gemm", "shape_set": "square", "where": {"m": [128, 512]}},))


def _memory_skips(measurements: list[dict]) -> list[dict]:
    """The measurements skipped for memory. (Other statuses depend on the machine: a 2-core machine shared with
    other work can measure a probe so slow that a case is skipped for time, which is not what these tests check.)"""
    return [m for m in measurements if "out of memory avoided" in (m.get("reason") or "")]


@pytest.fixture
def no_load_scan(monkeypatch):
    monkeypatch.setattr(runner_module, "busy_processes", lambda interval_s=0.5, exclude=None: [])


# ------------------------------------------------------------------------------------------------ (a) memory
def test_a_case_that_would_not_fit_in_free_memory_is_skipped_naming_both_figures(monkeypatch, no_load_scan):
    """The seam reports 1 MiB more than the reserve: the 128^3 GEMM fits, the 512^3 one (3 MiB of fp32 tensors)
    does not, and it is never built."""
    built: list[str] = []

    def recording_build(case, device, seed):
        built.append(case.id)
        return build_workload(case, device, seed)

    monkeypatch.setattr(runner_module, "build_workload", recording_build)
    available = MEMORY_RESERVE_BYTES + 2**20
    runner = Runner(
        RunOptions(device="cpu", dtypes=["fp32"], flush=False, power="none"),
        suite=SMALL,
        available_memory=lambda: available,
    )
    profile = runner.run().to_dict()
    by_m = {m["shape"]["m"]: m for m in profile["measurements"]}
    assert not _memory_skips([by_m[128]])  # measured (or, on a loaded machine, skipped for time: not for memory)
    skipped = by_m[512]
    assert skipped["status"] == "skipped"
    assert skipped["reason"].startswith("out of memory avoided: needs ~")
    assert "only 257 MiB available" in skipped["reason"]
    assert not any("512" in case_id and "gemm" in case_id for case_id in built)
    assert "1 of 2 cases were skipped (see each reason)" in profile["warnings"]
    # the probe stops growing too, keeping the last size that fitted
    assert "out of memory avoided" in profile["settings"]["probe_notes"]["fp32"]


def test_normal_cases_are_not_skipped_with_the_real_free_memory(no_load_scan):
    device = resolve_device("cpu")
    available = available_memory_bytes(device)
    assert available is not None and 0 < available <= psutil.virtual_memory().total
    profile = Runner(RunOptions(device="cpu", dtypes=["fp32"], flush=False, power="none"), suite=SMALL).run()
    measured = [m.to_dict() for m in profile.measurements]
    assert len(measured) == 2 and not _memory_skips(measured)
    assert "out of memory avoided" not in str(profile.settings.probe_notes)


def test_a_failing_memory_reading_means_no_check_not_a_lost_run(no_load_scan):
    def broken() -> int:
        raise OSError("cannot read")

    profile = Runner(
        RunOptions(device="cpu", dtypes=["fp32"], flush=False, power="none"), suite=SMALL, available_memory=broken
    ).run()
    measured = [m.to_dict() for m in profile.measurements]
    assert len(measured) == 2 and not _memory_skips(measured) and all(m["status"] != "error" for m in measured)


@pytest.mark.parametrize(
    ("kernel", "dtype", "shape_set"),
    [
        ("gemm", "fp16", "square"),
        ("gemm", "fp32", "deepbench-device"),
        ("conv2d", "bf16", "resnet50"),
        ("conv2d", "fp32", "mobilenet-dw"),
        ("lstm", "fp32", "small"),
        ("gru", "fp16", "small"),
        ("rnn_tanh", "bf16", "small"),
    ],
)
def test_the_estimate_covers_what_the_kernel_allocates(kernel, dtype, shape_set):
    """The estimate (from the shape, nothing allocated) is at least the built workload's own footprint."""
    shapes = KERNELS[kernel].shape_sets[shape_set]
    shapes = sorted(shapes, key=lambda shape: KERNELS[kernel].flops(shape))[:3]
    for shape in shapes:
        case = KERNELS[kernel].case(dtype, shape, shape_set)
        workload = build_workload(case, resolve_device("cpu").torch_device, 0)
        assert case_bytes(case) >= workload.footprint_bytes, case.id
        del workload


def test_the_skip_reason_says_what_is_needed_and_what_is_available():
    case = KERNELS["gemm"].case("fp32", {"m": 16384, "n": 16384, "k": 16384, "layout": "NN"}, "probe")
    assert case_bytes(case) == 3 * 16384**2 * 4 + 16384**2 * 4  # three fp32 matrices and one float32 draw
    reason = memory_skip_reason(case, 2 * 2**30)
    needed = (case_bytes(case) * MEMORY_MARGIN + MEMORY_RESERVE_BYTES) / 2**30
    assert reason == (
        f"out of memory avoided: needs ~{needed:.3g} GiB (4 GiB of tensors, +25% and 256 MiB kept free), "
        "only 2 GiB available"
    )
    assert memory_skip_reason(case, None) is None  # the backend cannot tell: measured, as before
    assert memory_skip_reason(case, 64 * 2**30) is None


def _cgroup_tree(tmp_path: Path, version: int, limit: str, usage: int, inactive: int) -> tuple[Path, Path]:
    proc, sysfs = tmp_path / "proc", tmp_path / "sys"
    (proc / "self").mkdir(parents=True)
    if version == 2:
        (proc / "self" / "cgroup").write_text("0::/job/42\n")
        group = sysfs / "fs" / "cgroup" / "job" / "42"
        names = ("memory.max", "memory.current", "inactive_file")
    else:
        (proc / "self" / "cgroup").write_text("5:cpu,cpuacct:/\n4:memory:/docker/abc\n")
        group = sysfs / "fs" / "cgroup" / "memory"  # the container's own group, mounted at the root
        names = ("memory.limit_in_bytes", "memory.usage_in_bytes", "total_inactive_file")
    group.mkdir(parents=True)
    (group / names[0]).write_text(limit + "\n")
    (group / names[1]).write_text(f"{usage}\n")
    (group / "memory.stat").write_text(f"anon 1\n{names[2]} {inactive}\nfile 3\n")
    return sysfs, proc


@pytest.mark.parametrize("version", [1, 2])
def test_a_container_memory_limit_bounds_the_free_memory(tmp_path, version):
    """In a container (Kubernetes, a Slurm job) the host's free memory is not what the OOM killer goes by."""
    sysfs, proc = _cgroup_tree(tmp_path, version, limit=str(8 * 2**30), usage=6 * 2**30, inactive=2**30)
    assert cgroup_available_bytes(sysfs, proc) == 3 * 2**30  # page cache that can be dropped counts as free
    assert host_available_bytes(sysfs, proc) == min(3 * 2**30, psutil.virtual_memory().available)


@pytest.mark.parametrize(("version", "limit"), [(2, "max"), (1, "9223372036854771712")])
def test_no_container_limit_means_the_host_figure(tmp_path, version, limit):
    sysfs, proc = _cgroup_tree(tmp_path, version, limit=limit, usage=2**30, inactive=0)
    assert cgroup_available_bytes(sysfs, proc) is None
    assert cgroup_available_bytes(tmp_path / "nothing", tmp_path / "nothing") is None


def test_an_accelerator_reads_its_own_free_memory_or_none(monkeypatch):
    """A fake accelerator whose tensors live on the host is checked against the host's memory; one on a backend
    that cannot report free memory (no CUDA here, MPS) is not checked at all."""
    from fakes_accelerator import two_h100s

    on_host = resolve_device("cuda:0", runtime=two_h100s(host_device=0))
    assert available_memory_bytes(on_host) is not None
    elsewhere = resolve_device("cuda:1", runtime=two_h100s(host_device=0))
    monkeypatch.setattr(
        runner_module.torch, "get_device_module", lambda kind: (_ for _ in ()).throw(RuntimeError("no"))
    )
    assert available_memory_bytes(elsewhere) is None


# --------------------------------------------------------------------------- (b) folder vanishes or is full
CHILD = r"""
import sys
from npucheck import cli

def on_event(self, kind, data, _orig=cli._Progress.on_event):
    if kind == "case_start":
        print(f"EVENT case_start {data['index']}", file=sys.stderr, flush=True)
    _orig(self, kind, data)

cli._Progress.on_event = on_event
cli.main(sys.argv[1:])
"""


def _child_env(tmp: Path) -> dict[str, str]:
    return {**os.environ, "PYTHONUNBUFFERED": "1", "TMPDIR": str(tmp), "COLUMNS": "200"}


def test_a_results_folder_removed_during_a_real_run_keeps_a_copy_and_exits_6(tmp_path):
    results, tmp = tmp_path / "results", tmp_path / "tmp"
    tmp.mkdir()
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD, *RUN, "--results-dir", str(results)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_child_env(tmp),
        cwd=tmp_path,
    )
    try:
        lines = []
        assert proc.stderr is not None
        for line in proc.stderr:
            lines.append(line)
            if line.startswith("EVENT case_start 1"):
                shutil.rmtree(results)  # the folder existed (the run made it); now it is gone
                break
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    err = "".join(lines) + err
    assert proc.returncode == 6, err
    assert not results.exists()  # not silently made again
    (copy,) = tmp.glob("npucheck-*/*.json")
    doc = load_result(copy)
    assert doc["interrupted"] is False and len(doc["measurements"]) == 6
    messages = [line for line in err.splitlines() if line.startswith("npucheck:")]
    assert messages == [
        f"npucheck: not saved where asked ({results}: the folder vanished during the run); "
        f"the result's copy is at {copy}"
    ]


def _fsync_fails_in(folder: Path, monkeypatch) -> list[Path]:
    """os.fsync raises ENOSPC for files in ``folder``, after their bytes were written (as a full disk does at the
    latest), and works elsewhere. Returns the files it refused."""
    refused: list[Path] = []
    real_fsync = os.fsync

    def fsync(fd):
        path = Path(os.readlink(f"/proc/self/fd/{fd}"))
        if path.parent == folder:
            refused.append(path)
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_fsync(fd)

    monkeypatch.setattr(atomic.os, "fsync", fsync)
    return refused


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs /proc/self/fd to name an open file")
def test_a_full_disk_at_save_time_leaves_no_partial_file_keeps_a_copy_and_exits_6(tmp_path, monkeypatch):
    results, tmp = tmp_path / "results", tmp_path / "tmp"
    tmp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp))
    refused = _fsync_fails_in(results, monkeypatch)
    result = CliRunner().invoke(cli, [*RUN, "--results-dir", str(results)])
    assert result.exit_code == 6, result.output
    assert refused and refused[0].name.startswith(".npucheck-")  # the temporary file had its bytes
    assert list(results.iterdir()) == []  # nothing half-written, no temporary file left
    (copy,) = tmp.glob("npucheck-*/*.json")
    load_result(copy)
    assert f"npucheck: not saved where asked ({results}: no space left (No space left on device)); " in result.output
    assert f"the result's copy is at {copy}" in result.output


def test_when_no_folder_at_all_takes_the_file_the_run_says_so_and_exits_7(tmp_path, monkeypatch):
    import npucheck.cli as cli_module

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))  # missing: mkdtemp fails there
    monkeypatch.setattr(cli_module.Path, "home", classmethod(lambda cls: tmp_path / "no-home"))
    monkeypatch.setattr(atomic.os, "fsync", lambda fd: (_ for _ in ()).throw(OSError(errno.ENOSPC, "No space")))
    result = CliRunner().invoke(cli, [*RUN, "--results-dir", str(tmp_path / "results")])
    assert result.exit_code == 7, result.output
    line = [x for x in result.output.splitlines() if x.startswith("npucheck: error:")]
    assert len(line) == 1 and "result not saved" in line[0] and "no copy could be written" in line[0]
    assert not list((tmp_path / "results").iterdir())


def _can_mount_tmpfs() -> bool:
    if sys.platform != "linux" or shutil.which("unshare") is None:
        return False
    probe = ["unshare", "--user", "--map-root-user", "--mount", "sh", "-c", "mount -t tmpfs -o size=8k tmpfs /mnt"]
    try:
        return subprocess.run(probe, capture_output=True, timeout=10).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def test_a_real_full_filesystem_keeps_a_copy_and_exits_6(tmp_path):
    """An 8 KiB tmpfs (in a private mount namespace, no root needed where user namespaces are allowed): the probe
    at the start fits, the ~20 KiB profile does not."""
    if not _can_mount_tmpfs():
        pytest.skip("cannot mount a small tmpfs here (no unprivileged user and mount namespaces)")
    results, tmp = tmp_path / "results", tmp_path / "tmp"
    results.mkdir()
    tmp.mkdir()
    script = 'mount -t tmpfs -o size=8k tmpfs "$1" && shift && exec "$@"'
    command = ["unshare", "--user", "--map-root-user", "--mount", "sh", "-c", script, "sh", str(results)]
    command += [sys.executable, "-m", "npucheck", *RUN, "--results-dir", str(results)]
    done = subprocess.run(command, capture_output=True, text=True, env=_child_env(tmp), cwd=tmp_path, timeout=180)
    assert done.returncode == 6, done.stderr
    (copy,) = tmp.glob("npucheck-*/*.json")
    load_result(copy)
    assert f"npucheck: not saved where asked ({results}: no space left (No space left on device)); " in done.stderr


# ------------------------------------------------------------------------------ (c) two runs, one folder
SAVER = r"""
import json, os, sys, time
from pathlib import Path
from npucheck.store import save_result
doc = json.loads(Path(sys.argv[1]).read_text())
go, folder, explicit, times = Path(sys.argv[2]), Path(sys.argv[3]), sys.argv[4], int(sys.argv[5])
save_result(doc, None, go.parent / f"warm-up-{os.getpid()}")  # imports and the validator, before the start line
print("READY", flush=True)
while not go.exists():
    time.sleep(0.001)
for _ in range(times):
    try:
        print(save_result(doc, explicit or None, folder), flush=True)
    except Exception as e:
        print(f"REFUSED {type(e).__name__}: {e}", flush=True)
"""


def _savers(tmp_path: Path, doc: dict, processes: int, times: int, explicit: str = "") -> list[str]:
    source, go, folder = tmp_path / "doc.json", tmp_path / "go", tmp_path / "results"
    source.write_text(json.dumps(doc))
    children = [
        subprocess.Popen(
            [sys.executable, "-c", SAVER, str(source), str(go), str(folder), explicit, str(times)],
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(processes)
    ]
    try:
        for child in children:
            assert child.stdout is not None and child.stdout.readline() == "READY\n"
        go.touch()  # all at once: every process has already paid for its imports and its validator
        outputs = [child.communicate(timeout=120)[0] for child in children]
    finally:
        for child in children:
            if child.poll() is None:
                child.kill()
                child.wait()
    assert all(child.returncode == 0 for child in children)
    return [line for output in outputs for line in output.splitlines()]


def test_runs_saving_into_one_folder_in_the_same_second_never_overwrite_each_other(tmp_path, minimal_profile):
    """Four processes save the same profile (same start time, device and suite: the same default name) ten times
    each, all at once: forty files under forty names, each whole."""
    lines = _savers(tmp_path, minimal_profile, processes=4, times=10)
    assert not [line for line in lines if line.startswith("REFUSED")]
    paths = [Path(line) for line in lines]
    assert len(set(paths)) == 40
    files = sorted((tmp_path / "results").iterdir())
    assert files == sorted(paths)  # no temporary file left either
    for path in files:
        load_result(path)


def test_runs_given_one_explicit_output_file_at_once_leave_the_first_and_refuse_the_others(tmp_path, minimal_profile):
    target = tmp_path / "results" / "r.json"
    target.parent.mkdir()
    lines = _savers(tmp_path, minimal_profile, processes=4, times=1, explicit=str(target))
    assert lines.count(str(target)) == 1
    refused = [line for line in lines if line.startswith("REFUSED")]
    assert len(refused) == 3 and all("already exists; npucheck never overwrites a result" in r for r in refused)
    assert [p.name for p in target.parent.iterdir()] == ["r.json"]
    load_result(target)


def test_the_atomic_writer_leaves_nothing_when_the_write_fails(tmp_path, monkeypatch):
    monkeypatch.setattr(atomic.os, "fsync", lambda fd: (_ for _ in ()).throw(OSError(errno.ENOSPC, "No space")))
    with pytest.raises(OSError, match="No space"):
        atomic.write_new(tmp_path, b"{}" * 1000, iter([tmp_path / "r.json"]))
    assert list(tmp_path.iterdir()) == []


def test_save_does_not_make_a_vanished_folder_again_when_asked_not_to(tmp_path, minimal_profile):
    with pytest.raises(FileNotFoundError):
        save_result(minimal_profile, None, tmp_path / "gone", create_folder=False)
    assert not (tmp_path / "gone").exists()
    assert save_result(minimal_profile, None, tmp_path / "made").parent == tmp_path / "made"  # the default
