"""Speed of ``npucheck fleet`` over a large fleet (pytest-benchmark; see test_bench_speed.py for how to run).

The issue's bound: 1,000 stored profiles read, analysed and printed in at most 10 s on the 2-core CI machine, with
bounded memory. The profiles come from ``scripts/fleet_scale.py`` (realistic H200 profiles: 20 ok GEMM cases of 30
raw samples each, a headline energy window with its trace), written compactly so that the fixture takes ~2 s.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import time
from pathlib import Path
from types import ModuleType

import pytest

DEVICES = 1000
WALL_LIMIT_S = 10.0
RSS_LIMIT_MIB = 500.0


def _scale_script() -> ModuleType:
    path = Path(__file__).resolve().parents[2] / "scripts" / "fleet_scale.py"
    spec = importlib.util.spec_from_file_location("fleet_scale", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def big_fleet(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("fleet") / "fleet"
    sizes = _scale_script().write_fleet(DEVICES, directory, indent=None)
    assert sizes["profiles"] == DEVICES - 1  # one member is missing
    return directory


# A small process that runs the command and reports its peak RSS: a child forked from this test process would
# report at least this (torch-importing) process's RSS, since a fork's high-water mark starts from its parent's.
_PEAK = (
    "import resource, subprocess, sys; done = subprocess.run(sys.argv[1:]); "
    "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr); sys.exit(done.returncode)"
)


def _fleet(directory: Path, peaks: list[float]) -> float:
    """One ``npucheck fleet`` process (through :data:`_PEAK`, whose own peak is appended to ``peaks``)."""
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", _PEAK, sys.executable, "-m", "npucheck.cli", "fleet", str(directory)],
        capture_output=True,
        text=True,
        check=False,
    )
    wall = time.perf_counter() - started
    *stderr, peak_kib = done.stderr.splitlines()
    assert done.returncode == 0, done.stderr
    assert "1000 devices, 10 flagged" in done.stdout and stderr == []
    peaks.append(int(peak_kib) / 1024)  # Linux: KiB
    return wall


def test_fleet_of_a_thousand_profiles(benchmark, big_fleet: Path):
    """The whole process: start-up, 1,000 profiles parsed, the analysis, the table printed."""
    peaks: list[float] = []
    wall = benchmark.pedantic(_fleet, args=(big_fleet, peaks), rounds=3, iterations=1)
    peak_mib = max(peaks)
    benchmark.extra_info["wall_s"] = wall
    benchmark.extra_info["peak_rss_mib"] = peak_mib
    assert wall <= WALL_LIMIT_S, f"npucheck fleet took {wall:.1f} s over {DEVICES} profiles"
    assert peak_mib < RSS_LIMIT_MIB, f"npucheck fleet peaked at {peak_mib:.0f} MiB"
