"""DUN-SRE: deep unrolling with spatiotemporal rotation equivariance for dynamic (cine) MRI, and its
plain-conv twin (``DUNSREConfig(equivariant=False)``). Train with ``python -m pyrecon train --model
dun-sre`` (``pyrecon.dunsre.train``)."""

from pyrecon.dunsre.model import DUNSRE, PRESETS, DUNSREConfig, ImageProx, KSpaceDC, count_parameters

__all__ = ["DUNSRE", "PRESETS", "DUNSREConfig", "ImageProx", "KSpaceDC", "count_parameters"]
