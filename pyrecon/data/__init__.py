"""Data without downloads (numerical phantoms, coil maps) and loaders for local real-data files."""

from pyrecon.data.phantoms import cine_phantom, coil_maps

__all__ = ["cine_phantom", "coil_maps"]
