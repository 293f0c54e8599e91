/* tickets: single-use live tickets, the one session credential a URL may carry.
 *
 * A browser cannot set headers on a WebSocket, and a session token in `?access_token=` ends
 * up in proxy logs and browser history. So `?access_token=` takes a personal access token or
 * a ticket: `POST /api/v1/live/ticket` (session only, the cookie's Origin checked like any
 * cookie POST) answers `lt_` + 43 base64url characters, valid TICKET_TTL_S seconds and good
 * for one handshake. In Redis, keyed like sessions by a hash of the token:
 *
 *   pulse:ticket:<hash>   string: the hash of the session that asked, TTL TICKET_TTL_S
 *
 * Redeeming is one GETDEL, atomic in Redis, so a ticket opens one socket however many
 * replicas race for it. The socket it opens belongs to the session (its credential is the
 * session): revoking the session closes it with 4401, and a ticket of a session revoked
 * before use is refused because the guard checks the session next, as for a cookie. */
#ifndef PULSE_TICKETS_H
#define PULSE_TICKETS_H

#include "auth/sessions.h"

struct worker;

#define TICKET_PREFIX "lt_"
#define TICKET_LEN    (3 + 43) /* the prefix, then base64url of 32 random bytes */
#define TICKET_TTL_S  60

/* The hash of a ticket (hex), as sessions hash theirs. Returns -1 for a string of the wrong
 * shape (then there is nothing to look up). */
int ticket_hash(const char *ticket, char hash[SESSION_HASH_HEX + 1]);

/* Takes the ticket out of Redis. status 0 with the session's hash (borrowed for the call);
 * PL_E_NOTFOUND for a ticket unknown, used or expired; PL_E_UNAVAILABLE. Returns 0 when cb
 * will fire (later, from the loop), or PL_E_UNAVAILABLE at once (Redis not connected: cb
 * will not fire). */
typedef void (*ticket_redeem_cb)(int status, const char *session_hash, void *ctx);
int tickets_redeem(struct worker *w, const char *hash, ticket_redeem_cb cb, void *ctx);

struct pl_http_request;
/* POST /api/v1/live/ticket (ROUTE_AUTH | ROUTE_SESSION_ONLY | ROUTE_JSON, with
 * live_ticket_rules: no body): 201 {ticket, expires_at}, bound to the caller's session. */
void live_ticket_create(struct pl_http_request *req);
extern const struct body_rules live_ticket_rules;

#endif
