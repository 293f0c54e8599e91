/* events: change events, delivered to every replica's live sockets through Redis (see "Live"
 * and "Offline clients and event resume" in the contract). Revocations go out on auth's
 * channel (server/auth/credentials.c), as plain PUBLISHes.
 *
 * A change event is published by one Lua script (atomic in Redis): INCR pulse:seq gives N,
 * the event's seq (the decimal string of N: one per event, the same for every recipient,
 * growing in publication order); for each recipient the frame
 *
 *   {"type":"event","event":"note.created","subject_id":"..."|null,"seq":"N","data":{...}}
 *
 * is XADDed to the stream pulse:stream:<user_id> under the id N-0 (field f: the frame, field
 * t: the publication time in ms), the stream is trimmed (entries are kept while newer than
 * PULSE_EVENTS_RETAIN_S or among the newest PULSE_EVENTS_RETAIN_COUNT, and the stream expires
 * PULSE_EVENTS_RETAIN_S after its last event), and the frame is PUBLISHed on
 * pulse:user:<user_id>.
 *
 * The outbox: a statement that commits a change also inserts its event into event_outbox
 * (migrations/006) and returns the row's id; the handler then calls events_publish_for(),
 * which holds its response until Redis has answered the script, which first SETs
 * pulse:outbox:<id>.<token> NX (present: already published, nothing happens), and the row is
 * deleted once Redis answered. A sweeper (worker 0 of every replica, every PULSE_EVENTS_SWEEP_MS)
 * claims the rows older than PULSE_EVENTS_SWEEP_AGE_MS (FOR UPDATE SKIP LOCKED) and publishes them
 * the same way: a change whose process died after the commit is still delivered, once. */
#ifndef PULSE_EVENTS_H
#define PULSE_EVENTS_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

struct worker;
struct pl_pg_pool;
struct pl_http_request;

/* The channel of a user's events ("pulse:user:<id>") into out (80 bytes are enough). */
void events_user_channel(const char *user_id, char *out, size_t cap);
/* The stream of a user's retained events ("pulse:stream:<id>", entries "<seq>-0" with the
 * frame's text in field f and the publication time in ms in field t) into out (80 bytes are
 * enough). */
void events_user_stream(const char *user_id, char *out, size_t cap);
/* The reverse: true with the user id in out (NUL-terminated) when channel[0..len) is a user's
 * events channel whose id fits in cap. */
bool events_channel_user(const char *channel, size_t len, char *out, size_t cap);
/* Publishes `text` (taken: malloc'd, freed once sent) on `channel` as it is (no seq, no
 * stream: for other channels than the users'). */
void events_publish_text(struct worker *w, const char *channel, char *text);
/* A user's own event (subject_id null); `data_json` is the resource's JSON text (copied). */
void events_publish_raw(struct worker *w, const char *user_id, const char *event,
                        const char *data_json);
/* A subject's event, delivered to each of its members: `members` is their user ids as a
 * Postgres array literal ("{id,...}", as `array_agg(user_id)::text` gives it, read in the same
 * statement as the change so that no extra round trip is needed and removed members get
 * nothing after their removal); `data_json` the resource's JSON text (copied). */
void events_publish_members(struct worker *w, const char *subject_id, const char *members,
                            const char *event, const char *data_json);
/* The same for an event whose row `outbox_id` the change's statement wrote into event_outbox
 * (its reference "<id>.<token>"; NULL or "" when it wrote none: published without dedupe).
 * subject_id NULL: a user's own event. */
void events_publish_outbox(struct worker *w, const char *outbox_id, const char *subject_id,
                           const char *members, const char *event, const char *data_json);
/* events_publish_outbox for the change `req` made: its response (pl_respond) is held until
 * Redis has answered, so that a client that waits for an answer before its next request sees
 * the events of its requests in their order (seqs are given in publication order, and two
 * requests may be served by different workers, each with its own Redis connection). */
void events_publish_for(struct pl_http_request *req, const char *outbox_id, const char *subject_id,
                        const char *members, const char *event, const char *data_json);
/* Deletes the user's stream (their account is gone), after what is queued before it. */
void events_forget_user(struct worker *w, const char *user_id);
/* Takes the reference to `data`. */
void events_publish(struct worker *w, const char *user_id, const char *event, json_t *data);

/* The outbox's statements, on every pool. */
int events_prepare(struct pl_pg_pool *pool);
/* Per worker, after its Redis client exists: the publish script, and on worker 0 the sweeper
 * timer. events_worker_close() stops the timer (before the pool and client go). */
int events_worker_start(struct worker *w);
void events_worker_close(struct worker *w);

/* An outbox row's reference as the C side takes it: "<id>.<token>" (SQL). */
#define EVENTS_OUTBOX_REF "event_outbox.id::text || '.' || event_outbox.token::text"
/* SQL for a change's statement: the CTE "<name> AS (INSERT INTO event_outbox ...)" of the
 * rows of `from` with columns members, sid, json, and the event name `event` (SQL). */
#define EVENTS_OUTBOX_CTE(name, event, members, sid, data, from)                                   \
    name " AS (INSERT INTO event_outbox (user_ids, subject_id, event, data) SELECT " members       \
         ", " sid ", " event ", " data " FROM " from " WHERE " members                             \
         " IS NOT NULL RETURNING " EVENTS_OUTBOX_REF " AS id)"

#endif
