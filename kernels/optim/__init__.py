"""Optimizers built on the kernels: ``Muon`` (batched Newton–Schulz, AdamW for non-matrix params)."""

from kernels.optim.muon import Muon, muon_param_groups

__all__ = ["Muon", "muon_param_groups"]
