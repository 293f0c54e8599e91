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

enum live_msg live_message_parse(const char *data, size_t len, bool binary, unsigned *topics,
                                 char *detail, size_t cap)
{
    *topics = 0;
    if (binary) return fail(detail, cap, "send JSON text messages");
    json_t *msg = NULL;
    if (pl_json_parse_object(data, len, &msg, detail, cap) != 0) return LIVE_MSG_ERROR;
    const char *type = json_string_value(json_object_get(msg, "type"));
    enum live_msg kind;
    if (!type) {
        kind = fail(detail, cap, "a message needs a \"type\": subscribe, unsubscribe or ping");
    } else if (strcmp(type, "ping") == 0) {
        kind = LIVE_MSG_PING;
    } else if (strcmp(type, "subscribe") == 0 || strcmp(type, "unsubscribe") == 0) {
        kind = read_topics(msg, topics, detail, cap);
        if (kind != LIVE_MSG_ERROR && type[0] == 'u') kind = LIVE_MSG_UNSUBSCRIBE;
    } else {
        kind = fail(detail, cap, "unknown message type: use subscribe, unsubscribe or ping");
    }
    json_decref(msg);
    if (kind == LIVE_MSG_ERROR) *topics = 0;
    return kind;
}
