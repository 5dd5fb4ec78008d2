"""Evidence for FER-GCD (issue 12): All / Old / New clustering accuracy of the SimGCD baseline and of
FER-GCD on the cartoon-face generator, several seeds, mean ± std, as a markdown table.

    .venv/bin/python benchmarks/vision/fer_gcd_generator.py --seeds 0 1 2 3 4 [--epochs 15]

Writes benchmarks/results/vision/fer_gcd_generator.md (with machine identity and the config) and a
JSON of every run beside it. Both methods use the same data, split, backbone and schedule per seed;
only the FER-GCD terms differ.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))

from machine_tag import cpu_count, cpu_name  # noqa: E402

from pyvision.fer_gcd.train import FerGcdConfig, train  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    ap.add_argument("--epochs", type=int, default=FerGcdConfig.epochs)
    ap.add_argument("--n-train", type=int, default=FerGcdConfig.n_train)
    ap.add_argument("--out", default=str(ROOT / "benchmarks/results/vision/fer_gcd_generator.md"))
    args = ap.parse_args(argv)
    results: dict[str, list[dict]] = {"simgcd": [], "fer-gcd": []}
    t0 = time.time()
    for seed in args.seeds:
        for method in results:
            cfg = FerGcdConfig(method=method, seed=seed, epochs=args.epochs, n_train=args.n_train)
            t = time.time()
            out = train(cfg, progress=False)
            results[method].append({"seed": seed, **out["final"], "seconds": time.time() - t})
            print(method, seed, out["final"], flush=True)
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                                text=True, check=False).stdout.strip()
    except OSError:
        commit = "?"
    cfg = dataclasses.asdict(FerGcdConfig(epochs=args.epochs, n_train=args.n_train))
    lines = [
        "# FER-GCD vs SimGCD on the cartoon-face generator",
        "",
        f"Machine: {cpu_name()} ({cpu_count()} cores), torch {torch.__version__}, Python "
        f"{platform.python_version()}, commit {commit}, {time.strftime('%Y-%m-%d')}; total "
        f"{time.time() - t0:.0f} s.",
        "",
        f"Transductive GCD accuracy (one Hungarian assignment on the unlabelled training samples), "
        f"{len(args.seeds)} seeds {args.seeds}, mean ± std (population std over seeds). Old classes "
        f"{cfg['old_classes']} (neutral, happiness, sadness, surprise), new: fear, disgust, anger.",
        "",
        "| method | All | Old | New |",
        "|---|---|---|---|",
    ]
    for method, runs in results.items():
        cells = []
        for k in ("all", "old", "new"):
            v = np.array([r[k] for r in runs]) * 100
            cells.append(f"{v.mean():.1f} ± {v.std():.1f}")
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    lines += ["", "Config (cpu preset, per run: method and seed vary):", "", "```json",
              json.dumps(cfg, indent=1, default=str), "```", ""]
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines))
    out.with_suffix(".json").write_text(json.dumps(results, indent=1))
    print("\n".join(lines[:12]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
