"""Functions run in multiprocessing workers by test_processes.py (importable
by spawn and forkserver children)."""
import os
import signal
import time

from sharena import ShareableList


def append_many(args):
    name, wid, n = args
    sl = ShareableList(name=name)
    for k in range(n):
        sl.append(wid * 1_000_000 + k)
    sl.shm.close()
    return n


def set_own_index(args):
    name, wid, n = args
    sl = ShareableList(name=name)
    for k in range(n):
        sl[wid] = f"worker {wid} " + "x" * (k % 50) + f" {k}"
    sl.shm.close()
    return wid


def modify_received(q, done):
    sl = q.get()
    sl.append(("child", os.getpid()).__repr__())
    sl[0] = "changed by child"
    done.put(len(sl))


def churn_until_killed(name, ready):
    """Hold references (nested list handles) and keep changing the list until
    SIGKILL arrives."""
    sl = ShareableList(name=name)
    held = [sl[0] for _ in range(100)]  # 100 references to the nested list
    ready.set()
    k = 0
    while True:
        k += 1
        sl[1] = "s" * (k % 3000)
        sl.append(b"b" * (k % 700))
        if len(sl) > 20:
            sl.pop(2)
        sl.insert(2, k)
        held[k % 100][0] = k
        if k % 100 == 0:
            sl[3] = [k, "nested", b"x" * (k % 100)]


def hold_the_lock(name, ready, stop):
    """Keep the list's lock busy: a get of a large str copies it under the
    lock."""
    sl = ShareableList(name=name)
    ready.set()
    while not stop.is_set():
        sl[0]


def sleep_forever():
    signal.pause()
    time.sleep(1000)
