"""The simulator: bytes on the wire per algorithm, determinism, interrupt + resume, the CLI, LoRA."""

from __future__ import annotations

import json

import pytest
import torch

import pyfed.simulator as sim
from pyfed.algorithms import ALGORITHMS, Client, LocalConfig, ServerConfig, make_algorithm, nbytes
from pyfed.algorithms.fedmuon import muon_parameter_names
from pyfed.cli import main
from pyfed.config import FedConfig

SMALL = dict(
    dataset="digits", model="cnn", clients=6, clients_per_round=3, local_steps=2, batch_size=16, eval_every=1
)


def _cnn_sizes():
    fed = sim.build_federation(FedConfig(**SMALL))
    params = dict(fed.model.named_parameters())
    d = sum(p.numel() for p in params.values())  # the CNN has no floating buffers: d = p
    q = sum(params[n].numel() for n in muon_parameter_names(fed.model, "hidden"))
    return d, len(params), q


@pytest.mark.parametrize("algo", sorted(ALGORITHMS))
def test_bytes_per_round_match_formula(algo, tmp_path):
    d, T, q = _cnn_sizes()
    p, S = d, SMALL["clients_per_round"]
    expected = {  # (down, up) per client in float32 words; the formulas in each algorithm's docstring
        "fedavg": (d, d),
        "fedavgm": (d, d),
        "fedprox": (d, d),
        "fedsam": (d, d),
        "fedadam": (d, d),
        "local_adamw": (d, d),
        "local_muon": (d, d),
        "scaffold": (d + p, d + p),
        "fedcm": (d + p, d),
        "mofedsam": (d + p, d),
        "fedlada": (d + p, d),
        "fedadamw": (d + p + T, d + T),
        "fedmuon": (d + p + q, d + q),
        **dict.fromkeys(("dp_fedavg", "dp_fedsam", "dp_fedsmp", "dp_fedavg_ls"), (d, d)),
        "dp_fedpgn": (d + p, d),
        "dp_fedpgn_ls": (d + p, d),
    }[algo]
    ms = sim.simulate(FedConfig(algo=algo, rounds=1, runs_dir=str(tmp_path), **SMALL), progress=False)
    assert ms[0]["bytes_down"] == 4 * S * expected[0]
    assert ms[0]["bytes_up"] == 4 * S * expected[1]
    if not algo.startswith("dp_"):  # a DP message carries no loss unless diagnostics=True (not private)
        assert torch.isfinite(torch.tensor(ms[0]["train_loss"]))


def test_fedadamw_full_second_moment_bytes(tmp_path):
    d, _, _ = _cnn_sizes()
    cfg = FedConfig(algo="fedadamw", algo_args={"v_mode": "full"}, rounds=1, runs_dir=str(tmp_path), **SMALL)
    m = sim.simulate(cfg, progress=False)[0]
    assert (m["bytes_down"], m["bytes_up"]) == (4 * 3 * 3 * d, 4 * 3 * 2 * d)


def _curve(ms):
    return [(m["round"], m["clients"], m["train_loss"], m["test_acc"], m["bytes_up"]) for m in ms]


def test_same_seed_same_curve_other_seed_other_curve(tmp_path):
    cfg = FedConfig(algo="fedavg", rounds=3, runs_dir=str(tmp_path), **SMALL)
    a = sim.simulate(cfg.replace(name="a"), progress=False)
    b = sim.simulate(cfg.replace(name="b"), progress=False)
    c = sim.simulate(cfg.replace(name="c", seed=1), progress=False)
    assert _curve(a) == _curve(b)
    assert _curve(a) != _curve(c)


@pytest.mark.parametrize("algo", ["scaffold", "fedadamw", "fedmuon"])
def test_interrupt_and_resume_gives_the_identical_curve(algo, tmp_path, run_interrupted):
    cfg = FedConfig(algo=algo, rounds=5, checkpoint_every=2, runs_dir=str(tmp_path), **SMALL)
    full = sim.simulate(cfg.replace(name="full"), progress=False)

    # mid-run, between two checkpoints, after client states changed
    run_interrupted(cfg.replace(name="cut"), at=3)
    with pytest.raises(FileExistsError, match="resume"):
        sim.simulate(cfg.replace(name="cut"), progress=False)
    resumed = sim.simulate(cfg.replace(name="cut"), resume=True, progress=False)
    assert _curve(resumed) == _curve(full)
    assert len((tmp_path / "cut" / "metrics.jsonl").read_text().splitlines()) == 5


