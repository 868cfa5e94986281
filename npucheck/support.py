"""The terminal-chip support check: do CNN, RNN and LSTM (and GRU) run in FP16 on the device and give the right
answer?

Each family is supported only if every one of its checks ran, left its output on the device under test, and
matched a float64 (float32 on MPS) reference computed from the same inputs. Limitation: a backend that silently
computes an op on the host and copies the result back (MPS fallback, some plugins) cannot be told apart here.
"""

from __future__ import annotations

import copy
from typing import Any, Callable

import torch

from npucheck.kernels import KERNELS, TORCH_DTYPES, build_workload
from npucheck.kernels.base import Check, compare, generator_for, randn, reference_dtype

SUPPORT_DTYPE = "fp16"


def _kernel_check(kernel: str, shape: dict[str, Any]) -> Callable[[torch.device, int], tuple[Check, torch.device]]:
    def check(device: torch.device, seed: int) -> tuple[Check, torch.device]:
        case = KERNELS[kernel].case(SUPPORT_DTYPE, shape, "support")
        workload = build_workload(case, device, seed)
        result = workload.verify()
        return result, workload.run().device

    return check


def _conv_block(device: torch.device, seed: int) -> tuple[Check, torch.device]:
    """conv-BN-ReLU-conv-ReLU-pool-linear, as a small CNN would run it."""
    generator = generator_for("support/conv_block", seed, device)
    with torch.random.fork_rng(devices=[]):  # seeded parameters without disturbing the caller's RNG
        torch.manual_seed(seed)
        model = torch.nn.Sequential(
            torch.nn.Conv2d(16, 32, 3, padding=1), torch.nn.BatchNorm2d(32), torch.nn.ReLU(),
            torch.nn.Conv2d(32, 32, 3, padding=1), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1),
            torch.nn.Flatten(), torch.nn.Linear(32, 10)).eval()
    reference = copy.deepcopy(model).to(device=device, dtype=reference_dtype(device))
    model = model.to(device=device, dtype=TORCH_DTYPES[SUPPORT_DTYPE])
    x = randn((4, 16, 32, 32), TORCH_DTYPES[SUPPORT_DTYPE], device, generator)
    out = model(x)
    return compare(out, reference(x.to(reference_dtype(device))), SUPPORT_DTYPE, "whole output"), out.device


_SMALL_RNN = {"hidden": 64, "batch": 4, "seq_len": 16, "input": 64, "layers": 1}
CHECKS: dict[str, list[tuple[str, Callable[[torch.device, int], tuple[Check, torch.device]]]]] = {
    "cnn": [("conv2d", _kernel_check("conv2d", {"n": 2, "c": 16, "h": 32, "w": 32, "k": 32, "r": 3, "s": 3,
                                                 "stride_h": 1, "stride_w": 1, "pad_h": 1, "pad_w": 1,
                                                 "groups": 1})),
            ("conv_block", _conv_block)],
    "rnn": [("rnn_tanh", _kernel_check("rnn_tanh", _SMALL_RNN)), ("rnn_relu", _kernel_check("rnn_relu", _SMALL_RNN))],
    "lstm": [("lstm", _kernel_check("lstm", _SMALL_RNN))],
    "gru": [("gru", _kernel_check("gru", _SMALL_RNN))],
}


def check_support(device: torch.device, seed: int = 0, checks: dict[str, list[Any]] | None = None
                  ) -> dict[str, dict[str, Any]]:
    """The ``support`` object of a result profile: one entry per family."""
    result = {}
    for family, family_checks in (checks or CHECKS).items():
        outcomes = []
        for name, check in family_checks:
            outcome: dict[str, Any] = {"name": name, "ok": False, "rel_error": None, "tolerance": None, "error": None}
            try:
                with torch.inference_mode():
                    verdict, out_device = check(device, seed)
                outcome.update(rel_error=verdict.rel_error, tolerance=verdict.tolerance, ok=verdict.ok)
                if out_device.type != device.type:
                    outcome.update(ok=False, error=f"output landed on {out_device}, not on {device}")
                elif not verdict.ok:
                    outcome["error"] = f"result differs from the reference: {verdict.rel_error:.2e} > {verdict.tolerance:.0e}"
            except Exception as e:  # noqa: BLE001 - an op that cannot run means "not supported", with the reason
                outcome["error"] = f"{type(e).__name__}: {str(e).strip().splitlines()[0] if str(e).strip() else ''}"
            outcomes.append(outcome)
        supported = all(o["ok"] for o in outcomes)
        failed = [f"{o['name']}: {o['error']}" for o in outcomes if not o["ok"]]
        result[family] = {"supported": supported, "dtype": SUPPORT_DTYPE, "device": str(device), "checks": outcomes,
                          "reason": None if supported else "; ".join(failed)}
    return result
