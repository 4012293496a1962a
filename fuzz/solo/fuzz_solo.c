/* fuzz_solo: damaged compact lists' pages (<sharena/solo.h>), opened.
 *
 * A compact list's page is as untrusted as a heap's file (docs/design/
 * reliability.md): nothing in it may crash, hang or mislead a process that
 * opens it, reads it, sets it, checks it or makes it a heap. The input is a
 * patch list applied to a copy of one of three template pages, built once
 * at start-up by shr_solo_create (ints and floats; strs and bytes of many
 * lengths; a mix with None and bools), each after a few sets.
 *
 * Each input writes the patched page to a fresh object of the right size
 * and runs:
 *
 *   shr_heap_attach                   refused (SHR_ECOMPACT, or a damage code)
 *   shr_solo_open                     0 or a documented code; then
 *   shr_solo_len, shr_solo_read of every index, shr_solo_info,
 *   shr_solo_check; if it passed: a set of every type at a few indices,
 *   shr_solo_check again (must pass), shr_solo_promote and shr_heap_check
 *   of the new heap (must pass), and the list's length in the heap
 *
 * Input:  [flags] then up to 32 patches of [kind] [offset u16] [operand]
 *   flags  bit 0: recompute the head's checksum after patching (to reach
 *          what lies behind it); bits 1-2: the template
 *   kind   0..7 write kind + 1 raw bytes; 8 a 16-bit value, 9 a 64-bit
 *          value from a table of interesting ones; 10 add a signed byte to
 *          a 16-bit field; 11 flip a bit; 12 zero 16 bytes; 13 copy 16
 *          bytes from another offset; 14 change the object's size
 *   offset modulo the page (aligned for the 16- and 64-bit kinds)
 */
#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>

#include "fuzz_common.h"
#include "shm.h"

#define PAGE 4096
#define MAX_PATCHES 32
#define NTEMPLATES 3

static uint8_t templ[NTEMPLATES][PAGE];
static uint64_t templ_size;
static FILE *devnull;

static void build_one(int k)
{
    const char *name = fz_name("solo_t");
    shr_value_t v[40];
    char strs[40][64];
    size_t n = 0;
    for (int i = 0; i < 24; i++) {
        if (k == 0) v[n++] = i % 2 ? shr_int(i * 1000003) : shr_float(i / 7.0);
        else if (k == 1) {
            memset(strs[i], 'a' + i % 26, sizeof strs[i]);
            v[n++] = i % 3 ? shr_strn(strs[i], (size_t)(i * 2)) : shr_bytes(strs[i], (size_t)i);
        } else {
            snprintf(strs[i], sizeof strs[i], "item %d", i);
            v[n++] = i % 4 == 0 ? shr_none() : i % 4 == 1 ? shr_bool(i & 2) : i % 4 == 2 ? shr_int(-i) : shr_str(strs[i]);
        }
    }
    shr_solo_t *s;
    if (shr_solo_create(name, v, n, 0, &s) != 0) abort();
    /* A few sets: slots reused, moved and left behind. */
    for (int i = 0; i < 12; i++) {
        shr_value_t x = i % 2 ? shr_str("a longer string than most of these") : shr_int(i);
        shr_solo_set(s, i * 2, &x);
    }
    shr_solo_close(s);
    int fd = shm_open(name, O_RDONLY, 0);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0 || pread(fd, templ[k], PAGE, 0) != PAGE) abort();
    templ_size = (uint64_t)st.st_size;
    close(fd);
    shm_unlink(name);
}

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fz_env_init();
    devnull = fopen("/dev/null", "w");
    for (int k = 0; k < NTEMPLATES; k++) build_one(k);
    return 0;
}

static const uint64_t interesting[] = {0, 1, 2, 3, 7, 8, 191, 192, 4095, 4096, 65535, 0xffff0000ull,
                                       0x7fffffffffffffffull, ~0ull, SHR_SOLO_HEAP_OFF, 1ull << 30};

