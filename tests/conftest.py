"""Shared test data: a complete, realistic schema-v2 result profile (``make_profile`` / ``minimal_profile``)."""

from __future__ import annotations

import json
import sys
from typing import Any

import pytest

GEMM_FLOPS = 2 * 256**3
SAMPLES_S = [1.02e-4, 0.98e-4, 1.00e-4, 1.05e-4, 0.99e-4, 1.01e-4, 1.00e-4, 1.03e-4, 0.97e-4, 1.00e-4]
# npucheck.stats.summarize(SAMPLES_S, 0.95), written out so that this data does not move when the statistics do.
STATS = {
    "n": 10,
    "median_s": 1.0e-4,
    "ci_low_s": 9.8e-05,
    "ci_high_s": 1.03e-4,
    "ci_coverage": 0.978515625,
    "q1_s": 9.925e-05,
    "q3_s": 1.0175e-4,
    "iqr_rel": 0.025,
    "mean_s": 1.005e-4,
    "min_s": 9.7e-05,
    "max_s": 1.05e-4,
}
TFLOPS = GEMM_FLOPS / STATS["median_s"] / 1e12
TFLOPS_CI = [GEMM_FLOPS / STATS["ci_high_s"] / 1e12, GEMM_FLOPS / STATS["ci_low_s"] / 1e12]


def make_measurement(**overrides: Any) -> dict[str, Any]:
    """One ``ok`` fp16 256³ GEMM measurement on the CPU, as the runner writes it; keys in ``overrides`` replace."""
    measurement = {
        "id": "gemm/fp16/m256_n256_k256_NN",
        "kernel": "gemm",
        "family": "gemm",
        "kernel_version": 1,
        "shape_set": "square",
        "dtype": "fp16",
        "shape": {"m": 256, "n": 256, "k": 256, "layout": "NN"},
        "flops": GEMM_FLOPS,
        "flop_convention": "2*m*n*k",
        "status": "ok",
        "reason": None,
        "correct": True,
        "error": None,
        "check": {"rel_error": 2.4e-4, "tolerance": 1e-2, "reference_dtype": "float64", "checked": "whole output"},
        "samples_s": list(SAMPLES_S),
        "calls_per_sample": 100,
        "warmup_calls": 20,
        "timing_method": "host_clock_sync",
        "cache_flush_bytes": 0,
        "stats": dict(STATS),
        "tflops": TFLOPS,
        "tflops_ci": list(TFLOPS_CI),
        "foreign_cpu_cores": 0.01,
        "wall_s": 0.42,
        "predicted_s": 0.35,
        "warnings": [],
        "energy": None,
    }
    measurement.update(overrides)
    return measurement


def _support(family: str, checks: list[str]) -> dict[str, Any]:
    return {
        "supported": True,
        "dtype": "fp16",
        "device": "cpu",
        "reason": None,
        "checks": [
            {"name": name, "ok": True, "rel_error": 3.1e-4, "tolerance": 1e-2, "error": None} for name in checks
        ],
    }


