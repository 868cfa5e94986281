"""Fleet runs: every device of a node, every node of a cluster, started by torch's own launcher.

How a fleet run is put together (docs/fleet.md says it for users):

* **Launch.** ``torchrun … -m npucheck run --fleet DIR`` (or ``srun torchrun …``, or a Kubernetes PyTorchJob,
  which set the same variables) starts one *rank* per device. ``npucheck run --device all`` starts the ranks of
  one node itself through torch's elastic launch API (:func:`launch_node`), exactly as torchrun would.
* **One measuring process per rank.** Each rank (:class:`Rank`) starts one ``npucheck run`` for its device
  (``LOCAL_RANK`` picks it) and watches it. A measuring process that crashes, runs out of memory or hangs past the
  deadline is recorded as an error with what is known; the rank itself never dies of it, so torchrun (which
  stops every rank of a node when one fails) never tears the other devices' runs down.
* **Control plane: gloo, point to point, rank 0 as the hub.** Never the accelerator's own interconnect, which may
  be the broken part, and no collectives: a collective waits for every rank, so one dead rank would stop all of
  them. Each rank sends rank 0 "ready" (its device, its measuring process, the time its plan needs); rank 0
  answers "go" (the shared deadline, the sibling processes on the same host) to every rank that reported before
  the join timeout: that is the start barrier, after which all ranks start the suite together. Each rank then
  sends its result profile to rank 0, which writes every device's profile and the fleet summary
  (``fleet.json``, npucheck.fleetfile) to DIR. Every wait has a deadline; gloo connects lazily
  (``TORCH_GLOO_LAZY_INIT``), so rank 0 holds one connection per rank and the others one each.
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
import queue
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
import zlib
from collections.abc import Callable, Iterator
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
    "wait_for_go",
]

ENV_PARENT = "NPUCHECK_FLEET_PARENT"
"""Set by ``npucheck run --device all`` for the ranks it launches (their launcher is then ``device-all``)."""
JOIN_TIMEOUT_S = 300.0
"""How long rank 0 waits for every rank to report ready, and a rank for rank 0's "go" (``--fleet-join-timeout``)."""
GRACE_S = 20.0
"""After the deadline (or Ctrl-C) a measuring process gets SIGINT and this long to save what it measured, before
SIGKILL (torchrun gives its workers 30 s after its own SIGTERM)."""
DEADLINE_FACTOR, DEADLINE_MARGIN_S = 1.5, 120.0
"""Without ``--fleet-timeout`` the deadline is this factor times the longest announced plan plus this margin."""
RESULT_MARGIN_S = 15.0
"""Rank 0 waits this long past the deadline plus GRACE_S for results: a rank stops its measuring process at the
deadline, gives it GRACE_S to save, then sends."""
POLL_S = 0.05
_TAGS = {"ready": 11, "go": 21, "result": 31}
"""gloo tags of the three messages; each message is a header (sender, byte count) on its tag, then the bytes on
tag + 1."""


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
_KEPT: list[Any] = []
"""Receive buffers of waits that timed out: gloo may still write a late message into them, so they must outlive
the wait (a freed buffer would be written into)."""


