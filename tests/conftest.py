"""Test session setup: Triton runs under its interpreter when there is no GPU.

TRITON_INTERPRET must be set before triton is first imported, so this runs before any test module.
"""

import os

import pytest
import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

HAS_CUDA = torch.cuda.is_available()


def pytest_collection_modifyitems(config, items):
    if HAS_CUDA:
        return
    skip = pytest.mark.skip(reason="needs an NVIDIA GPU (run benchmarks/gpu/run_all.sh on one)")
    for item in items:
        if "cuda" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


_METHOD_TEST_DIRS = ("pyfed", "pyrecon", "pyvision")


@pytest.fixture(autouse=True)
def _one_thread_for_method_tests(request):
    """Method-package tests train tiny models: one intra-op thread is faster than two there (no OpenMP
    barrier per small op), and far faster on a shared machine. Kernel tests keep torch's default."""
    if request.path.parent.name not in _METHOD_TEST_DIRS:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
