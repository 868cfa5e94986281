"""The result profile as typed, immutable objects, and the vocabularies its strings come from. No torch.

One class per part of the JSON file (see docs/result-profile.md, and ``npucheck/schema/result-v2.schema.json``,
which stays the file contract): :class:`ResultProfile` holds a :class:`DeviceInfo`, :class:`Settings`,
:class:`PowerInfo`, :class:`Load`, :class:`Measurement` objects (each with its :class:`Check`, :class:`Stats` and
:class:`Energy`), :class:`SupportFamily` objects, a :class:`Summary` and :class:`Verdict` objects.

Every object checks its values when it is built: a status, dtype, family, quality, scope, cache state or verdict
status outside its vocabulary, a non-finite figure or an interval whose low end is above its high end raises
:class:`ValueError` there, not when the file is saved.

``X.from_dict(d).to_dict() == d`` for every document npucheck writes (schema 2, and schema 1 after
``npucheck.store`` migrated it):

* keys this module does not know (a later 0.x release may add some; the schema allows them) are kept in each
  object's ``extra`` and written back;
* a key that was absent stays absent and a null stays null: an object read with ``from_dict`` remembers which
  keys its document had (``present_keys``). An object built in code writes its required keys, the keys the
  runner always writes (``ALWAYS``, null or not) and every other field whose value is not its default.

Open-ended parts (device properties, the environment, an energy window's context and trace, a check's device
state) stay JSON values, frozen: objects become read-only mappings and lists become tuples; ``to_dict`` turns
them back into dicts and lists.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import MISSING, Field, dataclass, field, fields
from types import MappingProxyType
from typing import Any, ClassVar, Literal, get_args

from npucheck.errors import ResultFileError

__all__ = [
    "SCHEMA_VERSION",
    "HOST_CLOCK_TOLERANCE",
    # vocabularies
    "Status",
    "STATUSES",
    "Dtype",
    "DTYPES",
    "Family",
    "FAMILIES",
    "SUPPORT_FAMILIES",
    "Quality",
    "QUALITIES",
    "QUALITY_NAMES",
    "Scope",
    "SCOPES",
    "PARTIAL_SCOPES",
    "SHARED_SCOPES",
    "VerdictStatus",
    "VERDICT_STATUSES",
    "CacheState",
    "CACHE_STATES",
    "Op",
    "OPS",
    "EnergyKind",
    "ENERGY_KINDS",
    "Role",
    "ROLES",
    # objects
    "Record",
    "Case",
    "Check",
    "Stats",
    "Energy",
    "SourceInfo",
    "PowerInfo",
    "Measurement",
    "SupportCheck",
    "SupportFamily",
    "DeviceInfo",
    "StoredDatasheet",
    "Settings",
    "Load",
    "PowerCapStep",
    "PowerCapRestore",
    "PowerCaps",
    "best_cap",
    "Peak",
    "Summary",
    "CriterionResult",
    "Verdict",
    "ResultProfile",
    "as_profile",
    "freeze",
    "thaw",
]

SCHEMA_VERSION = 2
"""The format version this module reads and writes (its history and migrations: ``npucheck.store``)."""
HOST_CLOCK_TOLERANCE = 1.15
"""A confirmation's event-timed TFLOPS may exceed the host clock's figure for the same calls by this factor (the
host clock includes launch gaps and one synchronize, so it can only read low); beyond it the events are not
trusted: the runner warns and the judge does not pass the peak."""

# ------------------------------------------------------------------------------------------------- vocabularies
Status = Literal["ok", "error", "skipped"]
STATUSES: tuple[str, ...] = get_args(Status)
"""A measurement's status."""
Dtype = Literal["fp16", "bf16", "fp32", "int8", "fp8_e4m3", "fp8_e5m2"]
DTYPES: tuple[str, ...] = get_args(Dtype)
Family = Literal["gemm", "cnn", "rnn", "lstm", "gru", "attention", "memory"]
FAMILIES: tuple[str, ...] = get_args(Family)
"""A kernel's family (``rnn_tanh`` and ``rnn_relu`` are family ``rnn``, ``conv2d`` is ``cnn``)."""
SUPPORT_FAMILIES: tuple[str, ...] = ("cnn", "rnn", "lstm", "gru", "transformer")
"""The families of the terminal-chip support check (the keys of ``support``)."""
Quality = Literal["Q0", "Q1", "Q2", "Q3"]
QUALITIES: tuple[str, ...] = get_args(Quality)
"""Power quality, worst first: estimated, sampled telemetry, energy counter, external meter."""
QUALITY_NAMES: Mapping[str, str] = MappingProxyType(
    {"Q0": "estimated", "Q1": "sampled telemetry", "Q2": "energy counter", "Q3": "external meter"}
)
Scope = Literal[
    "chip",
    "package",
    "board",
    "module",
    "platform",
    "soc-rail",
    "dram",
    "wall",
    "user-stated",
    "shared-board",
    "unknown",
]
SCOPES: tuple[str, ...] = get_args(Scope)
"""What a power figure covers (every scope a source in ``npucheck.measure.power`` can report)."""
PARTIAL_SCOPES: tuple[str, ...] = ("soc-rail", "dram")
"""Scopes covering only part of a device: shown, never judged."""
SHARED_SCOPES: tuple[str, ...] = ("shared-board",)
"""Scopes whose power other devices share (a MIG slice's parent GPU): shown, never judged."""
VerdictStatus = Literal["PASS", "FAIL", "INCONCLUSIVE", "ERROR"]
VERDICT_STATUSES: tuple[str, ...] = get_args(VerdictStatus)
CacheState = Literal["cold", "mixed", "warm"]
CACHE_STATES: tuple[str, ...] = get_args(CacheState)
Op = Literal[">=", ">", "<=", "<"]
OPS: tuple[str, ...] = get_args(Op)
EnergyKind = Literal["headline", "sweep", "kernel", "idle"]
ENERGY_KINDS: tuple[str, ...] = get_args(EnergyKind)
Role = Literal["confirmation"]
ROLES: tuple[str, ...] = get_args(Role)

_ID = re.compile(r"^[^/]+/[^/]+/.+$")


# ------------------------------------------------------------------------------------------------- JSON values
def freeze(value: Any) -> Any:
    """A JSON value made read-only: dicts become read-only mappings, lists tuples (recursively)."""
    if isinstance(value, Mapping):
        return MappingProxyType({key: freeze(item) for key, item in value.items()})
    if isinstance(value, (list, tuple)):
        return tuple(freeze(item) for item in value)
    return value


