"""The efficiency-vs-power-cap sweep (``run --power-caps``) through NVML and amdsmi fakes that follow the real APIs'
units (mW, µW) and failure modes (tests/fakes_powercap.py). No real device's limit is ever touched."""

from __future__ import annotations

import os
import signal
from dataclasses import replace

import pytest
from click.testing import CliRunner

from npucheck.cli import cli
from npucheck.errors import UsageError
from npucheck.measure import capsweep
from npucheck.measure.power.amd import AmdSmiSource
from npucheck.measure.power.caps import (
    AmdSmiCapControl,
    CapPermissionError,
    NvmlCapControl,
    cap_control_for,
    parse_caps,
    plan_caps,
)
from npucheck.measure.power.nvml import NvmlSource
from npucheck.model import Energy, PowerCaps
from npucheck.signals import StopOnSignal, Stopped
from tests.fakes_powercap import CappableAmdSmi, CappableNvml

GPU = {"backend": "cuda"}


@pytest.fixture
def own_signals():
    """A test that sends itself a signal leaves the handlers (SIG_IGN after a stop) as it found them."""
    from npucheck import signals

    before = {signum: signal.getsignal(signum) for signum in signals.STOPPING}
    active = signals._active
    yield
    for signum, handler in before.items():
        signal.signal(signum, handler)
    signals._active = active


def _nvml_plan(caps: str = "300,500,FULL", **fake):
    nv = CappableNvml(**fake)
    source = NvmlSource(nv)
    return nv, plan_caps(cap_control_for(source, GPU), parse_caps(caps))


def _energy(tflops_per_watt: float, watts: float = 300.0) -> Energy:
    window_s, tflops = 1.0, tflops_per_watt * watts
    return Energy.from_dict(
        {
            "source": "nvml",
            "scope": "board",
            "quality": "Q2",
            "uncertainty_rel": 0.05,
            "window_s": window_s,
            "valid": True,
            "joules": watts * window_s,
            "avg_watts": watts,
            "flops": tflops * 1e12 * window_s,
            "tflops": tflops,
            "tflops_per_watt": tflops_per_watt,
            "covers_device": True,
        }
    )


def _sweep(plan, window, **kwargs):
    record = capsweep.sweep_record(plan, "gemm/fp16/m=128", "fp16", settle_s=0.0)
    return capsweep.run_sweep(plan, window, record, sleep=lambda s: None, **kwargs)


# ------------------------------------------------------------------------------------------------ planning
def test_caps_are_set_in_milliwatts_through_nvml_and_full_is_the_default_limit():
    nv, plan = _nvml_plan("300,FULL", limit_mw=450_000)
    assert plan.caps == (("300", 300.0), ("FULL", 700.0))
    assert (plan.min_w, plan.max_w, plan.default_w, plan.original_w) == (200.0, 700.0, 700.0, 450.0)
    assert nv.sets == [450_000]  # the permission probe wrote back the limit it read: nothing changed


def test_caps_are_set_in_microwatts_through_amdsmi_as_an_int():
    amd = CappableAmdSmi()
    source = AmdSmiSource(amd, sleep=amd.advance)
    control = cap_control_for(source, {"backend": "cuda", "runtime": "rocm"})
    assert isinstance(control, AmdSmiCapControl)
    plan = plan_caps(control, parse_caps("400,FULL"))
    assert plan.caps == (("400", 400.0), ("FULL", 750.0)) and plan.min_w == 300.0
    control.set_w(400.4)
    assert amd.sets[-1] == 400_400_000 and control.limit_w() == pytest.approx(400.4)


def test_an_older_amdsmi_names_the_default_power_cap_default():
    amd = CappableAmdSmi(default_key="power_cap_default", default_uw=600_000_000)
    assert AmdSmiCapControl(amd, "gpu0").default_w() == 600.0


def test_no_permission_is_a_one_line_usage_error_before_measuring():
    with pytest.raises(CapPermissionError, match="not allowed to set the power limit through nvml.*root"):
        _nvml_plan(root=False)
    amd = CappableAmdSmi(root=False)
    with pytest.raises(CapPermissionError, match="amdsmi"):
        plan_caps(AmdSmiCapControl(amd, "gpu0"), ["400"])


