"""Video quality data: KoNViD-1k / LIVE-VQC / YouTube-UGC / LSVQ layouts from a local folder (PyAV
decoding), and an offline synthetic VQA set built from scikit-image's bundled photos.

Real layouts (``root`` is the dataset folder; ``table`` overrides the MOS file):

- ``konvid``: ``KoNViD_1k_mos.csv`` (columns ``flickr_id``, ``mos``), videos ``KoNViD_1k_videos/<id>.mp4``.
- ``lsvq``: ``LSVQ_whole_train.csv`` or ``LSVQ_whole_test.csv`` (columns ``name``, ``mos``), videos
  ``<name>.mp4`` under ``root``.
- ``live-vqc`` / ``youtube-ugc``: the official tables are a .mat / .xlsx file; these read the 4-column
  ``labels.txt`` that the FAST-VQA / Q-CLIP releases ship for them (``filename, duration, fps, mos``,
  filename relative to ``root``). A 2-column ``filename, mos`` text file is accepted too.

Synthetic set (``make_synthetic_vqa``): each clip pans a square window across one photo (camera
motion), then applies each of five distortions with probability ½ at a strength s ~ U(0, 1):
blur (Gaussian, radius 1.5·s px), noise (σ = 0.12·s on [0, 1]), JPEG (quality 95 − 85·s, Pillow),
stutter (each frame replaced by its predecessor with probability 0.8·s: frame drops) and exposure
(gain 2^(±1.5·s)). Its MOS is a monotone decreasing function of the strengths plus rater noise:

    MOS = clip(1 + 4 · exp(−Σ_k w_k s_k) + ε, 1, 5),  w = (1.2, 1.0, 0.8, 0.6, 0.8),  ε ~ N(0, σ_r²)

(w in the order blur, noise, jpeg, stutter, exposure; σ_r = 0.1 by default). Splits are by source
photo, so no scene is in two splits.
"""

from __future__ import annotations

import csv
import functools
import io
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

__all__ = [
    "DISTORTIONS",
    "LAYOUTS",
    "PHOTO_NAMES",
    "SyntheticVQA",
    "SyntheticVQAConfig",
    "VQARecord",
    "distort_frames",
    "load_photo",
    "make_synthetic_vqa",
    "normalize_frames",
    "photo_names",
    "read_video",
    "read_vqa_records",
    "split_by_source",
]

DISTORTIONS = ("blur", "noise", "jpeg", "stutter", "exposure")
MOS_WEIGHTS = (1.2, 1.0, 0.8, 0.6, 0.8)

LAYOUTS = {
    "konvid": {
        "table": "KoNViD_1k_mos.csv",
        "name": "flickr_id",
        "mos": "mos",
        "dir": "KoNViD_1k_videos",
        "ext": ".mp4",
    },
    "lsvq": {"table": "LSVQ_whole_train.csv", "name": "name", "mos": "mos", "dir": "", "ext": ".mp4"},
    "live-vqc": {"table": "labels.txt", "dir": "", "ext": ""},
    "youtube-ugc": {"table": "labels.txt", "dir": "", "ext": ""},
}

# Per-channel normalisation the backbones were trained with.
NORMALIZATION = {
    "clip": ((0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711)),
    "pe": ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5)),
}


@dataclass
class VQARecord:
    path: Path
    mos: float


def read_vqa_records(
    root: str | os.PathLike, dataset: str, table: str | None = None, check_files: bool = True
) -> list[VQARecord]:
    """The (video path, MOS) pairs of a dataset folder in one of ``LAYOUTS``."""
    if dataset not in LAYOUTS:
        raise ValueError(f"dataset must be one of {sorted(LAYOUTS)}, got {dataset!r}")
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"dataset folder {str(root)!r} does not exist")
    layout = LAYOUTS[dataset]
    table_path = root / (table or layout["table"])
    if not table_path.is_file():
        raise FileNotFoundError(f"MOS table {str(table_path)!r} does not exist ({dataset} layout)")
    records = []
    if table_path.suffix == ".csv":
        with open(table_path, newline="") as f:
            reader = csv.DictReader(f)
            name_col, mos_col = layout.get("name", "name"), layout.get("mos", "mos")
            if (
                reader.fieldnames is None
                or name_col not in reader.fieldnames
                or mos_col not in reader.fieldnames
            ):
                raise ValueError(
                    f"{str(table_path)!r} must have columns {name_col!r} and {mos_col!r}, "
                    f"has {reader.fieldnames}"
                )
            for row in reader:
                name = row[name_col].strip()
                records.append(VQARecord(root / layout["dir"] / (name + layout["ext"]), float(row[mos_col])))
    else:
        for n, line in enumerate(table_path.read_text().splitlines(), 1):
            if not line.strip():
                continue
            fields = [x.strip() for x in line.split(",")]
            if len(fields) not in (2, 4):
                raise ValueError(
                    f"{table_path}:{n}: expected 'filename, duration, fps, mos' or "
                    f"'filename, mos', got {len(fields)} fields"
                )
            records.append(VQARecord(root / layout["dir"] / fields[0], float(fields[-1])))
    if check_files:
        missing = [str(r.path) for r in records if not r.path.is_file()]
        if missing:
            raise FileNotFoundError(
                f"{len(missing)} video(s) listed in {str(table_path)!r} do not exist, e.g. {missing[0]!r}"
            )
    return records


