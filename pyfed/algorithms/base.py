r"""The algorithm interface shared by the in-process simulator and the Flower app, and the local loop.

An algorithm is four functions of explicit state; it never touches transport, and the server loop
never knows which algorithm it runs::

    state   = algo.server_init(model)                          # server state (global weights, moments, ...)
    payload = algo.client_payload(state)                       # what goes down to every sampled client
    message = algo.client_update(model, payload, client, cfg)  # what one client sends up
    state   = algo.server_aggregate(state, messages, cfg)      # the new server state

Payloads and messages are flat ``dict[str, Tensor | float | int]``; tensors are what crosses the wire
(``nbytes`` counts them), numbers are metadata (loss, number of examples). Per-client state that
persists between rounds (SCAFFOLD's c_i) lives in ``client.state``, a dict the runtime keeps (in memory
here, in Flower's ``context.state`` there).

Weights: the *trainable* parameters plus the floating-point buffers (BatchNorm running statistics) of
the model, by name (``model_weights``). Frozen parameters (a LoRA backbone) are never sent. Updates are
written as Δ = x_start − x_end (a descent direction: the server's plain step is x ← x − η_g·mean Δ).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

import kernels

__all__ = [
    "Algorithm",
    "Client",
    "LocalConfig",
    "ServerConfig",
    "load_weights",
    "local_train",
    "mean_of",
    "model_weights",
    "nbytes",
    "param_names",
]

Weights = dict[str, Tensor]


@dataclass
class LocalConfig:
    """What the runtime tells a client for one round."""

    lr: float  # this round's learning rate (the schedule already applied)
    local_steps: int  # K
    round: int  # 0-based
    grad_clip: float | None = None  # max global grad norm per step (None: no clipping)


@dataclass
class ServerConfig:
    """What the runtime tells the server for one aggregation."""

    lr: float  # this round's client learning rate (algorithms that rescale Δ by 1/(Kη) need it)
    local_steps: int
    round: int
    num_clients: int  # N, all clients (SCAFFOLD scales the control-variate update by S/N)
    weighting: str = "uniform"  # "uniform" (as the papers) or "examples" (by each client's train size)


@dataclass
class Client:
    """One client as an algorithm sees it."""

    id: int
    batches: Callable[[], Iterator[tuple[Tensor, Tensor]]]  # a fresh, deterministic batch iterator
    num_examples: int
    state: dict[str, Any] = field(default_factory=dict)
    loss_fn: Callable[[Tensor, Tensor], Tensor] = nn.functional.cross_entropy


class Algorithm:
    """Base class: FedAvg's server step and payload; subclasses override what differs.

    Subclasses set ``name`` and ``default_lr`` (the client learning rate used when a run gives none,
    since SGD, Adam and Muon want very different ones) and take their hyperparameters as keyword
    arguments in ``__init__`` (validated there; never overwritten later).
    """

    name = "base"
    default_lr = 0.05
    # Keep the global direction Δᴳ = mean_i Δ_i/(K·η) of the last round (zero at first) and send it down
    # as "g.<name>" (FedCM, MoFedSAM, FedLADA, FedAdamW, FedMuon).
    send_direction = False

    def __init__(self, server_lr: float = 1.0):
        _check_positive(server_lr=server_lr)
        self.server_lr = server_lr

    def hparams(self) -> dict[str, Any]:
        return {k: v for k, v in vars(self).items() if not k.startswith("_")}

    # ---- the interface ---------------------------------------------------------------------------

    def server_init(self, model: nn.Module) -> dict[str, Any]:
        state: dict[str, Any] = {"weights": {k: v.detach().clone() for k, v in model_weights(model).items()}}
        if self.send_direction:
            names = param_names(state["weights"])
            state["direction"] = {k: torch.zeros_like(state["weights"][k]) for k in names}
        return state

    def client_payload(self, state: Mapping[str, Any]) -> dict[str, Any]:
        payload = {f"w.{k}": v for k, v in state["weights"].items()}
        if self.send_direction:
            payload.update({f"g.{k}": v for k, v in state["direction"].items()})
        return payload

    def client_update(
        self, model: nn.Module, payload: Mapping[str, Any], client: Client, cfg: LocalConfig
    ) -> dict[str, Any]:
        raise NotImplementedError(f"{type(self).__name__}.client_update")

    def server_aggregate(
        self, state: dict[str, Any], messages: list[Mapping[str, Any]], cfg: ServerConfig
    ) -> dict[str, Any]:
        """x ← x − η_g·mean Δ, and Δᴳ ← mean Δ/(K·η) for algorithms that send the global direction."""
        delta = mean_of(messages, "d.", cfg)
        state["weights"] = self.apply_delta(state["weights"], delta, self.server_lr)
        if self.send_direction:
            scale = 1.0 / (cfg.local_steps * cfg.lr)
            state["direction"] = {k: delta[k] * scale for k in state["direction"]}
        return state

    # ---- optional runtime hooks (the simulator and the Flower app call them; defaults do nothing) ----

    def round_metrics(self, state: Mapping[str, Any]) -> dict[str, Any]:
        """Numbers to log after a round (e.g. the DP algorithms' ε and δ); JSON-serializable."""
        return {}

    def should_stop(self, state: Mapping[str, Any], next_round: int) -> bool:
        """True to end training before round ``next_round`` (0-based) starts (e.g. a privacy budget)."""
        return False

    # ---- helpers for subclasses -------------------------------------------------------------------

    @staticmethod
    def start(model: nn.Module, payload: Mapping[str, Any]) -> Weights:
        """Load the payload's global weights into ``model``; returns a copy of them (x_start)."""
        weights = {k[2:]: v for k, v in payload.items() if k.startswith("w.")}
        load_weights(model, weights)
        return {k: v.detach().clone() for k, v in weights.items()}

    @staticmethod
    def payload_direction(payload: Mapping[str, Any]) -> Weights:
        """Δᴳ from a payload, by parameter name."""
        return {k[2:]: v for k, v in payload.items() if k.startswith("g.")}

    @staticmethod
    def delta_message(model: nn.Module, x_start: Weights, loss: float, client: Client) -> dict[str, Any]:
        """{"d.<name>": x_start − x_end, "loss": mean local loss, "num_examples": n}."""
        end = model_weights(model)
        msg: dict[str, Any] = {f"d.{k}": (x_start[k] - end[k].detach()) for k in x_start}
        msg["loss"] = float(loss)
        msg["num_examples"] = int(client.num_examples)
        return msg

    @staticmethod
    def apply_delta(weights: Weights, delta: Weights, lr: float) -> Weights:
        """x ← x − lr·Δ for parameters. Buffers (running statistics) take the plain mean (lr = 1)."""
        return {k: w - (lr if not _is_buffer_name(k) else 1.0) * delta[k] for k, w in weights.items()}


_BUFFER_MARK = "#"  # model_weights names buffers "name#" so algorithms can tell them from parameters


def _is_buffer_name(name: str) -> bool:
    return name.endswith(_BUFFER_MARK)


def param_names(weights: Mapping[str, Tensor]) -> list[str]:
    """The names in a weights dict that are parameters (not buffers)."""
    return [k for k in weights if not _is_buffer_name(k)]


def model_weights(model: nn.Module) -> Weights:
    """Trainable parameters (by name) and floating buffers (by name + "#"), as live tensors."""
    out: Weights = {n: p for n, p in model.named_parameters() if p.requires_grad}
    for n, b in model.named_buffers():
        if b is not None and torch.is_floating_point(b):
            out[n + _BUFFER_MARK] = b
    return out


def load_weights(model: nn.Module, weights: Mapping[str, Tensor]) -> None:
    live = model_weights(model)
    missing = set(live) - set(weights)
    if missing:
        raise KeyError(f"weights lack {sorted(missing)[:5]} for {type(model).__name__}")
    with torch.no_grad():
        for k, t in live.items():
            t.copy_(weights[k])


def nbytes(obj: Mapping[str, Any]) -> int:
    """Bytes of the tensors in a payload or message (numbers are metadata and not counted)."""
    return sum(v.numel() * v.element_size() for v in obj.values() if isinstance(v, Tensor))


def client_weights(messages: list[Mapping[str, Any]], cfg: ServerConfig) -> list[float] | None:
    if cfg.weighting == "uniform":
        return None
    if cfg.weighting == "examples":
        return [float(m["num_examples"]) for m in messages]
    raise ValueError(f"weighting must be 'uniform' or 'examples', got {cfg.weighting!r}")


def mean_of(messages: list[Mapping[str, Any]], prefix: str, cfg: ServerConfig) -> Weights:
    """Weighted mean over clients of every message entry named ``prefix + name``, by ``kernels.aggregate``
    (one pass over the clients' tensors, no stacking)."""
    if not messages:
        raise ValueError("no client messages to aggregate")
    names = [k for k in messages[0] if k.startswith(prefix)]
    stacked = {k[len(prefix) :]: [m[k] for m in messages] for k in names}
    if not stacked:
        return {}
    return kernels.aggregate(stacked, client_weights(messages, cfg))


def _check_positive(**values: float) -> None:
    for name, v in values.items():
        if not (isinstance(v, int | float) and math.isfinite(v) and v > 0):
            raise ValueError(f"{name} must be a positive finite number, got {v!r}")


def _check_unit(**values: float) -> None:
    for name, v in values.items():
        if not (isinstance(v, int | float) and 0 <= v <= 1):
            raise ValueError(f"{name} must be in [0, 1], got {v!r}")


def local_train(
    model: nn.Module,
    client: Client,
    cfg: LocalConfig,
    step: Callable[[], None],
    *,
    grad_hook: Callable[[], None] | None = None,
    extra_loss: Callable[[], Tensor] | None = None,
    sam_rho: float = 0.0,
) -> float:
    """K local steps; returns the mean training loss. Per step: forward/backward on the next batch
    (``extra_loss()`` added to the loss, e.g. FedProx's proximal term — through autograd, so it has a
    gradient), optionally the SAM ascent (gradient at x + ρ·g/‖g‖, then x restored), optional gradient
    clipping, ``grad_hook()`` to edit gradients in place (SCAFFOLD, FedCM), then ``step()``."""
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    total = 0.0
    for x, y in local_batches(client, cfg.local_steps):
        with kernels.nvtx.range("local_step"):
            for p in params:
                p.grad = None
            loss = client.loss_fn(model(x), y)
            total += float(loss.detach())
            if extra_loss is not None:
                loss = loss + extra_loss()
            loss.backward()
            if sam_rho > 0:
                _sam_second_gradient(model, params, client, x, y, sam_rho, extra_loss)
            if cfg.grad_clip is not None:
                torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)
            if grad_hook is not None:
                grad_hook()
            step()
    return total / max(cfg.local_steps, 1)


def local_batches(client: Client, steps: int) -> Iterator[tuple[Tensor, Tensor]]:
    """The client's next ``steps`` batches, starting its iterator again whenever it runs out."""
    batches = client.batches()
    for _ in range(steps):
        try:
            yield next(batches)
        except StopIteration:
            batches = client.batches()
            yield next(batches)


def _sam_second_gradient(model, params, client, x, y, rho, extra_loss) -> None:
    """SAM (Foret et al., 2021): e = ρ·g/‖g‖; the gradient used is ∇L(x + e); x is restored after."""
    grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
    norm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads]))
    scale = rho / (float(norm) + 1e-12)
    with torch.no_grad():
        eps = [g * scale for g in grads]
        torch._foreach_add_(params, eps)
    for p in params:
        p.grad = None
    loss = client.loss_fn(model(x), y)
    if extra_loss is not None:
        loss = loss + extra_loss()
    loss.backward()
    with torch.no_grad():
        torch._foreach_sub_(params, eps)
