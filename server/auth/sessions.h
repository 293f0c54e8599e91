/* sessions: browser and mobile sessions in Redis, keyed by a hash of the token.
 *
 *   pulse:sess:<hash>    hash {user_id, created_at, last_seen_at (ms), abs_exp (s), ua, ip}
 *                        with a TTL = min(idle, time left before the absolute expiry)
 *   pulse:usess:<user>   set of the user's session hashes (listing and mass revocation)
 *
 * Every operation is one Lua script, so each costs one round trip and is atomic. The check
 * script also slides the expiry and applies the caller's rate limit (GCRA, the same code as
 * lib/ratelimit), so an authenticated request costs one Redis round trip in all. */
#ifndef PULSE_SESSIONS_H
#define PULSE_SESSIONS_H

#include <stdint.h>

#include "../config.h"
#include "pl/ratelimit.h"

struct worker;

#include "../ids.h"

#define SESSION_TOKEN_LEN IDS_SECRET_LEN /* base64url of 32 random bytes */
#define SESSION_HASH_HEX  IDS_HASH_HEX

/* The session cookie's name: __Host-pulse_session behind TLS (PULSE_COOKIE_SECURE=1),
 * pulse_session otherwise. */
static inline const char *session_cookie(const struct pulse_config *cfg)
{
    return cfg->cookie_secure ? "__Host-pulse_session" : "pulse_session";
}

/* A new random token and its hash (hex). */
void session_token_new(char token[SESSION_TOKEN_LEN + 1], char hash[SESSION_HASH_HEX + 1]);
/* The hash of a token (hex). Returns -1 for a token of the wrong shape. */
int session_hash(const char *token, char hash[SESSION_HASH_HEX + 1]);

typedef void (*session_create_cb)(int status, int64_t created_ms, int64_t expires_ms, void *ctx);
void sessions_create(struct worker *w, const char *hash, const char *user_id, const char *ua,
                     const char *ip, session_create_cb cb, void *ctx);

/* status 0 with the user id (borrowed for the call) and, when `rule` was given, the rate
 * verdict; PL_E_NOTFOUND for an unknown or expired session; PL_E_UNAVAILABLE. */
typedef void (*session_check_cb)(int status, const char *user_id, const struct pl_rate_result *rate,
                                 void *ctx);
void sessions_check(struct worker *w, const char *hash, const char *rate_class,
                    const struct pl_rate_rule *rule, session_check_cb cb, void *ctx);

struct session_info {
    char id[SESSION_HASH_HEX + 1];
    int64_t created_ms, last_seen_ms;
    const char *user_agent, *ip; /* borrowed for the callback */
};
typedef void (*session_list_cb)(int status, const struct session_info *items, int n, void *ctx);
void sessions_list(struct worker *w, const char *user_id, session_list_cb cb, void *ctx);

enum revoke_mode { REVOKE_ONE, REVOKE_OTHERS, REVOKE_ALL };
/* ONE: `hash` only if it is one of the user's (count 0 otherwise); OTHERS: all but `hash`;
 * ALL: every session of the user. */
typedef void (*session_revoke_cb)(int status, int count, void *ctx);
void sessions_revoke(struct worker *w, const char *user_id, enum revoke_mode mode, const char *hash,
                     session_revoke_cb cb, void *ctx);

#endif
