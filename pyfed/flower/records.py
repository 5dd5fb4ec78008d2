"""Flat pyfed dicts ↔ Flower records, and what they weigh on the wire.

A pyfed payload or client message is a flat ``dict[str, Tensor | number]``: the tensors travel in an
``ArrayRecord`` (one ``Array`` per key, serialized as ``.npy``), the numbers in a ``ConfigRecord``. A
client's persistent state (SCAFFOLD's ``{"c_i": {name: tensor}}``) is a nested str-keyed dict of tensors
and numbers; it is flattened with "/" between levels into one ``ArrayRecord`` and one ``ConfigRecord``
kept in the node's ``context.state`` (it never leaves the node).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from flwr.app import Array, ArrayRecord, ConfigRecord, RecordDict

__all__ = [
    "flat_to_records",
    "records_to_flat",
    "state_from_context",
    "state_to_context",
    "wire_bytes",
]

_SEP = "/"
_SCALARS = (bool, int, float, str)


def _to_array(name: str, t: torch.Tensor) -> Array:
    if t.dtype == torch.bfloat16:
        raise TypeError(f"{name!r}: bfloat16 tensors have no numpy dtype; send float32 or float16")
    return Array(t.detach().cpu().contiguous().numpy())


def flat_to_records(flat: Mapping[str, Any]) -> tuple[ArrayRecord, ConfigRecord]:
    """Split a flat pyfed dict into (tensors, numbers) records; anything else raises TypeError."""
    arrays, numbers = ArrayRecord(), ConfigRecord()
    for k, v in flat.items():
        if isinstance(v, torch.Tensor):
            arrays[k] = _to_array(k, v)
        elif isinstance(v, np.generic):
            numbers[k] = v.item()
        elif isinstance(v, _SCALARS):
            numbers[k] = v
        else:
            raise TypeError(f"entry {k!r}: expected a tensor or a number, got {type(v).__name__}")
    return arrays, numbers


def records_to_flat(
    arrays: ArrayRecord, numbers: ConfigRecord | None = None, device: torch.device | str = "cpu"
) -> dict[str, Any]:
    """Inverse of ``flat_to_records``; tensors land on ``device``."""
    out: dict[str, Any] = {k: torch.from_numpy(a.numpy()).to(device) for k, a in arrays.items()}
    if numbers is not None:
        out.update(dict(numbers))
    return out


def wire_bytes(content: RecordDict) -> int:
    """Bytes of the serialized arrays in a message's content (``.npy`` data, headers included)."""
    return sum(len(a.data) for rec in content.array_records.values() for a in rec.values())


def _flatten(obj: Mapping[str, Any], prefix: str, out: dict[str, Any]) -> None:
    for k, v in obj.items():
        if not isinstance(k, str) or _SEP in k or not k:
            raise TypeError(f"client state keys must be non-empty str without {_SEP!r}, got {k!r}")
        key = prefix + k
        if isinstance(v, Mapping):
            _flatten(v, key + _SEP, out)
        else:
            out[key] = v


def _unflatten(flat: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, v in flat.items():
        *parents, leaf = key.split(_SEP)
        node = out
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = v
    return out


def state_to_context(context_state: RecordDict, key: str, state: Mapping[str, Any]) -> None:
    """Store a client's nested state under ``key`` in ``context.state`` (replacing what was there).

    Parameter names contain dots but no "/", so "c_i/conv1.weight" is unambiguous."""
    flat: dict[str, Any] = {}
    _flatten(state, "", flat)
    arrays, numbers = flat_to_records(flat)
    context_state[f"{key}.arrays"] = arrays
    context_state[f"{key}.numbers"] = numbers


def state_from_context(
    context_state: RecordDict, key: str, device: torch.device | str = "cpu"
) -> dict[str, Any]:
    """The state ``state_to_context`` stored under ``key``; ``{}`` the first time."""
    if f"{key}.arrays" not in context_state:
        return {}
    arrays = context_state[f"{key}.arrays"]
    numbers = context_state[f"{key}.numbers"]
    return _unflatten(records_to_flat(arrays, numbers, device))
