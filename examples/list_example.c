/* list_example: one shared list, two processes.
 *
 * The parent creates a heap and a list named "demo", then forks. The child
 * attaches the list by name, replaces and appends items of any type and size,
 * and exits. The parent waits, prints the list and one item, and cleans up.
 *
 * The child reuses the heap handle it inherited: its first call registers it
 * as a process of its own. An unrelated program would instead call
 * shr_heap_attach() with the heap's name, then shr_list_attach() as below.
 */
#define _POSIX_C_SOURCE 200809L
#include <sharena.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

/* Report a failed call and leave: every int result is 0 or a negative code. */
#define CHECK(call)                                                             \
    do {                                                                        \
        int rc_ = (call);                                                       \
        if (rc_ != 0) {                                                         \
            fprintf(stderr, "%s: %s\n", #call, shr_strerror(rc_));              \
            exit(1);                                                            \
        }                                                                       \
    } while (0)

static int child(shr_heap_t *heap)
{
    shr_list_t *list;
    CHECK(shr_list_attach(heap, "demo", &list));
    shr_value_t v = shr_str("any item takes a value of any size");
    CHECK(shr_list_set(list, 1, &v));            /* was the int 42 */
    v = shr_bytes("ab\0\0", 4);                  /* trailing NULs are kept */
    CHECK(shr_list_set(list, -1, &v));           /* was None */
    v = shr_str("caf\xc3\xa9");                  /* UTF-8: 4 characters, 5 bytes */
    CHECK(shr_list_append(list, &v));
    v = shr_bool(1);
    CHECK(shr_list_append(list, &v));
    CHECK(shr_list_close(list));
    CHECK(shr_heap_close(heap));                 /* the child's attachment only */
    return 0;
}

int main(void)
{
    shr_heap_t *heap;
    shr_list_t *list;
    CHECK(shr_heap_create(NULL, NULL, &heap));   /* a generated name */
    shr_value_t init[] = {shr_str("hello"), shr_int(42), shr_float(2.5), shr_none()};
    CHECK(shr_list_create(heap, "demo", init, 4, &list));

    fflush(NULL);                                /* nothing buffered is printed twice */
    pid_t pid = fork();
    if (pid < 0) return 1;
    if (pid == 0) _exit(child(heap));
    int status;
    if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        fprintf(stderr, "child failed\n");
        return 1;
    }

    char *repr = shr_list_repr(list), *format = shr_list_format(list);
    if (!repr || !format) return 1;
    printf("%s\nformat %s, len %lld\n", repr, format, (long long)shr_list_len(list));
    free(repr);
    free(format);

    shr_value_t item;                            /* holds a reference until released */
    CHECK(shr_list_get(list, -2, &item));
    printf("item -2: %.*s (%zu bytes)\n", (int)item.u.s.len, item.u.s.data, item.u.s.len);
    shr_value_release(heap, &item);

    CHECK(shr_list_close(list));
    CHECK(shr_list_unlink(heap, "demo"));        /* the list is freed here */
    CHECK(shr_heap_unlink(shr_heap_name(heap)));
    CHECK(shr_heap_close(heap));
    return 0;
}
