r"""Privacy accounting for client-level DP: the subsampled Gaussian mechanism composed over rounds.

One round releases ``Σ_{i∈S_t} clip_C(R_i) + N(0, σ²C²·I)`` where S_t is a set of S clients drawn
from N. Its privacy loss over T rounds, as (ε, δ)-DP, comes from a trusted library — we never write
the RDP formulas ourselves:

* ``sampling="without_replacement"`` (the pyfed simulator's default ``FedConfig(sampling="fixed")``: S
  of N drawn uniformly, S fixed).
  The neighbouring relation that fits a fixed S is *replace one client* (N and S are public); replacing
  one client's clipped residual moves the sum by at most ‖u − u'‖ ≤ 2C, so the Gaussian's noise
  multiplier relative to that sensitivity is z = σ/2. Accounted with dp-accounting's RDP of sampling
  without replacement (Wang, Balle & Kasiviswanathan, AISTATS 2019, Thm 27), q = S/N::

      RDP_T(α) = T · RDP_wor(α; q, z = σ/2);     ε = min_α RDP_T(α) + log((α−1)/α) − (log δ + log α)/(α−1)

  This is the accountant the DP algorithms use under fixed sampling (``RoundAccountant``). It is
  pessimistic next to the Poisson numbers below (doubled sensitivity, and an upper bound at fractional
  orders), but it is the claim that holds for that sampler.
* ``sampling="poisson"`` (each client joins each round independently with probability q; add/remove
  one client, sensitivity C, z = σ): ``method="rdp"`` (dp-accounting), ``"rdp-opacus"``, ``"pld"``
  (dp-accounting) or ``"prv"`` (opacus). Valid only for a runtime that samples Poisson: the pyfed
  simulator with ``FedConfig(sampling="poisson")``. The DP algorithms then release
  ``(Σ_{i∈S_t} clip_C(R_i) + N(0, σ²C²·I)) / (qN)`` — divided by the EXPECTED count qN, never the
  realized |S_t| (which would depend on who took part) — and ``RoundAccountant(sampling="poisson")``
  accounts it with dp-accounting's RDP of the Poisson-subsampled Gaussian::

      RDP_T(α) = T · RDP_poisson(α; q, z = σ)

Why dp-accounting's RDP says 15.90 where opacus' says 15.49 (σ=0.8, q=0.1, T=300, δ=2e-3, Poisson):
not the grid. Both libraries agree exactly at integer orders (ε at α=2 is 15.9325 in both), and both
use the same RDP→(ε, δ) conversion. At fractional orders dp-accounting 0.6 sums the absolute values
of the binomial series of A_α (``_compute_log_a_frac``), an upper bound: at α=1.8 it gives
RDP = 9.855 against opacus' 9.271, and numerical integration of E_{μ0}[(μ/μ0)^α] gives 9.271
(tests/pyfed/test_dp_accounting.py checks this). Its series also fails to converge for α ≤ 1.6, which it
drops. So dp-accounting's optimum is α=1.9 (15.898) and opacus' is α=1.8 (15.494); on the same integer
grid the two agree to 1e-9. Both bounds are valid; opacus' is tighter here.
"""

from __future__ import annotations

import functools
import logging
import math
from collections.abc import Sequence

__all__ = [
    "RoundAccountant",
    "epsilon",
    "gaussian_rdp_orders",
    "noise_multiplier_for",
    "privacy_args",
]

# dp-accounting's default grid (dp_accounting.rdp.DEFAULT_RDP_ORDERS), written out so the accountant's
# checkpointed meaning does not drift with the library; fractional orders are an interpolated upper
# bound for sampling without replacement (WBK19, Corollary 10).
gaussian_rdp_orders: tuple[float, ...] = tuple(
    [1 + x / 10.0 for x in range(1, 100)] + list(range(11, 64)) + [128, 256, 512, 1024]
)

SAMPLINGS = ("without_replacement", "poisson")
METHODS = ("rdp", "rdp-opacus", "pld", "prv")


def _check(noise_multiplier: float, rounds: int, delta: float, q: float) -> None:
    if not (isinstance(noise_multiplier, int | float) and math.isfinite(noise_multiplier)) or (
        noise_multiplier <= 0
    ):
        raise ValueError(f"noise_multiplier must be a positive finite number, got {noise_multiplier!r}")
    if isinstance(rounds, bool) or not isinstance(rounds, int) or rounds < 0:
        raise ValueError(f"rounds must be an integer >= 0, got {rounds!r}")
    if not (isinstance(delta, int | float) and 0 < delta < 1):
        raise ValueError(f"delta must be in (0, 1), got {delta!r}")
    if not 0 < q <= 1:
        raise ValueError(f"the sampling rate q = S/N must be in (0, 1], got {q!r}")


def _sizes(sample_size: int, num_clients: int) -> float:
    for name, v in (("sample_size", sample_size), ("num_clients", num_clients)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"{name} must be an integer >= 1, got {v!r}")
    if sample_size > num_clients:
        raise ValueError(f"sample_size must be <= num_clients={num_clients}, got {sample_size}")
    return sample_size / num_clients


