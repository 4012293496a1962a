/* sharena._sharena: the CPython extension module.
 *
 * ShareableList, Heap and Segment (the object behind ShareableList.shm) on
 * top of the public C API in <sharena.h>. Modelled on CPython's
 * Modules/arraymodule.c: multi-phase initialisation (PEP 489), heap types
 * built from specs, and per-module state reached through the defining module
 * (PyType_GetModuleByDef), so the module can be loaded into several
 * interpreters and reloaded.
 *
 * Objects and what they hold:
 *   Heap           one shr_heap_t handle. Closed by close(), by the end of a
 *                  with block, or when the last reference goes. Keeps a chain
 *                  of the ShareableList objects open on it (borrowed), so that
 *                  close() closes their handles before the heap's (the C API
 *                  forbids using a list handle after its heap is closed).
 *   ShareableList  one shr_list_t handle and a strong reference to its Heap.
 *   Segment        what ShareableList.shm returns: the name of the heap's
 *                  POSIX shared-memory object (SharedMemory(name) opens it),
 *                  its size, close() for the list and unlink() for the name.
 *                  It is not a multiprocessing SharedMemory, so nothing is
 *                  registered with resource_tracker.
 *
 * A ShareableList built without a heap lives in a segment of its own, named
 * as the stdlib names its segments (psm_ and 8 hex digits): a compact list
 * (<sharena/solo.h>, ListObject.solo) while its values fit one page, and
 * then a heap holding one list under the root name "ShareableList" (to_heap).
 * Heaps open in this process are found again by name (a weak dictionary in
 * the module state), so attaching the same name twice shares one heap
 * handle.
 *
 * The GIL. Every call into sharena is made with the GIL held: on the fast
 * paths (a lock-free read, an uncontended lock) releasing it would cost more
 * than the call. When a list lock is contended, the library's wait hook
 * (shr_wait_hooks_set) releases the GIL before the thread starts to wait;
 * the module takes it back after the call has returned, when the thread
 * holds no sharena lock. The rule that keeps the GIL and the heap's locks
 * free of deadlock: no thread waits for the GIL while it holds a sharena
 * lock, and no thread waits for a contended list lock while it holds the
 * GIL.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/mman.h>
#include <fcntl.h>
#include <unistd.h>

#include <sharena.h>
#include <stdatomic.h>

/* The root name of the one list in a heap made for a ShareableList. */
#define OWN_LIST_NAME "ShareableList"
#define LIKELY(x) __builtin_expect(!!(x), 1)
#define UNLIKELY(x) __builtin_expect(!!(x), 0)

#define SMALL_MIN (-5) /* CPython's own small ints */
#define SMALL_MAX 256

typedef struct {
    PyTypeObject *list_type;
    PyTypeObject *heap_type;
    PyTypeObject *segment_type;
    PyTypeObject *iter_type;
    PyTypeObject *gc_type;
    PyObject *heaps;        /* weakref.WeakValueDictionary: heap name -> Heap */
    PyObject *partial;      /* functools.partial */
    /* The ints SMALL_MIN .. SMALL_MAX, got once from PyLong_FromLong (the
     * interpreter's own shared objects): a get of one returns it with an
     * incref, not a call (inline_obj). */
    PyObject *small_ints[SMALL_MAX - SMALL_MIN + 1];
} mod_state;

static struct PyModuleDef sharena_module;

static inline mod_state *state_of_module(PyObject *m) { return (mod_state *)PyModule_GetState(m); }

static mod_state *state_of_type(PyTypeObject *t)
{
    PyObject *m = PyType_GetModuleByDef(t, &sharena_module);
    return m ? state_of_module(m) : NULL;
}

typedef struct ListObject ListObject;

typedef struct {
    PyObject_HEAD
    shr_heap_t *heap;       /* NULL once closed */
    PyObject *name;         /* str */
    ListObject *lists;      /* open ShareableLists on this heap (borrowed chain) */
    int busy;               /* calls on its lists in progress (LCALL) */
    dev_t dev;              /* the segment's file, to tell whether its name */
    ino_t ino;              /* still refers to it */
    PyObject *gc_callbacks; /* heap.gc.callbacks: a list of callables */
    PyObject *gc;           /* the GC object of heap.gc (borrowed; it clears this in its dealloc) */
    PyObject *weakreflist;
} HeapObject;

struct ListObject {
    PyObject_HEAD
    shr_list_t *list;       /* NULL once closed, or while the list is compact */
    shr_solo_t *solo;       /* a compact list of its own (<sharena/solo.h>), or NULL: list and heap are
                               NULL meanwhile, and set when it becomes a heap (to_heap) */
    shr_solo_t *solo_old;   /* the compact handle to_heap replaced while another thread was in a call
                               on it; closed with the list */
    HeapObject *heap;       /* strong; NULL once closed */
    PyObject *heap_name;    /* str, kept after close for shm.unlink() */
    PyObject *name;         /* the list's name in the heap (str) or None */
    int own;                /* lives in a segment of its own (compact, or that segment's heap) */
    mod_state *st;          /* the module's state (the type keeps the module alive) */
    int busy;               /* calls on the handle in progress (LCALL) */
    int64_t ref_hint;       /* the index of the last get that found a list, an object or a str or bytes
                               longer than COPY_MAX, or INT64_MIN: a get of it again skips the lock-free
                               attempt (get_item) */
    PyObject *recent;       /* a short str (ASCII) or bytes a lock-free get of recent_index made, or NULL */
    int64_t recent_index;   /* (short_value) */
    int64_t last_index;     /* the index of the last lock-free get of a short str or bytes */
    PyObject *shm;          /* the Segment, made on first use */
    PyObject *pickle_name;  /* name of the holder list made to pickle an unnamed list */
    ListObject *prev, *next;
    PyObject *weakreflist;
};

typedef struct {
    PyObject_HEAD
    PyObject *list;         /* the ShareableList it stands for, or None */
    PyObject *name;         /* the heap's name (str) */
    Py_ssize_t size;
} SegmentObject;

typedef struct {
    PyObject_HEAD
    PyObject *list;         /* ShareableList, NULL when exhausted */
    int64_t index;
} IterObject;

/* ---- the GIL and the library's wait hook --------------------------------- */

/* Set by the wait hook when it released the GIL of this thread; the module
 * restores it once the sharena call has returned. */
#define TLS_FAST __attribute__((tls_model("initial-exec")))
static _Thread_local TLS_FAST PyThreadState *waiting_tstate;
/* Nonzero while this thread is in a sharena call made by this module with
 * the GIL held: only then may the hook release it. */
static _Thread_local TLS_FAST int in_call;

/* Times this process released the GIL for a wait (sharena._stats()). */
static _Atomic unsigned long long gil_releases;

static void wait_begin(void *arg)
{
    (void)arg;
    if (in_call && !waiting_tstate) {
        waiting_tstate = PyEval_SaveThread();
        atomic_fetch_add_explicit(&gil_releases, 1, memory_order_relaxed);
    }
}

#define CALL(expr)                                                                   \
    ({                                                                               \
        in_call = 1;                                                                 \
        __typeof__(expr) r_ = (expr);                                                \
        in_call = 0;                                                                 \
        if (waiting_tstate) {                                                        \
            PyThreadState *t_ = waiting_tstate;                                      \
            waiting_tstate = NULL;                                                   \
            PyEval_RestoreThread(t_);                                                \
        }                                                                            \
        r_;                                                                          \
    })

/* A call on a list handle: it may release the GIL (above), so the list and
 * its heap are marked busy meanwhile, and another thread's close() of
 * either is refused instead of freeing what the call is using. */
#define LCALL(l, expr)                                                               \
    ({                                                                               \
        ListObject *l_ = (l);                                                        \
        HeapObject *h_ = l_->heap;                                                   \
        l_->busy++;                                                                  \
        h_->busy++;                                                                  \
        __typeof__(expr) lr_ = CALL(expr);                                           \
        h_->busy--;                                                                  \
        l_->busy--;                                                                  \
        lr_;                                                                         \
    })

/* A call on a heap handle that may run an automatic collection (a create):
 * the GIL may be released meanwhile (gc_trampoline), so the heap is marked
 * busy. */
#define HCALL(hobj, expr)                                                            \
    ({                                                                               \
        HeapObject *hh_ = (hobj);                                                    \
        hh_->busy++;                                                                 \
        __typeof__(expr) hr_ = CALL(expr);                                           \
        hh_->busy--;                                                                 \
        hr_;                                                                         \
    })

/* A call on a compact list's handle (it may wait for the page's lock, and
 * then release the GIL, as LCALL's). */
#define SCALL(l, expr)                                                               \
    ({                                                                               \
        ListObject *ls_ = (l);                                                       \
        ls_->busy++;                                                                 \
        __typeof__(expr) sr_ = CALL(expr);                                           \
        ls_->busy--;                                                                 \
        sr_;                                                                         \
    })

/* ---- errors -------------------------------------------------------------- */

static PyObject *set_error(int rc, PyObject *filename)
{
    switch (rc) {
    case SHR_EINDEX:
        PyErr_SetString(PyExc_IndexError, "ShareableList index out of range");
        return NULL;
    case -ENOMEM:
        PyErr_SetString(PyExc_MemoryError, "sharena: the heap is full");
        return NULL;
    case SHR_ENAME:
        PyErr_SetString(PyExc_ValueError, "invalid name: empty, or containing '/' or NUL");
        return NULL;
    case -EINVAL:
        PyErr_SetString(PyExc_ValueError, "sharena: invalid argument");
        return NULL;
    default:
        break;
    }
    if (rc < 0 && rc > -4096) {
        PyObject *args = filename ? Py_BuildValue("(isO)", -rc, strerror(-rc), filename)
                                  : Py_BuildValue("(is)", -rc, strerror(-rc));
        if (args) {
            PyErr_SetObject(PyExc_OSError, args); /* OSError picks the subclass */
            Py_DECREF(args);
        }
        return NULL;
    }
    PyErr_Format(PyExc_OSError, "sharena: %s", shr_strerror(rc));
    return NULL;
}

static int closed_error(void)
{
    PyErr_SetString(PyExc_ValueError, "operation on a closed ShareableList");
    return -1;
}

/* ---- Heap -------------------------------------------------------------------- */

/* stat of the shared-memory object called name: 0, or -errno. */
static int shm_stat(const char *name, struct stat *sb)
{
    char path[SHR_NAME_MAX + 16];
    snprintf(path, sizeof path, "/dev/shm/%s", name);
    return stat(path, sb) == 0 ? 0 : -errno;
}

/* ---- the collector's callbacks -------------------------------------------- */

/* heap.gc.callbacks, called as CPython calls gc.callbacks: each with (phase,
 * info), info a dict of generation, collected and uncollectable; an exception
 * is reported as unraisable and the others still run. With the GIL. */
static void run_py_callbacks(HeapObject *self, const char *phase, const shr_gc_info_t *info)
{
    PyObject *cbs = self->gc_callbacks;
    if (!cbs || PyList_GET_SIZE(cbs) == 0) return;
    PyObject *et, *ev, *tb;
    PyErr_Fetch(&et, &ev, &tb);
    PyObject *snap = PyList_GetSlice(cbs, 0, PyList_GET_SIZE(cbs)); /* a callback may change the list */
    PyObject *ph = PyUnicode_FromString(phase);
    PyObject *d = Py_BuildValue("{s:i,s:K,s:K}", "generation", info->generation, "collected",
                                (unsigned long long)info->collected, "uncollectable",
                                (unsigned long long)info->uncollectable);
    if (snap && ph && d) {
        for (Py_ssize_t i = 0; i < PyList_GET_SIZE(snap); i++) {
            PyObject *cb = PyList_GET_ITEM(snap, i);
            PyObject *r = PyObject_CallFunctionObjArgs(cb, ph, d, NULL);
            if (r) Py_DECREF(r);
            else PyErr_WriteUnraisable(cb);
        }
    } else {
        PyErr_WriteUnraisable(NULL);
    }
    Py_XDECREF(snap);
    Py_XDECREF(ph);
    Py_XDECREF(d);
    PyErr_Restore(et, ev, tb);
}

/* The heap handle's one collector callback (added in heap_wrap), called by
 * every collection this process runs on the heap, explicit or automatic, in
 * the collecting thread, with the world running (gc.h), before the world
 * stops ("start") and after the garbage is freed ("stop").
 *
 * The collecting thread may or may not hold the GIL here: an explicit
 * collect() released it; an automatic collection runs at the end of a
 * library call (a create, an append) made with the GIL held, unless the
 * wait hook released it during that call. The callback takes the GIL for
 * the Python callbacks (PyGILState_Ensure), and then, at "start" of a
 * collection whose thread held it, releases it (saved in waiting_tstate, as
 * the wait hook does; CALL takes it back once the library call has
 * returned). So no collection's pause or freeing runs with the GIL held, and
 * the thread takes the GIL back only outside the gate and every lock. The
 * module's per-thread call state is set aside while Python code runs, so
 * that the callbacks' own calls into the module do not disturb it. */
static void gc_trampoline(shr_heap_t *h, const char *phase, const shr_gc_info_t *info, void *arg)
{
    (void)h;
    HeapObject *self = arg;
    int outer_call = in_call;
    PyThreadState *outer_wait = waiting_tstate;
    int gil_held = outer_call && !outer_wait; /* a CALL made with the GIL, not released since */
    in_call = 0;
    waiting_tstate = NULL;
    PyGILState_STATE g = PyGILState_Ensure();
    run_py_callbacks(self, phase, info);
    PyGILState_Release(g);
    if (gil_held && strcmp(phase, "start") == 0) {
        outer_wait = PyEval_SaveThread();
        atomic_fetch_add_explicit(&gil_releases, 1, memory_order_relaxed);
    }
    in_call = outer_call;
    waiting_tstate = outer_wait;
}

