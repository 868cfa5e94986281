"""npucheck.measure.planning: the predicted rate, time and skip decision of each case, from the rates seen so far."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
from test_runner import TINY

from npucheck.kernels import KERNELS
from npucheck.measure.planning import PILOT_SHARE, CasePlanner


def _gemm(size, dtype="fp32"):
    return KERNELS["gemm"].case(dtype, {"m": size, "n": size, "k": size, "layout": "NN"}, "square")


def _lstm(dtype="fp32"):
    shape = {"hidden": 256, "batch": 16, "seq_len": 25, "input": 256, "layers": 1}
    return KERNELS["lstm"].case(dtype, shape, "small")


def test_the_rate_of_the_measured_case_closest_in_flops_is_used():
    planner = CasePlanner(TINY)
    planner.record_probe(_gemm(64), 0.01)
    planner.record(_gemm(128), 0.1)
    planner.record(_gemm(1024), 1.0)
    assert planner.rate(_gemm(256)) == 0.1  # 256^3 is 8x 128^3 but 64x below 1024^3 (log distance)
    assert planner.rate(_gemm(512)) == 1.0
    assert planner.probe_tflops == {"fp32": 0.01}


def test_a_kernel_without_rates_borrows_its_kind_then_the_probe():
    planner = CasePlanner(TINY)
    planner.record_probe(_gemm(64), 0.01)
    assert planner.rate(_lstm()) == 0.01  # nothing recurrent measured yet: the GEMM probe
    gru = KERNELS["gru"].case("fp32", dict(_lstm().shape), "small")
    planner.record(gru, 0.05)
    assert planner.rate(_lstm()) == 0.05  # GRU and LSTM run alike
    with pytest.raises(KeyError):
        planner.rate(_lstm("bf16"))  # no probe of bf16: a runner bug, not a guess


def test_a_case_predicted_over_its_budget_is_skipped_with_the_reason():
    planner = CasePlanner(TINY)
    planner.record_probe(_gemm(64), 1e-6)  # 1 MFLOPS: a 256^3 GEMM takes ~34 s per call
    reason = planner.skip_reason(_gemm(256), flush_s=0.0, left_s=math.inf)
    assert reason and "exceeds the case budget of 0.5 s" in reason
    fast = CasePlanner(TINY)
    fast.record_probe(_gemm(64), 1.0)
    assert fast.skip_reason(_gemm(256), flush_s=0.0, left_s=math.inf) is None
    assert "suite budget" in fast.skip_reason(_gemm(256), flush_s=0.0, left_s=1e-6)


def test_a_pilot_call_is_spent_only_where_one_call_fits_its_share_of_the_budget():
    planner = CasePlanner(TINY)
    planner.record_probe(_gemm(64), 1.0)
    assert planner.needs_pilot(_lstm()) is True
    slow = CasePlanner(replace(TINY, case_budget_s=1e-9))
    slow.record_probe(_gemm(64), 1.0)
    assert _lstm().flops / 1e12 > slow.suite.case_budget_s * PILOT_SHARE
    assert slow.needs_pilot(_lstm()) is False
    planner.record(_lstm(), 0.2)
    assert planner.needs_pilot(_lstm()) is False  # measured once: predictions come from it
