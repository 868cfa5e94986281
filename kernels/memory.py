"""Device-memory bandwidth: a copy (``dst.copy_(src)``) and a STREAM-style triad (``a = b + s·c``).

Bytes moved per call are counted as read + written, STREAM's convention (McCalpin; no write-allocate traffic
counted): copy 2·N·elem, triad 3·N·elem, N elements per array, ``elem`` the dtype's size. FLOPs: copy 0, triad
2·N (a multiply and an add per element), so a triad has an arithmetic intensity (FLOPs per byte) and sits on the
roofline; a copy has none and only sets the bandwidth ceiling.

Shapes are per-array sizes in MiB (``mib``), so the bytes do not change with the dtype. Each array must be at
least :data:`LLC_MULTIPLE` times the device's last-level cache (the CPU's highest-level cache from sysfs, summed
over distinct caches; an accelerator's ``L2_cache_size``); a case whose arrays are smaller raises
:class:`FitsInCache` (the runner skips it with that reason): it would measure the cache, not device memory.

The check is exact: a copy must reproduce its source bit for bit, and a triad must equal the float64 host
reference of ``b + s·c`` rounded once to the dtype. The scalar ``s`` is 2.0, a power of two, so ``s·c`` is exact
in every precision and the only rounding is that of the sum, whether the device computes in the dtype, in float32
(torch's "opmath" for fp16/bf16) or with a fused multiply-add.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from npucheck.kernels.base import Check, Workload, randn, sample_indices, tensor_bytes, to_host

__all__ = [
    "build_copy",
    "build_triad",
    "bytes_moved",
    "DEFAULT_LLC_BYTES",
    "elements",
    "FAMILY",
    "FitsInCache",
    "FLOP_CONVENTIONS",
    "flops",
    "label",
    "last_level_cache_bytes",
    "LLC_MULTIPLE",
    "NAMES",
    "SCALAR",
    "SHAPE_SETS",
    "VERIFY_ELEMENTS",
    "VERSION",
]

NAMES = ("copy", "triad")
FAMILY = "memory"
VERSION = 1
FLOP_CONVENTIONS = {"copy": "0 (bytes: 2*n*elem)", "triad": "2*n (bytes: 3*n*elem)"}
ARRAYS = {"copy": 2, "triad": 3}
"""Arrays each call reads or writes once: copy reads src and writes dst; triad reads b and c and writes a."""
SCALAR = 2.0
LLC_MULTIPLE = 4
"""Each array must be at least this many times the last-level cache (STREAM's rule of thumb)."""
DEFAULT_LLC_BYTES = 256 * 2**20
"""Assumed when the cache size cannot be read (no sysfs, a backend without ``L2_cache_size``): larger than the
last-level cache of any CPU or GPU npucheck knows (AMD MI300X's Infinity Cache is 256 MiB), so an unknown cache
can only make a case skip, never let it measure the cache."""
VERIFY_ELEMENTS = 1 << 20
"""Elements of the output compared with the host reference (random positions, plus the first and the last)."""
_ELEMENT_BYTES = {"fp16": 2, "bf16": 2, "fp32": 4}


class FitsInCache(ValueError):
    """The case's arrays are not well past the last-level cache: it would measure the cache."""


def elements(shape: Mapping[str, Any], dtype_name: str) -> int:
    """Elements per array: ``mib`` MiB in the dtype."""
    return int(shape["mib"]) * 2**20 // _ELEMENT_BYTES[dtype_name]


def flops(kernel: str, shape: Mapping[str, Any], dtype_name: str = "fp32") -> int:
    """Copy 0; triad 2·N (N elements per array)."""
    return 0 if kernel == "copy" else 2 * elements(shape, dtype_name)


def bytes_moved(kernel: str, shape: Mapping[str, Any], dtype_name: str) -> int:
    """Bytes read + written per call: copy 2·N·elem, triad 3·N·elem."""
    return ARRAYS[kernel] * elements(shape, dtype_name) * _ELEMENT_BYTES[dtype_name]


def label(shape: Mapping[str, Any]) -> str:
    return f"mib{shape['mib']}"


SHAPE_SETS: dict[str, list[dict[str, Any]]] = {
    "stream": [{"mib": mib} for mib in (128, 256, 1024, 4096)],
}
"""MiB per array: 128 MiB is 4x a 32 MiB L3 (a desktop or small-VM CPU), 256 MiB 4x a 64 MiB cache (H100/H200's
50 MiB L2), 1 GiB 4x AMD MI300X's 256 MiB Infinity Cache; 4 GiB for the full suite. A size not 4x past the
device's cache is skipped at no cost (before anything is allocated), so suites list two sizes."""


# ----------------------------------------------------------------------------------------------------- cache size
def last_level_cache_bytes(device: torch.device, sysfs_root: str | Path = "/sys") -> tuple[int, str]:
    """The device's last-level cache in bytes and where the figure came from.

    CPU: the highest cache level of ``/sys/devices/system/cpu/cpu*/cache/index*`` (Data or Unified), each distinct
    cache (by ``shared_cpu_list``) counted once and summed, so two sockets' L3s count twice. An accelerator:
    ``torch.<backend>.get_device_properties(device).L2_cache_size`` (bytes; CUDA and ROCm report it). Else
    :data:`DEFAULT_LLC_BYTES`."""
    if device.type == "cpu":
        found = _sysfs_llc_bytes(Path(sysfs_root))
        if found:
            return found, "sysfs cpu cache"
        return DEFAULT_LLC_BYTES, "default (no sysfs cache information)"
    try:
        properties = torch.get_device_module(device.type).get_device_properties(device)
        l2 = int(getattr(properties, "L2_cache_size", 0) or 0)
    except Exception:  # noqa: BLE001 - a backend without the API (MPS, plugins): the default decides
        l2 = 0
    if l2 > 0:
        return l2, f"torch.{device.type}.get_device_properties().L2_cache_size"
    return DEFAULT_LLC_BYTES, f"default ({device.type} reports no L2_cache_size)"


def _sysfs_llc_bytes(root: Path) -> int:
    caches: dict[int, dict[str, int]] = {}
    for index in sorted((root / "devices" / "system" / "cpu").glob("cpu[0-9]*/cache/index[0-9]*")):
        try:
            kind = (index / "type").read_text().strip()
            level = int((index / "level").read_text().strip())
            size = _size_bytes((index / "size").read_text().strip())
            shared = (index / "shared_cpu_list").read_text().strip()
        except (OSError, ValueError):
            continue
        if kind in ("Data", "Unified") and size > 0:
            caches.setdefault(level, {})[shared] = size
    if not caches:
        return 0
    return sum(caches[max(caches)].values())


def _size_bytes(text: str) -> int:
    units = {"K": 2**10, "M": 2**20, "G": 2**30}
    if text and text[-1].upper() in units:
        return int(text[:-1]) * units[text[-1].upper()]
    return int(text)


def _require_past_cache(shape: Mapping[str, Any], device: torch.device) -> None:
    llc, source = last_level_cache_bytes(device)
    array = int(shape["mib"]) * 2**20
    if array < LLC_MULTIPLE * llc:
        raise FitsInCache(
            f"arrays of {shape['mib']} MiB are not {LLC_MULTIPLE}x the last-level cache of "
            f"{llc / 2**20:.4g} MiB ({source}): the case would measure the cache, not device memory"
        )


# ----------------------------------------------------------------------------------------------------- workloads
def _exact_check(out: torch.Tensor, reference: Any, generator: torch.Generator, dtype_name: str, what: str) -> Check:
    """Compare ``VERIFY_ELEMENTS`` positions of ``out`` with ``reference(positions)`` (host, in the dtype): any
    difference is wrong (tolerance 0); NaN/Inf compare unequal."""
    n = out.numel()
    picked = sample_indices(n, VERIFY_ELEMENTS, generator)
    positions = torch.unique(torch.cat([picked, torch.tensor([0, n - 1])]))
    got = to_host(out.index_select(0, positions.to(out.device))).to(torch.float64)
    want = reference(positions).to(torch.float64)
    mismatched = int((got != want).sum())
    norm = float(torch.linalg.vector_norm(want))
    diff = float(torch.linalg.vector_norm(torch.nan_to_num(got - want, nan=float("inf"))))
    rel = 0.0 if mismatched == 0 else (diff / norm if norm > 0 and diff != float("inf") else 1.0)
    if mismatched and rel == 0.0:
        rel = 1.0
    return Check(
        rel_error=rel,
        tolerance=0.0,
        reference_dtype="float64",
        checked=f"{len(positions)} of {n} elements, exact ({what}); {mismatched} differ",
    )


def build_copy(
    shape: Mapping[str, Any], dtype: torch.dtype, dtype_name: str, device: torch.device, generator: torch.Generator
) -> Workload:
    _require_past_cache(shape, device)
    n = elements(shape, dtype_name)
    src = randn((n,), dtype, device, generator)
    dst = torch.empty((n,), dtype=dtype, device=device)

    def run() -> torch.Tensor:
        return dst.copy_(src)

    def verify() -> Check:
        dst.zero_()  # a copy that did nothing must not pass on what a previous call left
        result = run()

        def reference(positions: torch.Tensor) -> torch.Tensor:
            return to_host(src.index_select(0, positions.to(src.device)))

        return _exact_check(result, reference, generator, dtype_name, "bit for bit")

    return Workload(run=run, verify=verify, footprint_bytes=tensor_bytes(src, dst), keep=[src, dst])


def build_triad(
    shape: Mapping[str, Any], dtype: torch.dtype, dtype_name: str, device: torch.device, generator: torch.Generator
) -> Workload:
    _require_past_cache(shape, device)
    n = elements(shape, dtype_name)
    b = randn((n,), dtype, device, generator)
    c = randn((n,), dtype, device, generator)
    a = torch.empty((n,), dtype=dtype, device=device)

    def run() -> torch.Tensor:
        return torch.add(b, c, alpha=SCALAR, out=a)

    def verify() -> Check:
        a.zero_()
        result = run()

        def reference(positions: torch.Tensor) -> torch.Tensor:
            where = positions.to(b.device)
            b64 = to_host(b.index_select(0, where)).to(torch.float64)
            c64 = to_host(c.index_select(0, where)).to(torch.float64)
            return (b64 + SCALAR * c64).to(dtype)

        return _exact_check(result, reference, generator, dtype_name, f"b + {SCALAR:g}*c rounded once")

    return Workload(run=run, verify=verify, footprint_bytes=tensor_bytes(a, b, c), keep=[a, b, c])
