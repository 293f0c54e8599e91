/* Notes routes: HTTP glue over records/ and notes_store.c. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../app.h"
#include "../guards.h"
#include "../ids.h"
#include "../problems.h"
#include "../records/records.h"
#include "../records/records_store.h"
#include "notes.h"
#include "pl/buf.h"
#include "pl/cursor.h"

#define TAG_CHARS "abcdefghijklmnopqrstuvwxyz0123456789_-"

static const char *const note_read_only[] = {"id",         "version",    "created_by",
                                             "created_at", "updated_at", NULL};
/* A note stays with its subject: subject_id is set at creation only. */
static const char *const note_patch_read_only[] = {
    "id", "subject_id", "version", "created_by", "created_at", "updated_at", NULL};

#define NOTE_FIELDS(required)                                                                      \
    {.name = "title", .type = PL_J_STRING, .flags = (required), .min = 1, .max = 200},             \
        {.name = "body", .type = PL_J_STRING, .min = 0, .max = 100000},                            \
        {.name = "tags",                                                                           \
         .type = PL_J_STRING_ARRAY,                                                                \
         .min = 0,                                                                                 \
         .max = 20,                                                                                \
         .item_min = 1,                                                                            \
         .item_max = 32,                                                                           \
         .charset = TAG_CHARS},                                                                    \
    {                                                                                              \
        .name = "pinned", .type = PL_J_BOOL                                                        \
    }

static const struct pl_jfield create_fields[] = {
    NOTE_FIELDS(PL_JF_REQUIRED),
    {.name = "subject_id", .type = PL_J_STRING, .check = record_subject_id_check}};
static const struct pl_jfield patch_fields[] = {NOTE_FIELDS(0)};
static const struct pl_jschema create_schema = {create_fields, 5, note_read_only};
static const struct pl_jschema patch_schema = {patch_fields, 4, note_patch_read_only};
static const struct body_rules create_rules = {.schema = &create_schema};
static const struct body_rules patch_rules = {.schema = &patch_schema};

/* A Postgres text[] literal of n strings. Every element is quoted (and '"' and '\\'
 * escaped): an unquoted element spelled NULL, in any case, would be an SQL NULL, and one
 * with a comma, brace or space would be split or refused. */
static const char *text_array(struct pl_http_request *req, const char *const *items, size_t n)
{
    struct pl_buf b;
    pl_buf_init(&b);
    pl_buf_puts(&b, "{");
    for (size_t i = 0; i < n; i++) {
        pl_buf_puts(&b, i ? ",\"" : "\"");
        for (const char *c = items[i]; *c; c++) {
            if (*c == '"' || *c == '\\') pl_buf_append(&b, "\\", 1);
            pl_buf_append(&b, c, 1);
        }
        pl_buf_puts(&b, "\"");
    }
    pl_buf_puts(&b, "}");
    const char *lit = pl_req_strdup(req, b.data);
    pl_buf_dispose(&b);
    return lit;
}

/* The body's tags (a string array the schema has checked) as a text[] literal, or NULL. */
static const char *tags_literal(struct pl_http_request *req, json_t *tags)
{
    if (!json_is_array(tags)) return NULL;
    size_t n = json_array_size(tags);
    const char **items = pl_req_alloc(req, (n ? n : 1) * sizeof *items);
    for (size_t i = 0; i < n; i++)
        items[i] = json_string_value(json_array_get(tags, i));
    return text_array(req, items, n);
}

static const char *bool_or_null(json_t *v)
{
    return v ? (json_is_true(v) ? "true" : "false") : NULL;
}

/* title, body, tags, pinned: the same four parameters for create and update */
static json_t *note_params(struct pl_http_request *req, json_t *body, const char **v)
{
    v[0] = json_string_value(json_object_get(body, "title"));
    v[1] = json_string_value(json_object_get(body, "body"));
    v[2] = tags_literal(req, json_object_get(body, "tags"));
    v[3] = bool_or_null(json_object_get(body, "pinned"));
    return NULL;
}

static const struct record_kind note_kind = {
    .name = "note",
    .path = "/api/v1/notes",
    RECORD_STATEMENTS("notes"),
    .ncreate = 4,
    .nupdate = 4,
    .create_params = note_params,
    .update_params = note_params,
};

RECORD_HANDLERS(note_kind)

