"""Pieces shared by the INR methods: the hash-grid + MLP field, a dataclass → argparse bridge, the
optimizer-state ↔ checkpoint conversion and image helpers. Private to pyrecon.inr."""

from __future__ import annotations

import argparse
import dataclasses
from typing import Any

import torch
from torch import Tensor, nn

from kernels.nn import HashGridEncoding
from kernels.runs import load_optimizer_state, optimizer_state, save_figure


class HashMLP(nn.Module):
    """f(p) = MLP([HashGridEncoding(p[:, :in_dim]), p[:, in_dim:]]) for points p in [0, 1]^(in_dim+extra_dims)
    → ``out_dim`` real outputs: the first ``in_dim`` coordinates are hash-encoded, the ``extra_dims``
    last ones go to the MLP as they are (a field that is smooth along them).

    MLP: (depth − 1) hidden layers of width ``hidden`` with ReLU, then a linear layer (depth >= 1)."""

    def __init__(self, in_dim: int, out_dim: int, *, n_levels: int, n_features: int, log2_hashmap_size: int,
                 base_resolution: int, finest_resolution: int, hidden: int, depth: int,
                 extra_dims: int = 0) -> None:
        super().__init__()
        self.in_dim, self.extra_dims = in_dim, extra_dims
        if depth < 1 or hidden < 1:
            raise ValueError(f"depth and hidden must be >= 1, got depth={depth}, hidden={hidden}")
        self.encoding = HashGridEncoding(in_dim, n_levels, n_features, log2_hashmap_size, base_resolution,
                                         per_level_scale=None, finest_resolution=finest_resolution)
        layers: list[nn.Module] = []
        width = self.encoding.output_dim + extra_dims
        for _ in range(depth - 1):
            layers += [nn.Linear(width, hidden), nn.ReLU()]
            width = hidden
        layers.append(nn.Linear(width, out_dim))
        self.mlp = nn.Sequential(*layers)

    def forward(self, p: Tensor) -> Tensor:
        if p.dim() != 2 or p.size(1) != self.in_dim + self.extra_dims:
            raise ValueError(f"p must have shape (N, {self.in_dim + self.extra_dims}), got {tuple(p.shape)}")
        feats = self.encoding(p[:, : self.in_dim])
        if self.extra_dims:
            feats = torch.cat([feats, p[:, self.in_dim:].to(feats.dtype)], dim=1)
        return self.mlp(feats)


def pixel_grid(h: int, w: int, device=None) -> Tensor:
    """(H·W, 2) pixel-centre coordinates (y, x) in (0, 1), row-major."""
    ys = (torch.arange(h, device=device, dtype=torch.float32) + 0.5) / h
    xs = (torch.arange(w, device=device, dtype=torch.float32) + 0.5) / w
    return torch.stack(torch.meshgrid(ys, xs, indexing="ij"), dim=-1).reshape(-1, 2)


def add_config_arguments(parser: argparse.ArgumentParser, config_cls: type, presets: dict[str, Any]) -> None:
    """One ``--field`` flag per config field (tuples take several values, bools are --x/--no-x),
    ``--preset``, ``--out``, ``--resume``, ``--overwrite``, ``--threads``."""
    parser.add_argument("--preset", choices=sorted(presets), default=None,
                        help="starting configuration; the flags below override it")
    for f in dataclasses.fields(config_cls):
        default = getattr(config_cls(), f.name)
        flag, dest = "--" + f.name.replace("_", "-"), f"cfg_{f.name}"
        if isinstance(default, bool):
            parser.add_argument(flag, dest=dest, action=argparse.BooleanOptionalAction, default=None,
                                help=f"default: {default}")
        elif isinstance(default, tuple):
            parser.add_argument(flag, dest=dest, type=type(default[0]), nargs="+", default=None,
                                help=f"default: {default}")
        else:
            parser.add_argument(flag, dest=dest, type=type(default), default=None, help=f"default: {default}")
    parser.add_argument("--out", default="runs", help="parent folder of runs/<name>/")
    parser.add_argument("--resume", action="store_true", help="continue runs/<name>/ from its checkpoint")
    parser.add_argument("--overwrite", action="store_true", help="start runs/<name>/ over")
    if "--threads" not in parser._option_string_actions:
        parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads")


def config_from_args(args: argparse.Namespace, config_cls: type, presets: dict[str, Any]) -> Any:
    base = config_cls()
    if getattr(args, "preset", None):
        base = dataclasses.replace(base, **presets[args.preset])
    over = {}
    for f in dataclasses.fields(config_cls):
        v = getattr(args, f"cfg_{f.name}", None)
        if v is not None:
            over[f.name] = tuple(v) if isinstance(v, list) else v
    return dataclasses.replace(base, **over)


