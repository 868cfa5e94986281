"""Memory bandwidth (copy, triad), the bytes of every case, GB/s from raw samples, peak_gbps, and the roofline."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import torch
from click.testing import CliRunner

from npucheck.bandwidth import BANDWIDTH_CEILING_FACTOR, bandwidth_figures
from npucheck.cli import cli
from npucheck.errors import UsageError
from npucheck.evidence import audit
from npucheck.kernels import KERNELS, memory, traffic
from npucheck.kernels.base import generator_for
from npucheck.measure.planning import CasePlanner, work
from npucheck.measure.suites import get_suite
from npucheck.model import as_profile
from npucheck.read import plot as plotting
from npucheck.read.judge import judge_criterion
from npucheck.read.screen import print_profile
from npucheck.summary import peak_gbps
from npucheck.targets import Criterion, parse_target
from tests.conftest import STATS, make_measurement, make_profile

MIB = 2**20


@pytest.fixture
def small_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    """A 1 MiB last-level cache, so that 4 MiB arrays are 'past' it and the tests stay small."""
    monkeypatch.setattr(memory, "last_level_cache_bytes", lambda device, sysfs_root="/sys": (MIB, "test"))


def _workload(kernel: str, dtype: str, mib: int = 4) -> Any:
    case = KERNELS[kernel].case(dtype, {"mib": mib}, "stream")
    device = torch.device("cpu")
    return KERNELS[kernel].builder(
        case.shape, {"fp16": torch.float16, "bf16": torch.bfloat16, "fp32": torch.float32}[dtype], dtype, device,
        generator_for(case.id, 0, device),
    )  # fmt: skip


# ------------------------------------------------------------------------------------------------ the kernels
@pytest.mark.parametrize("dtype", ["fp16", "bf16", "fp32"])
@pytest.mark.parametrize("kernel", ["copy", "triad"])
def test_copy_and_triad_match_their_host_reference_exactly(small_cache: None, kernel: str, dtype: str) -> None:
    check = _workload(kernel, dtype).verify()
    assert check.status == "ok" and check.rel_error == 0.0 and check.tolerance == 0.0
    assert "0 differ" in check.checked


def test_a_copy_that_wrote_nothing_is_wrong(small_cache: None) -> None:
    src, dst = _workload("copy", "fp32").keep
    dst.zero_()  # what verify() leaves when the copy did nothing
    check = memory._exact_check(dst, lambda p: src.index_select(0, p), torch.Generator().manual_seed(1), "fp32", "x")
    assert check.status == "wrong" and check.rel_error > 0


def test_one_wrong_element_of_a_triad_is_caught_when_sampled() -> None:
    out = torch.arange(16, dtype=torch.float32)
    ref = out.clone()
    ref[-1] += 2**-10  # the last element is always compared
    check = memory._exact_check(out, lambda p: ref.index_select(0, p), torch.Generator().manual_seed(0), "fp32", "t")
    assert check.status == "wrong" and "1 differ" in check.checked


def test_arrays_inside_four_times_the_cache_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(memory, "last_level_cache_bytes", lambda device, sysfs_root="/sys": (32 * MIB, "sysfs"))
    with pytest.raises(memory.FitsInCache, match=r"arrays of 64 MiB are not 4x the last-level cache of 32 MiB"):
        _workload("triad", "fp32", mib=64)


def _cache(root: Path, cpu: int, index: int, level: int, kind: str, size: str, shared: str) -> None:
    folder = root / "devices" / "system" / "cpu" / f"cpu{cpu}" / "cache" / f"index{index}"
    folder.mkdir(parents=True)
    for name, value in (("level", level), ("type", kind), ("size", size), ("shared_cpu_list", shared)):
        (folder / name).write_text(f"{value}\n")


def test_the_cpu_llc_is_the_highest_level_summed_over_distinct_caches(tmp_path: Path) -> None:
    for cpu, shared in ((0, "0-1"), (1, "0-1"), (2, "2-3")):  # two sockets' L3s, the first seen by two cpus
        _cache(tmp_path, cpu, 0, 1, "Data", "48K", str(cpu))
        _cache(tmp_path, cpu, 1, 2, "Unified", "1024K", str(cpu))
        _cache(tmp_path, cpu, 2, 3, "Unified", "32768K", shared)
    size, source = memory.last_level_cache_bytes(torch.device("cpu"), tmp_path)
    assert size == 64 * MIB and source == "sysfs cpu cache"


def test_no_cache_information_falls_back_to_the_documented_default(tmp_path: Path) -> None:
    size, source = memory.last_level_cache_bytes(torch.device("cpu"), tmp_path)
    assert size == memory.DEFAULT_LLC_BYTES == 256 * MIB and "default" in source


def test_an_accelerator_llc_is_its_l2_cache_size(monkeypatch: pytest.MonkeyPatch) -> None:
    # torch.cuda.get_device_properties(device).L2_cache_size: bytes (cudaDeviceProp.l2CacheSize), e.g. 50 MiB on H100
    props = SimpleNamespace(L2_cache_size=50 * MIB)
    fake = SimpleNamespace(get_device_properties=lambda device: props)
    monkeypatch.setattr(torch, "get_device_module", lambda kind: fake)
    assert memory.last_level_cache_bytes(torch.device("cuda", 0)) == (
        50 * MIB,
        "torch.cuda.get_device_properties().L2_cache_size",
    )
    monkeypatch.setattr(torch, "get_device_module", lambda kind: SimpleNamespace())  # no such API (MPS, plugins)
    assert memory.last_level_cache_bytes(torch.device("mps"))[0] == memory.DEFAULT_LLC_BYTES


# ------------------------------------------------------------------------------------------------ bytes
def test_bytes_formulas() -> None:
    gemm = KERNELS["gemm"].case("bf16", {"m": 64, "n": 32, "k": 16, "layout": "NN"}, "t")
    assert gemm.bytes == (64 * 16 + 16 * 32 + 64 * 32) * 2
    int8 = KERNELS["gemm"].case("int8", {"m": 64, "n": 32, "k": 16, "layout": "NN"}, "t")
    assert int8.bytes == (64 * 16 + 16 * 32) * 1 + 64 * 32 * 4  # torch._int_mm writes int32
    fp8 = KERNELS["gemm"].case("fp8_e4m3", {"m": 64, "n": 32, "k": 16, "layout": "NT"}, "t")
    assert fp8.bytes == (64 * 16 + 16 * 32) * 1 + 64 * 32 * 2  # bf16 output
    conv = {"n": 2, "c": 4, "h": 8, "w": 8, "k": 6, "r": 3, "s": 3, "pad_h": 1, "pad_w": 1, "stride_h": 1}
    conv.update(stride_w=1, groups=2)
    assert traffic.case_bytes("conv2d", conv, "fp32", 4) == (2 * 4 * 64 + 6 * 2 * 9 + 2 * 6 * 64) * 4
    lstm = {"hidden": 8, "input": 4, "batch": 2, "seq_len": 3, "layers": 1}
    x, weights, out, states = 3 * 2 * 4, 4 * 8 * (4 + 8 + 2), 3 * 2 * 8, 2 * 8 * 2  # states: h and c
    assert traffic.case_bytes("lstm", lstm, "fp16", 2) == (x + weights + out + 2 * states) * 2
    copy = KERNELS["copy"].case("fp16", {"mib": 256}, "stream")
    triad = KERNELS["triad"].case("fp32", {"mib": 256}, "stream")
    assert (copy.bytes, copy.flops) == (2 * 256 * MIB, 0)
    assert (triad.bytes, triad.flops) == (3 * 256 * MIB, 2 * 256 * MIB // 4)


def test_every_catalog_case_has_bytes() -> None:
    for kernel in KERNELS.values():
        for shapes in kernel.shape_sets.values():
            for dtype in ("fp16", "bf16", "fp32"):
                assert (kernel.case(dtype, shapes[0], "s").bytes or 0) > 0, kernel.name


def test_a_memory_case_is_planned_by_its_bytes_not_its_zero_flops() -> None:
    planner = CasePlanner(get_suite("quick"))
    copy = KERNELS["copy"].case("fp32", {"mib": 256}, "stream")
    assert work(copy) == 2 * 256 * MIB and planner.needs_pilot(copy)
    planner.record_call_s(copy, 0.02)  # 537 MB in 20 ms: ~27 GB/s
    assert planner.predict_s(copy, 0.0) == pytest.approx(3 * 0.02 + 2 * memory.VERIFY_ELEMENTS / 1e9 + 6 * 0.02)
    assert planner.skip_reason(copy, 0.0, 100.0) is None
    slow = CasePlanner(get_suite("quick"))
    slow.record_call_s(copy, 1.0)  # ~0.5 GB/s: warm-up, check and 6 samples exceed the 1 s case budget
    assert "0.537 GB/s exceeds the case budget" in (slow.skip_reason(copy, 0.0, 100.0) or "")


def test_the_suites_measure_memory_past_a_gpus_l2_and_first_in_their_dtype() -> None:
    """256 MiB arrays: 4x an H200's 60 MiB L2 still fits under them, so a GPU measures them too; quick has the copy
    (the roofline's bandwidth ceiling), standard copy and triad; each first among the fp32 cases, so the fp32
    sweep cannot use up the budget before them."""
    quick = [c.id for c in get_suite("quick").cases(list(KERNELS), ["fp16", "bf16", "fp32"])]
    standard = [c.id for c in get_suite("standard").cases(list(KERNELS), ["fp16", "bf16", "fp32"])]
    assert "copy/fp32/mib256" in quick and "triad/fp32/mib256" in standard and "copy/fp32/mib256" in standard
    for ids in (quick, standard):
        fp32 = [i for i in ids if "/fp32/" in i]
        assert all(fp32.index(m) < fp32.index(g) for m in fp32 if m.startswith(("copy", "triad")) for g in fp32
                   if g.startswith("gemm"))  # fmt: skip


# ------------------------------------------------------------------------------------------------ GB/s from samples
def memory_measurement(kernel: str = "triad", dtype: str = "fp32", **overrides: Any) -> dict[str, Any]:
    nbytes = memory.ARRAYS[kernel] * 256 * MIB
    figures = bandwidth_figures(nbytes, STATS["median_s"], STATS["ci_low_s"], STATS["ci_high_s"])
    flops = 0 if kernel == "copy" else 2 * 256 * MIB // 4
    m = make_measurement(
        id=f"{kernel}/{dtype}/mib256",
        kernel=kernel,
        family="memory",
        shape_set="stream",
        dtype=dtype,
        shape={"mib": 256},
        flops=flops,
        flop_convention=memory.FLOP_CONVENTIONS[kernel],
        tflops=flops / STATS["median_s"] / 1e12,
        tflops_ci=[flops / STATS["ci_high_s"] / 1e12, flops / STATS["ci_low_s"] / 1e12],
        bytes=nbytes,
        gbps=figures["gbps"],
        gbps_ci=list(figures["gbps_ci"]),
    )
    m.update(overrides)
    return m


def profile_with(*extra: dict[str, Any], datasheet: dict[str, Any] | None = None) -> dict[str, Any]:
    profile = make_profile()
    profile["measurements"] += list(extra)
    profile["device"]["datasheet"] = datasheet
    profile["summary"].pop("peak_gbps", None)
    return profile


def test_gbps_is_bytes_over_the_median_and_agrees_with_the_raw_samples() -> None:
    m = memory_measurement()
    assert m["gbps"] == pytest.approx(3 * 256 * MIB / 1e-4 / 1e9)
    assert m["gbps_ci"][0] < m["gbps"] < m["gbps_ci"][1]
    checked = audit(profile_with(m))
    assert checked.findings == ()
    assert checked.profile.summary.peak_gbps == {"fp32": m["gbps"]}


def test_an_edited_gbps_is_an_error_and_leaves_the_peak() -> None:
    checked = audit(profile_with(memory_measurement(gbps=9999.0)))
    assert [f.field for f in checked.findings] == ["gbps"]
    edited = checked.profile.measurements[-1]
    assert edited.status == "error" and edited.gbps is None and "edited or corrupt" in (edited.error or "")
    assert dict(checked.profile.summary.peak_gbps) == {}


def test_a_gbps_without_its_bytes_is_a_finding() -> None:
    checked = audit(profile_with(memory_measurement(bytes=None)))
    assert checked.findings and checked.findings[0].field == "gbps"


def test_summary_peak_gbps_takes_the_best_correct_memory_case() -> None:
    copy = as_profile(profile_with(memory_measurement("copy"))).measurements[-1]
    triad = as_profile(profile_with(memory_measurement("triad"))).measurements[-1]
    assert peak_gbps([copy, triad]) == {"fp32": triad.gbps}
    wrong = as_profile(profile_with(memory_measurement("triad", correct=False))).measurements[-1]
    assert peak_gbps([copy, wrong]) == {"fp32": copy.gbps}


def test_an_old_file_without_bytes_still_loads_and_writes_back_unchanged() -> None:
    doc = make_profile()
    assert "bytes" not in doc["measurements"][0]
    profile = as_profile(doc)
    assert profile.measurements[0].bytes is None
    assert profile.to_dict() == doc
    assert "peak_gbps" not in audit(doc).profile.summary.to_dict()


# ------------------------------------------------------------------------------------------------ peak_gbps judged
def gbps_criterion(threshold: float, op: str = ">=", dtype: str | None = None) -> Criterion:
    return Criterion(metric="peak_gbps", op=op, threshold=threshold, dtype=dtype)


def test_peak_gbps_passes_only_when_the_lower_bound_clears() -> None:
    m = memory_measurement()
    low, high = m["gbps_ci"]
    profile = profile_with(m, memory_measurement("copy"))
    assert judge_criterion(profile, gbps_criterion(low))["status"] == "PASS"
    result = judge_criterion(profile, gbps_criterion((low + high) / 2))
    assert result["status"] == "INCONCLUSIVE" and "straddles" in result["reason"]
    assert judge_criterion(profile, gbps_criterion(high * 1.01))["status"] == "FAIL"
    assert judge_criterion(profile, gbps_criterion(low, dtype="fp32"))["metric"] == "peak_gbps.fp32"
    assert judge_criterion(profile, gbps_criterion(low))["unit"] == "GB/s"


def test_peak_gbps_without_an_interval_is_inconclusive() -> None:
    m = memory_measurement(samples_s=[], stats=None)  # no raw samples: the interval cannot be recomputed
    result = judge_criterion(profile_with(m), gbps_criterion(1.0))
    assert result["status"] == "INCONCLUSIVE" and "no interval" in result["reason"]


def test_peak_gbps_without_a_memory_case_is_inconclusive_never_pass() -> None:
    result = judge_criterion(profile_with(), gbps_criterion(0.0))
    assert result["status"] == "INCONCLUSIVE" and "not measured" in result["reason"]
    result = judge_criterion(profile_with(memory_measurement(dtype="fp32")), gbps_criterion(0.0, dtype="bf16"))
    assert result["status"] == "INCONCLUSIVE"


def test_peak_gbps_above_the_datasheet_bandwidth_is_an_error() -> None:
    m = memory_measurement()
    sheet = {"part": "Test GPU", "memory_bandwidth_gbps": m["gbps"] / (BANDWIDTH_CEILING_FACTOR * 2)}
    result = judge_criterion(profile_with(m, datasheet=sheet), gbps_criterion(1.0))
    assert result["status"] == "ERROR" and "datasheet memory bandwidth" in result["reason"]


def test_a_wrong_memory_case_cannot_pass() -> None:
    result = judge_criterion(profile_with(memory_measurement(correct=False)), gbps_criterion(1.0))
    assert result["status"] == "ERROR"


def test_a_target_file_may_ask_for_peak_gbps_with_or_without_a_dtype() -> None:
    text = """format = 1
name = "bw"
title = "bandwidth"
[[criteria]]
metric = "peak_gbps"
op = ">="
threshold = 3000
[[criteria]]
metric = "peak_gbps"
dtype = "bf16"
op = ">="
threshold = 2000
"""
    target = parse_target(text, "bw.toml")
    assert [c.label for c in target.criteria] == ["peak_gbps", "peak_gbps.bf16"]
    assert target.criteria[0].unit == "GB/s"


# ------------------------------------------------------------------------------------------------ show and plot
def test_show_writes_memory_cases_in_gbps_beside_the_datasheet() -> None:
    from rich.console import Console

    m = memory_measurement()
    profile = as_profile(profile_with(m, datasheet={"part": "Test GPU", "memory_bandwidth_gbps": 4800.0}))
    console = Console(width=160, record=True, color_system=None)
    print_profile(console, profile)
    text = console.export_text()
    assert f"{m['gbps']:.4g} GB/s" in text
    assert "Memory bandwidth" in text and "4800" in text and f"{m['gbps'] / 4800:.0%}" in text


def test_the_roofline_places_cases_with_bytes(tmp_path: Path) -> None:
    gemm = make_measurement(bytes=3 * 256 * 256 * 2)
    profile = profile_with(gemm, memory_measurement("triad"), memory_measurement("copy"))
    profile["measurements"] = profile["measurements"][1:]
    sheet = {"part": "Test GPU", "memory_bandwidth_gbps": 4800.0, "peak_tflops": {"fp16": 989.0}}
    profile["device"]["datasheet"] = sheet
    figure = plotting.build("roofline", [profile], ["a"])
    labels = [text.get_text() for text in figure.axes[0].get_legend().get_texts()]
    assert "measured roofline" in labels and "datasheet roofline" in labels
    assert "not placed: 1 case without an intensity" in figure.axes[0].get_title()  # the copy (0 FLOPs)
    assert plotting.render(figure)[:4] == b"\x89PNG"


def test_an_old_file_without_bytes_cannot_be_placed_and_says_why(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="no correct case stores the bytes of its operands"):
        plotting.build("roofline", [make_profile()], ["old"])
    assert plotting.build("sweep", [make_profile()], ["old"]) is not None  # the other plots are unchanged


def test_plot_roofline_command(tmp_path: Path) -> None:
    profile = profile_with(make_measurement(bytes=3 * 256 * 256 * 2), memory_measurement())
    path = tmp_path / "r.json"
    path.write_text(json.dumps(profile))
    result = CliRunner().invoke(cli, ["plot", "--kind", "roofline", str(path), "-o", str(tmp_path / "r.png")])
    assert result.exit_code == 0, result.output
    old = tmp_path / "old.json"
    old.write_text(json.dumps(make_profile()))
    result = CliRunner().invoke(cli, ["plot", "--kind", "roofline", str(old), "-o", str(tmp_path / "o.png")])
    assert result.exit_code == 2 and len(result.output.strip().splitlines()) == 1
    assert "Traceback" not in result.output


def test_int8_cases_are_left_off_a_tflops_roofline_and_never_set_its_ceiling():
    """int8 GEMMs count operations (TOPS): on a roofline in TFLOPS they would set a compute ceiling no floating-point
    case can reach (2 TOPS here beside a 0.94 TFLOPS bf16 peak)."""
    from npucheck.model import ResultProfile
    from npucheck.read.roofline import RooflineData

    path = Path(__file__).resolve().parent.parent / "docs/examples/cpu-standard-2026-11-26/standard.json"
    data = RooflineData(ResultProfile.from_dict(json.loads(path.read_text(encoding="utf-8"))))
    assert data.integer == 2 and all(m.dtype != "int8" for m, _, _ in data.points)
    assert data.compute_case == "gemm/bf16/m3072_n1500_k1024_NN"
