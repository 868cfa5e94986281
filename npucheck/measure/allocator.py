"""Put glibc's malloc in a known state before a CPU run, so CPU figures do not depend on the allocator's history.

glibc serves a request above ``M_MMAP_THRESHOLD`` (128 KiB at start) with a fresh ``mmap`` and unmaps it on
``free``; the next call maps it again and page-faults every page. The threshold rises by itself only after some
``free`` of an mmapped block under 32 MiB (the "dynamic mmap threshold"), so in a fresh process a convolution's
output and oneDNN's scratch are page-faulted on every call until something else happened to raise it. Measured on
the CI machine (2-vCPU AMD EPYC, torch 2.13.0+cpu, 2 threads), a 64-channel 3×3 fp32 conv in a fresh process:
56×56: 556 minor faults per call, 0.19 TFLOPS; 224×224: 7,217 faults per call, 0.22 TFLOPS; after the settings
below, 0 faults and 0.41 TFLOPS at both sizes.

Settings (``mallopt``; setting either also turns the dynamic adjustment off, so the state is fixed):

* ``M_MMAP_THRESHOLD`` = 32 MiB, glibc's maximum on 64-bit (``DEFAULT_MMAP_THRESHOLD_MAX``): blocks up to that
  come from the heap and are reused;
* ``M_TRIM_THRESHOLD`` = 1 GiB: freed heap memory up to that is kept rather than returned to the kernel and
  faulted in again.

Blocks above 32 MiB are still mapped per allocation; the runner counts minor page faults per timed case and flags a
case that faults. Other C libraries (musl) and other systems are left as they are, and the result says so.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import platform
from typing import Any

__all__ = ["M_MMAP_THRESHOLD", "M_TRIM_THRESHOLD", "MMAP_THRESHOLD_BYTES", "settle_malloc", "TRIM_THRESHOLD_BYTES"]


M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD_BYTES = 32 * 2**20
TRIM_THRESHOLD_BYTES = 2**30


def settle_malloc() -> dict[str, Any]:
    """Apply the settings above where the C library is glibc; returns what was done, for the environment."""
    libc_name, libc_version = platform.libc_ver()
    state: dict[str, Any] = {
        "libc": f"{libc_name} {libc_version}".strip() or None,
        "applied": False,
        "mmap_threshold_bytes": None,
        "trim_threshold_bytes": None,
        "reason": None,
    }
    if libc_name != "glibc":
        state["reason"] = "not glibc: the allocator is left as it is"
        return state
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
        mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
        mallopt.restype = ctypes.c_int
    except (OSError, AttributeError) as e:
        state["reason"] = f"mallopt unavailable: {e}"
        return state
    # mallopt returns 1 on success, 0 when it refuses the value
    mmap_ok = mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES) == 1
    trim_ok = mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES) == 1
    state.update(
        applied=mmap_ok and trim_ok,
        mmap_threshold_bytes=MMAP_THRESHOLD_BYTES if mmap_ok else None,
        trim_threshold_bytes=TRIM_THRESHOLD_BYTES if trim_ok else None,
    )
    if not state["applied"]:
        state["reason"] = "mallopt refused " + " and ".join(
            name for name, ok in (("M_MMAP_THRESHOLD", mmap_ok), ("M_TRIM_THRESHOLD", trim_ok)) if not ok
        )
    return state
