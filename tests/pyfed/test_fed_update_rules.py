"""Every pyfed update rule against a hand computation on a small quadratic, in float64.

Two clients with f_i(x) = ½·Σ_j a_j·(x_j − b_ij)², a = (1, 2), b_1 = (0, 0), b_2 = (2, 1), start
x⁰ = (1, −1), η = 0.1, K = 2 local steps, full participation (S = N = 2), two rounds. FedAvg and
SCAFFOLD are checked against numbers worked out by hand (below); the others against a numpy
implementation of the formula in each algorithm's docstring, written here independently of pyfed.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from pyfed.algorithms import Client, LocalConfig, ServerConfig, make_algorithm

A = np.array([1.0, 2.0])
B = [np.array([0.0, 0.0]), np.array([2.0, 1.0])]
X0 = np.array([1.0, -1.0])
ETA, K = 0.1, 2


class Quadratic(nn.Module):
    def __init__(self):
        super().__init__()
        self.x = nn.Parameter(torch.tensor(X0, dtype=torch.float64))

    def forward(self, target: torch.Tensor) -> torch.Tensor:
        return 0.5 * (torch.tensor(A) * (self.x - target) ** 2).sum()


def _client(i: int) -> Client:
    target = torch.tensor(B[i])

    def batches():
        while True:
            yield target, target

    return Client(id=i, batches=batches, num_examples=10, loss_fn=lambda out, _y: out)


def run_rounds(algo_name: str, rounds: int = 2, model: nn.Module | None = None, clients=None, **hp):
    algo = make_algorithm(algo_name, **hp)
    model = model or Quadratic()
    clients = clients or [_client(0), _client(1)]
    state = algo.server_init(model)
    for r in range(rounds):
        payload = algo.client_payload(state)
        msgs = [
            algo.client_update(model, payload, c, LocalConfig(lr=ETA, local_steps=K, round=r))
            for c in clients
        ]
        state = algo.server_aggregate(
            state, msgs, ServerConfig(lr=ETA, local_steps=K, round=r, num_clients=len(clients))
        )
    return state


def grad(x, i):
    return A * (x - B[i])


def final_x(state):
    return state["weights"]["x"].numpy()


# ---- SGD family: hand-computed numbers ----------------------------------------------------------


def test_fedavg_one_round_by_hand():
    # Client 1: g = (1, −2) → x = (0.9, −0.8); g = (0.9, −1.6) → x = (0.81, −0.64); Δ_1 = (0.19, −0.36).
    # Client 2: g = (−1, −4) → x = (1.1, −0.6); g = (−0.9, −3.2) → x = (1.19, −0.28); Δ_2 = (−0.19, −0.72).
    # Δ̄ = (0, −0.54);  x¹ = x⁰ − Δ̄ = (1, −0.46).
    np.testing.assert_allclose(final_x(run_rounds("fedavg", rounds=1)), [1.0, -0.46], atol=1e-12)


def test_scaffold_two_rounds_by_hand():
    # Round 1 as FedAvg (c = c_i = 0): x¹ = (1, −0.46); c_i⁺ = Δ_i/(Kη) = 5·Δ_i:
    # c_1 = (0.95, −1.8), c_2 = (−0.95, −3.6), c = 0 + (2/2)·mean = (0, −2.7).
    # Round 2, coordinate 2: client 1's gradient 2y − (−1.8) + (−2.7) = 2y − 0.9:
    # y: −0.46 → −0.278 → −0.1324; client 2's 2(y − 1) + 3.6 − 2.7 = 2y − 1.1: −0.46 → −0.258 → −0.0964;
    # x² = mean = −0.1144 (coordinate 1 stays 1, the clients' drifts cancel). c² = (0, −1.728).
    state = run_rounds("scaffold")
    np.testing.assert_allclose(final_x(state), [1.0, -0.1144], atol=1e-12)
    np.testing.assert_allclose(state["c"]["x"].numpy(), [0.0, -1.728], atol=1e-12)


# ---- numpy references of the docstring formulas --------------------------------------------------


def ref_sgd_family(rule: str, rounds: int = 2, mu=0.0, alpha=1.0, rho=0.0, beta=0.9, server=None):
    x, direction, m_srv, v_srv = X0.copy(), np.zeros(2), np.zeros(2), np.zeros(2)
    for _ in range(rounds):
        deltas = []
        for i in range(2):
            y = x.copy()
            for _ in range(K):
                g = grad(y, i) + mu * (y - x)
                if rho > 0:
                    yy = y + rho * g / np.linalg.norm(g)
                    g = grad(yy, i) + mu * (yy - x)
                g = alpha * g + (1 - alpha) * direction
                y = y - ETA * g
            deltas.append(x - y)
        d = np.mean(deltas, 0)
        if server == "avgm":
            m_srv = beta * m_srv + d
            x = x - m_srv
        elif server == "adam":  # β1 = 0.9, β2 = 0.99, τ = 1e-3, η_g = 0.01
            m_srv = 0.9 * m_srv + 0.1 * d
            v_srv = 0.99 * v_srv + 0.01 * d**2
            x = x - 0.01 * m_srv / (np.sqrt(v_srv) + 1e-3)
        else:
            x = x - d
        direction = d / (K * ETA)
    return x


@pytest.mark.parametrize(
    "name,hp,ref",
    [
        ("fedavg", {}, {}),
        ("fedprox", {"mu": 0.5}, {"mu": 0.5}),
        ("fedcm", {"alpha": 0.3}, {"alpha": 0.3}),
        ("fedsam", {"rho": 0.05}, {"rho": 0.05}),
        ("mofedsam", {"alpha": 0.3, "rho": 0.05}, {"alpha": 0.3, "rho": 0.05}),
        ("fedavgm", {"server_momentum": 0.9}, {"server": "avgm"}),
        ("fedadam", {}, {"server": "adam"}),
    ],
)
def test_sgd_family_matches_formula(name, hp, ref):
    np.testing.assert_allclose(
        final_x(run_rounds(name, **hp)), ref_sgd_family(name, **ref), rtol=0, atol=1e-12
    )


def test_fedcm_differs_from_fedavg_in_round_two():
    # A test that could not fail if the global direction were ignored.
    assert np.abs(ref_sgd_family("fedcm", alpha=0.3) - ref_sgd_family("fedavg")).max() > 1e-3
    assert np.abs(final_x(run_rounds("fedcm", alpha=0.3)) - final_x(run_rounds("fedavg"))).max() > 1e-3


def test_fedprox_proximal_term_has_the_right_gradient():
    algo = make_algorithm("fedprox", mu=0.7)
    model = Quadratic()
    x0 = {"x": torch.tensor([0.5, 0.25], dtype=torch.float64)}
    term = algo.proximal_term(model, x0)()
    term.backward()
    # ∇ (μ/2)‖x − x⁰‖² = μ(x − x⁰) = 0.7·((1, −1) − (0.5, 0.25)) = (0.35, −0.875): nonzero, not an .item()
    np.testing.assert_allclose(model.x.grad.numpy(), [0.35, -0.875], atol=1e-15)


# ---- adaptive family ------------------------------------------------------------------------------


def ref_adamw_family(
    rounds=2,
    alpha=0.5,
    wd=0.01,
    b1=0.9,
    b2=0.999,
    eps=1e-8,
    v_mode="per_tensor",
    aggregate_v=True,
    send_direction=True,
):
    x, direction, vbar, t = X0.copy(), np.zeros(2), np.zeros(2), 0
    for _ in range(rounds):
        deltas, vs = [], []
        for i in range(2):
            y, m = x.copy(), np.zeros(2)
            v = vbar.copy() if aggregate_v else np.zeros(2)
            t0 = t if aggregate_v else 0
            for k in range(1, K + 1):
                g = grad(y, i)
                m = b1 * m + (1 - b1) * g
                v = b2 * v + (1 - b2) * g * g
                tt = t0 + k
                mh, vh = m / (1 - b1**tt), v / (1 - b2**tt)
                adam = mh / (np.sqrt(vh) + eps)
                corr = direction if send_direction else 0.0
                y = y - ETA * wd * y - ETA * ((1 - alpha) * adam + alpha * corr)
            deltas.append(x - y)
            vs.append(np.full(2, v.mean()) if v_mode == "per_tensor" else v)
        d = np.mean(deltas, 0)
        x = x - d
        direction = d / (K * ETA)
        vbar = np.mean(vs, 0)
        t += K
    return x


@pytest.mark.parametrize("v_mode", ["per_tensor", "full"])
def test_fedadamw_matches_formula(v_mode):
    got = final_x(run_rounds("fedadamw", alpha=0.5, v_mode=v_mode))
    np.testing.assert_allclose(got, ref_adamw_family(alpha=0.5, v_mode=v_mode), rtol=0, atol=1e-12)


def test_fedadamw_round_two_depends_on_aggregated_v_and_direction():
    base = ref_adamw_family(alpha=0.5)
    assert np.abs(base - ref_adamw_family(alpha=0.5, aggregate_v=False)).max() > 1e-4
    assert np.abs(base - ref_adamw_family(alpha=0.0)).max() > 1e-4


def test_local_adamw_and_fedlada_match_formula():
    np.testing.assert_allclose(
        final_x(run_rounds("local_adamw")),
        ref_adamw_family(alpha=0.0, aggregate_v=False, send_direction=False),
        atol=1e-12,
    )
    np.testing.assert_allclose(
        final_x(run_rounds("fedlada", alpha=0.4)), ref_adamw_family(alpha=0.4, aggregate_v=False), atol=1e-12
    )


# ---- Muon family on a matrix quadratic ------------------------------------------------------------

WA = np.array([[1.0, 2.0, 0.5], [1.5, 1.0, 3.0]])
WT = [np.array([[0.0, 1.0, -1.0], [2.0, 0.0, 1.0]]), np.array([[1.0, -2.0, 0.5], [0.0, 1.0, -1.0]])]
W0 = np.array([[0.5, -0.5, 1.0], [-1.0, 0.25, 0.0]])
BT = [np.array([0.5, -0.5]), np.array([-1.0, 2.0])]
B0 = np.array([0.1, 0.2])


class MatrixQuadratic(nn.Module):
    """f_i = ½Σ WA⊙(W − WT_i)² + ½‖bias − BT_i‖²: a 2×3 Muon weight and a bias that gets AdamW."""

    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.tensor(W0))
        self.bias = nn.Parameter(torch.tensor(B0))

    def forward(self, i: torch.Tensor) -> torch.Tensor:
        k = int(i)
        return (
            0.5 * (torch.tensor(WA) * (self.w - torch.tensor(WT[k])) ** 2).sum()
            + 0.5 * ((self.bias - torch.tensor(BT[k])) ** 2).sum()
        )


def _mclient(i: int) -> Client:
    def batches():
        while True:
            yield torch.tensor(i), torch.tensor(i)

    return Client(id=i, batches=batches, num_examples=10, loss_fn=lambda out, _y: out)


def ns5(g):
    a, b, c = 3.4445, -4.7750, 2.0315
    x = g / (np.linalg.norm(g) + 1e-7)
    tr = x.shape[0] > x.shape[1]
    if tr:
        x = x.T
    for _ in range(5):
        s = x @ x.T
        x = a * x + (b * s + c * s @ s) @ x
    return x.T if tr else x


def ref_muon_family(rounds=2, alpha=0.5, mu=0.98, wd=0.01, ratio=0.05, aggregate=True):
    w, bias = W0.copy(), B0.copy()
    dir_w, dir_b, mbar = np.zeros_like(w), np.zeros_like(bias), np.zeros_like(w)
    for _ in range(rounds):
        dws, dbs, ms = [], [], []
        for i in range(2):
            y, yb = w.copy(), bias.copy()
            M = mbar.copy() if aggregate else np.zeros_like(w)
            m, v = np.zeros(2), np.zeros(2)
            for k in range(1, K + 1):
                g = WA * (y - WT[i])
                gb = yb - BT[i]
                M = mu * M + (1 - mu) * g
                U = (1 - mu) * g + mu * M
                scale = np.sqrt(max(1.0, 2 / 3))
                y = y - ETA * wd * y - ETA * (1 - alpha) * scale * ns5(U)
                # AdamW group: lr_a = η·ratio·(1 − α), decay λ/(1 − α) → η·ratio·λ; betas (0.9, 0.95)
                ea = ETA * ratio
                m = 0.9 * m + 0.1 * gb
                v = 0.95 * v + 0.05 * gb * gb
                adam = (m / (1 - 0.9**k)) / (np.sqrt(v) / np.sqrt(1 - 0.95**k) + 1e-8)
                yb = yb - ea * wd * yb - ea * (1 - alpha) * adam
                y = y - ETA * alpha * dir_w
                yb = yb - ETA * alpha * dir_b
            dws.append(w - y)
            dbs.append(bias - yb)
            ms.append(M)
        dw, db = np.mean(dws, 0), np.mean(dbs, 0)
        w, bias = w - dw, bias - db
        dir_w, dir_b = dw / (K * ETA), db / (K * ETA)
        mbar = np.mean(ms, 0)
    return w, bias


@pytest.mark.parametrize(
    "name,hp,ref",
    [
        ("fedmuon", {"alpha": 0.5}, {"alpha": 0.5}),
        ("local_muon", {}, {"alpha": 0.0, "aggregate": False}),
    ],
)
def test_muon_family_matches_formula(name, hp, ref):
    state = run_rounds(name, model=MatrixQuadratic(), clients=[_mclient(0), _mclient(1)], **hp)
    w, bias = ref_muon_family(**ref)
    np.testing.assert_allclose(state["weights"]["w"].numpy(), w, atol=1e-10)
    np.testing.assert_allclose(state["weights"]["bias"].numpy(), bias, atol=1e-10)
    if name == "fedmuon":
        assert set(state["momentum"]) == {"w"}  # only the Muon weight's momentum is aggregated


def test_fedmuon_round_two_depends_on_momentum_and_alignment():
    w, _ = ref_muon_family(alpha=0.5)
    assert np.abs(w - ref_muon_family(alpha=0.5, aggregate=False)[0]).max() > 1e-4
    assert np.abs(w - ref_muon_family(alpha=0.0)[0]).max() > 1e-4


# ---- client drift ----------------------------------------------------------------------------------


def _drift_clients():
    # Heterogeneous curvature: FedAvg with K > 1 converges to a biased point, not x* = argmin Σ f_i.
    curv = [np.array([1.0, 4.0]), np.array([4.0, 0.5])]
    targets = [np.array([3.0, -1.0]), np.array([-2.0, 2.0])]

    class Q(nn.Module):
        def __init__(self):
            super().__init__()
            self.x = nn.Parameter(torch.zeros(2, dtype=torch.float64))

        def forward(self, i):
            k = int(i)
            return 0.5 * (torch.tensor(curv[k]) * (self.x - torch.tensor(targets[k])) ** 2).sum()

    x_star = sum(c * t for c, t in zip(curv, targets, strict=True)) / sum(curv)
    return Q, [_mclient(0), _mclient(1)], x_star


def test_scaffold_removes_client_drift_fedavg_does_not():
    Q, clients, x_star = _drift_clients()
    results = {}
    for name in ("fedavg", "scaffold"):
        algo, model = make_algorithm(name), Q()
        state = algo.server_init(model)
        for r in range(150):
            payload = algo.client_payload(state)
            msgs = [
                algo.client_update(model, payload, c, LocalConfig(lr=0.1, local_steps=10, round=r))
                for c in clients
            ]
            state = algo.server_aggregate(
                state, msgs, ServerConfig(lr=0.1, local_steps=10, round=r, num_clients=2)
            )
        results[name] = np.linalg.norm(state["weights"]["x"].numpy() - x_star)
    assert results["scaffold"] < 1e-6, results
    assert results["fedavg"] > 0.1, results


def test_bad_hyperparameters_raise():
    with pytest.raises(ValueError, match="alpha"):
        make_algorithm("fedadamw", alpha=1.0)
    with pytest.raises(ValueError, match="v_mode"):
        make_algorithm("fedadamw", v_mode="half")
    with pytest.raises(ValueError, match="muon_params"):
        make_algorithm("fedmuon", muon_params="some")
    with pytest.raises(TypeError, match="fedavg"):
        make_algorithm("fedavg", nonsense=1)
    with pytest.raises(ValueError, match="algorithm must be one of"):
        make_algorithm("fedfoo")
