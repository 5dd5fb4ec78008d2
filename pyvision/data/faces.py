"""Facial-expression data: an offline cartoon-face generator and loaders for RAF-DB, FER2013, AffectNet.

All labels use one order, ``EXPRESSIONS`` (AffectNet's first seven):
0 neutral, 1 happiness, 2 sadness, 3 surprise, 4 fear, 5 disgust, 6 anger.

Generator. A face is drawn from a few latent parameters on a soft (anti-aliased) raster:

* expression (what the label is about): eyebrow angle (inner ends down = +), eyebrow raise, eye
  openness, mouth curvature (corners up = +), mouth opening, mouth width. Each class has a prototype;
  a sample is ``neutral + intensity · (prototype − neutral) + noise`` with intensity ~ U(lo, hi), so
  weak expressions sit near neutral and fear/surprise and anger/disgust overlap (fine-grained classes);
* identity (nuisance, shared by all images of one person): face width/height, eye spacing, skin and
  feature brightness, brow thickness, resting eye openness and mouth curvature;
* pose and capture (nuisance, per image): in-plane rotation, scale, shift, background level, pixel noise.

Classes are long-tailed: by default in RAF-DB's training proportions (happiness 38 %, fear 2 %).
"""

from __future__ import annotations

import csv
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

__all__ = [
    "EXPRESSIONS",
    "RAFDB_PROPORTIONS",
    "FaceData",
    "FaceGeneratorConfig",
    "FaceImageFolder",
    "load_affectnet",
    "load_fer2013",
    "load_rafdb",
    "make_faces",
    "random_views",
    "render_faces",
    "sample_face_params",
]

EXPRESSIONS = ("neutral", "happiness", "sadness", "surprise", "fear", "disgust", "anger")
# RAF-DB basic training set (12,271 images) counts in EXPRESSIONS order.
RAFDB_PROPORTIONS = (2524, 4772, 1982, 1290, 281, 717, 705)

# Expression parameters: brow_angle, brow_raise, eye_open, mouth_curve, mouth_open, mouth_width.
_PARAM_NAMES = ("brow_angle", "brow_raise", "eye_open", "mouth_curve", "mouth_open", "mouth_width")
_PROTOTYPES = torch.tensor([
    [0.00, 0.00, 0.50, 0.00, 0.00, 0.00],   # neutral
    [0.00, 0.02, 0.35, 1.00, 0.35, 0.25],   # happiness
    [-0.40, 0.03, 0.35, -0.80, 0.00, -0.10],  # sadness
    [0.00, 0.12, 1.00, 0.00, 0.90, -0.30],  # surprise
    [-0.35, 0.09, 0.90, -0.35, 0.45, 0.15],  # fear
    [0.25, -0.04, 0.22, -0.55, 0.15, 0.00],  # disgust
    [0.50, -0.06, 0.40, -0.25, 0.05, -0.15],  # anger
])


@dataclass
class FaceGeneratorConfig:
    """Parameters of the cartoon-face generator (defaults: 32×32 grey faces, RAF-DB class balance)."""

    image_size: int = 32
    channels: int = 1
    n_identities: int = 40
    class_proportions: tuple[float, ...] = RAFDB_PROPORTIONS
    intensity: tuple[float, float] = (0.45, 1.0)
    param_noise: float = 0.08
    max_roll_deg: float = 15.0
    scale: tuple[float, float] = (0.85, 1.1)
    max_shift: float = 0.08
    pixel_noise: float = 0.03

    def __post_init__(self):
        if self.image_size < 8:
            raise ValueError(f"image_size must be >= 8, got {self.image_size}")
        if self.channels not in (1, 3):
            raise ValueError(f"channels must be 1 or 3, got {self.channels}")
        if len(self.class_proportions) != len(EXPRESSIONS) or min(self.class_proportions) <= 0:
            raise ValueError(f"class_proportions must be {len(EXPRESSIONS)} positive numbers, "
                             f"got {self.class_proportions}")
        if self.n_identities < 1:
            raise ValueError(f"n_identities must be >= 1, got {self.n_identities}")
        if not 0 <= self.intensity[0] <= self.intensity[1]:
            raise ValueError(f"intensity must be (lo, hi) with 0 <= lo <= hi, got {self.intensity}")


