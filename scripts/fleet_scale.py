"""Generate a synthetic fleet directory of N realistic result profiles and time ``npucheck fleet`` over it.

    python scripts/fleet_scale.py 1000 /tmp/fleet-1k
    python scripts/fleet_scale.py 10000 /tmp/fleet-10k --keep

Each profile is ``tests/conftest.py``'s ``make_profile`` made into one GPU of an 8-GPU host (an ``environment.fleet``
block, a uuid, a driver, a power limit), with 20 ok GEMM measurements (10 fp16, 10 bf16; 30 raw samples each,
device state before and after) and a headline energy window with a 300-point power trace; every 97th device is
made 30% slow. A ``fleet.json`` names every member, with one member missing. Prints the wall time and peak RSS of
the ``npucheck fleet`` process and the profile size. ``tests/benchmarks/test_bench_fleet.py`` uses
:func:`write_fleet` too.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT))

from conftest import make_measurement, make_profile  # noqa: E402

from npucheck.fleetfile import FLEET_SCHEMA, FLEET_SCHEMA_VERSION, profile_stem, write_summary  # noqa: E402

GPUS_PER_HOST = 8
SAMPLES = 30
SLOW_EVERY = 97
SLOW_FACTOR = 1.3
SHAPES = [256 * (i + 1) for i in range(10)]


def _measurement(dtype: str, size: int, per_call_s: float, rng: random.Random) -> dict[str, Any]:
    flops = 2 * size**3
    samples = [per_call_s * (1 + rng.gauss(0, 0.01)) for _ in range(SAMPLES)]
    ordered = sorted(samples)
    median = (ordered[14] + ordered[15]) / 2
    state = {"sm_clock_mhz": 1980, "throttle_reasons": [], "clock_event_reasons": ["GpuIdle"], "temperature_c": 61}
    return make_measurement(
        id=f"gemm/{dtype}/m{size}_n{size}_k{size}_NN",
        dtype=dtype,
        shape={"m": size, "n": size, "k": size, "layout": "NN"},
        flops=flops,
        samples_s=samples,
        timing_method="device_events",
        stats={
            "n": SAMPLES,
            "median_s": median,
            "ci_low_s": ordered[9],
            "ci_high_s": ordered[20],
            "ci_coverage": 0.9572,
            "q1_s": ordered[7],
            "q3_s": ordered[22],
            "iqr_rel": (ordered[22] - ordered[7]) / median,
            "mean_s": sum(samples) / SAMPLES,
            "min_s": ordered[0],
            "max_s": ordered[-1],
        },
        tflops=flops / median / 1e12,
        tflops_ci=[flops / ordered[20] / 1e12, flops / ordered[9] / 1e12],
        device_state={"before": {**state, "power_limit_w": 700.0}, "after": {**state, "power_limit_w": 700.0}},
        throttled=False,
    )


def _energy(case: str, tflops: float, rng: random.Random) -> dict[str, Any]:
    watts = 650 + rng.random() * 30
    return {
        "source": "nvml",
        "scope": "module",
        "quality": "Q2",
        "uncertainty_rel": 0.05,
        "window_s": 30.0,
        "valid": True,
        "joules": watts * 30,
        "avg_watts": watts,
        "tflops": tflops,
        "tflops_per_watt": tflops / watts,
        "kind": "headline",
        "case": case,
        "trace": [[round(i * 0.1, 1), round(watts + rng.gauss(0, 5), 1)] for i in range(300)],
        "context_before": {"power_limit_w": 700.0, "sm_clock_mhz": 1980},
    }


def _uuid(host: str, local_rank: int) -> str:
    """The same GPU gets the same uuid in every generated fleet (so that two fleets compare device by device)."""
    digest = hashlib.sha256(f"{host}/{local_rank}".encode()).hexdigest()
    return f"GPU-{digest[:8]}-{digest[8:12]}-{digest[12:16]}-{digest[16:20]}-{digest[20:32]}"


def make_gpu_profile(host: str, local_rank: int, rank: int, world: int, slow: float, rng: random.Random) -> dict:
    """One H200's profile of a fleet run; ``slow`` multiplies every per-call time."""
    profile = make_profile()
    slow *= 1 + rng.gauss(0, 0.01)  # device-to-device variation
    measurements = []
    for dtype, base_tflops in (("fp16", 700.0), ("bf16", 690.0)):
        for size in SHAPES:
            efficiency = 0.4 + 0.6 * (size / SHAPES[-1])
            per_call = 2 * size**3 / (base_tflops * efficiency * 1e12) * slow
            measurements.append(_measurement(dtype, size, per_call, rng))
    peaks, per_watt = {}, {}
    for dtype in ("fp16", "bf16"):
        best = max((m for m in measurements if m["dtype"] == dtype), key=lambda m: m["tflops"])
        peaks[dtype] = {"case": best["id"], "tflops": best["tflops"], "ci_low": best["tflops_ci"][0]}
        peaks[dtype]["ci_high"] = best["tflops_ci"][1]
        if dtype == "fp16":
            best["energy"] = _energy(best["id"], best["tflops"], rng)
            value = best["energy"]["tflops_per_watt"]
            per_watt = {"fp16": value}
    profile["device"] = {
        "backend": "cuda",
        "id": f"cuda:{local_rank}",
        "name": "NVIDIA H200",
        "timing_method": "device_events",
        "validated": True,
        "properties": {"uuid": _uuid(host, local_rank), "total_memory": 150_000_000_000},
        "datasheet": None,
    }
    profile["environment"].update(
        hostname=host,
        driver="550.54.15",
        fleet={
            "rank": rank,
            "local_rank": local_rank,
            "world_size": world,
            "local_world_size": GPUS_PER_HOST,
            "launcher": "torchrun",
            "run_id": "scale",
            "started_utc": "2026-11-25T22:00:00Z",
            "cpu_cores": None,
            "cpu_cores_shared": False,
            "siblings": [],
        },
    )
    profile["settings"].update(kernels=["gemm"], dtypes=["fp16", "bf16"])
    profile["measurements"] = measurements
    profile["confirmations"] = []
    profile["summary"] = {
        "peak_tflops": {d: p["tflops"] for d, p in peaks.items()},
        "peak": peaks,
        "tflops_per_watt": per_watt,
        "tflops_per_watt_ci": {"fp16": [per_watt["fp16"] * 0.95, per_watt["fp16"] * 1.05]},
        "counts": {"ok": len(measurements), "error": 0, "skipped": 0},
    }
    profile["verdicts"] = [{"target": "miit-2020-cloud", "status": "PASS", "criteria": []}]
    profile["warnings"] = []
    return profile


