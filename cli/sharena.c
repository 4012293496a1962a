/* sharena: the command-line tool
 *
 * Looks after heaps from outside the processes that use them: create one,
 * list those in /dev/shm, show what a heap's header and process registry
 * say, remove a name. It is a client of the public API (sharena.h) and of
 * nothing else, so it sees heaps exactly as any program linking the library
 * does; the only thing it knows beyond the API is where Linux keeps POSIX
 * shm objects (SHM_DIR) and the name of the temporary objects a creator
 * publishes from (TMP_PREFIX, see shm/segment.c).
 *
 * Commands are the rows of one table, cmds[] at the end of the file: name,
 * handler, operand, synopsis, one-line summary and help text. The dispatcher,
 * `sharena --help`, `sharena help CMD` and every `sharena CMD --help` are
 * driven by that table. Adding a command is one handler and one row; a
 * handler that takes one NAME and no options starts with
 *
 *     const char *name = NULL;
 *     int rc = cli_parse(cmd, argc, argv, NULL, &name);
 *     if (rc != CLI_OK) return rc;
 *
 * and reports failures with cli_fail(cmd, name, code).
 *
 * Exit status: 0 success; 1 error, reported on stderr as
 * "sharena: CMD: NAME: message" with the message from shr_strerror(); 2 usage
 * error, reported with the command's synopsis.
 */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "sharena.h"

#define SHM_DIR "/dev/shm"
#define TMP_PREFIX ".shr_tmp_"

/* Exit statuses, and CLI_HELP: help was asked for and printed (exits 0). */
enum { CLI_OK = 0, CLI_FAIL = 1, CLI_USAGE = 2, CLI_HELP = -1 };

typedef struct cli_cmd cli_cmd_t;

struct cli_cmd {
    const char *name;
    int (*run)(const cli_cmd_t *cmd, int argc, char **argv); /* argv[0] is the name */
    const char *operand;   /* label of the one operand ("NAME"); NULL: none */
    bool optional;         /* the operand may be left out */
    const char *synopsis;  /* what follows "sharena CMD" in the usage line */
    const char *summary;   /* one line for `sharena --help` */
    const char *help;      /* the rest of `sharena help CMD` */
};

/* One option of a command. Exactly one of flag and arg is set: a flag
 * records that the option was given, arg receives the option's argument. */
typedef struct cli_opt {
    const char *name;      /* long form, without the "--"; NULL ends a table */
    char key;              /* short form, or 0 */
    bool *flag;
    const char **arg;
} cli_opt_t;

static const cli_cmd_t *find_cmd(const char *name);
static void print_main_help(FILE *out);

/* ---- messages ---------------------------------------------------------- */

static void print_usage(const cli_cmd_t *cmd, FILE *out)
{
    fprintf(out, "usage: sharena %s%s%s\n", cmd->name, *cmd->synopsis ? " " : "",
            cmd->synopsis);
}

/* Print "sharena: CMD: NAME: message" for a code of the library. */
static int cli_fail(const cli_cmd_t *cmd, const char *name, int code)
{
    fprintf(stderr, "sharena: %s: %s: %s\n", cmd->name, name, shr_strerror(code));
    return CLI_FAIL;
}

/* Print a usage error of cmd (NULL: of the command line as a whole) followed
 * by the short usage; returns CLI_USAGE. */
static int cli_usage_error(const cli_cmd_t *cmd, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "sharena: ");
    if (cmd) fprintf(stderr, "%s: ", cmd->name);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    if (cmd) {
        print_usage(cmd, stderr);
        fprintf(stderr, "Try 'sharena help %s' for more information.\n", cmd->name);
    } else {
        fprintf(stderr, "usage: sharena COMMAND [ARGS]\n"
                        "Try 'sharena --help' for the list of commands.\n");
    }
    return CLI_USAGE;
}

static void print_cmd_help(const cli_cmd_t *cmd, FILE *out)
{
    print_usage(cmd, out);
    fprintf(out, "\n%s\n", cmd->help);
}

/* ---- command-line parsing ---------------------------------------------- */

static const cli_opt_t *find_long(const cli_opt_t *opts, const char *name, size_t len)
{
    for (; opts && opts->name; opts++)
        if (strlen(opts->name) == len && memcmp(opts->name, name, len) == 0) return opts;
    return NULL;
}

static const cli_opt_t *find_short(const cli_opt_t *opts, char key)
{
    for (; opts && opts->name; opts++)
        if (opts->key == key) return opts;
    return NULL;
}

/* Apply one option found at argv[*i]; inline is its "=value" or NULL. */
static int take_opt(const cli_cmd_t *cmd, const cli_opt_t *o, const char *inline_arg,
                    int argc, char **argv, int *i)
{
    if (o->flag) {
        if (inline_arg) return cli_usage_error(cmd, "option '--%s' takes no argument", o->name);
        *o->flag = true;
        return CLI_OK;
    }
    if (inline_arg) {
        *o->arg = inline_arg;
    } else if (*i + 1 < argc) {
        *o->arg = argv[++*i];
    } else {
        return cli_usage_error(cmd, "option '--%s' needs an argument", o->name);
    }
    return CLI_OK;
}

/* Parse a command's arguments, argv[1..argc-1]: the options of opts (may be
 * NULL) anywhere, "--" ending them, and cmd->operand's value into *operand.
 * -h and --help print the command's help. Returns CLI_OK, CLI_HELP or
 * CLI_USAGE (message printed). */
static int cli_parse(const cli_cmd_t *cmd, int argc, char **argv, const cli_opt_t *opts,
                     const char **operand)
{
    bool only_operands = false;
    int noperands = 0;

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const cli_opt_t *o;
        int rc;
        if (only_operands || a[0] != '-' || a[1] == '\0') {
            if (!cmd->operand || noperands++ > 0)
                return cli_usage_error(cmd, "unexpected argument '%s'", a);
            *operand = a;
            continue;
        }
        if (strcmp(a, "--") == 0) {
            only_operands = true;
            continue;
        }
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            print_cmd_help(cmd, stdout);
            return CLI_HELP;
        }
        if (a[1] == '-') {
            const char *eq = strchr(a + 2, '=');
            size_t len = eq ? (size_t)(eq - (a + 2)) : strlen(a + 2);
            if (!(o = find_long(opts, a + 2, len)))
                return cli_usage_error(cmd, "unknown option '%.*s'", (int)len + 2, a);
            rc = take_opt(cmd, o, eq ? eq + 1 : NULL, argc, argv, &i);
        } else {
            if (a[2] != '\0' || !(o = find_short(opts, a[1])))
                return cli_usage_error(cmd, "unknown option '%s'", a);
            rc = take_opt(cmd, o, NULL, argc, argv, &i);
        }
        if (rc != CLI_OK) return rc;
    }
    if (cmd->operand && !cmd->optional && noperands == 0)
        return cli_usage_error(cmd, "missing %s", cmd->operand);
    return CLI_OK;
}

/* SIZE: decimal bytes, or with a binary suffix K, M, G or T (also Ki, KiB,
 * ...; either case). 0 on success, -EINVAL or -ERANGE. */
static int parse_size(const char *s, uint64_t *out)
{
    static const char units[] = "KMGT";
    char *end;
    unsigned shift = 0;

    if (!isdigit((unsigned char)s[0])) return -EINVAL; /* no sign, no blank */
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno == ERANGE) return -ERANGE;
    if (*end != '\0') {
        const char *u = strchr(units, toupper((unsigned char)*end));
        if (!u) return -EINVAL;
        shift = 10 * (unsigned)(u - units + 1);
        end++;
        if (strcmp(end, "i") == 0 || strcmp(end, "iB") == 0) end += strlen(end);
        if (*end != '\0') return -EINVAL;
    }
    if (v > (UINT64_MAX >> shift)) return -ERANGE;
    *out = (uint64_t)v << shift;
    return 0;
}

/* A decimal count from 1 to max. 0 on success, -EINVAL otherwise. */
static int parse_count(const char *s, uint32_t max, uint32_t *out)
{
    char *end;
    if (!isdigit((unsigned char)s[0])) return -EINVAL;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || *end != '\0' || v == 0 || v > max) return -EINVAL;
    *out = (uint32_t)v;
    return 0;
}

/* OCTAL: permission bits, 1 to 0777. */
static int parse_mode(const char *s, unsigned *out)
{
    char *end;
    if (s[0] < '0' || s[0] > '7') return -EINVAL;
    errno = 0;
    unsigned long v = strtoul(s, &end, 8);
    if (errno || *end != '\0' || v == 0 || v > 0777) return -EINVAL;
    *out = (unsigned)v;
    return 0;
}

/* ---- formatting -------------------------------------------------------- */

typedef char size_buf_t[16];
typedef char time_buf_t[48];

/* n bytes with a binary unit: "512B", "4.0K", "1.0G". */
static const char *fmt_size(size_buf_t buf, uint64_t n)
{
    static const char units[] = "KMGTPE";
    if (n < 1024) {
        snprintf(buf, sizeof(size_buf_t), "%" PRIu64 "B", n);
        return buf;
    }
    double v = (double)n / 1024;
    int u = 0;
    /* 1023.96K would print as "1024.0K": move such values up a unit. */
    while (v >= 1023.95 && units[u + 1]) {
        v /= 1024;
        u++;
    }
    snprintf(buf, sizeof(size_buf_t), "%.1f%c", v, units[u]);
    return buf;
}

/* A CLOCK_REALTIME time in ns as local time; precise adds milliseconds and
 * the UTC offset. "-" for 0. */
