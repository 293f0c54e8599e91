/* records: see records.h. */
#include "records.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../app.h"
#include "../events.h"
#include "../guards.h"
#include "../ids.h"
#include "../problems.h"
#include "../store.h"
#include "pl/buf.h"
#include "pl/cursor.h"
#include "pl/log.h"
#include "pl/time.h"

void record_event(struct pl_http_request *req, const char *outbox_id, const char *subject_id,
                  const char *members, const char *event, const char *data_json)
{
    events_publish_for(req, outbox_id, subject_id, members, event, data_json);
}

const char *record_token_subjects(const struct pl_http_request *req)
{
    return req_principal(req)->subject_ids;
}

void record_no_subject(struct pl_http_request *req)
{
    pl_respond_problem(req, 404, "no such subject", NULL);
}

const char *record_subject_id_check(const char *value)
{
    return ids_is_uuid(value) ? NULL : "must be a subject id (a UUID)";
}

/* The only subject of a token restricted to one ("{id}" → "id"), else NULL. */
static const char *token_only_subject(struct pl_http_request *req)
{
    const struct principal *p = req_principal(req);
    if (!p->subject_ids || p->n_subject_ids != 1) return NULL;
    size_t n = strlen(p->subject_ids);
    if (n < 3) return NULL;
    return pl_req_printf(req, "%.*s", (int)(n - 2), p->subject_ids + 1);
}

bool record_subject_param(struct pl_http_request *req, const char **out)
{
    const char *v;
    *out = NULL;
    if (!pl_req_query_param(req, "subject_id", &v)) return false;
    if (!v) {
        *out = token_only_subject(req);
        return true;
    }
    if (!ids_is_uuid(v)) {
        pl_respond_problem(req, 400, "subject_id must be a subject id (a UUID)", NULL);
        return false;
    }
    *out = v;
    return true;
}

static void set_etag(struct pl_http_request *req, const char *version)
{
    pl_resp_header(req, "ETag", pl_req_printf(req, "\"%s\"", version));
}

/* A PATCH answers the changed record only to a caller that may read it: a token without the
 * read scope gets 204 and no body (its ETag is kept: the version is not data, and a client
 * can learn it anyway through If-Match). Its POST still gets the created record. */
static void answer_record(struct pl_http_request *req, const char *version, const char *json,
                          size_t len)
{
    set_etag(req, version);
    if (!(req_principal(req)->scopes & SCOPE_READ))
        pl_respond(req, 204, NULL, NULL, 0);
    else
        pl_respond(req, 200, "application/json", json, len);
}

static void not_found(struct pl_http_request *req, const struct record_kind *k)
{
    pl_respond_problem(req, 404, pl_req_printf(req, "no such %s", k->name), NULL);
}

static const char *event_name(struct pl_http_request *req, const struct record_kind *k,
                              const char *what)
{
    return pl_req_printf(req, "%s.%s", k->name, what);
}

/* ---- create ---- */

struct create {
    struct pl_http_request *req;
    const struct record_kind *k;
    const char *values[RECORD_MAX_FIELDS + 6];
    int nvalues;
    const char *key;
    char hash[IDS_HASH_HEX + 1];
    bool retried;
    bool implied_subject; /* the subject is the restricted token's only one */
};

static void create_send(struct create *c);

static void replay(struct create *c, const PGresult *r)
{
    struct pl_http_request *req = c->req;
    if (PQgetvalue(r, 0, 3)[0] != 't') {
        pl_respond_problem(req, 422, "this Idempotency-Key was used with a different request body",
                           NULL);
        return;
    }
    if (!PQgetisnull(r, 0, 1)) pl_resp_header(req, "Location", PQgetvalue(r, 0, 1));
    pl_resp_header(req, "Idempotent-Replayed", "true");
    pl_respond(req, atoi(PQgetvalue(r, 0, 0)), "application/json", PQgetvalue(r, 0, 2),
               (size_t)PQgetlength(r, 0, 2));
}

