"""Command line: ``python -m pyfed train --algo fedmuon --dataset digits --clients 20 --alpha 0.1 ...`` and
``python -m pyfed compare --algos fedavg,fedadamw,fedmuon ...`` (same partition and seed for every
algorithm; one plot and a markdown table)."""

from __future__ import annotations

import argparse
import ast
import dataclasses
import json
from pathlib import Path
from typing import Any

from pyfed.config import PRESETS, FedConfig

__all__ = ["compare", "main"]


def _algo_arg(text: str) -> tuple[str, Any]:
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"--algo-arg takes KEY=VALUE, got {text!r}")
    key, value = text.split("=", 1)
    try:
        return key, ast.literal_eval(value)
    except (ValueError, SyntaxError):
        return key, value  # a plain string such as v_mode=full


def _add_run_options(p: argparse.ArgumentParser) -> None:
    d = FedConfig()
    p.add_argument("--preset", choices=sorted(PRESETS), help="named settings; explicit options override them")
    p.add_argument("--dataset", help=f"digits | synthetic | cifar10 | cifar100 (default {d.dataset})")
    p.add_argument("--data-dir", help="folder holding cifar-10-batches-py / cifar-100-python")
    p.add_argument(
        "--model", help=f"cnn | cnn-gn | resnet10 | resnet18 | resnet10-gn | resnet18-gn | vit ({d.model})"
    )
    p.add_argument("--partition", choices=("dirichlet", "iid"))
    p.add_argument("--alpha", type=float, help=f"Dirichlet concentration ({d.alpha})")
    p.add_argument("--clients", type=int, help=f"N ({d.clients})")
    p.add_argument("--clients-per-round", "-S", type=int, help=f"S ({d.clients_per_round})")
    p.add_argument(
        "--sampling",
        choices=("fixed", "poisson"),
        help=f"clients per round: 'fixed' (S of N without replacement) or 'poisson' (each client joins "
        f"independently with probability S/N; dp_* algorithms then account add/remove) ({d.sampling})",
    )
    p.add_argument("--rounds", type=int, help=f"({d.rounds})")
    p.add_argument("--local-steps", "-K", type=int, help=f"K ({d.local_steps})")
    p.add_argument("--batch-size", type=int, help=f"({d.batch_size})")
    p.add_argument("--lr", type=float, help="client lr (default: the algorithm's default_lr)")
    p.add_argument("--lr-decay", choices=("cosine", "exp", "none"))
    p.add_argument("--lr-decay-rate", type=float)
    p.add_argument("--grad-clip", type=float, help="max grad norm per local step (<= 0: none)")
    p.add_argument("--weighting", choices=("uniform", "examples"))
    p.add_argument("--eval-every", type=int)
    p.add_argument("--checkpoint-every", type=int)
    p.add_argument("--seed", type=int)
    p.add_argument("--device", help="auto (cuda when available) | cpu | cuda | cuda:N")
    p.add_argument(
        "--profile",
        action="store_true",
        help="bracket the run for Nsight (kernels.profiling.capture; see README)",
    )
    p.add_argument("--threads", type=int, help="torch intra-op threads (1 suits the small models)")
    p.add_argument("--name", help="run name (default: derived from the settings)")
    p.add_argument("--runs-dir", help="parent folder of run directories (runs)")
    p.add_argument(
        "--algo-arg",
        type=_algo_arg,
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="an algorithm hyperparameter, e.g. --algo-arg alpha=0.5 (repeatable)",
    )
    p.add_argument(
        "--target-epsilon",
        type=float,
        help="dp_* algorithms: the privacy budget ε; σ is calibrated to spend it in --rounds rounds "
        "(unless --algo-arg noise_multiplier=... is given) and training stops before it is exceeded",
    )
    p.add_argument("--delta", type=float, help="dp_* algorithms: the δ of (ε, δ)-DP (default 1e-3)")
    p.add_argument("--resume", action="store_true", help="continue the run from its last checkpoint")
    p.add_argument("--overwrite", action="store_true", help="start over in an existing run directory")
    p.add_argument("--no-progress", action="store_true")


def config_from_args(args: argparse.Namespace, algo: str) -> FedConfig:
    values: dict[str, Any] = dict(PRESETS[args.preset]) if args.preset else {}
    fields = {f.name for f in dataclasses.fields(FedConfig)}
    for key, value in vars(args).items():
        if key in fields and value is not None and key not in ("algo", "algo_args"):
            values[key] = value
    if values.get("grad_clip") is not None and values["grad_clip"] <= 0:
        values["grad_clip"] = None
    values["algo"] = algo
    values["algo_args"] = dict(args.algo_arg)
    cfg = FedConfig(**values).validate()
    from pyfed.algorithms import algorithm_class

    if getattr(algorithm_class(cfg.algo), "is_dp", False):
        from pyfed.dp.accounting import privacy_args

        cfg.algo_args = privacy_args(
            cfg.algo_args,
            target_epsilon=args.target_epsilon,
            delta=args.delta,
            rounds=cfg.rounds,
            num_clients=cfg.clients,
            sample_size=cfg.clients_per_round,
            sampling=cfg.sampling,
        )
    elif args.target_epsilon is not None or args.delta is not None:
        raise ValueError(f"--target-epsilon/--delta need a dp_* algorithm, got {cfg.algo!r}")
    return cfg


