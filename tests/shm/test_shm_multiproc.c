/* shm across processes: exec'd peers at other addresses, liveness of dead,
 * zombie, exec'd and forked processes, a peer killed holding a lock. */
#include <criterion/criterion.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <dirent.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "shm.h"

static void fini(void) { shr_test_cleanup(); }
TestSuite(shm_multiproc, .fini = fini, .timeout = 120);

static shr_heap_t *make_heap(unsigned flags)
{
    shr_heap_options_t o;
    shr_heap_t *h;
    shr_heap_options_init(&o);
    o.flags = flags;
    cr_assert_eq(shr_heap_create(shr_test_name(), &o, &h), 0);
    return h;
}

/* Exec the peer with its stdout on a pipe; returns the pid, *out the pipe. */
static pid_t spawn_peer(FILE **out, const char *a1, const char *a2, const char *a3)
{
    int fd[2];
    cr_assert_eq(pipe(fd), 0);
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL); /* never outlive a failed test */
        dup2(fd[1], 1);
        close(fd[0]);
        close(fd[1]);
        execl(shr_test_peer_path(), shr_test_peer_path(), a1, a2, a3, (char *)NULL);
        _exit(127);
    }
    close(fd[1]);
    *out = fdopen(fd[0], "r");
    return pid;
}

static void expect_line(FILE *f, const char *want)
{
    char line[128];
    cr_assert_not_null(fgets(line, sizeof line, f), "peer said nothing (wanted %s)", want);
    line[strcspn(line, "\n")] = 0;
    cr_assert_str_eq(line, want);
}

static int count_alive(const char *name, int *dead)
{
    shr_proc_info_t procs[SHR_DEFAULT_MAX_PROCS];
    size_t n = 0;
    int alive = 0;
    cr_assert_eq(shr_heap_inspect(name, NULL, procs, SHR_DEFAULT_MAX_PROCS, &n), 0);
    *dead = 0;
    for (size_t i = 0; i < n; i++) procs[i].alive ? alive++ : (*dead)++;
    return alive;
}

Test(shm_multiproc, exec_peer_sees_writes_through_offsets)
{
    shr_heap_t *h = make_heap(0);
    const char *name = shr_heap_name(h);
    uint64_t off = h->hdr->meta_size;
    cr_assert_eq(shr__seg_commit(h, off, SHR_CHUNK_SIZE), 0);
    *(_Atomic uint64_t *)shr_ptr(h, off) = 0x1234abcdULL;
    char offs[32];
    snprintf(offs, sizeof offs, "%llu", (unsigned long long)off);
    cr_assert_eq(shr_test_run_peer("read", name, offs, "0x1234abcd", NULL), 0);
    cr_assert_eq(shr_test_run_peer("read", name, offs, "0x1", NULL), 1, "the check can fail");
    snprintf(offs, sizeof offs, "%llu", (unsigned long long)off + 8);
    cr_assert_eq(shr_test_run_peer("write", name, offs, "777", NULL), 0);
    cr_assert_eq(*(_Atomic uint64_t *)shr_ptr(h, off + 8), 777);

    /* The peer's mapping is elsewhere: only offsets could have carried this. */
    FILE *f;
    pid_t pid = spawn_peer(&f, "base", name, NULL);
    char line[64];
    expect_line(f, "ready");
    cr_assert_not_null(fgets(line, sizeof line, f));
    fclose(f);
    cr_assert_eq(shr_test_wait(pid), 0);
    void *theirs = NULL;
    sscanf(line, "%p", &theirs);
    FILE *aslr = fopen("/proc/sys/kernel/randomize_va_space", "r");
    int randomized = aslr ? fgetc(aslr) != '0' : 1;
    if (aslr) fclose(aslr);
    if (randomized) cr_assert_neq(theirs, shr_ptr(h, 1), "exec'd peer mapped at our address");
    shr_heap_close(h);
}