def thaw(value: Any) -> Any:
    """The plain JSON value (dicts and lists, fresh copies) of a frozen one."""
    if isinstance(value, Record):
        return value.to_dict()
    if isinstance(value, Mapping):
        return {key: thaw(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [thaw(item) for item in value]
    return value


# ------------------------------------------------------------------------------------------------- field kinds
# metadata["kind"]: "value" (a scalar, stored as given), "json" (an open-ended JSON value, frozen), "seq" (a list of
# scalars, stored as a tuple), "one" (a nested Record or None), "many" (a list of Records), "keyed" (an object of
# Records by name).
def _value(default: Any = MISSING) -> Any:
    return field(default=default, metadata={"kind": "value"})


def _json(default: Any = None) -> Any:
    return field(default=default, metadata={"kind": "json"})


def _seq(required: bool = False) -> Any:
    return field(metadata={"kind": "seq"}) if required else field(default=(), metadata={"kind": "seq"})


def _one(cls_name: str, required: bool = False) -> Any:
    meta = {"kind": "one", "cls": cls_name}
    return field(metadata=meta) if required else field(default=None, metadata=meta)


def _many(cls_name: str, required: bool = False) -> Any:
    meta = {"kind": "many", "cls": cls_name}
    return field(metadata=meta) if required else field(default=(), metadata=meta)


def _keyed(cls_name: str) -> Any:
    return field(default_factory=lambda: MappingProxyType({}), metadata={"kind": "keyed", "cls": cls_name})


def _blob_map() -> Any:
    return field(default_factory=lambda: MappingProxyType({}), metadata={"kind": "json"})


_BOOKKEEPING = ("extra", "present_keys")


def _is_required(f: Field[Any]) -> bool:
    return f.default is MISSING and f.default_factory is MISSING


def _default_of(f: Field[Any]) -> Any:
    if f.default is not MISSING:
        return f.default
    if f.default_factory is not MISSING:
        return f.default_factory()
    return MISSING


def _record_class(name: str) -> type[Record]:
    cls = globals()[name]
    assert isinstance(cls, type) and issubclass(cls, Record)
    return cls


@dataclass(frozen=True, kw_only=True)
class Record:
    """Base of the model's objects: ``from_dict``/``to_dict``, unknown keys kept, values checked when built.

    ``extra``: the document's keys this class does not know, written back by ``to_dict``.
    ``present_keys``: the known keys the document had (set by ``from_dict``); None for an object built in code.
    """

    ALWAYS: ClassVar[frozenset[str]] = frozenset()
    """Keys written even when null (and even when empty) by an object built in code: what the runner writes."""

    extra: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}), repr=False)
    present_keys: frozenset[str] | None = field(default=None, repr=False, compare=False)

    # ------------------------------------------------------------------------------------------- construction
    def __post_init__(self) -> None:
        for f in fields(self):
            if f.name in _BOOKKEEPING:
                continue
            value = getattr(self, f.name)
            kind = f.metadata.get("kind", "value")
            if kind == "json":
                value = freeze(value)
            elif kind == "seq" or (kind == "seq_or_none" and value is not None):
                value = _as_tuple(self, f.name, value)
            elif kind == "one":
                if value is not None and not isinstance(value, _record_class(f.metadata["cls"])):
                    raise ValueError(
                        f"{self._where(f.name)}: expected {f.metadata['cls']} or None, got {type(value).__name__}"
                    )
            elif kind == "many":
                if value is not None:
                    value = _as_tuple(self, f.name, value)
                    cls = _record_class(f.metadata["cls"])
                    if not all(isinstance(item, cls) for item in value):
                        raise ValueError(f"{self._where(f.name)}: every item must be a {cls.__name__}")
            elif kind == "keyed":
                if value is not None:
                    if not isinstance(value, Mapping):
                        raise ValueError(f"{self._where(f.name)}: expected an object, got {type(value).__name__}")
                    cls = _record_class(f.metadata["cls"])
                    if not all(isinstance(key, str) and isinstance(item, cls) for key, item in value.items()):
                        raise ValueError(f"{self._where(f.name)}: every entry must be a {cls.__name__} by name")
                    value = MappingProxyType(dict(value))
            object.__setattr__(self, f.name, value)
        if not isinstance(self.extra, Mapping):
            raise ValueError(f"{type(self).__name__}.extra must be a mapping")
        known = {f.name for f in fields(self)} - set(_BOOKKEEPING)
        clash = sorted(known & set(self.extra))
        if clash:
            raise ValueError(f"{type(self).__name__}.extra repeats known keys: {', '.join(clash)}")
        object.__setattr__(self, "extra", freeze(self.extra))
        if self.present_keys is not None:
            object.__setattr__(self, "present_keys", frozenset(self.present_keys))
        self._check()

    def _check(self) -> None:
        """Checks of this class's values; raises ValueError."""

    def _where(self, name: str) -> str:
        return f"{type(self).__name__}.{name}"

    # ------------------------------------------------------------------------------------------- JSON
    @classmethod
    def from_dict(cls, doc: Mapping[str, Any]) -> Any:
        """The object of a JSON object as npucheck writes it (``to_dict`` gives ``doc`` back exactly)."""
        if not isinstance(doc, Mapping):
            raise ValueError(f"{cls.__name__}: expected a JSON object, got {type(doc).__name__}")
        known = {f.name: f for f in fields(cls) if f.name not in _BOOKKEEPING}
        kwargs: dict[str, Any] = {}
        for name, f in known.items():
            if name in doc:
                kwargs[name] = _load(f, doc[name])
            elif _is_required(f):
                raise ValueError(f"{cls.__name__}: missing key {name!r}")
        extra = {key: value for key, value in doc.items() if key not in known}
        return cls(**kwargs, extra=extra, present_keys=frozenset(key for key in doc if key in known))

    def to_dict(self) -> dict[str, Any]:
        """The JSON object (fresh dicts and lists) of this object."""
        keys = self.ALWAYS if self.present_keys is None else self.present_keys
        out: dict[str, Any] = {}
        for f in fields(self):
            if f.name in _BOOKKEEPING:
                continue
            value = getattr(self, f.name)
            if _is_required(f) or f.name in keys or not _same(value, _default_of(f)):
                out[f.name] = _dump(f, value)
        out.update(thaw(self.extra))
        return out


def _same(value: Any, default: Any) -> bool:
    if default is None or value is None:
        return value is default
    if isinstance(default, (tuple, Mapping)):
        return type(value) is type(default) and len(value) == 0 and len(default) == 0
    return bool(value == default) and type(value) is type(default)


def _load(f: Field[Any], value: Any) -> Any:
    kind = f.metadata.get("kind", "value")
    if value is None or kind not in ("one", "many", "keyed"):
        return value
    cls = _record_class(f.metadata["cls"])
    if kind == "one":
        return cls.from_dict(value)
    if kind == "many":
        if not isinstance(value, list):
            raise ValueError(f"{f.name}: expected a list, got {type(value).__name__}")
        return tuple(cls.from_dict(item) for item in value)
    if not isinstance(value, Mapping):
        raise ValueError(f"{f.name}: expected an object, got {type(value).__name__}")
    return {key: cls.from_dict(item) for key, item in value.items()}


def _dump(f: Field[Any], value: Any) -> Any:
    if value is None:
        return None
    kind = f.metadata.get("kind", "value")
    if kind == "one":
        return value.to_dict()
    if kind == "many":
        return [item.to_dict() for item in value]
    if kind == "keyed":
        return {key: item.to_dict() for key, item in value.items()}
    if kind in ("json", "seq", "seq_or_none"):
        return thaw(value)
    return value


