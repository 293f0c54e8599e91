/* The JSON-lines logger: every line parses as JSON whatever bytes the fields hold. */
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "pl/config.h"
#include "pl/log.h"
#include "test.h"

/* Every hostile byte class at once: quote, backslash, newline, tab, a control byte, DEL,
 * invalid UTF-8 (a lone continuation byte, 0xff, an overlong '/', a surrogate, a sequence
 * cut short) and valid UTF-8 that must pass through. */
static const char hostile[] = "q\"b\\n\nt\tc\x01"
                              "d\x7f"
                              "x\x80"
                              "y\xff"
                              "o\xc0\xaf"
                              "s\xed\xa0\x80"
                              "é€😀"
                              "cut\xe2\x82";
static const char hostile_decoded[] = "q\"b\\n\nt\tc\x01"
                                      "d\x7f"
                                      "x\xef\xbf\xbd"
                                      "y\xef\xbf\xbd"
                                      "o\xef\xbf\xbd\xef\xbf\xbd"
                                      "s\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"
                                      "é€😀"
                                      "cut\xef\xbf\xbd\xef\xbf\xbd";

static json_t *parse_line(const char *line, size_t flags)
{
    json_error_t e;
    json_t *j = json_loads(line, flags, &e);
    if (!j) fprintf(stderr, "not JSON (%s at %d): %s\n", e.text, e.position, line);
    return j;
}

static json_t *format(enum pl_log_level level, const char *msg, const struct pl_log_field *f)
{
    char line[PL_LOG_LINE_MAX];
    size_t n = pl_log_format(line, sizeof line, level, msg, f);
    CHECK(n < sizeof line);
    CHECK_EQ_INT(strlen(line), n);
    CHECK(memchr(line, '\n', n) == NULL);
    return parse_line(line, JSON_ALLOW_NUL);
}

#define FORMAT(level, msg, ...)                                                                    \
    format(level, msg, (const struct pl_log_field[]){__VA_ARGS__, PL_LOG_END})

TEST(typed_fields)
{
    json_t *j = FORMAT(PL_LOG_WARN, "hello", PL_STR("s", "text"), PL_INT("neg", -42),
                       PL_INT("min", LLONG_MIN), PL_UINT("big", (size_t)1 << 40), PL_DBL("d", 0.25),
                       PL_FIXED("ms", 1.23456, 3), PL_BOOL("yes", true), PL_BOOL("no", false),
                       PL_STR("none", NULL), PL_DBL("nan", NAN), PL_FIXED("inf", INFINITY, 3));
    CHECK(j != NULL);
    if (!j) return;
    CHECK_STR(json_string_value(json_object_get(j, "level")), "warn");
    CHECK_STR(json_string_value(json_object_get(j, "msg")), "hello");
    const char *ts = json_string_value(json_object_get(j, "ts"));
    CHECK(ts && strlen(ts) == 24 && ts[10] == 'T' && ts[19] == '.' && ts[23] == 'Z');
    CHECK_STR(json_string_value(json_object_get(j, "s")), "text");
    CHECK_EQ_INT(json_integer_value(json_object_get(j, "neg")), -42);
    CHECK_EQ_INT(json_integer_value(json_object_get(j, "min")), LLONG_MIN);
    CHECK_EQ_INT(json_integer_value(json_object_get(j, "big")), 1LL << 40);
    CHECK(json_real_value(json_object_get(j, "d")) == 0.25);
    CHECK(fabs(json_real_value(json_object_get(j, "ms")) - 1.235) < 1e-9);
    CHECK(json_is_true(json_object_get(j, "yes")));
    CHECK(json_is_false(json_object_get(j, "no")));
    CHECK(json_is_null(json_object_get(j, "none")));
    CHECK(json_is_null(json_object_get(j, "nan")));
    CHECK(json_is_null(json_object_get(j, "inf")));
    CHECK(json_object_get(j, "truncated") == NULL);
    json_decref(j);

    char line[PL_LOG_LINE_MAX];
    pl_log_format(line, sizeof line, PL_LOG_INFO, "m", (const struct pl_log_field[]){PL_LOG_END});
    CHECK(strstr(line, ",\"level\":\"info\",\"msg\":\"m\"}") != NULL);
    /* jansson refuses integers past LLONG_MAX: check the text. */
    pl_log_format(line, sizeof line, PL_LOG_INFO, "m",
                  (const struct pl_log_field[]){PL_UINT("u", ULLONG_MAX), PL_LOG_END});
    CHECK(strstr(line, "\"u\":18446744073709551615}") != NULL);
}

