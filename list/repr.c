/* format and repr: what Python's ShareableList shows for the same values.
 *
 * format: the stdlib's struct format per item, concatenated: "q" int,
 * "d" float, "xxxxxxx?" bool, "xxxxxx?x" None, and for str and bytes
 * "%ds" % (8 * (len // 8 + 1)) with len in UTF-8 bytes (the stdlib counts
 * characters, which is wrong for non-ASCII text; for ASCII both agree).
 * Nested lists, which the stdlib cannot hold, are "Q".
 *
 * repr: "ShareableList([...], name='...')" with Python's reprs: str in
 * single quotes unless it holds a ' and no ", with \\, \t, \n, \r and
 * \xNN/\uNNNN escapes for non-printable characters (controls, U+00A0,
 * U+00AD, U+2028/9, U+200B-U+200F, U+FEFF, private use; other Unicode
 * categories Python treats as non-printable are shown as they are), bytes as
 * b'...', floats as repr(float), nested lists as [...] with "[...]" for a
 * list already being printed (a cycle), as Python does.
 *
 * The list is read in steps of REPR_STEP items: each step copies its items
 * under the list's lock, taking a reference to each str, bytes and list and
 * recording it as a lease (so a process that dies printing leaks at most the
 * one in flight), and prints them without the lock; the step's references
 * are released before the next. So the lock is held for REPR_STEP items at a
 * time, whatever the list's length, no two list locks are ever held at once,
 * and a nested list is printed from its own steps. A list changed while it
 * is printed shows each item as it was when its step read it (an insert or
 * delete between steps may show an item twice or not at all, as iterating a
 * Python list that another thread changes would).
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "list.h"

/* ---- a growable string ------------------------------------------------------ */

typedef struct sbuf {
    char *p;
    size_t len, cap;
    int err;
} sbuf_t;

