#include "pl/config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "pl/log.h"
#include "pl/mem.h"

#define MAX_DOTENV_BYTES (1 << 20)

struct dotenv {
    char **keys;
    char **values;
    size_t n, cap;
};

static void dotenv_add(const char *key, const char *value, void *ctx)
{
    struct dotenv *d = ctx;
    for (size_t i = 0; i < d->n; i++) {
        if (strcmp(d->keys[i], key) == 0) { /* a later line wins, as in shells */
            free(d->values[i]);
            d->values[i] = pl_xstrdup(value);
            return;
        }
    }
    if (d->n == d->cap) {
        d->cap = d->cap ? d->cap * 2 : 16;
        d->keys = realloc(d->keys, d->cap * sizeof *d->keys);
        d->values = realloc(d->values, d->cap * sizeof *d->values);
        if (!d->keys || !d->values) abort();
    }
    d->keys[d->n] = pl_xstrdup(key);
    d->values[d->n++] = pl_xstrdup(value);
}

static void dotenv_free(struct dotenv *d)
{
    for (size_t i = 0; i < d->n; i++) {
        free(d->keys[i]);
        free(d->values[i]);
    }
    free(d->keys);
    free(d->values);
}

static int is_key_char(char c, bool first)
{
    return c == '_' || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
           (!first && c >= '0' && c <= '9');
}

int pl_config_parse_env(const char *text, size_t len,
                        void (*fn)(const char *key, const char *value, void *ctx), void *ctx,
                        char *err, size_t errlen)
{
    size_t i = 0;
    int line = 0;
    char *buf = malloc(len + 1); /* holds one key or value at a time */
    if (!buf) abort();
    char key[128];
    while (i < len) {
        line++;
        size_t eol = i;
        while (eol < len && text[eol] != '\n')
            eol++;
        size_t p = i, end = eol;
        if (end > p && text[end - 1] == '\r') end--;
        i = eol + 1;
        while (p < end && (text[p] == ' ' || text[p] == '\t'))
            p++;
        if (p == end || text[p] == '#') continue;
        if (end - p > 7 && memcmp(text + p, "export ", 7) == 0) {
            p += 7;
            while (p < end && text[p] == ' ')
                p++;
        }
        size_t k = 0;
        while (p < end && is_key_char(text[p], k == 0)) {
            if (k + 1 >= sizeof key) goto bad_key;
            key[k++] = text[p++];
        }
        key[k] = 0;
        if (k == 0) goto bad_key;
        while (p < end && (text[p] == ' ' || text[p] == '\t'))
            p++;
        if (p >= end || text[p] != '=') {
            snprintf(err, errlen, ".env line %d: expected KEY=VALUE", line);
            free(buf);
            return PL_E_CONFIG;
        }
        p++;
        while (p < end && (text[p] == ' ' || text[p] == '\t'))
            p++;
        size_t v = 0;
        if (p < end && (text[p] == '"' || text[p] == '\'')) {
            char q = text[p++];
            while (p < end && text[p] != q) {
                if (q == '"' && text[p] == '\\' && p + 1 < end) {
                    char e = text[++p];
                    buf[v++] = e == 'n' ? '\n' : e;
                    p++;
                    continue;
                }
                buf[v++] = text[p++];
            }
            if (p >= end) {
                snprintf(err, errlen, ".env line %d: unterminated quote", line);
                free(buf);
                return PL_E_CONFIG;
            }
            p++;
            while (p < end && (text[p] == ' ' || text[p] == '\t'))
                p++;
            if (p < end && text[p] != '#') {
                snprintf(err, errlen, ".env line %d: text after the closing quote", line);
                free(buf);
                return PL_E_CONFIG;
            }
        } else {
            /* Unquoted: up to an inline " #" comment, trailing blanks trimmed. */
            size_t s = p;
            while (p < end &&
                   !(text[p] == '#' && p > s && (text[p - 1] == ' ' || text[p - 1] == '\t')))
                p++;
            while (p > s && (text[p - 1] == ' ' || text[p - 1] == '\t'))
                p--;
            memcpy(buf, text + s, p - s);
            v = p - s;
        }
        buf[v] = 0;
        if (memchr(buf, 0, v)) {
            snprintf(err, errlen, ".env line %d: NUL byte in value", line);
            free(buf);
            return PL_E_CONFIG;
        }
        fn(key, buf, ctx);
        continue;
    bad_key:
        snprintf(err, errlen, ".env line %d: invalid variable name", line);
        free(buf);
        return PL_E_CONFIG;
    }
    free(buf);
    return 0;
}

static int read_dotenv(const char *path, struct dotenv *d, char *err, size_t errlen)
{
    if (!path) return 0;
    FILE *f = fopen(path, "rb");
    if (!f) return 0; /* optional */
    char *text = malloc(MAX_DOTENV_BYTES + 1);
    if (!text) abort();
    size_t n = fread(text, 1, MAX_DOTENV_BYTES + 1, f);
    fclose(f);
    if (n > MAX_DOTENV_BYTES) {
        free(text);
        snprintf(err, errlen, "%s: larger than 1 MiB", path);
        return PL_E_CONFIG;
    }
    int rc = pl_config_parse_env(text, n, dotenv_add, d, err, errlen);
    free(text);
    return rc;
}

static int parse_bool(const char *s, bool *out)
{
    static const char *const yes[] = {"1", "on", "true", "yes"};
    static const char *const no[] = {"0", "off", "false", "no"};
    for (int i = 0; i < 4; i++) {
        if (strcasecmp(s, yes[i]) == 0) return *out = true, 0;
        if (strcasecmp(s, no[i]) == 0) return *out = false, 0;
    }
    return -1;
}

