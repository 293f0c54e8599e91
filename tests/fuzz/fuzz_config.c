/* libFuzzer harness for lib/core/config: .env text and setting values are operator input,
 * but a typo must give a one-line error, never a crash or a half-applied setting.
 *
 * 1. pl_config_parse_env on the raw bytes: every pair it reports has a valid variable name
 *    and a value no longer than the text; a failure names a line in a short message.
 * 2. pl_config_load with the same bytes as the .env file (a memfd, opened through
 *    /proc/self/fd: no disk I/O per input) and a table of every setting type: it fails
 *    exactly when parse_env does, else every value it stored is within its bounds.
 * 3. The i-th pair's value goes through the environment to the i-th setting (whatever its
 *    key), so every value the parser can produce reaches every type's conversion; then
 *    pl_config_log prints the result (stdout goes to /dev/null). */
#include <fcntl.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "pl/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define REQUIRE(cond)                                                                              \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "fuzz_config: %s:%d: %s\n", __FILE__, __LINE__, #cond);               \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

struct settings {
    char *url;
    char *name;
    long long port;
    long long signed_int;
    bool flag;
    struct pl_rate rate;
};

static const struct pl_setting TABLE[] = {
    {.name = "FZ_URL", .type = PL_SET_STRING, .def = "postgres://u:p@h/db",
     .offset = offsetof(struct settings, url)},
    {.name = "FZ_NAME", .type = PL_SET_STRING, .def = "x", .required = true, .secret = true,
     .offset = offsetof(struct settings, name)},
    {.name = "FZ_PORT", .type = PL_SET_INT, .def = "8080", .min = 0, .max = 65535,
     .offset = offsetof(struct settings, port)},
    {.name = "FZ_INT", .type = PL_SET_INT, .def = "0", .min = -1000000, .max = 1000000,
     .offset = offsetof(struct settings, signed_int)},
    {.name = "FZ_FLAG", .type = PL_SET_BOOL, .def = "off", .offset = offsetof(struct settings, flag)},
    {.name = "FZ_RATE", .type = PL_SET_RATE, .def = "60/60",
     .offset = offsetof(struct settings, rate)},
};
#define NSET (sizeof TABLE / sizeof TABLE[0])

static int memfd = -1;
static char memfd_path[64];

struct pairs {
    size_t n;
    size_t text_len;
    char *values[NSET]; /* the first NSET values, copied */
};

static void on_pair(const char *key, const char *value, void *ctx)
{
    struct pairs *p = ctx;
    size_t klen = strlen(key);
    REQUIRE(klen >= 1 && klen < 128);
    REQUIRE(key[0] == '_' || (key[0] >= 'A' && key[0] <= 'Z') || (key[0] >= 'a' && key[0] <= 'z'));
    for (size_t i = 1; i < klen; i++)
        REQUIRE(key[i] == '_' || (key[i] >= 'A' && key[i] <= 'Z') ||
                (key[i] >= 'a' && key[i] <= 'z') || (key[i] >= '0' && key[i] <= '9'));
    REQUIRE(strlen(value) <= p->text_len);
    if (p->n < NSET) {
        p->values[p->n] = strdup(value);
        REQUIRE(p->values[p->n]);
    }
    p->n++;
}

static void check_loaded(int rc, const struct settings *s, const char *err)
{
    if (rc != 0) {
        REQUIRE(err[0] != '\0');
        return;
    }
    REQUIRE(s->url && s->name && s->name[0]);
    REQUIRE(s->port >= 0 && s->port <= 65535);
    REQUIRE(s->signed_int >= -1000000 && s->signed_int <= 1000000);
    REQUIRE(s->rate.count >= 1 && s->rate.seconds >= 1);
}

static void init(void)
{
    memfd = memfd_create("fuzz-dotenv", MFD_CLOEXEC);
    REQUIRE(memfd >= 0);
    snprintf(memfd_path, sizeof memfd_path, "/proc/self/fd/%d", memfd);
    int devnull = open("/dev/null", O_WRONLY | O_CLOEXEC);
    REQUIRE(devnull >= 0 && dup2(devnull, STDOUT_FILENO) == STDOUT_FILENO);
    close(devnull);
    for (size_t i = 0; i < NSET; i++) unsetenv(TABLE[i].name);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (memfd < 0) init();
    const char *text = (const char *)data;
    /* A heap copy of exactly `size` bytes: the parser is given a length, not a string. */
    char *copy = malloc(size ? size : 1);
    REQUIRE(copy);
    memcpy(copy, data, size);

    /* 1. the parser alone, with a small error buffer */
    struct pairs pairs = {.text_len = size};
    char *err = malloc(48);
    REQUIRE(err);
    err[0] = 0;
    int prc = pl_config_parse_env(copy, size, on_pair, &pairs, err, 48);
    if (prc != 0) {
        REQUIRE(prc == PL_E_CONFIG);
        REQUIRE(strncmp(err, ".env line ", 10) == 0 && strlen(err) < 48);
    }

    /* 2. the same text as a .env file */
    char lerr[256] = "";
    struct settings s = {0};
    REQUIRE(ftruncate(memfd, 0) == 0);
    REQUIRE(pwrite(memfd, text, size, 0) == (ssize_t)size);
    int lrc = pl_config_load(TABLE, NSET, &s, memfd_path, lerr, sizeof lerr);
    if (prc != 0) REQUIRE(lrc == PL_E_CONFIG && strncmp(lerr, ".env line ", 10) == 0);
    check_loaded(lrc, &s, lerr);
    pl_config_dispose(TABLE, NSET, &s);
    REQUIRE(s.url == NULL && s.name == NULL);

    /* 3. the values through the environment, which wins over the file */
    if (prc == 0 && pairs.n > 0) {
        for (size_t i = 0; i < NSET && i < pairs.n; i++)
            REQUIRE(setenv(TABLE[i].name, pairs.values[i], 1) == 0);
        memset(&s, 0, sizeof s);
        lrc = pl_config_load(TABLE, NSET, &s, NULL, lerr, sizeof lerr);
        check_loaded(lrc, &s, lerr);
        if (lrc == 0) {
            REQUIRE(strcmp(s.url, pairs.values[0]) == 0);
            pl_config_log(TABLE, NSET, &s);
        }
        pl_config_dispose(TABLE, NSET, &s);
        for (size_t i = 0; i < NSET; i++) unsetenv(TABLE[i].name);
    }

    for (size_t i = 0; i < NSET && i < pairs.n; i++) free(pairs.values[i]);
    free(err);
    free(copy);
    return 0;
}
