/* feedings: CRUD, filters, keyset pagination, today's progress and daily stats in the
 * subject's time zone. */
#ifndef PULSE_FEEDINGS_H
#define PULSE_FEEDINGS_H

#include "../records/records_store.h"
#include "../store.h"
#include "pl/http.h"
#include "pl/pg.h"

/* SQL of a feeding's JSON shape (text), formatted by Postgres (timestamps RFC 3339 UTC, ms),
 * from the columns of one feedings row in scope (RECORD_CREATED_BY: records_store.h). */
#define FEEDING_JSON                                                                               \
    "json_build_object('id', id, 'subject_id', subject_id, 'amount_ml', amount_ml, 'kind', kind, " \
    "'given_at', " TS("given_at") ", 'note', note, 'created_by', " RECORD_CREATED_BY ", "          \
                                  "'version', version, 'created_at', " TS(                         \
                                      "created_at") ", 'updated_at', " TS("updated_at") ")::text"

extern struct pl_route feedings_routes[];
int feedings_prepare(struct pl_pg_pool *pool);

#endif
