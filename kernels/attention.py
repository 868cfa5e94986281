"""Scaled dot-product attention, forward (inference): ``torch.nn.functional.scaled_dot_product_attention``.

out = softmax(Q·Kᵀ / √D + mask) · V for B batch rows, H query heads and H_kv key/value heads (grouped-query
attention when H_kv < H: query head h reads key/value head h // (H / H_kv), torch's ``enable_gqa=True``, which
is ``repeat_interleave`` of K and V over the head dimension in torch's documented reference).

FLOPs: 4·B·H·S_q·S_kv·D (Q·Kᵀ and P·V, a multiply-add counts 2), halved for a causal mask: the convention of
FlashAttention's benchmarks (Dao et al., ``flops(..., causal)`` in benchmarks/benchmark_flash_attention.py). The
exact causal count is S·(S+1)/2 of S² score entries, so "halved" undercounts by (S+1)/(2S) - 1/2 = 1/(2S): 0.1% at
S = 512. Softmax, scaling and masking are not counted (O(B·H·S_q·S_kv), not ·D). Grouped KV heads change the
bytes moved, not the FLOPs: every query head still does its own Q·Kᵀ and P·V.

A causal mask is only used with S_q = S_kv (prefill): torch's ``is_causal`` aligns the mask to the top left, so
with S_q < S_kv it would hide keys a decoding query must see. Decode cases (S_q = 1 against a KV cache of S_kv)
use no mask, which is what a decoding step computes.

Shape sets: Llama-2-7B (32 query heads = 32 KV heads, head dim 4096 / 32 = 128, context 4096; the
``meta-llama/Llama-2-7b-hf`` config.json: hidden_size 4096, num_attention_heads 32, num_key_value_heads 32,
max_position_embeddings 4096) and the 70B class (64 query heads, 8 KV heads, head dim 8192 / 64 = 128;
``meta-llama/Llama-2-70b-hf`` config.json: hidden_size 8192, num_attention_heads 64, num_key_value_heads 8,
max_position_embeddings 4096; ``meta-llama/Meta-Llama-3-70B`` has the same heads with max_position_embeddings
8192). Prefill: batch 1, causal, S from 256 (a short chat turn) to the context length. Decode: S_q = 1 against KV
caches of 1024 up to the context length, batch 1 to 32. The quick and standard suites pick the smallest (S = 256
and 512 prefill, batch-8 decode over 1024 cached tokens, batch-1 decode over 8192): on a 2-core CPU an fp16
prefill at S = 512 takes ~90 ms a call, and the fp16 GEMM probe (~3 GFLOPS there) predicts it 10x slower than it
runs, too slow for the one pilot call that would correct the rate; at S = 256 the pilot call fits.
"""

from __future__ import annotations

import math
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
    "detect_backend",
    "FAMILY",
    "FLOP_CONVENTION",
    "flops",
    "label",
    "NAME",
    "reference_flops",
    "SHAPE_SETS",
    "validate",
    "VERIFY_HEADS",
    "VERIFY_QUERIES",
    "VERSION",
    "workload_elements",
]


NAME = "attention"
FAMILY = "attention"
VERSION = 1
FLOP_CONVENTION = "4*batch*heads*q_len*kv_len*head_dim, /2 when causal"
VERIFY_HEADS = 4
"""(batch row, query head) pairs checked against the host reference: rows of different heads are independent."""
VERIFY_QUERIES = 64
"""Query positions checked per picked head (each against every key it may see)."""
MASKS = ("causal", "none")


def validate(shape: Mapping[str, Any]) -> None:
    """ValueError unless the shape is one this kernel can run: positive sizes, H a multiple of H_kv, a causal
    mask only with S_q = S_kv (see the module docstring)."""
    sizes = {key: int(shape[key]) for key in ("batch", "heads", "kv_heads", "q_len", "kv_len", "head_dim")}
    if min(sizes.values()) < 1:
        raise ValueError(f"attention shape has a size below 1: {sizes}")
    if sizes["heads"] % sizes["kv_heads"]:
        raise ValueError(f"attention: heads {sizes['heads']} is not a multiple of kv_heads {sizes['kv_heads']}")
    mask = str(shape.get("mask", "none"))
    if mask not in MASKS:
        raise ValueError(f"attention: mask {mask!r} is not one of {', '.join(MASKS)}")
    if mask == "causal" and sizes["q_len"] != sizes["kv_len"]:
        raise ValueError("attention: a causal mask needs q_len == kv_len (torch aligns is_causal to the top left)")