def test_a_cap_outside_the_constraints_is_refused_naming_the_allowed_range():
    with pytest.raises(UsageError, match=r"150, 800 W outside what this device allows: 200-700 W"):
        _nvml_plan("150,300,800")


def test_a_board_without_a_settable_limit_is_refused():
    with pytest.raises(UsageError, match="cannot read this device's power limits"):
        _nvml_plan(supported=False)


@pytest.mark.parametrize("spec", ["", "300,,400", "abc", "-5", "nan", "300,300"])
def test_bad_cap_lists_are_refused(spec):
    with pytest.raises(UsageError):
        parse_caps(spec)


def test_the_cpu_and_sources_that_cannot_set_a_limit_are_refused():
    with pytest.raises(UsageError, match="RAPL"):
        cap_control_for(None, {"backend": "cpu"})
    with pytest.raises(UsageError, match="needs --power nvml.*here is none"):
        cap_control_for(None, GPU)


# ------------------------------------------------------------------------------------------------ the sweep
def test_a_sweep_sets_reads_back_runs_each_window_and_restores_the_original_limit():
    nv, plan = _nvml_plan("300,500,FULL", limit_mw=600_000)
    windows = iter([_energy(1.2), _energy(1.0), _energy(0.8)])
    seen = []
    record = _sweep(plan, lambda: (seen.append(nv.limit_mw), next(windows))[1])
    assert seen == [300_000, 500_000, 700_000]  # each window ran at its cap
    assert [s["read_back_w"] for s in record["steps"]] == [300.0, 500.0, 700.0]
    assert all(s["verified"] for s in record["steps"])
    assert record["restore"]["verified"] and nv.limit_mw == 600_000
    caps = capsweep.to_model(record)
    assert isinstance(caps, PowerCaps) and caps.best == "300"


def test_a_set_that_fails_mid_sweep_loses_that_cap_and_still_restores():
    nv, plan = _nvml_plan("300,500", limit_mw=600_000)
    nv.fail_set = lambda mw: RuntimeError("GPU is lost") if mw == 500_000 else None
    record = _sweep(plan, lambda: _energy(1.0))
    assert record["steps"][1]["error"].startswith("could not set 500 W: RuntimeError")
    assert record["restore"]["verified"] and nv.limit_mw == 600_000


def test_a_window_that_raises_still_restores():
    nv, plan = _nvml_plan("300,500", limit_mw=600_000)

    def window():
        raise RuntimeError("CUDA error: an illegal memory access")

    record = _sweep(plan, window)
    assert all("energy window failed" in s["error"] for s in record["steps"])
    assert nv.limit_mw == 600_000 and record["restore"]["verified"]


def test_keyboard_interrupt_mid_sweep_restores_then_stops():
    nv, plan = _nvml_plan("300,500", limit_mw=600_000)
    record = capsweep.sweep_record(plan, None, None, 0.0)

    def window():
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        capsweep.run_sweep(plan, window, record, sleep=lambda s: None)
    assert nv.limit_mw == 600_000 and record["restore"]["verified"] and len(record["steps"]) == 1


def test_sigterm_mid_sweep_restores_the_limit_before_stopping(own_signals):
    nv, plan = _nvml_plan("300,500", limit_mw=600_000)
    record = capsweep.sweep_record(plan, None, None, 0.0)
    with pytest.raises(Stopped) as stopped, StopOnSignal():
        capsweep.run_sweep(plan, lambda: os.kill(os.getpid(), signal.SIGTERM), record, sleep=lambda s: None)
    assert stopped.value.signum == signal.SIGTERM
    assert nv.limit_mw == 600_000 and record["restore"]["verified"]


def test_a_signal_that_arrives_during_the_restore_is_raised_after_it(own_signals):
    nv, plan = _nvml_plan("300", limit_mw=600_000)
    record = capsweep.sweep_record(plan, None, None, 0.0)

    def fail_set(mw):
        if mw == 600_000 and len(nv.sets) >= 2:  # the restore (after the probe and the cap)
            os.kill(os.getpid(), signal.SIGTERM)
        return None

    nv.fail_set = fail_set
    with pytest.raises(Stopped), StopOnSignal():
        capsweep.run_sweep(plan, lambda: _energy(1.0), record, sleep=lambda s: None)
    assert nv.limit_mw == 600_000 and record["restore"]["verified"]


