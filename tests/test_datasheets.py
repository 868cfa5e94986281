"""Datasheet device profiles: every shipped file loads with a source per figure, names match the right part,
ambiguous names match none, user files win, malformed files are one-line usage errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from npucheck import datasheets as ds
from npucheck.datasheets import (
    CEILING_FACTOR,
    DatasheetError,
    ceiling_reason,
    load_datasheets,
    match_datasheet,
    percent_of_datasheet,
)
from npucheck.errors import UsageError


@pytest.fixture(autouse=True)
def _no_user_datasheets(monkeypatch):
    monkeypatch.delenv(ds.ENV_VAR, raising=False)


def _builtins():
    return load_datasheets()


def _write(directory: Path, stem: str, text: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{stem}.toml"
    path.write_text(text)
    return path


MINIMAL = """format = 1
part = "{part}"
match = [{match}]
[tflops.fp16]
value = {fp16}
source = "my lab's vendor sheet, table 1"
"""


# ------------------------------------------------------------------------------------------------ shipped files
def test_every_shipped_datasheet_loads_and_covers_the_parts_the_issue_names():
    stems = {sheet.stem for sheet in _builtins()}
    for stem in (
        "nvidia-h100-sxm",
        "nvidia-h100-pcie",
        "nvidia-h200-sxm",
        "nvidia-gh200",
        "nvidia-a100-sxm4-80gb",
        "nvidia-a100-pcie-40gb",
        "nvidia-l40s",
        "nvidia-b200",
        "amd-mi250x",
        "amd-mi300x",
        "intel-gaudi2",
        "intel-gaudi3",
        "huawei-ascend-910b",
        "nvidia-jetson-agx-orin-64gb",
    ):
        assert stem in stems


def test_every_shipped_figure_has_a_source():
    for sheet in _builtins():
        for key in sheet.tflops_per_part:
            assert len(sheet.sources.get(key, "")) > 10, (sheet.file, key)
        if sheet.power_w is not None:
            assert sheet.sources.get("power_w") and sheet.power_kind and sheet.power_covers, sheet.file
        if sheet.memory_bandwidth_gbps is not None:
            assert sheet.sources.get("memory_bandwidth_gbps"), sheet.file


def test_a_shipped_sheet_without_figures_says_why_in_a_note():
    for sheet in _builtins():
        if not sheet.tflops_per_part:
            assert sheet.note and "no" in sheet.note.lower(), sheet.file


def test_no_two_shipped_sheets_share_a_part_or_a_pattern_except_the_shared_mi250_name():
    sheets = _builtins()
    parts = [s.part for s in sheets]
    assert len(parts) == len(set(parts))
    owners: dict[str, list[str]] = {}
    for sheet in sheets:
        for pattern in sheet.match:
            owners.setdefault(ds._normalize(pattern), []).append(sheet.stem)
    shared = {p: o for p, o in owners.items() if len(o) > 1}
    assert shared == {"amd instinct mi250x/mi250": ["amd-mi250", "amd-mi250x"]}


def test_shipped_dense_figures_are_not_sparse_ones():
    """NVIDIA's asterisked figures are 2:4 sparse; the files must hold half of them."""
    by_stem = {s.stem: s for s in _builtins()}
    assert by_stem["nvidia-h100-sxm"].peak_tflops("fp16") == pytest.approx(989.5)
    assert by_stem["nvidia-h100-pcie"].peak_tflops("bf16") == pytest.approx(756.5)
    assert by_stem["nvidia-a100-sxm4-80gb"].peak_tflops("fp16") == pytest.approx(312)
    assert by_stem["nvidia-b200"].peak_tflops("fp16") == pytest.approx(2250)