def flops(shape: Mapping[str, Any]) -> int:
    validate(shape)
    full = 4 * int(shape["batch"]) * int(shape["heads"]) * int(shape["q_len"]) * int(shape["kv_len"])
    full *= int(shape["head_dim"])
    return full // 2 if shape.get("mask") == "causal" else full


def label(shape: Mapping[str, Any]) -> str:
    return (
        f"b{shape['batch']}_h{shape['heads']}_kv{shape['kv_heads']}_q{shape['q_len']}_k{shape['kv_len']}"
        f"_d{shape['head_dim']}_{shape.get('mask', 'none')}"
    )


def workload_elements(shape: Mapping[str, Any]) -> tuple[int, int]:
    """(elements of Q, K, V and the output together, elements of the largest input): for the memory estimate."""
    b, h, hkv = int(shape["batch"]), int(shape["heads"]), int(shape["kv_heads"])
    sq, skv, d = int(shape["q_len"]), int(shape["kv_len"]), int(shape["head_dim"])
    q_out, kv = b * h * sq * d, b * hkv * skv * d
    return 2 * q_out + 2 * kv, max(q_out, kv)


def _verify_extent(shape: Mapping[str, Any]) -> tuple[int, int]:
    """(head pairs, query rows) that the check compares."""
    return min(int(shape["batch"]) * int(shape["heads"]), VERIFY_HEADS), min(int(shape["q_len"]), VERIFY_QUERIES)


def reference_flops(shape: Mapping[str, Any]) -> int:
    """FLOPs of the host float64 reference (a few heads, a few query rows, every key)."""
    pairs, rows = _verify_extent(shape)
    return 4 * pairs * rows * int(shape["kv_len"]) * int(shape["head_dim"])


def _attn(
    kind: str, q: int, kv: int, s: int, b: int = 1, mask: str = "causal", sq: int | None = None
) -> dict[str, Any]:
    return {
        "model": kind,
        "batch": b,
        "heads": q,
        "kv_heads": kv,
        "q_len": s if sq is None else sq,
        "kv_len": s,
        "head_dim": 128,
        "mask": mask,
    }


SHAPE_SETS: dict[str, list[dict[str, Any]]] = {
    # Llama-2-7B: 32 heads, 32 KV heads (no GQA), head dim 128, context 4096
    "llama2-7b-prefill": [_attn("llama2-7b", 32, 32, s) for s in (256, 512, 1024, 2048, 4096)],
    "llama2-7b-decode": [
        _attn("llama2-7b", 32, 32, s, b, "none", 1) for s in (1024, 4096) for b in (8, 1, 32) if (s, b) != (1024, 32)
    ],
    # Llama-2-70B / Llama-3-70B: 64 query heads, 8 KV heads (GQA), head dim 128, context 4096 / 8192
    "llama-70b-prefill": [_attn("llama-70b", 64, 8, s) for s in (256, 512, 2048, 4096, 8192)],
    "llama-70b-decode": [
        _attn("llama-70b", 64, 8, s, b, "none", 1) for s in (1024, 8192) for b in (8, 1, 32) if (s, b) != (1024, 32)
    ],
}


