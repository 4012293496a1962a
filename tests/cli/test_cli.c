/* The sharena command-line tool, run as a user would run it: the built
 * binary (SHR_CLI_PATH) is exec'd with its stdout and stderr captured, and
 * its exit status, its output and the objects in /dev/shm are checked. */
#include <criterion/criterion.h>
#include <pthread.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "cr_heap.h"

/* Names the harness does not hand out (temporary-object names), removed by
 * the suite's fini as shr_test_cleanup() removes the others. */
static char extra_names[8][64];
static int nextra;

static void fini(void)
{
    shr_test_cleanup();
    for (int i = 0; i < nextra; i++) shm_unlink(extra_names[i]);
}
TestSuite(cli, .fini = fini, .timeout = 60);

/* ---- running the tool ------------------------------------------------- */

typedef struct cli_run {
    int status;   /* exit status, or 128 + signal */
    char *out;    /* stdout, NUL-terminated */
    char *err;    /* stderr */
} cli_run_t;

static char *slurp(FILE *f)
{
    long len;
    cr_assert_eq(fseek(f, 0, SEEK_END), 0);
    cr_assert_geq(len = ftell(f), 0);
    rewind(f);
    char *s = malloc((size_t)len + 1);
    cr_assert_not_null(s);
    cr_assert_eq(fread(s, 1, (size_t)len, f), (size_t)len);
    s[len] = '\0';
    fclose(f);
    return s;
}

/* Run the tool with the NULL-terminated arguments; see CLI(). */
static cli_run_t run_cli(const char *arg0, ...)
{
    const char *argv[16];
    int n = 0;
    va_list ap;
    argv[n++] = SHR_CLI_PATH;
    va_start(ap, arg0);
    for (const char *a = arg0; a && n < 15; a = va_arg(ap, const char *)) argv[n++] = a;
    va_end(ap);
    argv[n] = NULL;

    FILE *out = tmpfile(), *err = tmpfile();
    cr_assert(out && err);
    fflush(NULL);
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        dup2(fileno(out), 1);
        dup2(fileno(err), 2);
        execv(argv[0], (char *const *)argv);
        _exit(127);
    }
    cli_run_t r = {.status = shr_test_wait(pid)};
    r.out = slurp(out);
    r.err = slurp(err);
    return r;
}
#define CLI(...) run_cli(__VA_ARGS__, (const char *)NULL)

static void cli_free(cli_run_t *r)
{
    free(r->out);
    free(r->err);
}

/* The line of ls output (a copy in buf) that lists name, or NULL. When next
 * is not NULL it receives the line after it ("" at the end). */
static char *ls_line(const char *out, const char *name, char *buf, size_t size, char *next,
                     size_t next_size)
{
    size_t len = strlen(name);
    for (const char *p = out; *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : p + strlen(p)) {
        if (strncmp(p, name, len) != 0 || p[len] != ' ') continue;
        const char *end = strchr(p, '\n');
        size_t n = end ? (size_t)(end - p) : strlen(p);
        snprintf(buf, size, "%.*s", (int)n, p);
        if (next) {
            const char *q = end ? end + 1 : p + n;
            const char *qe = strchr(q, '\n');
            snprintf(next, next_size, "%.*s", (int)(qe ? (size_t)(qe - q) : strlen(q)), q);
        }
        return buf;
    }
    return NULL;
}

/* ---- helpers ---------------------------------------------------------- */

static bool shm_exists(const char *name)
{
    char path[600];
    snprintf(path, sizeof path, "/dev/shm/%s", name);
    return access(path, F_OK) == 0;
}

static void make_object(const char *name, off_t size)
{
    unsigned char junk[4096];
    for (size_t i = 0; i < sizeof junk; i++) junk[i] = (unsigned char)(i * 131 + 7);
    int fd = shm_open(name, O_RDWR | O_CREAT | O_EXCL, 0600);
    cr_assert_geq(fd, 0, "shm_open %s: %s", name, strerror(errno));
    cr_assert_eq(ftruncate(fd, size), 0);
    cr_assert_eq(pwrite(fd, junk, sizeof junk, 0), (ssize_t)sizeof junk);
    close(fd);
}

static const char *extra_name(const char *fmt, int pid)
{
    cr_assert_lt(nextra, 8);
    char *s = extra_names[nextra++];
    snprintf(s, sizeof extra_names[0], fmt, pid, (unsigned)getpid());
    return s;
}

static int exit_at_once(void *arg)
{
    (void)arg;
    return 0;
}

/* Attach and exit without detaching: the entry stays, dead. */
static int attach_and_die(void *arg)
{
    shr_heap_t *h;
    return shr_heap_attach(arg, &h) == 0 ? 0 : 1;
}

/* ---- help and usage ---------------------------------------------------- */

static const char *commands[] = {"create", "ls", "info", "rm", "stats", "check", "gc", "recover", "help"};

Test(cli, main_help_and_version)
{
    cli_run_t r = CLI("--help");
    cr_assert_eq(r.status, 0);
    cr_assert(strstr(r.out, "usage: sharena COMMAND"), "%s", r.out);
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++) {
        char line[64];
        snprintf(line, sizeof line, "\n  %s ", commands[i]);
        cr_assert(strstr(r.out, line), "--help lists %s:\n%s", commands[i], r.out);
    }
    cr_assert_str_empty(r.err);
    cli_free(&r);

    char want[64];
    snprintf(want, sizeof want, "sharena %d.%d.%d\n", SHR_VERSION_MAJOR, SHR_VERSION_MINOR,
             SHR_VERSION_PATCH);
    r = CLI("--version");
    cr_assert_eq(r.status, 0);
    cr_assert_str_eq(r.out, want);
    cli_free(&r);
}

Test(cli, every_command_has_help)
{
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++) {
        const char *c = commands[i];
        char usage[64];
        snprintf(usage, sizeof usage, "usage: sharena %s", c);
        cli_run_t runs[3] = {CLI(c, "--help"), CLI(c, "-h"), CLI("help", c)};
        for (int k = 0; k < 3; k++) {
            cr_assert_eq(runs[k].status, 0, "%s help, form %d", c, k);
            cr_assert(strstr(runs[k].out, usage) == runs[k].out, "%s:\n%s", c, runs[k].out);
            cr_assert(strstr(runs[k].out, "--help"), "options listed for %s", c);
            cr_assert_str_empty(runs[k].err);
        }
        cr_assert_str_eq(runs[0].out, runs[2].out, "'%s --help' is 'help %s'", c, c);
        for (int k = 0; k < 3; k++) cli_free(&runs[k]);
    }
    /* --help wins over a missing operand and over other options. */
    cli_run_t r = CLI("create", "--capacity", "1G", "--help");
    cr_assert_eq(r.status, 0);
    cli_free(&r);
}

