"""The in-process federated simulator: one machine, N clients, S sampled per round.

``simulate(cfg)`` builds the data, partition, model and algorithm from a ``FedConfig`` and runs the
rounds::

    for each round r:   lr_r = schedule(r);  ids = sample_clients(cfg, sampler)
        payload = algo.client_payload(state)
        for each sampled client i:  message_i = algo.client_update(model, payload, client_i, local cfg)
        state = algo.server_aggregate(state, messages, server cfg);  evaluate;  log;  checkpoint

Sampling (``cfg.sampling``): "fixed" draws S of N without replacement (a random permutation's first S);
"poisson" lets each client join independently with probability q = S/N (one uniform per client, ids in
increasing order), so a round has a Binomial(N, q) number of clients, possibly 0. An empty round leaves
the state unchanged for ordinary algorithms (no aggregation; train_loss NaN); algorithms with
``aggregates_empty_rounds = True`` (the dp_* algorithms: their noise is released whoever takes part)
get ``server_aggregate(state, [], ...)``. An algorithm with a ``sampling`` hyperparameter (the dp_*
algorithms' accountant) must agree with ``cfg.sampling``.

Everything random is a function of ``cfg.seed``: the partition, the client sampler (its own generator,
checkpointed), each client's batches in round r (a generator seeded by (seed, r, client id), so a
client's data order does not depend on which other clients ran before it) and the model's
initialization. Same seed → same curve; ``resume=True`` continues from the last checkpoint with the
identical curve (client-state changes and RNG states are committed only when a round completes, and an
interrupt writes a checkpoint of the last completed round).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

import kernels
from kernels.runs import RunDir, capture_rng, plot_curves, restore_rng
from pyfed.algorithms import Algorithm, Client, LocalConfig, ServerConfig, make_algorithm, nbytes
from pyfed.algorithms.base import load_weights
from pyfed.config import FedConfig, lr_at
from pyfed.data.datasets import Dataset, augment, load_dataset
from pyfed.data.partition import dirichlet_partition, iid_partition, split_clients
from pyfed.models import build_model

__all__ = ["Federation", "build_federation", "evaluate", "sample_clients", "simulate"]


@dataclass
class Federation:
    cfg: FedConfig
    data: Dataset
    clients: list[Client]
    client_train: list[np.ndarray]  # indices into data.x_train
    # The clients' local test splits pooled, gathered once (client_test_acc at every evaluation)
    client_test_x: torch.Tensor
    client_test_y: torch.Tensor
    model: nn.Module  # the clients' working copy
    eval_model: nn.Module
    algo: Algorithm
    base_lr: float


def _batches(
    data: Dataset, idx: np.ndarray, batch_size: int, seed: int
) -> Iterator[tuple[torch.Tensor, ...]]:
    g = torch.Generator().manual_seed(seed)
    idx_t = torch.from_numpy(idx)
    while True:  # epochs over the client's data, reshuffled each time
        order = idx_t[torch.randperm(len(idx_t), generator=g)]
        for start in range(0, len(order), batch_size):
            b = order[start : start + batch_size]
            b = b.to(data.x_train.device)
            x = data.x_train[b]
            if data.augment:
                x = augment(x, g)
            yield x, data.y_train[b]


def _client_seed(seed: int, round_: int, cid: int) -> int:
    return int(np.random.SeedSequence([seed, round_, cid]).generate_state(1, dtype=np.uint64)[0] >> 1)


def sample_clients(cfg: FedConfig, sampler: torch.Generator) -> list[int]:
    """This round's client ids from the sampler generator: ``randperm(N)[:S]`` ("fixed") or the ids whose
    uniform draw is < q = S/N ("poisson": each independently, in increasing order, possibly none)."""
    if cfg.sampling == "poisson":
        u = torch.rand(cfg.clients, generator=sampler, dtype=torch.float64)
        return torch.nonzero(u < cfg.clients_per_round / cfg.clients).flatten().tolist()
    return torch.randperm(cfg.clients, generator=sampler)[: cfg.clients_per_round].tolist()


def build_federation(cfg: FedConfig) -> Federation:
    cfg.validate()
    if cfg.threads is not None:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    np.random.seed(cfg.seed % 2**32)
    data = load_dataset(cfg.dataset, data_dir=cfg.data_dir, seed=cfg.seed)
    labels = data.y_train.numpy()
    if cfg.partition == "dirichlet":
        parts = dirichlet_partition(labels, cfg.clients, cfg.alpha, cfg.seed)
    else:
        parts = iid_partition(len(labels), cfg.clients, cfg.seed)
    splits = split_clients(parts, cfg.client_test_fraction, cfg.seed)
    clients = [
        Client(id=i, batches=lambda: iter(()), num_examples=len(s.train)) for i, s in enumerate(splits)
    ]
    device = resolve_device(cfg.device)
    data.to(device)
    model = build_model(cfg.model, data.input_shape, data.num_classes).to(device)
    eval_model = build_model(cfg.model, data.input_shape, data.num_classes).to(device)
    algo = make_algorithm(cfg.algo, **cfg.algo_args)
    algo_sampling = getattr(algo, "sampling", None)
    if algo_sampling is not None and algo_sampling != cfg.sampling:
        raise ValueError(
            f"{cfg.algo} accounts sampling={algo_sampling!r} but the run samples {cfg.sampling!r}: set "
            f"algo_args['sampling'] = {cfg.sampling!r} (the CLI's --sampling does it)"
        )
    base_lr = cfg.lr if cfg.lr is not None else algo.default_lr
    pooled = torch.from_numpy(np.concatenate([s.test for s in splits])).to(device)
    return Federation(
        cfg,
        data,
        clients,
        [s.train for s in splits],
        data.x_train[pooled],
        data.y_train[pooled],
        model,
        eval_model,
        algo,
        base_lr,
    )


def resolve_device(name: str) -> torch.device:
    """ "auto" → cuda when available, else cpu; anything else is passed to torch.device (checked)."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(name)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} asked for, but torch sees no CUDA GPU")
    return dev


