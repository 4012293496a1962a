"""pytest fixtures for the sharena Python tests.

Run against a build tree: PYTHONPATH=build/dev/python /usr/bin/python3 -m pytest tests/python
(ctest runs it so as test_python in builds configured with -DSHR_PYTHON=ON).
"""
import os
import secrets

import pytest

import sharena

SHM = "/dev/shm"


def shm_names(prefix="psm_"):
    """Segments named as ShareableList names its own (other programs on the
    machine make segments of other names meanwhile)."""
    return {n for n in os.listdir(SHM) if n.startswith(prefix)}


@pytest.fixture
def name():
    """A fresh segment name, unlinked after the test if it still exists."""
    n = "shr_pytest_" + secrets.token_hex(4)
    yield n
    try:
        os.unlink(os.path.join(SHM, n))  # a heap's or a compact list's segment
    except FileNotFoundError:
        pass


@pytest.fixture
def lists():
    """Collect ShareableLists to unlink after the test."""
    made = []
    yield made
    for sl in made:
        try:
            sl.shm.unlink()
        except FileNotFoundError:
            pass


@pytest.fixture
def heap():
    h = sharena.Heap(create=True, capacity=1 << 26)
    yield h
    try:
        h.unlink()
    except FileNotFoundError:
        pass
    h.close()
