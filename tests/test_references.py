"""References on the host, never float64 on the device; unchecked is not unsupported; the fp32 tolerance tells
true fp32 from TF32; full_fp32_precision() sets and restores every switch."""

from __future__ import annotations

import weakref

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

from npucheck.kernels import KERNELS, base, build_workload, reference_flops
from npucheck.kernels.base import TOLERANCE, Check, compare
from npucheck.kernels.precision import OVERRIDE_ENV, fp32_precision_state, full_fp32_precision
from npucheck.measure import family_support

CPU = torch.device("cpu")
aten = torch.ops.aten
SMALL = {
    "gemm": {"m": 96, "n": 80, "k": 64, "layout": "TN"},
    "conv2d": {
        "n": 2,
        "c": 8,
        "h": 12,
        "w": 12,
        "k": 24,
        "r": 3,
        "s": 3,
        "stride_h": 1,
        "stride_w": 1,
        "pad_h": 1,
        "pad_w": 1,
        "groups": 1,
    },
    "rnn_tanh": {"hidden": 32, "batch": 3, "seq_len": 20, "input": 32, "layers": 1},
    "rnn_relu": {"hidden": 32, "batch": 3, "seq_len": 20, "input": 32, "layers": 1},
    "lstm": {"hidden": 32, "batch": 3, "seq_len": 20, "input": 32, "layers": 1},
    "gru": {"hidden": 32, "batch": 3, "seq_len": 20, "input": 32, "layers": 1},
    "attention": {"batch": 2, "heads": 4, "kv_heads": 1, "q_len": 24, "kv_len": 24, "head_dim": 16, "mask": "causal"},
    "copy": {"mib": 4},
    "triad": {"mib": 4},
}
DEPTHWISE = {
    "n": 2,
    "c": 24,
    "h": 10,
    "w": 10,
    "k": 24,
    "r": 3,
    "s": 3,
    "stride_h": 2,
    "stride_w": 2,
    "pad_h": 1,
    "pad_w": 1,
    "groups": 24,
}


class Float64OnDevice(RuntimeError):
    pass


_TRANSFERS = (aten._to_copy.default, aten.to.dtype_layout)  # the latter is what inference mode dispatches


class NoFloat64Device(TorchDispatchMode):
    """A backend without float64 (Ascend NPU, Intel Arc, Apple GPU), modelled on the CPU.

    Here the device under test and the host are both the CPU, so "on the device" is tracked by memory, not by
    ``tensor.device``: every tensor allocated while :meth:`building` is active (the workload's inputs, weights and
    modules) is device memory, and so is every output of an op that reads device memory. The one way out is an
    explicit transfer to the host, ``aten._to_copy`` (``aten.to.dtype_layout`` under inference mode) with
    ``device=cpu`` that keeps the dtype (``tensor.to("cpu",
    copy=True)``, what ``base.to_host`` does): its output is host memory, and so is everything computed from
    host memory only. Any op that reads or writes float64 in device memory raises Float64OnDevice, as the real
    backend would. A transfer that also converts to float64 raises too (the conversion would run on the device).

    The old code (``a.index_select(0, rows).to(float64) @ b.to(float64)`` on ``device``) is an op on device
    memory producing float64, so it fails here although the CPU itself has float64. Limitation: a float64 factory
    op outside ``building`` (``torch.zeros(..., dtype=float64, device=device)`` in ``verify``) counts as host.
    """

    def __init__(self) -> None:
        super().__init__()
        self._device: dict[int, weakref.ref] = {}  # StorageImpl address -> the storage, weakly
        self._building = 0

    def building(self) -> _Building:
        return _Building(self)

    def _key(self, tensor: torch.Tensor) -> int:
        return tensor.untyped_storage()._cdata

    def is_device(self, tensor: torch.Tensor) -> bool:
        ref = self._device.get(self._key(tensor))
        return ref is not None and ref() is not None

    def _mark(self, tensor: torch.Tensor) -> None:
        storage = tensor.untyped_storage()
        self._device[storage._cdata] = weakref.ref(storage)

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        inputs = [t for t in tree_leaves((args, kwargs)) if isinstance(t, torch.Tensor)]
        on_device = self._building > 0 or any(self.is_device(t) for t in inputs)
        if func in _TRANSFERS and kwargs.get("device") == CPU and on_device and self._building == 0:
            if kwargs.get("dtype") not in (None, args[0].dtype):
                raise Float64OnDevice(f"{func}: device-to-host copy that converts {args[0].dtype} on the device")
            return func(*args, **kwargs)  # host memory from here on
        out = func(*args, **kwargs)
        if on_device:
            outputs = [t for t in tree_leaves(out) if isinstance(t, torch.Tensor)]
            if any(t.dtype == torch.float64 for t in inputs + outputs):
                raise Float64OnDevice(f"{func} asked a device without float64 for float64")
            for tensor in outputs:
                self._mark(tensor)
        return out


