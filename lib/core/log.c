/* JSON-lines logger. Each thread owns a buffer; whole lines leave it in writes of at most
 * PIPE_BUF bytes, which POSIX makes atomic on pipes, so threads never interleave. */
#include "pl/log.h"

#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#define LOG_BUF_CAP 4096

static _Atomic int log_level = PL_LOG_INFO;

static _Thread_local struct {
    char data[LOG_BUF_CAP];
    size_t len;
} tbuf;

void pl_log_set_level(enum pl_log_level level)
{
    atomic_store(&log_level, (int)level);
}
enum pl_log_level pl_log_get_level(void)
{
    return (enum pl_log_level)atomic_load(&log_level);
}

int pl_log_level_parse(const char *s)
{
    static const char *const names[] = {"debug", "info", "warn", "error"};
    for (int i = 0; i < 4; i++)
        if (strcmp(s, names[i]) == 0) return i;
    return -1;
}

static void write_all(const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(STDOUT_FILENO, p, n);
        if (w < 0) return; /* a closed stdout must not take the server down */
        p += w;
        n -= (size_t)w;
    }
}

void pl_log_flush(void)
{
    if (tbuf.len) write_all(tbuf.data, tbuf.len);
    tbuf.len = 0;
}

void pl_log_line(const char *json, size_t len)
{
    if (len + 1 > LOG_BUF_CAP) len = LOG_BUF_CAP - 1; /* truncated rather than split */
    if (tbuf.len + len + 1 > LOG_BUF_CAP) pl_log_flush();
    memcpy(tbuf.data + tbuf.len, json, len);
    tbuf.len += len;
    tbuf.data[tbuf.len++] = '\n';
}

char *pl_log_str(char *out, size_t cap, const char *s)
{
    static const char hex[] = "0123456789abcdef";
    size_t o = 0;
    if (cap < 3) {
        if (cap) out[0] = 0;
        return out;
    }
    out[o++] = '"';
    for (; s && *s && o + 8 < cap; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') {
            out[o++] = '\\';
            out[o++] = (char)c;
        } else if (c < 0x20 || c >= 0x7f) {
            /* Bytes from the network may not be UTF-8: escape everything outside ASCII so
             * that every log line is valid JSON. */
            out[o++] = '\\';
            out[o++] = 'u';
            out[o++] = '0';
            out[o++] = '0';
            out[o++] = hex[c >> 4];
            out[o++] = hex[c & 15];
        } else {
            out[o++] = (char)c;
        }
    }
    out[o++] = '"';
    out[o] = 0;
    return out;
}

void pl_log(enum pl_log_level level, const char *msg, const char *fields, ...)
{
    static const char *const names[] = {"debug", "info", "warn", "error"};
    if ((int)level < atomic_load(&log_level)) return;
    char line[LOG_BUF_CAP];
    struct timeval tv;
    struct tm tm;
    gettimeofday(&tv, NULL);
    gmtime_r(&tv.tv_sec, &tm);
    char m[256];
    int n = snprintf(line, sizeof line,
                     "{\"ts\":\"%04d-%02d-%02dT%02d:%02d:%02d.%03dZ\",\"level\":\"%s\",\"msg\":%s",
                     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                     (int)(tv.tv_usec / 1000), names[level], pl_log_str(m, sizeof m, msg));
    if (fields && n > 0 && (size_t)n < sizeof line) {
        va_list ap;
        va_start(ap, fields);
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
        int k = vsnprintf(line + n, sizeof line - (size_t)n, fields, ap);
#pragma GCC diagnostic pop
        va_end(ap);
        if (k > 0) n += k;
    }
    if (n < 0) return;
    if ((size_t)n > sizeof line - 2) n = (int)sizeof line - 2;
    line[n++] = '}';
    pl_log_line(line, (size_t)n);
    /* Warnings and errors are rare and must not wait for the next flush. */
    if (level >= PL_LOG_WARN) pl_log_flush();
}
