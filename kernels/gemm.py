"""Dense matrix multiply C = op(A) · op(B), torch.mm with a preallocated output.

FLOPs: 2·M·N·K (a multiply-add counts 2).
Shape sets: a square sweep (powers of two and not), and DeepBench's GEMM lists
(baidu-research/DeepBench code/kernels/gemm_problems.h; tuples m, n, k, layout: "TN" means A is stored transposed).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from npucheck.kernels.base import (
    Check,
    Workload,
    check_against_host_reference,
    host64,
    randn,
    sample_indices,
    tensor_bytes,
)

__all__ = [
    "build",
    "FAMILY",
    "FLOP_CONVENTION",
    "flops",
    "label",
    "NAME",
    "SHAPE_SETS",
    "SQUARE_SIZES",
    "VERIFY_COLS",
    "VERIFY_ROWS",
    "VERSION",
]


NAME = "gemm"
FAMILY = "gemm"
VERSION = 1
FLOP_CONVENTION = "2*m*n*k"
VERIFY_ROWS = 64
VERIFY_COLS = 64


def flops(shape: Mapping[str, Any]) -> int:
    return 2 * int(shape["m"]) * int(shape["n"]) * int(shape["k"])


def label(shape: Mapping[str, Any]) -> str:
    return f"m{shape['m']}_n{shape['n']}_k{shape['k']}_{shape.get('layout', 'NN')}"


def _shape(m: int, n: int, k: int, layout: str = "NN") -> dict[str, Any]:
    return {"m": m, "n": n, "k": k, "layout": layout}


SQUARE_SIZES = (128, 256, 384, 512, 768, 1000, 1024, 1536, 2000, 2048, 3072, 4096, 6000, 6144, 8192, 12288, 16384)

_speech_mk = (1760, 2048, 2560, 4096)
_training: list[dict[str, Any]] = (
    [_shape(mk, n, mk, lay) for lay in ("NN", "TN") for mk in _speech_mk for n in (16, 32, 64, 128, 7000)]
    + [_shape(mk, 7133, mk, "NT") for mk in _speech_mk]
    + [_shape(m, n, k, lay) for lay in ("NN", "TN") for k in _speech_mk for m, n in ((5124, 9124), (35, 8457))]
    + [_shape(7680, n, 2560, lay) for lay in ("NN", "TN") for n in (16, 32, 64, 128)]
    + [_shape(3072, n, 1024, lay) for lay in ("NN", "TN") for n in (16, 32, 64, 128)]
    + [_shape(3072, 7435, 1024, "NT"), _shape(7680, 5481, 2560, "NT")]
    + [_shape(m, n, 500000, lay) for lay in ("NN", "TN") for n in (8, 16) for m in (512, 1024)]
    + [_shape(1024, 700, 512, "NN"), _shape(1024, 700, 512, "TN")]
    + [
        _shape(m, n, k, lay)
        for lay in ("NN", "TN")
        for n in (24000, 48000)
        for m, k in ((7680, 2560), (6144, 2048), (4608, 1536), (8448, 2816), (3072, 1024))
    ]
)

SHAPE_SETS: dict[str, list[dict[str, Any]]] = {
    "square": [_shape(s, s, s) for s in SQUARE_SIZES],
    # B column-major: the one layout torch._scaled_mm (fp8) takes on CUDA; int8 and float dtypes run it too
    "square-nt": [_shape(s, s, s, "NT") for s in SQUARE_SIZES],
    "deepbench-train": _training,
    "deepbench-server": (
        [_shape(m, n, k) for n in (700, 1500) for k in (2048, 2560) for m in (5124, 35)]
        + [_shape(m, n, k) for m, k in ((7680, 2560), (3072, 1024)) for n in (1, 2, 4)]
        + [_shape(m, n, 500000) for n in (1, 2, 4) for m in (512, 1024)]
        + [_shape(1024, 700, 512)]
        + [
            _shape(m, n, k)
            for n in (1500, 3000, 6000)
            for m, k in ((7680, 2560), (6144, 2048), (4608, 1536), (8448, 2816), (3072, 1024))
        ]
    ),
    "deepbench-device": [
        _shape(5124, 700, 2048),
        _shape(35, 700, 2048),
        _shape(3072, 1, 1024),
        _shape(64, 1, 1216),
        _shape(3072, 1500, 1024),
        _shape(128, 1500, 1280),
        _shape(3072, 1500, 128),
        _shape(128, 1, 1024),
        _shape(3072, 1, 128),
        _shape(176, 1500, 1408),
        _shape(4224, 1500, 176),
        _shape(128, 1, 1408),
        _shape(4224, 1, 128),
    ],
}


def build(
    shape: Mapping[str, Any], dtype: torch.dtype, dtype_name: str, device: torch.device, generator: torch.Generator
) -> Workload:
    m, n, k = int(shape["m"]), int(shape["n"]), int(shape["k"])
    layout = str(shape.get("layout", "NN"))
    a = randn((k, m), dtype, device, generator).t() if layout[0] == "T" else randn((m, k), dtype, device, generator)
    b = randn((n, k), dtype, device, generator).t() if layout[1] == "T" else randn((k, n), dtype, device, generator)
    out = torch.empty((m, n), dtype=dtype, device=device)

    def run() -> torch.Tensor:
        return torch.mm(a, b, out=out)

    def verify() -> Check:
        """One call; then VERIFY_ROWS random rows of A and VERIFY_COLS random columns of B are copied to the host in
        their own dtype and multiplied there in float64 (64·64·K multiply-adds, 2·64·K values copied)."""
        result = run()
        rows = sample_indices(m, VERIFY_ROWS, generator)
        cols = sample_indices(n, VERIFY_COLS, generator)
        rows_dev, cols_dev = rows.to(a.device), cols.to(b.device)
        picked = result.index_select(0, rows_dev).index_select(1, cols_dev)

        def reference() -> torch.Tensor:
            return host64(a.index_select(0, rows_dev)) @ host64(b.index_select(1, cols_dev))

        return check_against_host_reference(
            picked, reference, dtype_name, f"{len(rows)} random rows x {len(cols)} random columns of {m}x{n}"
        )

    return Workload(run=run, verify=verify, footprint_bytes=tensor_bytes(a, b, out), keep=[a, b, out])
