"""Poisson client sampling: the sampler, empty rounds, the dp_* algorithms' add/remove accounting and
release (sensitivity C/(qN), noise independent of who took part), resume, the CLI option, the Flower
strategy's refusal, and the GroupNorm CNN ("cnn-gn")."""

import argparse
import math

import numpy as np
import pytest
import torch
from _dp_testing import clip, release
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from pyfed import simulator as sim
from pyfed.algorithms import ServerConfig, make_algorithm
from pyfed.algorithms.base import model_weights
from pyfed.cli import _add_run_options, config_from_args
from pyfed.config import FedConfig
from pyfed.dp.accounting import RoundAccountant, epsilon, noise_multiplier_for, privacy_args
from pyfed.models import build_model

SMALL = dict(dataset="digits", model="cnn", clients=6, local_steps=2, batch_size=16)


def _poisson(**kw):
    return dict(
        clip_norm=kw.pop("clip_norm", 0.5),
        noise_multiplier=kw.pop("noise_multiplier", 1.3),
        num_clients=10,
        sample_size=4,
        sampling="poisson",
        noise_seed=kw.pop("noise_seed", 5),  # a fixed z: the tests compare neighbouring releases
        **kw,
    )


# ---- accounting -----------------------------------------------------------------------------------


def test_poisson_accountant_equals_dp_accounting_rdp():
    """The issue's numbers (σ=0.8, q=0.1, 300 rounds, δ=2e-3): RoundAccountant(sampling="poisson") gives
    dp-accounting's RDP ε (computed here straight from the library, its own orders and composition)."""
    import dp_accounting as dpa
    from dp_accounting.rdp import RdpAccountant

    event = dpa.SelfComposedDpEvent(dpa.PoissonSampledDpEvent(0.1, dpa.GaussianDpEvent(0.8)), 300)
    direct = RdpAccountant().compose(event).get_epsilon(2e-3)
    acc = RoundAccountant(0.8, 2e-3, sample_size=5, num_clients=50, sampling="poisson")
    assert acc.epsilon(300) == pytest.approx(direct, rel=1e-9)
    assert acc.epsilon(300) == pytest.approx(15.90, abs=0.01)
    assert acc.epsilon(300) == pytest.approx(epsilon(0.8, 300, 2e-3, sampling_rate=0.1, sampling="poisson"))
    assert acc.epsilon(0) == 0.0
    # PLD on the same mechanism is tighter (13.46), and replace-one without replacement far looser
    assert epsilon(0.8, 300, 2e-3, sampling_rate=0.1, sampling="poisson", method="pld") == pytest.approx(
        13.46, abs=0.02
    )
    assert RoundAccountant(0.8, 2e-3, 5, 50).epsilon(300) > 2 * acc.epsilon(300)


def test_poisson_calibration_spends_the_budget_and_needs_less_noise():
    s = noise_multiplier_for(4.0, 30, 1e-3, sample_size=10, num_clients=50, sampling="poisson")
    acc = RoundAccountant(s, 1e-3, 10, 50, sampling="poisson")
    assert acc.epsilon(30) <= 4.0 < RoundAccountant(s / 1.002, 1e-3, 10, 50, sampling="poisson").epsilon(30)
    assert s < noise_multiplier_for(4.0, 30, 1e-3, sample_size=10, num_clients=50) / 2
    a = privacy_args(
        {}, target_epsilon=4.0, delta=1e-3, rounds=30, num_clients=50, sample_size=10, sampling="poisson"
    )
    assert a["sampling"] == "poisson" and a["noise_multiplier"] == s
    with pytest.raises(ValueError, match="sampling"):
        privacy_args(
            {},
            target_epsilon=4.0,
            delta=1e-3,
            rounds=30,
            num_clients=50,
            sample_size=10,
            sampling="bernoulli",
        )


# ---- the sampler ----------------------------------------------------------------------------------


