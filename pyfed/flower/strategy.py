r"""A Flower strategy that runs any pyfed ``Algorithm`` unchanged; the server state is the algorithm's.

Per round r (Flower's ``server_round`` = r + 1), with the simulator's schedule and sampler::

    lr_r = lr_at(cfg, base_lr, r);   ids = randperm(N, generator seeded by cfg.seed)[:S]
    configure_train: payload = algo.client_payload(state) → one train message per sampled client id,
                     sent to the node that holds that partition
    aggregate_train: messages (ordered as ids) → state = algo.server_aggregate(state, messages, ...)

so a Flower run and ``pyfed.simulator.simulate`` on the same config produce the same model (the test
demands it). The whole server state (weights, moments, control variates, an accountant's state) stays
in the strategy, never in Flower's ``ArrayRecord`` of "the model": Flower does not checkpoint strategy
state, so ``start`` writes ``runs/<name>/`` like the simulator (config.json, metrics.jsonl, an atomic
checkpoint of the state and the sampler every ``checkpoint_every`` rounds, acc.png) and ``resume=True``
continues from it with the identical curve.

Weighting is the config's (``uniform`` by default, as the papers), never Flower's num-examples default.

Faults: a round's messages go out with ``round_timeout``; replies that are errors or never come are
dropped and the round is aggregated over the clients that answered (``clients`` / ``failed`` in the
metrics). A round with fewer than ``min_replies`` answers is sent again (same sample, up to ``retries``
times) before the run stops with a RuntimeError — after checkpointing the last completed round.

Per-client state (SCAFFOLD's c_i) stays on the nodes (``context.state``) and is therefore not in the
server's checkpoint: a resumed *new* Flower run starts the clients' state from zero.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from logging import INFO, WARNING
from pathlib import Path
from typing import Any

import numpy as np
import torch
from flwr.app import ArrayRecord, ConfigRecord, Message, MessageType, MetricRecord, RecordDict
from flwr.serverapp import Grid
from flwr.serverapp.strategy import Result, Strategy
from flwr.supercore import log

import kernels
from kernels.runs import RunDir, capture_rng, restore_rng
from pyfed.algorithms import ServerConfig, nbytes
from pyfed.algorithms.base import load_weights
from pyfed.config import FedConfig, lr_at
from pyfed.flower.client import HELLO, PARTITION_KEY
from pyfed.flower.records import flat_to_records, records_to_flat, wire_bytes
from pyfed.simulator import _plot, _progress, build_federation, evaluate

__all__ = ["AlgorithmStrategy"]


class AlgorithmStrategy(Strategy):
    """Flower ``Strategy`` around ``make_algorithm(cfg.algo, **cfg.algo_args)``.

    Args:
        cfg: the run (the same ``FedConfig`` the simulator takes).
        run_dir: where the run writes (default ``cfg.runs_dir/cfg.run_name()``).
        resume / overwrite: as ``RunDir``.
        round_timeout: seconds to wait for a round's replies.
        node_timeout: seconds to wait for ``min_nodes`` nodes to connect.
        min_nodes: nodes to wait for before the first round (default: clients_per_round).
        partitions: "declared" (each node trains the partition its node config declares; see
            ``connect``) or "round-robin" (ignore declarations: partition p goes to the p-th node mod the
            number of nodes — for simulations with fewer SuperNodes than clients).
        min_replies: fewest replies a round may be aggregated over.
        retries: how many times a round with too few replies is sent again.
        progress: a tqdm bar over rounds.
    """

    def __init__(
        self,
        cfg: FedConfig,
        *,
        run_dir: str | Path | None = None,
        resume: bool = False,
        overwrite: bool = False,
        round_timeout: float = 600.0,
        node_timeout: float = 120.0,
        min_nodes: int | None = None,
        partitions: str = "declared",
        min_replies: int = 1,
        retries: int = 2,
        progress: bool = False,
    ):
        if not isinstance(cfg, FedConfig):
            raise TypeError(f"cfg must be a FedConfig, got {type(cfg).__name__}")
        cfg.validate()
        if cfg.sampling != "fixed":
            raise NotImplementedError(
                f"the Flower strategy samples S of N without replacement only (sampling='fixed'), got "
                f"sampling={cfg.sampling!r}: Poisson rounds of any size, empty ones included, clash with its "
                "min_replies/retry fault handling; run sampling='poisson' on pyfed.simulator"
            )
        for name, v in (("round_timeout", round_timeout), ("node_timeout", node_timeout)):
            if not v > 0:
                raise ValueError(f"{name} must be positive seconds, got {v!r}")
        if not 1 <= min_replies <= cfg.clients_per_round:
            raise ValueError(f"min_replies must be in [1, clients_per_round], got {min_replies!r}")
        if min_nodes is not None and not (isinstance(min_nodes, int) and min_nodes >= 1):
            raise ValueError(f"min_nodes must be a positive int, got {min_nodes!r}")
        if partitions not in ("declared", "round-robin"):
            raise ValueError(f"partitions must be 'declared' or 'round-robin', got {partitions!r}")
        if retries < 0:
            raise ValueError(f"retries must be >= 0, got {retries!r}")
        self.cfg = cfg
        self.fed = build_federation(cfg)  # the same model init, data and evaluation sets as the simulator
        self.algo = self.fed.algo
        self.state: dict[str, Any] = self.algo.server_init(self.fed.model)
        self.sampler = torch.Generator().manual_seed(cfg.seed)
        self.run = RunDir(run_dir or Path(cfg.runs_dir) / cfg.run_name(), resume=resume, overwrite=overwrite)
        self.resume = resume
        self.round_timeout, self.node_timeout = float(round_timeout), float(node_timeout)
        self.min_replies, self.retries, self.progress = min_replies, retries, progress
        self.min_nodes = cfg.clients_per_round if min_nodes is None else min_nodes
        self.partitions = partitions
        self.tag = cfg.run_name()  # names the clients' state in context.state
        self.cfg_json = json.dumps({k: v for k, v in vars(cfg).items()}, sort_keys=True)
        self.node_of: dict[int, int] = {}  # partition (client id) → Flower node id
        self._nodes_seen: set[int] = set()
        self._round: tuple[int, list[int]] | None = None  # (round, sampled ids) being run
        self._sent_down = (0, 0)  # (pyfed bytes, wire bytes) of the last configure_train
        self.last_record: dict[str, Any] = {}

    # ---- Flower's Strategy interface -----------------------------------------------------------

    def summary(self) -> None:
        log(INFO, "\t├──> pyfed algorithm %s %s", self.algo.name, self.algo.hparams())
        log(INFO, "\t└──> N=%d, S=%d, K=%d, weighting %s", self.cfg.clients, self.cfg.clients_per_round,
            self.cfg.local_steps, self.cfg.weighting)

    def configure_train(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Iterable[Message]:
        """One train message per sampled client. ``arrays`` is ignored: the payload comes from the full
        server state (global weights plus whatever else the algorithm sends down)."""
        round_ = server_round - 1
        if self._round is None or self._round[0] != round_:  # a retry keeps its round's sample
            ids = torch.randperm(self.cfg.clients, generator=self.sampler)[: self.cfg.clients_per_round]
            self._round = (round_, ids.tolist())
        ids = self._round[1]
        online = set(grid.get_node_ids())
        lost = any(self.node_of.get(c) not in online for c in ids)
        if not self.node_of or (lost and online != self._nodes_seen):
            self.connect(grid)  # first round, or nodes came and went
            online = set(grid.get_node_ids())
        lr = lr_at(self.cfg, self.fed.base_lr, round_)
        payload = self.algo.client_payload(self.state)
        tensors, numbers = flat_to_records(payload)
        base = {
            **dict(config),
            "fed-config": self.cfg_json,
            "tag": self.tag,
            "round": round_,
            "lr": lr,
            "local-steps": self.cfg.local_steps,
        }
        if self.cfg.grad_clip is not None:
            base["grad-clip"] = float(self.cfg.grad_clip)
        messages = []
        for cid in ids:
            node = self.node_of.get(cid)
            if node not in online:
                log(WARNING, "client %d: its node (%s) is not connected; skipped this round", cid, node)
                continue
            content = RecordDict(
                {
                    "payload": tensors,
                    "payload-numbers": numbers,
                    "config": ConfigRecord({**base, PARTITION_KEY: cid}),
                }
            )
            messages.append(Message(content, dst_node_id=node, message_type=MessageType.TRAIN))
        self._sent_down = (nbytes(payload) * len(messages), sum(wire_bytes(m.content) for m in messages))
        return messages

    def aggregate_train(
        self, server_round: int, replies: Iterable[Message]
    ) -> tuple[ArrayRecord | None, MetricRecord | None]:
        """``state = algo.server_aggregate(state, messages)`` over the valid replies, in sampled order;
        (None, None) when fewer than ``min_replies`` answered (the state is then untouched)."""
        round_ = server_round - 1
        if self._round is None or self._round[0] != round_:
            raise RuntimeError(f"aggregate_train({server_round}) without configure_train for that round")
        ids = self._round[1]
        by_client: dict[int, Message] = {}
        for reply in replies:
            if reply.has_error():
                log(WARNING, "round %d: error from node %d: %s", server_round, reply.metadata.src_node_id,
                    reply.error.reason)
                continue
            cid = int(reply.content["reply-info"][PARTITION_KEY])
            if cid in ids and int(reply.content["reply-info"]["round"]) == round_:
                by_client[cid] = reply
        answered = [cid for cid in ids if cid in by_client]
        if len(answered) < self.min_replies:
            log(WARNING, "round %d: %d replies (< min_replies=%d)", server_round, len(answered),
                self.min_replies)
            return None, None
        device = self.fed.data.x_train.device
        messages = [
            records_to_flat(by_client[c].content["message"], by_client[c].content["message-numbers"], device)
            for c in answered
        ]
        lr = lr_at(self.cfg, self.fed.base_lr, round_)
        server = ServerConfig(lr=lr, local_steps=self.cfg.local_steps, round=round_,
                              num_clients=self.cfg.clients, weighting=self.cfg.weighting)
        with kernels.nvtx.range("aggregate"):
            self.state = self.algo.server_aggregate(self.state, messages, server)
        record: dict[str, Any] = {
            "round": round_ + 1,
            "lr": lr,
            "clients": answered,
            "failed": [c for c in ids if c not in by_client],
            "train_loss": float(np.mean([m["loss"] for m in messages])),
            # the simulator's formula (pyfed.algorithms.nbytes) and what Flower serialized
            "bytes_down": self._sent_down[0],
            "bytes_up": sum(nbytes(m) for m in messages),
            "wire_bytes_down": self._sent_down[1],
            "wire_bytes_up": sum(wire_bytes(by_client[c].content) for c in answered),
        }
        round_metrics = getattr(self.algo, "round_metrics", None)
        if round_metrics is not None:
            record.update(round_metrics(self.state))
        self.last_record = record
        metrics = MetricRecord({k: float(v) for k, v in record.items() if isinstance(v, int | float)})
        return ArrayRecord(dict(self.state["weights"])), metrics

    def configure_evaluate(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Iterable[Message]:
        """No federated evaluation: the server evaluates the global model itself (as the simulator)."""
        return []

    def aggregate_evaluate(self, server_round: int, replies: Iterable[Message]) -> MetricRecord | None:
        return None

    # ---- the run -------------------------------------------------------------------------------

    def connect(self, grid: Grid) -> dict[int, int]:
        """Wait for the nodes and map every client id (partition) to the node that holds it.

        Each node answers a hello with its node config's ``partition-id`` (Flower's simulation engine
        sets it; a deployment passes ``--node-config "partition-id=3"``); a partition no node declares
        is skipped (counted as failed) until its node connects. When no node declares any, partitions
        go round-robin over the nodes in node-id order (one node then trains several partitions, each
        with its own state)."""
        deadline = time.monotonic() + self.node_timeout
        want = self.min_nodes
        while len(nodes := sorted(grid.get_node_ids())) < want:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{len(nodes)} Flower nodes connected after {self.node_timeout:.0f} s; "
                                   f"need at least {want}")
            time.sleep(0.2)
        hellos = [Message(RecordDict(), dst_node_id=n, message_type=HELLO) for n in nodes]
        declared: dict[int, int] = {}
        for reply in grid.send_and_receive(hellos, timeout=self.node_timeout):
            if reply.has_error():
                continue
            pid = int(reply.content["hello"][PARTITION_KEY])
            if pid >= 0 and self.partitions == "declared":
                declared[pid] = reply.metadata.src_node_id
        surplus = sorted(p for p in declared if p >= self.cfg.clients)
        if surplus:  # e.g. a simulation federation with more SuperNodes than this run has clients
            log(WARNING, "nodes declare partition-id %s beyond clients=%d: they stay idle", surplus,
                self.cfg.clients)
            declared = {p: n for p, n in declared.items() if p < self.cfg.clients}
        if declared:  # partitions nobody declares are nobody's (a node's data is its own)
            self.node_of = declared
        else:
            self.node_of = {p: nodes[p % len(nodes)] for p in range(self.cfg.clients)}
        self._nodes_seen = set(nodes)
        log(INFO, "pyfed: %d partitions on %d nodes (%d declared)", self.cfg.clients, len(nodes),
            len(declared))
        return self.node_of

    def start(
        self,
        grid: Grid,
        initial_arrays: ArrayRecord | None = None,
        num_rounds: int | None = None,
        timeout: float | None = None,
        train_config: ConfigRecord | None = None,
        evaluate_config: ConfigRecord | None = None,
        evaluate_fn=None,
    ) -> Result:
        """Run rounds ``[resumed round, num_rounds)`` (default ``cfg.rounds``); returns Flower's Result
        (final weights, per-round train metrics and server-side evaluation). ``initial_arrays`` is
        ignored (the algorithm initializes its own state from the model), ``timeout`` overrides
        ``round_timeout``."""
        cfg, run = self.cfg, self.run
        num_rounds = cfg.rounds if num_rounds is None else int(num_rounds)
        timeout = self.round_timeout if timeout is None else float(timeout)
        train_config = train_config or ConfigRecord()
        start, elapsed = 0, 0.0
        if self.resume and run.has_checkpoint():
            ckpt = run.load_checkpoint(device=self.fed.data.x_train.device)
            self.state, start = ckpt["state"], int(ckpt["round"])
            restore_rng(ckpt["rng"], {"sampler": self.sampler})
            run.truncate_metrics("round", start)
            done = run.metrics()
            elapsed = done[-1]["wall_time"] if done else 0.0
        else:
            run.write_config({**vars(cfg), "base_lr": self.fed.base_lr, "algo_hparams": self.algo.hparams(),
                              "runtime": "flower"})
        result = Result()
        # server_aggregate may rebind the state's entries: keep the last completed round's (shallow copy)
        state_done = dict(self.state)
        rng_done = capture_rng({"sampler": self.sampler})
        completed = start
        should_stop = getattr(self.algo, "should_stop", None)
        t0 = time.perf_counter() - elapsed
        bar = _progress(range(start, num_rounds), self.progress, f"flower {cfg.algo}")
        try:
            for round_ in bar:
                if should_stop is not None and should_stop(self.state, round_):
                    log(INFO, "pyfed: %s stops before round %d", self.algo.name, round_ + 1)
                    break
                with kernels.nvtx.range(f"round {round_}"):
                    record = self._train_round(grid, round_, timeout, train_config)
                if (round_ + 1) % cfg.eval_every == 0 or round_ + 1 == cfg.rounds:
                    record.update(self.evaluate())
                record["wall_time"] = time.perf_counter() - t0
                run.log(record)
                completed, rng_done = round_ + 1, capture_rng({"sampler": self.sampler})
                state_done = dict(self.state)
                result.train_metrics_clientapp[round_ + 1] = MetricRecord(
                    {k: float(record[k]) for k in ("train_loss", "bytes_up", "bytes_down") if k in record})
                if "test_acc" in record:
                    result.evaluate_metrics_serverapp[round_ + 1] = MetricRecord(
                        {"test_acc": record["test_acc"], "test_loss": record["test_loss"]})
                if (round_ + 1) % cfg.checkpoint_every == 0 or round_ + 1 == num_rounds:
                    self._checkpoint(completed, state_done, rng_done)
                if self.progress and "test_acc" in record:
                    bar.set_postfix(acc=f"{record['test_acc']:.3f}", loss=f"{record['train_loss']:.3f}")
        except BaseException:
            # the state and sampler of the last completed round: save them before leaving
            self._checkpoint(completed, state_done, rng_done)
            raise
        if completed % cfg.checkpoint_every and completed != num_rounds:  # stopped early by the algorithm
            self._checkpoint(completed, state_done, rng_done)
        result.arrays = ArrayRecord(dict(self.state["weights"]))
        return result

    def _train_round(self, grid: Grid, round_: int, timeout: float, config: ConfigRecord) -> dict[str, Any]:
        for attempt in range(self.retries + 1):
            messages = list(self.configure_train(round_ + 1, ArrayRecord(), ConfigRecord(dict(config)), grid))
            replies = list(grid.send_and_receive(messages, timeout=timeout)) if messages else []
            arrays, _ = self.aggregate_train(round_ + 1, replies)
            if arrays is not None:
                record = dict(self.last_record)
                record["attempts"] = attempt + 1
                return record
            errors = [r.error.reason for r in replies if r.has_error()]
            log(WARNING, "round %d: attempt %d failed (%d sent, %d replies; errors %s)", round_ + 1,
                attempt + 1, len(messages), len(replies), errors[:3])
        raise RuntimeError(f"round {round_ + 1}: fewer than min_replies={self.min_replies} clients answered "
                           f"in {self.retries + 1} attempts (last errors: {errors[:3]})")

    def evaluate(self) -> dict[str, float]:
        """test_acc / test_loss on the test set, client_test_acc on the pooled client test splits."""
        fed = self.fed
        with kernels.nvtx.range("evaluate"):
            load_weights(fed.eval_model, self.state["weights"])
            out: dict[str, float] = {}
            out["test_acc"], out["test_loss"] = evaluate(fed.eval_model, fed.data.x_test, fed.data.y_test)
            if len(fed.client_test_y):
                out["client_test_acc"], _ = evaluate(fed.eval_model, fed.client_test_x, fed.client_test_y)
        return out

    def _checkpoint(self, round_done: int, state: dict[str, Any], rng: dict) -> None:
        self.run.save_checkpoint({"round": round_done, "state": state, "rng": rng})
        _plot(self.run)
