/* redis:// URL parsing. Strict on purpose: a typo in a deployment's REDIS_URL should stop the
 * server at startup (PL_E_CONFIG), not connect somewhere unexpected. */
#include <ctype.h>
#include <string.h>
#include <strings.h>

#include "pl/error.h"
#include "redis/redis_internal.h"

static int hexval(char ch)
{
    if (ch >= '0' && ch <= '9') return ch - '0';
    if (ch >= 'a' && ch <= 'f') return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F') return ch - 'A' + 10;
    return -1;
}

/* Percent-decodes s[0..n) into a new string, or NULL when empty. A bad escape or an encoded
 * NUL (credentials travel as C strings) sets *bad. */
static char *decode(const char *s, size_t n, bool *bad)
{
    char *out = rd_xmalloc(n + 1);
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] != '%') {
            out[o++] = s[i];
            continue;
        }
        if (n - i < 3 || hexval(s[i + 1]) < 0 || hexval(s[i + 2]) < 0) goto fail;
        char ch = (char)(hexval(s[i + 1]) * 16 + hexval(s[i + 2]));
        if (ch == 0) goto fail;
        out[o++] = ch;
        i += 2;
    }
    out[o] = 0;
    if (o == 0) {
        free(out);
        return NULL;
    }
    return out;
fail:
    free(out);
    *bad = true;
    return NULL;
}

/* Parses 1..max_digits decimal digits at *p into [min, max]; advances *p. */
static bool parse_number(const char **p, int max_digits, long min, long max, int *out)
{
    const char *s = *p;
    long v = 0;
    int n = 0;
    while (isdigit((unsigned char)s[n])) {
        if (++n > max_digits) return false;
        v = v * 10 + (s[n - 1] - '0');
    }
    if (n == 0 || v < min || v > max) return false;
    *out = (int)v;
    *p = s + n;
    return true;
}

int pl_redis_url_parse(const char *url, struct pl_redis_url *out)
{
    memset(out, 0, sizeof *out);
    out->port = 6379;
    if (!url || strncasecmp(url, "redis://", 8) != 0) return PL_E_CONFIG;
    const char *p = url + 8;

    /* The last '@' ends the credentials: host, port and db never contain one, while a
     * password might (unencoded) in a hand-written URL. */
    const char *at = strrchr(p, '@');
    if (at) {
        const char *colon = memchr(p, ':', (size_t)(at - p));
        if (!colon) goto fail; /* "secret@host" is ambiguous: user or password? */
        bool bad = false;
        out->user = decode(p, (size_t)(colon - p), &bad);
        out->password = decode(colon + 1, (size_t)(at - colon - 1), &bad);
        if (bad) goto fail;
        if (!out->password) { /* a user without a password authenticates as nobody */
            free(out->user);
            out->user = NULL;
        }
        p = at + 1;
    }

    const char *host = p;
    size_t host_len;
    if (*p == '[') {
        const char *end = strchr(p, ']');
        if (!end || end == p + 1) goto fail;
        for (const char *q = p + 1; q < end; q++)
            if (!isxdigit((unsigned char)*q) && *q != ':' && *q != '.') goto fail;
        host = p + 1;
        host_len = (size_t)(end - host);
        p = end + 1;
    } else {
        while (isalnum((unsigned char)*p) || *p == '.' || *p == '-' || *p == '_')
            p++;
        host_len = (size_t)(p - host);
        if (host_len == 0) goto fail;
    }
    out->host = rd_xmalloc(host_len + 1);
    memcpy(out->host, host, host_len);
    out->host[host_len] = 0;

    if (*p == ':') {
        p++;
        if (!parse_number(&p, 5, 1, 65535, &out->port)) goto fail;
    }
    if (*p == '/') {
        p++;
        if (*p && !parse_number(&p, 9, 0, 999999999, &out->db)) goto fail;
    }
    if (*p) goto fail; /* query strings, fragments, stray characters */
    return 0;

fail:
    pl_redis_url_dispose(out);
    return PL_E_CONFIG;
}

void pl_redis_url_dispose(struct pl_redis_url *u)
{
    free(u->host);
    free(u->user);
    free(u->password);
    memset(u, 0, sizeof *u);
}
