/* fuzz_list: sequences of list operations from many handles, against a
 * plain in-memory model.
 *
 * Each input is one fresh heap, opened twice by this process (two heap
 * handles on one segment), up to 8 named lists and up to 12 list handles
 * spread over both heap handles, several on the same list. The input is a
 * program of up to 512 steps: create, attach, close, unlink, get, set,
 * append, insert, pop, delete, count, index, len, format and repr, with
 * values of every type (None, bool, int64, double with NaN, infinities and
 * -0.0, str with NULs and multi-byte UTF-8, invalid UTF-8, bytes, nested
 * lists), indices in and out of range, and bad arguments (a value of an
 * unknown type, a list of the other heap handle).
 *
 * After every step the return code is the one the model predicts (0,
 * SHR_EINDEX, SHR_ENOTFOUND, -EINVAL, -ENOENT, -EEXIST) and the list the
 * step touched reads back as the model says through every handle on it; a
 * nested list is the same object (offset) as the model's. At the end every
 * list is read through every handle, the handles are closed and the names
 * unlinked; then this process holds no lease and, unless the program made a
 * cycle of lists (the cycle collector's business), no block is in use that
 * was not in use before. shr_heap_check passes throughout.
 */
#include <errno.h>
#include <math.h>

#include "fuzz_common.h"
#include "list.h"

#define NLISTS 8
#define NHANDLES 12
#define MAX_ITEMS 48
#define MAX_STEPS 512
#define MAX_STR 700
#define MAX_CHECKS 4

/* ---- the model ---------------------------------------------------------------- */

typedef struct mval {
    shr_type_t type;
    int64_t i;          /* BOOL (0/1), INT */
    double f;           /* FLOAT */
    uint8_t *s;         /* STR, BYTES: malloc'ed */
    size_t len;
    int list;           /* LIST: model list index */
} mval_t;

typedef struct mlist {
    bool exists;        /* created (the object lives while referenced) */
    bool named;         /* its name is still linked */
    char name[16];
    shr_off_t off;      /* the object, for identity */
    mval_t it[MAX_ITEMS];
    int n;
} mlist_t;

typedef struct mhandle {
    shr_list_t *l;      /* NULL: free */
    int list;
    int heap;
} mhandle_t;

typedef struct run {
    shr_heap_t *h[2];
    mlist_t lists[NLISTS];
    mhandle_t hd[NHANDLES];
    unsigned names;     /* lists created so far: names are never reused */
    int step;
    uint64_t fault_nth; /* obj.alloc armed to fail for this step's call, or 0 */
    bool fault_fired;   /* ... and it fired: -ENOMEM is then the right answer */
    bool fault_armed_now; /* armed by the step just run, for the next one */
} run_t;

/* Out-of-memory injection (the obj.alloc fault point, debug builds): a step
 * may arm the nth object allocation of its one API call to fail. The call
 * must then succeed (it allocated less) or fail with -ENOMEM having changed
 * nothing, which the model's comparison after the step checks. fault_done()
 * right after the call disarms, so the verification reads are unaffected. */
static int fault_done(run_t *r, int rc)
{
    if (!r->fault_nth) return rc;
    r->fault_fired = shr_fault_hits("obj.alloc") >= (int64_t)r->fault_nth;
    shr_fault_disarm("obj.alloc");
    r->fault_nth = 0;
    return rc;
}

/* rc is want, or the injected -ENOMEM. */
static bool rc_is(run_t *r, int rc, int want) { return rc == want || (r->fault_fired && rc == -ENOMEM); }

static void mval_free(mval_t *v)
{
    free(v->s);
    memset(v, 0, sizeof *v);
}

/* Python's ==, as the list documents it: numbers across bool, int and float
 * by exact value; str with str, bytes with bytes; None with None; a list
 * with the same list. */
static bool num_eq_float_int(double f, int64_t i)
{
    if (!(f >= -9223372036854775808.0 && f < 9223372036854775808.0)) return false;
    return f == floor(f) && (int64_t)f == i;
}

