"""Recurrent layers, forward (inference): torch.nn.RNN (tanh / ReLU), LSTM, GRU; one layer, unidirectional.

FLOPs, matrix part only: layers · directions · T · 2 · B · G · H · (I + H), G = 4 (LSTM), 3 (GRU), 1 (RNN).
Unlike DeepBench (which excludes the input projection W·x because it "can be calculated as one large
multiply"), this counts it, because torch's fused kernels compute and time it. Element-wise gate work is not
counted (frameworks approximate the non-linearities). With I = H our count is twice DeepBench's for LSTM and
GRU (16·T·N·H² vs 8·T·N·H² for LSTM) and about twice for plain RNNs (4·T·N·H² vs 2·T·N·H² + T·N·H).
Shape sets follow DeepBench's rnn_problems.h (hidden, batch, timesteps), with input size = hidden.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from npucheck.kernels.base import (
    REFERENCE_DEVICE,
    Check,
    Workload,
    check_against_host_reference,
    host64,
    randn,
    tensor_bytes,
)

__all__ = [
    "build",
    "FAMILIES",
    "FLOP_CONVENTION",
    "flops",
    "GATES",
    "label",
    "make_module",
    "REFERENCE_FLOP_BUDGET",
    "reference_flops",
    "SHAPE_SETS",
    "VERIFY_BATCH",
    "verify_extent",
    "VERIFY_MIN_STEPS",
    "VERIFY_STEPS",
    "VERSION",
]


VERSION = 1
FLOP_CONVENTION = "layers*dirs*seq_len*2*batch*gates*hidden*(input+hidden)"
GATES = {"rnn_tanh": 1, "rnn_relu": 1, "lstm": 4, "gru": 3}
FAMILIES = {"rnn_tanh": "rnn", "rnn_relu": "rnn", "lstm": "lstm", "gru": "gru"}
VERIFY_BATCH = 2
"""Batch rows checked against the host reference (rows are independent)."""
VERIFY_STEPS = 16
"""Time steps checked: a prefix, since the recurrence is causal (out[:t] depends only on x[:t] and the state)."""
VERIFY_MIN_STEPS = 4
REFERENCE_FLOP_BUDGET = 4e9
"""Host float64 multiply-adds × 2 allowed for one reference; large layers get fewer steps (never under
VERIFY_MIN_STEPS)."""


def verify_extent(kernel: str, shape: Mapping[str, Any]) -> tuple[int, int]:
    """(time steps, batch rows) of the output that the check compares with the host reference."""
    batch = min(int(shape["batch"]), VERIFY_BATCH)
    per_step = flops(kernel, {**shape, "seq_len": 1, "batch": batch})
    steps = max(VERIFY_MIN_STEPS, min(VERIFY_STEPS, int(REFERENCE_FLOP_BUDGET // max(per_step, 1))))
    return min(int(shape["seq_len"]), steps), batch


def reference_flops(kernel: str, shape: Mapping[str, Any]) -> int:
    """FLOPs of the host float64 reference."""
    steps, batch = verify_extent(kernel, shape)
    return flops(kernel, {**shape, "seq_len": steps, "batch": batch})


def flops(kernel: str, shape: Mapping[str, Any]) -> int:
    hidden, inp = int(shape["hidden"]), int(shape["input"])
    return (
        int(shape.get("layers", 1))
        * int(shape["seq_len"])
        * 2
        * int(shape["batch"])
        * GATES[kernel]
        * hidden
        * (inp + hidden)
    )


def label(shape: Mapping[str, Any]) -> str:
    layers = int(shape.get("layers", 1))
    return f"h{shape['hidden']}_b{shape['batch']}_t{shape['seq_len']}_i{shape['input']}" + (
        f"_l{layers}" if layers != 1 else ""
    )


def _rnn(hidden: int, batch: int, seq_len: int) -> dict[str, Any]:
    return {"hidden": hidden, "batch": batch, "seq_len": seq_len, "input": hidden, "layers": 1}


SHAPE_SETS: dict[str, dict[str, list[dict[str, Any]]]] = {
    "rnn": {
        "deepbench-train": [_rnn(h, b, 50) for h in (1760, 2048, 2560) for b in (16, 32, 64, 128)],
        "deepbench-device": [_rnn(32, 1, 672), _rnn(64, 1, 96)],
        "small": [_rnn(256, 16, 50), _rnn(512, 32, 50), _rnn(1024, 32, 50)],
    },
    "lstm": {
        "deepbench-train": (
            [_rnn(h, b, 25) for h in (512, 1024, 2048, 4096) for b in (16, 32, 64, 128)]
            + [_rnn(1536, b, 50) for b in (8, 16, 32)]
            + [_rnn(256, b, 150) for b in (16, 32, 64)]
        ),
        "deepbench-server": (
            [_rnn(h, b, 25) for h in (512, 1024, 2048) for b in (1, 2, 4)]
            + [_rnn(1536, b, 50) for b in (1, 2, 4)]
            + [_rnn(256, b, 150) for b in (1, 2, 4)]
        ),
        "deepbench-device": [_rnn(256, 1, 150)],
        "small": [_rnn(256, 16, 25), _rnn(512, 32, 50), _rnn(1024, 32, 25)],
    },
    "gru": {
        "deepbench-train": (
            [_rnn(h, 32, t) for h in (2816, 2048, 1536, 2560) for t in (1500, 750, 375, 187)]
            + [_rnn(512, 32, 1)]
            + [_rnn(1024, b, 1500) for b in (32, 64)]
        ),
        "deepbench-server": (
            [_rnn(h, b, t) for h in (2816, 2048, 1536, 2560) for b in (1, 2, 4) for t in (1500, 750, 375, 187)]
            + [_rnn(512, b, 1) for b in (1, 2, 4)]
            + [_rnn(1024, b, 1500) for b in (1, 2, 4)]
        ),
        "small": [_rnn(256, 16, 25), _rnn(512, 32, 50), _rnn(1024, 32, 25)],
    },
}


def make_module(kernel: str, shape: Mapping[str, Any], **factory: Any) -> torch.nn.Module:
    inp, hidden, layers = int(shape["input"]), int(shape["hidden"]), int(shape.get("layers", 1))
    if kernel == "lstm":
        return torch.nn.LSTM(inp, hidden, layers, **factory)
    if kernel == "gru":
        return torch.nn.GRU(inp, hidden, layers, **factory)
    return torch.nn.RNN(inp, hidden, layers, nonlinearity="relu" if kernel == "rnn_relu" else "tanh", **factory)


def build(
    kernel: str,
    shape: Mapping[str, Any],
    dtype: torch.dtype,
    dtype_name: str,
    device: torch.device,
    generator: torch.Generator,
) -> Workload:
    module = make_module(kernel, shape)
    with torch.no_grad():
        for param in module.parameters():  # seeded, instead of torch's global RNG
            param.copy_(
                randn(
                    tuple(param.shape),
                    torch.float32,
                    torch.device("cpu"),
                    _cpu_twin(generator),
                    scale=int(shape["hidden"]) ** -0.5,
                )
            )
    module = module.to(device=device, dtype=dtype).eval()
    layers, batch, hidden = int(shape.get("layers", 1)), int(shape["batch"]), int(shape["hidden"])
    x = randn((int(shape["seq_len"]), batch, int(shape["input"])), dtype, device, generator)
    h0 = randn((layers, batch, hidden), dtype, device, generator, scale=0.5)
    state: Any = (h0, randn((layers, batch, hidden), dtype, device, generator, scale=0.5)) if kernel == "lstm" else h0

    def run() -> torch.Tensor:
        return module(x, state)[0]

    steps, rows = verify_extent(kernel, shape)

    def verify() -> Check:
        """One call; then the first ``steps`` time steps of the first ``rows`` batch rows are recomputed on the
        host in float64, from the weights, inputs and initial state copied there in their own dtype."""
        out = run()
        picked = out[:steps, :rows]

        def reference() -> torch.Tensor:
            host = make_module(kernel, shape, device="meta", dtype=torch.float64).to_empty(device=REFERENCE_DEVICE)
            with torch.no_grad():
                for ref_param, param in zip(host.parameters(), module.parameters(), strict=True):
                    ref_param.copy_(host64(param))
            ref_state = (
                tuple(host64(s[:, :rows]) for s in state) if isinstance(state, tuple) else host64(state[:, :rows])
            )
            return host.eval()(host64(x[:steps, :rows]), ref_state)[0]

        return check_against_host_reference(
            picked, reference, dtype_name, f"first {steps} of {x.shape[0]} steps, {rows} of {batch} batch rows"
        )

    weights = tensor_bytes(*module.parameters())
    return Workload(run=run, verify=verify, footprint_bytes=weights + 2 * tensor_bytes(x), keep=[module, x, state])


def _cpu_twin(generator: torch.Generator) -> torch.Generator:
    """A CPU generator derived from ``generator`` (module parameters are initialised on the CPU)."""
    twin = torch.Generator()
    twin.manual_seed(int(torch.randint(0, 2**62, (1,), generator=generator, device=generator.device)))
    return twin
