"""Device detection and description, and suite data (power sources: test_power.py)."""

import pytest

from npucheck.errors import DeviceUnavailableError, UsageError
from npucheck.kernels import DTYPE_NAMES, select_dtypes, select_kernels
from npucheck.measure.devices import CpuDevice, available_devices, cpu_caches, resolve_device
from npucheck.measure.suites import get_suite, load_suites


def _write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_auto_picks_the_cpu_when_torch_sees_no_accelerator():
    assert resolve_device("auto").backend == "cpu"
    assert available_devices()[0][-1] == "cpu"


@pytest.mark.parametrize("spec", ["cuda", "cuda:3", "xpu:0", "mps", "tpu", "cpu:x"])
def test_devices_not_present_are_refused_with_the_available_list(spec):
    with pytest.raises(DeviceUnavailableError, match="available"):
        resolve_device(spec)


def test_cpu_caches_and_flush_size_come_from_sysfs(tmp_path):
    base = tmp_path / "devices/system/cpu/cpu0/cache"
    for index, (level, kind, size) in enumerate([(1, "Data", "48K"), (2, "Unified", "2048K"), (3, "Unified", "32M")]):
        _write(base / f"index{index}/level", f"{level}\n")
        _write(base / f"index{index}/type", f"{kind}\n")
        _write(base / f"index{index}/size", f"{size}\n")
    assert cpu_caches(tmp_path)[-1] == {"level": 3, "type": "Unified", "size_bytes": 32 * 2**20}
    assert CpuDevice(sysfs_root=tmp_path).cache_flush_bytes() == 64 * 2**20


def test_cpu_flush_is_capped_when_a_vm_reports_the_hosts_whole_cache(tmp_path):
    base = tmp_path / "devices/system/cpu/cpu0/cache/index3"
    _write(base / "level", "3")
    _write(base / "type", "Unified")
    _write(base / "size", "516096K")
    assert CpuDevice(sysfs_root=tmp_path).cache_flush_bytes() == 256 * 2**20


def test_every_builtin_suite_expands_to_cases_fp16_first():
    for name, suite in load_suites().items():
        cases = suite.cases(select_kernels(None), select_dtypes(None))
        assert cases, name
        assert cases[0].dtype == "fp16"
        dtypes_in_order = [c.dtype for c in cases]
        assert dtypes_in_order == sorted(dtypes_in_order, key=list(DTYPE_NAMES).index)  # int8 before fp32


def test_quick_suite_covers_every_kernel_family():
    families = {c.family for c in get_suite("quick").cases(select_kernels(None), ["fp16"])}
    assert families == {"gemm", "cnn", "rnn", "lstm", "gru", "attention"}


@pytest.mark.parametrize(
    "text,message",
    [
        ("[s]\ndescription='x'\n", "missing keys"),
        ("[s\n", "suites.toml"),
    ],
)
def test_malformed_suite_files_are_usage_errors(text, message):
    with pytest.raises(UsageError, match=message):
        load_suites(text)


def test_unknown_shape_set_in_a_suite_is_named():
    text = (
        "[s]\ndescription='x'\nsuite_budget_s=1\ncase_budget_s=1\ncase_target_s=1\ndevice_warmup_s=0\n"
        "accelerator_warmup_s=0\nmin_samples=6\nmax_samples=9\nmin_sample_s=0.001\npower_window_s=1\nidle_s=0\npower_trials=1\n"
        "entries=[{kernel='gemm', shape_set='nope'}]\n"
    )
    with pytest.raises(UsageError, match="no shape set 'nope'"):
        load_suites(text)
