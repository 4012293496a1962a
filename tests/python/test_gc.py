"""heap.gc: the heap's cycle collector with the names of the gc module.

What a CPython user checks of gc, against a heap: collect() frees cycles of
lists and says how many, thresholds round-trip and refuse bad values as
gc.set_threshold does, statistics per generation, freezing, callbacks with
their phases and keys; and what is whose across processes (thresholds,
counts, statistics and generations are the heap's; enable/disable and the
callbacks are the process's). Threads: a collection runs without the GIL,
and a thread that collects while others use the heap, with callbacks that
use it too, deadlocks nowhere.
"""
import subprocess
import sys
import textwrap
import threading

import pytest

import sharena
from sharena import Heap

KEYS = {"generation", "collected", "uncollectable"}


def run_child(code, *args):
    """Run code in a new interpreter (the same sharena), return its stdout."""
    r = subprocess.run([sys.executable, "-c", textwrap.dedent(code), *map(str, args)], capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    return r.stdout


def make_cycle(heap):
    """Two lists that hold each other, and no handle on either: garbage."""
    a = heap.ShareableList([None, "a"])
    b = heap.ShareableList([a, "b"])
    a[0] = b
    a.close()
    b.close()


def test_heap_gc_is_one_object_per_heap(heap):
    g = heap.gc
    assert g is heap.gc and g.heap is heap
    assert isinstance(g, sharena.GC)
    with pytest.raises(TypeError):
        sharena.GC()
    for name in ("collect", "get_count", "get_threshold", "set_threshold", "get_stats", "enable", "disable",
                 "isenabled", "freeze", "unfreeze", "get_freeze_count", "callbacks"):
        assert hasattr(g, name), name
    assert "generation" in g.collect.__doc__


def test_collect_returns_the_cycles_freed(heap):
    g = heap.gc
    g.collect()
    keep = heap.ShareableList([None])
    keep[0] = keep  # a live cycle: keep's own handle holds it
    make_cycle(heap)
    make_cycle(heap)
    assert g.collect() == 4
    assert g.collect() == 0  # freed: nothing left to find
    assert len(keep[0]) == 1  # the live one is intact
    # a cycle of nested lists built from plain Python lists and an item set later
    outer = heap.ShareableList([[1, [2, "deep"]], "x"])
    inner = outer[0]
    inner[1] = outer  # inner -> outer -> inner
    inner.close()
    assert g.collect() == 0  # outer's handle keeps it
    outer.close()
    assert g.collect() == 2  # outer and [1, outer] ([2, 'deep'] went when its only holder let it go)


def test_collect_arguments(heap):
    g = heap.gc
    for gen in (0, 1, 2):
        assert g.collect(gen) == 0
    assert g.collect(generation=1) == 0
    for bad in (-1, 3):
        with pytest.raises(ValueError, match="invalid generation"):
            g.collect(bad)
    with pytest.raises(TypeError):
        g.collect("2")
    with pytest.raises(TypeError):
        g.collect(0, 1)


def test_thresholds_round_trip_and_refuse_bad_values(heap):
    g = heap.gc
    assert g.get_threshold() == (2000, 10, 10)
    g.set_threshold(700)
    assert g.get_threshold() == (700, 10, 10)  # the others kept, as gc.set_threshold does
    g.set_threshold(100, 5)
    assert g.get_threshold() == (100, 5, 10)
    g.set_threshold(1, 2, 3)
    assert g.get_threshold() == (1, 2, 3)
    g.set_threshold(2**32 - 1, 0, 0)
    assert g.get_threshold() == (2**32 - 1, 0, 0)
    g.set_threshold(9, 8, 7)
    for bad, exc in (("1", TypeError), (1.5, TypeError), (None, TypeError), (2**32, OverflowError),
                     (2**80, OverflowError), (-1, ValueError)):
        with pytest.raises(exc):
            g.set_threshold(bad)
        with pytest.raises(exc):
            g.set_threshold(1, 2, bad)  # checked before anything changes
        assert g.get_threshold() == (9, 8, 7)
    with pytest.raises(TypeError):
        g.set_threshold()
    with pytest.raises(TypeError):
        g.set_threshold(1, 2, 3, 4)
    assert g.get_threshold() == (9, 8, 7)
    # the heap's: another process sees them and sets them for this one
    out = run_child("""
        import sys, sharena
        h = sharena.Heap(sys.argv[1])
        print(h.gc.get_threshold())
        h.gc.set_threshold(11, 12, 13)
    """, heap.name)
    assert out.strip() == "(9, 8, 7)"
    assert g.get_threshold() == (11, 12, 13)


def test_counts_and_stats_per_generation(heap):
    g = heap.gc
    g.set_threshold(0)  # no automatic collection in this test
    g.collect()
    base = g.get_count()
    held = [heap.ShareableList([i]) for i in range(300)]
    c = g.get_count()
    assert 300 - 64 <= c[0] - base[0] <= 300  # folded in batches of 64 per thread
    s0 = g.get_stats()
    assert len(s0) == 3 and all({"collections", "collected", "uncollectable"} <= set(d) for d in s0)
    g.collect(0)
    assert g.get_count()[1] == 1 and g.get_count()[0] <= 64
    g.collect(1)
    assert g.get_count()[1] == 0 and g.get_count()[2] == 1
    make_cycle(heap)
    assert g.collect(2) == 2
    s1 = g.get_stats()
    assert [s1[i]["collections"] - s0[i]["collections"] for i in range(3)] == [1, 1, 1]
    assert s1[2]["collected"] - s0[2]["collected"] == 2
    assert s1[0]["collected"] == s0[0]["collected"]
    assert s1[2]["pause_ns_max"] > 0
    # the heap's statistics: another process's collection counts here
    run_child("""
        import sys, sharena
        h = sharena.Heap(sys.argv[1])
        h.gc.collect(0)
    """, heap.name)
    assert g.get_stats()[0]["collections"] == s1[0]["collections"] + 1
    del held


def test_automatic_collections_and_disable_are_per_process(heap):
    g = heap.gc
    g.set_threshold(50)
    assert g.isenabled()
    held = []
    before = g.get_stats()[0]["collections"]
    held += [heap.ShareableList([i]) for i in range(400)]
    assert g.get_stats()[0]["collections"] > before  # automatic collections ran
    g.disable()
    assert not g.isenabled()
    before = g.get_stats()[0]["collections"]
    held += [heap.ShareableList([i]) for i in range(400)]
    assert g.get_stats()[0]["collections"] == before  # none in this process
    assert g.collect(0) == 0  # an explicit collection still works
    # another process is still enabled, and collects
    out = run_child("""
        import sys, sharena
        h = sharena.Heap(sys.argv[1])
        before = h.gc.get_stats()[0]["collections"]
        held = [h.ShareableList([i]) for i in range(400)]
        print(h.gc.isenabled(), h.gc.get_stats()[0]["collections"] > before)
    """, heap.name)
    assert out.split() == ["True", "True"]
    assert not g.isenabled()
    g.enable()
    assert g.isenabled()
    before = g.get_stats()[0]["collections"]
    held += [heap.ShareableList([i]) for i in range(400)]
    assert g.get_stats()[0]["collections"] > before


def test_automatic_collection_releases_the_gil(heap):
    heap.gc.set_threshold(20)
    before = sharena._stats()["gil_releases"]
    runs = heap.gc.get_stats()[0]["collections"]
    held = [heap.ShareableList([[i]]) for i in range(300)]
    ran = heap.gc.get_stats()[0]["collections"] - runs
    assert ran > 0
    assert sharena._stats()["gil_releases"] - before >= ran  # each one's pause ran without the GIL
    del held


def test_freeze(heap):
    g = heap.gc
    g.collect()
    assert g.get_freeze_count() == 0
    held = [heap.ShareableList([i]) for i in range(5)]
    make_cycle(heap)
    assert g.freeze() is None
    assert g.get_freeze_count() == 7  # every tracked object: five lists and the cycle's two
    assert g.collect() == 0  # frozen objects are never examined
    out = run_child("""
        import sys, sharena
        print(sharena.Heap(sys.argv[1]).gc.get_freeze_count())
    """, heap.name)
    assert out.strip() == "7"  # the heap's permanent generation
    assert g.unfreeze() is None
    assert g.get_freeze_count() == 0
    assert g.collect() == 2
    del held


def test_callbacks_phases_and_keys(heap):
    g = heap.gc
    log = []

    def cb(phase, info):
        log.append((phase, dict(info)))

    assert g.callbacks == []
    g.callbacks.append(cb)
    make_cycle(heap)
    assert g.collect(1) == 2
    assert [p for p, _ in log] == ["start", "stop"]
    assert all(set(i) == KEYS for _, i in log)
    assert log[0][1] == {"generation": 1, "collected": 0, "uncollectable": 0}
    assert log[1][1] == {"generation": 1, "collected": 2, "uncollectable": 0}
    g.callbacks.remove(cb)
    g.collect()
    assert len(log) == 2


def test_callbacks_errors_and_automatic_collections(heap):
    g = heap.gc
    log = []
    seen = []
    old_hook = sys.unraisablehook
    sys.unraisablehook = lambda u: seen.append(u.exc_type)

    def bad(phase, info):
        raise KeyError(phase)

    try:
        g.callbacks.extend([bad, lambda p, i: log.append(p)])
        g.collect()
        assert log == ["start", "stop"]  # the callback after a failing one still runs
        assert seen == [KeyError, KeyError]
        del log[:]
        g.callbacks.remove(bad)
        g.set_threshold(30)
        held = [heap.ShareableList([i]) for i in range(200)]
        assert log and log.count("start") == log.count("stop")  # automatic collections call them too
        del held
    finally:
        sys.unraisablehook = old_hook


def test_callback_that_uses_the_heap(heap):
    g = heap.gc
    sl = heap.ShareableList(["?", 0])
    errors = []

    def cb(phase, info):
        sl[0] = phase  # a set, a get and a new list inside the callback
        sl[1] = sl[1] + 1
        tmp = heap.ShareableList([phase, [info["generation"]]])
        assert tmp[1][0] == info["generation"]
        try:
            g.collect()
        except RuntimeError as e:
            errors.append(str(e))

    g.callbacks.append(cb)
    make_cycle(heap)
    assert g.collect() == 2
    assert sl[0] == "stop" and sl[1] == 2
    assert len(errors) == 2 and "callback" in errors[0]  # no collection from inside one
    g.callbacks.clear()


def test_callbacks_are_this_process_s(heap):
    g = heap.gc
    log = []
    g.callbacks.append(lambda p, i: log.append(p))
    run_child("""
        import sys, sharena
        h = sharena.Heap(sys.argv[1])
        assert h.gc.callbacks == []
        h.gc.collect()
    """, heap.name)
    assert log == []  # the other process's collection called its own (none)
    g.collect()
    assert log == ["start", "stop"]


def test_threads_collect_while_others_use_the_heap(heap):
    """One thread collects in a loop (the GIL released meanwhile) with a
    callback that uses the heap, while two others set items, append and make
    nested lists; nothing deadlocks, nothing is lost, the cycles made along
    the way are freed."""
    g = heap.gc
    g.set_threshold(200)  # automatic collections in the writers too
    sl = heap.ShareableList([0, "s", 0])
    ticks = heap.ShareableList([0])
    g.callbacks.append(lambda p, i: ticks.__setitem__(0, ticks[0] + 1))
    stop = threading.Event()
    freed = []
    failures = []

    def collector():
        try:
            while not stop.is_set():
                freed.append(g.collect())
        except BaseException as e:  # noqa: B902
            failures.append(e)

    def writer(k):
        try:
            for i in range(3000):
                sl[k] = i
                sl[1] = "x" * (i % 40)
                if i % 10 == 0:
                    make_cycle(heap)
                    sl.append([i, "nested"])
        except BaseException as e:  # noqa: B902
            failures.append(e)

    threads = [threading.Thread(target=collector)] + [threading.Thread(target=writer, args=(k,)) for k in (0, 2)]
    for t in threads:
        t.start()
    for t in threads[1:]:
        t.join(120)
    stop.set()
    threads[0].join(120)
    assert not any(t.is_alive() for t in threads), "deadlock"
    assert failures == []
    assert sl[0] == 2999 and sl[2] == 2999
    assert len(sl) == 3 + 2 * 300
    assert ticks[0] > 0
    g.callbacks.clear()
    g.collect()
    made = 2 * 300 * 2
    total = sum(d["collected"] for d in g.get_stats())
    assert total >= made  # every cycle freed, by one collection or another


def test_closed_heap(heap):
    g = heap.gc
    heap.close()
    for call in (g.collect, g.get_count, g.get_threshold, g.get_stats, g.enable, g.disable, g.isenabled,
                 g.freeze, g.unfreeze, g.get_freeze_count):
        with pytest.raises(ValueError, match="closed"):
            call()
    with pytest.raises(ValueError, match="closed"):
        g.set_threshold(1)
