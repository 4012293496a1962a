"""sharena.ShareableList: the stdlib's API and behaviour, and the stdlib's
defects fixed (gh-106939, gh-88336, negative indices, growth, type and
range errors that change nothing)."""
import collections.abc
import copy
import inspect
import os
import pickle
import pydoc
import subprocess
import sys
import textwrap
from multiprocessing import shared_memory

import pytest

import sharena
from sharena import ShareableList

if os.environ.get("SHR_TEST_AGAINST_STDLIB"):
    # Shows which of these tests the stdlib's class fails (its defects).
    from multiprocessing.shared_memory import ShareableList  # noqa: F811

from conftest import shm_names

VALUES = ["howdy", b"HoWdY", -273.154, 100, None, True, 42, False, 0.0, "", b"", -1, 2**63 - 1, -2**63]


def new(lists, *args, **kw):
    sl = ShareableList(*args, **kw)
    lists.append(sl)
    return sl


def test_values_round_trip(lists):
    sl = new(lists, VALUES)
    assert len(sl) == len(VALUES)
    for i, v in enumerate(VALUES):
        assert sl[i] == v and type(sl[i]) is type(v)
    assert list(sl) == VALUES
    assert tuple(sl) == tuple(VALUES)


def test_format_and_repr_match_the_stdlib(lists):
    vals = [v for v in VALUES]
    std = shared_memory.ShareableList(vals)
    try:
        sl = new(lists, vals)
        assert sl.format == std.format
        assert [sl._get_packing_format(i) for i in range(len(vals))] == \
            [std._get_packing_format(i) for i in range(len(vals))]
        assert repr(sl) == repr(std).replace(std.shm.name, sl.shm.name)
    finally:
        std.shm.close()
        std.shm.unlink()


def test_create_attach_close_unlink(lists, name):
    sl = ShareableList([1, "two", 3.0], name=name)
    assert sl.shm.name == name and sl.name == name
    other = ShareableList(name=name)
    assert list(other) == [1, "two", 3.0]
    other[1] = "changed"
    assert sl[1] == "changed"
    with pytest.raises(FileExistsError):
        ShareableList([1], name=name)
    other.shm.close()
    other.shm.close()  # more than once, as SharedMemory.close
    with pytest.raises(ValueError, match="closed"):
        other[0]
    sl.shm.close()
    sl.shm.unlink()
    with pytest.raises(FileNotFoundError):
        sl.shm.unlink()
    with pytest.raises(FileNotFoundError):
        ShareableList(name=name)


def test_empty_and_str_argument(lists):
    assert len(new(lists)) == 0
    assert len(new(lists, None)) == 0
    assert new(lists).format == ""
    assert list(new(lists, "howdy")) == list("howdy")


def test_a_generator_builds_a_list(lists):
    """The stdlib walks the sequence three times: a generator fails after the
    segment exists (and leaks it)."""
    sl = new(lists, (i * i for i in range(10)))
    assert list(sl) == [i * i for i in range(10)]


def test_negative_indices_are_checked(lists):
    """The stdlib adds len once and reads garbage for -len-1 ... ; every
    index outside [-len, len) must raise and change nothing."""
    sl = new(lists, list(range(7)))
    for i in range(-7, 7):
        assert sl[i] == i % 7
    for bad in (7, 8, -8, -9, -15, -16, 2**40, -2**40, 2**70, -2**70):
        with pytest.raises(IndexError):
            sl[bad]
        with pytest.raises(IndexError):
            sl[bad] = 1
    assert list(sl) == list(range(7))
    with pytest.raises(TypeError):
        sl[1.0]
    assert sl[True] == 1


def test_trailing_nuls_are_kept(lists):
    """gh-106939: the stdlib strips trailing NULs from str and bytes."""
    vals = [b"ab\x00\x00", "x\x00", "\x00", b"\x00" * 9, "a\x00b\x00"]
    sl = new(lists, vals)
    assert list(sl) == vals
    sl[0] = b"\x00\x00"
    assert sl[0] == b"\x00\x00"


def test_utf8_is_sized_in_bytes(lists):
    """gh-88336: the stdlib sizes a str slot in characters and cuts UTF-8."""
    vals = ["é" * 7, "aaaaaéé", "0\U00010000\U00010000", "ééééé"]
    sl = new(lists, vals)
    assert list(sl) == vals
    assert repr(sl).startswith("ShareableList(['ééééééé'")
    assert sl._get_packing_format(0) == "16s"


