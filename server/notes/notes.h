/* notes: CRUD, tags, pinned, full-text search, keyset pagination. */
#ifndef PULSE_NOTES_H
#define PULSE_NOTES_H

#include "../records/records_store.h"
#include "../store.h"
#include "pl/http.h"
#include "pl/pg.h"

/* SQL of a note's JSON shape (text), formatted by Postgres (timestamps RFC 3339 UTC, ms), from
 * the columns of one notes row in scope (RECORD_CREATED_BY: records_store.h). */
#define NOTE_JSON                                                                                  \
    "json_build_object('id', id, 'subject_id', subject_id, 'title', title, 'body', body, "         \
    "'tags', tags, 'pinned', pinned, 'created_by', " RECORD_CREATED_BY ", 'version', version, "    \
    "'created_at', " TS("created_at") ", 'updated_at', " TS("updated_at") ")::text"

extern struct pl_route notes_routes[];
int notes_prepare(struct pl_pg_pool *pool);

#endif