def test_fixed_sampler_is_unchanged_and_poisson_has_rate_q():
    cfg = FedConfig(clients=20, clients_per_round=5)
    g, ref = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    for _ in range(5):
        assert sim.sample_clients(cfg, g) == torch.randperm(20, generator=ref)[:5].tolist()
    g = torch.Generator().manual_seed(3)
    pc = cfg.replace(sampling="poisson")
    rounds = [sim.sample_clients(pc, g) for _ in range(2000)]
    counts = np.array([len(r) for r in rounds])
    assert counts.mean() == pytest.approx(5.0, abs=0.15)  # E = qN = 5, std of the mean 0.04
    assert counts.var() == pytest.approx(20 * 0.25 * 0.75, rel=0.15)  # Binomial(20, 1/4)
    per_client = np.bincount(np.concatenate([r for r in rounds if r]), minlength=20) / 2000
    assert np.abs(per_client - 0.25).max() < 0.05
    assert all(r == sorted(set(r)) for r in rounds)


# ---- the dp release under Poisson -----------------------------------------------------------------


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 2**31 - 1),
    log_scale=st.floats(-3, 3),
    extra_log=st.floats(-3, 3),
    clip=st.floats(0.01, 10.0),
    k=st.integers(0, 6),
)
def test_adding_one_client_moves_the_release_by_at_most_c_over_qn(seed, log_scale, extra_log, clip, k):
    """Poisson release = (Σ clip_C + σC·z)/(qN): any k clients (0 included) plus one arbitrary extra
    client move it by <= C/(qN) = C/4, the noise cancelling exactly."""
    model = nn.Linear(7, 3)
    algo = make_algorithm("dp_fedavg", **_poisson(clip_norm=clip))
    g = torch.Generator().manual_seed(seed)
    vs = [torch.randn(24, generator=g) * 10**log_scale for _ in range(k)]
    extra = torch.randn(24, generator=g) * 10**extra_log
    a, _ = release(algo, model, vs)
    b, _ = release(algo, model, [*vs, extra])
    assert float((a - b).norm()) <= clip / 4 * (1 + 1e-5)
    if float(extra.norm()) > 2 * clip:  # and the bound is reached by a large update
        assert float((a - b).norm()) == pytest.approx(clip / 4, rel=1e-4)


def test_empty_round_releases_the_same_noise_whoever_takes_part():
    model = nn.Linear(200, 50)  # 10050 weights
    d, c, sigma, s = 10050, 0.5, 2.0, 4
    algo = make_algorithm("dp_fedavg", **_poisson(clip_norm=c, noise_multiplier=sigma, noise_seed=7))
    empty, state = release(algo, model, [], round_=3)
    assert state["dp"]["rounds"] == 1  # an empty round is a round of the mechanism
    assert float(empty.std()) == pytest.approx(sigma * c / s, rel=0.03)  # σC/(qN), qN = 4
    g = torch.Generator().manual_seed(0)
    for n_clients, scale in ((1, 0.01), (3, 100.0), (6, 1.0)):  # any realized count, any data
        vs = [torch.randn(d, generator=g) * scale for _ in range(n_clients)]
        rel, _ = release(algo, model, vs, round_=3)
        noise = rel - sum(clip(v, c) for v in vs) / s  # divided by qN, not by n_clients
        torch.testing.assert_close(noise, empty, atol=2e-6, rtol=0)
    other_round, _ = release(algo, model, [], round_=4)
    assert float((other_round - empty).abs().max()) > 0.1


