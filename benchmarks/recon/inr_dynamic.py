"""Dynamic (cine phantom) benchmark: TenF-INR against zero-filled, L+S and the plain hash-grid INR
of (x, y, t) at R ∈ {8, 12, 16, 21}, Cartesian k-t sampling. PSNR/SSIM (magnitude, pyrecon.metrics)
and CPU time per reconstruction. Writes benchmarks/results/recon/inr_dynamic.md.

    python benchmarks/recon/inr_dynamic.py [--iters 300] [--threads 1]
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import platform
import subprocess
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "benchmarks"))

from machine_tag import cpu_name  # noqa: E402

from pyrecon.inr.hash_inr import HashINRConfig, fit_hash_inr, simulate_dynamic  # noqa: E402
from pyrecon.inr.tenf import TenFConfig, fit_tenf  # noqa: E402
from pyrecon.metrics import psnr, ssim  # noqa: E402
from pyrecon.ops.sense import sense_adjoint  # noqa: E402

try:  # pyrecon.baselines comes with the foundations' contract piece 7
    from pyrecon.baselines import lplus_s
except ImportError:  # pragma: no cover - depends on the merged foundations
    lplus_s = None


def _timed(fn, *args, **kwargs):
    """(fn(*args, **kwargs), seconds it took)."""
    t0 = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - t0


def _fit_both(d, hcfg, tcfg) -> dict:
    """The two INRs on scan ``d``: {name: (images, seconds)}."""
    return {
        "hash INR (x, y, t)": _timed(lambda: fit_hash_inr(d, hcfg, progress=False)[0]),
        "TenF-INR": _timed(lambda: fit_tenf(d, tcfg, progress=False)[0]),
    }


def _scores(d, res: dict):
    """(name, PSNR, SSIM, seconds) of every reconstruction in ``res`` (batched or not) against the truth
    of ``d``."""
    for name, (img, secs) in res.items():
        img = img.reshape(d.images.shape)
        yield name, float(psnr(d.images, img)), float(ssim(d.images, img)), secs


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--iters", type=int, default=300)
    ap.add_argument("--accels", type=int, nargs="*", default=[8, 12, 16, 21], help="Cartesian k-t rows")
    ap.add_argument(
        "--spokes", type=int, nargs="*", default=[], help="golden-angle radial rows (spokes/frame)"
    )
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--lps-iters", type=int, default=50)
    ap.add_argument("--out", default=str(REPO / "benchmarks/results/recon/inr_dynamic.md"))
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    hcfg = dataclasses.replace(HashINRConfig(), iters=a.iters)
    tcfg = dataclasses.replace(TenFConfig(), iters=a.iters)
    rows = []
    for accel in a.accels:
        d = simulate_dynamic(
            hcfg.frames,
            hcfg.size,
            hcfg.coils,
            accel,
            center_lines=hcfg.center_lines,
            noise=hcfg.noise,
            seed=hcfg.seed,
        )
        r_eff = 1 / d.mask.mean().item()
        y, s, m = d.kspace[None], d.smaps[None], d.mask
        res = {"zero-filled": _timed(sense_adjoint, y, s, m)}
        if lplus_s is not None:
            res["L+S"] = _timed(lplus_s, y, s, m, iters=a.lps_iters)
        res.update(
            _fit_both(d, dataclasses.replace(hcfg, accel=accel), dataclasses.replace(tcfg, accel=accel))
        )
        for name, p, q, secs in _scores(d, res):
            rows.append((accel, r_eff, name, p, q, secs))
            print(f"R={accel} ({r_eff:.2f}) {name:20s} PSNR {p:.2f} SSIM {q:.4f} {secs:.1f}s", flush=True)
    radial_rows = []
    for spokes in a.spokes:
        d = simulate_dynamic(
            hcfg.frames, hcfg.size, hcfg.coils, 1, noise=hcfg.noise, seed=hcfg.seed, spokes=spokes
        )
        r_nom = (torch.pi / 2 * hcfg.size) / spokes  # Nyquist: π/2·N spokes
        res = {"gridded adjoint (DCF)": _timed(d.zero_filled)}
        res.update(
            _fit_both(d, dataclasses.replace(hcfg, spokes=spokes), dataclasses.replace(tcfg, spokes=spokes))
        )
        for name, p, q, secs in _scores(d, res):
            radial_rows.append((spokes, r_nom, name, p, q, secs))
            print(
                f"spokes={spokes} (R≈{r_nom:.1f}) {name:22s} PSNR {p:.2f} SSIM {q:.4f} {secs:.1f}s",
                flush=True,
            )
    commit = subprocess.run(
        ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    lines = [
        "# Dynamic MRI (cine phantom): TenF-INR vs zero-filled, L+S and the plain hash-grid INR",
        "",
        f"Date {datetime.date.today()}, {cpu_name()}, {a.threads} thread(s), torch {torch.__version__}, "
        f"python {platform.python_version()}, commit {commit}. "
        "Command: `python benchmarks/recon/inr_dynamic.py "
        f"--iters {a.iters}`.",
        f"Data: cine phantom {hcfg.frames} frames × {hcfg.size}², {hcfg.coils} coils, k-t Cartesian mask "
        f"(centre {hcfg.center_lines} lines), noiseless, seed {hcfg.seed}. Both INRs: {a.iters} Adam "
        f"iterations "
        f"(hash INR lr {hcfg.lr}, TV {hcfg.tv_weight}, low rank {hcfg.lowrank_weight}; "
        f"TenF patch {tcfg.patch}, "
        f"stride {tcfg.stride}, group {tcfg.group_size}, Tucker ranks "
        f"({tcfg.rank_pixel}, {tcfg.rank_member}, "
        f"{tcfg.rank_time}), TV {tcfg.tv_weight}). L+S: {a.lps_iters} iterations, "
        "the foundations' defaults λ_L = 0.03, λ_S = 0.002. "
        "PSNR/SSIM on magnitudes over all frames (peak = max|truth|). No GPU time: this task had no GPU."
        + ("" if lplus_s is not None else " L+S left out: pyrecon.baselines was not in this branch."),
        "",
        "| R (nominal / actual) | method | PSNR (dB) | SSIM | time (s) |",
        "|---|---|---|---|---|",
    ]
    for accel, r_eff, name, p, q, secs in rows:
        lines.append(f"| {accel} / {r_eff:.2f} | {name} | {p:.2f} | {q:.4f} | {secs:.1f} |")
    if radial_rows:
        lines += [
            "",
            "Golden-angle radial (readout 2·size, NUFFT SENSE; R ≈ (π/2·N) / spokes):",
            "",
            "| spokes / frame (R) | method | PSNR (dB) | SSIM | time (s) |",
            "|---|---|---|---|---|",
        ]
        for spokes, r_nom, name, p, q, secs in radial_rows:
            lines.append(f"| {spokes} ({r_nom:.1f}) | {name} | {p:.2f} | {q:.4f} | {secs:.1f} |")
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text("\n".join(lines) + "\n")
    print(f"wrote {a.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
