"""EMER-style multimodal emotion data: a loader for a local copy laid out like the release, and an
offline generator with the same latent structure.

A data set is an ``EmotionData``: ``face`` (N, F, 3, H, W) float frames in [0, 1], ``eye`` (N, T, 39)
eye-movement features, ``eye2`` (N, T, 2) the second eye stream, ``er`` (N,) felt-emotion labels,
``fer`` (N,) displayed-expression labels, ``reg`` (N, 3) valence, arousal ∈ [−1, 1] and intensity
∈ [0, 3], ``subject`` (N,) participant ids.

Classes (7, the EMER order): happiness, sadness, fear, surprise, disgust, anger, neutral; the coarse
3-class labels (positive, negative, neutral) follow ``COARSE``.

Generator (``make_emert_data``): a latent felt emotion e drives the eyes — class-specific
eye-movement prototypes with class-specific temporal rhythm, pupil/blink stream following the
emotion's arousal — and, *most of the time*, the face: with probability ``gap`` the displayed
expression is another class (a masking smile, a suppressed frown: the ER/FER gap), so the face alone
cannot exceed ≈ 1 − gap ER accuracy while the eyes carry the felt emotion. Subject identity adds a
nuisance offset to both. Prototypes come from ``world_seed`` so that data drawn with different
``seed`` values pose the same task.

Real layout (``load_emer``; the EMER read files are distributed only with the data, so this is the
layout we document and test)::

    root/annotations.csv      sample_id,subject,er_label,fer_label[,valence,arousal,intensity]
                              (labels as class names or 0-based ints)
    root/face/<sample_id>/    face frames (*.png / *.jpg, sorted by name; F sampled uniformly)
    root/eye/<sample_id>.csv  T×39 eye-movement features (one row per time step, optional header)
    root/eye2/<sample_id>.csv T×2 second eye stream
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np
import torch

__all__ = ["CLASSES", "COARSE", "COARSE_CLASSES", "EmotionData", "load_emer", "make_emert_data", "to_coarse"]

CLASSES = ("happiness", "sadness", "fear", "surprise", "disgust", "anger", "neutral")
COARSE_CLASSES = ("positive", "negative", "neutral")
# Surprise is counted positive (as in the coarse labels of most 3-class ER sets); documented guess.
COARSE = (0, 1, 1, 0, 1, 1, 2)
# Circumplex (valence, arousal) per class, the usual textbook placements.
_VA = np.array([[0.8, 0.5], [-0.7, -0.4], [-0.6, 0.7], [0.3, 0.8], [-0.6, 0.3], [-0.7, 0.7], [0.0, 0.0]])


@dataclass
class EmotionData:
    face: torch.Tensor
    eye: torch.Tensor
    eye2: torch.Tensor
    er: torch.Tensor
    fer: torch.Tensor
    reg: torch.Tensor
    subject: torch.Tensor

    def __post_init__(self):
        n = self.er.shape[0]
        for f in fields(self):
            v = getattr(self, f.name)
            if not isinstance(v, torch.Tensor):
                raise TypeError(f"{f.name} must be a tensor, got {type(v).__name__}")
            if v.shape[0] != n:
                raise ValueError(f"{f.name} has {v.shape[0]} samples, er has {n}")
        if self.face.dim() != 5 or self.eye.dim() != 3 or self.eye2.dim() != 3 or self.reg.shape[1:] != (3,):
            raise ValueError(
                "expected face (N, F, 3, H, W), eye (N, T, 39), eye2 (N, T, 2), reg (N, 3); got "
                f"{tuple(self.face.shape)}, {tuple(self.eye.shape)}, {tuple(self.eye2.shape)}, "
                f"{tuple(self.reg.shape)}"
            )

    def __len__(self) -> int:
        return int(self.er.shape[0])

    def subset(self, index) -> EmotionData:
        index = torch.as_tensor(index, dtype=torch.long)
        return EmotionData(**{f.name: getattr(self, f.name)[index] for f in fields(self)})

    def batch(self, index=None) -> dict[str, torch.Tensor]:
        """The model/loss input dict (streams + labels) for ``index`` (all samples when None)."""
        d = self if index is None else self.subset(index)
        return {f.name: getattr(d, f.name) for f in fields(d)}


def to_coarse(labels: torch.Tensor) -> torch.Tensor:
    """7-class labels → 3-class (positive, negative, neutral) through ``COARSE``."""
    return torch.tensor(COARSE, dtype=torch.long)[labels.long()]


def _smooth_templates(rng: np.random.Generator, k: int, size: int, grid: int = 4) -> np.ndarray:
    """k random smooth (size × size) patterns: a grid×grid Gaussian field upsampled bilinearly."""
    coarse = torch.from_numpy(rng.standard_normal((k, 1, grid, grid))).float()
    up = torch.nn.functional.interpolate(coarse, size=(size, size), mode="bilinear", align_corners=True)
    return up[:, 0].numpy()


def make_emert_data(
    n: int,
    *,
    seed: int = 0,
    world_seed: int = 0,
    frames: int = 4,
    image_size: int = 32,
    steps: int = 16,
    gap: float = 0.35,
    num_subjects: int = 12,
    eye_signal: float = 0.2,
    face_signal: float = 1.0,
    noise: float = 1.0,
    face_noise: float = 0.3,
) -> EmotionData:
    """Draw ``n`` samples; see the module docstring.

    ``gap`` = P(displayed expression ≠ felt emotion). ``eye_signal``/``face_signal`` scale the
    class-dependent parts of the eye features and face images; ``noise``/``face_noise`` are the
    standard deviations of the eye-stream and pixel noise (a face in view is clearly visible: the
    difficulty of ER from the face is the gap, not the pixels).
    """
    if not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be a positive int, got {n!r}")
    if not 0.0 <= gap < 1.0:
        raise ValueError(f"gap must be in [0, 1), got {gap}")
    for name, v in (
        ("frames", frames),
        ("image_size", image_size),
        ("steps", steps),
        ("num_subjects", num_subjects),
    ):
        if not isinstance(v, int) or v < 1:
            raise ValueError(f"{name} must be a positive int, got {v!r}")
    k = len(CLASSES)
    world = np.random.default_rng(world_seed)
    eye_proto = world.standard_normal((k, 39))
    eye_freq = world.uniform(0.2, 1.2, size=k)
    face_tmpl = _smooth_templates(world, k, image_size)  # (k, S, S) expression patterns
    face_color = world.uniform(0.5, 1.0, size=3)

    rng = np.random.default_rng(seed)
    felt = rng.integers(0, k, size=n)
    masked = rng.random(n) < gap
    other = (felt + rng.integers(1, k, size=n)) % k  # uniform over the other classes
    shown = np.where(masked, other, felt)
    subject = rng.integers(0, num_subjects, size=n)
    subj = np.random.default_rng([world_seed, 1])
    subj_eye = subj.standard_normal((num_subjects, 39)) * 0.5
    subj_face = _smooth_templates(subj, num_subjects, image_size) * 0.3

    # Eyes: prototype of the felt emotion modulated at its own rhythm, plus subject offset and noise.
    t = np.arange(steps)
    phase = rng.uniform(0, 2 * np.pi, size=n)
    rhythm = 1.0 + 0.5 * np.sin(eye_freq[felt][:, None] * t[None] + phase[:, None])  # (n, T)
    eye = (
        eye_signal * eye_proto[felt][:, None, :] * rhythm[..., None]
        + subj_eye[subject][:, None, :]
        + noise * rng.standard_normal((n, steps, 39))
    )
    arousal = _VA[felt, 1]
    pupil = eye_signal * 2.0 * arousal[:, None] + noise * rng.standard_normal((n, steps))
    blink = eye_signal * 2.0 * (_VA[felt, 0] < 0)[:, None] * np.cos(t * 0.7)[
        None
    ] + noise * rng.standard_normal((n, steps))
    eye2 = np.stack([pupil, blink], -1)

    # Face: the displayed expression's pattern with an onset ramp over the frames, identity, noise.
    intensity = rng.uniform(1.0, 3.0, size=n)
    ramp = np.linspace(0.5, 1.0, frames)
    amp = face_signal * (intensity / 3.0)[:, None] * ramp[None]  # (n, F)
    pattern = amp[:, :, None, None] * face_tmpl[shown][:, None] + subj_face[subject][:, None]
    face = 0.5 + 0.15 * (
        pattern[:, :, None] * face_color[None, None, :, None, None]
        + face_noise * rng.standard_normal((n, frames, 3, image_size, image_size))
    )
    face = np.clip(face, 0.0, 1.0)

    va = np.clip(_VA[felt] + 0.1 * rng.standard_normal((n, 2)), -1, 1)
    reg = np.concatenate([va, np.where(shown == 6, 0.0, intensity)[:, None]], 1)
    f32 = torch.float32
    return EmotionData(
        face=torch.tensor(face, dtype=f32),
        eye=torch.tensor(eye, dtype=f32),
        eye2=torch.tensor(eye2, dtype=f32),
        er=torch.tensor(felt),
        fer=torch.tensor(shown),
        reg=torch.tensor(reg, dtype=f32),
        subject=torch.tensor(subject),
    )


# ---------------------------------------------------------------------------------------------------
# Real layout


def _label(v: str, column: str, path: Path) -> int:
    v = v.strip()
    if v.lower() in CLASSES:
        return CLASSES.index(v.lower())
    try:
        i = int(v)
    except ValueError:
        raise ValueError(
            f"{path}: column {column!r} holds {v!r}, expected a class name {CLASSES} or an int"
        ) from None
    if not 0 <= i < len(CLASSES):
        raise ValueError(f"{path}: column {column!r} holds {i}, expected 0..{len(CLASSES) - 1}")
    return i


def _read_matrix(path: Path, width: int, steps: int) -> np.ndarray:
    if not path.is_file():
        raise FileNotFoundError(f"missing eye-stream file {str(path)!r}")
    rows = []
    with open(path, newline="") as f:
        for i, row in enumerate(csv.reader(f)):
            if not row:
                continue
            try:
                rows.append([float(x) for x in row])
            except ValueError:
                if i == 0:  # a header line
                    continue
                raise ValueError(f"{path}: line {i + 1} is not numeric") from None
    a = np.asarray(rows, dtype=np.float32)
    if a.ndim != 2 or a.shape[1] != width or a.shape[0] == 0:
        raise ValueError(f"{path}: expected T×{width} numbers, got shape {a.shape}")
    idx = np.linspace(0, a.shape[0] - 1, steps).round().astype(int)  # resample to ``steps`` rows
    return a[idx]


def _read_frames(folder: Path, frames: int, image_size: int) -> np.ndarray:
    from PIL import Image

    if not folder.is_dir():
        raise FileNotFoundError(f"missing face-frame folder {str(folder)!r}")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in (".png", ".jpg", ".jpeg", ".bmp"))
    if not files:
        raise ValueError(f"{folder}: no face frames (*.png, *.jpg)")
    idx = np.linspace(0, len(files) - 1, frames).round().astype(int)
    out = []
    for i in idx:
        with Image.open(files[i]) as im:
            im = im.convert("RGB").resize((image_size, image_size), Image.BILINEAR)
            out.append(np.asarray(im, dtype=np.float32).transpose(2, 0, 1) / 255.0)
    return np.stack(out)


def load_emer(
    root: str | os.PathLike, *, frames: int = 8, image_size: int = 112, steps: int = 32
) -> EmotionData:
    """Load a local EMER-layout directory (see the module docstring) into an ``EmotionData``.

    Frames are resized to ``image_size`` and ``frames`` of them sampled uniformly; eye streams are
    resampled to ``steps`` rows. Missing valence/arousal/intensity columns are filled with 0.
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"EMER root {str(root)!r} does not exist")
    ann = root / "annotations.csv"
    if not ann.is_file():
        raise FileNotFoundError(f"EMER annotations {str(ann)!r} do not exist")
    with open(ann, newline="") as f:
        reader = csv.DictReader(f)
        need = {"sample_id", "subject", "er_label", "fer_label"}
        if reader.fieldnames is None or not need <= set(reader.fieldnames):
            raise ValueError(f"{ann}: needs the columns {sorted(need)}, has {reader.fieldnames}")
        rows = list(reader)
    if not rows:
        raise ValueError(f"{ann}: no samples")
    face, eye, eye2, er, fer, reg, subject = [], [], [], [], [], [], []
    subjects: dict[str, int] = {}
    for r in rows:
        sid = r["sample_id"].strip()
        face.append(_read_frames(root / "face" / sid, frames, image_size))
        eye.append(_read_matrix(root / "eye" / f"{sid}.csv", 39, steps))
        eye2.append(_read_matrix(root / "eye2" / f"{sid}.csv", 2, steps))
        er.append(_label(r["er_label"], "er_label", ann))
        fer.append(_label(r["fer_label"], "fer_label", ann))
        reg.append([float(r.get(c) or 0.0) for c in ("valence", "arousal", "intensity")])
        subject.append(subjects.setdefault(r["subject"].strip(), len(subjects)))
    return EmotionData(
        face=torch.from_numpy(np.stack(face)),
        eye=torch.from_numpy(np.stack(eye)),
        eye2=torch.from_numpy(np.stack(eye2)),
        er=torch.tensor(er),
        fer=torch.tensor(fer),
        reg=torch.tensor(reg, dtype=torch.float32),
        subject=torch.tensor(subject),
    )
