"""Command line of pyvision: ``python -m pyvision train --task TASK [task options]``.

Each task is a module exposing ``add_arguments(parser)`` (its options, with defaults that run on a
laptop CPU in minutes) and ``main(args) -> int`` (trains, evaluates, writes ``runs/<name>/``). The
registry maps task names to module paths so that importing the CLI does not import every task.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
from collections.abc import Mapping, Sequence
from typing import Any

TASKS: dict[str, str] = {
    "qclip": "pyvision.qclip.train",
    "emert": "pyvision.emert.train",
    "fer-gcd": "pyvision.fer_gcd.train",
    "myopia": "pyvision.myopia.train",
}


def add_config_arguments(parser: argparse.ArgumentParser, config_cls: type, *,
                         presets: Mapping[str, Any] | None = None, default_preset: str | None = None,
                         skip: Sequence[str] = (), help: Mapping[str, str] | None = None,
                         choices: Mapping[str, Sequence[Any]] | None = None) -> None:
    """One flag per field of the config dataclass, plus ``--preset`` (when there are presets),
    ``--resume`` and ``--overwrite``. A flag left out keeps the preset's (else the dataclass's) value.

    Flag types come from the field's default: a True bool gives ``--no-<field>``, a False bool
    ``--<field>``, a tuple ``nargs="+"`` of its first element's type, None a string, anything else
    ``type(default)``. Values land in ``args.cfg_<field>`` (read them with ``config_from_args``).
    """
    if presets:
        parser.add_argument("--preset", choices=sorted(presets), default=default_preset,
                            help="starting configuration; the options below override it")
    help, choices = dict(help or {}), dict(choices or {})
    defaults = config_cls()
    for f in dataclasses.fields(config_cls):
        if f.name in skip:
            continue
        default = getattr(defaults, f.name)
        flag, dest = "--" + f.name.replace("_", "-"), f"cfg_{f.name}"
        text = help.get(f.name, f"default: {default}")
        if isinstance(default, bool):
            if default:
                no_flag = "--no-" + flag[2:]
                parser.add_argument(no_flag, dest=dest, action="store_false", default=None, help=text)
            else:
                parser.add_argument(flag, dest=dest, action="store_true", default=None, help=text)
            continue
        if isinstance(default, tuple):
            kind = type(default[0]) if default else str
            parser.add_argument(flag, dest=dest, type=kind, nargs="+", default=None, help=text,
                                metavar=f.name.upper())
            continue
        kind = str if default is None else type(default)
        parser.add_argument(flag, dest=dest, type=kind, default=None, help=text, choices=choices.get(f.name),
                            metavar=None if f.name in choices else f.name.upper())
    parser.add_argument("--resume", action="store_true", help="continue runs/<name>/ from its checkpoint")
    parser.add_argument("--overwrite", action="store_true", help="start runs/<name>/ over")


def config_from_args(args: argparse.Namespace, config_cls: type,
                     presets: Mapping[str, Any] | None = None) -> Any:
    """The config: the preset named by ``args.preset`` (a config or a dict of overrides; none: the
    dataclass defaults) with every flag that was given on top."""
    base: Any = config_cls()
    name = getattr(args, "preset", None)
    if presets and name:
        preset = presets[name]
        base = preset if isinstance(preset, config_cls) else dataclasses.replace(base, **preset)
    overrides = {}
    for f in dataclasses.fields(config_cls):
        value = getattr(args, f"cfg_{f.name}", None)
        if value is not None:
            overrides[f.name] = tuple(value) if isinstance(value, list) else value
    return dataclasses.replace(base, **overrides)


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