def test_poisson_dp_errors_and_mismatch_is_refused(tmp_path):
    with pytest.raises(ValueError, match="needs num_clients and sample_size"):
        make_algorithm("dp_fedavg", sampling="poisson")
    with pytest.raises(ValueError, match="mode='central'"):
        make_algorithm("dp_fedavg", **_poisson(mode="distributed"))
    with pytest.raises(ValueError, match="sampling"):
        make_algorithm("dp_fedavg", sampling="uniform")
    with pytest.raises(ValueError, match="sampling"):
        FedConfig(sampling="uniform").validate()
    algo = make_algorithm("dp_fedavg", **_poisson())
    state = algo.server_init(nn.Linear(7, 3))
    with pytest.raises(ValueError, match="from 10 clients"):
        algo.server_aggregate(state, [], ServerConfig(lr=0.1, local_steps=1, round=0, num_clients=12))
    fixed = make_algorithm("dp_fedavg", num_clients=10, sample_size=4)  # fixed sampling: empty refused
    with pytest.raises(ValueError, match="no client messages"):
        fixed.server_aggregate(
            fixed.server_init(nn.Linear(7, 3)),
            [],
            ServerConfig(lr=0.1, local_steps=1, round=0, num_clients=10),
        )
    base = FedConfig(algo="dp_fedavg", clients_per_round=2, rounds=1, runs_dir=str(tmp_path), **SMALL)
    with pytest.raises(ValueError, match="accounts sampling='fixed' but the run samples 'poisson'"):
        sim.build_federation(base.replace(sampling="poisson", algo_args={"noise_multiplier": 1.0}))
    args = _poisson()
    args.update(num_clients=6, sample_size=2)
    with pytest.raises(ValueError, match="accounts sampling='poisson' but the run samples 'fixed'"):
        sim.build_federation(base.replace(algo_args=args))


def test_flower_strategy_refuses_poisson(tmp_path):
    pytest.importorskip("flwr")
    from pyfed.flower.strategy import AlgorithmStrategy

    cfg = FedConfig(clients_per_round=2, rounds=1, runs_dir=str(tmp_path), sampling="poisson", **SMALL)
    with pytest.raises(NotImplementedError, match="sampling='fixed'"):
        AlgorithmStrategy(cfg)


# ---- the simulator under Poisson ------------------------------------------------------------------


def _first_seed_with_an_empty_round(cfg, rounds):
    for seed in range(200):
        g = torch.Generator().manual_seed(seed)
        ids = [sim.sample_clients(cfg.replace(seed=seed), g) for _ in range(rounds)]
        if any(not r for r in ids[1:]) and all(ids[:1]):
            return seed
    raise AssertionError("no seed with an empty round")


def test_non_dp_empty_round_changes_nothing(tmp_path):
    cfg = FedConfig(
        algo="fedavg", clients_per_round=1, rounds=4, sampling="poisson", runs_dir=str(tmp_path), **SMALL
    )
    cfg = cfg.replace(seed=_first_seed_with_an_empty_round(cfg, 4))
    ms = sim.simulate(cfg, progress=False)
    assert {len(m["clients"]) for m in ms} != {1}  # the count varies
    empties = [i for i, m in enumerate(ms) if not m["clients"]]
    assert empties and empties[0] > 0
    for i in empties:
        assert math.isnan(ms[i]["train_loss"]) and ms[i]["bytes_up"] == 0
        assert (ms[i]["test_acc"], ms[i]["test_loss"]) == (ms[i - 1]["test_acc"], ms[i - 1]["test_loss"])
    assert all(not math.isnan(m["train_loss"]) for m in ms if m["clients"])


