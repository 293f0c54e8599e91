/* validate: a decoded body against a field table, with every problem as {field, message}.
 *
 * Each field gets at most one message (its first problem), so a client can show one line
 * under each input. Unknown and read-only keys come first, in the body's own key order
 * (jansson 2.14 iterates objects in insertion order), then the table's fields in table
 * order: the same body always gives the same list.
 *
 * Bounds: a STRING or STRING_ARRAY max (and item_max) of 0 means no upper bound, since a
 * maximum of zero would make the field useless; an INT is unbounded when min and max are
 * both 0, else it must lie in [min, max] (LLONG_MIN / LLONG_MAX for one-sided bounds). */
#include <assert.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "pl/buf.h"
#include "pl/json.h"
#include "pl/time.h"

static const char TIMESTAMP_MSG[] = "must be an RFC 3339 timestamp with an offset";

static bool in_list(const char *const *list, const char *name)
{
    for (; list && *list; list++)
        if (strcmp(*list, name) == 0) return true;
    return false;
}

static const struct pl_jfield *find_field(const struct pl_jschema *schema, const char *name)
{
    for (size_t i = 0; i < schema->nfields; i++)
        if (strcmp(schema->fields[i].name, name) == 0) return &schema->fields[i];
    return NULL;
}

static void add_error(json_t **errors, const char *field, const char *msg, size_t msg_len)
{
    if (!*errors) *errors = json_array();
    json_t *e = json_object();
    json_t *f = json_string(field);
    json_t *m = json_stringn(msg, msg_len);
    if (!*errors || !e || !f || !m || json_object_set_new(e, "field", f) ||
        json_object_set_new(e, "message", m) || json_array_append_new(*errors, e))
        abort(); /* out of memory: the only way these fail with valid UTF-8 */
}

static const char *plural(long long n, const char *one, const char *many)
{
    return n == 1 ? one : many;
}

/* "a-z 0-9 _ -": runs of three or more consecutive characters in the set are shown as a
 * range, so the message stays short for the usual slug alphabets. */
static void describe_charset(struct pl_buf *msg, const char *set)
{
    size_t n = strlen(set);
    for (size_t i = 0; i < n;) {
        size_t j = i;
        while (j + 1 < n && (unsigned char)set[j + 1] == (unsigned char)set[j] + 1)
            j++;
        if (i > 0) pl_buf_puts(msg, " ");
        if (j - i >= 2) {
            pl_buf_printf(msg, "%c-%c", set[i], set[j]);
            i = j + 1;
        } else {
            if (set[i] == ' ')
                pl_buf_puts(msg, "space");
            else
                pl_buf_append(msg, &set[i], 1);
            i++;
        }
    }
}

static bool charset_ok(const char *s, size_t bytes, const char *set)
{
    bool allowed[256] = {false};
    for (const unsigned char *p = (const unsigned char *)set; *p; p++)
        allowed[*p] = true;
    for (size_t i = 0; i < bytes; i++)
        if (!allowed[(unsigned char)s[i]]) return false;
    return true;
}

/* Length, charset, one_of and the custom check, shared by strings and array items; `prefix`
 * is "" or "items ". Returns true when the value passed. */
static bool check_text(const struct pl_jfield *f, json_t *v, long long min, long long max,
                       const char *prefix, const void *ctx, struct pl_buf *msg)
{
    const char *s = json_string_value(v);
    size_t bytes = json_string_length(v);
    if (strlen(s) != bytes) {
        /* Valid JSON ("\u0000"), but no text column stores it and C strings would cut it. */
        pl_buf_puts(msg, prefix);
        pl_buf_puts(msg, "must not contain NUL characters");
        return false;
    }
    long long len = (long long)pl_utf8_length(s, bytes);

    if (len < min || (max > 0 && len > max)) {
        pl_buf_puts(msg, prefix);
        if (len == 0 && min == 1)
            pl_buf_puts(msg, "must not be empty");
        else if (min == max)
            pl_buf_printf(msg, "must be exactly %lld %s", min,
                          plural(min, "character", "characters"));
        else if (len < min)
            pl_buf_printf(msg, "must be at least %lld %s", min,
                          plural(min, "character", "characters"));
        else
            pl_buf_printf(msg, "must be at most %lld %s", max,
                          plural(max, "character", "characters"));
        return false;
    }
    if (f->charset && !charset_ok(s, bytes, f->charset)) {
        pl_buf_puts(msg, prefix);
        pl_buf_puts(msg, "must use only these characters: ");
        describe_charset(msg, f->charset);
        return false;
    }
    /* Byte length first: a string with an embedded NUL never equals a listed value. */
    if (f->one_of) {
        bool found = false;
        for (const char *const *o = f->one_of; *o && !found; o++)
            found = strlen(*o) == bytes && memcmp(*o, s, bytes) == 0;
        if (!found) {
            pl_buf_puts(msg, prefix);
            pl_buf_puts(msg, "must be one of: ");
            for (const char *const *o = f->one_of; *o; o++) {
                if (o != f->one_of) pl_buf_puts(msg, ", ");
                pl_buf_puts(msg, *o);
            }
            return false;
        }
    }
    if (f->check || f->check_ctx) {
        const char *problem = f->check ? f->check(s) : NULL;
        if (!problem && f->check_ctx) problem = f->check_ctx(s, ctx);
        if (problem) {
            pl_buf_puts(msg, prefix);
            pl_buf_puts(msg, problem);
            return false;
        }
    }
    return true;
}

