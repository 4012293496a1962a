"""Threads and processes: multiprocessing Pools (fork, spawn, forkserver)
lose no update, pickles travel between processes, a killed worker leaves the
list whole and its references released, and contended waits release the GIL
without deadlock."""
import contextlib
import multiprocessing
import os
import signal
import threading
import time

import pytest

import sharena
from sharena import ShareableList

import workers

METHODS = ["fork", "spawn", "forkserver"]


@pytest.mark.parametrize("method", METHODS)
def test_pool_appends_lose_nothing(method, lists):
    sl = ShareableList([])
    lists.append(sl)
    ctx = multiprocessing.get_context(method)
    nw, n = 4, 400
    with ctx.Pool(nw) as pool:
        assert pool.map(workers.append_many, [(sl.shm.name, w, n) for w in range(nw)]) == [n] * nw
    assert len(sl) == nw * n
    assert sorted(sl) == sorted(w * 1_000_000 + k for w in range(nw) for k in range(n))
    assert sl.heap.check()


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_pool_sets_of_own_items(method, lists):
    nw, n = 4, 300
    sl = ShareableList([None] * nw)
    lists.append(sl)
    with multiprocessing.get_context(method).Pool(nw) as pool:
        pool.map(workers.set_own_index, [(sl.shm.name, w, n) for w in range(nw)])
    for w in range(nw):
        k = n - 1
        assert sl[w] == f"worker {w} " + "x" * (k % 50) + f" {k}"


def test_threads_lose_nothing(lists):
    sl = ShareableList(["start"] * 8)
    lists.append(sl)
    n = 500

    def work(t):
        for k in range(n):
            sl.append((t, k).__repr__())
            sl[t] = f"thread {t} {k}"

    ts = [threading.Thread(target=work, args=(t,)) for t in range(8)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(120)
    assert not any(t.is_alive() for t in ts)
    assert len(sl) == 8 + 8 * n
    assert sorted(sl[8:]) == sorted((t, k).__repr__() for t in range(8) for k in range(n))
    assert [sl[t] for t in range(8)] == [f"thread {t} {n - 1}" for t in range(8)]


@pytest.mark.parametrize("method", METHODS)
def test_pickled_through_a_queue(method, lists, heap):
    ctx = multiprocessing.get_context(method)
    own = ShareableList(["parent", 1])
    lists.append(own)
    in_heap = heap.ShareableList(["parent", 1])  # unnamed, in a shared heap
    for sl in (own, in_heap):
        q, done = ctx.Queue(), ctx.Queue()
        p = ctx.Process(target=workers.modify_received, args=(q, done))
        p.start()
        q.put(sl)
        assert done.get(timeout=60) == 3
        p.join(60)
        assert p.exitcode == 0
        assert sl[0] == "changed by child" and sl[2] == ("child", p.pid).__repr__()


def test_killed_worker_leaves_the_list_whole_and_its_references_released(lists):
    sl = ShareableList([[0], "s", 0, None])
    lists.append(sl)
    ctx = multiprocessing.get_context("fork")
    released = sl.heap.info()["released_for_dead"]
    for round_ in range(6):
        ready = ctx.Event()
        p = ctx.Process(target=workers.churn_until_killed, args=(sl.shm.name, ready))
        p.start()
        assert ready.wait(60)
        time.sleep(0.05 + 0.03 * round_)
        os.kill(p.pid, signal.SIGKILL)
        p.join(60)
        assert p.exitcode == -signal.SIGKILL
        sl.heap.recover()
        assert sl.heap.check()
        # whole: every item is one the child could have written
        items = list(sl)
        assert isinstance(items[0], ShareableList) and isinstance(items[0][0], int)
        assert set(items[1]) <= {"s"}
        for it in items[2:]:
            assert it is None or isinstance(it, (int, bytes, ShareableList))
            if isinstance(it, bytes):
                assert set(it) <= {ord("b")}
        now = sl.heap.info()["released_for_dead"]
        assert now - released >= 101  # its list handle and the 100 it held
        released = now
    sl.append("still usable")
    assert sl[-1] == "still usable"


@contextlib.contextmanager
def lock_held_by_child(lists):
    """A list whose lock a forked child keeps busy (workers.hold_the_lock: a
    slow visit of its str item through the C API), as (list, the child's stop
    event, the child), from the moment the child holds it; the child is
    stopped and joined when the block ends."""
    # Item 0 longer than a page: the list is a heap from the start (a compact
    # list's lock is the page's, which the C list API does not reach).
    sl = ShareableList(["x" * 5000, "s" * 300])
    lists.append(sl)
    ctx = multiprocessing.get_context("fork")
    ready, stop = ctx.Event(), ctx.Event()
    p = ctx.Process(target=workers.hold_the_lock, args=(sl.shm.name, ready, stop))
    p.start()
    try:
        assert ready.wait(60)
        yield sl, stop, p
    finally:
        stop.set()
        p.join(60)


def test_contended_waits_release_the_gil_without_deadlock(lists):
    """A child keeps the list's lock busy (a slow visit under it). Gets of a
    300-byte str item here (longer than a lock-free copy takes) and sets
    must then wait, and release the GIL while they do: another thread keeps
    running Python code. The
    rule that makes this deadlock-free: no thread waits for the GIL while
    holding a sharena lock (the GIL is taken back after the call returns),
    and no thread waits for a contended list lock while holding the GIL."""
    with lock_held_by_child(lists) as (sl, _, p):
        ticks = [0]
        running = [True]

        def ticker():
            while running[0]:
                ticks[0] += 1

        t = threading.Thread(target=ticker)
        t.start()
        before = sharena._stats()["gil_releases"]
        progressed = 0
        for _ in range(400):
            t0 = ticks[0]
            assert sl[1] == "s" * 300
            sl[1] = "s" * 300
            if sharena._stats()["gil_releases"] > before and ticks[0] > t0:
                progressed += 1
                if progressed >= 3:
                    break
        running[0] = False
        t.join(60)
        assert not t.is_alive()
        assert sharena._stats()["gil_releases"] > before
        assert progressed >= 1
    assert p.exitcode == 0


def test_close_from_another_thread_during_a_waiting_call(lists):
    """While a call waits (the GIL released), another thread's close() of the
    list or its heap is refused with BufferError rather than freeing what the
    call uses; once no call is in progress the close goes through."""
    outcome = {}
    with lock_held_by_child(lists) as (sl, stop, _):
        heap = sl.heap

        def reader():
            try:
                while True:
                    assert sl[1] == "s" * 300  # under the lock: it waits
            except ValueError as e:
                outcome["reader"] = str(e)

        before = sharena._stats()["gil_releases"]
        t = threading.Thread(target=reader)
        t.start()
        deadline = time.monotonic() + 60
        while sharena._stats()["gil_releases"] == before and time.monotonic() < deadline:
            time.sleep(0.001)  # until the reader is in calls that wait
        refused, closed = 0, False
        deadline = time.monotonic() + 60
        while not closed and time.monotonic() < deadline:
            try:
                heap.close() if refused % 2 else sl.shm.close()
                closed = True
            except BufferError:
                refused += 1
                stop.set()  # contention over: the reader's calls stop waiting
        t.join(60)
        assert closed
        assert not t.is_alive()
        assert refused >= 1
        assert "closed" in outcome["reader"]
