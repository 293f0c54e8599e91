/* feedings: CRUD, filters, keyset pagination, today's progress, daily stats with the gaps
 * between feedings, and a day's timeline, in the subject's time zone. */
#ifndef PULSE_FEEDINGS_H
#define PULSE_FEEDINGS_H

#include "../records/records_store.h"
#include "../store.h"
#include "pl/http.h"
#include "pl/pg.h"

/* SQL of a feeding's JSON shape (text), formatted by Postgres (timestamps RFC 3339 UTC, ms),
 * from the columns of one feedings row in scope, written with prefix `t` ("" or "r."), its
 * author being the SQL `cb` (RECORD_CREATED_BY: records_store.h). */
#define FEEDING_JSON_OF(t, cb)                                                                     \
    "json_build_object('id', " t "id, 'subject_id', " t "subject_id, 'amount_ml', " t              \
    "amount_ml, 'kind', " t "kind, 'method', " t "method, 'duration_s', " t                        \
    "duration_s, 'given_at', " TS(                                                                 \
        t "given_at") ", 'note', " t "note, "                                                      \
                      "'created_by', " cb ", 'version', " t "version, 'created_at', " TS(          \
                          t "created_at") ", 'updated_at', " TS(t "updated_at") ")::text"
#define FEEDING_JSON FEEDING_JSON_OF("", RECORD_CREATED_BY)

extern struct pl_route feedings_routes[];
int feedings_prepare(struct pl_pg_pool *pool);

#endif
