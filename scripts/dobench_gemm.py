"""Fidelity check: time a result's GEMM shapes with a do_bench-style loop that shares no code with npucheck.

triton's ``do_bench`` and mamf-finder time one call at a time between device events, zeroing a 256 MiB buffer
before each call so every call starts with a cold cache, and take the median. This script does the same with its
own code (plain ``torch.randn`` inputs, ``torch.mm``, events recorded on the device's current stream, passed
explicitly), on the device the result was measured on, and prints stored / independent for each shape: the
fidelity ratio. On the CPU (no events) each call is timed with ``perf_counter`` after the flush.

Usage:
    python scripts/dobench_gemm.py RESULT.json [--device cuda:0] [--dtype fp16] [--reps 100] [--limit N]
        [--tolerance 0.10] [--json OUT.json]

Only compute-bound shapes (every dimension >= 128) are compared; matrix-vector shapes are listed, not compared.
Exits 1 when any compared ratio is off by more than the tolerance, 2 on bad input.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time

import torch

DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16, "fp32": torch.float32}
FLUSH_BYTES = 256 * 2**20
MIN_DIM = 128


def _inputs(m: int, n: int, k: int, layout: str, dtype: torch.dtype, device: torch.device):
    a = torch.randn(k, m, device=device).t() if layout[0] == "T" else torch.randn(m, k, device=device)
    b = torch.randn(n, k, device=device).t() if layout[1] == "T" else torch.randn(k, n, device=device)
    return a.to(dtype), b.to(dtype)


def time_gemm(m: int, n: int, k: int, layout: str, dtype: torch.dtype, device: torch.device, reps: int) -> float:
    """Median seconds of one ``torch.mm`` call, each call cold (flushed) and timed alone."""
    a, b = _inputs(m, n, k, layout, dtype, device)
    flush = torch.empty(FLUSH_BYTES // 4, dtype=torch.int32, device=device)
    for _ in range(3):
        torch.mm(a, b)
    times = []
    if device.type == "cpu":
        for _ in range(reps):
            flush.zero_()
            start = time.perf_counter()
            torch.mm(a, b)
            times.append(time.perf_counter() - start)
        return statistics.median(times)
    torch.accelerator.set_device_index(device.index or 0)
    stream = torch.accelerator.current_stream(device)
    pairs = [(torch.Event(device, enable_timing=True), torch.Event(device, enable_timing=True)) for _ in range(reps)]
    for start, end in pairs:
        flush.zero_()
        start.record(stream)
        torch.mm(a, b)
        end.record(stream)
    torch.accelerator.synchronize(device)
    return statistics.median(start.elapsed_time(end) / 1e3 for start, end in pairs)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("result")
    parser.add_argument("--device", default=None, help="default: the device the result was measured on")
    parser.add_argument("--dtype", action="append", help="only these dtypes (default: all in the file)")
    parser.add_argument("--reps", type=int, default=100)
    parser.add_argument("--limit", type=int, default=None, help="at most this many shapes per dtype")
    parser.add_argument("--tolerance", type=float, default=0.10)
    parser.add_argument("--json", default=None, help="also write the rows as JSON here")
    args = parser.parse_args(argv)
    try:
        with open(args.result, encoding="utf-8") as f:
            profile = json.load(f)
        device = torch.device(args.device or profile["device"]["id"])
    except (OSError, ValueError, KeyError, RuntimeError) as e:
        print(f"dobench_gemm: error: {e}", file=sys.stderr)
        return 2
    if device.type == "cpu":
        torch.set_num_threads(profile["environment"]["threads"]["intra_op"])
    rows, counts, worst = [], {}, 0.0
    print(f"{'case':44s} {'stored':>10s} {'do_bench':>10s} {'ratio':>7s}")
    for m in profile["measurements"]:
        if m["kernel"] != "gemm" or m["status"] != "ok" or (args.dtype and m["dtype"] not in args.dtype):
            continue
        shape = m["shape"]
        if min(shape["m"], shape["n"], shape["k"]) < MIN_DIM:
            print(f"{m['id']:44s} {m['tflops']:10.4g} {'not compared (memory-bound shape)':>19s}")
            continue
        if args.limit is not None and counts.get(m["dtype"], 0) >= args.limit:
            continue
        counts[m["dtype"]] = counts.get(m["dtype"], 0) + 1
        seconds = time_gemm(
            shape["m"], shape["n"], shape["k"], shape.get("layout", "NN"), DTYPES[m["dtype"]], device, args.reps
        )
        independent = 2 * shape["m"] * shape["n"] * shape["k"] / seconds / 1e12
        ratio = m["tflops"] / independent
        worst = max(worst, abs(ratio - 1))
        rows.append({"case": m["id"], "stored_tflops": m["tflops"], "dobench_tflops": independent, "ratio": ratio})
        print(f"{m['id']:44s} {m['tflops']:10.4g} {independent:10.4g} {ratio:7.3f}")
    print(f"largest deviation of stored / do_bench from 1: {worst:.1%} (tolerance {args.tolerance:.0%}) on {device}")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump({"device": str(device), "rows": rows, "worst": worst}, f, indent=1)
    return 1 if worst > args.tolerance else 0


if __name__ == "__main__":
    sys.exit(main())
