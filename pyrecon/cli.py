"""Command line of pyrecon.

    python -m pyrecon train --model dun-sre|plain-unrolled [model options]   (learned reconstructions)
    python -m pyrecon fit --method tenf-inr|hash-inr|t1rho-inr [method options]   (per-scan INR fits)
    python -m pyrecon recon --baseline zero-filled|cg-sense|lplus-s [options]   (classical baselines)
    python -m pyrecon list                                                     (registered methods)

``train`` and ``fit`` look NAME up in :data:`METHODS` and import only that module (lazily, so one
method's missing dependency or unfinished module does not break the others). A method module exposes
``add_arguments(parser)`` and ``main(args) -> int``; it receives ``args.model`` (train) or
``args.method`` (fit) set to NAME, so one module can serve several names. ``recon`` runs the
classical baselines on the cine phantom (or an HDF5 k-space file) and writes runs/<name>/.
"""

from __future__ import annotations

import argparse
import importlib
import sys

METHODS: dict[str, str] = {
    "dun-sre": "pyrecon.dunsre.train",
    "plain-unrolled": "pyrecon.dunsre.train",
    "tenf-inr": "pyrecon.inr.tenf",
    "hash-inr": "pyrecon.inr.hash_inr",
    "t1rho-inr": "pyrecon.inr.t1rho",
}

_NAME_FLAG = {"train": "--model", "fit": "--method"}


class MethodUnavailable(RuntimeError):
    """A registered method whose module cannot be imported (not written yet, or a missing dependency)."""


def load_method(name: str):
    """Import the module registered for ``name``; it must expose add_arguments and main.

    Raises: ValueError for an unknown name; MethodUnavailable when the module is not there yet or one
    of its dependencies is missing (the message says which).
    """
    if name not in METHODS:
        raise ValueError(f"unknown method {name!r}; registered: {', '.join(sorted(METHODS))}")
    path = METHODS[name]
    try:
        module = importlib.import_module(path)
    except ModuleNotFoundError as e:
        missing = e.name or ""
        if path == missing or path.startswith(missing + "."):
            raise MethodUnavailable(
                f"method {name!r} is registered as module {path}, which does not exist yet "
                f"(it is being written; until then `{name}` cannot run)"
            ) from e
        raise MethodUnavailable(
            f"method {name!r} ({path}) needs {missing!r}, which is not installed: {e}"
        ) from e
    for attr in ("add_arguments", "main"):
        if not callable(getattr(module, attr, None)):
            raise MethodUnavailable(f"module {path} (method {name!r}) does not define {attr}()")
    return module


def _add_recon_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--baseline",
        nargs="+",
        default=["zero-filled", "cg-sense", "lplus-s"],
        choices=["zero-filled", "cg-sense", "lplus-s"],
        help="reconstructions to run (default: all three)",
    )
    p.add_argument("--h5", default=None, help="HDF5 k-space (frames, coils, ky, kx) instead of the phantom")
    p.add_argument("--h5-key", default=None, help="dataset name in --h5 (default: found automatically)")
    p.add_argument("--accel", type=float, default=8.0, help="k-t acceleration R (default 8)")
    p.add_argument("--frames", type=int, default=16)
    p.add_argument("--coils", type=int, default=8)
    p.add_argument("--size", type=int, default=96, help="phantom image size (square)")
    p.add_argument("--center-lines", type=int, default=8)
    p.add_argument("--seed", type=int, default=0, help="phantom, coil and mask seed")
    p.add_argument(
        "--snr", type=float, default=None, help="add k-space noise at this SNR in dB (default none)"
    )
    p.add_argument("--cg-iters", type=int, default=20)
    p.add_argument("--cg-lam", type=float, default=1e-3)
    p.add_argument("--ls-iters", type=int, default=50)
    p.add_argument("--lam-l", type=float, default=0.1)
    p.add_argument("--lam-s", type=float, default=0.005)
    p.add_argument("--frame", type=int, default=0, help="frame shown in the figure")
    p.add_argument("--name", default=None, help="run name (default: recon-R<accel>-seed<seed>)")
    p.add_argument("--runs", default="runs", help="parent directory of the run directory")
    p.add_argument("--overwrite", action="store_true", help="start runs/<name>/ over")
    p.add_argument("--threads", type=int, default=None, help="torch intra-op threads")


