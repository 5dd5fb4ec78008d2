"""Backend registry and selection.

Every op has up to four implementations: ``reference`` (pure torch, any device), ``cpu``
(kernels._C), ``triton`` and ``cuda`` (kernels._cuda). An op registers each with the devices it runs
on and a probe that says why it is unavailable. Selection, per call:

1. A forced backend — ``with kernels.use_backend("triton"):`` or the env var ``PYKERNELS_BACKEND`` —
   is used or the call raises :class:`BackendUnavailableError` saying why. Never a silent fallback.
2. Otherwise the op's preference list for the tensor's device type: the first available wins.
"""

from __future__ import annotations

import contextlib
import contextvars
import importlib
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import torch

BACKENDS = ("reference", "cpu", "triton", "cuda")


class BackendUnavailableError(RuntimeError):
    """A backend was asked for by name but cannot run here; the message says why."""


@dataclass(frozen=True)
class ForwardBackward:
    """What an op with its own backward kernels registers as one backend: ``forward`` and
    ``backward`` callables (the op defines their signatures)."""

    forward: Callable
    backward: Callable


@dataclass
class _Impl:
    fn: Callable
    devices: Callable[[], tuple[str, ...]]
    unavailable: Callable[[], str | None]


@dataclass
class _Op:
    name: str
    impls: dict[str, _Impl] = field(default_factory=dict)
    preference: dict[str, tuple[str, ...]] = field(default_factory=dict)


_ops: dict[str, _Op] = {}
_forced: contextvars.ContextVar[str | None] = contextvars.ContextVar("pykernels_backend", default=None)


def _always() -> None:
    return None


def define_op(name: str, preference: dict[str, tuple[str, ...]]) -> None:
    """Declare an op and its default order of backends per device type ('cpu', 'cuda')."""
    _ops[name] = _Op(name, preference=dict(preference))


def register(
    op: str,
    backend: str,
    *,
    devices: tuple[str, ...] | Callable[[], tuple[str, ...]],
    unavailable: Callable[[], str | None] = _always,
) -> Callable[[Callable], Callable]:
    """Decorator: register ``fn`` as ``backend`` of ``op``. ``unavailable()`` returns None or a reason."""
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    devices_fn = devices if callable(devices) else (lambda d=tuple(devices): d)

    def wrap(fn: Callable) -> Callable:
        _ops[op].impls[backend] = _Impl(fn, devices_fn, unavailable)
        return fn

    return wrap


def _get_op(op: str) -> _Op:
    try:
        return _ops[op]
    except KeyError:
        raise ValueError(f"unknown op {op!r}; known ops: {sorted(_ops)}") from None


def ops() -> list[str]:
    return sorted(_ops)


def why_unavailable(op: str, backend: str, device_type: str | None = None) -> str | None:
    """None when ``backend`` can run ``op`` (on ``device_type`` if given), else the reason."""
    entry = _get_op(op)
    if backend not in BACKENDS:
        return f"{backend!r} is not a backend; choose one of {BACKENDS}"
    impl = entry.impls.get(backend)
    if impl is None:
        return f"op {op!r} has no {backend!r} backend"
    reason = impl.unavailable()
    if reason is not None:
        return reason
    if device_type is not None and device_type not in impl.devices():
        runs_on = impl.devices() or "no device here"
        return f"the {backend!r} backend of {op!r} runs on {runs_on}, not on {device_type!r} tensors"
    return None


def available_backends(op: str, device: str | torch.device | None = None) -> list[str]:
    """Backends usable on this machine for ``op`` (restricted to tensors on ``device`` if given)."""
    device_type = None if device is None else torch.device(device).type
    return [b for b in BACKENDS if why_unavailable(op, b, device_type) is None]


def forced_backend() -> str | None:
    """The backend forced by ``use_backend`` or ``PYKERNELS_BACKEND``, if any."""
    name = _forced.get()
    if name is None:
        name = os.environ.get("PYKERNELS_BACKEND") or None
    return name


@contextlib.contextmanager
def use_backend(name: str | None) -> Iterator[None]:
    """Force backend ``name`` for every op called inside the block (``None`` restores automatic choice)."""
    if name is not None and name not in BACKENDS:
        raise ValueError(f"use_backend: name must be one of {BACKENDS} or None, got {name!r}")
    token = _forced.set(name)
    try:
        yield
    finally:
        _forced.reset(token)


def select(op: str, device: torch.device) -> tuple[str, Callable]:
    """The (name, implementation) that runs ``op`` on tensors of ``device`` now."""
    return _select(op, device, forced_backend())


def default_backend(op: str, device: str | torch.device) -> str:
    """The backend chosen automatically for ``op`` on ``device`` (ignores any forced backend)."""
    return _select(op, torch.device(device), None)[0]


def _select(op: str, device: torch.device, forced: str | None) -> tuple[str, Callable]:
    entry = _get_op(op)
    if forced is not None:
        reason = why_unavailable(op, forced, device.type)
        if reason is not None:
            raise BackendUnavailableError(f"backend {forced!r} was requested for {op!r} but {reason}")
        return forced, entry.impls[forced].fn
    for name in entry.preference.get(device.type, ()) + ("reference",):
        if why_unavailable(op, name, device.type) is None:
            return name, entry.impls[name].fn
    raise BackendUnavailableError(f"no backend of {op!r} runs on {device.type!r} tensors")


# ---- availability probes shared by every op ----------------------------------------------------


def cpu_ext_unavailable() -> str | None:
    from kernels._ext import _C

    return None if _C else _C.reason


def cuda_ext_unavailable() -> str | None:
    from kernels._ext import _cuda

    if not _cuda:
        return _cuda.reason
    if not torch.cuda.is_available():
        return "no CUDA device is visible to torch"
    return None


def triton_interpreting() -> bool:
    return os.environ.get("TRITON_INTERPRET") == "1"


def triton_unavailable() -> str | None:
    try:
        import triton  # noqa: F401
    except ImportError as exc:
        return f"triton is not installed ({exc})"
    if not torch.cuda.is_available() and not triton_interpreting():
        return "no CUDA device is visible to torch (set TRITON_INTERPRET=1 to run Triton on CPU, slowly)"
    return None


def triton_module_unavailable(module: str) -> Callable[[], str | None]:
    """The probe of an op's Triton backend: Triton must be usable here (:func:`triton_unavailable`)
    and the op's kernel module must import — a Triton too old for the kernel fails here, with the
    reason in kernels.info(), not at the first call."""

    def probe() -> str | None:
        reason = triton_unavailable()
        if reason is not None:
            return reason
        try:
            importlib.import_module(module)
        except Exception as exc:
            return f"{module} does not import ({type(exc).__name__}: {exc})"
        return None

    return probe


def triton_devices() -> tuple[str, ...]:
    return ("cuda", "cpu") if triton_interpreting() else ("cuda",)
