"""What every kernel family provides: a FLOP formula, seeded inputs, a correctness check, named shape sets.

Installed as ``npucheck.kernels`` (the top-level name ``kernels`` is taken on PyPI).
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch

__all__ = [
    "Case",
    "Check",
    "check_against_host_reference",
    "compare",
    "generator_for",
    "host64",
    "NonFiniteOutput",
    "randn",
    "REFERENCE_DEVICE",
    "REFERENCE_ERRORS",
    "sample_indices",
    "tensor_bytes",
    "to_host",
    "TOLERANCE",
    "unchecked",
    "Workload",
]


TOLERANCE = {"fp16": 5e-3, "bf16": 3e-2, "fp32": 1e-4, "int8": 0.0, "fp8_e4m3": 1e-2, "fp8_e5m2": 1e-2}
"""Largest accepted ‖out − ref‖ / ‖ref‖ against a float64 reference computed on the host from the *same* (already
rounded) inputs, so only the arithmetic's rounding counts. bf16 and fp16 allow for reduced-precision reductions.

fp32 is 1e-4: what true IEEE fp32 meets at our largest shapes with a wide margin, and what TF32 (10-bit
mantissa) or bf16 arithmetic cannot meet. Measured on the 2-core CI CPU (torch 2.13, seeded N(0,1) inputs as the
kernels build them; tests/test_references.py asserts these):

* true fp32 (MKL / oneDNN): GEMM 2.5e-7 (K = 1024) … 2.9e-7 (K = 16384) … 9.0e-7 (K = 500000); conv2d 2.2e-7 …
  3.0e-7 (C·R·S up to 4608); RNN/GRU 3e-7, LSTM 7.7e-7 (H = 1024) and 1.5e-6 (H = 4096). The worst *order* of
  fp32 summation, one long sequential sum, gives 1.8e-6 at K = 16384 and 1.25e-5 at K = 500000 (emulated):
  8x inside the tolerance.
* TF32 (inputs rounded to a 10-bit mantissa, emulated by rounding the fp32 bit pattern): round-to-nearest
  2.8e-4 … 3.0e-4 for GEMM and conv at every K, 3.4e-4 … 3.9e-4 for RNN/LSTM/GRU; truncation (the low 13 bits
  masked) 5.4e-4 … 1.2e-3. The smallest is 2.8x above the tolerance, so TF32 fails the fp32 check.
* bf16 arithmetic for fp32 (oneDNN ``fp32_precision = "bf16"``; it did not change results on this CPU, so
  not measured): 3 fewer mantissa bits than TF32, so about 8x TF32's error.

The old fp32 tolerance, 2e-3, accepted TF32: it was chosen to let cuDNN convolutions run in TF32 (torch's
default). fp32 cases now run under :func:`npucheck.kernels.precision.full_fp32_precision`.

