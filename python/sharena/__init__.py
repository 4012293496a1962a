"""Lists shared by processes, in a sharena heap.

``sharena.ShareableList`` is a drop-in replacement for
``multiprocessing.shared_memory.ShareableList``::

    from sharena import ShareableList      # was: from multiprocessing.shared_memory import ...

Any item holds any value of any size (None, bool, 64-bit int, float, str,
bytes, a nested list), the list grows and shrinks, every call is atomic
across processes and threads, and a list stays until ``shm.unlink()``.
``sharena.Heap`` keeps many lists in one shared-memory segment.
"""

from ._sharena import (  # noqa: F401
    DEFAULT_CAPACITY,
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

__all__ = ["ShareableList", "Heap", "Segment"]