def _as_tuple(record: Record, name: str, value: Any) -> tuple[Any, ...]:
    if isinstance(value, (list, tuple)):
        return tuple(freeze(item) for item in value)
    raise ValueError(f"{record._where(name)}: expected a list, got {type(value).__name__}")


# ------------------------------------------------------------------------------------------------- checks
def _choice(record: Record, name: str, allowed: tuple[str, ...], nullable: bool = False) -> None:
    value = getattr(record, name)
    if value is None and nullable:
        return
    if value not in allowed:
        raise ValueError(f"{record._where(name)}: {value!r} is not one of {', '.join(allowed)}")


def _number(
    record: Record,
    name: str,
    nullable: bool = True,
    minimum: float | None = None,
    positive: bool = False,
    value: Any = MISSING,
) -> None:
    where = record._where(name)
    value = getattr(record, name) if value is MISSING else value
    if value is None:
        if not nullable:
            raise ValueError(f"{where}: a number is required, got None")
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{where}: expected a number, got {type(value).__name__}")
    try:
        finite = math.isfinite(value)
    except OverflowError:  # an integer beyond the range of a float (JSON allows 4300 digits)
        raise ValueError(
            f"{where}: an integer of {len(str(abs(value)))} digits is beyond the range of a float"
        ) from None
    if not finite:
        raise ValueError(f"{where}: {value!r} is not finite")
    if minimum is not None and value < minimum:
        raise ValueError(f"{where}: {value!r} is below {minimum:g}")
    if positive and value <= 0:
        raise ValueError(f"{where}: {value!r} is not positive")


def _numbers(record: Record, names: str, **options: Any) -> None:
    for name in names.split():
        _number(record, name, **options)


MAX_COUNT = 2**1024
"""Counts (FLOPs, calls, bytes, samples) at or above this are refused: a float cannot hold them (OverflowError)."""
MAX_DIMENSION = 2**63
"""A kernel dimension (``shape``) at or above this is refused: the readers multiply three of them as floats."""


def _count(record: Record, name: str, nullable: bool = True) -> None:
    value = getattr(record, name)
    if value is None and nullable:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{record._where(name)}: {value!r} is not a non-negative integer")
    if value >= MAX_COUNT:  # the readers compute with counts as floats; JSON allows integers of 4300 digits
        raise ValueError(
            f"{record._where(name)}: an integer of {len(str(value))} digits is beyond the range of a float"
        )


def _counts(record: Record, names: str) -> None:
    for name in names.split():
        _count(record, name)


def _text(record: Record, name: str, nullable: bool = True) -> None:
    value = getattr(record, name)
    if value is None and nullable:
        return
    if not isinstance(value, str):
        raise ValueError(f"{record._where(name)}: expected a string, got {type(value).__name__}")


def _texts(record: Record, names: str, nullable: bool = True) -> None:
    for name in names.split():
        _text(record, name, nullable)


def _flag(record: Record, name: str, nullable: bool = True) -> None:
    value = getattr(record, name)
    if value is None and nullable:
        return
    if not isinstance(value, bool):
        raise ValueError(f"{record._where(name)}: expected true/false{' or null' if nullable else ''}, got {value!r}")


def _interval(record: Record, name: str, value: Any = MISSING) -> None:
    """[low, high], finite, low <= high; None allowed."""
    value = getattr(record, name) if value is MISSING else value
    if value is None:
        return
    if not isinstance(value, tuple) or len(value) != 2:
        raise ValueError(f"{record._where(name)}: expected [low, high], got {thaw(value)!r}")
    for item in value:
        _number(record, name, nullable=False, value=item)
    if value[0] > value[1]:
        raise ValueError(f"{record._where(name)}: low {value[0]!r} is above high {value[1]!r}")


def _by_dtype(record: Record, name: str) -> Mapping[str, Any]:
    value = getattr(record, name)
    if value is None:
        return MappingProxyType({})
    if not isinstance(value, Mapping):
        raise ValueError(f"{record._where(name)}: expected an object by dtype")
    for key in value:
        if key not in DTYPES:
            raise ValueError(f"{record._where(name)}: {key!r} is not one of {', '.join(DTYPES)}")
    return value


# ------------------------------------------------------------------------------------------------- the parts
@dataclass(frozen=True, kw_only=True)
class Case(Record):
    """What a measurement measured: kernel, dtype and shape (the first keys of a ``measurements[]`` entry)."""

    ALWAYS: ClassVar[frozenset[str]] = frozenset({"family", "kernel_version", "shape_set", "flop_convention"})

    id: str = _value()
    kernel: str = _value()
    dtype: Dtype = _value()
    shape: Mapping[str, int | str] = _json(MISSING)
    flops: int = _value()
    family: Family | None = _value(None)
    kernel_version: int | None = _value(None)
    shape_set: str | None = _value(None)
    flop_convention: str | None = _value(None)
    bytes: int | None = _value(None)
    """Bytes of the operands and result of one call (memory cases: read + written), for the roofline."""

    def _check(self) -> None:
        _case_checks(self)


def _case_checks(record: Any) -> None:
    _texts(record, "id kernel", nullable=False)
    if not _ID.match(record.id):
        raise ValueError(f"{record._where('id')}: {record.id!r} is not kernel/dtype/shape")
    _choice(record, "dtype", DTYPES)
    _choice(record, "family", FAMILIES, nullable=True)
    _count(record, "flops", nullable=False)
    _count(record, "bytes")
    _count(record, "kernel_version")
    _texts(record, "shape_set flop_convention")
    if not isinstance(record.shape, Mapping):
        raise ValueError(f"{record._where('shape')}: expected an object")
    for key, value in record.shape.items():
        if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= MAX_DIMENSION:
            raise ValueError(
                f"{record._where('shape')}.{key}: an integer of {len(str(abs(value)))} digits is too large"
            )


@dataclass(frozen=True, kw_only=True)
class Check(Record):
    """A measurement's correctness check against the high-precision host reference."""

    ALWAYS: ClassVar[frozenset[str]] = frozenset(
        {"rel_error", "tolerance", "reference_dtype", "checked", "ok", "status", "reason", "reference_device"}
    )

    rel_error: float | None = _value(None)
    tolerance: float | None = _value(None)
    reference_dtype: str | None = _value(None)
    checked: str | None = _value(None)
    ok: bool | None = _value(None)
    status: str | None = _value(None)
    reason: str | None = _value(None)
    reference_device: str | None = _value(None)

    def _check(self) -> None:
        _numbers(self, "rel_error tolerance", minimum=0.0)
        _flag(self, "ok")
        _texts(self, "reference_dtype checked status reason reference_device")


