"""Childhood myopia progression data: a longitudinal-CSV loader and a fundus-like generator.

A data set is a ``MyopiaData``: ``images`` (N, V, 3, S, S) in [0, 1] — V visits ending at the baseline
visit (V = 1: a single time point) — ``se`` (N, V) spherical equivalent (D) and ``age`` (N, V) years at
those visits, ``traj`` (N, 6) SE at 1..6 years after the baseline with ``traj_mask`` (N, 6) telling
which are observed, and ``rate`` (N,) the progression rate (D/year): the least-squares slope of the
observed SE against years since the baseline (baseline included).

Generator (``make_myopia_data``): each child has a latent axial-elongation factor z ~ N(0, 1). The
rate is r = −0.45 − 0.25·z − 0.04·(12 − age₀) − 0.05·max(−SE₀, 0) + ε (D/yr; younger and already
myopic children progress faster, as clinically), the trajectory SE_k = SE₀ + r·k·(1 − 0.04·k) + noise.
The fundus image is scikit-image's bundled ``retina`` photo, resized, with axial-length-related changes
whose strength a = z + 0.25·max(−SE, 0) (grows with myopia at that visit): choroidal tessellation
(stripe texture away from the disc), peripapillary atrophy (a pale crescent on the temporal side of the
disc) and disc tilt (the disc drawn as a narrowing ellipse) — plus nuisance (brightness, contrast,
shift, left/right eye flip, noise). Refraction and age explain part of the rate; z only the image shows.
Checked (benchmarks/vision/myopia_generator.py, signal probe, n = 1000, 5-fold ridge): the rate MAE is
0.171 D/yr for the mean, 0.162 from (SE₀, age₀), 0.076 from nine global image statistics and 0.062 from
both, so the image carries rate information that refraction and age lack, as the paper claims; the
generator was left unchanged (the image model's earlier loss to the baseline was a training defect, see
``pyvision.myopia.train.recompute_bn_stats``).

Longitudinal CSV (``load_myopia_csv``), one row per exam::

    child_id,exam_date,image_path,se[,age | ,birth_date]

``exam_date``/``birth_date`` as YYYY-MM-DD, ``image_path`` relative to the CSV's folder. The first
``visits`` exams of a child are the inputs (the last of them is the baseline); later exams are matched
to 1..6 years after the baseline when within ±``tolerance`` years (unmatched years are masked).
"""

from __future__ import annotations

import csv
import datetime as dt
import os
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np
import torch

__all__ = ["HORIZON_YEARS", "MyopiaData", "least_squares_rate", "load_myopia_csv", "make_myopia_data"]

HORIZON_YEARS = 6


