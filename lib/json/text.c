/* text: code-point counting and the email rules shared by register, login and profile. */
#include <string.h>

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

char *pl_email_normalize(char *s)
{
    size_t b, e;
    trim_span(s, &b, &e);
    memmove(s, s + b, e - b);
    s[e - b] = '\0';
    for (char *p = s; *p; p++)
        if (*p >= 'A' && *p <= 'Z') *p = (char)(*p - 'A' + 'a');
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
