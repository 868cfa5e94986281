"""Bytes of each kernel's operands and result, for its arithmetic intensity (FLOPs per byte) on the roofline.

One formula per kernel family, beside its FLOP formula (``flops`` in gemm.py, conv.py, rnn.py, memory.py).
Every tensor the call reads or writes counts once, in the case's dtype (``elem`` bytes an element): the compulsory
traffic of an ideal cache, so a case's intensity is the most it can have and the roofline bounds it from above.

* GEMM: (m·k + k·n)·elem + m·n·out (A, B and C; C is int32 for int8 and bf16 for fp8, else the inputs' dtype).
* conv2d: (N·C·H·W + K·(C/groups)·R·S + N·K·P·Q)·elem (image, filter, output).
* Recurrent layers: (T·B·I + weights + T·B·H + 2·states)·elem: the input sequence, every layer's weights and
  biases (G·H·(I_l + H + 2), I_l = I for the first layer, H after it), the output sequence, and the initial and
  final hidden states (and cell states for an LSTM: L·B·H each).
* attention: (2·B·H·S_q·D + 2·B·H_kv·S_kv·D)·elem (Q and the output; K and V with the grouped KV heads).
* memory: copy 2·N·elem, triad 3·N·elem (read + written, STREAM's convention; see memory.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from npucheck.kernels import conv, memory, rnn

__all__ = ["BYTE_CONVENTIONS", "case_bytes"]

BYTE_CONVENTIONS = {
    "gemm": "(m*k+k*n+m*n)*elem",
    "conv2d": "(n*c*h*w+k*(c/groups)*r*s+n*k*p*q)*elem",
    "recurrent": "(seq_len*batch*input+weights+seq_len*batch*hidden+2*states)*elem",
    "copy": "2*n*elem",
    "triad": "3*n*elem",
    "attention": "(2*batch*heads*q_len*head_dim+2*batch*kv_heads*kv_len*head_dim)*elem",
}


OUTPUT_BYTES = {"int8": 4, "fp8_e4m3": 2, "fp8_e5m2": 2}
"""Bytes of a GEMM output element where it is not the inputs' dtype: torch._int_mm returns int32, and npucheck's
torch._scaled_mm cases ask for bf16."""


def case_bytes(kernel: str, shape: Mapping[str, Any], dtype_name: str, elem: int) -> int:
    """Bytes of the operands and result of one call of ``kernel`` at ``shape``, ``elem`` bytes an element."""
    if kernel == "gemm":
        m, n, k = int(shape["m"]), int(shape["n"]), int(shape["k"])
        out = OUTPUT_BYTES.get(dtype_name, elem)  # int8 writes int32, fp8 writes bf16 (kernels/lowp.py)
        return (m * k + k * n) * elem + m * n * out
    if kernel == "conv2d":
        n, c, h, w = (int(shape[key]) for key in ("n", "c", "h", "w"))
        k, r, s, groups = int(shape["k"]), int(shape["r"]), int(shape["s"]), int(shape.get("groups", 1))
        p, q = conv.output_hw(shape)
        return (n * c * h * w + k * (c // groups) * r * s + n * k * p * q) * elem
    if kernel in rnn.GATES:
        gates = rnn.GATES[kernel]
        hidden, inp, layers = int(shape["hidden"]), int(shape["input"]), int(shape.get("layers", 1))
        batch, steps = int(shape["batch"]), int(shape["seq_len"])
        weights = gates * hidden * (inp + hidden + 2) + (layers - 1) * gates * hidden * (2 * hidden + 2)
        states = layers * batch * hidden * (2 if kernel == "lstm" else 1)
        return (steps * batch * inp + weights + steps * batch * hidden + 2 * states) * elem
    if kernel == "attention":
        batch, head_dim = int(shape["batch"]), int(shape["head_dim"])
        heads, kv_heads = int(shape["heads"]), int(shape.get("kv_heads", shape["heads"]))
        q_len, kv_len = int(shape["q_len"]), int(shape["kv_len"])
        return (2 * batch * heads * q_len * head_dim + 2 * batch * kv_heads * kv_len * head_dim) * elem
    if kernel in memory.NAMES:
        return memory.bytes_moved(kernel, shape, dtype_name)
    raise KeyError(f"no byte formula for kernel {kernel!r}")