static HeapObject *heap_wrap(mod_state *st, shr_heap_t *h)
{
    HeapObject *self = PyObject_GC_New(HeapObject, st->heap_type);
    if (!self) {
        shr_heap_close(h);
        return NULL;
    }
    self->heap = h;
    self->lists = NULL;
    self->busy = 0;
    self->weakreflist = NULL;
    self->gc = NULL;
    self->gc_callbacks = PyList_New(0);
    self->name = PyUnicode_FromString(shr_heap_name(h));
    struct stat sb;
    if (shm_stat(shr_heap_name(h), &sb) == 0) {
        self->dev = sb.st_dev;
        self->ino = sb.st_ino;
    } else {
        self->dev = 0;
        self->ino = 0;
    }
    PyObject_GC_Track(self);
    int rc = self->gc_callbacks && self->name ? shr_gc_callback_add(h, gc_trampoline, self) : 0;
    if (rc) set_error(rc, self->name);
    if (rc || !self->gc_callbacks || !self->name || PyObject_SetItem(st->heaps, self->name, (PyObject *)self) < 0) {
        Py_DECREF(self);
        return NULL;
    }
    return self;
}

/* The Heap open in this process under name, or NULL (no error set). It is
 * used only while the name still refers to its segment: once unlinked (or
 * replaced), attaching by the name must see what the name holds now. */
static HeapObject *heap_find(mod_state *st, PyObject *name)
{
    PyObject *h = PyObject_GetItem(st->heaps, name);
    if (!h) {
        PyErr_Clear();
        return NULL;
    }
    HeapObject *hp = (HeapObject *)h;
    struct stat sb;
    const char *n = PyUnicode_AsUTF8(name);
    if (hp->heap == NULL || !n || shm_stat(n, &sb) != 0 || sb.st_dev != hp->dev || sb.st_ino != hp->ino) {
        PyErr_Clear();
        Py_DECREF(h);
        return NULL;
    }
    return hp;
}

/* The Heap named name: the one open in this process, or a new attachment. */
static HeapObject *heap_open(mod_state *st, PyObject *name)
{
    HeapObject *h = heap_find(st, name);
    if (h) return h;
    const char *cname = PyUnicode_AsUTF8(name);
    if (!cname) return NULL;
    shr_heap_t *hp;
    int rc = shr_heap_attach(cname, &hp);
    if (rc == SHR_ECOMPACT) {
        /* A compact list's segment: who asks for its heap gets one (the
         * list becomes a heap in place, for every process). */
        shr_solo_t *so;
        if ((rc = shr_solo_open(cname, &so)) == 0) {
            rc = CALL(shr_solo_promote(so, &hp));
            shr_solo_close(so);
        }
    }
    if (rc) return (HeapObject *)set_error(rc, name);
    return heap_wrap(st, hp);
}

static void list_chain_remove(ListObject *l)
{
    if (!l->heap) return;
    if (l->prev) l->prev->next = l->next;
    else l->heap->lists = l->next;
    if (l->next) l->next->prev = l->prev;
    l->prev = l->next = NULL;
}

static void list_close_handle(ListObject *l)
{
    if (l->list) {
        shr_list_close(l->list);
        l->list = NULL;
    }
    if (l->solo) {
        shr_solo_close(l->solo);
        l->solo = NULL;
    }
    if (l->solo_old) {
        shr_solo_close(l->solo_old);
        l->solo_old = NULL;
    }
    list_chain_remove(l);
    Py_CLEAR(l->heap);
}

static int heap_close_all(HeapObject *self)
{
    int rc = 0;
    /* Each open list holds a reference to self (so dealloc finds the chain
     * empty); close() is called with self held, so those references can go. */
    while (self->lists) {
        ListObject *l = (ListObject *)Py_NewRef(self->lists);
        list_close_handle(l);
        Py_DECREF(l);
    }
    if (self->heap) {
        rc = shr_heap_close(self->heap);
        self->heap = NULL;
    }
    return rc;
}

static PyObject *heap_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"name", "create", "capacity", "max_procs", "max_threads", NULL};
    PyObject *name = Py_None;
    int create = 0;
    Py_ssize_t capacity = 0;
    unsigned int max_procs = 0, max_threads = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "|Op$nII:Heap", kwlist, &name, &create, &capacity, &max_procs,
                                     &max_threads))
        return NULL;
    mod_state *st = state_of_type(type);
    if (!st) return NULL;
    if (name != Py_None && !PyUnicode_Check(name)) {
        PyErr_Format(PyExc_TypeError, "Heap name must be str or None, not %.100s", Py_TYPE(name)->tp_name);
        return NULL;
    }
    if (capacity < 0) {
        PyErr_SetString(PyExc_ValueError, "'capacity' must be a positive integer");
        return NULL;
    }
    if (!create) {
        if (name == Py_None) {
            PyErr_SetString(PyExc_ValueError, "'name' can only be None if create=True");
            return NULL;
        }
        return (PyObject *)heap_open(st, name);
    }
    const char *cname = NULL;
    if (name != Py_None && !(cname = PyUnicode_AsUTF8(name))) return NULL;
    shr_heap_options_t o;
    shr_heap_options_init(&o);
    o.capacity = (size_t)capacity;
    o.max_procs = max_procs;
    o.max_threads = max_threads;
    shr_heap_t *hp;
    int rc = shr_heap_create(cname, &o, &hp);
    if (rc) return set_error(rc, name == Py_None ? NULL : name);
    return (PyObject *)heap_wrap(st, hp);
}

static int heap_check_open(HeapObject *self)
{
    if (self->heap) return 0;
    PyErr_SetString(PyExc_ValueError, "operation on a closed Heap");
    return -1;
}

static PyObject *heap_close(HeapObject *self, PyObject *Py_UNUSED(ignored))
{
    if (self->busy) {
        PyErr_SetString(PyExc_BufferError, "cannot close a Heap while another thread is in a call on one of its lists");
        return NULL;
    }
    int rc = heap_close_all(self);
    if (rc) return set_error(rc, self->name);
    Py_RETURN_NONE;
}

static PyObject *heap_unlink(HeapObject *self, PyObject *Py_UNUSED(ignored))
{
    const char *n = PyUnicode_AsUTF8(self->name);
    if (!n) return NULL;
    int rc = shr_heap_unlink(n);
    if (rc) return set_error(rc, self->name);
    Py_RETURN_NONE;
}

static PyObject *heap_enter(HeapObject *self, PyObject *Py_UNUSED(ignored))
{
    if (heap_check_open(self) < 0) return NULL;
    return Py_NewRef(self);
}

static PyObject *heap_exit(HeapObject *self, PyObject *args)
{
    (void)args;
    return heap_close(self, NULL);
}

static PyObject *heap_stats(HeapObject *self, PyObject *Py_UNUSED(ignored))
{
    if (heap_check_open(self) < 0) return NULL;
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (!f) return PyErr_NoMemory();
    int rc = shr_heap_stats_print(self->heap, f);
    fclose(f);
    if (rc) {
        free(buf);
        return set_error(rc, self->name);
    }
    PyObject *r = PyUnicode_DecodeUTF8(buf, (Py_ssize_t)len, "replace");
    free(buf);
    return r;
}

static PyObject *heap_check(HeapObject *self, PyObject *Py_UNUSED(ignored))
{
    if (heap_check_open(self) < 0) return NULL;
    int rc = shr_heap_check(self->heap);
    if (rc == 0) Py_RETURN_TRUE;
    if (rc == SHR_ECORRUPT) Py_RETURN_FALSE;
    return set_error(rc, self->name);
}

static PyObject *heap_recover(HeapObject *self, PyObject *Py_UNUSED(ignored))
{
    if (heap_check_open(self) < 0) return NULL;
    int rc = shr_heap_recover(self->heap);
    if (rc < 0) return set_error(rc, self->name);
    return PyLong_FromLong(rc);
}

static PyObject *heap_info(HeapObject *self, PyObject *Py_UNUSED(ignored))
{
    if (heap_check_open(self) < 0) return NULL;
    shr_heap_info_t info;
    shr_lease_stats_t gs;
    int rc = shr_heap_stat(self->heap, &info, NULL, 0, NULL);
    if (rc == 0) rc = shr_lease_stats(self->heap, &gs);
    if (rc) return set_error(rc, self->name);
    return Py_BuildValue("{s:s,s:I,s:K,s:K,s:K,s:I,s:I,s:K,s:K}", "name", info.name, "layout_version",
                         info.layout_version, "capacity", (unsigned long long)info.capacity, "committed",
                         (unsigned long long)info.committed, "meta_size", (unsigned long long)info.meta_size,
                         "nprocs", info.nprocs, "nthreads", info.nthreads, "leases",
                         (unsigned long long)gs.leases, "released_for_dead",
                         (unsigned long long)gs.released_for_dead);
}

static PyObject *heap_get_capacity(HeapObject *self, void *closure)
{
    (void)closure;
    if (heap_check_open(self) < 0) return NULL;
    shr_heap_info_t info;
    int rc = shr_heap_stat(self->heap, &info, NULL, 0, NULL);
    if (rc) return set_error(rc, self->name);
    return PyLong_FromUnsignedLongLong(info.capacity);
}

static PyObject *heap_get_closed(HeapObject *self, void *closure)
{
    (void)closure;
    return PyBool_FromLong(self->heap == NULL);
}

static PyObject *heap_repr(HeapObject *self)
{
    return PyUnicode_FromFormat("%s(%R%s)", _PyType_Name(Py_TYPE(self)), self->name,
                                self->heap ? "" : ", closed");
}

static int heap_traverse(HeapObject *self, visitproc visit, void *arg)
{
    Py_VISIT(Py_TYPE(self));
    Py_VISIT(self->gc_callbacks);
    return 0;
}

static int heap_clear(HeapObject *self)
{
    Py_CLEAR(self->gc_callbacks);
    return 0;
}

static void heap_dealloc(HeapObject *self)
{
    PyTypeObject *tp = Py_TYPE(self);
    PyObject_GC_UnTrack(self);
    if (self->weakreflist) PyObject_ClearWeakRefs((PyObject *)self);
    heap_close_all(self);
    Py_CLEAR(self->name);
    Py_CLEAR(self->gc_callbacks);
    tp->tp_free(self);
    Py_DECREF(tp);
}

static PyObject *make_list(mod_state *st, HeapObject *heap, PyObject *sequence, PyObject *name, int own);
static PyObject *attach_list(mod_state *st, HeapObject *heap, PyObject *name, int own);

/* The arguments of ShareableList(sequence=None, *, name=None), both the
 * type's and Heap.ShareableList's: 0, or -1 with an error set. */
static int list_args(PyObject *args, PyObject *kwds, PyObject **sequence, PyObject **name)
{
    static char *kwlist[] = {"sequence", "name", NULL};
    *sequence = *name = Py_None;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "|O$O:ShareableList", kwlist, sequence, name)) return -1;
    if (*name != Py_None && !PyUnicode_Check(*name)) {
        PyErr_Format(PyExc_TypeError, "name must be str or None, not %.100s", Py_TYPE(*name)->tp_name);
        return -1;
    }
    return 0;
}

static PyObject *heap_sharablelist(HeapObject *self, PyObject *args, PyObject *kwds)
{
    PyObject *sequence, *name;
    if (list_args(args, kwds, &sequence, &name) < 0 || heap_check_open(self) < 0) return NULL;
    mod_state *st = state_of_type(Py_TYPE(self));
    if (!st) return NULL;
    if (sequence == Py_None && name != Py_None) return attach_list(st, self, name, 0);
    return make_list(st, self, sequence, name, 0);
}

static int names_cb(const char *name, shr_off_t off, void *arg)
{
    (void)off;
    PyObject *s = PyUnicode_DecodeUTF8(name, (Py_ssize_t)strlen(name), "replace");
    if (!s) return -1;
    int rc = PyList_Append((PyObject *)arg, s);
    Py_DECREF(s);
    return rc;
}

static PyObject *heap_names(HeapObject *self, PyObject *Py_UNUSED(ignored))
{
    if (heap_check_open(self) < 0) return NULL;
    PyObject *out = PyList_New(0);
    if (!out) return NULL;
    int rc = shr_root_list(self->heap, names_cb, out);
    if (rc) {
        if (!PyErr_Occurred()) set_error(rc, self->name);
        Py_DECREF(out);
        return NULL;
    }
    return out;
}

/* ---- heap.gc: the collector, with the names of CPython's gc module -------- */

typedef struct {
    PyObject_HEAD
    HeapObject *heap;       /* strong */
} GCObject;

/* An error of the collector's calls as CPython users meet them. */
static PyObject *gc_error(HeapObject *h, int64_t rc)
{
    if (rc == -EDEADLK) {
        PyErr_SetString(PyExc_RuntimeError,
                        "sharena: a collection, freeze or snapshot cannot start inside a gc callback "
                        "or another collection");
        return NULL;
    }
    if (rc == SHR_ELOCKTIMEOUT) {
        PyErr_SetString(PyExc_TimeoutError, "sharena: another collection holds the collector past the lock timeout");
        return NULL;
    }
    return set_error((int)rc, h->name); /* -ETIMEDOUT: TimeoutError (a thread did not stop) */
}

/* One of the calls that wait for the collector (collect, freeze, unfreeze,
 * get_freeze_count): made without the GIL, the heap marked busy so that no
 * other thread closes it meanwhile. */
#define GC_WAIT(h, expr)                                                             \
    ({                                                                               \
        HeapObject *gh_ = (h);                                                       \
        int64_t gr_;                                                                 \
        gh_->busy++;                                                                 \
        Py_BEGIN_ALLOW_THREADS gr_ = (expr);                                         \
        Py_END_ALLOW_THREADS gh_->busy--;                                            \
        gr_;                                                                         \
    })

static shr_heap_t *gc_heap(GCObject *self)
{
    if (heap_check_open(self->heap) < 0) return NULL;
    return self->heap->heap;
}

static PyObject *gc_collect(GCObject *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"generation", NULL};
    int gen = 2;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "|i:collect", kwlist, &gen)) return NULL;
    if (gen < 0 || gen > 2) {
        PyErr_SetString(PyExc_ValueError, "invalid generation");
        return NULL;
    }
    shr_heap_t *h = gc_heap(self);
    if (!h) return NULL;
    int64_t n = GC_WAIT(self->heap, shr_gc_collect(h, gen, NULL));
    if (n < 0) return gc_error(self->heap, n);
    return PyLong_FromLongLong(n);
}

static PyObject *gc_get_count(GCObject *self, PyObject *Py_UNUSED(ignored))
{
    shr_heap_t *h = gc_heap(self);
    if (!h) return NULL;
    int64_t c[3];
    int rc = shr_gc_get_count(h, c);
    if (rc) return gc_error(self->heap, rc);
    return Py_BuildValue("(LLL)", (long long)c[0], (long long)c[1], (long long)c[2]);
}

