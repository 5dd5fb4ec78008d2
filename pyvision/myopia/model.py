"""Myopia progression network: ResNet-34 fundus encoder + tabular refraction/age, LSTM over visits.

Per visit v: image feature f_v = W·ResNet34(x_v) (dropped in the tabular-only baseline) and tabular
feature g_v = MLP(SE_v, (age_v − 9)/3); an LSTM runs over the visits [f_v; g_v] (one step for a
single time point) and its last state h gives

* the trajectory Ŝ_k = SE_base + Δ̂_k, k = 1..6 years (Δ̂ from a linear head),
* the progression rate r̂ (D/year) = least-squares slope through (0, SE_base) and (k, Ŝ_k)
  (``pyvision.data.myopia.least_squares_rate``), so rate and trajectory agree,
* risk logits at the configured horizon for myopia (SE ≤ −0.5 D) and high myopia (SE ≤ −6 D).

Loss (``myopia_loss``)::

    L = Σ_{n,k} m_{nk}·SmoothL1(Ŝ_{nk} − S_{nk}) / Σ m  +  w_risk·[BCE(z_myo, y_myo) + BCE(z_high, y_high)]

with m the trajectory observation mask, SmoothL1(e) = ½e² if |e| < 1 else |e| − ½, BCE(z, y) =
−y·log σ(z) − (1 − y)·log(1 − σ(z)) averaged over samples whose horizon SE is observed.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from pyvision.data.myopia import HORIZON_YEARS, least_squares_rate
from pyvision.models.resnet import resnet34

__all__ = ["MyopiaModelConfig", "MyopiaNet", "myopia_loss"]


@dataclass
class MyopiaModelConfig:
    use_image: bool = True  # False: the refraction + age baseline
    width: int = 64  # ResNet-34 stage-1 width (64 = the standard network)
    img_dim: int = 64
    hidden: int = 64
    horizon: int = HORIZON_YEARS

    def __post_init__(self):
        for k in ("width", "img_dim", "hidden"):
            if getattr(self, k) < 1:
                raise ValueError(f"{k} must be >= 1, got {getattr(self, k)}")
        if not 1 <= self.horizon <= HORIZON_YEARS:
            raise ValueError(f"horizon must be in 1..{HORIZON_YEARS}, got {self.horizon}")


class MyopiaNet(nn.Module):
    """See the module docstring. ``forward(images (B, V, 3, S, S) | None, se (B, V), age (B, V))`` →
    dict ``traj`` (B, 6), ``rate`` (B,), ``risk_logits`` (B, 2) [myopia, high myopia]."""

    def __init__(self, config: MyopiaModelConfig | None = None):
        super().__init__()
        c = self.config = config or MyopiaModelConfig()
        in_dim = 16
        if c.use_image:
            self.encoder = resnet34(num_classes=0, width=c.width)
            self.img_proj = nn.Sequential(nn.Linear(self.encoder.num_features, c.img_dim), nn.ReLU())
            in_dim += c.img_dim
        self.tab = nn.Sequential(nn.Linear(2, 16), nn.ReLU(), nn.Linear(16, 16), nn.ReLU())
        self.lstm = nn.LSTM(in_dim, c.hidden, batch_first=True)
        self.traj_head = nn.Sequential(
            nn.Linear(c.hidden + 2, c.hidden), nn.ReLU(), nn.Linear(c.hidden, HORIZON_YEARS)
        )
        self.risk_head = nn.Sequential(nn.Linear(c.hidden + 2, c.hidden), nn.ReLU(), nn.Linear(c.hidden, 2))

    def forward(
        self, images: torch.Tensor | None, se: torch.Tensor, age: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        if se.dim() != 2 or age.shape != se.shape:
            raise ValueError(f"se and age must both be (B, V), got {tuple(se.shape)} and {tuple(age.shape)}")
        b, v = se.shape
        tab_in = torch.stack([se, (age - 9.0) / 3.0], -1)
        parts = [self.tab(tab_in)]
        if self.config.use_image:
            if images is None or images.dim() != 5 or images.shape[:3] != (b, v, 3):
                raise ValueError(
                    f"images must be (B, V, 3, S, S) = ({b}, {v}, 3, S, S), got "
                    f"{None if images is None else tuple(images.shape)}"
                )
            feats = self.encoder(images.flatten(0, 1)).view(b, v, -1)
            parts.insert(0, self.img_proj(feats))
        h = self.lstm(torch.cat(parts, -1))[0][:, -1]
        h = torch.cat([h, tab_in[:, -1]], -1)  # the baseline's SE and age, straight to the heads
        se0 = se[:, -1]
        traj = se0[:, None] + self.traj_head(h)
        rate = least_squares_rate(se0, traj, torch.ones_like(traj, dtype=torch.bool))
        return {"traj": traj, "rate": rate, "risk_logits": self.risk_head(h)}


def myopia_loss(
    out: dict[str, torch.Tensor], batch: dict[str, torch.Tensor], *, horizon: int, risk_weight: float = 1.0
) -> dict[str, torch.Tensor]:
    """The loss of the module docstring; returns ``loss``, ``traj`` and ``risk``."""
    if not 1 <= horizon <= HORIZON_YEARS:
        raise ValueError(f"horizon must be in 1..{HORIZON_YEARS}, got {horizon}")
    if risk_weight < 0:
        raise ValueError(f"risk_weight must be >= 0, got {risk_weight}")
    m = batch["traj_mask"].to(out["traj"].dtype)
    if m.sum() == 0:
        raise ValueError("batch has no observed trajectory point")
    l_traj = (F.smooth_l1_loss(out["traj"], batch["traj"], reduction="none", beta=1.0) * m).sum() / m.sum()
    se_h = batch["traj"][:, horizon - 1]
    seen = batch["traj_mask"][:, horizon - 1]
    if seen.any():
        y = torch.stack([(se_h <= -0.5), (se_h <= -6.0)], -1).to(out["risk_logits"].dtype)[seen]
        l_risk = (
            F.binary_cross_entropy_with_logits(out["risk_logits"][seen], y, reduction="none").mean(0).sum()
        )
    else:
        l_risk = out["risk_logits"].sum() * 0.0
    return {"loss": l_traj + risk_weight * l_risk, "traj": l_traj, "risk": l_risk}
