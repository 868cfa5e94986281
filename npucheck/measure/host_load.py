"""Other load on the device under test.

A single stray process on the other core of a 2-core machine halves every CPU figure, so npucheck looks before
the run (which processes are busy) and during each case (how much CPU time others used), and says so.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Any

import psutil

__all__ = [
    "BUSY_PROCESS_PERCENT",
    "busy_processes",
    "CpuSnapshot",
    "describe_busy",
    "FOREIGN_CORES_WARNING",
    "LoadMonitor",
]


BUSY_PROCESS_PERCENT = 10.0
"""A process using more than this share of one core counts as other load."""
FOREIGN_CORES_WARNING = 0.2
"""Other processes using more than this many cores on average make a figure suspect."""


@dataclass(frozen=True)
class CpuSnapshot:
    wall_s: float
    busy_s: float
    own_s: float


_BUSY_FIELDS = ("user", "nice", "system", "irq", "softirq", "steal")


class LoadMonitor:
    """Measures CPU time used by everything but this process between two snapshots.

    Steal time (a hypervisor giving our vCPU to someone else) counts as other load: for a benchmark it is the
    same thing.

    In a fleet run (npucheck.measure.fleet) several measuring processes share a host. ``cores``: the cores this
    process is bound to (a CPU fleet's slice); then only those cores' time counts, so sibling ranks on other
    cores are not other load (siblings sharing our cores are, and the profile says the cores were shared).
    ``siblings``: the other ranks' measuring processes on this host; when no cores are given (an accelerator
    fleet: every rank uses the host's CPUs for launching), their CPU time is subtracted like our own.
    """

    def __init__(
        self,
        process: psutil.Process | None = None,
        cores: list[int] | None = None,
        siblings: list[int] | None = None,
    ):
        self._process = process or psutil.Process(os.getpid())
        self._cores = sorted(set(cores)) if cores else None
        self._siblings: list[psutil.Process] = []
        for pid in (siblings or []) if self._cores is None else []:
            try:
                self._siblings.append(psutil.Process(pid))
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue

    def snapshot(self) -> CpuSnapshot:
        if self._cores is None:
            busy = _busy(psutil.cpu_times())
        else:
            per_cpu = psutil.cpu_times(percpu=True)
            busy = sum(_busy(per_cpu[core]) for core in self._cores if core < len(per_cpu))
        own_s = _process_s(self._process)
        for sibling in self._siblings:
            try:
                own_s += _process_s(sibling)
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue  # a sibling that has finished no longer uses the CPU
        return CpuSnapshot(wall_s=time.monotonic(), busy_s=busy, own_s=own_s)

    @staticmethod
    def foreign_cores(before: CpuSnapshot, after: CpuSnapshot) -> float | None:
        """Average number of cores busy with other work between the snapshots (None if too short to tell)."""
        wall = after.wall_s - before.wall_s
        if wall < 0.05:
            return None
        foreign = (after.busy_s - before.busy_s) - (after.own_s - before.own_s)
        return max(0.0, foreign / wall)


def _busy(times: Any) -> float:
    return float(sum(getattr(times, name, 0.0) for name in _BUSY_FIELDS))


def _process_s(process: psutil.Process) -> float:
    own = process.cpu_times()
    return float(own.user + own.system + getattr(own, "children_user", 0.0) + getattr(own, "children_system", 0.0))


def busy_processes(interval_s: float = 0.5, exclude: list[int] | None = None) -> list[dict[str, Any]]:
    """Processes other than this one (and ``exclude``: a fleet's sibling ranks) using more than
    BUSY_PROCESS_PERCENT of a core over ``interval_s``."""
    skip = {os.getpid(), *(exclude or [])}
    procs = []
    for proc in psutil.process_iter(["pid", "name"]):
        if proc.info["pid"] in skip:
            continue
        try:
            proc.cpu_percent(None)
            procs.append(proc)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    time.sleep(interval_s)
    busy = []
    for proc in procs:
        try:
            percent = proc.cpu_percent(None)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        if percent > BUSY_PROCESS_PERCENT:
            busy.append({"pid": proc.info["pid"], "name": proc.info["name"], "cpu_percent": round(percent, 1)})
    return sorted(busy, key=lambda p: -p["cpu_percent"])


def describe_busy(processes: list[dict[str, Any]]) -> str:
    return ", ".join(f"{p['name']} (pid {p['pid']}, {p['cpu_percent']:.0f}% of a core)" for p in processes[:5])
