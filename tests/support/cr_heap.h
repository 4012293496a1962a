/* Criterion helpers shared by the suites: a fresh heap of the default
 * options under the test's own name, and its end (the heap must check
 * clean, then it is closed). Include after <criterion/criterion.h> and
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

#endif
