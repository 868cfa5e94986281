"""Fleet runs: every device of a node, every node of a cluster, started by torch's own launcher.

How a fleet run is put together (docs/fleet.md says it for users):

* **Launch.** ``torchrun … -m npucheck run --fleet DIR`` (or ``srun torchrun …``, or a Kubernetes PyTorchJob,
  which set the same variables) starts one *rank* per device. ``npucheck run --device all`` starts the ranks of
  one node itself through torch's elastic launch API (:func:`launch_node`), exactly as torchrun would.
* **One measuring process per rank.** Each rank (:class:`Rank`) starts one ``npucheck run`` for its device
  (``LOCAL_RANK`` picks it) and watches it. A measuring process that crashes, runs out of memory or hangs past the
  deadline is recorded as an error with what is known; the rank itself never dies of it, so torchrun (which
  stops every rank of a node when one fails) never tears the other devices' runs down.
* **Control plane: torch.distributed's c10d store, rank 0 as the hub.** The TCPStore that torchrun's agent hosts
  for its workers (or that rank 0 hosts when another launcher set the variables), never the accelerator's own
  interconnect, which may be the broken part; no collectives and no gloo messages, because a collective waits for
  every rank and a gloo wait that times out closes all of a process's connections, so one dead rank would stop
  all of them (see :class:`_Board`). Each rank posts "ready" (its device, its measuring process, the time its
  plan needs); rank 0 posts "go" (the shared deadline, the sibling processes per host) once every rank is ready or
  the join timeout has passed: that is the start barrier, after which all ranks start the suite together. Each
  rank then posts its result profile, which rank 0 takes and writes, with the fleet summary (``fleet.json``,
  npucheck.fleetfile), to DIR. Rank 0 can post "stop" (Ctrl-C on rank 0, a refused rank); every rank looks for
  it while it measures. Every wait has a deadline, and nothing waits on a rank that has gone.
* **Nothing measured is lost.** Each measuring process saves its own profile to DIR on its own host before
  anything is sent; if rank 0 or the rendezvous is lost, each rank says where its profile is. Ctrl-C stops every
  measuring process, which saves what it measured (as a plain ``npucheck run`` does), and rank 0 writes the
  summary of what arrived.
* **CPU fleets.** Ranks on one host that measure the CPU split the host's cores between them (each rank bound to
  its slice, threads = slice size), so that ranks do not fight over cores; with fewer cores than ranks the
  slices overlap and the profiles say so.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from npucheck import __version__
from npucheck.errors import FleetError, UsageError
from npucheck.fleetfile import FLEET_FILE, FLEET_SCHEMA, FLEET_SCHEMA_VERSION, profile_stem, write_summary

__all__ = [
    "ENV_PARENT",
    "GRACE_S",
    "JOIN_TIMEOUT_S",
    "launch_node",
    "local_devices",
    "member_device",
    "Rank",
    "rank_env",
    "RankEnv",
    "cpu_slice",
    "deadline_s",
    "open_board",
    "orphaned_with",
    "wait_for_go",
]

ENV_PARENT = "NPUCHECK_FLEET_PARENT"
"""Set by ``npucheck run --device all`` for the ranks it launches (their launcher is then ``device-all``)."""
JOIN_TIMEOUT_S = 300.0
"""How long rank 0 waits for every rank to report ready, and a rank for rank 0's "go" (``--fleet-join-timeout``)."""
GRACE_S = 15.0
"""After the deadline (or Ctrl-C) a measuring process gets SIGINT and this long to save what it measured, before
SIGKILL (torchrun gives its workers 30 s after passing a signal on)."""
DEADLINE_FACTOR, DEADLINE_MARGIN_S = 1.5, 120.0
"""Without ``--fleet-timeout`` the deadline is this factor times the longest announced plan plus this margin."""
RESULT_MARGIN_S = 15.0
"""Rank 0 waits this long past the deadline plus GRACE_S for results: a rank stops its measuring process at the
deadline, gives it GRACE_S to save, then sends."""
POLL_S = 0.05
STOP_POLL_S = 0.25
"""How often a rank looks at the fleet's store (go, stop, results)."""
INTERRUPTED_WAIT_S = 22.0
"""After Ctrl-C rank 0 waits this long for the others' partial results, then writes the summary: torchrun and the
elastic launch kill their workers 30 s after passing the signal on (TORCH_ELASTIC_SHUTDOWN_TIMEOUT)."""


def _utc_now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# --------------------------------------------------------------------------------------------------- where am I
@dataclass(frozen=True)
class RankEnv:
    """The launcher's description of this rank (torchrun's variables)."""

    rank: int
    local_rank: int
    world_size: int
    local_world_size: int
    launcher: str
    run_id: str | None


_REQUIRED = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")