@dataclass
class FaceData:
    """Images (N, C, H, W) in [0, 1], labels (N,) in EXPRESSIONS order, identity ids (N,), and the
    latent parameters that drew them (name → (N,) tensor)."""

    images: torch.Tensor
    labels: torch.Tensor
    identities: torch.Tensor
    params: dict[str, torch.Tensor] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.labels)


def sample_face_params(labels: torch.Tensor, config: FaceGeneratorConfig,
                       generator: torch.Generator) -> dict[str, torch.Tensor]:
    """Latent parameters for one image per label (expression, identity, pose), as (N,) tensors."""
    n = len(labels)
    g = generator

    def u(lo, hi, size=n):
        return lo + (hi - lo) * torch.rand(size, generator=g)

    k = config.n_identities
    ident = {
        "face_w": u(0.62, 0.78, k), "face_h": u(0.80, 0.95, k), "eye_dx": u(0.26, 0.36, k),
        "skin": u(0.55, 0.9, k), "ink": u(0.0, 0.2, k), "brow_thick": u(0.035, 0.06, k),
        "eye_rest": u(-0.08, 0.08, k), "mouth_rest": u(-0.12, 0.12, k),
    }
    who = torch.randint(0, k, (n,), generator=g)
    params = {name: v[who] for name, v in ident.items()}
    params["identity"] = who
    neutral = _PROTOTYPES[0]
    intensity = u(*config.intensity)
    expr = neutral + intensity[:, None] * (_PROTOTYPES[labels] - neutral)
    expr = expr + config.param_noise * torch.randn(n, len(_PARAM_NAMES), generator=g) * torch.tensor(
        [0.5, 0.1, 0.5, 0.5, 0.4, 0.4])
    for i, name in enumerate(_PARAM_NAMES):
        params[name] = expr[:, i]
    params["eye_open"] = (params["eye_open"] + params["eye_rest"]).clamp(0.05, 1.1)
    params["mouth_curve"] = params["mouth_curve"] + params["mouth_rest"]
    params["mouth_open"] = params["mouth_open"].clamp(min=0.0)
    params["intensity"] = intensity
    params["roll"] = u(-1.0, 1.0) * math.radians(config.max_roll_deg)
    params["scale"] = u(*config.scale)
    params["shift_x"] = u(-1.0, 1.0) * config.max_shift
    params["shift_y"] = u(-1.0, 1.0) * config.max_shift
    params["background"] = u(0.05, 0.4)
    return params


def _soft(inside: torch.Tensor, sharp: float) -> torch.Tensor:
    """Soft indicator of ``inside > 0`` (a signed margin in canonical units) over about one pixel."""
    return torch.sigmoid(inside * sharp)


