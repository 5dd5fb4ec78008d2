"""A small CNN: two 3×3 conv blocks and two linear layers (the usual FL benchmark net)."""

import torch
from torch import nn


class SmallCNN(nn.Module):
    def __init__(self, in_channels: int, num_classes: int, image_size: int = 32, width: int = 32):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, width, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(width, 2 * width, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
        )
        side = image_size // 4
        self.fc = nn.Linear(2 * width * side * side, 128)
        self.head = nn.Linear(128, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.relu(self.fc(torch.flatten(self.features(x), 1))))
