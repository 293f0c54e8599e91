/* libFuzzer harness for lib/core/config: .env text and setting values are operator input,
 * but a typo must give a one-line error, never a crash or a half-applied setting.
 *
 * 1. pl_config_parse_env on the raw bytes: every pair it reports has a valid variable name
 *    and a value no longer than the text; a failure names a line in a short message.
 * 2. When that parses and names our settings (FZ_*), pl_config_load with the same bytes
 *    as the .env file (a memfd, opened through /proc/self/fd: no disk I/O per input) and a
 *    table of every setting type: every value it stored is within its bounds, or it failed
 *    with a reason.
 * 3. Otherwise the pairs are written back as a .env file, each value double-quoted with \\, \" and
 * \n escaped and put under the name of the i-th setting (whatever its key was): the file parses
 * back to the same values, and every value the parser can produce reaches every type's conversion;
 * then pl_config_log prints the result (stdout goes to /dev/null). */
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
            fprintf(stderr, "fuzz_config: %s:%d: %s\n", __FILE__, __LINE__, #cond);                \
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
    {.name = "FZ_URL",
     .type = PL_SET_STRING,
     .def = "postgres://u:p@h/db",
     .offset = offsetof(struct settings, url)},
    {.name = "FZ_NAME",
     .type = PL_SET_STRING,
     .def = "x",
     .required = true,
     .secret = true,
     .offset = offsetof(struct settings, name)},
    {.name = "FZ_PORT",
     .type = PL_SET_INT,
     .def = "8080",
     .min = 0,
     .max = 65535,
     .offset = offsetof(struct settings, port)},
    {.name = "FZ_INT",
     .type = PL_SET_INT,
     .def = "0",
     .min = -1000000,
     .max = 1000000,
     .offset = offsetof(struct settings, signed_int)},
    {.name = "FZ_FLAG",
     .type = PL_SET_BOOL,
     .def = "off",
     .offset = offsetof(struct settings, flag)},
    {.name = "FZ_RATE",
     .type = PL_SET_RATE,
     .def = "60/60",
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

/* `NAME="value"` lines with \\, \" and \n escaped: how a tool would write a .env. */
static char *quote_pairs(const struct pairs *p)
{
    size_t cap = 64;
    for (size_t i = 0; i < NSET && i < p->n; i++)
        cap += 32 + 2 * strlen(p->values[i]);
    char *out = malloc(cap), *o = out;
    REQUIRE(out);
    for (size_t i = 0; i < NSET && i < p->n; i++) {
        o += sprintf(o, "%s%s=\"", i % 2 ? "export " : "", TABLE[i].name);
        for (const char *v = p->values[i]; *v; v++) {
            if (*v == '\\' || *v == '"') *o++ = '\\';
            if (*v == '\n') {
                *o++ = '\\';
                *o++ = 'n';
                continue;
            }
            *o++ = *v;
        }
        o += sprintf(o, "\"%s\n", i % 3 ? "" : "  # comment");
    }
    *o = 0;
    return out;
}

static void init(void)
{
    memfd = memfd_create("fuzz-dotenv", MFD_CLOEXEC);
    REQUIRE(memfd >= 0);
    snprintf(memfd_path, sizeof memfd_path, "/proc/self/fd/%d", memfd);
    int devnull = open("/dev/null", O_WRONLY | O_CLOEXEC);
    REQUIRE(devnull >= 0 && dup2(devnull, STDOUT_FILENO) == STDOUT_FILENO);
    close(devnull);
    for (size_t i = 0; i < NSET; i++)
        unsetenv(TABLE[i].name); /* the file alone decides */
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

    /* One load per input at most: each allocates 1 MiB, which under ASan costs far more than
     * the parse. Text that names our settings goes in as it is (2), any other is mapped (3). */
    bool names_ours = memmem(text, size, "FZ_", 3) != NULL;

    /* 2. the same text as a .env file */
    char lerr[256] = "";
    struct settings s = {0};
    int lrc;
    if (prc == 0 && names_ours) {
        REQUIRE(ftruncate(memfd, 0) == 0);
        REQUIRE(pwrite(memfd, text, size, 0) == (ssize_t)size);
        lrc = pl_config_load(TABLE, NSET, &s, memfd_path, lerr, sizeof lerr);
        check_loaded(lrc, &s, lerr);
        pl_config_dispose(TABLE, NSET, &s);
        REQUIRE(s.url == NULL && s.name == NULL);
    }

    /* 3. the values written back as a .env file, quoted, each under the name of the i-th
     *    setting: they must parse back unchanged and reach every type's conversion. */
    if (prc == 0 && !names_ours && pairs.n > 0) {
        char *env = quote_pairs(&pairs);
        REQUIRE(ftruncate(memfd, 0) == 0);
        REQUIRE(pwrite(memfd, env, strlen(env), 0) == (ssize_t)strlen(env));
        struct pairs back = {.text_len = strlen(env)};
        REQUIRE(pl_config_parse_env(env, strlen(env), on_pair, &back, lerr, sizeof lerr) == 0);
        REQUIRE(back.n == (pairs.n < NSET ? pairs.n : NSET));
        for (size_t i = 0; i < back.n; i++) {
            REQUIRE(strcmp(back.values[i], pairs.values[i]) == 0);
            free(back.values[i]);
        }
        memset(&s, 0, sizeof s);
        lrc = pl_config_load(TABLE, NSET, &s, memfd_path, lerr, sizeof lerr);
        check_loaded(lrc, &s, lerr);
        if (lrc == 0) {
            REQUIRE(strcmp(s.url, pairs.values[0]) == 0);
            pl_config_log(TABLE, NSET, &s);
        }
        pl_config_dispose(TABLE, NSET, &s);
        free(env);
    }

    for (size_t i = 0; i < NSET && i < pairs.n; i++)
        free(pairs.values[i]);
    free(err);
    free(copy);
    return 0;
}