static void check_int(const struct pl_jfield *f, json_t *v, struct pl_buf *msg)
{
    if (!json_is_integer(v)) {
        pl_buf_puts(msg, "must be an integer");
        return;
    }
    if (f->min == 0 && f->max == 0) return;
    long long n = json_integer_value(v);
    if (n >= f->min && n <= f->max) return;
    if (f->max == LLONG_MAX)
        pl_buf_printf(msg, "must be at least %lld", f->min);
    else if (f->min == LLONG_MIN)
        pl_buf_printf(msg, "must be at most %lld", f->max);
    else
        pl_buf_printf(msg, "must be between %lld and %lld", f->min, f->max);
}

struct span {
    const char *s;
    size_t len;
};

static int span_cmp(const void *a, const void *b)
{
    const struct span *x = a, *y = b;
    int c = memcmp(x->s, y->s, x->len < y->len ? x->len : y->len);
    if (c) return c;
    return (x->len > y->len) - (x->len < y->len);
}

/* Sorting, not pairwise comparison: an unbounded array in a 1 MiB body must not cost n². */
static bool has_duplicates(json_t *arr)
{
    size_t n = json_array_size(arr);
    if (n < 2) return false;
    struct span *items = malloc(n * sizeof *items);
    if (!items) abort();
    for (size_t i = 0; i < n; i++) {
        json_t *item = json_array_get(arr, i);
        items[i] = (struct span){json_string_value(item), json_string_length(item)};
    }
    qsort(items, n, sizeof *items, span_cmp);
    bool dup = false;
    for (size_t i = 1; i < n && !dup; i++)
        dup = span_cmp(&items[i - 1], &items[i]) == 0;
    free(items);
    return dup;
}

static void check_string_array(const struct pl_jfield *f, json_t *v, const void *ctx,
                               struct pl_buf *msg)
{
    size_t i;
    json_t *item;
    if (!json_is_array(v)) {
        pl_buf_puts(msg, "must be an array of strings");
        return;
    }
    json_array_foreach(v, i, item)
    {
        if (!json_is_string(item)) {
            pl_buf_puts(msg, "must be an array of strings");
            return;
        }
    }
    long long count = (long long)json_array_size(v);
    if (count < f->min || (f->max > 0 && count > f->max)) {
        if (count == 0 && f->min == 1)
            pl_buf_puts(msg, "must not be empty");
        else if (count < f->min)
            pl_buf_printf(msg, "must have at least %lld %s", f->min,
                          plural(f->min, "item", "items"));
        else
            pl_buf_printf(msg, "must have at most %lld %s", f->max,
                          plural(f->max, "item", "items"));
        return;
    }
    json_array_foreach(v, i, item)
    {
        if (!check_text(f, item, f->item_min, f->item_max, "items ", ctx, msg)) return;
    }
    if (has_duplicates(v)) pl_buf_puts(msg, "must not repeat");
}

/* Leaves the field's first problem in msg, or nothing. */
static void check_field(const struct pl_jfield *f, json_t *v, const void *ctx, struct pl_buf *msg)
{
    if (!v) {
        if (f->flags & PL_JF_REQUIRED) pl_buf_puts(msg, "is required");
        return;
    }
    if (json_is_null(v)) {
        if (!(f->flags & PL_JF_NULLABLE)) pl_buf_puts(msg, "must not be null");
        return;
    }
    switch (f->type) {
    case PL_J_STRING:
        if (!json_is_string(v))
            pl_buf_puts(msg, "must be a string");
        else
            check_text(f, v, f->min, f->max, "", ctx, msg);
        return;
    case PL_J_INT:
        check_int(f, v, msg);
        return;
    case PL_J_BOOL:
        if (!json_is_boolean(v)) pl_buf_puts(msg, "must be true or false");
        return;
    case PL_J_STRING_ARRAY:
        check_string_array(f, v, ctx, msg);
        return;
    case PL_J_TIMESTAMP: {
        int64_t us;
        if (!json_is_string(v) || strlen(json_string_value(v)) != json_string_length(v) ||
            pl_time_parse_rfc3339(json_string_value(v), &us) != 0)
            pl_buf_puts(msg, TIMESTAMP_MSG);
        return;
    }
    }
    assert(!"unknown pl_jtype");
}

json_t *pl_json_validate(json_t *obj, const struct pl_jschema *schema)
{
    return pl_json_validate_ctx(obj, schema, NULL);
}

json_t *pl_json_validate_ctx(json_t *obj, const struct pl_jschema *schema, const void *ctx)
{
    json_t *errors = NULL;
    const char *key;
    json_t *value;

    /* A table field wins over the read-only list; listing a name in both is a mistake. */
    json_object_foreach(obj, key, value)
    {
        if (find_field(schema, key)) continue;
        if (in_list(schema->read_only, key))
            add_error(&errors, key, "is read-only", strlen("is read-only"));
        else
            add_error(&errors, key, "is not a known field", strlen("is not a known field"));
    }

    struct pl_buf msg;
    pl_buf_init(&msg);
    for (size_t i = 0; i < schema->nfields; i++) {
        const struct pl_jfield *f = &schema->fields[i];
        assert(!in_list(schema->read_only, f->name));
        msg.len = 0;
        check_field(f, json_object_get(obj, f->name), ctx, &msg);
        if (msg.len > 0) add_error(&errors, f->name, msg.data, msg.len);
    }
    pl_buf_dispose(&msg);
    return errors;
}