def test_cli_train_and_compare_write_run_directories(tmp_path, capsys):
    common = [
        "--clients",
        "6",
        "-S",
        "3",
        "-K",
        "2",
        "--rounds",
        "2",
        "--runs-dir",
        str(tmp_path),
        "--no-progress",
    ]
    assert main(["train", "--algo", "fedmuon", "--name", "one", "--algo-arg", "alpha=0.3", *common]) == 0
    run = tmp_path / "one"
    for f in ("config.json", "metrics.jsonl", "acc.png", "checkpoint.safetensors"):
        assert (run / f).is_file(), f
    config = json.loads((run / "config.json").read_text())
    assert config["algo_hparams"]["alpha"] == 0.3 and config["clients"] == 6
    assert len((run / "metrics.jsonl").read_text().splitlines()) == 2
    assert main(["compare", "--algos", "fedavg,fedmuon", "--target", "0.05", "--name", "cmp", *common]) == 0
    table = (tmp_path / "cmp" / "compare.md").read_text()
    assert "| fedavg |" in table and "| fedmuon |" in table
    assert (tmp_path / "cmp" / "compare.png").is_file()
    assert "final acc" in capsys.readouterr().out


def test_config_errors():
    with pytest.raises(ValueError, match="clients_per_round"):
        FedConfig(clients=5, clients_per_round=6).validate()
    with pytest.raises(ValueError, match="dataset"):
        FedConfig(dataset="mnist").validate()
    with pytest.raises(FileNotFoundError, match="cifar-10-batches-py"):
        sim.build_federation(FedConfig(dataset="cifar10", data_dir="/nonexistent"))


def test_lora_round_moves_only_adapters(tmp_path):
    transformers = pytest.importorskip("transformers")
    pytest.importorskip("peft")
    from pyfed.models.lora import lora_sequence_classifier

    cfg = transformers.BertConfig(
        vocab_size=40,
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=16,
    )
    transformers.BertForSequenceClassification(cfg).save_pretrained(tmp_path / "tiny-bert")
    model = lora_sequence_classifier(
        tmp_path / "tiny-bert", num_labels=2, r=2, target_modules=["query", "value"]
    )
    frozen = {n: p.detach().clone() for n, p in model.named_parameters() if not p.requires_grad}
    g = torch.Generator().manual_seed(0)
    tokens = torch.randint(0, 40, (8, 12), generator=g)
    labels = (tokens[:, 0] % 2).long()

    def batches():
        while True:
            yield tokens, labels

    client = Client(0, batches, 8, loss_fn=lambda out, y: torch.nn.functional.cross_entropy(out.logits, y))
    algo = make_algorithm("fedavg")
    state = algo.server_init(model)
    assert state["weights"] and all("lora" in k or "classifier" in k for k in state["weights"])
    payload = algo.client_payload(state)
    msg = algo.client_update(model, payload, client, LocalConfig(lr=0.5, local_steps=3, round=0))
    new = algo.server_aggregate(state, [msg], ServerConfig(lr=0.5, local_steps=3, round=0, num_clients=1))
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert nbytes(payload) == 4 * trainable < 4 * sum(p.numel() for p in model.parameters()) / 10
    assert any(float((msg[f"d.{k}"]).abs().max()) > 0 for k in new["weights"])
    for n, p in model.named_parameters():
        if n in frozen:
            assert torch.equal(p, frozen[n])


@pytest.mark.cuda
def test_simulator_on_gpu_matches_cpu_bytes_and_learns(tmp_path):
    cfg = FedConfig(algo="fedmuon", rounds=3, runs_dir=str(tmp_path), **SMALL)
    gpu = sim.simulate(cfg.replace(name="gpu", device="cuda"), progress=False)
    cpu = sim.simulate(cfg.replace(name="cpu", device="cpu"), progress=False)
    assert [m["bytes_up"] for m in gpu] == [m["bytes_up"] for m in cpu]
    assert [m["clients"] for m in gpu] == [m["clients"] for m in cpu]
    assert gpu[-1]["test_acc"] > 0.2


def test_device_errors():
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no CUDA GPU"):
            sim.resolve_device("cuda")
    assert sim.resolve_device("cpu").type == "cpu"