Test(shm_multiproc, killed_peer_is_detected_and_reclaimed)
{
    shr_heap_t *h = make_heap(0);
    const char *name = shr_heap_name(h);
    FILE *f;
    pid_t pid = spawn_peer(&f, "hold", name, "0");
    expect_line(f, "ready");
    expect_line(f, "held");
    int dead;
    cr_assert_eq(count_alive(name, &dead), 2);
    shr_heap_info_t info;
    cr_assert_eq(shr_heap_stat(h, &info, NULL, 0, NULL), 0);
    cr_assert_eq(info.nthreads, 1, "the peer's main thread holds a slot (its other exited)");
    kill(pid, SIGKILL);
    /* Still a zombie: not reaped yet. The entry is dead all the same. */
    shr_test_sleep_ms(50);
    cr_assert_eq(count_alive(name, &dead), 1);
    cr_assert_eq(dead, 1);
    cr_assert_eq(kill(pid, 0), 0, "the zombie's pid still exists");
    cr_assert_eq(shr_test_wait(pid), 128 + SIGKILL);
    fclose(f);
    cr_assert_eq(shr_heap_recover(h), 2, "one process entry and its thread slot");
    cr_assert_eq(count_alive(name, &dead), 1);
    cr_assert_eq(dead, 0, "the entry was reclaimed");
    cr_assert_eq(shr_heap_stat(h, &info, NULL, 0, NULL), 0);
    cr_assert_eq(info.nthreads, 0);
    shr_heap_close(h);
}

Test(shm_multiproc, peer_killed_holding_registry_lock)
{
    shr_heap_t *h = make_heap(0);
    const char *name = shr_heap_name(h);
    char id[8];
    snprintf(id, sizeof id, "%d", SHR_LOCK_REGISTRY);
    FILE *f;
    pid_t pid = spawn_peer(&f, "lock", name, id);
    expect_line(f, "ready");
    expect_line(f, "locked");
    kill(pid, SIGKILL);
    cr_assert_eq(shr_test_wait(pid), 128 + SIGKILL);
    fclose(f);
    /* The registry lock comes back EOWNERDEAD, is repaired, and the dead
     * peer's entry is reclaimed by the repair's sweep. */
    cr_assert_geq(shr_heap_recover(h), 0);
    cr_assert_eq(h->hdr->locks[SHR_LOCK_REGISTRY].nrepaired, 1);
    int dead;
    cr_assert_eq(count_alive(name, &dead), 1);
    cr_assert_eq(dead, 0);
    cr_assert_eq(shr_test_run_peer("attach", name, NULL), 0, "others can still attach");
    shr_heap_close(h);
}

static int child_execs(void *arg)
{
    shr_heap_t *h = arg;
    /* Use the heap: the fork child registers an entry of its own. */
    if (!shr__tctx(h)) return 1;
    execl("/bin/sleep", "sleep", "30", (char *)NULL);
    return 2;
}

Test(shm_multiproc, exec_ends_the_attachment)
{
    shr_heap_t *h = make_heap(0);
    const char *name = shr_heap_name(h);
    shr__tctx(h);
    pid_t pid = shr_test_fork(child_execs, h);
    /* The child registers, then execs: its pid lives on but its entry dies. */
    int dead = 0, tries = 0;
    while (dead == 0 && tries++ < 200) {
        count_alive(name, &dead);
        shr_test_sleep_ms(10);
    }
    cr_assert_eq(dead, 1, "exec'd child still counted alive");
    cr_assert_eq(kill(pid, 0), 0, "the exec'd process is running");
    kill(pid, SIGKILL);
    shr_test_wait(pid);
    shr_heap_close(h);
}

static int child_uses_and_closes(void *arg)
{
    shr_heap_t *h = arg;
    shr_tctx_t *c = shr__tctx(h);
    if (!c) return 1;
    if (h->proc == 0 && h->procs[0].pid != getpid()) return 2;
    shr_proc_info_t procs[8];
    size_t n = 0;
    if (shr_heap_stat(h, NULL, procs, 8, &n) != 0 || n != 2) return 3;
    int mine = 0;
    for (size_t i = 0; i < n; i++) mine += procs[i].pid == getpid() && procs[i].alive;
    if (mine != 1) return 4;
    shr_heap_close(h);
    return 0;
}

Test(shm_multiproc, fork_child_gets_its_own_entry)
{
    shr_heap_t *h = make_heap(0);
    shr_tctx_t *c = shr__tctx(h);
    cr_assert_not_null(c);
    uint32_t my_proc = h->proc;
    cr_assert_eq(shr_test_wait(shr_test_fork(child_uses_and_closes, h)), 0);
    /* The child's close did not touch our entry. */
    cr_assert_eq(h->proc, my_proc);
    cr_assert_eq(h->procs[my_proc].state, SHR_ENTRY_LIVE);
    int dead;
    cr_assert_eq(count_alive(shr_heap_name(h), &dead), 1);
    cr_assert_eq(dead, 0);
    cr_assert_eq(shr__tctx(h), c);
    shr_heap_close(h);
}

