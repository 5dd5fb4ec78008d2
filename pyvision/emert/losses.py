"""EMERT losses. Notation: B samples, M streams with modality ids m_j ∈ {0, 1, 2}, classifier logits
z ∈ R^{B×M×3}; CE(z, y) = −log softmax(z)_y averaged over the batch.

Total (the paper's weighting, α = β = 0.1)::

    L = L_task + α·L_adv(shared) + β·L_mod(private)

``L_adv`` and ``L_mod`` are the *same* cross-entropy of the modality classifier; what makes the first
adversarial is the gradient reversal in front of the classifier on the shared path (see
``pyvision.models.grl.grad_reverse``): minimising it trains the classifier to recognise the modality
and, through the −λ gradient, trains the encoders to make the shared features modality-invariant.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["emert_loss", "modality_loss", "task_loss"]


def modality_loss(logits: torch.Tensor, mod_ids: torch.Tensor) -> torch.Tensor:
    """L = Σ_j (1/B) Σ_b −log softmax(z_{b,j})_{m_j}: one cross-entropy per stream j (target: its
    modality id m_j), summed over streams as in the release.

    ``logits`` (B, M, 3); ``mod_ids`` (M,) integer ids.
    """
    if logits.dim() != 3:
        raise ValueError(f"logits must be (B, M, num_modalities), got shape {tuple(logits.shape)}")
    if mod_ids.dim() != 1 or mod_ids.shape[0] != logits.shape[1]:
        raise ValueError(f"mod_ids must be ({logits.shape[1]},), got shape {tuple(mod_ids.shape)}")
    b, m, k = logits.shape
    target = mod_ids.to(logits.device).long().expand(b, m)
    return F.cross_entropy(logits.reshape(b * m, k), target.reshape(-1), reduction="sum") / b


def task_loss(
    out: dict[str, torch.Tensor],
    batch: dict[str, torch.Tensor],
    *,
    er_weight: float = 1.0,
    fer_weight: float = 1.0,
    reg_weight: float = 0.0,
) -> dict[str, torch.Tensor]:
    """L_task = w_er·CE(z_er, y_er) + w_fer·CE(z_fer, y_fer) + w_reg·SmoothL1(r, t).

    SmoothL1 (β = 1), averaged over the batch and the regression targets t = (valence, arousal,
    intensity): ℓ(e) = ½e² if |e| < 1 else |e| − ½, with e = r − t. A term whose weight is 0 is
    skipped (its labels need not be in ``batch``). Returns the total under ``"task"`` and each term.
    """
    terms: dict[str, torch.Tensor] = {}
    ref = out["feat"]
    total = ref.new_zeros(())
    for key, w in (("er", er_weight), ("fer", fer_weight)):
        if w:
            if key not in batch:
                raise ValueError(f"batch lacks the {key!r} labels but its loss weight is {w}")
            terms[key] = F.cross_entropy(out[key], batch[key].long())
            total = total + w * terms[key]
    if reg_weight:
        if "reg" not in batch:
            raise ValueError(f"batch lacks the 'reg' targets but reg_weight is {reg_weight}")
        target = batch["reg"].to(out["reg"].dtype)
        if target.shape != out["reg"].shape:
            raise ValueError(f"batch['reg'] must be {tuple(out['reg'].shape)}, got {tuple(target.shape)}")
        terms["reg"] = F.smooth_l1_loss(out["reg"], target, beta=1.0)
        total = total + reg_weight * terms["reg"]
    terms["task"] = total
    return terms


def emert_loss(
    out: dict[str, torch.Tensor],
    batch: dict[str, torch.Tensor],
    *,
    alpha: float = 0.1,
    beta: float = 0.1,
    er_weight: float = 1.0,
    fer_weight: float = 1.0,
    reg_weight: float = 0.0,
) -> dict[str, torch.Tensor]:
    """L = L_task + α·L_mod(shared logits, through gradient reversal) + β·L_mod(private logits).

    ``out`` is ``EMERT.forward``'s dict. Returns ``loss`` and the terms ``task``, ``adv``, ``mod`` (and
    ``er``/``fer``/``reg``) for logging.
    """
    for name, v in (("alpha", alpha), ("beta", beta)):
        if v < 0:
            raise ValueError(f"{name} must be >= 0, got {v}")
    terms = task_loss(out, batch, er_weight=er_weight, fer_weight=fer_weight, reg_weight=reg_weight)
    terms["adv"] = modality_loss(out["mod_shared"], out["mod_ids"])
    terms["mod"] = modality_loss(out["mod_private"], out["mod_ids"])
    terms["loss"] = terms["task"] + alpha * terms["adv"] + beta * terms["mod"]
    return terms