static void put(sbuf_t *b, const char *s, size_t n)
{
    if (b->err) return;
    size_t need;
    if (__builtin_add_overflow(b->len, n + 1, &need) || need > SHR_MAX_CAPACITY) {
        b->err = ENOMEM;
        return;
    }
    if (need > b->cap) {
        size_t cap = b->cap ? b->cap : 64;
        while (cap < need) cap *= 2;
        char *p = shr__gc_priv_realloc(b->p, cap);
        if (!p) {
            b->err = ENOMEM;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = 0;
}

static void put_str(sbuf_t *b, const char *s) { put(b, s, strlen(s)); }

/* ---- Python reprs ---------------------------------------------------------- */

void shr__float_repr(double x, char *buf, size_t size)
{
    if (isnan(x)) {
        snprintf(buf, size, "nan");
        return;
    }
    if (isinf(x)) {
        snprintf(buf, size, x < 0 ? "-inf" : "inf");
        return;
    }
    /* Shortest digits that round-trip. */
    char tmp[40];
    int prec;
    for (prec = 1; prec <= 17; prec++) {
        snprintf(tmp, sizeof tmp, "%.*e", prec - 1, x);
        if (strtod(tmp, NULL) == x) break;
    }
    /* tmp is d.ddde[+-]XX; Python writes positional for -4 <= exp < 16. */
    char *e = strchr(tmp, 'e');
    int exp = atoi(e + 1);
    *e = 0;
    char digits[40];
    int nd = 0;
    bool neg = tmp[0] == '-';
    for (char *c = tmp; *c; c++)
        if (*c >= '0' && *c <= '9') digits[nd++] = *c;
    digits[nd] = 0;
    char out[64];
    int o = 0;
    if (neg) out[o++] = '-';
    if (exp >= -4 && exp < 16) {
        if (exp < 0) {
            out[o++] = '0';
            out[o++] = '.';
            for (int i = -1; i > exp; i--) out[o++] = '0';
            for (int i = 0; i < nd; i++) out[o++] = digits[i];
        } else {
            for (int i = 0; i <= exp; i++) out[o++] = i < nd ? digits[i] : '0';
            out[o++] = '.';
            if (nd > exp + 1)
                for (int i = exp + 1; i < nd; i++) out[o++] = digits[i];
            else
                out[o++] = '0';
        }
        out[o] = 0;
    } else {
        out[o++] = digits[0];
        if (nd > 1) {
            out[o++] = '.';
            for (int i = 1; i < nd; i++) out[o++] = digits[i];
        }
        out[o] = 0;
        snprintf(out + o, sizeof out - (size_t)o, "e%c%02d", exp < 0 ? '-' : '+', exp < 0 ? -exp : exp);
    }
    snprintf(buf, size, "%s", out);
}

static bool printable(uint32_t cp)
{
    if (cp < 0x20 || (cp >= 0x7f && cp <= 0xa0) || cp == 0xad) return false;
    if ((cp >= 0x200b && cp <= 0x200f) || cp == 0x2028 || cp == 0x2029 || cp == 0xfeff) return false;
    if ((cp >= 0xe000 && cp <= 0xf8ff) || cp >= 0xf0000) return false;
    return true;
}

static void repr_text(sbuf_t *b, const char *s, size_t n, bool bytes)
{
    bool has_sq = memchr(s, '\'', n) != NULL, has_dq = memchr(s, '"', n) != NULL;
    char q = has_sq && !has_dq ? '"' : '\'';
    char tmp[16];
    if (bytes) put(b, "b", 1);
    put(b, &q, 1);
    for (size_t i = 0; i < n;) {
        unsigned char c = (unsigned char)s[i];
        if (c == '\\' || c == (unsigned char)q) {
            put(b, "\\", 1);
            put(b, (const char *)&c, 1);
            i++;
        } else if (c == '\t') { put_str(b, "\\t"); i++; }
        else if (c == '\n') { put_str(b, "\\n"); i++; }
        else if (c == '\r') { put_str(b, "\\r"); i++; }
        else if (c < 0x80 || bytes) {
            if (c >= 0x20 && c < 0x7f) put(b, (const char *)&c, 1);
            else {
                snprintf(tmp, sizeof tmp, "\\x%02x", c);
                put_str(b, tmp);
            }
            i++;
        } else {
            /* A UTF-8 sequence (validated when the str was stored). */
            size_t k = c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : 2;
            if (i + k > n) k = n - i;
            uint32_t cp = c & (k == 4 ? 0x07 : k == 3 ? 0x0f : 0x1f);
            for (size_t j = 1; j < k; j++) cp = (cp << 6) | ((unsigned char)s[i + j] & 0x3f);
            if (printable(cp)) put(b, s + i, k);
            else {
                if (cp <= 0xff) snprintf(tmp, sizeof tmp, "\\x%02x", cp);
                else if (cp <= 0xffff) snprintf(tmp, sizeof tmp, "\\u%04x", cp);
                else snprintf(tmp, sizeof tmp, "\\U%08x", cp);
                put_str(b, tmp);
            }
            i += k;
        }
    }
    put(b, &q, 1);
}

/* ---- steps --------------------------------------------------------------------- */

#define REPR_STEP 32

typedef struct step {
    uint64_t n;                   /* items copied */
    bool last;                    /* the list ends with them */
    uint64_t tag[REPR_STEP], val[REPR_STEP]; /* str/bytes/list items hold a leased reference */
} step_t;

static void drop_step(shr_heap_t *h, step_t *s)
{
    for (uint64_t i = 0; i < s->n; i++)
        if (is_ref(s->tag[i]) && shr__lease_remove(h, s->val[i]) == 0) shr__decref(h, obj_at(h, s->val[i]));
}

/* Copy items [from, from + REPR_STEP) of l, taking and leasing a reference
 * to each object. On failure nothing is held. */
static int take_step(shr_heap_t *h, listobj_t *l, uint64_t from, step_t *s)
{
    int rc = shr__list_lock(h, l);
    if (rc) return rc;
    items_t *a = list_items(h, l);
    uint64_t len = shr_load_relaxed(&a->len);
    s->n = 0;
    for (uint64_t i = from; i < len && s->n < REPR_STEP; i++) {
        uint64_t tag = shr_load_relaxed(&a->it[i].tag), val = shr_load_relaxed(&a->it[i].val);
        if (is_ref(tag)) {
            shr__incref(obj_at(h, val)); /* the item holds one: this cannot free */
            if ((rc = shr__lease_add(h, val)) != 0) {
                shr__decref(h, obj_at(h, val));
                break;
            }
        }
        s->tag[s->n] = tag;
        s->val[s->n++] = val;
    }
    s->last = from + s->n >= len;
    shr__list_unlock(l);
    if (rc) drop_step(h, s);
    return rc;
}

/* ---- format ------------------------------------------------------------------------ */

static char *list_format(shr_list_t *list)
{
    step_t s;
    sbuf_t b = {0};
    char tmp[32];
    int rc = 0;
    if (!list) {
        errno = EINVAL;
        return NULL;
    }
    put_str(&b, "");
    for (uint64_t from = 0; rc == 0 && !b.err; from += s.n) {
        if ((rc = take_step(list->heap, list->obj, from, &s)) != 0) break;
        for (uint64_t i = 0; i < s.n; i++) {
            switch (s.tag[i]) {
            case SHR_INT: put_str(&b, "q"); break;
            case SHR_FLOAT: put_str(&b, "d"); break;
            case SHR_BOOL: put_str(&b, "xxxxxxx?"); break;
            case SHR_NONE: put_str(&b, "xxxxxx?x"); break;
            case SHR_STR:
            case SHR_BYTES: {
                uint64_t len = ((strobj_t *)shr__ptr(list->heap, s.val[i]))->len;
                snprintf(tmp, sizeof tmp, "%llus", (unsigned long long)(8 * (len / 8 + 1)));
                put_str(&b, tmp);
                break;
            }
            case SHR_LIST:
            case SHR_REF: put_str(&b, "Q"); break;
            default: put_str(&b, "?"); break;
            }
        }
        drop_step(list->heap, &s);
        if (s.last) break;
    }
    if (rc || b.err) {
        free(b.p);
        errno = rc ? shr__errno_of(rc) : b.err;
        return NULL;
    }
    return b.p;
}

/* ---- repr --------------------------------------------------------------------------- */

#define MAX_DEPTH 64

static int repr_list(shr_heap_t *h, shr_off_t off, sbuf_t *b, shr_off_t *stack, int depth)
{
    for (int d = 0; d < depth; d++)
        if (stack[d] == off) {
            put_str(b, "[...]");
            return 0;
        }
    if (depth == MAX_DEPTH) {
        put_str(b, "[...]");
        return 0;
    }
    stack[depth] = off;
    step_t s;
    char tmp[40];
    int rc = 0;
    put_str(b, "[");
    for (uint64_t from = 0; rc == 0 && !b->err; from += s.n) {
        if ((rc = take_step(h, shr__ptr(h, off), from, &s)) != 0) break;
        for (uint64_t i = 0; i < s.n && rc == 0; i++) {
            if (from + i) put_str(b, ", ");
            uint64_t v = s.val[i];
            switch (s.tag[i]) {
            case SHR_NONE: put_str(b, "None"); break;
            case SHR_BOOL: put_str(b, v ? "True" : "False"); break;
            case SHR_INT: snprintf(tmp, sizeof tmp, "%lld", (long long)(int64_t)v); put_str(b, tmp); break;
            case SHR_FLOAT: {
                double f;
                memcpy(&f, &v, sizeof f);
                shr__float_repr(f, tmp, sizeof tmp);
                put_str(b, tmp);
                break;
            }
            case SHR_STR:
            case SHR_BYTES: {
                strobj_t *so = shr__ptr(h, v);
                repr_text(b, so->data, so->len, s.tag[i] == SHR_BYTES);
                break;
            }
            case SHR_LIST: rc = repr_list(h, v, b, stack, depth + 1); break;
            case SHR_REF: {
                uint32_t t = obj_at(h, v)->type;
                char name[SHR_TYPE_NAME_MAX + 1] = "node";
                if (t != SHR_TYPE_NODE && shr_obj_type_info(h, t, name, NULL, NULL) != 0) strcpy(name, "object");
                put_str(b, "<sharena.");
                put_str(b, name);
                snprintf(tmp, sizeof tmp, " at 0x%llx>", (unsigned long long)v);
                put_str(b, tmp);
                break;
            }
            default: put_str(b, "?"); break;
            }
        }
        bool last = s.last;
        drop_step(h, &s);
        if (last) break;
    }
    put_str(b, "]");
    return rc;
}

static char *list_repr(shr_list_t *list)
{
    sbuf_t b = {0};
    shr_off_t stack[MAX_DEPTH];
    if (!list) {
        errno = EINVAL;
        return NULL;
    }
    put_str(&b, "ShareableList(");
    int rc = repr_list(list->heap, list->off, &b, stack, 0);
    put_str(&b, ", name=");
    if (list->name) repr_text(&b, list->name, strlen(list->name), false);
    else put_str(&b, "None");
    put_str(&b, ")");
    if (rc || b.err) {
        free(b.p);
        errno = rc ? shr__errno_of(rc) : b.err;
        return NULL;
    }
    return b.p;
}

/* The gate (gc.h) around each: they read objects a collection may free. */
char *shr_list_format(shr_list_t *list)
{
    if (!list) return list_format(list);
    int rc = shr__gate_enter(list->heap);
    if (rc) {
        errno = shr__errno_of(rc);
        return NULL;
    }
    char *r = list_format(list);
    shr__gate_exit(list->heap);
    return r;
}

char *shr_list_repr(shr_list_t *list)
{
    if (!list) return list_repr(list);
    int rc = shr__gate_enter(list->heap);
    if (rc) {
        errno = shr__errno_of(rc);
        return NULL;
    }
    char *r = list_repr(list);
    shr__gate_exit(list->heap);
    return r;
}
