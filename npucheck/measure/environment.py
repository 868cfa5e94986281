"""What the run happened on and with: host, CPU, torch build, driver, the flags and threads that change results."""

from __future__ import annotations

import os
import platform
import socket
from pathlib import Path
from typing import Any

import psutil
import torch

from npucheck.measure.devices import cpu_model

__all__ = ["capture", "cpu_flags", "CPU_FLAGS_OF_INTEREST", "driver_version", "ENV_VARS_OF_INTEREST", "torch_flags"]


CPU_FLAGS_OF_INTEREST = (
    "avx2",
    "fma",
    "f16c",
    "avx512f",
    "avx512_bf16",
    "avx512_fp16",
    "amx_tile",
    "amx_bf16",
    "amx_fp16",
    "asimd",
    "fphp",
    "asimdhp",
    "bf16",
    "sve",
)
ENV_VARS_OF_INTEREST = (
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "CUDA_VISIBLE_DEVICES",
    "HIP_VISIBLE_DEVICES",
    "ROCR_VISIBLE_DEVICES",
    "ZE_AFFINITY_MASK",
    "ASCEND_RT_VISIBLE_DEVICES",
    "PYTORCH_TUNABLEOP_ENABLED",
    "CUBLAS_WORKSPACE_CONFIG",
    "NVIDIA_TF32_OVERRIDE",
    "TORCH_ALLOW_TF32_CUBLAS_OVERRIDE",
    "DNNL_MAX_CPU_ISA",
    "ONEDNN_MAX_CPU_ISA",
    "KMP_AFFINITY",
    "TORCH_DEVICE_BACKEND_AUTOLOAD",
)


def cpu_flags(proc_root: Path = Path("/proc")) -> list[str]:
    try:
        for line in (proc_root / "cpuinfo").read_text().splitlines():
            if line.startswith(("flags", "Features")):
                present = set(line.split(":", 1)[1].split())
                return [flag for flag in CPU_FLAGS_OF_INTEREST if flag in present]
    except OSError:
        pass
    return []


def torch_flags() -> dict[str, Any]:
    """Flags that change what a matmul or convolution computes or how fast."""
    flags: dict[str, Any] = {
        "float32_matmul_precision": _read(torch.get_float32_matmul_precision),
        "mkldnn_enabled": torch.backends.mkldnn.enabled,
        "deterministic_algorithms": torch.are_deterministic_algorithms_enabled(),
    }
    matmul = torch.backends.cuda.matmul
    for name in ("allow_tf32", "allow_fp16_reduced_precision_reduction", "allow_bf16_reduced_precision_reduction"):
        flags[f"cuda_matmul_{name}"] = _read(lambda: getattr(matmul, name))  # noqa: B023 - called at once, inside this iteration
    flags["cudnn_allow_tf32"] = _read(lambda: torch.backends.cudnn.allow_tf32)
    flags["cudnn_benchmark"] = torch.backends.cudnn.benchmark
    flags["cudnn_deterministic"] = torch.backends.cudnn.deterministic
    return flags


def driver_version() -> str | None:
    if not torch.version.cuda or not _read(torch.cuda.is_available):
        return None
    from npucheck.measure.power.nvml import driver_version as nvml_driver_version  # NVML only through power.nvml

    return nvml_driver_version()


def capture() -> dict[str, Any]:
    """The ``environment`` object of a result profile."""
    parallel = torch.__config__.parallel_info().splitlines()
    return {
        "hostname": socket.gethostname(),
        "os": platform.platform(),
        "python": platform.python_version(),
        "cpu": {
            "model": cpu_model() or platform.processor(),
            "physical_cores": psutil.cpu_count(logical=False),
            "logical_cores": psutil.cpu_count(logical=True),
            "flags": cpu_flags(),
            "torch_cpu_capability": _read(torch.backends.cpu.get_cpu_capability),
        },
        "memory_bytes": psutil.virtual_memory().total,
        "torch": {
            "version": torch.__version__,
            "cuda": torch.version.cuda,
            "hip": torch.version.hip,
            "cudnn": _read(torch.backends.cudnn.version),
            "mkldnn": torch.backends.mkldnn.is_available(),
            "parallel_info": [line.strip() for line in parallel if line.strip()][:8],
        },
        "driver": driver_version(),
        "torch_flags": torch_flags(),
        "threads": {"intra_op": torch.get_num_threads(), "inter_op": torch.get_num_interop_threads()},
        "env_vars": {name: os.environ[name] for name in ENV_VARS_OF_INTEREST if name in os.environ},
    }


def _read(fn: Any) -> Any:
    try:
        return fn()
    except Exception:  # noqa: BLE001
        return None
