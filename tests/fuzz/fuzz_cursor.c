/* libFuzzer harness for lib/core/cursor: pagination cursors are client input.
 *
 * 1. The input, NUL-terminated, is decoded for every field count 0..4 into a buffer of
 *    exactly PL_CURSOR_MAX bytes on the heap (so ASan sees a write past the promised size).
 *    A decoded cursor has n fields without '.', inside the buffer, and is canonical: when its
 *    fields are encodable, encoding them gives back the very same string, and decoding it
 *    with another field count fails.
 * 2. The input split at '\n' gives up to 4 fields to encode: encoding succeeds exactly when
 *    every field is printable ASCII without '.' and the result fits PL_CURSOR_MAX, and what
 *    it produced decodes back to the same fields. */
#include <sodium.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pl/cursor.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_FIELDS 4

#define REQUIRE(cond)                                                                              \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "fuzz_cursor: %s:%d: %s\n", __FILE__, __LINE__, #cond);                \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

static int field_ok(const char *f)
{
    for (; *f; f++)
        if (*f == '.' || (unsigned char)*f < 0x21 || (unsigned char)*f > 0x7e) return 0;
    return 1;
}

/* What pl_cursor_encode promises to accept. */
static int encodable(const char *const *fields, int n)
{
    size_t raw = 2;
    for (int i = 0; i < n; i++) {
        if (!field_ok(fields[i])) return 0;
        raw += 1 + strlen(fields[i]);
    }
    return raw < PL_CURSOR_MAX &&
           sodium_base64_ENCODED_LEN(raw, sodium_base64_VARIANT_URLSAFE_NO_PADDING) <=
               PL_CURSOR_MAX + 1;
}

static void check_decode(const char *s, int n)
{
    char *buf = malloc(PL_CURSOR_MAX);
    char *fields[MAX_FIELDS] = {0};
    REQUIRE(buf);
    if (pl_cursor_decode(s, fields, n, buf, PL_CURSOR_MAX) == 0) {
        REQUIRE(strlen(s) <= PL_CURSOR_MAX);
        for (int i = 0; i < n; i++) {
            REQUIRE(fields[i] > buf && fields[i] < buf + PL_CURSOR_MAX);
            REQUIRE(fields[i] + strlen(fields[i]) < buf + PL_CURSOR_MAX);
            REQUIRE(!strchr(fields[i], '.'));
        }
        const char *const *cf = (const char *const *)fields;
        char *out = malloc(PL_CURSOR_MAX + 1);
        REQUIRE(out);
        if (encodable(cf, n)) {
            REQUIRE(pl_cursor_encode(cf, n, out, PL_CURSOR_MAX + 1) == 0);
            REQUIRE(strcmp(out, s) == 0); /* one cursor, one spelling */
        } else {
            REQUIRE(pl_cursor_encode(cf, n, out, PL_CURSOR_MAX + 1) != 0);
        }
        free(out);
        /* The field count is part of the format: n-1 or n+1 fields must not decode. */
        char *other = malloc(PL_CURSOR_MAX);
        char *of[MAX_FIELDS + 1];
        REQUIRE(other);
        REQUIRE(pl_cursor_decode(s, of, n + 1, other, PL_CURSOR_MAX) != 0);
        if (n > 0) REQUIRE(pl_cursor_decode(s, of, n - 1, other, PL_CURSOR_MAX) != 0);
        free(other);
    }
    free(buf);
}

static void check_encode(const uint8_t *data, size_t size)
{
    char *copy = malloc(size + 1);
    REQUIRE(copy);
    memcpy(copy, data, size);
    copy[size] = 0;
    const char *fields[MAX_FIELDS];
    int n = 0;
    char *p = copy;
    if (size > 0) {
        fields[n++] = p;
        while (n < MAX_FIELDS && (p = strchr(p, '\n'))) {
            *p++ = 0;
            fields[n++] = p;
        }
    }
    char *out = malloc(PL_CURSOR_MAX + 1);
    REQUIRE(out);
    int rc = pl_cursor_encode(fields, n, out, PL_CURSOR_MAX + 1);
    REQUIRE((rc == 0) == encodable(fields, n));
    if (rc == 0) {
        REQUIRE(strlen(out) <= PL_CURSOR_MAX);
        char *buf = malloc(PL_CURSOR_MAX);
        char *back[MAX_FIELDS];
        REQUIRE(buf);
        REQUIRE(pl_cursor_decode(out, back, n, buf, PL_CURSOR_MAX) == 0);
        for (int i = 0; i < n; i++)
            REQUIRE(strcmp(back[i], fields[i]) == 0);
        free(buf);
    }
    free(out);
    free(copy);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = malloc(size + 1);
    REQUIRE(s);
    memcpy(s, data, size);
    s[size] = 0;
    for (int n = 0; n <= MAX_FIELDS; n++)
        check_decode(s, n);
    free(s);
    check_encode(data, size);
    return 0;
}
