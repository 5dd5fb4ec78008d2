"""One module per op: checks, the ``pykernels::<op>`` custom op, its fake impl, its backends."""

from kernels.ops.aggregate import aggregate
from kernels.ops.newton_schulz import newton_schulz

__all__ = ["aggregate", "newton_schulz"]
