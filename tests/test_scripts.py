"""The repository's check scripts run on this machine (their accelerator branch is the same code with events)."""

import importlib.util
import json
from pathlib import Path

import pytest

from tests.conftest import make_measurement, make_profile

ROOT = Path(__file__).resolve().parents[1]


def _script(name):
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_dobench_gemm_reports_the_ratio_of_stored_to_independent_figures(tmp_path):
    gemm = make_measurement(
        id="gemm/bf16/m128_n128_k128_NN",
        dtype="bf16",
        tflops=1e-3,
        shape={"m": 128, "n": 128, "k": 128, "layout": "NN"},
        flops=2 * 128**3,
    )
    gemv = make_measurement(id="gemm/bf16/m128_n1_k128_NN", dtype="bf16", shape={"m": 128, "n": 1, "k": 128})
    profile = make_profile(measurements=[gemm, gemv])
    result, out = tmp_path / "r.json", tmp_path / "rows.json"
    result.write_text(json.dumps(profile))
    code = _script("dobench_gemm").main([str(result), "--reps", "5", "--json", str(out)])
    rows = json.loads(out.read_text())["rows"]
    assert [r["case"] for r in rows] == ["gemm/bf16/m128_n128_k128_NN"]  # the GEMV is listed, not compared
    assert rows[0]["ratio"] == pytest.approx(1e-3 / rows[0]["dobench_tflops"])
    assert code == (1 if abs(rows[0]["ratio"] - 1) > 0.10 else 0)


def test_dobench_gemm_refuses_a_missing_file_with_exit_2(tmp_path):
    assert _script("dobench_gemm").main([str(tmp_path / "missing.json")]) == 2
