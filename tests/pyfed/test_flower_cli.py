"""``python -m pyfed flower-sim``: Flower's simulation engine from the command line writes a run directory
like ``python -m pyfed train`` (here with fewer SuperNodes than clients)."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("flwr")
pytest.importorskip("ray")

from pyfed.cli import main  # noqa: E402


def test_cli_flower_sim_writes_a_run_directory(tmp_path, capsys):
    argv = ["flower-sim", "--algo", "fedmuon", "--clients", "3", "-S", "2", "-K", "2", "--rounds", "2",
            "--batch-size", "16", "--threads", "1", "--ray-cpus", "1", "--supernodes", "2",
            "--runs-dir", str(tmp_path), "--name", "cli", "--algo-arg", "alpha=0.3", "--no-progress"]
    assert main(argv) == 0
    run = tmp_path / "cli"
    for f in ("config.json", "metrics.jsonl", "acc.png", "checkpoint.safetensors"):
        assert (run / f).is_file(), f
    config = json.loads((run / "config.json").read_text())
    assert config["runtime"] == "flower" and config["algo_hparams"]["alpha"] == 0.3 and config["clients"] == 3
    ms = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    # 3 clients round-robin on 2 SuperNodes: every sampled client answers
    assert [m["round"] for m in ms] == [1, 2] and all(len(m["clients"]) == 2 and not m["failed"] for m in ms)
    last = json.loads(capsys.readouterr().out.splitlines()[-2])
    assert last["round"] == 2 and last["wire_bytes_up"] > last["bytes_up"] > 0
