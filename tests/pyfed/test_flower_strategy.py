"""AlgorithmStrategy on an in-process Grid (no Ray, no network): the pyfed ClientApp is called directly
with one Flower ``Context`` per node. Covers what the simulation engine never does: nodes that declare
no partition (round-robin, several partitions and their states on one node), and node waiting errors."""

from __future__ import annotations

import uuid

import pytest
import torch

pytest.importorskip("flwr")

from flwr.app import Context, RecordDict  # noqa: E402
from flwr.serverapp import Grid  # noqa: E402
from flwr.supercore.task_identity import TaskIdentity  # noqa: E402

import pyfed.simulator as sim  # noqa: E402
from kernels.runs import load_state  # noqa: E402
from pyfed.config import FedConfig  # noqa: E402
from pyfed.flower import AlgorithmStrategy, client_app  # noqa: E402

SMALL = dict(dataset="digits", model="cnn", clients=4, clients_per_round=3, local_steps=2, batch_size=16,
             rounds=3, threads=1)


@pytest.fixture(autouse=True)
def server_identity():
    """Messages take their sender from TaskIdentity; a real ServerApp runtime sets it (here: the
    values Flower's run_simulation uses), and it is put back after the test."""
    saved = (TaskIdentity._task_id, TaskIdentity._run_id, TaskIdentity._node_id)
    TaskIdentity.task_id, TaskIdentity.run_id, TaskIdentity.node_id = 1, 1, 1
    yield
    TaskIdentity._task_id, TaskIdentity._run_id, TaskIdentity._node_id = saved


class InProcessGrid(Grid):
    """Nodes 101, 102, ... each with its own Context; ``partitions[i]`` is node i's node config
    ``partition-id`` (None: none declared)."""

    def __init__(self, partitions):
        self.contexts = {}
        for i, pid in enumerate(partitions):
            node_config = {} if pid is None else {"partition-id": pid, "num-partitions": len(partitions)}
            self.contexts[101 + i] = Context(run_id=1, node_id=101 + i, node_config=node_config,
                                             state=RecordDict(), run_config={})
        self.trained: dict[int, list[int]] = {n: [] for n in self.contexts}  # node → client ids trained
        self._run = None

    @property
    def run(self):
        return self._run

    def set_run(self, run) -> None:
        self._run = run

    def create_message(self, *args, **kwargs):
        raise NotImplementedError("not used by AlgorithmStrategy")

    def get_node_ids(self):
        return list(self.contexts)

    def push_messages(self, messages):
        raise NotImplementedError("not used by AlgorithmStrategy")

    def pull_messages(self, message_ids):
        raise NotImplementedError("not used by AlgorithmStrategy")

    def send_and_receive(self, messages, *, timeout=None):
        replies = []
        for m in messages:
            m.metadata.__dict__["_message_id"] = str(uuid.uuid4())  # what a real Grid assigns on push
            node = m.metadata.dst_node_id
            if m.metadata.message_type == "train":
                self.trained[node].append(int(m.content["config"]["partition-id"]))
            replies.append(client_app(m, self.contexts[node]))
        return replies


def test_undeclared_nodes_take_partitions_round_robin_and_keep_each_partitions_state(tmp_path):
    cfg = FedConfig(algo="scaffold", name="rr", runs_dir=str(tmp_path), **SMALL)
    grid = InProcessGrid([None, None])  # 4 clients on 2 nodes
    strategy = AlgorithmStrategy(cfg, min_nodes=2)
    strategy.start(grid)
    assert strategy.node_of == {0: 101, 1: 102, 2: 101, 3: 102}
    for node, cids in grid.trained.items():
        assert cids and all(strategy.node_of[c] == node for c in cids)
    # node 101 holds the c_i of clients 0 and 2 separately, and the result is the simulator's
    keys = {k for k in grid.contexts[101].state if k.endswith(".arrays")}
    assert keys <= {"pyfed.rr.0.arrays", "pyfed.rr.2.arrays"} and keys
    sim.simulate(cfg.replace(runs_dir=str(tmp_path / "sim")), progress=False)
    expected = load_state(tmp_path / "sim" / "rr" / "checkpoint.safetensors")["state"]
    for part in ("weights", "c"):
        for k, v in expected[part].items():
            torch.testing.assert_close(strategy.state[part][k], v, atol=1e-5, rtol=1e-4)


def test_declared_partitions_map_to_their_nodes_and_missing_ones_are_skipped(tmp_path):
    cfg = FedConfig(algo="fedavg", name="declared", runs_dir=str(tmp_path), **{**SMALL, "rounds": 2})
    grid = InProcessGrid([3, 0, 7, 1])  # nobody holds partition 2; 7 is beyond clients=4
    strategy = AlgorithmStrategy(cfg)
    strategy.start(grid)
    assert strategy.node_of == {3: 101, 0: 102, 1: 104}
    ms = strategy.run.metrics()
    for m in ms:  # S clients sampled per round; only client 2 (no node) can fail
        assert len(m["clients"]) + len(m["failed"]) == cfg.clients_per_round
        assert 2 not in m["clients"] and set(m["failed"]) <= {2}
    assert any(m["failed"] == [2] for m in ms)  # the seed samples client 2 at least once
    assert grid.trained[103] == []


def test_too_few_nodes_is_a_timeout_naming_the_counts(tmp_path):
    cfg = FedConfig(algo="fedavg", name="few", runs_dir=str(tmp_path), **SMALL)
    strategy = AlgorithmStrategy(cfg, node_timeout=0.5)
    with pytest.raises(TimeoutError, match="1 Flower nodes connected .* need at least 3"):
        strategy.start(InProcessGrid([0]))
    assert load_state(tmp_path / "few" / "checkpoint.safetensors")["round"] == 0  # nothing run, nothing lost


def test_round_robin_ignores_declared_partitions(tmp_path):
    cfg = FedConfig(algo="fedavg", name="forced", runs_dir=str(tmp_path), **{**SMALL, "rounds": 1})
    grid = InProcessGrid([0, 1])  # as Flower's simulation engine with 2 SuperNodes for 4 clients
    strategy = AlgorithmStrategy(cfg, min_nodes=2, partitions="round-robin")
    strategy.start(grid)
    assert strategy.node_of == {0: 101, 1: 102, 2: 101, 3: 102}
    assert strategy.run.metrics()[0]["failed"] == []