def save_image_grid(path, panels: list[tuple[str, Tensor]], *, ncols: int, cmap: str = "gray",
                    vmin: float | None = None, vmax: float | None = None,
                    per_panel: dict[str, tuple[str, float, float]] | None = None) -> None:
    """A PNG grid of real 2-D panels (title, image); ``per_panel`` overrides (cmap, vmin, vmax)."""
    import matplotlib

    matplotlib.use("Agg", force=True)

    import matplotlib.pyplot as plt

    nrows = (len(panels) + ncols - 1) // ncols
    fig, axes = plt.subplots(nrows, ncols, figsize=(2.6 * ncols, 2.6 * nrows), dpi=100, squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for ax, (title, img) in zip(axes.ravel(), panels, strict=False):
        cm, lo, hi = (per_panel or {}).get(title, (cmap, vmin, vmax))
        im = ax.imshow(img.detach().cpu().float().numpy(), cmap=cm, vmin=lo, vmax=hi)
        ax.set_title(title, fontsize=8)
        fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    fig.tight_layout()
    save_figure(fig, path)


def fit_loop(model: nn.Module, loss_fn, *, iters: int, lr: float, seed: int, log_every: int,
             checkpoint_every: int, tag: str, run=None, resume: bool = False, stop_after: int | None = None,
             progress: bool = True) -> list[dict]:
    """Adam on ``loss_fn() -> (loss, {name: scalar tensor})`` for ``iters`` iterations.

    Logs {"iter", every term, "time_s"} every ``log_every`` iterations (and at the last); with ``run``
    (a kernels.runs.RunDir) the records go to metrics.jsonl and the model, optimizer, iteration and
    RNG states to an atomic checkpoint every ``checkpoint_every`` iterations. ``resume`` restores the
    checkpoint and drops the metric lines it does not cover, so the curve equals an uninterrupted
    one. ``stop_after`` ends the loop after that iteration (an interruption, for tests). NVTX ranges
    ``{tag}.iter``, ``{tag}.forward_loss``, ``{tag}.backward``, ``{tag}.checkpoint``."""
    import time

    from tqdm.auto import tqdm

    import kernels.nvtx
    from kernels.runs import capture_rng, restore_rng

    if iters < 0 or log_every < 1 or checkpoint_every < 1:
        raise ValueError(f"need iters >= 0, log_every >= 1, checkpoint_every >= 1; got {iters}, {log_every}, "
                         f"{checkpoint_every}")
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    start, records = 0, []
    if resume and run is not None and run.has_checkpoint():
        state = run.load_checkpoint()
        model.load_state_dict(state["model"])
        load_optimizer_state(opt, state["opt"])
        restore_rng(state["rng"])
        start = int(state["iter"])
        run.truncate_metrics("iter", start)
        records = run.metrics()
    else:
        torch.manual_seed(seed)
    t0 = time.perf_counter()
    last = iters if stop_after is None else min(iters, stop_after)
    for it in tqdm(range(start + 1, last + 1), desc=tag, disable=not progress, initial=start, total=iters):
        with kernels.nvtx.range(f"{tag}.iter"):
            opt.zero_grad(set_to_none=True)
            with kernels.nvtx.range(f"{tag}.forward_loss"):
                loss, terms = loss_fn()
            with kernels.nvtx.range(f"{tag}.backward"):
                loss.backward()
            opt.step()
        if it % log_every == 0 or it == iters:
            rec = {"iter": it, **{k: float(v.detach()) for k, v in terms.items()},
                   "time_s": time.perf_counter() - t0}
            records.append(rec)
            if run is not None:
                run.log(rec)
        if run is not None and (it % checkpoint_every == 0 or it == iters):
            with kernels.nvtx.range(f"{tag}.checkpoint"):
                run.save_checkpoint({"model": model.state_dict(),
                                     "opt": optimizer_state(opt),
                                     "iter": it, "rng": capture_rng()})
    return records


def open_run(cfg: Any, out_dir, *, resume: bool, overwrite: bool):
    """RunDir for ``cfg``; on ``resume`` the stored config.json must equal ``cfg`` (else ValueError)."""
    import json

    from kernels.runs import RunDir

    rd = RunDir(out_dir, resume=resume, overwrite=overwrite)
    as_json = json.loads(json.dumps(dataclasses.asdict(cfg), sort_keys=True, default=str))
    if resume and rd.config_path.exists() and rd.read_config() != as_json:
        raise ValueError(f"--resume: the configuration differs from the one stored in {out_dir}")
    rd.write_config(cfg)
    return rd
