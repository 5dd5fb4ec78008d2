"""Loaders for real multi-coil dynamic k-space on local disk, and coil maps estimated from the data.

HDF5 files as distributed by CMRxRecon (MATLAB v7.3 .mat files are HDF5) and as exported from OCMR's
ISMRMRD raw data by its reading scripts: one dataset of k-space whose last four axes are
(frames, coils, ky, kx) — h5py reads MATLAB's column-major (kx, ky, coils, frames) in exactly this
order — optionally with a slice axis before the coil axis (frames, slices, coils, ky, kx). Complex
values may be stored natively (complex64/128), as a compound type with fields ``real``/``imag``
(MATLAB, CMRxRecon), or as a trailing axis of length 2.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from pyrecon.ops.fft import ifft2c

KSPACE_KEYS = ("kspace", "kspace_full", "kspace_single_full", "kdata", "ksp")


def _to_complex(raw: np.ndarray) -> np.ndarray:
    if np.iscomplexobj(raw):
        return raw
    if raw.dtype.names is not None:
        names = {n.lower(): n for n in raw.dtype.names}
        if {"real", "imag"} <= set(names):
            return raw[names["real"]] + 1j * raw[names["imag"]]
        raise ValueError(f"compound k-space must have fields real/imag, got {raw.dtype.names}")
    if raw.ndim >= 1 and raw.shape[-1] == 2 and np.issubdtype(raw.dtype, np.floating):
        return raw[..., 0] + 1j * raw[..., 1]
    raise ValueError(f"k-space must be complex, compound (real, imag) or (..., 2) real; got {raw.dtype}")


def load_kspace_h5(path: str | os.PathLike, *, key: str | None = None, slice_index: int = 0) -> Tensor:
    """Read multi-coil dynamic k-space (frames, coils, ky, kx) from an HDF5 file.

    Args:
        path: a local .h5 / .mat (v7.3) file.
        key: the dataset name; default the first of :data:`KSPACE_KEYS` present, else the only dataset.
        slice_index: which slice of a 5-d (frames, slices, coils, ky, kx) dataset.

    Returns: complex64 or complex128 tensor (frames, coils, ky, kx) on the CPU (ky along dim -2).

    Raises: FileNotFoundError naming the path; KeyError naming the datasets there; ValueError for a
    layout that is not (frames, coils, ky, kx) or (frames, slices, coils, ky, kx).
    """
    import h5py

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"k-space file not found: {str(path)!r}")
    with h5py.File(path, "r") as f:
        datasets = [k for k in f if isinstance(f[k], h5py.Dataset)]
        if key is None:
            found = [k for k in KSPACE_KEYS if k in datasets]
            if found:
                key = found[0]
            elif len(datasets) == 1:
                key = datasets[0]
            else:
                raise KeyError(f"{str(path)!r}: pass key=, none of {KSPACE_KEYS} among datasets {datasets}")
        if key not in datasets:
            raise KeyError(f"{str(path)!r} has no dataset {key!r}; datasets: {datasets}")
        raw = f[key][()]
    data = _to_complex(raw)
    if data.ndim == 5:
        if not 0 <= slice_index < data.shape[1]:
            raise ValueError(f"slice_index must be in [0, {data.shape[1]}), got {slice_index}")
        data = data[:, slice_index]
    if data.ndim != 4:
        raise ValueError(
            f"dataset {key!r} must be (frames, coils, ky, kx) or (frames, slices, coils, ky, kx), "
            f"got shape {tuple(data.shape)}"
        )
    dtype = np.complex128 if data.dtype == np.complex128 else np.complex64
    return torch.from_numpy(np.ascontiguousarray(data.astype(dtype, copy=False)))


def estimate_coil_maps(kspace: Tensor, *, center_lines: int = 24, eps: float = 1e-3) -> Tensor:
    """Coil maps from the time-averaged low-resolution centre of (undersampled) k-space.

    Per item: k̄ = Σ_t y_t / max(1, #frames sampling that point) (a k-t mask that varies over time
    fills more of k-space on average), a separable Hann window of width ``center_lines`` around the
    centre of ky and kx, low-resolution coil images I_c = Fᴴ(window · k̄_c), and
    S_c = I_c / sqrt(Σ_c |I_c|² + (eps · max rss)²) — normalized (Σ_c |S_c|² ≈ 1) where there is signal.

    Args:
        kspace: complex (B, T, C, H, W) (zeros where not sampled).
        center_lines: width of the window (>= 2).
        eps: regularization relative to the peak root-sum-of-squares.

    Returns: complex (B, C, H, W), kspace's dtype.
    """
    if not isinstance(kspace, Tensor) or not kspace.is_complex() or kspace.dim() != 5:
        raise ValueError(
            f"kspace must be complex (B, T, C, H, W), got {getattr(kspace, 'shape', type(kspace))}"
        )
    if not isinstance(center_lines, int) or center_lines < 2:
        raise ValueError(f"center_lines must be an integer >= 2, got {center_lines!r}")
    h, w = kspace.shape[-2:]
    count = (kspace != 0).any(dim=2, keepdim=True).sum(dim=1).clamp_min(1)  # (B, 1, H, W)
    mean = kspace.sum(dim=1) / count
    rdtype = kspace.real.dtype

    def hann(n: int) -> Tensor:
        width = min(center_lines, n)
        win = torch.zeros(n, dtype=rdtype)
        lo = n // 2 - width // 2
        win[lo : lo + width] = torch.hann_window(width + 2, periodic=False, dtype=rdtype)[1:-1]
        return win

    window = hann(h)[:, None] * hann(w)[None, :]
    images = ifft2c(mean * window.to(kspace.device))
    rss = (images.abs() ** 2).sum(dim=1, keepdim=True).sqrt()
    floor = eps * rss.amax(dim=(-2, -1), keepdim=True)
    return images / torch.sqrt(rss**2 + floor**2)