TEST(hostile_strings_are_encoded)
{
    json_t *j = FORMAT(PL_LOG_ERROR, hostile, PL_STR(hostile, hostile), PL_STRN("nul", "a\0b\"", 4),
                       PL_STR("after", "ok"));
    CHECK(j != NULL);
    if (!j) return;
    CHECK_STR(json_string_value(json_object_get(j, "msg")), hostile_decoded);
    CHECK_STR(json_string_value(json_object_get(j, hostile_decoded)), hostile_decoded);
    json_t *nul = json_object_get(j, "nul");
    CHECK(json_string_length(nul) == 4 && memcmp(json_string_value(nul), "a\0b\"", 4) == 0);
    CHECK_STR(json_string_value(json_object_get(j, "after")), "ok");
    json_decref(j);

    /* Every control byte and every byte above 0x7f alone. */
    for (int c = 1; c < 256; c++) {
        char s[4] = {'<', (char)c, '>', 0};
        json_t *k = FORMAT(PL_LOG_INFO, "byte", PL_STR("v", s));
        CHECK(k != NULL);
        const char *v = json_string_value(json_object_get(k, "v"));
        if (c < 0x80)
            CHECK(v && v[1] == c && strlen(v) == 3);
        else
            CHECK_STR(v, "<\xef\xbf\xbd>");
        json_decref(k);
    }
}

TEST(random_bytes_always_parse)
{
    unsigned seed = 12345;
    for (int round = 0; round < 2000; round++) {
        char s[64];
        size_t n = (size_t)(rand_r(&seed) % (int)sizeof s);
        for (size_t i = 0; i < n; i++)
            s[i] = (char)(rand_r(&seed) % 256);
        json_t *j = FORMAT(PL_LOG_INFO, "r", PL_STRN("v", s, n));
        CHECK(j != NULL && json_is_string(json_object_get(j, "v")));
        json_decref(j);
    }
}

TEST(long_values_are_cut_on_a_character_boundary)
{
    /* "€" is 3 bytes: a cut in the middle of one would be invalid UTF-8. */
    static char big[3 * 2000 + 1];
    for (int i = 0; i < 2000; i++)
        memcpy(big + 3 * i, "€", 3);
    json_t *j = FORMAT(PL_LOG_INFO, "big", PL_STR("v", big), PL_INT("n", 7));
    CHECK(j != NULL);
    if (!j) return;
    const char *v = json_string_value(json_object_get(j, "v"));
    CHECK(v && strlen(v) <= PL_LOG_STR_MAX && strlen(v) > PL_LOG_STR_MAX / 2);
    CHECK(v && strcmp(v + strlen(v) - 3, "…") == 0);
    CHECK_EQ_INT(json_integer_value(json_object_get(j, "n")), 7);
    CHECK(json_object_get(j, "truncated") == NULL);
    json_decref(j);

    /* Escapes are never cut in half either. */
    static char quotes[3000];
    memset(quotes, '"', sizeof quotes - 1);
    j = FORMAT(PL_LOG_INFO, "quotes", PL_STR("v", quotes));
    CHECK(j != NULL);
    v = json_string_value(json_object_get(j, "v"));
    CHECK(v && strspn(v, "\"") > 100);
    json_decref(j);
}

TEST(a_full_line_keeps_what_fits_and_says_so)
{
    static char big[900];
    memset(big, 'a', sizeof big - 1);
    struct pl_log_field f[12];
    for (int i = 0; i < 11; i++)
        f[i] = PL_STR("k", big);
    f[11] = PL_LOG_END;
    char line[PL_LOG_LINE_MAX];
    size_t n = pl_log_format(line, sizeof line, PL_LOG_INFO, "many", f);
    CHECK(n < PL_LOG_LINE_MAX);
    /* jansson keeps the last of repeated keys by default: fine for this check. */
    json_t *j = parse_line(line, 0);
    CHECK(j != NULL);
    CHECK(json_is_true(json_object_get(j, "truncated")));
    json_decref(j);

    /* A small buffer still gets a whole object. */
    char small[80];
    n = pl_log_format(small, sizeof small, PL_LOG_INFO, "small", f);
    CHECK(n < sizeof small);
    j = parse_line(small, 0);
    CHECK(j != NULL && json_is_true(json_object_get(j, "truncated")));
    json_decref(j);
}

