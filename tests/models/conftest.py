"""Model tests run their tiny networks on one thread: on tensors this small a second thread only
adds synchronisation, which costs far more than it saves when the cores are shared."""

import pytest
import torch


@pytest.fixture(autouse=True)
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
