"""pyfed on Flower's simulation engine: the same model as the in-process simulator, and checkpoint/resume.

One Ray start for the module: a single ServerApp runs every case one after the other (each with its own
AlgorithmStrategy and run directory; the ClientApp takes its config from the messages)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch

pytest.importorskip("flwr")
pytest.importorskip("ray")

from flwr.clientapp import ClientApp  # noqa: E402
from flwr.serverapp import ServerApp  # noqa: E402
from flwr.simulation import run_simulation  # noqa: E402

import pyfed.simulator as sim  # noqa: E402
from kernels.runs import load_state  # noqa: E402
from pyfed.algorithms import make_algorithm  # noqa: E402
from pyfed.config import FedConfig  # noqa: E402
from pyfed.flower import AlgorithmStrategy, default_backend_config  # noqa: E402
from pyfed.flower.client import handle_hello, handle_train  # noqa: E402

SMALL = dict(dataset="digits", model="cnn", clients=4, clients_per_round=2, local_steps=2, batch_size=16,
             rounds=3, threads=1)
ALGOS = ["fedavg", "fedadamw", "fedmuon", "scaffold", "dp-fedpgn"]


def _known(name: str) -> bool:
    try:
        make_algorithm(name)
    except ValueError:
        return False
    return True


class Interrupted(Exception):
    pass


class KilledAtRound(AlgorithmStrategy):
    """A server killed (SIGKILL: no last checkpoint) after ``cut`` completed rounds."""

    cut = 3
    dead = False

    def _train_round(self, grid, round_, timeout, config):
        if round_ == self.cut:
            self.dead = True
            raise Interrupted(f"killed before round {round_ + 1}")
        return super()._train_round(grid, round_, timeout, config)

    def _checkpoint(self, *args):
        if not self.dead:
            super()._checkpoint(*args)


def _faulty_train(message, context):
    """pyfed's train handler, except: in run "lost-node" client 1 is gone from round 2 on; in run
    "retried" every client fails its first attempt at round 2 (a marker file remembers the attempt); in
    run "given-up" every client fails round 2."""
    conf = message.content["config"]
    cfg = json.loads(str(conf["fed-config"]))
    cid, round_ = int(conf["partition-id"]), int(conf["round"])
    if cfg["name"] == "lost-node" and cid == 1 and round_ >= 1:
        raise RuntimeError("node of client 1 is gone")
    if cfg["name"] == "given-up" and round_ == 1:
        raise RuntimeError(f"client {cid}: down for good")
    if cfg["name"] == "retried" and round_ == 1:
        marker = Path(cfg["runs_dir"]) / f"retried-{cid}.failed"
        if not marker.exists():
            marker.touch()
            raise RuntimeError(f"client {cid}: transient failure")
    return handle_train(message, context)


faulty_client_app = ClientApp()
faulty_client_app.train()(_faulty_train)
faulty_client_app.query("pyfed_hello")(handle_hello)


@pytest.fixture(scope="module")
def flower_runs(tmp_path_factory):
    """{case: (cfg, metrics, final server state)} from one Flower simulation."""
    root = tmp_path_factory.mktemp("flower")
    # DP: a fixed noise seed, so that Flower and the simulator draw the same z (the default is a secret)
    dp_args = {"noise_seed": 0}
    cases = {a: FedConfig(algo=a, name=a, runs_dir=str(root), algo_args=dp_args if "dp" in a else {}, **SMALL)
             for a in ALGOS if _known(a)}
    cases["fedavg-examples"] = cases["fedavg"].replace(name="fedavg-examples", weighting="examples")
    resume_cfg = FedConfig(algo="fedadamw", name="resume", runs_dir=str(root),
                           **{**SMALL, "rounds": 4}, checkpoint_every=2)
    out: dict = {}
    app = ServerApp()

    @app.main()
    def main(grid, context):
        for name, cfg in cases.items():
            strategy = AlgorithmStrategy(cfg, round_timeout=120)
            strategy.start(grid)
            out[name] = (cfg, strategy.run.metrics(), strategy.state)
        full = AlgorithmStrategy(resume_cfg.replace(name="resume-full"), round_timeout=120)
        full.start(grid)
        with pytest.raises(Interrupted):
            KilledAtRound(resume_cfg, round_timeout=120).start(grid)
        out["cut-metrics"] = len((root / "resume" / "metrics.jsonl").read_text().splitlines())
        out["cut-checkpoint"] = int(load_state(root / "resume" / "checkpoint.safetensors")["round"])
        resumed = AlgorithmStrategy(resume_cfg, resume=True, round_timeout=120)
        resumed.start(grid)
        out["resume"] = (full.run.metrics(), resumed.run.metrics(), full.state, resumed.state)
        # faults: 2 of the 4 nodes hold this run's clients (the others declare partitions 2, 3: idle)
        lost = AlgorithmStrategy(FedConfig(algo="fedavg", name="lost-node", runs_dir=str(root),
                                           **{**SMALL, "clients": 2}), round_timeout=120)
        lost.start(grid)
        out["lost-node"] = lost.run.metrics()
        retried_cfg = cases["fedavg"].replace(name="retried")
        retried = AlgorithmStrategy(retried_cfg, round_timeout=120, retries=1)
        retried.start(grid)
        out["retried"] = (retried_cfg, retried.run.metrics(), retried.state)
        with pytest.raises(RuntimeError, match="fewer than min_replies"):
            AlgorithmStrategy(retried_cfg.replace(name="given-up"), round_timeout=120, retries=0).start(grid)
        out["given-up"] = load_state(root / "given-up" / "checkpoint.safetensors")["round"]
        # the DP algorithms' optional hooks (an accountant's ε per round, stop when the budget is spent)
        hooks = AlgorithmStrategy(cases["fedavg"].replace(name="hooks", checkpoint_every=5))
        hooks.algo.round_metrics = lambda st: {"norm0": float(st["weights"]["features.0.weight"].norm())}
        hooks.algo.should_stop = lambda state, next_round: next_round >= 2
        hooks.start(grid)
        ckpt = load_state(root / "hooks" / "checkpoint.safetensors")
        out["hooks"] = (hooks.run.metrics(), hooks.state, ckpt)

    os.environ.setdefault("FLWR_TELEMETRY_ENABLED", "0")
    os.environ.setdefault("RAY_ACCEL_ENV_VAR_OVERRIDE_ON_ZERO", "0")
    run_simulation(app, faulty_client_app, num_supernodes=SMALL["clients"],
                   backend_config=default_backend_config(1))
    return out


def _assert_states_close(a: dict, b: dict, atol=1e-5, rtol=1e-4, path="state"):
    assert a.keys() == b.keys(), path
    for k in a:
        if isinstance(a[k], dict):
            _assert_states_close(a[k], b[k], atol, rtol, f"{path}/{k}")
        elif isinstance(a[k], torch.Tensor):
            torch.testing.assert_close(a[k], b[k], atol=atol, rtol=rtol, msg=f"{path}/{k}")
        else:
            assert a[k] == pytest.approx(b[k], rel=rtol, abs=atol), f"{path}/{k}"


@pytest.mark.parametrize("algo", ALGOS)
def test_flower_simulation_matches_the_simulator(algo, flower_runs, tmp_path):
    if not _known(algo):
        pytest.skip(f"{algo} is not in pyfed.algorithms yet (the DP helper adds it)")
    cfg, flower_metrics, flower_state = flower_runs[algo]
    sim_metrics = sim.simulate(cfg.replace(runs_dir=str(tmp_path)), progress=False)
    sim_state = load_state(tmp_path / cfg.run_name() / "checkpoint.safetensors")["state"]
    # the whole server state (weights, moments, control variates, ...), not only the model
    _assert_states_close(sim_state, flower_state)
    assert len(flower_metrics) == len(sim_metrics) == cfg.rounds
    payload = make_algorithm(algo, **cfg.algo_args).client_payload(flower_state)
    arrays = cfg.clients_per_round * sum(isinstance(v, torch.Tensor) for v in payload.values())
    for f, s in zip(flower_metrics, sim_metrics, strict=True):
        assert f["clients"] == s["clients"] and f["failed"] == []
        assert (f["bytes_down"], f["bytes_up"]) == (s["bytes_down"], s["bytes_up"])
        # what Flower serialized: the same tensors plus a .npy header (128-256 bytes) per array
        assert 128 * arrays <= f["wire_bytes_down"] - f["bytes_down"] <= 256 * arrays
        assert 0 < f["wire_bytes_up"] - f["bytes_up"] <= 256 * arrays
        assert f["train_loss"] == pytest.approx(s["train_loss"], rel=1e-4, nan_ok=True)  # DP: NaN, not sent
        assert f["test_acc"] == pytest.approx(s["test_acc"], abs=1e-3)
    if algo == "scaffold":  # the client state (c_i in context.state) was used: someone trained twice
        seen = [c for m in flower_metrics for c in m["clients"]]
        assert len(seen) > len(set(seen))
        assert any(float(v.abs().max()) > 0 for v in flower_state["c"].values())


def test_flower_resume_after_a_kill_gives_the_identical_curve(flower_runs):
    full, resumed, full_state, resumed_state = flower_runs["resume"]
    # rounds 1-3 were logged before the kill, the last checkpoint is of round 2: round 3 is redone and
    # the metrics file holds each round once
    assert (flower_runs["cut-metrics"], flower_runs["cut-checkpoint"]) == (3, 2)
    assert [m["round"] for m in resumed] == [1, 2, 3, 4]

    def curve(ms):
        return [(m["round"], m["clients"], m["train_loss"], m["test_acc"], m["bytes_up"]) for m in ms]

    assert curve(resumed) == curve(full)
    _assert_states_close(full_state, resumed_state, atol=0, rtol=0)


def test_flower_round_completes_without_a_lost_client(flower_runs):
    ms = flower_runs["lost-node"]
    assert [m["round"] for m in ms] == [1, 2, 3]
    assert sorted(ms[0]["clients"]) == [0, 1] and ms[0]["failed"] == []
    assert [(m["clients"], m["failed"]) for m in ms[1:]] == [([0], [1]), ([0], [1])]
    assert ms[1]["bytes_up"] == ms[0]["bytes_up"] // 2  # one message aggregated instead of two


def test_flower_round_with_no_replies_is_retried(flower_runs, tmp_path):
    cfg, ms, state = flower_runs["retried"]
    assert [m["attempts"] for m in ms] == [1, 2, 1]
    # the retry resends the same sample and payload: the model is the simulator's
    sim.simulate(cfg.replace(runs_dir=str(tmp_path)), progress=False)
    _assert_states_close(load_state(tmp_path / cfg.run_name() / "checkpoint.safetensors")["state"], state)
    # retries=0 and a failing round 2: the run stops with an error after checkpointing round 1
    assert flower_runs["given-up"] == 1


def test_flower_weighting_by_examples_when_configured(flower_runs, tmp_path):
    cfg, _, state = flower_runs["fedavg-examples"]
    sim.simulate(cfg.replace(runs_dir=str(tmp_path)), progress=False)
    _assert_states_close(load_state(tmp_path / cfg.run_name() / "checkpoint.safetensors")["state"], state)
    # and it differs from the uniform mean: the weighting reached the server
    uniform = flower_runs["fedavg"][2]["weights"]
    assert max(float((uniform[k] - v).abs().max()) for k, v in state["weights"].items()) > 1e-4


def test_flower_calls_the_algorithms_optional_hooks(flower_runs):
    ms, state, ckpt = flower_runs["hooks"]
    assert [m["round"] for m in ms] == [1, 2]  # should_stop(state, 2) ended the 3-round run
    assert ms[-1]["norm0"] == pytest.approx(float(state["weights"]["features.0.weight"].norm()))
    assert ms[0]["norm0"] != ms[1]["norm0"]
    assert ckpt["round"] == 2  # stopping early still checkpoints (checkpoint_every=5 would not have)
