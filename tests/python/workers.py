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
    """Keep the list's lock busy, 20 ms at a time with 10 ms gaps, until stop:
    a visit of item 0 (a str: visited under the lock) through the C API
    (ctypes, on the libsharena.so that the module loaded) that sleeps. The
    module itself never holds a list's lock for long: a long str is read
    under a reference, outside the lock."""
    import ctypes

    import sharena  # noqa: F401  (loads libsharena.so.0)

    lib = ctypes.CDLL("libsharena.so.0")
    heap, lst = ctypes.c_void_p(), ctypes.c_void_p()
    assert lib.shr_heap_attach(name.encode(), ctypes.byref(heap)) == 0
    assert lib.shr_list_attach(heap, b"ShareableList", ctypes.byref(lst)) == 0
    lib.shr_list_get_with.argtypes = [ctypes.c_void_p, ctypes.c_int64, ctypes.c_void_p, ctypes.c_void_p]

    @ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p)
    def visit(value, arg):
        ready.set()
        time.sleep(0.02)
        return 0

    while not stop.is_set():
        assert lib.shr_list_get_with(lst, 0, visit, None) == 0
        time.sleep(0.01)  # a gap outside the lock, so that waiters get their turn
    lib.shr_list_close(lst)
    lib.shr_heap_close(heap)


def sleep_forever():
    signal.pause()
    time.sleep(1000)


def set_twice_forever(name, ready):
    """Set the items of a compact list to strs that repeat a number twice
    ("n|n", of varying lengths) and to ints, until killed."""
    sl = ShareableList(name=name)
    ready.set()
    k = 0
    while True:
        k += 1
        x = (k * 7919) % (1000 if k % 2 else 1_000_000_007)
        sl[k % len(sl)] = f"{x}|{x}" if k % 5 else k


def report_after_change(name, ready, go, out):
    """Attach a compact list, then, once told, report its length and last
    item (another process has made it a heap meanwhile)."""
    sl = ShareableList(name=name)
    first = len(sl)
    ready.set()
    go.wait(60)
    out.put((first, len(sl), sl[-1]))


def set_forever(name, ready):
    """Set item 0 of a list in a tight loop, until killed."""
    sl = ShareableList(name=name)
    ready.set()
    k = 0
    while True:
        k += 1
        sl[0] = k
