"""NVTX ranges for Nsight Systems: ``with kernels.nvtx.range("step"):`` or ``@kernels.nvtx.range("step")``.

Uses the ``nvtx`` package when installed, else ``torch.cuda.nvtx`` when CUDA is available, else does
nothing. ``PYKERNELS_NVTX=0`` turns every range into a no-op (read once at import; ``set_enabled``
changes it at run time).
"""

from __future__ import annotations

import contextlib
import functools
import os
from collections.abc import Callable

_enabled = os.environ.get("PYKERNELS_NVTX", "1") not in ("0", "false", "False", "")

try:
    import nvtx as _nvtx_pkg
except ImportError:  # pragma: no cover - depends on the environment
    _nvtx_pkg = None


def _torch_push_pop() -> tuple[Callable[[str], object], Callable[[], object]] | None:
    import torch

    if torch.cuda.is_available():
        return torch.cuda.nvtx.range_push, torch.cuda.nvtx.range_pop
    return None


_torch_nvtx = None if _nvtx_pkg is not None else _torch_push_pop()


def set_enabled(flag: bool) -> None:
    global _enabled
    _enabled = bool(flag)


def is_enabled() -> bool:
    return _enabled


def backend() -> str:
    """Which NVTX implementation ranges go to: 'nvtx', 'torch.cuda.nvtx' or 'none'."""
    if not _enabled:
        return "none"
    if _nvtx_pkg is not None:
        return "nvtx"
    return "torch.cuda.nvtx" if _torch_nvtx is not None else "none"


class range(contextlib.ContextDecorator):  # noqa: A001 - the name mirrors nvtx.annotate / torch.cuda.nvtx.range
    """A named NVTX range; usable as a context manager or as a decorator."""

    def __init__(self, name: str, color: str | None = None, domain: str = "pykernels"):
        self.name = name
        self.color = color
        self.domain = domain
        self._stack: list[str] = []

    def __enter__(self) -> range:
        which = backend()
        if which == "nvtx":
            _nvtx_pkg.push_range(self.name, color=self.color, domain=self.domain)
        elif which == "torch.cuda.nvtx":
            _torch_nvtx[0](self.name)
        self._stack.append(which)
        return self

    def __exit__(self, *exc) -> bool:
        which = self._stack.pop()
        if which == "nvtx":
            _nvtx_pkg.pop_range(domain=self.domain)
        elif which == "torch.cuda.nvtx":
            _torch_nvtx[1]()
        return False


def annotate(name: str | None = None) -> Callable:
    """Decorator form that names the range after the function when no name is given."""

    def wrap(fn: Callable) -> Callable:
        label = name or fn.__qualname__

        @functools.wraps(fn)
        def inner(*args, **kwargs):
            with range(label):
                return fn(*args, **kwargs)

        return inner

    return wrap
