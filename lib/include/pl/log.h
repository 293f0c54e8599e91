/* log: one JSON object per line on stdout, every byte of it encoded here.
 *
 * Callers pass typed fields, never pre-encoded text:
 *
 *     pl_warn("static: file skipped", PL_STR("path", url), PL_INT("size", n));
 *     pl_info("stopped");
 *
 * writes {"ts":"2024-05-01T12:00:00.123Z","level":"warn","msg":"static: file skipped",
 * "path":"/a\"b","size":3}. The macros end the field list with a sentinel themselves; a field
 * of the wrong type (a number to PL_STR, a bare string or NULL in place of a field) does not
 * compile. Strings are escaped as JSON: quotes, backslashes and control bytes are escaped,
 * valid UTF-8 passes through and every byte of invalid UTF-8 becomes U+FFFD, so a line is
 * valid JSON whatever the bytes. A string longer than PL_LOG_STR_MAX bytes is cut on a
 * character boundary and ends with "…"; a line that would pass PL_LOG_LINE_MAX bytes keeps
 * the fields that fit and gains "truncated":true.
 *
 * Each thread buffers its lines and writes whole lines with one write(2) of at most
 * PL_LOG_LINE_MAX bytes (PIPE_BUF), so lines from worker threads never interleave.
 * pl_log_flush() empties the calling thread's buffer; loops call it from a short timer and
 * before exit; warnings and errors are flushed at once.
 * Never pass passwords, tokens, cookies or bodies to these functions. */
#ifndef PL_LOG_H
#define PL_LOG_H

#include <stdbool.h>
#include <stddef.h>

enum pl_log_level { PL_LOG_DEBUG = 0, PL_LOG_INFO, PL_LOG_WARN, PL_LOG_ERROR };

#define PL_LOG_LINE_MAX 4096 /* bytes of one line, its newline included */
#define PL_LOG_STR_MAX  1024 /* bytes of one encoded string value */

void pl_log_set_level(enum pl_log_level level);
enum pl_log_level pl_log_get_level(void);
/* Parses "debug", "info", "warn", "error"; returns -1 when unknown. */
int pl_log_level_parse(const char *s);

/* One field of a line. Build them with the PL_* macros below, not by hand. */
enum pl_log_type {
    PL_LOG_T_END = 0, /* the sentinel closing a field array */
    PL_LOG_T_STR,     /* NUL-terminated; NULL is written as null */
    PL_LOG_T_STRN,    /* `len` bytes, NULs included (escaped) */
    PL_LOG_T_INT,
    PL_LOG_T_UINT,
    PL_LOG_T_DBL,   /* %g with 6 digits; NaN and infinities are written as null */
    PL_LOG_T_FIXED, /* `prec` decimals */
    PL_LOG_T_BOOL,
};

struct pl_log_field {
    enum pl_log_type type;
    int prec;
    const char *key; /* borrowed for the call; encoded like any string */
    size_t len;
    union {
        const char *s; /* borrowed for the call */
        long long i;
        unsigned long long u;
        double d;
        bool b;
    } v;
};

#define PL_STR(k, str) ((struct pl_log_field){.type = PL_LOG_T_STR, .key = (k), .v.s = (str)})
#define PL_STRN(k, str, n)                                                                         \
    ((struct pl_log_field){.type = PL_LOG_T_STRN, .key = (k), .v.s = (str), .len = (n)})
#define PL_INT(k, n)  ((struct pl_log_field){.type = PL_LOG_T_INT, .key = (k), .v.i = (n)})
#define PL_UINT(k, n) ((struct pl_log_field){.type = PL_LOG_T_UINT, .key = (k), .v.u = (n)})
#define PL_DBL(k, x)  ((struct pl_log_field){.type = PL_LOG_T_DBL, .key = (k), .v.d = (x)})
#define PL_FIXED(k, x, decimals)                                                                   \
    ((struct pl_log_field){.type = PL_LOG_T_FIXED, .key = (k), .v.d = (x), .prec = (decimals)})
#define PL_BOOL(k, x) ((struct pl_log_field){.type = PL_LOG_T_BOOL, .key = (k), .v.b = (x)})
#define PL_LOG_END    ((struct pl_log_field){.type = PL_LOG_T_END})

/* Logs {"ts","level","msg", ...fields} when `level` is at or above the set level. `fields`
 * ends with a PL_LOG_T_END entry; all pointers are borrowed for the call. */
void pl_log_emit(enum pl_log_level level, const char *msg, const struct pl_log_field *fields);
/* The same, whatever the set level (the access log has a switch of its own). */
void pl_log_emit_always(enum pl_log_level level, const char *msg,
                        const struct pl_log_field *fields);

/* Formats one line as pl_log_emit would, without the newline, into out[cap] (NUL-terminated,
 * cap >= 64); returns its length. For tests and tools. */
size_t pl_log_format(char *out, size_t cap, enum pl_log_level level, const char *msg,
                     const struct pl_log_field *fields);

void pl_log_flush(void);

/* pl_log(level, msg, fields...): `msg` is a string, each field a PL_* macro. */
#define pl_log(level, ...) PL_LOG_CALL_(pl_log_emit, (level), __VA_ARGS__, PL_LOG_END)
#define pl_debug(...)      pl_log(PL_LOG_DEBUG, __VA_ARGS__)
#define pl_info(...)       pl_log(PL_LOG_INFO, __VA_ARGS__)
#define pl_warn(...)       pl_log(PL_LOG_WARN, __VA_ARGS__)
#define pl_error(...)      pl_log(PL_LOG_ERROR, __VA_ARGS__)

#define PL_LOG_CALL_(fn, level, msg, ...) fn(level, msg, (const struct pl_log_field[]){__VA_ARGS__})

#endif
