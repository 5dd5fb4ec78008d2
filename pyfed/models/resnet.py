"""CIFAR-style ResNet-10/18 (3×3 stem, no max-pool) with BatchNorm or GroupNorm."""

from __future__ import annotations

import torch
from torch import nn


def _norm(kind: str, ch: int) -> nn.Module:
    if kind == "bn":
        return nn.BatchNorm2d(ch)
    if kind == "gn":
        return nn.GroupNorm(min(32, ch // 2), ch)
    raise ValueError(f"norm must be 'bn' or 'gn', got {kind!r}")


class _Block(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int, norm: str):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.n1 = _norm(norm, cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.n2 = _norm(norm, cout)
        self.short = nn.Identity()
        if stride != 1 or cin != cout:
            self.short = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), _norm(norm, cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.n1(self.conv1(x)))
        return torch.relu(self.n2(self.conv2(out)) + self.short(x))


class ResNet(nn.Module):
    def __init__(
        self,
        blocks: tuple[int, ...],
        num_classes: int,
        in_channels: int = 3,
        norm: str = "bn",
        width: int = 64,
    ):
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, width, 3, 1, 1, bias=False), _norm(norm, width), nn.ReLU()
        )
        layers, cin = [], width
        for i, n in enumerate(blocks):
            cout = width * 2**i
            for j in range(n):
                layers.append(_Block(cin, cout, 2 if (j == 0 and i > 0) else 1, norm))
                cin = cout
        self.layers = nn.Sequential(*layers)
        self.head = nn.Linear(cin, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.layers(self.stem(x))
        return self.head(torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1))


def resnet10(num_classes: int, in_channels: int = 3, norm: str = "bn", width: int = 64) -> ResNet:
    return ResNet((1, 1, 1, 1), num_classes, in_channels, norm, width)


def resnet18(num_classes: int, in_channels: int = 3, norm: str = "bn", width: int = 64) -> ResNet:
    return ResNet((2, 2, 2, 2), num_classes, in_channels, norm, width)
