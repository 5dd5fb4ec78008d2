r"""FedAdamW (Liu et al.): local AdamW started from the aggregated second moment, aligned with the
global update. Also the shared client of Local AdamW and FedLADA.

Server state: global weights x, the global direction Δᴳ = mean_i Δ_i/(K·η) of the last round (zero at
first), the aggregated second moment v̄ (zero at first) and the global step t (rounds × K).
Client i, K AdamW steps from x with m ← 0, v ← v̄, and bias corrections at the global step
t' = t + k (k = 1..K), with α = ``alpha``, λ = ``weight_decay``::

    m ← β1·m + (1 − β1)·g;   v ← β2·v + (1 − β2)·g²;   m̂ = m/(1 − β1^t');  v̂ = v/(1 − β2^t')
    x ← x − η·[(1 − α)·m̂/(√v̂ + ε) + α·Δᴳ] − η·λ·x
    message: Δ_i = x⁰ − x, and v_i: the full final v (``v_mode="full"``) or one scalar per tensor,
             its mean (``v_mode="per_tensor"``, the default: the communication-efficient variant)

Server: x ← x − mean_i Δ_i;  Δᴳ ← mean_i Δ_i/(K·η);  v̄ ← mean_i v_i (broadcast back to each tensor's
shape when per tensor);  t ← t + K. Means through ``kernels.aggregate``.

Implementation: the step runs in ``kernels.optim.AdamW`` (one fused ``kernels.adamw_step`` per step),
whose rule is x ← x(1 − lr·wd) − lr·(m̂/(√v̂+ε) + a·c). With lr = η(1 − α), wd = λ/(1 − α),
a = α/(1 − α) and c = Δᴳ it is exactly the rule above (α < 1).

Bytes (d weights, p parameters, T parameter tensors): down S·4(d + p + T) per tensor (S·4(d + 2p)
full); up S·4(d + T) per tensor (S·4(d + p) full).

Local AdamW: the same client with α = 0 and v from zero at step 0 every round (nothing but the weights
is aggregated). FedLADA (Sun et al., 2023): v from zero at step 0 every round, the α-mix with Δᴳ kept.
"""

from __future__ import annotations

import torch

from kernels.optim import AdamW
from pyfed.algorithms.base import Algorithm, ServerConfig, _check_unit, local_train, mean_of, param_names

V_MODES = ("per_tensor", "full")


class AdamWClient(Algorithm):
    """Client: kernels.optim.AdamW with the α-mix toward Δᴳ; which state is shared is set by subclasses."""

    default_lr = 3e-3
    aggregate_v = False
    send_direction = True

    def __init__(
        self,
        alpha: float = 0.5,
        weight_decay: float = 0.01,
        beta1: float = 0.9,
        beta2: float = 0.999,
        eps: float = 1e-8,
        v_mode: str = "per_tensor",
    ):
        super().__init__(server_lr=1.0)
        _check_unit(alpha=alpha, beta1=beta1, beta2=beta2)
        if alpha >= 1:
            raise ValueError(f"alpha must be < 1 (α = 1 would drop the local gradient), got {alpha}")
        if weight_decay < 0 or eps < 0:
            raise ValueError(f"weight_decay and eps must be >= 0, got {weight_decay}, {eps}")
        if v_mode not in V_MODES:
            raise ValueError(f"v_mode must be one of {V_MODES}, got {v_mode!r}")
        self.alpha, self.weight_decay = alpha, weight_decay
        self.beta1, self.beta2, self.eps, self.v_mode = beta1, beta2, eps, v_mode

    def server_init(self, model):
        state = super().server_init(model)
        names = param_names(state["weights"])
        if self.aggregate_v:
            state["v"] = {k: self._v_summary(torch.zeros_like(state["weights"][k])) for k in names}
            state["t"] = 0
        return state

    def _v_summary(self, v: torch.Tensor) -> torch.Tensor:
        return v.mean().reshape(1) if self.v_mode == "per_tensor" else v

    def client_payload(self, state):
        payload = super().client_payload(state)
        if self.aggregate_v:
            payload.update({f"v.{k}": v for k, v in state["v"].items()})
            payload["t"] = int(state["t"])
        return payload

    def client_update(self, model, payload, client, cfg):
        x0 = self.start(model, payload)
        named = {n: p for n, p in model.named_parameters() if p.requires_grad}
        a = self.alpha
        opt = AdamW(
            list(named.values()),
            lr=cfg.lr * (1 - a),
            betas=(self.beta1, self.beta2),
            eps=self.eps,
            weight_decay=self.weight_decay / (1 - a),
            alpha=a / (1 - a),
        )
        if self.aggregate_v:
            v0 = {p: payload[f"v.{n}"].expand_as(p) for n, p in named.items()}
            opt.set_second_moment(v0, weight=0.0)
            for p in named.values():  # bias correction with the global step (t' = t + k)
                opt.state[p]["step"] = torch.tensor(float(payload["t"]), dtype=torch.float32)
        if self.send_direction and a > 0:
            direction = self.payload_direction(payload)
            opt.set_correction({p: direction[n] for n, p in named.items()})
        loss = local_train(model, client, cfg, opt.step)
        msg = self.delta_message(model, x0, loss, client)
        if self.aggregate_v:
            for n, p in named.items():
                msg[f"v.{n}"] = self._v_summary(opt.state[p]["exp_avg_sq"]).detach().clone()
        return msg

    def server_aggregate(self, state, messages, cfg: ServerConfig):
        state = super().server_aggregate(state, messages, cfg)
        if self.aggregate_v:
            state["v"] = mean_of(messages, "v.", cfg)
            state["t"] = int(state["t"]) + cfg.local_steps
        return state


class FedAdamW(AdamWClient):
    name = "fedadamw"
    aggregate_v = True
