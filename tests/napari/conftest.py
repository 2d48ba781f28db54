import pytest


@pytest.fixture(autouse=True)
def _workers_end_with_their_test():
    """Every worker a test started (training, a step-time measurement, a re-solve) ends
    before the next test: one left running past the last test emitted into deleted Qt
    objects at interpreter exit, and the process aborted after every test had passed."""
    yield
    from qtpy.QtCore import QThreadPool

    QThreadPool.globalInstance().waitForDone(120_000)
