/* Misuse must abort (debug level 1 and above), and damaged guard bytes abort
 * at every level. */
#include <criterion/criterion.h>
#include <signal.h>

#include "harness.h"

/* Under AddressSanitizer a double free is reported by ASan first (sharena
 * poisons free blocks, docs/memcheck.md); make its report end in abort() as
 * sharena's own would, so that the tests below expect one signal. */
#if defined(__SANITIZE_ADDRESS__)
const char *__asan_default_options(void);
const char *__asan_default_options(void) { return "abort_on_error=1"; }
#endif

static shr_heap_t *make_heap(unsigned flags)
{
    shr_heap_options_t o;
    shr_heap_t *h;
    shr_heap_options_init(&o);
    o.flags = flags;
    const char *name = shr_test_name();
    cr_assert_eq(shr_heap_create(name, &o, &h), 0);
    shr_heap_unlink(name); /* an abort skips every cleanup */
    return h;
}

#if SHR_DEBUG >= 1
Test(alloc_death, double_free, .signal = SIGABRT)
{
    shr_heap_t *h = make_heap(0);
    void *p = shr_malloc(h, 32);
    shr_malloc(h, 32);
    shr_free(h, p);
    shr_free(h, p);
}

Test(alloc_death, free_of_a_foreign_pointer, .signal = SIGABRT)
{
    shr_heap_t *h = make_heap(0);
    static char not_ours[64];
    shr_free(h, not_ours);
}

Test(alloc_death, free_inside_a_block, .signal = SIGABRT)
{
    shr_heap_t *h = make_heap(0);
    char *p = shr_malloc(h, 64);
    shr_free(h, p + 16);
}

Test(alloc_death, free_of_a_block_the_pool_never_carved, .signal = SIGABRT)
{
    shr_heap_t *h = make_heap(0);
    char *p = shr_malloc(h, 64);
    /* 64-byte blocks from offset 64 of the pool: p's pool carved at most 16 of
     * them; the 40th lies past its nextoffset. */
    uint64_t pool = shr_off(h, p) & ~(uint64_t)4095;
    shr_free(h, shr_ptr(h, pool + 64 + 40 * 64));
}

Test(alloc_death, free_of_metadata, .signal = SIGABRT)
{
    shr_heap_t *h = make_heap(0);
    shr_free(h, shr_ptr(h, 4096));
}

Test(alloc_death, double_free_of_a_large_block, .signal = SIGABRT)
{
    shr_heap_t *h = make_heap(0);
    void *p = shr_malloc(h, 50000);
    shr_malloc(h, 50000);
    shr_free(h, p);
    shr_free(h, p);
}
#endif

Test(alloc_death, overrun_detected_by_guards, .signal = SIGABRT)
{
    shr_heap_t *h = make_heap(SHR_HEAP_GUARDS);
    char *p = shr_malloc(h, 40);
    p[40] = 'x';
    shr_free(h, p);
}

Test(alloc_death, underrun_detected_by_guards, .signal = SIGABRT)
{
    shr_heap_t *h = make_heap(SHR_HEAP_GUARDS);
    char *p = shr_malloc(h, 40);
    p[-1] = 'x';
    shr_free(h, p);
}
