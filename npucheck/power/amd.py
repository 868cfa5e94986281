"""AMD GPUs through amdsmi (the ``amd`` extra), or any object with its API.

Energy: ``amdsmi_get_energy_count`` — ``energy_accumulator × counter_resolution`` µJ. The counter is validated
before it is trusted, because it has been seen frozen or advancing at the wrong rate on some boards and ROCm
versions: over ``VALIDATE_S`` its energy must advance and, where socket power is readable, agree with power ×
time within a factor of two. A counter that fails is not used; socket power is polled instead (quality Q1).
Power: ``current_socket_power`` (MI300 and newer), else ``average_socket_power``; "N/A" means absent.
"""

from __future__ import annotations

import threading
import time
from typing import Any, Callable

from npucheck.power.base import CounterReset, PowerReadError, PowerSource, PowerSourceError, plausible_watts

AMD_UNCERTAINTY = 0.05
VALIDATE_S = 0.5
VALID_RATIO = (0.5, 2.0)


def _number(value: Any) -> float | None:
    if isinstance(value, (int, float)) and not isinstance(value, bool) and 0 <= value < 0xFFFFFFFF:
        return float(value)
    return None


class AmdSmiSource(PowerSource):
    """Socket power and energy of one AMD GPU."""

    name = "amdsmi"
    scope = "board"
    uncertainty_rel = AMD_UNCERTAINTY

    def __init__(self, amdsmi: Any | None = None, index: int = 0, sleep: Callable[[float], None] = time.sleep):
        if amdsmi is None:
            try:
                import amdsmi as amdsmi_module
            except Exception as e:  # noqa: BLE001 - ImportError, or OSError when the ROCm library is missing
                raise PowerSourceError(f"amdsmi: cannot import ({type(e).__name__}: {e}); pip install 'npucheck[amd]'") from e
            amdsmi = amdsmi_module
        self._amd = amdsmi
        self._lock = threading.Lock()  # amdsmi is not thread-safe before ROCm 7.2
        try:
            amdsmi.amdsmi_init()
            handles = amdsmi.amdsmi_get_processor_handles()
            self._handle = handles[index]
        except IndexError as e:
            raise PowerSourceError(f"amdsmi: no GPU {index}") from e
        except Exception as e:  # noqa: BLE001
            raise PowerSourceError(f"amdsmi: {type(e).__name__}: {e}") from e
        self._last_uj: float | None = None
        self._power_key = self._find_power_key()
        self._counter, why = self._validate_counter(sleep)
        if not self._counter and self._power_key is None:
            raise PowerSourceError(f"amdsmi: no usable energy counter ({why}) and no socket power reading")
        self.quality = "Q2" if self._counter else "Q1"
        self.counter_update_s = 0.001 if self._counter else None
        self.detail = ("validated energy counter" if self._counter else f"energy counter not used: {why}") + (
            f"; {self._power_key}" if self._power_key else "")

    def _find_power_key(self) -> str | None:
        try:
            info = self._amd.amdsmi_get_power_info(self._handle)
        except Exception:  # noqa: BLE001
            return None
        for key in ("current_socket_power", "average_socket_power"):
            if _number(info.get(key)) is not None:
                return key
        return None

    def _raw_uj(self) -> float:
        with self._lock:
            count = self._amd.amdsmi_get_energy_count(self._handle)
        return float(count["energy_accumulator"]) * float(count["counter_resolution"])

    def _validate_counter(self, sleep: Callable[[float], None]) -> tuple[bool, str]:
        try:
            first = self._raw_uj()
        except Exception as e:  # noqa: BLE001
            return False, f"energy count unreadable: {type(e).__name__}: {e}"
        try:
            power = self.read_power_w() if self._power_key else None
        except PowerReadError:
            power = None  # a failed power read says nothing about the counter: skip the ratio check
        sleep(VALIDATE_S)
        try:
            second = self._raw_uj()
        except Exception as e:  # noqa: BLE001
            return False, f"energy count unreadable: {type(e).__name__}: {e}"
        delta_j = (second - first) / 1e6
        if delta_j <= 0:
            return False, f"the counter did not advance in {VALIDATE_S:g} s (frozen)"
        if power:
            ratio = delta_j / (power * VALIDATE_S)
            if not VALID_RATIO[0] <= ratio <= VALID_RATIO[1]:
                return False, f"counter energy is {ratio:.2f}x power x time"
        self._last_uj = second
        return True, ""

    @property
    def has_counter(self) -> bool:
        return self._counter

    @property
    def has_power(self) -> bool:
        return self._power_key is not None

    def read_energy_j(self) -> float:
        try:
            raw = self._raw_uj()
        except Exception as e:  # noqa: BLE001
            raise PowerReadError(f"amdsmi: energy read failed: {e}") from e
        if self._last_uj is not None and raw < self._last_uj:
            self._last_uj = raw
            raise CounterReset("amdsmi energy counter went backwards")
        self._last_uj = raw
        return raw / 1e6

    def read_power_w(self) -> float:
        try:
            with self._lock:
                value = _number(self._amd.amdsmi_get_power_info(self._handle).get(self._power_key))
        except Exception as e:  # noqa: BLE001
            raise PowerReadError(f"amdsmi: power read failed: {e}") from e
        if value is None:
            raise PowerReadError(f"amdsmi: {self._power_key} is N/A")
        return plausible_watts(value, "amdsmi")

    def close(self) -> None:
        try:
            self._amd.amdsmi_shut_down()
        except Exception:  # noqa: BLE001
            pass