static const char *fmt_time(time_buf_t buf, uint64_t ns, bool precise)
{
    time_t t = (time_t)(ns / 1000000000u);
    struct tm tm;
    size_t n;
    if (ns == 0 || !localtime_r(&t, &tm)) return "-";
    n = strftime(buf, sizeof(time_buf_t), "%Y-%m-%d %H:%M:%S", &tm);
    if (precise && n > 0) {
        n += (size_t)snprintf(buf + n, sizeof(time_buf_t) - n, ".%03u",
                              (unsigned)(ns / 1000000u % 1000u));
        strftime(buf + n, sizeof(time_buf_t) - n, " %z", &tm);
    }
    return n > 0 ? buf : "-";
}

static void print_flags(FILE *out, uint32_t flags)
{
    static const struct { uint32_t bit; const char *name; } names[] = {
        {SHR_HEAP_UNLINK_ON_LAST_CLOSE, "unlink-on-last-close"},
        {SHR_HEAP_GUARDS, "guards"},
    };
    const char *sep = "";
    fprintf(out, "0x%" PRIx32 " (", flags);
    if (flags == 0) fprintf(out, "none");
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        if (!(flags & names[i].bit)) continue;
        fprintf(out, "%s%s", sep, names[i].name);
        sep = ", ";
        flags &= ~names[i].bit;
    }
    if (flags) fprintf(out, "%sunknown 0x%" PRIx32, sep, flags);
    fprintf(out, ")\n");
}

/* ---- reading heaps ----------------------------------------------------- */

/* shr_heap_inspect with room for every process entry: on success *procs
 * (owned by the caller, free()) holds *nprocs entries. The registry may grow
 * between two calls, hence the loop. */
static int inspect_all(const char *name, shr_heap_info_t *info, shr_proc_info_t **procs,
                       size_t *nprocs)
{
    shr_proc_info_t *buf = NULL;
    size_t max = 16, n = 0;
    for (;;) {
        shr_proc_info_t *p = realloc(buf, max * sizeof *p);
        if (!p) {
            free(buf);
            return -ENOMEM;
        }
        buf = p;
        int rc = shr_heap_inspect(name, info, buf, max, &n);
        if (rc) {
            free(buf);
            return rc;
        }
        if (n <= max) break;
        max = n + 16;
    }
    *procs = buf;
    *nprocs = n;
    return 0;
}

/* A ".shr_tmp_<pid>_<random>" name: the object a creator builds a heap in
 * before publishing it. Returns the creator's pid, or 0 for other names. */
static int tmp_creator(const char *name)
{
    int pid = 0;
    if (strncmp(name, TMP_PREFIX, strlen(TMP_PREFIX)) != 0) return 0;
    if (sscanf(name + strlen(TMP_PREFIX), "%d_", &pid) != 1 || pid <= 0) return 0;
    return pid;
}

static bool pid_running(int pid)
{
    return kill(pid, 0) == 0 || errno == EPERM;
}

/* ---- create ------------------------------------------------------------ */

static int cmd_create(const cli_cmd_t *cmd, int argc, char **argv)
{
    const char *name = NULL, *capacity = NULL, *mode = NULL, *max_procs = NULL,
               *max_threads = NULL, *lock_timeout = NULL, *gc_log = NULL;
    bool unlink_last = false, guards = false;
    const cli_opt_t opts[] = {
        {"capacity", 'c', NULL, &capacity},
        {"mode", 'm', NULL, &mode},
        {"max-procs", 0, NULL, &max_procs},
        {"max-threads", 0, NULL, &max_threads},
        {"lock-timeout", 0, NULL, &lock_timeout},
        {"gc-log", 0, NULL, &gc_log},
        {"unlink-on-last-close", 0, &unlink_last, NULL},
        {"guards", 0, &guards, NULL},
        {NULL, 0, NULL, NULL},
    };
    shr_heap_options_t o;
    shr_heap_t *heap;
    uint64_t size;
    int rc = cli_parse(cmd, argc, argv, opts, &name);
    if (rc != CLI_OK) return rc;

    shr_heap_options_init(&o);
    if (capacity) {
        if (parse_size(capacity, &size) != 0)
            return cli_usage_error(cmd, "invalid size '%s'", capacity);
        if (size == 0 || size > SHR_MAX_CAPACITY)
            return cli_usage_error(cmd, "capacity '%s' is not between 1 and 1T", capacity);
        o.capacity = (size_t)size;
    }
    if (mode && parse_mode(mode, &o.mode) != 0)
        return cli_usage_error(cmd, "invalid mode '%s' (octal, 1 to 0777)", mode);
    if (max_procs && parse_count(max_procs, SHR_LIMIT_MAX_PROCS, &o.max_procs) != 0)
        return cli_usage_error(cmd, "invalid process limit '%s' (1 to %u)", max_procs,
                               (unsigned)SHR_LIMIT_MAX_PROCS);
    if (max_threads && parse_count(max_threads, SHR_LIMIT_MAX_THREADS, &o.max_threads) != 0)
        return cli_usage_error(cmd, "invalid thread limit '%s' (1 to %u)", max_threads,
                               (unsigned)SHR_LIMIT_MAX_THREADS);
    if (lock_timeout && parse_count(lock_timeout, UINT32_MAX, &o.lock_timeout_ms) != 0)
        return cli_usage_error(cmd, "invalid lock timeout '%s' (milliseconds, at least 1)",
                               lock_timeout);
    if (gc_log) {
        if (strcmp(gc_log, "none") == 0) o.gc_log_records = SHR_GC_LOG_NONE;
        else if (parse_count(gc_log, SHR_GC_LOG_MAX, &o.gc_log_records) != 0)
            return cli_usage_error(cmd, "invalid event log size '%s' (records, 1 to %u, or none)", gc_log,
                                   (unsigned)SHR_GC_LOG_MAX);
    }
    if (unlink_last)
        return cli_usage_error(cmd, "--unlink-on-last-close would remove the heap as soon as "
                                    "this command exits; create such a heap from the "
                                    "program that uses it");
    if (guards) o.flags |= SHR_HEAP_GUARDS;

    rc = shr_heap_create(name, &o, &heap);
    if (rc) {
        cli_fail(cmd, name, rc);
        if (rc == -EINVAL && capacity)
            fprintf(stderr, "sharena: %s: is the capacity large enough for the metadata of "
                            "these limits?\n", cmd->name);
        return CLI_FAIL;
    }
    /* A clean close releases our process entry and leaves the heap. */
    rc = shr_heap_close(heap);
    return rc ? cli_fail(cmd, name, rc) : CLI_OK;
}

/* ---- compact lists ------------------------------------------------------ */

/* A compact list's page (<sharena/solo.h>), for the commands whose heap
 * attach or inspect said SHR_ECOMPACT. 0 with *info, or a code. */
static int solo_info_of(const char *name, shr_solo_info_t *info)
{
    shr_solo_t *s;
    int rc = shr_solo_open(name, &s);
    if (rc) return rc;
    rc = shr_solo_info(s, info);
    shr_solo_close(s);
    return rc;
}

static void solo_print(const char *name, const shr_solo_info_t *si)
{
    size_buf_t a;
    time_buf_t t;
    printf("%s: a compact list (one list of its own, in its segment's first page)\n", name);
    printf("  items        %" PRIu64 "\n", si->items);
    printf("  page used    %" PRIu64 " of %" PRIu64 " bytes\n", si->bytes_used, si->page_size);
    printf("  committed    %s\n", fmt_size(a, si->committed));
    printf("  sets         %" PRIu64 "\n", si->sets);
    printf("  repairs      %" PRIu64 " (sets of dead processes finished)\n", si->repairs);
    printf("  created      %s\n", fmt_time(t, si->created_ns, true));
}

/* ---- ls ---------------------------------------------------------------- */

typedef struct ls_row {
    const char *name;
    int rc;                 /* shr_heap_inspect's result */
    shr_solo_info_t solo;   /* when rc == SHR_ECOMPACT */
    int creator;            /* a temporary object's creator pid, else 0 */
    uint64_t size, used;    /* from stat: bytes, committed bytes */
    shr_heap_info_t info;   /* valid when rc == 0 */
    shr_proc_info_t *procs; /* nprocs entries when rc == 0 */
    size_t nprocs;
} ls_row_t;

/* Fill *row for a directory entry; false when ls does not show it. */
static bool ls_probe(int dirfd, const char *name, bool all, ls_row_t *row)
{
    struct stat st;
    memset(row, 0, sizeof *row);
    if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISREG(st.st_mode))
        return false;
    row->name = name;
    row->size = (uint64_t)st.st_size;
    row->used = (uint64_t)st.st_blocks * 512u;
    if ((row->creator = tmp_creator(name)) != 0) return true;
    row->rc = inspect_all(name, &row->info, &row->procs, &row->nprocs);
    if (row->rc == SHR_ECOMPACT && solo_info_of(name, &row->solo) != 0) return false; /* gone meanwhile */
    switch (row->rc) {
    case SHR_ENOTSHR: /* somebody else's object */
    case -ENOENT:     /* removed since readdir */
        return false;
    case -EACCES:
    case -EPERM:
        return all;
    default:
        return true;
    }
}

