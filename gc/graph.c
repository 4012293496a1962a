/* Seeded object graphs (include/sharena/gc.h, "seeded graphs"): the graphs
 * of the collector's benchmark, built with the public object calls from a
 * splitmix64 stream whose draws are those of the CPython side
 * (bench/gc/cpython_gc.py), in the same order, so that both build the same
 * graph object for object.
 *
 * A node has a fixed number of slots, where a CPython list grows by
 * append; so each builder first makes every draw (which fixes every
 * object's out-degree and every edge), then creates the objects with their
 * exact slot counts and stores the edges in CPython's append order. Object
 * indices are CPython's creation order; the digest is computed over
 * (source index, target index) in append order, the same way on both sides.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "sharena.h"

uint64_t shr_graph_splitmix64(uint64_t *state)
{
    uint64_t z = (*state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static uint64_t draw(uint64_t *s, uint64_t k) { return shr_graph_splitmix64(s) % k; }

/* The digest of one edge, folded in append order. */
static void dig(shr_graph_info_t *gi, uint64_t src, uint64_t dst)
{
    gi->digest = (gi->digest ^ (src * 0x9E3779B97F4A7C15ull + dst)) * 0x100000001B3ull;
    gi->edges++;
}

#define ROOT_INDEX UINT64_MAX   /* the root's index in the digest */

static const char *const names[] = {
    [SHR_GRAPH_LIVE_FLAT] = "live_flat", [SHR_GRAPH_LIVE_GRAPH] = "live_graph",
    [SHR_GRAPH_RING2] = "ring2",         [SHR_GRAPH_RING100] = "ring100",
    [SHR_GRAPH_MIX] = "mix",             [SHR_GRAPH_TREE] = "tree",
    [SHR_GRAPH_CHURN] = "churn",
};

int shr_graph_kind(const char *name)
{
    if (!name)
        return -EINVAL;
    for (int k = SHR_GRAPH_LIVE_FLAT; k <= SHR_GRAPH_CHURN; k++)
        if (strcmp(name, names[k]) == 0)
            return k;
    return -ENOENT;
}

const char *shr_graph_name(int kind)
{
    return kind >= SHR_GRAPH_LIVE_FLAT && kind <= SHR_GRAPH_CHURN ? names[kind] : NULL;
}

static int node(shr_heap_t *h, uint32_t nslots, size_t payload, shr_ref_t *out, shr_graph_info_t *gi)
{
    int rc = shr_obj_new(h, SHR_TYPE_NODE, nslots, payload, out);
    if (rc == 0)
        gi->objects++;
    return rc;
}

static void release_all(shr_heap_t *h, shr_ref_t *refs, uint64_t n)
{
    for (uint64_t i = 0; i < n; i++)
        if (refs[i].off)
            shr_obj_release(h, refs[i]);
}

/* root = [l_0 ... l_{n-1}], each l_i empty. */
static int build_flat(shr_heap_t *h, uint64_t n, shr_ref_t *root, shr_graph_info_t *gi)
{
    shr_ref_t r, l;
    int rc = node(h, (uint32_t)n, 0, &r, gi);
    if (rc)
        return rc;
    for (uint64_t i = 0; i < n; i++) {
        if ((rc = node(h, 0, 0, &l, gi)) != 0 || (rc = shr_obj_set(h, r, (uint32_t)i, l)) != 0) {
            if (l.off && rc)
                shr_obj_release(h, l);
            shr_obj_release(h, r);
            return rc;
        }
        shr_obj_release(h, l);
        l.off = 0;
        dig(gi, ROOT_INDEX, i);
    }
    gi->live = n + 1;
    *root = r;
    return 0;
}

/* The random recursive tree plus U(2)==0 extra edges over n nodes; with
 * payload, each node carries the int64 1000 + i in 8 payload bytes (the
 * CPython side's int item, which is not a container). root = [l_0]. */