/* ---- list ---- */

static bool tag_ok(const char *t)
{
    size_t n = strlen(t);
    return n >= 1 && n <= 32 && strspn(t, TAG_CHARS) == n;
}

static void bad_query(struct pl_http_request *req, const char *detail)
{
    pl_respond_problem(req, 400, detail, NULL);
}

/* The repeated ?tag= as a text[] literal (NULL when none) into *out; false after a 400. */
static bool tags_param(struct pl_http_request *req, const char **out)
{
    const char *tags[21];
    int ntags = pl_req_query_all(req, "tag", tags, 21);
    *out = NULL;
    if (ntags < 0) {
        bad_query(req, "tag is malformed: bad percent-encoding or %00");
        return false;
    }
    if (ntags > 20) {
        bad_query(req, "at most 20 tag parameters");
        return false;
    }
    for (int i = 0; i < ntags; i++) {
        if (!tag_ok(tags[i])) {
            bad_query(req, "tag must be 1 to 32 of a-z, 0-9, _ and -");
            return false;
        }
    }
    if (ntags > 0) *out = text_array(req, tags, (size_t)ntags);
    return true;
}

static void do_list(struct pl_http_request *req)
{
    int limit = record_limit(req); /* answered (and freed) the request when < 0 */
    if (limit < 0) return;
    const char *pinned, *q, *cursor;
    if (!pl_req_query_param(req, "pinned", &pinned) || !pl_req_query_param(req, "q", &q) ||
        !pl_req_query_param(req, "cursor", &cursor))
        return;
    if (pinned && strcmp(pinned, "true") != 0 && strcmp(pinned, "false") != 0) {
        bad_query(req, "pinned must be true or false");
        return;
    }
    const char *tag_lit;
    if (!tags_param(req, &tag_lit)) return;
    if (q && !*q) q = NULL;
    if (q && (!pl_utf8_valid(q, strlen(q)) || strlen(q) > 1000)) {
        bad_query(req, "q must be valid UTF-8 of at most 1000 bytes");
        return;
    }
    char *f[3];
    char buf[PL_CURSOR_MAX + 1];
    if (cursor) {
        if (pl_cursor_decode(cursor, f, 3, buf, sizeof buf) != 0 ||
            (strcmp(f[0], "0") != 0 && strcmp(f[0], "1") != 0) || !record_cursor_us_ok(f[1]) ||
            !ids_is_uuid(f[2])) {
            bad_query(req, "cursor is not valid");
            return;
        }
    }
    const char *subject;
    if (!record_subject_param(req, &subject)) return;
    const char *uid = req_principal(req)->user_id, *lim = pl_req_printf(req, "%d", limit + 1);
    const char *tok = record_token_subjects(req);
    if (pinned || tag_lit || q) {
        const char *v[] = {uid,
                           subject,
                           tok,
                           pinned,
                           tag_lit,
                           q,
                           lim,
                           cursor ? f[0] : NULL,
                           cursor ? f[1] : NULL,
                           cursor ? f[2] : NULL};
        record_list_exec(req, limit, 3, cursor ? "notes_find_after" : "notes_find", cursor ? 10 : 7,
                         v);
    } else {
        const char *v[] = {uid,
                           subject,
                           tok,
                           lim,
                           cursor ? f[0] : NULL,
                           cursor ? f[1] : NULL,
                           cursor ? f[2] : NULL};
        record_list_exec(req, limit, 3, cursor ? "notes_list_after" : "notes_list", cursor ? 7 : 4,
                         v);
    }
}

/* ---- tags ---- */

static void do_tags(struct pl_http_request *req)
{
    const char *subject;
    if (!record_subject_param(req, &subject)) return;
    const char *v[] = {req_principal(req)->user_id, subject, record_token_subjects(req)};
    record_items_exec(req, "notes_tags", 3, v);
}

struct pl_route notes_routes[] = {
    {.method = PL_M_GET, .pattern = "/api/v1/notes", .handler = do_list, .flags = ROUTE_AUTH},
    RECORD_CREATE_ROUTE("/api/v1/notes", &create_rules),
    RECORD_ID_ROUTES("/api/v1/notes", &patch_rules),
    {.method = PL_M_GET, .pattern = "/api/v1/tags", .handler = do_tags, .flags = ROUTE_AUTH},
    {0},
};
