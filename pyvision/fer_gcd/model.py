"""SimGCD / FER-GCD model: backbone → (projection head, cosine classifier, adversarial head behind
gradient reversal).

    f = backbone(x)                        (B, F)
    z = MLP(f)                             projection for the contrastive losses (B, P)
    logits = (f/‖f‖) · (W/‖W‖_row)ᵀ        SimGCD's parametric classifier: cosine, row norms fixed at 1
                                           (weight_norm with g ≡ 1), logits in [−1, 1]
    adv_logits = h′(GRL_λ(f))              FER-GCD's adversarial head (Linear-GELU-Dropout-Linear)

The adversarial head sees the same feature as the classifier (in the release both sit on the
projection, because its classifier does): the worst-case game is about the features the
classifier uses. The gradient-reversal coefficient λ follows ``grl_coefficient`` (the release builds a
warm-start layer but never steps it, so its λ stays 0 and the backbone never sees the adversary).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from pyvision.models.grl import GradientReversal, grad_reverse, grl_coefficient  # noqa: F401 - re-exported

__all__ = ["GCDModel", "GradientReversal", "grad_reverse", "grl_coefficient"]


class GCDModel(nn.Module):
    """Backbone + projection MLP + cosine classifier (+ adversarial head when ``adversarial``).

    ``backbone`` maps (B, C, H, W) → (B, feat_dim). ``forward`` returns (z, logits, adv_logits), with
    adv_logits None when the model has no adversarial head; ``grl_coeff`` is the current λ.
    """

    def __init__(self, backbone: nn.Module, feat_dim: int, num_classes: int, *, proj_dim: int = 256,
                 hidden_dim: int = 2048, mlp_layers: int = 3, adversarial: bool = True,
                 adv_dropout: float = 0.5):
        super().__init__()
        if num_classes < 2:
            raise ValueError(f"num_classes must be >= 2, got {num_classes}")
        if mlp_layers < 1:
            raise ValueError(f"mlp_layers must be >= 1, got {mlp_layers}")
        self.backbone = backbone
        self.num_classes = num_classes
        dims = [feat_dim] + [hidden_dim] * (mlp_layers - 1) + [proj_dim]
        layers: list[nn.Module] = []
        for i in range(mlp_layers):
            layers.append(nn.Linear(dims[i], dims[i + 1]))
            if i < mlp_layers - 1:
                layers.append(nn.GELU())
        self.projector = nn.Sequential(*layers)
        self.classifier_weight = nn.Parameter(torch.empty(num_classes, feat_dim))
        self.adv_head = None
        if adversarial:
            self.adv_head = nn.Sequential(nn.Linear(feat_dim, hidden_dim), nn.GELU(), nn.Dropout(adv_dropout),
                                          nn.Linear(hidden_dim, num_classes))
        for m in [self.projector, self.adv_head]:
            if m is None:
                continue
            for layer in m.modules():
                if isinstance(layer, nn.Linear):
                    nn.init.trunc_normal_(layer.weight, std=0.02)
                    nn.init.zeros_(layer.bias)
        nn.init.trunc_normal_(self.classifier_weight, std=0.02)
        self.grl_coeff = 0.0

    def classify(self, feats: torch.Tensor) -> torch.Tensor:
        return F.normalize(feats, dim=1) @ F.normalize(self.classifier_weight, dim=1).T

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        f = self.backbone(x)
        if f.dim() != 2:
            raise ValueError(f"backbone must return (B, F) features, got shape {tuple(f.shape)}")
        z = self.projector(f)
        logits = self.classify(f)
        adv = None if self.adv_head is None else self.adv_head(grad_reverse(f, self.grl_coeff))
        return z, logits, adv
