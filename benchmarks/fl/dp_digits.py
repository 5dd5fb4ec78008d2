"""Experiment (not a test): client-level DP on scikit-learn's digits — DP-FedAvg, DP-FedSAM, DP-FedPGN at
ε = 2, 4, 8 (δ = 1e-3), plus a clip-only row (σ → 0, no privacy) to show what the noise costs.

50 clients, Dirichlet(0.6), the small CNN (``--model cnn``: no normalization layers, or ``cnn-gn``: with
GroupNorm; neither has running statistics that would leave a client). Clients per round by ``--sampling``
(one table each): "fixed" = S of N without replacement, accounted under replace-one (sensitivity 2C);
"poisson" = each client joins with probability q = S/N, accounted under add/remove (sensitivity C), the
noised sum divided by qN. σ is calibrated per (sampling, ε) with pyfed.dp.accounting (RDP) to spend the
budget in exactly ``--rounds`` rounds; one global clip bound C for every algorithm, central noise.
Reports test accuracy (mean ± std over seeds) and the mean pre-clip residual norm per round
(``diagnostics=True``: a non-private diagnostic, not covered by ε), which the paper says the penalty
shrinks.

    python benchmarks/fl/dp_digits.py                      # the first committed table (~7 min, 1 thread)
    python benchmarks/fl/dp_digits.py --model cnn-gn --sampling fixed,poisson --stem dp_digits.gn
    python benchmarks/fl/dp_digits.py --rounds 5 --seeds 1 --eps 8   # a quick look
"""

from __future__ import annotations

import argparse
import datetime
import platform
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

ALGOS = ["dp_fedavg", "dp_fedsam", "dp_fedpgn"]
CLIP_ONLY = 1e-6  # σ for the no-privacy reference row
# Ablations by name: DP-FedPGN with β = 0 keeps the mixing and the drift-corrected residual but drops the
# penalty, which separates what the penalty does from what γ does.
VARIANTS = {"dp_fedpgn_b0": ("dp_fedpgn", {"beta": 0.0})}


