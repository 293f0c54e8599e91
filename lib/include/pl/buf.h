/* buf: a growable byte buffer. Aborts on out-of-memory. */
#ifndef PL_BUF_H
#define PL_BUF_H

#include <stddef.h>

struct pl_buf {
    char *data;
    size_t len, cap;
};

void pl_buf_init(struct pl_buf *b);
void pl_buf_dispose(struct pl_buf *b);
void pl_buf_reserve(struct pl_buf *b, size_t extra);
void pl_buf_append(struct pl_buf *b, const void *data, size_t len);
void pl_buf_puts(struct pl_buf *b, const char *s);
void pl_buf_printf(struct pl_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Gives the data to the caller (free()); the buffer is empty afterwards. */
char *pl_buf_steal(struct pl_buf *b, size_t *len);

#endif
