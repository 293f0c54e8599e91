#include <sodium.h>
#include <string.h>

#include "app.h"
#include "guards.h"

/* Compares in constant time so the token cannot be guessed byte by byte from timings. */
static bool metrics_token_ok(struct pl_http_request *req, const char *token)
{
    if (!token || !*token) return true;
    const char *auth = pl_req_header(req, "authorization");
    if (!auth || strncasecmp(auth, "Bearer ", 7) != 0) return false;
    const char *given = auth + 7;
    size_t n = strlen(token);
    if (strlen(given) != n) return false;
    return sodium_memcmp(given, token, n) == 0;
}

void app_dispatch(struct pl_http_request *req, void *ctx)
{
    struct worker *w = ctx;
    const struct pl_route *route = pl_req_route(req);
    if ((route->flags & ROUTE_METRICS_TOKEN) && !metrics_token_ok(req, w->app->cfg.metrics_token)) {
        pl_respond_problem(req, 401, "a valid metrics token is required", NULL);
        return;
    }
    route->handler(req);
}