def test_a_restore_that_fails_is_recorded_and_reported():
    nv, plan = _nvml_plan("300", limit_mw=600_000)
    nv.fail_set = lambda mw: RuntimeError("NVML_ERROR_GPU_IS_LOST") if mw == 600_000 else None
    record = _sweep(plan, lambda: _energy(1.0))
    restore = record["restore"]
    assert not restore["verified"] and restore["attempts"] == capsweep.RESTORE_ATTEMPTS
    assert "GPU_IS_LOST" in capsweep.restore_failed_warning(restore)


def test_a_limit_that_does_not_read_back_runs_no_window():
    nv, plan = _nvml_plan("300", limit_mw=600_000)
    nv.ignore_set = lambda mw: mw == 300_000
    record = _sweep(plan, lambda: pytest.fail("a window at an unverified cap"))
    assert record["steps"][0]["verified"] is False and "read back 600 W" in record["steps"][0]["error"]


def test_a_lower_enforced_limit_is_warned_of():
    nv, plan = _nvml_plan("500", limit_mw=600_000)
    nv.other_limit_mw = 400_000
    record = _sweep(plan, lambda: _energy(1.0))
    assert record["steps"][0]["enforced_w"] == 400.0 and "enforces 400 W" in record["warnings"][0]


# ------------------------------------------------------------------------------------------------ end to end
def _fake_cuda_run(monkeypatch, tmp_path, caps="300,500,FULL", runner_cls=None, **fake):
    import npucheck.measure.runner as runner_module
    from npucheck.measure.runner import Runner, RunOptions
    from tests.fakes_accelerator import FakeGpu as TorchGpu
    from tests.fakes_accelerator import FakeRuntime
    from tests.test_runner import TINY

    monkeypatch.setattr(runner_module, "busy_processes", lambda interval_s=0.5, exclude=None: [])
    # the fake's timed and sustained rates differ on a loaded host; that check is not what is tested here
    monkeypatch.setattr(runner_module, "_compare_timed_and_sustained", lambda timed, energy: None)
    torch_gpu = TorchGpu()
    nv = CappableNvml(uuid=f"GPU-{torch_gpu.uuid}", bus_id="00000000:1B:00.0", update_s=0.1, limit_mw=600_000, **fake)
    runner = (runner_cls or Runner)(
        RunOptions(
            device="cuda:0",
            dtypes=["fp32"],
            kernels=["gemm"],
            power_window_s=1.0,
            idle_s=0.0,
            power_trials=1,
            power_caps=[caps],
            power_caps_settle_s=0.0,
        ),
        # one small GEMM, with room for a pessimistic rate from the probe on a loaded 2-core host
        suite=replace(
            TINY, case_budget_s=10.0, entries=({"kernel": "gemm", "shape_set": "square", "where": {"m": [128]}},)
        ),
        runtime=FakeRuntime(gpus=[torch_gpu], host_device=0),
        power_source=NvmlSource(nv, uuid=torch_gpu.uuid),
    )
    return runner, nv