static bool mval_eq(const mval_t *a, const mval_t *b)
{
    bool na = a->type == SHR_BOOL || a->type == SHR_INT || a->type == SHR_FLOAT;
    bool nb = b->type == SHR_BOOL || b->type == SHR_INT || b->type == SHR_FLOAT;
    if (na && nb) {
        if (a->type == SHR_FLOAT && b->type == SHR_FLOAT) return a->f == b->f;
        if (a->type == SHR_FLOAT) return num_eq_float_int(a->f, b->i);
        if (b->type == SHR_FLOAT) return num_eq_float_int(b->f, a->i);
        return a->i == b->i;
    }
    if (a->type != b->type) return false;
    switch (a->type) {
    case SHR_NONE: return true;
    case SHR_STR:
    case SHR_BYTES: return a->len == b->len && (a->len == 0 || memcmp(a->s, b->s, a->len) == 0);
    case SHR_LIST: return a->list == b->list;
    default: return false;
    }
}

/* ---- decoding values ---------------------------------------------------------- */

static const int64_t some_ints[] = {0, 1, -1, 2, 7, 255, -256, 1 << 20, INT32_MAX, INT64_MAX, INT64_MIN,
                                    INT64_MAX - 1, (int64_t)1 << 53, ((int64_t)1 << 53) + 1};

static double some_float(uint8_t k, fz_in_t *in)
{
    switch (k % 10) {
    case 0: return NAN;
    case 1: return INFINITY;
    case 2: return -INFINITY;
    case 3: return -0.0;
    case 4: return 9223372036854775808.0;  /* 2^63: no int64 equals it */
    case 5: return -9223372036854775808.0; /* -2^63 == INT64_MIN */
    case 6: return (double)(int8_t)fz_u8(in); /* equal to small ints */
    case 7: return 0.5 + (double)(int8_t)fz_u8(in);
    case 8: return 9007199254740992.0; /* 2^53 */
    default: {
        uint64_t bits = fz_u64(in);
        double f;
        memcpy(&f, &bits, sizeof f);
        return f;
    }
    }
}

/* Text for a str: valid UTF-8 made from the input (ASCII, NULs, 2-, 3- and
 * 4-byte forms), or, when bad is set, with one invalid sequence in it. */
static size_t make_text(fz_in_t *in, uint8_t *buf, bool bad)
{
    size_t want = fz_u8(in);
    if (want > 200) want = 200 + (want - 200) * 10; /* a few long ones */
    if (want > MAX_STR - 8) want = MAX_STR - 8;
    size_t n = 0;
    while (n < want) {
        uint8_t c = fz_u8(in);
        switch (c >> 6) {
        case 0: buf[n++] = c & 0x3f ? (uint8_t)('a' + c % 26) : 0; break; /* ASCII, some NULs */
        case 1: buf[n++] = (uint8_t)(0xc2 + c % 30); buf[n++] = (uint8_t)(0x80 + c % 64); break;
        case 2: buf[n++] = 0xe2; buf[n++] = 0x82; buf[n++] = 0xac; break; /* U+20AC */
        default: buf[n++] = 0xf0; buf[n++] = 0x9f; buf[n++] = 0x98; buf[n++] = (uint8_t)(0x80 + c % 64); break;
        }
    }
    if (bad) {
        static const uint8_t bads[][4] = {{0xc0, 0x80}, {0xed, 0xa0, 0x80}, {0xf4, 0x90, 0x80, 0x80}, {0xff}, {0xe2, 0x82}};
        static const size_t badlen[] = {2, 3, 4, 1, 2};
        unsigned k = fz_u8(in) % 5;
        size_t at = n ? fz_u8(in) % (n + 1) : 0;
        /* insert at a character boundary: before any continuation bytes */
        while (at > 0 && at < n && (buf[at] & 0xc0) == 0x80) at--;
        if (k == 4) at = n; /* a truncated sequence at the end */
        memmove(buf + at + badlen[k], buf + at, n - at);
        memcpy(buf + at, bads[k], badlen[k]);
        n += badlen[k];
    }
    return n;
}