static void ls_print(const ls_row_t *row, int width)
{
    size_buf_t a, b;
    time_buf_t t;
    if (row->creator) {
        printf("%-*s  %9s  %9s  %5s  incomplete (creator pid %d %s)\n", width, row->name,
               fmt_size(a, row->size), fmt_size(b, row->used), "-", row->creator,
               pid_running(row->creator) ? "running" : "dead");
        return;
    }
    if (row->rc == SHR_ECOMPACT) {
        printf("%-*s  %9s  %9s  %5s  ok (a compact list of %" PRIu64 " items)\n", width, row->name,
               fmt_size(a, row->size), fmt_size(b, row->used), "-", row->solo.items);
        return;
    }
    if (row->rc) {
        printf("%-*s  %9s  %9s  %5s  error: %s\n", width, row->name, fmt_size(a, row->size),
               fmt_size(b, row->used), "-", shr_strerror(row->rc));
        return;
    }
    char procs[32];
    snprintf(procs, sizeof procs, "%" PRIu32 "/%zu", row->info.nprocs, row->nprocs);
    printf("%-*s  %9s  %9s  %5s  ok\n", width, row->name, fmt_size(a, row->info.capacity),
           fmt_size(b, row->info.committed), procs);
    for (size_t i = 0; i < row->nprocs; i++) {
        const shr_proc_info_t *p = &row->procs[i];
        printf("  pid %-8" PRId32 " %-5s  threads %-4" PRIu32 " attached %s\n", p->pid,
               p->alive ? "alive" : "dead", p->nthreads, fmt_time(t, p->attach_ns, false));
    }
}

static int cmd_ls(const cli_cmd_t *cmd, int argc, char **argv)
{
    bool all = false;
    const cli_opt_t opts[] = {{"all", 'a', &all, NULL}, {NULL, 0, NULL, NULL}};
    struct dirent **ents = NULL;
    ls_row_t *rows = NULL;
    int rc = cli_parse(cmd, argc, argv, opts, NULL), n = 0, nrows = 0, width = 4;
    if (rc != CLI_OK) return rc;

    int dirfd = open(SHM_DIR, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dirfd < 0 || (n = scandirat(dirfd, ".", &ents, NULL, alphasort)) < 0) {
        rc = cli_fail(cmd, SHM_DIR, -errno);
        if (dirfd >= 0) close(dirfd);
        return rc;
    }
    rows = calloc((size_t)n + 1, sizeof *rows);
    if (!rows) {
        rc = cli_fail(cmd, SHM_DIR, -ENOMEM);
        goto out;
    }
    for (int i = 0; i < n; i++) {
        if (!ls_probe(dirfd, ents[i]->d_name, all, &rows[nrows])) continue;
        int len = (int)strlen(ents[i]->d_name);
        if (len > width) width = len;
        nrows++;
    }
    printf("%-*s  %9s  %9s  %5s  %s\n", width, "NAME", "CAPACITY", "COMMITTED", "PROCS",
           "STATE");
    for (int i = 0; i < nrows; i++) ls_print(&rows[i], width);
    rc = CLI_OK;
out:
    for (int i = 0; rows && i < nrows; i++) free(rows[i].procs);
    free(rows);
    for (int i = 0; i < n; i++) free(ents[i]);
    free(ents);
    close(dirfd);
    return rc;
}

/* ---- info -------------------------------------------------------------- */

/* The lock table: every held lock with its holder, and every lock a wait
 * gave up on. */
static void locks_print(const shr_heap_info_t *info)
{
    time_buf_t t;
    int shown = 0;
    for (uint32_t i = 0; i < info->nlocks && i < SHR_INFO_LOCKS; i++) {
        const shr_lock_info_t *l = &info->locks[i];
        const char *name = l->name[0] ? l->name : "(spare)";
        if (!l->held && l->ntimeouts == 0) continue;
        printf("%-15s %s", shown++ ? "" : "locks", name);
        if (l->holder_dead) {
            printf(": its holder died (the next locker repairs)");
        } else if (l->held) {
            printf(": held by tid %" PRId32, l->holder_tid);
            if (l->holder_index)
                printf(", entry %" PRIu32 " pid %" PRId32, l->holder_index - 1, l->holder_pid);
            printf(" (%s)", l->holder_alive == 1   ? "alive"
                            : l->holder_alive == 0 ? "dead"
                                                   : "process entry unknown");
        } else {
            printf(": free");
        }
        if (l->ntimeouts) {
            printf("; %" PRIu64 " wait%s timed out, last %s by pid %" PRId32 " (holder tid %" PRId32,
                   l->ntimeouts, l->ntimeouts == 1 ? "" : "s", fmt_time(t, l->last_timeout_ns, false),
                   l->last_timeout_pid, l->last_timeout_holder_tid);
            if (l->last_timeout_holder_index)
                printf(", entry %" PRIu32, l->last_timeout_holder_index - 1);
            printf(")");
        }
        printf("\n");
    }
    if (!shown) printf("locks           none held\n");
}

static void info_print(const char *name, const shr_heap_info_t *info,
                       const shr_proc_info_t *procs, size_t nprocs)
{
    size_buf_t s;
    time_buf_t t;
    printf("name            %s\n", name);
    if (strcmp(info->name, name) != 0) printf("created as      %s\n", info->name);
    printf("layout version  %" PRIu32 "\n", info->layout_version);
    printf("flags           ");
    print_flags(stdout, info->flags);
    printf("capacity        %" PRIu64 " (%s)\n", info->capacity, fmt_size(s, info->capacity));
    printf("committed       %" PRIu64 " (%s)\n", info->committed, fmt_size(s, info->committed));
    printf("metadata        %" PRIu64 " (%s)\n", info->meta_size, fmt_size(s, info->meta_size));
    printf("created         %s (%" PRIu64 " ns)\n", fmt_time(t, info->created_ns, true),
           info->created_ns);
    printf("processes       %" PRIu32 " alive, %zu entries, at most %" PRIu32 "\n", info->nprocs,
           nprocs, info->max_procs);
    printf("threads         %" PRIu32 " (of live processes), at most %" PRIu32 "\n",
           info->nthreads, info->max_threads);
    printf("lock timeout    %" PRIu32 " ms\n", info->lock_timeout_ms);
    locks_print(info);
    if (nprocs == 0) return;
    printf("\n%5s  %10s  %8s  %-5s  %12s  %7s  %s\n", "INDEX", "GENERATION", "PID", "STATE",
           "START_TIME", "THREADS", "ATTACHED");
    for (size_t i = 0; i < nprocs; i++) {
        const shr_proc_info_t *p = &procs[i];
        printf("%5" PRIu32 "  %10" PRIu32 "  %8" PRId32 "  %-5s  %12" PRIu64 "  %7" PRIu32
               "  %s\n",
               p->index, p->generation, p->pid, p->alive ? "alive" : "dead", p->start_time,
               p->nthreads, fmt_time(t, p->attach_ns, true));
    }
}

static int cmd_info(const cli_cmd_t *cmd, int argc, char **argv)
{
    const char *name = NULL;
    shr_heap_info_t info;
    shr_proc_info_t *procs;
    size_t nprocs;
    int rc = cli_parse(cmd, argc, argv, NULL, &name);
    if (rc != CLI_OK) return rc;
    if ((rc = inspect_all(name, &info, &procs, &nprocs)) == SHR_ECOMPACT) {
        shr_solo_info_t si;
        if ((rc = solo_info_of(name, &si)) != 0) return cli_fail(cmd, name, rc);
        solo_print(name, &si);
        return CLI_OK;
    }
    if (rc != 0) return cli_fail(cmd, name, rc);
    info_print(name, &info, procs, nprocs);
    free(procs);
    return CLI_OK;
}

/* ---- rm ---------------------------------------------------------------- */

/* May rm remove name without --force? 0 yes, else CLI_FAIL (message
 * printed). */
static int rm_check(const cli_cmd_t *cmd, const char *name)
{
    shr_heap_info_t info;
    int creator = tmp_creator(name), rc;
    if (creator) {
        if (!pid_running(creator)) return 0;
        fprintf(stderr, "sharena: %s: %s: heap creation in progress (pid %d); "
                        "use --force to remove it anyway\n", cmd->name, name, creator);
        return CLI_FAIL;
    }
    switch ((rc = shr_heap_inspect(name, &info, NULL, 0, NULL))) {
    case 0:
        if (info.nprocs == 1)
            fprintf(stderr, "sharena: %s: %s: warning: 1 process still attached keeps the "
                            "heap until it closes\n", cmd->name, name);
        else if (info.nprocs > 1)
            fprintf(stderr, "sharena: %s: %s: warning: %" PRIu32 " processes still attached "
                            "keep the heap until they close\n", cmd->name, name, info.nprocs);
        return 0;
    case SHR_ECOMPACT: /* a compact list: nothing attached to tell */
    case SHR_EVERSION: /* ours, damaged or from another version: removable */
    case SHR_ETRUNC:
    case SHR_ECORRUPT:
        return 0;
    case SHR_ENOTSHR:
        fprintf(stderr, "sharena: %s: %s: %s; use --force to remove it anyway\n", cmd->name,
                name, shr_strerror(rc));
        return CLI_FAIL;
    default:
        return cli_fail(cmd, name, rc);
    }
}

static int cmd_rm(const cli_cmd_t *cmd, int argc, char **argv)
{
    const char *name = NULL;
    bool force = false;
    const cli_opt_t opts[] = {{"force", 'f', &force, NULL}, {NULL, 0, NULL, NULL}};
    int rc = cli_parse(cmd, argc, argv, opts, &name);
    if (rc != CLI_OK) return rc;
    if (!force && (rc = rm_check(cmd, name)) != 0) return rc;
    rc = shr_heap_unlink(name);
    return rc ? cli_fail(cmd, name, rc) : CLI_OK;
}

/* ---- help -------------------------------------------------------------- */

static int cmd_help(const cli_cmd_t *cmd, int argc, char **argv)
{
    const char *topic = NULL;
    const cli_cmd_t *c;
    int rc = cli_parse(cmd, argc, argv, NULL, &topic);
    if (rc != CLI_OK) return rc;
    if (!topic) {
        print_main_help(stdout);
        return CLI_OK;
    }
    if (!(c = find_cmd(topic))) return cli_usage_error(cmd, "unknown command '%s'", topic);
    print_cmd_help(c, stdout);
    return CLI_OK;
}