def render_faces(params: dict[str, torch.Tensor], image_size: int = 32, channels: int = 1,
                 pixel_noise: float = 0.0, generator: torch.Generator | None = None) -> torch.Tensor:
    """Rasterize the faces described by ``params`` (as from ``sample_face_params``) → (N, C, S, S).

    Canonical face frame: x right, y down, the face centred at 0 with half-height ≈ 0.9; the pixel grid
    spans [−1, 1]² and is mapped into it by the inverse of (roll, scale, shift).
    """
    p = {k: v.float()[:, None, None] for k, v in params.items()}
    n = next(iter(params.values())).shape[0]
    lin = torch.linspace(-1, 1, image_size)
    gy, gx = torch.meshgrid(lin, lin, indexing="ij")
    gx, gy = gx[None] - p["shift_x"], gy[None] - p["shift_y"]
    c, s = torch.cos(p["roll"]), torch.sin(p["roll"])
    x = (c * gx + s * gy) / p["scale"]
    y = (-s * gx + c * gy) / p["scale"]
    sharp = image_size / 2.0  # one pixel ≈ 2/image_size canonical units

    face = _soft(1 - torch.sqrt((x / p["face_w"]) ** 2 + (y / p["face_h"]) ** 2), sharp * 0.8)
    ax = x.abs()  # features are mirror-symmetric
    ex, ey = p["eye_dx"], -0.18
    eye_h = 0.025 + 0.09 * p["eye_open"]
    eyes = _soft(1 - torch.sqrt(((ax - ex) / 0.13) ** 2 + ((y - ey) / eye_h) ** 2), sharp * 0.12)
    # Brow: a thick segment centred above the eye, rotated by brow_angle (inner end down when > 0).
    by = ey - 0.2 - p["brow_raise"]
    ang = p["brow_angle"]
    dx, dy = ax - ex, y - by
    along = dx * torch.cos(ang) - dy * torch.sin(ang)
    across = dx * torch.sin(ang) + dy * torch.cos(ang)
    brows = _soft(0.16 - along.abs(), sharp) * _soft(p["brow_thick"] - across.abs(), sharp)
    # Mouth: the region under the curve y_top(x) = y0 + 0.13·curve·(1 − (x/w)²), as thick as
    # 0.035 + 0.22·open·√(1 − (x/w)²).
    mw = 0.26 * (1 + p["mouth_width"])
    t = (1 - (x / mw) ** 2).clamp(min=0)
    y_top = 0.45 + 0.13 * p["mouth_curve"] * t - 0.05 * p["mouth_curve"]
    thick = 0.035 + 0.22 * p["mouth_open"] * torch.sqrt(t)
    mouth = _soft(mw - ax, sharp) * _soft(y - y_top, sharp) * _soft(y_top + thick - y, sharp)
    features = torch.maximum(torch.maximum(eyes, brows), mouth)

    img = p["background"] * (1 - face) + face * (p["skin"] * (1 - features) + p["ink"] * features)
    if pixel_noise > 0:
        img = img + pixel_noise * torch.randn(img.shape, generator=generator)
    img = img.clamp(0, 1)[:, None]
    assert img.shape == (n, 1, image_size, image_size)
    return img.expand(n, channels, image_size, image_size).contiguous()


def make_faces(n: int, seed: int = 0, config: FaceGeneratorConfig | None = None) -> FaceData:
    """``n`` faces with long-tailed expression labels drawn from ``config.class_proportions``."""
    if not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be a positive int, got {n!r}")
    config = config or FaceGeneratorConfig()
    g = torch.Generator().manual_seed(int(seed))
    probs = torch.tensor(config.class_proportions, dtype=torch.float64)
    labels = torch.multinomial(probs / probs.sum(), n, replacement=True, generator=g)
    params = sample_face_params(labels, config, g)
    images = render_faces(params, config.image_size, config.channels, config.pixel_noise, g)
    return FaceData(images, labels, params.pop("identity"), params)


