"""The accelerator path through a fake runtime that follows torch's documented event and stream semantics
(tests/fakes_accelerator.py). The CPU here cannot show a CUDA path is wrong; these tests can."""

import pytest
import torch

from npucheck.errors import DeviceUnavailableError
from npucheck.measure.devices import DEVICE_EVENTS, HOST_CLOCK, resolve_device
from npucheck.measure.timing import COLD, MIXED, TimingSettings, time_kernel
from tests.fakes_accelerator import FakeGpu, FakeRuntime, two_h100s


def test_the_fake_models_the_bug_an_unbound_event_times_the_current_devices_idle_stream():
    runtime = two_h100s()
    start, end = runtime.event(torch.device("cuda", 1)), runtime.event(torch.device("cuda", 1))
    start.record()  # current device is 0
    runtime.launch(1, 0.005)
    end.record()
    assert start.elapsed_time(end) == 0.0


def test_resolving_a_device_makes_it_current():
    runtime = two_h100s()
    device = resolve_device("cuda:1", runtime=runtime)
    assert runtime.current == 1
    assert device.id == "cuda:1"
    assert device.timing_method == DEVICE_EVENTS


def test_events_time_the_device_under_test_even_when_another_device_is_current():
    runtime = two_h100s()
    device = resolve_device("cuda:1", runtime=runtime)
    runtime.set_device_index(0)  # a library or a callback switched the current device
    assert device.time_calls(runtime.kernel(1, 0.001), 10) == pytest.approx(0.010)


def test_single_call_samples_exclude_the_flush_and_each_start_cold():
    runtime = two_h100s()
    device = resolve_device("cuda:1", runtime=runtime)
    flushes = []

    def flush():
        flushes.append(1)
        runtime.launch(1, 0.004)  # a 256 MiB memset on the same stream, outside the event pair

    times = device.time_each_call(runtime.kernel(1, 0.001), flush, 5)
    assert times == pytest.approx([0.001] * 5)
    assert len(flushes) == 5


def test_timing_on_an_event_device_flushes_before_every_call():
    runtime = two_h100s()
    device = resolve_device("cuda:1", runtime=runtime)
    flushes = []
    now = [0.0]

    def kernel():
        runtime.launch(1, 0.0002)
        now[0] += 0.0002

    result = time_kernel(
        kernel,
        device,
        lambda: flushes.append(1),
        TimingSettings(budget_s=0.01, min_samples=6, max_samples=40),
        clock=lambda: now[0],
    )
    assert result.calls_per_sample == 1
    assert result.per_call_events
    assert len(flushes) == len(result.samples_s)
    assert result.cache_state(flushed=True) == COLD
    assert result.stats.median_s == pytest.approx(0.0002)


def test_a_backend_without_events_is_timed_with_the_host_clock_and_its_samples_are_marked_mixed():
    runtime = FakeRuntime(kind="xpu", events=False)
    device = resolve_device("xpu:0", runtime=runtime)
    assert device.timing_method == HOST_CLOCK
    assert not device.per_call_events
    result = time_kernel(
        lambda: sum(range(2000)),
        device,
        lambda: None,
        TimingSettings(budget_s=0.01, min_samples=6, max_samples=10, min_sample_s=0.001),
    )
    assert result.calls_per_sample > 1
    assert result.cache_state(flushed=True) == MIXED


def test_describe_tells_cuda_from_rocm_by_the_runtime_not_by_gcn_arch_name():
    cuda = resolve_device("cuda:0", runtime=FakeRuntime()).describe()
    assert cuda["properties"]["gcnArchName"]  # CUDA builds fill it with the device name
    assert cuda["runtime"] == "cuda"
    rocm = resolve_device("cuda:0", runtime=FakeRuntime(rocm=True, gpus=[FakeGpu(name="AMD Instinct MI300X")]))
    assert rocm.describe()["runtime"] == "rocm"


def test_describe_carries_the_uuid_and_pci_address_that_power_sources_match_on():
    description = resolve_device("cuda:1", runtime=two_h100s()).describe()
    assert description["index"] == 1
    assert description["properties"]["uuid"] == "bbbbbbbb-0000-4000-8000-000000000002"
    assert description["properties"]["pci_bus_id"] == "0000:1b:00.0"