static void on_idem_lookup(int status, PGresult **results, int n, void *ctx)
{
    struct create *c = ctx;
    if (reply_failed(c->req, status, "idempotency lookup")) return;
    if (PQntuples(results[1]) == 1) {
        replay(c, results[1]);
        return;
    }
    /* Nothing live under this key (an expired record was just removed): try once more. */
    if (!c->retried) {
        c->retried = true;
        create_send(c);
        return;
    }
    pl_resp_header(c->req, "Retry-After", "1");
    pl_respond_problem(c->req, 409, "a request with this Idempotency-Key is in progress", NULL);
}

static void idem_lookup(struct create *c)
{
    const char *uid = req_principal(c->req)->user_id;
    const char *v[] = {uid, c->k->path, c->key, c->hash};
    struct pl_pg_stmt stmts[] = {{"records_idem_expire", 3, v, NULL},
                                 {"records_idem_get", 4, v, NULL}};
    store_batch(c->req, stmts, 2, on_idem_lookup, c);
}

static void subject_refused(struct pl_http_request *req, const char *role, bool named)
{
    if (!role) {
        json_t *e = json_pack("[{s:s, s:s}]", "field", "subject_id", "message",
                              named ? "is not a subject you belong to"
                                    : "is required: there is no default subject to use");
        reply_errors(req, e);
    } else {
        pl_respond_problem(req, 403, "a viewer cannot change this subject's records", NULL);
    }
}

static bool is_writer(const char *role)
{
    return strcmp(role, "owner") == 0 || strcmp(role, "caregiver") == 0;
}

static void on_created(int status, PGresult **results, int n, void *ctx)
{
    struct create *c = ctx;
    struct pl_http_request *req = c->req;
    if (c->key && db_fault(status, results, n) == DB_FAULT_UNIQUE) {
        /* A concurrent request with the same key committed first (our row was rolled back
         * with the failed statement): answer with what it stored. */
        idem_lookup(c);
        return;
    }
    if (reply_failed(req, status, "create")) return;
    const PGresult *r = results[0];
    if (PQntuples(r) != 1 || PQgetisnull(r, 0, 0) || !is_writer(PQgetvalue(r, 0, 0))) {
        subject_refused(req,
                        PQntuples(r) == 1 && !PQgetisnull(r, 0, 0) ? PQgetvalue(r, 0, 0) : NULL,
                        c->values[1] != NULL && !c->implied_subject);
        return;
    }
    if (PQgetisnull(r, 0, 1)) { /* the key is taken: replay or refuse */
        idem_lookup(c);
        return;
    }
    const char *json = PQgetvalue(r, 0, 3);
    pl_resp_header(req, "Location", pl_req_printf(req, "%s/%s", c->k->path, PQgetvalue(r, 0, 1)));
    set_etag(req, PQgetvalue(r, 0, 2));
    record_event(req, PQgetvalue(r, 0, 6), PQgetvalue(r, 0, 4), PQgetvalue(r, 0, 5),
                 event_name(req, c->k, "created"), json);
    pl_respond(req, 201, "application/json", json, (size_t)PQgetlength(r, 0, 3));
}

static void create_send(struct create *c)
{
    if (c->key)
        store_query(c->req, c->k->stmt_create_idem, c->nvalues + 2, c->values, on_created, c);
    else
        store_query(c->req, c->k->stmt_create, c->nvalues, c->values, on_created, c);
}

