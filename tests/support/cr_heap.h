/* Criterion helpers shared by the suites: a fresh heap of the default
 * options under the test's own name, and its end (the heap must check
 * clean, then it is closed), and garbage cycles. Include after <criterion/criterion.h> and
 * "harness.h". */
#ifndef SHR_TEST_CR_HEAP_H
#define SHR_TEST_CR_HEAP_H

__attribute__((unused)) static shr_heap_t *make_heap(void)
{
    shr_heap_t *h;
    cr_assert_eq(shr_heap_create(shr_test_name(), NULL, &h), 0);
    return h;
}

__attribute__((unused)) static void done(shr_heap_t *h)
{
    cr_assert_eq(shr_heap_check_report(h, stderr), 0);
    shr_heap_close(h);
}

/* n unreachable cycles of two nodes: garbage for the next collection. */
__attribute__((unused)) static void make_cycles(shr_heap_t *h, int n)
{
    for (int i = 0; i < n; i++) {
        shr_ref_t a, b;
        cr_assert_eq(shr_obj_new(h, SHR_TYPE_NODE, 1, 0, &a), 0);
        cr_assert_eq(shr_obj_new(h, SHR_TYPE_NODE, 1, 0, &b), 0);
        cr_assert_eq(shr_obj_set(h, a, 0, b), 0);
        cr_assert_eq(shr_obj_set(h, b, 0, a), 0);
        shr_obj_release(h, a);
        shr_obj_release(h, b);
    }
}

#endif
