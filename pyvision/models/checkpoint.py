"""Reading a backbone checkpoint from a local file (never a download), shared by the CLIP, ResNet and
ViT loaders: ``torch.save`` pickles (tensors only: ``weights_only=True``), TorchScript archives (OpenAI's
released CLIP ``.pt`` files), or ``.safetensors``; a state_dict possibly wrapped in a training
checkpoint, with wrapper prefixes stripped and non-tensor entries dropped."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import torch


def read_state_dict(path: str | os.PathLike, what: str, *, wrappers: Sequence[str] = ("state_dict", "model"),
                    prefixes: Sequence[str] = ("module.",)) -> dict[str, torch.Tensor]:
    """The state_dict in ``path``: unwrapped from the first of ``wrappers`` found (e.g. a training
    checkpoint's ``"model"``), every key stripped of each of ``prefixes`` (DataParallel's ``module.``).
    ``what`` names the model in errors: a missing file is a FileNotFoundError naming the path."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{what} checkpoint {str(path)!r} does not exist (no download at run time: "
                                "put the file there)")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        sd = load_file(str(path))
    else:
        try:
            sd = torch.load(path, map_location="cpu", weights_only=True)
        except RuntimeError:
            # A TorchScript archive (e.g. OpenAI's ViT-*.pt) is not a pickled state dict.
            sd = torch.jit.load(str(path), map_location="cpu").state_dict()
    for key in wrappers:
        if isinstance(sd, dict) and key in sd and isinstance(sd[key], dict):
            sd = sd[key]
    if not isinstance(sd, dict):
        raise ValueError(f"{str(path)!r} holds a {type(sd).__name__}, not a state_dict")
    cleaned = {}
    for k, v in sd.items():
        if not isinstance(v, torch.Tensor):
            continue
        for prefix in prefixes:
            k = k.removeprefix(prefix)
        cleaned[k] = v
    return cleaned