static PyObject *gc_get_threshold(GCObject *self, PyObject *Py_UNUSED(ignored))
{
    shr_heap_t *h = gc_heap(self);
    if (!h) return NULL;
    uint32_t t[3];
    int rc = shr_gc_get_threshold(h, t);
    if (rc) return gc_error(self->heap, rc);
    return Py_BuildValue("(III)", t[0], t[1], t[2]);
}

/* A threshold argument: an int in 0 .. 2**32-1. */
static int threshold_arg(PyObject *o, uint32_t *out)
{
    if (!PyLong_Check(o)) {
        PyErr_Format(PyExc_TypeError, "'%.200s' object cannot be interpreted as an integer", Py_TYPE(o)->tp_name);
        return -1;
    }
    int overflow;
    long long v = PyLong_AsLongLongAndOverflow(o, &overflow);
    if (v == -1 && PyErr_Occurred()) return -1;
    if (overflow > 0 || v > (long long)UINT32_MAX) {
        PyErr_SetString(PyExc_OverflowError, "threshold is greater than 2**32 - 1");
        return -1;
    }
    if (overflow < 0 || v < 0) {
        PyErr_SetString(PyExc_ValueError, "threshold must not be negative");
        return -1;
    }
    *out = (uint32_t)v;
    return 0;
}

static PyObject *gc_set_threshold(GCObject *self, PyObject *args)
{
    PyObject *a[3] = {NULL, NULL, NULL};
    if (!PyArg_ParseTuple(args, "O|OO:set_threshold", &a[0], &a[1], &a[2])) return NULL;
    shr_heap_t *h = gc_heap(self);
    if (!h) return NULL;
    uint32_t t[3];
    int rc = shr_gc_get_threshold(h, t);
    if (rc) return gc_error(self->heap, rc);
    for (int i = 0; i < 3; i++) /* every argument checked before anything changes */
        if (a[i] && threshold_arg(a[i], &t[i]) < 0) return NULL;
    rc = shr_gc_set_threshold(h, t);
    if (rc) return gc_error(self->heap, rc);
    Py_RETURN_NONE;
}

static PyObject *gc_get_stats(GCObject *self, PyObject *Py_UNUSED(ignored))
{
    shr_heap_t *h = gc_heap(self);
    if (!h) return NULL;
    shr_gc_stats_t s;
    int rc = shr_gc_get_stats(h, &s);
    if (rc) return gc_error(self->heap, rc);
    PyObject *out = PyList_New(3);
    if (!out) return NULL;
    for (int i = 0; i < 3; i++) {
        const shr_gc_gen_stats_t *g = &s.gen[i];
        PyObject *d = Py_BuildValue("{s:K,s:K,s:K,s:K,s:K,s:K}", "collections", (unsigned long long)g->collections,
                                    "collected", (unsigned long long)g->collected, "uncollectable",
                                    (unsigned long long)g->uncollectable, "pause_ns_total",
                                    (unsigned long long)g->pause_ns_total, "pause_ns_max",
                                    (unsigned long long)g->pause_ns_max, "ttsp_ns_max",
                                    (unsigned long long)g->ttsp_ns_max);
        if (!d) {
            Py_DECREF(out);
            return NULL;
        }
        PyList_SET_ITEM(out, i, d);
    }
    return out;
}

static PyObject *gc_enable(GCObject *self, PyObject *Py_UNUSED(ignored))
{
    shr_heap_t *h = gc_heap(self);
    if (!h) return NULL;
    int rc = shr_gc_enable(h);
    if (rc) return gc_error(self->heap, rc);
    Py_RETURN_NONE;
}

static PyObject *gc_disable(GCObject *self, PyObject *Py_UNUSED(ignored))
{
    shr_heap_t *h = gc_heap(self);
    if (!h) return NULL;
    int rc = shr_gc_disable(h);
    if (rc) return gc_error(self->heap, rc);
    Py_RETURN_NONE;
}

static PyObject *gc_isenabled(GCObject *self, PyObject *Py_UNUSED(ignored))
{
    shr_heap_t *h = gc_heap(self);
    if (!h) return NULL;
    int rc = shr_gc_isenabled(h);
    if (rc < 0) return gc_error(self->heap, rc);
    return PyBool_FromLong(rc);
}

static PyObject *gc_freeze(GCObject *self, PyObject *Py_UNUSED(ignored))
{
    shr_heap_t *h = gc_heap(self);
    if (!h) return NULL;
    int64_t n = GC_WAIT(self->heap, shr_gc_freeze(h));
    if (n < 0) return gc_error(self->heap, n);
    Py_RETURN_NONE;
}

static PyObject *gc_unfreeze(GCObject *self, PyObject *Py_UNUSED(ignored))
{
    shr_heap_t *h = gc_heap(self);
    if (!h) return NULL;
    int64_t n = GC_WAIT(self->heap, shr_gc_unfreeze(h));
    if (n < 0) return gc_error(self->heap, n);
    Py_RETURN_NONE;
}

static PyObject *gc_get_freeze_count(GCObject *self, PyObject *Py_UNUSED(ignored))
{
    shr_heap_t *h = gc_heap(self);
    if (!h) return NULL;
    int64_t n = GC_WAIT(self->heap, shr_gc_get_freeze_count(h));
    if (n < 0) return gc_error(self->heap, n);
    return PyLong_FromLongLong(n);
}

static PyObject *gc_get_callbacks(GCObject *self, void *closure)
{
    (void)closure;
    if (!self->heap->gc_callbacks) Py_RETURN_NONE;
    return Py_NewRef(self->heap->gc_callbacks);
}

static PyObject *gc_get_heap(GCObject *self, void *closure)
{
    (void)closure;
    return Py_NewRef(self->heap);
}

static PyObject *gc_repr(GCObject *self) { return PyUnicode_FromFormat("<sharena.GC of %R>", self->heap); }

static int gc_traverse(GCObject *self, visitproc visit, void *arg)
{
    Py_VISIT(Py_TYPE(self));
    Py_VISIT(self->heap);
    return 0;
}

static void gc_dealloc(GCObject *self)
{
    PyTypeObject *tp = Py_TYPE(self);
    PyObject_GC_UnTrack(self);
    if (self->heap && self->heap->gc == (PyObject *)self) self->heap->gc = NULL;
    Py_CLEAR(self->heap);
    tp->tp_free(self);
    Py_DECREF(tp);
}

/* heap.gc: one GC object per Heap while it is referenced (so that
 * heap.gc is heap.gc); the callbacks are the Heap's, and outlive it. */
static PyObject *heap_get_gc(HeapObject *self, void *closure)
{
    (void)closure;
    if (self->gc) return Py_NewRef(self->gc);
    mod_state *st = state_of_type(Py_TYPE(self));
    if (!st) return NULL;
    GCObject *g = PyObject_GC_New(GCObject, st->gc_type);
    if (!g) return NULL;
    g->heap = (HeapObject *)Py_NewRef(self);
    PyObject_GC_Track(g);
    self->gc = (PyObject *)g;
    return (PyObject *)g;
}

static PyMethodDef gc_methods[] = {
    {"collect", (PyCFunction)(void (*)(void))gc_collect, METH_VARARGS | METH_KEYWORDS,
     PyDoc_STR("collect($self, /, generation=2)\n--\n\n"
               "Run a collection of generations 0..generation of the heap (every process's\n"
               "objects: the world stops meanwhile) and return the number of unreachable\n"
               "objects found. The GIL is released while it runs.\n\n"
               "Raises ValueError for a generation other than 0, 1, 2; RuntimeError inside\n"
               "a gc callback; TimeoutError when a thread of some process did not stop.")},
    {"get_count", (PyCFunction)gc_get_count, METH_NOARGS,
     PyDoc_STR("get_count($self, /)\n--\n\nThe heap's current collection counts, a (count0, count1, count2)\n"
               "tuple; count0 may lag by up to 64 per thread.")},
    {"get_threshold", (PyCFunction)gc_get_threshold, METH_NOARGS,
     PyDoc_STR("get_threshold($self, /)\n--\n\nThe heap's collection thresholds, a 3-tuple.")},
    {"set_threshold", (PyCFunction)gc_set_threshold, METH_VARARGS,
     PyDoc_STR("set_threshold(threshold0, [threshold1, [threshold2]])\n--\n\n"
               "Set the heap's collection thresholds (for every process); those not given\n"
               "keep their value. threshold0 = 0 disables automatic collections. Each is an\n"
               "int in 0 .. 2**32-1: TypeError otherwise, OverflowError above, ValueError\n"
               "below 0; nothing changes on error.")},
    {"get_stats", (PyCFunction)gc_get_stats, METH_NOARGS,
     PyDoc_STR("get_stats($self, /)\n--\n\nA list of three dicts, one per generation, with the heap's totals\n"
               "since it was created, over every process: collections, collected,\n"
               "uncollectable, and pause_ns_total, pause_ns_max, ttsp_ns_max.")},
    {"enable", (PyCFunction)gc_enable, METH_NOARGS,
     PyDoc_STR("enable($self, /)\n--\n\nEnable this process's automatic collections of the heap.")},
    {"disable", (PyCFunction)gc_disable, METH_NOARGS,
     PyDoc_STR("disable($self, /)\n--\n\nDisable this process's automatic collections of the heap; other\n"
               "processes' still run, and collect() still works.")},
    {"isenabled", (PyCFunction)gc_isenabled, METH_NOARGS,
     PyDoc_STR("isenabled($self, /)\n--\n\nTrue if this process's automatic collections are enabled.")},
    {"freeze", (PyCFunction)gc_freeze, METH_NOARGS,
     PyDoc_STR("freeze($self, /)\n--\n\nMove every object of the heap to the permanent generation, which no\n"
               "collection examines (for every process).")},
    {"unfreeze", (PyCFunction)gc_unfreeze, METH_NOARGS,
     PyDoc_STR("unfreeze($self, /)\n--\n\nMove the permanent generation's objects back to the oldest generation.")},
    {"get_freeze_count", (PyCFunction)gc_get_freeze_count, METH_NOARGS,
     PyDoc_STR("get_freeze_count($self, /)\n--\n\nThe number of objects in the permanent generation.")},
    {NULL, NULL, 0, NULL}};

static PyGetSetDef gc_getset[] = {
    {"callbacks", (getter)gc_get_callbacks, NULL,
     PyDoc_STR("A list of callables, each called as callback(phase, info) before (phase \"start\")\n"
               "and after (\"stop\") every collection this process runs on the heap, explicit or\n"
               "automatic, in the collecting thread; info is a dict with generation, collected\n"
               "and uncollectable. Other processes' collections call their own callbacks."),
     NULL},
    {"heap", (getter)gc_get_heap, NULL, PyDoc_STR("The Heap this collector is of."), NULL},
    {NULL, NULL, NULL, NULL, NULL}};

PyDoc_STRVAR(gc_doc,
"The cycle collector of a Heap (heap.gc), with the names of the gc module.\n\n"
"The heap's objects (its lists, and what other programs put in it) are\n"
"counted and collected as CPython's gc does with an interpreter's: three\n"
"generations, thresholds, freezing, callbacks. What is whose: the\n"
"thresholds, counts, statistics and generations are the heap's, the same\n"
"for every process; enable/disable and the callbacks are this process's.\n"
"A collection stops every thread of every process using the heap for its\n"
"pause; it runs without the GIL.");

static PyType_Slot gc_slots[] = {
    {Py_tp_doc, (void *)gc_doc},
    {Py_tp_dealloc, gc_dealloc},
    {Py_tp_traverse, gc_traverse},
    {Py_tp_repr, gc_repr},
    {Py_tp_methods, gc_methods},
    {Py_tp_getset, gc_getset},
    {0, NULL}};