/* Decode a value. *bad is set for one the list must refuse with -EINVAL
 * (invalid UTF-8, an unknown type, a list of the other heap handle). *api
 * is what to pass; it borrows from *m or from the handles. */
static void decode_value(run_t *r, fz_in_t *in, int heap, mval_t *m, shr_value_t *api, bool *bad)
{
    static uint8_t buf[MAX_STR];
    uint8_t k = fz_u8(in);
    memset(m, 0, sizeof *m);
    *bad = false;
    switch (k % 12) {
    case 0: m->type = SHR_NONE; *api = shr_none(); break;
    case 1: m->type = SHR_BOOL; m->i = k >> 7; *api = shr_bool((int)m->i); break;
    case 2: m->type = SHR_INT; m->i = some_ints[(k >> 4) % SHR_ARRAY_LEN(some_ints)]; *api = shr_int(m->i); break;
    case 3: m->type = SHR_INT; m->i = (int64_t)fz_u64(in); *api = shr_int(m->i); break;
    case 4: m->type = SHR_FLOAT; m->f = some_float(k >> 4, in); *api = shr_float(m->f); break;
    case 5: case 6: {
        m->type = SHR_STR;
        m->len = make_text(in, buf, false);
        m->s = malloc(m->len ? m->len : 1);
        if (!m->s) abort();
        memcpy(m->s, buf, m->len);
        *api = shr_strn((const char *)m->s, m->len);
        break;
    }
    case 7: {
        m->type = SHR_BYTES;
        size_t n;
        const uint8_t *p = fz_bytes(in, fz_u8(in) % 64, &n);
        m->len = (k >> 4) == 15 ? 500 : n; /* some long ones, past the small classes */
        m->s = calloc(1, m->len ? m->len : 1);
        if (!m->s) abort();
        memcpy(m->s, p, n < m->len ? n : m->len);
        *api = shr_bytes(m->s, m->len);
        break;
    }
    case 8: case 9: {
        /* A nested list: a handle on this heap handle's side, else an int. */
        int want = (k >> 4) % NHANDLES;
        for (int j = 0; j < NHANDLES; j++) {
            mhandle_t *hd = &r->hd[(want + j) % NHANDLES];
            if (hd->l && hd->heap == heap) {
                m->type = SHR_LIST;
                m->list = hd->list;
                *api = shr_listval(hd->l);
                return;
            }
        }
        m->type = SHR_INT;
        m->i = k;
        *api = shr_int(m->i);
        break;
    }
    case 10: {
        m->type = SHR_STR;
        m->len = make_text(in, buf, true);
        m->s = malloc(m->len);
        if (!m->s) abort();
        memcpy(m->s, buf, m->len); /* a create decodes several values: own the bytes */
        *api = shr_strn((const char *)m->s, m->len);
        *bad = true;
        break;
    }
    default: {
        *bad = true;
        if (k & 16) {
            /* a list of the other heap handle: another process's view */
            for (int j = 0; j < NHANDLES; j++)
                if (r->hd[j].l && r->hd[j].heap != heap) {
                    *api = shr_listval(r->hd[j].l);
                    return;
                }
        }
        *api = shr_int(0);
        api->type = (shr_type_t)(k & 1 ? 0 : 99);
        break;
    }
    }
}

/* ---- checking -------------------------------------------------------------- */

