"""What every kernel family provides: a FLOP formula, seeded inputs, a correctness check, named shape sets.

Installed as ``npucheck.kernels`` (the top-level name ``kernels`` is taken on PyPI).
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

import torch

TOLERANCE = {"fp16": 5e-3, "bf16": 3e-2, "fp32": 2e-3}
"""Largest accepted ‖out − ref‖ / ‖ref‖ against a float64 reference computed on the *same* (already rounded)
inputs, so only the arithmetic's rounding counts. fp32 allows for TF32 in cuDNN convolutions (torch's default);
bf16 and fp16 allow for reduced-precision reductions. Measured errors on the CI CPU are far below these
(see tests/test_kernels.py)."""


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

    @property
    def id(self) -> str:
        return f"{self.kernel}/{self.dtype}/{self.shape_label}"


@dataclass(frozen=True)
class Check:
    """Outcome of comparing one output with its high-precision reference."""

    rel_error: float
    tolerance: float
    reference_dtype: str
    checked: str

    @property
    def ok(self) -> bool:
        return self.rel_error <= self.tolerance

    def to_dict(self) -> dict[str, Any]:
        return {"rel_error": self.rel_error, "tolerance": self.tolerance,
                "reference_dtype": self.reference_dtype, "checked": self.checked, "ok": self.ok}


@dataclass
class Workload:
    """Inputs built on the device, a callable that runs the kernel once, and its check."""

    run: Callable[[], torch.Tensor]
    verify: Callable[[], Check]
    footprint_bytes: int
    keep: list[Any] = field(default_factory=list)  # tensors/modules kept alive for run()


def generator_for(case_id: str, seed: int, device: torch.device) -> torch.Generator:
    """A generator seeded from the run's seed and the case id, so each case's inputs are reproducible."""
    case_seed = (seed * 1_000_003 + zlib.crc32(case_id.encode())) % 2**63
    try:
        generator = torch.Generator(device=device)
    except RuntimeError:
        generator = torch.Generator()
    generator.manual_seed(case_seed)
    return generator


def randn(shape: tuple[int, ...], dtype: torch.dtype, device: torch.device, generator: torch.Generator,
          scale: float = 1.0) -> torch.Tensor:
    """Normal random values (never zeros or ones: they run faster and draw less power than real data)."""
    gen_device = generator.device
    values = torch.randn(shape, generator=generator, device=gen_device, dtype=torch.float32)
    if scale != 1.0:
        values.mul_(scale)
    return values.to(device=device, dtype=dtype)


def reference_dtype(device: torch.device) -> torch.dtype:
    """float64 where the device has it; MPS has no float64, so float32 there."""
    return torch.float32 if device.type == "mps" else torch.float64


def compare(out: torch.Tensor, ref: torch.Tensor, dtype: str, checked: str) -> Check:
    """Relative Frobenius error of ``out`` against ``ref``; raises NonFiniteOutput on NaN/Inf."""
    if not bool(torch.isfinite(out).all()):
        bad = int((~torch.isfinite(out)).sum())
        raise NonFiniteOutput(f"output has {bad} NaN/Inf values of {out.numel()}")
    ref64 = ref.detach().to(torch.float64)
    diff = torch.linalg.vector_norm(out.detach().to(torch.float64) - ref64.detach())
    norm = torch.linalg.vector_norm(ref64)
    rel = float(diff / norm) if float(norm) > 0 else float(diff)
    return Check(rel_error=rel, tolerance=TOLERANCE[dtype], reference_dtype=str(ref.dtype).replace("torch.", ""),
                 checked=checked)


def tensor_bytes(*tensors: torch.Tensor) -> int:
    return sum(t.numel() * t.element_size() for t in tensors)
