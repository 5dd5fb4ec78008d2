"""pyfed.dp.accounting against dp-accounting and opacus, each library with the settings it is right for,
and against an independent numerical integration at a fractional order."""

import logging
import math

import dp_accounting as dpa
import numpy as np
import pytest
from dp_accounting.rdp import RdpAccountant, compute_epsilon
from opacus.accountants.analysis import rdp as opacus_rdp
from scipy import integrate, stats

from pyfed.dp.accounting import (
    RoundAccountant,
    epsilon,
    gaussian_rdp_orders,
    noise_multiplier_for,
    privacy_args,
)

SIGMA, Q, T, DELTA = 0.8, 0.1, 300, 2e-3
logging.getLogger("absl").setLevel(logging.ERROR)


@pytest.mark.parametrize(
    ("method", "expected", "tol"),
    [
        ("rdp", 15.898, 0.002),  # the 15.90 (dp-accounting 0.6, its default grid: optimum α = 1.9)
        ("rdp-opacus", 15.494, 0.002),  # opacus' grid and fractional-order series (optimum α = 1.8)
        ("pld", 13.459, 0.002),  # the 13.46 (dp-accounting PLD)
        ("prv", 13.470, 0.01),  # opacus PRV: within its own error bound of the PLD number
    ],
)
def test_poisson_epsilon_matches_each_library(method, expected, tol):
    assert epsilon(SIGMA, T, DELTA, sampling_rate=Q, sampling="poisson", method=method) == pytest.approx(
        expected, abs=tol
    )


@pytest.mark.filterwarnings("ignore:Optimal order is the smallest alpha")
def test_libraries_agree_exactly_on_integer_orders():
    """The 15.90 vs 15.49 gap is not the conversion nor the composition: on integer orders (where both
    use the exact binomial expansion) the two RDP curves and ε are identical."""
    orders = list(range(2, 64))
    ours = RdpAccountant(orders)
    ours.compose(dpa.SelfComposedDpEvent(dpa.PoissonSampledDpEvent(Q, dpa.GaussianDpEvent(SIGMA)), T))
    theirs = opacus_rdp.compute_rdp(q=Q, noise_multiplier=SIGMA, steps=T, orders=orders)
    np.testing.assert_allclose(ours._rdp, theirs, rtol=1e-9)
    eps_a = ours.get_epsilon(DELTA)
    eps_b, _ = opacus_rdp.get_privacy_spent(orders=orders, rdp=theirs, delta=DELTA)
    assert eps_a == pytest.approx(eps_b, rel=1e-9)
    assert eps_a == pytest.approx(15.9325, abs=1e-3)  # optimum α = 2 on this grid


def _rdp_by_quadrature(q, sigma, alpha):
    """D_α(μ || μ0), μ = (1−q)·N(0, σ²) + q·N(1, σ²), μ0 = N(0, σ²): log E_μ0[(μ/μ0)^α] / (α−1)."""

    def f(z):
        return stats.norm.pdf(z, 0, sigma) * ((1 - q) + q * np.exp((2 * z - 1) / (2 * sigma**2))) ** alpha

    value, _ = integrate.quad(f, -40, 40, limit=500, points=[0.0, 0.5, 1.0])
    return math.log(value) / (alpha - 1)


def test_fractional_order_opacus_is_exact_dp_accounting_is_an_upper_bound():
    exact = T * _rdp_by_quadrature(Q, SIGMA, 1.8)
    assert exact == pytest.approx(9.2713, abs=1e-3)
    o = opacus_rdp.compute_rdp(q=Q, noise_multiplier=SIGMA, steps=T, orders=[1.8])[0]
    assert o == pytest.approx(exact, rel=1e-6)
    a = RdpAccountant([1.8])
    a.compose(dpa.SelfComposedDpEvent(dpa.PoissonSampledDpEvent(Q, dpa.GaussianDpEvent(SIGMA)), T))
    assert a._rdp[0] > exact * 1.05  # 9.855: still a valid bound, only looser


