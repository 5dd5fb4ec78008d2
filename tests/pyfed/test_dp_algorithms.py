"""The dp_* algorithms: one client's contribution is bounded by C, the noise depends on the seed and the
round only, the DP-FedPGN gradient equals its closed form on a quadratic, post-processing is exact, and
the simulator logs ε every round and stops before the budget."""

import json
import math

import pytest
import torch
from _dp_testing import clip, messages, release
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from pyfed import simulator as sim
from pyfed.algorithms import Client, LocalConfig, ServerConfig, make_algorithm
from pyfed.algorithms.base import model_weights
from pyfed.algorithms.dp_fedpgn import pgn_gradient
from pyfed.cli import main
from pyfed.config import FedConfig
from pyfed.dp.accounting import epsilon
from pyfed.dp.mechanism import flatten, laplacian_smooth, public_mask

DP_ALGOS = ["dp_fedavg", "dp_fedsam", "dp_fedsmp", "dp_fedavg_ls", "dp_fedpgn", "dp_fedpgn_ls"]
SMALL = dict(dataset="digits", model="cnn", clients=6, clients_per_round=3, local_steps=2, batch_size=16)


def _model(d_in=7, d_out=3, seed=0):
    torch.manual_seed(seed)
    return nn.Linear(d_in, d_out)


def _client(cid=0, n=24, d_in=7, d_out=3, scale=1.0, seed=0):
    g = torch.Generator().manual_seed(seed + 100 * cid)
    x = torch.randn(n, d_in, generator=g) * scale
    y = torch.randint(0, d_out, (n,), generator=g)

    def batches():
        for s in range(0, n, 8):
            yield x[s : s + 8], y[s : s + 8]

    return Client(id=cid, batches=batches, num_examples=n)


# ---- sensitivity ---------------------------------------------------------------------------------


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 2**31 - 1),
    log_scale=st.floats(-3, 3),
    other_log_scale=st.floats(-3, 3),
    clip=st.floats(0.01, 10.0),
)
def test_replacing_one_client_moves_the_release_by_at_most_2c(seed, log_scale, other_log_scale, clip):
    """Same seed and round, the client set differs in one client whose update is arbitrary (the server
    re-clips whatever it gets): the released mean moves by <= 2C/S; the noise cancels exactly."""
    model = _model()
    algo = make_algorithm("dp_fedavg", clip_norm=clip, noise_multiplier=1.3, noise_seed=5)  # same z
    d = sum(p.numel() for p in model.parameters())
    g = torch.Generator().manual_seed(seed)
    vs = [torch.randn(d, generator=g) * 10**log_scale for _ in range(4)]
    other = torch.randn(d, generator=g) * 10**other_log_scale
    a = release(algo, model, vs)[0]
    b = release(algo, model, [*vs[:3], other])[0]
    assert float((a - b).norm()) <= 2 * clip / 4 * (1 + 1e-5)
    zero = release(algo, model, [*vs[:3], torch.zeros(d)])[0]  # and a zero update (C, not 2C)
    assert float((a - zero).norm()) <= clip / 4 * (1 + 1e-5)


@pytest.mark.parametrize("name", DP_ALGOS)
def test_client_message_norm_is_at_most_c(name):
    """A client whose update is huge (large lr, large inputs) sends a vector of norm <= C."""
    model = _model()
    algo = make_algorithm(name, clip_norm=0.3, noise_multiplier=1.0, diagnostics=True)
    state = algo.server_init(model)
    if "direction" in state:  # a nonzero public direction, as after one round
        state["direction"] = {k: torch.ones_like(v) for k, v in state["direction"].items()}
    payload = algo.client_payload(state)
    msg = algo.client_update(model, payload, _client(scale=30.0), LocalConfig(lr=1.0, local_steps=3, round=0))
    vec = torch.cat([v.reshape(-1) for k, v in msg.items() if k.startswith("d.")])
    assert msg["residual_norm"] > 0.3  # it was clipped
    assert float(vec.norm()) <= 0.3 * (1 + 1e-5)


# ---- the noise ------------------------------------------------------------------------------------


