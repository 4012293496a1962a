/* str and bytes objects, and the type functions of the built-in types.
 *
 * A str or bytes object is immutable and sized exactly to its content:
 * [obj_t | len | data | NUL]. It holds no reference, so its dealloc only
 * frees the block. A list's traverse visits its items' references; its
 * dealloc detaches each child (exchange with an empty tag) before releasing
 * it, so that a death in the middle leaks the rest instead of leaving the
 * list pointing at freed children.
 */
#include <errno.h>
#include <pthread.h>
#include <string.h>

#include "list.h"

strobj_t *shr__str_new(shr_heap_t *h, uint32_t type, const char *data, size_t len)
{
    if (len > SHR_MAX_CAPACITY) {
        errno = ENOMEM;
        return NULL;
    }
    strobj_t *s = (strobj_t *)shr__obj_new(h, type, sizeof(strobj_t) + len + 1);
    if (!s) return NULL;
    s->len = len;
    if (len) memcpy(s->data, data, len);
    s->data[len] = 0;
    return s;
}

static void str_dealloc(shr_heap_t *h, obj_t *o) { shr_free(h, o); }

static void list_traverse(shr_heap_t *h, obj_t *o, shr_visit_fn visit, void *arg)
{
    listobj_t *l = (listobj_t *)o;
    uint64_t ao = rd(&l->items);
    if (!ao) return;
    items_t *a = shr__ptr(h, ao);
    for (uint64_t i = 0; i < rd(&a->len); i++) {
        uint64_t tag = rd(&a->it[i].tag);
        if (tag == SHR_STR || tag == SHR_BYTES || tag == SHR_LIST) visit(h, rd(&a->it[i].val), arg);
    }
}

static void list_clear(shr_heap_t *h, obj_t *o)
{
    listobj_t *l = (listobj_t *)o;
    uint64_t ao = rd(&l->items);
    if (!ao) return;
    items_t *a = shr__ptr(h, ao);
    for (uint64_t i = 0; i < rd(&a->len); i++) {
        uint64_t tag = atomic_exchange(&a->it[i].tag, SHR_NONE); /* detach, then release */
        uint64_t val = rd(&a->it[i].val);
        if (tag == SHR_STR || tag == SHR_BYTES || tag == SHR_LIST) shr__decref(h, OBJ(h, val));
    }
}

static void list_dealloc(shr_heap_t *h, obj_t *o)
{
    listobj_t *l = (listobj_t *)o;
    /* Its last writer may have died in the middle of a set: put the old item
     * back first, or the clear would release what the item no longer holds. */
    if (rd(&l->items)) shr__list_repair(h, l);
    list_clear(h, o);
    uint64_t ao = atomic_exchange(&l->items, 0);
    if (ao) shr_free(h, shr__ptr(h, ao));
    for (uint64_t r = l->retired, next; r; r = next) { /* arrays growth replaced */
        next = ((items_t *)shr__ptr(h, r))->retired;
        shr_free(h, shr__ptr(h, r));
    }
    l->retired = 0;
    shr_free(h, o);
}

static const shr_type_ops_t str_ops = {.name = "str", .dealloc = str_dealloc};
static const shr_type_ops_t bytes_ops = {.name = "bytes", .dealloc = str_dealloc};
static const shr_type_ops_t list_ops = {
    .name = "list", .traverse = list_traverse, .clear = list_clear, .dealloc = list_dealloc};

static pthread_once_t once = PTHREAD_ONCE_INIT;

static void register_types(void)
{
    shr__type_register(SHR_TYPE_STR, &str_ops);
    shr__type_register(SHR_TYPE_BYTES, &bytes_ops);
    shr__type_register(SHR_TYPE_LIST, &list_ops);
}

void shr__list_types_register(void) { pthread_once(&once, register_types); }
