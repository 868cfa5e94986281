"""What each case may cost, decided before it runs: rate prediction, time budgets and pilot calls.

The same suite must finish on a 2-core CPU whose FP16 matmul runs at a few GFLOPS and on a GPU at hundreds of
TFLOPS, so a case's time is predicted from the rates measured so far and the case is skipped, with the reason,
when the prediction does not fit the case or suite budget. The planner holds no torch objects: the runner measures
(the GEMM probe per dtype, one pilot call, the timed cases) and tells the planner each rate it saw.
"""

from __future__ import annotations

import math

from npucheck.kernels import Case, reference_flops
from npucheck.measure.suites import Suite

__all__ = [
    "CasePlanner",
    "HOST_REFERENCE_FLOPS_PER_S",
    "PILOT_SHARE",
    "rate_kind",
    "VERIFY_CALLS",
]


VERIFY_CALLS = 1
"""Calls of the correctness check before timing (part of each case's predicted time)."""
HOST_REFERENCE_FLOPS_PER_S = {"gemm": 10e9, "cnn": 5e9, "rnn": 2e9, "lstm": 2e9, "gru": 2e9}
"""Rate assumed for the float64 host reference of each family (it runs on the CPU, whatever the device)."""
PILOT_SHARE = 0.25
"""A case whose kernel and dtype have no measured rate yet gets one pilot call when that call, predicted from the
GEMM probe, fits in this share of the case budget."""


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
        self._rates.setdefault((case.kernel, case.dtype), []).append((case.flops, tflops))

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
            return self.probe_tflops[case.dtype]
        return min(seen, key=lambda point: abs(math.log(point[0] / case.flops)))[1]

    def predict_s(self, case: Case, flush_s: float) -> float:
        """Seconds for the case's warm-up, correctness check and minimum samples (each after a flush)."""
        call_s = case.flops / (self.rate(case) * 1e12)
        sample_s = max(call_s, self.suite.min_sample_s) + flush_s
        fixed = (VERIFY_CALLS + 2) * call_s + reference_flops(case) / HOST_REFERENCE_FLOPS_PER_S[case.family]
        return fixed + self.suite.min_samples * sample_s

    def needs_pilot(self, case: Case) -> bool:
        """True when no case of this kernel and dtype has been measured yet, and one call predicted from the GEMM
        probe fits the case budget: the probe's rate can be 15x off for convolutions and recurrent layers (fp16
        LSTM runs at ~45 GFLOPS on our CPU, fp16 GEMM at ~3), so one timed call decides instead."""
        if self.has_rate(case):
            return False
        return case.flops / (self.rate(case) * 1e12) <= self.suite.case_budget_s * PILOT_SHARE

    def skip_reason(self, case: Case, flush_s: float, left_s: float) -> str | None:
        """Why the case must be skipped given its predicted time, the case budget and the ``left_s`` seconds
        left of the suite budget; None to measure it."""
        predicted = self.predict_s(case, flush_s)
        if predicted > self.suite.case_budget_s:
            return (
                f"predicted {predicted:.3g} s for warm-up, check and {self.suite.min_samples} samples at "
                f"~{self.rate(case):.3g} TFLOPS exceeds the case budget of {self.suite.case_budget_s:g} s"
            )
        if predicted > left_s:
            return (
                f"suite budget: predicted {predicted:.3g} s but only {max(left_s, 0):.3g} s of the "
                f"{self.suite.suite_budget_s:g} s budget left"
            )
        return None
