"""Kernels: seeded inputs, correctness checks that pass on right answers and fail on wrong ones."""

import pytest
import torch

from npucheck.errors import UsageError
from npucheck.kernels import KERNELS, build_workload, select_dtypes, select_kernels
from npucheck.kernels.base import TOLERANCE, NonFiniteOutput, compare

CPU = torch.device("cpu")
SMALL = {
    "gemm": {"m": 48, "n": 40, "k": 64, "layout": "NN"},
    "conv2d": {
        "n": 2,
        "c": 8,
        "h": 12,
        "w": 12,
        "k": 16,
        "r": 3,
        "s": 3,
        "stride_h": 1,
        "stride_w": 1,
        "pad_h": 1,
        "pad_w": 1,
        "groups": 1,
    },
    "rnn_tanh": {"hidden": 32, "batch": 2, "seq_len": 5, "input": 32, "layers": 1},
    "rnn_relu": {"hidden": 32, "batch": 2, "seq_len": 5, "input": 32, "layers": 1},
    "lstm": {"hidden": 32, "batch": 2, "seq_len": 5, "input": 32, "layers": 1},
    "gru": {"hidden": 32, "batch": 2, "seq_len": 5, "input": 32, "layers": 1},
    "attention": {"batch": 2, "heads": 4, "kv_heads": 2, "q_len": 16, "kv_len": 16, "head_dim": 32, "mask": "causal"},
}


# memory kernels (copy, triad) need arrays 4x past the host's cache: tests/test_memory_roofline.py checks them
@pytest.mark.parametrize("kernel", [name for name, kernel in KERNELS.items() if kernel.family != "memory"])
@pytest.mark.parametrize("dtype", ["fp16", "bf16", "fp32"])
def test_every_kernel_matches_its_float64_reference(kernel, dtype):
    case = KERNELS[kernel].case(dtype, SMALL[kernel], "test")
    with torch.inference_mode():
        check = build_workload(case, CPU, 0).verify()
    assert check.ok, check
    assert check.rel_error < TOLERANCE[dtype] / 2  # comfortably inside: the tolerances are not tuned to pass


def test_inputs_are_seeded_per_case():
    case = KERNELS["gemm"].case("fp32", SMALL["gemm"], "test")
    first = build_workload(case, CPU, 7).run().clone()
    again = build_workload(case, CPU, 7).run()
    other = build_workload(case, CPU, 8).run()
    assert torch.equal(first, again)
    assert not torch.equal(first, other)


def test_inputs_are_random_not_constant():
    case = KERNELS["gemm"].case("fp32", SMALL["gemm"], "test")
    out = build_workload(case, CPU, 0).run()
    assert out.std() > 1.0  # a sum of 64 products of N(0,1) values


def test_a_wrong_answer_fails_the_check():
    ref = torch.randn(100, dtype=torch.float64)
    wrong = (ref * 1.02).to(torch.float16)
    check = compare(wrong, ref, "fp16", "all")
    assert not check.ok
    assert check.rel_error == pytest.approx(0.02, rel=0.05)


def test_nan_output_is_an_error_not_a_figure():
    out = torch.ones(4)
    out[2] = float("nan")
    with pytest.raises(NonFiniteOutput, match="1 NaN/Inf"):
        compare(out, torch.ones(4, dtype=torch.float64), "fp32", "all")


def test_transposed_layouts_are_checked_too():
    for layout in ("TN", "NT"):
        case = KERNELS["gemm"].case("fp32", {**SMALL["gemm"], "layout": layout}, "test")
        assert build_workload(case, CPU, 0).verify().ok


def test_kernel_selection_expands_aliases_and_rejects_unknown_names():
    assert select_kernels(["cnn", "rnn"]) == ["conv2d", "rnn_tanh", "rnn_relu"]
    assert select_kernels(["gemm,lstm"]) == ["gemm", "lstm"]
    with pytest.raises(UsageError, match="unknown kernel 'matmul'"):
        select_kernels(["matmul"])


def test_dtype_selection_rejects_unknown_dtypes():
    assert select_dtypes(["fp16", "fp16,bf16"]) == ["fp16", "bf16"]
    with pytest.raises(UsageError, match="unknown dtype 'fp8'"):
        select_dtypes(["fp8"])


def test_case_ids_are_unique_within_every_shape_set():
    for kernel in KERNELS.values():
        for name, shapes in kernel.shape_sets.items():
            ids = [kernel.case("fp16", shape, name).id for shape in shapes]
            assert len(ids) == len(set(ids)), (kernel.name, name)
