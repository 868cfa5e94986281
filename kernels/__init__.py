"""The workload catalog: kernel families, their FLOP formulas, shape sets and the suites built from them.

Installed as ``npucheck.kernels``. Importing it imports torch: only the measuring layers use it.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import torch

from npucheck.errors import UsageError
from npucheck.kernels import attention, conv, gemm, lowp, memory, rnn, traffic
from npucheck.kernels.base import Case, Check, NonFiniteOutput, Workload, generator_for

FLOAT_DTYPES = ("fp16", "bf16", "fp32")
"""What every kernel runs, and what a suite entry without ``dtypes`` runs."""
DTYPE_NAMES = ("fp16", "int8", "fp8_e4m3", "fp8_e5m2", "bf16", "fp32")
"""Every dtype, in the order a run measures them, so that when the suite budget runs short the later ones lose
cases: fp16 (the MIIT plan's bench), then the low-precision formats accelerators are marketed on (int8, how
terminal NPUs are rated, and fp8; a suite lists only a few of their GEMMs), then the context dtypes bf16 and fp32."""
TORCH_DTYPES = {
    "fp16": torch.float16,
    "bf16": torch.bfloat16,
    "fp32": torch.float32,
    "int8": torch.int8,  # int8 x int8 -> int32 (torch._int_mm); work counted in operations: TOPS
    "fp8_e4m3": torch.float8_e4m3fn,  # torch._scaled_mm; the fnuz formats on ROCm MI300 (kernels/lowp.py)
    "fp8_e5m2": torch.float8_e5m2,
}


@dataclass(frozen=True)
class Kernel:
    """One kernel: how to count its work and how to build it on a device."""

    name: str
    family: str
    version: int
    flop_convention: str
    flops: Callable[[Mapping[str, Any]], int]
    builder: Callable[..., Workload]
    shape_sets: Mapping[str, list[dict[str, Any]]]
    label: Callable[[Mapping[str, Any]], str]
    dtype_flops: Callable[[Mapping[str, Any], str], int] | None = None
    """FLOPs that depend on the dtype too (memory cases are sized in bytes); replaces ``flops`` when set."""

    def case(self, dtype: str, shape: Mapping[str, Any], shape_set: str) -> Case:
        return Case(
            kernel=self.name,
            family=self.family,
            dtype=dtype,
            shape=dict(shape),
            shape_set=shape_set,
            flops=self.dtype_flops(shape, dtype) if self.dtype_flops else self.flops(shape),
            flop_convention=self.flop_convention,
            kernel_version=self.version,
            shape_label=self.label(shape),
            bytes=_case_bytes(self.name, shape, dtype),
        )


def _case_bytes(kernel: str, shape: Mapping[str, Any], dtype: str) -> int | None:
    """Operand + result bytes of one call (``npucheck.kernels.traffic``); None for a kernel without a formula."""
    torch_dtype = TORCH_DTYPES.get(dtype)
    if torch_dtype is None:
        return None
    try:
        return traffic.case_bytes(kernel, shape, dtype, torch_dtype.itemsize)
    except KeyError:
        return None


def _memory(name: str) -> Kernel:
    return Kernel(
        name,
        memory.FAMILY,
        memory.VERSION,
        memory.FLOP_CONVENTIONS[name],
        functools.partial(memory.flops, name),
        memory.build_copy if name == "copy" else memory.build_triad,
        memory.SHAPE_SETS,
        memory.label,
        dtype_flops=functools.partial(memory.flops, name),
    )


def _recurrent(name: str) -> Kernel:
    family = rnn.FAMILIES[name]
    return Kernel(
        name,
        family,
        rnn.VERSION,
        rnn.FLOP_CONVENTION,
        functools.partial(rnn.flops, name),
        functools.partial(rnn.build, name),
        rnn.SHAPE_SETS[family],
        rnn.label,
    )


KERNELS: dict[str, Kernel] = {
    "gemm": Kernel(
        gemm.NAME, gemm.FAMILY, gemm.VERSION, gemm.FLOP_CONVENTION, gemm.flops, gemm.build, gemm.SHAPE_SETS, gemm.label
    ),
    "conv2d": Kernel(
        conv.NAME, conv.FAMILY, conv.VERSION, conv.FLOP_CONVENTION, conv.flops, conv.build, conv.SHAPE_SETS, conv.label
    ),
    **{name: _recurrent(name) for name in ("rnn_tanh", "rnn_relu", "lstm", "gru")},
    **{name: _memory(name) for name in memory.NAMES},
    "attention": Kernel(
        attention.NAME,
        attention.FAMILY,
        attention.VERSION,
        attention.FLOP_CONVENTION,
        attention.flops,
        attention.build,
        attention.SHAPE_SETS,
        attention.label,
    ),
}

ALIASES = {"cnn": ("conv2d",), "conv": ("conv2d",), "rnn": ("rnn_tanh", "rnn_relu"), "memory": memory.NAMES}


def select_kernels(names: list[str] | None) -> list[str]:
    """Expand ``--kernels`` values (kernel names, or cnn/conv/rnn aliases) into kernel names, in catalog order."""
    if not names:
        return list(KERNELS)
    chosen: set[str] = set()
    for raw in names:
        for name in (part.strip().lower() for part in raw.split(",") if part.strip()):
            if name in KERNELS:
                chosen.add(name)
            elif name in ALIASES:
                chosen.update(ALIASES[name])
            else:
                known = ", ".join([*KERNELS, *ALIASES])
                raise UsageError(f"unknown kernel {name!r}; known: {known}")
    if not chosen:  # --kernels '' or ',': an empty selection would run nothing and save an empty profile
        raise UsageError(f"--kernels names no kernel; choose from {', '.join([*KERNELS, *ALIASES])}")
    return [name for name in KERNELS if name in chosen]


def select_dtypes(names: list[str] | None) -> list[str]:
    if not names:
        return list(DTYPE_NAMES)
    chosen = []
    for raw in names:
        for name in (part.strip().lower() for part in raw.split(",") if part.strip()):
            if name not in DTYPE_NAMES:
                raise UsageError(f"unknown dtype {name!r}; known: {', '.join(DTYPE_NAMES)}")
            if name not in chosen:
                chosen.append(name)
    if not chosen:
        raise UsageError(f"--dtypes names no dtype; choose from {', '.join(DTYPE_NAMES)}")
    return chosen


VERIFY_DEVICE_CALLS = 1
"""Kernel calls one ``Workload.verify()`` makes on the device; the rest of its cost is host work, see
:func:`reference_flops`."""


def reference_flops(case: Case) -> int:
    """FLOPs of the float64 reference that ``verify()`` computes on the host (bounded whatever the shape): GEMM
    2·64·64·K, conv2d image 1 and up to 16 output channels, recurrent layers a prefix of steps and batch rows."""
    shape = case.shape
    if case.kernel == "gemm":
        return 2 * min(int(shape["m"]), gemm.VERIFY_ROWS) * min(int(shape["n"]), gemm.VERIFY_COLS) * int(shape["k"])
    if case.kernel == "conv2d":
        groups, k = int(shape.get("groups", 1)), int(shape["k"])
        per_group = k // groups
        channels = (
            min(k, conv.VERIFY_CHANNELS)
            if groups == 1
            else min(groups, max(1, conv.VERIFY_CHANNELS // per_group)) * per_group
        )
        return (
            conv.flops({**shape, "n": 1, "k": channels})
            if groups == 1
            else conv.flops(
                {
                    **shape,
                    "n": 1,
                    "k": channels,
                    "c": channels // per_group * (int(shape["c"]) // groups),
                    "groups": channels // per_group,
                }
            )
        )
    if case.family == memory.FAMILY:  # a copy, or b + s*c, of VERIFY_ELEMENTS values
        return 2 * memory.VERIFY_ELEMENTS
    if case.kernel == "attention":
        return attention.reference_flops(shape)
    return rnn.reference_flops(case.kernel, shape)


def build_workload(case: Case, device: torch.device, seed: int) -> Workload:
    """Seeded inputs for ``case`` on ``device``."""
    kernel = KERNELS[case.kernel]
    generator = generator_for(case.id, seed, device)
    if case.dtype in lowp.LOW_PRECISION_DTYPES:  # int8 / fp8 GEMM: their own ops (torch._int_mm, _scaled_mm)
        if case.kernel not in lowp.KERNELS:
            raise lowp.UnsupportedCase(f"{case.kernel} has no {case.dtype} path (only {', '.join(lowp.KERNELS)})")
        return lowp.build(case.shape, case.dtype, device, generator)
    return kernel.builder(case.shape, TORCH_DTYPES[case.dtype], case.dtype, device, generator)


__all__ = [
    "Case",
    "Check",
    "DTYPE_NAMES",
    "FLOAT_DTYPES",
    "VERIFY_DEVICE_CALLS",
    "reference_flops",
    "KERNELS",
    "Kernel",
    "NonFiniteOutput",
    "Workload",
    "build_workload",
    "select_dtypes",
    "select_kernels",
]
