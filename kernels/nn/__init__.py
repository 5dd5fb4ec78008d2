"""Modules built on the ops: ``kernels.nn.HashGridEncoding``, the C_N group convolutions
(``GroupConv2d``, ``GroupConv2p1d``) and their equivariant helpers."""

from kernels.nn.group_conv import (
    GroupBatchNorm,
    GroupConv2d,
    GroupConv2p1d,
    GroupFieldNorm,
    GroupPointwise,
    GroupPool,
    rotate_fields,
)
from kernels.nn.hash_grid import HashGridEncoding

__all__ = [
    "GroupBatchNorm",
    "GroupConv2d",
    "GroupConv2p1d",
    "GroupFieldNorm",
    "GroupPointwise",
    "GroupPool",
    "HashGridEncoding",
    "rotate_fields",
]
