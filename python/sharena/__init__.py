"""Lists shared by processes, in a sharena heap.

``sharena.ShareableList`` is a drop-in replacement for
``multiprocessing.shared_memory.ShareableList``::

    from sharena import ShareableList      # was: from multiprocessing.shared_memory import ...

Any item holds any value of any size (None, bool, 64-bit int, float, str,
bytes, a nested list), the list grows and shrinks, every call is atomic
across processes and threads, and a list stays until ``shm.unlink()``.
``sharena.Heap`` keeps many lists in one shared-memory segment; ``heap.gc``
is its cycle collector, with the names of the ``gc`` module.
"""

from ._sharena import (  # noqa: F401
    DEFAULT_CAPACITY,
    GC,
    LIST_NAME_MAX,
    NAME_MAX,
    Heap,
    Segment,
    ShareableList,
    __version__,
    _rebuild,
    _stats,
    strerror,
)

__all__ = ["ShareableList", "Heap", "Segment", "GC"]


def _close_at_exit():
    # Detach cleanly: this process's references in each heap are released
    # now rather than when another process notices that it died. Closing
    # never unlinks anything.
    from ._sharena import _open_heaps

    for heap in list(_open_heaps()):
        try:
            heap.close()
        except Exception:  # a daemon thread still in a call: leave it to the sweep
            pass


import atexit as _atexit  # noqa: E402

_atexit.register(_close_at_exit)
del _atexit
