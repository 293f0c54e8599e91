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
    json_t *msg = json_pack("{s:s, s:s, s:n, s:o}", "type", "event", "event", event, "subject_id",
                            "data", data);
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
    snprintf(text, n, "{\"type\":\"event\",\"event\":\"%s\",\"subject_id\":null,\"data\":%s}",
             event, data_json);
    char channel[80];
    events_user_channel(user_id, channel, sizeof channel);
    events_publish_text(w, channel, text);
}

void events_publish_members(struct worker *w, const char *subject_id, const char *members,
                            const char *event, const char *data_json)
{
    if (!members || members[0] != '{') return;
    size_t n = strlen(event) + strlen(subject_id) + strlen(data_json) + 80;
    char *text = pl_xmalloc(n);
    snprintf(text, n, "{\"type\":\"event\",\"event\":\"%s\",\"subject_id\":\"%s\",\"data\":%s}",
             event, subject_id, data_json);
    const char *p = members + 1;
    while (*p && *p != '}') {
        size_t len = strcspn(p, ",}");
        char user_id[40];
        if (len > 0 && len < sizeof user_id) {
            memcpy(user_id, p, len);
            user_id[len] = 0;
            char channel[80];
            events_user_channel(user_id, channel, sizeof channel);
            events_publish_text(w, channel, pl_xstrdup(text));
        }
        p += len;
        if (*p == ',') p++;
    }
    free(text);
}
