"""``python -m kernels demo`` (make demo) and ``python -m kernels info``."""

from __future__ import annotations

import argparse
import os
import sys


def _demo(args: argparse.Namespace) -> int:
    import torch

    if not torch.cuda.is_available() and not args.no_interpret:
        # Triton has no CPU target: its interpreter runs the same kernels on CPU tensors, slowly.
        os.environ.setdefault("TRITON_INTERPRET", "1")

    from kernels import demo

    demo.run(torch.device("cuda" if torch.cuda.is_available() else "cpu"))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m kernels", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="run every backend of every op beside its anchor")
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