/* Exit 2, a message naming the problem and a usage line on stderr, nothing
 * on stdout. */
static void expect_usage_error(cli_run_t r, const char *what)
{
    cr_assert_eq(r.status, 2, "exit status for %s (stderr: %s)", what, r.err);
    cr_assert(strstr(r.err, what), "stderr names %s:\n%s", what, r.err);
    cr_assert(strstr(r.err, "usage: sharena"), "short usage on stderr:\n%s", r.err);
    cr_assert_str_empty(r.out);
    cli_free(&r);
}

Test(cli, usage_errors_exit_2)
{
    char name[64];
    snprintf(name, sizeof name, "%s", shr_test_name());
    expect_usage_error(CLI(NULL), "missing command");
    expect_usage_error(CLI("frobnicate"), "unknown command 'frobnicate'");
    expect_usage_error(CLI("--frobnicate"), "unknown option '--frobnicate'");
    expect_usage_error(CLI("info"), "missing NAME");
    expect_usage_error(CLI("rm"), "missing NAME");
    expect_usage_error(CLI("create"), "missing NAME");
    expect_usage_error(CLI("info", name, "extra"), "unexpected argument 'extra'");
    expect_usage_error(CLI("ls", "--bogus"), "unknown option '--bogus'");
    expect_usage_error(CLI("rm", "-x", name), "unknown option '-x'");
    expect_usage_error(CLI("help", "frobnicate"), "unknown command 'frobnicate'");
    expect_usage_error(CLI("create", name, "--capacity"), "needs an argument");
    expect_usage_error(CLI("create", name, "--guards=yes"), "takes no argument");
    const char *bad_sizes[] = {"12Q", "abc", "", "-5", "1.5G", "1 G", "1GB", "0", "2T",
                               "99999999999999999999"};
    for (size_t i = 0; i < sizeof bad_sizes / sizeof bad_sizes[0]; i++)
        expect_usage_error(CLI("create", name, "--capacity", bad_sizes[i]), bad_sizes[i]);
    const char *bad_modes[] = {"999", "0", "1000", "rw", "-1"};
    for (size_t i = 0; i < sizeof bad_modes / sizeof bad_modes[0]; i++)
        expect_usage_error(CLI("create", name, "--mode", bad_modes[i]), "invalid mode");
    expect_usage_error(CLI("create", name, "--unlink-on-last-close"), "--unlink-on-last-close");
    cr_assert_not(shm_exists(name), "no usage error creates anything");
}

/* ---- create, ls, info, rm ---------------------------------------------- */

Test(cli, create_then_ls_shows_no_process)
{
    char name[64], line[512], next[512];
    snprintf(name, sizeof name, "%s", shr_test_name());
    cli_run_t r = CLI("create", name, "--capacity", "64M");
    cr_assert_eq(r.status, 0, "stderr: %s", r.err);
    cr_assert_str_empty(r.err);
    cli_free(&r);
    cr_assert(shm_exists(name), "create leaves the heap in /dev/shm");

    r = CLI("ls");
    cr_assert_eq(r.status, 0, "stderr: %s", r.err);
    cr_assert(strncmp(r.out, "NAME ", 5) == 0, "a header line:\n%s", r.out);
    cr_assert_not_null(ls_line(r.out, name, line, sizeof line, next, sizeof next),
                       "ls lists %s:\n%s", name, r.out);
    char n[256], cap[32], used[32], procs[32], state[32];
    cr_assert_eq(sscanf(line, "%255s %31s %31s %31s %31s", n, cap, used, procs, state), 5,
                 "%s", line);
    cr_assert_str_eq(cap, "64.0M");
    cr_assert_str_eq(procs, "0/0", "the create command detached cleanly: %s", line);
    cr_assert_str_eq(state, "ok");
    cr_assert_null(strstr(next, "  pid "), "no process line under %s: %s", name, next);
    cli_free(&r);

    r = CLI("info", name);
    cr_assert_eq(r.status, 0);
    cr_assert(strstr(r.out, "capacity        67108864 (64.0M)\n"), "%s", r.out);
    cr_assert(strstr(r.out, "processes       0 alive, 0 entries, at most 128\n"), "%s", r.out);
    cli_free(&r);

    r = CLI("rm", name);
    cr_assert_eq(r.status, 0, "stderr: %s", r.err);
    cr_assert_str_empty(r.err, "no warning: nobody is attached");
    cli_free(&r);
    cr_assert_not(shm_exists(name));
}

Test(cli, create_capacity_forms_and_mode)
{
    const char *sizes[] = {"134217728", "128M", "131072K", "128MiB", "128m", "128Mi"};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        char name[64];
        shr_heap_info_t info;
        snprintf(name, sizeof name, "%s", shr_test_name());
        cli_run_t r = CLI("create", "--capacity", sizes[i], name);
        cr_assert_eq(r.status, 0, "%s: %s", sizes[i], r.err);
        cli_free(&r);
        cr_assert_eq(shr_heap_inspect(name, &info, NULL, 0, NULL), 0);
        cr_assert_eq(info.capacity, (uint64_t)128 << 20, "--capacity %s", sizes[i]);
        cr_assert_eq(shr_heap_unlink(name), 0);
    }

    char name[64], path[600];
    struct stat st;
    snprintf(name, sizeof name, "%s", shr_test_name());
    cli_run_t r = CLI("create", name, "--mode", "0640");
    cr_assert_eq(r.status, 0, "%s", r.err);
    cli_free(&r);
    snprintf(path, sizeof path, "/dev/shm/%s", name);
    cr_assert_eq(stat(path, &st), 0);
    cr_assert_eq(st.st_mode & 0777, 0640, "mode %o", st.st_mode & 0777);
    cr_assert_eq((uint64_t)st.st_size, (uint64_t)SHR_DEFAULT_CAPACITY, "default capacity");

    r = CLI("create", name, "-m", "600");
    cr_assert_eq(r.status, 1, "the name is taken");
    char want[128];
    snprintf(want, sizeof want, "sharena: create: %s: %s\n", name, strerror(EEXIST));
    cr_assert_str_eq(r.err, want);
    cli_free(&r);

    r = CLI("create", "bad/name");
    cr_assert_eq(r.status, 1);
    cr_assert_str_eq(r.err, "sharena: create: bad/name: invalid name\n");
    cli_free(&r);
}

