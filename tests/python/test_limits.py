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


@pytest.mark.xfail(strict=True, reason="every attached heap starts its own liveness (anchor) thread; "
                   "one thread per process is the shm layer's pending change")
def test_threads():
    assert probe("sharena")["threads"] <= probe("stdlib")["threads"]


@pytest.mark.xfail(strict=True, reason="a heap's registry and metadata have a fixed size (about 700 KB "
                   "committed per heap); sizing them at creation is the shm layer's pending change")
def test_memory():
    s, d = probe("sharena"), probe("stdlib")
    assert s["rss"] + s["shm"] <= d["rss"] + d["shm"], (s, d)