static int child_closes_unused(void *arg)
{
    /* A fork child that never used the heap closes it: the parent's entry
     * must survive. */
    return shr_heap_close(arg) == 0 ? 0 : 1;
}

Test(shm_multiproc, fork_child_close_leaves_parent_entry)
{
    shr_heap_t *h = make_heap(0);
    cr_assert_eq(shr_test_wait(shr_test_fork(child_closes_unused, h)), 0);
    int dead;
    cr_assert_eq(count_alive(shr_heap_name(h), &dead), 1);
    shr_heap_close(h);
}

Test(shm_multiproc, unlink_when_the_last_other_is_found_dead)
{
    shr_heap_t *h = make_heap(SHR_HEAP_UNLINK_ON_LAST_CLOSE);
    char name[SHR_NAME_MAX + 1];
    snprintf(name, sizeof name, "%s", shr_heap_name(h));
    FILE *f;
    pid_t pid = spawn_peer(&f, "hold", name, "0");
    expect_line(f, "ready");
    kill(pid, SIGKILL);
    shr_test_wait(pid);
    fclose(f);
    shr_heap_close(h);
    shr_heap_t *again;
    cr_assert_eq(shr_heap_attach(name, &again), -ENOENT, "the dead peer kept the name alive");
}

Test(shm_multiproc, no_unlink_while_another_lives)
{
    shr_heap_t *h = make_heap(SHR_HEAP_UNLINK_ON_LAST_CLOSE);
    char name[SHR_NAME_MAX + 1];
    snprintf(name, sizeof name, "%s", shr_heap_name(h));
    /* An attached process exiting, or an unrelated one, never unlinks. */
    cr_assert_eq(shr_test_run_peer("attach", name, NULL), 0);
    FILE *f;
    pid_t pid = spawn_peer(&f, "hold", name, "0");
    expect_line(f, "ready");
    shr_heap_close(h);
    shr_heap_t *again;
    cr_assert_eq(shr_heap_attach(name, &again), 0, "a live peer still uses the heap");
    kill(pid, SIGKILL);
    shr_test_wait(pid);
    fclose(f);
    shr_heap_close(again);
    cr_assert_eq(shr_heap_attach(name, &again), -ENOENT);
}

/* ---- one anchor for every heap of a process: liveness stays exact -------- */

typedef struct {
    char names[3][SHR_NAME_MAX + 1];
    shr_test_gate_t ready;
} three_t;

static int attach_three_close_one(void *arg)
{
    three_t *t = arg;
    shr_heap_t *h[3];
    for (int i = 0; i < 3; i++)
        if (shr_heap_attach(t->names[i], &h[i]) != 0) return 1;
    if (shr_heap_close(h[1]) != 0) return 2;
    shr_test_gate_open(&t->ready);
    pause(); /* until killed */
    return 3;
}

Test(shm_multiproc, one_anchor_for_many_heaps_keeps_liveness_exact)
{
    three_t t;
    shr_heap_t *h[3];
    for (int i = 0; i < 3; i++) {
        h[i] = make_heap(0);
        snprintf(t.names[i], sizeof t.names[i], "%s", shr_heap_name(h[i]));
    }
    shr_test_gate_init(&t.ready);
    pid_t pid = shr_test_fork(attach_three_close_one, &t);
    cr_assert(shr_test_gate_wait(&t.ready, 10000));
    int dead;
    cr_assert_eq(count_alive(t.names[0], &dead), 2);
    cr_assert_eq(count_alive(t.names[1], &dead), 1, "the closed attachment is gone");
    cr_assert_eq(dead, 0);
    cr_assert_eq(count_alive(t.names[2], &dead), 2, "the anchor holds every other heap");
    kill(pid, SIGKILL);
    cr_assert_eq(shr_test_wait(pid), 128 + SIGKILL);
    for (int i = 0; i < 3; i += 2) {
        cr_assert_eq(count_alive(t.names[i], &dead), 1);
        cr_assert_eq(dead, 1, "heap %d: the killed process reads as dead", i);
        cr_assert_eq(shr_heap_recover(h[i]), 1, "and is reclaimed");
    }
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(shr_heap_check(h[i]), 0);
        shr_heap_close(h[i]);
    }
}