static int build_graph(shr_heap_t *h, uint64_t n, uint64_t *rng, int payload, shr_ref_t *root,
                       shr_graph_info_t *gi)
{
    uint32_t *parent = malloc(n * sizeof *parent), *extra = malloc(n * sizeof *extra);
    uint32_t *fill = calloc(n, sizeof *fill);
    shr_ref_t *nodes = calloc(n, sizeof *nodes), r = {0};
    int rc = -ENOMEM;
    if (!parent || !extra || !fill || !nodes)
        goto out;
    for (uint64_t i = 1; i < n; i++) {
        parent[i] = (uint32_t)draw(rng, i);
        fill[parent[i]]++;
    }
    for (uint64_t i = 0; i < n; i++) {
        extra[i] = UINT32_MAX;
        if (draw(rng, 2) == 0) {
            extra[i] = (uint32_t)draw(rng, n);
            fill[i]++;
        }
    }
    for (uint64_t i = 0; i < n; i++) {
        if ((rc = node(h, fill[i], payload ? 8 : 0, &nodes[i], gi)) != 0)
            goto out;
        if (payload) {
            int64_t v = 1000 + (int64_t)i;
            memcpy(shr_obj_payload(h, nodes[i], NULL), &v, sizeof v);
        }
        fill[i] = 0;
    }
    for (uint64_t i = 1; i < n; i++) {
        if ((rc = shr_obj_set(h, nodes[parent[i]], fill[parent[i]]++, nodes[i])) != 0)
            goto out;
        dig(gi, parent[i], i);
    }
    for (uint64_t i = 0; i < n; i++)
        if (extra[i] != UINT32_MAX) {
            if ((rc = shr_obj_set(h, nodes[i], fill[i]++, nodes[extra[i]])) != 0)
                goto out;
            dig(gi, i, extra[i]);
        }
    if ((rc = node(h, 1, 0, &r, gi)) != 0 || (rc = shr_obj_set(h, r, 0, nodes[0])) != 0)
        goto out;
    dig(gi, ROOT_INDEX, 0);
    gi->live += n + 1;
    *root = r;
    r.off = 0;
out:
    if (r.off)
        shr_obj_release(h, r);
    if (nodes)
        release_all(h, nodes, n);
    free(parent);
    free(extra);
    free(fill);
    free(nodes);
    return rc;
}

/* One garbage ring of len nodes, from index base: l_k = [l_{(k+1)%len}],
 * member k holding a second slot with a new empty list where tail[k] is
 * not UINT64_MAX (that list's index). Every reference is released: the
 * ring is garbage on return. */
static int ring(shr_heap_t *h, uint32_t len, uint64_t base, const uint64_t *tail, shr_graph_info_t *gi)
{
    shr_ref_t m[100] = {{0}}, t = {0};
    int rc = 0;
    for (uint32_t k = 0; k < len && rc == 0; k++)
        rc = node(h, tail && tail[k] != UINT64_MAX ? 2 : 1, 0, &m[k], gi);
    for (uint32_t k = 0; k < len && rc == 0; k++)
        if ((rc = shr_obj_set(h, m[k], 0, m[(k + 1) % len])) == 0)
            dig(gi, base + k, base + (k + 1) % len);
    for (uint32_t k = 0; tail && k < len && rc == 0; k++) {
        if (tail[k] == UINT64_MAX)
            continue;
        if ((rc = node(h, 0, 0, &t, gi)) == 0 && (rc = shr_obj_set(h, m[k], 1, t)) == 0) {
            dig(gi, base + k, tail[k]);
            gi->garbage++;
        }
        if (t.off)
            shr_obj_release(h, t);
        t.off = 0;
    }
    release_all(h, m, len);
    if (rc == 0)
        gi->garbage += len;
    return rc;
}

static int build_rings(shr_heap_t *h, uint64_t n, uint32_t len, shr_graph_info_t *gi)
{
    int rc = 0;
    for (uint64_t r = 0; r < n / len && rc == 0; r++)
        rc = ring(h, len, r * len, NULL, gi);
    return rc;
}

/* 80 % live graph with payloads, then 20 % garbage: rings of 2..100 with
 * acyclic tails (U(5) == 0 per member while garbage is still to make). */