/* Runs fn with stdout sent to a file; returns what it wrote (malloc'd). */
static char *capture(void (*fn)(void))
{
    fflush(stdout);
    char path[] = "/tmp/pulse-test-log-XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    unlink(path);
    int saved = dup(STDOUT_FILENO);
    dup2(fd, STDOUT_FILENO);
    fn();
    pl_log_flush();
    dup2(saved, STDOUT_FILENO);
    close(saved);
    off_t len = lseek(fd, 0, SEEK_END);
    char *out = calloc(1, (size_t)len + 1);
    if (pread(fd, out, (size_t)len, 0) != len) out[0] = 0;
    close(fd);
    return out;
}

/* Checks that every line of `text` is a JSON object; returns the number of lines. */
static int check_lines(char *text)
{
    int n = 0;
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
        json_t *j = parse_line(line, JSON_ALLOW_NUL);
        CHECK(json_is_object(j));
        json_decref(j);
        n++;
    }
    return n;
}

static void log_at_every_level(void)
{
    pl_log_set_level(PL_LOG_WARN);
    pl_debug(hostile, PL_STR("path", hostile));
    pl_info(hostile, PL_STR("path", hostile));
    pl_warn(hostile, PL_STR("path", hostile));
    pl_error(hostile, PL_STR("path", hostile));
    pl_log_emit_always(PL_LOG_INFO, "always",
                       (const struct pl_log_field[]){PL_STR("path", hostile), PL_LOG_END});
    pl_log_set_level(PL_LOG_INFO);
    for (int i = 0; i < 200; i++) /* more than one buffer's worth */
        pl_info("many", PL_INT("i", i), PL_STR("path", hostile));
}

TEST(lines_reach_stdout_whole)
{
    char *out = capture(log_at_every_level);
    CHECK(strstr(out, "\"level\":\"debug\"") == NULL);
    CHECK(strstr(out, "\"level\":\"info\",\"msg\":\"q") == NULL); /* below the level */
    CHECK(strstr(out, "\"msg\":\"always\"") != NULL);
    CHECK_EQ_INT(check_lines(out), 3 + 200);
    free(out);
}

static void log_config(void)
{
    struct pulse_config cfg;
    char err[256];
    setenv("PULSE_WEB_ROOT", hostile, 1);
    setenv("PULSE_INSTANCE", hostile, 1);
    setenv("DATABASE_URL", "postgres://u:se\"cret@h/db", 1);
    CHECK_EQ_INT(pulse_config_load(&cfg, "/nonexistent/.env", false, err, sizeof err), 0);
    pl_config_log(pulse_settings, pulse_settings_count, &cfg);
    pulse_config_dispose(&cfg);
}

TEST(config_line_is_json_and_whole)
{
    char *out = capture(log_config);
    CHECK(strstr(out, "se\\\"cret") == NULL && strstr(out, "se\"cret") == NULL);
    json_t *j = parse_line(out, 0);
    CHECK(j != NULL);
    CHECK_STR(json_string_value(json_object_get(j, "PULSE_INSTANCE")), hostile_decoded);
    CHECK_STR(json_string_value(json_object_get(j, "PULSE_WEB_ROOT")), hostile_decoded);
    CHECK(json_object_get(j, "truncated") == NULL);
    /* Every setting is on the line. */
    for (size_t i = 0; i < pulse_settings_count; i++)
        CHECK(json_object_get(j, pulse_settings[i].name) != NULL);
    json_decref(j);
    free(out);
}

int main(void)
{
    RUN(typed_fields);
    RUN(hostile_strings_are_encoded);
    RUN(random_bytes_always_parse);
    RUN(long_values_are_cut_on_a_character_boundary);
    RUN(a_full_line_keeps_what_fits_and_says_so);
    RUN(lines_reach_stdout_whole);
    RUN(config_line_is_json_and_whole);
    return TEST_REPORT();
}