def _quiet_absl():
    # dp-accounting logs a warning per fractional order its series cannot sum (it drops them):
    # expected at small σ, and noise in a training log.
    logging.getLogger("absl").setLevel(logging.ERROR)


@functools.lru_cache(maxsize=64)
def _wor_rdp_one_round(noise_multiplier: float, sample_size: int, num_clients: int) -> tuple[float, ...]:
    """RDP of ONE round at ``gaussian_rdp_orders`` (dp-accounting, replace-one, z = σ/2). RDP composes
    additively, so T rounds are T times this vector (tested against dp-accounting's own composition)."""
    import dp_accounting as dpa
    from dp_accounting.rdp import RdpAccountant

    _quiet_absl()
    acc = RdpAccountant(gaussian_rdp_orders, dpa.NeighboringRelation.REPLACE_ONE)
    event = dpa.GaussianDpEvent(noise_multiplier / 2.0)
    if sample_size < num_clients:
        event = dpa.SampledWithoutReplacementDpEvent(num_clients, sample_size, event)
    acc.compose(event)
    return tuple(float(r) for r in acc._rdp)  # the library keeps the composed RDP vector here


@functools.lru_cache(maxsize=64)
def _poisson_rdp_one_round(noise_multiplier: float, q: float) -> tuple[float, ...]:
    """RDP of ONE round at ``gaussian_rdp_orders`` (dp-accounting, Poisson rate q, add/remove, z = σ)."""
    import dp_accounting as dpa
    from dp_accounting.rdp import RdpAccountant

    _quiet_absl()
    acc = RdpAccountant(gaussian_rdp_orders)
    acc.compose(dpa.PoissonSampledDpEvent(q, dpa.GaussianDpEvent(noise_multiplier)))
    return tuple(float(r) for r in acc._rdp)


def _eps_from_rdp(rdp: Sequence[float], delta: float) -> float:
    from dp_accounting.rdp import compute_epsilon

    return float(compute_epsilon(gaussian_rdp_orders, rdp, delta)[0])


def epsilon(
    noise_multiplier: float,
    rounds: int,
    delta: float,
    *,
    sample_size: int | None = None,
    num_clients: int | None = None,
    sampling_rate: float | None = None,
    sampling: str = "without_replacement",
    method: str = "rdp",
) -> float:
    """ε at ``delta`` after ``rounds`` rounds of the subsampled Gaussian with noise multiplier σ.

    ``sampling="without_replacement"`` takes ``sample_size`` S and ``num_clients`` N (replace-one,
    z = σ/2, dp-accounting RDP; only ``method="rdp"``). ``sampling="poisson"`` takes ``sampling_rate`` q
    (or S and N) and ``method`` in "rdp" (dp-accounting), "rdp-opacus", "pld" (dp-accounting), "prv"
    (opacus). 0 rounds → ε = 0.
    """
    if sampling not in SAMPLINGS:
        raise ValueError(f"sampling must be one of {SAMPLINGS}, got {sampling!r}")
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    if sampling == "without_replacement":
        if sample_size is None or num_clients is None:
            raise ValueError("sampling='without_replacement' needs sample_size and num_clients")
        q = _sizes(sample_size, num_clients)
        _check(noise_multiplier, rounds, delta, q)
        if method != "rdp":
            raise ValueError(
                f"sampling without replacement is accounted by method='rdp' only, got {method!r}"
            )
        if rounds == 0:
            return 0.0
        one = _wor_rdp_one_round(float(noise_multiplier), sample_size, num_clients)
        return _eps_from_rdp([rounds * r for r in one], delta)
    q = (
        sampling_rate
        if sampling_rate is not None
        else (
            _sizes(sample_size, num_clients) if sample_size is not None and num_clients is not None else None
        )
    )
    if q is None:
        raise ValueError("sampling='poisson' needs sampling_rate (or sample_size and num_clients)")
    _check(noise_multiplier, rounds, delta, q)
    if rounds == 0:
        return 0.0
    return _poisson_epsilon(float(noise_multiplier), float(q), rounds, float(delta), method)


def _poisson_epsilon(sigma: float, q: float, rounds: int, delta: float, method: str) -> float:
    if method in ("rdp", "pld"):
        import dp_accounting as dpa
        from dp_accounting.pld import PLDAccountant
        from dp_accounting.rdp import RdpAccountant

        _quiet_absl()
        event = dpa.SelfComposedDpEvent(dpa.PoissonSampledDpEvent(q, dpa.GaussianDpEvent(sigma)), rounds)
        acc = RdpAccountant(gaussian_rdp_orders) if method == "rdp" else PLDAccountant()
        return float(acc.compose(event).get_epsilon(delta))
    from opacus.accountants import PRVAccountant, RDPAccountant

    acc = RDPAccountant() if method == "rdp-opacus" else PRVAccountant()
    acc.history = [(sigma, q, rounds)]
    return float(acc.get_epsilon(delta=delta))