int8 (exact, 0) and fp8 (1e-2): see :mod:`npucheck.kernels.lowp`."""

REFERENCE_DEVICE = torch.device("cpu")
"""References are computed on the host: Ascend NPUs, Intel Arc and Apple GPUs have no float64."""


class NonFiniteOutput(RuntimeError):
    """The kernel produced NaN or Inf."""


@dataclass(frozen=True)
class Case:
    """One thing to measure: a kernel at a shape and dtype."""

    kernel: str
    family: str
    dtype: str
    shape: Mapping[str, Any]
    shape_set: str
    flops: int
    flop_convention: str
    kernel_version: int
    shape_label: str
    bytes: int | None = None
    """Bytes of the operands and result of one call (``npucheck.kernels.traffic``), for the roofline."""

    @property
    def id(self) -> str:
        return f"{self.kernel}/{self.dtype}/{self.shape_label}"


@dataclass(frozen=True)
class Check:
    """Outcome of comparing one output with its float64 host reference.

    ``rel_error`` is None when the reference could not be computed (host out of memory, an op missing on the
    host); then ``status`` is "unchecked", ``ok`` is None and ``reason`` says why. Unchecked is not wrong: the
    kernel ran and its output was finite; nobody could say whether it was right.
    """

    rel_error: float | None
    tolerance: float
    reference_dtype: str
    checked: str
    reason: str | None = None
    reference_device: str = "cpu"

    @property
    def status(self) -> str:
        """ "ok", "wrong" or "unchecked"."""
        if self.rel_error is None:
            return "unchecked"
        return "ok" if self.rel_error <= self.tolerance else "wrong"

    @property
    def ok(self) -> bool | None:
        """True (matched), False (wrong) or None (unchecked)."""
        return None if self.rel_error is None else self.rel_error <= self.tolerance

    def to_dict(self) -> dict[str, Any]:
        return {
            "rel_error": self.rel_error,
            "tolerance": self.tolerance,
            "reference_dtype": self.reference_dtype,
            "checked": self.checked,
            "ok": self.ok,
            "status": self.status,
            "reason": self.reason,
            "reference_device": self.reference_device,
        }


@dataclass
class Workload:
    """Inputs built on the device, a callable that runs the kernel once, and its check."""

    run: Callable[[], torch.Tensor]
    verify: Callable[[], Check]
    footprint_bytes: int
    keep: list[Any] = field(default_factory=list)  # tensors/modules kept alive for run()
    backend: dict[str, str] | None = None
    """The library backend that runs the kernel, where the family can tell (attention: the SDPA backend)."""


def generator_for(case_id: str, seed: int, device: torch.device) -> torch.Generator:
    """A generator seeded from the run's seed and the case id, so each case's inputs are reproducible."""
    case_seed = (seed * 1_000_003 + zlib.crc32(case_id.encode())) % 2**63
    try:
        generator = torch.Generator(device=device)
    except RuntimeError:
        generator = torch.Generator()
    generator.manual_seed(case_seed)
    return generator


def randn(
    shape: tuple[int, ...], dtype: torch.dtype, device: torch.device, generator: torch.Generator, scale: float = 1.0
) -> torch.Tensor:
    """Normal random values (never zeros or ones: they run faster and draw less power than real data)."""
    gen_device = generator.device
    values = torch.randn(shape, generator=generator, device=gen_device, dtype=torch.float32)
    if scale != 1.0:
        values.mul_(scale)
    return values.to(device=device, dtype=dtype)


REFERENCE_ERRORS = (RuntimeError, MemoryError, NotImplementedError)
"""What a reference that cannot be computed raises (torch.OutOfMemoryError is a RuntimeError): the check becomes
unchecked. Anything else (TypeError, …) is a bug and propagates."""


def to_host(tensor: torch.Tensor) -> torch.Tensor:
    """An explicit copy to the host in the tensor's own dtype (never a conversion on the device, which may have no
    float64). Always a copy, even from the CPU, so nothing on the host aliases device memory."""
    return tensor.detach().to(REFERENCE_DEVICE, copy=True)


def host64(tensor: torch.Tensor) -> torch.Tensor:
    """``tensor`` copied to the host in its own dtype, then upcast to float64 there."""
    return to_host(tensor).to(torch.float64)


def compare(out: torch.Tensor, ref: torch.Tensor, dtype: str, checked: str) -> Check:
    """Relative Frobenius error of ``out`` (any device; copied to the host) against the host reference ``ref``;
    raises NonFiniteOutput on NaN/Inf."""
    out_host = to_host(out)
    if not bool(torch.isfinite(out_host).all()):
        bad = int((~torch.isfinite(out_host)).sum())
        raise NonFiniteOutput(f"output has {bad} NaN/Inf values of {out_host.numel()}")
    ref64 = to_host(ref).to(torch.float64)
    diff = torch.linalg.vector_norm(out_host.to(torch.float64) - ref64)
    norm = torch.linalg.vector_norm(ref64)
    rel = float(diff / norm) if float(norm) > 0 else float(diff)
    return Check(
        rel_error=rel, tolerance=TOLERANCE[dtype], reference_dtype=str(ref.dtype).replace("torch.", ""), checked=checked
    )


def unchecked(dtype: str, checked: str, error: BaseException) -> Check:
    text = str(error).strip().splitlines()[0] if str(error).strip() else ""
    return Check(
        rel_error=None,
        tolerance=TOLERANCE[dtype],
        reference_dtype="float64",
        checked=checked,
        reason=f"float64 reference unavailable on the host: {type(error).__name__}: {text}",
    )


def check_against_host_reference(
    out: torch.Tensor, reference: Callable[[], torch.Tensor], dtype: str, checked: str
) -> Check:
    """Compare ``out`` with ``reference()``, a float64 tensor computed on the host (from operands copied there
    with :func:`host64`). The output is copied and checked for NaN/Inf first (a kernel fault: raises
    NonFiniteOutput); a reference that cannot be computed makes the check unchecked, never wrong."""
    out_host = to_host(out)
    if not bool(torch.isfinite(out_host).all()):
        bad = int((~torch.isfinite(out_host)).sum())
        raise NonFiniteOutput(f"output has {bad} NaN/Inf values of {out_host.numel()}")
    try:
        ref = reference()
    except REFERENCE_ERRORS as e:
        return unchecked(dtype, checked, e)
    return compare(out_host, ref, dtype, checked)


def sample_indices(n: int, count: int, generator: torch.Generator) -> torch.Tensor:
    """``min(n, count)`` distinct indices in [0, n), sorted, drawn on the host from ``generator``'s stream."""
    if n <= count:
        return torch.arange(n)
    seed = int(torch.randint(0, 2**62, (1,), generator=generator, device=generator.device))
    host = torch.Generator().manual_seed(seed)
    return torch.randperm(n, generator=host)[:count].sort().values


def tensor_bytes(*tensors: torch.Tensor) -> int:
    return sum(t.numel() * t.element_size() for t in tensors)
