/* C++'s operator new and delete, every form (plain, array, nothrow, sized,
 * aligned), on the heap of malloc.c.
 *
 * Written in C under their mangled names so that the library does not depend
 * on libstdc++: what C++ needs at run time (the new-handler, throwing
 * std::bad_alloc) is reached through weak references, which a C++ program
 * (the only kind that calls these) resolves from its own libstdc++. This file
 * is compiled with -fexceptions: a new-handler may throw through it.
 *
 * Semantics, as the standard says: a throwing new calls the new-handler
 * until the allocation succeeds or there is no handler, then throws
 * std::bad_alloc; nothrow new returns NULL instead; new(0) returns a unique
 * pointer; delete of NULL does nothing; sized and aligned deletes free as
 * free() does (the size is not trusted).
 */
#include <stdlib.h>

#include "sharena_malloc.h"

#define SHR_EXPORT __attribute__((visibility("default")))

typedef void (*new_handler_fn)(void);
/* std::get_new_handler() and std::__throw_bad_alloc(), from libstdc++. */
extern new_handler_fn _ZSt15get_new_handlerv(void) __attribute__((weak));
extern void _ZSt17__throw_bad_allocv(void) __attribute__((weak, noreturn));

static void *try_alloc(size_t n, size_t align)
{
    return align ? shr__malloc_aligned(align, n) : malloc(n);
}

static __attribute__((noinline)) void *new_failed(size_t n, size_t align, int nothrow)
{
    for (;;) {
        new_handler_fn h = _ZSt15get_new_handlerv ? _ZSt15get_new_handlerv() : NULL;
        if (!h) {
            if (nothrow) return NULL;
            if (_ZSt17__throw_bad_allocv) _ZSt17__throw_bad_allocv();
            abort();
        }
        h();
        void *p = try_alloc(n, align);
        if (p) return p;
    }
}

static inline void *new_impl(size_t n, size_t align, int nothrow)
{
    void *p = try_alloc(n, align);
    return __builtin_expect(p != NULL, 1) ? p : new_failed(n, align, nothrow);
}

/* The declarations keep -Wmissing-prototypes quiet: these are definitions
 * of libstdc++'s symbols, declared in <new>, a C++ header. */
#define NEW(name, ...) SHR_EXPORT void *name(__VA_ARGS__); SHR_EXPORT void *name(__VA_ARGS__)
#define DEL(name, ...) SHR_EXPORT void name(__VA_ARGS__); SHR_EXPORT void name(__VA_ARGS__)

typedef struct nothrow_tag nothrow_t; /* std::nothrow_t, passed by reference */

NEW(_Znwm, size_t n) { return new_impl(n, 0, 0); }
NEW(_Znam, size_t n) { return new_impl(n, 0, 0); }
NEW(_ZnwmRKSt9nothrow_t, size_t n, const nothrow_t *t) { (void)t; return new_impl(n, 0, 1); }
NEW(_ZnamRKSt9nothrow_t, size_t n, const nothrow_t *t) { (void)t; return new_impl(n, 0, 1); }
NEW(_ZnwmSt11align_val_t, size_t n, size_t a) { return new_impl(n, a, 0); }
NEW(_ZnamSt11align_val_t, size_t n, size_t a) { return new_impl(n, a, 0); }
NEW(_ZnwmSt11align_val_tRKSt9nothrow_t, size_t n, size_t a, const nothrow_t *t) { (void)t; return new_impl(n, a, 1); }
NEW(_ZnamSt11align_val_tRKSt9nothrow_t, size_t n, size_t a, const nothrow_t *t) { (void)t; return new_impl(n, a, 1); }

DEL(_ZdlPv, void *p) { free(p); }
DEL(_ZdaPv, void *p) { free(p); }
DEL(_ZdlPvm, void *p, size_t n) { (void)n; free(p); }
DEL(_ZdaPvm, void *p, size_t n) { (void)n; free(p); }
DEL(_ZdlPvRKSt9nothrow_t, void *p, const nothrow_t *t) { (void)t; free(p); }
DEL(_ZdaPvRKSt9nothrow_t, void *p, const nothrow_t *t) { (void)t; free(p); }
DEL(_ZdlPvSt11align_val_t, void *p, size_t a) { (void)a; free(p); }
DEL(_ZdaPvSt11align_val_t, void *p, size_t a) { (void)a; free(p); }
DEL(_ZdlPvmSt11align_val_t, void *p, size_t n, size_t a) { (void)n; (void)a; free(p); }
DEL(_ZdaPvmSt11align_val_t, void *p, size_t n, size_t a) { (void)n; (void)a; free(p); }
DEL(_ZdlPvSt11align_val_tRKSt9nothrow_t, void *p, size_t a, const nothrow_t *t) { (void)a; (void)t; free(p); }
DEL(_ZdaPvSt11align_val_tRKSt9nothrow_t, void *p, size_t a, const nothrow_t *t) { (void)a; (void)t; free(p); }