static PyType_Spec gc_spec = {
    .name = "sharena.GC",
    .basicsize = sizeof(GCObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_IMMUTABLETYPE | Py_TPFLAGS_DISALLOW_INSTANTIATION,
    .slots = gc_slots,
};

PyDoc_STRVAR(heap_doc,
"Heap(name=None, create=False, *, capacity=0, max_procs=0, max_threads=0)\n"
"--\n\n"
"A sharena heap: one POSIX shared-memory segment holding any number of\n"
"lists, used at once by every process that opens it.\n\n"
"With create=True a new heap is made (name None: a generated name);\n"
"otherwise the heap called name is opened. capacity is the address space\n"
"to reserve in bytes (0: 1 GiB); memory is used only for what the heap\n"
"holds. max_procs and max_threads limit the processes that may attach it\n"
"and their threads (0: 128 and 512); a thread slot costs memory only\n"
"once a thread has used the heap.\n"
"The heap stays until unlink() removes its name, however many\n"
"processes come and go. Use it in a with block, or call close().");

static PyMethodDef heap_methods[] = {
    {"ShareableList", (PyCFunction)(void (*)(void))heap_sharablelist, METH_VARARGS | METH_KEYWORDS,
     PyDoc_STR("ShareableList(sequence=None, *, name=None)\n--\n\n"
               "A list in this heap. With a sequence (or neither argument) a new list is\n"
               "made: unnamed when name is None (it lives while referenced), or named, so\n"
               "that any process can attach it with ShareableList(name=...) on this heap.\n"
               "With only a name, the named list is attached.")},
    {"close", (PyCFunction)heap_close, METH_NOARGS,
     PyDoc_STR("close($self, /)\n--\n\nClose this process's handle on the heap and every ShareableList\n"
               "open on it. The heap itself stays until unlink().")},
    {"unlink", (PyCFunction)heap_unlink, METH_NOARGS,
     PyDoc_STR("unlink($self, /)\n--\n\nRemove the heap's name. Processes that have it open keep using it;\n"
               "its memory is freed when the last of them closes it.")},
    {"stats", (PyCFunction)heap_stats, METH_NOARGS,
     PyDoc_STR("stats($self, /)\n--\n\nThe allocator's report (what `sharena stats NAME` prints), in the\n"
               "shape of sys._debugmallocstats().")},
    {"info", (PyCFunction)heap_info, METH_NOARGS,
     PyDoc_STR("info($self, /)\n--\n\nA dict of the heap's header figures: name, layout_version, capacity,\n"
               "committed, meta_size, nprocs, nthreads, and this process's leases.")},
    {"check", (PyCFunction)heap_check, METH_NOARGS,
     PyDoc_STR("check($self, /)\n--\n\nVerify every invariant of the heap; True when all hold.")},
    {"recover", (PyCFunction)heap_recover, METH_NOARGS,
     PyDoc_STR("recover($self, /)\n--\n\nRelease now what dead processes held; returns how many registry\n"
               "entries were reclaimed.")},
    {"names", (PyCFunction)heap_names, METH_NOARGS,
     PyDoc_STR("names($self, /)\n--\n\nThe names published in the heap (named lists among them).")},
    {"__enter__", (PyCFunction)heap_enter, METH_NOARGS, NULL},
    {"__exit__", (PyCFunction)heap_exit, METH_VARARGS, NULL},
    {NULL, NULL, 0, NULL}};

static PyMemberDef heap_members[] = {
    {"name", T_OBJECT, offsetof(HeapObject, name), READONLY, PyDoc_STR("The heap's name (its POSIX shared-memory name, without '/').")},
    {"__weaklistoffset__", T_PYSSIZET, offsetof(HeapObject, weakreflist), READONLY, NULL},
    {NULL, 0, 0, 0, NULL}};

static PyGetSetDef heap_getset[] = {
    {"capacity", (getter)heap_get_capacity, NULL, PyDoc_STR("Bytes of address space the heap reserves."), NULL},
    {"closed", (getter)heap_get_closed, NULL, PyDoc_STR("True once close() was called."), NULL},
    {"gc", (getter)heap_get_gc, NULL,
     PyDoc_STR("The heap's cycle collector, with the names of the gc module (sharena.GC)."), NULL},
    {NULL, NULL, NULL, NULL, NULL}};

static PyType_Slot heap_slots[] = {
    {Py_tp_doc, (void *)heap_doc},
    {Py_tp_new, heap_new},
    {Py_tp_dealloc, heap_dealloc},
    {Py_tp_traverse, heap_traverse},
    {Py_tp_clear, heap_clear},
    {Py_tp_repr, heap_repr},
    {Py_tp_methods, heap_methods},
    {Py_tp_members, heap_members},
    {Py_tp_getset, heap_getset},
    {0, NULL}};

static PyType_Spec heap_spec = {
    .name = "sharena.Heap",
    .basicsize = sizeof(HeapObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_IMMUTABLETYPE,
    .slots = heap_slots,
};

/* ---- Python values <-> sharena values ----------------------------------------- */

/* An exact int as a long long: 1, or 0 when it does not fit (no error set).
 * CPython 3.11 keeps an int of one digit in ob_digit[0] with its sign in
 * ob_size, read here without a call (the index of every get and set, and
 * most int values); larger ints, and other versions, go through the API. */
static inline int exact_long(PyObject *o, long long *out)
{
#if PY_VERSION_HEX < 0x030C0000
    Py_ssize_t size = Py_SIZE(o);
    if (LIKELY(size >= -1 && size <= 1)) {
        *out = size * (long long)((PyLongObject *)o)->ob_digit[0];
        return 1;
    }
#endif
    int overflow;
    long long x = PyLong_AsLongLongAndOverflow(o, &overflow);
    *out = x;
    return !overflow;
}

/* An exact str as UTF-8: its compact ASCII data in place (no call), or the
 * UTF-8 form that CPython caches in the object. NULL with an error set for
 * a str that has no UTF-8 form (lone surrogates). */
static inline const char *str_utf8(PyObject *o, Py_ssize_t *n)
{
    if (LIKELY(PyUnicode_IS_COMPACT_ASCII(o))) {
        *n = PyUnicode_GET_LENGTH(o);
        return (const char *)PyUnicode_DATA(o);
    }
    return PyUnicode_AsUTF8AndSize(o, n);
}

/* Temporary handles made while converting (nested lists), closed after the
 * call that stores them; and the ShareableLists given as values, pinned
 * (busy, and a reference) until then: the GIL may be released during the
 * calls (a wait, an automatic collection), and another thread must not close
 * a handle the values point to meanwhile. */
typedef struct {
    shr_list_t *small[8];
    shr_list_t **tmp;
    size_t n, cap;
    PyObject *pins;         /* list of pinned ShareableLists, or NULL */
} conv_t;

static void conv_init(conv_t *c)
{
    c->tmp = c->small;
    c->n = 0;
    c->cap = 8;
    c->pins = NULL;
}

static int conv_pin(conv_t *c, ListObject *l)
{
    if (!c->pins && !(c->pins = PyList_New(0))) return -1;
    if (PyList_Append(c->pins, (PyObject *)l) < 0) return -1;
    l->busy++;
    return 0;
}

static int conv_keep(conv_t *c, shr_list_t *l)
{
    if (c->n == c->cap) {
        size_t ncap = c->cap * 2;
        shr_list_t **t = PyMem_Malloc(ncap * sizeof *t);
        if (!t) {
            PyErr_NoMemory();
            return -1;
        }
        memcpy(t, c->tmp, c->n * sizeof *t);
        if (c->tmp != c->small) PyMem_Free(c->tmp);
        c->tmp = t;
        c->cap = ncap;
    }
    c->tmp[c->n++] = l;
    return 0;
}

static void conv_done(conv_t *c)
{
    for (size_t i = 0; i < c->n; i++) shr_list_close(c->tmp[i]);
    if (c->tmp != c->small) PyMem_Free(c->tmp);
    c->n = 0;
    if (c->pins) {
        for (Py_ssize_t i = 0; i < PyList_GET_SIZE(c->pins); i++) ((ListObject *)PyList_GET_ITEM(c->pins, i))->busy--;
        Py_CLEAR(c->pins);
    }
}

static int to_values(mod_state *st, HeapObject *hobj, PyObject *fast, shr_value_t **out, conv_t *c);

/* A Python object as a value to store. str and bytes point into the object
 * (it must outlive the call); a Python list becomes a new unnamed list in
 * heap. Raises TypeError, OverflowError or ValueError. */
/* A value that needs no heap (None, bool, int, float, str, bytes): 1 with *v
 * set (str and bytes point into o), 0 for any other type, -1 with an error
 * (OverflowError, a str that is not UTF-8). */
static int simple_value(PyObject *o, shr_value_t *v)
{
    if (LIKELY(PyUnicode_CheckExact(o))) { /* the common cases first, by exact type */
        Py_ssize_t n;
        const char *s = str_utf8(o, &n);
        if (!s) return -1;
        *v = shr_strn(s, (size_t)n);
        return 1;
    }
    long long x;
    if (PyLong_CheckExact(o) && exact_long(o, &x)) {
        *v = shr_int(x);
    } else if (o == Py_None) {
        *v = shr_none();
    } else if (PyBool_Check(o)) {
        *v = shr_bool(o == Py_True);
    } else if (PyLong_Check(o)) {
        int overflow;
        x = PyLong_AsLongLongAndOverflow(o, &overflow);
        if (overflow) {
            PyErr_SetString(PyExc_OverflowError, "int too large to store in a ShareableList (64-bit signed)");
            return -1;
        }
        if (x == -1 && PyErr_Occurred()) return -1;
        *v = shr_int(x);
    } else if (PyFloat_Check(o)) {
        *v = shr_float(PyFloat_AS_DOUBLE(o));
    } else if (PyUnicode_Check(o)) {
        Py_ssize_t n;
        const char *s = PyUnicode_AsUTF8AndSize(o, &n);
        if (!s) return -1;
        *v = shr_strn(s, (size_t)n);
    } else if (PyBytes_Check(o)) {
        *v = shr_bytes(PyBytes_AS_STRING(o), (size_t)PyBytes_GET_SIZE(o));
    } else {
        return 0;
    }
    return 1;
}

static int type_error(PyObject *o)
{
    PyErr_Format(PyExc_TypeError,
                 "ShareableList items must be None, bool, int, float, str, bytes, list or "
                 "ShareableList, not '%.100s'",
                 Py_TYPE(o)->tp_name);
    return -1;
}

static int to_value(mod_state *st, HeapObject *hobj, PyObject *o, shr_value_t *v, conv_t *c)
{
    shr_heap_t *heap = hobj->heap;
    int simple = simple_value(o, v);
    if (simple) return simple < 0 ? -1 : 0;
    if (Py_IS_TYPE(o, st->list_type) || PyObject_TypeCheck(o, st->list_type)) {
        ListObject *l = (ListObject *)o;
        if (!l->list && !l->solo) return closed_error();
        if (l->solo || shr_list_heap(l->list) != heap) { /* a compact list is in a heap of its own */
            PyErr_SetString(PyExc_ValueError,
                            "a ShareableList can hold another ShareableList only of its own heap "
                            "(a plain list is copied into the heap)");
            return -1;
        }
        if (conv_pin(c, l) < 0) return -1;
        *v = shr_listval(l->list);
        return 0;
    }
    if (PyList_Check(o)) {
        if (Py_EnterRecursiveCall(" while converting a list for a ShareableList")) return -1;
        /* A copy holding its items: the values point into them, and another
         * thread may change o while the GIL is released. */
        PyObject *fast = PyList_GetSlice(o, 0, PyList_GET_SIZE(o));
        int rc = -1;
        if (fast) {
            shr_value_t *vals = NULL;
            Py_ssize_t n = PySequence_Fast_GET_SIZE(fast);
            if (to_values(st, hobj, fast, &vals, c) == 0) {
                shr_list_t *l;
                int e = HCALL(hobj, shr_list_create(heap, NULL, vals, (size_t)n, &l));
                if (e) set_error(e, NULL);
                else if (conv_keep(c, l) < 0) shr_list_close(l);
                else {
                    *v = shr_listval(l);
                    rc = 0;
                }
            }
            PyMem_Free(vals);
            Py_DECREF(fast);
        }
        Py_LeaveRecursiveCall();
        return rc;
    }
    return type_error(o);
}

static int to_values(mod_state *st, HeapObject *hobj, PyObject *fast, shr_value_t **out, conv_t *c)
{
    Py_ssize_t n = PySequence_Fast_GET_SIZE(fast);
    shr_value_t *vals = PyMem_Malloc((size_t)(n ? n : 1) * sizeof *vals);
    if (!vals) {
        PyErr_NoMemory();
        return -1;
    }
    PyObject **items = PySequence_Fast_ITEMS(fast);
    for (Py_ssize_t i = 0; i < n; i++)
        if (to_value(st, hobj, items[i], &vals[i], c) < 0) {
            PyMem_Free(vals);
            return -1;
        }
    *out = vals;
    return 0;
}

static ListObject *list_wrap(mod_state *st, HeapObject *heap, shr_list_t *l, PyObject *name, int own);

/* A value got from a list as a Python object; releases the value. */
static PyObject *from_value(ListObject *self, shr_value_t *v)
{
    PyObject *r;
    switch (v->type) {
    case SHR_NONE: Py_RETURN_NONE;
    case SHR_BOOL: return PyBool_FromLong(v->u.b);
    case SHR_INT: return PyLong_FromLongLong(v->u.i);
    case SHR_FLOAT: return PyFloat_FromDouble(v->u.f);
    case SHR_STR:
        r = PyUnicode_DecodeUTF8(v->u.s.data, (Py_ssize_t)v->u.s.len, "surrogateescape");
        shr_value_release(shr_list_heap(self->list), v);
        return r;
    case SHR_BYTES:
        r = PyBytes_FromStringAndSize(v->u.s.data, (Py_ssize_t)v->u.s.len);
        shr_value_release(shr_list_heap(self->list), v);
        return r;
    case SHR_LIST:
        return (PyObject *)list_wrap(self->st, self->heap, v->u.list, Py_None, 0);
    case SHR_REF: /* a node or user-type object (<sharena/gc.h>) */
        shr_value_release(shr_list_heap(self->list), v);
        PyErr_SetString(PyExc_TypeError, "sharena: the item is a node or user-type object, "
                                         "which this module does not represent");
        return NULL;
    }
    shr_value_release(shr_list_heap(self->list), v);
    PyErr_SetString(PyExc_SystemError, "sharena: unknown value type");
    return NULL;
}

/* ---- ShareableList ------------------------------------------------------------ */

/* The fields of a new ListObject, with no handle and no heap yet. */
static void list_fields_init(ListObject *self, mod_state *st, PyObject *heap_name, PyObject *name, int own)
{
    self->list = NULL;
    self->solo = self->solo_old = NULL;
    self->heap = NULL;
    self->heap_name = Py_NewRef(heap_name);
    self->name = Py_NewRef(name);
    self->own = own;
    self->st = st;
    self->busy = 0;
    self->ref_hint = INT64_MIN;
    self->recent = NULL;
    self->recent_index = self->last_index = INT64_MIN;
    self->shm = NULL;
    self->pickle_name = NULL;
    self->weakreflist = NULL;
    self->prev = self->next = NULL;
}

/* Takes over the handle l (closed on failure). */
static ListObject *list_wrap(mod_state *st, HeapObject *heap, shr_list_t *l, PyObject *name, int own)
{
    ListObject *self = PyObject_GC_New(ListObject, st->list_type);
    if (!self) {
        shr_list_close(l);
        return NULL;
    }
    list_fields_init(self, st, heap->name, name, own);
    self->list = l;
    self->heap = (HeapObject *)Py_NewRef(heap);
    self->next = heap->lists;
    if (heap->lists) heap->lists->prev = self;
    heap->lists = self;
    PyObject_GC_Track(self);
    return self;
}

/* A compact list of its own (takes over so, closed on failure). */
static ListObject *solo_wrap(mod_state *st, shr_solo_t *so, PyObject *name)
{
    ListObject *self = PyObject_GC_New(ListObject, st->list_type);
    if (!self) {
        shr_solo_close(so);
        return NULL;
    }
    list_fields_init(self, st, name, name, 1);
    self->solo = so;
    PyObject_GC_Track(self);
    return self;
}

/* A compact list becomes its heap's list: on the first call it cannot do in
 * its page (an item added or removed, a nested list, a string the page has
 * no room for), or when another process has made it a heap. Then self is
 * an ordinary list handle of the segment's heap (one HeapObject per heap in
 * this process, as heap_open keeps them). 0, or -1 with an error set. */
static __attribute__((noinline)) int to_heap(ListObject *self)
{
    if (!self->solo) return self->list ? 0 : closed_error();
    mod_state *st = self->st;
    shr_heap_t *hp;
    int rc = SCALL(self, shr_solo_promote(self->solo, &hp));
    if (!self->solo) { /* another thread did it while this one waited */
        if (rc == 0) shr_heap_close(hp);
        return self->list ? 0 : closed_error();
    }
    if (rc) {
        set_error(rc, self->heap_name);
        return -1;
    }
    HeapObject *h = heap_find(st, self->heap_name);
    if (h) shr_heap_close(hp);
    else if (!(h = heap_wrap(st, hp))) return -1;
    shr_list_t *l;
    rc = shr_list_attach(h->heap, OWN_LIST_NAME, &l);
    if (rc) {
        Py_DECREF(h);
        set_error(rc, self->heap_name);
        return -1;
    }
    /* Another thread may still be inside a call on the compact handle (it
     * waits for the page's lock with the GIL released): keep it until close. */
    if (self->busy) self->solo_old = self->solo;
    else shr_solo_close(self->solo);
    self->solo = NULL;
    self->list = l;
    self->heap = h; /* the reference heap_find or heap_wrap gave; heap_name stays (the same) */
    self->next = h->lists;
    if (h->lists) h->lists->prev = self;
    h->lists = self;
    return 0;
}

/* A ShareableList's initial sequence as a list or tuple of its items. */
static PyObject *as_fast(PyObject *sequence)
{
    if (sequence == Py_None) return PyTuple_New(0);
    if (PyUnicode_Check(sequence) || PyBytes_Check(sequence)) {
        /* A str is a sequence of 1-character strs, as in the stdlib; bytes
         * iterate as ints. */
        return PySequence_List(sequence);
    }
    if (PyList_Check(sequence)) return PyList_GetSlice(sequence, 0, PyList_GET_SIZE(sequence)); /* see to_value */
    return PySequence_Fast(sequence, "ShareableList() argument must be an iterable");
}

static PyObject *make_list(mod_state *st, HeapObject *heap, PyObject *sequence, PyObject *name, int own)
{
    PyObject *fast = as_fast(sequence);
    if (!fast) return NULL;
    const char *cname = NULL;
    if (own) cname = OWN_LIST_NAME;
    else if (name != Py_None && !(cname = PyUnicode_AsUTF8(name))) {
        Py_DECREF(fast);
        return NULL;
    }
    conv_t c;
    conv_init(&c);
    shr_value_t *vals = NULL;
    PyObject *r = NULL;
    if (to_values(st, heap, fast, &vals, &c) == 0) {
        shr_list_t *l;
        int rc = HCALL(heap, shr_list_create(heap->heap, cname, vals, (size_t)PySequence_Fast_GET_SIZE(fast), &l));
        if (rc) set_error(rc, name == Py_None ? NULL : name);
        else r = (PyObject *)list_wrap(st, heap, l, own ? heap->name : name, own);
    }
    conv_done(&c);
    PyMem_Free(vals);
    Py_DECREF(fast);
    return r;
}

static PyObject *attach_list(mod_state *st, HeapObject *heap, PyObject *name, int own)
{
    const char *cname = own ? OWN_LIST_NAME : PyUnicode_AsUTF8(name);
    if (!cname) return NULL;
    shr_list_t *l;
    int rc = shr_list_attach(heap->heap, cname, &l);
    if (rc) return set_error(rc, name);
    return (PyObject *)list_wrap(st, heap, l, name, own);
}

static PyObject *random_name(void)
{
    unsigned char b[4];
    if (getrandom(b, sizeof b, 0) != (ssize_t)sizeof b) return PyErr_SetFromErrno(PyExc_OSError);
    return PyUnicode_FromFormat("psm_%02x%02x%02x%02x", b[0], b[1], b[2], b[3]);
}

/* The values of fast when every one needs no heap: 1 with *out (PyMem)
 * set, 0 when one does (a list), -1 with an error (a wrong type, an int too
 * large: raised now, as the heap's path would). */
static int simple_values(PyObject *fast, shr_value_t **out)
{
    Py_ssize_t n = PySequence_Fast_GET_SIZE(fast);
    shr_value_t *vals = PyMem_Malloc(((size_t)n + 1) * sizeof *vals);
    if (!vals) {
        PyErr_NoMemory();
        return -1;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *o = PySequence_Fast_GET_ITEM(fast, i);
        int r = simple_value(o, &vals[i]);
        if (r <= 0) {
            PyMem_Free(vals);
            return r;
        }
    }
    *out = vals;
    return 1;
}

/* A compact list of its own for sequence under name: the list object, NULL
 * with an error, or NULL with no error when it must be a heap (a value
 * that needs one, or more than the page holds). *rc_out: the library's code. */
static PyObject *own_compact(mod_state *st, PyObject *sequence, PyObject *name, int *rc_out)
{
    *rc_out = 0;
    const char *cn = PyUnicode_AsUTF8(name);
    if (!cn) return NULL;
    PyObject *fast = as_fast(sequence);
    if (!fast) return NULL;
    shr_value_t *vals = NULL;
    int r = simple_values(fast, &vals);
    PyObject *res = NULL;
    if (r > 0) {
        shr_solo_t *so;
        int rc = shr_solo_create(cn, vals, (size_t)PySequence_Fast_GET_SIZE(fast), 0, &so);
        *rc_out = rc;
        if (rc == 0) res = (PyObject *)solo_wrap(st, so, name);
        else if (rc != SHR_ENOROOM && rc != -EEXIST) set_error(rc, name);
    }
    PyMem_Free(vals);
    Py_DECREF(fast);
    return res;
}

/* A list in a segment of its own: made for sequence, or attached by name.
 * It is compact (one page, <sharena/solo.h>) while its values allow. */
static PyObject *own_list(mod_state *st, PyObject *sequence, PyObject *name)
{
    if (sequence == Py_None && name != Py_None) {
        const char *cn = PyUnicode_AsUTF8(name);
        if (!cn) return NULL;
        shr_solo_t *so;
        int rc = shr_solo_open(cn, &so);
        if (rc == 0 && !shr_solo_is_heap(so)) return (PyObject *)solo_wrap(st, so, name);
        if (rc == 0) shr_solo_close(so);
        else if (rc != SHR_ENOTSHR) return set_error(rc, name);
        /* A compact list's heap, or a heap made with Heap() holding a list
         * under the same root name. */
        HeapObject *h = heap_open(st, name);
        if (!h) return NULL;
        PyObject *r = attach_list(st, h, name, 1);
        Py_DECREF(h);
        return r;
    }
    for (int tries = 0;; tries++) {
        PyObject *n = name == Py_None ? random_name() : Py_NewRef(name);
        if (!n) return NULL;
        int rc;
        PyObject *r = own_compact(st, sequence, n, &rc);
        Py_DECREF(n);
        if (r || PyErr_Occurred()) return r;
        if (rc == -EEXIST) {
            if (name != Py_None) return set_error(rc, name);
            if (tries < 100) continue;
            return set_error(rc, NULL);
        }
        break; /* SHR_ENOROOM, or a value that needs a heap: a heap from the start */
    }
    for (int tries = 0;; tries++) {
        PyObject *n = name == Py_None ? random_name() : Py_NewRef(name);
        if (!n) return NULL;
        const char *cn = PyUnicode_AsUTF8(n);
        if (!cn) {
            Py_DECREF(n);
            return NULL;
        }
        shr_heap_t *hp;
        int rc = shr_solo_create_heap(cn, NULL, &hp);
        if (rc == -EEXIST && name == Py_None && tries < 100) {
            Py_DECREF(n);
            continue;
        }
        if (rc) {
            set_error(rc, n);
            Py_DECREF(n);
            return NULL;
        }
        HeapObject *h = heap_wrap(st, hp);
        if (!h) {
            shr_heap_unlink(cn);
            Py_DECREF(n);
            return NULL;
        }
        PyObject *r = make_list(st, h, sequence, n, 1);
        if (!r) shr_heap_unlink(cn); /* a failed creation leaves nothing behind */
        Py_DECREF(h);
        Py_DECREF(n);
        return r;
    }
}

static PyObject *list_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    PyObject *sequence, *name;
    if (list_args(args, kwds, &sequence, &name) < 0) return NULL;
    mod_state *st = state_of_type(type);
    if (!st) return NULL;
    return own_list(st, sequence, name);
}

static inline int check_open(ListObject *self)
{
    if (LIKELY(self->list != NULL || self->solo != NULL)) return 0;
    return closed_error();
}

static Py_ssize_t list_length(ListObject *self)
{
    if (check_open(self) < 0) return -1;
    if (UNLIKELY(self->solo != NULL)) {
        int64_t n = shr_solo_len(self->solo);
        if (n >= 0) return (Py_ssize_t)n;
        if (n != SHR_EMOVED) {
            set_error((int)n, NULL);
            return -1;
        }
        if (to_heap(self) < 0) return -1;
    }
    int64_t n = shr_list_len(self->list);
    if (n < 0) {
        set_error((int)n, NULL);
        return -1;
    }
    return (Py_ssize_t)n;
}

/* Reads.
 *
 * First shr_list_read_copy: an item holding None, bool, int or float, or a
 * str or bytes of at most COPY_MAX bytes (copied to a buffer on the stack),
 * is read lock-free (no gate, never a wait, so no LCALL: nothing can
 * release the GIL), and its object made from the copy (or the one it made
 * before: short_value). Counted by bench/list/python_ir.py, that takes a get
 * of a 16-byte str from 1,056 to 914 instructions, the lock, the gate and
 * the visitor's call gone (docs/design/python.md). Any other item (a list or an
 * object, a longer value, or one that readers kept colliding with a writer
 * on) is then visited as shr_list_get_with does: visit_item runs while the
 * item cannot change (under the list's lock for a str or bytes) and takes
 * no reference in the heap. A str or bytes that fits the small buffer is
 * copied there and its object made after the call. One of at most
 * DIRECT_MAX bytes is made into its Python object right there, from the
 * shared bytes, when this thread still holds the GIL (waiting_tstate is
 * NULL: the wait hook did not release it): a Python allocation and a copy
 * of at most DIRECT_MAX bytes under the list's lock call no sharena
 * function and wait for nothing. A longer value, or a middle one when the
 * wait hook released the GIL (the visitor then calls no Python API), is got
 * with shr_list_get instead (VISIT_LARGE): a reference keeps its bytes
 * alive while the object is made from them outside the lock, so the lock
 * is never held for a long copy. */
#define COPY_MAX 224
#define DIRECT_MAX 4096
#define VISIT_LARGE 1       /* visit_item's returns: positive, unlike the library's errors */
#define VISIT_PYERR 2

typedef struct {
    shr_value_t v;
    PyObject *obj;          /* the object made under the lock, or NULL */
    /* Aligned: CPython's ASCII decoder reads a word at a time only from an
     * aligned source (a misaligned one costs it a loop per byte). */
    _Alignas(16) char small[COPY_MAX];
} visit_t;

/* A str from valid UTF-8 (the list layer stores no other): ASCII, checked a
 * word at a time, is copied straight into a new compact str. */
static inline PyObject *str_from_utf8(const char *s, size_t n)
{
    if (n >= 8 && n <= 16) { /* two words, overlapping: checked and copied without a call */
        uint64_t a, b;
        memcpy(&a, s, 8);
        memcpy(&b, s + n - 8, 8);
        if (LIKELY(!((a | b) & 0x8080808080808080ull))) {
            PyObject *u = PyUnicode_New((Py_ssize_t)n, 127);
            if (u) {
                char *d = (char *)PyUnicode_1BYTE_DATA(u);
                memcpy(d, &a, 8);
                memcpy(d + n - 8, &b, 8);
            }
            return u;
        }
        return PyUnicode_DecodeUTF8(s, (Py_ssize_t)n, "surrogateescape");
    }
    uint64_t acc = 0;
    size_t k = 0;
    for (; k + 8 <= n; k += 8) {
        uint64_t w;
        memcpy(&w, s + k, 8);
        acc |= w;
    }
    for (; k < n; k++) acc |= (unsigned char)s[k];
    if (LIKELY(!(acc & 0x8080808080808080ull))) {
        PyObject *u = PyUnicode_New((Py_ssize_t)n, 127);
        if (u) memcpy(PyUnicode_1BYTE_DATA(u), s, n);
        return u;
    }
    return PyUnicode_DecodeUTF8(s, (Py_ssize_t)n, "surrogateescape");
}

static int visit_item(const shr_value_t *v, void *arg)
{
    visit_t *va = arg;
    va->v.type = v->type;
    if (v->type == SHR_STR || v->type == SHR_BYTES) {
        size_t n = va->v.u.s.len = v->u.s.len;
        if (LIKELY(n <= sizeof va->small)) {
            memcpy(va->small, v->u.s.data, n);
        } else if (n <= DIRECT_MAX && waiting_tstate == NULL) { /* the GIL is held */
            va->obj = v->type == SHR_STR ? str_from_utf8(v->u.s.data, n)
                                         : PyBytes_FromStringAndSize(v->u.s.data, (Py_ssize_t)n);
            return va->obj ? 0 : VISIT_PYERR;
        } else {
            return VISIT_LARGE;
        }
    } else { /* a list or object item (a reference the caller now owns), or an inline value */
        va->v = *v;
    }
    return 0;
}

/* An inline value (None, bool, int, float) as a Python object. */
static inline PyObject *inline_obj(const mod_state *st, const shr_value_t *v)
{
    switch (v->type) {
    case SHR_INT:
        if (LIKELY((uint64_t)(v->u.i - SMALL_MIN) <= (uint64_t)(SMALL_MAX - SMALL_MIN)))
            return Py_NewRef(st->small_ints[v->u.i - SMALL_MIN]);
        return PyLong_FromLongLong(v->u.i);
    case SHR_NONE: Py_RETURN_NONE;
    case SHR_BOOL: return PyBool_FromLong(v->u.b);
    default: return PyFloat_FromDouble(v->u.f);
    }
}

/* Get item i through the visitor (anything shr_list_read did not read
 * lock-free): the object, or NULL with an error set; *rc_out the library's
 * code. */
static __attribute__((noinline)) PyObject *get_visited(ListObject *self, int64_t i, int *rc_out)
{
    visit_t va;
    va.obj = NULL;
    int rc = LCALL(self, shr_list_read(self->list, i, NULL, visit_item, &va));
    if (rc_out) *rc_out = rc;
    if (LIKELY(rc == 0)) {
        /* A list, an object or a longer value: the next get of i comes
         * straight here. A short str or bytes (read here because a writer
         * kept moving items) is left to the lock-free copy. */
        self->ref_hint = (va.v.type == SHR_STR || va.v.type == SHR_BYTES) && va.v.u.s.len <= COPY_MAX && !va.obj
                             ? INT64_MIN : i;
        if (va.obj) return va.obj;
        switch (va.v.type) {
        case SHR_STR: return str_from_utf8(va.small, va.v.u.s.len);
        case SHR_BYTES: return PyBytes_FromStringAndSize(va.small, (Py_ssize_t)va.v.u.s.len);
        case SHR_INT: case SHR_NONE: case SHR_BOOL: case SHR_FLOAT:
            self->ref_hint = INT64_MIN; /* the hint was wrong: the item changed */
            return inline_obj(self->st, &va.v);
        default: return from_value(self, &va.v);
        }
    }
    if (rc == VISIT_PYERR) return NULL;
    if (rc == VISIT_LARGE) { /* under a reference, outside the lock */
        shr_value_t v;
        rc = LCALL(self, shr_list_get(self->list, i, &v));
        if (rc_out) *rc_out = rc;
        if (rc == 0) return from_value(self, &v);
    }
    return set_error(rc, NULL);
}

/* The object for a str or bytes of item i copied by a lock-free get. A
 * process that polls an item reads the same value over and over, so a get
 * of the index that the get before it read too keeps the object it makes
 * (ListObject.recent: an ASCII str, or bytes); a get of that index whose
 * copied bytes are the same, of the same type, returns that object again
 * instead of an equal new one, as CPython shares one object for equal small
 * ints. Only the bytes decide, compared after each copy: a changed value
 * makes a new object, never a stale one. A walk over different indices
 * keeps nothing and pays one compare of an index. */
static PyObject *short_value(ListObject *self, int64_t i, shr_type_t type, const char *s, size_t n)
{
    PyObject *c = self->recent;
    if (c && self->recent_index == i &&
        (type == SHR_STR ? PyUnicode_CheckExact(c) && (size_t)PyUnicode_GET_LENGTH(c) == n &&
                               memcmp(PyUnicode_1BYTE_DATA(c), s, n) == 0
                         : PyBytes_CheckExact(c) && (size_t)PyBytes_GET_SIZE(c) == n &&
                               memcmp(PyBytes_AS_STRING(c), s, n) == 0))
        return Py_NewRef(c);
    PyObject *o = type == SHR_STR ? str_from_utf8(s, n) : PyBytes_FromStringAndSize(s, (Py_ssize_t)n);
    if (o && self->last_index == i && (type == SHR_BYTES || PyUnicode_IS_COMPACT_ASCII(o))) {
        Py_XSETREF(self->recent, Py_NewRef(o));
        self->recent_index = i;
    }
    self->last_index = i;
    return o;
}

/* Get item i: the object, or NULL with an error set (SHR_EINDEX as
 * IndexError; *rc_out, if given, the library's code). shr_list_read_copy
 * needs no LCALL: it never waits, so the GIL stays held and no other thread
 * can close the list meanwhile. */
static PyObject *solo_get(ListObject *self, int64_t i, int *rc_out);

static inline PyObject *get_item(ListObject *self, int64_t i, int *rc_out)
{
    /* Callers checked that the list is open: no handle means a compact one
     * (list and solo are never both set), and the test is the one they made. */
    if (UNLIKELY(self->list == NULL)) return solo_get(self, i, rc_out);
    /* The same index as the last get that found a list, an object or a
     * longer str or bytes (polling such an item): visit it at once. Only a
     * hint: any other item is visited correctly too, and clears it. */
    if (i == self->ref_hint) return get_visited(self, i, rc_out);
    shr_value_t v;
    _Alignas(16) char buf[COPY_MAX];
    int rc = shr_list_read_copy(self->list, i, &v, buf, sizeof buf);
    if (LIKELY(rc == 0)) {
        if (rc_out) *rc_out = 0;
        if (v.type == SHR_STR || v.type == SHR_BYTES) return short_value(self, i, v.type, buf, v.u.s.len);
        return inline_obj(self->st, &v);
    }
    if (rc < 0) {
        if (rc_out) *rc_out = rc;
        return set_error(rc, NULL);
    }
    return get_visited(self, i, rc_out);
}

/* A get from a compact list: lock-free, as shr_list_read_copy is (the
 * page's lock only behind a writer that does not finish). */
static __attribute__((noinline)) PyObject *solo_get(ListObject *self, int64_t i, int *rc_out)
{
    shr_value_t v;
    _Alignas(16) char buf[SHR_SOLO_MAX_BYTES];
    int rc = SCALL(self, shr_solo_read(self->solo, i, &v, buf, sizeof buf));
    if (UNLIKELY(rc == SHR_EMOVED)) {
        if (to_heap(self) < 0) return NULL;
        return get_item(self, i, rc_out);
    }
    if (rc_out) *rc_out = rc;
    if (UNLIKELY(rc != 0)) return set_error(rc == 1 ? SHR_ECORRUPT : rc, NULL);
    if (v.type == SHR_STR || v.type == SHR_BYTES) return short_value(self, i, v.type, buf, v.u.s.len);
    return inline_obj(self->st, &v);
}

static PyObject *list_item(ListObject *self, int64_t i)
{
    if (UNLIKELY(!self->list) && !self->solo) {
        closed_error();
        return NULL;
    }
    return get_item(self, i, NULL);
}

static PyObject *list_slice(ListObject *self, PyObject *slice)
{
    Py_ssize_t start, stop, step;
    if (PySlice_Unpack(slice, &start, &stop, &step) < 0) return NULL;
    Py_ssize_t len = list_length(self);
    if (len < 0) return NULL;
    Py_ssize_t n = PySlice_AdjustIndices(len, &start, &stop, step);
    PyObject *out = PyList_New(0);
    if (!out) return NULL;
    for (Py_ssize_t k = 0, i = start; k < n; k++, i += step) {
        PyObject *o = list_item(self, i);
        if (!o && PyErr_ExceptionMatches(PyExc_IndexError)) { /* shrunk meanwhile */
            PyErr_Clear();
            break;
        }
        if (!o || PyList_Append(out, o) < 0) {
            Py_XDECREF(o);
            Py_DECREF(out);
            return NULL;
        }
        Py_DECREF(o);
    }
    return out;
}

static int index_of(PyObject *key, int64_t *out)
{
    if (LIKELY(PyLong_CheckExact(key))) {
        long long i;
        if (UNLIKELY(!exact_long(key, &i))) {
            PyErr_SetString(PyExc_IndexError, "ShareableList index out of range");
            return -1;
        }
        *out = i;
        return 0;
    }
    if (PyIndex_Check(key)) {
        Py_ssize_t i = PyNumber_AsSsize_t(key, PyExc_IndexError);
        if (i == -1 && PyErr_Occurred()) return -1;
        *out = i;
        return 0;
    }
    PyErr_Format(PyExc_TypeError, "ShareableList indices must be integers or slices, not %.200s",
                 Py_TYPE(key)->tp_name);
    return -1;
}

static PyObject *list_subscript(ListObject *self, PyObject *key)
{
    if (UNLIKELY(!self->list) && !self->solo) {
        closed_error();
        return NULL;
    }
    long long i;
    if (LIKELY(PyLong_CheckExact(key)) && LIKELY(exact_long(key, &i))) return get_item(self, i, NULL);
    if (PySlice_Check(key)) return list_slice(self, key);
    int64_t j;
    if (index_of(key, &j) < 0) return NULL;
    return list_item(self, j);
}

static int list_ass_subscript(ListObject *self, PyObject *key, PyObject *value)
{
    if (UNLIKELY(!self->list) && !self->solo) return closed_error();
    if (PySlice_Check(key)) {
        PyErr_SetString(PyExc_TypeError, "ShareableList does not support slice assignment or deletion");
        return -1;
    }
    int64_t i;
    if (index_of(key, &i) < 0) return -1;
    int rc;
    shr_value_t v;
    long long x;
    if (UNLIKELY(self->solo != NULL)) {
        /* A compact list keeps what its page can hold; anything else (a
         * delete, a list, a string the page has no room for) makes it a
         * heap first. A wrong type or an int too large is refused here. */
        if (value) {
            int r = simple_value(value, &v);
            if (r < 0) return -1;
            if (r > 0) {
                rc = SCALL(self, shr_solo_set(self->solo, i, &v));
                if (rc == 0) return 0;
                if (rc != SHR_EMOVED && rc != SHR_ENOROOM) {
                    set_error(rc, NULL);
                    return -1;
                }
            } else if (!PyList_Check(value) && !PyObject_TypeCheck(value, self->st->list_type)) {
                return type_error(value);
            }
        }
        if (to_heap(self) < 0) return -1;
    }
    if (!value) {
        rc = LCALL(self, shr_list_delete(self->list, i));
    } else if (LIKELY(PyUnicode_CheckExact(value))) { /* the common cases: nothing to convert */
        Py_ssize_t n;
        const char *s = str_utf8(value, &n);
        if (!s) return -1;
        v = shr_strn(s, (size_t)n);
        rc = LCALL(self, shr_list_set(self->list, i, &v));
    } else if (PyLong_CheckExact(value) && exact_long(value, &x)) {
        v = shr_int(x);
        rc = LCALL(self, shr_list_set(self->list, i, &v));
    } else {
        conv_t c;
        conv_init(&c);
        if (to_value(self->st, self->heap, value, &v, &c) < 0) {
            conv_done(&c);
            return -1;
        }
        rc = LCALL(self, shr_list_set(self->list, i, &v));
        conv_done(&c);
    }
    if (rc) {
        set_error(rc, NULL);
        return -1;
    }
    return 0;
}

/* Equality as the stdlib's count and index have it (==), for a value that
 * sharena can compare itself; -1 with no error when the caller must compare
 * in Python (values sharena cannot hold, such as 2**70 or a custom type). */
static int c_comparable(mod_state *st, ListObject *self, PyObject *value, shr_value_t *v, conv_t *c)
{
    if (PyList_Check(value)) return -1; /* == of a list with an item: Python decides */
    if (Py_IS_TYPE(value, st->list_type) && ((ListObject *)value)->list &&
        shr_list_heap(((ListObject *)value)->list) != shr_list_heap(self->list))
        return -1;
    if (value != Py_None && !PyBool_Check(value) && !PyLong_CheckExact(value) && !PyFloat_CheckExact(value) &&
        !PyUnicode_CheckExact(value) && !PyBytes_CheckExact(value) && !Py_IS_TYPE(value, st->list_type))
        return -1;
    if (to_value(st, self->heap, value, v, c) < 0) {
        PyErr_Clear();
        return -1;
    }
    return 0;
}

/* count (want_index 0) or index (1) by Python comparison of every item. */
static PyObject *py_find(ListObject *self, PyObject *value, int want_index)
{
    Py_ssize_t n = list_length(self);
    if (n < 0) return NULL;
    Py_ssize_t count = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *o = list_item(self, i);
        if (!o) {
            if (PyErr_ExceptionMatches(PyExc_IndexError)) {
                PyErr_Clear();
                break;
            }
            return NULL;
        }
        int eq = PyObject_RichCompareBool(o, value, Py_EQ);
        Py_DECREF(o);
        if (eq < 0) return NULL;
        if (eq) {
            if (want_index) return PyLong_FromSsize_t(i);
            count++;
        }
    }
    if (want_index) {
        PyErr_Format(PyExc_ValueError, "%R not in this container", value);
        return NULL;
    }
    return PyLong_FromSsize_t(count);
}

