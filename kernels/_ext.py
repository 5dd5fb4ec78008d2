"""The compiled extensions, imported once; a missing one becomes a stub that explains itself."""

from __future__ import annotations

import importlib
from types import ModuleType

import torch

# Codes shared with csrc/common/dtype.h.
DTYPE_CODES: dict[torch.dtype, int] = {
    torch.float32: 0,
    torch.float64: 1,
    torch.float16: 2,
    torch.bfloat16: 3,
}


class MissingExtension:
    """Stands in for an extension that did not import: any attribute access says why."""

    def __init__(self, name: str, reason: str):
        self.__name = name
        self.reason = reason

    def __bool__(self) -> bool:
        return False

    def __getattr__(self, attr: str):
        raise RuntimeError(f"{self.__name}.{attr} is unavailable: {self.reason}")


def _load(name: str, hint: str) -> ModuleType | MissingExtension:
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        return MissingExtension(name, f"{name} could not be imported ({exc}); {hint}")


_C = _load("kernels._C", "rebuild with `pip install -e .` (make setup)")
_cuda = _load(
    "kernels._cuda",
    "it is built only when nvcc is found at install time (PYKERNELS_CUDA=ON forces it)",
)
