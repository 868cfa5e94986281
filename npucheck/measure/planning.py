"""What each case may cost, decided before it runs: rate prediction, time budgets and pilot calls.

The same suite must finish on a 2-core CPU whose FP16 matmul runs at a few GFLOPS and on a GPU at hundreds of
TFLOPS, so a case's time is predicted from the rates measured so far and the case is skipped, with the reason,
when the prediction does not fit the case or suite budget. The planner holds no torch objects: the runner measures
(the GEMM probe per dtype, one pilot call, the timed cases) and tells the planner each rate it saw.
"""

from __future__ import annotations

import math
from pathlib import Path

from npucheck.kernels import Case, attention, conv, reference_flops, rnn
from npucheck.measure.suites import Suite

__all__ = [
    "case_bytes",
    "CasePlanner",
    "cgroup_available_bytes",
    "host_available_bytes",
    "HOST_REFERENCE_FLOPS_PER_S",
    "MEMORY_MARGIN",
    "MEMORY_RESERVE_BYTES",
    "memory_skip_reason",
    "PILOT_SHARE",
    "rate_kind",
    "VERIFY_CALLS",
    "work",
]


VERIFY_CALLS = 1
"""Calls of the correctness check before timing (part of each case's predicted time)."""
HOST_REFERENCE_FLOPS_PER_S = {
    "gemm": 10e9,
    "cnn": 5e9,
    "rnn": 2e9,
    "lstm": 2e9,
    "gru": 2e9,
    "memory": 1e9,
    "attention": 1e9,
}
"""Rate assumed for the float64 host reference of each family (it runs on the CPU, whatever the device)."""
PILOT_SHARE = 0.25
"""A case whose kernel and dtype have no measured rate yet gets one pilot call when that call, predicted from the
GEMM probe, fits in this share of the case budget."""


MEMORY_FALLBACK_TBPS = 0.005
"""Bandwidth (TB/s) assumed for a memory case before one has been timed: 5 GB/s, below any DRAM system npucheck
runs on, so the pilot call it decides on is predicted long rather than short."""


def work(case: Case) -> int:
    """What a case's rate counts: its FLOPs, or for a memory case (a copy has none) the bytes it moves."""
    return int(case.bytes or 0) if case.family == "memory" else case.flops


def rate_kind(kernel: str) -> str:
    """Kernels that run alike share predicted rates (RNN, LSTM and GRU are all recurrent)."""
    return "recurrent" if kernel in ("rnn_tanh", "rnn_relu", "lstm", "gru") else kernel