class _Building:
    def __init__(self, mode: NoFloat64Device) -> None:
        self.mode = mode

    def __enter__(self) -> None:
        self.mode._building += 1

    def __exit__(self, *exc) -> None:
        self.mode._building -= 1


def _verify_without_float64(case):
    mode = NoFloat64Device()
    with torch.inference_mode(), mode:
        with mode.building():
            workload = build_workload(case, CPU, 0)
        return workload.verify()


def test_the_fake_refuses_what_the_old_code_did():
    """Self-test: float64 computed in place from device tensors fails; copied to the host first, it works."""
    mode = NoFloat64Device()
    with torch.inference_mode(), mode:
        with mode.building():
            a = torch.randn(8, 8).half()
        with pytest.raises(Float64OnDevice):
            a.index_select(0, torch.arange(4)).to(torch.float64) @ a.to(torch.float64)
        with pytest.raises(Float64OnDevice):
            a.to(CPU, dtype=torch.float64, copy=True)
        with pytest.raises(Float64OnDevice):
            a.float().double()
        host = base.host64(a)
        assert (host @ host).dtype == torch.float64


@pytest.mark.parametrize("kernel", list(KERNELS))
@pytest.mark.parametrize("dtype", ["fp16", "fp32"])
def test_every_reference_is_computed_on_the_host(kernel, dtype, monkeypatch):
    if KERNELS[kernel].family == "memory":  # 4 MiB arrays, past a cache said to be 1 MiB (not the host's)
        from npucheck.kernels import memory

        monkeypatch.setattr(memory, "last_level_cache_bytes", lambda device, sysfs_root="/sys": (2**20, "test"))
    check = _verify_without_float64(KERNELS[kernel].case(dtype, SMALL[kernel], "test"))
    assert check.status == "ok" and check.ok is True, check
    assert check.reference_device == "cpu" and check.reference_dtype == "float64"


def test_depthwise_conv_reference_takes_whole_groups():
    check = _verify_without_float64(KERNELS["conv2d"].case("fp32", DEPTHWISE, "test"))
    assert check.ok and "16 of 24 output channels" in check.checked


def test_support_check_never_asks_the_device_for_float64(monkeypatch):
    mode = NoFloat64Device()

    def building(fn):
        def wrapped(*args, **kwargs):
            with mode.building():
                return fn(*args, **kwargs)

        return wrapped

    monkeypatch.setattr(family_support, "build_workload", building(family_support.build_workload))
    monkeypatch.setattr(family_support, "_build_conv_block", building(family_support._build_conv_block))
    with mode:
        result = family_support.check_support(CPU, seed=0)
    assert {family: entry["supported"] for family, entry in result.items()} == {
        "cnn": True,
        "rnn": True,
        "lstm": True,
        "gru": True,
        "transformer": True,
    }, result


def test_recurrent_check_is_a_prefix_of_steps_and_a_few_rows():
    case = KERNELS["lstm"].case("fp16", {"hidden": 32, "batch": 8, "seq_len": 40, "input": 32, "layers": 1}, "t")
    check = build_workload(case, CPU, 0).verify()
    assert check.ok and check.checked == "first 16 of 40 steps, 2 of 8 batch rows"


def test_reference_cost_is_bounded_for_the_largest_shapes():
    worst = {
        kernel.name: max(
            reference_flops(kernel.case("fp16", shape, name))
            for name, shapes in kernel.shape_sets.items()
            for shape in shapes
        )
        for kernel in KERNELS.values()
    }
    assert worst["gemm"] == 2 * 64 * 16 * 500000  # not 2·64·N·K with B copied whole
    assert all(flops <= 4e9 for flops in worst.values()), worst


@pytest.mark.parametrize(
    "error",
    [RuntimeError("DefaultCPUAllocator: can't allocate memory"), MemoryError(), NotImplementedError("op missing")],
)
def test_a_reference_that_cannot_be_computed_is_unchecked_not_wrong(monkeypatch, error):
    def fail(tensor):
        raise error

    case = KERNELS["gemm"].case("fp16", SMALL["gemm"], "test")
    workload = build_workload(case, CPU, 0)
    monkeypatch.setattr("npucheck.kernels.gemm.host64", fail)
    check = workload.verify()
    assert check.ok is None and check.status == "unchecked" and check.rel_error is None
    assert check.reason.startswith("float64 reference unavailable on the host: " + type(error).__name__)
    assert check.to_dict()["status"] == "unchecked" and check.to_dict()["ok"] is None