def write_fleet(n: int, directory: Path, seed: int = 0, indent: int | None = 1) -> dict[str, Any]:
    """Write ``n`` profiles and a fleet.json (the last member missing) into ``directory``; returns sizes.

    ``indent=1`` writes what ``npucheck run`` writes; ``None`` (compact) writes about 5x faster, for fixtures."""
    directory.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    members, sizes = [], []
    for rank in range(n):
        host, local_rank = f"gpu{rank // GPUS_PER_HOST:04d}", rank % GPUS_PER_HOST
        stem = profile_stem(host, local_rank, f"cuda:{local_rank}")
        member = {"rank": rank, "local_rank": local_rank, "host": host, "device": f"cuda:{local_rank}"}
        if rank == n - 1 and n > 1:
            members.append({**member, "status": "missing", "profile": None, "reason": "no heartbeat for 600 s"})
            continue
        slow = SLOW_FACTOR if rank % SLOW_EVERY == SLOW_EVERY - 1 else 1.0
        profile = make_gpu_profile(host, local_rank, rank, n, slow, rng)
        text = json.dumps(profile, indent=indent)
        (directory / f"{stem}.json").write_text(text, encoding="utf-8")
        sizes.append(len(text))
        members.append({**member, "status": "ok", "profile": f"{stem}.json", "reason": None})
    write_summary(
        directory,
        {
            "schema": FLEET_SCHEMA,
            "schema_version": FLEET_SCHEMA_VERSION,
            "npucheck_version": "0.1.0",
            "created_utc": "2026-11-25T22:10:00Z",
            "started_utc": "2026-11-25T22:00:00Z",
            "launcher": "torchrun",
            "run_id": "scale",
            "command": ["npucheck", "run", "--fleet", str(directory)],
            "world_size": n,
            "hosts": sorted({m["host"] for m in members}),
            "settings": {"suite": "quick", "kernels": ["gemm"], "dtypes": ["fp16", "bf16"], "timeout_s": 600.0},
            "members": members,
        },
    )
    return {"profiles": len(sizes), "mean_bytes": sum(sizes) / max(len(sizes), 1), "total_bytes": sum(sizes)}


def time_fleet(directory: Path, *args: str) -> dict[str, Any]:
    """Run ``python -m npucheck.cli fleet DIR`` once; its wall time, exit code and peak RSS (MiB)."""
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "npucheck.cli", "fleet", str(directory), *args],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "COLUMNS": "100"},
    )
    wall = time.perf_counter() - started
    rss_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss  # Linux: KiB; the largest child so far
    return {
        "wall_s": wall,
        "rc": done.returncode,
        "peak_rss_mib": rss_kib / 1024,
        "stdout": done.stdout,
        "stderr": done.stderr,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("n", type=int, help="how many devices (profiles)")
    parser.add_argument("directory", type=Path, help="where to write them (must not exist)")
    parser.add_argument("--keep", action="store_true", help="keep the directory afterwards")
    options = parser.parse_args()
    if options.directory.exists():
        parser.error(f"{options.directory} exists")
    started = time.perf_counter()
    sizes = write_fleet(options.n, options.directory)
    generated = time.perf_counter() - started
    try:
        result = time_fleet(options.directory)
        lines = result["stdout"].splitlines()
        last = len(lines) - lines[::-1].index("") if "" in lines else 0
        bottom = " ".join(line.strip() for line in lines[last:])
        print(
            f"{sizes['profiles']} profiles, {sizes['mean_bytes'] / 1024:.0f} KiB each "
            f"({sizes['total_bytes'] / 2**20:.0f} MiB), generated in {generated:.1f} s"
        )
        print(
            f"npucheck fleet: {result['wall_s']:.2f} s wall, peak RSS {result['peak_rss_mib']:.0f} MiB, exit "
            f"{result['rc']}; bottom line: {bottom or result['stderr'].strip()}"
        )
        if result["rc"] not in (0, 1):
            print(result["stderr"], file=sys.stderr)
            sys.exit(1)
    finally:
        if not options.keep:
            shutil.rmtree(options.directory)


if __name__ == "__main__":
    main()