class CasePlanner:
    """Predicted rates and times for the cases of one run, from every rate the runner has recorded."""

    def __init__(self, suite: Suite):
        self.suite = suite
        self.probe_tflops: dict[str, float] = {}
        """Each dtype's GEMM probe rate (TFLOPS): the prediction of last resort."""
        self._rates: dict[tuple[str, str], list[tuple[int, float]]] = {}  # (kernel, dtype) -> [(flops, TFLOPS)]

    # ------------------------------------------------------------------------------------------- what was seen
    def record_probe(self, case: Case, tflops: float) -> None:
        """The rate of one GEMM probe size of ``case.dtype`` (the last recorded size is the dtype's probe rate)."""
        self.probe_tflops[case.dtype] = tflops
        self.record(case, tflops)

    def record(self, case: Case, tflops: float) -> None:
        """A rate measured for ``case`` (a pilot call or a timed median)."""
        self._rates.setdefault((case.kernel, case.dtype), []).append((work(case), tflops))

    def record_call_s(self, case: Case, call_s: float) -> None:
        """The seconds one call of ``case`` took (a pilot call or a timed median), as a rate of its work."""
        if math.isfinite(call_s) and call_s > 0:
            self.record(case, work(case) / call_s / 1e12)

    def has_rate(self, case: Case) -> bool:
        """Whether a case of this kernel and dtype has been measured."""
        return (case.kernel, case.dtype) in self._rates

    # ------------------------------------------------------------------------------------------- predictions
    def rate(self, case: Case) -> float:
        """Predicted TFLOPS: the rate of the measured case closest in FLOPs (rates vary by orders of magnitude
        between a GEMV and a large GEMM) of the same kernel and dtype, else of a kernel of the same kind (RNN,
        LSTM and GRU run alike), else the dtype's GEMM probe."""
        seen = self._rates.get((case.kernel, case.dtype))
        if not seen:
            kind = rate_kind(case.kernel)
            seen = [
                point
                for (kernel, dtype), points in self._rates.items()
                for point in points
                if dtype == case.dtype and kernel != "gemm" and rate_kind(kernel) == kind
            ]
        if not seen:
            if case.family == "memory":  # its work is bytes: the GEMM probe says nothing of it
                return MEMORY_FALLBACK_TBPS
            return self.probe_tflops[case.dtype]
        return min(seen, key=lambda point: abs(math.log(point[0] / work(case))))[1]

    def predict_s(self, case: Case, flush_s: float) -> float:
        """Seconds for the case's warm-up, correctness check and minimum samples (each after a flush)."""
        call_s = work(case) / (self.rate(case) * 1e12)
        sample_s = max(call_s, self.suite.min_sample_s) + flush_s
        fixed = (VERIFY_CALLS + 2) * call_s + reference_flops(case) / HOST_REFERENCE_FLOPS_PER_S[case.family]
        return fixed + self.suite.min_samples * sample_s

    def needs_pilot(self, case: Case) -> bool:
        """True when no case of this kernel and dtype has been measured yet, and one call predicted from the GEMM
        probe fits the case budget: the probe's rate can be 15x off for convolutions and recurrent layers (fp16
        LSTM runs at ~45 GFLOPS on our CPU, fp16 GEMM at ~3), so one timed call decides instead."""
        if self.has_rate(case):
            return False
        return work(case) / (self.rate(case) * 1e12) <= self.suite.case_budget_s * PILOT_SHARE

    def skip_reason(self, case: Case, flush_s: float, left_s: float) -> str | None:
        """Why the case must be skipped given its predicted time, the case budget and the ``left_s`` seconds
        left of the suite budget; None to measure it."""
        predicted = self.predict_s(case, flush_s)
        if predicted > self.suite.case_budget_s:
            return (
                f"predicted {predicted:.3g} s for warm-up, check and {self.suite.min_samples} samples at "
                f"~{self.rate(case) * (1e3 if case.family == 'memory' else 1):.3g} "
                f"{'GB/s' if case.family == 'memory' else 'TFLOPS'} exceeds the case budget of "
                f"{self.suite.case_budget_s:g} s"
            )
        if predicted > left_s:
            return (
                f"suite budget: predicted {predicted:.3g} s but only {max(left_s, 0):.3g} s of the "
                f"{self.suite.suite_budget_s:g} s budget left"
            )
        return None


# ----------------------------------------------------------------------------------------------------- memory
MEMORY_MARGIN = 1.25
"""A case is run only when ``MEMORY_MARGIN`` × its estimated bytes plus ``MEMORY_RESERVE_BYTES`` are free: the
estimate counts the tensors the kernel builds, not the allocator's rounding, oneDNN/cuBLAS scratch or the host
reference, which stay well under a quarter of it for every shape in the catalog."""
MEMORY_RESERVE_BYTES = 256 * 2**20
"""Kept free beyond the margin: the interpreter's own growth while it measures, the profile, the page cache the
system needs to stay responsive."""
_ELEMENT_BYTES = {"fp16": 2, "bf16": 2, "fp32": 4, "int8": 1, "fp8_e4m3": 1, "fp8_e5m2": 1}
_OUTPUT_BYTES = {"int8": 4, "fp8_e4m3": 2, "fp8_e5m2": 2}
"""Where a GEMM's output is wider than its operands: int8 writes int32, fp8 writes bf16 (kernels/lowp.py)."""
_BUILD_BYTES = 4
"""Inputs are drawn in float32 and then converted (kernels.base.randn): the float32 draw of the largest tensor
exists beside the converted tensors while a case is built."""