static void expect_value(run_t *r, const mval_t *m, const shr_value_t *v, const char *what, int64_t i)
{
    FZ_CHECK(v->type == m->type, "step %d %s [%lld]: type %d, model %d", r->step, what, (long long)i,
             (int)v->type, (int)m->type);
    switch (m->type) {
    case SHR_BOOL: FZ_CHECK(v->u.b == m->i, "step %d %s [%lld]: bool", r->step, what, (long long)i); break;
    case SHR_INT: FZ_CHECK(v->u.i == m->i, "step %d %s [%lld]: int %lld, model %lld", r->step, what,
                           (long long)i, (long long)v->u.i, (long long)m->i); break;
    case SHR_FLOAT:
        FZ_CHECK(memcmp(&v->u.f, &m->f, sizeof m->f) == 0 || (isnan(v->u.f) && isnan(m->f)),
                 "step %d %s [%lld]: float %g, model %g", r->step, what, (long long)i, v->u.f, m->f);
        break;
    case SHR_STR:
    case SHR_BYTES:
        FZ_CHECK(v->u.s.len == m->len && (m->len == 0 || memcmp(v->u.s.data, m->s, m->len) == 0),
                 "step %d %s [%lld]: %zu bytes, model %zu", r->step, what, (long long)i, v->u.s.len, m->len);
        break;
    case SHR_LIST:
        FZ_CHECK(v->u.list && v->u.list->off == r->lists[m->list].off,
                 "step %d %s [%lld]: another list than the model's", r->step, what, (long long)i);
        FZ_CHECK(shr_list_len(v->u.list) == r->lists[m->list].n, "step %d %s [%lld]: nested len", r->step,
                 what, (long long)i);
        break;
    default: break;
    }
}

/* Read the whole list through handle k and compare with the model. */
static void verify_handle(run_t *r, int k)
{
    mhandle_t *hd = &r->hd[k];
    mlist_t *ml = &r->lists[hd->list];
    FZ_CHECK(shr_list_len(hd->l) == ml->n, "step %d: handle %d: len %lld, model %d", r->step, k,
             (long long)shr_list_len(hd->l), ml->n);
    for (int i = 0; i < ml->n; i++) {
        shr_value_t v;
        int rc = shr_list_get(hd->l, i, &v);
        FZ_CHECK(rc == 0, "step %d: handle %d get %d: %s", r->step, k, i, shr_strerror(rc));
        expect_value(r, &ml->it[i], &v, "verify", i);
        shr_value_release(r->h[hd->heap], &v);
    }
    shr_value_t v;
    FZ_CHECK(shr_list_get(hd->l, ml->n, &v) == SHR_EINDEX, "step %d: get past the end", r->step);
    FZ_CHECK(shr_list_get(hd->l, -(int64_t)ml->n - 1, &v) == SHR_EINDEX, "step %d: get before the start",
             r->step);
}

static void verify_list(run_t *r, int list)
{
    for (int k = 0; k < NHANDLES; k++)
        if (r->hd[k].l && r->hd[k].list == list) verify_handle(r, k);
}

/* ---- steps ------------------------------------------------------------------------ */

static int free_handle(run_t *r)
{
    for (int k = 0; k < NHANDLES; k++)
        if (!r->hd[k].l) return k;
    return -1;
}

static int pick_handle(run_t *r, uint8_t b)
{
    for (int j = 0; j < NHANDLES; j++) {
        int k = (b + j) % NHANDLES;
        if (r->hd[k].l) return k;
    }
    return -1;
}