def test_any_item_takes_any_value_of_any_size(lists):
    sl = new(lists, [1, "a", None])
    for size in (0, 1, 7, 8, 9, 100, 10_000, 10_000_000):
        sl[1] = "x" * size
        assert sl[1] == "x" * size
        sl[0] = b"y" * size
        assert sl[0] == b"y" * size
    sl[2] = 2.5
    sl[0] = None
    sl[1] = True
    assert list(sl) == [None, True, 2.5]


def test_int_out_of_range_keeps_the_old_value(lists):
    sl = new(lists, ["old", 1.5])
    for big in (2**63, -2**63 - 1, 2**100):
        with pytest.raises(OverflowError):
            sl[0] = big
        with pytest.raises(OverflowError):
            sl[1] = big
        with pytest.raises(OverflowError):
            sl.append(big)
    assert list(sl) == ["old", 1.5]


def test_wrong_type_is_a_type_error_and_keeps_the_old_value(lists):
    sl = new(lists, ["old"])
    for bad in (object(), bytearray(b"x"), 1j, {1: 2}, (1, 2), {1}):
        with pytest.raises(TypeError):
            sl[0] = bad
        with pytest.raises(TypeError):
            sl.append(bad)
    assert list(sl) == ["old"]


def test_failed_creation_leaves_no_segment():
    before = shm_names()
    with pytest.raises(OverflowError):
        ShareableList([1, 2, 2**64])
    with pytest.raises(TypeError):
        ShareableList(["a", object()])
    with pytest.raises(TypeError):
        ShareableList(5)
    assert shm_names() == before


def test_surrogates_are_rejected(lists):
    sl = new(lists, ["a"])
    with pytest.raises(UnicodeEncodeError):
        sl[0] = "\udcff"
    assert sl[0] == "a"


def test_list_methods(lists):
    sl = new(lists, [1, 2, 3])
    sl.append("four")
    sl.insert(0, 0)
    sl.insert(-1, 3.5)
    sl.insert(100, "end")
    sl.extend([b"x", None])
    sl.extend(i for i in range(2))
    assert list(sl) == [0, 1, 2, 3, 3.5, "four", "end", b"x", None, 0, 1]
    assert sl.pop() == 1
    assert sl.pop(0) == 0
    assert sl.pop(-2) == None  # noqa: E711
    del sl[0]
    del sl[-1]
    assert list(sl) == [2, 3, 3.5, "four", "end", b"x"]
    assert sl[1:3] == [3, 3.5]
    assert sl[::-1] == [b"x", "end", "four", 3.5, 3, 2]
    assert sl[::2] == [2, 3.5, "end"]
    assert sl[10:] == []
    with pytest.raises(TypeError):
        sl[0:1] = [1]
    with pytest.raises(IndexError):
        new(lists).pop()
    with pytest.raises(IndexError):
        del sl[6]


def test_count_index_contains(lists):
    sl = new(lists, [1, True, 1.0, "1", b"1", None, 2**53, 2.0**53 + 2])
    assert sl.count(1) == 3 and sl.count(True) == 3 and sl.count(1.0) == 3
    assert sl.count("1") == 1 and sl.count(b"1") == 1 and sl.count(None) == 1
    assert sl.count(2**53 + 1) == 0
    assert sl.count(2**53) == 1
    assert sl.index(None) == 5 and sl.index("1") == 3
    assert 2.0**53 + 2 in sl and "2" not in sl
    assert sl.count(2**70) == 0 and sl.count(object()) == 0
    with pytest.raises(ValueError):
        sl.index("absent")
    big = new(lists, [float(2**70)])
    assert big.count(2**70) == 1  # compared by Python when sharena cannot hold the value


def test_nested_lists(lists):
    sl = new(lists, [[1, [2, "deep"]], "x"])
    inner = sl[0]
    assert isinstance(inner, ShareableList)
    assert inner[0] == 1 and inner[1][1] == "deep"
    inner.append("more")  # by reference: seen through the outer list
    assert sl[0][2] == "more"
    sl[1] = inner
    sl[1][0] = 99
    assert sl[0][0] == 99
    assert sl.format == "QQ"
    other = new(lists, [1])
    with pytest.raises(ValueError, match="own heap"):
        sl[0] = other
    cyc = []
    cyc.append(cyc)
    with pytest.raises(RecursionError):
        sl[0] = cyc
    assert sl[1][0] == 99


