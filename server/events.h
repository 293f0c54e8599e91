/* events: change events published on Redis after a commit, so every replica can deliver
 * them to the user's live sockets (see "Live" in the contract). Revocations go out the same
 * way, on auth's channel (server/auth/credentials.c).
 *
 *   pulse:user:<user_id>   {"type":"event","event":"note.created","data":{...}}
 *
 * Fire and forget: a lost event costs a live update, never data (the rows are in Postgres). */
#ifndef PULSE_EVENTS_H
#define PULSE_EVENTS_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

struct worker;

/* The channel of a user's events ("pulse:user:<id>") into out (80 bytes are enough). */
void events_user_channel(const char *user_id, char *out, size_t cap);
/* The reverse: true with the user id in out (NUL-terminated) when channel[0..len) is a user's
 * events channel whose id fits in cap. */
bool events_channel_user(const char *channel, size_t len, char *out, size_t cap);
/* Publishes `text` (taken: malloc'd, freed once sent) on `channel` as it is. */
void events_publish_text(struct worker *w, const char *channel, char *text);
/* `data_json` is the resource's JSON text (copied). */
void events_publish_raw(struct worker *w, const char *user_id, const char *event,
                        const char *data_json);
/* A subject's event, delivered to each of its members: `members` is their user ids as a
 * Postgres array literal ("{id,...}", as `array_agg(user_id)::text` gives it, read in the same
 * statement as the change so that no extra round trip is needed and removed members get
 * nothing after their removal); `data_json` the resource's JSON text (copied). The frame is
 * {"type":"event","event":...,"subject_id":...,"data":...}. */
void events_publish_members(struct worker *w, const char *subject_id, const char *members,
                            const char *event, const char *data_json);
/* Takes the reference to `data`. */
void events_publish(struct worker *w, const char *user_id, const char *event, json_t *data);

#endif
