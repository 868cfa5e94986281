"""Recurrent layers, forward (inference): torch.nn.RNN (tanh / ReLU), LSTM, GRU; one layer, unidirectional.

FLOPs, matrix part only: layers · directions · T · 2 · B · G · H · (I + H), G = 4 (LSTM), 3 (GRU), 1 (RNN).
Unlike DeepBench (which excludes the input projection W·x because it "can be calculated as one large
multiply"), this counts it, because torch's fused kernels compute and time it. Element-wise gate work is not
counted (frameworks approximate the non-linearities). With I = H our count is twice DeepBench's for LSTM and
GRU (16·T·N·H² vs 8·T·N·H² for LSTM) and about twice for plain RNNs (4·T·N·H² vs 2·T·N·H² + T·N·H).
Shape sets follow DeepBench's rnn_problems.h (hidden, batch, timesteps), with input size = hidden.
"""

from __future__ import annotations

import copy
from typing import Any, Mapping

import torch

from npucheck.kernels.base import Check, Workload, compare, randn, reference_dtype, tensor_bytes

VERSION = 1
FLOP_CONVENTION = "layers*dirs*seq_len*2*batch*gates*hidden*(input+hidden)"
GATES = {"rnn_tanh": 1, "rnn_relu": 1, "lstm": 4, "gru": 3}
FAMILIES = {"rnn_tanh": "rnn", "rnn_relu": "rnn", "lstm": "lstm", "gru": "gru"}


def flops(kernel: str, shape: Mapping[str, Any]) -> int:
    hidden, inp = int(shape["hidden"]), int(shape["input"])
    return (int(shape.get("layers", 1)) * int(shape["seq_len"]) * 2 * int(shape["batch"]) * GATES[kernel]
            * hidden * (inp + hidden))


def label(shape: Mapping[str, Any]) -> str:
    layers = int(shape.get("layers", 1))
    return (f"h{shape['hidden']}_b{shape['batch']}_t{shape['seq_len']}_i{shape['input']}"
            + (f"_l{layers}" if layers != 1 else ""))


def _rnn(hidden: int, batch: int, seq_len: int) -> dict[str, Any]:
    return {"hidden": hidden, "batch": batch, "seq_len": seq_len, "input": hidden, "layers": 1}


SHAPE_SETS: dict[str, dict[str, list[dict[str, Any]]]] = {
    "rnn": {
        "deepbench-train": [_rnn(h, b, 50) for h in (1760, 2048, 2560) for b in (16, 32, 64, 128)],
        "deepbench-device": [_rnn(32, 1, 672), _rnn(64, 1, 96)],
        "small": [_rnn(256, 16, 50), _rnn(512, 32, 50), _rnn(1024, 32, 50)],
    },
    "lstm": {
        "deepbench-train": ([_rnn(h, b, 25) for h in (512, 1024, 2048, 4096) for b in (16, 32, 64, 128)]
                            + [_rnn(1536, b, 50) for b in (8, 16, 32)] + [_rnn(256, b, 150) for b in (16, 32, 64)]),
        "deepbench-server": ([_rnn(h, b, 25) for h in (512, 1024, 2048) for b in (1, 2, 4)]
                             + [_rnn(1536, b, 50) for b in (1, 2, 4)] + [_rnn(256, b, 150) for b in (1, 2, 4)]),
        "deepbench-device": [_rnn(256, 1, 150)],
        "small": [_rnn(256, 16, 25), _rnn(512, 32, 50), _rnn(1024, 32, 25)],
    },
    "gru": {
        "deepbench-train": ([_rnn(h, 32, t) for h in (2816, 2048, 1536, 2560) for t in (1500, 750, 375, 187)]
                            + [_rnn(512, 32, 1)] + [_rnn(1024, b, 1500) for b in (32, 64)]),
        "deepbench-server": ([_rnn(h, b, t) for h in (2816, 2048, 1536, 2560) for b in (1, 2, 4)
                              for t in (1500, 750, 375, 187)]
                             + [_rnn(512, b, 1) for b in (1, 2, 4)] + [_rnn(1024, b, 1500) for b in (1, 2, 4)]),
        "small": [_rnn(256, 16, 25), _rnn(512, 32, 50), _rnn(1024, 32, 25)],
    },
}


def make_module(kernel: str, shape: Mapping[str, Any]) -> torch.nn.Module:
    inp, hidden, layers = int(shape["input"]), int(shape["hidden"]), int(shape.get("layers", 1))
    if kernel == "lstm":
        return torch.nn.LSTM(inp, hidden, layers)
    if kernel == "gru":
        return torch.nn.GRU(inp, hidden, layers)
    return torch.nn.RNN(inp, hidden, layers, nonlinearity="relu" if kernel == "rnn_relu" else "tanh")


def build(kernel: str, shape: Mapping[str, Any], dtype: torch.dtype, dtype_name: str, device: torch.device,
          generator: torch.Generator) -> Workload:
    module = make_module(kernel, shape)
    with torch.no_grad():
        for param in module.parameters():  # seeded, instead of torch's global RNG
            param.copy_(randn(tuple(param.shape), torch.float32, torch.device("cpu"), _cpu_twin(generator),
                              scale=int(shape["hidden"]) ** -0.5))
    module = module.to(device=device, dtype=dtype).eval()
    layers, batch, hidden = int(shape.get("layers", 1)), int(shape["batch"]), int(shape["hidden"])
    x = randn((int(shape["seq_len"]), batch, int(shape["input"])), dtype, device, generator)
    h0 = randn((layers, batch, hidden), dtype, device, generator, scale=0.5)
    state: Any = (h0, randn((layers, batch, hidden), dtype, device, generator, scale=0.5)) if kernel == "lstm" else h0

    def run() -> torch.Tensor:
        return module(x, state)[0]

    def verify() -> Check:
        out = run()
        ref_dtype = reference_dtype(device)
        reference = copy.deepcopy(module).to(ref_dtype)
        ref_state = tuple(s.to(ref_dtype) for s in state) if isinstance(state, tuple) else state.to(ref_dtype)
        ref = reference(x.to(ref_dtype), ref_state)[0]
        return compare(out, ref, dtype_name, "whole output sequence")

    weights = tensor_bytes(*module.parameters())
    return Workload(run=run, verify=verify, footprint_bytes=weights + 2 * tensor_bytes(x), keep=[module, x, state])


def _cpu_twin(generator: torch.Generator) -> torch.Generator:
    """A CPU generator derived from ``generator`` (module parameters are initialised on the CPU)."""
    twin = torch.Generator()
    twin.manual_seed(int(torch.randint(0, 2**62, (1,), generator=generator, device=generator.device)))
    return twin
