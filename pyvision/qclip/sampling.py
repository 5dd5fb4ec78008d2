"""Frame samplers for Q-CLIP: uniform (what the release does), random, and frame-difference-based (the
paper's choice: frames at the largest changes between consecutive frames).

Frame differences over a whole video are one batched torch expression (``frame_differences``):

    d_t = mean_{c,y,x} | pool(F_{t+1}) − pool(F_t) |,   t = 0 … T−2,

with ``pool`` an average pool by ``downscale`` (differences of a downscaled video track scene changes
and motion, not sensor noise, and cost 1/downscale² as much). A cut between frames t and t+1 gives a
large d_t and the sampler takes frame t+1, the first frame of the new shot.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

__all__ = [
    "SAMPLERS",
    "frame_difference_indices",
    "frame_differences",
    "frame_differences_loop",
    "random_indices",
    "sample_indices",
    "uniform_indices",
]

SAMPLERS = ("uniform", "random", "framediff")


def _check(num_total: int, num_frames: int) -> None:
    if num_total < 1:
        raise ValueError(f"the video has no frames (num_total={num_total})")
    if num_frames < 1:
        raise ValueError(f"num_frames must be positive, got {num_frames}")


def uniform_indices(num_total: int, num_frames: int) -> list[int]:
    """round(linspace(0, T−1, k)): first and last frame included; repeats frames when T < k."""
    _check(num_total, num_frames)
    return np.linspace(0, num_total - 1, num_frames).round().astype(int).tolist()


def random_indices(num_total: int, num_frames: int, rng: np.random.Generator) -> list[int]:
    """k distinct frames uniformly at random, in time order (with repetition only when T < k)."""
    _check(num_total, num_frames)
    return sorted(rng.choice(num_total, size=num_frames, replace=num_total < num_frames).tolist())


_FRAMES_PER_BLOCK = 16


def frame_differences(video: torch.Tensor, downscale: int = 4) -> torch.Tensor:
    """Mean absolute difference of consecutive frames (formula: module doc), batched over videos.

    ``video``: (T, C, H, W) or (B, T, C, H, W), any real dtype (uint8 is converted to float32).
    Returns (T−1,) or (B, T−1) float32.
    """
    if not isinstance(video, torch.Tensor):
        raise TypeError(f"video must be a torch.Tensor, got {type(video).__name__}")
    if video.dim() not in (4, 5):
        raise ValueError(f"video must be (T, C, H, W) or (B, T, C, H, W), got {tuple(video.shape)}")
    if video.shape[-4] < 2:
        raise ValueError(f"video needs at least 2 frames for a difference, got {video.shape[-4]}")
    if downscale < 1:
        raise ValueError(f"downscale must be >= 1, got {downscale}")
    lead = video.shape[:-3]
    frames = video.flatten(0, -4)
    # Convert and downscale a block of frames at a time: converting a whole uint8 video to float32 first
    # writes 4x its size to memory and reads it back, which made the batched version slower than a loop.
    small = []
    for block in frames.split(_FRAMES_PER_BLOCK):
        x = block if block.is_floating_point() else block.float()
        small.append(F.avg_pool2d(x, downscale, ceil_mode=True) if downscale > 1 else x)
    x = torch.cat(small).unflatten(0, lead)
    return (x[..., 1:, :, :, :] - x[..., :-1, :, :, :]).abs().mean(dim=(-3, -2, -1))


def frame_differences_loop(video: torch.Tensor, downscale: int = 4) -> torch.Tensor:
    """The same numbers, one frame pair at a time in Python (the baseline the batched op is timed against)."""
    out = []
    prev = None
    for frame in video:
        cur = frame.float()
        if downscale > 1:
            cur = F.avg_pool2d(cur[None], downscale, ceil_mode=True)[0]
        if prev is not None:
            out.append((cur - prev).abs().mean())
        prev = cur
    return torch.stack(out)


def frame_difference_indices(
    video_or_diffs: torch.Tensor, num_frames: int, min_spacing: int = 1, downscale: int = 4
) -> list[int]:
    """The frames right after the ``num_frames`` largest consecutive-frame differences, in time order.

    Accepts a video (T, C, H, W) or precomputed differences (T−1,). Greedy: differences in decreasing order
    (ties: the earlier frame first, a stable sort), frame t+1 taken for d_t unless it lies closer than
    ``min_spacing`` frames to one already taken. Frame 0 has no predecessor and is scored +inf, so it is
    always taken first: the opening shot is represented even without a cut. If the spacing rule leaves
    fewer than ``num_frames`` (short or static video), the rest are filled with uniform positions
    not yet taken, and when T < num_frames frames repeat as in ``uniform_indices``.
    """
    if video_or_diffs.dim() == 1:
        diffs = video_or_diffs.float()
    else:
        diffs = frame_differences(video_or_diffs, downscale)
    num_total = diffs.numel() + 1
    _check(num_total, num_frames)
    if min_spacing < 1:
        raise ValueError(f"min_spacing must be >= 1, got {min_spacing}")
    if num_total <= num_frames:
        return uniform_indices(num_total, num_frames)
    score = torch.cat([diffs.new_tensor([float("inf")]), diffs.cpu()])  # score of frame t = d_{t-1}
    order = torch.sort(score, descending=True, stable=True).indices.tolist()
    picked: list[int] = []
    for t in order:
        if all(abs(t - p) >= min_spacing for p in picked):
            picked.append(t)
            if len(picked) == num_frames:
                break
    for t in uniform_indices(num_total, num_frames):
        if len(picked) == num_frames:
            break
        if t not in picked:
            picked.append(t)
    for t in range(num_total):  # uniform positions can coincide with picks; any free frame then
        if len(picked) == num_frames:
            break
        if t not in picked:
            picked.append(t)
    return sorted(picked)


def sample_indices(
    kind: str,
    num_total: int,
    num_frames: int,
    *,
    video: torch.Tensor | None = None,
    rng: np.random.Generator | None = None,
    min_spacing: int = 1,
) -> list[int]:
    """Dispatch on ``kind`` in ``SAMPLERS``; "framediff" needs ``video``, "random" needs ``rng``."""
    if kind == "uniform":
        return uniform_indices(num_total, num_frames)
    if kind == "random":
        if rng is None:
            raise ValueError("the random sampler needs rng (a numpy Generator)")
        return random_indices(num_total, num_frames, rng)
    if kind == "framediff":
        if video is None:
            raise ValueError("the framediff sampler needs the decoded video")
        return frame_difference_indices(video, num_frames, min_spacing)
    raise ValueError(f"sampler must be one of {SAMPLERS}, got {kind!r}")