void record_create(struct pl_http_request *req, const struct record_kind *k)
{
    const char *key = pl_req_header(req, "idempotency-key"); /* its form checked (guards) */
    struct create *c = pl_req_alloc(req, sizeof *c);
    memset(c, 0, sizeof *c);
    c->req = req;
    c->k = k;
    c->values[0] = req_principal(req)->user_id;
    json_t *body = req_json(req);
    /* The subject: the body's, else the only one of a restricted token, else (NULL) the
     * user's default subject; a token restricted to several must name one. */
    c->values[1] = json_string_value(json_object_get(body, "subject_id"));
    if (!c->values[1]) {
        const struct principal *p = req_principal(req);
        if (p->subject_ids && p->n_subject_ids > 1) {
            reply_errors(req, json_pack("[{s:s, s:s}]", "field", "subject_id", "message",
                                        "is required with a token restricted to several subjects"));
            return;
        }
        c->values[1] = token_only_subject(req);
        c->implied_subject = c->values[1] != NULL;
    }
    c->values[2] = record_token_subjects(req);
    json_t *errors = k->create_params(req, body, c->values + 3);
    if (errors) {
        reply_errors(req, errors);
        return;
    }
    c->nvalues = 3 + k->ncreate;
    if (key) {
        size_t len;
        const char *b = pl_req_body(req, &len);
        ids_hash_hex(b, len, c->hash);
        c->key = key;
        c->values[c->nvalues] = key;
        c->values[c->nvalues + 1] = c->hash;
    }
    create_send(c);
}

/* ---- If-Match ---- */

const char *record_if_match(const char *h, char buf[RECORD_VERSION_MAX])
{
    if (!h || strcmp(h, "*") == 0) return NULL;
    size_t n = strlen(h);
    if (n < 3 || n > 12 || h[0] != '"' || h[n - 1] != '"') return "-1";
    long long v = 0;
    for (size_t i = 1; i < n - 1; i++) {
        if (h[i] < '0' || h[i] > '9') return "-1";
        v = v * 10 + (h[i] - '0');
    }
    /* Canonical digits: "01" means version 1 everywhere, and nothing overflows int4. */
    if (v > 2147483647) return "-1";
    snprintf(buf, RECORD_VERSION_MAX, "%d", (int)v);
    return buf;
}

static const char *expected_version(struct pl_http_request *req)
{
    return record_if_match(pl_req_header(req, "if-match"), pl_req_alloc(req, RECORD_VERSION_MAX));
}

/* ---- update and delete ---- */

struct change {
    struct pl_http_request *req;
    const struct record_kind *k;
    const char *id;
    const char *expect;
    bool deleting;
    bool writing; /* PATCH {}: a viewer gets 403 */
};

/* After a change that matched no row although the version read in the same statement was
 * the expected one: a concurrent change committed first. Gone: 404; changed: 412. */
static void on_recheck(int status, PGresult **results, int n, void *ctx)
{
    struct change *c = ctx;
    if (reply_failed(c->req, status, "read")) return;
    if (PQntuples(results[0]) != 1)
        not_found(c->req, c->k);
    else
        pl_respond_problem(c->req, 412, "If-Match does not match the current version", NULL);
}

static void on_changed(int status, PGresult **results, int n, void *ctx)
{
    struct change *c = ctx;
    struct pl_http_request *req = c->req;
    if (c->k->check_field && db_fault(status, results, n) == DB_FAULT_CHECK) {
        reply_invalid(req, c->k->check_field, c->k->check_message);
        return;
    }
    if (status) {
        reply_failure(req, status, c->deleting ? "delete" : "update");
        return;
    }
    /* role, id, version, json, subject_id, members, the version the statement read; checks in
     * the contract's order */
    const PGresult *r = results[0];
    if (PQntuples(r) != 1) {
        not_found(req, c->k);
        return;
    }
    if (!is_writer(PQgetvalue(r, 0, 0))) {
        subject_refused(req, PQgetvalue(r, 0, 0), false);
        return;
    }
    if (PQgetisnull(r, 0, 1)) {
        /* A writer's change matched no row: without If-Match only because a concurrent
         * delete committed first; with one, the version differed, or that delete: ask. */
        if (!c->expect) {
            not_found(req, c->k);
            return;
        }
        if (strcmp(PQgetvalue(r, 0, 6), c->expect) != 0) {
            pl_respond_problem(req, 412, "If-Match does not match the current version", NULL);
            return;
        }
        const char *v[] = {c->id, req_principal(req)->user_id, record_token_subjects(req)};
        store_query(req, c->k->stmt_get, 3, v, on_recheck, c);
        return;
    }
    if (c->deleting) {
        record_event(req, PQgetvalue(r, 0, 7), PQgetvalue(r, 0, 4), PQgetvalue(r, 0, 5),
                     event_name(req, c->k, "deleted"),
                     pl_req_printf(req, "{\"id\":\"%s\"}", c->id));
        pl_respond(req, 204, NULL, NULL, 0);
        return;
    }
    const char *json = PQgetvalue(r, 0, 3);
    record_event(req, PQgetvalue(r, 0, 7), PQgetvalue(r, 0, 4), PQgetvalue(r, 0, 5),
                 event_name(req, c->k, "updated"), json);
    answer_record(req, PQgetvalue(r, 0, 2), json, (size_t)PQgetlength(r, 0, 3));
}

