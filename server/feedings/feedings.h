/* feedings: CRUD, filters, keyset pagination, today's progress and daily stats in the
 * user's time zone. */
#ifndef PULSE_FEEDINGS_H
#define PULSE_FEEDINGS_H

#include "pl/http.h"
#include "pl/pg.h"

extern struct pl_route feedings_routes[];
int feedings_prepare(struct pl_pg_pool *pool);

#endif