static int build_mix(shr_heap_t *h, uint64_t n, uint64_t *rng, shr_ref_t *root, shr_graph_info_t *gi)
{
    uint64_t n_live = n * 8 / 10, g = n - n_live, made = 0, tail[100];
    int rc = n_live ? build_graph(h, n_live, rng, 1, root, gi) : 0;
    while (rc == 0 && made < g) {
        uint64_t len = 2 + draw(rng, 99), start = made;
        if (len > g - made)
            len = g - made;
        made += len;
        for (uint64_t k = 0; k < len; k++) {
            tail[k] = UINT64_MAX;
            if (made < g && draw(rng, 5) == 0)
                tail[k] = n_live + made++;
        }
        rc = ring(h, (uint32_t)len, n_live + start, tail, gi);
    }
    if (rc && root->off) {
        shr_obj_release(h, *root);
        root->off = 0;
    }
    return rc;
}

/* GCBench's shape: a complete binary tree in breadth-first order, l_i
 * holding l_{2i+1} and l_{2i+2} (those below n); root = [l_0]. Built from
 * the leaves up, each node released once its parent holds it, so that
 * about one level's references are held at a time. */
static int build_tree(shr_heap_t *h, uint64_t n, shr_ref_t *root, shr_graph_info_t *gi)
{
    shr_ref_t *nodes = calloc(n, sizeof *nodes), r = {0};
    int rc = nodes ? 0 : -ENOMEM;
    for (uint64_t i = n; rc == 0 && i-- > 0;) {
        uint32_t kids = (2 * i + 1 < n) + (2 * i + 2 < n);
        if ((rc = node(h, kids, 0, &nodes[i], gi)) != 0)
            break;
        for (uint32_t k = 0; k < kids && rc == 0; k++) {
            uint64_t c = 2 * i + 1 + k;
            rc = shr_obj_set(h, nodes[i], k, nodes[c]);
            shr_obj_release(h, nodes[c]);
            nodes[c].off = 0;
        }
    }
    if (rc == 0 && (rc = node(h, 1, 0, &r, gi)) == 0 && (rc = shr_obj_set(h, r, 0, nodes[0])) == 0) {
        /* The digest in CPython's append order: parents in index order. */
        for (uint64_t i = 0; 2 * i + 1 < n; i++) {
            dig(gi, i, 2 * i + 1);
            if (2 * i + 2 < n)
                dig(gi, i, 2 * i + 2);
        }
        dig(gi, ROOT_INDEX, 0);
        gi->live = n + 1;
        *root = r;
        r.off = 0;
    }
    if (r.off)
        shr_obj_release(h, r);
    if (nodes)
        release_all(h, nodes, n);
    free(nodes);
    return rc;
}

/* Close the pending ring m[0..len) (stream indices idx[]): m_k holds
 * m_{(k+1) % len}, then every reference to it is dropped. */
static int churn_ring(shr_heap_t *h, shr_ref_t *m, const uint64_t *idx, uint32_t len, shr_graph_info_t *gi)
{
    int rc = 0;
    for (uint32_t k = 0; k < len && rc == 0; k++)
        if ((rc = shr_obj_set(h, m[k], 0, m[(k + 1) % len])) == 0)
            dig(gi, idx[k], idx[(k + 1) % len]);
    release_all(h, m, len);
    memset(m, 0, len * sizeof *m);
    return rc;
}

/* The live table, then the stream (include/sharena/gc.h, "Churn"). Holds
 * the root and the pending ring only, so that n is bounded by time alone. */
