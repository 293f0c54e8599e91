/* error: the one list of Pulse error codes.
 *
 * Fallible functions return 0 or a negative code. libuv codes (UV_*, negative errno values)
 * pass through unchanged; Pulse's own codes live below -10000 so they never collide.
 * pl_strerror() names any of them. */
#ifndef PL_ERROR_H
#define PL_ERROR_H

#define PL_ERRORS(X)                                                                               \
    X(INVALID, -10001, "invalid argument")                                                         \
    X(UNAVAILABLE, -10002, "dependency unavailable")                                               \
    X(TIMEOUT, -10003, "timed out")                                                                \
    X(CANCELLED, -10004, "cancelled")                                                              \
    X(DB, -10005, "database error")                                                                \
    X(REDIS, -10006, "redis error")                                                                \
    X(BUSY, -10007, "too many waiters")                                                            \
    X(PROTOCOL, -10008, "protocol error")                                                          \
    X(NOTFOUND, -10009, "not found")                                                               \
    X(CONFLICT, -10010, "conflict")                                                                \
    X(TOOBIG, -10011, "too big")                                                                   \
    X(CONFIG, -10012, "invalid configuration")

enum pl_error {
    PL_OK = 0,
#define PL_ERROR_ENUM(name, code, text) PL_E_##name = code,
    PL_ERRORS(PL_ERROR_ENUM)
#undef PL_ERROR_ENUM
};

/* Returns a static string for a Pulse code, a libuv code, or "unknown error". */
const char *pl_strerror(int code);

#define PL_MUST_USE __attribute__((warn_unused_result))

#endif
