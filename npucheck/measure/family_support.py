"""The terminal-chip support check: do CNN, RNN and LSTM (and GRU, and transformer attention) run in FP16 on the
device and give the right answer?

Each family is supported only if every one of its checks ran, left its output on the device under test, and
matched a float64 reference computed on the host from the same inputs (copied there in fp16: the device is never
asked for float64, which Ascend NPUs, Intel Arc and Apple GPUs lack). A kernel that fails to run, gives a wrong
answer or lands off the device makes its family unsupported (False); a reference that cannot be computed on the
host makes the check unchecked and, failing nothing else, the family unchecked (None), never unsupported.
Limitation: a backend that silently computes an op on the host and copies the result back (MPS fallback, some
plugins) cannot be told apart here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from npucheck.kernels import KERNELS, TORCH_DTYPES, build_workload
from npucheck.kernels.base import Check, check_against_host_reference, generator_for, host64, randn, to_host

__all__ = ["check_support", "CHECKS", "SUPPORT_DTYPE"]


SUPPORT_DTYPE = "fp16"


def _kernel_check(kernel: str, shape: dict[str, Any]) -> Callable[[torch.device, int], tuple[Check, torch.device]]:
    def check(device: torch.device, seed: int) -> tuple[Check, torch.device]:
        case = KERNELS[kernel].case(SUPPORT_DTYPE, shape, "support")
        workload = build_workload(case, device, seed)
        result = workload.verify()
        return result, workload.run().device

    return check


def _conv_block_model() -> torch.nn.Sequential:
    """conv-BN-ReLU-conv-ReLU-pool-linear, as a small CNN would run it."""
    return torch.nn.Sequential(
        torch.nn.Conv2d(16, 32, 3, padding=1),
        torch.nn.BatchNorm2d(32),
        torch.nn.ReLU(),
        torch.nn.Conv2d(32, 32, 3, padding=1),
        torch.nn.ReLU(),
        torch.nn.AdaptiveAvgPool2d(1),
        torch.nn.Flatten(),
        torch.nn.Linear(32, 10),
    ).eval()


def _build_conv_block(device: torch.device, seed: int) -> tuple[torch.nn.Module, torch.Tensor]:
    """The block and its input on the device under test, in fp16, seeded."""
    generator = generator_for("support/conv_block", seed, device)
    with torch.random.fork_rng(devices=[]):  # seeded parameters without disturbing the caller's RNG
        torch.manual_seed(seed)
        model = _conv_block_model()
    model = model.to(device=device, dtype=TORCH_DTYPES[SUPPORT_DTYPE])
    x = randn((4, 16, 32, 32), TORCH_DTYPES[SUPPORT_DTYPE], device, generator)
    return model, x


def _conv_block(device: torch.device, seed: int) -> tuple[Check, torch.device]:
    model, x = _build_conv_block(device, seed)
    out = model(x)

    def reference() -> torch.Tensor:
        host = _conv_block_model().to(torch.float64)
        host.load_state_dict(
            {
                name: host64(value) if value.is_floating_point() else to_host(value)
                for name, value in model.state_dict().items()
            }
        )
        return host(host64(x))

    return check_against_host_reference(out, reference, SUPPORT_DTYPE, "whole output"), out.device


_SMALL_RNN = {"hidden": 64, "batch": 4, "seq_len": 16, "input": 64, "layers": 1}
_SMALL_ATTENTION = {"batch": 2, "heads": 8, "kv_heads": 2, "q_len": 64, "kv_len": 64, "head_dim": 64, "mask": "causal"}
"""Transformer check 1: a causal prefill with grouped KV heads (4 query heads per KV head)."""
_SMALL_DECODE = {"batch": 2, "heads": 8, "kv_heads": 8, "q_len": 1, "kv_len": 128, "head_dim": 64, "mask": "none"}
"""Transformer check 2: one decoding query against a KV cache, no mask."""
CHECKS: dict[str, list[tuple[str, Callable[[torch.device, int], tuple[Check, torch.device]]]]] = {
    "cnn": [
        (
            "conv2d",
            _kernel_check(
                "conv2d",
                {
                    "n": 2,
                    "c": 16,
                    "h": 32,
                    "w": 32,
                    "k": 32,
                    "r": 3,
                    "s": 3,
                    "stride_h": 1,
                    "stride_w": 1,
                    "pad_h": 1,
                    "pad_w": 1,
                    "groups": 1,
                },
            ),
        ),
        ("conv_block", _conv_block),
    ],
    "rnn": [("rnn_tanh", _kernel_check("rnn_tanh", _SMALL_RNN)), ("rnn_relu", _kernel_check("rnn_relu", _SMALL_RNN))],
    "lstm": [("lstm", _kernel_check("lstm", _SMALL_RNN))],
    "gru": [("gru", _kernel_check("gru", _SMALL_RNN))],
    "transformer": [
        ("attention_causal_gqa", _kernel_check("attention", _SMALL_ATTENTION)),
        ("attention_decode", _kernel_check("attention", _SMALL_DECODE)),
    ],
}


def _outcome(
    name: str, check: Callable[[torch.device, int], tuple[Check, torch.device]], device: torch.device, seed: int
) -> dict[str, Any]:
    """One check's entry: status "ok", "wrong", "off-device", "error" (the kernel failed to run) or "unchecked"
    (the host reference could not be computed; ``reason`` says why). ``ok`` is True only for "ok"."""
    outcome: dict[str, Any] = {
        "name": name,
        "ok": False,
        "status": "error",
        "rel_error": None,
        "tolerance": None,
        "error": None,
        "reason": None,
    }
    try:
        with torch.inference_mode():
            verdict, out_device = check(device, seed)
    except Exception as e:  # noqa: BLE001 - an op that cannot run means "not supported", with the reason
        outcome["error"] = f"{type(e).__name__}: {str(e).strip().splitlines()[0] if str(e).strip() else ''}"
        return outcome
    outcome.update(rel_error=verdict.rel_error, tolerance=verdict.tolerance)
    if out_device.type != device.type:
        outcome.update(status="off-device", error=f"output landed on {out_device}, not on {device}")
    elif verdict.ok is None:
        outcome.update(status="unchecked", reason=verdict.reason)
    elif not verdict.ok:
        outcome.update(
            status="wrong",
            error=f"result differs from the reference: {verdict.rel_error:.2e} > {verdict.tolerance:.0e}",
        )
    else:
        outcome.update(status="ok", ok=True)
    return outcome


def check_support(
    device: torch.device, seed: int = 0, checks: dict[str, list[Any]] | None = None
) -> dict[str, dict[str, Any]]:
    """The ``support`` object of a result profile: one entry per family. ``supported`` is True (every check ok),
    False (a check failed to run, was wrong or ran off the device) or None (nothing failed but some reference could
    not be computed: unchecked, with the reason)."""
    result = {}
    for family, family_checks in (checks or CHECKS).items():
        outcomes = [_outcome(name, check, device, seed) for name, check in family_checks]
        failed = [o for o in outcomes if o["status"] not in ("ok", "unchecked")]
        unchecked = [o for o in outcomes if o["status"] == "unchecked"]
        supported = False if failed else (None if unchecked else True)
        reasons = [f"{o['name']}: {o['error']}" for o in failed] + [
            f"{o['name']}: unchecked ({o['reason']})" for o in unchecked
        ]
        result[family] = {
            "supported": supported,
            "dtype": SUPPORT_DTYPE,
            "device": str(device),
            "checks": outcomes,
            "reason": "; ".join(reasons) or None,
        }
    return result