static PyObject *list_find(ListObject *self, PyObject *value, int want_index)
{
    if (check_open(self) < 0) return NULL;
    if (self->solo) return py_find(self, value, want_index); /* a page: Python compares */
    mod_state *st = self->st;
    if (!st) return NULL;
    shr_value_t v;
    conv_t c;
    conv_init(&c);
    if (c_comparable(st, self, value, &v, &c) < 0) {
        conv_done(&c);
        return py_find(self, value, want_index);
    }
    size_t r;
    int rc = want_index ? LCALL(self, shr_list_index(self->list, &v, &r)) : LCALL(self, shr_list_count(self->list, &v, &r));
    conv_done(&c);
    if (rc == SHR_ENOTFOUND) {
        PyErr_Format(PyExc_ValueError, "%R not in this container", value);
        return NULL;
    }
    if (rc) return set_error(rc, NULL);
    return PyLong_FromSize_t(r);
}

static PyObject *list_count(ListObject *self, PyObject *value) { return list_find(self, value, 0); }
static PyObject *list_index(ListObject *self, PyObject *value) { return list_find(self, value, 1); }

static int list_contains(ListObject *self, PyObject *value)
{
    PyObject *r = list_find(self, value, 1);
    if (r) {
        Py_DECREF(r);
        return 1;
    }
    if (PyErr_ExceptionMatches(PyExc_ValueError) && (self->list || self->solo)) {
        PyErr_Clear();
        return 0;
    }
    return -1;
}

