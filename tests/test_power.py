"""Power sources through fakes that follow the real semantics, integration, and energy windows."""

from __future__ import annotations

import time

import pytest
from conftest import make_measurement, make_profile
from fakes import FakeAmdSmi, FakeNvml, make_hwmon, make_zone

from npucheck.measure import power
from npucheck.measure.power import rapl as rapl_module
from npucheck.measure.power.amd import AmdSmiSource
from npucheck.measure.power.base import CounterReset, PowerReadError, PowerSource, PowerSourceError
from npucheck.measure.power.hwmon import HwmonSource
from npucheck.measure.power.meter import ConstantSource, MeterLogSource, parse_line
from npucheck.measure.power.nvml import NvmlSource, decode_clock_events
from npucheck.measure.power.rapl import RaplSource
from npucheck.measure.power.window import EnergyWindow, integrate_interval_averages, integrate_zoh


# ------------------------------------------------------------------------------------------------------ RAPL
def test_rapl_absent_is_said_plainly(tmp_path):
    with pytest.raises(PowerSourceError, match="is not present"):
        RaplSource(tmp_path)


def test_rapl_permission_denied_is_not_absent(tmp_path, monkeypatch):
    make_zone(tmp_path, "intel-rapl:0", "package-0", 1000)
    real = rapl_module._read_int

    def denied(path):
        if path.name == "energy_uj":
            raise PermissionError(13, "Permission denied", str(path))  # what a non-root read gets since 5.10
        return real(path)

    monkeypatch.setattr(rapl_module, "_read_int", denied)
    with pytest.raises(PowerSourceError, match="permission denied .*root-only"):
        RaplSource(tmp_path)
    status = power.probe_rapl(tmp_path)
    assert not status.found and "permission denied" in status.detail


def test_rapl_zone_without_a_wrap_range_is_refused(tmp_path):
    make_zone(tmp_path, "intel-rapl:0", "package-0", 1000, max_uj=None)
    with pytest.raises(PowerSourceError, match="max_energy_range_uj"):
        RaplSource(tmp_path)


def _set(zone, uj):
    (zone / "energy_uj").write_text(f"{uj}\n")


def test_rapl_unwraps_one_wrap_between_reads(tmp_path):
    zone = make_zone(tmp_path, "intel-rapl:0", "package-0", 990_000_000, max_uj=999_999_999)
    source = RaplSource(tmp_path)
    _set(zone, 5_000_000)  # passed the top: 10 J to the wrap, 5 J after it
    assert source.read_energy_j() == pytest.approx(15.000001)


def test_rapl_unwraps_two_wraps_read_in_between(tmp_path):
    zone = make_zone(tmp_path, "intel-rapl:0", "package-0", 600_000_000, max_uj=999_999_999)
    source = RaplSource(tmp_path)
    for uj in (900_000_000, 100_000_000, 700_000_000, 50_000_000):
        _set(zone, uj)
        source.read_energy_j()
    # 300 J, then 200 J across the first wrap, 600 J, then 350 J across the second wrap
    assert source.read_energy_j() == pytest.approx(1450.000002)


def test_rapl_on_a_laptop_counts_the_package_once_and_keeps_psys_apart(tmp_path):
    make_zone(tmp_path, "intel-rapl:0", "package-0", 1_000_000)
    make_zone(tmp_path, "intel-rapl:0/intel-rapl:0:0", "core", 500_000)
    make_zone(tmp_path, "intel-rapl:0/intel-rapl:0:1", "uncore", 100_000)
    make_zone(tmp_path, "intel-rapl:0/intel-rapl:0:2", "dram", 200_000)
    make_zone(tmp_path, "intel-rapl:1", "psys", 3_000_000)
    for sub in ("0:0", "0:1", "0:2"):  # as in sysfs: each sub-zone is also listed beside its parent
        (tmp_path / f"class/powercap/intel-rapl:{sub}").symlink_to(
            tmp_path / f"class/powercap/intel-rapl:0/intel-rapl:{sub}"
        )
    assert RaplSource(tmp_path).zones == ["package-0"]
    assert RaplSource(tmp_path, "dram").zones == ["dram"]
    psys = RaplSource(tmp_path, "psys")
    assert psys.zones == ["psys"] and psys.scope == "platform"
    assert RaplSource(tmp_path, "dram").scope == "dram"  # memory alone: shown, never judged


def test_rapl_sums_two_sockets(tmp_path):
    zero = make_zone(tmp_path, "intel-rapl:0", "package-0", 0)
    one = make_zone(tmp_path, "intel-rapl:1", "package-1", 0)
    source = RaplSource(tmp_path)
    _set(zero, 40_000_000)
    _set(one, 60_000_000)
    assert source.zones == ["package-0", "package-1"]
    assert source.read_energy_j() == pytest.approx(100.0)


def test_rapl_counts_mirrored_dies_of_one_package_once(tmp_path):
    make_zone(tmp_path, "intel-rapl:0", "package-0-die-0", 7_777_000)
    make_zone(tmp_path, "intel-rapl:1", "package-0-die-1", 7_777_000)
    assert RaplSource(tmp_path).zones == ["package-0-die-0"]


def test_rapl_chooses_zones_by_name_not_index(tmp_path):
    make_zone(tmp_path, "intel-rapl:0", "package-0", 0)
    make_zone(tmp_path, "intel-rapl:0/intel-rapl:0:0", "dram", 0)
    make_zone(tmp_path, "intel-rapl:1", "package-1", 0)
    assert RaplSource(tmp_path).zones == ["package-0", "package-1"]
    assert RaplSource(tmp_path, "dram").zones == ["dram"]


def test_rapl_transient_read_error_drops_the_reading_and_invents_no_wrap(tmp_path, monkeypatch):
    zone = make_zone(tmp_path, "intel-rapl:0", "package-0", 1_000_000)
    source = RaplSource(tmp_path)
    real = rapl_module._read_int
    monkeypatch.setattr(rapl_module, "_read_int", lambda path: (_ for _ in ()).throw(OSError(5, "I/O error")))
    with pytest.raises(PowerReadError):
        source.read_energy_j()
    monkeypatch.setattr(rapl_module, "_read_int", real)
    _set(zone, 3_000_000)
    assert source.read_energy_j() == pytest.approx(2.0)


# ------------------------------------------------------------------------------------------------------ integration
def test_zero_order_hold_of_a_step_trace_matches_the_analytic_energy():
    # 100 W for 3 s then 300 W for 2 s, sampled at 10 Hz: 900 J
    samples = [(i / 10, 100.0 if i < 30 else 300.0) for i in range(50)]
    joules, coverage = integrate_zoh(samples, 0.0, 5.0)
    assert joules == pytest.approx(900.0, rel=1e-3)
    assert coverage == pytest.approx(1.0)


