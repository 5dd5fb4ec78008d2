"""One module per op: checks, the ``pykernels::<op>`` custom op, its fake impl, its backends."""

from kernels.ops.clip_and_noise import clip_and_noise, clip_and_noise_sum
from kernels.ops.newton_schulz import newton_schulz

__all__ = ["clip_and_noise", "clip_and_noise_sum", "newton_schulz"]
