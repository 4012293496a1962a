/* str and bytes objects.
 *
 * A str or bytes object is immutable and sized exactly to its content:
 * [obj_t | len | data | NUL] (list.h). It holds no reference, so its dealloc
 * only frees the block. (The list type's functions are in list.c.)
 */
#include <errno.h>
#include <string.h>

#include "list.h"

strobj_t *shr__str_new(shr_heap_t *h, uint32_t type, const char *data, size_t len)
{
    size_t size;
    /* header + len + NUL, checked before anything is allocated */
    if (!shr__gc_array_size(sizeof(strobj_t) + 1, len, 1, &size)) {
        errno = ENOMEM;
        return NULL;
    }
    strobj_t *s = (strobj_t *)shr__obj_new(h, type, size);
    if (!s) return NULL;
    s->len = len;
    if (len) memcpy(s->data, data, len);
    s->data[len] = 0;
    return s;
}

static void str_dealloc(shr_heap_t *h, obj_t *o) { shr_free(h, o); }

static const gc_type_ops_t str_ops = {.name = "str", .dealloc = str_dealloc};
static const gc_type_ops_t bytes_ops = {.name = "bytes", .dealloc = str_dealloc};

void shr__str_types_register(void)
{
    shr__type_register(SHR_TYPE_STR, &str_ops);
    shr__type_register(SHR_TYPE_BYTES, &bytes_ops);
}
