"""Fixtures shared by the test files."""
import pytest

from atome_core.train import torch_threads


@pytest.fixture(scope="module")
def one_thread():
    """Run a test module's tiny tensors on one torch thread (no OpenMP spin-waiting on a
    shared machine); a module opts in with `pytestmark = pytest.mark.usefixtures("one_thread")`."""
    with torch_threads(1):
        yield