Test(cli, heap_of_this_process_is_listed_alive)
{
    char name[64], line[512], next[512], pidline[64];
    shr_heap_options_t o;
    shr_heap_t *h;
    snprintf(name, sizeof name, "%s", shr_test_name());
    shr_heap_options_init(&o);
    o.capacity = (size_t)256 << 20;
    o.flags = SHR_HEAP_UNLINK_ON_LAST_CLOSE;
    cr_assert_eq(shr_heap_create(name, &o, &h), 0);
    snprintf(pidline, sizeof pidline, "  pid %-8d alive", (int)getpid());

    cli_run_t r = CLI("ls");
    cr_assert_eq(r.status, 0);
    cr_assert_not_null(ls_line(r.out, name, line, sizeof line, next, sizeof next), "%s", r.out);
    cr_assert(strstr(line, " 1/1 "), "one process, alive: %s", line);
    cr_assert(strstr(line, "256.0M"), "%s", line);
    cr_assert(strncmp(next, pidline, strlen(pidline)) == 0, "'%s' under the heap, got '%s'",
              pidline, next);
    cr_assert(strstr(next, "attached 2"), "attach time: %s", next);
    cli_free(&r);

    char pid[32];
    snprintf(pid, sizeof pid, "  %d  alive", (int)getpid());
    r = CLI("info", name);
    cr_assert_eq(r.status, 0);
    const char *want[] = {"name            ", "layout version  ",
                          "flags           0x1 (unlink-on-last-close)\n",
                          "capacity        268435456 (256.0M)\n", "committed       ",
                          "metadata        ", "created         2",
                          "processes       1 alive, 1 entries, at most 128\n", "threads         ",
                          "GENERATION", "START_TIME", pid};
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
        cr_assert(strstr(r.out, want[i]), "info shows '%s':\n%s", want[i], r.out);
    cli_free(&r);

    cr_assert_eq(shr_heap_close(h), 0);
    cr_assert_not(shm_exists(name), "nothing left behind");
}

Test(cli, dead_process_is_listed_dead)
{
    char name[64], line[512], next[512], pidline[64];
    snprintf(name, sizeof name, "%s", shr_test_name());
    cli_run_t r = CLI("create", name);
    cr_assert_eq(r.status, 0);
    cli_free(&r);
    pid_t pid = shr_test_fork(attach_and_die, name);
    cr_assert_eq(shr_test_wait(pid), 0);

    r = CLI("ls");
    cr_assert_not_null(ls_line(r.out, name, line, sizeof line, next, sizeof next), "%s", r.out);
    cr_assert(strstr(line, " 0/1 "), "one entry, dead: %s", line);
    snprintf(pidline, sizeof pidline, "  pid %-8d dead ", (int)pid);
    cr_assert(strncmp(next, pidline, strlen(pidline)) == 0, "'%s', got '%s'", pidline, next);
    cli_free(&r);

    r = CLI("info", name);
    cr_assert(strstr(r.out, "processes       0 alive, 1 entries, at most 128\n"), "%s", r.out);
    cli_free(&r);
}

Test(cli, info_of_missing_heap)
{
    char name[64], want[128];
    snprintf(name, sizeof name, "%s", shr_test_name());
    cli_run_t r = CLI("info", name);
    cr_assert_eq(r.status, 1);
    snprintf(want, sizeof want, "sharena: info: %s: No such file or directory\n", name);
    cr_assert_str_eq(r.err, want);
    cr_assert_str_empty(r.out);
    cli_free(&r);

    r = CLI("rm", name);
    cr_assert_eq(r.status, 1);
    snprintf(want, sizeof want, "sharena: rm: %s: No such file or directory\n", name);
    cr_assert_str_eq(r.err, want);
    cli_free(&r);
}

Test(cli, rm_refuses_other_objects_without_force)
{
    char name[64];
    snprintf(name, sizeof name, "%s", shr_test_name());
    make_object(name, 8192);
    cli_run_t r = CLI("rm", name);
    cr_assert_eq(r.status, 1);
    cr_assert(strstr(r.err, shr_strerror(SHR_ENOTSHR)), "%s", r.err);
    cr_assert(strstr(r.err, "--force"), "says how to insist: %s", r.err);
    cli_free(&r);
    cr_assert(shm_exists(name), "refused");

    r = CLI("rm", "--force", name);
    cr_assert_eq(r.status, 0, "%s", r.err);
    cli_free(&r);
    cr_assert_not(shm_exists(name));
}

Test(cli, rm_of_attached_heap_warns)
{
    char name[64];
    shr_heap_t *h;
    snprintf(name, sizeof name, "%s", shr_test_name());
    cr_assert_eq(shr_heap_create(name, NULL, &h), 0);
    cli_run_t r = CLI("rm", name);
    cr_assert_eq(r.status, 0);
    cr_assert(strstr(r.err, "warning: 1 process still attached"), "%s", r.err);
    cli_free(&r);
    cr_assert_not(shm_exists(name));
    cr_assert_not_null(shr_ptr(h, 4096), "the attached process keeps its heap");
    cr_assert_eq(shr_heap_close(h), 0);
}

/* ---- objects ls must tell apart ----------------------------------------- */

Test(cli, ls_skips_garbage_and_lists_damaged_heaps)
{
    char garbage[64], trunc[64], version[64], line[512];
    shr_heap_t *h;
    snprintf(garbage, sizeof garbage, "%s", shr_test_name());
    snprintf(trunc, sizeof trunc, "%s", shr_test_name());
    snprintf(version, sizeof version, "%s", shr_test_name());
    make_object(garbage, 8192);
    cr_assert_eq(shr_heap_create(trunc, NULL, &h), 0);
    cr_assert_eq(shr_heap_close(h), 0);
    int fd = shm_open(trunc, O_RDWR, 0);
    cr_assert_eq(ftruncate(fd, SHR_DEFAULT_CAPACITY / 2), 0);
    close(fd);
    cr_assert_eq(shr_heap_create(version, NULL, &h), 0);
    cr_assert_eq(shr_heap_close(h), 0);
    uint32_t v = 999; /* layout_version: bytes 8..11 (docs/design/shm.md) */
    fd = shm_open(version, O_RDWR, 0);
    cr_assert_eq(pwrite(fd, &v, sizeof v, 8), (ssize_t)sizeof v);
    close(fd);

    cli_run_t r = CLI("ls");
    cr_assert_eq(r.status, 0);
    cr_assert_null(ls_line(r.out, garbage, line, sizeof line, NULL, 0), "garbage: %s", line);
    cr_assert_not_null(ls_line(r.out, trunc, line, sizeof line, NULL, 0), "%s", r.out);
    cr_assert(strstr(line, "error: sharena segment is truncated"), "%s", line);
    cr_assert(strstr(line, "512.0M"), "the object's size: %s", line);
    cr_assert_not_null(ls_line(r.out, version, line, sizeof line, NULL, 0), "%s", r.out);
    cr_assert(strstr(line, shr_strerror(SHR_EVERSION)), "%s", line);
    cli_free(&r);

    /* info reports the same errors; rm takes damaged heaps without --force. */
    r = CLI("info", trunc);
    cr_assert_eq(r.status, 1);
    cr_assert(strstr(r.err, "sharena segment is truncated"), "%s", r.err);
    cli_free(&r);
    r = CLI("info", garbage);
    cr_assert_eq(r.status, 1);
    cr_assert(strstr(r.err, shr_strerror(SHR_ENOTSHR)), "%s", r.err);
    cli_free(&r);
    r = CLI("rm", trunc);
    cr_assert_eq(r.status, 0, "%s", r.err);
    cli_free(&r);
    cr_assert_not(shm_exists(trunc));
}

