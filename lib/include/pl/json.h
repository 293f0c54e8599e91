/* json: request-body decoding and validation with per-field errors, and the text helpers
 * every JSON shape of the contract needs (timestamps are pl/time.h's).
 *
 * pl_json_parse_object() is the 400 step (not JSON, not an object, duplicate keys, invalid
 * UTF-8); pl_json_validate() is the 422 step: it checks an object against a schema (a table
 * of fields) and returns every problem as {field, message}, unknown and read-only fields
 * included, so a client fixes all of them at once. */
#ifndef PL_JSON_H
#define PL_JSON_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pl/error.h"

enum pl_jtype {
    PL_J_STRING, /* min/max: length in Unicode code points */
    PL_J_INT,    /* min/max: value; 1.5, "5", true are wrong types */
    PL_J_BOOL,
    PL_J_STRING_ARRAY, /* min/max: item count; item_min/item_max: item length; unique items */
    PL_J_TIMESTAMP,    /* an RFC 3339 string with an offset */
};

enum pl_jflag {
    PL_JF_REQUIRED = 1u << 0,
    PL_JF_NULLABLE = 1u << 1, /* null accepted (the caller decides what it means) */
};

struct pl_jfield {
    const char *name;
    enum pl_jtype type;
    unsigned flags;
    long long min, max;
    long long item_min, item_max;
    /* strings and array items: if set, every byte must be in this set of ASCII characters
     * (e.g. "abcdefghijklmnopqrstuvwxyz0123456789_-") */
    const char *charset;
    /* strings: if set, the value must be one of these (NULL-terminated list) */
    const char *const *one_of;
    /* extra check for strings; returns NULL when fine, else a message (static string) */
    const char *(*check)(const char *value);
    /* the same for a check that needs more than the value (a list loaded at start-up): gets
     * the ctx given to pl_json_validate_ctx (NULL through pl_json_validate) */
    const char *(*check_ctx)(const char *value, const void *ctx);
};

struct pl_jschema {
    const struct pl_jfield *fields;
    size_t nfields;
    /* names that are refused as "read-only" (id, version, created_at, updated_at, ...);
     * NULL-terminated, may be NULL */
    const char *const *read_only;
};

/* Parses `len` bytes as a JSON object. An empty body (len 0, or only whitespace) gives {}.
 * Returns 0 with *out (new reference), or PL_E_PROTOCOL with a short, safe reason in
 * `detail` ("body is not valid JSON: ... at line 1 column 5", "body must be a JSON object",
 * "duplicate key \"x\"", "invalid UTF-8"). Never echoes more than 60 bytes of input. */
PL_MUST_USE int pl_json_parse_object(const char *body, size_t len, json_t **out, char *detail,
                                     size_t detail_cap);

/* Checks obj against schema. Returns NULL when valid, else a new array of
 * {"field": name, "message": text} in field order (unknown/read-only fields first, in the
 * object's key order). Messages are short English sentences ("must be at most 200
 * characters", "is required", "must be an integer", "is read-only", "is not a known field",
 * "must not be null", "must be one of: a, b"). */
json_t *pl_json_validate(json_t *obj, const struct pl_jschema *schema);
/* The same, passing ctx (borrowed for the call) to the fields' check_ctx. */
json_t *pl_json_validate_ctx(json_t *obj, const struct pl_jschema *schema, const void *ctx);

/* true when s[0..bytes) is well-formed UTF-8 (no overlongs, surrogates or values past
 * U+10FFFF). */
bool pl_utf8_valid(const char *s, size_t bytes);
/* Copies NUL-terminated `in` into out (cap >= 1), replacing every byte that is not part of
 * well-formed UTF-8 with '?' and stopping before a character that would not fit. Returns
 * the length written. For client-supplied text stored for display (User-Agent). */
size_t pl_utf8_sanitize(const char *in, char *out, size_t cap);

/* Unicode code points in a valid UTF-8 string of `bytes` bytes. */
size_t pl_utf8_length(const char *s, size_t bytes);

/* Trims ASCII whitespace and lower-cases letters in place (Unicode simple case mapping of
 * the C library's C.UTF-8 locale, as Postgres's lower() in a UTF-8 database; a letter whose
 * lower case would take more bytes is kept, so the result never grows); returns s. */
char *pl_email_normalize(char *s);
/* NULL when s is a plausible email (1..64 local part, a dot-separated domain of letters,
 * digits and hyphens with at least one dot, no spaces or control characters, at most 254
 * bytes), else a message. */
const char *pl_email_check(const char *s);

#endif
