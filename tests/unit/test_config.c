#include <unistd.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "pl/config.h"
#include "test.h"

#ifndef PULSE_SOURCE_DIR
#define PULSE_SOURCE_DIR "."
#endif

struct kv {
    char keys[16][64];
    char values[16][256];
    int n;
};

static void collect(const char *k, const char *v, void *ctx)
{
    struct kv *kv = ctx;
    if (kv->n == 16) return;
    snprintf(kv->keys[kv->n], 64, "%s", k);
    snprintf(kv->values[kv->n], 256, "%s", v);
    kv->n++;
}

static int parse(const char *text, struct kv *kv, char *err, size_t errlen)
{
    memset(kv, 0, sizeof *kv);
    return pl_config_parse_env(text, strlen(text), collect, kv, err, errlen);
}

TEST(dotenv_forms)
{
    struct kv kv;
    char err[128];
    const char *text = "# comment\n"
                       "\n"
                       "A=1\n"
                       "export B = two words  \n"
                       "C=\"quoted # not a comment\"\r\n"
                       "D='single'  # trailing comment\n"
                       "E=value # comment\n"
                       "F=\n"
                       "G=\"esc\\\"aped\\nline\"\n"
                       "H=a#b\n";
    static const char *const want[][2] = {
        {"A", "1"},     {"B", "two words"}, {"C", "quoted # not a comment"}, {"D", "single"},
        {"E", "value"}, {"F", ""},          {"G", "esc\"aped\nline"},        {"H", "a#b"},
    };
    CHECK_EQ_INT(parse(text, &kv, err, sizeof err), 0);
    CHECK_EQ_INT(kv.n, 8);
    for (int i = 0; i < 8 && i < kv.n; i++) {
        CHECK_STR(kv.keys[i], want[i][0]);
        CHECK_STR(kv.values[i], want[i][1]);
    }
}

TEST(dotenv_errors_name_the_line)
{
    static const struct {
        const char *text, *where;
    } cases[] = {
        {"A=1\nnot a pair\n", "line 2"},
        {"A=\"open\n", "line 1"},
        {"1A=x\n", "line 1"},
        {"A=\"x\" y\n", "line 1"},
        {"A=1\nB=2\n\n# c\nC='x\n", "line 5"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct kv kv;
        char err[128] = "";
        CHECK_EQ_INT(parse(cases[i].text, &kv, err, sizeof err), PL_E_CONFIG);
        if (!strstr(err, cases[i].where))
            fprintf(stderr, "  %s: \"%s\" does not say %s\n", cases[i].text, err, cases[i].where);
        CHECK(strstr(err, cases[i].where) != NULL);
    }
}

struct small {
    char *s;
    long long i;
    bool b;
    struct pl_rate r;
};

static const struct pl_setting small_table[] = {
    {"T_S", PL_SET_STRING, "def", offsetof(struct small, s), 0, 0, false, false, NULL},
    {"T_I", PL_SET_INT, "5", offsetof(struct small, i), 1, 10, false, false, NULL},
    {"T_B", PL_SET_BOOL, "off", offsetof(struct small, b), 0, 0, false, false, NULL},
    {"T_R", PL_SET_RATE, "5/60", offsetof(struct small, r), 0, 0, false, false, NULL},
};

TEST(load_defaults_env_and_file)
{
    struct small s = {0};
    char err[256] = "";
    char path[] = "/tmp/pulse-test-env-XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    const char *text = "T_S=from-file\nT_I=7\n";
    CHECK(write(fd, text, strlen(text)) == (ssize_t)strlen(text));
    close(fd);
    setenv("T_I", "9", 1); /* the environment wins over the file */
    unsetenv("T_B");
    unsetenv("T_R");
    CHECK_EQ_INT(pl_config_load(small_table, 4, &s, path, err, sizeof err), 0);
    CHECK_STR(s.s, "from-file");
    CHECK_EQ_INT(s.i, 9);
    CHECK(!s.b);
    CHECK_EQ_INT(s.r.count, 5);
    CHECK_EQ_INT(s.r.seconds, 60);
    pl_config_dispose(small_table, 4, &s);
    unsetenv("T_I");
    unlink(path);
}

TEST(load_rejects_bad_values)
{
    static const char *const bad[][2] = {
        {"T_I", "11"},    {"T_I", "0"},   {"T_I", "3x"},     {"T_I", ""},
        {"T_B", "maybe"}, {"T_B", "2"},   {"T_R", "5"},      {"T_R", "0/60"},
        {"T_R", "5/0"},   {"T_R", "a/b"}, {"T_R", "5/60/1"}, {"T_R", "-1/60"},
    };
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        struct small s = {0};
        char err[256] = "";
        setenv(bad[k][0], bad[k][1], 1);
        int rc = pl_config_load(small_table, 4, &s, NULL, err, sizeof err);
        if (rc != PL_E_CONFIG) fprintf(stderr, "  accepted %s=%s\n", bad[k][0], bad[k][1]);
        CHECK_EQ_INT(rc, PL_E_CONFIG);
        CHECK(strstr(err, bad[k][0]) != NULL);
        pl_config_dispose(small_table, 4, &s);
        unsetenv(bad[k][0]);
    }
}

static void clear_pulse_env(void)
{
    for (size_t i = 0; i < pulse_settings_count; i++)
        unsetenv(pulse_settings[i].name);
}

