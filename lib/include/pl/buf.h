/* buf: a growable byte buffer, the one lib/ uses for responses, heads and bodies.
 *
 * The fields are public and may be read directly: `data[0..len)` are the bytes, `cap` the
 * size of the allocation. A caller may lower `len` to truncate (or set it to 0 to reuse the
 * allocation); it never raises `len` or writes `cap` itself.
 *
 * Ownership: the buffer owns `data` (malloc'ed) until pl_buf_dispose frees it or
 * pl_buf_steal hands it over. A struct pl_buf is a value with no self-pointers: it may be
 * embedded and moved, but not copied and then used twice (both copies would own `data`).
 *
 * NUL termination: after every append (pl_buf_append, pl_buf_puts, pl_buf_printf), data[len]
 * is 0, so a buffer of text is a C string. The NUL is not counted in `len`. A buffer that was
 * never appended to has `data == NULL` (len and cap 0): check len, or use `data ? data : ""`.
 * After the caller lowers `len`, data[len] is not 0 until the next append.
 *
 * Growth: a grown buffer reallocates to double its capacity (256 bytes at first), so appends
 * cost amortised O(1). Every call that may grow (reserve and the appends) may move `data`:
 * pointers into the buffer are valid only until the next such call; keep offsets instead.
 * pl_buf_reserve(b, n) makes the next appends of n bytes in all not move it.
 *
 * Failure: none is reported. Out of memory aborts the process, as everywhere in lib/. An
 * encoding error in pl_buf_printf (vsnprintf < 0) appends nothing. */
#ifndef PL_BUF_H
#define PL_BUF_H

#include <stddef.h>

struct pl_buf {
    char *data;
    size_t len, cap;
};

/* An empty buffer with no allocation (the same as `struct pl_buf b = {0}`). */
void pl_buf_init(struct pl_buf *b);
/* Frees the data; the buffer is empty and may be used again. */
void pl_buf_dispose(struct pl_buf *b);
/* Ensures room for `extra` more bytes and the NUL, growing if needed; len is unchanged. */
void pl_buf_reserve(struct pl_buf *b, size_t extra);
/* Appends len bytes (copied; `data` may be NULL when len is 0). */
void pl_buf_append(struct pl_buf *b, const void *data, size_t len);
/* Appends a C string without its NUL. */
void pl_buf_puts(struct pl_buf *b, const char *s);
/* Appends printf-formatted text of any length. */
void pl_buf_printf(struct pl_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Gives the data to the caller, who frees it with free(); *len (may be NULL) receives the
 * length. Returns NULL for a buffer that never held data. The buffer is empty afterwards. */
char *pl_buf_steal(struct pl_buf *b, size_t *len);

#endif