def read_video(
    path: str | os.PathLike, size: int | tuple[int, int] | None = None, max_frames: int | None = None
) -> np.ndarray:
    """Every frame of a video file, (T, H, W, 3) uint8 RGB, decoded with PyAV; ``size`` (side or (H, W))
    resizes each frame (squashing, as the Q-CLIP release does)."""
    import av

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"video {str(path)!r} does not exist")
    if isinstance(size, int):
        size = (size, size)
    frames = []
    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            if size is not None:
                frame = frame.reformat(width=size[1], height=size[0])
            frames.append(frame.to_ndarray(format="rgb24"))
            if max_frames is not None and len(frames) >= max_frames:
                break
    if not frames:
        raise ValueError(f"video {str(path)!r} has no decodable frames")
    return np.stack(frames)


def normalize_frames(frames: torch.Tensor | np.ndarray, kind: str = "clip") -> torch.Tensor:
    """(T, H, W, 3) uint8 → (T, 3, H, W) float32, scaled to [0, 1] and normalised per channel."""
    if kind not in NORMALIZATION:
        raise ValueError(f"normalization must be one of {sorted(NORMALIZATION)}, got {kind!r}")
    x = torch.as_tensor(frames)
    if x.dim() != 4 or x.shape[-1] != 3:
        raise ValueError(f"frames must be (T, H, W, 3), got {tuple(x.shape)}")
    x = x.permute(0, 3, 1, 2).float() / 255.0
    mean, std = (torch.tensor(v).view(1, 3, 1, 1) for v in NORMALIZATION[kind])
    return (x - mean) / std


@dataclass
class SyntheticVQAConfig:
    n_sources: int = 8
    clips_per_source: int = 12
    frames: int = 16
    size: int = 32
    rater_noise: float = 0.1
    seed: int = 0


@dataclass
class SyntheticVQA:
    videos: torch.Tensor  # (N, T, H, W, 3) uint8
    mos: torch.Tensor  # (N,) float32 in [1, 5]
    source: torch.Tensor  # (N,) int64: which photo
    strengths: torch.Tensor  # (N, 5) float32, 0 where a distortion is off (order: DISTORTIONS)

    def __len__(self) -> int:
        return self.videos.shape[0]


# scikit-image's bundled photos the synthetic set draws its sources from, in this order.
PHOTO_NAMES = (
    "astronaut",
    "coffee",
    "chelsea",
    "rocket",
    "camera",
    "coins",
    "hubble_deep_field",
    "immunohistochemistry",
    "horse",
    "moon",
    "page",
    "text",
    "clock",
    "brick",
    "grass",
    "gravel",
)


def load_photo(name: str) -> np.ndarray | None:
    """scikit-image's photo ``name`` as (H, W, 3) uint8, or None where it needs a download."""
    from skimage import data

    try:
        img = np.asarray(getattr(data, name)())
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException:  # noqa: BLE001 - a photo that needs a download is skipped (under pytest,
        return None  # scikit-image signals a failed download with pytest's Skipped, a BaseException)
    if img.dtype == bool:
        img = img.astype(np.uint8) * 255
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=-1)
    return img[..., :3].astype(np.uint8)


@functools.cache
def photo_names() -> tuple[str, ...]:
    """The names in ``PHOTO_NAMES`` that load here: source i of the synthetic set is ``photo_names()[i]``."""
    return tuple(n for n in PHOTO_NAMES if load_photo(n) is not None)


def _photos() -> list[np.ndarray]:
    return [load_photo(n) for n in photo_names()]


def mos_from_strengths(strengths: np.ndarray) -> np.ndarray:
    """Noise-free MOS = 1 + 4 · exp(−Σ_k w_k s_k) (module doc)."""
    return 1 + 4 * np.exp(-(np.asarray(strengths) @ np.asarray(MOS_WEIGHTS)))


def _shrink(photo: np.ndarray, min_side: int) -> np.ndarray:
    """Resize once so that the panning window is about twice the clip size (cheap per-frame resizes)."""
    from PIL import Image

    h, w = photo.shape[:2]
    scale = min_side / min(h, w)
    if scale >= 1:
        return photo
    return np.asarray(Image.fromarray(photo).resize((round(w * scale), round(h * scale)), Image.LANCZOS))