static void step_create(run_t *r, fz_in_t *in, int heap)
{
    int k = free_handle(r), li = -1;
    for (int j = 0; j < NLISTS; j++)
        if (!r->lists[j].exists) {
            li = j;
            break;
        }
    uint8_t n = fz_u8(in) % 7;
    if (k < 0 || li < 0) return;
    mlist_t *ml = &r->lists[li];
    shr_value_t vals[7];
    mval_t mv[7];
    bool anybad = false;
    for (int i = 0; i < n; i++) {
        bool bad;
        decode_value(r, in, heap, &mv[i], &vals[i], &bad);
        anybad |= bad;
    }
    snprintf(ml->name, sizeof ml->name, "L%u", r->names++);
    shr_list_t *l = NULL;
    int rc = fault_done(r, shr_list_create(r->h[heap], ml->name, vals, n, &l));
    if (anybad) {
        FZ_CHECK(rc_is(r, rc, -EINVAL), "step %d: create with a bad value: %s", r->step, shr_strerror(rc));
        for (int i = 0; i < n; i++) mval_free(&mv[i]);
        shr_list_t *l2;
        FZ_CHECK(shr_list_attach(r->h[heap], ml->name, &l2) == -ENOENT, "step %d: failed create left a name",
                 r->step);
        return;
    }
    if (rc == -ENOMEM && r->fault_fired) {
        for (int i = 0; i < n; i++) mval_free(&mv[i]);
        shr_list_t *l2;
        FZ_CHECK(shr_list_attach(r->h[heap], ml->name, &l2) == -ENOENT, "step %d: failed create left a name",
                 r->step);
        return;
    }
    FZ_CHECK(rc == 0, "step %d: create: %s", r->step, shr_strerror(rc));
    ml->exists = ml->named = true;
    ml->off = l->off;
    ml->n = n;
    for (int i = 0; i < n; i++) ml->it[i] = mv[i];
    r->hd[k] = (mhandle_t){l, li, heap};
    /* The name is taken now, on both heap handles. */
    shr_list_t *dup;
    FZ_CHECK(shr_list_create(r->h[!heap], ml->name, NULL, 0, &dup) == -EEXIST, "step %d: name not taken",
             r->step);
    verify_list(r, li);
}

static void step_attach(run_t *r, uint8_t b, int heap)
{
    int k = free_handle(r);
    mlist_t *ml = &r->lists[(b >> 1) % NLISTS];
    if (k < 0 || !ml->exists) return;
    shr_list_t *l = NULL;
    int rc = fault_done(r, shr_list_attach(r->h[heap], ml->name, &l));
    if (!ml->named) {
        FZ_CHECK(rc == -ENOENT, "step %d: attach of an unlinked name: %s", r->step, shr_strerror(rc));
        return;
    }
    if (rc == -ENOMEM && r->fault_fired) return;
    FZ_CHECK(rc == 0, "step %d: attach %s: %s", r->step, ml->name, shr_strerror(rc));
    FZ_CHECK(l->off == ml->off, "step %d: attach found another list", r->step);
    r->hd[k] = (mhandle_t){l, (int)(ml - r->lists), heap};
    verify_handle(r, k);
}

static void step_unlink(run_t *r, uint8_t b, int heap)
{
    mlist_t *ml = &r->lists[(b >> 1) % NLISTS];
    if (!ml->exists) return;
    int rc = shr_list_unlink(r->h[heap], ml->name);
    FZ_CHECK(rc == (ml->named ? 0 : -ENOENT), "step %d: unlink %s: %s", r->step, ml->name, shr_strerror(rc));
    ml->named = false;
}

static int64_t pick_index(fz_in_t *in, int n)
{
    uint8_t b = fz_u8(in);
    if (b == 255) return (int64_t)fz_u64(in);
    return (int64_t)(b % (2 * n + 6)) - n - 3; /* [-n-3, n+3) */
}

static bool norm(int64_t i, int n, int *out)
{
    if (i < 0) i += n;
    if (i < 0 || i >= n) return false;
    *out = (int)i;
    return true;
}