def compare(
    base: FedConfig,
    algos: list[str],
    *,
    target: float | None,
    out_dir: Path,
    resume: bool = False,
    overwrite: bool = False,
    progress: bool = True,
) -> str:
    """Run every algorithm on the same partition and seed; write compare.png and compare.md in
    ``out_dir``; return the markdown table."""
    from kernels.runs import plot_curves
    from pyfed.simulator import simulate

    results = {}
    for algo in algos:
        cfg = dataclasses.replace(base, algo=algo, name=algo, runs_dir=str(out_dir))
        results[algo] = simulate(cfg, resume=resume, overwrite=overwrite, progress=progress)
    series = {a: [(m["round"], m["test_acc"]) for m in ms if "test_acc" in m] for a, ms in results.items()}
    plot_curves(
        out_dir / "compare.png",
        series,
        xlabel="round",
        ylabel="test accuracy",
        title=f"{base.dataset}, {base.clients} clients, {base.partition} α={base.alpha}",
    )
    table = summary_table(results, target)
    (out_dir / "compare.md").write_text(table + "\n")
    return table


def rounds_to(metrics: list[dict], target: float) -> int | None:
    return next((m["round"] for m in metrics if m.get("test_acc", -1) >= target), None)


def summary_table(results: dict[str, list[dict]], target: float | None) -> str:
    lines = [
        "| algorithm | lr | final acc | best acc | rounds to target | MB up/round | MB down/round |",
        "|---|---|---|---|---|---|---|",
    ]
    for algo, ms in results.items():
        accs = [m["test_acc"] for m in ms if "test_acc" in m]
        hit = rounds_to(ms, target) if target is not None else None
        lines.append(
            f"| {algo} | {ms[0]['lr']:g} | {accs[-1]:.4f} | {max(accs):.4f} | "
            f"{hit if hit is not None else ('—' if target is None else 'not reached')} | "
            f"{ms[-1]['bytes_up'] / 1e6:.3f} | {ms[-1]['bytes_down'] / 1e6:.3f} |"
        )
    lines.append(
        "\nlr: the client learning rate of round 1 (each algorithm's default unless --lr is given; "
        "the schedule decays it from there)."
    )
    if target is not None:
        lines.append(f"Target accuracy: {target}.")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pyfed", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    train = sub.add_parser("train", help="run one algorithm; writes runs/<name>/")
    train.add_argument("--algo", required=True)
    _add_run_options(train)
    cmp_ = sub.add_parser("compare", help="run several algorithms on the same partition and seed")
    cmp_.add_argument("--algos", required=True, help="comma-separated, e.g. fedavg,fedadamw,fedmuon")
    cmp_.add_argument("--target", type=float, default=None, help="accuracy for the rounds-to-target column")
    _add_run_options(cmp_)
    fsim = sub.add_parser("flower-sim", help="one algorithm on Flower's simulation engine")
    fsim.add_argument("--algo", required=True)
    fsim.add_argument("--supernodes", type=int, help="virtual SuperNodes (default: one per client)")
    fsim.add_argument("--ray-cpus", type=int, help="CPUs Ray may use (default: all)")
    fsim.add_argument("--round-timeout", type=float, default=600.0, help="seconds to wait for a round")
    _add_run_options(fsim)
    args = parser.parse_args(argv)
    if args.command == "flower-sim":  # imported here: flwr and Ray load only for this command
        from pyfed.flower.app import run_cli

        return run_cli(args, config_from_args(args, args.algo))

    from kernels.profiling import capture
    from pyfed.simulator import simulate

    if args.command == "train":
        cfg = config_from_args(args, args.algo)
        with capture("pyfed.train", enabled=args.profile):
            metrics = simulate(
                cfg, resume=args.resume, overwrite=args.overwrite, progress=not args.no_progress
            )
        last = metrics[-1]
        print(json.dumps({k: last[k] for k in ("round", "test_acc", "train_loss", "wall_time") if k in last}))
        print(f"run directory: {Path(cfg.runs_dir) / cfg.run_name()}")
        return 0
    algos = [a.strip() for a in args.algos.split(",") if a.strip()]
    cfg = config_from_args(args, algos[0])
    out = Path(cfg.runs_dir) / (cfg.name or f"compare-{cfg.dataset}-{cfg.model}-a{cfg.alpha}-s{cfg.seed}")
    with capture("pyfed.compare", enabled=args.profile):
        table = compare(
            cfg,
            algos,
            target=args.target,
            out_dir=out,
            resume=args.resume,
            overwrite=args.overwrite,
            progress=not args.no_progress,
        )
    print(table)
    print(f"plot and table: {out}/compare.png, {out}/compare.md")
    return 0