def detect_backend(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, causal: bool, gqa: bool, run: Any = None
) -> dict[str, str]:
    """Which SDPA backend runs these inputs: ``{"name": ..., "method": ...}``.

    There is no public API. ``scaled_dot_product_attention`` (aten/src/ATen/native/transformers/attention.cpp)
    asks ``_fused_sdp_choice_stub`` for the device type, with the same arguments, and runs the backend it
    returns; ``torch._fused_sdp_choice`` is that stub as an op (CPU: ``_fused_sdp_choice_cpp``, flash_attention
    or math; CUDA/ROCm: ``select_sdp_backend``, which honours the ``sdpa_kernel`` / ``torch.backends.cuda``
    enable flags and the priority order). So on CPU and CUDA its answer is the backend that ran. On CUDA the
    answer is confirmed by running once under ``sdpa_kernel([that backend])``. Other devices (MPS, XPU, Ascend…)
    may dispatch SDPA in their own plugin: their answer is recorded with that caveat, and a device that cannot
    answer is recorded as "unknown" with the reason."""
    try:
        from torch.nn.attention import SDPBackend

        chosen = SDPBackend(int(torch._fused_sdp_choice(q, k, v, None, 0.0, causal, enable_gqa=gqa)))
        name = chosen.name.lower()
    except Exception as e:  # noqa: BLE001 - a private op: any failure means "cannot tell", with the reason
        return {"name": "unknown", "method": f"torch._fused_sdp_choice failed: {type(e).__name__}: {_line(e)}"}
    kind = q.device.type
    if kind == "cpu":
        return {"name": name, "method": "torch._fused_sdp_choice (ATen's CPU selection: flash_attention or math)"}
    if kind != "cuda":
        return {
            "name": name,
            "method": f"torch._fused_sdp_choice on {kind}: the device's plugin may dispatch SDPA itself",
        }
    if run is None or name in ("error", "overrideable"):
        return {"name": name, "method": "torch._fused_sdp_choice (CUDA select_sdp_backend)"}
    try:
        from torch.nn.attention import sdpa_kernel

        with sdpa_kernel([chosen]):
            run()
    except Exception as e:  # noqa: BLE001 - the chosen backend failed alone: say so, keep the dispatcher's answer
        return {
            "name": name,
            "method": f"torch._fused_sdp_choice; not confirmed: alone under sdpa_kernel it raised "
            f"{type(e).__name__}: {_line(e)}",
        }
    return {"name": name, "method": "torch._fused_sdp_choice, confirmed under sdpa_kernel([that backend])"}


def _line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else ""


def build(
    shape: Mapping[str, Any], dtype: torch.dtype, dtype_name: str, device: torch.device, generator: torch.Generator
) -> Workload:
    validate(shape)
    b, h, hkv = int(shape["batch"]), int(shape["heads"]), int(shape["kv_heads"])
    sq, skv, d = int(shape["q_len"]), int(shape["kv_len"]), int(shape["head_dim"])
    causal = shape.get("mask") == "causal"
    gqa = hkv != h
    group = h // hkv
    q = randn((b, h, sq, d), dtype, device, generator)
    k = randn((b, hkv, skv, d), dtype, device, generator)
    v = randn((b, hkv, skv, d), dtype, device, generator)

    def run() -> torch.Tensor:
        return torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=causal, enable_gqa=gqa)

    pairs, rows = _verify_extent(shape)

    def verify() -> Check:
        """One call; then ``pairs`` random (batch, query head) pairs and ``rows`` random query positions are
        recomputed on the host in float64 from Q, K, V copied there in their own dtype: softmax(q·Kᵀ/√D + causal
        mask)·V, query head j reading KV head j // (H / H_kv)."""
        out = run()
        flat = sample_indices(b * h, pairs, generator)
        picked_rows = sample_indices(sq, rows, generator)
        batches, heads = (flat // h).tolist(), (flat % h).tolist()
        rows_dev = picked_rows.to(device)
        picked = torch.stack([out[i, j].index_select(0, rows_dev) for i, j in zip(batches, heads, strict=True)])

        def reference() -> torch.Tensor:
            results = []
            for i, j in zip(batches, heads, strict=True):
                q64 = host64(q[i, j].index_select(0, rows_dev))
                k64, v64 = host64(k[i, j // group]), host64(v[i, j // group])
                scores = (q64 @ k64.T) / math.sqrt(d)
                if causal:  # top-left aligned, S_q == S_kv: query row r sees keys 0..r
                    hidden = torch.arange(skv).unsqueeze(0) > picked_rows.unsqueeze(1)
                    scores = scores.masked_fill(hidden, float("-inf"))
                results.append(torch.softmax(scores, dim=-1) @ v64)
            return torch.stack(results)

        return check_against_host_reference(
            picked,
            reference,
            dtype_name,
            f"{len(flat)} random (batch, head) pairs x {len(picked_rows)} of {sq} queries",
        )

    workload = Workload(run=run, verify=verify, footprint_bytes=tensor_bytes(q, k, v) + tensor_bytes(q), keep=[q, k, v])
    workload.backend = detect_backend(q, k, v, causal, gqa, run)
    return workload