def test_dp_poisson_simulation_accounts_every_round_and_resumes_identically(tmp_path, run_interrupted):
    cfg = FedConfig(
        algo="dp_fedpgn",
        clients_per_round=1,
        rounds=4,
        checkpoint_every=2,
        sampling="poisson",
        runs_dir=str(tmp_path),
        **SMALL,
    )
    cfg = cfg.replace(seed=_first_seed_with_an_empty_round(cfg, 4))
    args = {
        "noise_multiplier": 1.0,
        "diagnostics": True,
        "num_clients": 6,
        "sample_size": 1,
        "sampling": "poisson",
        "noise_seed": 3,  # the full and the resumed run draw the same z
    }
    cfg = cfg.replace(algo_args=args)
    full = sim.simulate(cfg.replace(name="full"), progress=False)
    acc = RoundAccountant(1.0, 1e-3, 1, 6, sampling="poisson")
    assert [m["epsilon"] for m in full] == pytest.approx([acc.epsilon(r) for r in (1, 2, 3, 4)])
    empties = [i for i, m in enumerate(full) if not m["clients"]]
    assert empties
    for i in empties:  # the noise still moves the model, and the round is accounted
        assert full[i]["test_loss"] != full[i - 1]["test_loss"]
        assert math.isnan(full[i]["mean_residual_norm"])
    run_interrupted(cfg.replace(name="cut"), at=3)
    resumed = sim.simulate(cfg.replace(name="cut"), resume=True, progress=False)
    keys = ("round", "clients", "test_acc", "test_loss", "epsilon")
    assert [[m[k] for k in keys] for m in resumed] == [[m[k] for k in keys] for m in full]


def test_cli_sampling_option_sets_the_accountant():
    p = argparse.ArgumentParser()
    _add_run_options(p)
    args = p.parse_args(
        ["--clients", "50", "-S", "10", "--rounds", "30", "--sampling", "poisson", "--target-epsilon", "4"]
    )
    cfg = config_from_args(args, "dp_fedavg")
    assert cfg.sampling == "poisson" and cfg.algo_args["sampling"] == "poisson"
    assert cfg.algo_args["noise_multiplier"] == noise_multiplier_for(
        4.0, 30, 1e-3, sample_size=10, num_clients=50, sampling="poisson"
    )
    fixed = config_from_args(p.parse_args(["--clients", "50", "-S", "10", "--rounds", "30"]), "dp_fedavg")
    assert fixed.sampling == "fixed" and fixed.algo_args["sampling"] == "fixed"
    plain = config_from_args(p.parse_args(["--sampling", "poisson"]), "fedavg")
    assert plain.sampling == "poisson" and "sampling" not in plain.algo_args


# ---- cnn-gn ---------------------------------------------------------------------------------------


def test_cnn_gn_normalizes_per_example_and_has_no_buffers():
    torch.manual_seed(0)
    model = build_model("cnn-gn", (1, 8, 8), 10)
    plain = build_model("cnn", (1, 8, 8), 10)
    gns = [m for m in model.modules() if isinstance(m, nn.GroupNorm)]
    assert [(m.num_groups, m.num_channels) for m in gns] == [(8, 32), (8, 64)]
    assert not list(model.buffers()) and all(not k.endswith("#") for k in model_weights(model))
    n_plain = sum(p.numel() for p in plain.parameters())
    assert sum(p.numel() for p in model.parameters()) == n_plain + 2 * (32 + 64)  # the GN affines
    model.train()
    x = torch.randn(3, 1, 8, 8) * 5 + 2
    # per example: the logits of one example do not depend on the rest of the batch (BatchNorm's would)
    torch.testing.assert_close(model(x)[:1], model(x[:1]))
    # after the first GroupNorm (affine 1, 0 at init) every (example, group of 4 channels) has mean 0, var 1
    h = model.features[1](model.features[0](x)).reshape(3, 8, -1)
    torch.testing.assert_close(h.mean(-1), torch.zeros(3, 8), atol=1e-5, rtol=0)
    torch.testing.assert_close(h.var(-1, unbiased=False), torch.ones(3, 8), atol=1e-3, rtol=0)
    make_algorithm("dp_fedavg").server_init(model)  # accepted by the DP algorithms
    with pytest.raises(ValueError, match="running statistics"):
        make_algorithm("dp_fedavg").server_init(build_model("resnet10", (3, 8, 8), 10))
    with pytest.raises(ValueError, match="groups"):
        from pyfed.models.cnn import SmallCNN

        SmallCNN(1, 10, image_size=8, width=30, norm="gn")
