"""A thousand lists open in one process cost no more threads, descriptors or
memory than a thousand stdlib segments (limits_probe.py measures both, each
in a fresh interpreter)."""
import functools
import json
import os
import subprocess
import sys

import pytest

N = 1000
PROBE = os.path.join(os.path.dirname(__file__), "limits_probe.py")


@functools.lru_cache(maxsize=None)
def probe(kind):
    r = subprocess.run([sys.executable, PROBE, kind, str(N)], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def test_descriptors():
    assert probe("sharena")["fds"] <= probe("stdlib")["fds"]


def test_threads():
    """No thread per list: sharena's one liveness thread per process (the
    stdlib's fixed cost is its resource-tracker process) comes with the
    first list, and the next 999 add none."""
    s, d = probe("sharena"), probe("stdlib")
    assert s["threads_first"] <= 1
    assert s["threads_more"] <= d["threads_more"]


def test_memory():
    """A list of its own is compact (<sharena/solo.h>): one page of
    /dev/shm, as a stdlib segment is, and no descriptor kept."""
    s, d = probe("sharena"), probe("stdlib")
    assert s["rss"] + s["shm"] <= d["rss"] + d["shm"], (s, d)
