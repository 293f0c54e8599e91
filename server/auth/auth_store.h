/* auth_store: the SQL of accounts (users, tokens), as named prepared statements.
 * Timestamps are formatted by Postgres as RFC 3339 UTC with milliseconds. */
#ifndef PULSE_AUTH_STORE_H
#define PULSE_AUTH_STORE_H

#include <stdbool.h>

#include <jansson.h>

#include "../store.h"
#include "pl/pg.h"

struct worker;

#define TOKEN_COLS                                                                                 \
    "id, name, scopes, " TS("created_at") ", " TS("expires_at") ", " TS(                           \
        "last_used_at") ", array_to_json(subject_ids)::text"

int auth_store_prepare(struct pl_pg_pool *pool);

/* A token's metadata from a TOKEN_COLS result (no secret). */
json_t *token_json(const PGresult *res, int row);

struct token_auth {
    char id[40];
    char user_id[40];
    int scopes;
    bool expired;
    /* restricted to subjects: their ids as a Postgres array literal (valid during the
     * callback only), and how many; NULL and 0 when unrestricted */
    const char *subject_ids;
    int n_subject_ids;
};
/* status 0 with t (NULL when no such token); or the pool's error. */
typedef void (*token_auth_cb)(int status, const struct token_auth *t, void *ctx);
/* Looks the token up and, in the same round trip, updates last_used_at when it is more than a
 * minute old (so a busy token costs no write per request). */
void auth_store_token_auth(struct worker *w, const char *hash_hex, token_auth_cb cb, void *ctx);

#define PAT_LEN 47 /* "pat_" + base64url of 32 bytes */
void token_new(char token[PAT_LEN + 1], char hash_hex[65]);
/* Returns -1 for a string that cannot be a token. */
int token_hash_of(const char *token, char hash_hex[65]);

#endif