static void step_item(run_t *r, fz_in_t *in, unsigned op, int k)
{
    mhandle_t *hd = &r->hd[k];
    mlist_t *ml = &r->lists[hd->list];
    shr_heap_t *h = r->h[hd->heap];
    int64_t idx = pick_index(in, ml->n);
    int i = 0;
    bool in_range = norm(idx, ml->n, &i);
    mval_t mv;
    shr_value_t v;
    bool bad;
    int rc;
    switch (op) {
    case 0: /* get */
        rc = fault_done(r, shr_list_get(hd->l, idx, &v));
        FZ_CHECK(rc_is(r, rc, in_range ? 0 : SHR_EINDEX), "step %d: get %lld of %d: %s", r->step, (long long)idx,
                 ml->n, shr_strerror(rc));
        if (rc == 0) {
            expect_value(r, &ml->it[i], &v, "get", idx);
            shr_value_release(h, &v);
        }
        return;
    case 1: /* set */
        decode_value(r, in, hd->heap, &mv, &v, &bad);
        rc = fault_done(r, shr_list_set(hd->l, idx, &v));
        if (bad) FZ_CHECK(rc == -EINVAL, "step %d: set of a bad value: %s", r->step, shr_strerror(rc));
        else FZ_CHECK(rc_is(r, rc, in_range ? 0 : SHR_EINDEX), "step %d: set %lld of %d: %s", r->step,
                      (long long)idx, ml->n, shr_strerror(rc));
        if (rc == 0) {
            mval_free(&ml->it[i]);
            ml->it[i] = mv;
        } else {
            mval_free(&mv);
        }
        break;
    case 2: /* append */
    case 3: /* insert */
        if (ml->n == MAX_ITEMS) return;
        decode_value(r, in, hd->heap, &mv, &v, &bad);
        rc = fault_done(r, op == 2 ? shr_list_append(hd->l, &v) : shr_list_insert(hd->l, idx, &v));
        FZ_CHECK(rc_is(r, rc, bad ? -EINVAL : 0), "step %d: %s: %s", r->step, op == 2 ? "append" : "insert",
                 shr_strerror(rc));
        if (rc) {
            mval_free(&mv);
            break;
        }
        if (op == 2) i = ml->n;
        else { /* Python clamps */
            int64_t at = idx < 0 ? idx + ml->n : idx;
            i = at < 0 ? 0 : at > ml->n ? ml->n : (int)at;
        }
        memmove(&ml->it[i + 1], &ml->it[i], (size_t)(ml->n - i) * sizeof ml->it[0]);
        ml->it[i] = mv;
        ml->n++;
        break;
    case 4: /* pop */
    case 5: /* delete */
        rc = fault_done(r, op == 4 ? shr_list_pop(hd->l, idx, &v) : shr_list_delete(hd->l, idx));
        FZ_CHECK(rc_is(r, rc, in_range ? 0 : SHR_EINDEX), "step %d: pop %lld of %d: %s", r->step, (long long)idx,
                 ml->n, shr_strerror(rc));
        if (rc) break;
        mv = ml->it[i];
        memmove(&ml->it[i], &ml->it[i + 1], (size_t)(ml->n - i - 1) * sizeof ml->it[0]);
        ml->n--;
        memset(&ml->it[ml->n], 0, sizeof ml->it[0]);
        if (op == 4) { /* after the model's update: the value may be this very list */
            expect_value(r, &mv, &v, "pop", idx);
            shr_value_release(h, &v);
        }
        mval_free(&mv);
        break;
    default: { /* count and index */
        decode_value(r, in, hd->heap, &mv, &v, &bad);
        size_t count = 0, at = 0, want = 0;
        int first = -1;
        for (int j = 0; j < ml->n; j++)
            if (mval_eq(&ml->it[j], &mv)) {
                want++;
                if (first < 0) first = j;
            }
        bool type_bad = v.type < SHR_NONE || v.type > SHR_LIST;
        rc = fault_done(r, shr_list_count(hd->l, &v, &count));
        if (type_bad) FZ_CHECK(rc == -EINVAL, "step %d: count of an unknown type: %s", r->step, shr_strerror(rc));
        else if (!bad) FZ_CHECK(rc == 0 && count == want, "step %d: count %zu, model %zu (%s)", r->step, count,
                                want, shr_strerror(rc));
        rc = shr_list_index(hd->l, &v, &at);
        if (type_bad) FZ_CHECK(rc == -EINVAL, "step %d: index of an unknown type: %s", r->step, shr_strerror(rc));
        else if (!bad) FZ_CHECK(first < 0 ? rc == SHR_ENOTFOUND : rc == 0 && at == (size_t)first,
                                "step %d: index %zu, model %d (%s)", r->step, at, first, shr_strerror(rc));
        mval_free(&mv);
        return;
    }
    }
    verify_list(r, hd->list);
}

