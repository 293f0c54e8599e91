/* records: what notes and feeding logs share — create (with Idempotency-Key), read with an
 * ETag, partial update and delete with If-Match, list parameters, change events. A feature
 * describes itself with a struct record_kind; its routes are one-line calls into here.
 *
 * Records belong to a subject (care circles): every statement checks, in itself, that the
 * caller is a member of the record's subject (and, for a token restricted to subjects, that
 * the subject is one of them), so a request costs one statement. Conventions ("tok" is the
 * token's subject ids as a uuid[] literal, or NULL):
 *   create       $1 user_id, $2 subject_id or NULL (the default subject), $3 tok,
 *                $4.. fields; row: role, id, version, json, subject_id, members
 *   create_idem  as create, then key and request hash (hex) as the last two parameters:
 *                inserts the row and its idempotency record in one statement, or nothing
 *                when the key is already used
 *   get          $1 id, $2 user_id, $3 tok; row: id, version, json, role
 *   update       $1 id, $2 user_id, $3 expected version or NULL, $4 tok, $5.. fields;
 *                row (none when not visible): role, id, version, json, subject_id, members
 *                (id NULL when the role or the version refused the change)
 *   delete       $1 id, $2 user_id, $3 expected version or NULL, $4 tok; row as update
 *   lists        the subject's rows after one (sid) row of RECORD_SUBJECT: no row at all
 *                when the subject is not visible, one row of NULLs when it has no records
 * records_store.h has the SQL shapes of these statements, and the idempotency records. */
#ifndef PULSE_RECORDS_H
#define PULSE_RECORDS_H

#include <jansson.h>

#include "pl/http.h"
#include "pl/json.h"
#include "pl/pg.h"

#define RECORD_MAX_FIELDS 10

struct record_kind {
    const char *name; /* "note": events are note.created, ... */
    const char *path; /* "/api/v1/notes" */
    const char *stmt_create, *stmt_create_idem, *stmt_get, *stmt_update, *stmt_delete;
    int ncreate, nupdate; /* field parameters after the fixed ones */
    /* A rule on the merged row of an update that the table's CHECK enforces (NULL: none):
     * its violation (23514) answers 422 with this field and message. */
    const char *check_field, *check_message;
    /* Fill the field parameters from a valid body (values are arena strings or NULL).
     * Return NULL, or an errors array (taken) for checks a schema cannot express. */
    json_t *(*create_params)(struct pl_http_request *req, json_t *body, const char **values);
    json_t *(*update_params)(struct pl_http_request *req, json_t *body, const char **values);
};

/* If-Match header h (strong comparison): NULL for no precondition (absent or "*"); the
 * version it names, in canonical digits, written into buf; or "-1" for a tag that can never
 * match (weak, malformed, or beyond int4). */
#define RECORD_VERSION_MAX 16
const char *record_if_match(const char *h, char buf[RECORD_VERSION_MAX]);

void record_create(struct pl_http_request *req, const struct record_kind *k);
void record_get(struct pl_http_request *req, const struct record_kind *k);
void record_patch(struct pl_http_request *req, const struct record_kind *k);
void record_delete(struct pl_http_request *req, const struct record_kind *k);

/* A cursor's timestamp field: decimal microseconds naming an instant pl_time_parse_rfc3339
 * could have produced (a value out of that range would reach Postgres as out of range). */
bool record_cursor_us_ok(const char *s);
/* ?limit= (1..100, default 50): returns the value or -1 after answering 400. */
int record_limit(struct pl_http_request *req);
/* Runs a list statement that asks for `limit` + 1 rows holding the JSON text in column 0 and
 * the cursor fields in columns 1..ncursor, and answers {items, next_cursor}. */
void record_list_exec(struct pl_http_request *req, int limit, int ncursor, const char *stmt,
                      int nparams, const char *const *values);

/* The four id-based handlers of a kind, as static do_create/do_get/do_patch/do_delete. */
#define RECORD_HANDLERS(kind)                                                                      \
    static void do_create(struct pl_http_request *req)                                             \
    {                                                                                              \
        record_create(req, &(kind));                                                               \
    }                                                                                              \
    static void do_get(struct pl_http_request *req)                                                \
    {                                                                                              \
        record_get(req, &(kind));                                                                  \
    }                                                                                              \
    static void do_patch(struct pl_http_request *req)                                              \
    {                                                                                              \
        record_patch(req, &(kind));                                                                \
    }                                                                                              \
    static void do_delete(struct pl_http_request *req)                                             \
    {                                                                                              \
        record_delete(req, &(kind));                                                               \
    }

/* The route entries of those handlers for a kind at `path` (a string literal): its create,
 * whose body follows `create_rules` (struct body_rules *), and its id routes, whose PATCH
 * body follows `patch_rules`. */
#define RECORD_CREATE_ROUTE(path, create_rules)                                                    \
    {                                                                                              \
        .method = PL_M_POST, .pattern = path, .handler = do_create,                                \
        .flags = ROUTE_AUTH | ROUTE_JSON | ROUTE_IDEMPOTENT, .data = ROUTE_BODY(create_rules)      \
    }
#define RECORD_ID_ROUTES(path, patch_rules)                                                        \
    {.method = PL_M_GET, .pattern = path "/{id}", .handler = do_get, .flags = ROUTE_AUTH},         \
        {.method = PL_M_PATCH,                                                                     \
         .pattern = path "/{id}",                                                                  \
         .handler = do_patch,                                                                      \
         .flags = ROUTE_AUTH | ROUTE_JSON,                                                         \
         .data = ROUTE_BODY(patch_rules)},                                                         \
    {                                                                                              \
        .method = PL_M_DELETE, .pattern = path "/{id}", .handler = do_delete, .flags = ROUTE_AUTH  \
    }

/* The token's subjects as a uuid[] literal, or NULL when the caller is not restricted. */
const char *record_token_subjects(const struct pl_http_request *req);
/* ?subject_id= into *out: the value when given (400 unless a UUID), else the only subject of
 * a token restricted to one, else NULL (the default subject). false after answering 400. */
bool record_subject_param(struct pl_http_request *req, const char **out);
/* A schema check for a body's subject_id (a UUID). */
const char *record_subject_id_check(const char *value);
/* Runs a statement whose rows are JSON text in column 0 after a RECORD_SUBJECT row (see the
 * conventions above), and answers {items: [...]} or 404 when the subject is not visible. */
void record_items_exec(struct pl_http_request *req, const char *stmt, int nparams,
                       const char *const *values);
/* Answers 404 "no such subject". */
void record_no_subject(struct pl_http_request *req);

/* Publishes "<event>" of subject `subject_id` with `data_json` (text) to its `members`
 * (array literal read in the same statement as the change). */
void record_event(struct pl_http_request *req, const char *outbox_id, const char *subject_id,
                  const char *members, const char *event, const char *data_json);

#endif