/* ---- a live holder that never lets go ------------------------------------ */

static int lock_then_stop(void *arg)
{
    shr_heap_t *b;
    if (shr_heap_attach(arg, &b) != 0) return 1;
    if (shr__lock(b, SHR_LOCK_REGISTRY) != 0) return 2;
    raise(SIGSTOP); /* a live holder that makes no progress */
    shr__unlock(b, SHR_LOCK_REGISTRY);
    shr_heap_close(b);
    return 0;
}

Test(shm_multiproc, stopped_holder_makes_waiters_time_out)
{
    shr_heap_options_t o;
    shr_heap_t *h;
    shr_heap_options_init(&o);
    o.lock_timeout_ms = 300;
    cr_assert_eq(shr_heap_create(shr_test_name(), &o, &h), 0);
    char name[SHR_NAME_MAX + 1];
    snprintf(name, sizeof name, "%s", shr_heap_name(h));
    pid_t pid = shr_test_fork(lock_then_stop, name);
    int st;
    cr_assert_eq(waitpid(pid, &st, WUNTRACED), pid);
    cr_assert(WIFSTOPPED(st));
    shr_heap_t *b = NULL;
    cr_assert_eq(shr_heap_attach(name, &b), SHR_ELOCKTIMEOUT);
    cr_assert_eq(shr_heap_check(h), SHR_ELOCKTIMEOUT);
    /* Info names the lock and its holder: alive, with its pid. */
    shr_heap_info_t info;
    cr_assert_eq(shr_heap_inspect(name, &info, NULL, 0, NULL), 0);
    shr_lock_info_t *li = &info.locks[SHR_LOCK_REGISTRY];
    cr_assert(li->held);
    cr_assert_not(li->holder_dead);
    cr_assert_eq(li->holder_pid, pid);
    cr_assert_eq(li->holder_alive, 1);
    cr_assert_neq(li->holder_index, 0);
    cr_assert_eq(li->ntimeouts, 2);
    cr_assert_eq(li->last_timeout_pid, getpid());
    cr_assert_eq(li->last_timeout_holder_index, li->holder_index);
    kill(pid, SIGCONT);
    cr_assert_eq(shr_test_wait(pid), 0);
    cr_assert_eq(shr_heap_attach(name, &b), 0, "once released, the lock is taken");
    shr_heap_close(b);
    cr_assert_eq(shr_heap_check(h), 0);
    shr_heap_close(h);
}

/* ---- limits beyond the old fixed tables ------------------------------------ */

typedef struct {
    const char *name;
    shr_test_gate_t go;
} many_t;

static int attach_and_wait(void *arg)
{
    many_t *m = arg;
    shr_heap_t *b;
    if (shr_heap_attach(m->name, &b) != 0) return 1;
    void *p = shr_malloc(b, 64);
    if (!p) return 2;
    shr_test_gate_wait(&m->go, 60000);
    shr_free(b, p);
    shr_heap_close(b);
    return 0;
}

Test(shm_multiproc, two_hundred_processes_beyond_the_old_limit, .timeout = 240)
{
    enum { N = 200 };
    shr_heap_options_t o;
    shr_heap_t *h;
    shr_heap_options_init(&o);
    o.max_procs = N + 1;
    cr_assert_eq(shr_heap_create(shr_test_name(), &o, &h), 0);
    many_t m = {.name = shr_heap_name(h)};
    shr_test_gate_init(&m.go);
    pid_t pids[N];
    for (int i = 0; i < N; i++) pids[i] = shr_test_fork(attach_and_wait, &m);
    shr_heap_info_t info;
    for (int tries = 0; tries < 600; tries++) {
        cr_assert_eq(shr_heap_stat(h, &info, NULL, 0, NULL), 0);
        if (info.nprocs == N + 1) break;
        shr_test_sleep_ms(50);
    }
    cr_assert_eq(info.nprocs, N + 1, "every worker attached at once");
    shr_heap_t *extra = NULL;
    cr_assert_eq(shr_heap_attach(m.name, &extra), SHR_EPROCS);
    for (int i = 0; i < N; i++) shr_test_gate_open(&m.go); /* one byte per worker */
    for (int i = 0; i < N; i++) cr_assert_eq(shr_test_wait(pids[i]), 0);
    cr_assert_eq(shr_heap_check(h), 0);
    shr_heap_close(h);
}

