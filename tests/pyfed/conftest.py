"""pyfed tests train tiny models: one intra-op thread is faster than two (no OpenMP barriers per small
op), and far faster when the machine is shared. Restored after each test."""

import pytest
import torch


@pytest.fixture(autouse=True)
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