/* GET, and PATCH {}: nothing to change; answer the current state after the same checks. */
static void on_noop(int status, PGresult **results, int n, void *ctx)
{
    struct change *c = ctx;
    struct pl_http_request *req = c->req;
    if (reply_failed(req, status, "read")) return;
    const PGresult *r = results[0]; /* id, version, json, role */
    if (PQntuples(r) != 1) {
        not_found(req, c->k);
        return;
    }
    if (c->writing && !is_writer(PQgetvalue(r, 0, 3))) {
        subject_refused(req, PQgetvalue(r, 0, 3), false);
        return;
    }
    if (c->expect && strcmp(c->expect, PQgetvalue(r, 0, 1)) != 0) {
        pl_respond_problem(req, 412, "If-Match does not match the current version", NULL);
        return;
    }
    answer_record(req, PQgetvalue(r, 0, 1), PQgetvalue(r, 0, 2), (size_t)PQgetlength(r, 0, 2));
}

static struct change *change_new(struct pl_http_request *req, const struct record_kind *k)
{
    const char *id = pl_req_param(req, "id");
    if (!ids_is_uuid(id)) {
        not_found(req, k);
        return NULL;
    }
    struct change *c = pl_req_alloc(req, sizeof *c);
    c->req = req;
    c->k = k;
    c->id = id;
    c->expect = expected_version(req);
    c->deleting = false;
    c->writing = false;
    return c;
}

void record_get(struct pl_http_request *req, const struct record_kind *k)
{
    struct change *c = change_new(req, k);
    if (!c) return;
    c->expect = NULL; /* If-Match is for changes */
    const char *v[] = {c->id, req_principal(req)->user_id, record_token_subjects(req)};
    store_query(req, k->stmt_get, 3, v, on_noop, c);
}

void record_patch(struct pl_http_request *req, const struct record_kind *k)
{
    struct change *c = change_new(req, k);
    if (!c) return;
    const char *uid = req_principal(req)->user_id, *tok = record_token_subjects(req);
    if (json_object_size(req_json(req)) == 0) {
        c->writing = true; /* a viewer's PATCH {} is a write refused like the others */
        const char *v[] = {c->id, uid, tok};
        store_query(req, k->stmt_get, 3, v, on_noop, c);
        return;
    }
    const char *v[4 + RECORD_MAX_FIELDS] = {c->id, uid, c->expect, tok};
    json_t *errors = k->update_params(req, req_json(req), v + 4);
    if (errors) {
        reply_errors(req, errors);
        return;
    }
    store_query(req, k->stmt_update, 4 + k->nupdate, v, on_changed, c);
}

void record_delete(struct pl_http_request *req, const struct record_kind *k)
{
    struct change *c = change_new(req, k);
    if (!c) return;
    c->deleting = true;
    const char *v[] = {c->id, req_principal(req)->user_id, c->expect, record_token_subjects(req)};
    store_query(req, k->stmt_delete, 4, v, on_changed, c);
}

/* ---- lists ---- */