def noise_multiplier_for(
    target_epsilon: float,
    rounds: int,
    delta: float,
    *,
    sample_size: int,
    num_clients: int,
    sampling: str = "without_replacement",
    tolerance: float = 1e-3,
) -> float:
    """The smallest σ (to relative ``tolerance``, rounded up) whose ε after ``rounds`` rounds is <=
    ``target_epsilon`` at ``delta`` (bisection on log σ; ε falls as σ grows). ``sampling``: fixed-size
    without replacement (replace-one) or "poisson" at q = S/N (add/remove), both dp-accounting RDP — the
    accountant the DP algorithms use for that sampling."""
    if sampling not in SAMPLINGS:
        raise ValueError(f"sampling must be one of {SAMPLINGS}, got {sampling!r}")
    if not (isinstance(target_epsilon, int | float) and math.isfinite(target_epsilon) and target_epsilon > 0):
        raise ValueError(f"target_epsilon must be a positive finite number, got {target_epsilon!r}")
    if isinstance(rounds, bool) or not isinstance(rounds, int) or rounds < 1:
        raise ValueError(f"rounds must be an integer >= 1, got {rounds!r}")

    def eps(s: float) -> float:
        return RoundAccountant(s, delta, sample_size, num_clients, sampling=sampling).epsilon(rounds)

    lo, hi = 0.05, 1.0
    while eps(hi) > target_epsilon:
        lo, hi = hi, hi * 2
        if hi > 1e4:
            raise ValueError(f"no noise multiplier <= 1e4 reaches ε={target_epsilon} in {rounds} rounds")
    if eps(lo) <= target_epsilon:
        return lo
    while hi / lo > 1 + tolerance:
        mid = math.sqrt(lo * hi)
        lo, hi = (mid, hi) if eps(mid) > target_epsilon else (lo, mid)
    return hi


class RoundAccountant:
    """ε after t rounds of one fixed mechanism (σ, δ, q = S/N, and the sampling: S of N without
    replacement under replace-one, or Poisson at rate q under add/remove); its only state is t, which
    the DP algorithms keep in the server state (so it is checkpointed). Both use dp-accounting's RDP:
    one round's RDP vector is computed once (cached) and scaled by t."""

    def __init__(
        self,
        noise_multiplier: float,
        delta: float,
        sample_size: int,
        num_clients: int,
        sampling: str = "without_replacement",
    ):
        if sampling not in SAMPLINGS:
            raise ValueError(f"sampling must be one of {SAMPLINGS}, got {sampling!r}")
        q = _sizes(sample_size, num_clients)
        _check(noise_multiplier, 0, delta, q)
        self.noise_multiplier, self.delta = float(noise_multiplier), float(delta)
        self.sample_size, self.num_clients = sample_size, num_clients
        self.sampling = sampling

    def epsilon(self, rounds: int) -> float:
        if self.sampling == "without_replacement":
            return epsilon(
                self.noise_multiplier,
                rounds,
                self.delta,
                sample_size=self.sample_size,
                num_clients=self.num_clients,
            )
        _check(self.noise_multiplier, rounds, self.delta, self.sample_size / self.num_clients)
        if rounds == 0:
            return 0.0
        one = _poisson_rdp_one_round(self.noise_multiplier, self.sample_size / self.num_clients)
        return _eps_from_rdp([rounds * r for r in one], self.delta)


def privacy_args(
    algo_args: dict,
    *,
    target_epsilon: float | None,
    delta: float | None,
    rounds: int,
    num_clients: int,
    sample_size: int,
    sampling: str = "fixed",
) -> dict:
    """A DP algorithm's hyperparameters for a run of ``rounds`` rounds, S = ``sample_size`` of
    N = ``num_clients`` per round (``sampling`` the runtime's: "fixed" or "poisson" at q = S/N):
    ``delta`` and, with a ``target_epsilon``, the stopping budget and — unless ``algo_args`` already
    fixes ``noise_multiplier`` — the σ that spends it in exactly ``rounds`` rounds under that sampling's
    accountant. Also fixes num_clients/sample_size/sampling so the accountant knows q and the neighbouring
    relation before the first round."""
    if sampling not in ("fixed", "poisson"):
        raise ValueError(f"sampling must be 'fixed' or 'poisson', got {sampling!r}")
    out = dict(algo_args)
    if delta is not None:
        out["delta"] = delta
    out.setdefault("delta", 1e-3)
    out["num_clients"], out["sample_size"], out["sampling"] = num_clients, sample_size, sampling
    if target_epsilon is not None:
        out["target_epsilon"] = target_epsilon
        if "noise_multiplier" not in out:
            out["noise_multiplier"] = noise_multiplier_for(
                target_epsilon,
                rounds,
                out["delta"],
                sample_size=sample_size,
                num_clients=num_clients,
                sampling="poisson" if sampling == "poisson" else "without_replacement",
            )
    return out
