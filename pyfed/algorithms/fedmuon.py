r"""FedMuon (Liu et al.): Muon locally, with momentum aggregation and local–global alignment; also the
shared client of Local Muon.

Parameters split into Muon parameters (``muon_params="hidden"``, the default: every ≥2-D weight except
embeddings, positional/class tokens and the classifier head; ``"all"``: every ≥2-D weight, as the
authors' code does) and the rest, which use AdamW whose state is not aggregated. Server state: x, the
global direction Δᵍ = mean_i Δ_i/(K·η) of the last round (zero at first) and the averaged final
momentum M̄ of the Muon parameters (zero at first).

Client i, K steps from x with M ← M̄, μ = ``momentum``, α = ``alpha``, λ = ``weight_decay``, η the
round's lr (η·``adamw_lr_ratio`` for the AdamW parameters), for a Muon parameter W of shape (m, n)::

    M ← μ·M + (1 − μ)·g;   U = (1 − μ)·g + μ·M  (Nesterov; U = M without)
    O = NS5(U)  (kernels.newton_schulz, batched by shape in kernels.optim.Muon)
    W ← W − η·λ·W − η·[(1 − α)·√max(1, m/n)·O + α·Δᵍ]

and for an AdamW parameter, W ← W − η_a·λ·W − η_a·(1 − α)·m̂/(√v̂ + ε) − η·α·Δᵍ (the alignment term
applies to every parameter, as in the authors' code).
message: Δ_i = x⁰ − x and M_i, the final momentum of each Muon parameter.
Server: x ← x − mean_i Δ_i;  Δᵍ ← mean_i Δ_i/(K·η);  M̄ ← mean_i M_i.

Implementation: kernels.optim.Muon with lr = η(1 − α) and weight decay λ/(1 − α) (so that the decay is
η·λ), then the alignment step W ← W − η·α·Δᵍ after every optimizer step.

Bytes (d weights, p parameters, q Muon weights): down S·4(d + p + q), up S·4(d + q).
Local Muon: α = 0, momentum from zero each round, only weights aggregated (down/up S·4d).
"""

from __future__ import annotations

import torch
from torch import nn

from kernels.optim import Muon
from pyfed.algorithms.base import Algorithm, ServerConfig, _check_positive, _check_unit, local_train, mean_of

MUON_PARAMS = ("hidden", "all")
_NOT_HIDDEN = ("head.", "embed", "cls_token", "pos_embed", "classifier.", "lm_head.")


def muon_parameter_names(model: nn.Module, mode: str = "hidden") -> list[str]:
    """Names of the trainable parameters that get Muon under ``mode`` (see the module docstring)."""
    if mode not in MUON_PARAMS:
        raise ValueError(f"muon_params must be one of {MUON_PARAMS}, got {mode!r}")
    embedding_params = {id(p) for m in model.modules() if isinstance(m, nn.Embedding) for p in m.parameters()}
    names = []
    for n, p in model.named_parameters():
        if not p.requires_grad or p.dim() < 2:
            continue
        if mode == "hidden" and (id(p) in embedding_params or any(s in n for s in _NOT_HIDDEN)):
            continue
        names.append(n)
    return names


class MuonClient(Algorithm):
    default_lr = 0.02
    aggregate_momentum = False
    send_direction = False

    def __init__(
        self,
        alpha: float = 0.0,
        momentum: float = 0.98,
        nesterov: bool = True,
        weight_decay: float = 0.01,
        adamw_lr_ratio: float = 0.05,
        muon_params: str = "hidden",
        ns_steps: int = 5,
    ):
        super().__init__(server_lr=1.0)
        _check_unit(alpha=alpha, momentum=momentum)
        _check_positive(adamw_lr_ratio=adamw_lr_ratio)
        if alpha >= 1:
            raise ValueError(f"alpha must be < 1 (α = 1 would drop the local update), got {alpha}")
        if weight_decay < 0:
            raise ValueError(f"weight_decay must be >= 0, got {weight_decay}")
        if muon_params not in MUON_PARAMS:
            raise ValueError(f"muon_params must be one of {MUON_PARAMS}, got {muon_params!r}")
        self.alpha, self.momentum, self.nesterov = alpha, momentum, nesterov
        self.weight_decay, self.adamw_lr_ratio, self.muon_params, self.ns_steps = (
            weight_decay,
            adamw_lr_ratio,
            muon_params,
            ns_steps,
        )

    def server_init(self, model):
        state = super().server_init(model)
        if self.aggregate_momentum:
            w = state["weights"]
            state["momentum"] = {
                k: torch.zeros_like(w[k]) for k in muon_parameter_names(model, self.muon_params)
            }
        return state

    def client_payload(self, state):
        payload = super().client_payload(state)
        if self.aggregate_momentum:
            payload.update({f"M.{k}": v for k, v in state["momentum"].items()})
        return payload

    def client_update(self, model, payload, client, cfg):
        x0 = self.start(model, payload)
        named = {n: p for n, p in model.named_parameters() if p.requires_grad}
        muon_names = set(muon_parameter_names(model, self.muon_params))
        a = self.alpha
        lr, wd = cfg.lr * (1 - a), self.weight_decay / (1 - a)
        groups = [
            {"params": [named[n] for n in named if n in muon_names], "use_muon": True},
            {
                "params": [named[n] for n in named if n not in muon_names],
                "use_muon": False,
                "lr": lr * self.adamw_lr_ratio,
            },
        ]
        opt = Muon(
            [g for g in groups if g["params"]],
            lr=lr,
            weight_decay=wd,
            momentum=self.momentum,
            nesterov=self.nesterov,
            ns_steps=self.ns_steps,
        )
        if self.aggregate_momentum:
            for n in muon_names:
                opt.state[named[n]]["momentum_buffer"] = payload[f"M.{n}"].detach().clone()
        step = opt.step
        if self.send_direction and a > 0:
            direction = [(named[k], v) for k, v in self.payload_direction(payload).items()]
            params, dirs = [p for p, _ in direction], [v for _, v in direction]
            scale = -cfg.lr * a

            def step() -> None:
                opt.step()
                with torch.no_grad():
                    torch._foreach_add_(params, dirs, alpha=scale)

        loss = local_train(model, client, cfg, step)
        msg = self.delta_message(model, x0, loss, client)
        if self.aggregate_momentum:
            for n in sorted(muon_names):
                buf = opt.state[named[n]].get("momentum_buffer")
                msg[f"M.{n}"] = (buf if buf is not None else torch.zeros_like(named[n])).detach().clone()
        return msg

    def server_aggregate(self, state, messages, cfg: ServerConfig):
        state = super().server_aggregate(state, messages, cfg)
        if self.aggregate_momentum:
            state["momentum"] = mean_of(messages, "M.", cfg)
        return state


class FedMuon(MuonClient):
    name = "fedmuon"
    aggregate_momentum = True
    send_direction = True

    def __init__(
        self,
        alpha: float = 0.5,
        momentum: float = 0.98,
        nesterov: bool = True,
        weight_decay: float = 0.01,
        adamw_lr_ratio: float = 0.05,
        muon_params: str = "hidden",
        ns_steps: int = 5,
    ):
        super().__init__(alpha, momentum, nesterov, weight_decay, adamw_lr_ratio, muon_params, ns_steps)
