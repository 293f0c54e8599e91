/* log: one JSON object per line on stdout.
 *
 * Each thread buffers its lines and writes whole lines with one write(2) of at most 4 KiB
 * (PIPE_BUF), so lines from worker threads never interleave. pl_log_flush() empties the
 * calling thread's buffer; loops call it from a short timer and before exit.
 * Never pass passwords, tokens, cookies or bodies to these functions. */
#ifndef PL_LOG_H
#define PL_LOG_H

#include <stdarg.h>
#include <stddef.h>

enum pl_log_level { PL_LOG_DEBUG = 0, PL_LOG_INFO, PL_LOG_WARN, PL_LOG_ERROR };

void pl_log_set_level(enum pl_log_level level);
enum pl_log_level pl_log_get_level(void);
/* Parses "debug", "info", "warn", "error"; returns -1 when unknown. */
int pl_log_level_parse(const char *s);

/* Logs {"ts","level","msg", ...fields}. `fields` is a printf format producing zero or more
 * `,"key":value` pairs already JSON-encoded (use pl_log_str for strings), or NULL. */
void pl_log(enum pl_log_level level, const char *msg, const char *fields, ...)
    __attribute__((format(printf, 3, 4)));

/* Appends a raw, complete JSON line (without newline) to this thread's buffer. */
void pl_log_line(const char *json, size_t len);

/* JSON-escapes `s` into `out` (with quotes), truncating at cap; returns out. */
char *pl_log_str(char *out, size_t cap, const char *s);

void pl_log_flush(void);

#define pl_debug(msg, ...) pl_log(PL_LOG_DEBUG, msg, __VA_ARGS__)
#define pl_info(msg, ...)  pl_log(PL_LOG_INFO, msg, __VA_ARGS__)
#define pl_warn(msg, ...)  pl_log(PL_LOG_WARN, msg, __VA_ARGS__)
#define pl_error(msg, ...) pl_log(PL_LOG_ERROR, msg, __VA_ARGS__)

#endif
