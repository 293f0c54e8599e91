/* ops: health, readiness, Prometheus metrics and the OpenAPI document. */
#ifndef PULSE_OPS_H
#define PULSE_OPS_H

#include "pl/http.h"
#include "pl/pg.h"

struct app;

extern struct pl_route ops_routes[];
int ops_prepare(struct pl_pg_pool *pool);

/* Creates app->registry ("pulse_" names) with lib/http's request metrics (app->metrics,
 * after the router is built), the application's families and the process metrics. */
int ops_metrics_init(struct app *app);
void ops_metrics_dispose(struct app *app);

/* The OpenAPI document embedded at build time (server/ops/openapi.json). */
extern const unsigned char pulse_openapi_json[];
extern const unsigned long pulse_openapi_json_len;

#endif
