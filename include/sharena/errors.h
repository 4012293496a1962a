/* sharena error codes.
 *
 * Every function that returns int returns 0 on success or a negative code:
 * -errno where one fits (-ENOENT, -EEXIST, -EINVAL, -ENOMEM, ...), otherwise
 * one of sharena's own codes below. Sharena's codes live in a range of their
 * own (-1000 and below) so that they never collide with an errno value.
 * shr_strerror() gives the message for either kind.
 *
 * The list is one X-macro so that the codes and their messages cannot drift.
 */
#ifndef SHARENA_ERRORS_H
#define SHARENA_ERRORS_H

#define SHR_ERRNO_MAP(XX)                                                        \
    XX(ENOTSHR, -1001, "not a sharena segment")                                  \
    XX(EVERSION, -1002, "sharena segment of another layout version")            \
    XX(ETRUNC, -1003, "sharena segment is truncated")                           \
    XX(ECORRUPT, -1004, "sharena segment is corrupted")                         \
    XX(EPROCS, -1005, "too many processes attached to the heap")                \
    XX(ETHREADS, -1006, "too many threads using the heap")                      \
    XX(ELOCK, -1007, "a heap lock is unrecoverable")                            \
    XX(ETYPE, -1008, "wrong type")                                              \
    XX(EINDEX, -1009, "index out of range")                                     \
    XX(ENOTFOUND, -1010, "value not found")                                     \
    XX(EOVERFLOW, -1011, "value does not fit")                                  \
    XX(ENAME, -1012, "invalid name")                                            \
    XX(ESPAWN, -1013, "cannot start the heap's liveness thread")                \
    XX(ELOCKTIMEOUT, -1014, "a heap lock was not released in time")            \
    XX(ECOMPACT, -1015, "a compact list segment, not yet a heap (shr_solo_open)") \
    XX(EMOVED, -1016, "the compact list has become a heap")                     \
    XX(ENOROOM, -1017, "no room left in the compact list's page")

enum {
#define SHR__ERR_ENUM(name, code, msg) SHR_##name = (code),
    SHR_ERRNO_MAP(SHR__ERR_ENUM)
#undef SHR__ERR_ENUM
    SHR__ERR_LAST = -1018
};

#endif /* SHARENA_ERRORS_H */
