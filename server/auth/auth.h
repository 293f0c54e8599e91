/* auth: the routes of authentication and personal access tokens. */
#ifndef PULSE_AUTH_H
#define PULSE_AUTH_H

#include "pl/http.h"
#include "passwords.h"

struct app;
struct worker;

extern struct pl_route auth_routes[];
extern struct pl_route token_routes[];

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
