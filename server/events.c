#include "events.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app.h"
#include "auth/auth.h"

static void on_published(int status, redisReply *reply, void *ctx)
{
    free(ctx);
}

static void publish(struct worker *w, const char *channel, char *payload)
{
    const char *argv[] = {"PUBLISH", channel, payload};
    if (pl_redis_command(w->redis, 3, argv, NULL, on_published, payload) != 0) free(payload);
}

void events_publish(struct worker *w, const char *user_id, const char *event, json_t *data)
{
    json_t *msg = json_pack("{s:s, s:s, s:o}", "type", "event", "event", event, "data", data);
    char *text = json_dumps(msg, JSON_COMPACT);
    json_decref(msg);
    if (!text) return;
    char channel[80];
    snprintf(channel, sizeof channel, "pulse:user:%s", user_id);
    publish(w, channel, text);
}

void events_publish_raw(struct worker *w, const char *user_id, const char *event,
                        const char *data_json)
{
    size_t n = strlen(event) + strlen(data_json) + 64;
    char *text = malloc(n);
    if (!text) abort();
    snprintf(text, n, "{\"type\":\"event\",\"event\":\"%s\",\"data\":%s}", event, data_json);
    char channel[80];
    snprintf(channel, sizeof channel, "pulse:user:%s", user_id);
    publish(w, channel, text);
}

void auth_publish_revocation(struct worker *w, const char *user_id, const char *kind,
                             const char *id)
{
    json_t *msg =
        json_pack("{s:s, s:s, s:s}", "user_id", user_id, "kind", kind, "id", id ? id : "");
    char *text = json_dumps(msg, JSON_COMPACT);
    json_decref(msg);
    if (text) publish(w, "pulse:revoke", text);
}
