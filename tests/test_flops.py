"""FLOP formulas: checked against torch's own counter where it counts (GEMM, conv) and against hand
arithmetic where it cannot (recurrent layers: FlopCounterMode counts 0 for fused LSTM)."""

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from npucheck.kernels import KERNELS, build_workload, conv, gemm, rnn


def _counted(case):
    workload = build_workload(case, torch.device("cpu"), 0)
    with FlopCounterMode(display=False) as counter:
        workload.run()
    return counter.get_total_flops()


@pytest.mark.parametrize(
    "shape",
    [
        gemm.SHAPE_SETS["square"][0],
        *gemm.SHAPE_SETS["deepbench-device"][:4],
        {"m": 35, "n": 64, "k": 96, "layout": "TN"},
        {"m": 33, "n": 17, "k": 5, "layout": "NT"},
    ],
)
def test_gemm_flops_match_torch_flop_counter(shape):
    case = KERNELS["gemm"].case("fp32", shape, "test")
    assert case.flops == 2 * shape["m"] * shape["n"] * shape["k"]
    assert _counted(case) == case.flops


@pytest.mark.parametrize(
    "shape",
    [
        conv.SHAPE_SETS["resnet50"][0],
        conv.SHAPE_SETS["resnet50"][6],
        conv.SHAPE_SETS["deepspeech"][0],
        conv.SHAPE_SETS["mobilenet-dw"][1],
        conv.SHAPE_SETS["vgg16"][0],
    ],
)
def test_conv_flops_match_torch_flop_counter(shape):
    case = KERNELS["conv2d"].case("fp32", shape, "test")
    assert _counted(case) == case.flops


def test_conv_output_size_follows_the_floor_formula():
    # ResNet stem: 224 -> 112 with a 7x7 filter, stride 2, pad 3; DeepSpeech: 161x700, 5x20, stride 2, no pad.
    assert conv.output_hw(conv.SHAPE_SETS["resnet50"][0]) == (112, 112)
    assert conv.output_hw(conv.SHAPE_SETS["deepspeech"][0]) == ((161 - 5) // 2 + 1, (700 - 20) // 2 + 1)


@pytest.mark.parametrize("kernel,gates", [("lstm", 4), ("gru", 3), ("rnn_tanh", 1), ("rnn_relu", 1)])
def test_recurrent_flops_count_both_matrix_products_per_gate(kernel, gates):
    shape = {"hidden": 512, "batch": 32, "seq_len": 50, "input": 256, "layers": 1}
    assert rnn.flops(kernel, shape) == 50 * 2 * 32 * gates * 512 * (256 + 512)


def test_lstm_count_is_twice_deepbench_when_input_equals_hidden():
    shape = {"hidden": 1024, "batch": 64, "seq_len": 25, "input": 1024, "layers": 1}
    deepbench = 8 * 25 * 64 * 1024**2
    assert rnn.flops("lstm", shape) == 2 * deepbench


def test_flop_counter_cannot_see_fused_lstm_so_we_count_analytically():
    case = KERNELS["lstm"].case("fp32", {"hidden": 32, "batch": 2, "seq_len": 3, "input": 32, "layers": 1}, "t")
    assert case.flops > 0
    assert _counted(case) in (0, case.flops)  # torch counts 0 for the fused op; never a different number