def random_views(images: torch.Tensor, generator: torch.Generator, *, max_shift: float = 0.1,
                 max_roll_deg: float = 8.0, scale: tuple[float, float] = (0.9, 1.1),
                 brightness: float = 0.1, contrast: float = 0.15, noise: float = 0.02,
                 flip: bool = True) -> torch.Tensor:
    """One random augmented view per image (B, C, H, W): a random affine warp (shift, roll, scale,
    horizontal flip; expressions are symmetric), brightness/contrast jitter and Gaussian noise — the
    generator-side stand-in for SimGCD's random-resized-crop + flip + colour jitter."""
    if images.dim() != 4:
        raise ValueError(f"images must be (B, C, H, W), got shape {tuple(images.shape)}")
    b = images.shape[0]
    g = generator

    def u(lo, hi):
        return lo + (hi - lo) * torch.rand(b, generator=g)

    ang = u(-1, 1) * math.radians(max_roll_deg)
    sc = u(*scale)
    sign = torch.where(torch.rand(b, generator=g) < 0.5, -1.0, 1.0) if flip else torch.ones(b)
    theta = torch.zeros(b, 2, 3)
    theta[:, 0, 0] = torch.cos(ang) / sc * sign
    theta[:, 0, 1] = -torch.sin(ang) / sc
    theta[:, 1, 0] = torch.sin(ang) / sc * sign
    theta[:, 1, 1] = torch.cos(ang) / sc
    theta[:, 0, 2] = u(-1, 1) * max_shift
    theta[:, 1, 2] = u(-1, 1) * max_shift
    grid = torch.nn.functional.affine_grid(theta, list(images.shape), align_corners=False)
    out = torch.nn.functional.grid_sample(images, grid, padding_mode="border", align_corners=False)
    mean = out.mean(dim=(1, 2, 3), keepdim=True)
    out = (out - mean) * (1 + contrast * u(-1, 1))[:, None, None, None] + mean
    out = out + brightness * u(-1, 1)[:, None, None, None]
    out = out + noise * torch.randn(out.shape, generator=g)
    return out.clamp(0, 1)


# ---------------------------------------------------------------------------------------------------
# Loaders for the real data layouts (local paths only: none of these can be downloaded here).

# RAF-DB basic labels 1..7 = surprise, fear, disgust, happiness, sadness, anger, neutral.
_RAFDB_TO_OURS = {1: 3, 2: 4, 3: 5, 4: 1, 5: 2, 6: 6, 7: 0}
# FER2013 labels 0..6 = angry, disgust, fear, happy, sad, surprise, neutral.
_FER2013_TO_OURS = {0: 6, 1: 5, 2: 4, 3: 1, 4: 2, 5: 3, 6: 0}
# AffectNet 0..6 are already ours; 7 contempt, 8 none, 9 uncertain, 10 no-face are dropped.


def _need(path: Path, what: str) -> Path:
    if not path.exists():
        raise FileNotFoundError(f"{what} {str(path)!r} does not exist")
    return path


class FaceImageFolder(torch.utils.data.Dataset):
    """Image files with labels, read lazily with Pillow, resized to ``image_size`` and scaled to [0, 1].
    Item: (C, S, S) float tensor, int label in EXPRESSIONS order."""

    def __init__(self, paths: list[Path], labels: list[int], image_size: int = 112, channels: int = 3):
        if len(paths) != len(labels):
            raise ValueError(f"{len(paths)} paths but {len(labels)} labels")
        if channels not in (1, 3):
            raise ValueError(f"channels must be 1 or 3, got {channels}")
        self.paths, self.labels = list(paths), torch.tensor(labels, dtype=torch.long)
        self.image_size, self.channels = image_size, channels

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        from PIL import Image

        path = _need(self.paths[i], "image")
        with Image.open(path) as im:
            im = im.convert("L" if self.channels == 1 else "RGB").resize(
                (self.image_size, self.image_size), Image.BILINEAR)
            arr = np.asarray(im, dtype=np.float32) / 255.0
        t = torch.from_numpy(arr)
        t = t[None] if self.channels == 1 else t.permute(2, 0, 1)
        return t.contiguous(), int(self.labels[i])


