"""Run directories shared by the method packages (pyfed, pyrecon, pyvision).

A run lives in ``runs/<name>/``::

    config.json        the run's configuration (a dataclass or dict), written once
    metrics.jsonl      one JSON object per line (round/epoch, losses, metrics, wall time)
    checkpoint.safetensors   the latest checkpoint: every tensor of a nested state, plus the
                       non-tensor rest of the tree as JSON in the file's metadata
    *.png              plots

Checkpoints and config are written atomically (temporary file in the same directory, fsync,
``os.replace``): an interrupt leaves either the old file or the new one, never a torn one. On resume,
``RunDir.truncate_metrics`` drops the metric lines written after the checkpoint, so the curve of a
resumed run is identical to an uninterrupted one.

This module lives in ``kernels`` because all three method packages need it and none of them should
import another; it uses no op.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import random
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

__all__ = [
    "RunDir",
    "atomic_write",
    "capture_rng",
    "cosine_lr",
    "load_optimizer_state",
    "load_state",
    "optimizer_state",
    "plot_curves",
    "restore_rng",
    "save_figure",
    "save_state",
]

_TENSOR = "__tensor__"
_NDARRAY = "__ndarray__"
_TUPLE = "__tuple__"


def atomic_write(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers see the old file or the new one, never a partial one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    # The rename itself is durable only once the directory entry is flushed.
    with contextlib.suppress(OSError):
        dfd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)


def _encode(obj: Any, key: str, tensors: dict[str, torch.Tensor]) -> Any:
    if isinstance(obj, torch.Tensor):
        tensors[key] = obj.detach().to("cpu").contiguous().clone()
        return {_TENSOR: key}
    if isinstance(obj, np.ndarray):
        tensors[key] = torch.from_numpy(np.ascontiguousarray(obj)).clone()
        return {_NDARRAY: key}
    if isinstance(obj, Mapping):
        out = {}
        for k, v in obj.items():
            if not isinstance(k, str):
                raise TypeError(f"state keys must be str, got {type(k).__name__} at {key!r}")
            out[k] = _encode(v, f"{key}/{k}" if key else k, tensors)
        return out
    if isinstance(obj, tuple):
        return {_TUPLE: [_encode(v, f"{key}/{i}", tensors) for i, v in enumerate(obj)]}
    if isinstance(obj, list):
        return [_encode(v, f"{key}/{i}", tensors) for i, v in enumerate(obj)]
    if isinstance(obj, np.generic):
        return obj.item()
    if obj is None or isinstance(obj, bool | int | float | str):
        return obj
    raise TypeError(f"cannot checkpoint a {type(obj).__name__} at {key!r}: use tensors, numbers, str, "
                    "lists, tuples and str-keyed dicts")


def _decode(obj: Any, tensors: Mapping[str, torch.Tensor]) -> Any:
    if isinstance(obj, dict):
        if _TENSOR in obj and len(obj) == 1:
            return tensors[obj[_TENSOR]]
        if _NDARRAY in obj and len(obj) == 1:
            return tensors[obj[_NDARRAY]].numpy()
        if _TUPLE in obj and len(obj) == 1:
            return tuple(_decode(v, tensors) for v in obj[_TUPLE])
        return {k: _decode(v, tensors) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_decode(v, tensors) for v in obj]
    return obj


def optimizer_state(opt: torch.optim.Optimizer) -> dict:
    """``opt.state_dict()`` as a tree ``save_state`` accepts: its per-parameter state is keyed by int
    index, a checkpoint wants str keys. ``load_optimizer_state`` is the inverse."""
    sd = opt.state_dict()
    return {"state": {str(k): v for k, v in sd["state"].items()}, "param_groups": sd["param_groups"]}


def load_optimizer_state(opt: torch.optim.Optimizer, saved: Mapping[str, Any]) -> None:
    """Load a state written by ``optimizer_state`` into ``opt``."""
    opt.load_state_dict(
        {"state": {int(k): v for k, v in saved["state"].items()}, "param_groups": saved["param_groups"]}
    )


def save_state(path: str | os.PathLike, state: Mapping[str, Any]) -> None:
    """Atomically save a nested state (str-keyed dicts, lists, tuples, tensors, numpy arrays, JSON
    scalars) as one safetensors file; tensors are stored on CPU."""
    from safetensors.torch import save

    tensors: dict[str, torch.Tensor] = {}
    tree = _encode(state, "", tensors)
    atomic_write(path, save(tensors, metadata={"tree": json.dumps(tree)}))


def load_state(path: str | os.PathLike, device: str | torch.device = "cpu") -> dict[str, Any]:
    """Load what ``save_state`` wrote; tensors land on ``device``."""
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {str(path)!r} does not exist")
    tensors = {}
    with safe_open(str(path), framework="pt", device=str(device)) as f:
        meta = f.metadata() or {}
        if "tree" not in meta:
            raise ValueError(f"{str(path)!r} is a safetensors file but not a pykernels checkpoint "
                             "(no 'tree' metadata)")
        for k in f.keys():  # noqa: SIM118 - safe_open is not a mapping
            tensors[k] = f.get_tensor(k)
    return _decode(json.loads(meta["tree"]), tensors)


def capture_rng(generators: Mapping[str, torch.Generator | np.random.Generator] | None = None) -> dict:
    """The state of Python's, numpy's legacy and torch's global RNGs, plus any named generators."""
    state: dict[str, Any] = {
        "python": _encode_python_rng(random.getstate()),
        "numpy": _encode_numpy_legacy(np.random.get_state()),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["torch_cuda"] = torch.cuda.get_rng_state_all()
    named = {}
    for name, g in (generators or {}).items():
        if isinstance(g, torch.Generator):
            named[name] = {"kind": "torch", "state": g.get_state()}
        elif isinstance(g, np.random.Generator):
            named[name] = {"kind": "numpy", "state": json.dumps(g.bit_generator.state)}
        else:
            raise TypeError(f"generator {name!r}: expected torch.Generator or numpy Generator, "
                            f"got {type(g).__name__}")
    state["named"] = named
    return state


def restore_rng(state: Mapping[str, Any],
                generators: Mapping[str, torch.Generator | np.random.Generator] | None = None) -> None:
    """Inverse of ``capture_rng``: restores the global RNGs and the named generators in place."""
    random.setstate(_decode_python_rng(state["python"]))
    np.random.set_state(_decode_numpy_legacy(state["numpy"]))
    torch.set_rng_state(state["torch"])
    if "torch_cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(list(state["torch_cuda"]))
    for name, g in (generators or {}).items():
        saved = state["named"].get(name)
        if saved is None:
            raise KeyError(f"checkpoint has no RNG state for generator {name!r}")
        if isinstance(g, torch.Generator):
            g.set_state(saved["state"])
        else:
            g.bit_generator.state = json.loads(saved["state"])


def _encode_python_rng(s):
    version, internal, gauss = s
    return {"version": version, "internal": torch.tensor(internal, dtype=torch.int64), "gauss": gauss}


def _decode_python_rng(d):
    return (d["version"], tuple(int(x) for x in d["internal"].tolist()), d["gauss"])


def _encode_numpy_legacy(s):
    name, keys, pos, has_gauss, cached = s
    return {"name": name, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
            "has_gauss": int(has_gauss), "cached": float(cached)}


def _decode_numpy_legacy(d):
    return (d["name"], d["keys"].numpy().astype(np.uint32), d["pos"], d["has_gauss"], d["cached"])


def cosine_lr(base: float, step: int, total: int, *, warmup: int = 0, floor: float = 0.0) -> float:
    """The learning rate of step ``step`` (0-based): a linear warm-up base·(step + 1)/warmup over the first
    ``warmup`` steps, then a cosine from base down to base·floor over the remaining total − warmup steps,
    held there after ``total``::

        lr = lo + (base − lo)·½(1 + cos(π·min(step − warmup, T)/T))
        lo = base·floor,  T = max(1, total − warmup)

    A function of the step alone, so a resumed run needs no scheduler state. ``base = 1`` gives the
    multiplier for ``torch.optim.lr_scheduler.LambdaLR``."""
    if step < warmup:
        return base * (step + 1) / warmup
    span = max(1, total - warmup)
    lo = base * floor
    return lo + (base - lo) * 0.5 * (1 + math.cos(math.pi * min(step - warmup, span) / span))


class RunDir:
    """``runs/<name>/``: config, metrics, checkpoint and plots of one run.

    ``RunDir(path)`` refuses a directory that already holds a checkpoint or metrics unless
    ``resume=True`` or ``overwrite=True``, so a run is never silently mixed with another's.
    """

    def __init__(self, path: str | os.PathLike, *, resume: bool = False, overwrite: bool = False):
        self.path = Path(path)
        if resume and overwrite:
            raise ValueError("resume and overwrite are exclusive")
        has_run = self.metrics_path.exists() or self.checkpoint_path.exists()
        if has_run and not (resume or overwrite):
            raise FileExistsError(f"run directory {str(self.path)!r} already holds a run: pass resume=True "
                                  "(--resume) to continue it or overwrite=True to start over")
        if overwrite:
            for p in (self.metrics_path, self.checkpoint_path, self.config_path):
                if p.exists():
                    p.unlink()
        self.path.mkdir(parents=True, exist_ok=True)

    @property
    def config_path(self) -> Path:
        return self.path / "config.json"

    @property
    def metrics_path(self) -> Path:
        return self.path / "metrics.jsonl"

    @property
    def checkpoint_path(self) -> Path:
        return self.path / "checkpoint.safetensors"

    def write_config(self, config: Any) -> None:
        if dataclasses.is_dataclass(config):
            config = dataclasses.asdict(config)
        text = json.dumps(config, indent=2, sort_keys=True, default=str) + "\n"
        atomic_write(self.config_path, text.encode())

    def read_config(self) -> dict:
        return json.loads(self.config_path.read_text())

    def log(self, record: Mapping[str, Any]) -> None:
        """Append one JSON line and flush it to disk."""
        line = json.dumps(dict(record), default=_json_default) + "\n"
        with open(self.metrics_path, "a") as f:
            f.write(line)
            f.flush()
            os.fsync(f.fileno())

    def metrics(self) -> list[dict]:
        if not self.metrics_path.exists():
            return []
        return [json.loads(line) for line in self.metrics_path.read_text().splitlines() if line.strip()]

    def truncate_metrics(self, key: str, last: int | float) -> None:
        """Keep only the lines with ``record[key] <= last`` (those the checkpoint already covers)."""
        kept = [r for r in self.metrics() if r.get(key, -float("inf")) <= last]
        atomic_write(self.metrics_path, "".join(json.dumps(r, default=_json_default) + "\n"
                                                for r in kept).encode())

    def has_checkpoint(self) -> bool:
        return self.checkpoint_path.exists()

    def save_checkpoint(self, state: Mapping[str, Any]) -> None:
        save_state(self.checkpoint_path, state)

    def load_checkpoint(self, device: str | torch.device = "cpu", *, config: Any = None) -> dict[str, Any]:
        """The saved state. With ``config`` (a dataclass), the state's "config" entry must equal it:
        a resume with other settings raises ValueError instead of continuing a different run."""
        state = load_state(self.checkpoint_path, device)
        if config is not None and state.get("config") != dataclasses.asdict(config):
            raise ValueError(
                f"--resume: the configuration differs from the checkpoint's in {str(self.path)!r}"
            )
        return state


def _json_default(o):
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, torch.Tensor) and o.numel() == 1:
        return o.item()
    raise TypeError(f"metrics must be JSON numbers or strings, got {type(o).__name__}")


def plot_curves(path: str | os.PathLike, series: Mapping[str, Iterable[tuple[float, float]]], *,
                xlabel: str, ylabel: str, title: str = "", logy: bool = False) -> Path:
    """One PNG with a line per named series of (x, y) points (matplotlib, Agg backend)."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.0), dpi=120)
    for name, points in series.items():
        pts = list(points)
        if pts:
            xs, ys = zip(*pts, strict=True)
            ax.plot(xs, ys, label=name, linewidth=1.5)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if logy:
        ax.set_yscale("log")
    if title:
        ax.set_title(title)
    ax.grid(alpha=0.3)
    if len(series) > 1:
        ax.legend()
    fig.tight_layout()
    return save_figure(fig, path)


def save_figure(fig, path: str | os.PathLike, **savefig_kwargs) -> Path:
    """Write a matplotlib figure atomically (a temporary file in the same folder, then ``os.replace``,
    so a reader never sees half a PNG), create the folder, close the figure; returns the path."""
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{path.suffix}")
    try:
        fig.savefig(tmp, **savefig_kwargs)
        os.replace(tmp, path)
    finally:
        plt.close(fig)
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
    return path
