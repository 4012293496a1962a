"""sharena.Heap: many lists in one heap, named and unnamed, nested, pickled."""
import pickle
import subprocess
import sys
import textwrap

import pytest

import sharena
from sharena import Heap, ShareableList


def test_create_attach_close_unlink(name):
    with Heap(name, create=True, capacity=1 << 24) as h:
        assert h.name == name and not h.closed
        assert h.capacity == 1 << 24
        a = h.ShareableList([1, "a"], name="a")
        with pytest.raises(FileExistsError):
            Heap(name, create=True)
        same = Heap(name)
        assert same.ShareableList(name="a")[1] == "a"
    assert h.closed
    with pytest.raises(ValueError, match="closed"):
        a[0]
    with pytest.raises(ValueError, match="closed"):
        h.ShareableList([1])
    h2 = Heap(name)  # the heap outlives every handle until unlink
    assert list(h2.ShareableList(name="a")) == [1, "a"]
    h2.unlink()
    with pytest.raises(FileNotFoundError):
        Heap(name)
    with pytest.raises(FileNotFoundError):
        h2.unlink()
    h2.close()


def test_small_limits_make_a_small_heap():
    big = Heap(create=True)
    small = Heap(create=True, max_procs=4, max_threads=16)
    try:
        assert small.info()["committed"] < big.info()["committed"]
        assert list(small.ShareableList([1, "x"])) == [1, "x"]
    finally:
        for h in (big, small):
            h.unlink()
            h.close()
    with pytest.raises(ValueError):
        Heap(create=True, max_procs=1 << 20)


def test_argument_errors():
    with pytest.raises(ValueError):
        Heap()
    with pytest.raises(ValueError):
        Heap(create=True, capacity=-1)
    with pytest.raises(TypeError):
        Heap(3)
    with pytest.raises(FileNotFoundError):
        Heap("shr_pytest_no_such_heap")


def test_many_lists_in_one_heap(heap):
    named = [heap.ShareableList([i, str(i)], name=f"l{i}") for i in range(50)]
    unnamed = [heap.ShareableList([i] * i) for i in range(50)]
    assert sorted(heap.names()) == sorted(f"l{i}" for i in range(50))
    for i in range(50):
        assert heap.ShareableList(name=f"l{i}")[1] == str(i)
        assert len(unnamed[i]) == i
    assert all(sl.shm.name == heap.name for sl in named + unnamed)
    with pytest.raises(FileNotFoundError):
        heap.ShareableList(name="absent")
    assert heap.check()


def test_lists_inside_lists(heap):
    a = heap.ShareableList([1, 2], name="a")
    b = heap.ShareableList([a, [a, "x"]], name="b")
    b[0].append(3)
    assert list(a) == [1, 2, 3]
    assert b[1][0][2] == 3
    a.shm.close()
    assert list(heap.ShareableList(name="b")[0]) == [1, 2, 3]


def test_unnamed_list_pickles_safely(heap):
    outer = heap.ShareableList([1, "x"])
    data = pickle.dumps(outer)
    del outer  # the only handle: the pickle must keep the list alive
    back = pickle.loads(data)
    assert list(back) == [1, "x"]
    assert any(n.startswith("~pickle_") for n in heap.names())
    r = subprocess.run([sys.executable, "-c", textwrap.dedent("""
        import pickle, sys
        sl = pickle.loads(sys.stdin.buffer.read())
        sl.append("from another process")
        """)], input=pickle.dumps(back), capture_output=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert back[-1] == "from another process"


def test_named_list_of_a_heap_pickles_by_names(heap):
    sl = heap.ShareableList([1], name="n")
    back = pickle.loads(pickle.dumps(sl))
    assert back.name == "n" and back.heap is sl.heap
    back[0] = 5
    assert sl[0] == 5


def test_shm_of_a_heap_list_stands_for_the_heap(name):
    h = Heap(name, create=True)
    sl = h.ShareableList([1])
    assert sl.shm.name == name
    sl.shm.unlink()
    with pytest.raises(FileNotFoundError):
        Heap(name)
    assert sl[0] == 1
    h.close()


def test_stats_info_recover(heap):
    keep = heap.ShareableList(["x" * 1000] * 10)
    text = heap.stats()
    assert "Small block threshold" in text and "class" in text
    info = heap.info()
    assert info["name"] == heap.name and info["nprocs"] == 1 and info["committed"] > 0
    assert info["leases"] >= 1 and len(keep) == 10
    assert heap.recover() >= 0
    assert "Heap(" in repr(heap)