# ------------------------------------------------------------------------------------------------ matching
@pytest.mark.parametrize(
    "name, stem",
    [
        ("NVIDIA H100 80GB HBM3", "nvidia-h100-sxm"),
        ("NVIDIA H100 PCIe", "nvidia-h100-pcie"),
        ("NVIDIA H100 NVL", "nvidia-h100-nvl"),
        ("NVIDIA H200", "nvidia-h200-sxm"),
        ("NVIDIA H200 NVL", "nvidia-h200-nvl"),
        ("NVIDIA GH200 480GB", "nvidia-gh200"),
        ("NVIDIA A100-SXM4-80GB", "nvidia-a100-sxm4-80gb"),
        ("NVIDIA A100-SXM4-40GB", "nvidia-a100-sxm4-40gb"),
        ("NVIDIA A100-PCIE-40GB", "nvidia-a100-pcie-40gb"),
        ("NVIDIA A100 80GB PCIe", "nvidia-a100-pcie-80gb"),
        ("NVIDIA L40S", "nvidia-l40s"),
        ("NVIDIA B200", "nvidia-b200"),
        ("AMD Instinct MI300X", "amd-mi300x"),
        ("AMD Instinct MI250X", "amd-mi250x"),
        ("GAUDI2", "intel-gaudi2"),
        ("GAUDI3", "intel-gaudi3"),
        ("Ascend910B3", "huawei-ascend-910b"),
        ("Orin", "nvidia-jetson-agx-orin-64gb"),
        ("  nvidia   h100 pcie ", "nvidia-h100-pcie"),  # case and runs of spaces do not matter
    ],
)
def test_a_torch_device_name_matches_its_part(name, stem):
    sheet, why = match_datasheet(name)
    assert sheet is not None, why
    assert sheet.stem == stem
    assert sheet.matched_pattern and stem in why


@pytest.mark.parametrize(
    "name",
    [
        "NVIDIA L40",
        "NVIDIA H100",
        "NVIDIA GeForce RTX 4090",
        "cpu",
        "Intel(R) Xeon(R)",
        "NVIDIA H200 NVL 2",
        "GAUDI2E",
        "",
    ],
)
def test_an_unknown_or_partial_name_matches_nothing_and_says_why(name):
    sheet, why = match_datasheet(name)
    assert sheet is None
    assert why


def test_a_name_two_parts_share_matches_neither_and_names_both():
    sheet, why = match_datasheet("AMD Instinct MI250X/MI250")
    assert sheet is None
    assert "equally" in why and "MI250X" in why and "amd-mi250.toml" in why


def test_the_most_specific_pattern_wins(tmp_path):
    _write(tmp_path, "broad", MINIMAL.format(part="Broad", match='"ACME *"', fp16=10))
    _write(tmp_path, "narrow", MINIMAL.format(part="Narrow", match='"ACME X1 *"', fp16=20))
    sheet, _ = match_datasheet("ACME X1 Pro", extra_dirs=[tmp_path])
    assert sheet.part == "Narrow"
    sheet, _ = match_datasheet("ACME Y2", extra_dirs=[tmp_path])
    assert sheet.part == "Broad"


def test_equally_specific_user_patterns_give_no_match(tmp_path):
    _write(tmp_path, "a", MINIMAL.format(part="A", match='"ACME X*"', fp16=10))
    _write(tmp_path, "b", MINIMAL.format(part="B", match='"ACME *1"', fp16=20))
    sheet, why = match_datasheet("ACME X1", extra_dirs=[tmp_path])
    assert sheet is None and "equally" in why


def test_a_user_file_wins_over_the_builtin_of_the_same_name(tmp_path):
    _write(tmp_path, "nvidia-h100-pcie", MINIMAL.format(part="My H100 PCIe", match='"NVIDIA H100 PCIe"', fp16=700))
    sheet, why = match_datasheet("NVIDIA H100 PCIe", extra_dirs=[tmp_path])
    assert sheet.part == "My H100 PCIe" and not sheet.builtin and "user" in why
    assert len([s for s in load_datasheets([tmp_path]) if s.stem == "nvidia-h100-pcie"]) == 1


def test_a_matching_user_file_wins_over_a_more_specific_builtin(tmp_path):
    _write(tmp_path, "mine", MINIMAL.format(part="Mine", match='"NVIDIA H100*"', fp16=900))
    sheet, _ = match_datasheet("NVIDIA H100 80GB HBM3", extra_dirs=[tmp_path])
    assert sheet.part == "Mine"


def test_user_files_come_from_the_environment_variable(tmp_path, monkeypatch):
    _write(tmp_path, "orin-nano", MINIMAL.format(part="Jetson Orin Nano 8GB", match='"Orin"', fp16=10))
    monkeypatch.setenv(ds.ENV_VAR, str(tmp_path))
    sheet, _ = match_datasheet("Orin")
    assert sheet.part == "Jetson Orin Nano 8GB"


def test_a_user_directory_that_does_not_exist_is_a_usage_error(tmp_path, monkeypatch):
    monkeypatch.setenv(ds.ENV_VAR, str(tmp_path / "nope"))
    with pytest.raises(UsageError, match=ds.ENV_VAR):
        match_datasheet("NVIDIA H200")


