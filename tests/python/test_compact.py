"""A ShareableList of its own is compact while its values allow
(<sharena/solo.h>): the whole list in one page of its segment, as the
stdlib's is, until a call the page cannot hold makes it a heap in place, in
every process at once."""
import multiprocessing
import os
import signal
from multiprocessing import shared_memory

import pytest

from sharena import ShareableList

import workers

PAGE = 4096


def blocks(sl):
    return os.stat("/dev/shm/" + sl.shm.name).st_blocks * 512


def new(lists, seq):
    sl = ShareableList(seq)
    lists.append(sl)
    return sl


def test_a_small_list_is_one_page_and_stays_one(lists):
    sl = new(lists, [1, "two", None, 2.5, b"five", True])
    assert blocks(sl) == PAGE
    for k in range(2000):
        sl[k % 6] = k if k % 3 else f"value {k}"
    sl[1] = "x" * 100
    sl[1] = ""
    sl[0] = b"\0" * 7
    assert blocks(sl) == PAGE
    assert sl[0] == b"\0" * 7 and sl[1] == ""
    std = shared_memory.ShareableList(list(sl))
    try:
        assert sl.format == std.format  # the stdlib's format for the same values
    finally:
        std.shm.close()
        std.shm.unlink()


CHANGES = {
    "append": lambda sl: sl.append("new"),
    "insert": lambda sl: sl.insert(0, "new"),
    "pop": lambda sl: sl.pop(),
    "del": lambda sl: sl.__delitem__(0),
    "extend": lambda sl: sl.extend([1, 2]),
    "nested": lambda sl: sl.__setitem__(1, [1, [2, "three"]]),
    "large": lambda sl: sl.__setitem__(1, "y" * 10_000),
}


@pytest.mark.parametrize("change", sorted(CHANGES))
def test_a_change_the_page_cannot_hold_makes_it_a_heap(lists, change):
    sl = new(lists, [10, "eleven", 12])
    other = ShareableList(name=sl.shm.name)  # a second handle, compact too
    expect = [10, "eleven", 12]
    CHANGES[change](sl)
    {"append": lambda: expect.append("new"), "insert": lambda: expect.insert(0, "new"),
     "pop": expect.pop, "del": lambda: expect.pop(0), "extend": lambda: expect.extend([1, 2]),
     "nested": lambda: expect.__setitem__(1, [1, [2, "three"]]),
     "large": lambda: expect.__setitem__(1, "y" * 10_000)}[change]()
    assert blocks(sl) > PAGE
    for handle in (sl, other):
        got = [list(x) if isinstance(x, ShareableList) else x for x in handle]
        if change == "nested":
            got[1] = [got[1][0], list(got[1][1])]
        assert got == expect
        assert len(handle) == len(expect)
    other.shm.close()


def test_errors_change_nothing_and_keep_it_compact(lists):
    sl = new(lists, [1, "a"])
    with pytest.raises(OverflowError):
        sl[0] = 2**70
    with pytest.raises(TypeError):
        sl[0] = object()
    with pytest.raises(IndexError):
        sl[2] = 5
    with pytest.raises(IndexError):
        sl[-3]
    with pytest.raises(UnicodeEncodeError):
        sl[1] = "\udc80"
    assert list(sl) == [1, "a"]
    assert blocks(sl) == PAGE


def test_reads_do_not_make_it_a_heap(lists):
    sl = new(lists, [1, "a", None, "a"])
    assert sl.count("a") == 2 and sl.index(None) == 2 and "a" in sl and 5 not in sl
    assert sl[1:] == ["a", None, "a"] and repr(sl).startswith("ShareableList([1, 'a', None, 'a']")
    assert sl._get_packing_format(1) == "8s" and sl.format == "q8sxxxxxx?x8s"
    import pickle
    assert list(pickle.loads(pickle.dumps(sl))) == [1, "a", None, "a"]
    assert blocks(sl) == PAGE


def test_another_process_sees_it_become_a_heap(lists):
    sl = new(lists, [1, 2, 3])
    ctx = multiprocessing.get_context("fork")
    ready, go, out = ctx.Event(), ctx.Event(), ctx.Queue()
    p = ctx.Process(target=workers.report_after_change, args=(sl.shm.name, ready, go, out))
    p.start()
    assert ready.wait(60)
    sl.append("appended here")
    go.set()
    assert out.get(timeout=60) == (3, 4, "appended here")
    p.join(60)
    assert p.exitcode == 0


def test_writers_killed_mid_set_leave_it_whole(lists):
    """Processes setting items are SIGKILLed at random; every item is then a
    whole value one of them wrote, and the list takes sets again (the next
    locker finishes a dead writer's committed set)."""
    sl = new(lists, ["0|0"] * 12)
    ctx = multiprocessing.get_context("fork")
    import random
    rnd = random.Random(5)
    procs = []
    for _ in range(3):
        ready = ctx.Event()
        p = ctx.Process(target=workers.set_twice_forever, args=(sl.shm.name, ready))
        p.start()
        assert ready.wait(60)
        procs.append(p)
    import time
    for _ in range(30):
        time.sleep(rnd.uniform(0.002, 0.02))
        i = rnd.randrange(3)
        os.kill(procs[i].pid, signal.SIGKILL)
        procs[i].join(60)
        ready = ctx.Event()
        procs[i] = ctx.Process(target=workers.set_twice_forever, args=(sl.shm.name, ready))
        procs[i].start()
        assert ready.wait(60)
    for p in procs:
        os.kill(p.pid, signal.SIGKILL)
        p.join(60)
    for i in range(12):
        sl[i] = sl[i]  # takes the lock: a dead writer's set is finished first
    for x in sl:
        if isinstance(x, str):
            a, b = x.split("|")
            assert a == b
        else:
            assert isinstance(x, int)
    assert blocks(sl) == PAGE


def test_heap_of_a_compact_list_makes_it_one(lists):
    """sharena.Heap(name) of a compact list's segment makes the list a heap
    (who asks for the heap gets one); the list's handles follow."""
    import sharena
    sl = new(lists, [1, "a"])
    h = sharena.Heap(sl.shm.name)
    assert blocks(sl) > PAGE
    assert "ShareableList" in h.names()
    sl.append(2)
    assert list(sl) == [1, "a", 2] and sl.heap is h
    h.close()


def test_a_contended_set_releases_the_gil(lists):
    """Sets of a compact list wait for its page's lock while another process
    holds it; such a wait releases the GIL, as a heap's list lock's does
    (the same wait hooks)."""
    import time
    import sharena
    sl = new(lists, [0, 1])
    ctx = multiprocessing.get_context("fork")
    ready = ctx.Event()
    p = ctx.Process(target=workers.set_forever, args=(sl.shm.name, ready))
    p.start()
    try:
        assert ready.wait(60)
        before = sharena._stats()["gil_releases"]
        deadline = time.monotonic() + 20
        k = 0
        while sharena._stats()["gil_releases"] == before and time.monotonic() < deadline:
            sl[0] = -k
            k += 1
        assert sharena._stats()["gil_releases"] > before, f"no set of {k} waited"
    finally:
        os.kill(p.pid, signal.SIGKILL)
        p.join(60)
    assert blocks(sl) == PAGE