/* ---- crashes at the registry's commit points (fault points) --------------- */

typedef struct {
    const char *name;
    const char *point;
    shr_fault_action_t action;
    int use; /* 0 attach, 1 attach then allocate */
} faulty_t;

static int attach_with_fault(void *arg)
{
    faulty_t *f = arg;
    shr_heap_t *b;
    if (f->use == 0 && shr_fault_arm(f->point, 1, f->action) != 0) return 10;
    int rc = shr_heap_attach(f->name, &b);
    if (rc) return 1;
    if (f->use == 1) {
        if (shr_fault_arm(f->point, 1, f->action) != 0) return 10;
        if (shr_malloc(b, 32) == NULL) return 2;
    }
    return 3; /* the point should have fired */
}

static void expect_registry_whole_after(shr_heap_t *h, int alive, uint64_t repaired)
{
    cr_assert_geq(shr_heap_recover(h), 0);
    cr_assert_eq(h->hdr->locks[SHR_LOCK_REGISTRY].nrepaired, repaired, "the dead holder's lock was repaired");
    cr_assert_eq(shr_heap_check_report(h, stderr), 0);
    int dead;
    cr_assert_eq(count_alive(shr_heap_name(h), &dead), alive);
    cr_assert_eq(dead, 0);
    shr_heap_t *b;
    cr_assert_eq(shr_heap_attach(shr_heap_name(h), &b), 0);
    void *p = shr_malloc(b, 48);
    cr_assert_not_null(p);
    shr_free(b, p);
    shr_heap_close(b);
    cr_assert_eq(shr_heap_check(h), 0);
}

static void expect_registry_whole(shr_heap_t *h, int alive) { expect_registry_whole_after(h, alive, 1); }

Test(shm_multiproc, killed_while_claiming_an_entry)
{
    if (!shr_fault_available()) cr_skip_test("fault points compiled out");
    shr_heap_t *h = make_heap(0);
    faulty_t f = {shr_heap_name(h), "registry.proc.claim", SHR_FAULT_KILL, 0};
    cr_assert_eq(shr_test_wait(shr_test_fork(attach_with_fault, &f)), 128 + SIGKILL);
    expect_registry_whole(h, 1);
    shr_heap_close(h);
}

Test(shm_multiproc, killed_while_claiming_a_slot)
{
    if (!shr_fault_available()) cr_skip_test("fault points compiled out");
    shr_heap_t *h = make_heap(0);
    faulty_t f = {shr_heap_name(h), "registry.slot.claim", SHR_FAULT_KILL, 1};
    cr_assert_eq(shr_test_wait(shr_test_fork(attach_with_fault, &f)), 128 + SIGKILL);
    expect_registry_whole(h, 1);
    shr_heap_close(h);
}

Test(shm_multiproc, killed_in_the_middle_of_a_reclaim)
{
    if (!shr_fault_available()) cr_skip_test("fault points compiled out");
    shr_heap_t *h = make_heap(0);
    const char *name = shr_heap_name(h);
    /* A peer that dies with slots of its own, for the next sweep to reclaim. */
    FILE *out;
    pid_t peer = spawn_peer(&out, "hold", name, "0");
    expect_line(out, "ready");
    expect_line(out, "held");
    kill(peer, SIGKILL);
    shr_test_wait(peer);
    fclose(out);
    /* An attacher's reclaim step (at its first allocation) dies after
     * releasing the peer's slots, before marking its entry FREE: outside the
     * registry lock, the entry RECLAIM and named as the dead attacher's. */
    faulty_t f = {name, "registry.reclaim", SHR_FAULT_KILL, 1}; /* the step of its slot claim */
    cr_assert_eq(shr_test_wait(shr_test_fork(attach_with_fault, &f)), 128 + SIGKILL);
    uint32_t reclaiming = 0;
    for (uint32_t p = 0; p < h->max_procs; p++)
        if (h->procs[p].state == SHR_ENTRY_RECLAIM) {
            reclaiming++;
            cr_assert_neq(shr_load_relaxed(&h->procs[p].reclaimer), 0, "named as the attacher's");
        }
    cr_assert_eq(reclaiming, 1, "the peer's entry was being reclaimed");
    /* The next step sees its reclaimer dead and takes it over; the registry
     * lock was never held by the dead. */
    expect_registry_whole_after(h, 1, 0);
    for (uint32_t p = 0; p < h->max_procs; p++) cr_assert_neq(h->procs[p].state, SHR_ENTRY_RECLAIM);
    shr_heap_close(h);
}

