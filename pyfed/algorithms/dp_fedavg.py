r"""Client-level DP baselines: DP-FedAvg, DP-FedSAM, DP-FedSMP and DP-FedAvg-LS, one mechanism for all.

Client i (K local steps from the global x, η the round's learning rate) sends its clipped residual::

    R_i = Δ_i = x_start − x_end                  (DP-FedPGN subtracts its public drift term, dp_fedpgn.py)
    u_i = clip_C(m ⊙ R_i)                        m = 1, or FedSMP's public random mask
    distributed mode only:  u_i ← m ⊙ (u_i + (σC/√S)·z_i),  z_i from the client's own secret seed

Server, z from (noise_seed, round) — the server's secret seed, never client data; S = the number of messages
under fixed-size sampling, S = qN = ``sample_size`` (the EXPECTED count, public) under Poisson sampling::

    central:      Δ̄ = m ⊙ (Σ_i clip_C(u_i) + σC·z) / S        (kernels.clip_and_noise_sum)
    distributed:  Δ̄ = Σ_i u_i / S                            (fixed-size sampling only)
    Δ̄ ← post-processing (Laplacian smoothing for -LS, DP-FedPGN's public drift term);   x ← x − η_g·Δ̄

Local training: DP-FedAvg and DP-FedSMP plain SGD; DP-FedSAM SAM with radius ρ (gradient at
x + ρ·g/‖g‖). The whole message (every trainable parameter) is one vector clipped to ONE global
bound C fixed before training, so one client's contribution to the sum has ℓ2 norm <= C. Models with
running statistics (BatchNorm buffers) are refused: they are client data that would need noise too.

Privacy (pyfed.dp.accounting), by the hyperparameter ``sampling`` (it must equal the runtime's
``FedConfig.sampling``; the simulator refuses a mismatch and the CLI sets it):

* ``"fixed"`` (default): the runtime samples S of N clients without replacement, so the accountant is
  RDP of sampling without replacement under replace-one (sensitivity 2C, z = σ/2), q = S/N.
* ``"poisson"``: each client joins independently with probability q = S/N, so the accountant is RDP
  of the Poisson-subsampled Gaussian under add/remove (sensitivity C, z = σ). The noised sum is divided
  by the expected count qN = S whatever the realized count (which may be 0: an empty round still
  releases σC·z/S, and still counts as a round), so adding or removing one client moves the release by
  at most C/(qN) and the noise never depends on who took part. Needs num_clients and sample_size up
  front, and central mode (distributed noise shares would add up to a participation-dependent variance).

ε at ``delta`` after the rounds done is in ``round_metrics`` and ``should_stop`` ends training before
``target_epsilon`` would be passed. The round count lives in ``state["dp"]``, so it is checkpointed.

Trust models. ``mode="central"``: clients trust the server with their clipped residuals; the server
adds the noise. ``mode="distributed"``: each client adds N(0, σ²C²/S) itself, so the sum carries
N(0, σ²C²) only if all S clients are honest — fewer honest clients, less noise, larger real ε; the
server never sees an un-noised update (but without secure aggregation it sees each noised one, which
alone is only (σ/√S)-noised). The client's seed is drawn with ``secrets`` once and kept in its own
state; the server never learns it.

What is not private: with ``diagnostics=True`` the message also carries the local loss and the pre-clip
residual norm, and round_metrics reports their means — useful for the benchmark, NOT covered by ε.
With ``diagnostics=False`` (default) the message holds the clipped residual only (loss NaN, one example).

The noise seed is a secret of the server: z is a deterministic function of (noise_seed, round), so
anyone who knows the seed can subtract the noise from the released update and ε means nothing. By
default (``noise_seed=None``) the server draws it with ``secrets`` in ``server_init`` and keeps it in
``state["dp"]`` (the server's checkpoint holds it, so a resumed run continues the same stream; it is
never sent and never written to config.json). Pass an integer only for reproducible research runs,
knowing that it voids the guarantee for whoever sees it. DP-FedSMP's coordinate mask is public and
comes from its own ``mask_seed``.
The per-step gradient clipping of the local loop (``grad_clip``) is an optimization choice, not part of
the mechanism. Bytes: as FedAvg (DP-FedPGN also sends the direction down).
"""

from __future__ import annotations

import math
import secrets
from collections.abc import Mapping
from typing import Any

import torch