def _run(job: tuple) -> tuple:
    algo, sampling, eps, sigma, seed, a = job
    from pyfed.config import FedConfig
    from pyfed.simulator import simulate

    real, extra = VARIANTS.get(algo, (algo, {}))
    cfg = FedConfig(
        dataset="digits",
        model=a.model,
        partition="dirichlet",
        alpha=0.6,
        clients=a.clients,
        clients_per_round=a.sample,
        sampling=sampling,
        local_steps=a.local_steps,
        batch_size=16,
        rounds=a.rounds,
        lr=a.lr,
        eval_every=a.rounds,  # the final accuracy is what the table reports
        checkpoint_every=a.rounds,
        seed=seed,
        threads=1,
        algo=real,
        algo_args={
            **extra,
            "clip_norm": a.clip,
            "noise_multiplier": sigma,
            "delta": a.delta,
            "num_clients": a.clients,
            "sample_size": a.sample,
            "sampling": sampling,
            "noise_seed": 1000 + seed,
            "diagnostics": True,
        },
        name=f"{algo}-{a.model}-{sampling}-eps{eps}-s{seed}",
        runs_dir=a.runs_dir,
    )
    ms = simulate(cfg, overwrite=True, progress=False)
    norm = float(np.nanmean([m["mean_residual_norm"] for m in ms]))  # NaN: an empty Poisson round
    return algo, sampling, eps, seed, ms[-1]["test_acc"], norm, ms[-1]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--algos", default=",".join(ALGOS))
    ap.add_argument("--eps", default="2,4,8", help="comma-separated budgets; 'inf' adds the clip-only row")
    ap.add_argument("--clip-only-seeds", type=int, default=2, help="seeds of the σ → 0 reference row")
    ap.add_argument("--delta", type=float, default=1e-3)
    ap.add_argument("--model", default="cnn", choices=("cnn", "cnn-gn"))
    ap.add_argument("--sampling", default="fixed", help="comma-separated: fixed, poisson (a table each)")
    ap.add_argument("--stem", default="dp_digits", help="output file names: STEM.md, STEM.png")
    ap.add_argument("--clients", type=int, default=50)
    ap.add_argument("--sample", type=int, default=10, help="S clients per round")
    ap.add_argument("--rounds", type=int, default=40)
    ap.add_argument("--local-steps", type=int, default=5)
    ap.add_argument("--lr", type=float, default=0.05)
    ap.add_argument("--clip", type=float, default=0.5, help="the global clip bound C")
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--runs-dir", default="runs/dp_digits")
    ap.add_argument("--out", default="benchmarks/results/fl")
    args = ap.parse_args()
    algos = [x for x in args.algos.split(",") if x]
    budgets = [float(e) for e in args.eps.split(",") if e]
    samplings = [x for x in args.sampling.split(",") if x]
    if any(x not in ("fixed", "poisson") for x in samplings):
        raise ValueError(f"--sampling takes fixed and/or poisson, got {args.sampling!r}")

    from pyfed.dp.accounting import epsilon, noise_multiplier_for

    acct = {"fixed": "without_replacement", "poisson": "poisson"}
    sigmas = {
        (sp, e): noise_multiplier_for(
            e, args.rounds, args.delta, sample_size=args.sample, num_clients=args.clients, sampling=acct[sp]
        )
        for sp in samplings
        for e in budgets
    }
    jobs = [
        (a, sp, e, sigmas[(sp, e)], s, args)
        for sp in samplings
        for e in budgets
        for a in algos
        for s in range(args.seeds)
    ]
    jobs += [
        (a, sp, float("inf"), CLIP_ONLY, s, args)
        for sp in samplings
        for a in algos
        for s in range(args.clip_only_seeds)
    ]
    t0 = time.perf_counter()
    acc: dict[tuple, list[float]] = {}
    norm: dict[tuple, list[float]] = {}
    spent: dict[tuple, float] = {}
    with ProcessPoolExecutor(args.workers) as pool:
        for algo, sp, e, seed, a, r, last in pool.map(_run, jobs):
            acc.setdefault((algo, sp, e), []).append(a)
            norm.setdefault((algo, sp, e), []).append(r)
            spent[(sp, e)] = last["epsilon"]
            print(f"{algo} {sp} ε={e} seed {seed}: acc {a:.4f}, mean residual norm {r:.3f}", flush=True)
    wall = time.perf_counter() - t0

    cols = [*budgets, float("inf")] if args.clip_only_seeds else budgets
    relation = {
        "fixed": "fixed S without replacement, replace-one (sensitivity 2C)",
        "poisson": "Poisson at q = S/N, add/remove (sensitivity C), sum divided by qN",
    }
    lines = [
        f"# Client-level DP on digits: {args.clients} clients, Dirichlet 0.6, {args.model}, "
        f"{args.rounds} rounds",
        "",
        f"Date {datetime.date.today()}, machine {platform.processor() or platform.machine()}, "
        f"python {sys.version.split()[0]}, {wall / 60:.1f} min at 1 thread. "
        f"Command: `python benchmarks/fl/dp_digits.py {' '.join(sys.argv[1:])}`. "
        f"S = {args.sample} of N = {args.clients} clients per round (expected count under Poisson), "
        f"K = {args.local_steps}, batch 16, lr {args.lr} (cosine), grad clip 10, C = {args.clip}, "
        f"δ = {args.delta}, central noise, no tuning. {args.rounds} rounds, {args.seeds} seeds per ε "
        f"({args.clip_only_seeds} for the clip-only row). σ calibrated to spend each ε in exactly "
        f"{args.rounds} rounds (dp-accounting RDP, for the sampling of each table).",
    ]
    for sp in samplings:
        head = " | ".join(
            f"ε = {e:g} (σ = {sigmas[(sp, e)]:.2f})" if (sp, e) in sigmas else "clip only (ε = ∞)"
            for e in cols
        )
        lines += [
            "",
            f"## {args.model}, sampling {sp}: {relation[sp]}",
            "",
            "Test accuracy, mean ± std over seeds:",
            "",
            f"| algorithm | {head} |",
            "|---|" + "---|" * len(cols),
        ]
        for a in algos:
            cells = [f"{np.mean(acc[(a, sp, e)]):.4f} ± {np.std(acc[(a, sp, e)]):.4f}" for e in cols]
            lines.append(f"| {a} | " + " | ".join(cells) + " |")
        lines += [
            "",
            "Mean pre-clip residual norm per round (‖R_i‖ averaged over clients and rounds, then seeds; "
            f"C = {args.clip}; a non-private diagnostic):",
            "",
            f"| algorithm | {head} |",
            "|---|" + "---|" * len(cols),
        ]
        for a in algos:
            lines.append(f"| {a} | " + " | ".join(f"{np.mean(norm[(a, sp, e)]):.3f}" for e in cols) + " |")
        ends = ", ".join(f"{e:g}: {spent[(sp, e)]:.3f}" for e in budgets)
        lines += ["", f"ε spent at the end (accountant): {ends}."]
        if sp == "poisson":
            q = args.sample / args.clients
            pld = [
                epsilon(
                    sigmas[(sp, e)],
                    args.rounds,
                    args.delta,
                    sampling_rate=q,
                    sampling="poisson",
                    method="pld",
                )
                for e in budgets
            ]
            pld = ", ".join(f"{e:g}: {v:.3f}" for e, v in zip(budgets, pld, strict=True))
            lines.append(f"The same σ under dp-accounting's PLD accountant: ε = {pld}.")
    table = "\n".join(lines)
    dest = Path(args.out)
    dest.mkdir(parents=True, exist_ok=True)
    (dest / f"{args.stem}.md").write_text(table + "\n")

    from kernels.runs import plot_curves

    plot_curves(
        dest / f"{args.stem}.png",
        {
            f"{a} ({sp})": [(e, float(np.mean(acc[(a, sp, e)]))) for e in budgets]
            for sp in samplings
            for a in algos
        },
        xlabel=f"ε (δ = {args.delta:g})",
        ylabel=f"final test accuracy (mean of {args.seeds} seeds)",
        title=f"digits, {args.clients} clients, Dirichlet 0.6, {args.model}, {args.rounds} rounds",
    )
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