@torch.no_grad()
def evaluate(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 512
) -> tuple[float, float]:
    """(accuracy, mean cross-entropy) of ``model`` on (x, y)."""
    if len(y) == 0:
        return float("nan"), float("nan")
    model.eval()
    correct, loss = 0, 0.0
    for s in range(0, len(y), batch_size):
        out = model(x[s : s + batch_size])
        loss += float(nn.functional.cross_entropy(out, y[s : s + batch_size], reduction="sum"))
        correct += int((out.argmax(1) == y[s : s + batch_size]).sum())
    return correct / len(y), loss / len(y)


def simulate(
    cfg: FedConfig,
    *,
    resume: bool = False,
    overwrite: bool = False,
    progress: bool = True,
    run_dir: str | Path | None = None,
) -> list[dict[str, Any]]:
    """Run ``cfg`` to the end, writing ``runs/<name>/`` (config.json, metrics.jsonl, checkpoint, acc.png).
    Returns the metric records of every round."""
    fed = build_federation(cfg)
    run = RunDir(run_dir or Path(cfg.runs_dir) / cfg.run_name(), resume=resume, overwrite=overwrite)
    algo, model = fed.algo, fed.model
    sampler = torch.Generator().manual_seed(cfg.seed)
    state = algo.server_init(model)
    client_states: dict[int, dict[str, Any]] = {c.id: {} for c in fed.clients}
    start, elapsed = 0, 0.0
    if resume and run.has_checkpoint():
        ckpt = run.load_checkpoint(device=fed.data.x_train.device)
        state, start = ckpt["state"], int(ckpt["round"])
        client_states = {int(k): v for k, v in ckpt["clients"].items()}
        restore_rng(ckpt["rng"], {"sampler": sampler})
        run.truncate_metrics("round", start)
        done = run.metrics()
        elapsed = done[-1]["wall_time"] if done else 0.0
    else:
        run.write_config({**vars(cfg), "base_lr": fed.base_lr, "algo_hparams": algo.hparams()})

    def checkpoint(round_done: int, rng: dict) -> None:
        run.save_checkpoint(
            {
                "round": round_done,
                "state": state,
                "clients": {str(k): v for k, v in client_states.items()},
                "rng": rng,
            }
        )

    rng_at_round_end = capture_rng({"sampler": sampler})
    bar = _progress(range(start, cfg.rounds), progress, f"{cfg.algo}")
    t0 = time.perf_counter() - elapsed
    round_ = start
    try:
        for round_ in bar:
            if algo.should_stop(state, round_):  # e.g. the privacy budget: stop before it is exceeded
                bar.write(f"{cfg.algo}: stopping before round {round_ + 1} ({algo.round_metrics(state)})")
                checkpoint(round_, rng_at_round_end)
                _plot(run)
                break
            with kernels.nvtx.range(f"round {round_}"):
                record = _one_round(fed, state, client_states, sampler, round_)
            state = record.pop("_state")
            record["wall_time"] = time.perf_counter() - t0
            run.log(record)
            rng_at_round_end = capture_rng({"sampler": sampler})
            if (round_ + 1) % cfg.checkpoint_every == 0 or round_ + 1 == cfg.rounds:
                checkpoint(round_ + 1, rng_at_round_end)
                _plot(run)
            if progress and "test_acc" in record:
                bar.set_postfix(acc=f"{record['test_acc']:.3f}", loss=f"{record['train_loss']:.3f}")
    except KeyboardInterrupt:
        # The state, client states and RNGs are those of the last completed round: save them.
        checkpoint(round_, rng_at_round_end)
        _plot(run)
        raise
    return run.metrics()