@dataclass(frozen=True, kw_only=True)
class Stats(Record):
    """Statistics of a measurement's per-call seconds (see ``npucheck.stats``)."""

    n: int = _value()
    median_s: float = _value()
    ci_low_s: float = _value()
    ci_high_s: float = _value()
    ci_coverage: float = _value()
    q1_s: float = _value()
    q3_s: float = _value()
    iqr_rel: float = _value()
    mean_s: float = _value()
    min_s: float = _value()
    max_s: float = _value()

    def _check(self) -> None:
        _count(self, "n", nullable=False)
        _numbers(self, "median_s ci_low_s ci_high_s q1_s q3_s mean_s min_s max_s iqr_rel", nullable=False, minimum=0.0)
        _number(self, "ci_coverage", nullable=False, minimum=0.0)
        if self.ci_low_s > self.ci_high_s:
            raise ValueError(f"Stats: ci_low_s {self.ci_low_s!r} is above ci_high_s {self.ci_high_s!r}")
        if self.min_s > self.max_s:
            raise ValueError(f"Stats: min_s {self.min_s!r} is above max_s {self.max_s!r}")


@dataclass(frozen=True, kw_only=True)
class SourceInfo(Record):
    """The power source used (``power.source``): ``PowerSource.describe()``."""

    ALWAYS: ClassVar[frozenset[str]] = frozenset(
        {
            "quality_name",
            "uncertainty_rel",
            "counter",
            "counter_update_s",
            "power_update_s",
            "power_average_s",
            "update_measured_s",
            "update_note",
            "covers_device",
            "covers_reason",
            "detail",
        }
    )

    name: str = _value()
    scope: Scope = _value()
    quality: Quality = _value()
    quality_name: str | None = _value(None)
    uncertainty_rel: float | None = _value(None)
    counter: bool | None = _value(None)
    counter_update_s: float | None = _value(None)
    power_update_s: float | None = _value(None)
    power_average_s: float | None = _value(None)
    update_measured_s: float | None = _value(None)
    update_note: str | None = _value(None)
    covers_device: bool | None = _value(None)
    covers_reason: str | None = _value(None)
    detail: str | None = _value(None)

    def _check(self) -> None:
        _text(self, "name", nullable=False)
        _choice(self, "scope", SCOPES)
        _choice(self, "quality", QUALITIES)
        _numbers(self, "uncertainty_rel counter_update_s power_update_s power_average_s update_measured_s", minimum=0.0)
        _flag(self, "counter")
        _flag(self, "covers_device")
        _texts(self, "quality_name update_note covers_reason detail")


_INVALID_ENERGY_KEYS = frozenset(
    {
        "source",
        "scope",
        "quality",
        "uncertainty_rel",
        "window_s",
        "valid",
        "reason",
        "joules",
        "avg_watts",
        "tflops",
        "tflops_per_watt",
        "tflops_per_watt_net",
        "covers_device",
        "covers_reason",
        "warnings",
    }
)


@dataclass(frozen=True, kw_only=True)
class Energy(Record):
    """The energy over one window (``measurements[].energy``, ``power.idle``): ``EnergyWindow.result`` and what
    the runner adds (``kind``, ``case``, ``calls``, ``trials``, the timed-vs-sustained comparison)."""

    ALWAYS: ClassVar[frozenset[str]] = frozenset(
        {
            "source",
            "scope",
            "quality",
            "uncertainty_rel",
            "covers_device",
            "covers_reason",
            "window_s",
            "start_unix",
            "valid",
            "reason",
            "joules",
            "joules_counter",
            "joules_integrated",
            "counter_vs_integrated",
            "avg_watts",
            "idle_watts",
            "flops",
            "tflops",
            "tflops_per_watt",
            "tflops_per_watt_net",
            "samples",
            "dropped_samples",
            "coverage",
            "trace",
            "context_before",
            "context_after",
            "throttle",
            "context_trace",
            "warnings",
            "trace_kind",
        }
    )

    source: str = _value()
    scope: Scope = _value()
    quality: Quality = _value()
    uncertainty_rel: float | None = _value()
    window_s: float = _value()
    valid: bool = _value()
    joules: float | None = _value()
    avg_watts: float | None = _value()
    tflops: float | None = _value()
    tflops_per_watt: float | None = _value()
    reason: str | None = _value(None)
    start_unix: float | None = _value(None)
    covers_device: bool | None = _value(None)
    covers_reason: str | None = _value(None)
    joules_counter: float | None = _value(None)
    joules_integrated: float | None = _value(None)
    counter_vs_integrated: float | None = _value(None)
    idle_watts: float | None = _value(None)
    flops: float | None = _value(None)
    tflops_per_watt_net: float | None = _value(None)
    samples: int | None = _value(None)
    dropped_samples: int | None = _value(None)
    coverage: float | None = _value(None)
    trace: tuple[Any, ...] = _seq()
    trace_kind: str | None = _value(None)
    context_before: Mapping[str, Any] | None = _json()
    context_after: Mapping[str, Any] | None = _json()
    context_trace: tuple[Any, ...] = _seq()
    throttle: Mapping[str, Any] | None = _json()
    uncertainty_terms: Mapping[str, float] | None = _json()
    warnings: tuple[str, ...] = _seq()
    kind: EnergyKind | None = _value(None)
    case: str | None = _value(None)
    calls: int | None = _value(None)
    trials: tuple[Mapping[str, Any], ...] = _seq()
    malformed_lines: int | None = _value(None)
    meter_error_samples: int | None = _value(None)
    sustained_vs_timed: float | None = _value(None)
    judgeable: bool | None = _value(None)
    not_judged_reason: str | None = _value(None)

    @classmethod
    def invalid(cls, reason: str, source: SourceInfo | Mapping[str, Any]) -> Energy:
        """The energy object of a window that could not run (as ``npucheck.measure.energy.invalid_energy`` writes it):
        ``source`` is the power source's description (``PowerSource.describe()`` or :class:`SourceInfo`)."""
        info = source if isinstance(source, SourceInfo) else SourceInfo.from_dict(source)
        return cls(
            source=info.name,
            scope=info.scope,
            quality=info.quality,
            uncertainty_rel=info.uncertainty_rel,
            window_s=0.0,
            valid=False,
            reason=reason,
            joules=None,
            avg_watts=None,
            tflops=None,
            tflops_per_watt=None,
            covers_device=info.covers_device,
            covers_reason=info.covers_reason,
            present_keys=_INVALID_ENERGY_KEYS,
        )

    def _check(self) -> None:
        _text(self, "source", nullable=False)
        _choice(self, "scope", SCOPES)
        _choice(self, "quality", QUALITIES)
        _choice(self, "kind", ENERGY_KINDS, nullable=True)
        _flag(self, "valid", nullable=False)
        _flag(self, "covers_device")
        _flag(self, "judgeable")
        _number(self, "window_s", nullable=False, minimum=0.0)
        _numbers(
            self,
            "uncertainty_rel joules joules_counter joules_integrated avg_watts idle_watts flops tflops "
            "tflops_per_watt coverage",
            minimum=0.0,
        )
        _numbers(self, "start_unix counter_vs_integrated tflops_per_watt_net sustained_vs_timed")
        _counts(self, "samples dropped_samples calls malformed_lines meter_error_samples")
        _texts(self, "reason covers_reason trace_kind case not_judged_reason")
        if not self.valid and not self.reason:
            raise ValueError("Energy: an invalid window needs its reason")