# ------------------------------------------------------------------------------------------------ validation
@pytest.mark.parametrize(
    "text, key",
    [
        ("format = 1\npart = 'x'\n", "match"),
        ("format = 2\npart = 'x'\nmatch = ['ACME']\n", "format"),
        ("format = 1\npart = 'x'\nmatch = []\n", "match"),
        ("format = 1\npart = 'x'\nmatch = ['*']\n", "match[0]"),
        ("format = 1\npart = 'x'\nmatch = ['ACME']\ndevices_per_part = 0\n", "devices_per_part"),
        ("format = 1\npart = 'x'\nmatch = ['ACME']\n[tflops.fp16]\nvalue = 10\n", "tflops.fp16.source"),
        ("format = 1\npart = 'x'\nmatch = ['ACME']\n[tflops.fp16]\nvalue = -1\nsource = 's'\n", "tflops.fp16.value"),
        ("format = 1\npart = 'x'\nmatch = ['ACME']\n[tflops.fp8]\nvalue = 1\nsource = 's'\n", "tflops.fp8"),
        ("format = 1\npart = 'x'\nmatch = ['ACME']\npower_w = 300\n", "power_kind"),
        ("format = 1\npart = 'x'\nmatch = ['ACME']\nmemory_bandwidth_gbps = 100\n", "memory_bandwidth_source"),
        ("format = 1\npart = 'x'\nmatch = ['ACME']\ntflops_per_watt = 2.0\n", "tflops_per_watt"),
        ("format = 1\npart = 'x'\nmatch = ['ACME']\ncolour = 'green'\n", "colour"),
        ("format = 1\npart = 'x\nmatch = ['ACME']\n", "not valid TOML"),
    ],
)
def test_a_malformed_file_is_one_usage_error_line_naming_file_and_key(tmp_path, text, key):
    path = _write(tmp_path, "bad", text)
    with pytest.raises(UsageError) as info:
        load_datasheets([tmp_path])
    message = str(info.value)
    assert isinstance(info.value, DatasheetError)
    assert "\n" not in message and str(path) in message and key in message


# ------------------------------------------------------------------------------------------------ figures
def test_figures_are_per_torch_device_and_tflops_per_watt_is_derived():
    sheet, _ = match_datasheet("AMD Instinct MI250X")
    assert sheet.devices_per_part == 2
    assert sheet.peak_tflops("fp16") == pytest.approx(383.0 / 2)
    assert sheet.peak_tflops("fp32") == pytest.approx(95.7 / 2)  # the FP32 matrix figure beats the vector one
    data = sheet.to_dict()
    assert data["tflops"]["fp16"] == pytest.approx(191.5)
    assert data["tflops_per_part"]["fp16"] == pytest.approx(383.0)
    assert data["power_w"] == pytest.approx(280) and data["power_w_per_part"] == pytest.approx(560)
    assert data["tflops_per_watt"]["fp16"] == pytest.approx(383.0 / 560)
    json.dumps(data)


def test_the_fp32_ceiling_is_true_fp32_not_tf32():
    # runs force IEEE fp32 and the 1e-4 tolerance rejects TF32 results, so 156 TFLOPS (TF32) is no fp32 figure
    sheet, _ = match_datasheet("NVIDIA A100-SXM4-80GB")
    assert sheet.peak_tflops("fp32") == pytest.approx(19.5)
    assert sheet.ceiling_tflops("fp32") == pytest.approx(CEILING_FACTOR * 19.5)
    assert sheet.ceiling_tflops("fp16") == pytest.approx(CEILING_FACTOR * 312)


def test_a_figure_above_the_ceiling_has_a_reason_and_one_below_has_none():
    data = match_datasheet("NVIDIA H100 80GB HBM3")[0].to_dict()
    assert ceiling_reason(data, "fp16", 1000.0) is None  # 1.011 x peak: a lucky clock, not an error
    reason = ceiling_reason(data, "fp16", 1100.0)
    assert reason and "exceeds" in reason and "989.5" in reason
    assert ceiling_reason(None, "fp16", 1e9) is None
    assert ceiling_reason(data, "fp16", None) is None


def test_percent_of_datasheet_needs_both_figures():
    data = match_datasheet("NVIDIA H100 80GB HBM3")[0].to_dict()
    assert percent_of_datasheet(data, "bf16", 791.6) == pytest.approx(0.8)
    assert percent_of_datasheet(None, "bf16", 791.6) is None
    assert percent_of_datasheet({}, "bf16", 791.6) is None
    gaudi = match_datasheet("GAUDI3")[0].to_dict()
    assert percent_of_datasheet(gaudi, "fp16", 500.0) is None  # FP16 peak not sourced
    assert "fp16" not in gaudi["tflops_per_watt"]
