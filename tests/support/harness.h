/* Test support shared by every suite.
 *
 *   - unique heap names, and removal of whatever a test left behind;
 *   - fork and exec of peer processes, with their exit status;
 *   - a shm_blocks() helper for asserting the real size of a segment.
 *
 * Every test makes its own heap with shr_test_name() and removes it with
 * shr_test_cleanup() (or SHR_TEST_FINI in the suite's .fini), so nothing
 * depends on test order or on leftovers.
 */
#ifndef SHR_TEST_HARNESS_H
#define SHR_TEST_HARNESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "sharena.h"

/* A fresh heap name, unique across processes and runs: "t_<pid>_<n>_<rand>".
 * Valid until the next call from this thread. Registered for cleanup. */
const char *shr_test_name(void);

/* Unlink every heap name this process handed out. */
void shr_test_cleanup(void);

/* Unlink the leftovers of any earlier run of this test binary ("t_*" heaps
 * whose creating pid is gone, and ".shr_tmp_*" objects). */
void shr_test_sweep_stale(void);

/* Fork; the child runs fn(arg) and _exits with its return value. */
pid_t shr_test_fork(int (*fn)(void *), void *arg);

/* Wait for pid: its exit code, or 128 + signal number if it was killed. */
int shr_test_wait(pid_t pid);

/* Exec the peer program (tests/support/peer.c) with the given arguments,
 * NULL terminated. Returns the pid. */
pid_t shr_test_exec_peer(const char *arg0, ...);

/* Exec the peer and wait for it: its exit code. */
int shr_test_run_peer(const char *arg0, ...);

/* Path of the peer executable (set by the build). */
const char *shr_test_peer_path(void);

/* Bytes the shm object really uses (st_blocks * 512), or -1. */
int64_t shr_test_shm_bytes(const char *name);

/* Blocks in use in the heap (pool blocks and large/huge blocks), after the
 * dead are reclaimed and remote frees settled (shr_heap_recover and
 * shr_heap_collect): what a test compares before and after. */
uint64_t shr_test_blocks_in_use(shr_heap_t *heap);

/* Milliseconds sleep. */
void shr_test_sleep_ms(unsigned ms);

/* A pipe-based one-shot signal between processes. */
typedef struct { int fd[2]; } shr_test_gate_t;
void shr_test_gate_init(shr_test_gate_t *g);
void shr_test_gate_open(shr_test_gate_t *g);   /* writer side */
bool shr_test_gate_wait(shr_test_gate_t *g, unsigned timeout_ms);

#endif
