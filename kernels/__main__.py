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
    # The interpreter runs Triton in numpy: correct, far slower than any compiled backend.
    small = {"small batch (Triton interpreter)": (2, 32, 48)}

    def median_ms(fn, rounds: int) -> float:
        times = []
        for _ in range(rounds):
            start = time.perf_counter()
            fn()
            if device.type == "cuda":
                torch.cuda.synchronize()
            times.append(1e3 * (time.perf_counter() - start))
        return statistics.median(times)

    print(f"\nNewton–Schulz (5 steps, quintic) on {device}; anchor = per-layer loop of plain torch NS5")
    header = ("layers", "shape", "backend", "ms (median)", "vs anchor", "rel. error")
    print("{:36s} {:>16s} {:>9s} {:>12s} {:>10s} {:>11s}".format(*header))
    for backend_name in kernels.available_backends("newton_schulz", device):
        interpreted = backend_name == "triton" and device.type == "cpu"
        rounds = 1 if interpreted else 3
        for label, shape in (small if interpreted else groups).items():
            G = torch.randn(*shape, device=device, dtype=torch.float32)
            expected = reference(G)
            anchor_ms = median_ms(lambda G=G: [reference(layer) for layer in G], rounds)
            with kernels.use_backend(backend_name):
                out = kernels.newton_schulz(G)
                ms = median_ms(lambda G=G: kernels.newton_schulz(G), rounds)
            err = ((out - expected).abs().max() / expected.abs().max()).item()
            print(
                f"{label:36s} {str(tuple(shape)):>16s} {backend_name:>9s} "
                f"{ms:12.2f} {anchor_ms / ms:9.2f}x {err:11.2e}"
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
