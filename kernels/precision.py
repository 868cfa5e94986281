"""Full IEEE fp32 for fp32 cases: every torch switch that lets an fp32 matmul, convolution or RNN run in TF32 or
bf16, set to full precision for the duration of a ``with`` block, and a description of the switches in force.

torch has two sets of switches, and a process may hold either:

* legacy (all versions): ``torch.backends.cuda.matmul.allow_tf32`` (cuBLAS), ``torch.backends.cudnn.allow_tf32``
  (cuDNN conv and RNN; **True by default**, so fp32 convolutions on Ampere and newer run in TF32 unless it is
  turned off), and ``torch.set_float32_matmul_precision`` ("highest" / "high" = TF32 / "medium" = bf16 on oneDNN).
* new (torch >= 2.9): ``fp32_precision`` = "ieee" | "tf32" | "bf16" | "none" on ``torch.backends`` (generic),
  ``torch.backends.cuda.matmul``, ``torch.backends.cudnn`` (+ ``.conv``, ``.rnn``), ``torch.backends.mkldnn``
  (+ ``.matmul``, ``.conv``, ``.rnn``; oneDNN on CPUs and Intel GPUs, where "bf16" runs fp32 matmuls in bf16).
  "none" means "inherit from the parent"; the generic setting is the root. Reading a legacy flag after the new API
  has set a state it cannot express raises RuntimeError in torch 2.13, so every read here is guarded.

Beyond the switches, the environment variable ``TORCH_ALLOW_TF32_CUBLAS_OVERRIDE=1`` makes cuBLAS use TF32 for
fp32 matmuls whatever the switches say (torch's CUDA environment-variable docs: "forces TF32 enablement, overrides
set_float32_matmul_precision setting"); no switch can undo it in a running process, so fp32 results cannot be
guaranteed true fp32 and :func:`fp32_precision_state` says so in ``reason``.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from typing import Any

import torch

__all__ = ["fp32_precision_state", "full_fp32_precision", "OVERRIDE_ENV", "RELATED_ENV"]


OVERRIDE_ENV = "TORCH_ALLOW_TF32_CUBLAS_OVERRIDE"
"""Forces TF32 in cuBLAS fp32 matmuls when set to a true value, overriding every switch."""

RELATED_ENV = ("NVIDIA_TF32_OVERRIDE", "HIPBLASLT_ALLOW_TF32")
"""Recorded beside it. Neither can force TF32 on: NVIDIA_TF32_OVERRIDE=0 turns TF32 off in NVIDIA's libraries;
on ROCm, hipBLASLt uses TF32 only when HIPBLASLT_ALLOW_TF32=1 *and* the switches allow it."""

# (backend, op) pairs of the new API, as torch's own modules name them.
_NEW_API_PAIRS = (
    ("generic", "all"),
    ("cuda", "all"),
    ("cuda", "matmul"),
    ("cuda", "conv"),
    ("cuda", "rnn"),
    ("mkldnn", "all"),
    ("mkldnn", "matmul"),
    ("mkldnn", "conv"),
    ("mkldnn", "rnn"),
)
_OPS = ("matmul", "conv", "rnn")


def _try(fn: Callable[[], Any]) -> Any:
    try:
        return fn()
    except Exception:  # noqa: BLE001 - a switch this torch lacks, or a legacy read refused after the new API was used
        return None


def _has_new_api() -> bool:
    return hasattr(torch._C, "_get_fp32_precision_getter") and hasattr(torch._C, "_set_fp32_precision_setter")


def _new_get(backend: str, op: str) -> str | None:
    return _try(lambda: str(torch._C._get_fp32_precision_getter(backend, op)))


def _new_set(backend: str, op: str, value: str) -> None:
    torch._C._set_fp32_precision_setter(backend, op, value)


def _legacy_reads() -> dict[str, Any]:
    return {
        "float32_matmul_precision": _try(torch.get_float32_matmul_precision),
        "cuda_matmul_allow_tf32": _try(lambda: bool(torch.backends.cuda.matmul.allow_tf32)),
        "cudnn_allow_tf32": _try(lambda: bool(torch.backends.cudnn.allow_tf32)),
    }


def _new_reads() -> dict[str, str | None]:
    if not _has_new_api():
        return {}
    return {f"{backend}.{op}": _new_get(backend, op) for backend, op in _NEW_API_PAIRS}


def _effective(new: dict[str, str | None], legacy: dict[str, Any]) -> dict[str, str | None]:
    """What precision an fp32 op of each backend gets: the op's own setting, else its backend's "all", else the
    generic root ("none" at the root is full fp32). Without the new API, from the legacy flags."""
    if new:
        resolved: dict[str, str | None] = {}
        for backend in ("cuda", "mkldnn"):
            for op in _OPS:
                chain = [new.get(f"{backend}.{op}"), new.get(f"{backend}.all"), new.get("generic.all")]
                if any(value is None for value in chain):
                    resolved[f"{backend}.{op}"] = None
                    continue
                value = next((v for v in chain if v != "none"), "ieee")
                resolved[f"{backend}.{op}"] = value
        return resolved
    precision = legacy.get("float32_matmul_precision")
    cublas = legacy.get("cuda_matmul_allow_tf32")
    cudnn = legacy.get("cudnn_allow_tf32")
    cudnn_value = None if cudnn is None else ("tf32" if cudnn else "ieee")
    return {
        "cuda.matmul": None if cublas is None else ("tf32" if cublas else "ieee"),
        "cuda.conv": cudnn_value,
        "cuda.rnn": cudnn_value,
        "mkldnn.matmul": {"highest": "ieee", "high": "ieee", "medium": "bf16"}.get(str(precision)),
    }


def _env_true(value: str | None) -> bool:
    return value is not None and value.strip().lower() not in ("", "0", "false", "no", "off")


def fp32_precision_state() -> dict[str, Any]:
    """The switches in force now, as plain JSON values.

    Keys: ``full_fp32`` (bool: every fp32 matmul/conv/RNN switch resolves to "ieee" and the override is not set),
    ``effective`` ({"cuda.matmul"|"cuda.conv"|"cuda.rnn"|"mkldnn.matmul"|…: "ieee"|"tf32"|"bf16"|None}),
    ``legacy`` (float32_matmul_precision, cuda_matmul_allow_tf32, cudnn_allow_tf32; None where unreadable),
    ``fp32_precision`` (the new API's raw settings, {} on torch < 2.9), ``env`` ({name: value or None} for
    TORCH_ALLOW_TF32_CUBLAS_OVERRIDE, NVIDIA_TF32_OVERRIDE, HIPBLASLT_ALLOW_TF32), ``override`` (bool) and
    ``reason`` (None, or why fp32 cases cannot be guaranteed true fp32).
    """
    legacy = _legacy_reads()
    new = _new_reads()
    effective = _effective(new, legacy)
    env = {name: os.environ.get(name) for name in (OVERRIDE_ENV, *RELATED_ENV)}
    override = _env_true(env[OVERRIDE_ENV])
    reduced = sorted(key for key, value in effective.items() if value != "ieee")
    reasons = []
    if override:
        reasons.append(
            f"{OVERRIDE_ENV}={env[OVERRIDE_ENV]} forces TF32 in cuBLAS fp32 matmuls whatever the switches "
            "say; fp32 results are not guaranteed true fp32"
        )
    if reduced:
        reasons.append(
            "fp32 precision switches not at full fp32: " + ", ".join(f"{key}={effective[key]}" for key in reduced)
        )
    return {
        "full_fp32": not reasons,
        "effective": effective,
        "legacy": legacy,
        "fp32_precision": new,
        "env": env,
        "override": override,
        "reason": "; ".join(reasons) or None,
    }


@contextlib.contextmanager
def full_fp32_precision() -> Iterator[dict[str, Any]]:
    """Within the block, fp32 matmuls, convolutions and RNNs run in full IEEE fp32 on every backend torch has a
    switch for (cuBLAS, cuDNN, oneDNN); every switch is restored on exit, exceptions included. Yields
    :func:`fp32_precision_state` as it stands inside the block (check its ``reason``: the cuBLAS override env var
    cannot be undone from here).

    Sets the legacy switches first (``set_float32_matmul_precision("highest")``, ``cuda.matmul.allow_tf32 = False``,
    ``cudnn.allow_tf32 = False``), then, where torch has it, every (backend, op) of the new ``fp32_precision`` API
    to "ieee". Restores the new API's raw settings (they are the store the legacy setters write to in torch >= 2.9),
    else the legacy values.
    """
    legacy = _legacy_reads()
    new = _new_reads()
    try:
        _try(lambda: torch.set_float32_matmul_precision("highest"))
        _try(lambda: setattr(torch.backends.cuda.matmul, "allow_tf32", False))
        _try(lambda: setattr(torch.backends.cudnn, "allow_tf32", False))
        for backend, op in _NEW_API_PAIRS if new else ():
            _try(lambda: _new_set(backend, op, "ieee"))  # noqa: B023 - called at once, inside this iteration
        yield fp32_precision_state()
    finally:
        # Legacy flags first (those readable on entry, so consistent with the table then), then any entry of the
        # new API's table that still differs: torch's legacy readers refuse a table last written through the new
        # API, so the table is written only where the legacy setters could not restore it.
        if legacy["float32_matmul_precision"] is not None:
            _try(lambda: torch.set_float32_matmul_precision(legacy["float32_matmul_precision"]))
        if legacy["cuda_matmul_allow_tf32"] is not None:
            _try(lambda: setattr(torch.backends.cuda.matmul, "allow_tf32", legacy["cuda_matmul_allow_tf32"]))
        if legacy["cudnn_allow_tf32"] is not None:
            _try(lambda: setattr(torch.backends.cudnn, "allow_tf32", legacy["cudnn_allow_tf32"]))
        for key, value in new.items():
            backend, op = key.split(".")
            if value is not None and _new_get(backend, op) != value:
                _try(lambda: _new_set(backend, op, value))  # noqa: B023 - called at once, inside this iteration