Test(cli, leftover_temporary_objects)
{
    char line[512];
    pid_t dead = shr_test_fork(exit_at_once, NULL);
    cr_assert_eq(shr_test_wait(dead), 0);
    const char *orphan = extra_name(".shr_tmp_%d_cli%08x", (int)dead);
    const char *busy = extra_name(".shr_tmp_%d_clib%07x", (int)getpid());
    make_object(orphan, (off_t)4 << 20);
    make_object(busy, (off_t)4 << 20);

    cli_run_t r = CLI("ls");
    cr_assert_eq(r.status, 0);
    cr_assert_not_null(ls_line(r.out, orphan, line, sizeof line, NULL, 0), "%s", r.out);
    cr_assert(strstr(line, "incomplete"), "%s", line);
    cr_assert(strstr(line, "dead"), "%s", line);
    cr_assert(strstr(line, "4.0M"), "%s", line);
    cr_assert_not_null(ls_line(r.out, busy, line, sizeof line, NULL, 0), "%s", r.out);
    cr_assert(strstr(line, "incomplete"), "%s", line);
    cr_assert(strstr(line, "running"), "%s", line);
    cli_free(&r);

    r = CLI("rm", orphan);
    cr_assert_eq(r.status, 0, "a dead creator's object goes without --force: %s", r.err);
    cli_free(&r);
    cr_assert_not(shm_exists(orphan));

    r = CLI("rm", busy);
    cr_assert_eq(r.status, 1, "its creator may still publish it");
    cr_assert(strstr(r.err, "--force"), "%s", r.err);
    cli_free(&r);
    cr_assert(shm_exists(busy));
    r = CLI("rm", "-f", busy);
    cr_assert_eq(r.status, 0);
    cli_free(&r);
    cr_assert_not(shm_exists(busy));
}

/* ---- stats and check ---------------------------------------------------- */

static void *orphan_a_freed_block(void *arg)
{
    shr_heap_t *h = arg;
    void *keep = shr_malloc(h, 64);
    void *freed = shr_malloc(h, 64);
    (void)keep;
    shr_free(h, freed);
    return freed; /* the thread exits: its pool becomes an orphan */
}

Test(cli, stats_and_check_a_heap_then_a_broken_one)
{
    const char *name = shr_test_name();
    shr_heap_t *h;
    cr_assert_eq(shr_heap_create(name, NULL, &h), 0);
    pthread_t t;
    void *freed;
    pthread_create(&t, NULL, orphan_a_freed_block, h);
    pthread_join(t, &freed);

    cli_run_t r = CLI("stats", name);
    cr_assert_eq(r.status, 0, "stats: %s", r.err);
    cr_assert_not_null(strstr(r.out, "Small block threshold = 512, in 32 size classes."));
    cr_assert_not_null(strstr(r.out, "Total"));
    cli_free(&r);

    r = CLI("check", name);
    cr_assert_eq(r.status, 0, "check of a sound heap: %s", r.err);
    char want[128];
    snprintf(want, sizeof want, "%s: ok", name);
    cr_assert_not_null(strstr(r.out, want));
    cli_free(&r);

    /* Break the orphan's free list: the freed block's link (bytes 8..15)
     * now points outside its pool. */
    *(uint64_t *)((char *)freed + 8) = 8;
    r = CLI("check", name);
    cr_assert_eq(r.status, 1, "check of a broken heap must fail");
    cr_assert_not_null(strstr(r.err, "free list"), "stderr: %s", r.err);
    cli_free(&r);

    r = CLI("check", "t_no_such_heap");
    cr_assert_eq(r.status, 1);
    cli_free(&r);
    *(uint64_t *)((char *)freed + 8) = 0;
    shr_heap_close(h);
}

/* A compact list (<sharena/solo.h>): ls, info, stats, check and rm know it;
 * check fails on a damaged page; once it is a heap, every command sees the
 * heap. */
Test(cli, a_compact_list_then_its_heap)
{
    const char *name = shr_test_name();
    shr_value_t v[] = {shr_int(1), shr_str("two"), shr_none()};
    shr_solo_t *s;
    cr_assert_eq(shr_solo_create(name, v, 3, 0, &s), 0);
    char line[512];
    cli_run_t r = CLI("ls");
    cr_assert_eq(r.status, 0, "ls: %s", r.err);
    cr_assert_not_null(ls_line(r.out, name, line, sizeof line, NULL, 0), "ls lists it: %s", r.out);
    cr_assert_not_null(strstr(line, "ok (a compact list of 3 items)"), "%s", line);
    cr_assert_not_null(strstr(line, "4.0K"), "one page committed: %s", line);
    cli_free(&r);
    const char *cmds[] = {"info", "stats"};
    for (int i = 0; i < 2; i++) {
        r = CLI(cmds[i], name);
        cr_assert_eq(r.status, 0, "%s: %s", cmds[i], r.err);
        cr_assert_not_null(strstr(r.out, "a compact list"), "%s: %s", cmds[i], r.out);
        cr_assert_not_null(strstr(r.out, "items        3"), "%s: %s", cmds[i], r.out);
        cli_free(&r);
    }
    r = CLI("check", name);
    cr_assert_eq(r.status, 0, "check: %s", r.err);
    cr_assert_not_null(strstr(r.out, "ok (a compact list)"), "%s", r.out);
    cli_free(&r);

    /* Item 1's slot moved over item 0's words: check says so and fails. */
    char path[600];
    snprintf(path, sizeof path, "/dev/shm/%s", name);
    int fd = open(path, O_RDWR);
    cr_assert_geq(fd, 0);
    uint64_t w0, bad;
    cr_assert_eq(pread(fd, &w0, 8, 192 + 16), 8);
    bad = (w0 & ~(uint64_t)0xffff00) | (uint64_t)192 << 8;
    cr_assert_eq(pwrite(fd, &bad, 8, 192 + 16), 8);
    r = CLI("check", name);
    cr_assert_eq(r.status, 1, "check of a damaged page must fail: %s", r.out);
    cr_assert_not_null(strstr(r.err, "S6"), "stderr: %s", r.err);
    cli_free(&r);
    cr_assert_eq(pwrite(fd, &w0, 8, 192 + 16), 8);
    close(fd);

    shr_heap_t *h;
    cr_assert_eq(shr_solo_promote(s, &h), 0);
    r = CLI("check", name);
    cr_assert_eq(r.status, 0, "check of its heap: %s", r.err);
    cr_assert_null(strstr(r.out, "compact"), "%s", r.out);
    cli_free(&r);
    r = CLI("ls");
    cr_assert_not_null(ls_line(r.out, name, line, sizeof line, NULL, 0));
    cr_assert_not_null(strstr(line, "1/1"), "its heap, with this process attached: %s", line);
    cli_free(&r);
    shr_heap_close(h);
    shr_solo_close(s);
    r = CLI("rm", name);
    cr_assert_eq(r.status, 0, "rm: %s", r.err);
    cr_assert(!shm_exists(name));
    cli_free(&r);
}