def test_a_whole_run_records_each_cap_and_the_restore_and_show_and_plot_read_it(monkeypatch, tmp_path):
    from rich.console import Console

    from npucheck.read.plot import build, render
    from npucheck.read.screen import print_profile

    runner, nv = _fake_cuda_run(monkeypatch, tmp_path, caps="300,FULL")
    profile = runner.run()
    caps = profile.power_caps
    assert caps is not None and caps.original_w == 600.0 and [s.label for s in caps.steps] == ["300", "FULL"]
    assert all(s.verified and s.energy is not None and s.energy.valid for s in caps.steps)
    assert caps.restore is not None and caps.restore.verified and nv.limit_mw == 600_000
    # the fake's draw follows the cap (its speed is the loaded host's, so which cap is best is not fixed)
    # (within the fake counter's 100 ms steps over a 1 s window)
    assert caps.steps[0].energy.avg_watts == pytest.approx(300.0, rel=0.15)
    assert caps.steps[1].energy.avg_watts == pytest.approx(650.0, rel=0.15)
    assert caps.best == max(caps.steps, key=lambda s: s.energy.tflops_per_watt).label
    again = type(profile).from_dict(profile.to_dict())
    assert again.power_caps == caps
    console = Console(record=True, width=140)
    print_profile(console, profile)
    text = console.export_text()
    assert (
        "power caps (nvml" in text and f"best TFLOPS/W: cap {caps.best}" in text and "restore: 600 W set back" in text
    )
    assert render(build("power-caps", [profile], ["r"])).startswith(b"\x89PNG")
    # the report carries the same table, in both formats (HTML-escaped)
    from npucheck.read.report import build as build_report

    for fmt in ("markdown", "html"):
        report, _ = build_report(profile.to_dict(), None, fmt, [])
        assert "Power caps" in report and f"best TFLOPS/W: cap {caps.best}" in report, fmt
        assert "restore: 600 W set back" in report, fmt


def test_a_run_without_permission_stops_before_measuring(monkeypatch, tmp_path):
    with pytest.raises(CapPermissionError):
        _fake_cuda_run(monkeypatch, tmp_path, root=False)


def test_the_command_refuses_caps_on_the_cpu_with_exit_2_and_one_line(tmp_path):
    result = CliRunner().invoke(
        cli, ["run", "--device", "cpu", "--power", "none", "--power-caps", "300", "-o", str(tmp_path / "r.json")]
    )
    assert result.exit_code == 2, result.output
    assert "--power-caps" in result.output and "Traceback" not in result.output
    assert not (tmp_path / "r.json").exists()


def test_the_command_refuses_caps_in_a_fleet(tmp_path):
    result = CliRunner().invoke(cli, ["run", "--device", "all", "--power-caps", "300"])
    assert result.exit_code == 2 and "refused in a fleet" in result.output


def test_nvml_control_rounds_watts_to_whole_milliwatts():
    nv = CappableNvml()
    control = NvmlCapControl(nv, nv.gpus[0])
    control.set_w(333.3333)
    assert nv.sets == [333_333]


def _cli_with_fake_gpu(monkeypatch, tmp_path, nv_setup=lambda nv: None):
    """``npucheck run --power-caps`` through the command line, on the fake GPU and NVML of ``_fake_cuda_run``."""
    import npucheck.measure.runner as runner_module

    real = runner_module.Runner
    made = {}

    def runner(options, on_event=None):
        built, nv = _fake_cuda_run(monkeypatch, tmp_path, ",".join(options.power_caps or []), runner_cls=real)
        nv_setup(nv)
        built._emit = on_event or built._emit
        made["nv"] = nv
        return built

    monkeypatch.setattr(runner_module, "Runner", runner)
    out = tmp_path / "r.json"
    result = CliRunner().invoke(cli, ["run", "--power-caps", "300,FULL", "--target", "miit-2020-cloud", "-o", str(out)])
    monkeypatch.setattr(runner_module, "Runner", real)
    return result, made["nv"], out


def test_the_command_announces_the_limit_it_will_restore_and_shows_the_caps(monkeypatch, tmp_path):
    result, nv, out = _cli_with_fake_gpu(monkeypatch, tmp_path)
    assert result.exit_code == 0, result.output
    said = " ".join(result.output.split())  # the console wraps at its width
    assert "the limit now, 600 W, is restored at the end (allowed 200-700 W, default 700 W)" in said
    assert "restore: 600 W set back" in said and out.exists() and nv.limit_mw == 600_000


def test_a_restore_that_fails_is_loud_and_exits_8_after_saving(monkeypatch, tmp_path):
    def lost(nv):
        nv.fail_set = lambda mw: RuntimeError("GPU is lost") if mw == 600_000 and len(nv.sets) >= 2 else None

    result, nv, out = _cli_with_fake_gpu(monkeypatch, tmp_path, lost)
    assert result.exit_code == 8, result.output
    assert "THE POWER LIMIT WAS NOT RESTORED to 600 W" in " ".join(result.output.split()) and out.exists()
    assert any("POWER LIMIT NOT RESTORED" in w for w in __import__("json").loads(out.read_text())["warnings"])


