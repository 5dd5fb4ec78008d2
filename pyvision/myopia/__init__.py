"""Childhood myopia progression from fundus images and baseline refraction: model and loss; the CLI task
module is ``pyvision.myopia.train``."""

from pyvision.myopia.model import MyopiaModelConfig, MyopiaNet, myopia_loss

__all__ = ["MyopiaModelConfig", "MyopiaNet", "myopia_loss"]