def test_noise_depends_on_seed_and_round_only():
    """The noise term of the release is identical for two different client sets (no client-data-dependent
    quantity enters it), has std σC/S, changes with the round and with noise_seed."""
    model = nn.Linear(200, 50)  # 10050 weights
    d, s, c, sigma = 10050, 4, 0.5, 2.0
    algo = make_algorithm("dp_fedavg", clip_norm=c, noise_multiplier=sigma, noise_seed=7)
    g = torch.Generator().manual_seed(0)
    set_a = [torch.randn(d, generator=g) * 0.01 for _ in range(s)]
    set_b = [torch.randn(d, generator=g) * 100 for _ in range(s)]

    def noise(vectors, round_=3, algo=algo):
        released = release(algo, model, vectors, round_)[0]
        return released - sum(clip(v, c) for v in vectors) / s

    na, nb = noise(set_a), noise(set_b)
    torch.testing.assert_close(na, nb, atol=2e-6, rtol=0)
    assert float(na.std()) == pytest.approx(sigma * c / s, rel=0.03)
    assert float((noise(set_a, round_=4) - na).abs().max()) > 0.1
    other = make_algorithm("dp_fedavg", clip_norm=c, noise_multiplier=sigma, noise_seed=8)
    assert float((noise(set_a, algo=other) - na).abs().max()) > 0.1
    torch.testing.assert_close(noise(set_a), na, atol=0, rtol=0)  # reproducible


def test_distributed_mode_client_noise_and_a_server_that_adds_none():
    model = nn.Linear(200, 50)
    c, sigma, s = 0.5, 2.0, 4
    algo = make_algorithm(
        "dp_fedavg", clip_norm=c, noise_multiplier=sigma, mode="distributed", num_clients=10, sample_size=s
    )
    state = algo.server_init(model)
    payload = algo.client_payload(state)
    clients = [_client(i, d_in=200, d_out=50) for i in range(s)]
    local = LocalConfig(lr=0.0, local_steps=1, round=0)  # lr 0: the message is the client's noise alone
    msgs = [algo.client_update(model, payload, cl, local) for cl in clients]
    vecs = [torch.cat([v.reshape(-1) for k, v in m.items() if k.startswith("d.")]) for m in msgs]
    assert float(vecs[0].std()) == pytest.approx(sigma * c / math.sqrt(s), rel=0.03)
    assert all("dp_noise_seed" in cl.state for cl in clients)  # each client's own secret seed
    assert float((vecs[0] - vecs[1]).abs().max()) > 0.1
    x0 = flatten(state["weights"], list(state["weights"]))
    state = algo.server_aggregate(state, msgs, ServerConfig(lr=0.0, local_steps=1, round=0, num_clients=10))
    torch.testing.assert_close(x0 - flatten(state["weights"], list(state["weights"])), sum(vecs) / s)


# ---- DP-FedPGN ------------------------------------------------------------------------------------


def test_pgn_gradient_equals_the_penalty_closed_form_on_a_quadratic():
    """f(x) = ½xᵀAx + bᵀx, global F(x) = ½xᵀAx + b_Gᵀx, c = ∇F(x), e = r·c/‖c‖:
    g = (1−β)∇f(x) + β∇f(x+e) = ∇f(x) + λ·A·c/‖c‖ with λ = β·r — the gradient of f + λ‖∇F‖, which
    autograd also gives by a double backward (an independent path)."""
    torch.manual_seed(0)
    d, beta, r = 6, 0.4, 0.05
    m = torch.randn(d, d, dtype=torch.float64)
    a = m @ m.T + torch.eye(d, dtype=torch.float64)
    b, b_global = torch.randn(d, dtype=torch.float64), torch.randn(d, dtype=torch.float64)
    x = nn.Parameter(torch.randn(d, dtype=torch.float64))
    c = (a @ x + b_global).detach()
    e = [r * c / c.norm()]
    pgn_gradient([x], lambda: 0.5 * x @ a @ x + b @ x, e, beta)
    lam = beta * r
    closed = (a @ x + b + lam * a @ c / c.norm()).detach()
    torch.testing.assert_close(x.grad, closed, rtol=1e-12, atol=1e-12)
    grad_f = torch.autograd.grad(0.5 * x @ a @ x + b_global @ x, x, create_graph=True)[0]
    total = 0.5 * x @ a @ x + b @ x + lam * grad_f.norm()
    torch.testing.assert_close(torch.autograd.grad(total, x)[0], closed, rtol=1e-12, atol=1e-12)
    x0 = x.detach().clone()  # x is restored after the perturbed gradient
    pgn_gradient([x], lambda: 0.5 * x @ a @ x + b @ x, e, beta)
    torch.testing.assert_close(x.detach(), x0, rtol=0, atol=0)