static bool code_ok(int rc)
{
    return rc == 0 || rc == -EINVAL || rc == -ENOMEM || (rc <= -1000 && rc > SHR__ERR_LAST);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fz_in_t in = {data, size};
    uint8_t flags = fz_u8(&in);
    uint8_t page[PAGE];
    memcpy(page, templ[((flags >> 1) & 3) % NTEMPLATES], PAGE);
    uint64_t fsize = templ_size;
    for (int k = 0; k < MAX_PATCHES && fz_more(&in); k++) {
        uint8_t kind = fz_u8(&in) % 15;
        uint32_t off = fz_u16(&in) % PAGE;
        size_t got;
        if (kind < 8) {
            const uint8_t *b = fz_bytes(&in, kind + 1u, &got);
            if (off + got > PAGE) got = PAGE - off;
            memcpy(page + off, b, got);
        } else if (kind == 8) {
            uint16_t x = fz_u16(&in);
            off &= ~1u;
            memcpy(page + off, &x, 2);
        } else if (kind == 9) {
            uint64_t x = interesting[fz_u8(&in) % (sizeof interesting / sizeof interesting[0])];
            off = (off & ~7u) % (PAGE - 8);
            memcpy(page + off, &x, 8);
        } else if (kind == 10) {
            uint16_t x;
            off = (off & ~1u) % (PAGE - 2);
            memcpy(&x, page + off, 2);
            x = (uint16_t)(x + (int8_t)fz_u8(&in));
            memcpy(page + off, &x, 2);
        } else if (kind == 11) {
            page[off] ^= (uint8_t)(1u << (fz_u8(&in) & 7));
        } else if (kind == 12) {
            memset(page + off, 0, off + 16 <= PAGE ? 16 : PAGE - off);
        } else if (kind == 13) {
            uint32_t from = fz_u16(&in) % (PAGE - 16);
            if (off + 16 <= PAGE) memmove(page + off, page + from, 16);
        } else {
            uint8_t c = fz_u8(&in);
            fsize = c < 64 ? (uint64_t)c * 64 : c < 128 ? templ_size - 4096 : templ_size + 4096;
        }
    }
    if (flags & 1) {
        seg_solo_head_t *h = (seg_solo_head_t *)(void *)page;
        h->checksum = shr__solo_head_checksum(h);
    }
    const char *name = fz_name("solo");
    int fd = shm_open(name, O_RDWR | O_CREAT | O_EXCL, 0600);
    FZ_CHECK(fd >= 0, "shm_open: %d", errno);
    FZ_CHECK(ftruncate(fd, (off_t)fsize) == 0, "ftruncate");
    size_t w = fsize < PAGE ? (size_t)fsize : PAGE;
    FZ_CHECK(pwrite(fd, page, w, 0) == (ssize_t)w, "pwrite");
    close(fd);

    shr_heap_t *h;
    int rc = shr_heap_attach(name, &h);
    if (rc == 0) shr_heap_close(h);
    FZ_CHECK(rc == 0 || code_ok(rc), "attach: %d %s", rc, shr_strerror(rc));

    shr_solo_t *s;
    rc = shr_solo_open(name, &s);
    FZ_CHECK(code_ok(rc) || rc == -ENOENT, "open: %d %s", rc, shr_strerror(rc));
    if (rc != 0) {
        shm_unlink(name);
        return 0;
    }
    int64_t n = shr_solo_len(s);
    char buf[SHR_SOLO_MAX_BYTES];
    for (int64_t i = -2; i < (n > 0 ? n : 0) + 2 && i < 300; i++) {
        shr_value_t v;
        rc = shr_solo_read(s, i, &v, buf, sizeof buf);
        FZ_CHECK(rc == 0 || rc == 1 || code_ok(rc), "read %lld: %d", (long long)i, rc);
        if (rc == 0 && (v.type == SHR_STR || v.type == SHR_BYTES))
            FZ_CHECK(v.u.s.len <= sizeof buf, "read %lld: %zu bytes", (long long)i, v.u.s.len);
    }
    shr_solo_info_t info;
    shr_solo_info(s, &info);
    int bad = shr_solo_check(s, devnull);
    FZ_CHECK(bad >= 0 || code_ok(bad), "check: %d", bad);
    if (bad == 0 && !shr_solo_is_heap(s)) {
        shr_value_t vals[] = {shr_int(5), shr_str("set by the fuzzer"), shr_none(), shr_bytes("\0\1", 2),
                              shr_float(0.5), shr_strn("", 0), shr_bool(1)};
        for (int k = 0; k < 7; k++) {
            rc = shr_solo_set(s, k * 3 - 2, &vals[k]);
            FZ_CHECK(code_ok(rc), "set: %d", rc);
        }
        rc = shr_solo_check(s, stderr);
        FZ_CHECK(rc == 0, "check passed, then failed after the sets: %d", rc);
        n = shr_solo_len(s);
        rc = shr_solo_promote(s, &h);
        FZ_CHECK(code_ok(rc), "promote: %d %s", rc, shr_strerror(rc));
        if (rc == 0) {
            FZ_CHECK(shr_heap_check_report(h, stderr) == 0, "the new heap does not check");
            shr_list_t *l;
            FZ_CHECK(shr_list_attach(h, SHR_SOLO_ROOT, &l) == 0, "no list in the new heap");
            FZ_CHECK(shr_list_len(l) == n, "the heap's list has %lld items, the page %lld",
                     (long long)shr_list_len(l), (long long)n);
            shr_list_close(l);
            shr_heap_close(h);
        }
    }
    shr_solo_close(s);
    shm_unlink(name);
    return 0;
}
