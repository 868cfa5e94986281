"""AMD GPUs through amdsmi (the ``amd`` extra), or any object with its API.

Energy: ``amdsmi_get_energy_count`` — ``energy_accumulator × counter_resolution`` µJ. The counter is validated
before it is trusted, because it has been seen frozen or advancing at the wrong rate on some boards and ROCm
versions: over ``VALIDATE_S`` its energy must advance and, where socket power is readable, agree with power ×
time within a factor of two. A counter that fails is not used; socket power is polled instead (quality Q1).
Power: ``current_socket_power`` (MI300 and newer), else ``socket_power`` (amdsmi 7.x), else
``average_socket_power``; "N/A" means absent. The energy count is ``energy_accumulator`` (``power`` before 6.4).
The GPU is found by PCI bus id (``amdsmi_get_gpu_device_bdf``), never by HIP's index.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from npucheck.measure.power.base import (
    CounterReset,
    PowerReadError,
    PowerSource,
    PowerSourceError,
    bus_id_coverage,
    device_label,
    device_runtime,
    normalize_bus_id,
    plausible_watts,
)

__all__ = ["AMD_UNCERTAINTY", "AmdSmiSource", "POWER_KEYS", "VALID_RATIO", "VALIDATE_S"]


AMD_UNCERTAINTY = 0.05
VALIDATE_S = 0.5
VALID_RATIO = (0.5, 2.0)
POWER_KEYS = ("current_socket_power", "socket_power", "average_socket_power")


def _number(value: Any) -> float | None:
    if isinstance(value, (int, float)) and not isinstance(value, bool) and 0 <= value < 0xFFFFFFFF:
        return float(value)
    return None


class AmdSmiSource(PowerSource):
    """Socket power and energy of one AMD GPU."""

    name = "amdsmi"
    scope = "board"
    uncertainty_rel = AMD_UNCERTAINTY

    def __init__(
        self,
        amdsmi: Any | None = None,
        index: int | None = None,
        bus_id: str | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ):
        if amdsmi is None:
            try:
                import amdsmi as amdsmi_module
            except Exception as e:  # noqa: BLE001 - ImportError, or OSError when the ROCm library is missing
                raise PowerSourceError(
                    f"amdsmi: cannot import ({type(e).__name__}: {e}); pip install 'npucheck[amd]'"
                ) from e
            amdsmi = amdsmi_module
        self._amd = amdsmi
        self._lock = threading.Lock()  # amdsmi is not thread-safe before ROCm 7.2
        try:
            amdsmi.amdsmi_init()
            handles = list(amdsmi.amdsmi_get_processor_handles())
        except Exception as e:  # noqa: BLE001
            raise PowerSourceError(f"amdsmi: {type(e).__name__}: {e}") from e
        try:
            self._handle, self.found_by = self._find(handles, index, bus_id)
        except PowerSourceError:
            self.close()
            raise
        self.bus_id = self._bdf(self._handle)
        self._last_uj: float | None = None
        self._power_key = self._find_power_key()
        self._counter, why = self._validate_counter(sleep)
        if not self._counter and self._power_key is None:
            raise PowerSourceError(f"amdsmi: no usable energy counter ({why}) and no socket power reading")
        self.quality = "Q2" if self._counter else "Q1"
        self.counter_update_s = 0.001 if self._counter else None
        self.detail = (
            f"GPU at {self.bus_id or 'unknown PCI address'} ({self.found_by}): "
            + ("validated energy counter" if self._counter else f"energy counter not used: {why}")
            + (f"; {self._power_key}" if self._power_key else "")
        )

    def _bdf(self, handle: Any) -> str | None:
        try:
            return normalize_bus_id(self._amd.amdsmi_get_gpu_device_bdf(handle))
        except Exception:  # noqa: BLE001
            return None

    def _find(self, handles: list[Any], index: int | None, bus_id: str | None) -> tuple[Any, str]:
        """The GPU under test: by PCI bus id (amdsmi's order is not HIP's, and HIP_VISIBLE_DEVICES /
        ROCR_VISIBLE_DEVICES renumber HIP's), else an explicit amdsmi index, else the only GPU; anything
        ambiguous is refused rather than guessed."""
        if index is not None:
            if not 0 <= index < len(handles):
                raise PowerSourceError(f"amdsmi: no GPU {index} ({len(handles)} found)")
            return handles[index], f"amdsmi index {index}"
        wanted = normalize_bus_id(bus_id)
        if wanted:
            matches = [h for h in handles if self._bdf(h) == wanted]
            if len(matches) == 1:
                return matches[0], f"PCI bus id {wanted}"
            if not matches:
                raise PowerSourceError(
                    f"amdsmi: no GPU at PCI bus id {wanted} (found "
                    f"{', '.join(str(self._bdf(h)) for h in handles) or 'none'})"
                )
            raise PowerSourceError(
                f"amdsmi: {len(matches)} handles share PCI bus id {wanted}: ambiguous; name one with amdsmi:INDEX"
            )
        if len(handles) == 1:
            return handles[0], "the only GPU amdsmi sees"
        raise PowerSourceError(
            f"amdsmi: {len(handles)} GPUs and no PCI bus id to tell which is the device under "
            "test; name one with amdsmi:INDEX (amdsmi's order, not HIP's)"
            if handles
            else "amdsmi: no GPU found"
        )

    def check_coverage(self, device: dict[str, Any]) -> tuple[bool | None, str]:
        label = device_label(device)
        runtime = device_runtime(device)
        if runtime != "rocm":
            return False, f"amdsmi measures an AMD GPU, not {label} ({runtime})"
        by_bus = bus_id_coverage("amdsmi GPU", self.bus_id, device)
        if by_bus is not None:
            return by_bus
        if self.found_by == "the only GPU amdsmi sees":
            return True, f"{label} is the only GPU amdsmi sees"
        return None, f"no PCI bus id to match: cannot tell whether amdsmi {self.found_by} is {label}"

    def _find_power_key(self) -> str | None:
        try:
            info = self._amd.amdsmi_get_power_info(self._handle)
        except Exception:  # noqa: BLE001
            return None
        # current_socket_power: MI300+; socket_power: amdsmi 7.x; average_socket_power: Navi and MI200 and older.
        # "N/A", UINT32_MAX or 0 (a field a version leaves unset) mean absent.
        for key in POWER_KEYS:
            if _number(info.get(key)):
                return key
        return None

    def _raw_uj(self) -> float:
        with self._lock:
            count = self._amd.amdsmi_get_energy_count(self._handle)
        # "energy_accumulator" since ROCm 6.4; older amdsmi named the same accumulator "power"
        raw = count["energy_accumulator"] if "energy_accumulator" in count else count["power"]
        return float(raw) * float(count["counter_resolution"])

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

    def describe(self) -> dict[str, Any]:
        info = super().describe()
        info.update(pci_bus_id=self.bus_id, found_by=self.found_by, power_key=self._power_key)
        return info

    def close(self) -> None:
        try:
            self._amd.amdsmi_shut_down()
        except Exception:  # noqa: BLE001, S110 - a failed shutdown leaves nothing to undo
            pass
