"""Losses of the SimGCD baseline and of FER-GCD's implicit and explicit debiasing.

Notation: B samples, V views (V = 2), K classes (old + new), logits z ∈ R^{V·B×K} stacked view-major
(rows 0..B−1 are view 1, B..2B−1 view 2, as ``torch.cat(views)`` gives), softmax σ.

SimGCD (Wen et al., ICCV 2023): supervised CE and supervised contrastive on labelled samples,
self-distillation + mean-entropy regularizer and unsupervised contrastive on all samples.
FER-GCD (issue 12): + the worst-case estimation loss of Debiased Self-Training (Chen et al., NeurIPS 2022)
on an adversarial head behind gradient reversal (implicit debiasing), + dynamic label smoothing and a
cluster-compactness regularizer on labelled samples (explicit debiasing).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

__all__ = [
    "cluster_compactness_loss",
    "difficulty_weights",
    "dynamic_label_smoothing_loss",
    "info_nce_loss",
    "label_smoothing_epsilon",
    "mean_entropy_regularizer",
    "self_distillation_loss",
    "sup_con_loss",
    "teacher_temperature",
    "worst_case_estimation_loss",
]


def _check_logits(name: str, x: torch.Tensor) -> None:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a tensor, got {type(x).__name__}")
    if x.dim() != 2:
        raise ValueError(f"{name} must be (N, K), got shape {tuple(x.shape)}")


def _check_labels(name: str, labels: torch.Tensor, n: int, k: int | None = None) -> None:
    if not isinstance(labels, torch.Tensor) or labels.dtype not in (torch.int64, torch.int32):
        raise TypeError(f"{name} must be an integer tensor")
    if labels.shape != (n,):
        raise ValueError(f"{name} must have shape ({n},), got {tuple(labels.shape)}")
    if k is not None and n and (labels.min() < 0 or labels.max() >= k):
        raise ValueError(f"{name} must lie in [0, {k}), got range [{int(labels.min())}, {int(labels.max())}]")


def sup_con_loss(features: torch.Tensor, labels: torch.Tensor | None = None, temperature: float = 0.07,
                 base_temperature: float = 0.07) -> torch.Tensor:
    """Supervised contrastive loss (Khosla et al., 2020), SimCLR's when ``labels`` is None.

    ``features``: (B, V, D), L2-normalized. Anchors a run over all B·V rows; P(a) = the other rows with
    the anchor's label (labels None: the anchor's other views); A(a) = all rows but a:

        L = −(τ/τ_b) · mean_a (1/|P(a)|) Σ_{p∈P(a)} log( exp(z_a·z_p/τ) / Σ_{k∈A(a)} exp(z_a·z_k/τ) )
    """
    if features.dim() != 3:
        raise ValueError(f"features must be (B, V, D), got shape {tuple(features.shape)}")
    b, v, _ = features.shape
    if v * b < 2:
        raise ValueError("sup_con_loss needs at least two rows (B·V >= 2)")
    ids = torch.arange(b, device=features.device) if labels is None else labels
    if labels is not None:
        _check_labels("labels", labels, b)
    z = torch.cat(features.unbind(1), dim=0)  # (V·B, D), view-major
    ids = ids.repeat(v)
    sim = z @ z.T / temperature
    self_mask = torch.eye(v * b, dtype=torch.bool, device=z.device)
    sim = sim.masked_fill(self_mask, float("-inf"))
    log_prob = sim - torch.logsumexp(sim, dim=1, keepdim=True)
    pos = (ids[:, None] == ids[None, :]) & ~self_mask
    n_pos = pos.sum(1)
    has = n_pos > 0  # an anchor alone in its class has no positive and is left out
    mean_log_pos = torch.where(pos, log_prob, torch.zeros_like(log_prob)).sum(1)[has] / n_pos[has]
    return -(temperature / base_temperature) * mean_log_pos.mean()


def info_nce_loss(features: torch.Tensor, n_views: int = 2, temperature: float = 1.0) -> torch.Tensor:
    """Unsupervised contrastive (InfoNCE / NT-Xent) loss on projections (V·B, D), view-major.

    With ẑ = z/‖z‖ and the positive p(a) = the same sample's other view:

        L = mean_a −log( exp(ẑ_a·ẑ_p(a)/τ) / Σ_{k≠a} exp(ẑ_a·ẑ_k/τ) )

    (SimGCD uses τ = 1 here.) Only two views are supported, as in SimGCD.
    """
    _check_logits("features", features)
    if n_views != 2:
        raise ValueError(f"info_nce_loss supports n_views=2, got {n_views}")
    if features.shape[0] % 2 or features.shape[0] < 4:
        raise ValueError(f"features must hold 2 views of B >= 2 samples, got {features.shape[0]} rows")
    b = features.shape[0] // 2
    z = F.normalize(features, dim=1)
    sim = z @ z.T / temperature
    sim = sim.masked_fill(torch.eye(2 * b, dtype=torch.bool, device=z.device), float("-inf"))
    target = torch.cat([torch.arange(b, 2 * b), torch.arange(0, b)]).to(z.device)
    return F.cross_entropy(sim, target)


def teacher_temperature(epoch: int, warmup_epochs: int, warmup_temp: float = 0.07,
                        final_temp: float = 0.04) -> float:
    """SimGCD's teacher temperature: linear from ``warmup_temp`` (epoch 0) to ``final_temp`` (epoch
    W−1) over W = ``warmup_epochs`` epochs, then constant:
    τ_t(e) = τ_w + (τ_f − τ_w)·e/(W − 1) for e < W, τ_f after."""
    if epoch < 0:
        raise ValueError(f"epoch must be >= 0, got {epoch}")
    if epoch >= warmup_epochs:
        return float(final_temp)
    if warmup_epochs == 1:
        return float(warmup_temp)
    return float(warmup_temp + (final_temp - warmup_temp) * epoch / (warmup_epochs - 1))


def self_distillation_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor,
                           teacher_temp: float, student_temp: float = 0.1, n_views: int = 2) -> torch.Tensor:
    """Cross-view self-distillation of SimGCD: the sharpened prediction of one view (teacher, no
    gradient) is the target of the other view's prediction (student):

        q_v = σ(t_v/τ_t) (detached),  L = 1/(V(V−1)) Σ_{v≠w} mean_i −Σ_k q_v[i,k] log σ(s_w[i]/τ_s)_k
    """
    _check_logits("student_logits", student_logits)
    if teacher_logits.shape != student_logits.shape:
        raise ValueError(f"teacher_logits shape {tuple(teacher_logits.shape)} != student_logits shape "
                         f"{tuple(student_logits.shape)}")
    if student_logits.shape[0] % n_views:
        raise ValueError(f"{student_logits.shape[0]} rows do not split into {n_views} views")
    log_p = F.log_softmax(student_logits / student_temp, dim=1).chunk(n_views)
    q = F.softmax(teacher_logits.detach() / teacher_temp, dim=1).chunk(n_views)
    terms = [-(q[v] * log_p[w]).sum(1).mean() for v in range(n_views) for w in range(n_views) if v != w]
    return torch.stack(terms).mean()


def mean_entropy_regularizer(logits: torch.Tensor, temperature: float = 0.1) -> torch.Tensor:
    """SimGCD's mean-entropy ('me-max') term: p̄ = mean_i σ(z_i/τ),  R = log K − H(p̄) = log K + Σ_k p̄_k
    log p̄_k ≥ 0. Minimizing R spreads the predictions over all K classes (no collapse onto old ones)."""
    _check_logits("logits", logits)
    p = F.softmax(logits / temperature, dim=1).mean(0)
    return math.log(logits.shape[1]) + (p * torch.log(p.clamp_min(1e-12))).sum()


def worst_case_estimation_loss(y_l: torch.Tensor, y_l_adv: torch.Tensor, y_u: torch.Tensor,
                               y_u_adv: torch.Tensor, eta_prime: float = 2.0) -> torch.Tensor:
    """Worst-case estimation loss of Debiased Self-Training (DST), the implicit debiasing of FER-GCD.

    ŷ = argmax of the main head's logits (no gradient); h′ the adversarial head's logits:

        L = η′ · mean_{i∈L} −log σ(h′_i)[ŷ_i] + mean_{j∈U} −log(1 − σ(h′_j)[ŷ_j] + 10⁻⁶)

    (the log argument clamped at 1, as in DST). h′ minimizes L: it agrees with the main head on
    labelled data and contradicts its pseudo-labels on unlabelled data, i.e. it estimates the worst
    head the features still allow; the features maximize L through gradient reversal, removing the
    directions in which pseudo-labels could be wrong. An empty labelled or unlabelled part adds 0.
    """
    for name, x in (("y_l", y_l), ("y_l_adv", y_l_adv), ("y_u", y_u), ("y_u_adv", y_u_adv)):
        _check_logits(name, x)
    if y_l.shape != y_l_adv.shape or y_u.shape != y_u_adv.shape:
        raise ValueError(f"main and adversarial logits must match: {tuple(y_l.shape)} vs "
                         f"{tuple(y_l_adv.shape)}, {tuple(y_u.shape)} vs {tuple(y_u_adv.shape)}")
    zero = y_l_adv.sum() * 0 + y_u_adv.sum() * 0
    loss_l = F.cross_entropy(y_l_adv, y_l.argmax(1)) if len(y_l) else zero
    if len(y_u):
        p_adv = F.softmax(y_u_adv, dim=1).gather(1, y_u.argmax(1, keepdim=True)).squeeze(1)
        loss_u = -torch.log(torch.clamp(1.0 - p_adv + 1e-6, max=1.0)).mean()
    else:
        loss_u = zero
    return eta_prime * loss_l + loss_u


def difficulty_weights(logits: torch.Tensor, labels: torch.Tensor, num_classes: int | None = None,
                       delta: float = 0.1) -> torch.Tensor:
    """Class weights of dynamic label smoothing, larger for poorly classified classes.

    With a_c the batch accuracy of class c (argmax of ``logits`` vs ``labels``) over the classes C_b
    present in the batch:  w_c = (1/(a_c + δ)) / Σ_{c′∈C_b} 1/(a_c′ + δ) for c ∈ C_b, 0 otherwise.
    (The release also gives weight 1/δ to classes absent from the batch, new classes included, so
    with its δ = 10⁻⁵ almost all smoothing mass goes to them; here absent classes get none.)
    """
    _check_logits("logits", logits)
    k = num_classes or logits.shape[1]
    _check_labels("labels", labels, logits.shape[0], k)
    if delta <= 0:
        raise ValueError(f"delta must be > 0, got {delta}")
    with torch.no_grad():
        correct = (logits.argmax(1) == labels).to(logits.dtype)
        hits = torch.bincount(labels, weights=correct, minlength=k)
        counts = torch.bincount(labels, minlength=k).to(logits.dtype)
        present = counts > 0
        inv = torch.where(present, 1.0 / (hits / counts.clamp_min(1) + delta), torch.zeros_like(counts))
        return inv / inv.sum()


def label_smoothing_epsilon(step: int, total_steps: int, initial: float = 0.1) -> float:
    """Linearly decaying smoothing factor ε(t) = ε₀·(1 − t/T) (the release intends this decay but
    rebuilds its smoother every step, so its ε stays ε₀)."""
    if total_steps < 1 or not 0 <= step <= total_steps:
        raise ValueError(f"need 0 <= step <= total_steps and total_steps >= 1, got {step}, {total_steps}")
    return float(initial) * (1.0 - step / total_steps)


def dynamic_label_smoothing_loss(logits: torch.Tensor, labels: torch.Tensor, epsilon: float,
                                 class_weights: torch.Tensor) -> torch.Tensor:
    """Cross-entropy against smoothed targets whose smoothing mass goes to the weighted classes:

        t_i = (1 − ε)·onehot(y_i) + ε·w,   L = mean_i −Σ_k t_ik log σ(z_i)_k

    with w = ``class_weights`` (K,), a distribution (from ``difficulty_weights``)."""
    _check_logits("logits", logits)
    n, k = logits.shape
    _check_labels("labels", labels, n, k)
    if class_weights.shape != (k,):
        raise ValueError(f"class_weights must have shape ({k},), got {tuple(class_weights.shape)}")
    if not 0 <= epsilon <= 1:
        raise ValueError(f"epsilon must be in [0, 1], got {epsilon}")
    target = (1 - epsilon) * F.one_hot(labels, k).to(logits.dtype) + epsilon * class_weights[None]
    return -(target * F.log_softmax(logits, dim=1)).sum(1).mean()


def cluster_compactness_loss(features: torch.Tensor, labels: torch.Tensor, maxmin_weight: float = 0.1,
                             eps: float = 1e-8) -> torch.Tensor:
    """Cluster-compactness regularizer of FER-GCD on labelled features x_i (N, D):

        W = Σ_c Σ_{i∈c} ‖x_i − μ_c‖²,  B = Σ_c n_c ‖μ_c − μ‖²,  d_i = ‖x_i − μ_{c(i)}‖²
        L = W/(B + ε) + λ_mm · (1/C) Σ_c (max_{i∈c} d_i − min_{i∈c} d_i)

    (within/between scatter ratio plus the spread of distances to the class centre, λ_mm = 0.1). With
    fewer than two classes B is undefined and the loss is 0.
    """
    _check_logits("features", features)
    _check_labels("labels", labels, features.shape[0])
    classes = torch.unique(labels)
    if len(classes) < 2:
        return features.sum() * 0
    mu = features.mean(0)
    w = features.new_zeros(())
    bsc = features.new_zeros(())
    spread = features.new_zeros(())
    for c in classes:
        xc = features[labels == c]
        mc = xc.mean(0)
        d = ((xc - mc) ** 2).sum(1)
        w = w + d.sum()
        bsc = bsc + len(xc) * ((mc - mu) ** 2).sum()
        spread = spread + (d.max() - d.min())
    return w / (bsc + eps) + maxmin_weight * spread / len(classes)
