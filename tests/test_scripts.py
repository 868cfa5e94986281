"""The repository's check scripts run on this machine (their accelerator branch is the same code with events)."""

import importlib.util
import json
import math
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


def test_peers_compares_npucheck_with_torch_benchmark_and_numpy_on_the_same_shapes(tmp_path, capsys):
    out = tmp_path / "peers.json"
    argv = ["--dtypes", "fp32,bf16", "--sizes", "64,96", "--budget-s", "0.02", "--rounds", "1", "--settle-s", "0"]
    argv += ["--json", str(out)]
    assert _script("peers").main(argv) == 0
    result = json.loads(out.read_text())
    measured = {(r["dtype"], r["size"]) for r in result["rows"]}
    skipped = {(s["dtype"], n) for s in result["skipped"] for n in s["sizes"]}
    assert measured | skipped == {(d, n) for d in ("fp32", "bf16") for n in (64, 96)} and not measured & skipped
    assert {("fp32", 64), ("bf16", 64)} <= measured  # the smallest size is always measured
    for row in result["rows"]:
        ratios = (row["vs_torch_benchmark"], row["vs_numpy"])
        figures = (row["npucheck_tflops"], row["torch_benchmark_tflops"], row["numpy_fp32_tflops"])
        assert all(math.isfinite(x) and x > 0 for x in ratios + figures)
        assert row["vs_torch_benchmark"] == pytest.approx(row["npucheck_tflops"] / row["torch_benchmark_tflops"])
        assert row["vs_numpy"] == pytest.approx(row["npucheck_tflops"] / row["numpy_fp32_tflops"])
    assert set(result["peaks"]) == {"fp32", "bf16"}
    for dtype, peak in result["peaks"].items():
        assert peak["npucheck_tflops"] == max(r["npucheck_tflops"] for r in result["rows"] if r["dtype"] == dtype)
    table = capsys.readouterr().out
    assert "| npucheck / torch.utils.benchmark | npucheck / numpy |" in table
    assert sum(line.startswith(("| fp32 | ", "| bf16 | ")) for line in table.splitlines()) == len(measured) + 2


def test_peers_refuses_an_unknown_dtype_with_exit_2(capsys):
    assert _script("peers").main(["--dtypes", "fp8"]) == 2
    assert "peers: error: unknown dtypes ['fp8']" in capsys.readouterr().err


def test_selfbench_measures_the_harness_and_the_sampler_and_prints_markdown(tmp_path):
    selfbench = _script("selfbench")
    harness = selfbench.harness_overhead(samples=50, repeats=1)
    kernels = [r for r in harness if "kernel" in r]
    assert len(kernels) == 2 and all(math.isfinite(r["overhead_per_sample_us"]) for r in kernels)
    assert all(r["bare_call_us"] > 0 and r["harness_per_sample_us"] > 0 for r in kernels)
    assert "| no-op (`lambda: None`) |" in selfbench.harness_markdown(harness)
    sampler = selfbench.sampler_cost((10, 1000), seconds=0.1)
    assert [(r["hz"]) for r in sampler] == [10, 1000] * 3
    assert all(r["achieved_hz"] > 0 and math.isfinite(r["cpu_ms_per_s"]) for r in sampler)
    assert selfbench.sampler_markdown(sampler, 0.1).count("| RAPL fake") == 2