@dataclass
class MyopiaData:
    images: torch.Tensor
    se: torch.Tensor
    age: torch.Tensor
    traj: torch.Tensor
    traj_mask: torch.Tensor
    rate: torch.Tensor

    def __post_init__(self):
        n = self.images.shape[0]
        for f in fields(self):
            v = getattr(self, f.name)
            if not isinstance(v, torch.Tensor):
                raise TypeError(f"{f.name} must be a tensor, got {type(v).__name__}")
            if v.shape[0] != n:
                raise ValueError(f"{f.name} has {v.shape[0]} samples, images has {n}")
        if self.images.dim() != 5 or self.images.shape[2] != 3:
            raise ValueError(f"images must be (N, V, 3, S, S), got {tuple(self.images.shape)}")
        v = self.images.shape[1]
        if self.se.shape != (n, v) or self.age.shape != (n, v):
            raise ValueError(
                f"se and age must be (N, V) = {(n, v)}, got {tuple(self.se.shape)}, {tuple(self.age.shape)}"
            )
        if self.traj.shape != (n, HORIZON_YEARS) or self.traj_mask.shape != (n, HORIZON_YEARS):
            raise ValueError(f"traj and traj_mask must be (N, {HORIZON_YEARS})")

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def subset(self, index) -> MyopiaData:
        index = torch.as_tensor(index, dtype=torch.long)
        return MyopiaData(**{f.name: getattr(self, f.name)[index] for f in fields(self)})

    def batch(self, index=None) -> dict[str, torch.Tensor]:
        d = self if index is None else self.subset(index)
        return {f.name: getattr(d, f.name) for f in fields(d)}

    def risk_labels(self, horizon: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(myopia, high_myopia, observed) at ``horizon`` years: SE ≤ −0.5 D, SE ≤ −6 D, and the mask."""
        if not 1 <= horizon <= HORIZON_YEARS:
            raise ValueError(f"horizon must be in 1..{HORIZON_YEARS}, got {horizon}")
        se_h = self.traj[:, horizon - 1]
        return (se_h <= -0.5).float(), (se_h <= -6.0).float(), self.traj_mask[:, horizon - 1]


def least_squares_rate(se0: torch.Tensor, traj: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Slope (D/year) of the least-squares line through (0, SE₀) and the observed (k, SE_k), k = 1..6:
    Σ w_k (t_k − t̄)(y_k − ȳ) / Σ w_k (t_k − t̄)², w = the observation mask (w₀ = 1). Works batched
    (se0 (N,), traj/mask (N, 6)) and is differentiable in ``traj`` (the model derives its rate with it)."""
    t = torch.arange(HORIZON_YEARS + 1, dtype=traj.dtype, device=traj.device)
    y = torch.cat([se0[:, None].to(traj.dtype), traj], 1)
    w = torch.cat([torch.ones_like(se0[:, None], dtype=traj.dtype), mask.to(traj.dtype)], 1)
    sw = w.sum(1, keepdim=True)
    tm = (w * t).sum(1, keepdim=True) / sw
    ym = (w * y).sum(1, keepdim=True) / sw
    num = (w * (t - tm) * (y - ym)).sum(1)
    den = (w * (t - tm) ** 2).sum(1)
    return num / den.clamp_min(1e-12)


# ---------------------------------------------------------------------------------------------------
# Generator

_BASE_CACHE: dict[int, tuple[np.ndarray, tuple[float, float]]] = {}


def _base_fundus(size: int) -> tuple[np.ndarray, tuple[float, float]]:
    """The bundled retina photo resized to (3, size, size) in [0, 1], and the optic-disc centre (row,
    col) in pixels (the brightest spot of the heavily blurred luminance)."""
    if size not in _BASE_CACHE:
        import torch.nn.functional as F
        from skimage import data

        img = torch.from_numpy(data.retina()).permute(2, 0, 1)[None].float() / 255.0
        img = F.interpolate(img, size=(size, size), mode="area")[0]
        lum = img.mean(0, keepdim=True)[None]
        k = max(3, size // 8) | 1
        blur = F.avg_pool2d(lum, k, 1, k // 2, count_include_pad=False)[0, 0]
        fov = (img.max(0).values > 0.08).float()  # inside the camera's field of view
        r, c = divmod(int(torch.argmax(blur * fov)), size)
        _BASE_CACHE[size] = (img.numpy(), (float(r), float(c)))
    img, centre = _BASE_CACHE[size]
    return img.copy(), centre


def _render(base: np.ndarray, centre: tuple[float, float], a: float, rng: np.random.Generator) -> np.ndarray:
    """Add the axial-length signs of strength ``a`` (tessellation, PPA, disc tilt) and nuisance."""
    _, s, _ = base.shape
    yy, xx = np.mgrid[0:s, 0:s].astype(np.float64)
    cy, cx = centre
    rd = s * 0.07  # disc radius
    dist = np.hypot(yy - cy, xx - cx)
    strength = 1.0 / (1.0 + np.exp(-1.5 * a))  # in (0, 1)
    img = base.copy()
    fov = base.max(0) > 0.08
    # Tessellation: choroidal stripes (oriented, random phase) revealed away from the disc.
    theta = rng.uniform(0, np.pi)
    stripes = 0.5 + 0.5 * np.sin(
        (np.cos(theta) * xx + np.sin(theta) * yy) * (2 * np.pi / max(4.0, s / 10)) + rng.uniform(0, 2 * np.pi)
    )
    away = np.clip((dist - 2 * rd) / (2 * rd), 0, 1)
    tess = strength * 0.35 * stripes * away
    img[0] -= tess * 0.6
    img[1] -= tess * 0.9
    img[2] -= tess * 0.5
    # Peripapillary atrophy: a pale crescent on the temporal side whose width grows with a.
    side = -1.0 if cx > s / 2 else 1.0  # temporal = towards the image centre (fovea)
    width = rd * (0.2 + 1.6 * strength)
    crescent = (dist > rd) & (dist < rd + width) & (side * (xx - cx) > 0)
    img[:, crescent] = 0.6 * img[:, crescent] + 0.4 * np.array([0.95, 0.85, 0.7])[:, None]
    # Disc tilt: the disc drawn as an ellipse narrowing horizontally with a.
    ratio = 1.0 - 0.6 * strength
    ell = ((xx - cx) / (rd * ratio)) ** 2 + ((yy - cy) / rd) ** 2 < 1.0
    img[:, ell] = 0.5 * img[:, ell] + 0.5 * np.array([1.0, 0.95, 0.75])[:, None]
    # Nuisance: brightness/contrast, shift, left/right eye, sensor noise.
    img = (img - 0.5) * rng.uniform(0.85, 1.15) + 0.5 + rng.uniform(-0.05, 0.05)
    img = np.roll(img, tuple(rng.integers(-s // 16, s // 16 + 1, size=2)), axis=(1, 2))
    if rng.random() < 0.5:
        img = img[:, :, ::-1]
    img = img + 0.03 * rng.standard_normal(img.shape)
    img = img * np.roll(fov, 0)[None]
    return np.clip(img, 0.0, 1.0)


def make_myopia_data(
    n: int,
    *,
    seed: int = 0,
    image_size: int = 64,
    visits: int = 1,
    image_weight: float = 0.25,
    noise: float = 0.1,
) -> MyopiaData:
    """Draw ``n`` children; see the module docstring. ``image_weight`` scales the rate's dependence on the
    image-only latent z (0 makes the image useless beyond SE and age)."""
    if not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be a positive int, got {n!r}")
    if not isinstance(visits, int) or not 1 <= visits <= 4:
        raise ValueError(f"visits must be an int in 1..4, got {visits!r}")
    if not isinstance(image_size, int) or image_size < 16:
        raise ValueError(f"image_size must be an int >= 16, got {image_size!r}")
    rng = np.random.default_rng(seed)
    base, centre = _base_fundus(image_size)
    z = rng.standard_normal(n)
    age0 = rng.uniform(6.0, 12.0, size=n)
    se0 = rng.normal(-0.5, 1.6, size=n)
    rate = (
        -0.45
        - image_weight * z
        - 0.04 * (12.0 - age0)
        - 0.05 * np.maximum(-se0, 0)
        + 0.08 * rng.standard_normal(n)
    )
    rate = np.minimum(rate, 0.1)
    k = np.arange(-(visits - 1), HORIZON_YEARS + 1)  # years relative to the baseline visit
    se_all = (
        se0[:, None]
        + rate[:, None] * k[None] * (1 - 0.04 * k[None])
        + noise * rng.standard_normal((n, k.size))
    )
    se_all[:, visits - 1] = se0
    images = np.empty((n, visits, 3, image_size, image_size), dtype=np.float32)
    for i in range(n):
        for v in range(visits):
            a = z[i] + 0.25 * max(-se_all[i, v], 0.0)
            images[i, v] = _render(base, centre, a, rng)
    traj = se_all[:, visits:]
    mask = np.ones_like(traj, dtype=bool)
    f32 = torch.float32
    traj_t = torch.tensor(traj, dtype=f32)
    mask_t = torch.from_numpy(mask)
    se_in = torch.tensor(se_all[:, :visits], dtype=f32)
    return MyopiaData(
        images=torch.from_numpy(images),
        se=se_in,
        age=torch.tensor(age0[:, None] + k[None, :visits], dtype=f32),
        traj=traj_t,
        traj_mask=mask_t,
        rate=least_squares_rate(se_in[:, -1], traj_t, mask_t),
    )


# ---------------------------------------------------------------------------------------------------
# Longitudinal CSV


def _date(v: str, column: str, path: Path) -> dt.date:
    try:
        return dt.date.fromisoformat(v.strip())
    except ValueError:
        raise ValueError(f"{path}: column {column!r} holds {v!r}, expected YYYY-MM-DD") from None


def _image(path: Path, size: int) -> np.ndarray:
    from PIL import Image

    if not path.is_file():
        raise FileNotFoundError(f"fundus image {str(path)!r} does not exist")
    with Image.open(path) as im:
        im = im.convert("RGB").resize((size, size), Image.BILINEAR)
        return np.asarray(im, dtype=np.float32).transpose(2, 0, 1) / 255.0


def load_myopia_csv(
    path: str | os.PathLike, *, image_size: int = 224, visits: int = 1, tolerance: float = 0.5
) -> MyopiaData:
    """Load a longitudinal CSV (see the module docstring). Children with fewer than ``visits`` exams are
    skipped; a child needs at least one follow-up matched to 1..6 years to be kept."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"myopia CSV {str(path)!r} does not exist")
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        cols = set(reader.fieldnames or ())
        need = {"child_id", "exam_date", "image_path", "se"}
        if not need <= cols or not ({"age", "birth_date"} & cols):
            raise ValueError(
                f"{path}: needs the columns {sorted(need)} and 'age' or 'birth_date', has {reader.fieldnames}"
            )
        rows = list(reader)
    by_child: dict[str, list[tuple[dt.date, float, float, str]]] = {}
    for r in rows:
        date = _date(r["exam_date"], "exam_date", path)
        if r.get("age"):
            age = float(r["age"])
        else:
            age = (date - _date(r["birth_date"], "birth_date", path)).days / 365.25
        by_child.setdefault(r["child_id"].strip(), []).append(
            (date, float(r["se"]), age, r["image_path"].strip())
        )
    images, se, ages, traj, mask = [], [], [], [], []
    for exams in by_child.values():
        exams.sort()
        if len(exams) < visits:
            continue
        inputs, later = exams[:visits], exams[visits:]
        d0 = inputs[-1][0]
        t = np.full(HORIZON_YEARS, np.nan)
        for date, s, _, _ in later:
            years = (date - d0).days / 365.25
            k = int(round(years))
            if 1 <= k <= HORIZON_YEARS and abs(years - k) <= tolerance and np.isnan(t[k - 1]):
                t[k - 1] = s
        if np.isnan(t).all():
            continue
        images.append(np.stack([_image(path.parent / p, image_size) for _, _, _, p in inputs]))
        se.append([s for _, s, _, _ in inputs])
        ages.append([a for _, _, a, _ in inputs])
        mask.append(~np.isnan(t))
        traj.append(np.nan_to_num(t))
    if not images:
        raise ValueError(f"{path}: no child has {visits} input exam(s) and a follow-up at 1..6 years")
    f32 = torch.float32
    se_t = torch.tensor(se, dtype=f32)
    traj_t = torch.tensor(np.array(traj), dtype=f32)
    mask_t = torch.tensor(np.array(mask))
    return MyopiaData(
        images=torch.from_numpy(np.stack(images)),
        se=se_t,
        age=torch.tensor(ages, dtype=f32),
        traj=traj_t,
        traj_mask=mask_t,
        rate=least_squares_rate(se_t[:, -1], traj_t, mask_t),
    )