def test_without_replacement_equals_dp_accounting_own_composition():
    """Our per-round vector times T (the cache) equals dp-accounting composing T rounds itself, with the
    replace-one relation and z = σ/2 (replacing one client moves the clipped sum by up to 2C)."""
    acc = RdpAccountant(gaussian_rdp_orders, dpa.NeighboringRelation.REPLACE_ONE)
    event = dpa.SampledWithoutReplacementDpEvent(100, 10, dpa.GaussianDpEvent(SIGMA / 2))
    acc.compose(dpa.SelfComposedDpEvent(event, T))
    ours = epsilon(SIGMA, T, DELTA, sample_size=10, num_clients=100)
    assert ours == pytest.approx(acc.get_epsilon(DELTA), rel=1e-9)
    assert ours > epsilon(SIGMA, T, DELTA, sampling_rate=Q, sampling="poisson")  # the honest price


def test_full_participation_is_the_plain_gaussian_in_closed_form():
    """S = N: RDP_T(α) = T·α/(2z²), z = σ/2; ε by the conversion written out here."""
    sigma, rounds, delta = 3.0, 7, 1e-5
    z = sigma / 2
    orders = np.array(gaussian_rdp_orders)
    rdp = rounds * orders / (2 * z * z)
    eps = np.min(rdp + np.log1p(-1 / orders) - np.log(delta * orders) / (orders - 1))
    assert epsilon(sigma, rounds, delta, sample_size=5, num_clients=5) == pytest.approx(eps, rel=1e-9)
    assert eps == pytest.approx(compute_epsilon(orders, rdp, delta)[0], rel=1e-9)


def test_epsilon_grows_with_rounds_and_falls_with_noise():
    e = [epsilon(1.5, r, 1e-3, sample_size=5, num_clients=50) for r in (0, 1, 10, 100)]
    assert e[0] == 0 and e[1] < e[2] < e[3]
    assert epsilon(3.0, 10, 1e-3, sample_size=5, num_clients=50) < e[2]
    acc = RoundAccountant(1.5, 1e-3, 5, 50)
    assert acc.epsilon(10) == e[2]


def test_noise_multiplier_for_spends_the_budget():
    s = noise_multiplier_for(4.0, 30, 1e-3, sample_size=10, num_clients=50, tolerance=1e-3)
    assert epsilon(s, 30, 1e-3, sample_size=10, num_clients=50) <= 4.0
    assert epsilon(s / 1.002, 30, 1e-3, sample_size=10, num_clients=50) > 4.0


def test_privacy_args_calibrates_unless_sigma_given():
    a = privacy_args({}, target_epsilon=8.0, delta=1e-3, rounds=20, num_clients=50, sample_size=10)
    assert a["num_clients"] == 50 and a["sample_size"] == 10 and a["target_epsilon"] == 8.0
    assert epsilon(a["noise_multiplier"], 20, 1e-3, sample_size=10, num_clients=50) <= 8.0
    b = privacy_args(
        {"noise_multiplier": 2.0}, target_epsilon=8.0, delta=None, rounds=20, num_clients=50, sample_size=10
    )
    assert b["noise_multiplier"] == 2.0 and b["delta"] == 1e-3


def test_errors_name_the_argument():
    with pytest.raises(ValueError, match="delta"):
        epsilon(1.0, 3, 0.0, sample_size=1, num_clients=10)
    with pytest.raises(ValueError, match="sample_size"):
        epsilon(1.0, 3, 1e-3, sample_size=11, num_clients=10)
    with pytest.raises(ValueError, match="method='rdp' only"):
        epsilon(1.0, 3, 1e-3, sample_size=1, num_clients=10, method="pld")
    with pytest.raises(ValueError, match="noise_multiplier"):
        epsilon(-1.0, 3, 1e-3, sampling_rate=0.1, sampling="poisson")
    with pytest.raises(ValueError, match="sampling_rate"):
        epsilon(1.0, 3, 1e-3, sampling="poisson")
    with pytest.raises(ValueError, match="target_epsilon"):
        noise_multiplier_for(0.0, 3, 1e-3, sample_size=1, num_clients=10)