from pyfed.algorithms.base import (
    Client,
    LocalConfig,
    ServerConfig,
    _check_positive,
    _check_unit,
    local_train,
    model_weights,
    param_names,
)
from pyfed.algorithms.fedavg import SGDClient
from pyfed.dp.accounting import RoundAccountant
from pyfed.dp.mechanism import (
    clip_vector,
    flatten,
    laplacian_smooth,
    noised_sum,
    public_mask,
    stream_seed,
    unflatten,
)

__all__ = ["DPFedAvg", "DPFedAvgLS", "DPFedSAM", "DPFedSMP"]

_CENTRAL_NOISE, _MASK = 1, 2  # stream tags: independent Philox streams (noise: secret seed; mask: public)
MODES = ("central", "distributed")
SAMPLINGS = ("fixed", "poisson")  # FedConfig.sampling → the accountant's sampling
_ACCOUNTANT_SAMPLING = {"fixed": "without_replacement", "poisson": "poisson"}


class DPFedAvg(SGDClient):
    name = "dp_fedavg"
    is_dp = True  # the CLI's --target-epsilon applies to these algorithms only
    aggregates_empty_rounds = True  # an empty Poisson round still releases the noise (and is accounted)

    def __init__(
        self,
        server_lr: float = 1.0,
        weight_decay: float = 0.0,
        clip_norm: float = 1.0,
        noise_multiplier: float = 1.0,
        delta: float = 1e-3,
        target_epsilon: float | None = None,
        noise_seed: int | None = None,
        mode: str = "central",
        num_clients: int | None = None,
        sample_size: int | None = None,
        diagnostics: bool = False,
        sampling: str = "fixed",
    ):
        super().__init__(server_lr, weight_decay)
        _check_positive(clip_norm=clip_norm, noise_multiplier=noise_multiplier)
        if not (isinstance(delta, int | float) and 0 < delta < 1):
            raise ValueError(f"delta must be in (0, 1), got {delta!r}")
        if target_epsilon is not None:
            _check_positive(target_epsilon=target_epsilon)
        if noise_seed is not None and (
            isinstance(noise_seed, bool) or not isinstance(noise_seed, int) or noise_seed < 0
        ):
            raise ValueError(
                f"noise_seed must be None (a secret drawn at init) or an integer >= 0, got {noise_seed!r}"
            )
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        for key, v in (("num_clients", num_clients), ("sample_size", sample_size)):
            if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < 1):
                raise ValueError(f"{key} must be an integer >= 1 or None, got {v!r}")
        if (num_clients is None) != (sample_size is None):
            raise ValueError("give both num_clients and sample_size, or neither (then: from round 1)")
        if num_clients is not None and sample_size > num_clients:
            raise ValueError(f"sample_size must be <= num_clients={num_clients}, got {sample_size}")
        if mode == "distributed" and sample_size is None:
            raise ValueError("mode='distributed' needs sample_size: each client adds noise σC/√S")
        if sampling not in SAMPLINGS:
            raise ValueError(f"sampling must be one of {SAMPLINGS}, got {sampling!r}")
        if sampling == "poisson" and sample_size is None:
            raise ValueError(
                "sampling='poisson' needs num_clients and sample_size (q = S/N and the expected count "
                "S the noised sum is divided by must be known before the first round)"
            )
        if sampling == "poisson" and mode == "distributed":
            raise ValueError(
                "sampling='poisson' needs mode='central': with a random number of clients, distributed "
                "noise shares σC/√S would add up to a variance that depends on who took part"
            )
        self.clip_norm = float(clip_norm)
        self.noise_multiplier = float(noise_multiplier)
        self.delta = float(delta)
        self.target_epsilon = target_epsilon
        self.noise_seed = noise_seed
        self.mode = mode
        self.num_clients = num_clients
        self.sample_size = sample_size
        self.diagnostics = bool(diagnostics)
        self.sampling = sampling

    # ---- state and accounting -------------------------------------------------------------------

    def server_init(self, model):
        state = super().server_init(model)
        buffers = [k for k in state["weights"] if k not in set(param_names(state["weights"]))]
        if buffers:  # running statistics are client data too, and noised variances can go negative
            raise ValueError(
                f"{self.name} needs a model without running statistics (use a -gn model or 'cnn'); "
                f"{type(model).__name__} has buffers {buffers[:3]}"
            )
        seed = self.noise_seed if self.noise_seed is not None else secrets.randbits(63)
        state["dp"] = {
            "rounds": 0,
            "noise_seed": seed,  # the server's secret (see the module docstring)
            "num_clients": self.num_clients or 0,
            "sample_size": self.sample_size or 0,
        }
        return state

    def accountant(self, state: Mapping[str, Any]) -> RoundAccountant:
        """The accountant of this run. Before the first round, without num_clients/sample_size given,
        q is unknown and the bound of the unsampled Gaussian (q = 1) is used — an upper bound."""
        n, s = int(state["dp"]["num_clients"]), int(state["dp"]["sample_size"])
        if n == 0:
            n = s = 1
        return RoundAccountant(self.noise_multiplier, self.delta, s, n, _ACCOUNTANT_SAMPLING[self.sampling])

    def round_metrics(self, state: Mapping[str, Any]) -> dict[str, float]:
        dp = state["dp"]
        out = {
            "epsilon": self.accountant(state).epsilon(int(dp["rounds"])),
            "delta": self.delta,
            "noise_multiplier": self.noise_multiplier,
        }
        if self.diagnostics and "mean_residual_norm" in dp:
            out["mean_residual_norm"] = float(dp["mean_residual_norm"])
            out["clipped_fraction"] = float(dp["clipped_fraction"])
        return out

    def should_stop(self, state: Mapping[str, Any], next_round: int) -> bool:
        """True when one more round would take ε past ``target_epsilon``."""
        if self.target_epsilon is None:
            return False
        return self.accountant(state).epsilon(int(state["dp"]["rounds"]) + 1) > self.target_epsilon

    # ---- client ---------------------------------------------------------------------------------

    def train_locally(self, model, payload, client: Client, cfg: LocalConfig) -> float:
        opt = self.sgd(model, cfg.lr)
        return local_train(model, client, cfg, opt.step)

    def residual(self, delta: dict[str, torch.Tensor], payload, cfg: LocalConfig) -> dict[str, torch.Tensor]:
        """What gets clipped: Δ here; DP-FedPGN removes its public drift term."""
        return delta

    def mask(self, numel: int, round_: int) -> torch.Tensor | None:
        """A public coordinate mask (DP-FedSMP), or None."""
        return None

    def client_update(self, model, payload, client: Client, cfg: LocalConfig) -> dict[str, Any]:
        x0 = self.start(model, payload)
        loss = self.train_locally(model, payload, client, cfg)
        end = model_weights(model)
        names = list(x0)
        delta = {k: x0[k] - end[k].detach() for k in names}
        vec = flatten(self.residual(delta, payload, cfg), names)
        m = self.mask(vec.numel(), cfg.round)
        if m is not None:
            vec = vec * m
        noise_std, seed = 0.0, 0
        if self.mode == "distributed":
            noise_std = self.noise_multiplier * self.clip_norm / math.sqrt(self.sample_size)
            if "dp_noise_seed" not in client.state:
                client.state["dp_noise_seed"] = secrets.randbits(63)  # the client's secret
            seed = int(client.state["dp_noise_seed"])
        out, norm = clip_vector(vec, self.clip_norm, noise_std, seed, offset=cfg.round)
        if m is not None:
            out = out * m
        msg: dict[str, Any] = {f"d.{k}": v for k, v in unflatten(out, x0, names).items()}
        # Only the clipped residual is private; the rest is metadata that the runtime expects.
        msg["loss"] = float(loss) if self.diagnostics else float("nan")
        msg["num_examples"] = int(client.num_examples) if self.diagnostics else 1
        if self.diagnostics:
            msg["residual_norm"] = norm
        return msg

    # ---- server ---------------------------------------------------------------------------------

    def server_aggregate(self, state, messages, cfg: ServerConfig):
        if cfg.weighting != "uniform":
            raise ValueError(
                f"DP algorithms need weighting='uniform' (client sizes are private), got {cfg.weighting!r}"
            )
        dp = state["dp"]
        if self.sampling == "poisson":
            # any realized count (0 included) is a valid Poisson round; divide by the expected count
            if cfg.num_clients != int(dp["num_clients"]):
                raise ValueError(
                    f"the accountant assumes Poisson sampling from {dp['num_clients']} clients; "
                    f"this round samples from {cfg.num_clients}"
                )
            s = int(dp["sample_size"])
        else:
            if not messages:
                raise ValueError("no client messages to aggregate")
            n, s = cfg.num_clients, len(messages)
            if int(dp["num_clients"]) == 0:
                dp["num_clients"], dp["sample_size"] = n, s
            if (n, s) != (int(dp["num_clients"]), int(dp["sample_size"])):
                raise ValueError(
                    f"the accountant assumes {dp['sample_size']} of {dp['num_clients']} clients per round; "
                    f"this round has {s} of {n}"
                )
        names = list(state["weights"])
        rows = [flatten({k: m[f"d.{k}"] for k in names}, names) for m in messages]
        if not rows:  # an empty Poisson round: the sum of no clipped rows is 0, the noise is the same
            rows = [torch.zeros_like(flatten(state["weights"], names))]
        if self.mode == "central":
            total, _ = noised_sum(
                rows,
                self.clip_norm,
                self.noise_multiplier * self.clip_norm,
                seed=stream_seed(int(dp["noise_seed"]), _CENTRAL_NOISE),
                offset=cfg.round,
            )
        else:
            total = torch.stack(rows).sum(0)
        mean_vec = total / s
        m = self.mask(mean_vec.numel(), cfg.round)
        if m is not None:
            mean_vec = mean_vec * m
        mean = unflatten(mean_vec, state["weights"], names)
        mean = self.post_process(state, mean, cfg)
        state["weights"] = self.apply_delta(state["weights"], mean, self.server_lr)
        if self.send_direction:
            scale = 1.0 / (cfg.local_steps * cfg.lr)
            state["direction"] = {k: mean[k] * scale for k in state["direction"]}
        dp["rounds"] = int(dp["rounds"]) + 1
        if self.diagnostics:  # NaN after an empty round
            norms = [float(msg["residual_norm"]) for msg in messages]
            count = len(norms) or float("nan")
            dp["mean_residual_norm"] = sum(norms) / count
            dp["clipped_fraction"] = sum(v > self.clip_norm for v in norms) / count
        return state

    def post_process(self, state, mean: dict[str, torch.Tensor], cfg: ServerConfig):
        """Post-processing of the noised mean (no privacy cost): identity here."""
        return mean


