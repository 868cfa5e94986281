"""The measuring half of npucheck: everything that runs kernels, times them and reads power.

This package imports torch (through ``devices`` and the kernels); nothing in :mod:`npucheck.read` or the shared
modules beside it (``model``, ``store``, ``targets``, ``datasheets``, ``stats``, ``errors``, ``atomic``) may import
it, so the read-only commands start without torch.

* ``runner``: walks a suite case by case and builds the result profile; ``planning``: what each case may cost
  (rate prediction, time budgets, shape probes) before it runs;
* ``timing``: warm-up, calibration, samples; ``allocator``: glibc malloc settled before a CPU run;
  ``host_load``: other processes' CPU use during a case; ``family_support``: can the device run each
  network family (CNN, RNN, LSTM, GRU) in FP16, checked against a float64 reference;
* ``devices``: the accelerator seam (CPU, CUDA/ROCm, any ``torch.accelerator``); ``power``: one module per power
  source plus the sampler and integration (``power.window``); ``energy``: which cases get an energy window, and
  TFLOPS/W from the joules a window returns;
* ``environment``: what the run ran on; ``suites``: the suite definitions in ``kernels/suites.toml``.
"""
