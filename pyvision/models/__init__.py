"""Backbones written in plain torch (torchvision cannot be imported beside the CPU torch here)."""
