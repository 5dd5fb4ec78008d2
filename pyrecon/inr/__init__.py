"""Scan-specific implicit-neural-representation reconstruction (issue 10). No training set: each
method fits one scan's undersampled k-space.

- ``expfit``: voxel-wise mono-exponential fit S(TSL) = M0·exp(−TSL/T1rho) (log-linear init + LM).
- ``hankel``: block-Hankel operators on multi-channel k-space (matvec, adjoint, Gram trick, low-rank
  penalties) and a SPIRiT-like self-consistency kernel calibrated from the k-space centre.
- ``t1rho``: INR T1rho mapping (arXiv 2407.05617 v1): hash-grid INR of (x, y, TSL) fitted with k-space
  data consistency + Hankel low rank + k-space self-consistency, then the maps.
- ``hash_inr``: the plain hash-grid INR of (x, y, t) for dynamic MRI (the AMRI-Lab baseline).
- ``tenf``: TenF-INR, patch groups as Tucker tensors with INR factor functions.

``t1rho``, ``hash_inr`` and ``tenf`` expose ``add_arguments(parser)`` / ``main(args)`` for
``python -m pyrecon fit --method t1rho-inr|hash-inr|tenf-inr``.
"""
