/* A program outside the tree, built against the installed sharena. */
#include <sharena.h>
#include <stdio.h>
#include <unistd.h>

int main(void)
{
    shr_heap_options_t o;
    shr_heap_t *h;
    shr_heap_options_init(&o);
    o.flags = SHR_HEAP_UNLINK_ON_LAST_CLOSE;
    int rc = shr_heap_create(NULL, &o, &h);
    if (rc != 0) {
        fprintf(stderr, "consumer: create: %s\n", shr_strerror(rc));
        return 1;
    }
    char *p = shr_ptr(h, 4096);
    if (!p || shr_off(h, p) != 4096) return 2;
    printf("consumer: heap %s ok\n", shr_heap_name(h));
    return shr_heap_close(h) == 0 ? 0 : 3;
}
