"""Triton kernels (CUDA devices; CPU tensors under TRITON_INTERPRET=1). Imported lazily by the ops."""
