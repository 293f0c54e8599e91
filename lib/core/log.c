/* JSON-lines logger. Each thread owns a buffer; whole lines leave it in writes of at most
 * PIPE_BUF bytes, which POSIX makes atomic on pipes, so threads never interleave.
 *
 * The encoder writes straight into a line buffer with hand-rolled integer and timestamp
 * formatting (the timestamp's seconds are cached per thread): the access log writes one
 * line per request through it. */
#include "pl/log.h"

#include <math.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "pl/time.h"

_Static_assert(PL_LOG_LINE_MAX <= 4096, "a line must fit one atomic pipe write");

static _Atomic int log_level = PL_LOG_INFO;

static _Thread_local struct {
    char data[PL_LOG_LINE_MAX];
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

static const char *const level_names[] = {"debug", "info", "warn", "error"};

int pl_log_level_parse(const char *s)
{
    for (int i = 0; i < 4; i++)
        if (strcmp(s, level_names[i]) == 0) return i;
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

/* ---- the encoder ---- */

/* A line under construction: bytes go to p[0..end); `end` keeps room for the closing
 * `,"truncated":true}`. Writers that do not fit set `full` and write nothing. */
struct out {
    char *p;
    size_t n, end;
    bool full;
};

#define TRUNCATED_TAIL ",\"truncated\":true}"

static void put(struct out *o, const char *s, size_t n)
{
    if (o->full || n > o->end - o->n) {
        o->full = true;
        return;
    }
    memcpy(o->p + o->n, s, n);
    o->n += n;
}

/* Length of the valid UTF-8 sequence at s[0..n) (s[0] >= 0x80), or 0 when it is not one
 * (overlong forms, surrogates and code points past U+10FFFF are not). */
static size_t utf8_len(const unsigned char *s, size_t n)
{
    unsigned char c = s[0];
    size_t len;
    unsigned char lo = 0x80, hi = 0xbf; /* bounds of the second byte */
    if (c >= 0xc2 && c <= 0xdf)
        len = 2;
    else if (c >= 0xe0 && c <= 0xef) {
        len = 3;
        if (c == 0xe0) lo = 0xa0;
        if (c == 0xed) hi = 0x9f;
    } else if (c >= 0xf0 && c <= 0xf4) {
        len = 4;
        if (c == 0xf0) lo = 0x90;
        if (c == 0xf4) hi = 0x8f;
    } else
        return 0;
    if (n < len || s[1] < lo || s[1] > hi) return 0;
    for (size_t i = 2; i < len; i++)
        if ((s[i] & 0xc0) != 0x80) return 0;
    return len;
}

/* Writes s[0..n) as a JSON string of at most `max` bytes (quotes included), cut on a
 * character boundary with "…" when longer. */
static void put_string(struct out *o, const char *str, size_t n, size_t max)
{
    static const char hex[] = "0123456789abcdef";
    static const char ellipsis[] = "\xe2\x80\xa6";
    const unsigned char *s = (const unsigned char *)str;
    if (o->full) return;
    size_t room = o->end - o->n;
    if (room < 2 + sizeof ellipsis) {
        o->full = true;
        return;
    }
    if (max > room) max = room;
    /* The last bytes are kept for "…" and the closing quote. */
    size_t limit = o->n + max - (sizeof ellipsis - 1) - 1;
    char *d = o->p;
    size_t w = o->n;
    d[w++] = '"';
    size_t i = 0;
    while (i < n) {
        unsigned char c = s[i];
        char esc[6];
        const char *src = esc;
        size_t len, used = 1;
        if (c >= 0x20 && c < 0x7f && c != '"' && c != '\\') {
            /* The common case: a run of plain bytes. */
            if (w + 1 > limit) break;
            d[w++] = (char)c;
            i++;
            continue;
        } else if (c == '"' || c == '\\') {
            esc[0] = '\\', esc[1] = (char)c, len = 2;
        } else if (c == '\n') {
            esc[0] = '\\', esc[1] = 'n', len = 2;
        } else if (c == '\r') {
            esc[0] = '\\', esc[1] = 'r', len = 2;
        } else if (c == '\t') {
            esc[0] = '\\', esc[1] = 't', len = 2;
        } else if (c < 0x80) { /* other control bytes and DEL */
            esc[0] = '\\', esc[1] = 'u', esc[2] = '0', esc[3] = '0';
            esc[4] = hex[c >> 4], esc[5] = hex[c & 15], len = 6;
        } else if ((used = utf8_len(s + i, n - i)) != 0) {
            src = (const char *)s + i, len = used;
        } else {
            src = "\\ufffd", len = 6, used = 1;
        }
        if (w + len > limit) break;
        memcpy(d + w, src, len);
        w += len;
        i += used;
    }
    if (i < n) {
        memcpy(d + w, ellipsis, sizeof ellipsis - 1);
        w += sizeof ellipsis - 1;
    }
    d[w++] = '"';
    o->n = w;
}

static void put_cstring(struct out *o, const char *s, size_t max)
{
    if (!s)
        put(o, "null", 4);
    else
        put_string(o, s, strlen(s), max);
}

static void put_u64(struct out *o, unsigned long long v, bool neg)
{
    char tmp[24];
    size_t k = sizeof tmp;
    do {
        tmp[--k] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    if (neg) tmp[--k] = '-';
    put(o, tmp + k, sizeof tmp - k);
}

static void put_double(struct out *o, double x, int prec)
{
    if (!isfinite(x)) {
        put(o, "null", 4);
        return;
    }
    char tmp[64];
    if (prec < 0 || prec > 9) prec = 3;
    int len = snprintf(tmp, sizeof tmp, "%.*f", prec, x);
    if (len < 0 || (size_t)len >= sizeof tmp) len = snprintf(tmp, sizeof tmp, "%g", x);
    put(o, tmp, (size_t)len);
}

static void put_general(struct out *o, double x)
{
    if (!isfinite(x)) {
        put(o, "null", 4);
        return;
    }
    char tmp[32];
    int len = snprintf(tmp, sizeof tmp, "%g", x);
    put(o, tmp, (size_t)len);
}

/* The current instant in RFC 3339 with milliseconds; the text of the second ("YYYY-MM-DDT
 * HH:MM:SS") is cached per thread. */
static void put_timestamp(struct out *o)
{
    static _Thread_local int64_t cached_sec = INT64_MIN;
    static _Thread_local char cached[32];
    int64_t now_us = pl_time_now_us();
    int64_t sec = now_us / 1000000;
    if (sec != cached_sec) {
        pl_time_format_rfc3339(sec * 1000000, cached);
        cached_sec = sec;
    }
    int ms = (int)(now_us % 1000000 / 1000);
    char tail[6] = {
        '.', (char)('0' + ms / 100), (char)('0' + ms / 10 % 10), (char)('0' + ms % 10), 'Z', '"'};
    put(o, "{\"ts\":\"", 7);
    put(o, cached, PL_RFC3339_LEN - 5); /* without ".mmmZ" */
    put(o, tail, sizeof tail);
}

static void put_field(struct out *o, const struct pl_log_field *f)
{
    put(o, ",", 1);
    put_cstring(o, f->key ? f->key : "", 128);
    put(o, ":", 1);
    switch (f->type) {
    case PL_LOG_T_STR:
        put_cstring(o, f->v.s, PL_LOG_STR_MAX);
        break;
    case PL_LOG_T_STRN:
        if (f->v.s)
            put_string(o, f->v.s, f->len, PL_LOG_STR_MAX);
        else
            put(o, "null", 4);
        break;
    case PL_LOG_T_INT:
        put_u64(o, f->v.i < 0 ? 0ULL - (unsigned long long)f->v.i : (unsigned long long)f->v.i,
                f->v.i < 0);
        break;
    case PL_LOG_T_UINT:
        put_u64(o, f->v.u, false);
        break;
    case PL_LOG_T_DBL:
        put_general(o, f->v.d);
        break;
    case PL_LOG_T_FIXED:
        put_double(o, f->v.d, f->prec);
        break;
    case PL_LOG_T_BOOL:
        if (f->v.b)
            put(o, "true", 4);
        else
            put(o, "false", 5);
        break;
    case PL_LOG_T_END:
        break;
    }
}

size_t pl_log_format(char *out, size_t cap, enum pl_log_level level, const char *msg,
                     const struct pl_log_field *fields)
{
    if (cap < sizeof TRUNCATED_TAIL + 48) {
        if (cap) out[0] = 0;
        return 0;
    }
    /* One byte for the NUL, the rest of the tail's room for `,"truncated":true}`. */
    struct out o = {.p = out, .end = cap - 1 - (sizeof TRUNCATED_TAIL - 1)};
    int lv = (int)level < 0 || (int)level > 3 ? 3 : (int)level;
    put_timestamp(&o);
    put(&o, ",\"level\":\"", 10);
    put(&o, level_names[lv], strlen(level_names[lv]));
    put(&o, "\",\"msg\":", 8);
    put_cstring(&o, msg ? msg : "", 512);
    for (const struct pl_log_field *f = fields; f && f->type != PL_LOG_T_END; f++) {
        size_t mark = o.n;
        put_field(&o, f);
        if (o.full) {
            o.n = mark; /* the field that does not fit goes whole */
            break;
        }
    }
    if (o.full) {
        memcpy(out + o.n, TRUNCATED_TAIL, sizeof TRUNCATED_TAIL - 1);
        o.n += sizeof TRUNCATED_TAIL - 1;
    } else {
        out[o.n++] = '}';
    }
    out[o.n] = 0;
    return o.n;
}

void pl_log_emit_always(enum pl_log_level level, const char *msg, const struct pl_log_field *fields)
{
    char line[PL_LOG_LINE_MAX];
    size_t n = pl_log_format(line, sizeof line, level, msg, fields);
    line[n++] = '\n';
    if (tbuf.len + n > sizeof tbuf.data) pl_log_flush();
    memcpy(tbuf.data + tbuf.len, line, n);
    tbuf.len += n;
    /* Warnings and errors are rare and must not wait for the next flush. */
    if (level >= PL_LOG_WARN) pl_log_flush();
}

void pl_log_emit(enum pl_log_level level, const char *msg, const struct pl_log_field *fields)
{
    if ((int)level < atomic_load_explicit(&log_level, memory_order_relaxed)) return;
    pl_log_emit_always(level, msg, fields);
}