def _pan_clip(photo: np.ndarray, frames: int, size: int, rng: np.random.Generator) -> np.ndarray:
    h, w = photo.shape[:2]
    side = int(0.6 * min(h, w))
    start = rng.uniform(0, 1, 2) * (h - side, w - side)
    end = rng.uniform(0, 1, 2) * (h - side, w - side)
    crops = []
    for t in np.linspace(0, 1, frames):
        y, x = (start + t * (end - start)).astype(int)
        crops.append(photo[y : y + side, x : x + side])
    x = torch.from_numpy(np.stack(crops)).permute(0, 3, 1, 2).float()
    x = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    return x.clamp(0, 255).round().byte().permute(0, 2, 3, 1).numpy()


def distort_frames(
    frames: np.ndarray, s: np.ndarray, exposure_sign: float, rng: np.random.Generator
) -> np.ndarray:
    """The per-frame distortions of the synthetic set on (T, H, W, 3) uint8 frames: exposure (gain
    2^(exposure_sign·1.5·s_4)), noise (σ = 0.12·s_1), Gaussian blur (radius 1.5·s_0), JPEG (quality
    95 − 85·s_2), in that order; a zero strength skips that distortion. Stutter (temporal) is not here."""
    from PIL import Image, ImageFilter

    x = frames.astype(np.float32) / 255.0
    if s[4] > 0:
        x = x * 2.0 ** (1.5 * s[4] * exposure_sign)
    if s[1] > 0:
        x = x + rng.normal(0, 0.12 * s[1], x.shape).astype(np.float32)
    x = (np.clip(x, 0, 1) * 255).round().astype(np.uint8)
    out = []
    for frame in x:
        img = Image.fromarray(frame)
        if s[0] > 0:
            img = img.filter(ImageFilter.GaussianBlur(radius=float(1.5 * s[0])))
        if s[2] > 0:
            buf = io.BytesIO()
            img.save(buf, format="JPEG", quality=int(round(95 - 85 * s[2])))
            img = Image.open(io.BytesIO(buf.getvalue())).convert("RGB")
        out.append(np.asarray(img))
    return np.stack(out)


def _distort(clip: np.ndarray, s: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    sign = rng.choice([-1.0, 1.0]) if s[4] > 0 else 1.0
    x = distort_frames(clip, s, sign, rng)
    if s[3] > 0:
        for t in range(1, len(x)):
            if rng.random() < 0.8 * s[3]:
                x[t] = x[t - 1]
    return x


def make_synthetic_vqa(config: SyntheticVQAConfig | None = None) -> SyntheticVQA:
    """The synthetic VQA set (recipe and MOS formula: module doc), deterministic given ``config.seed``."""
    cfg = config or SyntheticVQAConfig()
    if cfg.frames < 2 or cfg.size < 8 or cfg.n_sources < 1 or cfg.clips_per_source < 1:
        raise ValueError(f"synthetic VQA needs frames >= 2, size >= 8 and at least one clip, got {cfg}")
    photos = _photos()
    if cfg.n_sources > len(photos):
        raise ValueError(
            f"n_sources={cfg.n_sources}, but scikit-image bundles {len(photos)} usable photos here"
        )
    rng = np.random.default_rng(cfg.seed)
    videos, strengths, sources = [], [], []
    photos = [_shrink(p, int(np.ceil(2 * cfg.size / 0.6))) for p in photos[: cfg.n_sources]]
    for src in range(cfg.n_sources):
        for _ in range(cfg.clips_per_source):
            s = rng.uniform(0, 1, len(DISTORTIONS)) * (rng.random(len(DISTORTIONS)) < 0.5)
            clip = _pan_clip(photos[src], cfg.frames, cfg.size, rng)
            videos.append(_distort(clip, s, rng))
            strengths.append(s)
            sources.append(src)
    strengths = np.asarray(strengths, dtype=np.float32)
    mos = np.clip(mos_from_strengths(strengths) + rng.normal(0, cfg.rater_noise, len(strengths)), 1, 5)
    return SyntheticVQA(
        torch.from_numpy(np.stack(videos)),
        torch.tensor(mos, dtype=torch.float32),
        torch.tensor(sources),
        torch.from_numpy(strengths),
    )


def split_by_source(
    source: torch.Tensor | np.ndarray, fractions: tuple[float, float, float] = (0.6, 0.2, 0.2), seed: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Indices of train / val / test items, whole sources to one split (each split gets >= 1 source
    when there are >= 3)."""
    source = np.asarray(source)
    ids = np.random.default_rng(seed).permutation(np.unique(source))
    n = len(ids)
    if n < 3:
        raise ValueError(f"a three-way split by source needs >= 3 sources, got {n}")
    n_train = max(1, min(n - 2, int(round(fractions[0] * n))))
    n_val = max(1, min(n - n_train - 1, int(round(fractions[1] * n))))
    groups = (ids[:n_train], ids[n_train : n_train + n_val], ids[n_train + n_val :])
    return tuple(np.flatnonzero(np.isin(source, g)) for g in groups)