class _Wire:
    """Rank-to-rank messages over gloo: a dict, JSON and zlib, each wait bounded.

    A gloo wait that times out cannot be resumed (the receive is spent), and a blocked wait does not let Python
    handle Ctrl-C; so receives that may wait long run on a helper thread (:meth:`inbox`) and the caller polls.
    """

    def __init__(self, dist: Any, torch: Any):
        self._dist, self._torch = dist, torch

    def inbox(self, kind: str, count: int, timeout_s: float, src: int | None = None) -> queue.Queue[Any]:
        """Receive up to ``count`` ``kind`` messages on a daemon thread, each within ``timeout_s``; they arrive on
        the returned queue as (sender, message); the thread stops at the first failure."""
        box: queue.Queue[Any] = queue.Queue()

        def receive() -> None:
            for _ in range(count):
                try:
                    box.put(self.receive(kind, timeout_s, src))
                except Exception as e:  # noqa: BLE001 - a timeout or a broken peer ends this inbox
                    box.put(e)
                    return

        threading.Thread(target=receive, name=f"npucheck-{kind}", daemon=True).start()
        return box

    def send(self, kind: str, message: dict[str, Any], dst: int, timeout_s: float) -> None:
        payload = zlib.compress(json.dumps(message).encode("utf-8"), 6)
        torch, dist = self._torch, self._dist
        rank = dist.get_rank()
        header = torch.tensor([rank, len(payload)], dtype=torch.int64)
        timeout = timedelta(seconds=max(timeout_s, 0.001))
        dist.isend(header, dst=dst, tag=_TAGS[kind]).wait(timeout)
        body = torch.frombuffer(bytearray(payload), dtype=torch.uint8)
        dist.isend(body, dst=dst, tag=_TAGS[kind] + 1).wait(timeout)

    def receive(self, kind: str, timeout_s: float, src: int | None = None) -> tuple[int, dict[str, Any]]:
        """The next ``kind`` message (from ``src``, or from any rank): (sender, message).

        Raises:
            RuntimeError: nothing arrived within ``timeout_s`` (gloo's timeout) or the sender's connection broke.
        """
        torch, dist = self._torch, self._dist
        header = torch.zeros(2, dtype=torch.int64)
        _KEPT.append(header)
        timeout = timedelta(seconds=max(timeout_s, 0.001))
        work = dist.irecv(header, src=src, tag=_TAGS[kind])
        work.wait(timeout)
        sender, size = int(header[0]), int(header[1])
        body = torch.empty(size, dtype=torch.uint8)
        _KEPT.append(body)
        dist.irecv(body, src=sender, tag=_TAGS[kind] + 1).wait(timeout)
        _KEPT.remove(header)
        _KEPT.remove(body)
        message = json.loads(zlib.decompress(body.numpy().tobytes()).decode("utf-8"))
        return sender, message


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
    """One rank of a fleet run: starts and watches the measuring process, talks to rank 0.

    ``child_args``: the ``npucheck run`` options every rank shares (suite, kernels, power, …), without device,
    output and fleet options. ``echo``: where this rank's one-line messages go.
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
        on_summary: Callable[[Path], None] | None = None,
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

    # ------------------------------------------------------------------------------------------- signals
    def _on_signal(self, signum: int, _frame: Any) -> None:
        """Ctrl-C or the launcher's SIGTERM: the measuring process is asked to stop and save (SIGINT, as Ctrl-C
        would), and this rank goes on to report what it saved."""
        if not self._interrupted:
            self._interrupted_at = time.monotonic()
        self._interrupted = True
        self._stop_reason = f"interrupted ({signal.Signals(signum).name})"
        child = self._child
        if child is not None and child.poll() is None:
            try:
                child.send_signal(signal.SIGINT)
            except OSError:
                pass  # it has just exited: nothing to stop

    # ------------------------------------------------------------------------------------------- run
    def run(self) -> int:
        """The whole rank; returns its exit code (rank 0: the fleet's)."""
        try:
            return self._run()
        finally:
            private = getattr(self, "_private", None)
            child = self._child
            if private is not None and (child is None or child.poll() is not None):
                shutil.rmtree(private, ignore_errors=True)  # the ready/go files; the logs stay

    def _run(self) -> int:
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, self._on_signal)
        os.environ.setdefault("TORCH_GLOO_LAZY_INIT", "1")
        import torch
        import torch.distributed as dist

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
            dist.init_process_group("gloo", timeout=timedelta(seconds=self.join_s))
        except Exception as e:  # noqa: BLE001 - a lost rendezvous: measure alone, keep the profile here
            self.echo(f"rank {self.env.rank}: the fleet's rendezvous failed ({_line(e)}); measuring alone")
            return self._alone(own, problem, out, stem, private)
        wire = _Wire(dist, torch)
        if problem is None:
            self._start_child(own, out, stem, private)
            self._await_ready(own, private)
        else:
            own.status, own.reason = "error", problem
        ready = {
            "host": self.host,
            "local_rank": self.env.local_rank,
            "device": own.device,
            "stem": stem,
            "pid": own.pid if own.status != "error" else None,
            "plan_s": own.plan_s,
            "error": own.reason if own.status == "error" else None,
            "abort": abort,
        }
        if self.env.rank == 0:
            return self._hub(wire, own, ready, out, stem, private)
        return self._spoke(wire, own, ready, out, private)

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
        member: dict[str, Any] = {
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
        }
        return member

    def _start_child(self, own: _Own, out: Path, stem: str, private: Path) -> None:
        member = self._member(private)
        threads = self.threads
        if own.device == "cpu" and hasattr(os, "sched_getaffinity"):
            cores, shared = cpu_slice(self.env.local_rank, self.env.local_world_size, sorted(os.sched_getaffinity(0)))
            member["cpu_cores"], member["cpu_cores_shared"] = cores, shared
            threads = threads or len(cores)
        command = [sys.executable, "-m", "npucheck", "run", *self.child_args, "--device", str(own.device)]
        command += ["-o", str(out), "--fleet-member", json.dumps(member)]
        if threads is not None:
            command += ["--threads", str(threads)]
        log = self.dir / "logs" / f"{stem}.log"
        env = {**os.environ, "COLUMNS": os.environ.get("COLUMNS", "120")}
        for name in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"):
            env.pop(name, None)  # the measuring process is not a rank: it must never join the group itself
        with open(log, "wb") as sink:
            self._child = subprocess.Popen(
                command,
                stdout=sink,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env,
                preexec_fn=_interrupt_when_orphaned,
            )
        own.pid = self._child.pid
        self._log = log
        self._out = out

    def _await_ready(self, own: _Own, private: Path) -> None:
        deadline = time.monotonic() + self.join_s
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

    def _watch_child(self, own: _Own, deadline: float) -> None:
        """Wait for the measuring process until the deadline; then stop it."""
        child = self._child
        assert child is not None
        while child.poll() is None and time.monotonic() < deadline:
            time.sleep(POLL_S)
        if child.poll() is None:
            self._stop_reason = self._stop_reason or "past the fleet deadline: stopped"
            self._stop_child(GRACE_S)
        self._collect(own)

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

    def _go(self, own: _Own, private: Path, siblings: list[int], deadline_in_s: float, started: str) -> None:
        if own.status != "ready":
            return
        _write_json(private / "go.json", {"started_utc": started, "siblings": siblings, "deadline_s": deadline_in_s})

    # ------------------------------------------------------------------------------------------- rank > 0
    def _spoke(self, wire: _Wire, own: _Own, ready: dict[str, Any], out: Path, private: Path) -> int:
        try:
            wire.send("ready", ready, 0, self.join_s)
            box = wire.inbox("go", 1, self.join_s * 2 + 60, src=0)
            got = list(self._drain(box, 1, time.monotonic() + self.join_s * 2))
            if not got:
                raise FleetError("no start signal from rank 0" + (" (interrupted)" if self._interrupted else ""))
            go = got[0][1]
        except Exception as e:  # noqa: BLE001 - rank 0 is gone: measure alone, say where the profile is
            if self._interrupted:
                _write_json(private / "go.json", {"stop": "interrupted before the start"})
                self._stop_child(GRACE_S)
                return 130
            self.echo(f"rank {self.env.rank}: rank 0 did not answer ({_line(e)}); measuring alone")
            if own.status == "ready":
                self._go(own, private, [], deadline_s([own.plan_s], self.timeout_s), _utc_now())
                self._watch_child(own, time.monotonic() + deadline_s([own.plan_s], self.timeout_s))
            return self._kept(own, out)
        if go.get("stop"):
            self._stop_reason = str(go["stop"])
            _write_json(private / "go.json", {"stop": go["stop"]})
            self._stop_child(GRACE_S)
            self.echo(f"rank {self.env.rank}: {go['stop']}")
            return 2
        deadline = time.monotonic() + float(go["deadline_s"])
        self._go(own, private, [int(p) for p in go.get("siblings", [])], float(go["deadline_s"]), go["started_utc"])
        if own.status == "ready":
            self._watch_child(own, deadline)
        result = {**ready, "status": own.status, "reason": own.reason, "exit_code": own.exit_code}
        result["local_copy"] = str(out.resolve()) if own.profile_text is not None else None
        result["profile_text"] = own.profile_text
        try:
            wire.send("result", result, 0, max(deadline - time.monotonic(), 0.0) + GRACE_S * 2 + 60)
        except Exception as e:  # noqa: BLE001 - rank 0 is gone: the profile stays here
            self.echo(f"rank {self.env.rank}: rank 0 did not take the result ({_line(e)})")
            return self._kept(own, out)
        return 0

    def _kept(self, own: _Own, out: Path) -> int:
        if own.profile_text is not None:
            self.echo(f"rank {self.env.rank}: this rank's profile is saved on {self.host} at {out.resolve()}")
        else:
            self.echo(f"rank {self.env.rank}: no profile: {own.reason}")
        return FleetError.exit_code

    def _alone(self, own: _Own, problem: str | None, out: Path, stem: str, private: Path) -> int:
        """The rendezvous failed: measure this device anyway, keep the profile here, say where."""
        if problem is not None:
            self.echo(f"rank {self.env.rank}: {problem}")
            return 2
        self._start_child(own, out, stem, private)
        self._await_ready(own, private)
        self._go(own, private, [], deadline_s([own.plan_s], self.timeout_s), _utc_now())
        if own.status == "ready":
            self._watch_child(own, time.monotonic() + deadline_s([own.plan_s], self.timeout_s))
        return self._kept(own, out)

    # ------------------------------------------------------------------------------------------- rank 0
    def _hub(self, wire: _Wire, own: _Own, ready: dict[str, Any], out: Path, stem: str, private: Path) -> int:
        world = self.env.world_size
        members: dict[int, dict[str, Any]] = {0: ready}
        join_deadline = time.monotonic() + self.join_s
        self.echo(f"fleet: {world} rank(s); waiting for every rank to be ready (up to {self.join_s:g} s)")
        inbox = wire.inbox("ready", world - 1, self.join_s)
        for sender, said in self._drain(inbox, world - 1, join_deadline):
            members[sender] = said
        abort = ready.get("abort") or (self._stop_reason if self._interrupted else None)
        started = _utc_now()
        wait_s = deadline_s([float(m.get("plan_s") or 0.0) for m in members.values()], self.timeout_s)
        by_host: dict[str, list[int]] = {}
        for m in members.values():
            if m.get("pid"):
                by_host.setdefault(str(m["host"]), []).append(int(m["pid"]))
        for rank, m in sorted(members.items()):
            siblings = [p for p in by_host.get(str(m["host"]), []) if p != m.get("pid")]
            answer = {"started_utc": started, "deadline_s": wait_s, "siblings": siblings}
            if abort:
                answer = {"stop": abort}
            if rank == 0:
                continue
            try:
                wire.send("go", answer, rank, 30.0)
            except Exception as e:  # noqa: BLE001 - it vanished after saying ready: recorded when results are due
                members[rank]["lost"] = f"did not take the start signal: {_line(e)}"
        if abort:
            _write_json(private / "go.json", {"stop": abort})
            self._stop_child(GRACE_S)
            self.echo(f"npucheck: error: {abort}")
            return 2
        deadline = time.monotonic() + wait_s
        results_box = wire.inbox("result", len(members) - 1, wait_s + GRACE_S + RESULT_MARGIN_S)
        self.echo(
            f"fleet: {len(members)} of {world} rank(s) ready; started {started}; results due within {wait_s:.0f} s"
        )
        self._go(own, private, [p for p in by_host.get(self.host, []) if p != own.pid], wait_s, started)
        if own.status == "ready":
            self._watch_child(own, deadline)
        results: dict[int, dict[str, Any]] = {
            0: self._keep(
                {
                    **ready,
                    "status": own.status,
                    "reason": own.reason,
                    "exit_code": own.exit_code,
                    "local_copy": str(out.resolve()) if own.profile_text is not None else None,
                    "profile_text": own.profile_text,
                }
            )
        }
        expected = [r for r in members if r != 0 and "lost" not in members[r]]
        result_deadline = deadline + GRACE_S + RESULT_MARGIN_S
        if self._interrupted:
            result_deadline = min(result_deadline, time.monotonic() + GRACE_S * 2)
        for sender, said in self._drain(results_box, len(expected), result_deadline):
            results[sender] = self._keep(said)  # each profile written as it arrives: memory stays bounded
        return self._write(members, results, started, wait_s)

    def _drain(self, box: queue.Queue[Any], count: int, deadline: float) -> Iterator[tuple[int, dict[str, Any]]]:
        """Up to ``count`` messages from an inbox as they arrive, until the deadline (shortened to GRACE_S*2 on
        Ctrl-C)."""
        got = 0
        while got < count:
            if self._interrupted:
                deadline = min(deadline, self._interrupted_at + GRACE_S * 2)
            left = deadline - time.monotonic()
            if left <= 0:
                return
            try:
                item = box.get(timeout=min(left, 0.2))
            except queue.Empty:
                continue
            if isinstance(item, BaseException):
                return
            got += 1
            yield item

    def _write(
        self, members: dict[int, dict[str, Any]], results: dict[int, dict[str, Any]], started: str, wait_s: float
    ) -> int:
        rows = []
        for rank in range(self.env.world_size):
            said = results.get(rank)
            known = members.get(rank)
            row: dict[str, Any] = {
                "rank": rank,
                "local_rank": (said or known or {}).get("local_rank"),
                "host": (said or known or {}).get("host"),
                "device": (said or known or {}).get("device"),
                "status": "missing",
                "profile": None,
                "reason": None,
                "local_copy": None,
                "exit_code": None,
                "pid": (said or known or {}).get("pid"),
            }
            if said is not None:
                row.update(status=said["status"], reason=said.get("reason"), exit_code=said.get("exit_code"))
                row["local_copy"] = said.get("local_copy")
                row["profile"] = said.get("stored")
                if row["status"] == "error" and said.get("error"):
                    row["reason"] = said["error"]
            elif known is None:
                row["reason"] = f"rank {rank} never reported ready within {self.join_s:g} s (not started, or lost)"
            elif "lost" in known:
                row["reason"] = known["lost"]
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

            path = write_atomic(self.dir / "fleet.unchecked.json", json.dumps(summary, indent=2).encode("utf-8"))
            self.echo(
                f"npucheck: internal error: the fleet summary did not pass its schema ({_line(e)}); kept at {path}"
            )
            return FleetError.exit_code
        analysis = _analysis(self.dir)
        if analysis is not None:
            path = write_summary(self.dir, {**summary, "analysis": analysis})
        if self.on_summary is not None:
            self.on_summary(path)
        if self._interrupted:
            return 130
        return 0 if all(r["status"] == "ok" for r in rows) else FleetError.exit_code

    def _keep(self, said: dict[str, Any]) -> dict[str, Any]:
        """A rank's result with its profile written to DIR (``stored``: the name there) instead of held."""
        text = said.pop("profile_text", None)
        return {**said, "stored": self._store(said["stem"], text) if text is not None else None}

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


