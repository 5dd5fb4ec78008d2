"""Models for the simulator. Every model names its classifier ``head`` (so FedMuon can keep it on AdamW)."""

from __future__ import annotations

from torch import nn

from pyfed.models.cnn import SmallCNN
from pyfed.models.resnet import resnet10, resnet18
from pyfed.models.vit import ViT

__all__ = ["MODELS", "SmallCNN", "ViT", "build_model", "resnet10", "resnet18"]

MODELS = ("cnn", "cnn-gn", "resnet10", "resnet18", "resnet10-gn", "resnet18-gn", "vit")


def build_model(name: str, input_shape: tuple[int, int, int], num_classes: int) -> nn.Module:
    """``name`` is one of ``MODELS``; ``-gn`` models use GroupNorm (no running statistics to
    average, the usual choice under label skew and the one client-level DP needs), the ResNets
    otherwise BatchNorm; ``cnn`` has no normalization layer."""
    c, h, w = input_shape
    if name in ("cnn", "cnn-gn"):
        return SmallCNN(c, num_classes, image_size=h, norm="gn" if name == "cnn-gn" else None)
    if name.startswith("resnet"):
        norm = "gn" if name.endswith("-gn") else "bn"
        ctor = resnet10 if name.startswith("resnet10") else resnet18
        if name.split("-")[0] not in ("resnet10", "resnet18"):
            raise ValueError(f"model must be one of {MODELS}, got {name!r}")
        return ctor(num_classes=num_classes, in_channels=c, norm=norm)
    if name == "vit":
        patch = 4 if h >= 32 else 2
        return ViT(image_size=h, patch_size=patch, in_channels=c, num_classes=num_classes)
    raise ValueError(f"model must be one of {MODELS}, got {name!r}")
