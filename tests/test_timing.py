"""The timing procedure, driven by a fake device and a fake clock so every branch is deterministic."""

import pytest

from npucheck.measure.timing import TimingSettings, time_kernel


class FakeDevice:
    """Each call 'takes' call_s on a fake clock; the first call is slower (lazy initialisation)."""

    timing_method = "fake"

    def __init__(self, call_s, first_call_s=None):
        self.now = 0.0
        self.call_s = call_s
        self.first_call_s = first_call_s
        self.calls = 0

    def clock(self):
        return self.now

    def time_calls(self, fn, calls):
        elapsed = 0.0
        for _ in range(calls):
            fn()
            step = self.first_call_s if (self.calls == 0 and self.first_call_s) else self.call_s
            self.calls += 1
            elapsed += step
        self.now += elapsed
        return elapsed


def test_calls_are_batched_until_a_sample_is_long_enough():
    device = FakeDevice(call_s=0.0001)
    result = time_kernel(
        lambda: None, device, lambda: None, TimingSettings(budget_s=0.05, min_sample_s=0.002), clock=device.clock
    )
    assert result.calls_per_sample == 20
    assert result.stats.median_s == pytest.approx(0.0001)


def test_slow_first_call_does_not_inflate_the_calibration():
    device = FakeDevice(call_s=0.001, first_call_s=1.0)
    result = time_kernel(
        lambda: None, device, lambda: None, TimingSettings(budget_s=0.05, min_sample_s=0.002), clock=device.clock
    )
    assert result.calls_per_sample == 2
    assert result.warmup_calls >= 2


def test_at_least_min_samples_even_when_one_call_exceeds_the_budget():
    device = FakeDevice(call_s=1.0)
    result = time_kernel(
        lambda: None, device, lambda: None, TimingSettings(budget_s=0.1, min_samples=6), clock=device.clock
    )
    assert len(result.samples_s) == 6


def test_sampling_stops_at_max_samples():
    device = FakeDevice(call_s=0.01)
    result = time_kernel(
        lambda: None,
        device,
        lambda: None,
        TimingSettings(budget_s=100, min_samples=2, max_samples=9),
        clock=device.clock,
    )
    assert len(result.samples_s) == 9


def test_cache_is_flushed_before_every_sample():
    device = FakeDevice(call_s=0.01)
    flushes = []
    result = time_kernel(
        lambda: None,
        device,
        lambda: flushes.append(device.calls),
        TimingSettings(budget_s=0.1, min_samples=6),
        clock=device.clock,
    )
    assert len(flushes) == len(result.samples_s)


def test_a_broken_timer_is_an_error_not_a_figure():
    class ZeroTimer(FakeDevice):
        def time_calls(self, fn, calls):
            self.now += 0.01
            return 0.0

    device = ZeroTimer(call_s=0.01)
    with pytest.raises(ValueError, match="timer returned"):
        time_kernel(lambda: None, device, lambda: None, TimingSettings(budget_s=0.1), clock=device.clock)


class _Usage:
    def __init__(self, faults):
        self.ru_minflt = faults


class _FrozenResource:
    """getrusage where the OS does not count faults: ru_minflt stays 0 whatever happens."""

    RUSAGE_SELF = 0

    @staticmethod
    def getrusage(_who):
        return _Usage(0)


def test_faults_from_an_os_that_does_not_count_them_are_unknown_not_zero(monkeypatch):
    from npucheck.measure import timing

    timing.faults_are_counted.cache_clear()
    monkeypatch.setattr(timing, "resource", _FrozenResource)
    try:
        assert timing.faults_are_counted() is False
        assert timing.minor_faults() is None
    finally:
        timing.faults_are_counted.cache_clear()


def test_faults_are_counted_where_the_os_counts_them():
    from npucheck.measure import timing

    if timing.resource is None:
        pytest.skip("no resource module on this OS")
    timing.faults_are_counted.cache_clear()
    counted = timing.faults_are_counted()
    faults = timing.minor_faults()
    assert (faults is not None) == counted
    if counted:
        assert faults > 0