/* ---- limits, locks, and objects that are not heaps -------------------------- */

Test(cli, create_with_limits_and_info_shows_them)
{
    const char *name = shr_test_name();
    cli_run_t r = CLI("create", name, "--max-procs", "1000", "--max-threads", "20000",
                      "--lock-timeout", "250");
    cr_assert_eq(r.status, 0, "%s", r.err);
    cli_free(&r);
    shr_heap_info_t info;
    cr_assert_eq(shr_heap_inspect(name, &info, NULL, 0, NULL), 0);
    cr_assert_eq(info.max_procs, 1000);
    cr_assert_eq(info.max_threads, 20000);
    cr_assert_eq(info.lock_timeout_ms, 250);
    r = CLI("info", name);
    cr_assert_eq(r.status, 0);
    cr_assert(strstr(r.out, "processes       0 alive, 0 entries, at most 1000\n"), "%s", r.out);
    cr_assert(strstr(r.out, "at most 20000\n"), "%s", r.out);
    cr_assert(strstr(r.out, "lock timeout    250 ms\n"), "%s", r.out);
    cr_assert(strstr(r.out, "locks           none held\n"), "%s", r.out);
    cli_free(&r);
    r = CLI("check", name);
    cr_assert_eq(r.status, 0, "%s", r.err);
    cli_free(&r);
}

Test(cli, bad_limits_are_usage_errors)
{
    const char *bad[][2] = {{"--max-procs", "0"},      {"--max-procs", "4097"},
                            {"--max-threads", "-1"},   {"--max-threads", "65537"},
                            {"--lock-timeout", "0"},   {"--max-procs", "12x"}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        const char *name = shr_test_name();
        cli_run_t r = CLI("create", name, bad[i][0], bad[i][1]);
        cr_assert_eq(r.status, 2, "%s %s", bad[i][0], bad[i][1]);
        cr_assert_not(shm_exists(name));
        cli_free(&r);
    }
}

Test(cli, a_directory_is_not_a_sharena_segment)
{
    const char *name = shr_test_name();
    char path[600], want[700];
    snprintf(path, sizeof path, "/dev/shm/%s", name);
    cr_assert_eq(mkdir(path, 0700), 0);
    const char *cmds[] = {"info", "stats", "check", "rm"};
    for (size_t i = 0; i < 4; i++) {
        cli_run_t r = CLI(cmds[i], name);
        cr_assert_eq(r.status, 1, "%s", cmds[i]);
        snprintf(want, sizeof want, "sharena: %s: %s: not a sharena segment", cmds[i], name);
        cr_assert(strstr(r.err, want), "%s: %s", cmds[i], r.err);
        cli_free(&r);
    }
    struct stat st;
    cr_assert_eq(stat(path, &st), 0, "rm without --force left it");
    rmdir(path);
}

Test(cli, info_shows_a_held_lock_and_check_times_out)
{
    const char *name = shr_test_name();
    shr_heap_t *h;
    cr_assert_eq(shr_heap_create(name, NULL, &h), 0);
    char id[8];
    snprintf(id, sizeof id, "%d", 2); /* the registry lock */
    pid_t peer = shr_test_exec_peer("lock", name, id, NULL);
    shr_heap_info_t info;
    for (int i = 0; i < 500; i++) {
        cr_assert_eq(shr_heap_inspect(name, &info, NULL, 0, NULL), 0);
        if (info.locks[2].held && info.locks[2].holder_index) break;
        shr_test_sleep_ms(10);
    }
    cr_assert(info.locks[2].held);
    char want[128];
    snprintf(want, sizeof want, "locks           registry: held by tid %d, entry %u pid %d (alive)\n",
             (int)info.locks[2].holder_tid, info.locks[2].holder_index - 1, (int)peer);
    cli_run_t r = CLI("info", name);
    cr_assert_eq(r.status, 0);
    cr_assert(strstr(r.out, want), "wanted %s in\n%s", want, r.out);
    cli_free(&r);
    setenv("SHARENA_LOCK_TIMEOUT_MS", "200", 1);
    r = CLI("check", name);
    unsetenv("SHARENA_LOCK_TIMEOUT_MS");
    cr_assert_eq(r.status, 1);
    snprintf(want, sizeof want, "sharena: check: %s: a heap lock was not released in time", name);
    cr_assert(strstr(r.err, want), "%s", r.err);
    cli_free(&r);
    r = CLI("info", name);
    cr_assert(strstr(r.out, "; 1 wait timed out, last "), "%s", r.out);
    cli_free(&r);
    kill(peer, SIGKILL);
    shr_test_wait(peer);
    r = CLI("info", name);
    cr_assert(strstr(r.out, "locks           registry: its holder died (the next locker repairs)"),
              "%s", r.out);
    cli_free(&r);
    r = CLI("check", name);
    cr_assert_eq(r.status, 0, "%s", r.err);
    cli_free(&r);
    shr_heap_close(h);
}

/* ---- gc collect and recover ---------------------------------------------- */

/* A two-node cycle that only this (dying) process holds. */
static int hold_a_cycle_and_die(void *arg)
{
    shr_heap_t *h;
    shr_ref_t a, b;
    if (shr_heap_attach(arg, &h) || shr_obj_new(h, SHR_TYPE_NODE, 1, 0, &a) || shr_obj_new(h, SHR_TYPE_NODE, 1, 0, &b))
        return 1;
    if (shr_obj_set(h, a, 0, b) || shr_obj_set(h, b, 0, a)) return 2;
    return 0; /* exits without closing: its leases stay until someone reclaims them */
}

