"""ResNet-18/34 (He et al., 2016) in plain torch, with torchvision's parameter names.

Parameter and buffer names match ``torchvision.models.resnet18/34``, so a checkpoint saved from
torchvision (``model.state_dict()`` → ``torch.save``) or an ImageNet ``resnet18-f37072fd.pth`` file
loads with ``load_resnet_checkpoint`` without renaming. ``num_classes=0`` drops the classifier and
returns the pooled features (512-d), which is how the methods use it as an encoder.
"""

from __future__ import annotations

import os

import torch
from torch import nn

from pyvision.models.checkpoint import read_state_dict

__all__ = ["ResNet", "load_resnet_checkpoint", "resnet18", "resnet34"]


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, in_ch: int, out_ch: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_ch)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_ch)
        self.downsample = None
        if stride != 1 or in_ch != out_ch:
            self.downsample = nn.Sequential(nn.Conv2d(in_ch, out_ch, 1, stride, bias=False),
                                            nn.BatchNorm2d(out_ch))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class ResNet(nn.Module):
    """ResNet with basic blocks. ``layers`` = blocks per stage ((2,2,2,2) for 18, (3,4,6,3) for 34).

    Input (B, in_channels, H, W) → logits (B, num_classes), or pooled features (B, 512 · width/64)
    when ``num_classes == 0``. ``width`` scales every stage (64 → the standard network), so tests and
    CPU runs can use a narrow one with the same structure.
    """

    def __init__(self, layers: tuple[int, int, int, int], num_classes: int = 1000, in_channels: int = 3,
                 width: int = 64):
        super().__init__()
        if len(layers) != 4 or any(n < 1 for n in layers):
            raise ValueError(f"layers must be 4 positive block counts, got {layers}")
        if width < 1:
            raise ValueError(f"width must be positive, got {width}")
        self.conv1 = nn.Conv2d(in_channels, width, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        chans = [width, width * 2, width * 4, width * 8]
        in_ch = width
        for i, (n, ch) in enumerate(zip(layers, chans, strict=True)):
            blocks = [BasicBlock(in_ch, ch, 1 if i == 0 else 2)] + [BasicBlock(ch, ch) for _ in range(n - 1)]
            setattr(self, f"layer{i + 1}", nn.Sequential(*blocks))
            in_ch = ch
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.num_features = in_ch
        self.fc = nn.Linear(in_ch, num_classes) if num_classes > 0 else nn.Identity()
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        # Zero-init the last BN of each block: each residual branch starts as the identity.
        for m in self.modules():
            if isinstance(m, BasicBlock):
                nn.init.zeros_(m.bn2.weight)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) → the last stage's feature map (B, num_features, H/32, W/32)."""
        if x.dim() != 4:
            raise ValueError(f"x must be (B, C, H, W), got shape {tuple(x.shape)}")
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(self.avgpool(self.forward_features(x)), 1))


def resnet18(**kwargs) -> ResNet:
    return ResNet((2, 2, 2, 2), **kwargs)


def resnet34(**kwargs) -> ResNet:
    return ResNet((3, 4, 6, 3), **kwargs)


def load_resnet_checkpoint(model: ResNet, path: str | os.PathLike, *,
                           strict_backbone: bool = True) -> list[str]:
    """Load a torchvision-format ResNet checkpoint (a state_dict, or a dict holding one under
    ``state_dict``/``model``; ``module.`` prefixes from DataParallel are stripped) into ``model``.

    The classifier (``fc.*``) is skipped when its shape differs (a different number of classes) or the
    model has none. Every other parameter must be present with the right shape when
    ``strict_backbone``. Returns the names that were skipped.
    """
    sd = read_state_dict(path, "ResNet")
    own = model.state_dict()
    skipped = []
    for k in list(sd):
        if k.startswith("fc.") and (k not in own or own[k].shape != sd[k].shape):
            skipped.append(k)
            del sd[k]
    missing = [k for k in own if k not in sd and not k.startswith("fc.")]
    bad = [k for k in sd if k in own and own[k].shape != sd[k].shape]
    if strict_backbone and (missing or bad):
        raise ValueError(f"checkpoint {str(path)!r} does not fit this ResNet: missing {missing[:5]}"
                         f"{'...' if len(missing) > 5 else ''}, wrong shape {bad[:5]}")
    model.load_state_dict(sd, strict=False)
    return skipped