def make_profile(**overrides: Any) -> dict[str, Any]:
    """A complete schema-v2 result profile of a short CPU run; top-level keys in ``overrides`` replace.

    One ``ok`` fp16 GEMM (raw samples, stats, TFLOPS and interval), one skipped fp16 GEMM, support checked for
    cnn/rnn/lstm/gru, a summary without power, and one verdict (miit-2020-cloud: FAIL). A fresh object each call.
    """
    skipped = make_measurement(
        id="gemm/fp16/m16384_n16384_k16384_NN",
        shape={"m": 16384, "n": 16384, "k": 16384, "layout": "NN"},
        flops=2 * 16384**3,
        status="skipped",
        correct=None,
        check=None,
        samples_s=[],
        calls_per_sample=None,
        warmup_calls=None,
        timing_method=None,
        cache_flush_bytes=None,
        stats=None,
        tflops=None,
        tflops_ci=None,
        foreign_cpu_cores=None,
        wall_s=0.0,
        predicted_s=26000.0,
        reason="predicted 2.6e+04 s for warm-up, check and 10 samples at ~0.336 TFLOPS exceeds the case budget of 60 s",
    )
    profile = {
        "schema_version": 2,
        "npucheck_version": "0.1.0",
        "created_utc": "2026-11-23T10:00:00Z",
        "finished_utc": "2026-11-23T10:00:09Z",
        "interrupted": False,
        "command": ["npucheck", "run", "--suite", "quick", "--device", "cpu"],
        "device": {
            "backend": "cpu",
            "id": "cpu",
            "name": "Intel(R) Xeon(R) Platinum 8480+",
            "timing_method": "host_clock_sync",
            "validated": True,
            "properties": {
                "physical_cores": 4,
                "logical_cores": 8,
                "torch_threads": 4,
                "cpu_capability": "AVX512",
                "caches": {"L2": 2097152, "L3": 110100480},
                "memory_bytes": 34359738368,
            },
            "datasheet": None,
        },
        "environment": {
            "hostname": "bench-01",
            "os": "Linux-6.8.0-x86_64-with-glibc2.39",
            "python": "3.11.9",
            "cpu": {
                "model": "Intel(R) Xeon(R) Platinum 8480+",
                "physical_cores": 4,
                "logical_cores": 8,
                "flags": ["avx2", "fma", "f16c", "avx512f", "amx_tile"],
                "torch_cpu_capability": "AVX512",
            },
            "memory_bytes": 34359738368,
            "torch": {
                "version": "2.6.0+cpu",
                "cuda": None,
                "hip": None,
                "cudnn": None,
                "mkldnn": True,
                "parallel_info": ["ATen/Parallel:", "at::get_num_threads() : 4"],
            },
            "driver": None,
            "torch_flags": {
                "float32_matmul_precision": "highest",
                "mkldnn_enabled": True,
                "deterministic_algorithms": False,
                "cudnn_allow_tf32": True,
                "cudnn_benchmark": False,
                "cudnn_deterministic": False,
            },
            "threads": {"intra_op": 4, "inter_op": 4},
            "env_vars": {"OMP_NUM_THREADS": "4"},
        },
        "settings": {
            "suite": "quick",
            "seed": 0,
            "kernels": ["gemm"],
            "dtypes": ["fp16"],
            "suite_budget_s": 60.0,
            "case_budget_s": 60.0,
            "case_target_s": 0.3,
            "device_warmup_s": 0.0,
            "accelerator_warmup_s": 5.0,
            "min_samples": 10,
            "max_samples": 1000,
            "min_sample_s": 0.01,
            "cache_flush_bytes": 0,
            "confidence": 0.95,
            "targets": ["miit-2020-cloud"],
            "probe_tflops": {"fp16": 0.31},
        },
        "power": {
            "spec": "auto",
            "source": None,
            "notes": ["rapl: /sys/class/powercap is not present"],
            "window_s": 5.0,
            "sweep_window_s": None,
            "sample_hz": 10.0,
            "idle": None,
        },
        "load": {"before": {"busy_processes": [], "device_processes": []}, "during_max_foreign_cpu_cores": 0.01},
        "measurements": [make_measurement(), skipped],
        "confirmations": [make_measurement(role="confirmation", confirms="gemm/fp16/m256_n256_k256_NN")],
        "support": {
            "cnn": _support("cnn", ["conv2d", "conv_block"]),
            "rnn": _support("rnn", ["rnn_tanh", "rnn_relu"]),
            "lstm": _support("lstm", ["lstm"]),
            "gru": _support("gru", ["gru"]),
        },
        "summary": {
            "peak_tflops": {"fp16": TFLOPS},
            "peak": {
                "fp16": {
                    "case": "gemm/fp16/m256_n256_k256_NN",
                    "tflops": TFLOPS,
                    "ci_low": TFLOPS_CI[0],
                    "ci_high": TFLOPS_CI[1],
                }
            },
            "tflops_per_watt": {"fp16": None},
            "power_note": "power measurement is not implemented in this version of npucheck",
            "counts": {"ok": 1, "error": 0, "skipped": 1},
        },
        "verdicts": [
            {
                "target": "miit-2020-cloud",
                "title": "MIIT AI plan 2018-2020: cloud neural-network chip",
                "status": "FAIL",
                "criteria": [
                    {
                        "metric": "peak_tflops.fp16",
                        "op": ">=",
                        "threshold": 128.0,
                        "unit": "TFLOPS",
                        "measured": TFLOPS,
                        "lower": TFLOPS_CI[0],
                        "upper": TFLOPS_CI[1],
                        "status": "FAIL",
                        "reason": f"upper bound {TFLOPS_CI[1]:.6g} misses >= 128; best of 1 fp16 GEMM case: "
                        "gemm/fp16/m256_n256_k256_NN (1 larger skipped)",
                    },
                    {
                        "metric": "tflops_per_watt.fp16",
                        "op": ">",
                        "threshold": 1.0,
                        "unit": "TFLOPS/W",
                        "measured": None,
                        "lower": None,
                        "upper": None,
                        "status": "INCONCLUSIVE",
                        "reason": "power was not measured (power measurement is not implemented in this version of "
                        "npucheck), so fp16 TFLOPS/W is unknown",
                    },
                ],
            }
        ],
        "warnings": ["1 of 2 cases were skipped (see each reason)"],
        "wall_s": 9.1,
    }
    profile.update(overrides)
    return profile


@pytest.fixture
def minimal_profile() -> dict[str, Any]:
    """A fresh ``make_profile()`` for each test."""
    return make_profile()


def make_v1_profile() -> dict[str, Any]:
    """The same run as written by npucheck 0.1 (schema 1): no power, no energy."""
    profile = make_profile(schema_version=1)
    del profile["power"]
    for measurement in profile["measurements"]:
        del measurement["energy"]
    return profile


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """How many examples the fuzz tests (tests/test_fuzz.py) ran, by kind, when they ran."""
    fuzz = sys.modules.get("test_fuzz") or sys.modules.get("tests.test_fuzz")
    counts = getattr(fuzz, "EXAMPLES_RUN", None)
    if counts:
        terminalreporter.write_line(f"fuzz examples run: {sum(counts.values())} " + json.dumps(counts, sort_keys=True))


# A stored criterion whose raw evidence in make_profile's measurements (an fp16 GEMM of ~0.34 TFLOPS, a CNN case,
# no power) gives the status: readers judge a loaded file's verdicts again from their criteria
# (npucheck.read.verified), so a test that needs a verdict of a given status stores criteria that give it.
VERDICT_CRITERIA = {
    "PASS": {"metric": "supported_families(cnn)", "op": ">=", "threshold": 0},
    "FAIL": {"metric": "peak_tflops.fp16", "op": ">=", "threshold": 1000.0},
    "INCONCLUSIVE": {"metric": "tflops_per_watt.fp16", "op": ">", "threshold": 1.0},
}


def verdict_giving(status: str, target: str = "miit-2020-cloud") -> dict[str, Any]:
    """A stored ``verdicts[]`` entry whose one criterion gives ``status`` on make_profile's evidence."""
    criterion = VERDICT_CRITERIA[status] | {"measured": None, "status": status, "reason": "as stored"}
    return {"target": target, "title": target, "status": status, "criteria": [criterion]}
