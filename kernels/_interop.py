"""Arrays from other frameworks in and out of the public functions, through DLPack."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

import torch


def _identity(t: torch.Tensor) -> torch.Tensor:
    return t


def as_tensor(x: Any, name: str) -> tuple[torch.Tensor, Callable[[torch.Tensor], Any]]:
    """``x`` as a torch tensor (zero-copy where DLPack allows) and a function that converts a result
    back to ``x``'s kind: numpy in → numpy out, cupy in → cupy out, torch in → torch out."""
    if isinstance(x, torch.Tensor):
        return x, _identity
    if not hasattr(x, "__dlpack__"):
        raise TypeError(
            f"{name} must be a torch.Tensor or an array that supports DLPack (numpy, cupy, jax), "
            f"got {type(x).__name__}"
        )
    module = type(x).__module__.split(".")[0]
    try:
        t = torch.from_dlpack(x)
    except (BufferError, RuntimeError, TypeError):
        # numpy refuses to export read-only arrays; copy those once.
        if module != "numpy":
            raise
        import numpy as np

        t = torch.from_numpy(np.array(x, copy=True))
    if module == "numpy":
        return t, lambda out: out.detach().cpu().numpy()
    lib = importlib.import_module(module)
    if not hasattr(lib, "from_dlpack"):
        return t, _identity
    return t, lambda out: lib.from_dlpack(out.detach())
