"""``kernels.nn.HashGridEncoding``: an nn.Module owning an Instant-NGP hash-grid table."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from kernels.ops.hash_grid_encode import hash_grid_encode


class HashGridEncoding(nn.Module):
    """Multiresolution hash encoding of points in [0, 1]^d (see ``kernels.hash_grid_encode``).

    Owns ``table`` (n_levels, 2^log2_hashmap_size, n_features_per_level), initialized uniform in
    (−1e-4, 1e-4) as Instant-NGP does. ``forward(x)`` maps (N, n_input_dims) → (N, output_dim) with
    output_dim = n_levels · n_features_per_level, in the table's dtype.

    Resolutions: res_l = floor(base_resolution · per_level_scale^l). Give either ``per_level_scale``
    or ``finest_resolution`` (then per_level_scale = (finest / base)^(1 / (n_levels − 1))).
    """

    def __init__(
        self,
        n_input_dims: int,
        n_levels: int = 16,
        n_features_per_level: int = 2,
        log2_hashmap_size: int = 19,
        base_resolution: int = 16,
        per_level_scale: float | None = 2.0,
        *,
        finest_resolution: int | None = None,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str | None = None,
    ) -> None:
        super().__init__()
        if not 1 <= n_input_dims <= 4:
            raise ValueError(f"n_input_dims must be in 1..4, got {n_input_dims}")
        if n_features_per_level not in (1, 2, 4, 8):
            raise ValueError(f"n_features_per_level must be 1, 2, 4 or 8, got {n_features_per_level}")
        if not 0 <= log2_hashmap_size <= 31:
            raise ValueError(f"log2_hashmap_size must be in 0..31, got {log2_hashmap_size}")
        if finest_resolution is not None:
            if finest_resolution < base_resolution:
                raise ValueError(
                    f"finest_resolution ({finest_resolution}) must be >= base_resolution ({base_resolution})"
                )
            per_level_scale = (
                1.0
                if n_levels == 1
                else math.exp(math.log(finest_resolution / base_resolution) / (n_levels - 1))
            )
        if per_level_scale is None:
            raise ValueError("give per_level_scale or finest_resolution")
        self.n_input_dims = n_input_dims
        self.n_levels = n_levels
        self.n_features_per_level = n_features_per_level
        self.log2_hashmap_size = log2_hashmap_size
        self.base_resolution = base_resolution
        self.per_level_scale = float(per_level_scale)
        self.table = nn.Parameter(
            torch.empty(n_levels, 1 << log2_hashmap_size, n_features_per_level, dtype=dtype, device=device)
        )
        self.reset_parameters()

    def reset_parameters(self) -> None:
        with torch.no_grad():
            self.table.uniform_(-1e-4, 1e-4)

    @property
    def output_dim(self) -> int:
        return self.n_levels * self.n_features_per_level

    def forward(self, x: Tensor) -> Tensor:
        return hash_grid_encode(
            x,
            self.table,
            n_levels=self.n_levels,
            base_resolution=self.base_resolution,
            per_level_scale=self.per_level_scale,
        )

    def extra_repr(self) -> str:
        return (
            f"n_input_dims={self.n_input_dims}, n_levels={self.n_levels}, "
            f"n_features_per_level={self.n_features_per_level}, log2_hashmap_size={self.log2_hashmap_size}, "
            f"base_resolution={self.base_resolution}, per_level_scale={self.per_level_scale:.6g}, "
            f"dtype={self.table.dtype}"
        )
