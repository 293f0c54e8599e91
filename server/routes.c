/* Joins the feature route tables; the order here is the order of route indexes. */
#include <stdlib.h>

#include "app.h"
#include "ops/ops.h"

int app_init(struct app *app, char *err, size_t errlen)
{
    struct pl_route *const tables[] = {ops_routes};
    int rc = pl_router_create(tables, sizeof tables / sizeof tables[0], &app->router, err, errlen);
    if (rc) return rc;
    app->metrics = pl_http_metrics_create(app->router);
    return 0;
}

void app_dispose(struct app *app)
{
    pl_http_metrics_destroy(app->metrics);
    pl_router_destroy(app->router);
    app->metrics = NULL;
    app->router = NULL;
}

int app_prepare_statements(struct pl_pg_pool *pool)
{
    return ops_prepare(pool);
}
