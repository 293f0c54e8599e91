/* decode: a request body to a JSON object, or a short reason for the 400.
 *
 * jansson does the parsing; this file turns its errors into details that are safe to send
 * back (valid UTF-8, no control characters, never more than a few dozen bytes of input)
 * and names the duplicated key, which jansson only quotes when its raw text is short. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pl/json.h"

/* How much of a duplicated key a detail quotes: the whole detail stays under the 60 bytes of
 * input the contract allows. */
#define KEY_QUOTE_MAX 40

static bool is_json_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* Bytes of the UTF-8 sequence starting at s (at most n available) when it is well formed,
 * else 0. Overlongs, surrogates and code points past U+10FFFF count as malformed. */
static size_t utf8_sequence(const unsigned char *s, size_t n)
{
    size_t len;
    unsigned cp;
    if (s[0] < 0x80) return 1;
    if (s[0] >= 0xc2 && s[0] <= 0xdf) {
        len = 2;
        cp = s[0] & 0x1f;
    } else if (s[0] >= 0xe0 && s[0] <= 0xef) {
        len = 3;
        cp = s[0] & 0x0f;
    } else if (s[0] >= 0xf0 && s[0] <= 0xf4) {
        len = 4;
        cp = s[0] & 0x07;
    } else {
        return 0;
    }
    if (n < len) return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80) return 0;
        cp = cp << 6 | (s[i] & 0x3f);
    }
    if ((len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) || cp > 0x10ffff ||
        (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return len;
}

/* Appends src to the detail, replacing control characters and malformed UTF-8 with '?' and
 * cutting only between characters, so the detail can always become a JSON string. */
static void append_safe(char *dst, size_t cap, size_t *used, const char *src, size_t n)
{
    const unsigned char *s = (const unsigned char *)src;
    size_t i = 0;
    while (i < n) {
        size_t len = utf8_sequence(s + i, n - i);
        if (len == 0 || s[i] < 0x20 || s[i] == 0x7f) {
            if (*used + 1 >= cap) break;
            dst[(*used)++] = '?';
            i += len ? len : 1;
            continue;
        }
        if (*used + len >= cap) break;
        memcpy(dst + *used, s + i, len);
        *used += len;
        i += len;
    }
    dst[*used] = '\0';
}

static void set_detail(char *detail, size_t cap, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void set_detail(char *detail, size_t cap, const char *fmt, ...)
{
    char raw[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(raw, sizeof raw, fmt, ap);
    va_end(ap);
    if (!detail || cap == 0) return;
    size_t used = 0;
    detail[0] = '\0';
    if (n > 0)
        append_safe(detail, cap, &used, raw, (size_t)n < sizeof raw ? (size_t)n : sizeof raw - 1);
}

/* jansson reports a duplicate with its position just past the key's closing quote. Walking
 * back to the opening quote (one not escaped by an odd run of backslashes) gives the raw key
 * token, which decodes on its own as a JSON string. Returns a new reference or NULL. */
static json_t *duplicate_key(const char *body, size_t len, const json_error_t *err)
{
    if (err->position < 2 || (size_t)err->position > len || body[err->position - 1] != '"')
        return NULL;
    size_t end = (size_t)err->position;
    for (size_t i = end - 1; i-- > 0;) {
        if (body[i] != '"') continue;
        size_t slashes = 0;
        while (i - slashes > 0 && body[i - slashes - 1] == '\\')
            slashes++;
        if (slashes % 2 == 0) {
            json_t *key = json_loadb(body + i, end - i, JSON_DECODE_ANY, NULL);
            if (key && json_is_string(key)) return key;
            json_decref(key);
            return NULL;
        }
    }
    return NULL;
}

static void describe_duplicate(const char *body, size_t len, const json_error_t *err, char *detail,
                               size_t cap)
{
    json_t *key = duplicate_key(body, len, err);
    if (!key) {
        set_detail(detail, cap, "duplicate key");
        return;
    }
    const char *text = json_string_value(key);
    size_t bytes = json_string_length(key);
    size_t shown = 0;
    /* Whole characters only: the detail must stay valid UTF-8. */
    while (shown < bytes) {
        size_t step = utf8_sequence((const unsigned char *)text + shown, bytes - shown);
        if (step == 0 || shown + step > KEY_QUOTE_MAX) break;
        shown += step;
    }
    set_detail(detail, cap, "duplicate key \"%.*s%s\"", (int)shown, text,
               shown < bytes ? "..." : "");
    json_decref(key);
}

int pl_json_parse_object(const char *body, size_t len, json_t **out, char *detail,
                         size_t detail_cap)
{
    *out = NULL;
    if (detail && detail_cap) detail[0] = '\0';

    size_t start = 0;
    while (start < len && is_json_space(body[start]))
        start++;
    if (start == len) {
        *out = json_object();
        if (!*out) abort();
        return 0;
    }

    /* JSON_DECODE_ANY so that a scalar or an array parses and gets the precise "must be an
     * object" reason rather than jansson's "'[' or '{' expected". */
    json_error_t err;
    json_t *root =
        json_loadb(body, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY | JSON_ALLOW_NUL, &err);
    if (root) {
        if (json_is_object(root)) {
            *out = root;
            return 0;
        }
        json_decref(root);
        set_detail(detail, detail_cap, "body must be a JSON object");
        return PL_E_PROTOCOL;
    }

    switch (json_error_code(&err)) {
    case json_error_out_of_memory:
        abort();
    case json_error_invalid_utf8:
        set_detail(detail, detail_cap, "invalid UTF-8");
        break;
    case json_error_duplicate_key:
        describe_duplicate(body, len, &err, detail, detail_cap);
        break;
    case json_error_numeric_overflow:
        set_detail(detail, detail_cap, "number out of range");
        break;
    default:
        /* jansson quotes at most 20 bytes of input ("near '...'") in err.text. */
        set_detail(detail, detail_cap, "body is not valid JSON: %s at line %d column %d", err.text,
                   err.line, err.column);
        break;
    }
    return PL_E_PROTOCOL;
}
