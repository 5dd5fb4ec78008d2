"""Q-CLIP (Zhang et al., 2025): a frozen CLIP whose only trained parts are a Shared Cross-Modal Adapter
(SCMA), three learned prompt-context tokens and a 5→1 score head.

SCMA, as released: from block ``start`` on, after block i of *either* tower,

    x ← x + g_tower · LN_i(U_i · core(D_i · x)),   core(h) = W_2 · GELU(W_1 · h)      (d → r → r → d)

where D_i (d→r), U_i (r→d) and LN_i belong to depth i and serve the image and the text tower alike,
``core`` (r→r) serves every depth and both towers, and g_image, g_text are learnable gates initialised
at 0.1. The pooled features get a second shared adapter P (d→r→r→e, GELU before the last layer):

    f_tower = pooled · proj_tower + h_tower · P(pooled),   h_image, h_text also initialised at 0.1.

The adapters are created only for the depths they act on (the release also creates unused ones for
the depths below ``start``; their parameters never receive a gradient).

Prompts: "X X X a video of {level} quality" for the five levels; the three X embeddings are one learned
context shared by the five prompts (initialised from the embedding of "X"). With unit-normalised video
feature v (mean of the frame features) and text features t_k, s_k = cos(v, t_k) and

    score = Σ_k w_k s_k                  (head "linear": learned w ∈ R^5, the release's choice), or
    score = Σ_k k · softmax(τ s)_k       (head "softmax": expected level 1…5, τ = the CLIP logit scale).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from pyvision.models.clip import CLIP, CLIP_PRESETS, load_clip_checkpoint
from pyvision.tokenizer import SimpleTokenizer

__all__ = ["LEVELS", "QCLIP", "QCLIPConfig", "QCLIP_PRESETS", "SharedCrossModalAdapter", "count_parameters"]

LEVELS = ("bad", "poor", "fair", "good", "excellent")


@dataclass
class QCLIPConfig:
    """Defaults: the tiny random CLIP (a laptop CPU, minutes). Paper scale: ``QCLIP_PRESETS["paper"]``."""

    backbone: str = "tiny"  # a CLIP preset name (random weights unless checkpoint is given)
    checkpoint: str | None = None  # local OpenAI CLIP / open_clip / PE-Core file
    shared_dim: int = 32
    adapter_start_layer: int = 2
    num_context_tokens: int = 3
    gate_init: float = 0.1
    score_head: str = "linear"  # "linear" (5→1 weights) or "softmax" (expected level 1…5)
    levels: tuple[str, ...] = LEVELS


QCLIP_PRESETS: dict[str, QCLIPConfig] = {
    "tiny": QCLIPConfig(),
    "paper": QCLIPConfig(
        backbone="PE-Core-L14-336",
        checkpoint="pretrained/PE-Core-L14-336.pt",
        shared_dim=128,
        adapter_start_layer=18,
    ),
}


def count_parameters(module: nn.Module, trainable_only: bool = True) -> int:
    """Number of scalars in ``module``'s parameters (each shared tensor counted once)."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)


class SharedCrossModalAdapter(nn.Module):
    """Per-depth down/up projections and layer norms shared by both towers, one core shared by all depths
    and both towers, a pooled-feature adapter shared by both towers, four gates (formulas: module doc)."""

    def __init__(self, width: int, embed_dim: int, depths: range, shared_dim: int, gate_init: float = 0.1):
        super().__init__()
        if shared_dim < 1:
            raise ValueError(f"shared_dim must be positive, got {shared_dim}")
        self.start = depths.start
        self.core = nn.Sequential(
            nn.Linear(shared_dim, shared_dim), nn.GELU(), nn.Linear(shared_dim, shared_dim)
        )
        self.down = nn.ModuleList(nn.Linear(width, shared_dim) for _ in depths)
        self.up = nn.ModuleList(nn.Linear(shared_dim, width) for _ in depths)
        self.norm = nn.ModuleList(nn.LayerNorm(width) for _ in depths)
        self.pooled = nn.Sequential(
            nn.Linear(width, shared_dim),
            nn.Linear(shared_dim, shared_dim),
            nn.GELU(),
            nn.Linear(shared_dim, embed_dim),
        )
        self.gates = nn.ParameterDict(
            {
                name: nn.Parameter(torch.tensor(float(gate_init)))
                for name in ("image", "text", "image_pooled", "text_pooled")
            }
        )

    def block_hook(self, tower: str):
        """``after_block(i, x)`` for ``CLIP``'s towers: identity below ``start``, the adapter from then on."""
        gate = self.gates[tower]

        def hook(i: int, x: torch.Tensor) -> torch.Tensor:
            j = i - self.start
            if j < 0 or j >= len(self.down):
                return x
            return x + gate * self.norm[j](self.up[j](self.core(self.down[j](x))))

        return hook

    def pooled_residual(self, tower: str, pooled: torch.Tensor, projected: torch.Tensor) -> torch.Tensor:
        return projected + self.gates[f"{tower}_pooled"] * self.pooled(pooled)


