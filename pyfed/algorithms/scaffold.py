r"""SCAFFOLD, option II (Karimireddy et al., 2020), with stateful clients.

Server control variate c, client control variates c_i (kept by each client between rounds, zero at
first). Client i, K steps of SGD with corrected gradients, then the option-II control-variate update::

    x ← x − η·(∇f_i(x; batch) + λ·x − c_i + c)
    c_i⁺ = c_i − c + (x⁰ − x)/(K·η)
    message: Δ_i = x⁰ − x,  Δc_i = c_i⁺ − c_i          (client keeps c_i ← c_i⁺)

Server, with S sampled of N clients::

    x ← x − η_g·mean_i Δ_i;   c ← c + (S/N)·mean_i Δc_i

The correction enters the gradient as a tensor (not a ``.item()``), so it changes the iterates: on a
heterogeneous quadratic SCAFFOLD reaches the optimum where FedAvg stalls (tests/pyfed).
Bytes (d weights, p ≤ d of them parameters): down S·4(d + p), up S·4(d + p).
"""

from __future__ import annotations

import torch

from pyfed.algorithms.base import ServerConfig, local_train, mean_of, param_names
from pyfed.algorithms.fedavg import SGDClient


class Scaffold(SGDClient):
    name = "scaffold"

    def server_init(self, model):
        state = super().server_init(model)
        state["c"] = {k: torch.zeros_like(state["weights"][k]) for k in param_names(state["weights"])}
        return state

    def client_payload(self, state):
        payload = super().client_payload(state)
        payload.update({f"c.{k}": v for k, v in state["c"].items()})
        return payload

    def client_update(self, model, payload, client, cfg):
        x0 = self.start(model, payload)
        c = {k[2:]: v for k, v in payload.items() if k.startswith("c.")}
        ci = client.state.setdefault("c_i", {k: torch.zeros_like(v) for k, v in c.items()})
        named = dict(model.named_parameters())
        correction = {k: c[k] - ci[k] for k in c}

        def hook() -> None:
            for k, corr in correction.items():
                if named[k].grad is not None:
                    named[k].grad.add_(corr)

        opt = self.sgd(model, cfg.lr)
        loss = local_train(model, client, cfg, opt.step, grad_hook=hook)
        msg = self.delta_message(model, x0, loss, client)
        scale = 1.0 / (cfg.local_steps * cfg.lr)
        new_ci = {k: ci[k] - c[k] + msg[f"d.{k}"] * scale for k in c}
        for k in c:
            msg[f"dc.{k}"] = new_ci[k] - ci[k]
        client.state["c_i"] = new_ci
        return msg

    def server_aggregate(self, state, messages, cfg: ServerConfig):
        state = super().server_aggregate(state, messages, cfg)
        dc = mean_of(messages, "dc.", cfg)
        frac = len(messages) / cfg.num_clients
        state["c"] = {k: v + frac * dc[k] for k, v in state["c"].items()}
        return state