/* ---- stats and check: attach, ask the allocator, detach ------------------- */

/* Durations for people: ns, us, ms or s with three digits. */
static const char *fmt_ns(uint64_t ns, char *buf, size_t n)
{
    if (ns < 1000) snprintf(buf, n, "%" PRIu64 " ns", ns);
    else if (ns < 1000000) snprintf(buf, n, "%.1f us", ns / 1e3);
    else if (ns < 1000000000) snprintf(buf, n, "%.1f ms", ns / 1e6);
    else snprintf(buf, n, "%.2f s", ns / 1e9);
    return buf;
}

/* The cycle collector's part of `sharena stats`: one line per generation. */
static int gc_stats_print(shr_heap_t *h, FILE *out)
{
    shr_gc_stats_t st;
    int64_t count[3];
    uint32_t thr[3];
    int rc = shr_gc_get_stats(h, &st);
    if (rc == 0) rc = shr_gc_get_count(h, count);
    if (rc == 0) rc = shr_gc_get_threshold(h, thr);
    if (rc) return rc;
    char a[32], b[32], c[32];
    fprintf(out, "\n# cycle collector%s\n", thr[0] ? "" : " (automatic collections disabled: threshold 0)");
    fprintf(out, "%-10s %9s %9s %11s %11s %13s %10s %10s %10s\n", "generation", "threshold", "count",
            "collections", "collected", "uncollectable", "pause", "max pause", "max stop");
    for (int g = 0; g < 3; g++) {
        const shr_gc_gen_stats_t *s = &st.gen[g];
        uint64_t avg = s->collections ? s->pause_ns_total / s->collections : 0;
        fprintf(out, "%-10d %9" PRIu32 " %9" PRId64 " %11" PRIu64 " %11" PRIu64 " %13" PRIu64 " %10s %10s %10s\n", g,
                thr[g], count[g], s->collections, s->collected, s->uncollectable, fmt_ns(avg, a, sizeof a),
                fmt_ns(s->pause_ns_max, b, sizeof b), fmt_ns(s->ttsp_ns_max, c, sizeof c));
    }
    fprintf(out, "long-lived: %" PRIu64 " after the last full collection, %" PRIu64 " pending\n",
            st.long_lived_total, st.long_lived_pending);
    fprintf(out, "automatic collections that could not stop the world: %" PRIu64 "\n", st.auto_failures);
    /* The measurements: each phase's mean, then the pause histogram. */
    fprintf(out, "%-10s", "phase mean");
    for (int p = 0; p < SHR_GC_NPHASES; p++) fprintf(out, " %10s", shr_gc_phase_name(p));
    fprintf(out, " %11s %11s %12s\n", "candidates", "edges", "bytes freed");
    for (int g = 0; g < 3; g++) {
        const shr_gc_gen_stats_t *s = &st.gen[g];
        uint64_t n = s->collections ? s->collections : 1;
        fprintf(out, "%-10d", g);
        for (int p = 0; p < SHR_GC_NPHASES; p++) fprintf(out, " %10s", fmt_ns(s->phase_ns[p] / n, a, sizeof a));
        fprintf(out, " %11" PRIu64 " %11" PRIu64 " %12" PRIu64 "\n", s->candidates, s->edges, s->bytes_freed);
    }
    for (int g = 0; g < 3; g++) {
        fprintf(out, "pauses of generation %d:", g);
        bool any = false;
        for (int k = 0; k < SHR_GC_HIST_BUCKETS; k++) {
            if (!st.gen[g].pause_hist[k]) continue;
            any = true;
            fprintf(out, " [%s,%s) %" PRIu64, fmt_ns(k ? (uint64_t)1 << k : 0, a, sizeof a),
                    fmt_ns((uint64_t)2 << k, c, sizeof c), st.gen[g].pause_hist[k]);
        }
        fprintf(out, "%s\n", any ? "" : " none");
    }
    fprintf(out, "measuring window: opened at %" PRIu64 ".%09" PRIu64 " (CLOCK_REALTIME, %s), %" PRIu64 " resets ever\n",
            st.window_start_ns / 1000000000u, st.window_start_ns % 1000000000u,
            st.resets ? "the last reset" : "the heap's creation", st.resets);
    return 0;
}

static void gc_result_print(const char *name, const shr_gc_result_t *r)
{
    char a[32], b[32], c[32];
    printf("%s: generation %d: %" PRIu64 " collected, %" PRIu64 " uncollectable, %" PRIu64
           " examined (%" PRIu64 " of types this process cannot traverse kept); pause %s, time to stop %s, "
           "total %s; %" PRIu32 " threads waited for, %" PRIu32 " dead skipped\n",
           name, r->generation, r->collected, r->uncollectable, r->candidates, r->untraversable,
           fmt_ns(r->pause_ns, a, sizeof a), fmt_ns(r->ttsp_ns, b, sizeof b), fmt_ns(r->total_ns, c, sizeof c),
           r->stopped_threads, r->dead_skipped);
    printf("%s: phases:", name);
    for (int p = 0; p < SHR_GC_NPHASES; p++)
        printf(" %s %s%s", shr_gc_phase_name(p), fmt_ns(r->phase_ns[p], a, sizeof a), p + 1 < SHR_GC_NPHASES ? "," : ";");
    printf(" %" PRIu64 " edges visited, %" PRIu64 " bytes freed\n", r->edges, r->bytes_freed);
}

/* A threshold operand: a decimal number 0..UINT32_MAX. */
static bool parse_u32(const char *s, uint32_t *out)
{
    if (!*s || strlen(s) > 10) return false;
    uint64_t v = 0;
    for (const char *p = s; *p; p++) {
        if (*p < '0' || *p > '9') return false;
        v = v * 10 + (uint64_t)(*p - '0');
    }
    if (v > UINT32_MAX) return false;
    *out = (uint32_t)v;
    return true;
}

/* An algorithm's name on the command line: SHR_GC_*, or -1. */
static int parse_algorithm(const char *s)
{
    if (strcmp(s, "trial") == 0 || strcmp(s, "trial-deletion") == 0) return SHR_GC_TRIAL_DELETION;
    if (strcmp(s, "bacon-rajan") == 0 || strcmp(s, "baconrajan") == 0) return SHR_GC_BACON_RAJAN;
    if (strcmp(s, "marksweep") == 0 || strcmp(s, "mark-sweep") == 0) return SHR_GC_MARK_SWEEP;
    return -1;
}

/* `sharena gc stats NAME`, `gc threshold NAME [T0 T1 T2]`, `gc algorithm
 * NAME [A]`, `gc freeze NAME`, `gc unfreeze NAME`, `gc reset NAME`. */
static int cmd_gc_other(const cli_cmd_t *cmd, int argc, char **argv)
{
    const char *sub = argv[1];
    bool threshold = strcmp(sub, "threshold") == 0;
    for (int i = 2; i < argc; i++)
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            print_cmd_help(cmd, stdout);
            return CLI_HELP;
        }
    if (argc < 3) return cli_usage_error(cmd, "missing NAME");
    if (argv[2][0] == '-') return cli_usage_error(cmd, "unknown option '%s'", argv[2]);
    const char *name = argv[2];
    uint32_t t[3];
    bool algorithm = strcmp(sub, "algorithm") == 0;
    int alg = -1;
    if (algorithm) {
        if (argc > 4) return cli_usage_error(cmd, "algorithm takes NAME and at most one algorithm");
        if (argc == 4 && (alg = parse_algorithm(argv[3])) < 0)
            return cli_usage_error(cmd, "invalid algorithm '%s' (trial, bacon-rajan or marksweep)", argv[3]);
    } else if (threshold) {
        if (argc != 3 && argc != 6) return cli_usage_error(cmd, "threshold takes NAME and none or three numbers");
        for (int i = 0; i < argc - 3; i++)
            if (!parse_u32(argv[3 + i], &t[i]))
                return cli_usage_error(cmd, "invalid threshold '%s' (0 to 4294967295)", argv[3 + i]);
    } else if (argc != 3) {
        return cli_usage_error(cmd, "unexpected argument '%s'", argv[3]);
    }
    shr_heap_t *h;
    int rc = shr_heap_attach(name, &h);
    if (rc != 0) return cli_fail(cmd, name, rc);
    int64_t n = 0, frozen = 0;
    if (strcmp(sub, "stats") == 0) {
        frozen = shr_gc_get_freeze_count(h);
        printf("%s:", name);
        rc = frozen < 0 ? (int)frozen : gc_stats_print(h, stdout);
        if (rc == 0) printf("frozen (the permanent generation, never collected): %" PRId64 "\n", frozen);
        if (rc == 0) printf("algorithm of automatic collections: %s\n", shr_gc_algorithm_name(shr_gc_get_algorithm(h)));
    } else if (strcmp(sub, "reset") == 0) {
        rc = shr_gc_stats_reset(h);
        if (rc == 0) printf("%s: statistics reset: a new measuring window\n", name);
    } else if (algorithm) {
        if (alg >= 0) rc = shr_gc_set_algorithm(h, alg);
        int now = rc == 0 ? shr_gc_get_algorithm(h) : rc;
        if (now < 0) rc = now;
        else printf("%s: algorithm %s\n", name, shr_gc_algorithm_name(now));
    } else if (threshold) {
        if (argc == 6) rc = shr_gc_set_threshold(h, t);
        if (rc == 0) rc = shr_gc_get_threshold(h, t);
        if (rc == 0)
            printf("%s: threshold %" PRIu32 " %" PRIu32 " %" PRIu32 "%s\n", name, t[0], t[1], t[2],
                   t[0] ? "" : " (automatic collections disabled)");
    } else {
        bool freeze = strcmp(sub, "freeze") == 0;
        n = freeze ? shr_gc_freeze(h) : shr_gc_unfreeze(h);
        frozen = n < 0 ? n : shr_gc_get_freeze_count(h);
        if (n < 0) rc = (int)n;
        else if (frozen < 0) rc = (int)frozen;
        else
            printf("%s: %" PRId64 " objects %s, %" PRId64 " in the permanent generation\n", name, n,
                   freeze ? "frozen" : "unfrozen into generation 2", frozen);
    }
    shr_heap_close(h);
    return rc ? cli_fail(cmd, name, rc) : CLI_OK;
}

