/* lib/json: body decoding (the 400 step), validation (the 422 step) and emails. RFC 3339
 * time and calendar dates are lib/core/time's (test_time.c). */
#include <limits.h>
#include <stdint.h>

#include "pl/json.h"
#include "test.h"

/* ---- decoding --------------------------------------------------------------------------- */

static char detail[128];

/* Parses a NUL-terminated body; returns the result code and leaves the object (or NULL). */
static int parse(const char *body, json_t **out)
{
    return pl_json_parse_object(body, strlen(body), out, detail, sizeof detail);
}

static int parse_fails(const char *body)
{
    json_t *obj = (json_t *)1;
    int rc = parse(body, &obj);
    if (obj != NULL) {
        json_decref(obj);
        return 0;
    }
    return rc == PL_E_PROTOCOL;
}

static bool starts_with(const char *s, const char *prefix)
{
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

TEST(parse_object_ok)
{
    json_t *obj;
    CHECK_EQ_INT(parse("{\"a\": 1, \"b\": [\"x\", {\"c\": null}]}", &obj), 0);
    CHECK(json_is_object(obj));
    CHECK_EQ_INT(json_integer_value(json_object_get(obj, "a")), 1);
    CHECK_STR(detail, "");
    json_decref(obj);

    /* Surrounding whitespace is fine. */
    CHECK_EQ_INT(parse(" \r\n\t{\"a\":\"\xc3\xa9\"}\n ", &obj), 0);
    CHECK_STR(json_string_value(json_object_get(obj, "a")), "\xc3\xa9");
    json_decref(obj);
}

TEST(parse_empty_body_is_empty_object)
{
    json_t *obj;
    CHECK_EQ_INT(pl_json_parse_object(NULL, 0, &obj, detail, sizeof detail), 0);
    CHECK(json_is_object(obj) && json_object_size(obj) == 0);
    json_decref(obj);

    CHECK_EQ_INT(parse("", &obj), 0);
    CHECK(json_is_object(obj) && json_object_size(obj) == 0);
    json_decref(obj);

    CHECK_EQ_INT(parse(" \t\r\n  \n", &obj), 0);
    CHECK(json_is_object(obj) && json_object_size(obj) == 0);
    json_decref(obj);
}

/* Bodies refused at the 400 step and the detail each gets: exact, or a prefix when it ends
 * in '*'. */
TEST(parse_refused)
{
    static const struct {
        const char *body, *detail;
    } cases[] = {
        /* malformed */
        {"{", "body is not valid JSON: *"},
        {"{\"a\":1,}", "body is not valid JSON: *"},
        {"{'a':1}", "body is not valid JSON: *"},
        {"abc", "body is not valid JSON: *"},
        {"{\"a\":tru}", "body is not valid JSON: *"},
        {"{\"a\":01}", "body is not valid JSON: *"},
        {"{\"a\":\"\\ud800\"}", "body is not valid JSON: *"}, /* lone surrogate escape */
        {"{\"a\":\"x\ny\"}", "body is not valid JSON: *"},    /* raw control character */
        {"\xef\xbb\xbf{}", "body is not valid JSON: *"},      /* a byte order mark */
        {"\f", "body is not valid JSON: *"},                  /* only JSON whitespace counts */
        /* trailing garbage after the object */
        {"{\"a\":1} x", "body is not valid JSON: *"},
        {"{}{}", "body is not valid JSON: *"},
        {"{} ,", "body is not valid JSON: *"},
        /* not an object */
        {"[1, 2]", "body must be a JSON object"},
        {"[]", "body must be a JSON object"},
        {"42", "body must be a JSON object"},
        {"-1.5", "body must be a JSON object"},
        {"\"text\"", "body must be a JSON object"},
        {"null", "body must be a JSON object"},
        {" true ", "body must be a JSON object"},
        /* duplicate keys, nested ones too; an escaped spelling is the same key */
        {"{\"a\":1,\"a\":2}", "duplicate key \"a\""},
        {"{\"a\":1, \"b\":2 , \"b\" : 3}", "duplicate key \"b\""},
        {"{\"x\":{\"b\\u0061\":1,\"ba\":2}}", "duplicate key \"ba\""},
        {"{\"list\":[{\"k\":1},{\"k\":1,\"k\":2}]}", "duplicate key \"k\""},
        {"{\"q\\\"\\\\\":1,\"q\\\"\\\\\":2}", "duplicate key \"q\"\\\""},
        {"{\"\xc3\xa9t\xc3\xa9\":1,\"\xc3\xa9t\xc3\xa9\":2}",
         "duplicate key \"\xc3\xa9t\xc3\xa9\""},
        {"{\"a\\nb\":1,\"a\\nb\":2}", "duplicate key \"a?b\""}, /* no raw newline in the detail */
        /* invalid UTF-8 */
        {"{\"a\":\"\xc3\x28\"}", "invalid UTF-8"},
        {"{\"a\":\"\xff\"}", "invalid UTF-8"},
        {"{\"a\":\"\xc0\xaf\"}", "invalid UTF-8"},     /* overlong '/' */
        {"{\"a\":\"\xed\xa0\x80\"}", "invalid UTF-8"}, /* encoded surrogate */
        {"{\"\xe2\x82\":1}", "invalid UTF-8"},         /* truncated sequence in a key */
        /* numbers beyond int64 or double */
        {"{\"a\":9223372036854775808}", "number out of range"},
        {"{\"a\":-99999999999999999999999}", "number out of range"},
        {"{\"a\":1e999}", "number out of range"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *want = cases[i].detail;
        size_t n = strlen(want);
        bool prefix = n > 0 && want[n - 1] == '*';
        bool ok = parse_fails(cases[i].body) &&
                  (prefix ? strncmp(detail, want, n - 1) == 0 : strcmp(detail, want) == 0);
        if (!ok)
            fprintf(stderr, "  body %s: detail \"%s\", want \"%s\"\n", cases[i].body, detail, want);
        CHECK(ok);
    }
}

/* NUL inside a string is valid JSON: it parses, and validation refuses it (422). */
TEST(parse_nul_in_string)
{
    json_t *o = NULL;
    char d[128];
    CHECK_EQ_INT(pl_json_parse_object("{\"a\":\"x\\u0000y\"}", 16, &o, d, sizeof d), 0);
    static const struct pl_jfield f[] = {{.name = "a", .type = PL_J_STRING, .max = 10}};
    static const struct pl_jschema sch = {f, 1, NULL};
    json_t *errs = o ? pl_json_validate(o, &sch) : NULL;
    CHECK(errs != NULL);
    CHECK_STR(json_string_value(json_object_get(json_array_get(errs, 0), "message")),
              "must not contain NUL characters");
    json_decref(errs);
    json_decref(o);
}

TEST(parse_malformed_detail)
{
    CHECK(parse_fails("{"));
    CHECK(strstr(detail, "at line 1 column") != NULL);
}

TEST(parse_detail_is_bounded_and_safe)
{
    /* A long bad token: the detail never carries more than jansson's short quote. */
    char body[400];
    memset(body, 'x', sizeof body - 1);
    body[0] = '{';
    body[sizeof body - 1] = '\0';
    CHECK(parse_fails(body));
    CHECK(strlen(detail) < 120);
    CHECK(strstr(detail, "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx") == NULL);

    /* Control bytes in the input never reach the detail. */
    CHECK(parse_fails("{\"a\":tru\x01\x02}"));
    for (const char *p = detail; *p; p++)
        CHECK((unsigned char)*p >= 0x20 && *p != 0x7f);

    /* A tiny buffer is filled and terminated, never overrun. */
    char small[8];
    json_t *obj;
    CHECK_EQ_INT(pl_json_parse_object("[1]", 3, &obj, small, sizeof small), PL_E_PROTOCOL);
    CHECK_STR(small, "body mu");
    CHECK(obj == NULL);
    /* And no buffer at all is allowed. */
    CHECK_EQ_INT(pl_json_parse_object("[1]", 3, &obj, NULL, 0), PL_E_PROTOCOL);
}

/* A long duplicate key is cut (at a character boundary) to keep the detail short; the same
 * key in sibling objects is fine. */
TEST(parse_duplicate_long_key)
{
    char body[600], key[201] = "";
    for (int i = 0; i < 100; i++)
        strcat(key, "\xc3\xa9");
    snprintf(body, sizeof body, "{\"%s\":1,\"%s\":2}", key, key);
    CHECK(parse_fails(body));
    CHECK(starts_with(detail, "duplicate key \"\xc3\xa9"));
    CHECK(strstr(detail, "...\"") != NULL);
    CHECK(strlen(detail) <= 60);
    CHECK(pl_utf8_length(detail, strlen(detail)) > 0);

    json_t *obj;
    CHECK_EQ_INT(parse("{\"a\":{\"k\":1},\"b\":{\"k\":1}}", &obj), 0);
    json_decref(obj);
}

TEST(parse_number_limits)
{
    json_t *obj;
    CHECK_EQ_INT(parse("{\"a\":9223372036854775807,\"b\":-9223372036854775808}", &obj), 0);
    CHECK(json_integer_value(json_object_get(obj, "a")) == INT64_MAX);
    CHECK(json_integer_value(json_object_get(obj, "b")) == INT64_MIN);
    json_decref(obj);
}

TEST(parse_deep_nesting)
{
    /* Past jansson's depth limit: an error, not a stack overflow. */
    enum { DEPTH = 5000 };
    char *body = malloc((size_t)DEPTH * 7 + 8);
    size_t n = 0;
    for (int i = 0; i < DEPTH; i++) {
        memcpy(body + n, "{\"a\":", 5);
        n += 5;
    }
    body[n++] = '1';
    memset(body + n, '}', DEPTH);
    n += DEPTH;
    json_t *obj;
    CHECK_EQ_INT(pl_json_parse_object(body, n, &obj, detail, sizeof detail), PL_E_PROTOCOL);
    CHECK(starts_with(detail, "body is not valid JSON: "));
    free(body);
}

/* ---- validation ------------------------------------------------------------------------- */

static const char *const KINDS[] = {"bottle", "breast", "solid", NULL};
static const char *const READ_ONLY[] = {"id", "version", "created_at", "updated_at", NULL};

static const char *no_admin(const char *v)
{
    return strcmp(v, "admin") == 0 ? "is taken" : NULL;
}

static const struct pl_jfield FIELDS[] = {
    {.name = "title", .type = PL_J_STRING, .flags = PL_JF_REQUIRED, .min = 1, .max = 200},
    {.name = "note", .type = PL_J_STRING, .flags = PL_JF_NULLABLE, .max = 5},
    {.name = "amount_ml", .type = PL_J_INT, .min = 0, .max = 2000},
    {.name = "pinned", .type = PL_J_BOOL},
    {.name = "tags",
     .type = PL_J_STRING_ARRAY,
     .max = 3,
     .item_min = 1,
     .item_max = 8,
     .charset = "abcdefghijklmnopqrstuvwxyz0123456789_-"},
    {.name = "given_at", .type = PL_J_TIMESTAMP},
    {.name = "kind", .type = PL_J_STRING, .one_of = KINDS},
    {.name = "slug", .type = PL_J_STRING, .charset = "abc", .check = no_admin},
    {.name = "count", .type = PL_J_INT},
};
static const struct pl_jschema SCHEMA = {
    .fields = FIELDS, .nfields = sizeof FIELDS / sizeof FIELDS[0], .read_only = READ_ONLY};

/* Validates a JSON text; returns the errors (caller json_decref) or NULL. */
static json_t *validate_with(const char *body, const struct pl_jschema *schema)
{
    json_t *obj;
    if (pl_json_parse_object(body, strlen(body), &obj, detail, sizeof detail) != 0) {
        fprintf(stderr, "test body does not parse: %s\n", detail);
        abort();
    }
    json_t *errors = pl_json_validate(obj, schema);
    json_decref(obj);
    return errors;
}

static json_t *validate(const char *body)
{
    return validate_with(body, &SCHEMA);
}

/* The message for `field` when it is the only error, else NULL (kept until the next call). */
static const char *only_error(const char *body, const char *field)
{
    static char msg[256];
    json_t *errors = validate(body);
    if (!errors || json_array_size(errors) != 1) {
        char *dump = errors ? json_dumps(errors, 0) : NULL;
        fprintf(stderr, "  expected one error for %s in %s, got %s\n", field, body,
                dump ? dump : "none");
        free(dump);
        json_decref(errors);
        return NULL;
    }
    json_t *e = json_array_get(errors, 0);
    const char *f = json_string_value(json_object_get(e, "field"));
    const char *m = json_string_value(json_object_get(e, "message"));
    bool match = f && m && strcmp(f, field) == 0;
    if (match) snprintf(msg, sizeof msg, "%s", m);
    json_decref(errors);
    return match ? msg : NULL;
}

static bool valid(const char *body)
{
    json_t *errors = validate(body);
    if (errors) {
        char *dump = json_dumps(errors, 0);
        fprintf(stderr, "  unexpected errors for %s: %s\n", body, dump);
        free(dump);
        json_decref(errors);
        return false;
    }
    return true;
}

/* A body of `prefix` + n copies of `unit` + `suffix`. */
static char *repeat(const char *prefix, const char *unit, int n, const char *suffix)
{
    size_t p = strlen(prefix), u = strlen(unit), s = strlen(suffix);
    char *out = malloc(p + u * (size_t)n + s + 1);
    memcpy(out, prefix, p);
    for (int i = 0; i < n; i++)
        memcpy(out + p + u * (size_t)i, unit, u);
    memcpy(out + p + u * (size_t)n, suffix, s + 1);
    return out;
}

/* Bodies against SCHEMA: valid (field NULL), or exactly one error, on field, with message. */
struct vcase {
    const char *body, *field, *message;
};

static int run_vcases(const struct vcase *c, size_t n)
{
    int bad = 0;
    for (size_t i = 0; i < n; i++) {
        if (!c[i].field) {
            bad += !valid(c[i].body);
            continue;
        }
        const char *m = only_error(c[i].body, c[i].field);
        if (!m || strcmp(m, c[i].message) != 0) {
            fprintf(stderr, "  %s: %s: got \"%s\", want \"%s\"\n", c[i].body, c[i].field,
                    m ? m : "(none)", c[i].message);
            bad++;
        }
    }
    return bad;
}
#define CHECK_VCASES(cases) CHECK_EQ_INT(run_vcases(cases, sizeof cases / sizeof cases[0]), 0)

/* True when body's errors against schema carry exactly the messages `want` (NULL-ended),
 * in order. */
static bool messages_are(const char *body, const struct pl_jschema *schema, const char *const *want)
{
    json_t *errors = validate_with(body, schema);
    size_t n = 0;
    while (want[n])
        n++;
    bool ok = json_array_size(errors) == n;
    for (size_t i = 0; ok && i < n; i++) {
        const char *m = json_string_value(json_object_get(json_array_get(errors, i), "message"));
        ok = m && strcmp(m, want[i]) == 0;
    }
    if (!ok) {
        char *dump = errors ? json_dumps(errors, 0) : NULL;
        fprintf(stderr, "  %s: got %s\n", body, dump ? dump : "no errors");
        free(dump);
    }
    json_decref(errors);
    return ok;
}
#define MESSAGES(...) ((const char *const[]){__VA_ARGS__, NULL})
#define NO_MESSAGES   ((const char *const[]){NULL})

static const char *const TS_MSG = "must be an RFC 3339 timestamp with an offset";

TEST(validate_fields)
{
    static const struct vcase cases[] = {
        /* valid bodies */
        {"{\"title\":\"t\"}", NULL, NULL},
        {"{\"title\":\"Hello\",\"note\":\"abc\",\"amount_ml\":120,\"pinned\":true,"
         "\"tags\":[\"a-b\",\"c_1\"],\"given_at\":\"2026-11-23T10:30:00.5+01:00\","
         "\"kind\":\"solid\",\"slug\":\"cab\",\"count\":-7}",
         NULL, NULL},
        {"{\"title\":\"t\",\"pinned\":false,\"tags\":[]}", NULL, NULL},
        /* required, and null where null is not allowed */
        {"{}", "title", "is required"},
        {"{\"pinned\":true}", "title", "is required"},
        {"{\"title\":null}", "title", "must not be null"},
        /* strings */
        {"{\"title\":5}", "title", "must be a string"},
        {"{\"title\":true}", "title", "must be a string"},
        {"{\"title\":[\"a\"]}", "title", "must be a string"},
        {"{\"title\":{}}", "title", "must be a string"},
        {"{\"title\":\"\"}", "title", "must not be empty"},
        {"{\"title\":\"t\",\"note\":\"abcdef\"}", "note", "must be at most 5 characters"},
        {"{\"title\":\"t\",\"note\":\"\"}", NULL, NULL},
        /* lengths count code points: four-byte characters once, escapes as what they encode */
        {"{\"title\":\"t\",\"note\":\"\xf0\x9f\x8d\xbc\xf0\x9f\x8d\xbc\xf0\x9f\x8d\xbc"
         "\xf0\x9f\x8d\xbc\xf0\x9f\x8d\xbc\"}",
         NULL, NULL},
        {"{\"title\":\"t\",\"note\":\"\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\"}", NULL, NULL},
        {"{\"title\":\"t\",\"note\":\"\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9x\"}", "note",
         "must be at most 5 characters"},
        /* charset (per byte: a multibyte character is never in an ASCII set), one_of */
        {"{\"title\":\"t\",\"slug\":\"\"}", NULL, NULL},
        {"{\"title\":\"t\",\"slug\":\"abd\"}", "slug", "must use only these characters: a-c"},
        {"{\"title\":\"t\",\"slug\":\"a\xc3\xa1\"}", "slug", "must use only these characters: a-c"},
        {"{\"title\":\"t\",\"kind\":\"Bottle\"}", "kind", "must be one of: bottle, breast, solid"},
        {"{\"title\":\"t\",\"kind\":\"\"}", "kind", "must be one of: bottle, breast, solid"},
        {"{\"title\":\"t\",\"kind\":\"breast\"}", NULL, NULL},
        /* integers */
        {"{\"title\":\"t\",\"amount_ml\":0}", NULL, NULL},
        {"{\"title\":\"t\",\"amount_ml\":2000}", NULL, NULL},
        {"{\"title\":\"t\",\"amount_ml\":-0}", NULL, NULL},
        {"{\"title\":\"t\",\"amount_ml\":2001}", "amount_ml", "must be between 0 and 2000"},
        {"{\"title\":\"t\",\"amount_ml\":-1}", "amount_ml", "must be between 0 and 2000"},
        {"{\"title\":\"t\",\"amount_ml\":1.0}", "amount_ml", "must be an integer"},
        {"{\"title\":\"t\",\"amount_ml\":1.5}", "amount_ml", "must be an integer"},
        {"{\"title\":\"t\",\"amount_ml\":1e2}", "amount_ml", "must be an integer"},
        {"{\"title\":\"t\",\"amount_ml\":\"5\"}", "amount_ml", "must be an integer"},
        {"{\"title\":\"t\",\"amount_ml\":true}", "amount_ml", "must be an integer"},
        {"{\"title\":\"t\",\"amount_ml\":null}", "amount_ml", "must not be null"},
        /* min = max = 0: no bounds at all */
        {"{\"title\":\"t\",\"count\":9223372036854775807}", NULL, NULL},
        {"{\"title\":\"t\",\"count\":-9223372036854775808}", NULL, NULL},
        /* booleans */
        {"{\"title\":\"t\",\"pinned\":true}", NULL, NULL},
        {"{\"title\":\"t\",\"pinned\":1}", "pinned", "must be true or false"},
        {"{\"title\":\"t\",\"pinned\":\"true\"}", "pinned", "must be true or false"},
        {"{\"title\":\"t\",\"pinned\":null}", "pinned", "must not be null"},
        /* null on a nullable field is accepted, and left to the caller to interpret */
        {"{\"title\":\"t\",\"note\":null}", NULL, NULL},
        /* string arrays; prefixes are not repeats */
        {"{\"title\":\"t\",\"tags\":[\"a\",\"b\",\"c\"]}", NULL, NULL},
        {"{\"title\":\"t\",\"tags\":\"a\"}", "tags", "must be an array of strings"},
        {"{\"title\":\"t\",\"tags\":[\"a\",1]}", "tags", "must be an array of strings"},
        {"{\"title\":\"t\",\"tags\":[null]}", "tags", "must be an array of strings"},
        {"{\"title\":\"t\",\"tags\":{}}", "tags", "must be an array of strings"},
        {"{\"title\":\"t\",\"tags\":null}", "tags", "must not be null"},
        {"{\"title\":\"t\",\"tags\":[\"a\",\"b\",\"c\",\"d\"]}", "tags",
         "must have at most 3 items"},
        {"{\"title\":\"t\",\"tags\":[\"\"]}", "tags", "items must not be empty"},
        {"{\"title\":\"t\",\"tags\":[\"abcdefghi\"]}", "tags",
         "items must be at most 8 characters"},
        {"{\"title\":\"t\",\"tags\":[\"ok\",\"Caps\"]}", "tags",
         "items must use only these characters: a-z 0-9 _ -"},
        {"{\"title\":\"t\",\"tags\":[\"a\",\"b\",\"a\"]}", "tags", "must not repeat"},
        {"{\"title\":\"t\",\"tags\":[\"ab\",\"a\",\"abc\"]}", NULL, NULL},
        /* timestamps */
        {"{\"title\":\"t\",\"given_at\":\"2024-02-29T23:59:59Z\"}", NULL, NULL},
        {"{\"title\":\"t\",\"given_at\":\"2026-11-23t09:30:00.123456789-05:30\"}", NULL, NULL},
        {"{\"title\":\"t\",\"given_at\":\"2026-11-23T09:30:00\"}", "given_at", TS_MSG},
        {"{\"title\":\"t\",\"given_at\":\"2023-02-29T00:00:00Z\"}", "given_at", TS_MSG},
        {"{\"title\":\"t\",\"given_at\":\"2026-11-23\"}", "given_at", TS_MSG},
        {"{\"title\":\"t\",\"given_at\":1700000000}", "given_at", TS_MSG},
        {"{\"title\":\"t\",\"given_at\":\"\"}", "given_at", TS_MSG},
        {"{\"title\":\"t\",\"given_at\":null}", "given_at", "must not be null"},
        /* unknown and read-only keys; case matters */
        {"{\"title\":\"t\",\"bogus\":1}", "bogus", "is not a known field"},
        {"{\"title\":\"t\",\"id\":\"x\"}", "id", "is read-only"},
        {"{\"title\":\"t\",\"version\":2}", "version", "is read-only"},
        {"{\"title\":\"t\",\"Title\":\"t\"}", "Title", "is not a known field"},
    };
    CHECK_VCASES(cases);
}

TEST(validate_length_in_code_points)
{
    /* 200 × "é" (400 bytes) fits a max of 200, 201 does not. */
    char *ok = repeat("{\"title\":\"", "\xc3\xa9", 200, "\"}");
    char *long_ = repeat("{\"title\":\"", "\xc3\xa9", 201, "\"}");
    CHECK(valid(ok));
    CHECK_STR(only_error(long_, "title"), "must be at most 200 characters");
    free(ok);
    free(long_);
}

/* The wording of each bound, with schemas of the test's own. */
TEST(validate_bounds_wording)
{
    static const struct pl_jfield strings[] = {
        {.name = "code", .type = PL_J_STRING, .min = 6, .max = 6},
        {.name = "pw", .type = PL_J_STRING, .min = 12, .max = 128},
        {.name = "one", .type = PL_J_STRING, .max = 1},
    };
    static const struct pl_jschema ss = {.fields = strings, .nfields = 3};
    CHECK(messages_are("{\"code\":\"12345\",\"pw\":\"short\",\"one\":\"ab\"}", &ss,
                       MESSAGES("must be exactly 6 characters", "must be at least 12 characters",
                                "must be at most 1 character")));

    static const struct pl_jfield checks[] = {
        {.name = "u", .type = PL_J_STRING, .check = no_admin},
        {.name = "s", .type = PL_J_STRING, .charset = "xyz_-a"},
    };
    static const struct pl_jschema cs = {.fields = checks, .nfields = 2};
    CHECK(messages_are("{\"u\":\"admin\",\"s\":\"b\"}", &cs,
                       MESSAGES("is taken", "must use only these characters: x-z _ - a")));

    static const struct pl_jfield ints[] = {
        {.name = "lo", .type = PL_J_INT, .min = 1, .max = LLONG_MAX},
        {.name = "hi", .type = PL_J_INT, .min = LLONG_MIN, .max = -1},
        {.name = "neg", .type = PL_J_INT, .min = -10, .max = 0},
    };
    static const struct pl_jschema is = {.fields = ints, .nfields = 3};
    CHECK(messages_are(
        "{\"lo\":0,\"hi\":0,\"neg\":1}", &is,
        MESSAGES("must be at least 1", "must be at most -1", "must be between -10 and 0")));
    CHECK(messages_are("{\"lo\":1,\"hi\":-1,\"neg\":-10}", &is, NO_MESSAGES));

    static const struct pl_jfield nullable[] = {
        {.name = "n", .type = PL_J_INT, .flags = PL_JF_REQUIRED | PL_JF_NULLABLE},
    };
    static const struct pl_jschema ns = {.fields = nullable, .nfields = 1};
    CHECK(messages_are("{\"n\":null}", &ns, NO_MESSAGES));
    CHECK(messages_are("{}", &ns, MESSAGES("is required")));

    /* A schema without a read-only list calls every extra key unknown. */
    static const struct pl_jfield plain[] = {{.name = "a", .type = PL_J_BOOL}};
    static const struct pl_jschema ps = {.fields = plain, .nfields = 1};
    CHECK(messages_are("{\"id\":1}", &ps, MESSAGES("is not a known field")));
}

static const char *const SCOPES[] = {"read", "write", NULL};

TEST(validate_string_array_bounds)
{
    static const struct pl_jfield f[] = {
        {.name = "scopes", .type = PL_J_STRING_ARRAY, .min = 1, .max = 2, .one_of = SCOPES},
        {.name = "two", .type = PL_J_STRING_ARRAY, .min = 2, .item_max = 1},
        {.name = "many", .type = PL_J_STRING_ARRAY, .max = 1},
    };
    static const struct pl_jschema s = {.fields = f, .nfields = 3};
    CHECK(messages_are(
        "{\"scopes\":[],\"two\":[\"a\"],\"many\":[\"a\",\"b\"]}", &s,
        MESSAGES("must not be empty", "must have at least 2 items", "must have at most 1 item")));
    CHECK(messages_are(
        "{\"scopes\":[\"read\",\"admin\"],\"two\":[\"a\",\"bc\"]}", &s,
        MESSAGES("items must be one of: read, write", "items must be at most 1 character")));
    CHECK(messages_are("{\"scopes\":[\"write\",\"read\"]}", &s, NO_MESSAGES));
    CHECK(messages_are("{\"scopes\":[\"write\",\"write\"]}", &s, MESSAGES("must not repeat")));

    /* A large unbounded array with a repeat at the far ends. */
    static const struct pl_jfield g[] = {{.name = "x", .type = PL_J_STRING_ARRAY}};
    static const struct pl_jschema gs = {.fields = g, .nfields = 1};
    char *big = malloc(20000 * 10 + 32);
    size_t n = (size_t)sprintf(big, "{\"x\":[\"dup\"");
    for (int i = 0; i < 20000; i++)
        n += (size_t)sprintf(big + n, ",\"%d\"", i);
    sprintf(big + n, ",\"dup\"]}");
    CHECK(messages_are(big, &gs, MESSAGES("must not repeat")));
    free(big);
}

TEST(validate_error_order)
{
    /* Unknown and read-only keys first in body order, then fields in table order, one
     * message each. */
    json_t *errors = validate("{\"zeta\":1,\"amount_ml\":\"x\",\"id\":1,\"title\":\"\","
                              "\"alpha\":2,\"created_at\":\"2026-01-01T00:00:00Z\","
                              "\"pinned\":0,\"kind\":null}");
    static const char *const expect[][2] = {
        {"zeta", "is not a known field"},    {"id", "is read-only"},
        {"alpha", "is not a known field"},   {"created_at", "is read-only"},
        {"title", "must not be empty"},      {"amount_ml", "must be an integer"},
        {"pinned", "must be true or false"}, {"kind", "must not be null"},
    };
    size_t n = sizeof expect / sizeof expect[0];
    CHECK_EQ_INT(json_array_size(errors), n);
    for (size_t i = 0; i < n && i < json_array_size(errors); i++) {
        json_t *e = json_array_get(errors, i);
        CHECK_EQ_INT(json_object_size(e), 2);
        CHECK_STR(json_string_value(json_object_get(e, "field")), expect[i][0]);
        CHECK_STR(json_string_value(json_object_get(e, "message")), expect[i][1]);
    }
    json_decref(errors);
}

TEST(validate_empty_schema)
{
    static const struct pl_jschema s = {.fields = NULL, .nfields = 0};
    CHECK(validate_with("{}", &s) == NULL);
    json_t *errors = validate_with("{\"a\":1}", &s);
    CHECK_EQ_INT(json_array_size(errors), 1);
    json_decref(errors);
}

/* ---- text ------------------------------------------------------------------------------- */

TEST(utf8_length)
{
    CHECK_EQ_INT(pl_utf8_length("", 0), 0);
    CHECK_EQ_INT(pl_utf8_length("abc", 3), 3);
    CHECK_EQ_INT(pl_utf8_length("\xc3\xa9", 2), 1);
    CHECK_EQ_INT(pl_utf8_length("a\xe2\x82\xac"
                                "b",
                                5),
                 3);
    CHECK_EQ_INT(pl_utf8_length("\xf0\x9f\x8d\xbc", 4), 1);
    CHECK_EQ_INT(pl_utf8_length("a\0b", 3), 3); /* a NUL is a code point too */
}

/* ---- email ------------------------------------------------------------------------------ */

TEST(email_normalize)
{
    char a[] = "  Alice.Smith@Example.COM \t\r\n";
    CHECK_STR(pl_email_normalize(a), "alice.smith@example.com");
    char b[] = "bob@example.com";
    CHECK_STR(pl_email_normalize(b), "bob@example.com");
    char c[] = " \t ";
    CHECK_STR(pl_email_normalize(c), "");
    char d[] = "";
    CHECK_STR(pl_email_normalize(d), "");
    /* Non-ASCII letters are lower-cased too, as Postgres's lower() does them: a stored
     * address and the one typed at login must compare equal in C (rate-limit keys) and SQL. */
    char e[] = "\xc3\x89MILE@EXAMPLE.ORG"; /* ÉMILE */
    CHECK_STR(pl_email_normalize(e), "\xc3\xa9mile@example.org");
    char f[] =
        " \xc3\x89LODIE.\xce\xa3\xce\x9f\xce\xa6\xce\x99\xce\x91@example.com "; /* ÉLODIE.ΣΟΦΙΑ */
    CHECK_STR(pl_email_normalize(f),
              "\xc3\xa9lodie.\xcf\x83\xce\xbf\xcf\x86\xce\xb9\xce\xb1@example.com");
    char g[] =
        "\xd0\x90\xd0\x9d\xd0\x9d\xd0\x90\xf0\x90\x90\x80@x.io"; /* АННА, DESERET CAPITAL LONG I */
    CHECK_STR(pl_email_normalize(g), "\xd0\xb0\xd0\xbd\xd0\xbd\xd0\xb0\xf0\x90\x90\xa8@x.io");
    /* Shorter lower case (KELVIN SIGN -> k, U+0130 -> i) shrinks; longer (U+023A -> U+2C65)
     * is kept, so the result never outgrows its buffer. */
    char h[] = "\xe2\x84\xaa\xc4\xb0\xc8\xba@x.io";
    CHECK_STR(pl_email_normalize(h), "ki\xc8\xba@x.io");
    /* Bytes that are not UTF-8 pass through untouched. */
    char i[] = "A\xff\xc3"
               "B@x.io";
    CHECK_STR(pl_email_normalize(i), "a\xff\xc3"
                                     "b@x.io");
}

/* "l…@a….b….c….com" with the given byte counts (0 leaves a label out); kept until the
 * next call. */
static const char *email_sized(int local, int label1, int label2, int label3)
{
    static char buf[512];
    char fill[70];
    memset(fill, 'x', sizeof fill);
    snprintf(buf, sizeof buf, "%.*s@%.*s%s%.*s%s%.*s.com", local, fill, label1, fill,
             label2 ? "." : "", label2, fill, label3 ? "." : "", label3, fill);
    return buf;
}

#define BAD_EMAIL "must be a valid email address"

TEST(email_check)
{
    static const struct {
        const char *in, *message; /* NULL = valid */
    } cases[] = {
        {"a@b.co", NULL},
        {"first.last+tag@sub.example-mail.com", NULL},
        {"x@123.example", NULL},
        /* judged as normalisation leaves it: surrounding space and capitals are fine */
        {"  Bob@Example.COM  ", NULL},
        {"", BAD_EMAIL},
        {"   ", BAD_EMAIL},
        {"plainaddress", BAD_EMAIL},
        {"@example.com", BAD_EMAIL},
        {"a@", BAD_EMAIL},
        {"a@localhost", BAD_EMAIL}, /* needs a dot */
        {"a@@example.com", BAD_EMAIL},
        {"a@b@example.com", BAD_EMAIL},
        {"a b@example.com", BAD_EMAIL},
        {"a\tb@example.com", BAD_EMAIL},
        {"ab@exa mple.com", BAD_EMAIL},
        {"a\x01@example.com", BAD_EMAIL},
        {"a\x7f@example.com", BAD_EMAIL},
        {"a@example..com", BAD_EMAIL},
        {"a@.example.com", BAD_EMAIL},
        {"a@example.com.", BAD_EMAIL},
        {"a@-example.com", BAD_EMAIL},
        {"a@example-.com", BAD_EMAIL},
        {"a@exa_mple.com", BAD_EMAIL},
        {"a@ex\xc3\xa4mple.com", BAD_EMAIL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *got = pl_email_check(cases[i].in);
        bool ok = cases[i].message ? got && strcmp(got, cases[i].message) == 0 : got == NULL;
        if (!ok) fprintf(stderr, "  email \"%s\": got %s\n", cases[i].in, got ? got : "valid");
        CHECK(ok);
    }

    /* Local part: 64 bytes fit, 65 do not. Labels: 63 fit, 64 do not. */
    CHECK(pl_email_check(email_sized(64, 7, 0, 0)) == NULL);
    CHECK_STR(pl_email_check(email_sized(65, 7, 0, 0)), BAD_EMAIL);
    CHECK(pl_email_check(email_sized(1, 63, 0, 0)) == NULL);
    CHECK_STR(pl_email_check(email_sized(1, 64, 0, 0)), BAD_EMAIL);

    /* Whole address: 254 bytes fit, 255 do not (64 + 1 + 63 + 1 + 63 + 1 + n + 4). */
    CHECK_EQ_INT(strlen(email_sized(64, 63, 63, 57)), 254);
    CHECK(pl_email_check(email_sized(64, 63, 63, 57)) == NULL);
    CHECK_EQ_INT(strlen(email_sized(64, 63, 63, 58)), 255);
    CHECK_STR(pl_email_check(email_sized(64, 63, 63, 58)), "must be at most 254 characters");
}

TEST(email_as_schema_check)
{
    static const struct pl_jfield f[] = {
        {.name = "email",
         .type = PL_J_STRING,
         .flags = PL_JF_REQUIRED,
         .min = 1,
         .max = 254,
         .check = pl_email_check},
    };
    static const struct pl_jschema s = {.fields = f, .nfields = 1};
    CHECK(messages_are("{\"email\":\" A@B.CO \"}", &s, NO_MESSAGES));
    CHECK(messages_are("{\"email\":\"nope\"}", &s, MESSAGES(BAD_EMAIL)));
}

int main(void)
{
    RUN(parse_object_ok);
    RUN(parse_empty_body_is_empty_object);
    RUN(parse_refused);
    RUN(parse_nul_in_string);
    RUN(parse_malformed_detail);
    RUN(parse_detail_is_bounded_and_safe);
    RUN(parse_duplicate_long_key);
    RUN(parse_number_limits);
    RUN(parse_deep_nesting);
    RUN(validate_fields);
    RUN(validate_length_in_code_points);
    RUN(validate_bounds_wording);
    RUN(validate_string_array_bounds);
    RUN(validate_error_order);
    RUN(validate_empty_schema);
    RUN(utf8_length);
    RUN(email_normalize);
    RUN(email_check);
    RUN(email_as_schema_check);
    return TEST_REPORT();
}
