"""Fleet runs, measuring side: the rank's view of torchrun's variables, device and core choice, the load monitor's
sibling accounting, bad input; then real multi-process fleets on this CPU (gloo on loopback): two ranks started with
torchrun's variables, three under torchrun itself, ``run --device all``, a rank whose measuring process fails, a
rank killed mid-run, and Ctrl-C.

The multi-process tests slow one rank with a competing process pinned to its core (each CPU rank is bound to its
own slice of the cores) and check that it, and only it, is flagged; ``--min-sample-time 0.05`` makes each sample
average over the scheduler's time slices so that the slowed rank's interval is tight.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections import namedtuple
from datetime import timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from npucheck.cli import cli
from npucheck.errors import UsageError
from npucheck.fleetfile import load_summary, profile_stem
from npucheck.measure import fleet, host_load
from npucheck.read import fleet as fleets

HOST = socket.gethostname()
SHORT = ["--suite", "quick", "--kernels", "gemm", "--dtypes", "bf16", "--power", "none", "--warmup", "0"]
STEADY = [*SHORT, "--min-sample-time", "0.05"]
CORES = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
two_cores = pytest.mark.skipif(len(CORES) < 2, reason="needs at least 2 usable cores to bind two ranks apart")


# --------------------------------------------------------------------------------------------------- unit
TORCHRUN = {"RANK": "3", "WORLD_SIZE": "8", "LOCAL_RANK": "1", "LOCAL_WORLD_SIZE": "4", "MASTER_ADDR": "h"}


def test_no_launcher_variables_means_no_fleet():
    assert fleet.rank_env({"PATH": "/bin"}) is None


def test_torchrun_variables_give_the_rank_and_the_launcher():
    env = fleet.rank_env({**TORCHRUN, "MASTER_PORT": "1", "TORCHELASTIC_RUN_ID": "job7"})
    assert env == fleet.RankEnv(
        rank=3, local_rank=1, world_size=8, local_world_size=4, launcher="torchrun", run_id="job7"
    )
    assert fleet.rank_env({**TORCHRUN, "MASTER_PORT": "1"}).launcher == "env"
    assert fleet.rank_env({**TORCHRUN, "MASTER_PORT": "1", fleet.ENV_PARENT: "1"}).launcher == "device-all"


@pytest.mark.parametrize(
    "env, words",
    [
        (TORCHRUN, "MASTER_PORT not"),  # half a launcher
        ({**TORCHRUN, "MASTER_PORT": "1", "RANK": "x"}, "not a number"),
        ({**TORCHRUN, "MASTER_PORT": "1", "RANK": "8"}, "do not fit"),
        ({**TORCHRUN, "MASTER_PORT": "1", "LOCAL_RANK": "4"}, "do not fit"),
    ],
)
def test_inconsistent_launcher_variables_are_refused(env, words):
    with pytest.raises(UsageError, match=words):
        fleet.rank_env(env)


@pytest.mark.parametrize(
    "spec, local_rank, accelerator, count, expected",
    [
        ("auto", 2, None, 0, "cpu"),  # no accelerator: the CPU
        ("all", 2, "cuda", 4, "cuda:2"),  # LOCAL_RANK picks the device
        ("cuda", 3, "cuda", 1, "cuda:0"),  # one visible device per rank (Slurm --gpus-per-task=1)
        ("cuda:1", 0, "cuda", 4, "cuda:1"),  # explicit: as given
        ("cpu", 1, "cuda", 4, "cpu"),
    ],
)
def test_each_rank_measures_the_device_its_local_rank_names(spec, local_rank, accelerator, count, expected):
    assert fleet.member_device(spec, local_rank, accelerator, count) == expected


def test_a_local_rank_beyond_the_visible_devices_is_refused():
    with pytest.raises(UsageError, match="local rank 4 has no cuda device: this process sees 2"):
        fleet.member_device("auto", 4, "cuda", 2)


@pytest.mark.parametrize(
    "local_rank, ranks, cores, expected",
    [
        (0, 1, [0, 1, 2], ([0, 1, 2], False)),
        (0, 2, [0, 1], ([0], False)),
        (1, 2, [0, 1], ([1], False)),
        (0, 2, [4, 5, 6, 7, 8], ([4, 5, 6], False)),  # the remainder goes to the first slices
        (1, 2, [4, 5, 6, 7, 8], ([7, 8], False)),
        (2, 3, [0, 1], ([0], True)),  # fewer cores than ranks: shared, and said so
    ],
)
def test_cpu_ranks_split_the_cores(local_rank, ranks, cores, expected):
    assert fleet.cpu_slice(local_rank, ranks, cores) == expected


def test_the_deadline_follows_the_longest_plan_unless_given():
    assert fleet.deadline_s([10.0, 40.0], None) == fleet.DEADLINE_FACTOR * 40.0 + fleet.DEADLINE_MARGIN_S
    assert fleet.deadline_s([10.0, 40.0], 5.0) == 5.0


Times = namedtuple("Times", "user nice system irq softirq steal")
Own = namedtuple("Own", "user system children_user children_system")


class _Proc:
    def __init__(self, seconds):
        self.seconds = seconds

    def cpu_times(self):
        return Own(self.seconds, 0.0, 0.0, 0.0)


def test_on_a_cpu_slice_only_its_cores_count_as_other_load(monkeypatch):
    """Core 0 is ours (we used 1 s of it), core 1 is a sibling's: 5 s busy there is not our other load."""
    per_cpu = [[Times(1, 0, 0, 0, 0, 0), Times(0, 0, 0, 0, 0, 0)], [Times(2, 0, 0, 0, 0, 0), Times(5, 0, 0, 0, 0, 0)]]
    calls = iter(per_cpu)
    monkeypatch.setattr(host_load.psutil, "cpu_times", lambda percpu=False: next(calls))
    own = _Proc(0.0)
    monitor = host_load.LoadMonitor(process=own, cores=[0])
    before = monitor.snapshot()
    own.seconds = 1.0
    after = monitor.snapshot()
    after = host_load.CpuSnapshot(wall_s=before.wall_s + 1.0, busy_s=after.busy_s, own_s=after.own_s)
    assert host_load.LoadMonitor.foreign_cores(before, after) == pytest.approx(0.0)


