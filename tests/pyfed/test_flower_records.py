"""pyfed.flower without a Flower run: records ↔ pyfed dicts, client state in context.state, wire bytes,
the run config of pyproject.toml, argument errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("flwr")

from flwr.app import RecordDict  # noqa: E402

from pyfed.config import FedConfig  # noqa: E402
from pyfed.flower import AlgorithmStrategy, config_from_run_config  # noqa: E402
from pyfed.flower.records import (  # noqa: E402
    flat_to_records,
    records_to_flat,
    state_from_context,
    state_to_context,
    wire_bytes,
)

REPO = Path(__file__).resolve().parents[2]


def test_flat_dict_round_trip_keeps_values_dtypes_and_shapes():
    g = torch.Generator().manual_seed(0)
    flat = {
        "w.conv1.weight": torch.randn(3, 1, 3, 3, generator=g),
        "w.bn.running_mean#": torch.randn(5, generator=g).double(),
        "d.fc.bias": torch.randn(7, generator=g).half(),
        "g.t": torch.randn(4, 6, generator=g).t(),  # not contiguous
        "loss": 0.25,
        "num_examples": 12,
        "np": np.float32(1.5),
    }
    arrays, numbers = flat_to_records(flat)
    assert set(arrays) == {k for k, v in flat.items() if isinstance(v, torch.Tensor)}
    assert dict(numbers) == {"loss": 0.25, "num_examples": 12, "np": 1.5}
    back = records_to_flat(arrays, numbers)
    for k, v in flat.items():
        if isinstance(v, torch.Tensor):
            assert back[k].dtype == v.dtype and torch.equal(back[k], v), k
        else:
            assert back[k] == v
    # every array is its raw bytes plus a .npy header (a multiple of 64 bytes, 128 for these shapes)
    content = RecordDict({"payload": arrays})
    raw = sum(v.numel() * v.element_size() for v in flat.values() if isinstance(v, torch.Tensor))
    assert wire_bytes(content) == raw + 128 * len(arrays)


def test_flat_dict_errors_name_the_entry():
    with pytest.raises(TypeError, match="'x'.*list"):
        flat_to_records({"x": [1, 2]})
    with pytest.raises(TypeError, match="'b'.*bfloat16"):
        flat_to_records({"b": torch.zeros(2, dtype=torch.bfloat16)})


def test_client_state_in_context_round_trip():
    ctx = RecordDict()
    assert state_from_context(ctx, "pyfed.run.3") == {}
    state = {"c_i": {"conv1.weight": torch.ones(2, 2), "fc.bias": torch.arange(3.0)}, "step": 4, "tag": "x"}
    state_to_context(ctx, "pyfed.run.3", state)
    state_to_context(ctx, "pyfed.run.4", {"c_i": {"fc.bias": torch.zeros(3)}})
    back = state_from_context(ctx, "pyfed.run.3")
    assert back.keys() == state.keys() and back["step"] == 4 and back["tag"] == "x"
    assert torch.equal(back["c_i"]["fc.bias"], torch.arange(3.0))
    assert torch.equal(back["c_i"]["conv1.weight"], torch.ones(2, 2))
    assert torch.equal(state_from_context(ctx, "pyfed.run.4")["c_i"]["fc.bias"], torch.zeros(3))
    with pytest.raises(TypeError, match="without '/'"):
        state_to_context(ctx, "k", {"a/b": 1})


def test_pyproject_flower_app_is_valid_and_its_config_is_a_fed_config():
    from flwr.cli.config_utils import load_and_validate

    config, warnings = load_and_validate(REPO / "pyproject.toml")  # also imports the two components
    assert warnings == []
    app = config["tool"]["flwr"]["app"]
    assert app["components"] == {"serverapp": "pyfed.flower.app:server_app",
                                 "clientapp": "pyfed.flower.app:client_app"}
    cfg, options = config_from_run_config(app["config"])
    assert cfg.algo == "fedmuon" and cfg.lr is None and cfg.name is None and cfg.data_dir is None
    assert cfg.grad_clip == 10.0 and cfg.weighting == "uniform"
    assert options == {"resume": False, "overwrite": False, "round_timeout": 600.0, "min_replies": 1,
                       "retries": 2, "partitions": "declared"}


def test_run_config_conversions_and_errors():
    cfg, options = config_from_run_config({"algo": "scaffold", "algo-args": '{"server_lr": 0.5}', "lr": 0,
                                           "grad-clip": 0.0, "clients": 4, "clients-per-round": 2,
                                           "run-dir": "/tmp/x", "min-nodes": 2})
    assert (cfg.algo, cfg.algo_args, cfg.lr, cfg.grad_clip) == ("scaffold", {"server_lr": 0.5}, None, None)
    assert options == {"run_dir": "/tmp/x", "min_nodes": 2}
    with pytest.raises(ValueError, match="'colour'"):
        config_from_run_config({"colour": "red"})
    with pytest.raises(ValueError, match="algo-args must be a JSON object"):
        config_from_run_config({"algo-args": "[1]"})
    with pytest.raises(ValueError, match="clients_per_round"):
        config_from_run_config({"clients": 2, "clients-per-round": 3})


def test_strategy_argument_errors(tmp_path):
    with pytest.raises(TypeError, match="cfg must be a FedConfig"):
        AlgorithmStrategy({"algo": "fedavg"})
    cfg = FedConfig(clients=4, clients_per_round=2, runs_dir=str(tmp_path))
    with pytest.raises(ValueError, match="round_timeout"):
        AlgorithmStrategy(cfg, round_timeout=0)
    with pytest.raises(ValueError, match="min_replies"):
        AlgorithmStrategy(cfg, min_replies=3)
    with pytest.raises(ValueError, match="retries"):
        AlgorithmStrategy(cfg, retries=-1)
    with pytest.raises(ValueError, match="partitions must be"):
        AlgorithmStrategy(cfg, partitions="random")
    with pytest.raises(ValueError, match="min_nodes"):
        AlgorithmStrategy(cfg, min_nodes=0)
