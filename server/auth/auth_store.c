#include "../store.h"
#include "auth_store.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../app.h"
#include "../guards.h"
#include "../ids.h"
#include "sessions.h"
#include "../users/user.h"
#include "pl/mem.h"

static const struct stmt_def statements[] = {
    /* Emails: the one equivalence is Postgres's lower(), the expression of the unique index
     * users_email_lower_key: rows are stored lower-cased by it and looked up through it (the
     * caller's normalisation is the same in practice, and used for rate-limit keys). */
    {"auth_user_by_email",
     "SELECT " USER_COLS ", password_hash FROM users WHERE lower(email) = lower($1)", 1},
    /* The user, their default subject (named after them, in their zone) and their
     * membership as its owner, in one statement (foreign keys are checked at its end). */
    {"auth_user_insert",
     "WITH u AS (INSERT INTO users (email, password_hash, display_name, timezone, "
     "default_subject_id) VALUES (lower($1), $2, $3, COALESCE($4, 'UTC'), gen_random_uuid()) "
     "RETURNING *), "
     "s AS (INSERT INTO subjects (id, name, kind, timezone, created_at, updated_at) "
     "SELECT u.default_subject_id, " USER_SUBJECT_NAME(
         "u") ", 'other', u.timezone, "
              "u.created_at, u.created_at FROM u RETURNING id, daily_target_ml), "
              "m AS (INSERT INTO subject_members (subject_id, user_id, role, joined_at) "
              "SELECT u.default_subject_id, u.id, 'owner', u.created_at FROM u) "
              "SELECT " USER_COLS_OF("u", "s.daily_target_ml") " FROM u, s",
     4},
    {"auth_user_hash", "SELECT password_hash FROM users WHERE id = $1", 1},
    {"auth_user_set_hash", "UPDATE users SET password_hash = $2 WHERE id = $1", 2},
    /* A password change: the new hash and, when $3, every personal access token of the user
     * go in one statement (returns the deleted tokens' ids). */
    {"auth_user_change_password",
     "WITH u AS (UPDATE users SET password_hash = $2 WHERE id = $1 RETURNING id) "
     "DELETE FROM api_tokens t USING u WHERE $3::boolean AND t.user_id = u.id RETURNING t.id",
     3},
    {"auth_token_auth",
     "SELECT id, user_id, scopes, expires_at IS NOT NULL AND expires_at <= now(), "
     "subject_ids::text, cardinality(subject_ids) "
     "FROM api_tokens WHERE token_hash = decode($1, 'hex')",
     1},
    {"auth_token_touch",
     "UPDATE api_tokens SET last_used_at = now() WHERE token_hash = decode($1, 'hex') "
     "AND (last_used_at IS NULL OR last_used_at < now() - interval '60 seconds') "
     "AND (expires_at IS NULL OR expires_at > now())",
     1},
    /* a live socket's token, still there and not expired (credentials.c) */
    {"auth_token_alive",
     "SELECT 1 FROM api_tokens WHERE id = $1 AND user_id = $2"
     " AND (expires_at IS NULL OR expires_at > now())",
     2},
    /* $6: the subjects a token is restricted to (NULL: none), each one the user belongs to,
     * else nothing is inserted (422) */
    {"auth_token_insert",
     "INSERT INTO api_tokens (user_id, name, token_hash, scopes, expires_at, subject_ids) "
     "SELECT $1, $2, decode($3, 'hex'), $4, "
     "CASE WHEN $5::int IS NULL THEN NULL ELSE now() + make_interval(days => $5::int) END, "
     "$6::uuid[] WHERE $6::uuid[] IS NULL OR (SELECT count(*) FROM subject_members "
     "WHERE user_id = $1 AND subject_id = ANY($6::uuid[])) = cardinality($6::uuid[]) "
     "RETURNING " TOKEN_COLS,
     6},
    {"auth_token_list",
     "SELECT " TOKEN_COLS " FROM api_tokens WHERE user_id = $1 "
     "ORDER BY created_at DESC, id DESC LIMIT 1000",
     1},
    {"auth_token_delete", "DELETE FROM api_tokens WHERE id = $1 AND user_id = $2 RETURNING id", 2},
};

int auth_store_prepare(struct pl_pg_pool *pool)
{
    return STORE_PREPARE(pool, statements);
}

json_t *token_json(const PGresult *res, int row)
{
    int scopes = atoi(PQgetvalue(res, row, 2));
    json_t *s = json_array();
    if (scopes & SCOPE_READ) json_array_append_new(s, json_string("read"));
    if (scopes & SCOPE_WRITE) json_array_append_new(s, json_string("write"));
    json_t *subjects =
        PQgetisnull(res, row, 6) ? NULL : json_loads(PQgetvalue(res, row, 6), 0, NULL);
    return json_pack("{s:s, s:s, s:o, s:s, s:o, s:o, s:o}", "id", PQgetvalue(res, row, 0), "name",
                     PQgetvalue(res, row, 1), "scopes", s, "created_at", PQgetvalue(res, row, 3),
                     "expires_at", store_json_text(res, row, 4), "last_used_at",
                     store_json_text(res, row, 5), "subject_ids",
                     subjects ? subjects : json_null());
}

struct auth_ctx {
    token_auth_cb cb;
    void *ctx;
};

static void on_token_auth(int status, PGresult **results, int n, void *arg)
{
    struct auth_ctx c = *(struct auth_ctx *)arg;
    free(arg);
    if (status) {
        c.cb(status == PL_E_DB ? PL_E_DB : PL_E_UNAVAILABLE, NULL, c.ctx);
        return;
    }
    const PGresult *r = results[0];
    if (PQntuples(r) != 1) {
        c.cb(0, NULL, c.ctx);
        return;
    }
    struct token_auth t;
    snprintf(t.id, sizeof t.id, "%s", PQgetvalue(r, 0, 0));
    snprintf(t.user_id, sizeof t.user_id, "%s", PQgetvalue(r, 0, 1));
    t.scopes = atoi(PQgetvalue(r, 0, 2));
    t.expired = PQgetvalue(r, 0, 3)[0] == 't';
    t.subject_ids = PQgetisnull(r, 0, 4) ? NULL : PQgetvalue(r, 0, 4);
    t.n_subject_ids = t.subject_ids ? atoi(PQgetvalue(r, 0, 5)) : 0;
    c.cb(0, &t, c.ctx);
}

void auth_store_token_auth(struct worker *w, const char *hash_hex, token_auth_cb cb, void *ctx)
{
    struct auth_ctx *c = pl_xmalloc(sizeof *c);
    c->cb = cb;
    c->ctx = ctx;
    const char *v[] = {hash_hex};
    struct pl_pg_stmt stmts[] = {{"auth_token_auth", 1, v, NULL}, {"auth_token_touch", 1, v, NULL}};
    if (pl_pg_exec(w->pg, stmts, 2, on_token_auth, c) != 0)
        on_token_auth(PL_E_UNAVAILABLE, NULL, 0, c);
}

void token_new(char token[PAT_LEN + 1], char hash_hex[65])
{
    ids_new_secret("pat_", token, PAT_LEN + 1);
    token_hash_of(token, hash_hex);
}

int token_hash_of(const char *token, char hash_hex[65])
{
    if (strlen(token) != PAT_LEN || strncmp(token, "pat_", 4) != 0) return -1;
    /* The same shape check and hash as session tokens, on the part after the prefix. */
    return session_hash(token + 4, hash_hex);
}
