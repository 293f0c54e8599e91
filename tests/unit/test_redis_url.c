/* lib/redis without a server: URL parsing and the SHA1 that names scripts. */
#include "pl/error.h"
#include "redis/redis_internal.h"
#include "test.h"

static int parse(const char *url, struct pl_redis_url *u)
{
    return pl_redis_url_parse(url, u);
}

/* URLs accepted, and what each is parsed into (user or password NULL: none). */
TEST(parsed)
{
    static const struct {
        const char *url, *host;
        int port, db;
        const char *user, *password;
    } cases[] = {
        {"redis://localhost", "localhost", 6379, 0, NULL, NULL},
        {"REDIS://10.0.0.7/", "10.0.0.7", 6379, 0, NULL, NULL}, /* case-insensitive scheme */
        {"redis://redis.internal:6380/3", "redis.internal", 6380, 3, NULL, NULL},
        {"redis://h:1", "h", 1, 0, NULL, NULL},
        {"redis://h:65535/15", "h", 65535, 15, NULL, NULL},
        {"redis://:s3cret@127.0.0.1:6379/0", "127.0.0.1", 6379, 0, NULL, "s3cret"},
        {"redis://app:pw@host", "host", 6379, 0, "app", "pw"},
        /* percent-encoding, a ':' inside the password, and an unencoded '@' in it */
        {"redis://a%40b:p%2Fw:x@p@host:7000", "host", 7000, 0, "a@b", "p/w:x@p"},
        /* an empty password means no AUTH, and then the user is meaningless */
        {"redis://app:@host", "host", 6379, 0, NULL, NULL},
        {"redis://[::1]:6390/2", "::1", 6390, 2, NULL, NULL},
        {"redis://:pw@[fe80::1]", "fe80::1", 6379, 0, NULL, "pw"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct pl_redis_url u;
        int rc = parse(cases[i].url, &u);
        if (rc != 0) {
            fprintf(stderr, "  refused: \"%s\"\n", cases[i].url);
            CHECK_EQ_INT(rc, 0);
            continue;
        }
        bool same_user = cases[i].user ? u.user && strcmp(u.user, cases[i].user) == 0 : !u.user;
        bool same_pw = cases[i].password ? u.password && strcmp(u.password, cases[i].password) == 0
                                         : !u.password;
        bool ok = u.host && strcmp(u.host, cases[i].host) == 0 && u.port == cases[i].port &&
                  u.db == cases[i].db && same_user && same_pw;
        if (!ok)
            fprintf(stderr, "  \"%s\": host %s port %d db %d user %s password %s\n", cases[i].url,
                    u.host ? u.host : "(null)", u.port, u.db, u.user ? u.user : "(null)",
                    u.password ? u.password : "(null)");
        CHECK(ok);
        pl_redis_url_dispose(&u);
    }
}

TEST(invalid)
{
    static const char *const bad[] = {
        "",
        "localhost:6379",
        "http://localhost",
        "rediss://localhost", /* TLS is not supported: refuse rather than talk plain text */
        "redis://",
        "redis://:6379",
        "redis://host:",
        "redis://host:0",
        "redis://host:65536",
        "redis://host:-1",
        "redis://host:12ab",
        "redis://host:123456",
        "redis://host/x",
        "redis://host/-1",
        "redis://host/1/2",
        "redis://host?timeout=1",
        "redis://host#frag",
        "redis://ho st",
        "redis://secret@host", /* user or password? */
        "redis://:pw%4@host",
        "redis://:pw%zz@host",
        "redis://:pw%00x@host",
        "redis://[::1",
        "redis://[]:1",
        "redis://[::g]",
        "redis://[::1]x",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct pl_redis_url u;
        int rc = parse(bad[i], &u);
        if (rc != PL_E_CONFIG) fprintf(stderr, "accepted: \"%s\"\n", bad[i]);
        CHECK_EQ_INT(rc, PL_E_CONFIG);
        CHECK(u.host == NULL && u.user == NULL && u.password == NULL);
    }
    struct pl_redis_url u;
    CHECK_EQ_INT(parse(NULL, &u), PL_E_CONFIG);
}

TEST(sha1_vectors)
{
    char hex[41];
    pl_redis_sha1_hex("", 0, hex);
    CHECK_STR(hex, "da39a3ee5e6b4b0d3255bfef95601890afd80709");
    pl_redis_sha1_hex("abc", 3, hex);
    CHECK_STR(hex, "a9993e364706816aba3e25717850c26c9cd0d89d");
    const char *two = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"; /* 56 bytes */
    pl_redis_sha1_hex(two, strlen(two), hex);
    CHECK_STR(hex, "84983e441c3bd26ebaae4aa1f95129e5e54670f1");

    /* One million 'a': many blocks, and the length crossing 32 bits of bit count. */
    size_t n = 1000000;
    char *a = malloc(n);
    memset(a, 'a', n);
    pl_redis_sha1_hex(a, n, hex);
    CHECK_STR(hex, "34aa973cd4c4daa4f61eeb2bdbad27316534016f");
    free(a);

    /* Lengths around the padding boundary (55, 56, 63, 64 bytes), checked against a
     * reference computed once with sha1sum. */
    static const char *const expected[] = {
        [55] = "c1c8bbdc22796e28c0e15163d20899b65621d65a",
        [56] = "c2db330f6083854c99d4b5bfb6e8f29f201be699",
        [63] = "03f09f5b158a7a8cdad920bddc29b81c18a551f5",
        [64] = "0098ba824b5c16427bd7a1122a5a442a25ec644d",
    };
    char buf[64];
    memset(buf, 'a', sizeof buf);
    for (size_t len = 55; len <= 64; len++) {
        if (!expected[len]) continue;
        pl_redis_sha1_hex(buf, len, hex);
        CHECK_STR(hex, expected[len]);
    }
}

int main(void)
{
    RUN(parsed);
    RUN(invalid);
    RUN(sha1_vectors);
    return TEST_REPORT();
}