static int build_churn(shr_heap_t *h, uint64_t n, uint64_t *rng, const shr_graph_churn_t *c, shr_ref_t *root,
                       shr_graph_info_t *gi)
{
    uint64_t s = c->live ? c->live : (n / 10 ? n / 10 : 1);
    shr_ref_t *m = calloc(c->cycle, sizeof *m), r = {0}, x = {0};
    uint64_t *idx = malloc(c->cycle * sizeof *idx);
    uint32_t pending = 0;
    int rc = s > SHR_GRAPH_MAX_N ? -EINVAL : -ENOMEM;
    if (!m || !idx || s > SHR_GRAPH_MAX_N)
        goto out;
    if ((rc = node(h, (uint32_t)s, 0, &r, gi)) != 0)
        goto out;
    for (uint64_t j = 0; j < s; j++) {
        if ((rc = node(h, 1, 0, &x, gi)) != 0 || (rc = shr_obj_set(h, x, 0, r)) != 0)
            goto out;
        dig(gi, j, ROOT_INDEX);
        if ((rc = shr_obj_set(h, r, (uint32_t)j, x)) != 0)
            goto out;
        dig(gi, ROOT_INDEX - j, j);
        shr_obj_release(h, x);
        x.off = 0;
    }
    for (uint64_t i = 0; i < n; i++) {
        if (draw(rng, 100) < c->garbage_pct) {
            if ((rc = node(h, 1, 0, &m[pending], gi)) != 0)
                goto out;
            idx[pending++] = s + i;
            gi->garbage++;
            if (pending == c->cycle) {
                pending = 0;
                if ((rc = churn_ring(h, m, idx, c->cycle, gi)) != 0)
                    goto out;
            }
        } else {
            uint64_t j = draw(rng, s);
            if ((rc = node(h, 1, 0, &x, gi)) != 0 || (rc = shr_obj_set(h, x, 0, r)) != 0)
                goto out;
            dig(gi, s + i, ROOT_INDEX);
            if ((rc = shr_obj_set(h, r, (uint32_t)j, x)) != 0)
                goto out;
            dig(gi, ROOT_INDEX - j, s + i);
            shr_obj_release(h, x);
            x.off = 0;
        }
        if (c->progress && c->every && (i + 1) % c->every == 0)
            c->progress(h, i + 1, c->arg);
    }
    if (pending && (rc = churn_ring(h, m, idx, pending, gi)) != 0)
        goto out;
    pending = 0;
    gi->live = s + 1;
    *root = r;
    r.off = 0;
out:
    if (x.off)
        shr_obj_release(h, x);
    if (m)
        release_all(h, m, pending);
    if (r.off)
        shr_obj_release(h, r);
    free(m);
    free(idx);
    return rc;
}

static int build(shr_heap_t *heap, int kind, uint64_t n, uint64_t seed, const shr_graph_churn_t *churn,
                 shr_ref_t *root, shr_graph_info_t *info)
{
    shr_graph_info_t gi = {.size = sizeof gi};
    uint64_t rng = seed;
    int rc;
    if (!heap || !root || (info && info->size != sizeof *info))
        return -EINVAL;
    if (!shr_graph_name(kind))
        return -ENOENT;
    if (n < 1 || (n > SHR_GRAPH_MAX_N && kind != SHR_GRAPH_CHURN) || n > ((uint64_t)1 << 32) ||
        (kind == SHR_GRAPH_RING2 && n < 2) ||
        (kind == SHR_GRAPH_RING100 && n < 100) || (kind == SHR_GRAPH_MIX && n < 10))
        return -EINVAL;
    root->off = 0;
    switch (kind) {
    case SHR_GRAPH_LIVE_FLAT: rc = build_flat(heap, n, root, &gi); break;
    case SHR_GRAPH_LIVE_GRAPH: rc = build_graph(heap, n, &rng, 0, root, &gi); break;
    case SHR_GRAPH_RING2: rc = build_rings(heap, n, 2, &gi); break;
    case SHR_GRAPH_RING100: rc = build_rings(heap, n, 100, &gi); break;
    case SHR_GRAPH_MIX: rc = build_mix(heap, n, &rng, root, &gi); break;
    case SHR_GRAPH_TREE: rc = build_tree(heap, n, root, &gi); break;
    default: rc = build_churn(heap, n, &rng, churn, root, &gi); break;
    }
    if (rc == 0 && info)
        *info = gi;
    return rc;
}

int shr_graph_build(shr_heap_t *heap, int kind, uint64_t n, uint64_t seed, shr_ref_t *root,
                    shr_graph_info_t *info)
{
    const shr_graph_churn_t defaults = SHR_GRAPH_CHURN_INIT;
    return build(heap, kind, n, seed, &defaults, root, info);
}

int shr_graph_build_churn(shr_heap_t *heap, uint64_t n, uint64_t seed, const shr_graph_churn_t *churn,
                          shr_ref_t *root, shr_graph_info_t *info)
{
    if (!churn || churn->size != sizeof *churn || churn->live > SHR_GRAPH_MAX_N || churn->garbage_pct > 100 ||
        churn->cycle < 1 || churn->cycle > SHR_GRAPH_CYCLE_MAX)
        return -EINVAL;
    return build(heap, SHR_GRAPH_CHURN, n, seed, churn, root, info);
}
