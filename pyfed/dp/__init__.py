"""Client-level differential privacy for pyfed: the accountant (``pyfed.dp.accounting``) and the
mechanism helpers the ``dp_*`` algorithms share (``pyfed.dp.mechanism``)."""

from pyfed.dp.accounting import RoundAccountant, epsilon, noise_multiplier_for

__all__ = ["RoundAccountant", "epsilon", "noise_multiplier_for"]
