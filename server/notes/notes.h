/* notes: CRUD, tags, pinned, full-text search, keyset pagination. */
#ifndef PULSE_NOTES_H
#define PULSE_NOTES_H

#include "pl/http.h"
#include "pl/pg.h"

extern struct pl_route notes_routes[];
int notes_prepare(struct pl_pg_pool *pool);

#endif