/* ---- reclaim in steps: an attach does not pay for every death -------------- */

typedef struct {
    const char *name;
    shr_test_gate_t ready;
} holder_t;

/* Attach, take pools of many classes, say so, wait to be killed. */
static int hold_pools_and_wait(void *arg)
{
    holder_t *m = arg;
    shr_heap_t *b;
    if (shr_heap_attach(m->name, &b) != 0) return 1;
    for (size_t n = 16; n <= 4096; n += 16)
        if (!shr_malloc(b, n)) return 2;
    shr_test_gate_open(&m->ready);
    pause();
    return 3;
}

static void kill_holders(const char *name, int n)
{
    holder_t m = {.name = name};
    shr_test_gate_init(&m.ready);
    pid_t pids[16];
    cr_assert_leq(n, 16);
    for (int i = 0; i < n; i++) {
        pids[i] = shr_test_fork(hold_pools_and_wait, &m);
        cr_assert(shr_test_gate_wait(&m.ready, 10000), "holder %d ready", i);
    }
    for (int i = 0; i < n; i++) {
        kill(pids[i], SIGKILL);
        cr_assert_eq(shr_test_wait(pids[i]), 128 + SIGKILL);
    }
}

static int attach_and_close(void *arg)
{
    shr_heap_t *b;
    if (shr_heap_attach(arg, &b) != 0) return 1;
    shr_heap_close(b);
    return 0;
}

/* Attach (no reclaim), count the dead still there, allocate (a slot claim:
 * one step), close (one step). Exit code: the dead seen after the attach. */
static int attach_use_close(void *arg)
{
    shr_heap_t *b;
    if (shr_heap_attach(arg, &b) != 0) return 100;
    shr_proc_info_t procs[SHR_DEFAULT_MAX_PROCS];
    size_t n = 0;
    if (shr_heap_inspect(arg, NULL, procs, SHR_DEFAULT_MAX_PROCS, &n) != 0) return 101;
    int dead = 0;
    for (size_t i = 0; i < n; i++) dead += !procs[i].alive;
    void *p = shr_malloc(b, 64);
    if (!p) return 102;
    shr_free(b, p);
    shr_heap_close(b);
    return dead;
}

Test(shm_multiproc, attach_reclaims_the_dead_in_bounded_steps)
{
    shr_heap_t *h = make_heap(0);
    const char *name = shr_heap_name(h);
    kill_holders(name, 6);
    int dead;
    cr_assert_eq(count_alive(name, &dead), 1);
    cr_assert_eq(dead, 6);
    /* Another process attaches (no step), allocates (a slot claim: one step)
     * and closes (one step): two of the six. */
    cr_assert_eq(shr_test_wait(shr_test_fork(attach_use_close, (void *)name)), 6, "an attach reclaims none");
    cr_assert_eq(count_alive(name, &dead), 1);
    cr_assert_eq(dead, 6 - 2 * (int)SHR__RECLAIM_STEPS, "a slot claim and a close reclaim a bounded share");
    /* Their pools are still theirs until reclaimed, and that is sound. */
    cr_assert_eq(shr_heap_check_report(h, stderr), 0, "check reclaims the rest, in steps");
    cr_assert_eq(count_alive(name, &dead), 1);
    cr_assert_eq(dead, 0);
    shr_alloc_stats_t st;
    cr_assert_eq(shr_heap_stats(h, &st), 0);
    cr_assert_eq(st.dead_threads, 6, "each dead peer's slot reclaimed once");
    cr_assert_eq(h->hdr->locks[SHR_LOCK_REGISTRY].nrepaired, 0);
    shr_heap_close(h);
}

