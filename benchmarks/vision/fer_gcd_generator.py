"""Evidence for FER-GCD (issue 12): All / Old / New clustering accuracy of the SimGCD baseline and of
FER-GCD on the cartoon-face generator, several seeds, mean ± std, as a markdown table.

    .venv/bin/python benchmarks/vision/fer_gcd_generator.py --seeds 0 1 2 3 4 [--epochs 15] [--jobs 2]

Writes benchmarks/results/vision/fer_gcd_generator.md (with machine identity and the config) and a
JSON of every run beside it. Both methods use the same data, split, pretrained backbone and schedule per
seed; only the FER-GCD terms differ. Two references per seed: chance (the mean Hungarian accuracy of
uniformly random predictions on the same unlabelled set, 200 draws) and k-means (k = 7) on the L2-normalized
backbone features of each trained model. Each run uses one torch thread; ``--jobs`` runs in parallel.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))

from machine_tag import cpu_count, cpu_name  # noqa: E402

from pyvision.fer_gcd.evaluate import split_cluster_accuracy  # noqa: E402
from pyvision.fer_gcd.train import FerGcdConfig, gcd_split, load_dataset, train  # noqa: E402


def _unlabelled(cfg: FerGcdConfig) -> tuple[torch.Tensor, np.ndarray]:
    images, labels = load_dataset(cfg)
    g = torch.Generator().manual_seed(cfg.seed + 1)
    labelled = gcd_split(labels, cfg.old_classes, cfg.labelled_fraction, g)
    return images[~labelled], labels[~labelled].numpy()


def chance(cfg: FerGcdConfig, draws: int = 200) -> dict[str, float]:
    _, y = _unlabelled(cfg)
    old = np.isin(y, cfg.old_classes)
    rng = np.random.default_rng(cfg.seed)
    accs = np.array([split_cluster_accuracy(y, rng.integers(0, cfg.num_classes, len(y)), old)
                     for _ in range(draws)])
    return dict(zip(("all", "old", "new"), accs.mean(0).tolist(), strict=True))


def _run(job: tuple[str, int, dict]) -> dict:
    method, seed, overrides = job
    torch.set_num_threads(1)
    from sklearn.cluster import KMeans

    cfg = FerGcdConfig(method=method, seed=seed, **overrides)
    t = time.time()
    out = train(cfg, progress=False)
    images, y = _unlabelled(cfg)
    model = out["model"].eval()
    with torch.no_grad():
        feats = F.normalize(model.backbone(images), dim=1).numpy()
    km = KMeans(cfg.num_classes, n_init=5, random_state=seed).fit(feats).labels_
    km_acc = split_cluster_accuracy(y, km, np.isin(y, cfg.old_classes))
    rec = {"method": method, "seed": seed, **out["final"],
           "kmeans": dict(zip(("all", "old", "new"), km_acc, strict=True)), "seconds": time.time() - t}
    print(method, seed, {k: round(v, 3) for k, v in out["final"].items()}, f"{rec['seconds']:.0f}s",
          flush=True)
    return rec


def _cells(runs: list[dict]) -> list[str]:
    cells = []
    for k in ("all", "old", "new"):
        v = np.array([r[k] for r in runs]) * 100
        cells.append(f"{v.mean():.1f} ± {v.std():.1f}")
    return cells


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    ap.add_argument("--epochs", type=int, default=FerGcdConfig.epochs)
    ap.add_argument("--n-train", type=int, default=FerGcdConfig.n_train)
    ap.add_argument("--class-balance", default=FerGcdConfig.class_balance, choices=("rafdb", "uniform"))
    ap.add_argument("--pretrain", default=FerGcdConfig.pretrain)
    ap.add_argument("--jobs", type=int, default=1)
    ap.add_argument("--out", default=str(ROOT / "benchmarks/results/vision/fer_gcd_generator.md"))
    args = ap.parse_args(argv)
    overrides = dict(epochs=args.epochs, n_train=args.n_train, class_balance=args.class_balance,
                     pretrain=args.pretrain)
    t0 = time.time()
    jobs = [(m, s, overrides) for s in args.seeds for m in ("simgcd", "fer-gcd")]
    if args.jobs > 1:
        with ProcessPoolExecutor(args.jobs) as pool:
            recs = list(pool.map(_run, jobs))
    else:
        recs = [_run(j) for j in jobs]
    results = {m: [r for r in recs if r["method"] == m] for m in ("simgcd", "fer-gcd")}
    ref = [chance(FerGcdConfig(seed=s, **overrides)) for s in args.seeds]
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                                text=True, check=False).stdout.strip()
    except OSError:
        commit = "?"
    cfg = dataclasses.asdict(FerGcdConfig(**overrides))
    lines = [
        "# FER-GCD vs SimGCD on the cartoon-face generator",
        "",
        f"Machine: {cpu_name()} ({cpu_count()} cores, one torch thread per run, {args.jobs} runs in "
        f"parallel), "
        f"torch {torch.__version__}, Python {platform.python_version()}, commit {commit}, "
        f"{time.strftime('%Y-%m-%d')}; total {time.time() - t0:.0f} s.",
        "",
        f"Transductive GCD accuracy in % (one Hungarian assignment on the unlabelled training samples), "
        f"{len(args.seeds)} seeds {args.seeds}, mean ± std (population std over seeds). Old classes "
        f"{cfg['old_classes']} (neutral, happiness, sadness, surprise), new: fear, disgust, anger; class "
        f"balance {args.class_balance}; backbone pretraining {args.pretrain} (no new-class labels).",
        "",
        "| method | All | Old | New |",
        "|---|---|---|---|",
        "| chance (uniformly random predictions) | " + " | ".join(_cells(ref)) + " |",
    ]
    for method, runs in results.items():
        lines.append(f"| {method} | " + " | ".join(_cells(runs)) + " |")
    for method, runs in results.items():
        lines.append(f"| k-means on {method}'s backbone features | "
                     + " | ".join(_cells([r["kmeans"] for r in runs])) + " |")
    lines += ["", "Per seed (All / Old / New):", "", "| seed | simgcd | fer-gcd |", "|---|---|---|"]
    for a, b in zip(results["simgcd"], results["fer-gcd"], strict=True):
        fmt = lambda r: " / ".join(f"{100 * r[k]:.1f}" for k in ("all", "old", "new"))  # noqa: E731
        lines.append(f"| {a['seed']} | {fmt(a)} | {fmt(b)} |")
    lines += ["", "Config (cpu preset, per run: method and seed vary):", "", "```json",
              json.dumps(cfg, indent=1, default=str), "```", ""]
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines))
    out.with_suffix(".json").write_text(json.dumps({"runs": recs, "chance": ref}, indent=1))
    print("\n".join(lines[:14]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