def test_support_reports_an_unavailable_reference_as_unchecked_and_a_failing_kernel_as_unsupported():
    def unchecked_check(device, seed):
        return Check(
            rel_error=None,
            tolerance=5e-3,
            reference_dtype="float64",
            checked="all",
            reason="float64 reference unavailable on the host: MemoryError: ",
        ), device

    def ok_check(device, seed):
        return Check(rel_error=1e-4, tolerance=5e-3, reference_dtype="float64", checked="all"), device

    def broken_kernel(device, seed):
        raise RuntimeError("no fp16 LSTM kernel on this device")

    result = family_support.check_support(
        CPU,
        checks={
            "cnn": [("conv2d", ok_check), ("conv_block", unchecked_check)],
            "lstm": [("lstm", broken_kernel)],
            "rnn": [("rnn_tanh", broken_kernel), ("rnn_relu", unchecked_check)],
        },
    )
    assert result["cnn"]["supported"] is None
    assert "conv_block: unchecked (float64 reference unavailable" in result["cnn"]["reason"]
    assert [c["status"] for c in result["cnn"]["checks"]] == ["ok", "unchecked"]
    assert result["lstm"]["supported"] is False and "no fp16 LSTM kernel" in result["lstm"]["reason"]
    assert result["rnn"]["supported"] is False  # a kernel that fails is unsupported, whatever else is unchecked


def test_a_kernel_output_with_nan_is_still_an_error_not_unchecked():
    with pytest.raises(base.NonFiniteOutput):
        base.check_against_host_reference(torch.tensor([1.0, float("nan")]), lambda: 1 / 0, "fp32", "all")


# --- fp32 tolerance: true fp32 passes with margin, TF32 fails --------------------------------------------------


def tf32_truncate(t: torch.Tensor) -> torch.Tensor:
    """What a TF32 tensor core reads of an fp32 value: the low 13 of 23 mantissa bits masked off."""
    return (t.contiguous().view(torch.int32) & ~0x1FFF).view(torch.float32)


def tf32_round(t: torch.Tensor) -> torch.Tensor:
    """fp32 rounded to a 10-bit mantissa, to nearest even (cuBLAS's conversion; smaller error than masking)."""
    bits = t.contiguous().view(torch.int32)
    return ((bits + 0xFFF + ((bits >> 13) & 1)) & ~0x1FFF).view(torch.float32)


class EmulatedTF32(TorchDispatchMode):
    """fp32 matmuls, convolutions and recurrent layers read their operands at TF32 precision (accumulation stays
    fp32). For recurrent layers only the weights, inputs and initial state are rounded, not each step's hidden
    state: a lower bound on real TF32's error, so failing it means real TF32 fails too."""

    OPERANDS = {
        aten.mm.default: (0, 1),
        aten.mm.out: (0, 1),
        aten.addmm.default: (1, 2),
        aten.conv2d.default: (0, 1),
        aten.convolution.default: (0, 1),
        aten.lstm.input: "all",
        aten.gru.input: "all",
        aten.rnn_tanh.input: "all",
        aten.rnn_relu.input: "all",
    }

    def __init__(self, rounding) -> None:
        super().__init__()
        self.rounding = rounding
        self.seen = 0

    def _round(self, value):
        if isinstance(value, torch.Tensor) and value.dtype == torch.float32:
            return self.rounding(value)
        if isinstance(value, (list, tuple)):
            return type(value)(self._round(v) for v in value)
        return value

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        which = self.OPERANDS.get(func)
        if which is not None and any(
            isinstance(a, torch.Tensor) and a.dtype == torch.float32 for a in tree_leaves(args)
        ):
            self.seen += 1
            args = tuple(self._round(a) if which == "all" or i in which else a for i, a in enumerate(args))
        return func(*args, **(kwargs or {}))


def _fp32_check(case, mode=None):
    with torch.inference_mode():
        workload = build_workload(case, CPU, 0)
        if mode is None:
            return workload.verify()
        with mode:
            check = workload.verify()
        assert mode.seen, "the emulation did not see the kernel's op"
        return check


FP32_CASES = [
    ("gemm", {"m": 512, "n": 512, "k": 16384, "layout": "NN"}),  # the square sweep's largest K
    ("gemm", {"m": 64, "n": 16, "k": 500000, "layout": "TN"}),  # DeepBench's largest K (m cut: 64 rows are checked)
    (
        "conv2d",
        {
            "n": 1,
            "c": 512,
            "h": 14,
            "w": 14,
            "k": 512,
            "r": 3,
            "s": 3,
            "stride_h": 1,
            "stride_w": 1,
            "pad_h": 1,
            "pad_w": 1,
            "groups": 1,
        },
    ),  # C·R·S = 4608, the largest in our conv sets
    ("rnn_tanh", {"hidden": 512, "batch": 4, "seq_len": 16, "input": 512, "layers": 1}),
    ("rnn_relu", {"hidden": 512, "batch": 4, "seq_len": 16, "input": 512, "layers": 1}),
    ("lstm", {"hidden": 512, "batch": 4, "seq_len": 16, "input": 512, "layers": 1}),
    ("gru", {"hidden": 512, "batch": 4, "seq_len": 16, "input": 512, "layers": 1}),
]