@dataclass(frozen=True, kw_only=True)
class Measurement(Record):
    """One ``measurements[]`` (or ``confirmations[]``) entry: the case, what happened, the raw samples, the
    figures and the evidence around them."""

    ALWAYS: ClassVar[frozenset[str]] = frozenset(
        {
            "family",
            "kernel_version",
            "shape_set",
            "flop_convention",
            "reason",
            "correct",
            "error",
            "check",
            "samples_s",
            "calls_per_sample",
            "warmup_calls",
            "timing_method",
            "cache_flush_bytes",
            "stats",
            "tflops",
            "tflops_ci",
            "foreign_cpu_cores",
            "wall_s",
            "warnings",
            "energy",
            "cache_state",
            "timed_calls",
            "minor_faults",
            "minor_faults_per_call",
            "device_state",
            "throttled",
        }
    )

    id: str = _value()
    kernel: str = _value()
    dtype: Dtype = _value()
    shape: Mapping[str, int | str] = _json(MISSING)
    flops: int = _value()
    status: Status = _value()
    family: Family | None = _value(None)
    kernel_version: int | None = _value(None)
    shape_set: str | None = _value(None)
    flop_convention: str | None = _value(None)
    reason: str | None = _value(None)
    correct: bool | None = _value(None)
    error: str | None = _value(None)
    check: Check | None = _one("Check")
    samples_s: tuple[float, ...] = _seq()
    calls_per_sample: int | None = _value(None)
    warmup_calls: int | None = _value(None)
    timing_method: str | None = _value(None)
    cache_flush_bytes: int | None = _value(None)
    stats: Stats | None = _one("Stats")
    tflops: float | None = _value(None)
    tflops_ci: tuple[float, float] | None = field(default=None, metadata={"kind": "seq_or_none"})
    foreign_cpu_cores: float | None = _value(None)
    predicted_s: float | None = _value(None)
    wall_s: float | None = _value(None)
    warnings: tuple[str, ...] = _seq()
    energy: Energy | None = _one("Energy")
    cache_state: CacheState | None = _value(None)
    timed_calls: int | None = _value(None)
    minor_faults: int | None = _value(None)
    minor_faults_per_call: float | None = _value(None)
    device_state: Mapping[str, Any] | None = _json()
    throttled: bool | None = _value(None)
    role: Role | None = _value(None)
    confirms: str | None = _value(None)
    host_clock_tflops: float | None = _value(None)
    events_vs_host_clock: float | None = _value(None)
    bytes: int | None = _value(None)
    gbps: float | None = _value(None)
    """Memory cases: ``bytes / median_s / 1e9`` (GB/s, bytes read + written), ``gbps_ci`` as ``tflops_ci``."""
    gbps_ci: tuple[float, float] | None = field(default=None, metadata={"kind": "seq_or_none"})
    backend: Mapping[str, Any] | None = _json()
    """The library backend that ran the kernel, where known: ``{"name", "method"}`` (attention: the SDPA backend)."""

    @property
    def case(self) -> Case:
        """The case measured."""
        return Case(
            id=self.id,
            kernel=self.kernel,
            dtype=self.dtype,
            shape=self.shape,
            flops=self.flops,
            family=self.family,
            kernel_version=self.kernel_version,
            shape_set=self.shape_set,
            flop_convention=self.flop_convention,
            bytes=self.bytes,
        )

    def _check(self) -> None:
        _case_checks(self)
        _number(self, "gbps", minimum=0.0)
        _interval(self, "gbps_ci")
        if self.gbps_ci is not None and self.gbps_ci[0] < 0:
            raise ValueError(f"Measurement.gbps_ci: {self.gbps_ci[0]!r} is negative")
        _choice(self, "status", STATUSES)
        _choice(self, "cache_state", CACHE_STATES, nullable=True)
        _choice(self, "role", ROLES, nullable=True)
        _flag(self, "correct")
        _flag(self, "throttled")
        _texts(self, "reason error timing_method confirms")
        for value in self.samples_s:
            _number(self, "samples_s", nullable=False, positive=True, value=value)
        _counts(self, "calls_per_sample warmup_calls cache_flush_bytes timed_calls minor_faults")
        _numbers(
            self, "tflops predicted_s wall_s minor_faults_per_call host_clock_tflops events_vs_host_clock", minimum=0.0
        )
        _number(self, "foreign_cpu_cores")
        _interval(self, "tflops_ci")
        if self.tflops_ci is not None and self.tflops_ci[0] < 0:
            raise ValueError(f"Measurement.tflops_ci: {self.tflops_ci[0]!r} is negative")
        if self.role is not None and self.confirms is None:
            raise ValueError("Measurement: a confirmation needs the id it confirms")


@dataclass(frozen=True, kw_only=True)
class SupportCheck(Record):
    """One check of a support family (``support.<family>.checks[]``)."""

    ALWAYS: ClassVar[frozenset[str]] = frozenset({"ok", "status", "rel_error", "tolerance", "error", "reason"})

    name: str = _value()
    ok: bool | None = _value(None)
    status: str | None = _value(None)
    rel_error: float | None = _value(None)
    tolerance: float | None = _value(None)
    error: str | None = _value(None)
    reason: str | None = _value(None)

    def _check(self) -> None:
        _text(self, "name", nullable=False)
        _flag(self, "ok")
        _numbers(self, "rel_error tolerance", minimum=0.0)
        _texts(self, "status error reason")


@dataclass(frozen=True, kw_only=True)
class SupportFamily(Record):
    """The terminal-chip support check of one family (``support.<family>``)."""

    ALWAYS: ClassVar[frozenset[str]] = frozenset({"supported", "dtype", "device", "checks", "reason"})

    supported: bool | None = _value(None)
    dtype: Dtype | None = _value(None)
    device: str | None = _value(None)
    checks: tuple[SupportCheck, ...] = _many("SupportCheck")
    reason: str | None = _value(None)

    def _check(self) -> None:
        _flag(self, "supported")
        _choice(self, "dtype", DTYPES, nullable=True)
        _texts(self, "device reason")


