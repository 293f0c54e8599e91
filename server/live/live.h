/* live: the WebSocket /api/v1/live and the figures it pushes.
 *
 * Per worker (live.c): the lws bridge on the worker's loop, the sockets by user, and a Redis
 * subscriber connection. A worker subscribes to `pulse:user:<id>` (server/events.c) for each
 * user it holds sockets of (not to a pattern: with many replicas a pattern would deliver
 * every user's events to every replica, and per-user channels cost one SUBSCRIBE per user
 * and worker), and to `pulse:revoke` (server/auth/credentials.c), which closes the sockets
 * of revoked credentials with 4401; the expiry of their credentials is checked now and then
 * through auth_credential_alive.
 *
 * Per process (sampler.c): a timer on the main loop samples the host (lib/sysmetrics) and the
 * server's own figures every PULSE_METRICS_INTERVAL_MS, serialises the metrics message once
 * and hands it to every worker (latest wins), which sends that one frame to each of its
 * subscribed sockets. The sampler also keeps the last minute of samples for
 * /api/v1/health/scaling. */
#ifndef PULSE_LIVE_H
#define PULSE_LIVE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "pl/http.h"

struct app;
struct worker;

extern struct pl_route live_routes[];

/* What a client's message asks for (message.c). */
enum live_topic { TOPIC_METRICS = 1u << 0, TOPIC_EVENTS = 1u << 1 };
#define ALL_TOPICS (TOPIC_METRICS | TOPIC_EVENTS)
enum live_msg {
    LIVE_MSG_ERROR,
    LIVE_MSG_PING,
    LIVE_MSG_SUBSCRIBE,
    LIVE_MSG_UNSUBSCRIBE,
    LIVE_MSG_RESUME
};
/* Reads one inbound message: ping, subscribe/unsubscribe with the topics named in *topics,
 * or resume with its cursor in *after (0 when the string is not a seq this server gives:
 * seqs start at 1, so 0 always answers resync_required); anything else is LIVE_MSG_ERROR
 * with a detail for the client's error message. *after is 0 unless the result is
 * LIVE_MSG_RESUME, *topics 0 unless it is (un)subscribe. Pure: the fuzz target of the live
 * socket's input. */
enum live_msg live_message_parse(const char *data, size_t len, bool binary, unsigned *topics,
                                 uint64_t *after, char *detail, size_t cap);
/* An event seq (a decimal string, 1..20 digits, no sign, within 64 bits) into *out; false
 * (and *out 0) for anything else. */
bool live_seq_parse(const char *s, size_t len, uint64_t *out);

/* A serialised message shared between threads (reference counted). */
struct live_blob {
    _Atomic int refs;
    size_t len;
    char text[];
};
void live_blob_unref(struct live_blob *b);

/* FNV-1a of a NUL-terminated key: the bucket of the hash tables of live.c and caps.c. */
static inline unsigned live_hash(const char *key)
{
    unsigned h = 2166136261u;
    for (const unsigned char *p = (const unsigned char *)key; *p; p++)
        h = (h ^ *p) * 16777619u;
    return h;
}

/* Worker side. live_worker_init runs on the worker's thread after its Redis client exists;
 * live_worker_async_init on the main thread before the worker starts (it owns the async
 * handle the sampler wakes). */
void live_worker_async_init(struct worker *w);
int live_worker_init(struct worker *w);
/* Shutdown: closes every socket with 1001 and calls done once they are gone (at most ~1 s). */
void live_worker_stop(struct worker *w, void (*done)(struct worker *w));
/* Frees the worker's live state; its handles close as the loop runs on. */
void live_worker_close(struct worker *w);
/* After the worker's loop has run dry (main thread, worker joined): completes the lws
 * teardown. Run the loop once more afterwards. */
void live_worker_finish(struct worker *w);

/* Open sockets per user and per client IP (caps.c), one table per process shared by its
 * workers (thread-safe): PULSE_WS_PER_USER and PULSE_WS_PER_IP are per process, since a
 * socket lives in one process. live_caps_take counts a socket for both unless either is at
 * its cap (then nothing is counted) and fills *out, which every LIVE_CAP_OK must give back
 * to live_caps_release exactly once (a released or empty slot is ignored). */
struct live_caps;
struct cap_entry;
struct live_cap_slot {
    struct cap_entry *user, *ip;
};
enum live_cap { LIVE_CAP_OK = 0, LIVE_CAP_USER, LIVE_CAP_IP };
struct live_caps *live_caps_create(void);
void live_caps_destroy(struct live_caps *c);
enum live_cap live_caps_take(struct live_caps *c, const char *user_id, const char *ip,
                             long long per_user, long long per_ip, struct live_cap_slot *out);
void live_caps_release(struct live_caps *c, struct live_cap_slot *slot);

/* Process side, on the main loop: app->sampler. start: before the workers start (0 or a
 * code); stop: closes its timer (run the loop on; twice is harmless); destroy: once no
 * thread can ask for the scaling report any more (app_dispose). */
int live_sampler_start(struct app *app, uv_loop_t *loop);
void live_sampler_stop(struct app *app);
void live_sampler_destroy(struct app *app);

/* The scaling advisor's answer (the JSON of /api/v1/health/scaling), built from the
 * sampler's history. Thread-safe. */
json_t *live_scaling_report(struct app *app);

#endif