/* N of `gc build`: a decimal count, or one written with an exponent (1e6).
 * false for anything else or a value above UINT64_MAX. */
static bool parse_n(const char *s, uint64_t *out)
{
    char *end;
    if (!isdigit((unsigned char)s[0])) return false;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno) return false;
    if (*end == 'e' || *end == 'E') {
        char *e2;
        if (!isdigit((unsigned char)end[1])) return false;
        unsigned long long k = strtoull(end + 1, &e2, 10);
        if (*e2 || k > 19) return false;
        while (k--) {
            if (v > UINT64_MAX / 10) return false;
            v *= 10;
        }
        end = e2;
    }
    if (*end) return false;
    *out = v;
    return true;
}

/* `sharena gc build NAME KIND N [--seed S] [--as ROOT] [--garbage] [--auto]
 * [--live S] [--rate P] [--cycle L]`: shr_graph_build into an existing heap.
 * Every argument is checked, and the root's name found free, before the heap
 * is touched: a refused command changes nothing. argv[0] is "build". */
static int cmd_gc_build(const cli_cmd_t *cmd, int argc, char **argv)
{
    const char *pos[3] = {NULL, NULL, NULL}, *seed_s = "42", *as = NULL, *live_s = NULL, *rate_s = NULL,
               *cycle_s = NULL;
    bool garbage = false, autoc = false;
    const cli_opt_t opts[] = {{"seed", 0, NULL, &seed_s}, {"as", 0, NULL, &as},       {"garbage", 0, &garbage, NULL},
                              {"auto", 0, &autoc, NULL},  {"live", 0, NULL, &live_s}, {"rate", 0, NULL, &rate_s},
                              {"cycle", 0, NULL, &cycle_s}, {NULL, 0, NULL, NULL}};
    int np = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            print_cmd_help(cmd, stdout);
            return CLI_HELP;
        }
        if (a[0] == '-' && a[1] == '-' && a[2]) {
            const char *eq = strchr(a + 2, '=');
            size_t len = eq ? (size_t)(eq - (a + 2)) : strlen(a + 2);
            const cli_opt_t *o = find_long(opts, a + 2, len);
            if (!o) return cli_usage_error(cmd, "unknown option '%.*s'", (int)len + 2, a);
            int rc = take_opt(cmd, o, eq ? eq + 1 : NULL, argc, argv, &i);
            if (rc != CLI_OK) return rc;
        } else if (a[0] == '-' && a[1]) {
            return cli_usage_error(cmd, "unknown option '%s'", a);
        } else if (np == 3) {
            return cli_usage_error(cmd, "unexpected argument '%s'", a);
        } else {
            pos[np++] = a;
        }
    }
    if (np < 3) return cli_usage_error(cmd, "build takes NAME KIND N");
    const char *name = pos[0];
    int kind = shr_graph_kind(pos[1]);
    if (kind < 0)
        return cli_usage_error(cmd, "unknown graph kind '%s' (live_flat, live_graph, ring2, ring100, mix, tree, churn)",
                               pos[1]);
    uint64_t n, seed, live = 0, lo = kind == SHR_GRAPH_RING2 ? 2 : kind == SHR_GRAPH_RING100 ? 100
                                                            : kind == SHR_GRAPH_MIX   ? 10 : 1;
    uint64_t hi = kind == SHR_GRAPH_CHURN ? (uint64_t)1 << 32 : SHR_GRAPH_MAX_N;
    if (!parse_n(pos[2], &n) || n < lo || n > hi)
        return cli_usage_error(cmd, "invalid N '%s' for %s (%" PRIu64 " to %" PRIu64 " objects)", pos[2], pos[1], lo,
                               hi);
    if (!parse_n(seed_s, &seed)) return cli_usage_error(cmd, "invalid seed '%s' (0 to 2^64 - 1)", seed_s);
    shr_graph_churn_t churn = SHR_GRAPH_CHURN_INIT;
    if ((live_s || rate_s || cycle_s) && kind != SHR_GRAPH_CHURN)
        return cli_usage_error(cmd, "--live, --rate and --cycle are churn's");
    uint32_t v;
    if (live_s && (!parse_n(live_s, &live) || live < 1 || live > SHR_GRAPH_MAX_N))
        return cli_usage_error(cmd, "invalid --live '%s' (1 to %u table slots)", live_s, SHR_GRAPH_MAX_N);
    if (kind == SHR_GRAPH_CHURN && !live && n / 10 > SHR_GRAPH_MAX_N)
        return cli_usage_error(cmd, "N of %" PRIu64 " needs --live (n / 10 is above %u)", n, SHR_GRAPH_MAX_N);
    churn.live = live;
    if (rate_s) {
        if (strcmp(rate_s, "0") == 0) churn.garbage_pct = 0;
        else if (parse_count(rate_s, 100, &v) == 0) churn.garbage_pct = v;
        else return cli_usage_error(cmd, "invalid --rate '%s' (0 to 100 percent)", rate_s);
    }
    if (cycle_s) {
        if (parse_count(cycle_s, SHR_GRAPH_CYCLE_MAX, &v) != 0)
            return cli_usage_error(cmd, "invalid --cycle '%s' (1 to %u)", cycle_s, SHR_GRAPH_CYCLE_MAX);
        churn.cycle = v;
    }
    if (as && garbage) return cli_usage_error(cmd, "--as names the root that --garbage drops");
    bool has_root = kind != SHR_GRAPH_RING2 && kind != SHR_GRAPH_RING100;
    if (as && !has_root) return cli_usage_error(cmd, "%s is garbage only: it has no root for --as", pos[1]);
    const char *root_name = as ? as : pos[1];
    bool publish = has_root && !garbage;

    shr_heap_t *h;
    int rc = shr_heap_attach(name, &h);
    if (rc != 0) return cli_fail(cmd, name, rc);
    shr_ref_t root = {0};
    if (publish) {   /* the name must be free and valid before anything is made */
        rc = shr_obj_lookup(h, root_name, &root);
        if (rc == 0) {
            shr_obj_release(h, root);
            shr_heap_close(h);
            fprintf(stderr, "sharena: gc: %s: the name '%s' is taken (choose another with --as, or "
                            "'sharena gc drop %s %s')\n", name, root_name, name, root_name);
            return CLI_FAIL;
        }
        if (rc != -ENOENT) {
            shr_heap_close(h);
            fprintf(stderr, "sharena: gc: %s: root name '%s': %s\n", name, root_name, shr_strerror(rc));
            return CLI_FAIL;
        }
        root.off = 0;
    }
    shr_gc_stats_t before, after;
    shr_graph_info_t gi = {.size = sizeof gi};
    bool was_enabled = shr_gc_isenabled(h) == 1;
    if (!autoc) shr_gc_disable(h);   /* this process's automatic collections only */
    shr_gc_get_stats(h, &before);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    rc = kind == SHR_GRAPH_CHURN ? shr_graph_build_churn(h, n, seed, &churn, &root, &gi)
                                 : shr_graph_build(h, kind, n, seed, &root, &gi);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    shr_gc_get_stats(h, &after);
    if (was_enabled) shr_gc_enable(h);
    if (rc != 0) {
        shr_heap_close(h);
        fprintf(stderr, "sharena: gc: %s: building %s of %" PRIu64 ": %s (what it had linked into cycles is "
                        "garbage for the next collection)\n", name, pos[1], n, shr_strerror(rc));
        return CLI_FAIL;
    }
    char tb[32];
    uint64_t ns = (uint64_t)(t1.tv_sec - t0.tv_sec) * 1000000000u + (uint64_t)t1.tv_nsec - (uint64_t)t0.tv_nsec;
    printf("%s: built %s of %" PRIu64 " (seed %" PRIu64 ") in %s: %" PRIu64 " objects, %" PRIu64 " live, %" PRIu64
           " garbage, %" PRIu64 " edges, digest 0x%016" PRIx64 "\n", name, pos[1], n, seed, fmt_ns(ns, tb, sizeof tb),
           gi.objects, gi.live, gi.garbage, gi.edges, gi.digest);
    if (kind == SHR_GRAPH_CHURN)
        printf("%s: churn: a table of %" PRIu64 ", %u%% of the stream garbage in rings of %u; %" PRIu64
               " replaced table objects freed by counts\n", name, gi.live - 1, churn.garbage_pct, churn.cycle,
               gi.objects - gi.live - gi.garbage);
    uint64_t colls = 0, coll = 0;
    for (int g = 0; g < 3; g++) {
        colls += after.gen[g].collections - before.gen[g].collections;
        coll += after.gen[g].collected - before.gen[g].collected;
    }
    if (colls)
        printf("%s: %" PRIu64 " automatic collections during the build, %" PRIu64 " objects collected\n", name, colls,
               coll);
    if (publish) {
        rc = shr_obj_publish(h, root_name, root);
        shr_obj_release(h, root);
        if (rc != 0) {
            shr_heap_close(h);
            fprintf(stderr, "sharena: gc: %s: publishing '%s': %s (the graph is garbage for the next collection)\n",
                    name, root_name, shr_strerror(rc));
            return CLI_FAIL;
        }
        printf("%s: root published as '%s' ('sharena gc drop %s %s' makes the graph garbage)\n", name, root_name,
               name, root_name);
    } else if (root.off) {
        shr_obj_release(h, root);
        printf("%s: root released: what its count did not free is garbage for the next collection\n", name);
    } else {
        printf("%s: no live part: the garbage waits for the next collection\n", name);
    }
    shr_heap_close(h);
    return CLI_OK;
}