@dataclass(frozen=True, kw_only=True)
class StoredDatasheet(Record):
    """The datasheet matched to the device (``device.datasheet``), as ``npucheck.datasheets.Datasheet.to_dict``
    stores it: figures per torch device (``tflops``, ``peak_tflops``, ``ceiling_tflops``, ``power_w``) and per
    part (``*_per_part``), with the source of each figure."""

    part: str | None = _value(None)
    vendor: str | None = _value(None)
    file: str | None = _value(None)
    builtin: bool | None = _value(None)
    devices_per_part: int | None = _value(None)
    tflops: Mapping[str, float] = _blob_map()
    peak_tflops: Mapping[str, float] = _blob_map()
    ceiling_tflops: Mapping[str, float] = _blob_map()
    ceiling_factor: float | None = _value(None)
    tflops_per_part: Mapping[str, float] = _blob_map()
    tflops_per_watt: Mapping[str, float] = _blob_map()
    power_w: float | None = _value(None)
    power_w_per_part: float | None = _value(None)
    power_kind: str | None = _value(None)
    power_covers: str | None = _value(None)
    memory_bandwidth_gbps: float | None = _value(None)
    memory_bandwidth_gbps_per_part: float | None = _value(None)
    sources: Mapping[str, str] = _blob_map()
    notes: Mapping[str, str] = _blob_map()
    note: str | None = _value(None)
    match_caveat: str | None = _value(None)
    matched_pattern: str | None = _value(None)
    match_reason: str | None = _value(None)

    def peak(self, dtype: str) -> float | None:
        """The datasheet peak of a measured dtype, TFLOPS per device; None when the sheet has none."""
        return _positive(self.peak_tflops.get(dtype) if self.peak_tflops else None)

    def ceiling(self, dtype: str) -> float | None:
        """The highest TFLOPS a correct measurement of ``dtype`` can reach on this device; None when unknown."""
        return _positive(self.ceiling_tflops.get(dtype) if self.ceiling_tflops else None)

    def _check(self) -> None:
        _texts(self, "part vendor file power_kind power_covers note match_caveat matched_pattern match_reason")
        _flag(self, "builtin")
        _count(self, "devices_per_part")
        _numbers(
            self,
            "ceiling_factor power_w power_w_per_part memory_bandwidth_gbps memory_bandwidth_gbps_per_part",
            minimum=0.0,
        )
        # The readers index these maps by dtype and format their values: a hand-edited file must not reach them
        # with another type (``"peak_tflops": true`` used to end `show` in a TypeError). null reads as empty.
        for name in ("tflops", "peak_tflops", "ceiling_tflops", "tflops_per_part", "tflops_per_watt"):
            for value in self._map(name).values():
                _number(self, name, minimum=0.0, value=value)
        for name in ("sources", "notes"):
            for key, value in self._map(name).items():
                if value is not None and not isinstance(value, str):
                    raise ValueError(f"{self._where(name)}.{key}: expected a string, got {type(value).__name__}")

    def _map(self, name: str) -> Mapping[str, Any]:
        value = getattr(self, name)
        if value is None:
            return {}
        if not isinstance(value, Mapping):
            raise ValueError(f"{self._where(name)}: expected an object, got {type(value).__name__}")
        return value


