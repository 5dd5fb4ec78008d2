"""Evidence: EMERT on the generator — all streams vs face only vs eyes only (ER and FER heads), on the
same hold-out split, several seeds. Writes benchmarks/results/vision/emert_generator.md.

    .venv/bin/python benchmarks/vision/emert_generator.py [--seeds 2]
"""

from __future__ import annotations

import argparse
import platform
import time
from pathlib import Path

import numpy as np
import torch

from pyvision.emert.train import PRESETS, EMERTConfig, fit, prepare_data

FAST = PRESETS["tiny"]
KEYS = ("er_war", "er_uar", "er_f1_weighted", "fer_war", "fer_f1_weighted")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=2)
    ap.add_argument("--out", default="benchmarks/results/vision/emert_generator.md")
    a = ap.parse_args()
    protos = {"er7": "face + eye + eye2", "er7-face": "face only", "er7-eye": "eye + eye2"}
    rows = {p: [] for p in protos}
    t0 = time.time()
    for seed in range(a.seeds):
        for p in protos:
            cfg = EMERTConfig(protocol=p, seed=seed, data_seed=seed, **FAST)
            data = prepare_data(cfg)
            idx = np.arange(len(data))
            res = fit(cfg, data, idx[:220], idx[220:])[1]
            rows[p].append([res[k] for k in KEYS])
            print(seed, p, {k: round(res[k], 3) for k in KEYS}, flush=True)
    lines = [
        f"# EMERT on the generator (gap = 0.35, {a.seeds} seeds, 220 train / 80 test, tiny nets, 15 epochs)",
        "",
        f"Machine: {platform.processor() or platform.machine()}, torch {torch.__version__}, "
        f"{time.time() - t0:.0f} s. Mean ± std over seeds; chance = 1/7 = 0.143. A linear probe on the "
        "same generator: face→ER 0.65, eyes→ER 0.84, all→ER 0.89.",
        "",
        "| streams | ER WAR | ER UAR | ER F1 (w) | FER WAR | FER F1 (w) |",
        "|---|---|---|---|---|---|",
    ]
    for p, r in rows.items():
        r = np.array(r)
        lines.append(
            f"| {protos[p]} | "
            + " | ".join(f"{m:.3f} ± {s:.3f}" for m, s in zip(r.mean(0), r.std(0), strict=True))
            + " |"
        )
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
