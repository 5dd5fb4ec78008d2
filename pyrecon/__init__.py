"""pyrecon: MRI reconstruction on pykernels — operators, data, baselines; DUN-SRE and INR methods.

- ``pyrecon.ops``: centred orthonormal FFTs, Cartesian SENSE (forward/adjoint/normal, coil combination),
  a batched conjugate gradient for any normal operator, NUFFT SENSE with a Toeplitz normal operator.
- ``pyrecon.sampling``: variable-density and VISTA-like Cartesian k-t masks, golden-angle radial.
- ``pyrecon.data``: the beating-heart cine phantom and coil maps (no downloads); HDF5 k-space loaders.
- ``pyrecon.metrics`` (PSNR, SSIM, NMSE), ``pyrecon.baselines`` (zero-filled, CG-SENSE, L+S),
  ``pyrecon.figures`` (PNG comparisons), ``python -m pyrecon`` (train / fit / recon / list).
"""
