"""Low-precision GEMM: INT8 (``torch._int_mm``) and FP8 e4m3 / e5m2 (``torch._scaled_mm``).

Work is counted as for any GEMM, 2·M·N·K operations; for int8 they are integer operations, so the figure is
tera-operations per second (TOPS) where the float dtypes give TFLOPS (docs/result-profile.md, "INT8 and FP8").

What torch itself requires (read in torch's ``aten/src/ATen/native/cuda/Blas.cpp``, ``_int_mm_out_cuda`` and
``_scaled_mm_out_cuda``), encoded here so a case the backend would refuse is skipped with the reason:

* ``torch._int_mm(a, b)``: int8 × int8 → int32, 2-D only. On CUDA: ``a.size(0) > 16`` and ``k``, ``n`` multiples
  of 8 (cuBLASLt). The CPU build of torch 2.13 has it too, with no shape limits (tried on the CI machine).
* ``torch._scaled_mm(a, b, scale_a, scale_b, out_dtype=...)``: float8 operands, ``scale_a``/``scale_b`` float32
  (a single value each: tensor-wise scaling, the dequantisation factor, so the product is
  ``(a·scale_a) @ (b·scale_b)``). On CUDA: compute capability 8.9 or newer (or ROCm MI300+, whose float8 types are
  the ``fnuz`` variants), ``a`` row-major and ``b`` column-major, ``k`` and ``n`` multiples of 16, and not both
  operands e5m2 ("Multiplication of two Float8_e5m2 matrices is not supported"). So the ``fp8_e5m2`` case is the
  mix a training backward pass runs: A in e5m2 (a gradient) × B in e4m3 (a weight). The CPU build of torch 2.13
  runs ``_scaled_mm`` as well (oneDNN), so both fp8 cases run on a CPU; what that says about an accelerator's fp8
  units is nothing, and the result's device line says what ran.

Correctness: int8 is checked *exactly*: sampled rows and columns of the int32 result against an int64 product
computed on the host (tolerance 0; the int32 accumulator cannot overflow for ``k < 2**31 / 128**2 = 131072``, and
for random signs not in practice beyond). fp8 is checked against a float64 product of the same, already
fp8-rounded, operands times their scales, with :data:`FP8_TOLERANCE`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch

from npucheck.kernels.base import (
    REFERENCE_ERRORS,
    Check,
    NonFiniteOutput,
    Workload,
    host64,
    sample_indices,
    tensor_bytes,
    to_host,
    unchecked,
)

__all__ = [
    "FP8_DTYPES",
    "FP8_OUT_DTYPE",
    "FP8_TOLERANCE",
    "INT8_TOLERANCE",
    "KERNELS",
    "LOW_PRECISION_DTYPES",
    "PROBE_LAYOUT",
    "PROBE_START",
    "UnsupportedCase",
    "build",
    "fp8_operand_dtypes",
    "shape_reason",
    "support_reason",
]

LOW_PRECISION_DTYPES = ("int8", "fp8_e4m3", "fp8_e5m2")
FP8_DTYPES = ("fp8_e4m3", "fp8_e5m2")
KERNELS = ("gemm",)
"""The kernels that run the low-precision dtypes; every other kernel runs only fp16, bf16 and fp32."""

INT8_TOLERANCE = 0.0
"""int32 accumulation of int8 products is exact: any difference from the int64 reference is a wrong result."""

FP8_TOLERANCE = 1e-2
"""Largest accepted ‖out − ref‖ / ‖ref‖ for fp8. The operands are the same fp8 values on both sides, so only the
accumulation and the bf16 output count: rounding to bf16 alone gives ~1e-3 (8-bit significand, the error of one
element ~2^-9 relative, uniformly spread); fp8 tensor cores add a reduced-precision accumulator (DeepSeek-V3
report: ~14 bits kept on H800 with fast accumulation; we call with ``use_fast_accum=False``). Measured on the CI
CPU (torch 2.13, oneDNN): 1.1e-3 … 1.2e-3 at K = 256 … 2048 (tests/test_int8_fp8.py). A wrong scale, a
transposed operand or garbage gives >= 0.5."""

FP8_OUT_DTYPE = torch.bfloat16
"""bf16 output: the one every ``_scaled_mm`` path supports (row-wise scaling requires it)."""

PROBE_LAYOUT = {"fp8_e4m3": "NT", "fp8_e5m2": "NT"}
"""The GEMM layout the runner probes a dtype with: fp8 needs B column-major ("NT"); others use "NN"."""


PROBE_START = {"fp8_e4m3": 256, "fp8_e5m2": 256}
"""The size the runner's rate probe starts at. fp8 on the CPU build takes ~35 ms a call at 64³ and 128³ whatever
the size (a fixed cost; 256³ takes 0.5 ms once warm, measured on the CI machine), so a probe from 64³ would
predict every fp8 case far over its budget."""


class UnsupportedCase(ValueError):
    """This case's shape or layout is one the backend's op refuses (documented limits): the case is skipped."""


def _is_rocm(device: torch.device) -> bool:
    return device.type == "cuda" and getattr(torch.version, "hip", None) is not None


def fp8_operand_dtypes(dtype: str, device: torch.device, arch: str | None = None) -> tuple[torch.dtype, torch.dtype]:
    """The torch dtypes of A and B for an fp8 case: e4m3 × e4m3, or e5m2 × e4m3 for ``fp8_e5m2``. ROCm MI300
    (gfx94x) uses the ``fnuz`` formats (torch's ``_scaled_mm_is_fnuz``); ``arch`` is its gcnArchName."""
    if _is_rocm(device) and (arch or _rocm_arch(device) or "").startswith("gfx94"):
        e4m3, e5m2 = torch.float8_e4m3fnuz, torch.float8_e5m2fnuz
    else:
        e4m3, e5m2 = torch.float8_e4m3fn, torch.float8_e5m2
    return (e5m2 if dtype == "fp8_e5m2" else e4m3), e4m3


def _rocm_arch(device: torch.device) -> str | None:
    try:
        return str(torch.cuda.get_device_properties(device).gcnArchName)
    except Exception:  # noqa: BLE001 - no properties: the probe call decides
        return None


def _capability(device: torch.device) -> tuple[int, int] | None:
    try:
        major, minor = torch.cuda.get_device_capability(device)
    except Exception:  # noqa: BLE001 - no CUDA runtime: the probe call decides
        return None
    return int(major), int(minor)


def support_reason(
    dtype: str,
    device: torch.device,
    capability: tuple[int, int] | None = None,
    probe: Callable[[str, torch.device], None] | None = None,
) -> str | None:
    """None if ``device`` can run the ``dtype`` GEMM op, else why not (one line, for a SKIPPED case).

    Args:
        dtype: int8, fp8_e4m3 or fp8_e5m2.
        device: the torch device.
        capability: CUDA compute capability (major, minor); read from torch when None.
        probe: runs the op once at a tiny shape (default :func:`_probe`); a failure becomes the reason.
    """
    if dtype == "int8" and not hasattr(torch, "_int_mm"):
        return f"torch {torch.__version__} has no torch._int_mm"
    if dtype in FP8_DTYPES:
        if not hasattr(torch, "_scaled_mm") or not hasattr(torch, "float8_e4m3fn"):
            return f"torch {torch.__version__} has no torch._scaled_mm or float8 dtypes"
        if device.type == "cuda" and not _is_rocm(device):
            cap = capability if capability is not None else _capability(device)
            if cap is not None and cap < (8, 9):
                return (
                    f"torch._scaled_mm needs CUDA compute capability 8.9+ (this device: {device}, sm_{cap[0]}{cap[1]})"
                )
    try:
        (probe or _probe)(dtype, device)
    except Exception as e:  # noqa: BLE001 - any backend failure means "not supported here"
        op = "torch._int_mm" if dtype == "int8" else "torch._scaled_mm"
        text = str(e).strip().splitlines()[0] if str(e).strip() else ""
        return f"{op} ({dtype}) is not supported on {device}: {type(e).__name__}: {text}"
    return None


def _probe(dtype: str, device: torch.device) -> None:
    """One call at 32×32×32 (inside every backend's limits); synchronised by reading a value back."""
    if dtype == "int8":
        a = torch.ones((32, 32), dtype=torch.int8, device=device)
        int(torch._int_mm(a, a).sum().item())
        return
    a_dtype, b_dtype = fp8_operand_dtypes(dtype, device)
    one = torch.ones((), dtype=torch.float32, device=device)
    a = torch.ones((32, 32), device=device).to(a_dtype)
    b = torch.ones((32, 32), device=device).to(b_dtype).t().contiguous().t()
    float(torch._scaled_mm(a, b, scale_a=one, scale_b=one, out_dtype=FP8_OUT_DTYPE).float().sum().item())


def shape_reason(dtype: str, shape: Mapping[str, Any], device: torch.device) -> str | None:
    """Why the backend's op refuses this shape or layout (torch's documented limits), or None."""
    m, n, k = int(shape["m"]), int(shape["n"]), int(shape["k"])
    layout = str(shape.get("layout", "NN"))
    if dtype == "int8":
        if device.type == "cuda" and (m <= 16 or k % 8 or n % 8):
            return f"torch._int_mm on {device} needs m > 16 and k, n multiples of 8 (m={m}, k={k}, n={n})"
        return None
    if layout != "NT":
        return (
            f"torch._scaled_mm takes row-major A x column-major B only (layout NT), not {layout}; "
            "use the square-nt shape set"
        )
    if device.type != "cpu" and (k % 16 or n % 16):
        return f"torch._scaled_mm on {device} needs k and n multiples of 16 (k={k}, n={n})"
    return None


def _randint8(shape: tuple[int, int], generator: torch.Generator, device: torch.device) -> torch.Tensor:
    values = torch.randint(-128, 128, shape, generator=generator, device=generator.device, dtype=torch.int8)
    return values.to(device)


def _quantise(values: torch.Tensor, dtype: torch.dtype, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """fp8 tensor and its float32 dequantisation scale: ``values / scale`` fills the format's range."""
    amax = float(values.abs().max())
    # the operand dtype's own largest finite value: ROCm's e4m3fnuz tops out at 240, not e4m3fn's 448 (and turns
    # 256 and above into NaN), so a fixed table would overflow on MI300 (review)
    scale = (amax / torch.finfo(dtype).max) if amax > 0 else 1.0
    quantised = (values / scale).to(device=device, dtype=dtype)
    return quantised, torch.tensor(scale, dtype=torch.float32, device=device)


def build(shape: Mapping[str, Any], dtype_name: str, device: torch.device, generator: torch.Generator) -> Workload:
    """Seeded operands on ``device`` and the int8 or fp8 GEMM over them.

    Raises:
        UnsupportedCase: the backend's op refuses this shape or layout (see :func:`shape_reason`).
    """
    reason = shape_reason(dtype_name, shape, device)
    if reason:
        raise UnsupportedCase(reason)
    m, n, k = int(shape["m"]), int(shape["n"]), int(shape["k"])
    layout = str(shape.get("layout", "NN"))
    if dtype_name == "int8":
        return _build_int8(m, n, k, layout, device, generator)
    return _build_fp8(m, n, k, dtype_name, device, generator)


def _build_int8(m: int, n: int, k: int, layout: str, device: torch.device, generator: torch.Generator) -> Workload:
    a = _randint8((k, m), generator, device).t() if layout[0] == "T" else _randint8((m, k), generator, device)
    b = _randint8((n, k), generator, device).t() if layout[1] == "T" else _randint8((k, n), generator, device)
    out = torch.empty((m, n), dtype=torch.int32, device=device)

    def run() -> torch.Tensor:
        return torch._int_mm(a, b, out=out)

    def verify() -> Check:
        result = run()
        # random rows and columns plus the first and last of each: an error confined to edge or partial tiles is
        # where a tiled kernel goes wrong, and a random sample of 64 would rarely land there
        rows = _with_edges(sample_indices(m, 64, generator), m)
        cols = _with_edges(sample_indices(n, 64, generator), n)
        rows_dev, cols_dev = rows.to(a.device), cols.to(b.device)
        picked = to_host(result.index_select(0, rows_dev).index_select(1, cols_dev))
        checked = f"{len(rows)} rows x {len(cols)} columns of {m}x{n} (random, and the first and last), exact"
        try:
            ref = to_host(a.index_select(0, rows_dev)).to(torch.int64) @ to_host(b.index_select(1, cols_dev)).to(
                torch.int64
            )
        except REFERENCE_ERRORS as e:
            return unchecked("int8", checked, e)
        return exact_check(picked, ref, checked)

    return Workload(run=run, verify=verify, footprint_bytes=tensor_bytes(a, b, out), keep=[a, b, out])


def _with_edges(indices: torch.Tensor, n: int) -> torch.Tensor:
    """``indices`` with 0 and n - 1 added, sorted and distinct."""
    return torch.unique(torch.cat([indices, torch.tensor([0, n - 1], dtype=indices.dtype)]))


def exact_check(out: torch.Tensor, ref: torch.Tensor, checked: str) -> Check:
    """An int32 result against its int64 reference: ``rel_error`` is ‖out − ref‖ / ‖ref‖ (0 only when every
    element is equal), tolerance 0; ``reason`` counts the differing elements."""
    out64 = out.to(torch.int64)
    diff = out64 - ref
    wrong = int((diff != 0).sum())
    norm = float(torch.linalg.vector_norm(ref.to(torch.float64)))
    dnorm = float(torch.linalg.vector_norm(diff.to(torch.float64)))
    rel = dnorm / norm if norm > 0 else dnorm
    return Check(
        rel_error=rel,
        tolerance=INT8_TOLERANCE,
        reference_dtype="int64",
        checked=checked,
        reason=f"{wrong} of {out.numel()} int32 values differ from the int64 reference" if wrong else None,
    )


def _build_fp8(m: int, n: int, k: int, dtype_name: str, device: torch.device, generator: torch.Generator) -> Workload:
    a_dtype, b_dtype = fp8_operand_dtypes(dtype_name, device)
    source = generator.device
    a32 = torch.randn((m, k), generator=generator, device=source, dtype=torch.float32)
    b32 = torch.randn((n, k), generator=generator, device=source, dtype=torch.float32)
    a, scale_a = _quantise(a32, a_dtype, device)
    b_rows, scale_b = _quantise(b32, b_dtype, device)
    b = b_rows.t()  # (k, n) column-major, as _scaled_mm requires
    del a32, b32
    out = torch.empty((m, n), dtype=FP8_OUT_DTYPE, device=device)

    def run() -> torch.Tensor:
        return torch._scaled_mm(a, b, scale_a=scale_a, scale_b=scale_b, out_dtype=FP8_OUT_DTYPE, out=out)

    def verify() -> Check:
        result = run()
        rows = sample_indices(m, 64, generator)
        cols = sample_indices(n, 64, generator)
        rows_dev, cols_dev = rows.to(a.device), cols.to(b.device)
        picked = to_host(result.index_select(0, rows_dev).index_select(1, cols_dev))
        checked = f"{len(rows)} random rows x {len(cols)} random columns of {m}x{n}, fp8 operands x scales"
        if not bool(torch.isfinite(picked).all()):
            bad = int((~torch.isfinite(picked)).sum())
            raise NonFiniteOutput(f"output has {bad} NaN/Inf values of {picked.numel()}")
        try:
            ref = (host64(a.index_select(0, rows_dev)) * float(scale_a)) @ (
                host64(b.index_select(1, cols_dev)) * float(scale_b)
            )
        except REFERENCE_ERRORS as e:
            return unchecked(dtype_name, checked, e)
        ref64 = ref.to(torch.float64)
        norm = float(torch.linalg.vector_norm(ref64))
        diff = float(torch.linalg.vector_norm(picked.to(torch.float64) - ref64))
        return Check(
            rel_error=diff / norm if norm > 0 else diff,
            tolerance=FP8_TOLERANCE,
            reference_dtype="float64",
            checked=checked,
        )

    return Workload(run=run, verify=verify, footprint_bytes=tensor_bytes(a, b, out), keep=[a, b, out, scale_a, scale_b])
