"""Q-CLIP's training loss, as released: L = L_plcc + 0.3 · L_rank.

PLCC loss (from FAST-VQA/DOVER; ŷ, y standardised with the population std over the batch, ρ = mean(ŷ·y)):

    L_plcc = ½ · [ mean((ŷ − y)²) / 4 + mean((ρ·ŷ − y)²) / 4 ]

Rank loss (a hinge on every mis-ordered pair, normalised by the pair count and by 1 + the largest hinge):

    h_ij = max(0, (ŷ_i − ŷ_j) · sign(y_j − y_i)),   L_rank = Σ_ij h_ij / (n(n−1)) / (1 + max_ij h_ij)
"""

from __future__ import annotations

import torch

__all__ = ["plcc_loss", "qclip_loss", "rank_loss"]


def _check(pred: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    if pred.shape != target.shape or pred.dim() != 1:
        raise ValueError(
            f"pred and target must be 1-D of one shape, got {tuple(pred.shape)} and {tuple(target.shape)}"
        )
    return pred.float(), target.float()


def plcc_loss(pred: torch.Tensor, target: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    pred, target = _check(pred, target)
    if pred.numel() < 2:
        return pred.sum() * 0
    p = (pred - pred.mean()) / (pred.std(unbiased=False) + eps)
    y = (target - target.mean()) / (target.std(unbiased=False) + eps)
    rho = (p * y).mean()
    return (((p - y) ** 2).mean() / 4 + ((rho * p - y) ** 2).mean() / 4) / 2


def rank_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    pred, target = _check(pred, target)
    n = pred.numel()
    if n < 2:
        return pred.sum() * 0
    hinge = torch.relu((pred[:, None] - pred[None, :]) * torch.sign(target[None, :] - target[:, None]))
    return hinge.sum() / (n * (n - 1)) / (1 + hinge.max().detach())


def qclip_loss(pred: torch.Tensor, target: torch.Tensor, rank_weight: float = 0.3) -> torch.Tensor:
    return plcc_loss(pred, target) + rank_weight * rank_loss(pred, target)
