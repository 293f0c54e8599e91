/* notes: CRUD, tags, pinned, full-text search, keyset pagination. */
#ifndef PULSE_NOTES_H
#define PULSE_NOTES_H

#include "../records/records_store.h"
#include "../store.h"
#include "pl/http.h"
#include "pl/pg.h"

/* SQL of a note's JSON shape (text), formatted by Postgres (timestamps RFC 3339 UTC, ms), from
 * the columns of one notes row in scope, written with prefix `t` ("" or "r."), its author
 * being the SQL `cb` (RECORD_CREATED_BY or RECORD_CREATED_BY_JOINED: records_store.h). */
#define NOTE_JSON_OF(t, cb)                                                                        \
    "json_build_object('id', " t "id, 'subject_id', " t "subject_id, 'title', " t "title, "        \
    "'body', " t "body, 'tags', " t "tags, 'pinned', " t "pinned, 'created_by', " cb ", "          \
    "'version', " t                                                                                \
    "version, 'created_at', " TS(t "created_at") ", 'updated_at', " TS(t "updated_at") ")::text"
#define NOTE_JSON NOTE_JSON_OF("", RECORD_CREATED_BY)

extern struct pl_route notes_routes[];
int notes_prepare(struct pl_pg_pool *pool);

#endif