def test_pickle_by_name_every_protocol(lists):
    sl = new(lists, range(10))
    larger = new(lists, range(400))
    for proto in range(pickle.HIGHEST_PROTOCOL + 1):
        data = pickle.dumps(sl, protocol=proto)
        assert len(data) == len(pickle.dumps(larger, protocol=proto))
        back = pickle.loads(data)
        assert type(back) is ShareableList and back is not sl
        back[0] = "seen"
        assert sl[0] == "seen"
        back.shm.close()
    assert copy.copy(sl).shm.name == sl.shm.name
    deep = copy.deepcopy(sl)
    deep[1] = "shared"
    assert sl[1] == "shared"


def test_pickle_of_an_unlinked_list_fails(lists):
    sl = ShareableList([1])
    data = pickle.dumps(sl)
    sl.shm.close()
    sl.shm.unlink()
    with pytest.raises(FileNotFoundError):
        pickle.loads(data)


def test_class_getitem_and_sequence():
    alias = ShareableList[int]
    assert alias.__origin__ is ShareableList and alias.__args__ == (int,)
    assert issubclass(ShareableList, collections.abc.Sequence)


def test_shm_is_found_by_shared_memory(lists):
    sl = new(lists, [1, 2, 3])
    assert sl.shm is sl.shm
    seg = shared_memory.SharedMemory(sl.shm.name)
    try:
        assert seg.size == sl.shm.size > 0
    finally:
        seg.close()
    shared_memory.SharedMemory(sl.shm.name).unlink()  # as SharedMemoryManager does
    with pytest.raises(FileNotFoundError):
        ShareableList(name=sl.shm.name)
    assert list(sl) == [1, 2, 3]  # open handles keep working


def _run(code, **kw):
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                          timeout=120, **kw)


def test_outlives_its_creator_and_no_resource_tracker_warnings(name):
    """gh-82300: the stdlib's tracker unlinks a segment when the process that
    created (or merely attached) it exits. sharena's lists stay until
    unlink(), and nothing prints resource_tracker warnings."""
    r = _run(f"""
        import sharena, multiprocessing
        from multiprocessing import resource_tracker
        sl = sharena.ShareableList(["made by a child", 1], name={name!r})
        again = sharena.ShareableList(name={name!r})
        p = multiprocessing.get_context("spawn").Process(target=print)
        p.start(); p.join()
        """)
    assert r.returncode == 0, r.stderr
    assert r.stderr == ""
    r = _run(f"""
        import sharena
        sl = sharena.ShareableList(name={name!r})
        sl[1] += 1
        """)
    assert r.returncode == 0 and r.stderr == "", r.stderr
    sl = ShareableList(name=name)
    assert list(sl) == ["made by a child", 2]
    sl.shm.unlink()


def test_help_reads_like_the_stdlib():
    text = pydoc.render_doc(ShareableList, renderer=pydoc.plaintext)
    for needle in ("ShareableList(sequence=None, *, name=None)", "shared", "count(self, value, /)",
                   "index(self, value, /)", "format", "shm"):
        assert needle in text
    assert str(inspect.signature(ShareableList)) == "(sequence=None, *, name=None)"
    assert str(inspect.signature(sharena.Heap)) == "(name=None, create=False, *, capacity=0, max_procs=0, max_threads=0)"
    stub = os.path.join(os.path.dirname(sharena.__file__), "__init__.pyi")
    assert os.path.exists(stub)
    assert os.path.exists(os.path.join(os.path.dirname(sharena.__file__), "py.typed"))


def test_name_errors():
    with pytest.raises(TypeError):
        ShareableList([1], name=5)
    with pytest.raises(ValueError):
        ShareableList([1], name="a/b")
    with pytest.raises(ValueError):
        ShareableList([1], name="")
    with pytest.raises(OSError):
        ShareableList([1], name="x" * 300)


def test_the_fast_path_keeps_the_gil():
    sl = ShareableList([1, "s" * 16])
    try:
        before = sharena._stats()["gil_releases"]
        for _ in range(100_000):
            sl[0]
            sl[1]
            sl[0] = 2
        assert sharena._stats()["gil_releases"] == before
    finally:
        sl.shm.unlink()