@pytest.mark.parametrize("kernel,shape", FP32_CASES, ids=[f"{k}-{KERNELS[k].label(s)}" for k, s in FP32_CASES])
def test_true_fp32_passes_with_margin_and_tf32_fails(kernel, shape):
    case = KERNELS[kernel].case("fp32", shape, "test")
    assert TOLERANCE["fp32"] == 1e-4
    true_fp32 = _fp32_check(case)
    assert true_fp32.ok and true_fp32.rel_error < TOLERANCE["fp32"] / 20, true_fp32  # measured <= 1.5e-6
    for rounding in (tf32_round, tf32_truncate):
        emulated = _fp32_check(case, EmulatedTF32(rounding))
        assert emulated.ok is False and emulated.rel_error > 2 * TOLERANCE["fp32"], (rounding.__name__, emulated)
        assert emulated.rel_error < 2e-3  # what the old tolerance let through


def test_the_worst_fp32_summation_order_at_k_500000_is_inside_the_tolerance():
    """One long sequential fp32 sum (no blocking, no pairwise tree): 1.25e-5 measured, 8x inside."""
    generator = torch.Generator().manual_seed(0)
    k = 500_000
    a, b = torch.randn(2, k, generator=generator), torch.randn(k, 2, generator=generator)
    ref = a.double() @ b.double()
    products = (a[:, :, None] * b[None, :, :]).permute(1, 0, 2).reshape(k, 4)  # fp32 products
    total = torch.zeros(4)
    for start in range(0, k, 1):  # sequential, one fp32 rounding per addition
        total.add_(products[start])
    error = compare(total.reshape(2, 2), ref, "fp32", "all")
    assert error.ok and error.rel_error < TOLERANCE["fp32"] / 4, error


# --- the precision switches ------------------------------------------------------------------------------------


def _switches():
    state = fp32_precision_state()
    return state["effective"], state["fp32_precision"]


def test_full_fp32_precision_sets_every_switch_and_restores_them():
    before = _switches()
    with full_fp32_precision() as inside:
        assert inside["full_fp32"] and inside["reason"] is None
        assert set(inside["effective"].values()) == {"ieee"}
        assert torch.get_float32_matmul_precision() == "highest"
    assert _switches() == before
    assert fp32_precision_state()["legacy"]["cudnn_allow_tf32"] is True  # torch's default, readable again


@pytest.mark.parametrize(
    "setting",
    [
        lambda: torch.set_float32_matmul_precision("medium"),
        lambda: setattr(torch.backends.cudnn, "allow_tf32", True),
        lambda: setattr(torch.backends.mkldnn.matmul, "fp32_precision", "bf16"),
        lambda: setattr(torch.backends, "fp32_precision", "tf32"),
    ],
)
def test_reduced_precision_switches_are_overridden_inside_and_restored_after(setting):
    saved = _switches()
    try:
        setting()
        changed = _switches()
        assert not fp32_precision_state()["full_fp32"]
        with full_fp32_precision() as inside:
            assert inside["full_fp32"], inside
        assert _switches() == changed
    finally:  # torch's defaults, through the legacy setters first, then the table where it still differs
        torch.set_float32_matmul_precision("highest")
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = True
        for key, value in saved[1].items():
            backend, op = key.split(".")
            if torch._C._get_fp32_precision_getter(backend, op) != value:
                torch._C._set_fp32_precision_setter(backend, op, value)
    assert _switches() == saved


def test_switches_are_restored_when_the_block_raises():
    before = _switches()
    with pytest.raises(KeyError):
        with full_fp32_precision():
            raise KeyError("x")
    assert _switches() == before


def test_the_cublas_override_env_var_is_reported_as_a_reason(monkeypatch):
    monkeypatch.setenv(OVERRIDE_ENV, "1")
    with full_fp32_precision() as inside:
        assert inside["override"] and not inside["full_fp32"]
        assert inside["env"][OVERRIDE_ENV] == "1" and OVERRIDE_ENV in inside["reason"]
    monkeypatch.setenv(OVERRIDE_ENV, "0")
    assert fp32_precision_state()["override"] is False