def test_pgn_residual_and_server_add_back_are_exact():
    """With C huge and σ tiny the mechanism is the identity: the message is Δ − (1−γ)Kηc, and the server's
    step is the plain mean of the clients' Δ (the public term removed and added back exactly)."""
    gamma, k, lr = 0.2, 3, 0.1
    model = _model()
    algo = make_algorithm("dp_fedpgn", clip_norm=1e6, noise_multiplier=1e-12, gamma=gamma)
    state = algo.server_init(model)
    g = torch.Generator().manual_seed(1)
    state["direction"] = {kk: torch.randn(v.shape, generator=g) for kk, v in state["direction"].items()}
    payload = algo.client_payload(state)
    local = LocalConfig(lr=lr, local_steps=k, round=0)
    x0 = {kk: v.clone() for kk, v in state["weights"].items()}
    deltas, msgs = [], []
    for i in range(3):
        msgs.append(algo.client_update(model, payload, _client(i), local))
        end = model_weights(model)
        delta = {kk: x0[kk] - end[kk].detach() for kk in x0}
        deltas.append(delta)
        for kk in x0:
            drift = (1 - gamma) * k * lr * state["direction"][kk]
            torch.testing.assert_close(msgs[-1][f"d.{kk}"], delta[kk] - drift, rtol=1e-5, atol=1e-6)
    state = algo.server_aggregate(state, msgs, ServerConfig(lr=lr, local_steps=k, round=0, num_clients=10))
    for kk in x0:
        mean = sum(dl[kk] for dl in deltas) / 3
        torch.testing.assert_close(state["weights"][kk], x0[kk] - mean, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(state["direction"][kk], mean / (k * lr), rtol=1e-5, atol=1e-5)


def test_pgn_first_round_without_direction_is_gamma_scaled_sgd():
    """c = 0: no perturbation, g ← γ·∇f — the update is FedAvg's with lr γη (no weight decay)."""
    gamma = 0.2
    model_a, model_b = _model(), _model()
    pgn = make_algorithm("dp_fedpgn", clip_norm=1e6, gamma=gamma)
    fedavg = make_algorithm("fedavg")
    pa, pb = pgn.client_payload(pgn.server_init(model_a)), fedavg.client_payload(fedavg.server_init(model_b))
    ma = pgn.client_update(
        model_a, pa, _client(), LocalConfig(lr=0.1, local_steps=3, round=0, grad_clip=None)
    )
    mb = fedavg.client_update(
        model_b, pb, _client(), LocalConfig(lr=0.1 * gamma, local_steps=3, round=0, grad_clip=None)
    )
    for k in ("d.weight", "d.bias"):
        torch.testing.assert_close(ma[k], mb[k], rtol=1e-5, atol=1e-7)


# ---- post-processing ------------------------------------------------------------------------------


def test_laplacian_smoothing_solves_the_periodic_system():
    n, sigma = 11, 0.7
    lap = 2 * torch.eye(n, dtype=torch.float64)
    for i in range(n):
        lap[i, (i + 1) % n] = lap[i, (i - 1) % n] = -1
    v = torch.randn(n, dtype=torch.float64)
    torch.testing.assert_close(
        (torch.eye(n, dtype=torch.float64) + sigma * lap) @ laplacian_smooth(v, sigma), v
    )
    w = torch.randn(3, 5)
    torch.testing.assert_close(laplacian_smooth(w, 0.0), w)
    with pytest.raises(ValueError, match="sigma"):
        laplacian_smooth(v, -1.0)


def test_ls_variant_smooths_the_released_mean():
    model = _model()
    plain = make_algorithm("dp_fedavg", clip_norm=2.0, noise_multiplier=0.5, noise_seed=5)
    ls = make_algorithm("dp_fedavg_ls", clip_norm=2.0, noise_multiplier=0.5, ls_sigma=1.5, noise_seed=5)
    g = torch.Generator().manual_seed(0)
    vs = [torch.randn(24, generator=g) for _ in range(3)]
    a, b = release(plain, model, vs)[0], release(ls, model, vs)[0]
    torch.testing.assert_close(b[:21], laplacian_smooth(a[:21].reshape(3, 7), 1.5).reshape(-1))  # weight
    torch.testing.assert_close(b[21:], laplacian_smooth(a[21:], 1.5))  # bias


def test_smp_mask_is_public_and_the_release_lives_on_it():
    model = _model()
    algo = make_algorithm("dp_fedsmp", clip_norm=1.0, noise_multiplier=1.0, keep=0.5)
    m0, m1 = algo.mask(24, 0), algo.mask(24, 1)
    assert int(m0.sum()) == 12 and not torch.equal(m0, m1)
    torch.testing.assert_close(m0, algo.mask(24, 0))
    state = algo.server_init(model)
    payload = algo.client_payload(state)
    msgs = [
        algo.client_update(model, payload, _client(i), LocalConfig(lr=0.5, local_steps=2, round=0))
        for i in range(2)
    ]
    for msg in msgs:
        vec = torch.cat([msg["d.weight"].reshape(-1), msg["d.bias"]])
        assert float(vec[m0 == 0].abs().max()) == 0 and float(vec[m0 == 1].abs().max()) > 0
    released = release(algo, model, [torch.randn(24) for _ in range(2)])[0]
    assert float(released[m0 == 0].abs().max()) == 0
    assert torch.equal(public_mask(24, 0.5, 3), public_mask(24, 0.5, 3))


# ---- runtime: hooks, accounting, budget, resume, CLI ----------------------------------------------


def test_simulator_logs_epsilon_per_round(tmp_path):
    cfg = FedConfig(
        algo="dp_fedpgn",
        algo_args={"noise_multiplier": 2.0, "delta": 1e-4},
        rounds=3,
        runs_dir=str(tmp_path),
        **SMALL,
    )
    ms = sim.simulate(cfg, progress=False)
    for m in ms:
        assert m["epsilon"] == pytest.approx(epsilon(2.0, m["round"], 1e-4, sample_size=3, num_clients=6))
        assert m["delta"] == 1e-4 and math.isnan(m["train_loss"])  # no loss leaves a client by default
    assert ms[0]["epsilon"] < ms[1]["epsilon"] < ms[2]["epsilon"]


def test_training_stops_before_the_budget_is_exceeded(tmp_path):
    sigma = 2.0
    e = [epsilon(sigma, r, 1e-3, sample_size=3, num_clients=6) for r in (2, 3)]
    target = (e[0] + e[1]) / 2
    args = {"noise_multiplier": sigma, "target_epsilon": target, "num_clients": 6, "sample_size": 3}
    cfg = FedConfig(algo="dp_fedavg", algo_args=args, rounds=6, runs_dir=str(tmp_path), **SMALL)
    ms = sim.simulate(cfg, progress=False)
    assert [m["round"] for m in ms] == [1, 2]
    assert ms[-1]["epsilon"] <= target
    assert (tmp_path / cfg.run_name() / "checkpoint.safetensors").is_file()


def test_dp_interrupt_and_resume_gives_the_identical_curve(tmp_path, run_interrupted):
    args = {"noise_multiplier": 1.0, "diagnostics": True, "noise_seed": 3}  # both runs draw the same z
    cfg = FedConfig(
        algo="dp_fedpgn", algo_args=args, rounds=4, checkpoint_every=2, runs_dir=str(tmp_path), **SMALL
    )
    full = sim.simulate(cfg.replace(name="full"), progress=False)
    run_interrupted(cfg.replace(name="cut"), at=3)
    resumed = sim.simulate(cfg.replace(name="cut"), resume=True, progress=False)
    keys = ("round", "clients", "train_loss", "test_acc", "epsilon", "mean_residual_norm")
    assert [[m[k] for k in keys] for m in resumed] == [[m[k] for k in keys] for m in full]


def test_cli_target_epsilon_calibrates_sigma(tmp_path, capsys):
    common = [
        "--clients",
        "6",
        "-S",
        "3",
        "-K",
        "1",
        "--rounds",
        "2",
        "--runs-dir",
        str(tmp_path),
        "--no-progress",
        "--target-epsilon",
        "30",
        "--delta",
        "1e-3",
    ]
    assert main(["train", "--algo", "dp-fedavg", "--name", "dp", *common]) == 0
    hp = json.loads((tmp_path / "dp" / "config.json").read_text())["algo_hparams"]
    assert hp["target_epsilon"] == 30 and hp["num_clients"] == 6 and hp["sample_size"] == 3
    ms = [json.loads(line) for line in (tmp_path / "dp" / "metrics.jsonl").read_text().splitlines()]
    assert len(ms) == 2 and ms[-1]["epsilon"] <= 30 and ms[-1]["epsilon"] > 29  # the budget is spent
    with pytest.raises(ValueError, match="dp_"):
        main(["train", "--algo", "fedavg", "--name", "x", *common])


def test_errors_name_the_argument():
    with pytest.raises(ValueError, match="clip_norm"):
        make_algorithm("dp_fedavg", clip_norm=0.0)
    with pytest.raises(ValueError, match="mode"):
        make_algorithm("dp_fedavg", mode="local")
    with pytest.raises(ValueError, match="sample_size"):
        make_algorithm("dp_fedavg", mode="distributed")
    with pytest.raises(ValueError, match="both"):
        make_algorithm("dp_fedpgn", num_clients=10)
    with pytest.raises(ValueError, match="gamma"):
        make_algorithm("dp_fedpgn", gamma=1.5)
    with pytest.raises(TypeError, match="dp_fedsam"):
        make_algorithm("dp_fedsam", keep=0.5)
    with pytest.raises(ValueError, match="running statistics"):
        make_algorithm("dp_fedpgn").server_init(nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4)))
    model = _model()
    algo = make_algorithm("dp_fedavg", num_clients=10, sample_size=4)
    state = algo.server_init(model)
    msgs = messages(state, [torch.zeros(24)] * 3)
    with pytest.raises(ValueError, match="4 of 10"):
        algo.server_aggregate(state, msgs, ServerConfig(lr=0.1, local_steps=1, round=0, num_clients=10))
    with pytest.raises(ValueError, match="uniform"):
        algo.server_aggregate(
            state, msgs, ServerConfig(lr=0.1, local_steps=1, round=0, num_clients=10, weighting="examples")
        )


