"""Evidence: does the fundus image add information beyond refraction and age? Trains the image + tabular
model and the refraction + age baseline on the same generator splits (several seeds) and writes a
markdown table to benchmarks/results/vision/myopia_generator.md.

    .venv/bin/python benchmarks/vision/myopia_generator.py [--seeds 3] [--epochs 20]
"""

from __future__ import annotations

import argparse
import dataclasses
import platform
import time
from pathlib import Path

import numpy as np
import torch

from pyvision.myopia.train import MyopiaConfig, fit, prepare_data, split

KEYS = ("rate_mae", "traj_mae", "myopia_auc", "high_myopia_auc", "myopia_ece")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--n", type=int, default=500)
    ap.add_argument("--out", default="benchmarks/results/vision/myopia_generator.md")
    a = ap.parse_args()
    rows = {"image + tabular": [], "tabular only (SE, age)": []}
    t0 = time.time()
    for seed in range(a.seeds):
        base = MyopiaConfig(n_samples=a.n, data_seed=seed, seed=seed, epochs=a.epochs)
        data = prepare_data(base)
        tr, te = split(len(data), base.test_fraction, seed)
        for name, tab in (("image + tabular", False), ("tabular only (SE, age)", True)):
            res = fit(dataclasses.replace(base, tabular_only=tab), data, tr, te)[1]
            rows[name].append([res[k] for k in KEYS])
            print(seed, name, {k: round(res[k], 3) for k in KEYS}, flush=True)
    lines = [
        f"# Myopia progression on the generator ({a.seeds} seeds, n = {a.n}, 25 % hold-out, "
        f"{a.epochs} epochs, horizon 6 years)",
        "",
        f"Machine: {platform.processor() or platform.machine()}, torch {torch.__version__}, "
        f"{time.time() - t0:.0f} s. Mean ± std over seeds.",
        "",
        "| model | rate MAE (D/yr) | trajectory MAE (D) | AUC myopia | AUC high myopia | ECE myopia |",
        "|---|---|---|---|---|---|",
    ]
    for name, r in rows.items():
        r = np.array(r)
        lines.append(
            f"| {name} | "
            + " | ".join(f"{m:.3f} ± {s:.3f}" for m, s in zip(np.nanmean(r, 0), np.nanstd(r, 0), strict=True))
            + " |"
        )
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
