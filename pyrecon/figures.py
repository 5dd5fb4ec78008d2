"""PNG figures of dynamic reconstructions: a frame, its error map, and an x–t profile per method."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import Tensor

from kernels.runs import save_figure
from pyrecon.metrics import psnr, ssim


def save_recon_figure(
    path: str | os.PathLike,
    ref: Tensor,
    recons: Mapping[str, Tensor],
    *,
    frame: int = 0,
    column: int | None = None,
    error_scale: float = 5.0,
    title: str = "",
) -> Path:
    """Write a grid: column 1 the reference, then one column per reconstruction (e.g. zero-filled,
    CG-SENSE, a network); rows: |frame|, |error| × ``error_scale`` (same grey scale), and the x–t
    profile |x[:, :, column]| (time along the horizontal axis). Each title carries PSNR/SSIM.

    Args:
        path: the PNG to write (parent directories are created).
        ref: (T, H, W) reference series (complex or real).
        recons: name → (T, H, W) reconstruction.
        frame: the frame shown in rows 1–2.
        column: the image column of the x–t profile (default W // 2).
        error_scale: error maps are magnified by this factor.

    Returns: the path written.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not isinstance(ref, Tensor) or ref.dim() != 3:
        raise ValueError(f"ref must be a (T, H, W) tensor, got {getattr(ref, 'shape', type(ref))}")
    t, h, w = ref.shape
    for name, rec in recons.items():
        if not isinstance(rec, Tensor) or rec.shape != ref.shape:
            raise ValueError(f"recons[{name!r}] must have ref's shape {tuple(ref.shape)}")
    if not 0 <= frame < t:
        raise ValueError(f"frame must be in [0, {t}), got {frame}")
    column = w // 2 if column is None else column
    if not 0 <= column < w:
        raise ValueError(f"column must be in [0, {w}), got {column}")
    mag = ref.detach().abs().cpu().double()
    vmax = float(mag.max()) or 1.0
    cols = 1 + len(recons)
    fig, axes = plt.subplots(3, cols, figsize=(2.6 * cols, 7.4), squeeze=False)
    entries = [("reference", ref)] + list(recons.items())
    for j, (name, img) in enumerate(entries):
        m = img.detach().abs().cpu().double()
        label = name if j == 0 else f"{name}\n{psnr(ref, img):.2f} dB, SSIM {ssim(ref, img):.3f}"
        axes[0, j].imshow(m[frame].numpy(), cmap="gray", vmin=0, vmax=vmax)
        axes[0, j].set_title(label, fontsize=8)
        err = (m - mag)[frame].abs() * error_scale if j else torch.zeros(h, w)
        axes[1, j].imshow(err.numpy(), cmap="gray", vmin=0, vmax=vmax)
        axes[1, j].set_title(f"|error| x{error_scale:g}" if j else "", fontsize=8)
        axes[2, j].imshow(m[:, :, column].T.numpy(), cmap="gray", vmin=0, vmax=vmax, aspect="auto")
        axes[2, j].set_title(f"x-t profile (column {column})" if j == 0 else "", fontsize=8)
        for r in range(3):
            axes[r, j].set_xticks([])
            axes[r, j].set_yticks([])
    axes[0, 0].set_ylabel(f"frame {frame}")
    axes[2, 0].set_ylabel("y  (time →)")
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return save_figure(fig, path, dpi=100)