class QCLIP(nn.Module):
    """Video (B, T, 3, H, W), normalised as the backbone expects → quality score (B,)."""

    def __init__(self, config: QCLIPConfig | None = None, backbone: CLIP | None = None):
        super().__init__()
        config = config or QCLIPConfig()
        if config.score_head not in ("linear", "softmax"):
            raise ValueError(f"score_head must be 'linear' or 'softmax', got {config.score_head!r}")
        if len(config.levels) < 2:
            raise ValueError(f"levels must name at least two quality levels, got {config.levels}")
        if backbone is None:
            backbone = (
                load_clip_checkpoint(
                    config.checkpoint, config.backbone if config.backbone in CLIP_PRESETS else None
                )
                if config.checkpoint
                else CLIP(config.backbone)
            )
        self.config = config
        self.clip = backbone
        for p in self.clip.parameters():
            p.requires_grad_(False)
        vc, tc = backbone.config.vision, backbone.config.text
        if vc.width != tc.width:
            raise ValueError(
                f"SCMA shares projections between the towers, which needs equal widths; the image "
                f"tower is {vc.width} wide, the text tower {tc.width} (PE-Core-L14 has 1024/1024)"
            )
        if vc.output_dim != tc.output_dim:
            raise ValueError(f"embedding sizes differ: image {vc.output_dim}, text {tc.output_dim}")
        depth = max(vc.layers, tc.layers)
        if not 0 <= config.adapter_start_layer < depth:
            raise ValueError(f"adapter_start_layer must be in [0, {depth}), got {config.adapter_start_layer}")
        self.adapter = SharedCrossModalAdapter(
            vc.width,
            vc.output_dim,
            range(config.adapter_start_layer, depth),
            config.shared_dim,
            config.gate_init,
        )
        n_ctx = config.num_context_tokens
        prompts = [" ".join(["X"] * n_ctx + ["a video of", level, "quality"]) for level in config.levels]
        tokens = SimpleTokenizer(context_length=tc.context_length)(prompts)
        self.register_buffer("prompt_tokens", tokens, persistent=False)
        with torch.no_grad():
            emb = self.clip.token_embedding(tokens)
        self.context = nn.Parameter(emb[:1, 1 : 1 + n_ctx].clone())
        self.register_buffer("prompt_prefix", emb[:, :1].clone(), persistent=False)
        self.register_buffer("prompt_suffix", emb[:, 1 + n_ctx :].clone(), persistent=False)
        k = len(config.levels)
        if config.score_head == "linear":
            self.score_weight = nn.Parameter(torch.randn(k) * k**-0.5)
        self.register_buffer("level_values", torch.arange(1, k + 1, dtype=torch.float32), persistent=False)

    def train(self, mode: bool = True) -> QCLIP:
        super().train(mode)
        self.clip.eval()  # the frozen backbone never switches to training behaviour
        return self

    def trainable_state(self) -> dict[str, torch.Tensor]:
        """The trained tensors only (what a checkpoint needs; the backbone comes from its own file)."""
        return {n: p.detach() for n, p in self.named_parameters() if p.requires_grad}

    def text_features(self) -> torch.Tensor:
        """(levels, embed_dim) unit-norm features of the five prompts with the learned context."""
        n = self.prompt_prefix.shape[0]
        emb = torch.cat([self.prompt_prefix, self.context.expand(n, -1, -1), self.prompt_suffix], dim=1)
        pooled = self.clip.encode_text(
            self.prompt_tokens, embeddings=emb, after_block=self.adapter.block_hook("text"), project=False
        )
        feats = self.adapter.pooled_residual("text", pooled, pooled @ self.clip.text_projection)
        return F.normalize(feats, dim=-1)

    def frame_features(self, frames: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) → (N, embed_dim), not normalised."""
        pooled = self.clip.visual(frames, after_block=self.adapter.block_hook("image"), project=False)
        return self.adapter.pooled_residual("image", pooled, pooled @ self.clip.visual.proj)

    def similarities(self, video: torch.Tensor) -> torch.Tensor:
        """(B, T, 3, H, W) → (B, levels) cosine similarities of the mean frame feature to each prompt."""
        if video.dim() != 5 or video.shape[2] != 3:
            raise ValueError(f"video must be (B, T, 3, H, W), got {tuple(video.shape)}")
        b, t = video.shape[:2]
        feats = self.frame_features(video.flatten(0, 1)).unflatten(0, (b, t)).mean(1)
        return F.normalize(feats, dim=-1) @ self.text_features().T

    def forward(self, video: torch.Tensor) -> torch.Tensor:
        sims = self.similarities(video)
        if self.config.score_head == "linear":
            return sims @ self.score_weight
        return torch.softmax(self.clip.logit_scale.exp() * sims, dim=-1) @ self.level_values

    def describe(self) -> str:
        """Trainable vs total parameter counts (the paper's point: few are trained)."""
        trainable, total = count_parameters(self), count_parameters(self, trainable_only=False)
        return (
            f"Q-CLIP: {trainable:,} trainable parameters of {total:,} ({100 * trainable / total:.3f}%): "
            f"adapter {count_parameters(self.adapter):,}, prompt context {self.context.numel():,}, "
            f"score head {self.score_weight.numel() if self.config.score_head == 'linear' else 0}"
        )


def qclip_config(preset: str = "tiny", **overrides) -> QCLIPConfig:
    if preset not in QCLIP_PRESETS:
        raise ValueError(f"unknown Q-CLIP preset {preset!r}; known: {sorted(QCLIP_PRESETS)}")
    return dataclasses.replace(QCLIP_PRESETS[preset], **overrides)