static void step_text(run_t *r, int k)
{
    mhandle_t *hd = &r->hd[k];
    mlist_t *ml = &r->lists[hd->list];
    char want[MAX_ITEMS * 24 + 1] = "", tmp[32];
    for (int i = 0; i < ml->n; i++) {
        const mval_t *m = &ml->it[i];
        switch (m->type) {
        case SHR_INT: strcat(want, "q"); break;
        case SHR_FLOAT: strcat(want, "d"); break;
        case SHR_BOOL: strcat(want, "xxxxxxx?"); break;
        case SHR_NONE: strcat(want, "xxxxxx?x"); break;
        case SHR_LIST: strcat(want, "Q"); break;
        default: snprintf(tmp, sizeof tmp, "%zus", 8 * (m->len / 8 + 1)); strcat(want, tmp); break;
        }
    }
    char *f = shr_list_format(hd->l);
    FZ_CHECK(f && strcmp(f, want) == 0, "step %d: format '%s', model '%s'", r->step, f ? f : "(null)", want);
    free(f);
    char *s = shr_list_repr(hd->l);
    FZ_CHECK(s != NULL, "step %d: repr failed", r->step);
    char tail[48];
    snprintf(tail, sizeof tail, "], name='%s')", ml->name);
    size_t n = strlen(s), t = strlen(tail);
    FZ_CHECK(strncmp(s, "ShareableList([", 15) == 0 && n >= 15 + t && strcmp(s + n - t, tail) == 0,
             "step %d: repr '%s'", r->step, s);
    free(s);
}

/* ---- the end --------------------------------------------------------------------- */

/* Does the model's reference graph of lists hold a cycle? */
static bool cyclic_from(run_t *r, int li, uint8_t *color)
{
    if (color[li] == 1) return true;
    if (color[li] == 2) return false;
    color[li] = 1;
    for (int i = 0; i < r->lists[li].n; i++)
        if (r->lists[li].it[i].type == SHR_LIST && cyclic_from(r, r->lists[li].it[i].list, color)) return true;
    color[li] = 2;
    return false;
}

static bool any_cycle(run_t *r)
{
    uint8_t color[NLISTS] = {0};
    for (int li = 0; li < NLISTS; li++)
        if (r->lists[li].exists && cyclic_from(r, li, color)) return true;
    return false;
}

/* Blocks in use, once both heap handles (two thread slots of this thread)
 * took in the frees the other made into their pools. */
static uint64_t blocks_in_use(run_t *r)
{
    shr_alloc_stats_t st;
    FZ_CHECK(shr_heap_collect(r->h[0]) == 0 && shr_heap_collect(r->h[1]) == 0, "collect");
    FZ_CHECK(shr_heap_stats(r->h[0], &st) == 0, "stats");
    uint64_t n = st.large_blocks;
    for (int c = 0; c < SHR_POOL_CLASSES; c++) n += st.classes[c].blocks_in_use;
    return n;
}