def test_without_cores_the_sibling_ranks_cpu_time_is_not_other_load(monkeypatch):
    totals = iter([Times(0, 0, 0, 0, 0, 0), Times(3, 0, 0, 0, 0, 0)])
    monkeypatch.setattr(host_load.psutil, "cpu_times", lambda percpu=False: next(totals))
    sibling = _Proc(0.0)
    monkeypatch.setattr(host_load.psutil, "Process", lambda pid: sibling)
    own = _Proc(0.0)
    monitor = host_load.LoadMonitor(process=own, siblings=[4242])
    before = monitor.snapshot()
    own.seconds, sibling.seconds = 1.0, 1.5  # 3 s busy: 1 ours, 1.5 the sibling's, 0.5 someone else's
    after = monitor.snapshot()
    after = host_load.CpuSnapshot(wall_s=before.wall_s + 1.0, busy_s=after.busy_s, own_s=after.own_s)
    assert host_load.LoadMonitor.foreign_cores(before, after) == pytest.approx(0.5)


def test_fleet_without_a_launcher_is_a_one_line_usage_error(tmp_path, monkeypatch):
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(name, raising=False)
    result = CliRunner().invoke(cli, ["run", "--fleet", str(tmp_path / "f"), *SHORT])
    assert result.exit_code == 2
    assert "for ranks started by torchrun" in result.output and "Traceback" not in result.output


def test_a_plain_run_under_torchrun_is_refused(monkeypatch):
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("LOCAL_RANK", "0")
    monkeypatch.setenv("MASTER_ADDR", "127.0.0.1")
    monkeypatch.setenv("MASTER_PORT", "1")
    result = CliRunner().invoke(cli, ["run", *SHORT])
    assert result.exit_code == 2 and "add --fleet DIR" in result.output