/* `sharena gc drop NAME ROOT`: unpublish ROOT (shr_obj_unpublish). */
static int cmd_gc_drop(const cli_cmd_t *cmd, int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            print_cmd_help(cmd, stdout);
            return CLI_HELP;
        }
        if (argv[i][0] == '-') return cli_usage_error(cmd, "unknown option '%s'", argv[i]);
    }
    if (argc != 3) return cli_usage_error(cmd, argc < 3 ? "drop takes NAME ROOT" : "unexpected argument '%s'",
                                          argv[argc < 3 ? 0 : 3]);
    shr_heap_t *h;
    int rc = shr_heap_attach(argv[1], &h);
    if (rc != 0) return cli_fail(cmd, argv[1], rc);
    rc = shr_obj_unpublish(h, argv[2]);
    shr_heap_close(h);
    if (rc == -ENOENT || rc == SHR_ETYPE) {
        fprintf(stderr, "sharena: gc: %s: %s '%s'\n", argv[1],
                rc == -ENOENT ? "no object is published as" : "no object (a plain root) is named", argv[2]);
        return CLI_FAIL;
    }
    if (rc != 0) return cli_fail(cmd, argv[1], rc);
    printf("%s: '%s' unpublished: what only it held is garbage for the next collection (or freed by counts)\n",
           argv[1], argv[2]);
    return CLI_OK;
}

/* One line of `sharena gc log`: time (UTC), sequence, pid, generation,
 * event and its numbers. */
static void gc_event_print(const shr_gc_event_t *e)
{
    char t[40], a[32], b[32];
    time_t sec = (time_t)(e->time_ns / 1000000000u);
    struct tm tm;
    gmtime_r(&sec, &tm);
    strftime(t, sizeof t, "%Y-%m-%dT%H:%M:%S", &tm);
    printf("%s.%06" PRIu64 "Z #%" PRIu64 " pid %" PRIu32 " gen ", t, (e->time_ns % 1000000000u) / 1000u, e->seq,
           e->pid);
    if (e->generation < 0) printf("- ");
    else printf("%d ", e->generation);
    const char *name = shr_gc_event_name(e->type);
    printf("%s", name ? name : "?");
    switch (e->type) {
    case SHR_GC_EV_BEGIN: {
        const char *what = e->a[0] == SHR_GC_TRIAL_DELETION ? "trial-deletion"
                           : e->a[0] == SHR_GC_MARK_SWEEP   ? "mark-sweep"
                           : e->a[0] == SHR_GC_EV_OP_VERIFY ? "verify"
                           : e->a[0] == SHR_GC_EV_OP_STOPPED ? "stopped-op"
                                                            : "?";
        printf(" %s%s collection=%" PRIu64, what, e->a[1] ? " automatic" : "", e->a[2]);
        break;
    }
    case SHR_GC_EV_STOP: printf(" slots=%" PRIu64, e->a[0]); break;
    case SHR_GC_EV_STOPPED:
        printf(" ttsp=%s waited=%" PRIu64 " dead=%" PRIu64, fmt_ns(e->a[0], a, sizeof a), e->a[1], e->a[2]);
        break;
    case SHR_GC_EV_PHASE: {
        const char *ph = shr_gc_phase_name(e->phase);
        printf(" %s %s", ph ? ph : "?", fmt_ns(e->a[0], a, sizeof a));
        if (e->phase == SHR_GC_PHASE_WALK) printf(" candidates=%" PRIu64, e->a[1]);
        if (e->phase == SHR_GC_PHASE_WALK && e->a[2]) printf(" edges=%" PRIu64, e->a[2]);
        if (e->phase == SHR_GC_PHASE_SUBTRACT) printf(" edges=%" PRIu64, e->a[1]);
        if (e->phase == SHR_GC_PHASE_PROMOTE) printf(" survivors=%" PRIu64, e->a[1]);
        if (e->phase == SHR_GC_PHASE_FREE) printf(" freed=%" PRIu64 " bytes=%" PRIu64, e->a[1], e->a[2]);
        break;
    }
    case SHR_GC_EV_RESTARTED: printf(" pause=%s", fmt_ns(e->a[0], a, sizeof a)); break;
    case SHR_GC_EV_END:
        printf(" collected=%" PRIu64 " uncollectable=%" PRIu64 " bytes=%" PRIu64 " total=%s", e->a[0], e->a[1],
               e->a[2], fmt_ns(e->a[3], b, sizeof b));
        break;
    case SHR_GC_EV_TIMEOUT:
        printf(" waited=%s slot=%" PRIu64 " tid=%" PRIu64, fmt_ns(e->a[0], a, sizeof a), e->a[1], e->a[2]);
        break;
    case SHR_GC_EV_DIED: printf(" request=0x%" PRIx64, e->a[0]); break;
    case SHR_GC_EV_RECOVERED: printf(" request=0x%" PRIx64 " by=%s", e->a[0], e->a[1] ? "gate" : "collector"); break;
    case SHR_GC_EV_LEASES: printf(" released=%" PRIu64, e->a[0]); break;
    case SHR_GC_EV_THRESHOLD: printf(" count=%" PRIu64 " threshold=%" PRIu64, e->a[0], e->a[1]); break;
    case SHR_GC_EV_FREEZE:
    case SHR_GC_EV_UNFREEZE: printf(" moved=%" PRIu64, e->a[0]); break;
    default: break;
    }
    printf("\n");
}

static volatile sig_atomic_t log_stop;
static void log_on_signal(int sig)
{
    (void)sig;
    log_stop = 1;
}

/* `sharena gc log NAME [--follow]`: the event log, oldest first; --follow
 * then waits for new records until interrupted. */
static int cmd_gc_log(const cli_cmd_t *cmd, int argc, char **argv)
{
    const char *name = NULL;
    bool follow = false;
    const cli_opt_t opts[] = {{"follow", 'f', &follow, NULL}, {NULL, 0, NULL, NULL}};
    int rc = cli_parse(cmd, argc - 1, argv + 1, opts, &name);
    if (rc != CLI_OK) return rc;
    if (!name) return cli_usage_error(cmd, "missing NAME");
    shr_heap_t *h;
    if ((rc = shr_heap_attach(name, &h)) != 0) return cli_fail(cmd, name, rc);
    shr_gc_log_info_t li;
    if ((rc = shr_gc_log_info(h, &li)) != 0 || li.records == 0) {
        shr_heap_close(h);
        if (rc) return cli_fail(cmd, name, rc);
        fprintf(stderr, "sharena: gc: %s: the heap has no event log (created with gc_log_records = none)\n", name);
        return CLI_FAIL;
    }
    if (follow) {
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = log_on_signal;
        sigaction(SIGINT, &sa, NULL);
        sigaction(SIGTERM, &sa, NULL);
    }
    shr_gc_event_t ev[256];
    uint64_t next = 0, expect = 0;
    for (;;) {
        uint64_t from = next;
        int64_t n = shr_gc_log_read(h, from, ev, 256, &next);
        if (n < 0) {
            rc = (int)n;
            break;
        }
        for (int64_t i = 0; i < n; i++) {
            if (expect && ev[i].seq > expect)
                printf("... %" PRIu64 " records not shown (overwritten, or torn by a writer that died)\n",
                       ev[i].seq - expect);
            gc_event_print(&ev[i]);
            expect = ev[i].seq + 1;
        }
        fflush(stdout);
        if (n == 256) continue;
        if (!follow || log_stop) break;
        struct timespec ts = {0, 100 * 1000 * 1000};
        nanosleep(&ts, NULL);
        if (log_stop) break;
    }
    shr_heap_close(h);
    return rc ? cli_fail(cmd, name, rc) : CLI_OK;
}

/* `sharena gc verify NAME`: the verifier's report; exit 1 when a count is
 * below its true value or a reference dangles. */
static int cmd_gc_verify(const cli_cmd_t *cmd, int argc, char **argv)
{
    const char *name = NULL;
    int rc = cli_parse(cmd, argc - 1, argv + 1, NULL, &name);
    if (rc != CLI_OK) return rc;
    if (!name) return cli_usage_error(cmd, "missing NAME");
    shr_heap_t *h;
    if ((rc = shr_heap_attach(name, &h)) != 0) return cli_fail(cmd, name, rc);
    shr_gc_verify_result_t v = SHR_GC_VERIFY_INIT;
    rc = shr_gc_verify(h, &v);
    shr_heap_close(h);
    if (rc != 0 && rc != SHR_ECORRUPT) return cli_fail(cmd, name, rc);
    char p[32];
    printf("%s: %" PRIu64 " objects: %" PRIu64 " live, %" PRIu64 " unreachable (%" PRIu64 " bytes); %" PRIu64
           " counts above their true value (%" PRIu64 " references leaked), %" PRIu64 " below, %" PRIu64
           " dangling; references from objects %" PRIu64 ", roots %" PRIu64 ", leases %" PRIu64 "; %" PRIu64
           " outside the object pools, %" PRIu64 " not traversable%s; pause %s\n",
           name, v.objects, v.live, v.unreachable, v.unreachable_bytes, v.above, v.excess, v.below, v.dangling,
           v.edges, v.root_refs, v.lease_refs, v.external, v.untraversable,
           v.incomplete ? "; a lease table may have been missed" : "", fmt_ns(v.pause_ns, p, sizeof p));
    return rc ? cli_fail(cmd, name, rc) : CLI_OK;
}

