"""The Flower app: ``server_app`` (config from the run config) and ``client_app``, plus
``flower_simulate`` (Flower's simulation engine in this process, for ``python -m pyfed flower-sim``).

``flwr run .`` loads ``pyfed.flower.app:server_app`` and ``pyfed.flower.app:client_app`` (see
``[tool.flwr.app.components]`` in pyproject.toml); the run config (``[tool.flwr.app.config]``,
``--run-config``) holds the ``FedConfig`` fields with "-" for "_" (``clients-per-round = 5``),
``algo-args`` as a JSON object, and the runtime options ``run-dir``, ``resume``, ``overwrite``,
``round-timeout``, ``min-nodes``, ``partitions``, ``min-replies``, ``retries`` (``AlgorithmStrategy``'s
arguments).
TOML has no null: ``lr = 0``, ``grad-clip = 0``, ``name = ""``, ``data-dir = ""``, ``run-dir = ""``,
``min-nodes = 0`` mean None / the default.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from flwr.app import Context
from flwr.serverapp import Grid, ServerApp

from pyfed.config import FedConfig
from pyfed.flower.client import app as client_app
from pyfed.flower.strategy import AlgorithmStrategy

__all__ = [
    "client_app",
    "config_from_run_config",
    "default_backend_config",
    "flower_simulate",
    "make_server_app",
    "server_app",
]

_RUNTIME = {"run-dir": str, "resume": bool, "overwrite": bool, "round-timeout": float, "min-replies": int,
            "retries": int, "min-nodes": int, "partitions": str}
_NONE_WHEN_FALSY = ("lr", "grad_clip", "name", "data_dir", "threads")


def config_from_run_config(run_config: Mapping[str, Any]) -> tuple[FedConfig, dict[str, Any]]:
    """(FedConfig, strategy options) from a Flower run config; unknown keys raise ValueError."""
    fields = {f.name for f in dataclasses.fields(FedConfig)}
    values: dict[str, Any] = {}
    options: dict[str, Any] = {}
    for key, value in run_config.items():
        if key in _RUNTIME:
            options[key.replace("-", "_")] = _RUNTIME[key](value)
            continue
        name = key.replace("-", "_")
        if name not in fields:
            raise ValueError(
                f"run config key {key!r} is neither a FedConfig field nor one of {sorted(_RUNTIME)}"
            )
        if name == "algo_args":
            value = json.loads(value) if isinstance(value, str) else dict(value)
            if not isinstance(value, dict):
                raise ValueError(f"algo-args must be a JSON object, got {run_config[key]!r}")
        elif (name in _NONE_WHEN_FALSY and not value) or (name == "grad_clip" and value < 0):
            value = None
        values[name] = value
    for key in ("run_dir", "min_nodes"):  # "" / 0: the default
        if key in options and not options[key]:
            del options[key]
    return FedConfig(**values).validate(), options


def make_server_app(cfg: FedConfig, results: dict[str, Any] | None = None, **options: Any) -> ServerApp:
    """A ServerApp that runs ``cfg`` with ``AlgorithmStrategy(cfg, **options)``; the strategy's final
    ``Result`` and metric records land in ``results`` (when given) under "result" and "metrics"."""
    app = ServerApp()

    @app.main()
    def main(grid: Grid, context: Context) -> None:
        strategy = AlgorithmStrategy(cfg, **options)
        result = strategy.start(grid)
        if results is not None:
            results.update(result=result, metrics=strategy.run.metrics(), state=strategy.state)

    return app


server_app = ServerApp()


@server_app.main()
def _server_main(grid: Grid, context: Context) -> None:
    cfg, options = config_from_run_config(context.run_config)
    AlgorithmStrategy(cfg, progress=False, **options).start(grid)


def flower_simulate(
    cfg: FedConfig,
    *,
    run_dir: str | Path | None = None,
    resume: bool = False,
    overwrite: bool = False,
    progress: bool = False,
    num_supernodes: int | None = None,
    backend_config: dict[str, Any] | None = None,
    **options: Any,
) -> list[dict[str, Any]]:
    """Run ``cfg`` on Flower's simulation engine (Ray) with one virtual SuperNode per client (or
    ``num_supernodes``, then the clients go round-robin over them); returns the metric records, as
    ``pyfed.simulator.simulate`` does."""
    from flwr.simulation import run_simulation

    os.environ.setdefault("FLWR_TELEMETRY_ENABLED", "0")
    os.environ.setdefault("RAY_ACCEL_ENV_VAR_OVERRIDE_ON_ZERO", "0")  # CPU clients: leave the GPU env alone
    results: dict[str, Any] = {}
    num_supernodes = num_supernodes or cfg.clients
    if num_supernodes != cfg.clients:  # the engine numbers its nodes' partitions 0..num_supernodes-1
        options.setdefault("partitions", "round-robin")
    server = make_server_app(cfg, results, run_dir=run_dir, resume=resume, overwrite=overwrite,
                             progress=progress, **options)
    run_simulation(server, client_app, num_supernodes=num_supernodes,
                   backend_config=backend_config or default_backend_config())
    if "metrics" not in results:
        raise RuntimeError("the Flower simulation ended without running the server app to completion")
    return results["metrics"]


def default_backend_config(num_cpus: int | None = None) -> dict[str, Any]:
    """Ray: ``num_cpus`` workers (default: this machine's cores), one CPU per ClientApp, quiet logs."""
    n = num_cpus or os.cpu_count() or 1
    return {"init_args": {"num_cpus": n}, "client_resources": {"num_cpus": 1, "num_gpus": 0.0}}


def run_cli(args: Any, cfg: FedConfig) -> int:
    """``python -m pyfed flower-sim``: ``flower_simulate`` with the parsed options; prints the last round."""
    from kernels.profiling import capture

    if cfg.name is None:  # keep Flower runs apart from the simulator's runs of the same settings
        cfg = cfg.replace(name=f"flower-{cfg.run_name()}")
    with capture("pyfed.flower_sim", enabled=args.profile):
        metrics = flower_simulate(
            cfg,
            resume=args.resume,
            overwrite=args.overwrite,
            progress=not args.no_progress,
            num_supernodes=args.supernodes,
            backend_config=default_backend_config(args.ray_cpus),
            round_timeout=args.round_timeout,
        )
    last = metrics[-1]
    keys = ("round", "test_acc", "train_loss", "bytes_up", "wire_bytes_up", "wall_time")
    print(json.dumps({k: last[k] for k in keys if k in last}))
    print(f"run directory: {Path(cfg.runs_dir) / cfg.run_name()}")
    return 0
