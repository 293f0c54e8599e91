/* profile: GET/PATCH/DELETE /api/v1/me and the streamed export. */
#ifndef PULSE_PROFILE_H
#define PULSE_PROFILE_H

#include "pl/http.h"
#include "pl/pg.h"

#define EXPORT_PAGE 500

extern struct pl_route profile_routes[];
int profile_store_prepare(struct pl_pg_pool *pool);

#endif
