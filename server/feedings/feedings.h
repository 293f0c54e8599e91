/* feedings: CRUD, filters, keyset pagination, today's progress and daily stats in the
 * user's time zone. */
#ifndef PULSE_FEEDINGS_H
#define PULSE_FEEDINGS_H

#include "../store.h"
#include "pl/http.h"
#include "pl/pg.h"

/* SQL of a feeding's JSON shape (text), formatted by Postgres (timestamps RFC 3339 UTC, ms). */
#define FEEDING_JSON                                                                                           \
    "json_build_object('id', id, 'amount_ml', amount_ml, 'kind', kind, 'given_at', " TS(                       \
        "given_at") ", 'note', note, 'version', version, 'created_at', " TS("created_at") ", "                 \
                                                                                          "'updated_at', " TS( \
                                                                                              "updated_at") ")::text"

extern struct pl_route feedings_routes[];
int feedings_prepare(struct pl_pg_pool *pool);

#endif
