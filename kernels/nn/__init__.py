"""Modules built on the ops: ``kernels.nn.HashGridEncoding``."""

from kernels.nn.hash_grid import HashGridEncoding

__all__ = ["HashGridEncoding"]