Test(shm_multiproc, a_full_registry_reclaims_the_dead_at_once)
{
    /* Every entry but ours held by the dead: the claim cannot wait for steps. */
    shr_heap_options_t o;
    shr_heap_options_init(&o);
    o.max_procs = 4;
    o.capacity = 64u << 20;
    shr_heap_t *h;
    cr_assert_eq(shr_heap_create(shr_test_name(), &o, &h), 0);
    const char *name = shr_heap_name(h);
    kill_holders(name, 3);
    int dead;
    cr_assert_eq(count_alive(name, &dead), 1);
    cr_assert_eq(dead, 3);
    cr_assert_eq(shr_test_wait(shr_test_fork(attach_and_close, (void *)name)), 0, "an entry was found");
    cr_assert_eq(count_alive(name, &dead), 1);
    cr_assert_eq(dead, 1, "one reclaimed under the lock to make room, one by the close's step");
    cr_assert_eq(shr_heap_recover(h), 2, "the last: its entry and its slot");
    cr_assert_eq(shr_heap_check_report(h, stderr), 0);
    shr_alloc_stats_t st;
    cr_assert_eq(shr_heap_stats(h, &st), 0);
    cr_assert_eq(st.dead_threads, 3);
    shr_heap_close(h);
}

Test(shm_multiproc, unlink_decision_failing_keeps_the_name)
{
    if (!shr_fault_available()) cr_skip_test("fault points compiled out");
    shr_heap_t *h = make_heap(SHR_HEAP_UNLINK_ON_LAST_CLOSE);
    char name[SHR_NAME_MAX + 1];
    snprintf(name, sizeof name, "%s", shr_heap_name(h));
    cr_assert_eq(shr_fault_arm("registry.unlink", 1, SHR_FAULT_FAIL), 0);
    shr_heap_close(h);
    cr_assert_eq(shr_fault_hits("registry.unlink"), 1);
    cr_assert_eq(shr_heap_attach(name, &h), 0, "the name was kept");
    shr_heap_close(h);
    cr_assert_eq(shr_heap_attach(name, &h), -ENOENT, "the next last close removes it");
}

/* ---- past one anchor's share: a second anchor, liveness still exact ------- */

enum { MANY = 1030 };
typedef struct {
    char names[MANY][40];
    shr_test_gate_t ready;
} many_heaps_t;

static int create_many_and_wait(void *arg)
{
    many_heaps_t *m = arg;
    shr_heap_options_t o;
    shr_heap_options_init(&o);
    o.max_procs = 2;
    o.max_threads = 2;
    o.capacity = 1u << 20;
    for (int i = 0; i < MANY; i++) {
        shr_heap_t *h;
        if (shr_heap_create(m->names[i], &o, &h) != 0) return 1;
    }
    shr_test_gate_open(&m->ready);
    pause();
    return 2;
}

static int count_tasks(pid_t pid)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/task", (int)pid);
    DIR *d = opendir(path);
    int n = 0;
    cr_assert_not_null(d);
    for (struct dirent *e; (e = readdir(d));) n += e->d_name[0] != '.';
    closedir(d);
    return n;
}

Test(shm_multiproc, a_second_anchor_past_1024_heaps, .timeout = 240)
{
    many_heaps_t *m = mmap(NULL, sizeof *m, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    cr_assert_neq(m, MAP_FAILED);
    for (int i = 0; i < MANY; i++) snprintf(m->names[i], sizeof m->names[i], "%s", shr_test_name());
    shr_test_gate_init(&m->ready);
    pid_t pid = shr_test_fork(create_many_and_wait, m);
    cr_assert(shr_test_gate_wait(&m->ready, 200000), "the child created its heaps");
    cr_assert_eq(count_tasks(pid), 3, "the main thread and two anchors (1024 + 6 heaps)");
    int dead;
    const int probe[] = {0, 1023, 1024, MANY - 1};
    for (int i = 0; i < 4; i++) {
        cr_assert_eq(count_alive(m->names[probe[i]], &dead), 1, "heap %d", probe[i]);
        cr_assert_eq(dead, 0);
    }
    kill(pid, SIGKILL);
    cr_assert_eq(shr_test_wait(pid), 128 + SIGKILL);
    for (int i = 0; i < 4; i++) {
        cr_assert_eq(count_alive(m->names[probe[i]], &dead), 0, "heap %d", probe[i]);
        cr_assert_eq(dead, 1, "heap %d: its creator reads as dead, whichever anchor held it", probe[i]);
    }
    for (int i = 0; i < MANY; i++) shr_heap_unlink(m->names[i]);
    munmap(m, sizeof *m);
}