TEST(pulse_config_validation)
{
    struct pulse_config cfg;
    char err[512];
    clear_pulse_env();
    CHECK_EQ_INT(pulse_config_load(&cfg, NULL, true, err, sizeof err), PL_E_CONFIG);
    CHECK(strstr(err, "DATABASE_URL") != NULL);
    pulse_config_dispose(&cfg);
    setenv("DATABASE_URL", "postgresql://x@127.0.0.1/db", 1);
    setenv("REDIS_URL", "redis://127.0.0.1:6379/0", 1);
    CHECK_EQ_INT(pulse_config_load(&cfg, NULL, true, err, sizeof err), 0);
    CHECK_STR(cfg.listen, "127.0.0.1:8080");
    CHECK_EQ_INT(cfg.max_head_bytes, 16384);
    CHECK_EQ_INT(cfg.rate_login.count, 5);
    CHECK(cfg.rate_limits);
    pulse_config_dispose(&cfg);
    const char *bad[][2] = {
        {"PULSE_LISTEN", "nowhere"},       {"PULSE_LISTEN", "1.2.3.4:99999"},
        {"PULSE_LOG_LEVEL", "loud"},       {"PULSE_PUBLIC_ORIGIN", "example.com"},
        {"REDIS_URL", "http://x"},         {"PULSE_WORKERS", "-1"},
        {"PULSE_SESSION_ABSOLUTE_S", "60"}};
    /* The schema owner's URL defaults to DATABASE_URL. */
    CHECK_EQ_INT(pulse_config_load(&cfg, NULL, true, err, sizeof err), 0);
    CHECK_STR(cfg.migrate_database_url, "postgresql://x@127.0.0.1/db");
    pulse_config_dispose(&cfg);
    setenv("PULSE_MIGRATE_DATABASE_URL", "postgresql://owner@127.0.0.1/db", 1);
    CHECK_EQ_INT(pulse_config_load(&cfg, NULL, true, err, sizeof err), 0);
    CHECK_STR(cfg.migrate_database_url, "postgresql://owner@127.0.0.1/db");
    CHECK_STR(cfg.database_url, "postgresql://x@127.0.0.1/db");
    pulse_config_dispose(&cfg);
    unsetenv("PULSE_MIGRATE_DATABASE_URL");
    /* A URL libpq cannot parse stops start-up, without quoting it (it holds the password). */
    const char *bad_urls[][2] = {{"DATABASE_URL", "postgresql://u:s3cr%zzet@h/db"},
                                 {"PULSE_MIGRATE_DATABASE_URL", "postgresql://u:s3cr%zzet@h/db"},
                                 {"PULSE_MIGRATE_DATABASE_URL", "host=h password"}};
    for (size_t k = 0; k < sizeof bad_urls / sizeof bad_urls[0]; k++) {
        const char *keep =
            strcmp(bad_urls[k][0], "DATABASE_URL") == 0 ? "postgresql://x@127.0.0.1/db" : NULL;
        setenv(bad_urls[k][0], bad_urls[k][1], 1);
        CHECK_EQ_INT(pulse_config_load(&cfg, NULL, true, err, sizeof err), PL_E_CONFIG);
        CHECK(strstr(err, bad_urls[k][0]) != NULL);
        CHECK(strstr(err, "s3cr") == NULL && strstr(err, "password") == NULL);
        pulse_config_dispose(&cfg);
        if (keep)
            setenv(bad_urls[k][0], keep, 1);
        else
            unsetenv(bad_urls[k][0]);
    }
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        setenv(bad[k][0], bad[k][1], 1);
        CHECK_EQ_INT(pulse_config_load(&cfg, NULL, true, err, sizeof err), PL_E_CONFIG);
        CHECK(strstr(err, bad[k][0]) != NULL);
        CHECK(strchr(err, '\n') == NULL);
        pulse_config_dispose(&cfg);
        if (strcmp(bad[k][0], "REDIS_URL") == 0)
            setenv("REDIS_URL", "redis://127.0.0.1:6379/0", 1);
        else
            unsetenv(bad[k][0]);
    }
    clear_pulse_env();
}

/* .env.example documents every setting with its default, and nothing that does not exist. */
TEST(env_example_matches_settings)
{
    FILE *f = fopen(PULSE_SOURCE_DIR "/.env.example", "r");
    CHECK(f != NULL);
    if (!f) return;
    char text[16384];
    size_t n = fread(text, 1, sizeof text - 1, f);
    fclose(f);
    text[n] = 0;
    struct kv kv;
    (void)kv;
    for (size_t i = 0; i < pulse_settings_count; i++) {
        const struct pl_setting *st = &pulse_settings[i];
        char line[256];
        snprintf(line, sizeof line, "\n%s=%s\n", st->name, st->def ? st->def : "");
        if (!strstr(text, line)) {
            fprintf(stderr, ".env.example lacks the line %s=%s\n", st->name,
                    st->def ? st->def : "");
            CHECK(0);
        }
    }
    /* every assignment in the file is a known setting */
    char *save = NULL;
    for (char *l = strtok_r(text, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
        if (l[0] == '#' || !strchr(l, '=')) continue;
        *strchr(l, '=') = 0;
        bool known = false;
        for (size_t i = 0; i < pulse_settings_count; i++)
            if (strcmp(pulse_settings[i].name, l) == 0) known = true;
        if (!known) fprintf(stderr, ".env.example has unknown setting %s\n", l);
        CHECK(known);
    }
}

int main(void)
{
    RUN(dotenv_forms);
    RUN(dotenv_errors_name_the_line);
    RUN(load_defaults_env_and_file);
    RUN(load_rejects_bad_values);
    RUN(pulse_config_validation);
    RUN(env_example_matches_settings);
    return TEST_REPORT();
}