def rank_env(env: dict[str, str] | os._Environ[str] | None = None) -> RankEnv | None:
    """This process's place in the fleet from torchrun's environment, or None when no launcher set it.

    Raises:
        UsageError: some but not all of the variables are set, or one is not a number.
    """
    env = os.environ if env is None else env
    present = [name for name in _REQUIRED if name in env]
    if not present:
        return None
    missing = [name for name in _REQUIRED if name not in env]
    if missing:
        raise UsageError(
            f"--fleet: {', '.join(present)} set but {', '.join(missing)} not: start the ranks with torchrun "
            "(or a launcher that sets all of RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT)"
        )
    try:
        numbers = {name: int(env[name]) for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
        local_world = int(env.get("LOCAL_WORLD_SIZE", "1"))
    except ValueError as e:
        raise UsageError(f"--fleet: a launcher variable is not a number: {e}") from e
    if not 0 <= numbers["RANK"] < numbers["WORLD_SIZE"] or not 0 <= numbers["LOCAL_RANK"] < max(local_world, 1):
        raise UsageError(
            f"--fleet: RANK {numbers['RANK']} / WORLD_SIZE {numbers['WORLD_SIZE']} / LOCAL_RANK "
            f"{numbers['LOCAL_RANK']} / LOCAL_WORLD_SIZE {local_world} do not fit together"
        )
    launcher = "device-all" if env.get(ENV_PARENT) else "torchrun" if "TORCHELASTIC_RUN_ID" in env else "env"
    return RankEnv(
        rank=numbers["RANK"],
        local_rank=numbers["LOCAL_RANK"],
        world_size=numbers["WORLD_SIZE"],
        local_world_size=max(local_world, 1),
        launcher=launcher,
        run_id=env.get("TORCHELASTIC_RUN_ID") or None,
    )


def local_devices() -> tuple[str | None, int]:
    """The accelerator type present here and how many devices of it this process sees (CUDA_VISIBLE_DEVICES and
    its kin apply), or (None, 0) on a host without one."""
    from npucheck.measure.devices import accelerator_type

    kind = accelerator_type()
    if kind is None:
        return None, 0
    import torch

    return kind, int(torch.accelerator.device_count())


def member_device(spec: str, local_rank: int, accelerator: str | None, count: int) -> str:
    """The device a rank measures: ``auto``/``all`` → the local accelerator with the rank's index (the CPU on a
    host without one); a type without an index (``cuda``) → that type with the index; an explicit ``cuda:2`` as
    given. When a rank sees exactly one device (Slurm's ``--gpus-per-task=1``, or CUDA_VISIBLE_DEVICES set per
    rank), that device is index 0 whatever the local rank.

    Raises:
        UsageError: the rank's index is beyond the devices this process sees.
    """
    spec = spec.strip().lower()
    if spec in ("auto", "all"):
        if accelerator is None:
            return "cpu"
        spec = accelerator
    if spec == "cpu" or ":" in spec:
        return spec
    if spec == accelerator and count == 1:
        return f"{spec}:0"
    if spec == accelerator and local_rank >= count:
        raise UsageError(
            f"local rank {local_rank} has no {spec} device: this process sees {count} (start at most {count} "
            "ranks per node, or check CUDA_VISIBLE_DEVICES and its kin)"
        )
    return f"{spec}:{local_rank}"


def cpu_slice(local_rank: int, local_world_size: int, cores: list[int]) -> tuple[list[int], bool]:
    """The cores of a CPU rank: the host's (allowed) cores cut into ``local_world_size`` contiguous slices, the
    remainder going to the first slices; with fewer cores than ranks, ranks share one core each, round robin
    (``shared`` is then True)."""
    cores = sorted(cores)
    if local_world_size <= 1:
        return cores, False
    if len(cores) < local_world_size:
        return [cores[local_rank % len(cores)]], True
    base, extra = divmod(len(cores), local_world_size)
    start = local_rank * base + min(local_rank, extra)
    return cores[start : start + base + (1 if local_rank < extra else 0)], False


def deadline_s(plans_s: list[float], timeout_s: float | None) -> float:
    """Seconds from the start barrier until rank 0 stops waiting for results: ``--fleet-timeout``, else
    DEADLINE_FACTOR times the longest plan any rank announced plus DEADLINE_MARGIN_S."""
    if timeout_s is not None:
        return timeout_s
    return DEADLINE_FACTOR * max(plans_s, default=0.0) + DEADLINE_MARGIN_S


# --------------------------------------------------------------------------------------------------- messages
CHUNK_BYTES = 4 * 2**20
"""A result is stored in pieces of at most this size (the c10d store refuses values of 16 MiB)."""


class _Board:
    """The fleet's notice board: torch.distributed's c10d TCPStore (the one torchrun's agent hosts for its
    workers, or one rank 0 hosts when another launcher set the variables), keys under ``npucheck/<run id>``.

    Why a store and not gloo messages: a gloo wait that times out closes every connection of the process (gloo's
    UnboundBuffer signals "Application timeout caused pair closure" to the whole context), so one rank that never
    answers would cost every other rank's result; and a gloo receive from any rank first waits for every rank's
    address. A store key is read when it is there (``check`` does not wait), every call has its own timeout, and
    a dead rank costs nothing but its own keys. Each rank posts ``ready/<rank>`` and appends its rank to
    ``ready``; rank 0 posts ``go`` (or ``stop`` / ``stop/<rank>``); each rank posts its result in pieces and
    appends its rank to ``done``; rank 0 takes each result and deletes its keys.
    """

    def __init__(self, store: Any):
        self._store = store

    def post(self, key: str, doc: dict[str, Any]) -> None:
        self._store.set(key, zlib.compress(json.dumps(doc).encode("utf-8"), 6))

    def read(self, key: str) -> dict[str, Any] | None:
        """The document at ``key``, None while it is not there (never waits)."""
        if not self._store.check([key]):
            return None
        doc: dict[str, Any] = json.loads(zlib.decompress(self._store.get(key)).decode("utf-8"))
        return doc

    def enrol(self, key: str, rank: int) -> None:
        self._store.append(key, f"{rank},")

    def enrolled(self, key: str) -> list[int]:
        if not self._store.check([key]):
            return []
        return [int(r) for r in bytes(self._store.get(key)).decode("ascii").split(",") if r]

    def put_result(self, rank: int, doc: dict[str, Any]) -> None:
        data = zlib.compress(json.dumps(doc).encode("utf-8"), 6)
        pieces = [data[i : i + CHUNK_BYTES] for i in range(0, len(data), CHUNK_BYTES)] or [b""]
        for index, piece in enumerate(pieces):
            self._store.set(f"result/{rank}/{index}", piece)
        self._store.set(f"result/{rank}/n", str(len(pieces)))
        self.enrol("done", rank)

    def take_result(self, rank: int) -> dict[str, Any]:
        count = int(bytes(self._store.get(f"result/{rank}/n")).decode("ascii"))
        data = b"".join(bytes(self._store.get(f"result/{rank}/{i}")) for i in range(count))
        for i in range(count):
            self._store.delete_key(f"result/{rank}/{i}")  # the store's memory stays bounded
        doc: dict[str, Any] = json.loads(zlib.decompress(data).decode("utf-8"))
        return doc


def open_board(env: RankEnv, timeout_s: float, environ: dict[str, str] | os._Environ[str] | None = None) -> _Board:
    """Connect to the fleet's store as torch's ``env://`` rendezvous would: a client of torchrun's agent store
    (``TORCHELASTIC_USE_AGENT_STORE=True``), else rank 0 hosts it at MASTER_ADDR:MASTER_PORT and the others
    connect. Rank 0 never waits for the others to connect (``wait_for_workers=False``): a rank that never starts
    is recorded missing, it does not stop the fleet.

    Raises:
        Exception: torch's DistNetworkError/DistStoreError when the store cannot be reached within ``timeout_s``.
    """
    import torch.distributed as dist

    environ = os.environ if environ is None else environ
    agent = environ.get("TORCHELASTIC_USE_AGENT_STORE") == "True"
    store = dist.TCPStore(
        environ["MASTER_ADDR"],
        int(environ["MASTER_PORT"]),
        env.world_size,
        env.rank == 0 and not agent,
        timedelta(seconds=timeout_s),
        wait_for_workers=False,
    )
    return _Board(dist.PrefixStore(f"npucheck/{env.run_id or 'fleet'}", store))


# --------------------------------------------------------------------------------------------------- the child
def wait_for_go(member: dict[str, Any], plan_s: float, device_id: str) -> dict[str, Any]:
    """In the measuring process: say "ready" to the rank (``member['ready_file']``: the device and the time the
    plan needs) and wait for its "go" (``member['go_file']``), which carries the start time and the sibling
    processes. Files, not pipes: the rank polls them, so neither side can block the other.

    Raises:
        FleetError: no "go" within the join timeout, or the rank said "stop".
    """
    ready, go = Path(member["ready_file"]), Path(member["go_file"])
    _write_json(ready, {"pid": os.getpid(), "plan_s": plan_s, "device": device_id})
    deadline = time.monotonic() + float(member.get("join_timeout_s") or JOIN_TIMEOUT_S) * 2 + 60
    while time.monotonic() < deadline:
        if go.exists():
            try:
                answer = json.loads(go.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                time.sleep(POLL_S)  # written atomically, so only a race with the rename: look again
                continue
            if answer.get("stop"):
                raise FleetError(f"the fleet did not start: {answer['stop']}")
            return dict(answer)
        time.sleep(POLL_S)
    raise FleetError("the fleet's start signal never came (the rank watching this process is gone?)")


def orphaned_with(member: dict[str, Any]) -> None:
    """In the measuring process, first thing: a SIGINT or SIGTERM (its rank passing on Ctrl-C or the launcher's
    stop, or the deadline) stops the run once, as Ctrl-C does, so that it saves what it measured; any later one is
    ignored (a second interrupt while saving would lose the profile). On Linux, the rank's death (SIGKILL, a
    crash) sends it SIGINT too (``PR_SET_PDEATHSIG``), and if the rank is already gone it stops at once.
    """
    interrupted = False

    def once(signum: int, frame: Any) -> None:
        nonlocal interrupted
        if interrupted:
            return
        interrupted = True
        raise KeyboardInterrupt

    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, once)
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGINT), 0, 0, 0)  # 1: PR_SET_PDEATHSIG
        except (OSError, AttributeError):
            pass  # no prctl: an orphaned measuring process runs to its end and saves its profile then
    rank_pid = member.get("rank_pid")
    if isinstance(rank_pid, int) and os.getppid() != rank_pid:
        raise FleetError("the rank that started this measuring process is gone")


