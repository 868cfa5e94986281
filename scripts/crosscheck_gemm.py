"""Cross-check npucheck's GEMM figures with an independent timing of the same shapes on the same machine.

The independent path shares no code with npucheck's timing: plain torch.randn inputs, torch.mm, and
torch.utils.benchmark.Timer (its own warm-up, block sizing and median), with the same thread count the result
recorded. Usage:

    python scripts/crosscheck_gemm.py RESULT.json [--dtype fp16] [--tolerance 0.10]

Exits 1 if any shape differs by more than the tolerance.
"""

from __future__ import annotations

import argparse
import json
import sys

import torch
import torch.utils.benchmark as benchmark

DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16, "fp32": torch.float32}


def independent_tflops(m: int, n: int, k: int, layout: str, dtype: torch.dtype, threads: int) -> float:
    a = torch.randn(k, m, dtype=dtype).t() if layout[0] == "T" else torch.randn(m, k, dtype=dtype)
    b = torch.randn(n, k, dtype=dtype).t() if layout[1] == "T" else torch.randn(k, n, dtype=dtype)
    timer = benchmark.Timer("torch.mm(a, b)", globals={"torch": torch, "a": a, "b": b}, num_threads=threads)
    measurement = timer.adaptive_autorange(threshold=0.05, min_run_time=0.2, max_run_time=5)
    return 2 * m * n * k / measurement.median / 1e12


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("result")
    parser.add_argument("--dtype", action="append", help="only these dtypes (default: all in the file)")
    parser.add_argument("--tolerance", type=float, default=0.10)
    parser.add_argument("--limit", type=int, default=None, help="check at most this many shapes per dtype")
    args = parser.parse_args()
    with open(args.result, encoding="utf-8") as f:
        profile = json.load(f)
    threads = profile["environment"]["threads"]["intra_op"]
    torch.set_num_threads(threads)
    worst = 0.0
    print(f"{'case':40s} {'npucheck':>10s} {'independent':>12s} {'diff':>7s}")
    counts: dict[str, int] = {}
    for m in profile["measurements"]:
        if m["kernel"] != "gemm" or m["status"] != "ok" or (args.dtype and m["dtype"] not in args.dtype):
            continue
        if args.limit is not None and counts.get(m["dtype"], 0) >= args.limit:
            continue
        counts[m["dtype"]] = counts.get(m["dtype"], 0) + 1
        shape = m["shape"]
        other = independent_tflops(shape["m"], shape["n"], shape["k"], shape.get("layout", "NN"),
                                   DTYPES[m["dtype"]], threads)
        diff = m["tflops"] / other - 1
        worst = max(worst, abs(diff))
        print(f"{m['id']:40s} {m['tflops']:10.4f} {other:12.4f} {diff:+7.1%}")
    print(f"largest difference: {worst:.1%} (tolerance {args.tolerance:.0%}), threads {threads}")
    return 1 if worst > args.tolerance else 0


if __name__ == "__main__":
    sys.exit(main())