Test(cli, gc_collect_and_recover)
{
    const char *name = shr_test_name();
    shr_heap_t *h;
    cr_assert_eq(shr_heap_create(name, NULL, &h), 0);
    make_cycles(h, 1); /* two nodes, garbage */
    cli_run_t r = CLI("gc", "collect", name, "--generation", "0");
    cr_assert_eq(r.status, 0, "gc collect: %s", r.err);
    char want[160];
    snprintf(want, sizeof want, "%s: generation 0: 2 collected, 0 uncollectable, 2 examined", name);
    cr_assert_not_null(strstr(r.out, want), "%s", r.out);
    cr_assert_not_null(strstr(r.out, "pause "));
    cr_assert_not_null(strstr(r.out, "time to stop "));
    cli_free(&r);

    pid_t pid = shr_test_fork(hold_a_cycle_and_die, (void *)name);
    cr_assert_eq(shr_test_wait(pid), 0);
    r = CLI("recover", name);
    cr_assert_eq(r.status, 0, "recover: %s", r.err);
    snprintf(want, sizeof want, "%s: generation 2: 2 collected", name);
    cr_assert_not_null(strstr(r.out, want), "the dead process's cycle: %s", r.out);
    cli_free(&r);

    r = CLI("stats", name);
    cr_assert_eq(r.status, 0);
    cr_assert_not_null(strstr(r.out, "# cycle collector"), "%s", r.out);
    cr_assert_not_null(strstr(r.out, "\n0               2000"), "generation 0 with its threshold: %s", r.out);
    cli_free(&r);

    r = CLI("gc", "collect", name, "--generation", "3");
    cr_assert_eq(r.status, 2, "a bad generation is a usage error");
    cli_free(&r);
    r = CLI("gc", "sweep", name);
    cr_assert_eq(r.status, 2);
    cli_free(&r);
    r = CLI("gc", "collect", "t_no_such_heap");
    cr_assert_eq(r.status, 1);
    cli_free(&r);
    cr_assert_eq(shr_heap_check_report(h, stderr), 0);
    shr_heap_close(h);
}

/* ---- gc log, gc reset, the measurements ------------------------------- */

Test(cli, gc_log_reset_and_the_phases)
{
    const char *name = shr_test_name();
    shr_heap_t *h;
    cr_assert_eq(shr_heap_create(name, NULL, &h), 0);
    make_cycles(h, 1); /* two nodes, garbage */
    cli_run_t r = CLI("gc", "collect", name, "--generation", "1");
    cr_assert_eq(r.status, 0, "gc collect: %s", r.err);
    cr_assert_not_null(strstr(r.out, "phases: stop "), "%s", r.out);
    cr_assert_not_null(strstr(r.out, "2 edges visited"), "%s", r.out);
    cli_free(&r);
    r = CLI("gc", "log", name);
    cr_assert_eq(r.status, 0, "gc log: %s", r.err);
    cr_assert_not_null(strstr(r.out, "gen 1 begin trial-deletion collection=1"), "%s", r.out);
    cr_assert_not_null(strstr(r.out, " phase subtract "), "%s", r.out);
    cr_assert_not_null(strstr(r.out, " end collected=2 uncollectable=0 "), "%s", r.out);
    cr_assert_lt(strstr(r.out, " begin "), strstr(r.out, " end "), "in order");
    cli_free(&r);
    r = CLI("gc", "stats", name);
    cr_assert_eq(r.status, 0);
    cr_assert_not_null(strstr(r.out, "pauses of generation 1: ["), "%s", r.out);
    cli_free(&r);
    r = CLI("gc", "reset", name);
    cr_assert_eq(r.status, 0, "%s", r.err);
    cli_free(&r);
    shr_gc_stats_t st;
    cr_assert_eq(shr_gc_get_stats(h, &st), 0);
    cr_assert_eq(st.resets, 1);
    cr_assert_eq(st.gen[1].collections, 0);
    r = CLI("gc", "log", name, "--bogus");
    cr_assert_eq(r.status, 2);
    cli_free(&r);
    r = CLI("gc", "log");
    cr_assert_eq(r.status, 2);
    cli_free(&r);
    cr_assert_eq(shr_heap_check_report(h, stderr), 0);
    shr_heap_close(h);

    shr_heap_options_t o;
    shr_heap_options_init(&o);
    o.gc_log_records = SHR_GC_LOG_NONE;
    char none[96];
    snprintf(none, sizeof none, "%s", shr_test_name());
    cr_assert_eq(shr_heap_create(none, &o, &h), 0);
    r = CLI("gc", "log", none);
    cr_assert_eq(r.status, 1, "no log: an error");
    cli_free(&r);
    shr_heap_close(h);
}

/* ---- gc stats, threshold, freeze --------------------------------------- */

static int collect_in_child(void *arg)
{
    shr_heap_t *h;
    shr_ref_t a, b;
    if (shr_heap_attach(arg, &h) || shr_obj_new(h, SHR_TYPE_NODE, 1, 0, &a) || shr_obj_new(h, SHR_TYPE_NODE, 1, 0, &b))
        return 1;
    if (shr_obj_set(h, a, 0, b) || shr_obj_set(h, b, 0, a)) return 2;
    shr_obj_release(h, a);
    shr_obj_release(h, b);
    int64_t n = shr_gc_collect(h, 1, NULL);
    shr_heap_close(h);
    return n == 2 ? 0 : 3;
}