def _one_round(fed: Federation, state, client_states, sampler, round_: int) -> dict[str, Any]:
    cfg, algo = fed.cfg, fed.algo
    lr = lr_at(cfg, fed.base_lr, round_)
    ids = sample_clients(cfg, sampler)
    payload = algo.client_payload(state)
    local = LocalConfig(lr=lr, local_steps=cfg.local_steps, round=round_, grad_clip=cfg.grad_clip)
    messages, pending = [], {}
    for cid in ids:
        client = fed.clients[cid]
        seed = _client_seed(cfg.seed, round_, cid)
        idx = fed.client_train[cid]
        client.batches = lambda idx=idx, s=seed: _batches(fed.data, idx, cfg.batch_size, s)
        client.state = dict(client_states[cid])  # committed only when the round completes
        with kernels.nvtx.range(f"client {cid}"):
            messages.append(algo.client_update(fed.model, payload, client, local))
        pending[cid] = client.state
    server = ServerConfig(
        lr=lr, local_steps=cfg.local_steps, round=round_, num_clients=cfg.clients, weighting=cfg.weighting
    )
    if messages or getattr(algo, "aggregates_empty_rounds", False):
        with kernels.nvtx.range("aggregate"):
            state = algo.server_aggregate(state, messages, server)
    client_states.update(pending)
    record: dict[str, Any] = {
        "round": round_ + 1,
        "lr": lr,
        "clients": ids,
        "train_loss": float(np.mean([m["loss"] for m in messages])) if messages else float("nan"),
        "bytes_down": nbytes(payload) * len(ids),
        "bytes_up": sum(nbytes(m) for m in messages),
        "_state": state,
    }
    record.update(algo.round_metrics(state))
    if (round_ + 1) % cfg.eval_every == 0 or round_ + 1 == cfg.rounds:
        with kernels.nvtx.range("evaluate"):
            load_weights(fed.eval_model, state["weights"])
            record["test_acc"], record["test_loss"] = evaluate(
                fed.eval_model, fed.data.x_test, fed.data.y_test
            )
            if len(fed.client_test_y):
                record["client_test_acc"], _ = evaluate(fed.eval_model, fed.client_test_x, fed.client_test_y)
    return record


def _progress(it, enabled: bool, desc: str):
    from tqdm.auto import tqdm

    return tqdm(it, desc=desc, disable=not enabled, leave=False, dynamic_ncols=True)


def _plot(run: RunDir) -> None:
    pts = [(m["round"], m["test_acc"]) for m in run.metrics() if "test_acc" in m]
    if pts:
        plot_curves(run.path / "acc.png", {"test accuracy": pts}, xlabel="round", ylabel="test accuracy")