class DPFedSAM(DPFedAvg):
    """DP-FedAvg with SAM local steps (Shi et al., 2023): the gradient at x + ρ·g/‖g‖."""

    name = "dp_fedsam"

    def __init__(self, *args, rho: float = 0.05, **kwargs):
        super().__init__(*args, **kwargs)
        if not (isinstance(rho, int | float) and rho >= 0):
            raise ValueError(f"rho must be >= 0, got {rho!r}")
        self.rho = float(rho)

    def train_locally(self, model, payload, client, cfg):
        opt = self.sgd(model, cfg.lr)
        return local_train(model, client, cfg, opt.step, sam_rho=self.rho)


class DPFedSMP(DPFedAvg):
    """DP-FedAvg on a public random fraction ``keep`` of the coordinates each round (FedSMP-randk):
    every client zeroes the others, the noise lives on the kept coordinates only (less noise norm,
    same sensitivity). The mask comes from (mask_seed, round): public, the same for every client, and
    independent of the server's secret noise seed."""

    name = "dp_fedsmp"

    def __init__(self, *args, keep: float = 0.6, mask_seed: int = 0, **kwargs):
        super().__init__(*args, **kwargs)
        _check_unit(keep=keep)
        if keep == 0:
            raise ValueError("keep must be > 0")
        if isinstance(mask_seed, bool) or not isinstance(mask_seed, int) or mask_seed < 0:
            raise ValueError(f"mask_seed must be an integer >= 0, got {mask_seed!r}")
        self.keep = float(keep)
        self.mask_seed = mask_seed

    def mask(self, numel, round_):
        return public_mask(numel, self.keep, stream_seed(self.mask_seed, _MASK, round_))


class LaplacianSmoothing:
    """Mixin: the server smooths the noised mean update, per parameter tensor (flattened), by
    (I + σ_ls·L)⁻¹ (pyfed.dp.mechanism.laplacian_smooth)."""

    ls_sigma: float

    def smooth(self, mean):
        return {
            k: (laplacian_smooth(v, self.ls_sigma) if k in set(param_names(mean)) else v)
            for k, v in mean.items()
        }


class DPFedAvgLS(LaplacianSmoothing, DPFedAvg):
    name = "dp_fedavg_ls"

    def __init__(self, *args, ls_sigma: float = 1.0, **kwargs):
        super().__init__(*args, **kwargs)
        if not (isinstance(ls_sigma, int | float) and ls_sigma >= 0):
            raise ValueError(f"ls_sigma must be >= 0, got {ls_sigma!r}")
        self.ls_sigma = float(ls_sigma)

    def post_process(self, state, mean, cfg):
        return self.smooth(mean)
