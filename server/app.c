/* app: builds and tears down the process-wide context (router, metrics, the pieces features
 * need before any worker starts), and registers every feature's statements on a pool. */
#include "app.h"

#include <stdio.h>

#include "auth/auth.h"
#include "auth/auth_store.h"
#include "auth/passwords.h"
#include "events.h"
#include "feedings/feedings.h"
#include "guards.h"
#include "live/live.h"
#include "notes/notes.h"
#include "ops/ops.h"
#include "profile/profile.h"
#include "records/records_store.h"
#include "subjects/subjects.h"
#include "users/user.h"

/* Every route that takes a JSON body has the rules the guard checks it against (a missing
 * one is a programming error, caught at start-up and by tests/unit/test_routes.c). */
static int check_body_rules(const struct pl_router *router, char *err, size_t errlen)
{
    for (size_t i = 0; i < pl_router_count(router); i++) {
        const struct pl_route *r = pl_router_at(router, i);
        const struct body_rules *rules = (const struct body_rules *)r->data;
        if ((r->flags & ROUTE_JSON) && (!rules || !rules->schema)) {
            snprintf(err, errlen, "route %s has no body rules", r->pattern);
            return PL_E_INVALID;
        }
    }
    return 0;
}

int app_init(struct app *app, char *err, size_t errlen)
{
    if (trusted_proxies_init(app->cfg.trusted_proxies, err, errlen)) return PL_E_CONFIG;
    if (passwords_init(app)) {
        snprintf(err, errlen, "Argon2id hashing failed: check PULSE_ARGON2_MEMLIMIT");
        return PL_E_CONFIG;
    }
    size_t ntables;
    struct pl_route *const *tables = app_route_tables(&ntables);
    int rc = pl_router_create(tables, ntables, &app->router, err, errlen);
    if (rc == 0) rc = check_body_rules(app->router, err, errlen);
    if (rc) return rc;
    rc = ops_metrics_init(app);
    if (rc) {
        snprintf(err, errlen, "metrics registry: %s", pl_strerror(rc));
        return rc;
    }
    app->live_caps = live_caps_create();
    return 0;
}

void app_dispose(struct app *app)
{
    live_sampler_destroy(app);
    live_caps_destroy(app->live_caps);
    app->live_caps = NULL;
    ops_metrics_dispose(app);
    pl_router_destroy(app->router);
    timezones_free(app);
    app->router = NULL;
}

int app_prepare_statements(struct pl_pg_pool *pool)
{
    int rc = ops_prepare(pool);
    if (rc == 0) rc = auth_store_prepare(pool);
    if (rc == 0) rc = profile_store_prepare(pool);
    if (rc == 0) rc = records_prepare(pool);
    if (rc == 0) rc = notes_prepare(pool);
    if (rc == 0) rc = feedings_prepare(pool);
    if (rc == 0) rc = subjects_prepare(pool);
    if (rc == 0) rc = events_prepare(pool);
    return rc;
}
