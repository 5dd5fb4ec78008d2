"""Data without downloads (numerical phantoms, coil maps) and loaders for local real-data files."""

from pyrecon.data.ocmr import load_ocmr, save_ismrmrd
from pyrecon.data.phantoms import add_kspace_noise, cine_phantom, coil_maps, random_cine_params

__all__ = ["add_kspace_noise", "cine_phantom", "coil_maps", "load_ocmr", "random_cine_params", "save_ismrmrd"]
