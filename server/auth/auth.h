/* auth: the routes of authentication and personal access tokens. */
#ifndef PULSE_AUTH_H
#define PULSE_AUTH_H

#include "pl/http.h"
#include "passwords.h"

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
/* Verifies the caller's own password (Postgres hash, Argon2 on the pool); cb gets req. */
void auth_verify_own_password(struct pl_http_request *req, const char *password,
                              passwords_verify_cb cb);
/* Rehashes a password whose stored hash uses outdated parameters (fire and forget). */
void login_rehash(struct worker *w, const char *user_id, const char *password);
/* Tells every replica that credentials were revoked ("session" id=hash, "others" id=the
 * kept session's hash, "all", "token" id=token id), so that live sockets opened with them
 * close. Fire and forget on the pulse:revoke channel. */
void auth_publish_revocation(struct worker *w, const char *user_id, const char *kind,
                             const char *id);

#endif