def _write_json(path: Path, doc: dict[str, Any]) -> None:
    from npucheck.atomic import write_atomic

    write_atomic(path, json.dumps(doc).encode("utf-8"))


# --------------------------------------------------------------------------------------------------- a rank
@dataclass
class _Own:
    """What this rank knows about its measuring process."""

    status: str = "missing"
    reason: str | None = None
    exit_code: int | None = None
    pid: int | None = None
    plan_s: float = 0.0
    device: str | None = None
    profile_text: str | None = None


class Rank:
    """One rank of a fleet run: starts and watches the measuring process, talks to rank 0 through the board.

    ``child_args``: the ``npucheck run`` options every rank shares (suite, kernels, power, …), without device,
    output and fleet options. ``echo``: where this rank's one-line messages go. ``on_summary`` (rank 0): called
    once fleet.json is written; what it returns (the reading side's analysis) is stored in the summary.
    """

    def __init__(
        self,
        env: RankEnv,
        fleet_dir: Path,
        child_args: list[str],
        device_spec: str,
        threads: int | None,
        timeout_s: float | None,
        join_timeout_s: float,
        echo: Callable[[str], None],
        on_summary: Callable[[Path], dict[str, Any] | None] | None = None,
    ):
        self.env = env
        self.dir = fleet_dir
        self.child_args = child_args
        self.device_spec = device_spec
        self.threads = threads
        self.timeout_s = timeout_s
        self.join_s = join_timeout_s
        self.echo = echo
        self.on_summary = on_summary
        self.host = socket.gethostname()
        self._child: subprocess.Popen[bytes] | None = None
        self._stop_reason: str | None = None
        self._interrupted = False
        self._interrupted_at = 0.0
        self._private: Path | None = None

    # ------------------------------------------------------------------------------------------- signals
    def _on_signal(self, signum: int, _frame: Any) -> None:
        """Ctrl-C or the launcher's SIGTERM, the first time: the measuring process is asked, once, to stop and save
        (SIGINT, as Ctrl-C would; it runs in a session of its own, so nothing else reaches it), and this rank goes
        on to report what it saved. Later signals change nothing."""
        if self._interrupted:
            return
        self._interrupted_at = time.monotonic()
        self._interrupted = True
        self._stop_reason = f"interrupted ({signal.Signals(signum).name})"
        self._signal_child()

    def _signal_child(self) -> None:
        child = self._child
        if child is not None and child.poll() is None:
            try:
                child.send_signal(signal.SIGINT)
            except OSError:
                pass  # it has just exited: nothing to stop

    # ------------------------------------------------------------------------------------------- run
    def run(self) -> int:
        """The whole rank; returns its exit code. Only rank 0's carries the fleet's outcome: any other rank exits
        0 once its profile is saved and offered (a non-zero exit would make torchrun stop its node's other ranks)."""
        try:
            return self._run()
        finally:
            child = self._child
            if self._private is not None and (child is None or child.poll() is not None):
                shutil.rmtree(self._private, ignore_errors=True)  # the ready/go files; the logs stay

    def _run(self) -> int:
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, self._on_signal)
        started = time.monotonic()
        self.dir.mkdir(parents=True, exist_ok=True)
        (self.dir / "logs").mkdir(exist_ok=True)
        private = self.dir / "logs" / f".rank{self.env.rank}-{os.getpid()}"
        private.mkdir(exist_ok=True)
        self._private = private
        own = _Own()
        problem = self._prepare(own)
        stem = profile_stem(self.host, self.env.local_rank, own.device or self.device_spec)
        out = self.dir / f"{stem}.json"
        if problem is None and out.exists():
            problem = f"{out}: already exists; a fleet directory is never overwritten (choose a new --fleet DIR)"
        abort = None  # rank 0 only: a reason to stop the whole fleet before it starts
        if self.env.rank == 0 and (self.dir / FLEET_FILE).exists():
            abort = problem = f"{self.dir / FLEET_FILE}: already exists; choose a new --fleet DIR"
        try:
            board = open_board(self.env, self.join_s)
        except Exception as e:  # noqa: BLE001 - a lost rendezvous: measure alone, keep the profile here
            self.echo(f"rank {self.env.rank}: the fleet's store cannot be reached ({_line(e)}); measuring alone")
            return self._alone(own, problem, out, stem, private)
        if problem is None:
            self._start_child(own, out, stem, private)
            self._await_ready(own, private, started + self.join_s)
        else:
            own.status, own.reason = "error", problem
        ready = {
            "rank": self.env.rank,
            "host": self.host,
            "local_rank": self.env.local_rank,
            "device": own.device,
            "stem": stem,
            "pid": own.pid if own.status == "ready" else None,
            "plan_s": own.plan_s,
            "error": own.reason if own.status != "ready" else None,
        }
        if self.env.rank == 0:
            return self._hub(board, own, ready, out, private, started, abort)
        return self._spoke(board, own, ready, out, private)

    def _prepare(self, own: _Own) -> str | None:
        """The device this rank measures; the reason it cannot, if it cannot."""
        try:
            accelerator, count = local_devices()
            own.device = member_device(self.device_spec, self.env.local_rank, accelerator, count)
        except UsageError as e:
            own.device = None
            return str(e)
        return None

    def _member(self, private: Path) -> dict[str, Any]:
        return {
            "rank": self.env.rank,
            "local_rank": self.env.local_rank,
            "world_size": self.env.world_size,
            "local_world_size": self.env.local_world_size,
            "launcher": self.env.launcher,
            "run_id": self.env.run_id,
            "cpu_cores": None,
            "cpu_cores_shared": False,
            "ready_file": str(private / "ready.json"),
            "go_file": str(private / "go.json"),
            "join_timeout_s": self.join_s,
            "rank_pid": os.getpid(),
        }

    def _cpu_cores(self) -> tuple[list[int], bool]:
        """This rank's cores: its slice of the host's, or what the launcher already bound it to (a Slurm task's
        cpuset, ``numactl``): a process that cannot use every core of the host has been placed already."""
        allowed = sorted(os.sched_getaffinity(0))
        if len(allowed) < (os.cpu_count() or len(allowed)):
            return allowed, False
        return cpu_slice(self.env.local_rank, self.env.local_world_size, allowed)

    def _start_child(self, own: _Own, out: Path, stem: str, private: Path) -> None:
        member = self._member(private)
        threads = self.threads
        if own.device == "cpu" and hasattr(os, "sched_getaffinity"):
            member["cpu_cores"], member["cpu_cores_shared"] = self._cpu_cores()
            threads = threads or len(member["cpu_cores"])
        command = [sys.executable, "-m", "npucheck", "run", *self.child_args, "--device", str(own.device)]
        command += ["-o", str(out), "--fleet-member", json.dumps(member)]
        if threads is not None:
            command += ["--threads", str(threads)]
        log = self.dir / "logs" / f"{stem}.log"
        env = {**os.environ, "COLUMNS": os.environ.get("COLUMNS", "120")}
        for name in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT", "LOCAL_RANK"):
            env.pop(name, None)  # the measuring process is not a rank
        with open(log, "wb") as sink:
            # A session of its own: the launcher's signals to the rank's process group (torchrun stops a rank with
            # killpg) and the terminal's Ctrl-C reach the rank, which passes them on once.
            self._child = subprocess.Popen(
                command,
                stdout=sink,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env,
                start_new_session=True,
            )
        own.pid = self._child.pid
        self._log = log
        self._out = out

    def _await_ready(self, own: _Own, private: Path, deadline: float) -> None:
        ready = private / "ready.json"
        assert self._child is not None
        while time.monotonic() < deadline and not self._interrupted:
            if ready.exists():
                try:
                    said = json.loads(ready.read_text(encoding="utf-8"))
                except (OSError, ValueError):
                    time.sleep(POLL_S)
                    continue
                own.plan_s = float(said.get("plan_s") or 0.0)
                own.status = "ready"
                return
            if self._child.poll() is not None:
                self._collect(own)
                return
            time.sleep(POLL_S)
        self._stop_child(GRACE_S)
        self._collect(own)
        if own.status not in ("ok", "interrupted"):
            own.status = "error"
            own.reason = own.reason or f"the measuring process was not ready within {self.join_s:g} s"

    def _stop_child(self, grace_s: float) -> None:
        """SIGINT (the measuring process saves what it measured), then SIGKILL after ``grace_s``."""
        child = self._child
        if child is None or child.poll() is not None:
            return
        try:
            child.send_signal(signal.SIGINT)
            child.wait(grace_s)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
        except OSError:
            pass  # already gone

    def _watch_child(self, own: _Own, deadline: float, board: _Board | None, poll: Callable[[], None]) -> None:
        """Wait for the measuring process until the deadline, a stop posted by rank 0, or Ctrl-C (then GRACE_S
        more); then stop it. ``poll`` runs between looks (rank 0 takes the results that have arrived)."""
        child = self._child
        assert child is not None
        looked = 0.0
        while child.poll() is None:
            now = time.monotonic()
            if self._interrupted and now > self._interrupted_at + GRACE_S:
                break
            if now >= deadline:
                self._stop_reason = self._stop_reason or "past the fleet deadline: stopped"
                break
            if board is not None and now - looked > STOP_POLL_S and not self._interrupted:
                looked = now
                stop = self._posted_stop(board)
                if stop is not None:
                    self._stop_reason = stop
                    self._interrupted, self._interrupted_at = True, now
                    self._signal_child()
            poll()
            time.sleep(POLL_S)
        if child.poll() is None:
            self._stop_child(GRACE_S if not self._interrupted else 1.0)
        self._collect(own)

    def _posted_stop(self, board: _Board) -> str | None:
        try:
            said = board.read(f"stop/{self.env.rank}") or board.read("stop")
        except Exception:  # noqa: BLE001 - the store is gone (rank 0's host): measuring goes on
            return None
        return str(said["reason"]) if said is not None else None

    def _collect(self, own: _Own) -> None:
        """The measuring process's outcome: its profile (complete or partial), else its last error line."""
        child = self._child
        own.exit_code = child.poll() if child is not None else None
        out = getattr(self, "_out", None)
        if out is not None and out.exists():
            own.profile_text = out.read_text(encoding="utf-8")
            try:
                interrupted = bool(json.loads(own.profile_text).get("interrupted"))
            except ValueError:
                interrupted = True
            own.status = "interrupted" if interrupted else "ok"
            if interrupted:
                own.reason = self._stop_reason or "the run was interrupted"
            return
        own.status = "error"
        last = _last_error_line(getattr(self, "_log", None))
        code = own.exit_code
        what = (
            f"killed by {signal.Signals(-code).name}"
            if code is not None and code < 0 and -code in signal.Signals._value2member_map_
            else f"exit code {code}"
        )
        own.reason = f"the measuring process ended without a profile ({what})" + (f": {last}" if last else "")

    def _go(self, own: _Own, private: Path, answer: dict[str, Any]) -> None:
        """Pass rank 0's answer (go, or stop) to the measuring process waiting for it."""
        if own.status == "ready":
            _write_json(private / "go.json", answer)

    def _result(self, own: _Own, ready: dict[str, Any], out: Path) -> dict[str, Any]:
        return {
            **ready,
            "status": own.status,
            "reason": own.reason,
            "exit_code": own.exit_code,
            "local_copy": str(out.resolve()) if own.profile_text is not None else None,
            "profile_text": own.profile_text,
        }

    # ------------------------------------------------------------------------------------------- rank > 0
    def _spoke(self, board: _Board, own: _Own, ready: dict[str, Any], out: Path, private: Path) -> int:
        try:
            board.post(f"ready/{self.env.rank}", ready)
            board.enrol("ready", self.env.rank)
        except Exception as e:  # noqa: BLE001 - the store is gone: measure alone
            self.echo(f"rank {self.env.rank}: rank 0's store is gone ({_line(e)}); measuring alone")
            return self._on_own(own, out, private)
        answer = self._await_answer(board)
        if answer is None:
            if self._interrupted:
                self._go(own, private, {"stop": "interrupted before the fleet started"})
                self._stop_child(GRACE_S)
                return self._kept(own, out)
            self.echo(f"rank {self.env.rank}: no start signal from rank 0; measuring alone")
            return self._on_own(own, out, private)
        if "stop" in answer:
            self._stop_reason = str(answer["stop"])
            self._go(own, private, {"stop": answer["stop"]})
            self._stop_child(GRACE_S)
            self.echo(f"rank {self.env.rank}: {answer['stop']}")
            return 0
        deadline = time.monotonic() + float(answer["deadline_s"])
        siblings = [int(p) for p in answer["siblings"].get(self.host, []) if p != own.pid]
        self._go(own, private, {"started_utc": answer["started_utc"], "siblings": siblings})
        if own.status == "ready":
            self._watch_child(own, deadline, board, lambda: None)
        try:
            board.put_result(self.env.rank, self._result(own, ready, out))
        except Exception as e:  # noqa: BLE001 - rank 0's store is gone: the profile stays here
            self.echo(f"rank {self.env.rank}: the result could not be sent to rank 0 ({_line(e)})")
        return self._kept(own, out)

    def _await_answer(self, board: _Board) -> dict[str, Any] | None:
        """Rank 0's ``go`` or ``stop`` (also ``stop/<rank>``), polled until 2 × the join timeout + GRACE_S."""
        deadline = time.monotonic() + 2 * self.join_s + GRACE_S
        while time.monotonic() < deadline and not self._interrupted:
            try:
                for key in (f"stop/{self.env.rank}", "stop", "go"):
                    said = board.read(key)
                    if said is not None:
                        return {"stop": said["reason"]} if key.startswith("stop") else said
            except Exception:  # noqa: BLE001 - the store is gone: no answer will come
                return None
            time.sleep(STOP_POLL_S)
        return None

    def _kept(self, own: _Own, out: Path) -> int:
        if own.profile_text is not None:
            self.echo(f"rank {self.env.rank}: this rank's profile is saved on {self.host} at {out.resolve()}")
        else:
            self.echo(f"rank {self.env.rank}: no profile: {own.reason}")
        return 0

    def _on_own(self, own: _Own, out: Path, private: Path) -> int:
        """Rank 0 cannot be reached: measure this device anyway, keep its profile here, say where."""
        if own.status == "ready":
            wait = deadline_s([own.plan_s], self.timeout_s)
            self._go(own, private, {"started_utc": _utc_now(), "siblings": []})
            self._watch_child(own, time.monotonic() + wait, None, lambda: None)
        return self._kept(own, out)

    def _alone(self, own: _Own, problem: str | None, out: Path, stem: str, private: Path) -> int:
        """The store could not be reached at all: measure this device anyway, keep the profile here, say where."""
        if problem is not None:
            self.echo(f"rank {self.env.rank}: {problem}")
            return 2 if self.env.rank == 0 else 0
        self._start_child(own, out, stem, private)
        self._await_ready(own, private, time.monotonic() + self.join_s)
        self._on_own(own, out, private)
        return FleetError.exit_code if self.env.rank == 0 else 0

    # ------------------------------------------------------------------------------------------- rank 0
    def _hub(
        self,
        board: _Board,
        own: _Own,
        ready: dict[str, Any],
        out: Path,
        private: Path,
        started_at: float,
        abort: str | None,
    ) -> int:
        world = self.env.world_size
        members: dict[int, dict[str, Any]] = {0: ready}
        join_deadline = started_at + self.join_s
        self.echo(f"fleet: {world} rank(s); waiting for every rank to be ready (up to {self.join_s:g} s)")
        while len(members) < world and time.monotonic() < join_deadline and not self._interrupted:
            for rank in board.enrolled("ready"):
                if rank not in members:
                    said = board.read(f"ready/{rank}")
                    if said is not None:
                        members[rank] = said
            time.sleep(STOP_POLL_S)
        self._refuse_duplicates(board, members)
        started = _utc_now()
        if abort or self._interrupted:
            reason = abort or f"the fleet was {self._stop_reason or 'interrupted'} before it started"
            board.post("stop", {"reason": reason})
            self._go(own, private, {"stop": reason})
            self._stop_child(GRACE_S)
            if abort:
                self.echo(f"npucheck: error: {abort}")
                return 2
            return self._write(members, {0: self._keep(self._result(own, ready, out))}, started, 0.0, final=True)
        wait_s = deadline_s([float(m.get("plan_s") or 0.0) for m in members.values()], self.timeout_s)
        by_host: dict[str, list[int]] = {}
        for m in members.values():
            if m.get("pid") and not m.get("refused"):
                by_host.setdefault(str(m["host"]), []).append(int(m["pid"]))
        board.post("go", {"started_utc": started, "deadline_s": wait_s, "siblings": by_host})
        deadline = time.monotonic() + wait_s
        self.echo(
            f"fleet: {len(members)} of {world} rank(s) ready; started {started}; results due within {wait_s:.0f} s"
        )
        results: dict[int, dict[str, Any]] = {}
        self._write(members, results, started, wait_s, final=False)  # what is known, should rank 0 be lost
        siblings = [p for p in by_host.get(self.host, []) if p != own.pid]
        self._go(own, private, {"started_utc": started, "siblings": siblings})

        def take() -> None:
            for rank in board.enrolled("done"):
                if rank not in results:
                    try:
                        results[rank] = self._keep(board.take_result(rank))
                    except Exception as e:  # noqa: BLE001 - one bad result must not cost the others
                        results[rank] = {"status": "error", "reason": f"its result could not be read: {_line(e)}"}

        if own.status == "ready":
            self._watch_child(own, deadline, None, take)
        results[0] = self._keep(self._result(own, ready, out))
        if self._interrupted:
            board.post("stop", {"reason": f"rank 0 was {self._stop_reason or 'interrupted'}"})
        expected = {r for r, m in members.items() if not m.get("refused")}
        result_deadline = deadline + GRACE_S + RESULT_MARGIN_S
        while expected - set(results):
            now = time.monotonic()
            if now >= result_deadline or (self._interrupted and now >= self._interrupted_at + INTERRUPTED_WAIT_S):
                break
            take()
            time.sleep(STOP_POLL_S)
        take()
        return self._write(members, results, started, wait_s, final=True)

    def _refuse_duplicates(self, board: _Board, members: dict[int, dict[str, Any]]) -> None:
        """Two ranks with one profile name (the same host name and local rank: cloned containers) would overwrite
        each other's profile on a shared DIR: the later rank is stopped, with the reason."""
        seen: dict[str, int] = {}
        for rank in sorted(members):
            stem = str(members[rank].get("stem"))
            if stem in seen:
                reason = (
                    f"rank {rank} has the same host name and local rank as rank {seen[stem]} ({stem}): host names "
                    "must be unique"
                )
                members[rank].update(refused=True, error=reason)
                board.post(f"stop/{rank}", {"reason": reason})
            else:
                seen[stem] = rank

    def _write(
        self,
        members: dict[int, dict[str, Any]],
        results: dict[int, dict[str, Any]],
        started: str,
        wait_s: float,
        final: bool,
    ) -> int:
        rows = []
        for rank in range(self.env.world_size):
            said = results.get(rank)
            known = members.get(rank)
            about = said if said is not None and "host" in said else known or {}
            row: dict[str, Any] = {
                "rank": rank,
                "local_rank": about.get("local_rank"),
                "host": about.get("host"),
                "device": about.get("device"),
                "status": "missing",
                "profile": None,
                "reason": None,
                "local_copy": None,
                "exit_code": None,
                "pid": about.get("pid"),
            }
            if said is not None:
                row.update(status=said["status"], reason=said.get("reason"), exit_code=said.get("exit_code"))
                row.update(local_copy=said.get("local_copy"), profile=said.get("stored"))
                if row["status"] == "error" and said.get("error"):
                    row["reason"] = said["error"]
            elif known is not None and known.get("refused"):
                row.update(status="error", reason=known["error"])
            elif known is None:
                row["reason"] = f"rank {rank} never reported ready within {self.join_s:g} s (not started, or lost)"
            elif not final:
                row["reason"] = "no result yet: the fleet was still running when this summary was written"
            elif self._interrupted:
                row["reason"] = "the fleet was interrupted before this rank's result arrived"
            else:
                row["reason"] = f"no result within {wait_s:.0f} s of the start (hung, crashed or lost)"
            rows.append(row)
        summary = {
            "schema": FLEET_SCHEMA,
            "schema_version": FLEET_SCHEMA_VERSION,
            "npucheck_version": __version__,
            "created_utc": _utc_now(),
            "started_utc": started,
            "launcher": self.env.launcher,
            "run_id": self.env.run_id,
            "command": _command(),
            "world_size": self.env.world_size,
            "hosts": sorted({str(r["host"]) for r in rows if r["host"]}),
            "settings": {"timeout_s": wait_s, "join_timeout_s": self.join_s, "args": self.child_args},
            "members": rows,
        }
        try:
            path = write_summary(self.dir, summary)
        except Exception as e:  # noqa: BLE001 - a bug here must not lose the fleet's outcome: keep it unchecked
            from npucheck.atomic import write_atomic

            text = json.dumps(summary, indent=2).encode("utf-8")
            path = write_atomic(self.dir / "fleet.unchecked.json", text)
            self.echo(f"npucheck: internal error: the fleet summary failed its schema ({_line(e)}); kept at {path}")
            return FleetError.exit_code
        if not final:
            return 0
        analysis = self.on_summary(path) if self.on_summary is not None else None
        if analysis is not None:  # what the reading side found, kept for the record (readers recompute it)
            write_summary(self.dir, {**summary, "analysis": analysis})
        if self._interrupted:
            return 130
        return 0 if all(r["status"] == "ok" for r in rows) else FleetError.exit_code

    def _keep(self, said: dict[str, Any]) -> dict[str, Any]:
        """A rank's result with its profile written to DIR (``stored``: the name there) instead of held."""
        text = said.pop("profile_text", None)
        if text is None:
            return {**said, "stored": None}
        try:
            return {**said, "stored": self._store(said["stem"], text)}
        except OSError as e:  # a full disk: this profile is lost here, but the rank kept its own copy
            reason = f"rank 0 could not write its profile ({e}); the rank's own copy: {said.get('local_copy')}"
            return {**said, "stored": None, "status": "error", "reason": reason}

    def _store(self, stem: str, text: str) -> str:
        """Rank 0's copy of a member's profile in DIR (already there when DIR is shared); the name in DIR."""
        from npucheck.atomic import write_atomic

        path = self.dir / f"{stem}.json"
        try:
            if path.exists() and path.read_text(encoding="utf-8") == text:
                return path.name
        except OSError:
            pass  # unreadable: written again below
        if path.exists():
            path = self.dir / f"{stem}.from-rank.json"
        write_atomic(path, text.encode("utf-8"))
        return path.name