/* `sharena gc collect NAME [--generation N] [--algorithm A] [--repair]`,
 * `gc verify NAME`, and the others above. */
static int cmd_gc(const cli_cmd_t *cmd, int argc, char **argv)
{
    const char *name = NULL, *gen = NULL, *algo = "trial";
    bool repair = false;
    if (argc >= 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
        print_cmd_help(cmd, stdout);
        return CLI_HELP;
    }
    if (argc < 2)
        return cli_usage_error(cmd,
                               "missing subcommand (collect, verify, stats, reset, log, threshold, algorithm, freeze, unfreeze, build, drop)");
    if (strcmp(argv[1], "build") == 0) return cmd_gc_build(cmd, argc - 1, argv + 1);
    if (strcmp(argv[1], "drop") == 0) return cmd_gc_drop(cmd, argc - 1, argv + 1);
    if (strcmp(argv[1], "stats") == 0 || strcmp(argv[1], "threshold") == 0 || strcmp(argv[1], "freeze") == 0 ||
        strcmp(argv[1], "algorithm") == 0 ||
        strcmp(argv[1], "unfreeze") == 0 || strcmp(argv[1], "reset") == 0)
        return cmd_gc_other(cmd, argc, argv);
    if (strcmp(argv[1], "verify") == 0) return cmd_gc_verify(cmd, argc, argv);
    if (strcmp(argv[1], "log") == 0) return cmd_gc_log(cmd, argc, argv);
    if (strcmp(argv[1], "collect") != 0) return cli_usage_error(cmd, "unknown subcommand '%s'", argv[1]);
    const cli_opt_t opts[] = {{"generation", 'g', NULL, &gen},
                              {"algorithm", 'a', NULL, &algo},
                              {"repair", 'r', &repair, NULL},
                              {NULL, 0, NULL, NULL}};
    int rc = cli_parse(cmd, argc - 1, argv + 1, opts, &name);
    if (rc != CLI_OK) return rc;
    if (!name) return cli_usage_error(cmd, "missing NAME");
    int a;
    if ((a = parse_algorithm(algo)) < 0)
        return cli_usage_error(cmd, "invalid algorithm '%s' (trial, bacon-rajan or marksweep)", algo);
    if (repair && a != SHR_GC_MARK_SWEEP) return cli_usage_error(cmd, "--repair needs --algorithm=marksweep");
    if (!gen) gen = "2";
    if (strlen(gen) != 1 || gen[0] < '0' || gen[0] > '2')
        return cli_usage_error(cmd, "invalid generation '%s' (0, 1 or 2)", gen);
    if (a == SHR_GC_MARK_SWEEP && gen[0] != '2')
        return cli_usage_error(cmd, "the mark-sweep traces the whole heap: generation 2 only");
    shr_heap_t *h;
    if ((rc = shr_heap_attach(name, &h)) != 0) return cli_fail(cmd, name, rc);
    shr_gc_result_t r = SHR_GC_RESULT_INIT;
    int64_t n = shr_gc_collect_with(h, a | (repair ? SHR_GC_REPAIR : 0), gen[0] - '0', &r);
    shr_heap_close(h);
    if (n < 0) return cli_fail(cmd, name, (int)n);
    gc_result_print(name, &r);
    if (a == SHR_GC_MARK_SWEEP)
        printf("%s: mark-sweep: %s trace; %" PRIu64 " counts repaired (%" PRIu64 " references)\n", name,
               r.exact ? "an exact" : "a conservative", r.repaired, r.repaired_refs);
    return CLI_OK;
}

/* `sharena recover NAME`: reclaim the dead, release their references,
 * collect. */
static int cmd_recover(const cli_cmd_t *cmd, int argc, char **argv)
{
    const char *name = NULL;
    shr_heap_t *h;
    int rc = cli_parse(cmd, argc, argv, NULL, &name);
    if (rc != CLI_OK) return rc;
    if ((rc = shr_heap_attach(name, &h)) != 0) return cli_fail(cmd, name, rc);
    shr_lease_stats_t after;
    int reclaimed = shr_heap_recover(h); /* attaching swept already: this finds what died since */
    shr_lease_stats(h, &after);
    shr_gc_result_t r = SHR_GC_RESULT_INIT;
    int64_t n = reclaimed < 0 ? reclaimed : shr_gc_collect(h, 2, &r);
    shr_heap_close(h);
    if (n < 0) return cli_fail(cmd, name, (int)n);
    printf("%s: dead processes reclaimed, %" PRIu64 " references released for the dead (in all)\n", name,
           after.released_for_dead);
    gc_result_print(name, &r);
    return CLI_OK;
}

static int cmd_stats(const cli_cmd_t *cmd, int argc, char **argv)
{
    const char *name = NULL;
    shr_heap_t *h;
    int rc = cli_parse(cmd, argc, argv, NULL, &name);
    if (rc != CLI_OK) return rc;
    if ((rc = shr_heap_attach(name, &h)) == SHR_ECOMPACT) {
        shr_solo_info_t si;
        if ((rc = solo_info_of(name, &si)) != 0) return cli_fail(cmd, name, rc);
        solo_print(name, &si);
        return CLI_OK;
    }
    if (rc != 0) return cli_fail(cmd, name, rc);
    rc = shr_heap_stats_print(h, stdout);
    if (rc == 0) rc = gc_stats_print(h, stdout);
    shr_heap_close(h);
    return rc ? cli_fail(cmd, name, rc) : CLI_OK;
}

static int cmd_check(const cli_cmd_t *cmd, int argc, char **argv)
{
    const char *name = NULL;
    shr_heap_t *h;
    int rc = cli_parse(cmd, argc, argv, NULL, &name);
    if (rc != CLI_OK) return rc;
    if ((rc = shr_heap_attach(name, &h)) == SHR_ECOMPACT) {
        /* A compact list: its page, under its lock (which repairs a dead
         * writer's set first). */
        shr_solo_t *s;
        if ((rc = shr_solo_open(name, &s)) != 0) return cli_fail(cmd, name, rc);
        rc = shr_solo_check(s, stderr);
        shr_solo_close(s);
        if (rc < 0) return cli_fail(cmd, name, rc);
        if (rc > 0) return cli_fail(cmd, name, SHR_ECORRUPT);
        printf("%s: ok (a compact list)\n", name);
        return CLI_OK;
    }
    if (rc != 0) return cli_fail(cmd, name, rc);
    /* Reclaim the dead first: their pools are orphaned, their locks repaired. */
    int reclaimed = shr_heap_recover(h);
    rc = shr_heap_check_report(h, stderr);
    shr_heap_close(h);
    if (rc) return cli_fail(cmd, name, rc);
    printf("%s: ok", name);
    if (reclaimed > 0) printf(" (%d dead entries reclaimed)", reclaimed);
    printf("\n");
    return CLI_OK;
}

/* ---- the command table -------------------------------------------------- */