Test(cli, gc_stats_threshold_and_freeze)
{
    const char *name = shr_test_name();
    shr_heap_t *h;
    cr_assert_eq(shr_heap_create(name, NULL, &h), 0);
    pid_t pid = shr_test_fork(collect_in_child, (void *)name);
    cr_assert_eq(shr_test_wait(pid), 0);
    cli_run_t r = CLI("gc", "stats", name);
    cr_assert_eq(r.status, 0, "gc stats: %s", r.err);
    cr_assert_not_null(strstr(r.out, "# cycle collector"), "%s", r.out);
    /* generation 1: threshold 10, count 0, 1 collection, 2 collected, 0 uncollectable */
    cr_assert(strstr(r.out, "\n1                 10         0           1           2             0"),
              "the other process's collection: %s", r.out);
    cr_assert_not_null(strstr(r.out, "frozen (the permanent generation, never collected): 0"), "%s", r.out);
    cli_free(&r);

    r = CLI("gc", "threshold", name);
    cr_assert_eq(r.status, 0, "%s", r.err);
    char want[200];
    snprintf(want, sizeof want, "%s: threshold 2000 10 10\n", name);
    cr_assert_str_eq(r.out, want);
    cli_free(&r);
    r = CLI("gc", "threshold", name, "700", "5", "0");
    cr_assert_eq(r.status, 0, "%s", r.err);
    snprintf(want, sizeof want, "%s: threshold 700 5 0\n", name);
    cr_assert_str_eq(r.out, want);
    cli_free(&r);
    uint32_t t[3];
    cr_assert_eq(shr_gc_get_threshold(h, t), 0);
    cr_assert(t[0] == 700 && t[1] == 5 && t[2] == 0, "set for the heap");
    const char *bad[][3] = {{"1", "2", "x"}, {"-1", "2", "3"}, {"4294967296", "1", "1"}, {"", "1", "1"}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        r = CLI("gc", "threshold", name, bad[i][0], bad[i][1], bad[i][2]);
        cr_assert_eq(r.status, 2, "'%s %s %s' is a usage error", bad[i][0], bad[i][1], bad[i][2]);
        cli_free(&r);
    }
    r = CLI("gc", "threshold", name, "1", "2");
    cr_assert_eq(r.status, 2, "two numbers");
    cli_free(&r);
    cr_assert_eq(shr_gc_get_threshold(h, t), 0);
    cr_assert(t[0] == 700 && t[1] == 5 && t[2] == 0, "a refused command changes nothing");

    make_cycles(h, 1); /* two nodes, garbage */
    r = CLI("gc", "freeze", name);
    cr_assert_eq(r.status, 0, "%s", r.err);
    snprintf(want, sizeof want, "%s: 2 objects frozen, 2 in the permanent generation\n", name);
    cr_assert_str_eq(r.out, want);
    cli_free(&r);
    cr_assert_eq(shr_gc_get_freeze_count(h), 2);
    cr_assert_eq(shr_gc_collect(h, 2, NULL), 0, "frozen: not collected");
    r = CLI("gc", "stats", name);
    cr_assert_not_null(strstr(r.out, "frozen (the permanent generation, never collected): 2"), "%s", r.out);
    cli_free(&r);
    r = CLI("gc", "unfreeze", name);
    cr_assert_eq(r.status, 0, "%s", r.err);
    cli_free(&r);
    cr_assert_eq(shr_gc_collect(h, 2, NULL), 2);

    r = CLI("gc", "freeze", name, "extra");
    cr_assert_eq(r.status, 2);
    cli_free(&r);
    r = CLI("gc", "stats");
    cr_assert_eq(r.status, 2);
    cli_free(&r);
    r = CLI("gc", "stats", "t_no_such_heap");
    cr_assert_eq(r.status, 1);
    cli_free(&r);
    cr_assert_eq(shr_heap_check_report(h, stderr), 0);
    shr_heap_close(h);
}

/* ---- gc build and drop ------------------------------------------------- */

static int64_t tracked(shr_heap_t *h)
{
    int64_t n = shr_gc_get_objects(h, -1, NULL, 0);
    cr_assert_geq(n, 0);
    return n;
}

Test(cli, gc_build_and_drop)
{
    const char *name = shr_test_name();
    shr_heap_t *h;
    cr_assert_eq(shr_heap_create(name, NULL, &h), 0);
    /* live_graph of 1000, seed 42: CPython's graph (cpython_gc.py --digest live_graph:1000). */
    cli_run_t r = CLI("gc", "build", name, "live_graph", "1000");
    cr_assert_eq(r.status, 0, "gc build: %s", r.err);
    cr_assert_not_null(strstr(r.out, "1001 objects, 1001 live, 0 garbage, 1479 edges, digest 0x191b9af86238e967"),
                       "%s", r.out);
    cr_assert_not_null(strstr(r.out, "root published as 'live_graph'"), "%s", r.out);
    cli_free(&r);
    shr_ref_t root;
    cr_assert_eq(shr_obj_lookup(h, "live_graph", &root), 0, "the root is kept under its kind's name");
    shr_obj_release(h, root);
    cr_assert_eq(shr_gc_collect(h, 2, NULL), 0, "all of it live");
    cr_assert_eq(tracked(h), 1001);

    /* Refused: nothing made. */
    const char *bad[][7] = {
        {"gc", "build", name, "live_graph", "1000", NULL},          /* the root's name is taken */
        {"gc", "build", name, "nope", "10", NULL},                  /* kind */
        {"gc", "build", name, "ring100", "99", NULL},               /* size */
        {"gc", "build", name, "tree", "0", NULL},
        {"gc", "build", name, "tree", "1x", NULL},
        {"gc", "build", name, "tree", "16777217", NULL},
        {"gc", "build", name, "tree", "10", "--rate=5"},            /* churn's option */
        {"gc", "build", name, "churn", "10", "--rate=101"},
        {"gc", "build", name, "churn", "10", "--cycle=0"},
        {"gc", "build", name, "tree", "10", "--as="},              /* a bad root name */
        {"gc", "build", name, "tree", NULL},
        {"gc", "build", "t_no_such_heap", "tree", "10", NULL},
        {"gc", "build", name, "ring2", "10", "--as=r"},             /* no root to name */
        {"gc", "build", name, "tree", "10", "--garbage", "--as=t"},
    };
    int want[] = {1, 2, 2, 2, 2, 2, 2, 2, 2, 1, 2, 1, 2, 2};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        r = run_cli(bad[i][0], bad[i][1], bad[i][2], bad[i][3], bad[i][4], bad[i][5], bad[i][6], (const char *)NULL);
        cr_assert_eq(r.status, want[i], "case %zu: status %d: %s", i, r.status, r.err);
        cr_assert_neq(r.err[0], '\0', "case %zu says why", i);
        cli_free(&r);
        cr_assert_eq(tracked(h), 1001, "case %zu changed the heap", i);
    }
    r = CLI("gc", "build", name, "live_graph", "1000");
    cr_assert_not_null(strstr(r.err, "'live_graph' is taken"), "%s", r.err);
    cli_free(&r);
    r = CLI("gc", "build", name, "ring100", "99");
    cr_assert_not_null(strstr(r.err, "invalid N '99' for ring100 (100 to"), "%s", r.err);
    cli_free(&r);

    /* Garbage only, and --garbage: left for the collector. */
    r = CLI("gc", "build", name, "ring2", "1000");
    cr_assert_eq(r.status, 0, "%s", r.err);
    cr_assert_not_null(strstr(r.out, "no live part"), "%s", r.out);
    cli_free(&r);
    cr_assert_eq(shr_gc_collect(h, 2, NULL), 1000);
    r = CLI("gc", "build", name, "mix", "1000", "--garbage", "--seed", "7");
    cr_assert_eq(r.status, 0, "%s", r.err);
    cr_assert_not_null(strstr(r.out, "root released"), "%s", r.out);
    cli_free(&r);
    cr_assert_eq(shr_obj_lookup(h, "mix", &root), -ENOENT, "--garbage publishes nothing");
    int64_t n = shr_gc_collect(h, 2, NULL);
    cr_assert(n >= 200 && n <= 1001, "the ring garbage and the live part's cycles: %lld", (long long)n);
    cr_assert_eq(tracked(h), 1001);

    /* Churn: without --auto this process does not collect while it builds,
     * so the whole stream's garbage is there for gc collect. */
    r = CLI("gc", "build", name, "churn", "20000", "--live", "100", "--rate", "100", "--cycle", "5", "--as", "c1");
    cr_assert_eq(r.status, 0, "%s", r.err);
    cr_assert_not_null(strstr(r.out, "20101 objects, 101 live, 20000 garbage"), "%s", r.out);
    cr_assert_null(strstr(r.out, "automatic collections"), "%s", r.out);
    cli_free(&r);
    cr_assert_eq(shr_gc_collect(h, 2, NULL), 20000);
    r = CLI("gc", "build", name, "churn", "20000", "--live=100", "--rate=100", "--cycle=5", "--as=c2", "--auto");
    cr_assert_eq(r.status, 0, "%s", r.err);
    cr_assert_not_null(strstr(r.out, "automatic collections during the build"), "%s", r.out);
    cli_free(&r);
    cr_assert_lt(shr_gc_collect(h, 2, NULL), 20000, "the automatic collections freed some already");

    /* drop: the graph becomes garbage. */
    r = CLI("gc", "drop", name, "live_graph");
    cr_assert_eq(r.status, 0, "%s", r.err);
    cli_free(&r);
    cr_assert_gt(shr_gc_collect(h, 2, NULL), 0);
    cr_assert_eq(tracked(h), 2 * 101, "the two churn tables are left");
    r = CLI("gc", "drop", name, "live_graph");
    cr_assert_eq(r.status, 1);
    cr_assert_not_null(strstr(r.err, "no object is published as 'live_graph'"), "%s", r.err);
    cli_free(&r);
    r = CLI("gc", "drop", name);
    cr_assert_eq(r.status, 2);
    cli_free(&r);
    cr_assert_eq(shr_heap_check_report(h, stderr), 0);
    shr_heap_close(h);
}