def test_device_all_with_one_output_file_is_refused(tmp_path):
    result = CliRunner().invoke(cli, ["run", "--device", "all", "-o", str(tmp_path / "x.json"), *SHORT])
    assert result.exit_code == 2 and "use --fleet DIR" in result.output
    assert not list(tmp_path.iterdir())


# --------------------------------------------------------------------------------------------------- real fleets
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _rank(rank: int, world: int, port: int, fleet_dir: Path, *args: str) -> subprocess.Popen[bytes]:
    """One rank started with torchrun's variables (as a launcher such as srun with them exported would)."""
    env = {
        **os.environ,
        "RANK": str(rank),
        "LOCAL_RANK": str(rank),
        "WORLD_SIZE": str(world),
        "LOCAL_WORLD_SIZE": str(world),
        "MASTER_ADDR": "127.0.0.1",
        "MASTER_PORT": str(port),
    }
    command = [sys.executable, "-m", "npucheck", "run", "--fleet", str(fleet_dir), *args]
    return subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def _burn(core: int, count: int = 1) -> list[subprocess.Popen[bytes]]:
    """Competing processes pinned to one core: the rank bound to that core gets a share of it. Each in its own
    session: with CFS autogroups (one per session; torchrun starts each rank in a session of its own), processes
    sharing a session share one slot of the core, so two burners in one session would slow a rank no more than
    one does."""
    code = f"import os; os.sched_setaffinity(0, [{core}])\nwhile True: pass"
    return [subprocess.Popen([sys.executable, "-c", code], start_new_session=True) for _ in range(count)]


def _stop(processes: list[subprocess.Popen[bytes]]) -> None:
    for p in processes:
        p.kill()
        p.wait()


def _flagged(fleet_dir: Path) -> dict[str, bool]:
    analysed = fleets.analyse(fleets.load_fleet(fleet_dir))
    return {str(row["profile"]): bool(row["flagged"]) for _, row in analysed.iterrows()}


@pytest.mark.slow
@two_cores
def test_two_ranks_the_slowed_one_and_only_it_is_flagged_with_its_evidence(tmp_path):
    fleet_dir, port = tmp_path / "fleet", _free_port()
    burners = _burn(CORES[1])  # rank 1 is bound to the second core
    try:
        ranks = [_rank(r, 2, port, fleet_dir, *STEADY) for r in (0, 1)]
        outputs = [p.communicate(timeout=120)[0].decode() for p in ranks]
    finally:
        _stop(burners)
    assert [p.returncode for p in ranks] == [0, 0], outputs
    summary = load_summary(fleet_dir / "fleet.json")
    assert [(m["rank"], m["status"]) for m in summary["members"]] == [(0, "ok"), (1, "ok")]
    names = [f"{profile_stem(HOST, r, 'cpu')}.json" for r in (0, 1)]
    assert [m["profile"] for m in summary["members"]] == names
    profiles = [json.loads((fleet_dir / name).read_text()) for name in names]
    assert [p["environment"]["fleet"]["cpu_cores"] for p in profiles] == [[CORES[0]], [CORES[1]]]
    assert profiles[0]["environment"]["fleet"]["started_utc"] == profiles[1]["environment"]["fleet"]["started_utc"]
    assert _flagged(fleet_dir) == {names[0]: False, names[1]: True}
    assert [line.split(":")[0] for line in summary["analysis"]["outliers"]] == [profile_stem(HOST, 1, "cpu")]
    assert "fleet saved to" in outputs[0] and profile_stem(HOST, 1, "cpu") in outputs[0]  # rank 0 prints the table

    shown = subprocess.run(
        [sys.executable, "-m", "npucheck", "fleet", str(fleet_dir), "--fail-on-outlier"],
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": "100"},
    )
    assert shown.returncode == 1, shown.stderr
    assert "other load" in shown.stdout  # the evidence: the competing process on its core


