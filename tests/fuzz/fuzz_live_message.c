/* libFuzzer harness for server/live/message.c: any bytes as a client's WebSocket message
 * through live_message_parse. Checks its promises (live.h): the result is one of the enum's
 * values; an error has no topics and a non-empty detail that is valid UTF-8 and fits the
 * given capacity (live.c sends it to the client inside a JSON string); subscribe and
 * unsubscribe name at least one known topic and nothing else; a ping names none; only a
 * resume has a cursor. The same
 * bytes parse the same with a small detail buffer. A first byte 0x00 (no JSON text starts
 * so) makes the rest a binary message. fuzz_ws reaches the same function through lws. */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "live/live.h"
#include "pl/json.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define REQUIRE(cond)                                                                              \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "fuzz_live_message: %s:%d: %s\n", __FILE__, __LINE__, #cond);          \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

static enum live_msg parse_checked(const char *text, size_t len, bool binary, unsigned *topics,
                                   uint64_t *after, size_t cap)
{
    char detail[160];
    REQUIRE(cap <= sizeof detail);
    memset(detail, 0x55, sizeof detail);
    *topics = 0xdead;
    *after = 0xdead;
    enum live_msg kind = live_message_parse(text, len, binary, topics, after, detail, cap);
    REQUIRE(kind == LIVE_MSG_ERROR || kind == LIVE_MSG_PING || kind == LIVE_MSG_SUBSCRIBE ||
            kind == LIVE_MSG_UNSUBSCRIBE || kind == LIVE_MSG_RESUME);
    if (kind != LIVE_MSG_RESUME) REQUIRE(*after == 0);
    /* nothing written past the capacity */
    for (size_t i = cap; i < sizeof detail; i++)
        REQUIRE(detail[i] == 0x55);
    if (kind == LIVE_MSG_ERROR) {
        size_t n = strnlen(detail, cap);
        REQUIRE(*topics == 0);
        REQUIRE(n > 0 && n < cap);
        REQUIRE(pl_utf8_valid(detail, n));
    } else if (kind == LIVE_MSG_PING) {
        REQUIRE(*topics == 0);
    } else if (kind == LIVE_MSG_RESUME) {
        /* the cursor is a decimal string of the message, or 0 */
        REQUIRE(*topics == 0);
    } else {
        REQUIRE(*topics != 0 && (*topics & ~(unsigned)ALL_TOPICS) == 0);
    }
    return kind;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    bool binary = size > 0 && data[0] == 0x00;
    size_t len = binary ? size - 1 : size;
    /* a copy of exactly `len` bytes, so ASan sees any read past the message */
    char *text = malloc(len ? len : 1);
    REQUIRE(text);
    if (len) memcpy(text, binary ? (const char *)data + 1 : (const char *)data, len);
    unsigned topics, topics_small;
    uint64_t after, after_small;
    enum live_msg kind = parse_checked(text, len, binary, &topics, &after, 160);
    enum live_msg kind_small = parse_checked(text, len, binary, &topics_small, &after_small, 16);
    REQUIRE(kind == kind_small && topics == topics_small && after == after_small);
    free(text);
    return 0;
}