def test_an_amdsmi_sweep_sets_each_cap_in_microwatts_and_restores_it():
    amd = CappableAmdSmi()
    amd.cap_uw = 650_000_000
    control = AmdSmiCapControl(amd, "gpu0")
    plan = plan_caps(control, parse_caps("400,FULL"))
    seen = []
    record = _sweep(plan, lambda: (seen.append(amd.cap_uw), _energy(1.0))[1])
    assert seen == [400_000_000, 750_000_000] and amd.cap_uw == 650_000_000
    assert record["restore"]["verified"] and record["restore"]["read_back_w"] == 650.0
    assert record["steps"][0]["enforced_w"] is None  # amdsmi reports one cap, no separate enforced limit


def test_a_source_reading_another_gpu_or_a_whole_board_under_mig_never_gets_its_limit_set():
    """The limit is set on the power source's handle: `--power nvml:N` counts in NVML's (PCI) order, not torch's, and
    a MIG slice's board is shared with other tenants, so a source that is not the device under test is refused
    before anything is written (review: the sweep would have capped someone else's GPU)."""
    nv = CappableNvml()
    source = NvmlSource(nv)
    other = {"backend": "cuda", "runtime": "cuda", "properties": {"uuid": "GPU-00000000-dead-beef-0000-000000000000"}}
    with pytest.raises(UsageError, match=r"--power-caps sets the limit of the GPU the power source reads, and NVML"):
        cap_control_for(source, other)
    source.mig, source.mig_slice = True, "MIG-1"
    with pytest.raises(UsageError, match="MIG-1"):
        cap_control_for(source, GPU)
    assert nv.sets == []  # nothing was written


def test_a_signal_before_the_restore_is_held_still_restores(monkeypatch):
    """A stop that lands after the sweep's last window but before the restore's hold begins (or with no npucheck
    handler installed, where the hold does nothing) must not skip the restore (review)."""
    import contextlib

    nv, plan = _nvml_plan("300", limit_mw=450_000)

    @contextlib.contextmanager
    def interrupted_on_entry():
        raise KeyboardInterrupt
        yield  # pragma: no cover

    monkeypatch.setattr(capsweep.signals, "deferred", interrupted_on_entry)
    record = capsweep.sweep_record(plan, "gemm/fp16/m=128", "fp16", settle_s=0.0)
    with pytest.raises(KeyboardInterrupt):
        capsweep.run_sweep(plan, lambda: _energy(1.0), record, sleep=lambda s: None)
    assert record["restore"]["verified"] and nv.sets[-1] == 450_000


def test_the_limit_restored_is_the_one_just_before_the_sweep_not_at_start_up():
    """The plan reads the limit at start-up; if it changed during the suite, that later value is put back."""
    nv, plan = _nvml_plan("300", limit_mw=450_000)
    control = plan.control
    control.set_w(500.0)  # as an admin would, while the suite ran
    record = _sweep(plan, lambda: _energy(1.0))
    assert record["original_w"] == 500.0 and record["restore"]["target_w"] == 500.0
    assert control.limit_w() == 500.0 and any("changed during the run" in w for w in record["warnings"])


def test_a_restore_that_fails_is_still_said_with_exit_8_when_nothing_could_be_saved(monkeypatch, tmp_path):
    """Review: the save's own failure (exit 7) used to end the command before the restore was checked, so a
    capped GPU went unreported."""
    import npucheck.cli as cli_module

    def lost(nv):
        nv.fail_set = lambda mw: RuntimeError("GPU is lost") if mw == 600_000 and len(nv.sets) >= 2 else None

    def nowhere(*args, **kwargs):
        raise cli_module._NotSavedAnywhere("result not saved (disk full), and no copy could be written (all full)")

    monkeypatch.setattr(cli_module, "_save", nowhere)
    result, nv, out = _cli_with_fake_gpu(monkeypatch, tmp_path, lost)
    text = " ".join(result.output.split())
    assert result.exit_code == 8, result.output
    assert "THE POWER LIMIT WAS NOT RESTORED to 600 W" in text and "no copy could be written" in text
