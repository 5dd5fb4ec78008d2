"""Command line of pyvision: ``python -m pyvision train --task TASK [task options]``.

Each task is a module exposing ``add_arguments(parser)`` (its options, with defaults that run on a
laptop CPU in minutes) and ``main(args) -> int`` (trains, evaluates, writes ``runs/<name>/``). The
registry maps task names to module paths so that importing the CLI does not import every task.
"""

from __future__ import annotations

import argparse
import importlib

TASKS: dict[str, str] = {
    "qclip": "pyvision.qclip.train",
    "emert": "pyvision.emert.train",
    "fer-gcd": "pyvision.fer_gcd.train",
    "myopia": "pyvision.myopia.train",
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pyvision", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    train = sub.add_parser("train", help="train and evaluate one task; writes runs/<name>/")
    task_sub = train.add_subparsers(dest="task", required=True, metavar="--task")
    # `train --task X` reads better than `train X`; both forms are accepted.
    modules = {}
    for name, path in TASKS.items():
        p = task_sub.add_parser(name)
        try:
            module = importlib.import_module(path)
        except ModuleNotFoundError as e:  # a task whose optional dependency is missing
            p.set_defaults(_missing=f"task {name!r} cannot run: {e}")
            continue
        module.add_arguments(p)
        if "--threads" not in p._option_string_actions:
            p.add_argument("--threads", type=int, default=None,
                           help="torch intra-op threads (1 suits the small CPU models)")
        modules[name] = module
    argv = list(argv) if argv is not None else None
    if argv is None:
        import sys

        argv = sys.argv[1:]
    if "--task" in argv:
        i = argv.index("--task")
        argv = argv[:i] + argv[i + 1:]
    args = parser.parse_args(argv)
    if getattr(args, "_missing", None):
        parser.error(args._missing)
    if getattr(args, "threads", None):
        import torch

        torch.set_num_threads(args.threads)
    return int(modules[args.task].main(args) or 0)