def test_privacy_report_prints_epsilon_per_round(tmp_path, capsys):
    from pyfed.dp.__main__ import main as report

    cfg = FedConfig(
        algo="dp_fedavg",
        algo_args={"noise_multiplier": 3.0},
        rounds=2,
        runs_dir=str(tmp_path),
        name="r",
        **SMALL,
    )
    ms = sim.simulate(cfg, progress=False)
    assert report([str(tmp_path / "r")]) == 0
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 2 and f"ε = {ms[1]['epsilon']:.4f}" in out[1]
    with pytest.raises(FileNotFoundError, match="nowhere"):
        report([str(tmp_path / "nowhere")])


def test_secret_noise_seed_is_drawn_kept_in_the_checkpoint_and_resumed(tmp_path, run_interrupted):
    """noise_seed=None (the default): each run draws its own secret seed; it is in the server state
    (checkpoint), not in config.json; a resumed run continues that stream — replaying the run with the
    seed read from the checkpoint gives the resumed curve exactly."""
    a, b = (make_algorithm("dp_fedavg").server_init(_model())["dp"]["noise_seed"] for _ in range(2))
    assert a != b
    cfg = FedConfig(algo="dp_fedavg", algo_args={"noise_multiplier": 1.0}, rounds=4, checkpoint_every=1,
                    runs_dir=str(tmp_path), **SMALL)
    run_interrupted(cfg.replace(name="cut"), at=2)
    from kernels.runs import load_state

    ckpt = tmp_path / "cut" / "checkpoint.safetensors"
    secret = load_state(ckpt)["state"]["dp"]["noise_seed"]
    assert str(secret) not in (tmp_path / "cut" / "config.json").read_text()
    resumed = sim.simulate(cfg.replace(name="cut"), resume=True, progress=False)
    assert load_state(ckpt)["state"]["dp"]["noise_seed"] == secret
    replayed = cfg.replace(name="replay", algo_args={"noise_multiplier": 1.0, "noise_seed": secret})
    replay = sim.simulate(replayed, progress=False)
    keys = ("round", "clients", "test_acc", "test_loss", "epsilon")
    assert [[m[k] for k in keys] for m in resumed] == [[m[k] for k in keys] for m in replay]