/* ---- gc verify and the mark-sweep ---------------------------------------- */

Test(cli, gc_verify_and_the_mark_sweep)
{
    const char *name = shr_test_name();
    shr_heap_t *h;
    cr_assert_eq(shr_heap_create(name, NULL, &h), 0);
    make_cycles(h, 1); /* two nodes, garbage */
    char want[200];
    cli_run_t r = CLI("gc", "verify", name);
    cr_assert_eq(r.status, 0, "gc verify: %s", r.err);
    snprintf(want, sizeof want, "%s: 2 objects: 0 live, 2 unreachable", name);
    cr_assert_not_null(strstr(r.out, want), "%s", r.out);
    cr_assert_not_null(strstr(r.out, "0 below, 0 dangling"), "%s", r.out);
    cli_free(&r);
    r = CLI("gc", "collect", name, "--algorithm=marksweep", "--repair");
    cr_assert_eq(r.status, 0, "gc collect: %s", r.err);
    snprintf(want, sizeof want, "%s: generation 2: 2 collected", name);
    cr_assert_not_null(strstr(r.out, want), "%s", r.out);
    cr_assert_not_null(strstr(r.out, "an exact trace; 0 counts repaired"), "%s", r.out);
    cli_free(&r);
    r = CLI("gc", "verify", name);
    cr_assert_eq(r.status, 0);
    snprintf(want, sizeof want, "%s: 0 objects", name);
    cr_assert_not_null(strstr(r.out, want), "%s", r.out);
    cli_free(&r);
    r = CLI("gc", "collect", name, "--algorithm", "bacon");
    cr_assert_eq(r.status, 2, "an unknown algorithm is a usage error");
    cli_free(&r);
    /* Bacon and Rajan's: the heap set to it, a garbage pair buffered by its
     * decrefs, collected from its roots. */
    r = CLI("gc", "algorithm", name, "bacon-rajan");
    cr_assert_eq(r.status, 0, "gc algorithm: %s", r.err);
    snprintf(want, sizeof want, "%s: algorithm bacon-rajan\n", name);
    cr_assert_str_eq(r.out, want);
    cli_free(&r);
    cr_assert_eq(shr_gc_get_algorithm(h), SHR_GC_BACON_RAJAN);
    r = CLI("gc", "collect", name, "--algorithm", "bacon-rajan"); /* the selection's rescan */
    cr_assert_eq(r.status, 0, "gc collect: %s", r.err);
    cli_free(&r);
    make_cycles(h, 1); /* two nodes, garbage */
    r = CLI("gc", "collect", name, "--algorithm", "bacon-rajan", "-g", "0");
    cr_assert_eq(r.status, 0, "gc collect: %s", r.err);
    snprintf(want, sizeof want, "%s: generation 0: 2 collected", name);
    cr_assert_not_null(strstr(r.out, want), "%s", r.out);
    cli_free(&r);
    r = CLI("gc", "stats", name);
    cr_assert_not_null(strstr(r.out, "algorithm of automatic collections: bacon-rajan"), "%s", r.out);
    cli_free(&r);
    r = CLI("gc", "algorithm", name, "lisp2");
    cr_assert_eq(r.status, 2, "an unknown algorithm is a usage error");
    cli_free(&r);
    r = CLI("gc", "algorithm", name);
    snprintf(want, sizeof want, "%s: algorithm bacon-rajan\n", name);
    cr_assert_str_eq(r.out, want, "nothing changed");
    cli_free(&r);
    r = CLI("gc", "collect", name, "--algorithm", "bacon-rajan", "--repair");
    cr_assert_eq(r.status, 2, "--repair is the mark-sweep's");
    cli_free(&r);
    r = CLI("gc", "collect", name, "--repair");
    cr_assert_eq(r.status, 2, "--repair without the mark-sweep");
    cli_free(&r);
    r = CLI("gc", "collect", name, "--algorithm=marksweep", "-g", "0");
    cr_assert_eq(r.status, 2, "the mark-sweep is of generation 2 only");
    cli_free(&r);
    r = CLI("gc", "verify");
    cr_assert_eq(r.status, 2);
    cli_free(&r);
    r = CLI("gc", "verify", "t_no_such_heap");
    cr_assert_eq(r.status, 1);
    cli_free(&r);
    cr_assert_eq(shr_heap_check_report(h, stderr), 0);
    shr_heap_close(h);
}
