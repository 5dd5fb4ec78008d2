"""Optimizers built on the kernels: ``Muon`` (batched Newton–Schulz, AdamW for non-matrix params) and
``AdamW`` (the fused multi-tensor ``kernels.adamw_step``, with FedAdamW's extras)."""

from kernels.optim.adamw import AdamW
from kernels.optim.muon import Muon, muon_param_groups

__all__ = ["AdamW", "Muon", "muon_param_groups"]
