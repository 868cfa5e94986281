"""2-D convolution forward (NCHW), torch.nn.functional.conv2d.

FLOPs: 2·N·K·(C/groups)·R·S·P·Q with P = ⌊(H + 2·pad_h − (R − 1) − 1)/stride_h⌋ + 1, Q likewise (DeepBench's
convention; bias and activation are not counted because none are applied).
Shape sets: ResNet-50 and VGG-16 layers, DeepSpeech's rectangular-filter layers (DeepBench conv_problems.h),
and MobileNet-v1 depthwise layers (groups = channels).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F

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
    "output_hw",
    "SHAPE_SETS",
    "VERIFY_CHANNELS",
    "VERSION",
]


NAME = "conv2d"
FAMILY = "cnn"
VERSION = 1
FLOP_CONVENTION = "2*n*k*(c/groups)*r*s*p*q"
VERIFY_CHANNELS = 16
"""Output channels of image 1 checked against the host reference (whole groups when groups > 1)."""


def output_hw(shape: Mapping[str, Any]) -> tuple[int, int]:
    p = (int(shape["h"]) + 2 * int(shape["pad_h"]) - (int(shape["r"]) - 1) - 1) // int(shape["stride_h"]) + 1
    q = (int(shape["w"]) + 2 * int(shape["pad_w"]) - (int(shape["s"]) - 1) - 1) // int(shape["stride_w"]) + 1
    return p, q


def flops(shape: Mapping[str, Any]) -> int:
    p, q = output_hw(shape)
    groups = int(shape.get("groups", 1))
    return (
        2 * int(shape["n"]) * int(shape["k"]) * (int(shape["c"]) // groups) * int(shape["r"]) * int(shape["s"]) * p * q
    )


def label(shape: Mapping[str, Any]) -> str:
    return (
        f"n{shape['n']}_c{shape['c']}_{shape['h']}x{shape['w']}_k{shape['k']}_{shape['r']}x{shape['s']}"
        f"_s{shape['stride_h']}x{shape['stride_w']}_p{shape['pad_h']}x{shape['pad_w']}_g{shape.get('groups', 1)}"
    )


def _conv(
    n: int,
    c: int,
    h: int,
    w: int,
    k: int,
    r: int,
    s: int | None = None,
    stride: int = 1,
    pad: int | None = None,
    groups: int = 1,
    stride_w: int | None = None,
    pad_w: int | None = None,
) -> dict[str, Any]:
    s = r if s is None else s
    pad_h = r // 2 if pad is None else pad
    return {
        "n": n,
        "c": c,
        "h": h,
        "w": w,
        "k": k,
        "r": r,
        "s": s,
        "stride_h": stride,
        "stride_w": stride if stride_w is None else stride_w,
        "pad_h": pad_h,
        "pad_w": (s // 2 if pad is None else pad) if pad_w is None else pad_w,
        "groups": groups,
    }


def _resnet50(n: int) -> list[dict[str, Any]]:
    return [
        _conv(n, 3, 224, 224, 64, 7, stride=2, pad=3),
        _conv(n, 64, 56, 56, 64, 1),
        _conv(n, 64, 56, 56, 64, 3),
        _conv(n, 64, 56, 56, 256, 1),
        _conv(n, 256, 56, 56, 64, 1),
        _conv(n, 256, 56, 56, 128, 1),
        _conv(n, 256, 56, 56, 512, 1, stride=2),
        _conv(n, 128, 28, 28, 128, 3),
        _conv(n, 128, 28, 28, 512, 1),
        _conv(n, 512, 28, 28, 128, 1),
        _conv(n, 512, 28, 28, 256, 1),
        _conv(n, 512, 28, 28, 1024, 1, stride=2),
        _conv(n, 256, 14, 14, 256, 3),
        _conv(n, 256, 14, 14, 1024, 1),
        _conv(n, 1024, 14, 14, 256, 1),
        _conv(n, 1024, 14, 14, 512, 1),
        _conv(n, 1024, 14, 14, 2048, 1, stride=2),
        _conv(n, 512, 7, 7, 512, 3),
        _conv(n, 512, 7, 7, 2048, 1),
        _conv(n, 2048, 7, 7, 512, 1),
    ]


def _vgg16(n: int) -> list[dict[str, Any]]:
    layers = [
        (224, 3, 64),
        (224, 64, 64),
        (112, 64, 128),
        (112, 128, 128),
        (56, 128, 256),
        (56, 256, 256),
        (28, 256, 512),
        (28, 512, 512),
        (14, 512, 512),
    ]
    return [_conv(n, c, hw, hw, k, 3) for hw, c, k in layers]


def _deepspeech(n: int) -> list[dict[str, Any]]:
    # DeepBench: input W×H×C = 700×161×1 and 341×79×32, filters 20×5 and 10×5 (width × height), stride 2, no pad.
    return [_conv(n, 1, 161, 700, 32, 5, s=20, stride=2, pad=0), _conv(n, 32, 79, 341, 32, 5, s=10, stride=2, pad=0)]


def _mobilenet_depthwise(n: int) -> list[dict[str, Any]]:
    layers = [
        (112, 32, 1),
        (112, 64, 2),
        (56, 128, 1),
        (56, 128, 2),
        (28, 256, 1),
        (28, 256, 2),
        (14, 512, 1),
        (14, 512, 2),
        (7, 1024, 1),
    ]
    return [_conv(n, c, hw, hw, c, 3, stride=stride, groups=c) for hw, c, stride in layers]


SHAPE_SETS: dict[str, list[dict[str, Any]]] = {
    "resnet50": _resnet50(1),
    "resnet50-b16": _resnet50(16),
    "vgg16": _vgg16(1),
    "vgg16-b16": _vgg16(16),
    "deepspeech": _deepspeech(4),
    "deepspeech-b16": _deepspeech(16),
    "mobilenet-dw": _mobilenet_depthwise(1),
    "mobilenet-dw-b16": _mobilenet_depthwise(16),
}


def build(
    shape: Mapping[str, Any], dtype: torch.dtype, dtype_name: str, device: torch.device, generator: torch.Generator
) -> Workload:
    n, c, h, w = (int(shape[key]) for key in ("n", "c", "h", "w"))
    k, r, s, groups = int(shape["k"]), int(shape["r"]), int(shape["s"]), int(shape.get("groups", 1))
    stride = (int(shape["stride_h"]), int(shape["stride_w"]))
    padding = (int(shape["pad_h"]), int(shape["pad_w"]))
    x = randn((n, c, h, w), dtype, device, generator)
    # Scaled like a trained layer's weights so fp16 outputs stay far from overflow.
    weight = randn((k, c // groups, r, s), dtype, device, generator, scale=((c // groups) * r * s) ** -0.5)

    def run() -> torch.Tensor:
        return F.conv2d(x, weight, None, stride, padding, 1, groups)

    def verify() -> Check:
        """One call; then image 1 and up to VERIFY_CHANNELS output channels (random, whole groups) are computed on
        the host in float64 from the same inputs, copied there in their own dtype."""
        out = run()
        out_per_group, in_per_group = k // groups, c // groups
        if groups == 1:
            out_idx = sample_indices(k, VERIFY_CHANNELS, generator)
            in_idx, ref_groups = None, 1
        else:
            chosen = sample_indices(groups, max(1, VERIFY_CHANNELS // out_per_group), generator)
            out_idx = (chosen[:, None] * out_per_group + torch.arange(out_per_group)).flatten()
            in_idx = (chosen[:, None] * in_per_group + torch.arange(in_per_group)).flatten()
            ref_groups = len(chosen)
        out_dev = out_idx.to(weight.device)
        picked = out[:1].index_select(1, out_dev)

        def reference() -> torch.Tensor:
            image = x[:1] if in_idx is None else x[:1].index_select(1, in_idx.to(x.device))
            return F.conv2d(
                host64(image), host64(weight.index_select(0, out_dev)), None, stride, padding, 1, ref_groups
            )

        return check_against_host_reference(
            picked, reference, dtype_name, f"image 1 of {n}, {len(out_idx)} of {k} output channels"
        )

    p, q = output_hw(shape)
    out_bytes = n * k * p * q * x.element_size()
    return Workload(run=run, verify=verify, footprint_bytes=tensor_bytes(x, weight) + out_bytes, keep=[x, weight])