def _positive(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0 else None


@dataclass(frozen=True, kw_only=True)
class DeviceInfo(Record):
    """The device under test (``device``)."""

    ALWAYS: ClassVar[frozenset[str]] = frozenset({"datasheet", "datasheet_reason"})

    backend: str = _value()
    id: str = _value()
    name: str = _value()
    runtime: str | None = _value(None)
    index: int | None = _value(None)
    timing_method: str | None = _value(None)
    validated: bool | None = _value(None)
    properties: Mapping[str, Any] | None = _json()
    visible_devices: Mapping[str, Any] | None = _json()
    datasheet: StoredDatasheet | None = _one("StoredDatasheet")
    datasheet_reason: str | None = _value(None)

    def _check(self) -> None:
        _texts(self, "backend id name", nullable=False)
        _texts(self, "runtime timing_method datasheet_reason")
        _count(self, "index")
        _flag(self, "validated")


@dataclass(frozen=True, kw_only=True)
class Settings(Record):
    """The run's settings (``settings``); keys a suite adds later are kept in ``extra``."""

    ALWAYS: ClassVar[frozenset[str]] = frozenset(
        {"suite", "seed", "kernels", "dtypes", "cache_flush_bytes", "confidence", "targets"}
    )

    suite: str | None = _value(None)
    seed: int | None = _value(None)
    kernels: tuple[str, ...] = _seq()
    dtypes: tuple[Dtype, ...] = _seq()
    suite_budget_s: float | None = _value(None)
    case_budget_s: float | None = _value(None)
    case_target_s: float | None = _value(None)
    device_warmup_s: float | None = _value(None)
    accelerator_warmup_s: float | None = _value(None)
    min_samples: int | None = _value(None)
    max_samples: int | None = _value(None)
    min_sample_s: float | None = _value(None)
    power_window_s: float | None = _value(None)
    idle_s: float | None = _value(None)
    power_trials: int | None = _value(None)
    cache_flush_bytes: int | None = _value(None)
    confidence: float | None = _value(None)
    targets: tuple[str, ...] = _seq()
    probe_tflops: Mapping[str, float] | None = _json()
    probe_notes: Mapping[str, str] | None = _json()
    device_warmup: Mapping[str, Any] | None = _json()
    selected: Mapping[str, Any] | None = _json()
    """What ``--kernels`` / ``--dtypes`` narrowed the suite to (``kernels``, ``dtypes``: lists or null); None when
    the whole suite ran."""

    def _check(self) -> None:
        _text(self, "suite")
        if self.seed is not None and (isinstance(self.seed, bool) or not isinstance(self.seed, int)):
            raise ValueError(f"Settings.seed: {self.seed!r} is not an integer")
        for name in self.dtypes:
            if name not in DTYPES:
                raise ValueError(f"Settings.dtypes: {name!r} is not one of {', '.join(DTYPES)}")
        _numbers(
            self,
            "suite_budget_s case_budget_s case_target_s device_warmup_s accelerator_warmup_s "
            "min_sample_s power_window_s idle_s",
            minimum=0.0,
        )
        _counts(self, "min_samples max_samples power_trials cache_flush_bytes")
        _number(self, "confidence", minimum=0.0)
        for rate in _by_dtype(self, "probe_tflops").values():
            _number(self, "probe_tflops", nullable=False, minimum=0.0, value=rate)
        _by_dtype(self, "probe_notes")


@dataclass(frozen=True, kw_only=True)
class PowerInfo(Record):
    """The power section (``power``): the source used, why others were not, window settings, the idle window."""

    ALWAYS: ClassVar[frozenset[str]] = frozenset(
        {"spec", "source", "notes", "window_s", "sweep_window_s", "sample_hz", "trials", "idle"}
    )

    spec: str | None = _value()
    source: SourceInfo | None = _one("SourceInfo", required=True)
    notes: tuple[str, ...] = _seq(required=True)
    window_s: float | None = _value(None)
    sweep_window_s: float | None = _value(None)
    sample_hz: float | None = _value(None)
    trials: int | None = _value(None)
    idle: Energy | None = _one("Energy")

    def _check(self) -> None:
        _text(self, "spec")
        _numbers(self, "window_s sweep_window_s sample_hz", minimum=0.0)
        _count(self, "trials")


@dataclass(frozen=True, kw_only=True)
class Load(Record):
    """Other load seen before and during the run (``load``)."""

    ALWAYS: ClassVar[frozenset[str]] = frozenset({"before", "during_max_foreign_cpu_cores"})

    before: Mapping[str, Any] | None = _json()
    during_max_foreign_cpu_cores: float | None = _value(None)

    def _check(self) -> None:
        _number(self, "during_max_foreign_cpu_cores")


@dataclass(frozen=True, kw_only=True)
class Peak(Record):
    """One dtype's peak (``summary.peak.<dtype>``): the selected case, its interval, its confirmation."""

    ALWAYS: ClassVar[frozenset[str]] = frozenset(
        {
            "case",
            "tflops",
            "ci_low",
            "ci_high",
            "confirmed_tflops",
            "confirmed_ci",
            "confirmation_status",
            "sustained_tflops",
        }
    )

    case: str | None = _value(None)
    tflops: float | None = _value(None)
    ci_low: float | None = _value(None)
    ci_high: float | None = _value(None)
    confirmed_tflops: float | None = _value(None)
    confirmed_ci: tuple[float, float] | None = field(default=None, metadata={"kind": "seq_or_none"})
    confirmation_status: Status | None = _value(None)
    sustained_tflops: float | None = _value(None)

    def _check(self) -> None:
        _text(self, "case")
        written = (
            bool(self.extra)
            or bool(self.present_keys)
            or any(getattr(self, name) is not None for name in ("tflops", "ci_low", "ci_high", "confirmed_tflops"))
        )
        if self.case is None and written:  # the readers show the peak's case (`{"": null}` used to end `show`)
            raise ValueError("Peak.case: a peak that is not empty must name its case (kernel/dtype/shape)")
        if self.case is not None and not _ID.match(self.case):
            raise ValueError(f"Peak.case: {self.case!r} is not kernel/dtype/shape")
        _numbers(self, "tflops ci_low ci_high confirmed_tflops sustained_tflops", minimum=0.0)
        if self.ci_low is not None and self.ci_high is not None and self.ci_low > self.ci_high:
            raise ValueError(f"Peak: ci_low {self.ci_low!r} is above ci_high {self.ci_high!r}")
        _interval(self, "confirmed_ci")
        _choice(self, "confirmation_status", STATUSES, nullable=True)


@dataclass(frozen=True, kw_only=True)
class Summary(Record):
    """Headline figures (``summary``): peak TFLOPS and TFLOPS/W per dtype, with their evidence, and counts."""

    ALWAYS: ClassVar[frozenset[str]] = frozenset(
        {
            "peak_tflops",
            "peak",
            "tflops_per_watt",
            "tflops_per_watt_ci",
            "tflops_per_watt_quality",
            "tflops_per_watt_scope",
            "tflops_per_watt_net",
            "tflops_per_watt_covers",
            "tflops_per_watt_covers_reason",
            "tflops_per_watt_not_judged",
            "power",
            "counts",
        }
    )

    peak_tflops: Mapping[str, float] = _blob_map()
    peak: Mapping[str, Peak] = _keyed("Peak")
    tflops_per_watt: Mapping[str, float | None] = _blob_map()
    tflops_per_watt_ci: Mapping[str, tuple[float, float]] = _blob_map()
    tflops_per_watt_quality: Mapping[str, Quality] = _blob_map()
    tflops_per_watt_scope: Mapping[str, Scope] = _blob_map()
    tflops_per_watt_net: Mapping[str, float | None] = _blob_map()
    tflops_per_watt_covers: Mapping[str, bool | None] = _blob_map()
    tflops_per_watt_covers_reason: Mapping[str, str] = _blob_map()
    tflops_per_watt_not_judged: Mapping[str, str] = _blob_map()
    power: Mapping[str, Mapping[str, Any]] = _blob_map()
    power_note: str | None = _value(None)
    counts: Mapping[str, int] = _blob_map()
    peak_gbps: Mapping[str, float] = _blob_map()
    """Best median GB/s of a correct memory case per dtype (``npucheck.bandwidth.peak_memory_cases``)."""

    def _check(self) -> None:
        for value in _by_dtype(self, "peak_gbps").values():
            _number(self, "peak_gbps", nullable=False, minimum=0.0, value=value)
        for value in _by_dtype(self, "peak_tflops").values():
            _number(self, "peak_tflops", nullable=False, minimum=0.0, value=value)
        _by_dtype(self, "peak")
        for value in _by_dtype(self, "tflops_per_watt").values():
            _number(self, "tflops_per_watt", minimum=0.0, value=value)
        for value in _by_dtype(self, "tflops_per_watt_ci").values():
            _interval(self, "tflops_per_watt_ci", value=value)
        for value in _by_dtype(self, "tflops_per_watt_quality").values():
            if value not in QUALITIES:
                raise ValueError(f"Summary.tflops_per_watt_quality: {value!r} is not one of {', '.join(QUALITIES)}")
        for value in _by_dtype(self, "tflops_per_watt_scope").values():
            if value not in SCOPES:
                raise ValueError(f"Summary.tflops_per_watt_scope: {value!r} is not one of {', '.join(SCOPES)}")
        for value in _by_dtype(self, "tflops_per_watt_net").values():
            _number(self, "tflops_per_watt_net", value=value)
        for name in ("tflops_per_watt_covers", "tflops_per_watt_covers_reason", "tflops_per_watt_not_judged", "power"):
            _by_dtype(self, name)
        _text(self, "power_note")
        counts = self.counts if self.counts is not None else {}
        for status, count in counts.items():
            if status not in STATUSES:
                raise ValueError(f"Summary.counts: {status!r} is not one of {', '.join(STATUSES)}")
            if isinstance(count, bool) or not isinstance(count, int) or count < 0:
                raise ValueError(f"Summary.counts.{status}: {count!r} is not a non-negative integer")


@dataclass(frozen=True, kw_only=True)
class CriterionResult(Record):
    """One criterion's verdict (``verdicts[].criteria[]``)."""

    ALWAYS: ClassVar[frozenset[str]] = frozenset({"unit", "lower", "upper"})

    metric: str = _value()
    op: Op = _value()
    threshold: float = _value()
    measured: float | None = _value()
    status: VerdictStatus = _value()
    reason: str = _value()
    unit: str | None = _value(None)
    lower: float | None = _value(None)
    upper: float | None = _value(None)

    def _check(self) -> None:
        _texts(self, "metric reason", nullable=False)
        _text(self, "unit")
        _choice(self, "op", OPS)
        _choice(self, "status", VERDICT_STATUSES)
        _number(self, "threshold", nullable=False)
        _numbers(self, "measured lower upper")


@dataclass(frozen=True, kw_only=True)
class Verdict(Record):
    """One target's verdict (``verdicts[]``)."""

    ALWAYS: ClassVar[frozenset[str]] = frozenset({"title"})

    target: str = _value()
    status: VerdictStatus = _value()
    criteria: tuple[CriterionResult, ...] = _many("CriterionResult", required=True)
    title: str | None = _value(None)

    def _check(self) -> None:
        _text(self, "target", nullable=False)
        _text(self, "title")
        _choice(self, "status", VERDICT_STATUSES)


# ------------------------------------------------------------------------------------------------- power caps
@dataclass(frozen=True, kw_only=True)
class PowerCapStep(Record):
    """One cap of the power-cap sweep (``power_caps.steps[]``): the limit asked for, read back and enforced (W),
    and the headline window run at it (absent when the cap could not be set or verified: ``error`` says why)."""

    label: str = _value()
    requested_w: float = _value()
    read_back_w: float | None = _value(None)
    enforced_w: float | None = _value(None)
    verified: bool | None = _value(None)
    error: str | None = _value(None)
    energy: Energy | None = _one("Energy")

    def _check(self) -> None:
        _text(self, "label", nullable=False)
        _number(self, "requested_w", nullable=False, minimum=0.0)
        _numbers(self, "read_back_w enforced_w", minimum=0.0)
        _flag(self, "verified")
        _text(self, "error")


@dataclass(frozen=True, kw_only=True)
class PowerCapRestore(Record):
    """How the original limit was put back after the sweep (``power_caps.restore``); ``verified``: read back."""

    target_w: float = _value()
    verified: bool = _value()
    attempts: int = _value()
    read_back_w: float | None = _value(None)
    enforced_w: float | None = _value(None)
    error: str | None = _value(None)

    def _check(self) -> None:
        _number(self, "target_w", nullable=False, minimum=0.0)
        _numbers(self, "read_back_w enforced_w", minimum=0.0)
        _flag(self, "verified", nullable=False)
        _count(self, "attempts", nullable=False)
        _text(self, "error")


@dataclass(frozen=True, kw_only=True)
class PowerCaps(Record):
    """The efficiency-vs-power-cap sweep (``power_caps``, written only by ``run --power-caps``): the device's
    limits (W), each cap's window, the restore. ``best``: the cap with the highest TFLOPS/W (readers recompute it
    with :func:`best_cap`). Evidence beside the verdicts, which are judged at the run's own limit."""

    ALWAYS: ClassVar[frozenset[str]] = frozenset({"case", "dtype", "restore", "best", "warnings"})

    api: str = _value()
    original_w: float = _value()
    default_w: float = _value()
    min_w: float = _value()
    max_w: float = _value()
    steps: tuple[PowerCapStep, ...] = _many("PowerCapStep", required=True)
    case: str | None = _value(None)
    dtype: str | None = _value(None)
    full_means: str | None = _value(None)
    settle_s: float | None = _value(None)
    restore: PowerCapRestore | None = _one("PowerCapRestore")
    best: str | None = _value(None)
    warnings: tuple[str, ...] = _seq()

    def _check(self) -> None:
        _choice(self, "api", ("nvml", "amdsmi"))
        _numbers(self, "original_w default_w min_w max_w", nullable=False, minimum=0.0)
        _number(self, "settle_s", minimum=0.0)
        _texts(self, "case dtype full_means best")


def best_cap(caps: PowerCaps) -> PowerCapStep | None:
    """The verified cap whose valid, judgeable window has the highest TFLOPS/W, or None when no cap has one."""
    measured = [
        (step.energy.tflops_per_watt, index, step)
        for index, step in enumerate(caps.steps)
        if step.verified
        and step.energy is not None
        and step.energy.valid
        and step.energy.judgeable is not False
        and step.energy.tflops_per_watt is not None
    ]
    return max(measured, key=lambda item: (item[0], -item[1]))[2] if measured else None


_UTC = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?Z$")


@dataclass(frozen=True, kw_only=True)
class ResultProfile(Record):
    """One ``npucheck run``: the whole result file (schema version 2)."""

    ALWAYS: ClassVar[frozenset[str]] = frozenset(
        {"finished_utc", "command", "load", "confirmations", "support", "warnings"}
    )

    schema_version: int = _value()
    npucheck_version: str = _value()
    created_utc: str = _value()
    interrupted: bool = _value()
    device: DeviceInfo = _one("DeviceInfo", required=True)
    environment: Mapping[str, Any] = _json(MISSING)
    settings: Settings = _one("Settings", required=True)
    power: PowerInfo = _one("PowerInfo", required=True)
    measurements: tuple[Measurement, ...] = _many("Measurement", required=True)
    summary: Summary = _one("Summary", required=True)
    verdicts: tuple[Verdict, ...] = _many("Verdict", required=True)
    finished_utc: str | None = _value(None)
    wall_s: float | None = _value(None)
    command: tuple[str, ...] = _seq()
    load: Load | None = _one("Load")
    confirmations: tuple[Measurement, ...] = _many("Measurement")
    support: Mapping[str, SupportFamily] = _keyed("SupportFamily")
    warnings: tuple[str, ...] = _seq()
    power_caps: PowerCaps | None = _one("PowerCaps")

    def _check(self) -> None:
        if self.schema_version != SCHEMA_VERSION or isinstance(self.schema_version, bool):
            raise ValueError(
                f"ResultProfile.schema_version: {self.schema_version!r} is not {SCHEMA_VERSION} "
                "(older files are migrated by npucheck.store.load_result)"
            )
        _text(self, "npucheck_version", nullable=False)
        for name in ("created_utc", "finished_utc"):
            value = getattr(self, name)
            if value is not None and not (isinstance(value, str) and _UTC.match(value)):
                raise ValueError(f"ResultProfile.{name}: {value!r} is not an ISO 8601 UTC time ending in Z")
        if self.created_utc is None:
            raise ValueError("ResultProfile.created_utc is required")
        _flag(self, "interrupted", nullable=False)
        _number(self, "wall_s", minimum=0.0)
        for name in ("device", "settings", "power", "summary"):
            if getattr(self, name) is None:
                raise ValueError(f"ResultProfile.{name} is required")
        if not isinstance(self.environment, Mapping):
            raise ValueError("ResultProfile.environment: expected an object")
        for family in self.support or {}:
            if family not in FAMILIES and family not in SUPPORT_FAMILIES:  # "transformer" is a support family only
                known = ", ".join(dict.fromkeys((*FAMILIES, *SUPPORT_FAMILIES)))
                raise ValueError(f"ResultProfile.support: {family!r} is not one of {known}")
        for confirmation in self.confirmations or ():
            if confirmation.role is None:
                raise ValueError(f"ResultProfile.confirmations: {confirmation.id} has no role 'confirmation'")


def as_profile(profile: ResultProfile | Mapping[str, Any]) -> ResultProfile:
    """The profile as a :class:`ResultProfile`: readers accept either a model object or a schema-v2 dict (as
    ``npucheck.store.load_result`` returns it, which has already checked that it fits the model).

    Raises:
        ResultFileError: a dict that does not fit the model (one line, exit code 2 in the CLI).
    """
    if isinstance(profile, ResultProfile):
        return profile
    try:
        return ResultProfile.from_dict(profile)
    except (ValueError, TypeError, KeyError) as e:
        raise ResultFileError(f"not a valid result profile: {e}") from e
