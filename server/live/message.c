/* live: the client's messages (see live.h). */
#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "live.h"
#include "pl/json.h"

static enum live_msg fail(char *detail, size_t cap, const char *why)
{
    snprintf(detail, cap, "%s", why);
    return LIVE_MSG_ERROR;
}

bool live_seq_parse(const char *s, size_t len, uint64_t *out)
{
    *out = 0;
    if (!s || len == 0 || len > 20) return false;
    uint64_t v = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9') return false;
        unsigned d = (unsigned)(s[i] - '0');
        if (v > (UINT64_MAX - d) / 10) return false;
        v = v * 10 + d;
    }
    *out = v;
    return true;
}

static enum live_msg read_topics(json_t *msg, unsigned *topics, char *detail, size_t cap)
{
    json_t *list = json_object_get(msg, "topics");
    if (!json_is_array(list) || json_array_size(list) == 0)
        return fail(detail, cap, "topics must be a non-empty array of \"metrics\" and \"events\"");
    size_t i;
    json_t *t;
    json_array_foreach(list, i, t)
    {
        const char *name = json_string_value(t);
        if (name && strcmp(name, "metrics") == 0)
            *topics |= TOPIC_METRICS;
        else if (name && strcmp(name, "events") == 0)
            *topics |= TOPIC_EVENTS;
        else
            return fail(detail, cap, "unknown topic: topics are \"metrics\" and \"events\"");
    }
    return LIVE_MSG_SUBSCRIBE;
}

/* A cursor that is a string but not one of ours is unknown (resync_required), not an error:
 * clients treat seqs as opaque. */
static enum live_msg read_after(json_t *msg, uint64_t *after, char *detail, size_t cap)
{
    json_t *a = json_object_get(msg, "after");
    if (!json_is_string(a))
        return fail(detail, cap,
                    "resume needs \"after\": the seq (a string) of the last event seen");
    (void)live_seq_parse(json_string_value(a), json_string_length(a), after);
    return LIVE_MSG_RESUME;
}

enum live_msg live_message_parse(const char *data, size_t len, bool binary, unsigned *topics,
                                 uint64_t *after, char *detail, size_t cap)
{
    *topics = 0;
    *after = 0;
    if (binary) return fail(detail, cap, "send JSON text messages");
    json_t *msg = NULL;
    if (pl_json_parse_object(data, len, &msg, detail, cap) != 0) return LIVE_MSG_ERROR;
    const char *type = json_string_value(json_object_get(msg, "type"));
    enum live_msg kind;
    if (!type) {
        kind =
            fail(detail, cap, "a message needs a \"type\": subscribe, unsubscribe, resume or ping");
    } else if (strcmp(type, "ping") == 0) {
        kind = LIVE_MSG_PING;
    } else if (strcmp(type, "subscribe") == 0 || strcmp(type, "unsubscribe") == 0) {
        kind = read_topics(msg, topics, detail, cap);
        if (kind != LIVE_MSG_ERROR && type[0] == 'u') kind = LIVE_MSG_UNSUBSCRIBE;
    } else if (strcmp(type, "resume") == 0) {
        kind = read_after(msg, after, detail, cap);
    } else {
        kind =
            fail(detail, cap, "unknown message type: use subscribe, unsubscribe, resume or ping");
    }
    json_decref(msg);
    if (kind == LIVE_MSG_ERROR) {
        *topics = 0;
        *after = 0;
    }
    return kind;
}