def test_describe_records_the_visible_devices_variables(monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3,1")
    assert resolve_device("cuda:0", runtime=two_h100s()).describe()["visible_devices"] == {
        "CUDA_VISIBLE_DEVICES": "3,1"
    }


def test_an_index_past_the_device_count_is_refused():
    with pytest.raises(DeviceUnavailableError, match="2 cuda device"):
        resolve_device("cuda:2", runtime=two_h100s())


@pytest.fixture
def torch_sees_two_gpus(monkeypatch):
    """torch's own accelerator API (torch.Event, torch.accelerator.*, torch.cuda names) answered by the fake, so the
    real TorchRuntime wrapper, not only the seam, is exercised with the documented semantics."""
    runtime = two_h100s()
    accel = torch.accelerator
    monkeypatch.setattr(accel, "is_available", lambda: True)
    monkeypatch.setattr(accel, "current_accelerator", lambda *a, **k: torch.device("cuda"))
    monkeypatch.setattr(accel, "device_count", runtime.device_count)
    monkeypatch.setattr(accel, "set_device_index", runtime.set_device_index)
    monkeypatch.setattr(accel, "current_device_index", runtime.current_device_index)
    monkeypatch.setattr(accel, "current_stream", lambda device=None: runtime.current_stream(device))
    monkeypatch.setattr(accel, "synchronize", lambda device=None: runtime.synchronize(torch.device(device or "cuda")))
    monkeypatch.setattr(torch, "Event", lambda device=None, **kw: runtime.event(torch.device(device or "cuda")))
    monkeypatch.setattr(torch.cuda, "get_device_name", runtime.device_name)
    monkeypatch.setattr(torch.cuda, "get_device_properties", runtime.device_properties)
    return runtime


def test_through_torchs_own_api_cuda_1_is_timed_on_cuda_1(torch_sees_two_gpus):
    runtime = torch_sees_two_gpus
    device = resolve_device("cuda:1")
    runtime.set_device_index(0)
    # before the fix: events recorded on cuda:0's idle stream, 0 s for 10 ms of work on cuda:1
    assert device.time_calls(runtime.kernel(1, 0.001), 10) == pytest.approx(0.010)
    assert device.describe()["properties"]["pci_bus_id"] == "0000:1b:00.0"


def _run_on_fake_cuda_1(monkeypatch, **options):
    import npucheck.measure.runner as runner_module
    from npucheck.measure.runner import Runner, RunOptions
    from tests.test_runner import TINY

    monkeypatch.setattr(runner_module, "busy_processes", lambda interval_s=0.5, exclude=None: [])
    runtime = two_h100s(host_device=1)
    runner = Runner(
        RunOptions(device="cuda:1", dtypes=["fp32"], kernels=["gemm"], power="none", **options),
        suite=TINY,
        runtime=runtime,
    )
    return runner, runtime


def test_a_whole_run_on_cuda_1_times_single_cold_calls_on_its_stream_and_confirms_with_the_host_clock(monkeypatch):
    runner, runtime = _run_on_fake_cuda_1(monkeypatch)
    profile = runner.run().to_dict()
    assert profile["device"]["id"] == "cuda:1" and profile["device"]["timing_method"] == DEVICE_EVENTS
    ok = [m for m in profile["measurements"] if m["status"] == "ok"]
    assert ok and all(m["calls_per_sample"] == 1 and m["cache_state"] == COLD for m in ok)
    (confirmation,) = profile["confirmations"]
    assert confirmation["status"] == "ok"
    # events on cuda:1's stream agree with the host clock for the same calls (the host clock can only read low)
    assert confirmation["events_vs_host_clock"] < 1.15
    assert runtime.current == 1


def test_a_run_whose_events_time_an_idle_stream_never_produces_a_figure(monkeypatch):
    from npucheck.measure.devices import AcceleratorDevice

    runner, runtime = _run_on_fake_cuda_1(monkeypatch)
    # the old bug: events recorded on the current device's (cuda:0's) stream while the kernels run on cuda:1
    monkeypatch.setattr(AcceleratorDevice, "_stream", lambda self: runtime.streams[0])
    profile = runner.run().to_dict()  # before the probe's guard, a zero reading crashed the run (ZeroDivisionError)
    cases = profile["measurements"]
    assert cases and all(m["status"] != "ok" and "timer returned 0.0" in (m["reason"] or m["error"]) for m in cases)
    assert profile["summary"]["peak_tflops"] == {} and profile["confirmations"] == []