@pytest.mark.slow
@two_cores
def test_three_ranks_under_torchrun_gather_at_rank_0(tmp_path):
    """torchrun itself (``--standalone``): three ranks on two cores, so ranks 0 and 2 share a core (and say so);
    rank 1's core has two competing processes, so it runs at a third of a core against its peers' half."""
    fleet_dir = tmp_path / "fleet"
    burners = _burn(CORES[1], count=2)
    try:
        done = subprocess.run(
            [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "3"]
            + ["-m", "npucheck", "run", "--fleet", str(fleet_dir), *STEADY],
            capture_output=True,
            text=True,
            timeout=150,
        )
    finally:
        _stop(burners)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    summary = load_summary(fleet_dir / "fleet.json")
    assert summary["launcher"] == "torchrun" and summary["run_id"]
    assert [m["status"] for m in summary["members"]] == ["ok"] * 3
    shared = [json.loads((fleet_dir / m["profile"]).read_text())["environment"]["fleet"] for m in summary["members"]]
    assert all(f["cpu_cores_shared"] for f in shared) and shared[0]["cpu_cores"] == shared[2]["cpu_cores"]
    names = [m["profile"] for m in summary["members"]]
    assert _flagged(fleet_dir) == {names[0]: False, names[1]: True, names[2]: False}


@pytest.mark.slow
def test_a_rank_whose_measuring_process_fails_is_recorded_and_the_other_survives(tmp_path):
    fleet_dir, port = tmp_path / "fleet", _free_port()
    ranks = [_rank(0, 2, port, fleet_dir, "--device", "cpu", *SHORT)]
    ranks.append(_rank(1, 2, port, fleet_dir, "--device", "cuda", *SHORT))  # no CUDA here: its run fails
    outputs = [p.communicate(timeout=120)[0].decode() for p in ranks]
    assert ranks[0].returncode == 5, outputs  # rank 0: the fleet is incomplete
    members = load_summary(fleet_dir / "fleet.json")["members"]
    assert members[0]["status"] == "ok" and (fleet_dir / members[0]["profile"]).exists()
    assert members[1]["status"] == "error" and members[1]["exit_code"] == 2
    assert "device 'cuda:1' is not available here" in members[1]["reason"]


@pytest.mark.slow
def test_a_killed_rank_is_missing_and_its_measuring_process_saves_what_it_measured(tmp_path):
    """SIGKILL of rank 1 mid-run: rank 0 records it missing at the deadline (nobody waits forever); rank 1's
    measuring process is told (SIGINT on its parent's death) and saves its partial profile on its host."""
    fleet_dir, port = tmp_path / "fleet", _free_port()
    timeouts = ["--fleet-timeout", "8", "--fleet-join-timeout", "30"]
    ranks = [_rank(r, 2, port, fleet_dir, *SHORT, *timeouts) for r in (0, 1)]
    log = fleet_dir / "logs" / f"{profile_stem(HOST, 1, 'cpu')}.log"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and "cases; up to about" not in _text(log):  # its opening line: ready
        time.sleep(0.1)
    time.sleep(2.0)  # measuring now
    ranks[1].kill()
    started = time.monotonic()
    out = ranks[0].communicate(timeout=120)[0].decode()
    ranks[1].wait()
    assert ranks[0].returncode == 5, out
    assert time.monotonic() - started < 8 + fleet.GRACE_S + fleet.RESULT_MARGIN_S + 10
    members = load_summary(fleet_dir / "fleet.json")["members"]
    assert members[0]["status"] == "ok"
    assert members[1]["status"] == "missing" and "no result within 8 s" in members[1]["reason"]
    partial = fleet_dir / f"{profile_stem(HOST, 1, 'cpu')}.json"
    for _ in range(100):  # the orphaned measuring process saves on its own time
        if partial.exists():
            break
        time.sleep(0.1)
    assert json.loads(partial.read_text())["interrupted"] is True


