"""What kernels.optim's optimizers share: param groups validated on the way in, and groups loaded from
an older or a torch state_dict completed with the constructor's values."""

from __future__ import annotations

from typing import Any

import torch


class ValidatedOptimizer(torch.optim.Optimizer):
    """A ``torch.optim.Optimizer`` whose subclasses define ``_check_group(group, index)``; a group that
    fails it is rejected and the optimizer is left as it was."""

    def _check_group(self, group: dict[str, Any], index: int) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def __setstate__(self, state: dict[str, Any]) -> None:
        # Groups from a pickle or a state_dict that lacks a key (one saved by torch.optim.AdamW has no
        # alpha/check_finite, one by torch.optim.Muon no use_muon) take the constructor's value for it.
        super().__setstate__(state)
        for group in self.param_groups:
            for key, value in self.defaults.items():
                group.setdefault(key, value)

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        super().add_param_group(param_group)
        try:
            self._check_group(self.param_groups[-1], len(self.param_groups) - 1)
        except (ValueError, TypeError):
            self.param_groups.pop()  # leave the optimizer as it was
            raise
