/* lib/redis without a server: URL parsing and the SHA1 that names scripts. */
#include "pl/error.h"
#include "redis/redis_internal.h"
#include "test.h"

static int parse(const char *url, struct pl_redis_url *u)
{
    return pl_redis_url_parse(url, u);
}

TEST(defaults)
{
    struct pl_redis_url u;
    CHECK_EQ_INT(parse("redis://localhost", &u), 0);
    CHECK_STR(u.host, "localhost");
    CHECK_EQ_INT(u.port, 6379);
    CHECK_EQ_INT(u.db, 0);
    CHECK(u.user == NULL);
    CHECK(u.password == NULL);
    pl_redis_url_dispose(&u);

    CHECK_EQ_INT(parse("REDIS://10.0.0.7/", &u), 0); /* scheme is case-insensitive */
    CHECK_STR(u.host, "10.0.0.7");
    CHECK_EQ_INT(u.db, 0);
    pl_redis_url_dispose(&u);
}

TEST(port_and_db)
{
    struct pl_redis_url u;
    CHECK_EQ_INT(parse("redis://redis.internal:6380/3", &u), 0);
    CHECK_STR(u.host, "redis.internal");
    CHECK_EQ_INT(u.port, 6380);
    CHECK_EQ_INT(u.db, 3);
    pl_redis_url_dispose(&u);

    CHECK_EQ_INT(parse("redis://h:1", &u), 0);
    CHECK_EQ_INT(u.port, 1);
    pl_redis_url_dispose(&u);
    CHECK_EQ_INT(parse("redis://h:65535/15", &u), 0);
    CHECK_EQ_INT(u.port, 65535);
    CHECK_EQ_INT(u.db, 15);
    pl_redis_url_dispose(&u);
}

TEST(credentials)
{
    struct pl_redis_url u;
    CHECK_EQ_INT(parse("redis://:s3cret@127.0.0.1:6379/0", &u), 0);
    CHECK(u.user == NULL);
    CHECK_STR(u.password, "s3cret");
    CHECK_STR(u.host, "127.0.0.1");
    pl_redis_url_dispose(&u);

    CHECK_EQ_INT(parse("redis://app:pw@host", &u), 0);
    CHECK_STR(u.user, "app");
    CHECK_STR(u.password, "pw");
    pl_redis_url_dispose(&u);

    /* Percent-encoding, a ':' inside the password, and an unencoded '@' in it. */
    CHECK_EQ_INT(parse("redis://a%40b:p%2Fw:x@p@host:7000", &u), 0);
    CHECK_STR(u.user, "a@b");
    CHECK_STR(u.password, "p/w:x@p");
    CHECK_STR(u.host, "host");
    CHECK_EQ_INT(u.port, 7000);
    pl_redis_url_dispose(&u);

    /* An empty password means no AUTH, and then the user is meaningless. */
    CHECK_EQ_INT(parse("redis://app:@host", &u), 0);
    CHECK(u.user == NULL);
    CHECK(u.password == NULL);
    pl_redis_url_dispose(&u);
}

TEST(ipv6)
{
    struct pl_redis_url u;
    CHECK_EQ_INT(parse("redis://[::1]:6390/2", &u), 0);
    CHECK_STR(u.host, "::1");
    CHECK_EQ_INT(u.port, 6390);
    CHECK_EQ_INT(u.db, 2);
    pl_redis_url_dispose(&u);
    CHECK_EQ_INT(parse("redis://:pw@[fe80::1]", &u), 0);
    CHECK_STR(u.host, "fe80::1");
    CHECK_STR(u.password, "pw");
    pl_redis_url_dispose(&u);
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
    RUN(defaults);
    RUN(port_and_db);
    RUN(credentials);
    RUN(ipv6);
    RUN(invalid);
    RUN(sha1_vectors);
    return TEST_REPORT();
}