def case_bytes(case: Case) -> int:
    """Bytes a case's workload holds at its peak on the device, from its shape alone (nothing is allocated):
    inputs, weights and outputs in the case's dtype (the outputs twice where each call allocates a fresh one,
    since the previous call's output may still be alive), plus the float32 draw of the largest input. The cache
    flush buffer is not counted: it is allocated once, before the first case, so it is already out of the free
    figure this is compared with."""
    size = _ELEMENT_BYTES[case.dtype]
    shape = case.shape
    if case.family == "memory":  # the arrays, and the float32 draw of one of them
        return int(case.bytes or 0) + _BUILD_BYTES * int(case.bytes or 0) // (3 * size)
    if case.kernel == "gemm":
        m, n, k = int(shape["m"]), int(shape["n"]), int(shape["k"])
        out = _OUTPUT_BYTES.get(case.dtype, size)
        return size * (m * k + k * n) + out * m * n + _BUILD_BYTES * max(m * k, k * n)
    if case.kernel == "conv2d":
        n, c, h, w = (int(shape[key]) for key in ("n", "c", "h", "w"))
        k, r, s, groups = int(shape["k"]), int(shape["r"]), int(shape["s"]), int(shape.get("groups", 1))
        p, q = conv.output_hw(shape)
        image, weight, out = n * c * h * w, k * (c // groups) * r * s, n * k * p * q
        return size * (image + weight + 2 * out) + _BUILD_BYTES * max(image, weight)
    if case.kernel == "attention":  # Q, K, V and the output; the math backend's S_q x S_kv scores not counted
        elements, largest = attention.workload_elements(shape)
        return size * elements + _BUILD_BYTES * largest
    # recurrent: the module is built in float32 on the host, then converted; per call, the input projection of
    # every step (gates × hidden), each layer's output and the final state
    gates = rnn.GATES[case.kernel]
    hidden, inp, layers = int(shape["hidden"]), int(shape["input"]), int(shape.get("layers", 1))
    batch, steps = int(shape["batch"]), int(shape["seq_len"])
    first = gates * hidden * (inp + hidden + 2)
    params = first + (layers - 1) * gates * hidden * (2 * hidden + 2)
    x, out, states = steps * batch * inp, steps * batch * hidden, 2 * layers * batch * hidden
    activations = x + 2 * out * min(layers, 2) + steps * batch * gates * hidden + 2 * states
    return size * (activations + params) + _BUILD_BYTES * (params + max(x, gates * hidden * max(inp, hidden)))


def memory_skip_reason(case: Case, available_bytes: int | None) -> str | None:
    """Why ``case`` must be skipped for memory (``needs ~X GiB, only Y GiB available``), or None to run it;
    None also when the free memory is unknown (``available_bytes`` None: the backend cannot tell)."""
    if available_bytes is None:
        return None
    estimate = case_bytes(case)
    needed = int(estimate * MEMORY_MARGIN) + MEMORY_RESERVE_BYTES
    if needed <= available_bytes:
        return None
    return (
        f"out of memory avoided: needs ~{_size(needed)} ({_size(estimate)} of tensors, "
        f"+{MEMORY_MARGIN - 1:.0%} and {_size(MEMORY_RESERVE_BYTES)} kept free), only {_size(available_bytes)} "
        "available"
    )


def _size(nbytes: float) -> str:
    return f"{nbytes / 2**30:.3g} GiB" if nbytes >= 2**30 else f"{nbytes / 2**20:.3g} MiB"


def host_available_bytes(sysfs_root: str | Path = "/sys", proc_root: str | Path = "/proc") -> int:
    """Memory the host can give this process without swapping or the OOM killer: the kernel's MemAvailable
    (psutil), and less where this process's cgroup (a container's limit, a Slurm job's) allows less."""
    import psutil

    available = int(psutil.virtual_memory().available)
    limited = cgroup_available_bytes(sysfs_root, proc_root)
    return available if limited is None else min(available, limited)


def cgroup_available_bytes(sysfs_root: str | Path = "/sys", proc_root: str | Path = "/proc") -> int | None:
    """What this process's memory cgroup still allows (limit minus usage, page cache that can be dropped counted
    as free), or None without a limit (or where it cannot be read). cgroup v2, else v1."""
    try:
        lines = (Path(proc_root) / "self" / "cgroup").read_text().splitlines()
    except OSError:
        return None
    paths = {}
    for line in lines:
        _, controllers, path = line.split(":", 2)
        for controller in controllers.split(",") if controllers else [""]:
            paths[controller] = path.lstrip("/")
    root = Path(sysfs_root) / "fs" / "cgroup"
    # A container without its own cgroup namespace lists the host's path, but mounts its own group at the root.
    candidates = []
    if "" in paths:  # v2: one unified hierarchy
        for folder in (root / paths[""], root):
            candidates.append((folder, "memory.max", "memory.current", "inactive_file"))
    if "memory" in paths:
        for folder in (root / "memory" / paths["memory"], root / "memory"):
            candidates.append((folder, "memory.limit_in_bytes", "memory.usage_in_bytes", "total_inactive_file"))
    for folder, limit_name, usage_name, cache_key in candidates:
        try:
            limit_text = (folder / limit_name).read_text().strip()
            usage = int((folder / usage_name).read_text().strip())
        except (OSError, ValueError):
            continue
        if limit_text == "max" or not limit_text.isdigit() or int(limit_text) >= 2**60:  # v1 "no limit" is ~2^63
            return None
        cache = 0
        try:
            for stat_line in (folder / "memory.stat").read_text().splitlines():
                key, _, value = stat_line.partition(" ")
                if key == cache_key:
                    cache = int(value)
        except (OSError, ValueError):
            pass
        return max(int(limit_text) - max(usage - cache, 0), 0)
    return None
