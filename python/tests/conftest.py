"""Where the tests find what they run against: the supervisor built by CMake (KILN_SUPERVISOR,
set by ctest) and the protocol vectors (KILN_PROTOCOL_VECTORS, else tests/data/)."""

import os
import sys
import time

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))


@pytest.fixture(scope="session")
def supervisor():
    path = os.environ.get("KILN_SUPERVISOR")
    if not path or not os.access(path, os.X_OK):
        pytest.fail("KILN_SUPERVISOR must name the built kiln-supervisor (ctest sets it)")
    return path


def wait_until(condition, timeout=10.0):
    """True once condition() is true, False if `timeout` seconds pass first. Polls with a short
    back-off, for states nothing announces (a process disappearing from /proc)."""
    deadline = time.monotonic() + timeout
    delay = 0.001
    while True:
        if condition():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(delay)
        delay = min(delay * 2, 0.05)
