import pytest


def pytest_collection_modifyitems(config, items):
    """The benchmarks' end-to-end smoke tests train and evaluate on real data: each takes
    tens of seconds, so they are ``slow`` (CI runs them; ``bash scripts/test.sh`` does not)."""
    for item in items:
        if "tests/benchmarks/" in str(item.fspath).replace("\\", "/"):
            item.add_marker(pytest.mark.slow)
