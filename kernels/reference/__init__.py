"""Pure-torch references: the specification every backend is tested against (any device, any dtype)."""

from kernels.reference.newton_schulz import newton_schulz, newton_schulz_core

__all__ = ["newton_schulz", "newton_schulz_core"]
