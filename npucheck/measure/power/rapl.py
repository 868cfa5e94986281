"""Linux powercap RAPL: CPU package (or psys, or DRAM) energy counters in microjoules.

Zones are chosen by their ``name`` file, never by index (the index of ``dram`` differs between machines):

* ``package`` (default): every top-level ``package-N`` zone, summed across sockets. Sub-zones (core, uncore,
  dram) are never added to their parent. Multi-die parts that expose ``package-N-die-D`` zones with identical
  counters (mirrors of one socket counter) are counted once.
* ``psys``: the platform zone (laptops, Skylake+ clients); it contains the packages, so it is never summed with
  them.
* ``dram``: the DRAM sub-zones, apart.

Each zone's counter wraps at ``max_energy_range_uj``; every read unwraps against the previous one, so the
counter must be read more often than it can wrap: the sampler reads it at ``--power-hz`` but never less often than
``max_poll_s`` (half the time the smallest zone takes to wrap at ``ZONE_MAX_WATTS``), whatever ``--power-hz`` says.
A zone without a readable ``max_energy_range_uj`` is refused: its wrap could not be told from a reset.
Since Linux 5.10 ``energy_uj`` is readable by root only, and containers often mask powercap: "permission denied"
and "not present" are reported differently, and neither ever becomes 0 J.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from pathlib import Path

from npucheck.measure.power.base import PowerReadError, PowerSource, PowerSourceError, device_label, device_runtime

__all__ = [
    "COUNTER_UPDATE_S",
    "discover_zones",
    "RAPL_UNCERTAINTY",
    "RaplSource",
    "select_zones",
    "ZONE_KINDS",
    "ZONE_MAX_WATTS",
]


RAPL_UNCERTAINTY = 0.10
"""Neither Intel nor AMD publishes an accuracy for RAPL; Khan et al. (2018) found it highly correlated with plug
power but it leaves out PSU, fans and board. We judge RAPL figures with ±10% until a meter says otherwise."""
COUNTER_UPDATE_S = 0.001
ZONE_MAX_WATTS = 1000.0
"""The most one RAPL zone is assumed to draw when bounding the poll interval (the largest CPU packages are rated
about 500 W): a counter read at least every range / this / 2 seconds cannot wrap twice unseen."""
ZONE_KINDS = ("package", "psys", "dram")
_PACKAGE = re.compile(r"package-(\d+)(?:-die-(\d+))?$")


@dataclass
class _Zone:
    path: Path
    name: str
    max_uj: int
    last_uj: int | None = None
    total_uj: int = 0


def _read_int(path: Path) -> int:
    return int(path.read_text().strip())


def discover_zones(root: Path) -> list[tuple[Path, str]]:
    """Every powercap zone with an ``energy_uj`` file (top-level and sub-zones), with its name."""
    base = root / "class/powercap"
    zones = []
    # sysfs lists sub-zones both beside their parent (class/powercap/intel-rapl:0:0) and inside it
    for path in sorted(base.glob("intel-rapl:*")) + sorted(base.glob("intel-rapl:*/intel-rapl:*")):
        name_file = path / "name"
        if not (path / "energy_uj").exists() or not name_file.exists():
            continue
        try:
            zones.append((path, name_file.read_text().strip()))
        except OSError:
            continue
    unique = {p.resolve(): (p, n) for p, n in zones}  # the same zone may appear via two links
    return sorted(unique.values(), key=lambda z: str(z[0]))


def select_zones(zones: list[tuple[Path, str]], kind: str) -> list[tuple[Path, str]]:
    """The zones measuring ``kind`` once each: top-level packages (no children), psys, or DRAM sub-zones."""
    if kind == "psys":
        return [z for z in zones if z[1] == "psys"]
    if kind == "dram":
        return [z for z in zones if z[1] == "dram"]
    top = [z for z in zones if z[0].name.count(":") == 1 and _PACKAGE.match(z[1])]
    return top


class RaplSource(PowerSource):
    """RAPL energy of the CPU package(s) (or psys / dram), unwrapped, in joules."""

    name = "rapl"
    quality = "Q2"
    uncertainty_rel = RAPL_UNCERTAINTY
    counter_update_s = COUNTER_UPDATE_S

    def __init__(self, root: Path | str = "/sys", kind: str = "package"):
        if kind not in ZONE_KINDS:
            raise PowerSourceError(f"rapl: unknown zone kind {kind!r} (known: {', '.join(ZONE_KINDS)})")
        root = Path(root)
        self.kind = kind
        # psys covers the platform (packages and more); dram is the memory alone, never the device under test
        self.scope = {"package": "package", "psys": "platform", "dram": "dram"}[kind]
        base = root / "class/powercap"
        if not base.is_dir():
            raise PowerSourceError(f"rapl: {base} is not present (no powercap driver, or masked in a container)")
        chosen = select_zones(discover_zones(root), kind)
        if not chosen:
            raise PowerSourceError(f"rapl: no {kind} zone with energy_uj under {base}")
        self._zones: list[_Zone] = []
        self._lock = threading.Lock()
        for path, name in chosen:
            try:
                max_uj = _read_int(path / "max_energy_range_uj")
                first = _read_int(path / "energy_uj")
            except PermissionError as e:
                raise PowerSourceError(
                    f"rapl: {path / 'energy_uj'}: permission denied (energy_uj is root-only "
                    "since Linux 5.10; run as root or grant read access with a udev rule)"
                ) from e
            except FileNotFoundError as e:
                raise PowerSourceError(
                    f"rapl: {e.filename}: not present; without max_energy_range_uj a wrap cannot be told from a reset"
                ) from e
            except (OSError, ValueError) as e:
                raise PowerSourceError(f"rapl: {path}: unreadable: {e}") from e
            if max_uj <= 0:
                raise PowerSourceError(f"rapl: {path}: max_energy_range_uj is {max_uj}")
            self._zones.append(_Zone(path=path, name=name, max_uj=max_uj, last_uj=first))
        self._drop_mirrors()
        self.max_poll_s = min(z.max_uj for z in self._zones) / 1e6 / ZONE_MAX_WATTS / 2
        self.detail = ", ".join(f"{z.name} ({z.path.name})" for z in self._zones)

    def check_coverage(self, device: dict) -> tuple[bool | None, str]:
        label = device_label(device)
        if self.kind == "dram":
            return False, f"RAPL dram measures the memory only, not {label}"
        what = "the CPU package(s)" if self.kind == "package" else "the platform (psys)"
        if device_runtime(device) == "cpu":
            return True, f"RAPL measures {what}: {label} is the CPU"
        return False, f"RAPL measures {what}, not {label}"

    def _drop_mirrors(self) -> None:
        """Dies of one package whose counters read the same are one counter seen twice."""
        kept: dict[tuple[str, int | None], _Zone] = {}
        result = []
        for zone in self._zones:
            match = _PACKAGE.match(zone.name)
            if match and match.group(2) is not None:
                key = (match.group(1), zone.last_uj)
                if key in kept:
                    continue
                kept[key] = zone
            result.append(zone)
        self._zones = result

    @property
    def zones(self) -> list[str]:
        return [z.name for z in self._zones]

    @property
    def has_counter(self) -> bool:
        return True

    def read_energy_j(self) -> float:
        """Total energy since the source was opened, joules, summed over the chosen zones."""
        with self._lock:
            raws = []
            for zone in self._zones:
                try:
                    raws.append(_read_int(zone.path / "energy_uj"))
                except PermissionError as e:
                    raise PowerReadError(f"rapl: {zone.path.name}: permission denied") from e
                except (OSError, ValueError) as e:
                    # a transient failure: drop this reading, never count it as 0 (that would fake a wrap later)
                    raise PowerReadError(f"rapl: {zone.path.name}: {getattr(e, 'strerror', None) or e}") from e
            for zone, raw in zip(self._zones, raws):
                if raw < 0 or raw > zone.max_uj:
                    raise PowerReadError(f"rapl: {zone.path.name}: {raw} uJ outside 0..{zone.max_uj}")
                last = zone.last_uj if zone.last_uj is not None else raw
                delta = raw - last
                if delta < 0:  # wrapped once since the last read
                    delta += zone.max_uj + 1
                zone.total_uj += delta
                zone.last_uj = raw
            return sum(z.total_uj for z in self._zones) / 1e6
