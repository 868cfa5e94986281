"""The attention family: FLOP convention (causal, GQA), shape sets, the float64 check, the SDPA backend recorded,
the ``transformer`` support family and its judging, and the result schema."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
import torch
import torch.nn.functional as F
from conftest import make_measurement, make_profile
from torch.nn.attention import SDPBackend, sdpa_kernel

import npucheck.measure.runner as runner_module
from npucheck import store
from npucheck.kernels import KERNELS, attention, build_workload, reference_flops
from npucheck.measure.family_support import CHECKS, check_support
from npucheck.measure.runner import Runner, RunOptions
from npucheck.measure.suites import load_suites
from npucheck.model import SUPPORT_FAMILIES, ResultProfile
from npucheck.read.judge import judge
from npucheck.targets import FAMILIES, parse_target
from tests.test_runner import TINY

CPU = torch.device("cpu")
ORIGINAL_SDPA = F.scaled_dot_product_attention


def shape(b=1, h=8, kv=2, sq=32, skv=32, d=16, mask="causal"):
    return {"batch": b, "heads": h, "kv_heads": kv, "q_len": sq, "kv_len": skv, "head_dim": d, "mask": mask}


def verify(dtype, shp, seed=0):
    case = KERNELS["attention"].case(dtype, shp, "test")
    workload = build_workload(case, CPU, seed)
    with torch.inference_mode():
        return workload, workload.verify()


# ------------------------------------------------------------------------------------------------- FLOPs
def test_flops_are_4_b_h_sq_skv_d_halved_for_causal():
    assert attention.flops(shape(b=2, h=8, kv=8, sq=1, skv=100, d=64, mask="none")) == 4 * 2 * 8 * 1 * 100 * 64
    assert attention.flops(shape(b=2, h=8, kv=8, sq=64, skv=64, d=64, mask="causal")) == 4 * 2 * 8 * 64 * 64 * 64 // 2
    assert attention.flops(shape(sq=64, skv=64, mask="none")) == 2 * attention.flops(shape(sq=64, skv=64))


def test_grouped_kv_heads_do_not_change_the_flops():
    """Every query head still does its own Q·Kᵀ and P·V: GQA saves bytes, not FLOPs."""
    assert (
        attention.flops(shape(h=64, kv=8)) == attention.flops(shape(h=64, kv=64)) == attention.flops(shape(h=64, kv=1))
    )


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (shape(sq=1, skv=64, mask="causal"), "causal mask needs q_len == kv_len"),
        (shape(h=8, kv=3), "not a multiple of kv_heads"),
        (shape(mask="sliding"), "is not one of"),
        (shape(b=0), "below 1"),
    ],
)
def test_shapes_the_kernel_cannot_run_correctly_are_refused(bad, message):
    with pytest.raises(ValueError, match=message):
        attention.flops(bad)


def test_shape_sets_follow_the_llama_configs():
    sets = KERNELS["attention"].shape_sets
    assert set(sets) == {"llama2-7b-prefill", "llama2-7b-decode", "llama-70b-prefill", "llama-70b-decode"}
    for name, shapes in sets.items():
        heads, kv = (32, 32) if name.startswith("llama2-7b") else (64, 8)
        for s in shapes:
            assert (s["heads"], s["kv_heads"], s["head_dim"]) == (heads, kv, 128)
            if name.endswith("prefill"):
                assert s["mask"] == "causal" and s["q_len"] == s["kv_len"] and s["batch"] == 1
            else:
                assert s["mask"] == "none" and s["q_len"] == 1
            assert s["kv_len"] <= (4096 if name.startswith("llama2-7b") else 8192)
    assert KERNELS["attention"].case("bf16", sets["llama-70b-decode"][0], "x").id == (
        "attention/bf16/b8_h64_kv8_q1_k1024_d128_none"
    )


def test_quick_and_standard_run_attention_at_the_smallest_shapes():
    suites = load_suites()
    for name in ("quick", "standard"):
        cases = [c for c in suites[name].cases(["attention"], ["bf16"])]
        assert cases, name
        assert max(c.flops for c in cases) <= 4 * 32 * 512 * 512 * 128 // 2  # the 7B prefill at S = 512


def test_the_host_reference_is_small_whatever_the_shape():
    case = KERNELS["attention"].case("fp16", KERNELS["attention"].shape_sets["llama-70b-prefill"][-1], "x")
    assert reference_flops(case) == 4 * attention.VERIFY_HEADS * attention.VERIFY_QUERIES * 8192 * 128


# ------------------------------------------------------------------------------------------------- correctness
@pytest.mark.parametrize("dtype", ["fp32", "bf16", "fp16"])
@pytest.mark.parametrize("shp", [shape(), shape(b=2, h=4, kv=4, sq=1, skv=48, mask="none")])
def test_sdpa_matches_the_float64_reference(dtype, shp):
    _, check = verify(dtype, shp)
    assert check.status == "ok", check
    assert check.rel_error < check.tolerance / 5


def _wrong_gqa(q, k, v, is_causal=False, enable_gqa=False):
    """K/V heads tiled (repeat) instead of grouped (repeat_interleave): query head 1 reads KV head 1, not 0."""
    r = q.shape[1] // k.shape[1]
    return ORIGINAL_SDPA(q, k.repeat(1, r, 1, 1), v.repeat(1, r, 1, 1), is_causal=is_causal)


def _no_mask(q, k, v, is_causal=False, enable_gqa=False):
    return ORIGINAL_SDPA(q, k, v, is_causal=False, enable_gqa=enable_gqa)


def _wrong_scale(q, k, v, is_causal=False, enable_gqa=False):
    return ORIGINAL_SDPA(q, k, v, is_causal=is_causal, enable_gqa=enable_gqa, scale=1.0 / q.shape[-1])


@pytest.mark.parametrize("wrong", [_wrong_gqa, _no_mask, _wrong_scale])
def test_a_wrong_attention_kernel_fails_the_check(monkeypatch, wrong):
    monkeypatch.setattr(F, "scaled_dot_product_attention", wrong)
    _, check = verify("bf16", shape(b=1, h=8, kv=2, sq=64, skv=64, d=32))
    assert check.status == "wrong", check
    assert check.rel_error > 10 * check.tolerance


# ------------------------------------------------------------------------------------------------- backend
def test_the_cpu_backend_is_recorded_and_follows_sdpa_kernel():
    workload, _ = verify("fp32", shape())
    assert workload.backend["name"] in ("flash_attention", "math")
    assert "_fused_sdp_choice" in workload.backend["method"]
    with sdpa_kernel([SDPBackend.MATH]):
        workload, _ = verify("fp32", shape())
    assert workload.backend["name"] == "math"


def test_a_backend_torch_cannot_name_is_unknown_with_the_reason(monkeypatch):
    def missing(*args, **kwargs):
        raise RuntimeError("no _fused_sdp_choice kernel for this device")

    monkeypatch.setattr(torch, "_fused_sdp_choice", missing)
    workload, check = verify("fp32", shape())
    assert check.ok
    assert workload.backend["name"] == "unknown"
    assert "RuntimeError: no _fused_sdp_choice kernel" in workload.backend["method"]


class _CudaTensor:
    """Stands for a CUDA tensor: detect_backend reads only ``.device`` before asking the (faked) dispatcher."""

    device = torch.device("cuda", 0)


def test_on_cuda_the_dispatchers_choice_is_confirmed_under_sdpa_kernel(monkeypatch):
    """select_sdp_backend returns an SDPBackend index (EFFICIENT_ATTENTION = 2); sdpa_kernel([X]) leaves only X
    enabled in torch.backends.cuda, which is what the confirming call runs under."""
    asked = {}
    monkeypatch.setattr(torch, "_fused_sdp_choice", lambda *a, **kw: asked.update(kw) or 2)
    seen = {}

    def run():
        seen.update(
            flash=torch.backends.cuda.flash_sdp_enabled(),
            efficient=torch.backends.cuda.mem_efficient_sdp_enabled(),
            math=torch.backends.cuda.math_sdp_enabled(),
        )

    t = _CudaTensor()
    found = attention.detect_backend(t, t, t, causal=True, gqa=True, run=run)
    assert found == {
        "name": "efficient_attention",
        "method": "torch._fused_sdp_choice, confirmed under sdpa_kernel([that backend])",
    }
    assert seen == {"flash": False, "efficient": True, "math": False}
    assert asked == {"enable_gqa": True}
    assert torch.backends.cuda.flash_sdp_enabled() and torch.backends.cuda.math_sdp_enabled()  # restored

    def refuses():
        raise RuntimeError("No available kernel. Aborting execution.")

    found = attention.detect_backend(t, t, t, causal=False, gqa=False, run=refuses)
    assert found["name"] == "efficient_attention"
    assert "not confirmed" in found["method"] and "No available kernel" in found["method"]


def test_other_devices_are_recorded_with_the_plugin_caveat(monkeypatch):
    monkeypatch.setattr(torch, "_fused_sdp_choice", lambda *a, **kw: 0)

    class Npu:
        device = torch.device("meta")

    found = attention.detect_backend(Npu(), Npu(), Npu(), causal=False, gqa=False)
    assert found["name"] == "math" and "plugin may dispatch SDPA itself" in found["method"]


def test_the_runner_records_the_backend_in_the_measurement(monkeypatch):
    monkeypatch.setattr(runner_module, "busy_processes", lambda interval_s=0.5, exclude=None: [])
    entries = ({"kernel": "attention", "shape_set": "llama-70b-decode", "pick": [1]},)
    suite = replace(TINY, case_budget_s=1.0, entries=entries)
    runner = Runner(RunOptions(device="cpu", dtypes=["fp32"], flush=False, power="none"), suite=suite)
    profile = runner.run().to_dict()
    (m,) = profile["measurements"]
    assert m["status"] == "ok" and m["correct"] is True and m["family"] == "attention"
    assert m["backend"]["name"] in ("flash_attention", "math")
    assert m["flops"] == 4 * 1 * 64 * 1 * 1024 * 128  # pick 1: batch 1 against 1024 cached tokens
    assert profile["support"]["transformer"]["supported"] is True
    store.validate(profile, "r.json")
    assert ResultProfile.from_dict(profile).to_dict() == profile


# ------------------------------------------------------------------------------------------------- support
def test_transformer_is_a_support_family_checked_in_fp16():
    assert "transformer" in SUPPORT_FAMILIES and "transformer" in FAMILIES
    support = check_support(CPU, checks={"transformer": CHECKS["transformer"]})
    entry = support["transformer"]
    assert entry["supported"] is True and entry["dtype"] == "fp16"
    assert [c["name"] for c in entry["checks"]] == ["attention_causal_gqa", "attention_decode"]


def test_a_wrong_attention_makes_transformer_unsupported(monkeypatch):
    monkeypatch.setattr(F, "scaled_dot_product_attention", _wrong_gqa)
    entry = check_support(CPU, checks={"transformer": CHECKS["transformer"]})["transformer"]
    assert entry["supported"] is False
    assert "attention_causal_gqa: result differs from the reference" in entry["reason"]


TARGET = """
format = 1
name = "llm-terminal"
title = "attention support"
[[criteria]]
metric = "supported_families"
families = ["cnn", "transformer"]
op = ">="
threshold = 2
"""


def _support_entry(supported):
    return {"supported": supported, "dtype": "fp16", "device": "cpu", "reason": None, "checks": []}


@pytest.mark.parametrize(
    ("transformer", "status"),
    [
        (_support_entry(True), "PASS"),
        (_support_entry(False), "FAIL"),
        (_support_entry(None), "INCONCLUSIVE"),
        (None, "INCONCLUSIVE"),
    ],
)
def test_a_supported_families_criterion_judges_transformer(transformer, status):
    target = parse_target(TARGET, "llm-terminal.toml")
    profile = make_profile()
    if transformer is not None:
        profile["support"]["transformer"] = transformer
    store.validate(profile, "r.json")
    (verdict,) = judge(profile, [target])
    assert verdict["status"] == status


# ------------------------------------------------------------------------------------------------- schema
def test_the_schema_and_model_accept_an_attention_measurement_with_its_backend():
    shp = {**shape(), "model": "test"}
    flops = attention.flops(shp)
    m = make_measurement(
        id="attention/bf16/" + attention.label(shp),
        kernel="attention",
        family="attention",
        shape_set="llama2-7b-prefill",
        dtype="bf16",
        shape=shp,
        flops=flops,
        flop_convention=attention.FLOP_CONVENTION,
        tflops=flops / 1.0e-4 / 1e12,
        tflops_ci=[flops / 1.03e-4 / 1e12, flops / 0.98e-4 / 1e12],
        backend={"name": "flash_attention", "method": "torch._fused_sdp_choice"},
    )
    profile = make_profile(measurements=[m])
    store.validate(profile, "r.json")
    assert ResultProfile.from_dict(profile).measurements[0].backend["name"] == "flash_attention"
    assert math.isclose(ResultProfile.from_dict(profile).to_dict()["measurements"][0]["flops"], flops)


def test_the_text_note_names_the_sdpa_backend():
    from npucheck.model import Measurement
    from npucheck.read.text import measurement_note

    shp = shape()
    m = Measurement.from_dict(
        make_measurement(
            id="attention/fp32/" + attention.label(shp),
            kernel="attention",
            family="attention",
            shape=shp,
            flops=attention.flops(shp),
            backend={"name": "math", "method": "x"},
            warnings=["unstable"],
        )
    )
    assert measurement_note(m) == "unstable; SDPA backend math"
    assert measurement_note(Measurement.from_dict(make_measurement())) == ""