static PyObject *list_insert_common(ListObject *self, int64_t index, PyObject *value, int append)
{
    if (check_open(self) < 0) return NULL;
    if (self->solo && to_heap(self) < 0) return NULL;
    mod_state *st = self->st;
    if (!st) return NULL;
    shr_value_t v;
    conv_t c;
    conv_init(&c);
    if (to_value(st, self->heap, value, &v, &c) < 0) {
        conv_done(&c);
        return NULL;
    }
    int rc = append ? LCALL(self, shr_list_append(self->list, &v)) : LCALL(self, shr_list_insert(self->list, index, &v));
    conv_done(&c);
    if (rc) return set_error(rc, NULL);
    Py_RETURN_NONE;
}

static PyObject *list_append(ListObject *self, PyObject *value) { return list_insert_common(self, 0, value, 1); }

static PyObject *list_insert(ListObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2) {
        PyErr_Format(PyExc_TypeError, "insert expected 2 arguments, got %zd", nargs);
        return NULL;
    }
    Py_ssize_t i = PyNumber_AsSsize_t(args[0], PyExc_OverflowError);
    if (i == -1 && PyErr_Occurred()) return NULL;
    return list_insert_common(self, i, args[1], 0);
}

static PyObject *list_extend(ListObject *self, PyObject *iterable)
{
    if (check_open(self) < 0) return NULL;
    PyObject *fast = PySequence_Fast(iterable, "ShareableList.extend() argument must be an iterable");
    if (!fast) return NULL;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(fast);
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *r = list_append(self, PySequence_Fast_GET_ITEM(fast, i));
        if (!r) {
            Py_DECREF(fast);
            return NULL;
        }
        Py_DECREF(r);
    }
    Py_DECREF(fast);
    Py_RETURN_NONE;
}