def _analysis(directory: Path) -> dict[str, Any] | None:
    """What ``npucheck fleet DIR`` finds at the default tolerance, kept in fleet.json for the record (readers
    recompute it); None, said on stderr, when the reading side cannot analyse the folder."""
    from npucheck.read import fleet as fleets

    try:
        analysed = fleets.analyse(fleets.load_fleet(directory), fleets.DEFAULT_TOLERANCE)
    except Exception as e:  # noqa: BLE001 - the summary is written without it rather than not at all
        print(f"npucheck: fleet analysis not stored in the summary: {_line(e)}", file=sys.stderr)
        return None
    flagged = analysed[analysed["flagged"]]
    return {
        "tolerance": fleets.DEFAULT_TOLERANCE,
        "outliers": [f"{fleets.device_label(row)}: {row['flag_reasons']}" for _, row in flagged.iterrows()],
        "failed_targets": [fleets.device_label(row) for _, row in analysed[analysed["failed"]].iterrows()],
    }


def _interrupt_when_orphaned() -> None:
    """In the measuring process, before it runs: if its rank dies (SIGKILL, a crash), Linux sends it SIGINT
    (``PR_SET_PDEATHSIG``), so it stops and saves what it measured like after Ctrl-C. Elsewhere: nothing."""
    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGINT), 0, 0, 0)  # 1 = PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass  # no prctl: an orphaned measuring process runs to its end and saves its profile then


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
    when a signal (Ctrl-C) stopped it.
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
    except SignalException:  # Ctrl-C (or SIGTERM): the launcher has passed it on to the ranks, which saved
        return {"failed": {}, "interrupted": True}
    finally:
        os.environ.pop(ENV_PARENT, None)
    return {"failed": {}, "interrupted": False}