bool record_cursor_us_ok(const char *s)
{
    const char *digits = s + (*s == '-');
    size_t n = strlen(digits);
    if (n == 0 || n > 18 || strspn(digits, "0123456789") != n) return false;
    long long v = strtoll(s, NULL, 10);
    return v >= PL_TIME_MIN_US && v <= PL_TIME_MAX_US;
}

int record_limit(struct pl_http_request *req)
{
    long limit;
    return pl_req_query_int(req, "limit", 1, 100, 50, &limit) ? (int)limit : -1;
}

struct list {
    struct pl_http_request *req;
    int limit, ncursor;
};

/* The rows of a list after its subject's row: none when the subject is not visible (-1), a
 * row of NULLs when it has no records (0). */
static int list_rows(const PGresult *res)
{
    int rows = PQntuples(res);
    if (rows == 0) return -1;
    return rows == 1 && PQgetisnull(res, 0, 0) ? 0 : rows;
}

/* Starts b as `{"items":[...]` with the JSON (column 0) of the first `rows` rows. */
static void items_open(struct pl_buf *b, const PGresult *res, int rows)
{
    pl_buf_init(b);
    pl_buf_puts(b, "{\"items\":[");
    for (int i = 0; i < rows; i++) {
        if (i) pl_buf_append(b, ",", 1);
        pl_buf_append(b, PQgetvalue(res, i, 0), (size_t)PQgetlength(res, i, 0));
    }
    pl_buf_puts(b, "]");
}

static void list_reply(struct pl_http_request *req, const PGresult *res, int limit, int ncursor)
{
    int rows = list_rows(res);
    if (rows < 0) {
        record_no_subject(req);
        return;
    }
    struct pl_buf b;
    items_open(&b, res, rows > limit ? limit : rows);
    pl_buf_puts(&b, ",\"next_cursor\":");
    char cursor[PL_CURSOR_MAX + 1];
    const char *fields[4];
    for (int f = 0; f < ncursor && rows > limit; f++)
        fields[f] = PQgetvalue(res, limit - 1, 1 + f);
    if (rows > limit && pl_cursor_encode(fields, ncursor, cursor, sizeof cursor) == 0)
        pl_buf_printf(&b, "\"%s\"}", cursor);
    else
        pl_buf_puts(&b, "null}");
    pl_respond(req, 200, "application/json", b.data, b.len);
    pl_buf_dispose(&b);
}

static void on_list(int status, PGresult **results, int n, void *ctx)
{
    struct list *l = ctx;
    /* Every value of a list query is validated first except the text of a search, which
     * Postgres may still refuse (too many operators, or a data exception). That is the
     * client's input: 400. */
    if (db_fault(status, results, n) == DB_FAULT_INPUT) {
        pl_respond_problem(l->req, 400, "the search query cannot be used", NULL);
        return;
    }
    if (reply_failed(l->req, status, "list")) return;
    list_reply(l->req, results[0], l->limit, l->ncursor);
}

void record_list_exec(struct pl_http_request *req, int limit, int ncursor, const char *stmt,
                      int nparams, const char *const *values)
{
    struct list *l = pl_req_alloc(req, sizeof *l);
    l->req = req;
    l->limit = limit;
    l->ncursor = ncursor;
    store_query(req, stmt, nparams, values, on_list, l);
}

static void on_items(int status, PGresult **results, int n, void *ctx)
{
    struct pl_http_request *req = ctx;
    if (reply_failed(req, status, "list")) return;
    int rows = list_rows(results[0]);
    if (rows < 0) {
        record_no_subject(req);
        return;
    }
    struct pl_buf b;
    items_open(&b, results[0], rows);
    pl_buf_puts(&b, "}");
    pl_respond(req, 200, "application/json", b.data, b.len);
    pl_buf_dispose(&b);
}

void record_items_exec(struct pl_http_request *req, const char *stmt, int nparams,
                       const char *const *values)
{
    store_query(req, stmt, nparams, values, on_items, req);
}
