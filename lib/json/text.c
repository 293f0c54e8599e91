/* text: code-point counting and the email rules shared by register, login and profile. */
#include <locale.h>
#include <pthread.h>
#include <stdint.h>
#include <string.h>
#include <wctype.h>

#include "pl/json.h"

#define EMAIL_MAX       254
#define EMAIL_LOCAL_MAX 64
#define DNS_LABEL_MAX   63

static const char EMAIL_INVALID[] = "must be a valid email address";

size_t pl_utf8_length(const char *s, size_t bytes)
{
    size_t n = 0;
    for (size_t i = 0; i < bytes; i++)
        n += ((unsigned char)s[i] & 0xc0) != 0x80; /* every byte but a continuation byte */
    return n;
}

static bool is_ascii_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r';
}

static bool is_alnum(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

/* The span left once surrounding ASCII whitespace is gone. */
static void trim_span(const char *s, size_t *start, size_t *end)
{
    size_t b = 0, e = strlen(s);
    while (b < e && is_ascii_space(s[b]))
        b++;
    while (e > b && is_ascii_space(s[e - 1]))
        e--;
    *start = b;
    *end = e;
}

/* Unicode lower case comes from the C library's C.UTF-8 locale (glibc's tables, the ones
 * Postgres's lower() uses in a libc UTF-8 database), opened once whatever the process locale
 * is. Without it, only ASCII letters are lowered (the database still folds the rest). */
static locale_t utf8_ctype;
static pthread_once_t utf8_ctype_once = PTHREAD_ONCE_INIT;

static void utf8_ctype_open(void)
{
    utf8_ctype = newlocale(LC_CTYPE_MASK, "C.UTF-8", (locale_t)0);
}

static size_t utf8_seq(const unsigned char *s, size_t avail);

/* Decodes the well-formed sequence of n bytes at s. */
static uint32_t utf8_decode(const unsigned char *s, size_t n)
{
    if (n == 1) return s[0];
    uint32_t cp = s[0] & (0x7f >> n);
    for (size_t i = 1; i < n; i++)
        cp = cp << 6 | (s[i] & 0x3f);
    return cp;
}

static size_t utf8_encode(uint32_t cp, unsigned char *out)
{
    if (cp < 0x80) {
        out[0] = (unsigned char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (unsigned char)(0xc0 | cp >> 6);
        out[1] = (unsigned char)(0x80 | (cp & 0x3f));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (unsigned char)(0xe0 | cp >> 12);
        out[1] = (unsigned char)(0x80 | (cp >> 6 & 0x3f));
        out[2] = (unsigned char)(0x80 | (cp & 0x3f));
        return 3;
    }
    out[0] = (unsigned char)(0xf0 | cp >> 18);
    out[1] = (unsigned char)(0x80 | (cp >> 12 & 0x3f));
    out[2] = (unsigned char)(0x80 | (cp >> 6 & 0x3f));
    out[3] = (unsigned char)(0x80 | (cp & 0x3f));
    return 4;
}

char *pl_email_normalize(char *s)
{
    size_t b, e;
    trim_span(s, &b, &e);
    memmove(s, s + b, e - b);
    s[e - b] = '\0';
    pthread_once(&utf8_ctype_once, utf8_ctype_open);
    unsigned char *r = (unsigned char *)s, *w = r;
    size_t left = e - b;
    while (left > 0) {
        size_t n = utf8_seq(r, left);
        if (n <= 1) { /* ASCII, or a byte that starts no well-formed sequence: kept */
            *w++ = *r >= 'A' && *r <= 'Z' ? (unsigned char)(*r - 'A' + 'a') : *r;
            r++;
            left--;
            continue;
        }
        unsigned char low[4];
        size_t m = n;
        if (utf8_ctype) {
            wint_t lc = towlower_l((wint_t)utf8_decode(r, n), utf8_ctype);
            if (lc <= 0x10ffff && (lc < 0xd800 || lc > 0xdfff)) m = utf8_encode((uint32_t)lc, low);
        }
        /* In place, so a letter whose lower case is longer in UTF-8 (U+023A, U+023E) stays
         * as it is; the database folds it for lookups and the unique index. */
        if (m > n || !utf8_ctype) {
            memmove(w, r, n);
            w += n;
        } else {
            memcpy(w, low, m);
            w += m;
        }
        r += n;
        left -= n;
    }
    *w = '\0';
    return s;
}

/* Labels of letters, digits and hyphens, 1..63 bytes, no hyphen at either end (RFC 1123),
 * at least two of them. */
static bool domain_ok(const char *d, size_t n)
{
    size_t label = 0, labels = 0;
    for (size_t i = 0; i <= n; i++) {
        if (i == n || d[i] == '.') {
            if (label == 0 || label > DNS_LABEL_MAX || d[i - label] == '-' || d[i - 1] == '-')
                return false;
            labels++;
            label = 0;
        } else if (is_alnum(d[i]) || d[i] == '-') {
            label++;
        } else {
            return false;
        }
    }
    return labels >= 2;
}

/* Judges the value as pl_email_normalize() would leave it: surrounding whitespace and upper
 * case are fine, so this works as a schema check on the raw request value. */
const char *pl_email_check(const char *s)
{
    size_t b, e;
    trim_span(s, &b, &e);
    if (e - b > EMAIL_MAX) return "must be at most 254 characters";

    const char *at = NULL;
    for (size_t i = b; i < e; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c <= 0x20 || c == 0x7f) return EMAIL_INVALID;
        if (c == '@') {
            if (at) return EMAIL_INVALID;
            at = s + i;
        }
    }
    if (!at) return EMAIL_INVALID;
    size_t local = (size_t)(at - (s + b));
    if (local == 0 || local > EMAIL_LOCAL_MAX) return EMAIL_INVALID;
    if (!domain_ok(at + 1, (size_t)(s + e - (at + 1)))) return EMAIL_INVALID;
    return NULL;
}

/* Length of the well-formed UTF-8 sequence at s (1..4), or 0 when it is not one. */
static size_t utf8_seq(const unsigned char *s, size_t avail)
{
    unsigned char c = s[0];
    if (c < 0x80) return 1;
    size_t n;
    unsigned lo = 0x80, hi = 0xbf;
    if (c >= 0xc2 && c <= 0xdf)
        n = 2;
    else if (c >= 0xe0 && c <= 0xef) {
        n = 3;
        if (c == 0xe0) lo = 0xa0; /* overlong */
        if (c == 0xed) hi = 0x9f; /* surrogates */
    } else if (c >= 0xf0 && c <= 0xf4) {
        n = 4;
        if (c == 0xf0) lo = 0x90; /* overlong */
        if (c == 0xf4) hi = 0x8f; /* past U+10FFFF */
    } else
        return 0;
    if (avail < n || s[1] < lo || s[1] > hi) return 0;
    for (size_t i = 2; i < n; i++)
        if (s[i] < 0x80 || s[i] > 0xbf) return 0;
    return n;
}

bool pl_utf8_valid(const char *s, size_t bytes)
{
    const unsigned char *p = (const unsigned char *)s;
    for (size_t i = 0; i < bytes;) {
        size_t n = utf8_seq(p + i, bytes - i);
        if (!n) return false;
        i += n;
    }
    return true;
}

size_t pl_utf8_sanitize(const char *in, char *out, size_t cap)
{
    const unsigned char *p = (const unsigned char *)in;
    size_t len = strlen(in), o = 0;
    for (size_t i = 0; i < len;) {
        size_t n = utf8_seq(p + i, len - i);
        size_t w = n ? n : 1;
        if (o + w + 1 > cap) break;
        if (n)
            memcpy(out + o, p + i, n);
        else
            out[o] = '?';
        o += w;
        i += w;
    }
    out[o] = 0;
    return o;
}
