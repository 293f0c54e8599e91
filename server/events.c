#include "events.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app.h"
#include "pl/mem.h"

static void on_published(int status, redisReply *reply, void *ctx)
{
    free(ctx);
}

#define USER_CHANNEL "pulse:user:"

void events_user_channel(const char *user_id, char *out, size_t cap)
{
    snprintf(out, cap, USER_CHANNEL "%s", user_id);
}

bool events_channel_user(const char *channel, size_t len, char *out, size_t cap)
{
    size_t n = strlen(USER_CHANNEL);
    if (len <= n || len - n >= cap || memcmp(channel, USER_CHANNEL, n) != 0) return false;
    memcpy(out, channel + n, len - n);
    out[len - n] = 0;
    return true;
}

void events_publish_text(struct worker *w, const char *channel, char *payload)
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
    events_user_channel(user_id, channel, sizeof channel);
    events_publish_text(w, channel, text);
}

void events_publish_raw(struct worker *w, const char *user_id, const char *event,
                        const char *data_json)
{
    size_t n = strlen(event) + strlen(data_json) + 64;
    char *text = pl_xmalloc(n);
    snprintf(text, n, "{\"type\":\"event\",\"event\":\"%s\",\"data\":%s}", event, data_json);
    char channel[80];
    events_user_channel(user_id, channel, sizeof channel);
    events_publish_text(w, channel, text);
}
