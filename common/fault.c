/* Fault points: the table of armed points, the environment, the test API.
 *
 * State is per process and small: for each point, its armed action, the hit
 * that fires it and the hits so far. A fork child inherits it (the child of
 * a test that armed a point before forking fires in the child). Arming and
 * hitting may race between threads; the counters are atomic, and a point
 * fires exactly once per arming (the thread whose increment reaches nth).
 */
#include <errno.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>

#include "fault.h"

static const char *const point_names[] = {
#define SHR__FAULT_NAME(id, name, where, fail) name,
    SHR_FAULT_POINTS(SHR__FAULT_NAME)
#undef SHR__FAULT_NAME
};

static const char *const point_docs[] = {
#define SHR__FAULT_DOC(id, name, where, fail) where "; fail: " fail,
    SHR_FAULT_POINTS(SHR__FAULT_DOC)
#undef SHR__FAULT_DOC
};

const char *shr_fault_point_name(int id)
{
    return id >= 0 && id < SHR_FAULT_NPOINTS ? point_names[id] : NULL;
}

const char *shr_fault_point_doc(int id)
{
    return id >= 0 && id < SHR_FAULT_NPOINTS ? point_docs[id] : NULL;
}

shr_unused static int point_id(const char *name, size_t len)
{
    if (!name) return -1;
    for (int i = 0; i < SHR_FAULT_NPOINTS; i++)
        if (strlen(point_names[i]) == len && memcmp(point_names[i], name, len) == 0) return i;
    return -1;
}

#if SHR_DEBUG >= 1

atomic_uint shr__fault_armed;

static struct {
    atomic_uint action;  /* shr_fault_action_t, 0 when disarmed */
    atomic_uint_least64_t nth;   /* the hit that fires */
    atomic_uint_least64_t hits;  /* hits since armed */
} points[SHR_FAULT_NPOINTS];

static void recount_armed(void)
{
    unsigned n = 0;
    for (int i = 0; i < SHR_FAULT_NPOINTS; i++) n += atomic_load(&points[i].action) != 0;
    atomic_store(&shr__fault_armed, n);
}

int shr__fault_hit(shr_fault_point_t id)
{
    if ((unsigned)id >= SHR_FAULT_NPOINTS) return 0;
    if (atomic_load_explicit(&points[id].action, memory_order_acquire) == 0) return 0;
    uint64_t hit = atomic_fetch_add(&points[id].hits, 1) + 1;
    if (hit != atomic_load(&points[id].nth)) return 0;
    unsigned action = atomic_exchange(&points[id].action, 0);
    recount_armed();
    switch (action) {
    case SHR_FAULT_KILL:
        raise(SIGKILL);
        for (;;) pause();
    case SHR_FAULT_STOP:
        raise(SIGSTOP);
        return 0;
    case SHR_FAULT_FAIL:
        return 1;
    default:
        return 0; /* disarmed by another thread meanwhile */
    }
}

static int arm(int id, uint64_t nth, unsigned action)
{
    atomic_store(&points[id].action, 0);
    atomic_store(&points[id].hits, 0);
    atomic_store(&points[id].nth, nth);
    atomic_store_explicit(&points[id].action, action, memory_order_release);
    recount_armed();
    return 0;
}

int shr_fault_arm(const char *point, uint64_t nth, shr_fault_action_t action)
{
    int id = point ? point_id(point, strlen(point)) : -1;
    if (id < 0 || nth == 0 || action < SHR_FAULT_KILL || action > SHR_FAULT_FAIL) return -EINVAL;
    return arm(id, nth, (unsigned)action);
}

int shr_fault_disarm(const char *point)
{
    if (!point) {
        for (int i = 0; i < SHR_FAULT_NPOINTS; i++) atomic_store(&points[i].action, 0);
        recount_armed();
        return 0;
    }
    int id = point_id(point, strlen(point));
    if (id < 0) return -EINVAL;
    atomic_store(&points[id].action, 0);
    recount_armed();
    return 0;
}

int64_t shr_fault_hits(const char *point)
{
    int id = point ? point_id(point, strlen(point)) : -1;
    if (id < 0) return -EINVAL;
    return (int64_t)atomic_load(&points[id].hits);
}

int shr_fault_available(void) { return 1; }

/* SHARENA_FAULT=point:nth:action[,point:nth:action...]. A malformed entry is
 * reported on stderr and ignored: a test that meant to crash must not pass
 * because its point name was misspelt. */
static void parse_env_entry(const char *s, size_t len)
{
    const char *c1 = memchr(s, ':', len);
    const char *c2 = c1 ? memchr(c1 + 1, ':', len - (size_t)(c1 + 1 - s)) : NULL;
    int id = c1 ? point_id(s, (size_t)(c1 - s)) : -1;
    char *end = NULL;
    unsigned long long nth = c2 ? strtoull(c1 + 1, &end, 10) : 0;
    unsigned action = 0;
    if (c2 && end == c2) {
        size_t alen = len - (size_t)(c2 + 1 - s);
        const char *a = c2 + 1;
        if (alen == 4 && memcmp(a, "kill", 4) == 0) action = SHR_FAULT_KILL;
        if (alen == 4 && memcmp(a, "stop", 4) == 0) action = SHR_FAULT_STOP;
        if (alen == 4 && memcmp(a, "fail", 4) == 0) action = SHR_FAULT_FAIL;
    }
    if (id < 0 || nth == 0 || action == 0) {
        fprintf(stderr, "sharena: SHARENA_FAULT: ignoring \"%.*s\" (want point:nth:kill|stop|fail)\n",
                (int)len, s);
        return;
    }
    arm(id, nth, action);
}

__attribute__((constructor)) static void fault_from_env(void)
{
    const char *env = getenv("SHARENA_FAULT");
    if (!env || !*env) return;
    while (*env) {
        const char *comma = strchr(env, ',');
        size_t len = comma ? (size_t)(comma - env) : strlen(env);
        if (len) parse_env_entry(env, len);
        env += len + (comma ? 1 : 0);
    }
}

#else /* SHR_DEBUG == 0: points are compiled out */

int shr_fault_arm(const char *point, uint64_t nth, shr_fault_action_t action)
{
    (void)point, (void)nth, (void)action;
    return -ENOSYS;
}
int shr_fault_disarm(const char *point)
{
    (void)point;
    return -ENOSYS;
}
int64_t shr_fault_hits(const char *point)
{
    (void)point;
    return -ENOSYS;
}
int shr_fault_available(void) { return 0; }

#endif
