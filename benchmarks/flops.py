"""Flop counts shared by the CPU suites and the GPU script, so their GFLOP/s and TFLOP/s agree."""

from __future__ import annotations

import math


def newton_schulz_flops(shape: tuple[int, ...], steps: int = 5) -> float:
    """Standard count for (..., rows, cols), m = min dim, n = max dim: each step 2m²n (X Xᵀ, counted
    in full) + 2m³ (A·A) + 2m²n (B·X). Symmetric savings are not subtracted."""
    *batch, rows, cols = shape
    m, n = min(rows, cols), max(rows, cols)
    return float(math.prod(batch)) * steps * (4 * m * m * n + 2 * m**3)