static PyObject *list_pop(ListObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs > 1) {
        PyErr_Format(PyExc_TypeError, "pop expected at most 1 argument, got %zd", nargs);
        return NULL;
    }
    if (check_open(self) < 0) return NULL;
    Py_ssize_t i = -1;
    if (nargs == 1) {
        i = PyNumber_AsSsize_t(args[0], PyExc_IndexError);
        if (i == -1 && PyErr_Occurred()) return NULL;
    }
    if (self->solo && to_heap(self) < 0) return NULL;
    shr_value_t v;
    int rc = LCALL(self, shr_list_pop(self->list, i, &v));
    if (rc == SHR_EINDEX) {
        PyErr_SetString(PyExc_IndexError, "pop from empty ShareableList or index out of range");
        return NULL;
    }
    if (rc) return set_error(rc, NULL);
    return from_value(self, &v);
}

/* The stdlib's struct format of one value. */
static PyObject *item_format(const shr_value_t *v)
{
    switch (v->type) {
    case SHR_NONE: return PyUnicode_FromString("xxxxxx?x");
    case SHR_BOOL: return PyUnicode_FromString("xxxxxxx?");
    case SHR_INT: return PyUnicode_FromString("q");
    case SHR_FLOAT: return PyUnicode_FromString("d");
    case SHR_STR:
    case SHR_BYTES: return PyUnicode_FromFormat("%zus", 8 * (v->u.s.len / 8 + 1));
    default: return PyUnicode_FromString("Q");
    }
}

/* The format of item i of a compact list: a str, or NULL with an error set,
 * or NULL with none when the list has become a heap (the caller asks it). */
static PyObject *solo_item_format(ListObject *self, int64_t i)
{
    shr_value_t v;
    _Alignas(16) char buf[SHR_SOLO_MAX_BYTES];
    int rc = SCALL(self, shr_solo_read(self->solo, i, &v, buf, sizeof buf));
    if (rc == SHR_EMOVED) return NULL;
    if (rc) return set_error(rc == 1 ? SHR_ECORRUPT : rc, NULL);
    return item_format(&v);
}

/* The format of a compact list, as solo_item_format answers. */
static PyObject *solo_format(ListObject *self)
{
    int64_t n = shr_solo_len(self->solo);
    if (n == SHR_EMOVED) return NULL;
    if (n < 0) return set_error((int)n, NULL);
    PyObject *parts = PyList_New(0);
    for (int64_t i = 0; parts && i < n; i++) {
        PyObject *f = solo_item_format(self, i);
        if (!f || PyList_Append(parts, f) < 0) Py_CLEAR(parts);
        Py_XDECREF(f);
    }
    if (!parts) return NULL;
    PyObject *empty = PyUnicode_FromString("");
    PyObject *r = empty ? PyUnicode_Join(empty, parts) : NULL;
    Py_XDECREF(empty);
    Py_DECREF(parts);
    return r;
}

static PyObject *list_get_format(ListObject *self, void *closure)
{
    (void)closure;
    if (check_open(self) < 0) return NULL;
    if (self->solo) {
        PyObject *r = solo_format(self);
        if (r || PyErr_Occurred()) return r;
        if (to_heap(self) < 0) return NULL;
    }
    char *s = LCALL(self, shr_list_format(self->list));
    if (!s) return set_error(-errno, NULL);
    PyObject *r = PyUnicode_FromString(s);
    free(s);
    return r;
}

/* The stdlib's per-item struct format, for the value the item holds now. */
static PyObject *list_get_packing_format(ListObject *self, PyObject *arg)
{
    if (check_open(self) < 0) return NULL;
    int64_t i;
    if (index_of(arg, &i) < 0) return NULL;
    if (self->solo) {
        PyObject *r = solo_item_format(self, i);
        if (r || PyErr_Occurred()) return r;
        if (to_heap(self) < 0) return NULL;
    }
    shr_value_t v;
    int rc = LCALL(self, shr_list_get(self->list, i, &v));
    if (rc) return set_error(rc, NULL);
    PyObject *r = item_format(&v);
    shr_value_release(shr_list_heap(self->list), &v);
    return r;
}

static PyObject *segment_for(ListObject *self);
static PyObject *list_close_checked(ListObject *self);

static PyObject *list_get_shm(ListObject *self, void *closure)
{
    (void)closure;
    if (!self->shm && !(self->shm = segment_for(self))) return NULL;
    return Py_NewRef(self->shm);
}

static PyObject *list_get_heap(ListObject *self, void *closure)
{
    (void)closure;
    if (self->solo && to_heap(self) < 0) return NULL; /* who asks for the heap gets one */
    if (!self->heap) Py_RETURN_NONE;
    return Py_NewRef(self->heap);
}

static PyObject *list_repr(ListObject *self)
{
    if (!self->list && !self->solo)
        return PyUnicode_FromFormat("<closed %s, name=%R>", _PyType_Name(Py_TYPE(self)), self->name);
    int r = Py_ReprEnter((PyObject *)self);
    if (r != 0) return r > 0 ? PyUnicode_FromString("[...]") : NULL;
    PyObject *items = PySequence_List((PyObject *)self);
    PyObject *s = items ? PyUnicode_FromFormat("%s(%R, name=%R)", _PyType_Name(Py_TYPE(self)), items, self->name)
                        : NULL;
    Py_XDECREF(items);
    Py_ReprLeave((PyObject *)self);
    return s;
}

/* Pickling. A list in a segment of its own pickles as the stdlib's does,
 * partial(ShareableList, name=...): by name, the same few bytes whatever its
 * length. A named list of a shared heap pickles as (heap name, list name).
 * An unnamed one is first given a name: a named holder list whose one item
 * is this list (made once per object, and kept until the heap goes), so the
 * pickle never carries a bare offset that could dangle. */
static PyObject *list_reduce(ListObject *self, PyObject *Py_UNUSED(ignored))
{
    if (check_open(self) < 0) return NULL;
    mod_state *st = self->st;
    if (!st) return NULL;
    if (self->own) {
        PyObject *kw = Py_BuildValue("{s:O}", "name", self->heap_name);
        PyObject *args = kw ? PyTuple_Pack(1, (PyObject *)Py_TYPE(self)) : NULL;
        PyObject *p = args ? PyObject_Call(st->partial, args, kw) : NULL;
        Py_XDECREF(kw);
        Py_XDECREF(args);
        return p ? Py_BuildValue("(N())", p) : NULL;
    }
    PyObject *m = PyType_GetModuleByDef(Py_TYPE(self), &sharena_module);
    PyObject *rebuild = m ? PyObject_GetAttrString(m, "_rebuild") : NULL;
    if (!rebuild) return NULL;
    if (self->name != Py_None) return Py_BuildValue("(N(OOi))", rebuild, self->heap_name, self->name, 0);
    if (!self->pickle_name) {
        for (int tries = 0; !self->pickle_name; tries++) {
            unsigned char b[8];
            if (getrandom(b, sizeof b, 0) != (ssize_t)sizeof b) {
                Py_DECREF(rebuild);
                return PyErr_SetFromErrno(PyExc_OSError);
            }
            char nm[40];
            snprintf(nm, sizeof nm, "~pickle_%02x%02x%02x%02x%02x%02x%02x%02x", b[0], b[1], b[2], b[3], b[4], b[5],
                     b[6], b[7]);
            shr_value_t v = shr_listval(self->list);
            shr_list_t *holder;
            int rc = HCALL(self->heap, shr_list_create(shr_list_heap(self->list), nm, &v, 1, &holder));
            if (rc == -EEXIST && tries < 100) continue;
            if (rc) {
                Py_DECREF(rebuild);
                return set_error(rc, NULL);
            }
            shr_list_close(holder);
            if (!(self->pickle_name = PyUnicode_FromString(nm))) {
                Py_DECREF(rebuild);
                return NULL;
            }
        }
    }
    return Py_BuildValue("(N(OOi))", rebuild, self->heap_name, self->pickle_name, 1);
}

static PyObject *mod_rebuild(PyObject *module, PyObject *args)
{
    PyObject *heap_name, *name;
    int holder;
    if (!PyArg_ParseTuple(args, "UUi:_rebuild", &heap_name, &name, &holder)) return NULL;
    mod_state *st = state_of_module(module);
    HeapObject *h = heap_open(st, heap_name);
    if (!h) return NULL;
    ListObject *l = (ListObject *)attach_list(st, h, name, 0);
    Py_DECREF(h);
    if (!l || !holder) return (PyObject *)l;
    PyObject *item = list_item(l, 0);
    list_close_handle(l);
    Py_DECREF(l);
    return item;
}

/* close() of a list, refused while another thread is in a call on it. */
static PyObject *list_close_checked(ListObject *self)
{
    if (self->busy) {
        PyErr_SetString(PyExc_BufferError, "cannot close a ShareableList while another thread is in a call on it");
        return NULL;
    }
    list_close_handle(self);
    Py_RETURN_NONE;
}

static PyObject *list_close(ListObject *self, PyObject *Py_UNUSED(ignored)) { return list_close_checked(self); }

static PyObject *list_iter(ListObject *self)
{
    if (check_open(self) < 0) return NULL;
    mod_state *st = self->st;
    if (!st) return NULL;
    IterObject *it = PyObject_GC_New(IterObject, st->iter_type);
    if (!it) return NULL;
    it->list = Py_NewRef(self);
    it->index = 0;
    PyObject_GC_Track(it);
    return (PyObject *)it;
}

static int list_traverse(ListObject *self, visitproc visit, void *arg)
{
    Py_VISIT(Py_TYPE(self));
    Py_VISIT(self->heap);
    Py_VISIT(self->shm);
    return 0;
}

static int list_clear(ListObject *self)
{
    Py_CLEAR(self->shm);
    return 0;
}

static void list_dealloc(ListObject *self)
{
    PyTypeObject *tp = Py_TYPE(self);
    PyObject_GC_UnTrack(self);
    if (self->weakreflist) PyObject_ClearWeakRefs((PyObject *)self);
    list_close_handle(self);
    Py_CLEAR(self->recent);
    Py_CLEAR(self->shm);
    Py_CLEAR(self->heap_name);
    Py_CLEAR(self->name);
    Py_CLEAR(self->pickle_name);
    tp->tp_free(self);
    Py_DECREF(tp);
}

PyDoc_STRVAR(list_doc,
"ShareableList(sequence=None, *, name=None)\n"
"--\n\n"
"Pattern for a mutable list-like object shareable via a shared\n"
"memory block. It differs from the built-in list type in that these\n"
"lists can be read and changed at once by many processes and threads,\n"
"with every call atomic.\n\n"
"With a sequence (or no argument) a new list is created in a segment\n"
"of its own, named name (or psm_ and 8 hex digits when name is None).\n"
"While its values fit, the list takes one page of it, as the stdlib's\n"
"does; the first change that needs more (an item added or removed, a\n"
"nested list, a longer string) makes the segment a heap in place.\n"
"With only a name, the existing list of that name is attached, from any\n"
"process. Items may be None, bool, int (64-bit signed), float, str,\n"
"bytes, a list (stored as a nested ShareableList) or a ShareableList of\n"
"the same heap, each of any size; any item can take any value later.\n"
"The list lives until shm.unlink() is called, whichever processes exit.\n\n"
"Use Heap.ShareableList() to keep many lists in one heap.");

static PyMethodDef list_methods[] = {
    {"count", (PyCFunction)list_count, METH_O,
     PyDoc_STR("count($self, value, /)\n--\n\nL.count(value) -> integer -- return number of occurrences of value.")},
    {"index", (PyCFunction)list_index, METH_O,
     PyDoc_STR("index($self, value, /)\n--\n\nL.index(value) -> integer -- return first index of value.\n"
               "Raises ValueError if the value is not present.")},
    {"append", (PyCFunction)list_append, METH_O, PyDoc_STR("append($self, value, /)\n--\n\nAppend object to the end of the list.")},
    {"insert", (PyCFunction)(void (*)(void))list_insert, METH_FASTCALL,
     PyDoc_STR("insert($self, index, value, /)\n--\n\nInsert object before index.")},
    {"extend", (PyCFunction)list_extend, METH_O,
     PyDoc_STR("extend($self, iterable, /)\n--\n\nExtend list by appending elements from the iterable.\n"
               "Each append is atomic; the extend as a whole is not.")},
    {"pop", (PyCFunction)(void (*)(void))list_pop, METH_FASTCALL,
     PyDoc_STR("pop($self, index=-1, /)\n--\n\nRemove and return item at index (default last).\n\n"
               "Raises IndexError if list is empty or index is out of range.")},
    {"close", (PyCFunction)list_close, METH_NOARGS,
     PyDoc_STR("close($self, /)\n--\n\nRelease this handle on the list (what shm.close() does).")},
    {"_get_packing_format", (PyCFunction)list_get_packing_format, METH_O,
     PyDoc_STR("Gets the packing format for a single value stored in the list (the stdlib's format).")},
    {"__reduce__", (PyCFunction)list_reduce, METH_NOARGS, NULL},
    {"__class_getitem__", Py_GenericAlias, METH_O | METH_CLASS, PyDoc_STR("See PEP 585")},
    {NULL, NULL, 0, NULL}};

static PyGetSetDef list_getset[] = {
    {"format", (getter)list_get_format, NULL,
     PyDoc_STR("The struct packing format the stdlib's ShareableList reports for the values stored."), NULL},
    {"shm", (getter)list_get_shm, NULL,
     PyDoc_STR("The shared-memory segment the list lives in: .name, .size, .close(), .unlink()."), NULL},
    {"heap", (getter)list_get_heap, NULL, PyDoc_STR("The Heap the list lives in (None once closed)."), NULL},
    {NULL, NULL, NULL, NULL, NULL}};

