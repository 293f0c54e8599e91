/* events: change events and revocations published on Redis after a commit, so every
 * replica can deliver them to the user's live sockets (see "Live" in the contract).
 *
 *   pulse:user:<user_id>   {"type":"event","event":"note.created","data":{...}}
 *   pulse:revoke           {"user_id":..., "kind":"session"|"others"|"all"|"token", "id":...}
 *
 * Fire and forget: a lost event costs a live update, never data (the rows are in Postgres). */
#ifndef PULSE_EVENTS_H
#define PULSE_EVENTS_H

#include <jansson.h>

struct worker;

/* `data_json` is the resource's JSON text (copied). */
void events_publish_raw(struct worker *w, const char *user_id, const char *event,
                        const char *data_json);
/* Takes the reference to `data`. */
void events_publish(struct worker *w, const char *user_id, const char *event, json_t *data);

#endif
