"""INR T1rho mapping benchmark on the simulated Shepp–Logan series, in two stages.

1. ``--select``: choose the prior weights on a SELECTION phantom (its own seed: coil maps, k-t masks
   and noise differ from every evaluation seed) at one acceleration, by a small grid —
   λ_H × Hankel rank with λ_S = 0, λ_S with λ_H = 0, the DC-only INR, and the best of each combined.
   The criterion is the T1rho nRMSE inside the M0 mask (``map_errors``). Writes
   benchmarks/results/recon/inr_t1rho_select.{md,json}.
2. evaluation (default): R ∈ {4, 6, 8} × evaluation seeds, zero-filled fit, Casorati low-rank, INR with
   data consistency only, INR + Hankel and INR + Hankel + SPIRiT at the selected weights (read from
   inr_t1rho_select.json unless given); mean ± std over seeds. Writes benchmarks/results/recon/inr_t1rho.md.

    python benchmarks/recon/inr_t1rho.py --select [--select-seed 100 --select-accel 6]
    python benchmarks/recon/inr_t1rho.py [--seeds 0 1 2] [--accels 4 6 8] [--iters 200] [--threads 1]
    python benchmarks/recon/inr_t1rho.py --time-iter [--old-hankel /tmp/hankel_old.py]   (cost per iteration)
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "benchmarks"))

from machine_tag import cpu_name  # noqa: E402

from pyrecon.inr.t1rho import (  # noqa: E402
    M0_FRAC,
    T1_MAX_MS,
    T1RHO_MS_BY_T2,
    T1rhoConfig,
    fit_t1rho_inr,
    lowrank_images,
    map_errors,
    maps_from_images,
    simulate_t1rho,
    zero_filled_images,
)

RESULTS = REPO / "benchmarks/results/recon"
LAM_H_GRID = (0.3, 3.0, 30.0)
RANK_GRID = (20, 40, 80)
LAM_S_GRID = (0.01, 0.1, 1.0, 10.0)


def _data(cfg: T1rhoConfig, accel: int, seed: int):
    return simulate_t1rho(cfg.size, cfg.coils, cfg.tsl, accel, center_lines=cfg.center_lines, noise=cfg.noise,
                          seed=seed)


def _score(d, img, secs, cfg) -> dict:
    _, t1 = maps_from_images(img, d.tsl, cfg)
    e = map_errors(t1.float(), d.t1rho, d.labels, d.m0)
    e["image_nrmse"] = float((img - d.images).norm() / d.images.norm())
    e["time_s"] = secs
    return e


def _fit(d, cfg) -> tuple[torch.Tensor, float]:
    t0 = time.perf_counter()
    img, _ = fit_t1rho_inr(d, cfg, progress=False)
    return img, time.perf_counter() - t0


def _header(a, base: T1rhoConfig, extra: str) -> list[str]:
    commit = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True).stdout.strip()
    return [
        f"Date {datetime.date.today()}, {cpu_name()}, {a.threads} thread(s), torch {torch.__version__}, "
        f"python {platform.python_version()}, commit {commit}. "
        f"Command: `python benchmarks/recon/inr_t1rho.py "
        f"{' '.join(sys.argv[1:])}`.",
        f"Data: {base.size}², {base.coils} coils, TSL {list(base.tsl)} ms, noise σ = {base.noise}, centre "
        f"{base.center_lines} lines; T1rho per tissue (ms) {list(T1RHO_MS_BY_T2.values())}. INR: {a.iters} "
        f"Adam iterations, lr {base.lr}; Hankel kernel {base.hankel_kernel}, crop {base.hankel_crop}; SPIRiT "
        f"kernel {base.spirit_kernel}. Maps: log-linear + {base.fit_iters} LM steps, T1rho kept in "
        f"[1, {T1_MAX_MS:g}] ms. {extra}",
        "Errors: 'nRMSE' over all tissue; 'M0-mask nRMSE' over tissue with M0 >= "
        f"{M0_FRAC:g}·max M0 (leaves out the outer ring, M0 = 0.12 of 0.98: {{}} voxels kept); "
        "'bound hits' = tissue voxels whose fitted T1rho is at a fit bound "
        "(all tissue / inside the M0 mask).",
    ]


def select(a, base: T1rhoConfig) -> int:
    d = _data(base, a.select_accel, a.select_seed)
    grid = [("DC only", 0.0, base.hankel_rank, 0.0)]
    grid += [(f"H λ_H={lh:g} r={r}", lh, r, 0.0) for lh in LAM_H_GRID for r in RANK_GRID]
    grid += [(f"S λ_S={ls:g}", 0.0, base.hankel_rank, ls) for ls in LAM_S_GRID]
    rows = []
    log = RESULTS / "inr_t1rho_select.jsonl"
    log.write_text("")

    def run_one(name, lh, r, ls):
        cfg = dataclasses.replace(base, lam_hankel=lh, hankel_rank=r, lam_spirit=ls)
        img, secs = _fit(d, cfg)
        e = _score(d, img, secs, cfg)
        rows.append({"name": name, "lam_hankel": lh, "hankel_rank": r, "lam_spirit": ls, **e})
        with log.open("a") as fh:
            fh.write(json.dumps(rows[-1]) + "\n")
        print(f"{name:24s} M0-mask {e['m0_nrmse']:.4f} all {e['nrmse']:.4f} hits {e['bound_hits']}/"
              f"{e['m0_bound_hits']} image {e['image_nrmse']:.4f} {secs:.1f}s", flush=True)

    for g in grid:
        run_one(*g)
    best_h = min((r for r in rows if r["lam_hankel"] > 0), key=lambda r: r["m0_nrmse"])
    best_s = min((r for r in rows if r["lam_spirit"] > 0), key=lambda r: r["m0_nrmse"])
    run_one(f"H+S λ_H={best_h['lam_hankel']:g} r={best_h['hankel_rank']} λ_S={best_s['lam_spirit']:g}",
            best_h["lam_hankel"], best_h["hankel_rank"], best_s["lam_spirit"])
    chosen = {"lam_hankel": best_h["lam_hankel"], "hankel_rank": best_h["hankel_rank"],
              "lam_spirit": best_s["lam_spirit"], "select_seed": a.select_seed,
              "select_accel": a.select_accel,
              "iters": a.iters}
    (RESULTS / "inr_t1rho_select.json").write_text(json.dumps(chosen, indent=2) + "\n")
    dc = rows[0]
    lines = ["# INR T1rho: prior weights chosen on a selection phantom", ""]
    lines += [h.format(dc["m0_voxels"]) for h in _header(
        a, base, f"Selection phantom: seed {a.select_seed}, R = {a.select_accel} (actual "
                 f"{1 / d.mask.mean().item():.2f}). Criterion: M0-mask T1rho nRMSE.")]
    lines += ["", "| setting | M0-mask nRMSE | nRMSE | bound hits (all / mask) | image nRMSE | time (s) |",
              "|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['name']} | {r['m0_nrmse']:.4f} | {r['nrmse']:.4f} | {r['bound_hits']} / "
                     f"{r['m0_bound_hits']} | {r['image_nrmse']:.4f} | {r['time_s']:.1f} |")
    lines += ["", f"Chosen: λ_H = {chosen['lam_hankel']:g}, rank {chosen['hankel_rank']} (best Hankel-only "
              f"setting); λ_S = {chosen['lam_spirit']:g} (best SPIRiT-only setting). DC-only INR on this "
              f"phantom: M0-mask nRMSE {dc['m0_nrmse']:.4f}."]
    (RESULTS / "inr_t1rho_select.md").write_text("\n".join(lines) + "\n")
    print(f"chosen {chosen}")
    return 0


def _ms(vals: list[float], fmt: str = ".4f") -> str:
    m = statistics.fmean(vals)
    s = statistics.stdev(vals) if len(vals) > 1 else 0.0
    return f"{m:{fmt}} ± {s:{fmt}}"


def evaluate(a, base: T1rhoConfig) -> int:
    chosen = json.loads((RESULTS / "inr_t1rho_select.json").read_text()) if a.lam_hankel is None else {}
    lh = a.lam_hankel if a.lam_hankel is not None else chosen["lam_hankel"]
    rank = a.hankel_rank if a.hankel_rank is not None else chosen["hankel_rank"]
    ls = a.lam_spirit if a.lam_spirit is not None else chosen["lam_spirit"]
    prior = dataclasses.replace(base, lam_hankel=lh, hankel_rank=rank, lam_spirit=ls)
    results: dict[tuple[int, str], list[dict]] = {}
    r_eff: dict[int, list[float]] = {}
    m0_voxels = 0
    for accel in a.accels:
        for seed in a.seeds:
            cfg = dataclasses.replace(prior, accel=accel, seed=seed)
            d = _data(cfg, accel, seed)
            r_eff.setdefault(accel, []).append(1 / d.mask.mean().item())
            t0 = time.perf_counter()
            zf = zero_filled_images(d.kspace, d.smaps, d.mask)
            methods = {"zero-filled": (zf, time.perf_counter() - t0)}
            t0 = time.perf_counter()
            methods[f"low-rank (Casorati r={cfg.lowrank_rank})"] = (
                lowrank_images(d.kspace, d.smaps, d.mask, rank=cfg.lowrank_rank, iters=cfg.lowrank_iters),
                time.perf_counter() - t0)
            methods["INR, DC only"] = _fit(d, dataclasses.replace(cfg, lam_hankel=0.0, lam_spirit=0.0))
            methods["INR + Hankel"] = _fit(d, dataclasses.replace(cfg, lam_spirit=0.0))
            methods["INR + Hankel + SPIRiT"] = _fit(d, cfg)
            for name, (img, secs) in methods.items():
                e = _score(d, img, secs, cfg)
                m0_voxels = e["m0_voxels"]
                results.setdefault((accel, name), []).append(e)
                print(f"R={accel} seed {seed} {name:24s} M0-mask {e['m0_nrmse']:.4f} all {e['nrmse']:.4f} "
                      f"hits {e['bound_hits']}/{e['m0_bound_hits']} image {e['image_nrmse']:.4f} {secs:.1f}s",
                      flush=True)
    tissues = list(T1RHO_MS_BY_T2.values())
    src = (f"selected on seed {chosen['select_seed']} at R = {chosen['select_accel']} "
           "(inr_t1rho_select.md)" if chosen else "given on the command line")
    lines = ["# INR T1rho mapping: T1rho map error vs acceleration (simulated MR Shepp–Logan)", ""]
    lines += [h.format(m0_voxels) for h in _header(
        a, base, f"Priors: λ_H = {lh:g} (rank {rank}), λ_S = {ls:g}, {src}. Evaluation seeds {a.seeds} "
                 "(coil maps, masks and noise per seed); every cell is mean ± std over the seeds.")]
    lines += ["", "| R (nominal / actual) | method | M0-mask nRMSE | nRMSE (all tissue) "
              "| bound hits (all / mask) | image nRMSE | time (s) |", "|---|---|---|---|---|---|---|"]
    for (accel, name), es in results.items():
        lines.append(
            f"| {accel} / {statistics.fmean(r_eff[accel]):.2f} | {name} | "
            f"{_ms([e['m0_nrmse'] for e in es])} | "
            f"{_ms([e['nrmse'] for e in es])} | {_ms([e['bound_hits'] for e in es], '.1f')} / "
            f"{_ms([e['m0_bound_hits'] for e in es], '.1f')} | {_ms([e['image_nrmse'] for e in es])} | "
            f"{_ms([e['time_s'] for e in es], '.1f')} |")
    lines += ["", "Per tissue: fitted T1rho (ms), the mean over seeds of the tissue mean ± "
              "the mean over seeds of the within-tissue std:", "",
              "| R | method | " + " | ".join(f"tissue {i} ({t:g})" for i, t in enumerate(tissues, 1)) + " |",
              "|---|---|" + "---|" * len(tissues)]
    for (accel, name), es in results.items():
        cells = []
        for i in range(1, len(tissues) + 1):
            key = f"tissue{i}"
            cells.append(f"{statistics.fmean(e[key]['mean'] for e in es):.1f} ± "
                         f"{statistics.fmean(e[key]['std'] for e in es):.1f}" if key in es[0] else "–")
        lines.append(f"| {accel} | {name} | " + " | ".join(cells) + " |")
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text("\n".join(lines) + "\n")
    (Path(a.out).with_suffix(".json")).write_text(json.dumps(
        {f"R{k[0]}/{k[1]}": v for k, v in results.items()}, indent=1) + "\n")
    print(f"wrote {a.out}")
    return 0


def time_iterations(a, base: T1rhoConfig) -> int:
    """Per-iteration cost (loss forward + backward, median over interleaved repeats) of the INR fit on the
    selection phantom: DC only, + Hankel, + Hankel + SPIRiT; with ``--old-hankel FILE`` (a hankel.py from
    an earlier commit, e.g. ``git show REV:pyrecon/inr/hankel.py > /tmp/hankel_old.py``) the Hankel
    penalty of that file is timed in the same process too."""
    import importlib.util

    import pyrecon.inr.t1rho as t1mod

    cfg = dataclasses.replace(base, accel=a.select_accel, seed=a.select_seed)
    d = _data(cfg, a.select_accel, a.select_seed)
    g = t1mod.calibrate_from_data(d, cfg)
    y_norm = d.kspace.abs().pow(2).sum()
    torch.manual_seed(0)
    model = t1mod.T1rhoINR(cfg)
    current = t1mod.hankel_lowrank_penalty
    variants = {"DC only": (dataclasses.replace(cfg, lam_hankel=0.0, lam_spirit=0.0), current),
                "+ Hankel": (dataclasses.replace(cfg, lam_spirit=0.0), current),
                "+ Hankel + SPIRiT": (cfg, current)}
    if a.old_hankel:
        spec = importlib.util.spec_from_file_location("hankel_old", a.old_hankel)
        old = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(old)
        variants["+ Hankel (--old-hankel)"] = (dataclasses.replace(cfg, lam_spirit=0.0),
                                              old.hankel_lowrank_penalty)

    def step(c):
        model.zero_grad(set_to_none=True)
        loss, _ = t1mod._losses(model, d, c, g, y_norm)
        loss.backward()

    times: dict[str, list[float]] = {k: [] for k in variants}
    try:
        for _ in range(a.repeats):
            for name, (c, pen) in variants.items():
                t1mod.hankel_lowrank_penalty = pen
                step(c)
                t0 = time.perf_counter()
                for _ in range(3):
                    step(c)
                times[name].append((time.perf_counter() - t0) / 3 * 1e3)
    finally:
        t1mod.hankel_lowrank_penalty = current
    for name, v in times.items():
        print(f"{name:26s} median {statistics.median(v):6.1f} ms/iteration (min {min(v):.1f}, "
              f"{len(v)} repeats of 3)")
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--iters", type=int, default=200)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--select", action="store_true", help="run the selection grid instead of the evaluation")
    ap.add_argument("--select-seed", type=int, default=100)
    ap.add_argument("--select-accel", type=int, default=6)
    ap.add_argument("--accels", type=int, nargs="+", default=[4, 6, 8])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--lam-hankel", type=float, default=None, help="default: from inr_t1rho_select.json")
    ap.add_argument("--hankel-rank", type=int, default=None)
    ap.add_argument("--lam-spirit", type=float, default=None)
    ap.add_argument("--out", default=str(RESULTS / "inr_t1rho.md"))
    ap.add_argument("--time-iter", action="store_true", help="time one fit iteration per method and exit")
    ap.add_argument("--old-hankel", default=None, help="with --time-iter: an older hankel.py to time too")
    ap.add_argument("--repeats", type=int, default=8)
    a = ap.parse_args()
    if a.select_seed in a.seeds:
        raise SystemExit(f"--select-seed {a.select_seed} must differ from the evaluation seeds {a.seeds}")
    given = [v is None for v in (a.lam_hankel, a.hankel_rank, a.lam_spirit)]
    if not a.select and any(given) and not all(given):
        raise SystemExit("give all of --lam-hankel, --hankel-rank, --lam-spirit or none")
    torch.set_num_threads(a.threads)
    base = dataclasses.replace(T1rhoConfig(), iters=a.iters)
    if a.time_iter:
        return time_iterations(a, base)
    return select(a, base) if a.select else evaluate(a, base)


if __name__ == "__main__":
    raise SystemExit(main())