def test_stubs_match_the_module():
    """Every class and method the .pyi declares exists, and every public
    method of the classes is declared."""
    import ast
    stub = os.path.join(os.path.dirname(sharena.__file__), "__init__.pyi")
    tree = ast.parse(open(stub).read())
    classes = {n.name: {f.name for f in n.body if isinstance(f, ast.FunctionDef)}
               for n in tree.body if isinstance(n, ast.ClassDef) and not n.name.startswith("_")}
    assert set(classes) == {"Segment", "ShareableList", "Heap", "GC"}
    for name, methods in classes.items():
        cls = getattr(sharena, name)
        for m in methods - {"__init__"}:
            assert hasattr(cls, m), f"{name}.{m} in the stub, not in the module"
        public = {m for m in dir(cls) if not m.startswith("_")}
        assert public <= methods, f"{name}: {public - methods} not in the stub"


@pytest.mark.parametrize("n", [0, 1, 7, 8, 15, 16, 17, 223, 224, 225, 4095, 4096, 4097, 1 << 20])
def test_str_and_bytes_of_every_read_path(heap, n):
    """Gets of a str or bytes take one of three paths by size (a lock-free
    copy up to 224 bytes, made under the list's lock with the GIL up to 4096,
    read under a reference outside the lock beyond); each gives the value
    stored, ASCII or not, and leaves no reference behind."""
    values = ["a" * n, ("é" * n)[:n], ("x" * max(n - 1, 0)) + ("€" if n else ""), bytes(range(256)) * (n // 256)
              + bytes(n % 256)]
    sl = heap.ShareableList(values)
    leases = heap.info()["leases"]
    for _ in range(3):
        assert list(sl) == values
        assert [sl[i] for i in range(-4, 0)] == values
    assert heap.info()["leases"] == leases
    assert type(sl[0]) is str and type(sl[3]) is bytes


def test_a_repeated_get_follows_every_change(lists):
    """A get that finds the bytes it found last time returns the object it
    made then; any other bytes, even of the same length and type, make a new
    one: never a stale value."""
    sl = new(lists, ["a" * 16, b"b" * 16, "é" * 8])
    assert sl[0] == "a" * 16
    first = sl[0]  # the second get of index 0 in a row: kept
    assert sl[0] == "a" * 16 and sl[0] is first
    for k in range(300):
        sl[0] = f"{k:016d}"
        assert sl[0] == f"{k:016d}"
        sl[1] = k.to_bytes(16, "little")
        assert sl[1] == k.to_bytes(16, "little") and type(sl[1]) is bytes
    sl[0] = b"0" * 16  # the same bytes as a str it held: now bytes
    assert type(sl[0]) is bytes and sl[0] == b"0" * 16
    sl[1] = "0" * 16
    assert type(sl[1]) is str and sl[1] == "0" * 16
    assert sl[2] == "é" * 8
    sl[2] = "è" * 8  # non-ASCII, the same length in bytes
    assert sl[2] == "è" * 8


def test_a_polled_str_follows_another_process(lists):
    """One process polls an item that another keeps replacing with strs of
    the same length: every value it sees is one that was stored, in order,
    up to the last."""
    sl = new(lists, ["0" * 16])
    p = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        from sharena import ShareableList
        sl = ShareableList(name={sl.shm.name!r})
        for k in range(1, 3001):
            sl[0] = f"{{k:016d}}"
        sl.shm.close()
        """)])
    try:
        last = seen = 0
        while last < 3000:
            v = sl[0]
            assert len(v) == 16 and v.isdigit(), v
            assert int(v) >= last, (v, last)
            seen += int(v) != last
            last = int(v)
            if p.poll() is not None and last < 3000:
                assert p.returncode == 0
                assert sl[0] == f"{3000:016d}"
                break
    finally:
        assert p.wait(timeout=120) == 0
    assert sl[0] == f"{3000:016d}"


def test_ints_at_the_edges_of_the_small_int_cache(lists):
    """Gets of ints inside CPython's small-int range return its shared
    objects; those just outside, and large ones, are new objects of the
    right value."""
    vals = [-6, -5, -1, 0, 1, 255, 256, 257, 2**31, -2**63, 2**63 - 1]
    sl = new(lists, vals)
    assert list(sl) == vals and [sl[i] for i in range(len(vals))] == vals
    small = [x for x in vals if -5 <= x <= 256]
    assert all(sl[vals.index(x)] is int(str(x)) for x in small)  # CPython shares these
    big = ShareableList(vals + list(range(300)))  # a heap's list: the same read path
    lists.append(big)
    assert [big[i] for i in range(len(vals))] == vals

