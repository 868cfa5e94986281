"""npucheck: measure an accelerator's FP16 throughput and efficiency, and judge it against targets.

Importing this package is cheap: nothing here imports torch. Only the measuring layers
(``npucheck.measure.devices``, ``npucheck.measure.timing``, ``npucheck.measure.runner`` and ``npucheck.kernels``) do.
"""

__all__ = ["__version__"]


__version__ = "0.1.0"
