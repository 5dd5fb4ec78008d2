"""One module per op: checks, the ``pykernels::<op>`` custom op, its fake impl, its backends."""

from kernels.ops.adamw_step import adamw_step
from kernels.ops.aggregate import aggregate
from kernels.ops.newton_schulz import newton_schulz

__all__ = ["adamw_step", "aggregate", "newton_schulz"]
