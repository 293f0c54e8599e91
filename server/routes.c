/* Joins the feature route tables; the order here is the order of route indexes. */
#include <stdio.h>
#include <stdlib.h>

#include "app.h"
#include "auth/auth.h"
#include "auth/auth_store.h"
#include "auth/passwords.h"
#include "guards.h"
#include "live/live.h"
#include "ops/ops.h"
#include "feedings/feedings.h"
#include "notes/notes.h"
#include "profile/profile.h"
#include "records/records.h"

static struct pl_route *const tables[] = {ops_routes,     auth_routes,  token_routes,
                                          profile_routes, notes_routes, feedings_routes,
                                          live_routes};

struct pl_route *const *app_route_tables(size_t *n)
{
    *n = sizeof tables / sizeof tables[0];
    return tables;
}

int app_init(struct app *app, char *err, size_t errlen)
{
    if (trusted_proxies_init(app->cfg.trusted_proxies, err, errlen)) return PL_E_CONFIG;
    if (passwords_init(app)) {
        snprintf(err, errlen, "Argon2id hashing failed: check PULSE_ARGON2_MEMLIMIT");
        return PL_E_CONFIG;
    }
    auth_routes_init(app);
    profile_routes_init(app);
    int rc = pl_router_create(tables, sizeof tables / sizeof tables[0], &app->router, err, errlen);
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
    if (rc == 0) rc = live_prepare(pool);
    return rc;
}