static const cli_cmd_t cmds[] = {
    {"create", cmd_create, "NAME", false,
     "NAME [--capacity SIZE] [--mode OCTAL] [--max-procs N] [--max-threads N]\n"
     "               [--lock-timeout MS] [--gc-log N|none] [--guards]",
     "create a heap",
     "Create the heap NAME in " SHM_DIR " and detach from it: the heap stays, with\n"
     "no process attached, until 'sharena rm NAME'. NAME has no leading slash.\n"
     "\n"
     "options:\n"
     "  -c, --capacity SIZE     address space to reserve (default 1G, at most 1T);\n"
     "                          bytes, or a number with a binary suffix K, M, G, T\n"
     "                          (Ki/KiB also accepted). Memory is used only as the\n"
     "                          heap fills.\n"
     "  -m, --mode OCTAL        permission bits of the shm object (default 0600)\n"
     "      --max-procs N       process entries: attachments at once, a fork child\n"
     "                          that uses the heap counting as one (default 128,\n"
     "                          at most 4096)\n"
     "      --max-threads N     thread slots: threads using the heap at once, over\n"
     "                          all processes (default 512, at most 65536). The\n"
     "                          tables grow the metadata: a small heap wants small\n"
     "                          limits, a large pool large ones.\n"
     "      --lock-timeout MS   longest wait for a heap lock before a call fails with\n"
     "                          \"a heap lock was not released in time\" (default\n"
     "                          5000); SHARENA_LOCK_TIMEOUT_MS overrides it per process\n"
     "      --gc-log N|none     records of the collector's event log ('sharena gc log';\n"
     "                          64 bytes each, rounded up to a power of two; default\n"
     "                          4096, fewer for a heap under 64M), or none\n"
     "      --guards            debug layout: guard bytes around every block\n"
     "      --unlink-on-last-close\n"
     "                          refused: the heap would vanish when this command\n"
     "                          exits, as it is the only process attached. Set the\n"
     "                          flag from the program that creates and uses the heap.\n"
     "  -h, --help              show this help"},
    {"ls", cmd_ls, NULL, false,
     "[--all]",
     "list the heaps in " SHM_DIR,
     "List the heaps in " SHM_DIR ", one line each: name, capacity, committed\n"
     "bytes, processes alive/total, state; then one line per process entry: pid,\n"
     "alive or dead, thread slots held, attach time.\n"
     "\n"
     "Objects that are not sharena heaps are skipped. Heaps that fail validation\n"
     "(another layout version, truncated, corrupted) are listed with the error.\n"
     "Temporary objects (" TMP_PREFIX "*) left by a creator that died are listed as\n"
     "incomplete; remove them with 'sharena rm'.\n"
     "\n"
     "options:\n"
     "  -a, --all               also list objects this user may not open\n"
     "  -h, --help              show this help"},
    {"info", cmd_info, "NAME", false,
     "NAME",
     "show a heap's header and process registry",
     "Show everything the heap's header and process registry record: layout\n"
     "version, flags, capacity, committed bytes, metadata size, creation time,\n"
     "the process and thread limits, the lock timeout, every lock that is held\n"
     "(holder's tid, process entry and pid, alive or dead) or that a wait gave\n"
     "up on (how often, when, by which pid, who held it), and each process entry\n"
     "(index, generation, pid, alive or dead, start time in clock ticks since\n"
     "boot, thread slots, attach time). The heap is read without attaching to it\n"
     "and without taking any of its locks, and is not changed.\n"
     "\n"
     "options:\n"
     "  -h, --help              show this help"},
    {"rm", cmd_rm, "NAME", false,
     "NAME [--force]",
     "remove a heap's name",
     "Remove the name NAME from " SHM_DIR ". Processes attached keep using the heap\n"
     "until they close it; a warning says how many. Objects that are not sharena\n"
     "heaps are refused, and so is a temporary object whose creator still runs.\n"
     "Damaged heaps (other version, truncated, corrupted) are removed.\n"
     "\n"
     "options:\n"
     "  -f, --force             remove NAME without checking what it is\n"
     "  -h, --help              show this help"},
    {"stats", cmd_stats, "NAME", false,
     "NAME",
     "print the allocator's statistics",
     "Attach to NAME and print its statistics in the shape of CPython's\n"
     "sys._debugmallocstats(): per size class, pools, blocks in use and free,\n"
     "calls; arenas; the byte lines that sum to arenas x 256 KiB; large blocks,\n"
     "chunks, blocks left by dead processes, committed and reserved bytes; then\n"
     "the cycle collector's generations: threshold, count, collections, objects\n"
     "collected, mean and longest pause, longest time to stop.\n"
     "\n"
     "options:\n"
     "  -h, --help              show this help"},
    {"check", cmd_check, "NAME", false,
     "NAME",
     "verify every invariant of a heap",
     "Attach to NAME, reclaim the entries of dead processes, and verify every\n"
     "invariant of the allocator with bounds-checked walks (chunk table, arenas,\n"
     "usable_arenas order, pools and their free lists, orphans, large page runs,\n"
     "guard bytes, roots). Prints 'NAME: ok', or each violation on stderr and\n"
     "exits 1. Safe while other processes use the heap.\n"
     "\n"
     "options:\n"
     "  -h, --help              show this help"},
    {"gc", cmd_gc, "NAME", false,
     "collect NAME [--generation N] [--algorithm A [--repair]] | verify NAME | stats NAME | reset NAME\n"
     "          | log NAME [--follow]\n"
     "          | threshold NAME [T0 T1 T2] | algorithm NAME [A] | freeze NAME | unfreeze NAME\n"
     "          | build NAME KIND N [--seed S] [--as ROOT] [--garbage] [--auto] [--live S] [--rate P] [--cycle L]\n"
     "          | drop NAME ROOT",
     "run or verify the cycle collector, read its statistics, set its thresholds, freeze, build test graphs",
     "collect: attach to NAME and collect generation N (0, 1 or 2; default 2, a full\n"
     "collection) with the world stopped: every process attached finishes the\n"
     "object or list call it is in and waits at its next one. Prints what was\n"
     "collected, the pause (stop request to restart) and the time to stop. Fails\n"
     "with \"Connection timed out\" when a live process did not stop within the stop\n"
     "timeout (1 s; SHARENA_GC_STOP_TIMEOUT_MS): then nothing was changed.\n"
     "--algorithm marksweep: the backup mark-sweep from the roots and the leases\n"
     "(generation 2), which also frees what a dead process leaked; --repair sets\n"
     "counts a crash left too high to their true value (docs/design/gc.md §10).\n"
     "--algorithm bacon-rajan: Bacon and Rajan's synchronous cycle collection from\n"
     "the possible roots the heap buffered (a heap set to it with 'gc algorithm';\n"
     "docs/design/gc.md §14).\n"
     "verify: mark from the roots and the leases and compare every object's count\n"
     "with its true value; exits 1 when a count is below it or a reference dangles.\n"
     "stats: per generation, the threshold, the count, collections, objects\n"
     "collected and left uncollectable, the mean and longest pause and the\n"
     "longest time to stop, over every process's collections; each phase's mean\n"
     "time (stop, walk, subtract, mark, promote, restart, free), the candidates,\n"
     "edges visited and bytes freed; the pause histogram (log2 buckets); the\n"
     "measuring window; and the objects frozen.\n"
     "reset: open a measuring window: every statistic above set to 0 (the\n"
     "thresholds, counts and long-lived numbers kept), for every process.\n"
     "log: print the collector's event log, oldest first, one line per event:\n"
     "time (UTC), sequence number, pid, generation, event and its numbers\n"
     "(docs/gc.md, \"The event log\"); --follow then prints new events as any\n"
     "process writes them, until interrupted.\n"
     "threshold: print the heap's thresholds, or set them (T0 0 disables the\n"
     "automatic collections of every process).\n"
     "algorithm: print the heap's algorithm, or set it (trial, bacon-rajan or\n"
     "marksweep): what automatic collections run, and whether decrefs buffer\n"
     "Bacon and Rajan's possible roots (bacon-rajan only).\n"
     "freeze: move every tracked object to the permanent generation, which no\n"
     "collection examines (CPython's gc.freeze); unfreeze moves them back to\n"
     "generation 2. Both stop the world.\n"
     "build: make a seeded graph of N objects in NAME (shr_graph_build; KIND is\n"
     "live_flat, live_graph, ring2, ring100, mix, tree or churn; N may be written\n"
     "1e6), the same graph bench/gc/cpython_gc.py builds in CPython for the same\n"
     "KIND, N and seed, and print its counts and edge digest. Its root is\n"
     "published as ROOT (default: KIND) and so kept alive; with --garbage it is\n"
     "released instead, leaving the graph's cycles for 'gc collect'. ring2 and\n"
     "ring100 are garbage only. This process's automatic collections are off\n"
     "while it builds (--auto: the heap's thresholds apply, as for churn).\n"
     "Nothing is changed when an argument is refused or ROOT is taken.\n"
     "drop: unpublish ROOT: what only it held becomes garbage.\n"
     "\n"
     "options:\n"
     "  -g, --generation N      collect: the oldest generation to collect (default 2)\n"
     "  -a, --algorithm A       collect: trial (CPython's trial deletion, the default), bacon-rajan\n"
     "                          or marksweep\n"
     "  -r, --repair            collect with marksweep: repair counts left too high by a crash\n"
     "  -f, --follow            log: wait for new events after the last one\n"
     "  --seed S                build: the splitmix64 seed (default 42, the benchmark's)\n"
     "  --as ROOT               build: the root's name (default: KIND)\n"
     "  --garbage               build: release the root instead of publishing it\n"
     "  --auto                  build: let automatic collections run during the build\n"
     "  --live S                build churn: the live table's slots (default N / 10)\n"
     "  --rate P                build churn: percent of the stream made garbage (default 50)\n"
     "  --cycle L               build churn: members of each garbage ring (default 10)\n"
     "  -h, --help              show this help"},
    {"recover", cmd_recover, "NAME", false,
     "NAME",
     "reclaim dead processes, release their references, collect",
     "Attach to NAME, reclaim the entries of processes that died (their pools,\n"
     "locks and thread slots), release every reference they held (their leases),\n"
     "then run a full collection, which frees the cycles they left unreachable.\n"
     "\n"
     "options:\n"
     "  -h, --help              show this help"},
    {"help", cmd_help, "CMD", true,
     "[CMD]",
     "show the help of a command",
     "Show the list of commands, or the help of CMD (same as 'sharena CMD --help')."},
};

#define NCMDS (sizeof cmds / sizeof cmds[0])

static const cli_cmd_t *find_cmd(const char *name)
{
    for (size_t i = 0; i < NCMDS; i++)
        if (strcmp(cmds[i].name, name) == 0) return &cmds[i];
    return NULL;
}

static void print_main_help(FILE *out)
{
    fprintf(out, "usage: sharena COMMAND [ARGS]\n"
                 "       sharena --help | --version\n"
                 "\n"
                 "Manage sharena heaps: shared-memory segments in " SHM_DIR ".\n"
                 "\n"
                 "commands:\n");
    for (size_t i = 0; i < NCMDS; i++)
        fprintf(out, "  %-8s  %s\n", cmds[i].name, cmds[i].summary);
    fprintf(out, "\n"
                 "'sharena help CMD' or 'sharena CMD --help' shows a command's options.\n"
                 "Exit status: 0 success, 1 error, 2 usage error.\n");
}

int main(int argc, char **argv)
{
    const cli_cmd_t *cmd;
    int rc;
    if (argc < 2) return cli_usage_error(NULL, "missing command");
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        print_main_help(stdout);
        rc = CLI_OK;
    } else if (strcmp(argv[1], "--version") == 0 || strcmp(argv[1], "-V") == 0) {
        printf("sharena %d.%d.%d\n", SHR_VERSION_MAJOR, SHR_VERSION_MINOR, SHR_VERSION_PATCH);
        rc = CLI_OK;
    } else if (argv[1][0] == '-') {
        return cli_usage_error(NULL, "unknown option '%s'", argv[1]);
    } else if (!(cmd = find_cmd(argv[1]))) {
        return cli_usage_error(NULL, "unknown command '%s'", argv[1]);
    } else {
        rc = cmd->run(cmd, argc - 1, argv + 1);
        if (rc == CLI_HELP) rc = CLI_OK;
    }
    if (fflush(stdout) != 0 || ferror(stdout)) {
        fprintf(stderr, "sharena: write error: %s\n", strerror(errno));
        return CLI_FAIL;
    }
    return rc;
}