static PyMemberDef list_members[] = {
    {"name", T_OBJECT, offsetof(ListObject, name), READONLY,
     PyDoc_STR("The list's name: its heap's for a list of its own, its name in the heap, or None.")},
    {"__weaklistoffset__", T_PYSSIZET, offsetof(ListObject, weakreflist), READONLY, NULL},
    {NULL, 0, 0, 0, NULL}};

static PyType_Slot list_slots[] = {
    {Py_tp_doc, (void *)list_doc},
    {Py_tp_new, list_new},
    {Py_tp_dealloc, list_dealloc},
    {Py_tp_traverse, list_traverse},
    {Py_tp_clear, list_clear},
    {Py_tp_repr, list_repr},
    {Py_tp_iter, list_iter},
    {Py_tp_methods, list_methods},
    {Py_tp_getset, list_getset},
    {Py_tp_members, list_members},
    {Py_mp_length, list_length},
    {Py_mp_subscript, list_subscript},
    {Py_mp_ass_subscript, list_ass_subscript},
    {Py_sq_length, list_length},
    {Py_sq_contains, list_contains},
    {0, NULL}};

static PyType_Spec list_spec = {
    .name = "sharena.ShareableList",
    .basicsize = sizeof(ListObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_SEQUENCE,
    .slots = list_slots,
};

/* ---- the iterator ------------------------------------------------------------- */

static PyObject *iter_next(IterObject *it)
{
    if (!it->list) return NULL;
    ListObject *l = (ListObject *)it->list;
    if (check_open(l) < 0) return NULL;
    int rc;
    PyObject *r = get_item(l, it->index, &rc);
    if (!r) {
        if (rc == SHR_EINDEX) {
            PyErr_Clear();
            Py_CLEAR(it->list);
        }
        return NULL;
    }
    it->index++;
    return r;
}

static int iter_traverse(IterObject *it, visitproc visit, void *arg)
{
    Py_VISIT(Py_TYPE(it));
    Py_VISIT(it->list);
    return 0;
}

static void iter_dealloc(IterObject *it)
{
    PyTypeObject *tp = Py_TYPE(it);
    PyObject_GC_UnTrack(it);
    Py_CLEAR(it->list);
    tp->tp_free(it);
    Py_DECREF(tp);
}

static PyType_Slot iter_slots[] = {
    {Py_tp_dealloc, iter_dealloc},
    {Py_tp_traverse, iter_traverse},
    {Py_tp_iter, PyObject_SelfIter},
    {Py_tp_iternext, iter_next},
    {0, NULL}};

static PyType_Spec iter_spec = {
    .name = "sharena.ShareableListIterator",
    .basicsize = sizeof(IterObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_IMMUTABLETYPE | Py_TPFLAGS_DISALLOW_INSTANTIATION,
    .slots = iter_slots,
};

/* ---- Segment (ShareableList.shm) ------------------------------------------ */

static Py_ssize_t segment_size(PyObject *name)
{
    const char *n = PyUnicode_AsUTF8(name);
    if (!n) return -1;
    char path[SHR_NAME_MAX + 2];
    snprintf(path, sizeof path, "/%s", n);
    int fd = shm_open(path, O_RDONLY | O_CLOEXEC, 0);
    if (fd < 0) return 0;
    struct stat sb;
    Py_ssize_t size = fstat(fd, &sb) == 0 ? (Py_ssize_t)sb.st_size : 0;
    close(fd);
    return size;
}

static PyObject *segment_for(ListObject *self)
{
    mod_state *st = self->st;
    if (!st) return NULL;
    Py_ssize_t size = segment_size(self->heap_name);
    if (size < 0) return NULL;
    SegmentObject *s = PyObject_GC_New(SegmentObject, st->segment_type);
    if (!s) return NULL;
    s->list = Py_NewRef(self);
    s->name = Py_NewRef(self->heap_name);
    s->size = size;
    PyObject_GC_Track(s);
    return (PyObject *)s;
}

static PyObject *segment_close(SegmentObject *self, PyObject *Py_UNUSED(ignored))
{
    if (self->list) return list_close_checked((ListObject *)self->list);
    Py_RETURN_NONE;
}

static PyObject *segment_unlink(SegmentObject *self, PyObject *Py_UNUSED(ignored))
{
    const char *n = PyUnicode_AsUTF8(self->name);
    if (!n) return NULL;
    int rc = shr_heap_unlink(n);
    if (rc) return set_error(rc, self->name);
    Py_RETURN_NONE;
}

static PyObject *segment_repr(SegmentObject *self)
{
    return PyUnicode_FromFormat("%s(%R, size=%zd)", _PyType_Name(Py_TYPE(self)), self->name, self->size);
}

static PyObject *segment_reduce(SegmentObject *self, PyObject *Py_UNUSED(ignored))
{
    (void)self;
    PyErr_SetString(PyExc_TypeError, "cannot pickle a Segment; pickle the ShareableList");
    return NULL;
}

static int segment_traverse(SegmentObject *self, visitproc visit, void *arg)
{
    Py_VISIT(Py_TYPE(self));
    Py_VISIT(self->list);
    return 0;
}

static int segment_clear(SegmentObject *self)
{
    Py_CLEAR(self->list);
    return 0;
}

static void segment_dealloc(SegmentObject *self)
{
    PyTypeObject *tp = Py_TYPE(self);
    PyObject_GC_UnTrack(self);
    Py_CLEAR(self->list);
    Py_CLEAR(self->name);
    tp->tp_free(self);
    Py_DECREF(tp);
}

static PyMethodDef segment_methods[] = {
    {"close", (PyCFunction)segment_close, METH_NOARGS,
     PyDoc_STR("close($self, /)\n--\n\nClose the ShareableList's handle in this process. The list and its\n"
               "segment stay until unlink(); it may be called more than once.")},
    {"unlink", (PyCFunction)segment_unlink, METH_NOARGS,
     PyDoc_STR("unlink($self, /)\n--\n\nRemove the segment's name, so that no process can attach it again;\n"
               "its memory is freed when the last process closes it. For a list in a\n"
               "shared Heap this removes the heap's name. Raises FileNotFoundError\n"
               "when the name is already gone.")},
    {"__reduce__", (PyCFunction)segment_reduce, METH_NOARGS, NULL},
    {NULL, NULL, 0, NULL}};

static PyMemberDef segment_members[] = {
    {"name", T_OBJECT, offsetof(SegmentObject, name), READONLY,
     PyDoc_STR("The POSIX shared-memory name (without '/'); SharedMemory(name) opens it.")},
    {"size", T_PYSSIZET, offsetof(SegmentObject, size), READONLY,
     PyDoc_STR("Size of the segment in bytes (the heap's reserved capacity; memory is used only for what it holds).")},
    {NULL, 0, 0, 0, NULL}};

PyDoc_STRVAR(segment_doc,
"The shared-memory segment behind a ShareableList (its shm attribute).\n\n"
"It has the name, size, close() and unlink() of multiprocessing's\n"
"SharedMemory, but it is not one: it is never registered with the\n"
"resource tracker, so no process's exit unlinks it.");

static PyType_Slot segment_slots[] = {
    {Py_tp_doc, (void *)segment_doc},
    {Py_tp_dealloc, segment_dealloc},
    {Py_tp_traverse, segment_traverse},
    {Py_tp_clear, segment_clear},
    {Py_tp_repr, segment_repr},
    {Py_tp_methods, segment_methods},
    {Py_tp_members, segment_members},
    {0, NULL}};

static PyType_Spec segment_spec = {
    .name = "sharena.Segment",
    .basicsize = sizeof(SegmentObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_IMMUTABLETYPE | Py_TPFLAGS_DISALLOW_INSTANTIATION,
    .slots = segment_slots,
};

/* ---- the module --------------------------------------------------------------- */

static PyObject *mod_strerror(PyObject *module, PyObject *arg)
{
    (void)module;
    int code = PyLong_AsLong(arg);
    if (code == -1 && PyErr_Occurred()) return NULL;
    return PyUnicode_FromString(shr_strerror(code));
}

static PyObject *mod_stats(PyObject *module, PyObject *Py_UNUSED(ignored))
{
    (void)module;
    return Py_BuildValue("{s:K}", "gil_releases",
                         (unsigned long long)atomic_load_explicit(&gil_releases, memory_order_relaxed));
}

static PyObject *mod_open_heaps(PyObject *module, PyObject *Py_UNUSED(ignored))
{
    mod_state *st = state_of_module(module);
    return PyObject_CallMethod(st->heaps, "values", NULL);
}

static PyMethodDef mod_methods[] = {
    {"_open_heaps", mod_open_heaps, METH_NOARGS, PyDoc_STR("The heaps open in this process (internal).")},
    {"_stats", mod_stats, METH_NOARGS,
     PyDoc_STR("Process-wide counters of the module (gil_releases: waits for a contended list lock\n"
               "that released the GIL).")},
    {"_rebuild", mod_rebuild, METH_VARARGS, PyDoc_STR("Unpickle a list of a shared heap (internal).")},
    {"strerror", mod_strerror, METH_O, PyDoc_STR("strerror(code, /)\n--\n\nThe message for a sharena error code.")},
    {NULL, NULL, 0, NULL}};

static int mod_exec(PyObject *m)
{
    mod_state *st = state_of_module(m);
    PyObject *weakref = PyImport_ImportModule("weakref");
    if (!weakref) return -1;
    st->heaps = PyObject_CallMethod(weakref, "WeakValueDictionary", NULL);
    Py_DECREF(weakref);
    if (!st->heaps) return -1;
    for (long i = SMALL_MIN; i <= SMALL_MAX; i++)
        if (!(st->small_ints[i - SMALL_MIN] = PyLong_FromLong(i))) return -1;
    PyObject *functools = PyImport_ImportModule("functools");
    if (!functools) return -1;
    st->partial = PyObject_GetAttrString(functools, "partial");
    Py_DECREF(functools);
    if (!st->partial) return -1;

    st->heap_type = (PyTypeObject *)PyType_FromModuleAndSpec(m, &heap_spec, NULL);
    if (!st->heap_type || PyModule_AddType(m, st->heap_type) < 0) return -1;
    st->list_type = (PyTypeObject *)PyType_FromModuleAndSpec(m, &list_spec, NULL);
    if (!st->list_type || PyModule_AddType(m, st->list_type) < 0) return -1;
    st->segment_type = (PyTypeObject *)PyType_FromModuleAndSpec(m, &segment_spec, NULL);
    if (!st->segment_type || PyModule_AddType(m, st->segment_type) < 0) return -1;
    st->iter_type = (PyTypeObject *)PyType_FromModuleAndSpec(m, &iter_spec, NULL);
    if (!st->iter_type) return -1;
    st->gc_type = (PyTypeObject *)PyType_FromModuleAndSpec(m, &gc_spec, NULL);
    if (!st->gc_type || PyModule_AddType(m, st->gc_type) < 0) return -1;

    /* ShareableList is a Sequence, as the stdlib's is not. */
    PyObject *abc = PyImport_ImportModule("collections.abc");
    if (!abc) return -1;
    PyObject *r, *seq = PyObject_GetAttrString(abc, "Sequence");
    Py_DECREF(abc);
    if (!seq) return -1;
    r = PyObject_CallMethod(seq, "register", "O", st->list_type);
    Py_DECREF(seq);
    if (!r) return -1;
    Py_DECREF(r);

    if (PyModule_AddIntConstant(m, "DEFAULT_CAPACITY", (long)SHR_DEFAULT_CAPACITY) < 0) return -1;
    if (PyModule_AddIntConstant(m, "NAME_MAX", SHR_NAME_MAX) < 0) return -1;
    if (PyModule_AddIntConstant(m, "LIST_NAME_MAX", SHR_ROOT_NAME_MAX) < 0) return -1;
    char v[32];
    snprintf(v, sizeof v, "%d.%d.%d", SHR_VERSION_MAJOR, SHR_VERSION_MINOR, SHR_VERSION_PATCH);
    if (PyModule_AddStringConstant(m, "__version__", v) < 0) return -1;

    /* Contended list locks release the GIL (see the top of this file). */
    shr_wait_hooks_set(wait_begin, NULL, NULL);
    return 0;
}

static int mod_traverse(PyObject *m, visitproc visit, void *arg)
{
    mod_state *st = state_of_module(m);
    Py_VISIT(st->list_type);
    Py_VISIT(st->heap_type);
    Py_VISIT(st->segment_type);
    Py_VISIT(st->iter_type);
    Py_VISIT(st->gc_type);
    Py_VISIT(st->heaps);
    Py_VISIT(st->partial);
    for (int i = 0; i <= SMALL_MAX - SMALL_MIN; i++) Py_VISIT(st->small_ints[i]);
    return 0;
}

static int mod_clear(PyObject *m)
{
    mod_state *st = state_of_module(m);
    Py_CLEAR(st->list_type);
    Py_CLEAR(st->heap_type);
    Py_CLEAR(st->segment_type);
    Py_CLEAR(st->iter_type);
    Py_CLEAR(st->gc_type);
    Py_CLEAR(st->heaps);
    Py_CLEAR(st->partial);
    for (int i = 0; i <= SMALL_MAX - SMALL_MIN; i++) Py_CLEAR(st->small_ints[i]);
    return 0;
}

static void mod_free(void *m) { mod_clear((PyObject *)m); }

static PyModuleDef_Slot mod_slots[] = {
    {Py_mod_exec, mod_exec},
    {0, NULL}};

PyDoc_STRVAR(mod_doc,
"Lists shared by processes, in a sharena heap.\n\n"
"ShareableList is a drop-in replacement for\n"
"multiprocessing.shared_memory.ShareableList without its limits; Heap\n"
"holds many lists in one shared-memory segment.");

static struct PyModuleDef sharena_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "sharena._sharena",
    .m_doc = mod_doc,
    .m_size = sizeof(mod_state),
    .m_methods = mod_methods,
    .m_slots = mod_slots,
    .m_traverse = mod_traverse,
    .m_clear = mod_clear,
    .m_free = mod_free,
};

PyMODINIT_FUNC PyInit__sharena(void);
PyMODINIT_FUNC PyInit__sharena(void) { return PyModuleDef_Init(&sharena_module); }
