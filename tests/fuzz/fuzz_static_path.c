/* libFuzzer harness for lib/http/static.c's request path normalisation and Accept-Encoding
 * parsing: whatever the bytes, pl_static_normalize either refuses them or returns a clean
 * absolute path (no empty, "." or ".." segment, no NUL, control byte or backslash, never
 * longer than the input plus a trailing slash), within the given capacity. A path without '%'
 * normalises to itself a second time (idempotence). pl_static_accepts_gzip gets the same
 * bytes as a C string and must not crash. */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pl/static.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define REQUIRE(cond)                                                                              \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "fuzz_static_path: %s:%d: %s\n", __FILE__, __LINE__, #cond);           \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

static void check_clean(const char *p, long n)
{
    REQUIRE(n >= 1 && p[0] == '/' && strlen(p) == (size_t)n);
    for (long i = 0; i < n; i++) {
        unsigned char c = (unsigned char)p[i];
        REQUIRE(c >= 0x20 && c != 0x7f && c != '\\');
    }
    /* segments: never empty (except the trailing slash), ".", or ".." */
    const char *s = p + 1;
    while (*s) {
        const char *e = strchr(s, '/');
        size_t len = e ? (size_t)(e - s) : strlen(s);
        REQUIRE(len > 0 || !e); /* "//" never appears */
        REQUIRE(!(len == 1 && s[0] == '.'));
        REQUIRE(!(len == 2 && s[0] == '.' && s[1] == '.'));
        if (!e) break;
        s = e + 1;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 4096) return 0;
    /* exactly `size` bytes on the heap, so ASan sees any read past the end */
    char *raw = malloc(size ? size : 1);
    if (!raw) abort();
    memcpy(raw, data, size);
    size_t cap = size + 2;
    char *out = malloc(cap);
    if (!out) abort();
    long n = pl_static_normalize(raw, size, out, cap);
    if (n >= 0) {
        REQUIRE((size_t)n <= size + 1);
        check_clean(out, n);
        if (!memchr(out, '%', (size_t)n)) {
            char *again = malloc((size_t)n + 2);
            if (!again) abort();
            long m = pl_static_normalize(out, (size_t)n, again, (size_t)n + 2);
            REQUIRE(m == n && memcmp(again, out, (size_t)n) == 0);
            free(again);
        }
        /* a smaller buffer refuses or gives the same answer, and never writes past itself */
        for (size_t small = 0; small < cap; small += 1 + cap / 7) {
            char *o2 = malloc(small ? small : 1);
            if (!o2) abort();
            long k = pl_static_normalize(raw, size, o2, small);
            REQUIRE(k < 0 || (k == n && memcmp(o2, out, (size_t)n + 1) == 0));
            free(o2);
        }
    }
    char *str = malloc(size + 1);
    if (!str) abort();
    memcpy(str, data, size);
    str[size] = 0;
    (void)pl_static_accepts_gzip(str);
    free(str);
    free(out);
    free(raw);
    return 0;
}