@pytest.mark.slow
def test_a_measuring_process_killed_like_an_oom_kill_is_an_error_reported_at_once(tmp_path):
    """The kernel's OOM killer (or a segfault) ends the measuring process, not the rank: the rank reports the
    error right away with how the process died, and rank 0 does not wait for the deadline."""
    fleet_dir, port = tmp_path / "fleet", _free_port()
    ranks = [_rank(r, 2, port, fleet_dir, *SHORT, "--fleet-timeout", "120") for r in (0, 1)]
    log = fleet_dir / "logs" / f"{profile_stem(HOST, 1, 'cpu')}.log"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and "cases; up to about" not in _text(log):
        time.sleep(0.1)
    time.sleep(1.0)
    children = [
        p
        for p in subprocess.run(["pgrep", "-f", "fleet-member"], capture_output=True, text=True).stdout.split()
        if "--fleet-member" in _cmdline(p) and '"rank": 1,' in _cmdline(p) and str(fleet_dir) in _cmdline(p)
    ]
    assert len(children) == 1
    started = time.monotonic()
    os.kill(int(children[0]), signal.SIGKILL)
    outputs = [p.communicate(timeout=120)[0].decode() for p in ranks]
    assert time.monotonic() - started < 60  # not the 120 s deadline
    assert ranks[0].returncode == 5, outputs
    members = load_summary(fleet_dir / "fleet.json")["members"]
    assert members[0]["status"] == "ok"
    assert members[1]["status"] == "error" and "killed by SIGKILL" in members[1]["reason"]


def _cmdline(pid: str) -> str:
    return _text(Path(f"/proc/{pid}/cmdline")).replace("\0", " ")