def load_rafdb(root: str | os.PathLike, split: str = "train", *, aligned: bool = True,
               image_size: int = 112, channels: int = 3) -> FaceImageFolder:
    """RAF-DB basic: ``root/EmoLabel/list_patition_label.txt`` (lines ``train_00001.jpg 5``) and
    images in ``root/Image/aligned/train_00001_aligned.jpg`` (or ``root/Image/original/train_00001.jpg``
    with ``aligned=False``). ``split``: 'train' or 'test'."""
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    root = _need(Path(root), "RAF-DB root")
    lst = _need(root / "EmoLabel" / "list_patition_label.txt", "RAF-DB label list")
    paths, labels = [], []
    for lineno, line in enumerate(lst.read_text().splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split()
        if len(parts) != 2 or not parts[1].isdigit() or int(parts[1]) not in _RAFDB_TO_OURS:
            raise ValueError(f"{lst}:{lineno}: expected '<name>.jpg <label 1-7>', got {line!r}")
        name, lab = parts[0], int(parts[1])
        if not name.startswith(split):
            continue
        if aligned:
            paths.append(root / "Image" / "aligned" / f"{Path(name).stem}_aligned.jpg")
        else:
            paths.append(root / "Image" / "original" / name)
        labels.append(_RAFDB_TO_OURS[lab])
    return FaceImageFolder(paths, labels, image_size, channels)


def load_fer2013(csv_path: str | os.PathLike, usage: str | None = "Training") -> FaceData:
    """FER2013 CSV (``emotion,pixels,Usage``; pixels are 2304 space-separated 0-255 values of a 48×48
    grey face). ``usage`` selects 'Training', 'PublicTest' or 'PrivateTest' (None: all rows, also for
    files without a Usage column). Returns FaceData with (N, 1, 48, 48) images in [0, 1]."""
    csv_path = _need(Path(csv_path), "FER2013 CSV")
    images, labels = [], []
    with open(csv_path, newline="") as f:
        reader = csv.DictReader(f)
        cols = set(reader.fieldnames or [])
        if not {"emotion", "pixels"} <= cols:
            raise ValueError(f"{csv_path}: expected columns 'emotion' and 'pixels', got {sorted(cols)}")
        if usage is not None and "Usage" not in cols:
            raise ValueError(f"{csv_path} has no 'Usage' column: pass usage=None")
        for row in reader:
            if usage is not None and row["Usage"] != usage:
                continue
            px = np.array(row["pixels"].split(), dtype=np.float32)
            if px.size != 48 * 48:
                raise ValueError(f"{csv_path}: a row has {px.size} pixels, expected 2304 (48×48)")
            lab = int(row["emotion"])
            if lab not in _FER2013_TO_OURS:
                raise ValueError(f"{csv_path}: emotion must be 0-6, got {lab}")
            images.append(px.reshape(1, 48, 48) / 255.0)
            labels.append(_FER2013_TO_OURS[lab])
    if not labels:
        raise ValueError(f"{csv_path}: no rows with Usage == {usage!r}")
    lab = torch.tensor(labels)
    return FaceData(torch.from_numpy(np.stack(images)), lab, torch.full_like(lab, -1))


def load_affectnet(root: str | os.PathLike, split: str = "train", *, image_size: int = 112,
                   channels: int = 3) -> FaceImageFolder:
    """AffectNet (manually annotated part): ``root/Manually_Annotated_file_lists/{training,validation}.csv``
    with columns ``subDirectory_filePath, ..., expression, ...`` and images under
    ``root/Manually_Annotated_Images/``. Keeps the seven basic expressions (0-6); contempt (7) and the
    non-face codes 8-10 are dropped."""
    files = {"train": "training.csv", "val": "validation.csv"}
    if split not in files:
        raise ValueError(f"split must be 'train' or 'val', got {split!r}")
    root = _need(Path(root), "AffectNet root")
    lst = _need(root / "Manually_Annotated_file_lists" / files[split], "AffectNet file list")
    paths, labels = [], []
    with open(lst, newline="") as f:
        reader = csv.DictReader(f)
        cols = set(reader.fieldnames or [])
        if not {"subDirectory_filePath", "expression"} <= cols:
            raise ValueError(f"{lst}: expected columns 'subDirectory_filePath' and 'expression', "
                             f"got {sorted(cols)}")
        for row in reader:
            lab = int(row["expression"])
            if 0 <= lab < len(EXPRESSIONS):
                paths.append(root / "Manually_Annotated_Images" / row["subDirectory_filePath"])
                labels.append(lab)
    return FaceImageFolder(paths, labels, image_size, channels)
