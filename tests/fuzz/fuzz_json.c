/* libFuzzer harness for lib/json: any bytes as a request body through the 400 step, then the
 * 422 step against a schema with every field type and option; the same bytes also go to the
 * time, date and email helpers. Checks the promises callers build on: a parse error always
 * has a short detail that is valid UTF-8, errors are {field, message} objects, and a parsed
 * timestamp formats and parses back to the same millisecond.
 *
 * Build with clang -fsanitize=fuzzer,address,undefined, the lib/json and lib/core sources
 * and jansson; run with -max_total_time=N. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "pl/json.h"
#include "pl/time.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const KINDS[] = {"bottle", "breast", "solid", NULL};
static const char *const READ_ONLY[] = {"id", "version", "created_at", "updated_at", NULL};

static const struct pl_jfield FIELDS[] = {
    {.name = "title", .type = PL_J_STRING, .flags = PL_JF_REQUIRED, .min = 1, .max = 200},
    {.name = "note", .type = PL_J_STRING, .flags = PL_JF_NULLABLE, .max = 10},
    {.name = "kind", .type = PL_J_STRING, .one_of = KINDS},
    {.name = "slug", .type = PL_J_STRING, .min = 2, .max = 2, .charset = "abc-"},
    {.name = "email", .type = PL_J_STRING, .max = 254, .check = pl_email_check},
    {.name = "amount_ml", .type = PL_J_INT, .min = 1, .max = 2000},
    {.name = "any_int", .type = PL_J_INT, .flags = PL_JF_NULLABLE},
    {.name = "pinned", .type = PL_J_BOOL, .flags = PL_JF_REQUIRED | PL_JF_NULLABLE},
    {.name = "tags",
     .type = PL_J_STRING_ARRAY,
     .min = 1,
     .max = 5,
     .item_min = 1,
     .item_max = 8,
     .charset = "abcdefghijklmnopqrstuvwxyz0123456789_-"},
    {.name = "scopes", .type = PL_J_STRING_ARRAY, .one_of = KINDS, .check = pl_email_check},
    {.name = "given_at", .type = PL_J_TIMESTAMP},
};
static const struct pl_jschema SCHEMA = {
    .fields = FIELDS, .nfields = sizeof FIELDS / sizeof FIELDS[0], .read_only = READ_ONLY};

static void check_errors(json_t *errors)
{
    if (!errors) return;
    if (!json_is_array(errors) || json_array_size(errors) == 0) abort();
    size_t i;
    json_t *e;
    json_array_foreach(errors, i, e)
    {
        if (!json_is_string(json_object_get(e, "field")) ||
            !json_is_string(json_object_get(e, "message")) || json_object_size(e) != 2)
            abort();
    }
    /* The list must serialise: every string in it is valid UTF-8. */
    char *text = json_dumps(errors, 0);
    if (!text) abort();
    free(text);
}

static void check_helpers(const char *s)
{
    int64_t us;
    if (pl_time_parse_rfc3339(s, &us) == 0) {
        char out[32];
        int64_t back;
        pl_time_format_rfc3339(us, out);
        int64_t ms_floor = us - ((us % 1000 + 1000) % 1000);
        if (pl_time_parse_rfc3339(out, &back) != 0 || back != ms_floor) abort();
    }
    int y, m, d;
    if (pl_date_parse(s, &y, &m, &d) == 0 && (m < 1 || m > 12 || d < 1 || d > 31)) abort();

    (void)pl_email_check(s);
    char *copy = strdup(s);
    if (!copy) abort();
    if (strlen(pl_email_normalize(copy)) > strlen(s)) abort();
    free(copy);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char detail[128];
    json_t *obj = NULL;
    if (pl_json_parse_object((const char *)data, size, &obj, detail, sizeof detail) == 0) {
        if (!json_is_object(obj)) abort();
        json_t *errors = pl_json_validate(obj, &SCHEMA);
        check_errors(errors);
        json_decref(errors);
        json_decref(obj);
    } else {
        if (obj || detail[0] == '\0' || strlen(detail) >= sizeof detail) abort();
        json_t *s = json_string(detail); /* NULL if the detail were not valid UTF-8 */
        if (!s) abort();
        json_decref(s);
    }

    char *text = malloc(size + 1);
    if (!text) abort();
    memcpy(text, data, size);
    text[size] = '\0';
    check_helpers(text);
    pl_utf8_length(text, size);
    free(text);
    return 0;
}
