/* guards: what runs between the router and a handler, chosen by the route's flags and data,
 * in the contract's order: authentication (401) → Origin and scope (403) → rate limit (429)
 * → Content-Type (415) → JSON parse (400) → Idempotency-Key form (400) → the body's rules
 * (503 while they cannot be checked, then 422). Handlers then check what needs a lookup
 * (404, 412, 409) and act. */
#ifndef PULSE_GUARDS_H
#define PULSE_GUARDS_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "pl/http.h"

enum route_flag {
    ROUTE_METRICS_TOKEN = 1u << 0, /* Bearer PULSE_METRICS_TOKEN when configured */
    ROUTE_AUTH = 1u << 1,          /* a session or a personal access token */
    ROUTE_SESSION_ONLY = 1u << 2,  /* personal access tokens get 403 */
    ROUTE_JSON = 1u << 3,       /* a JSON object body (empty = {}), parsed and checked against the
                                 * route's body rules (ROUTE_BODY) for the handler */
    ROUTE_RATE_LOGIN = 1u << 4, /* IP+email and IP limits (email read from the body) */
    ROUTE_RATE_REGISTER = 1u << 5, /* IP limit */
    ROUTE_RATE_EXPORT = 1u << 6,   /* the export limit instead of the read limit */
    ROUTE_LIVE = 1u << 7, /* the WebSocket: ?access_token= accepted, Origin checked on GET too */
    ROUTE_IDEMPOTENT = 1u << 8, /* an Idempotency-Key, when sent, is 1..255 printable ASCII */
    /* not about one subject (creating subjects, accepting invitations, export): a token
     * restricted to subject_ids gets 403 */
    ROUTE_USER_WIDE = 1u << 9,
    ROUTE_RATE_INVITATION = 1u << 10, /* the invitation-accept limit instead of the write one */
};

struct app;

/* What a ROUTE_JSON route accepts as its body, checked by the guard after the parse:
 * `.data = ROUTE_BODY(&rules)` in the route entry. Every ROUTE_JSON route has rules. */
struct body_rules {
    const struct pl_jschema *schema; /* validated with the app as the checks' context */
    /* the 422's detail; NULL: "the request body is invalid" */
    const char *detail;
    /* checks a schema cannot express whose errors belong in the same 422: appends
     * {field, message} to *errors (NULL when the schema found none). May be NULL. */
    void (*check)(json_t *body, json_t **errors);
    /* false while something the checks need is not loaded yet: the request answers 503
     * before any check. May be NULL. */
    bool (*ready)(json_t *body, const struct app *app);
};
#define ROUTE_BODY(rules) ((intptr_t)(const struct body_rules *)(rules))
/* The schema of a body that must be empty or {}. */
extern const struct pl_jschema empty_body_schema;

/* The form of an Idempotency-Key value: 1..255 printable ASCII characters. */
bool idempotency_key_ok(const char *key);

enum scope { SCOPE_READ = 1, SCOPE_WRITE = 2 };

enum principal_kind { PRINCIPAL_NONE = 0, PRINCIPAL_SESSION, PRINCIPAL_TOKEN };

/* Who is calling, set by the guards (request arena). */
struct principal {
    enum principal_kind kind;
    char user_id[40];
    char session_id[72]; /* sessions: the token's hash, hex */
    char token_id[40];   /* tokens */
    unsigned scopes;
    bool cookie; /* authenticated by the pulse_session cookie */
    /* A token restricted to some subjects: their ids as a Postgres array literal "{id,...}"
     * (request arena), to pass as a uuid[] parameter; NULL when unrestricted (sessions,
     * tokens without subject_ids). n_subject_ids counts them. */
    const char *subject_ids;
    int n_subject_ids;
};

/* The request's principal (never NULL after ROUTE_AUTH; kind NONE on public routes). */
const struct principal *req_principal(const struct pl_http_request *req);
/* The parsed body of a ROUTE_JSON route (borrowed; freed with the request). */
json_t *req_json(const struct pl_http_request *req);
/* The client IP (request arena): the socket peer, or, when the peer is in
 * PULSE_TRUSTED_PROXIES, the rightmost hop of X-Forwarded-For (all its lines) that is not a
 * trusted proxy or is no address (see client_ip_resolve). */
const char *req_client_ip(struct pl_http_request *req);
/* The client as a rate-limit key (request arena): client_ip_rate_key of req_client_ip. */
const char *req_client_rate_key(struct pl_http_request *req);

/* Finds name=value in a Cookie header (NULL = none) into out; false when absent, or when the
 * value does not fit in cap bytes with its NUL. */
bool cookie_value(const char *header, const char *name, char *out, size_t cap);

/* Parses PULSE_TRUSTED_PROXIES ("10.0.0.0/8, 127.0.0.1") once at start-up. Returns 0 or
 * PL_E_CONFIG with the bad entry in err. */
int trusted_proxies_init(const char *list, char *err, size_t errlen);
bool ip_is_trusted_proxy(const char *ip);

/* Longest text client_ip_resolve writes, NUL included. */
#define CLIENT_IP_MAX 64
/* The client of a request from socket peer `peer` carrying the X-Forwarded-For list `xff`
 * (every line joined, or NULL), into out (cap <= CLIENT_IP_MAX is enough): the peer when it
 * is not a trusted proxy; otherwise, walking the hops from the right, the first that is not
 * a trusted proxy, or the first that is no address (its text, printable ASCII, bounded):
 * never a hop left of one of those; the leftmost when every hop is trusted. Addresses come
 * out canonical (inet_ntop; an IPv4-mapped IPv6 address as IPv4); a port written after a hop
 * ("192.0.2.1:80", "[2001:db8::1]:80") is dropped. Uses the trusted_proxies_init list. */
void client_ip_resolve(const char *peer, const char *xff, char *out, size_t cap);
/* A client's rate-limit key: an IPv6 address's /64 ("2001:db8:1:2::/64"), anything else as
 * it is. cap >= CLIENT_IP_MAX + 4. */
void client_ip_rate_key(const char *ip, char *out, size_t cap);

#endif