def _recon(args: argparse.Namespace) -> int:
    import time
    from pathlib import Path

    import torch

    from kernels.runs import RunDir
    from pyrecon import baselines
    from pyrecon.data.phantoms import cine_phantom, coil_maps
    from pyrecon.figures import save_recon_figure
    from pyrecon.metrics import nmse, psnr, ssim
    from pyrecon.ops.sense import sense_forward
    from pyrecon.sampling import acceleration, kt_mask

    if args.h5:
        from pyrecon.data.loaders import estimate_coil_maps, load_kspace_h5
        from pyrecon.ops.fft import ifft2c
        from pyrecon.ops.sense import coil_combine

        full = load_kspace_h5(args.h5, key=args.h5_key).to(torch.complex64)[None]  # (1, T, C, H, W)
        _, T, C, H, W = full.shape
        smaps = estimate_coil_maps(full, center_lines=args.center_lines)
        ref = coil_combine(ifft2c(full), smaps)[0]
        ref = ref / ref.abs().max().clamp_min(1e-30)
    else:
        T, H, W, C = args.frames, args.size, args.size, args.coils
        ref, _ = cine_phantom(T, H, W, seed=args.seed)
        smaps = coil_maps(C, H, W, seed=args.seed)[None]
    mask = kt_mask(T, H, W, args.accel, center_lines=args.center_lines, seed=args.seed + 1)
    y = sense_forward(ref[None], smaps, mask)
    if args.snr is not None:
        from pyrecon.data.phantoms import add_kspace_noise

        y = add_kspace_noise(y, mask, snr_db=args.snr, seed=args.seed + 2)
    name = args.name or f"recon-R{args.accel:g}-seed{args.seed}"
    run = RunDir(Path(args.runs) / name, overwrite=args.overwrite)
    run.write_config({k: v for k, v in vars(args).items() if not k.startswith("_")})
    methods = {
        "zero-filled": lambda: baselines.zero_filled(y, smaps, mask),
        "cg-sense": lambda: baselines.cg_sense(y, smaps, mask, iters=args.cg_iters, lam=args.cg_lam),
        "lplus-s": lambda: baselines.lplus_s(
            y, smaps, mask, iters=args.ls_iters, lam_l=args.lam_l, lam_s=args.lam_s
        ),
    }
    recons = {}
    print(f"R = {acceleration(mask):.2f}, {T} frames, {C} coils, {H}x{W}")
    print(f"{'method':<12} {'PSNR dB':>8} {'SSIM':>6} {'NMSE':>8} {'s':>6}")
    for key in args.baseline:
        t0 = time.perf_counter()
        rec = methods[key]()[0]
        seconds = time.perf_counter() - t0
        recons[key] = rec
        row = {"method": key, "psnr": psnr(ref, rec), "ssim": ssim(ref, rec), "nmse": nmse(ref, rec)}
        row["psnr_complex"] = psnr(ref, rec, mode="complex")
        row["seconds"] = seconds
        run.log(row)
        print(f"{key:<12} {row['psnr']:8.2f} {row['ssim']:6.3f} {row['nmse']:8.4f} {seconds:6.1f}")
    png = save_recon_figure(run.path / "recon.png", ref, recons, frame=args.frame)
    print(f"wrote {run.path}/ (config.json, metrics.jsonl, {png.name})")
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(
        prog="python -m pyrecon", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("command", choices=["train", "fit", "recon", "list"])
    if not argv or argv[0] in ("-h", "--help"):
        parser.print_help()
        return 0 if argv else 2
    command = argv[0]
    if command not in ("train", "fit", "recon", "list"):
        parser.parse_args(argv[:1])  # argparse's own "invalid choice" error
    if command == "list":
        for name, path in sorted(METHODS.items()):
            print(f"{name:<16} {path}")
        return 0
    if command == "recon":
        sub = argparse.ArgumentParser(prog="python -m pyrecon recon", description="classical baselines")
        _add_recon_arguments(sub)
        args = sub.parse_args(argv[1:])
        if args.threads:
            import torch

            torch.set_num_threads(args.threads)
        return _recon(args)

    flag = _NAME_FLAG[command]
    pre = argparse.ArgumentParser(prog=f"python -m pyrecon {command}", add_help=False)
    pre.add_argument(flag, dest="name", choices=sorted(METHODS), required=True)
    known, _ = pre.parse_known_args(argv[1:])  # exits with a usage message when the flag is missing
    try:
        module = load_method(known.name)
    except MethodUnavailable as e:
        print(f"python -m pyrecon {command}: error: {e}", file=sys.stderr)
        return 2
    sub = argparse.ArgumentParser(prog=f"python -m pyrecon {command} {flag} {known.name}")
    module.add_arguments(sub)
    dest = flag[2:]
    if flag not in sub._option_string_actions:
        sub.add_argument(flag, dest=dest, choices=sorted(METHODS), required=True)
    if "--threads" not in sub._option_string_actions:
        sub.add_argument("--threads", type=int, default=None, help="torch intra-op threads")
    args = sub.parse_args(argv[1:])
    setattr(args, dest, known.name)
    if getattr(args, "threads", None):
        import torch

        torch.set_num_threads(args.threads)
    return int(module.main(args) or 0)