def test_one_sample_in_a_constant_window_is_not_zero_joules():
    assert integrate_zoh([(0.2, 50.0)], 0.0, 2.0)[0] == pytest.approx(100.0)


def test_interval_average_samples_cover_the_period_before_them():
    samples = [(t, 200.0) for t in (1.0, 2.0, 3.0)]
    joules, coverage = integrate_interval_averages(samples, 0.0, 3.0, period_s=1.0)
    assert joules == pytest.approx(600.0) and coverage == pytest.approx(1.0)


def test_averages_logged_more_often_than_their_period_are_not_counted_twice():
    samples = [(0.5 * i, 100.0) for i in range(1, 61)]  # every 0.5 s, each the mean of the last 1 s
    joules, coverage = integrate_interval_averages(samples, 0.0, 30.0, period_s=1.0)
    assert joules == pytest.approx(3000.0) and coverage == pytest.approx(1.0)


# ------------------------------------------------------------------------------------------------------ windows
class RampSource(PowerSource):
    """A counter advancing at ``watts`` in ``update_s`` steps, plus instant power; faults on demand."""

    name = "ramp"
    quality = "Q2"

    def __init__(self, watts=200.0, update_s=0.001, reset_after=None, fail_edges=False):
        self.watts, self.counter_update_s, self.power_update_s = watts, update_s, 0.01
        self.t0 = time.monotonic()
        self.reads = 0
        self.reset_after = reset_after
        self.fail_edges = fail_edges

    has_counter = property(lambda self: True)
    has_power = property(lambda self: True)

    def read_energy_j(self):
        self.reads += 1
        if self.fail_edges:
            raise PowerReadError("device fell off the bus")
        if self.reset_after is not None and self.reads > self.reset_after:
            raise CounterReset("counter fell to 0")
        elapsed = time.monotonic() - self.t0
        return self.watts * (elapsed // self.counter_update_s) * self.counter_update_s

    def read_power_w(self):
        return self.watts


def _result(window, flops, idle_watts=None):
    """The runner's energy object of a window: the power seam's result, then the work's figures."""
    from npucheck.measure.energy import efficiency

    return efficiency(window.result(), flops, idle_watts)


def test_a_window_reports_the_sources_power_and_tflops_per_watt():
    window = EnergyWindow(RampSource(watts=200.0), hz=50)
    with window:
        time.sleep(0.3)
    power_only = window.result()  # the power seam: joules, watts and evidence, no work figures
    assert power_only["joules"] and not {"flops", "tflops", "tflops_per_watt", "tflops_per_watt_net"} & set(power_only)
    energy = _result(window, flops=60e12, idle_watts=50.0)
    assert energy["valid"], energy["reason"]
    assert energy["avg_watts"] == pytest.approx(200.0, rel=0.02)
    assert energy["tflops_per_watt"] == pytest.approx(energy["tflops"] / energy["avg_watts"])
    assert energy["tflops_per_watt_net"] == pytest.approx(energy["tflops"] / (energy["avg_watts"] - 50.0))
    assert energy["counter_vs_integrated"] == pytest.approx(1.0, abs=0.05)


def test_a_windows_uncertainty_adds_counter_quantization_to_the_sources():
    window = EnergyWindow(RampSource(watts=200.0, update_s=0.01), hz=50)
    with window:
        time.sleep(0.3)
    energy = _result(window, flops=1e12)
    assert energy["uncertainty_terms"]["counter quantization"] == pytest.approx(0.02 / energy["window_s"])
    assert energy["uncertainty_rel"] == pytest.approx(0.05 + 0.02 / energy["window_s"])


class ExclusiveSource(RampSource):
    """Records it when two threads read it at once (the end edge racing the sampler thread)."""

    def __init__(self):
        super().__init__(update_s=0.001)
        import threading

        self.inside = threading.Lock()
        self.overlaps = 0

    def read_energy_j(self):
        if not self.inside.acquire(blocking=False):
            self.overlaps += 1
            return super().read_energy_j()
        try:
            time.sleep(0.002)  # a slow sysfs read widens any race
            return super().read_energy_j()
        finally:
            self.inside.release()


def test_the_window_edges_never_read_the_counter_while_the_sampler_does():
    for _ in range(5):
        source = ExclusiveSource()
        window = EnergyWindow(source, hz=100)
        with window:
            time.sleep(0.05)
        assert source.overlaps == 0


def test_a_window_shorter_than_the_counter_update_is_an_error_not_zero_joules():
    window = EnergyWindow(RampSource(update_s=0.1), hz=50)
    with window:
        time.sleep(0.03)
    energy = _result(window, flops=1e12)
    assert not energy["valid"] and energy["joules"] is None
    assert "shorter than the counter's update period" in energy["reason"]


def test_a_counter_reset_during_the_window_invalidates_it():
    window = EnergyWindow(RampSource(reset_after=2), hz=50)
    with window:
        time.sleep(0.1)
    energy = _result(window, flops=1e12)
    assert not energy["valid"] and "reset" in energy["reason"]


def test_a_source_failing_mid_window_invalidates_it_with_the_reason():
    window = EnergyWindow(RampSource(fail_edges=True), hz=50)
    with window:
        time.sleep(0.05)
    energy = _result(window, flops=1e12)
    assert not energy["valid"] and "fell off the bus" in energy["reason"]
    assert energy["tflops_per_watt"] is None


def test_a_constant_figure_is_quality_q0():
    source = ConstantSource(350)
    window = EnergyWindow(source, hz=50)
    with window:
        time.sleep(0.05)
    energy = _result(window, flops=1e12)
    assert energy["valid"] and energy["avg_watts"] == pytest.approx(350.0) and energy["quality"] == "Q0"


# ------------------------------------------------------------------------------------------------------ NVML
def test_nvml_uses_the_energy_counter_and_the_instant_power_field():
    fake = FakeNvml()
    source = NvmlSource(fake, uuid="GPU-1234")
    assert source.has_counter and source.quality == "Q2" and source.scope == "board"
    assert source.read_energy_j() == pytest.approx(1000.0)
    assert source.read_power_w() == pytest.approx(300.0)  # the instant field, not the 1 s average
    source.close()
    assert fake.initialised == 0


def test_nvml_without_an_energy_counter_falls_back_to_polled_power():
    source = NvmlSource(FakeNvml(energy_mj=None))
    assert not source.has_counter and source.quality == "Q1" and source.has_power


def test_nvml_without_the_instant_field_says_it_uses_the_1s_average():
    source = NvmlSource(FakeNvml(instant_mw=None))
    assert source.read_power_w() == pytest.approx(280.0)
    assert "1 s average" in source.detail and source.describe()["power_field"] == "average_1s"
    assert source.power_average_s == 1.0


def test_averaged_power_without_a_counter_widens_the_uncertainty_by_its_lag():
    window = EnergyWindow(NvmlSource(FakeNvml(energy_mj=None, instant_mw=None)), hz=20)
    with window:
        time.sleep(0.5)
    energy = _result(window, flops=1e12)
    assert energy["valid"] and energy["quality"] == "Q1"
    assert energy["uncertainty_terms"]["averaging lag"] == pytest.approx(1.0 / energy["window_s"])


def test_nvml_that_answers_not_supported_to_everything_is_unusable():
    with pytest.raises(PowerSourceError, match="NotSupported to every energy and power query"):
        NvmlSource(FakeNvml(energy_mj=None, instant_mw=None, average_mw=None))


def test_nvml_counter_going_backwards_is_a_reset():
    fake = FakeNvml()
    source = NvmlSource(fake)
    source.read_energy_j()
    fake.energy_mj = 10
    with pytest.raises(CounterReset, match="fell from 1000000 to 10"):
        source.read_energy_j()


def test_nvml_throttle_reasons_are_decoded_and_limiting_ones_flagged():
    source = NvmlSource(FakeNvml(clock_events=0x1 | 0x4 | 0x40))
    context = source.context()
    assert context["clock_event_reasons"] == ["GpuIdle", "SwPowerCap", "HwThermalSlowdown"]
    assert context["throttle_reasons"] == ["SwPowerCap", "HwThermalSlowdown"]
    assert context["sm_clock_mhz"] == 1980 and context["power_limit_w"] == 700.0
    assert decode_clock_events(0x80) == ["HwPowerBrakeSlowdown"]


def test_nvml_finds_the_gpu_under_test_by_uuid_whatever_cuda_visible_devices_says():
    fake = FakeNvml(uuid="GPU-abcd")
    source, _ = power.open_source("auto", {"backend": "cuda", "properties": {"uuid": "abcd"}}, nvml=fake)
    assert isinstance(source, NvmlSource) and fake.handles_by_uuid == ["GPU-abcd"]


def test_nvml_under_mig_reports_the_whole_gpu_and_says_so():
    assert "MIG enabled" in NvmlSource(FakeNvml(mig=True)).detail


def test_throttling_between_the_edges_is_caught_and_becomes_a_warning():
    fake = FakeNvml(clock_events=0)
    window = EnergyWindow(NvmlSource(fake), hz=20)
    with window:
        time.sleep(0.1)
        fake.clock_events = 0x4  # power capping for a while, gone before the end edge
        time.sleep(1.2)
        fake.clock_events = 0
    energy = _result(window, flops=1e12)
    assert energy["throttle"]["reasons"] == ["SwPowerCap"] and energy["throttle"]["throttled_checks"] >= 1
    assert any("throttled" in w for w in energy["warnings"])


# ------------------------------------------------------------------------------------------------------ hwmon
def test_hwmon_amdgpu_power_average_is_microwatts(tmp_path):
    make_hwmon(tmp_path, 0, "amdgpu", {"power1_average": "215000000"})
    source = HwmonSource(tmp_path)
    assert source.read_power_w() == pytest.approx(215.0) and source.scope == "board" and source.quality == "Q1"


def test_hwmon_energy_counter_is_microjoules(tmp_path):
    path = make_hwmon(tmp_path, 0, "amdgpu", {"energy1_input": "5000000", "power1_input": "100000000"})
    source = HwmonSource(tmp_path)
    (path / "energy1_input").write_text("8000000\n")
    assert source.has_counter and source.read_energy_j() == pytest.approx(3.0)


def test_jetson_uses_the_input_rail_and_never_adds_its_sub_rails(tmp_path):
    make_hwmon(
        tmp_path,
        0,
        "ina3221",
        {
            "in1_label": "VDD_IN",
            "in1_input": "5000",
            "curr1_input": "2000",  # 5 V x 2 A = 10 W, the module
            "in2_label": "VDD_CPU_GPU_CV",
            "in2_input": "5000",
            "curr2_input": "1000",
            "in3_label": "VDD_SOC",
            "in3_input": "5000",
            "curr3_input": "500",
        },
    )
    source = HwmonSource(tmp_path)
    assert source.read_power_w() == pytest.approx(10.0) and source.scope == "module"
    rail = HwmonSource(tmp_path, "ina3221", "VDD_SOC")
    assert rail.read_power_w() == pytest.approx(2.5) and rail.scope == "soc-rail"


def test_a_rail_on_the_second_ina3221_can_be_chosen(tmp_path):
    make_hwmon(tmp_path, 0, "ina3221", {"in1_label": "VDD_IN", "in1_input": "5000", "curr1_input": "2000"})
    make_hwmon(tmp_path, 1, "ina3221", {"in1_label": "VDDQ_VDD2_1V8AO", "in1_input": "1800", "curr1_input": "500"})
    assert HwmonSource(tmp_path, "ina3221", "VDDQ_VDD2_1V8AO").read_power_w() == pytest.approx(0.9)


def test_rails_without_an_input_rail_must_be_chosen(tmp_path):
    make_hwmon(tmp_path, 0, "ina3221", {"in1_label": "VDD_GPU", "in1_input": "5000", "curr1_input": "100"})
    with pytest.raises(PowerSourceError, match="no module input rail"):
        HwmonSource(tmp_path)


def test_a_reading_off_by_a_unit_is_dropped_not_used(tmp_path):
    make_hwmon(tmp_path, 0, "tenstorrent", {"power1_input": "215000000000"})  # mW written as µW × 1000
    with pytest.raises(PowerReadError, match="unit error"):
        HwmonSource(tmp_path).read_power_w()


# ------------------------------------------------------------------------------------------------------ amdsmi
def _amd(fake):
    return AmdSmiSource(fake, sleep=fake.advance)


def test_amdsmi_counter_is_validated_then_used():
    source = _amd(FakeAmdSmi())
    assert source.has_counter and source.quality == "Q2"
    assert source.read_power_w() == pytest.approx(400.0)


def test_a_frozen_amd_counter_is_rejected_for_polled_power():
    source = _amd(FakeAmdSmi(frozen=True))
    assert not source.has_counter and source.quality == "Q1" and "frozen" in source.detail


def test_an_amd_counter_at_the_wrong_rate_is_rejected():
    assert "3.00x" in _amd(FakeAmdSmi(counter_rate=3.0)).detail


def test_a_failed_power_read_does_not_throw_away_a_working_amd_counter():
    fake = FakeAmdSmi()
    fake.power_failures = 1  # the read during validation fails; the counter itself is fine
    source = _amd(fake)
    assert source.has_counter and source.quality == "Q2"


def test_amd_with_no_counter_and_no_power_is_unusable():
    with pytest.raises(PowerSourceError, match="no socket power"):
        _amd(FakeAmdSmi(watts="N/A", frozen=True))


# ------------------------------------------------------------------------------------------------------ meter
@pytest.mark.parametrize(
    "line,expected",
    [
        ("1764072000.5,231.4", (1764072000.5, 231.4)),
        ("2025-11-25T12:00:00.5Z,99", (1764072000.5, 99.0)),
        ("2025-11-25T12:00:00.5,99", (1764072000.5, 99.0)),
        (
            "Time,11-25-2025 12:00:00.500,Watts,22.95,Volts,228.57,Amps,0.206430,PF,0.4864,Mark,run",
            (1764072000.5, 22.95),
        ),
        ("timestamp,watts", None),
    ],
)
def test_meter_lines_in_each_accepted_format(line, expected):
    assert parse_line(line) == expected


@pytest.mark.parametrize("line", ["garbage", "1764072000,abc", "1764072000,nan", "not-a-time,5"])
def test_malformed_meter_lines_raise(line):
    with pytest.raises(ValueError):
        parse_line(line)


def test_malformed_lines_are_skipped_and_counted(tmp_path):
    log = tmp_path / "meter.csv"
    log.write_text("timestamp,watts\n100.0,50\nbroken\n101.0,52\n102.0,1e9\n103.0,5")  # last line unfinished
    samples, malformed = MeterLogSource(log).read_all()
    assert samples == [(100.0, 50.0), (101.0, 52.0)] and malformed == 2


def test_a_log_that_does_not_cover_the_window_makes_it_invalid(tmp_path):
    log = tmp_path / "meter.csv"
    now = time.time()
    log.write_text(f"{now - 100},50\n{now - 99},50\n")
    window = EnergyWindow(MeterLogSource(log, period_s=1.0, accuracy=0.01), hz=50)
    with window:
        time.sleep(0.05)
    energy = _result(window, flops=1e12)
    assert not energy["valid"] and "no sample inside the window" in energy["reason"]


def test_meter_options_are_parsed_and_checked(tmp_path):
    log = tmp_path / "m.csv"
    # a live log: opening refuses an empty or stale one and waits for three samples (tests/test_meter.py)
    log.write_text("".join(f"{time.time() - 0.5 * i:.3f},100\n" for i in (2, 1, 0)))
    source, _ = power.open_source(f"meter:{log},accuracy=0.005,sample=instant,period=0.5,scope=wall")
    assert source.uncertainty_rel == 0.005 and source.sample_type == "instant" and source.quality == "Q3"
    with pytest.raises(PowerSourceError, match="unknown option 'acc'"):
        power.open_source(f"meter:{log},acc=1")
    with pytest.raises(PowerSourceError, match="does not exist"):
        power.open_source(f"meter:{tmp_path / 'missing.csv'}")


# ------------------------------------------------------------------------------------------------------ choosing
def test_auto_on_a_cpu_without_rapl_gives_no_source_and_says_why(tmp_path):
    source, notes = power.open_source("auto", {"backend": "cpu"}, root=tmp_path)
    assert source is None and "is not present" in notes[0]


def test_auto_on_a_cpu_with_rapl_uses_it(tmp_path):
    make_zone(tmp_path, "intel-rapl:0", "package-0", 0)
    source, _ = power.open_source("auto", {"backend": "cpu"}, root=tmp_path)
    assert isinstance(source, RaplSource)


@pytest.mark.parametrize(
    "spec,message",
    [
        ("watts", "unknown power source"),
        ("constant:lots", "expected watts"),
        ("constant:-5", "must be a number"),
        ("nvml:x", "expected a GPU index"),
    ],
)
def test_bad_power_specs_are_one_clear_error(spec, message):
    with pytest.raises(PowerSourceError, match=message):
        power.open_source(spec, nvml=FakeNvml())


def test_env_probe_exercises_the_real_reads(tmp_path):
    status = power.probe_nvml(FakeNvml(energy_mj=None, instant_mw=None, average_mw=None))
    assert not status.found and "NotSupported" in status.detail


def test_the_window_plan_covers_headline_sweep_and_each_other_kernel():
    from npucheck.measure.energy import window_plan

    def ok(case_id, kernel, dtype, tflops, shape_set="square"):
        return Measurement.from_dict(
            make_measurement(
                id=f"{kernel}/{dtype}/{case_id}", kernel=kernel, dtype=dtype, tflops=tflops, shape_set=shape_set
            )
        )

    measurements = [
        ok("g1", "gemm", "fp16", 1.0),
        ok("g2", "gemm", "fp16", 2.0),
        ok("g3", "gemm", "bf16", 5.0),
        ok("g4", "gemm", "fp16", 9.0, shape_set="deepbench-device"),
        ok("c1", "conv2d", "fp16", 0.5, "resnet50"),
        ok("c2", "conv2d", "fp16", 0.7, "resnet50"),
        ok("l1", "lstm", "fp16", 0.3, "small"),
        ok("l2", "lstm", "bf16", 3.0, "small"),
    ]
    plan = {(m.id.split("/")[-1], kind) for m, _, kind in window_plan(measurements, sweep_s=1.0, headline_s=30.0)}
    assert plan == {
        ("g4", "headline"),
        ("g3", "headline"),
        ("g1", "sweep"),
        ("g2", "sweep"),
        ("c2", "kernel"),
        ("l1", "kernel"),
    }
    headline_only = window_plan(measurements, sweep_s=None, headline_s=30.0)
    assert {m.id.split("/")[-1] for m, _, _ in headline_only} == {"g4", "g3"}


def _trial(start, window_s, joules, flops, quality="Q2", valid=True, reason=None, terms=None):
    return {
        "source": "rapl",
        "scope": "package",
        "quality": quality,
        "uncertainty_rel": 0.1,
        "window_s": window_s,
        "start_unix": start,
        "valid": valid,
        "reason": reason,
        "joules": joules,
        "joules_counter": joules,
        "joules_integrated": None,
        "avg_watts": joules / window_s,
        "idle_watts": None,
        "flops": flops,
        "tflops": flops / window_s / 1e12,
        "tflops_per_watt": flops / window_s / 1e12 / (joules / window_s),
        "samples": 10,
        "dropped_samples": 0,
        "coverage": 1.0,
        "trace": [[0.0, joules / window_s]],
        "throttle": {},
        "warnings": [],
        "uncertainty_terms": terms or {"source": 0.1},
    }


def test_trials_combine_into_totals_with_their_spread_in_the_uncertainty():
    from npucheck.measure.energy import combine_trials

    trials = [
        _trial(100.0, 10.0, 1000.0, 1e15),
        _trial(110.5, 10.0, 1100.0, 1e15, quality="Q1"),
        _trial(121.0, 10.0, 900.0, 1e15),
    ]
    energy = combine_trials(trials)
    assert energy["window_s"] == 30.0 and energy["avg_watts"] == pytest.approx(100.0)
    assert energy["tflops_per_watt"] == pytest.approx(3e15 / 30 / 1e12 / 100.0)
    per_watt = [t["tflops_per_watt"] for t in trials]
    spread = (max(per_watt) - min(per_watt)) / 2 / energy["tflops_per_watt"]
    assert energy["uncertainty_terms"] == {"source": 0.1, "trial spread": pytest.approx(spread)}
    assert energy["uncertainty_rel"] == pytest.approx(0.1 + spread)
    assert energy["quality"] == "Q1" and len(energy["trials"]) == 3
    assert [point[0] for point in energy["trace"]] == [0.0, 10.5, 21.0]


def test_one_invalid_trial_invalidates_the_window_and_says_which():
    from npucheck.measure.energy import combine_trials

    energy = combine_trials(
        [
            _trial(0.0, 5.0, 500.0, 1e14),
            _trial(6.0, 5.0, 500.0, 1e14, valid=False, reason="energy counter went backwards"),
        ]
    )
    assert not energy["valid"] and energy["reason"] == "trial 2 of 2: energy counter went backwards"
    assert energy["tflops_per_watt"] is None


def test_no_net_figure_when_the_power_above_idle_is_within_the_uncertainty():
    from npucheck.measure.energy import net_tflops_per_watt

    warnings: list[str] = []
    noise = {"idle_watts": 35.0, "avg_watts": 35.05, "tflops": 0.03, "uncertainty_rel": 0.1}
    assert net_tflops_per_watt(noise, warnings) is None and "within the measurement's uncertainty" in warnings[0]
    real = {"idle_watts": 60.0, "avg_watts": 300.0, "tflops": 600.0, "uncertainty_rel": 0.05}
    assert net_tflops_per_watt(real, []) == pytest.approx(600.0 / 240.0)


# ------------------------------------------------------------------------------------------------------ coverage
# Issue #7: which device a source measures, and whether that is the device under test.
from fakes import FakeGpu  # noqa: E402

from npucheck.measure.power import base as power_base  # noqa: E402
from npucheck.measure.power.window import PowerSampler  # noqa: E402
from npucheck.model import Measurement, PowerInfo, SourceInfo  # noqa: E402
from npucheck.read.judge import judge  # noqa: E402
from npucheck.summary import summarize_power  # noqa: E402
from npucheck.targets import Criterion, Target  # noqa: E402


@pytest.fixture(autouse=True)
def _short_update_probe(monkeypatch):
    """A static fake never changes: do not wait the real second for two changes that will not come."""
    monkeypatch.setattr(power_base, "UPDATE_PROBE_MAX_S", 0.05, raising=False)


def _cuda(index=0, uuid=None, bus=None, runtime="cuda", **props):
    return {
        "backend": "cuda",
        "runtime": runtime,
        "id": f"cuda:{index}",
        "index": index,
        "properties": {"uuid": uuid, "pci_bus_id": bus, **props},
    }


CPU = {"backend": "cpu", "runtime": "cpu", "id": "cpu", "properties": {}}
# three H100s; NVML numbers them by PCI bus (1b, 3b, 5e), CUDA_VISIBLE_DEVICES=2,0 shows 5e as cuda:0
THREE = [
    FakeGpu(uuid="GPU-3b3b", bus_id="00000000:3B:00.0", energy_mj=2_000_000),
    FakeGpu(uuid="GPU-5e5e", bus_id="00000000:5E:00.0", energy_mj=3_000_000),
    FakeGpu(uuid="GPU-1b1b", bus_id="00000000:1B:00.0", energy_mj=1_000_000),
]


def _per_watt_verdict(energy, profile_extra=None):
    energy = {
        "kind": "headline",
        "valid": True,
        "tflops_per_watt": 2.0,
        "uncertainty_rel": 0.05,
        "quality": "Q2",
        "scope": "board",
        "avg_watts": 300.0,
        "tflops": 600.0,
        "window_s": 30.0,
        "joules": 9000.0,
        "flops": 600.0e12 * 30.0,  # the work behind 600 TFLOPS for 30 s: the judge recomputes TFLOPS/W from it
        "source": "nvml",
        **energy,
    }
    measured = Measurement.from_dict(make_measurement(energy=energy))
    info = SourceInfo(name=energy["source"], scope=energy["scope"], quality=energy["quality"])
    power_info = PowerInfo(spec="auto", source=info, notes=())
    profile = {"summary": summarize_power([measured], power_info, {"fp16"}, ["fp16"])}
    profile.update(profile_extra or {})
    criterion = Criterion("tflops_per_watt", ">", 1.0, dtype="fp16")
    target = Target(name="t", title="t", source="", description="", criteria=(criterion,), path="")
    # the judge reads a complete profile: conftest's, with this summary and the window behind it
    document = make_profile(summary=profile["summary"], measurements=[measured.to_dict()])
    return profile["summary"], judge(document, [target])[0]["criteria"][0]


def test_rapl_never_covers_a_gpu_so_its_tflops_per_watt_is_not_judged(tmp_path):
    make_zone(tmp_path, "intel-rapl:0", "package-0", 0)
    source, _ = power.open_source("rapl", _cuda(uuid="abcd"), root=tmp_path)
    assert source.covers_device is False and "not cuda:0" in source.coverage
    assert source.describe()["covers_device"] is False
    cpu, _ = power.open_source("rapl", CPU, root=tmp_path)
    assert cpu.covers_device is True
    dram_zone = tmp_path / "d"
    make_zone(dram_zone, "intel-rapl:0", "package-0", 0)
    make_zone(dram_zone, "intel-rapl:0/intel-rapl:0:0", "dram", 0)
    assert power.open_source("rapl:dram", CPU, root=dram_zone)[0].covers_device is False


def test_a_window_and_the_summary_carry_coverage_and_the_judge_refuses_an_uncovered_source():
    source = RampSource()
    source.covers_device, source.coverage = False, "RAPL measures the CPU package(s), not cuda:0"
    window = EnergyWindow(source, hz=50)
    with window:
        time.sleep(0.05)
    energy = _result(window, flops=1e12)
    assert energy["covers_device"] is False and energy["covers_reason"] == source.coverage
    summary, verdict = _per_watt_verdict({"covers_device": False, "covers_reason": source.coverage, "source": "rapl"})
    assert summary["tflops_per_watt_covers"] == {"fp16": False}
    assert summary["tflops_per_watt_covers_reason"]["fp16"] == source.coverage
    assert verdict["status"] == "INCONCLUSIVE" and "does not cover the device" in verdict["reason"]
    assert "not cuda:0" in verdict["reason"]
    _, unknown = _per_watt_verdict({"covers_device": None, "covers_reason": "meter: not stated"})
    assert unknown["status"] == "INCONCLUSIVE" and "cannot tell" in unknown["reason"]
    _, covered = _per_watt_verdict({"covers_device": True, "covers_reason": "NVML UUID GPU-1 matches cuda:0"})
    assert covered["status"] == "PASS"


def test_a_stored_file_without_coverage_is_judged_only_where_the_old_code_could_not_miss():
    def old(source, device, spec="auto"):
        summary = {
            "tflops_per_watt": {"fp16": 2.0},
            "tflops_per_watt_ci": {"fp16": [1.9, 2.1]},
            "tflops_per_watt_quality": {"fp16": "Q2"},
            "tflops_per_watt_scope": {"fp16": source["scope"]},
        }
        # a complete profile (conftest's) with this device, power source and summary; the judge reads no energy
        base = make_profile()
        window = {  # the headline window behind the 2.0 TFLOPS/W (the judge recomputes it): 2e12 FLOPs, 1 J, 1 s
            "kind": "headline",
            "source": source["name"],
            "scope": source["scope"],
            "quality": "Q2",
            "uncertainty_rel": None,
            "window_s": 1.0,
            "valid": True,
            "joules": 1.0,
            "avg_watts": 1.0,
            "flops": 2.0e12,
            "tflops": 2.0,
            "tflops_per_watt": 2.0,
        }
        profile = make_profile(
            device={**base["device"], **device},
            power={**base["power"], "spec": spec, "source": {"quality": "Q2", **source}},
            summary=summary,
            measurements=[make_measurement(energy=window)],
        )
        criterion = Criterion("tflops_per_watt", ">", 1.0, dtype="fp16")
        return judge(profile, [Target("t", "t", "", "", (criterion,), "")])[0]["criteria"][0]

    assert old({"name": "rapl", "scope": "package"}, CPU)["status"] == "PASS"
    gpu_by_rapl = old({"name": "rapl", "scope": "package"}, _cuda(uuid="abcd"))
    assert gpu_by_rapl["status"] == "INCONCLUSIVE" and "written before coverage was recorded" in gpu_by_rapl["reason"]
    assert old({"name": "nvml", "scope": "board"}, _cuda(uuid="abcd"), "nvml")["status"] == "PASS"
    assert old({"name": "nvml", "scope": "board"}, _cuda(uuid=None), "nvml")["status"] == "INCONCLUSIVE"
    assert old({"name": "amdsmi", "scope": "board"}, _cuda(uuid="x", runtime="rocm"))["status"] == "INCONCLUSIVE"


def test_nvml_index_is_nvmls_pci_order_and_is_checked_against_the_uuid():
    fake = FakeNvml(gpus=list(THREE))
    device = _cuda(0, uuid="5e5e")  # cuda:0 is the board at 5e, NVML's index 2
    source, _ = power.open_source("nvml:0", device, nvml=fake)
    assert source.uuid == "GPU-1b1b" and source.covers_device is False and "is not cuda:0" in source.coverage
    source, _ = power.open_source("nvml", device, nvml=fake)
    assert source.uuid == "GPU-5e5e" and source.read_energy_j() == pytest.approx(3000.0)
    assert source.covers_device is True and "GPU-5e5e matches cuda:0" in source.coverage


def test_nvml_without_a_uuid_finds_the_gpu_by_pci_bus_id_and_never_guesses_gpu_0():
    fake = FakeNvml(gpus=list(THREE))
    source, _ = power.open_source("nvml", _cuda(1, uuid=None, bus="0000:3b:00.0"), nvml=fake)
    assert source.uuid == "GPU-3b3b" and source.covers_device is True
    with pytest.raises(PowerSourceError, match="3 GPUs and no UUID or PCI bus id"):
        power.open_source("nvml", _cuda(1), nvml=fake)
    single, _ = power.open_source("nvml", _cuda(0), nvml=FakeNvml())
    assert single.covers_device is True and "only GPU NVML sees" in single.coverage


def test_nvml_does_not_cover_a_cpu_or_an_amd_gpu():
    assert power.open_source("nvml", CPU, nvml=FakeNvml())[0].covers_device is False
    rocm = power.open_source("nvml", _cuda(uuid="1234", runtime="rocm"), nvml=FakeNvml())[0]
    assert rocm.covers_device is False and "rocm" in rocm.coverage


def test_an_unknown_hwmon_driver_has_unknown_scope_and_coverage(tmp_path):
    make_hwmon(tmp_path, 0, "tenstorrent", {"power1_input": "50000000"})
    source, _ = power.open_source("hwmon", CPU, root=tmp_path)
    assert source.scope == "unknown" and source.covers_device is None and "tenstorrent" in source.coverage


def test_a_meter_covers_the_device_only_when_the_user_says_so(tmp_path):
    log = tmp_path / "m.csv"
    # a live log: opening refuses an empty or stale one and waits for three samples (tests/test_meter.py)
    log.write_text("".join(f"{time.time() - 0.5 * i:.3f},100\n" for i in (2, 1, 0)))
    assert power.open_source(f"meter:{log}", CPU)[0].covers_device is None
    stated = power.open_source(f"meter:{log},covers=yes", CPU)[0]
    assert stated.covers_device is True and "covers=yes" in stated.coverage
    assert power.open_source(f"meter:{log},covers=no", CPU)[0].covers_device is False
    with pytest.raises(PowerSourceError, match="covers='maybe' is not valid"):
        power.open_source(f"meter:{log},covers=maybe", CPU)


# ------------------------------------------------------------------------------------------------------ auto
def test_auto_on_a_cuda_build_picks_nvml_although_torch_fills_gcnarchname():
    # CUDA builds of torch fill gcnArchName with the device name; only runtime (torch.version.hip) tells AMD
    fake = FakeNvml(uuid="GPU-abcd")
    device = _cuda(uuid="abcd", gcnArchName="NVIDIA H100 80GB HBM3")
    source, notes = power.open_source("auto", device, nvml=fake)
    assert isinstance(source, NvmlSource) and source.covers_device is True, notes
    old_dict = {"backend": "cuda", "properties": {"uuid": "abcd", "gcnArchName": "NVIDIA H100 80GB HBM3"}}
    assert isinstance(power.open_source("auto", old_dict, nvml=fake)[0], NvmlSource)


def test_auto_on_rocm_picks_amdsmi_by_pci_bus_id():
    fake = FakeAmdSmi(bdfs=("0000:03:00.0", "0000:83:00.0"))
    fake.amdsmi_get_energy_count  # noqa: B018 - the counter advances only through advance()
    device = _cuda(0, uuid="x", bus="0000:83:00.0", runtime="rocm", gcnArchName="gfx942:sramecc+:xnack-")
    source = AmdSmiSource(fake, bus_id=device["properties"]["pci_bus_id"], sleep=fake.advance)
    assert source.bus_id == "0000:83:00.0" and source._handle == "gpu1"
    source.covers_device, source.coverage = source.check_coverage(device)
    assert source.covers_device is True and "0000:83:00.0 matches cuda:0" in source.coverage
    assert power._auto_candidates(device) == ["amdsmi", "hwmon:amdgpu"]


# ------------------------------------------------------------------------------------------------------ AMD mapping
def test_amdsmi_maps_the_hip_device_by_bus_id_not_index_and_refuses_to_guess():
    fake = FakeAmdSmi(bdfs=("0000:03:00.0", "0000:83:00.0"))
    # HIP_VISIBLE_DEVICES=1: HIP's device 0 is amdsmi's GPU 1
    source = AmdSmiSource(fake, bus_id="0000:83:00.0", sleep=fake.advance)
    assert source._handle == "gpu1"
    with pytest.raises(PowerSourceError, match="2 GPUs and no PCI bus id"):
        AmdSmiSource(fake, sleep=fake.advance)
    with pytest.raises(PowerSourceError, match="no GPU at PCI bus id 0000:c3:00.0"):
        AmdSmiSource(fake, bus_id="0000:c3:00.0", sleep=fake.advance)
    explicit = AmdSmiSource(fake, index=0, sleep=fake.advance)
    covers, why = explicit.check_coverage(_cuda(0, bus="0000:83:00.0", runtime="rocm"))
    assert covers is False and "is not cuda:0" in why


def test_open_source_passes_the_bus_id_to_amdsmi():
    fake = FakeAmdSmi(bdfs=("0000:03:00.0", "0000:83:00.0"), frozen=True)  # polled power: no wait to validate
    source, _ = power.open_source(
        "amdsmi", _cuda(0, bus="0000:83:00.0", runtime="rocm"), amdsmi=fake, measure_update=False
    )
    assert source._handle == "gpu1" and source.covers_device is True


def test_hwmon_amdgpu_is_the_one_at_the_devices_pci_address(tmp_path):
    make_hwmon(tmp_path, 0, "amdgpu", {"power1_average": "20000000"}, pci="0000:03:00.0")  # an idle GPU
    make_hwmon(tmp_path, 1, "amdgpu", {"power1_average": "500000000"}, pci="0000:83:00.0")
    device = _cuda(0, bus="0000:83:00.0", runtime="rocm")
    source, _ = power.open_source("hwmon:amdgpu", device, root=tmp_path)
    assert source.read_power_w() == pytest.approx(500.0) and source.covers_device is True
    with pytest.raises(PowerSourceError, match="2 amdgpu devices .* ambiguous"):
        power.open_source("hwmon:amdgpu", _cuda(0, runtime="rocm"), root=tmp_path)
    with pytest.raises(PowerSourceError, match="no amdgpu device at PCI bus id 0000:c3:00.0"):
        power.open_source("hwmon:amdgpu", _cuda(0, bus="0000:c3:00.0", runtime="rocm"), root=tmp_path)


# ------------------------------------------------------------------------------------------------------ MIG, C2C
def test_a_mig_slice_reads_its_parent_gpu_with_a_shared_scope_never_judged():
    parent = FakeGpu(uuid="GPU-feed", mig_slices=("MIG-aaaa-bbbb", "MIG-cccc-dddd"), energy_mj=5_000_000)
    fake = FakeNvml(gpus=[parent])
    device = _cuda(0, uuid="aaaa-bbbb")  # torch reports the slice's UUID without the MIG- prefix
    source, _ = power.open_source("nvml", device, nvml=fake)
    assert fake.handles_by_uuid == ["GPU-aaaa-bbbb", "MIG-aaaa-bbbb"]
    assert source.read_energy_j() == pytest.approx(5000.0) and source.read_power_w() == pytest.approx(300.0)
    assert source.scope == "shared-board" and source.mig_slice == "MIG-aaaa-bbbb" and source.uuid == "GPU-feed"
    assert source.covers_device is False and "shared with the other slices" in source.coverage
    _, verdict = _per_watt_verdict({"scope": "shared-board", "covers_device": True, "covers_reason": "forced"})
    assert verdict["status"] == "INCONCLUSIVE" and "shared" in verdict["reason"]


def test_a_c2c_module_polls_module_power_labelled_module_with_gpu_power_beside_it():
    fake = FakeNvml(
        gpus=[FakeGpu(uuid="GPU-gh", c2c=True, module_mw=650_000, instant_mw=400_000, name="NVIDIA GH200 480GB")]
    )
    source, _ = power.open_source("nvml", _cuda(0, uuid="gh"), nvml=fake)
    assert source.scope == "module" and source.c2c
    assert source.read_power_w() == pytest.approx(650.0)  # the same scope as the module energy counter
    assert source.context()["gpu_power_w"] == pytest.approx(400.0)
    assert source.covers_device is True and "module" in source.detail


# ------------------------------------------------------------------------------------------------------ update periods
def test_the_counter_update_period_is_measured_when_the_source_opens(monkeypatch):
    monkeypatch.setattr(power_base, "UPDATE_PROBE_MAX_S", 1.0)
    fake = FakeNvml(gpus=[FakeGpu(uuid="GPU-slow", update_s=0.2)])  # slower than the assumed 0.1 s
    source, _ = power.open_source("nvml", _cuda(0, uuid="slow"), nvml=fake)
    assert 0.19 <= source.update_measured_s <= 0.3 and source.counter_update_s == source.update_measured_s
    assert source.describe()["update_measured_s"] == source.update_measured_s
    fast = power.open_source(
        "nvml", _cuda(0, uuid="fast"), nvml=FakeNvml(gpus=[FakeGpu(uuid="GPU-fast", update_s=0.02)])
    )[0]
    assert fast.update_measured_s < 0.1 and fast.counter_update_s == 0.1  # never below the assumed period


def test_an_update_period_not_seen_twice_is_a_lower_bound():
    t = [0.0]

    def clock():
        return t[0]

    def sleep(s):
        t[0] += s

    values = iter([1.0] * 3 + [2.0] * 10_000)
    measured, note = power_base.measure_update_period(
        lambda: next(values), 0.1, max_wait_s=2.0, clock=clock, sleep=sleep
    )
    assert measured is not None and measured > 1.9 and "at least" in note
    steps = iter(float(int(i / 50)) for i in range(10_000))  # changes every 50 polls of 0.01 s = 0.5 s
    measured, _ = power_base.measure_update_period(lambda: next(steps), 0.1, max_wait_s=2.0, clock=clock, sleep=sleep)
    assert measured == pytest.approx(0.5, abs=0.03)


def test_rapl_polling_is_capped_so_a_wrap_is_never_missed(tmp_path):
    make_zone(tmp_path, "intel-rapl:0", "package-0", 0, max_uj=20_000_000)  # 20 J: 20 ms at 1000 W
    source = RaplSource(tmp_path)
    assert source.max_poll_s == pytest.approx(0.01)
    assert PowerSampler(source, hz=1.0).period_s == pytest.approx(0.01)
    assert PowerSampler(RampSource(), hz=1.0).period_s == 1.0


# ------------------------------------------------------------------------------------------------------ smaller ones
def test_ptdaemon_dates_are_month_first_and_negative_samples_are_errors(tmp_path):
    assert parse_line("Time,02-03-2026 00:00:00.000,Watts,10.0,Volts,230")[0] == pytest.approx(1770076800.0)
    with pytest.raises(ValueError):
        parse_line("Time,25-11-2025 12:00:00.500,Watts,22.95")  # month 25
    log = tmp_path / "ptd.log"
    log.write_text(
        "Time,11-25-2025 12:00:00.000,Watts,100.0,Volts,230\n"
        "Time,11-25-2025 12:00:01.000,Watts,-1.000000,Volts,-1\n"
        "Time,11-25-2025 12:00:02.000,Watts,101.0,Volts,230\n"
    )
    meter = MeterLogSource(log)
    samples, malformed = meter.read_all()
    assert [w for _, w in samples] == [100.0, 101.0] and malformed == 0 and meter.error_samples == 1


def test_hwmon_sensor_files_sort_by_channel_number(tmp_path):
    make_hwmon(tmp_path, 0, "amdgpu", {"power10_input": "5000000", "power2_input": "200000000"})
    assert HwmonSource(tmp_path).read_power_w() == pytest.approx(200.0)


def test_hwmon_power_labels_choose_a_sensor_and_an_apu_slowppt_is_an_average(tmp_path):
    make_hwmon(
        tmp_path,
        0,
        "amdgpu",
        {"power1_input": "15000000", "power1_label": "slowPPT", "power2_input": "25000000", "power2_label": "fastPPT"},
    )
    source = HwmonSource(tmp_path)
    assert source.power_label == "slowPPT" and source.power_average_s == 1.0 and "slowPPT" in source.detail
    fast = HwmonSource(tmp_path, "amdgpu", "fastPPT")
    assert fast.read_power_w() == pytest.approx(25.0) and fast.power_average_s is None


def test_amdsmi_accepts_the_older_power_key_and_socket_power_of_7x():
    old = _amd(FakeAmdSmi(energy_key="power"))
    assert old.has_counter and old.quality == "Q2"
    seven = _amd(FakeAmdSmi(power_keys=("socket_power",)))
    assert seven.read_power_w() == pytest.approx(400.0) and seven.describe()["power_key"] == "socket_power"


def test_nvml_board_limit_reliability_and_unknown_clock_event_bits_are_kept():
    assert decode_clock_events(0x200 | 0x400 | 0x800) == ["BoardLimit", "Reliability", "Unknown(0x800)"]
    context = NvmlSource(FakeNvml(clock_events=0x1 | 0x200 | 0x1000)).context()
    assert context["throttle_reasons"] == ["BoardLimit", "Unknown(0x1000)"]


def test_a_jetson_module_rail_covers_the_device_and_a_sub_rail_does_not(tmp_path):
    make_hwmon(
        tmp_path,
        0,
        "ina3221",
        {
            "in1_label": "VDD_IN",
            "in1_input": "5000",
            "curr1_input": "2000",
            "in2_label": "VDD_GPU_SOC",
            "in2_input": "5000",
            "curr2_input": "1000",
        },
    )
    jetson = _cuda(0, uuid="orin")
    assert power.open_source("hwmon", jetson, root=tmp_path)[0].covers_device is True
    rail = power.open_source("hwmon:ina3221:VDD_GPU_SOC", jetson, root=tmp_path)[0]
    assert rail.scope == "soc-rail" and rail.covers_device is False and "only part" in rail.coverage


def test_env_probe_still_finds_nvml_on_a_machine_with_several_gpus():
    status = power.probe_nvml(FakeNvml(gpus=list(THREE)))
    assert status.found and "H100" in status.detail


def test_the_only_i915_sensor_is_never_assumed_to_be_the_xpu_under_test(tmp_path):
    # an integrated GPU may be xpu:0 while the only i915 hwmon sensor is the discrete card's; torch's XPU
    # properties carry no PCI address to tell them apart
    make_hwmon(tmp_path, 0, "i915", {"energy1_input": "1000000"})
    xpu = {"backend": "xpu", "runtime": "xpu", "id": "xpu:0", "properties": {}}
    source, _ = power.open_source("hwmon:i915", xpu, root=tmp_path)
    assert source.covers_device is None and "no PCI bus id" in source.coverage


def test_other_processes_on_the_gpu_are_found_by_torchs_uuid_through_the_nvml_module():
    from npucheck.measure.power.nvml import driver_version, gpu_processes

    gpu = FakeGpu(uuid="GPU-aaaa", mig_slices=("MIG-bbbb",))
    gpu.processes = [(4242, 2**30), (99, 5)]
    gpu.slices[0].processes = [(777, None)]
    fake = FakeNvml(gpus=[gpu])
    assert gpu_processes("aaaa", nvml=fake, own_pid=99) == [{"pid": 4242, "used_memory_bytes": 2**30}]
    # under MIG torch reports the slice's UUID: its processes, memory not available
    assert gpu_processes("bbbb", nvml=fake) == [{"pid": 777, "used_memory_bytes": None}]
    assert gpu_processes("cccc", nvml=fake) is None  # unknown GPU: cannot tell, never "no other load"
    assert fake.initialised == 0  # every session closed
    assert driver_version(nvml=fake) == "570.124.06"