static void finish(run_t *r, uint64_t base)
{
    r->step = -1;
    for (int k = 0; k < NHANDLES; k++)
        if (r->hd[k].l) verify_handle(r, k);
    bool cycle = any_cycle(r);
    for (int k = 0; k < NHANDLES; k++)
        if (r->hd[k].l) {
            FZ_CHECK(shr_list_close(r->hd[k].l) == 0, "close handle %d", k);
            r->hd[k].l = NULL;
        }
    for (int li = 0; li < NLISTS; li++) {
        mlist_t *ml = &r->lists[li];
        if (ml->exists && ml->named) FZ_CHECK(shr_list_unlink(r->h[li & 1], ml->name) == 0, "unlink %s", ml->name);
        for (int i = 0; i < ml->n; i++) mval_free(&ml->it[i]);
    }
    for (int hi = 0; hi < 2; hi++) {
        shr_lease_stats_t gs;
        FZ_CHECK(shr_lease_stats(r->h[hi], &gs) == 0 && gs.leases == 0, "heap handle %d holds %llu leases", hi,
                 (unsigned long long)gs.leases);
        FZ_CHECK(shr_heap_check_report(r->h[hi], stderr) == 0, "heap check at the end");
    }
    uint64_t left = blocks_in_use(r);
    if (!cycle)
        FZ_CHECK(left == base, "%llu blocks in use at the end, %llu at the start (no cycle)",
                 (unsigned long long)left, (unsigned long long)base);
}

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fz_env_init();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static run_t r;
    fz_in_t in = {data, size};
    shr_heap_options_t o;
    shr_heap_options_init(&o);
    o.capacity = (size_t)64 << 20;
    memset(&r, 0, sizeof r);
    const char *name = fz_name("list");
    int rc = shr_heap_create(name, &o, &r.h[0]);
    FZ_CHECK(rc == 0, "create: %s", shr_strerror(rc));
    rc = shr_heap_attach(name, &r.h[1]);
    FZ_CHECK(rc == 0, "second attach: %s", shr_strerror(rc));
    shr_heap_unlink(name);
    /* Each heap handle's lease table is made on its first reference and then
     * kept (one block, however much it grows): make it before counting. */
    for (int hi = 0; hi < 2; hi++) {
        shr_list_t *l;
        FZ_CHECK(shr_list_create(r.h[hi], NULL, NULL, 0, &l) == 0 && shr_list_close(l) == 0, "warm-up");
    }
    uint64_t base = blocks_in_use(&r);
    int checks = 0;
    for (r.step = 0; r.step < MAX_STEPS && fz_more(&in); r.step++) {
        if (!r.fault_armed_now) fault_done(&r, 0); /* a step that made no call disarms too */
        r.fault_armed_now = false;
        r.fault_fired = false;
        uint8_t op = fz_u8(&in);
        uint8_t b = fz_u8(&in);
        int heap = b & 1, k;
        switch (op % 16) {
        case 0: step_create(&r, &in, heap); break;
        case 1: step_attach(&r, b, heap); break;
        case 2:
            if ((k = pick_handle(&r, b)) >= 0) {
                FZ_CHECK(shr_list_close(r.hd[k].l) == 0, "step %d: close", r.step);
                r.hd[k].l = NULL;
            }
            break;
        case 3: step_unlink(&r, b, heap); break;
        case 12:
            if ((k = pick_handle(&r, b)) >= 0)
                FZ_CHECK(shr_list_len(r.hd[k].l) == r.lists[r.hd[k].list].n, "step %d: len", r.step);
            break;
        case 13:
            if ((k = pick_handle(&r, b)) >= 0) step_text(&r, k);
            break;
        case 14:
            if (b & 2) {
                /* Fail the nth object allocation of the next step's call. */
                uint64_t nth = 1 + (b >> 2) % 3;
                if (shr_fault_arm("obj.alloc", nth, SHR_FAULT_FAIL) == 0) {
                    r.fault_nth = nth;
                    r.fault_armed_now = true;
                }
                continue;
            }
            if (checks++ < MAX_CHECKS)
                FZ_CHECK(shr_heap_check_report(r.h[heap], stderr) == 0, "step %d: heap check", r.step);
            break;
        case 15:
            /* Every handle on the lists, in full. */
            for (k = 0; k < NHANDLES; k++)
                if (r.hd[k].l) verify_handle(&r, k);
            break;
        default: /* 4..11: get set append insert pop delete count/index */
            if ((k = pick_handle(&r, b >> 1)) >= 0) step_item(&r, &in, (unsigned)(op % 16 - 4) % 7, k);
            break;
        }
    }
    fault_done(&r, 0);
    finish(&r, base);
    FZ_CHECK(shr_heap_close(r.h[1]) == 0, "close");
    FZ_CHECK(shr_heap_close(r.h[0]) == 0, "close");
    return 0;
}
