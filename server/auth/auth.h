/* auth: the routes of authentication and personal access tokens. */
#ifndef PULSE_AUTH_H
#define PULSE_AUTH_H

#include <stdbool.h>
#include <stddef.h>

#include "../guards.h"
#include "passwords.h"
#include "pl/http.h"

struct app;
struct worker;

extern struct pl_route auth_routes[];
extern struct pl_route token_routes[];

/* A worker's auth state (w->auth, opaque): session scripts and the password queue.
 * create: main thread, after the worker's loop is initialised and before its thread starts
 * (other workers signal its queue); start: worker thread, once its Redis client exists (0 or
 * a code); close: on the loop that ran it (fails queued password jobs, closes the handles;
 * twice is harmless); destroy: main thread, after the worker's thread has been joined and
 * its loop has run dry. */
void auth_worker_create(struct worker *w);
int auth_worker_start(struct worker *w);
void auth_worker_close(struct worker *w);
void auth_worker_destroy(struct worker *w);

void set_session_cookie(struct pl_http_request *req, const char *token);
void clear_session_cookie(struct pl_http_request *req);
/* Verifies the caller's own password (its hash from Postgres, Argon2 on the pool) and calls
 * then(req) when it matches. Otherwise the request is answered: 403 with the detail `wrong`
 * (static) for a wrong password, 503 or 500 when it could not be checked. */
void auth_verify_own_password(struct pl_http_request *req, const char *password, const char *wrong,
                              void (*then)(struct pl_http_request *req));
/* Rehashes a password whose stored hash uses outdated parameters (fire and forget). */
void login_rehash(struct worker *w, const char *user_id, const char *password);
/* ---- credentials after issue (credentials.c) ---- */

/* Revocations go to every replica on this channel, so that the live sockets opened with the
 * revoked credentials close (server/live subscribes). */
#define AUTH_REVOKE_CHANNEL "pulse:revoke"
enum auth_revoke {
    AUTH_REVOKE_SESSION, /* id: the session's hash */
    AUTH_REVOKE_OTHERS,  /* every session but id (the kept session's hash) */
    AUTH_REVOKE_ALL,     /* every credential of the user (id unused) */
    AUTH_REVOKE_TOKEN,   /* id: the personal access token's id */
    AUTH_REVOKE_KINDS
};
/* Tells every replica that credentials of the request's user were revoked. Fire and forget
 * (after the change is stored: a lost message leaves a socket open until its recheck). */
void auth_publish_revocation(struct pl_http_request *req, enum auth_revoke kind, const char *id);

struct auth_revocation {
    char user_id[40];
    enum auth_revoke kind;
    char id[72];
};
/* Reads a message of AUTH_REVOKE_CHANNEL into out: 0, or -1 for one that names no known
 * kind or user. */
int auth_revocation_parse(const char *payload, size_t len, struct auth_revocation *out);
/* true when r revokes the credential of that kind (sessions: the hash; tokens: the id). */
bool auth_revocation_covers(const struct auth_revocation *r, enum principal_kind kind,
                            const char *credential);

/* Whether a credential a live socket holds still stands: a session (its hash; the check
 * slides its idle expiry as any use does) or a personal access token (its id, of user_id,
 * not expired). cb gets status 0 and the answer, or a non-zero status when it could not be
 * told (keep the socket then); it fires exactly once, possibly before this returns. */
typedef void (*auth_alive_cb)(int status, bool alive, void *ctx);
void auth_credential_alive(struct worker *w, enum principal_kind kind, const char *user_id,
                           const char *credential, auth_alive_cb cb, void *ctx);

#endif
