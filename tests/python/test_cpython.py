"""CPython's own _TestSharedMemory (Lib/test/_test_multiprocessing.py, from
Debian's libpython3.11-testsuite) with sharena.ShareableList substituted for
the stdlib's, under each start method (cpython_shared_memory.py)."""
import os
import subprocess
import sys

import pytest

RUNNER = os.path.join(os.path.dirname(__file__), "cpython_shared_memory.py")
HAVE_TESTS = os.path.exists(os.path.join(os.path.dirname(os.__file__), "test", "_test_multiprocessing.py"))


@pytest.mark.skipif(not HAVE_TESTS, reason="needs libpython3.11-testsuite (scripts/deps.sh installs it)")
@pytest.mark.parametrize("method", ["fork", "spawn", "forkserver"])
def test_cpython_shared_memory_tests(method):
    r = subprocess.run([sys.executable, RUNNER, method], capture_output=True, text=True, timeout=600)
    out = r.stdout + r.stderr
    assert r.returncode == 0, out
    assert "ShareableList = sharena.ShareableList" in out
    assert "3 stdlib-limit assertions inverted" in out
    assert "Ran 13 tests" in out and "\nOK" in out, out
