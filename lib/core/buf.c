#include "pl/buf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void pl_buf_init(struct pl_buf *b)
{
    *b = (struct pl_buf){0};
}

void pl_buf_dispose(struct pl_buf *b)
{
    free(b->data);
    *b = (struct pl_buf){0};
}

void pl_buf_reserve(struct pl_buf *b, size_t extra)
{
    if (b->len + extra + 1 <= b->cap) return;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + extra + 1)
        cap *= 2;
    char *p = realloc(b->data, cap);
    if (!p) abort();
    b->data = p;
    b->cap = cap;
}

void pl_buf_append(struct pl_buf *b, const void *data, size_t len)
{
    pl_buf_reserve(b, len);
    if (len) memcpy(b->data + b->len, data, len);
    b->len += len;
    b->data[b->len] = 0;
}

void pl_buf_puts(struct pl_buf *b, const char *s)
{
    pl_buf_append(b, s, strlen(s));
}

void pl_buf_printf(struct pl_buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char tmp[512];
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n < 0) return;
    if ((size_t)n < sizeof tmp) {
        pl_buf_append(b, tmp, (size_t)n);
        return;
    }
    pl_buf_reserve(b, (size_t)n);
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
#pragma GCC diagnostic pop
    va_end(ap);
    b->len += (size_t)n;
}

char *pl_buf_steal(struct pl_buf *b, size_t *len)
{
    char *p = b->data;
    if (len) *len = b->len;
    *b = (struct pl_buf){0};
    return p;
}
