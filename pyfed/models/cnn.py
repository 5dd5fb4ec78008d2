"""A small CNN: two 3×3 conv blocks and two linear layers (the usual FL benchmark net).

``norm="gn"`` ("cnn-gn") puts a GroupNorm after each convolution (conv → GroupNorm → ReLU → max-pool):
per-example normalization with learned affine parameters and no running statistics, so nothing but
trainable weights leaves a client (the dp_* algorithms refuse BatchNorm buffers). ``groups`` must divide
the channel counts (width and 2·width).
"""

import torch
from torch import nn


class SmallCNN(nn.Module):
    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        image_size: int = 32,
        width: int = 32,
        norm: str | None = None,
        groups: int = 8,
    ):
        super().__init__()
        if norm not in (None, "gn"):
            raise ValueError(f"norm must be None or 'gn', got {norm!r}")
        if norm == "gn" and (groups < 1 or width % groups):
            raise ValueError(f"groups must be >= 1 and divide width={width}, got {groups!r}")

        def block(c_in: int, c_out: int) -> list[nn.Module]:
            gn = [nn.GroupNorm(groups, c_out)] if norm == "gn" else []
            return [nn.Conv2d(c_in, c_out, 3, padding=1), *gn, nn.ReLU(), nn.MaxPool2d(2)]

        self.features = nn.Sequential(*block(in_channels, width), *block(width, 2 * width))
        side = image_size // 4
        self.fc = nn.Linear(2 * width * side * side, 128)
        self.head = nn.Linear(128, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.relu(self.fc(torch.flatten(self.features(x), 1))))