def _command() -> list[str]:
    """This rank's command line as typed (``python -m npucheck`` shows as ``npucheck``)."""
    argv = list(sys.argv)
    if argv and argv[0].endswith("__main__.py"):
        argv[0] = "npucheck"
    return argv


def _line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0][:200]}" if text else type(e).__name__


def _last_error_line(log: Path | None) -> str | None:
    """The measuring process's last ``npucheck: …`` line (its one-line error), else its last line."""
    if log is None or not log.exists():
        return None
    try:
        lines = [
            line.strip() for line in log.read_text(encoding="utf-8", errors="replace").splitlines() if line.strip()
        ]
    except OSError:
        return None
    errors = [line for line in lines if line.startswith("npucheck:")]
    chosen = errors[-1] if errors else (lines[-1] if lines else None)
    return chosen[:300] if chosen else None


# --------------------------------------------------------------------------------------------------- one node
def launch_node(fleet_dir: Path, rank_args: list[str], nproc: int, echo: Callable[[str], None]) -> dict[str, Any]:
    """``npucheck run --device all``: one rank per local device, started through torch's elastic launch API (what
    ``torchrun --standalone --nproc-per-node N`` does), each rank running ``npucheck run --fleet DIR``.

    Returns what the launcher said: ``failed`` (rank → exit code) for ranks that ended badly, ``interrupted``
    and ``signal`` (its number) when a signal (Ctrl-C, SIGTERM, SIGHUP) stopped it.
    """
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.launcher.api import LaunchConfig, elastic_launch

    config = LaunchConfig(
        min_nodes=1,
        max_nodes=1,
        nproc_per_node=nproc,
        run_id=f"npucheck-{uuid.uuid4().hex[:12]}",
        rdzv_backend="c10d",
        rdzv_endpoint="localhost:0",
        max_restarts=0,
        monitor_interval=0.5,
    )
    os.environ[ENV_PARENT] = "1"
    if "OMP_NUM_THREADS" not in os.environ and hasattr(os, "sched_getaffinity"):
        # torchrun would set 1 (and warn); a fair share of the host's cores keeps each rank's host-side work
        # (inputs, the float64 reference checks) from crawling. CPU ranks set their threads from their slice.
        os.environ["OMP_NUM_THREADS"] = str(max(1, len(os.sched_getaffinity(0)) // nproc))
    args = ["-m", "npucheck", "run", "--fleet", str(fleet_dir), *rank_args]
    try:
        elastic_launch(config, sys.executable)(*args)
    except ChildFailedError as e:
        return {"failed": {rank: failure.exitcode for rank, failure in e.failures.items()}, "interrupted": False}
    except SignalException as e:  # Ctrl-C, SIGTERM, SIGHUP: the launcher has passed it on to the ranks, which saved
        return {"failed": {}, "interrupted": True, "signal": int(e.sigval)}
    finally:
        os.environ.pop(ENV_PARENT, None)
    return {"failed": {}, "interrupted": False}