static int parse_ll(const char *s, long long *out)
{
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || *end || s[0] == ' ' || s[0] == '+') return -1;
    *out = v;
    return 0;
}

static int apply(const struct pl_setting *st, const char *value, void *out, char *err,
                 size_t errlen)
{
    char *field = (char *)out + st->offset;
    switch (st->type) {
    case PL_SET_STRING: {
        char **p = (char **)field;
        free(*p);
        *p = pl_xstrdup(value);
        if (st->required && !**p) goto bad;
        return 0;
    }
    case PL_SET_INT: {
        long long v;
        if (parse_ll(value, &v) || v < st->min || v > st->max) {
            snprintf(err, errlen, "invalid %s=%.64s: expected an integer from %lld to %lld",
                     st->name, value, st->min, st->max);
            return PL_E_CONFIG;
        }
        *(long long *)field = v;
        return 0;
    }
    case PL_SET_BOOL:
        if (parse_bool(value, (bool *)field)) {
            snprintf(err, errlen, "invalid %s=%.64s: expected on/off, 1/0 or true/false", st->name,
                     value);
            return PL_E_CONFIG;
        }
        return 0;
    case PL_SET_RATE: {
        const char *slash = strchr(value, '/');
        long long c, s;
        char num[32];
        if (!slash || (size_t)(slash - value) >= sizeof num) goto bad_rate;
        memcpy(num, value, (size_t)(slash - value));
        num[slash - value] = 0;
        if (parse_ll(num, &c) || parse_ll(slash + 1, &s) || c < 1 || c > 100000000 || s < 1 ||
            s > 86400 * 7)
            goto bad_rate;
        ((struct pl_rate *)field)->count = (int)c;
        ((struct pl_rate *)field)->seconds = (int)s;
        return 0;
    bad_rate:
        snprintf(err, errlen, "invalid %s=%.64s: expected COUNT/SECONDS such as 60/60", st->name,
                 value);
        return PL_E_CONFIG;
    }
    }
bad:
    snprintf(err, errlen, "invalid %s: must not be empty", st->name);
    return PL_E_CONFIG;
}

int pl_config_load(const struct pl_setting *table, size_t n, void *out, const char *env_file,
                   char *err, size_t errlen)
{
    struct dotenv d = {0};
    int rc = read_dotenv(env_file, &d, err, errlen);
    if (rc) goto done;
    for (size_t i = 0; i < n; i++) {
        const struct pl_setting *st = &table[i];
        const char *v = getenv(st->name);
        if (!v) {
            for (size_t j = 0; j < d.n; j++)
                if (strcmp(d.keys[j], st->name) == 0) v = d.values[j];
        }
        if (!v) v = st->def;
        if (!v) {
            if (st->required) {
                snprintf(err, errlen, "missing %s: %s", st->name, st->help ? st->help : "required");
                rc = PL_E_CONFIG;
                goto done;
            }
            continue;
        }
        rc = apply(st, v, out, err, errlen);
        if (rc) goto done;
    }
done:
    dotenv_free(&d);
    return rc;
}

void pl_config_dispose(const struct pl_setting *table, size_t n, void *out)
{
    for (size_t i = 0; i < n; i++) {
        if (table[i].type != PL_SET_STRING) continue;
        char **p = (char **)((char *)out + table[i].offset);
        free(*p);
        *p = NULL;
    }
}

/* "scheme://user:secret@host" → "scheme://user:***@host" */
static void redact_url(const char *in, char *out, size_t cap)
{
    snprintf(out, cap, "%s", in);
    char *scheme = strstr(out, "://");
    if (!scheme) return;
    char *at = strchr(scheme + 3, '@');
    if (!at) return;
    char *colon = memchr(scheme + 3, ':', (size_t)(at - (scheme + 3)));
    if (!colon) return;
    char tail[512];
    snprintf(tail, sizeof tail, "%s", at);
    snprintf(colon, cap - (size_t)(colon - out), ":***%s", tail);
}

void pl_config_log(const struct pl_setting *table, size_t n, const void *cfg)
{
    /* Values are formatted into one arena so the fields can point at them. */
    enum { VAL_MAX = 300 };
    char *vals = malloc(n * VAL_MAX);
    struct pl_log_field *fields = malloc((n + 1) * sizeof *fields);
    if (!vals || !fields) abort();
    for (size_t i = 0; i < n; i++) {
        const struct pl_setting *st = &table[i];
        const char *field = (const char *)cfg + st->offset;
        char *val = vals + i * VAL_MAX;
        switch (st->type) {
        case PL_SET_STRING: {
            const char *s = *(char *const *)field;
            if (st->secret && s && *s)
                snprintf(val, VAL_MAX, "***");
            else
                redact_url(s ? s : "", val, VAL_MAX);
            fields[i] = PL_STR(st->name, val);
            break;
        }
        case PL_SET_INT:
            fields[i] = PL_INT(st->name, *(const long long *)field);
            break;
        case PL_SET_BOOL:
            fields[i] = PL_BOOL(st->name, *(const bool *)field);
            break;
        case PL_SET_RATE: {
            const struct pl_rate *r = (const struct pl_rate *)field;
            snprintf(val, VAL_MAX, "%d/%d", r->count, r->seconds);
            fields[i] = PL_STR(st->name, val);
            break;
        }
        }
    }
    fields[n] = PL_LOG_END;
    pl_log_emit(PL_LOG_INFO, "config", fields);
    free(fields);
    free(vals);
}
