"""EMERT: eye-behaviour-aided multimodal emotion recognition (modality-adversarial feature decoupling +
a multi-task cross-modal transformer).

Streams (as released with the EMER data set): ``face`` — F face frames (B, F, 3, H, W) through a
per-frame ResNet-18; ``eye`` — eye-movement features (B, T, 39) and ``eye2`` — a second eye stream
(B, T, 2), each through a 3-layer LSTM. Every stream's token sequence gets a *private* projection
(its own MLP, ``d`` wide) and a *shared* projection (one MLP for all streams). A modality classifier
(d → 3) sees the time-pooled shared features through gradient reversal (the encoders learn to hide the
modality there) and the private features directly (they keep it). The fusion is a cross-modal
transformer: the shared tokens are queries, the private tokens keys/values (as in the release),
``depth`` pre-norm layers of ``heads``-head attention + MLP. Its pooled output feeds two classifiers,
emotion recognition (ER, the felt emotion) and facial expression recognition (FER, the displayed
one) — the release has a single head; the multi-task head is ours — and a regression head for
(valence, arousal, intensity).

``modalities`` selects a subset of the streams (the modality-subset protocols); the modality classifier
always has 3 outputs indexed by the stream's fixed id (face 0, eye 1, eye2 2).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from torch import nn

from pyvision.models.grl import GradientReversal, grad_reverse  # noqa: F401 - re-exported
from pyvision.models.resnet import resnet18

__all__ = ["EMERT", "EMERTModelConfig", "GradientReversal", "MODALITIES", "grad_reverse"]

MODALITIES: tuple[str, ...] = ("face", "eye", "eye2")
_IN_DIMS = {"eye": 39, "eye2": 2}


@dataclass
class EMERTModelConfig:
    """Architecture. Defaults are the paper's (112 px frames, ResNet-18 at width 64, 64-d features);
    tests and CPU runs shrink ``face_width``/``lstm_hidden``."""

    num_er_classes: int = 7
    num_fer_classes: int = 7
    modalities: tuple[str, ...] = MODALITIES
    face_width: int = 64  # ResNet-18 stage-1 width (64 = the standard network, 512-d features)
    lstm_hidden: int = 128
    lstm_layers: int = 3
    d: int = 64  # private and shared feature width
    depth: int = 2
    heads: int = 8
    mlp_ratio: int = 2
    dropout: float = 0.1
    num_regression: int = 3  # valence, arousal, intensity
    max_tokens: int = 64  # learned positional embedding length per stream
    eye_dims: dict = field(default_factory=lambda: dict(_IN_DIMS))

    def __post_init__(self):
        self.modalities = tuple(self.modalities)
        if not self.modalities or any(m not in MODALITIES for m in self.modalities):
            raise ValueError(f"modalities must be a non-empty subset of {MODALITIES}, got {self.modalities}")
        if len(set(self.modalities)) != len(self.modalities):
            raise ValueError(f"modalities has duplicates: {self.modalities}")
        if self.d % self.heads:
            raise ValueError(f"d ({self.d}) must be divisible by heads ({self.heads})")
        for name in (
            "num_er_classes",
            "num_fer_classes",
            "face_width",
            "lstm_hidden",
            "lstm_layers",
            "d",
            "depth",
            "heads",
            "max_tokens",
        ):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")


def _mlp(i: int, o: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(i, o), nn.LeakyReLU(0.1), nn.Linear(o, o))


class _CrossLayer(nn.Module):
    """Pre-norm cross-attention (queries ← keys/values) + MLP, both residual."""

    def __init__(self, d: int, heads: int, mlp_ratio: int, dropout: float):
        super().__init__()
        self.norm_q = nn.LayerNorm(d)
        self.norm_kv = nn.LayerNorm(d)
        self.attn = nn.MultiheadAttention(d, heads, dropout=dropout, batch_first=True)
        self.norm_ff = nn.LayerNorm(d)
        self.ff = nn.Sequential(
            nn.Linear(d, d * mlp_ratio),
            nn.GELU(),
            nn.Dropout(dropout),
            nn.Linear(d * mlp_ratio, d),
            nn.Dropout(dropout),
        )

    def forward(self, q: torch.Tensor, kv: torch.Tensor) -> torch.Tensor:
        kvn = self.norm_kv(kv)
        q = q + self.attn(self.norm_q(q), kvn, kvn, need_weights=False)[0]
        return q + self.ff(self.norm_ff(q))


class EMERT(nn.Module):
    """See the module docstring. ``forward`` takes a dict with the configured streams and returns a dict:

    ``er``/``fer`` (B, classes) logits, ``reg`` (B, 3), ``feat`` (B, d) fused feature,
    ``mod_shared``/``mod_private`` (B, M, 3) modality logits of each stream's pooled shared (through
    gradient reversal with coefficient ``grl_lambda``) and private features, and ``mod_ids`` (M,) the
    modality id of each of the M configured streams.
    """

    def __init__(self, config: EMERTModelConfig | None = None):
        super().__init__()
        c = self.config = config or EMERTModelConfig()
        self.encoders = nn.ModuleDict()
        enc_dim = {}
        for m in c.modalities:
            if m == "face":
                self.encoders[m] = resnet18(num_classes=0, width=c.face_width)
                enc_dim[m] = self.encoders[m].num_features
            else:
                self.encoders[m] = nn.LSTM(c.eye_dims[m], c.lstm_hidden, c.lstm_layers, batch_first=True)
                enc_dim[m] = c.lstm_hidden
        self.private = nn.ModuleDict({m: _mlp(enc_dim[m], c.d) for m in c.modalities})
        # One shared projection for every stream: a stream's width is first brought to lstm_hidden.
        self.to_common = nn.ModuleDict(
            {m: nn.Linear(enc_dim[m], c.lstm_hidden) for m in c.modalities if enc_dim[m] != c.lstm_hidden}
        )
        self.shared = _mlp(c.lstm_hidden, c.d)
        self.modality_classifier = nn.Linear(c.d, len(MODALITIES))
        self.pos_private = nn.Parameter(torch.randn(len(c.modalities), c.max_tokens, c.d) * 0.02)
        self.pos_shared = nn.Parameter(torch.randn(len(c.modalities), c.max_tokens, c.d) * 0.02)
        self.layers = nn.ModuleList(_CrossLayer(c.d, c.heads, c.mlp_ratio, c.dropout) for _ in range(c.depth))
        self.norm = nn.LayerNorm(c.d)
        self.dropout = nn.Dropout(c.dropout)
        self.er_head = nn.Linear(c.d, c.num_er_classes)
        self.fer_head = nn.Linear(c.d, c.num_fer_classes)
        self.reg_head = nn.Linear(c.d, c.num_regression)
        self.register_buffer(
            "mod_ids", torch.tensor([MODALITIES.index(m) for m in c.modalities]), persistent=False
        )

    def encode(self, m: str, x: torch.Tensor) -> torch.Tensor:
        """One stream → its token sequence (B, T, enc_dim)."""
        if m == "face":
            if x.dim() != 5 or x.shape[2] != 3:
                raise ValueError(f"face must be (B, F, 3, H, W), got shape {tuple(x.shape)}")
            b, f = x.shape[:2]
            return self.encoders[m](x.flatten(0, 1)).view(b, f, -1)
        want = self.config.eye_dims[m]
        if x.dim() != 3 or x.shape[2] != want:
            raise ValueError(f"{m} must be (B, T, {want}), got shape {tuple(x.shape)}")
        return self.encoders[m](x)[0]

    def forward(self, inputs: dict[str, torch.Tensor], grl_lambda: float = 1.0) -> dict[str, torch.Tensor]:
        c = self.config
        missing = [m for m in c.modalities if m not in inputs]
        if missing:
            raise ValueError(f"inputs lacks the stream(s) {missing}; this model uses {list(c.modalities)}")
        privs, shareds, mod_s, mod_p = [], [], [], []
        batch = None
        for i, m in enumerate(c.modalities):
            h = self.encode(m, inputs[m])
            if batch is None:
                batch = h.shape[0]
            elif h.shape[0] != batch:
                raise ValueError(f"stream {m} has batch {h.shape[0]}, expected {batch}")
            if h.shape[1] > c.max_tokens:
                raise ValueError(f"stream {m} has {h.shape[1]} steps, more than max_tokens={c.max_tokens}")
            h = self.dropout(h)
            p = self.private[m](h)
            s = self.shared(self.to_common[m](h) if m in self.to_common else h)
            mod_p.append(self.modality_classifier(p.mean(1)))
            mod_s.append(self.modality_classifier(grad_reverse(s.mean(1), grl_lambda)))
            t = p.shape[1]
            privs.append(p + self.pos_private[i, :t])
            shareds.append(s + self.pos_shared[i, :t])
        q = torch.cat(shareds, 1)
        kv = torch.cat(privs, 1)
        for layer in self.layers:
            q = layer(q, kv)
        feat = self.norm(q).mean(1)
        return {
            "er": self.er_head(feat),
            "fer": self.fer_head(feat),
            "reg": self.reg_head(feat),
            "feat": feat,
            "mod_shared": torch.stack(mod_s, 1),
            "mod_private": torch.stack(mod_p, 1),
            "mod_ids": self.mod_ids,
        }


def stream_subset(inputs: dict[str, torch.Tensor], modalities: Sequence[str]) -> dict[str, torch.Tensor]:
    """The entries of ``inputs`` for ``modalities`` only."""
    return {m: inputs[m] for m in modalities}
