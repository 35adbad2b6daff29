"""Fixtures shared by the core tests."""

import pytest
import torch


@pytest.fixture
def one_thread():
    """One torch thread inside the test (the small training runs are fastest so on a busy 2-core machine), then
    the previous count again. Modules opt in with ``pytestmark = pytest.mark.usefixtures("one_thread")``."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