def _text(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except OSError:
        return ""


@pytest.mark.slow
@two_cores
def test_device_all_starts_the_ranks_through_torchs_launcher(tmp_path):
    fleet_dir = tmp_path / "fleet"
    done = subprocess.run(
        [sys.executable, "-m", "npucheck", "run", "--device", "all", "--nproc-per-node", "2", "--fleet", str(fleet_dir)]
        + SHORT,
        capture_output=True,
        text=True,
        timeout=150,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    summary = load_summary(fleet_dir / "fleet.json")
    assert summary["launcher"] == "device-all" and summary["world_size"] == 2
    assert [m["status"] for m in summary["members"]] == ["ok", "ok"]
    assert "fleet of the CPU in 2 slice(s)" in done.stdout


@pytest.mark.slow
@pytest.mark.parametrize("signum, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_ctrl_c_saves_what_every_rank_measured(tmp_path, signum, code):
    """Ctrl-C (SIGINT to the whole group) and a scheduler's SIGTERM: every rank saves, exit 128 + the signal."""
    fleet_dir = tmp_path / "fleet"
    run = subprocess.Popen(
        [sys.executable, "-m", "npucheck", "run", "--device", "all", "--nproc-per-node", "2", "--fleet", str(fleet_dir)]
        + SHORT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    logs = [fleet_dir / "logs" / f"{profile_stem(HOST, r, 'cpu')}.log" for r in (0, 1)]
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not all("cases; up to about" in _text(log) for log in logs):
        time.sleep(0.1)
    time.sleep(2.0)  # measuring now
    os.killpg(run.pid, signum)  # Ctrl-C in the terminal, or scancel: every process of the group
    out = run.communicate(timeout=120)[0].decode()
    assert run.returncode == code, out[-2000:]
    members = load_summary(fleet_dir / "fleet.json")["members"]
    assert [m["status"] for m in members] == ["interrupted", "interrupted"]
    for m in members:
        assert json.loads((fleet_dir / m["profile"]).read_text())["interrupted"] is True


def test_device_all_on_an_accelerator_host_starts_one_rank_per_device(tmp_path, monkeypatch):
    """What ``--device all`` hands torch's launcher on a 4-GPU host (the launcher replaced: no GPUs here)."""
    launched: dict[str, object] = {}

    def launch(fleet_dir, rank_args, nproc, echo):
        launched.update(fleet_dir=fleet_dir, rank_args=rank_args, nproc=nproc)
        return {"failed": {1: -9}, "interrupted": False}

    monkeypatch.setattr(fleet, "local_devices", lambda: ("cuda", 4))
    monkeypatch.setattr(fleet, "launch_node", launch)
    result = CliRunner().invoke(cli, ["run", "--device", "all", "--fleet", str(tmp_path / "f"), *SHORT])
    assert launched["nproc"] == 4 and launched["fleet_dir"] == tmp_path / "f"
    args = launched["rank_args"]
    assert args[args.index("--device") + 1] == "auto"  # each rank: cuda:LOCAL_RANK
    assert args[args.index("--kernels") + 1] == "gemm" and "--fleet-join-timeout" in args
    assert "fleet of 4 cuda device(s)" in result.output
    assert "rank 1 ended with exit code -9" in result.output  # what the launcher saw is said
    assert result.exit_code == 5  # and no summary was written: the fleet is incomplete

    too_many = CliRunner().invoke(cli, ["run", "--device", "all", "--nproc-per-node", "5", *SHORT])
    assert too_many.exit_code == 2 and "this host has 4 cuda device(s)" in too_many.output


def test_the_board_carries_a_result_larger_than_one_store_value_and_then_forgets_it():
    """Results go through torch's c10d TCPStore in pieces (it refuses values of 16 MiB), and are deleted once
    taken, so the store holding 10,000 profiles in turn never holds them all."""
    import torch.distributed as dist

    master = dist.TCPStore("127.0.0.1", 0, None, True, timedelta(seconds=5), wait_for_workers=False)
    board = fleet._Board(dist.PrefixStore("npucheck/test", master))
    big = {"stem": "h-1-cpu", "profile_text": os.urandom(3 * fleet.CHUNK_BYTES // 2).hex()}  # incompressible
    assert board.enrolled("done") == []
    board.put_result(1, big)
    assert board.enrolled("done") == [1]
    assert board.take_result(1) == big
    assert not master.check(["npucheck/test/result/1/0"]) and not master.check(["npucheck/test/result/1/1"])
    assert board.read("go") is None  # never waits for a key that is not there


def test_one_meter_or_one_gpus_power_source_cannot_be_every_ranks(tmp_path):
    for spec in ("nvml:1", "amdsmi:0", f"meter:{tmp_path / 'log.csv'}"):
        result = CliRunner().invoke(cli, ["run", "--device", "all", "--fleet", str(tmp_path / "f"), "--power", spec])
        assert result.exit_code == 2 and "every rank finds its own device's source" in result.output


@pytest.mark.slow
def test_a_rank_that_never_starts_is_missing_and_the_others_are_measured(tmp_path):
    """World size 3, rank 2 never started: rank 0 waits the join timeout, starts the two that are ready, and
    records rank 2 missing; nothing else is lost (no collective waits for it)."""
    fleet_dir, port = tmp_path / "fleet", _free_port()
    join = ["--fleet-join-timeout", "10"]
    ranks = [_rank(r, 3, port, fleet_dir, *SHORT, *join) for r in (0, 1)]
    outputs = [p.communicate(timeout=120)[0].decode() for p in ranks]
    assert [p.returncode for p in ranks] == [5, 0], outputs
    members = load_summary(fleet_dir / "fleet.json")["members"]
    assert [m["status"] for m in members] == ["ok", "ok", "missing"]
    assert "never reported ready within 10 s" in members[2]["reason"] and members[2]["host"] is None


@pytest.mark.slow
def test_two_ranks_with_one_profile_name_do_not_overwrite_each_other(tmp_path):
    """Cloned hosts (one host name) with the same local rank would write one file: the later rank is refused."""
    fleet_dir, port = tmp_path / "fleet", _free_port()
    env = {**os.environ, "WORLD_SIZE": "2", "LOCAL_RANK": "0", "LOCAL_WORLD_SIZE": "1"}
    env |= {"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)}
    command = [sys.executable, "-m", "npucheck", "run", "--fleet", str(fleet_dir), *SHORT]
    ranks = [
        subprocess.Popen(command, env={**env, "RANK": str(r)}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        for r in (0, 1)
    ]
    outputs = [p.communicate(timeout=120)[0].decode() for p in ranks]
    members = load_summary(fleet_dir / "fleet.json")["members"]
    statuses = sorted((m["status"], m["reason"] or "") for m in members)
    assert statuses[0][0] == "error" and "host names must be unique" in statuses[0][1], outputs
    assert statuses[1][0] == "ok"
