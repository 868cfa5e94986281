"""One real `npucheck run --suite quick` on this machine's CPU, end to end through the CLI."""

import json

import pytest
from click.testing import CliRunner

from npucheck.cli import cli


@pytest.mark.slow
def test_quick_run_on_the_cpu_measures_judges_and_saves(tmp_path):
    out = tmp_path / "quick.json"
    result = CliRunner().invoke(cli, ["run", "--device", "cpu", "--suite", "quick", "-o", str(out)])
    assert result.exit_code == 0, result.output
    profile = json.loads(out.read_text())

    ok = {(m["kernel"], m["dtype"]) for m in profile["measurements"] if m["status"] == "ok"}
    for kernel in ("gemm", "conv2d", "rnn_tanh", "lstm", "gru"):
        for dtype in ("fp16", "bf16", "fp32"):
            assert (kernel, dtype) in ok, f"{kernel}/{dtype} was not measured"
    # issue 12's families, within the same budget: attention (fp16, bf16), int8 GEMM, the memory copy (fp32)
    for kernel, dtype in (("attention", "fp16"), ("attention", "bf16"), ("gemm", "int8"), ("copy", "fp32")):
        assert (kernel, dtype) in ok, f"{kernel}/{dtype} was not measured"
    for m in profile["measurements"]:
        assert m["status"] in ("ok", "skipped"), m
        if m["status"] == "skipped":
            assert m["reason"]
        else:
            assert m["correct"] is True and len(m["samples_s"]) >= 6
            assert m["gbps"] > 0 if m["family"] == "memory" else m["tflops"] > 0  # a copy does no FLOPs

    assert all(profile["support"][family]["supported"] for family in ("cnn", "rnn", "lstm"))
    verdicts = {v["target"]: v for v in profile["verdicts"]}
    cloud = {c["metric"]: c for c in verdicts["miit-2020-cloud"]["criteria"]}
    assert cloud["peak_tflops.fp16"]["status"] == "FAIL"  # a 2-core CPU is far from 128 TFLOPS
    for verdict in verdicts.values():
        for criterion in verdict["criteria"]:
            if criterion["metric"].startswith("tflops_per_watt"):
                assert criterion["status"] == "INCONCLUSIVE"
    assert verdicts["miit-2020-terminal"]["status"] == "INCONCLUSIVE"
    assert "result saved to" in result.output
