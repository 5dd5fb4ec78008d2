"""``python -m kernels demo`` (make demo) and ``python -m kernels info``."""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time


def _demo(args: argparse.Namespace) -> int:
    import torch

    if not torch.cuda.is_available() and not args.no_interpret:
        # Triton has no CPU target: its interpreter runs the same kernels on CPU tensors, slowly.
        os.environ.setdefault("TRITON_INTERPRET", "1")

    import kernels
    from kernels.reference import newton_schulz as reference

    kernels.info()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    torch.manual_seed(0)
    # Same-shape layers go in one batched call, as kernels.optim.Muon groups them.
    groups = {
        "resnet18 conv 3x3 64->64 (x4)": (4, 64, 576),
        "resnet18 conv 3x3 128->128 (x3)": (3, 128, 1152),
        "vit-tiny qkv (x12)": (12, 576, 192),
        "vit-tiny mlp fc1 (x12)": (12, 768, 192),
    }
    small = {"small batch for the Triton interpreter": (2, 32, 48)}
    print(f"\nNewton–Schulz (5 steps, quintic) on {device}: max |ours - reference| / max |reference|")
    print(f"{'layers':36s} {'shape':>16s} {'backend':>9s} {'ms (median of 3)':>17s} {'rel. error':>11s}")
    for backend_name in kernels.available_backends("newton_schulz", device):
        interpreted = backend_name == "triton" and device.type == "cpu"
        for label, shape in (small if interpreted else groups).items():
            G = torch.randn(*shape, device=device, dtype=torch.float32)
            expected = reference(G)
            times = []
            with kernels.use_backend(backend_name):
                for _ in range(1 if interpreted else 3):
                    start = time.perf_counter()
                    out = kernels.newton_schulz(G)
                    if device.type == "cuda":
                        torch.cuda.synchronize()
                    times.append(1e3 * (time.perf_counter() - start))
            err = ((out - expected).abs().max() / expected.abs().max()).item()
            print(
                f"{label:36s} {str(tuple(shape)):>16s} {backend_name:>9s} "
                f"{statistics.median(times):17.2f} {err:11.2e}"
            )
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m kernels", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="orthogonalize layer batches with every available backend")
    demo.add_argument(
        "--no-interpret", action="store_true", help="without a GPU, skip Triton instead of interpreting it"
    )
    sub.add_parser("info", help="print what was built and which backend each op uses")
    args = parser.parse_args(argv)
    if args.command == "demo":
        return _demo(args)
    import kernels

    kernels.info()
    return 0


if __name__ == "__main__":
    sys.exit(main())
