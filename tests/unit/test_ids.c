/* The identifier shapes of server/ids.c, table by table. */
#include <stdio.h>
#include <string.h>

#include "ids.h"
#include "test.h"

TEST(uuid)
{
    static const struct {
        const char *s;
        bool want;
    } cases[] = {
        {"123e4567-e89b-12d3-a456-426614174000", true},
        {"123E4567-E89B-12D3-A456-426614174000", true},
        {"00000000-0000-0000-0000-000000000000", true},
        {"", false},
        {"123e4567e89b12d3a456426614174000", false},      /* no dashes */
        {"123e4567-e89b-12d3-a456-42661417400", false},   /* short */
        {"123e4567-e89b-12d3-a456-4266141740000", false}, /* long */
        {"123e4567-e89b-12d3-a456_426614174000", false},  /* wrong separator */
        {"123e4567-e89b-12d3-a4566-26614174000", false},  /* dash moved */
        {"g23e4567-e89b-12d3-a456-426614174000", false},  /* not hex */
        {"{23e4567-e89b-12d3-a456-426614174000", false},  /* braces are no UUID here */
        {"123e4567-e89b-12d3-a456-42661417400 ", false},  /* trailing space */
        {"123e4567-e89b-12d3-a456-42661417400\n", false}, /* trailing newline */
        {"../../../../../../../../../etc/passwd", false},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        if (ids_is_uuid(cases[i].s) != cases[i].want)
            fprintf(stderr, "  uuid \"%s\": want %d\n", cases[i].s, cases[i].want);
        CHECK(ids_is_uuid(cases[i].s) == cases[i].want);
    }
}

TEST(hex_and_base64url)
{
    static const struct {
        const char *s;
        bool hex, base64url;
    } cases[] = {
        {"", true, true},
        {"0123456789abcdef", true, true},
        {"0123456789ABCDEF", false, true}, /* hashes print lower case */
        {"abc-_XYZ09", false, true},
        {"abc+/", false, false}, /* standard base64, not base64url */
        {"abc=", false, false},
        {"ab cd", false, false},
        {"é", false, false},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        size_t n = strlen(cases[i].s);
        CHECK(ids_is_hex(cases[i].s, n) == cases[i].hex);
        CHECK(ids_is_base64url(cases[i].s, n) == cases[i].base64url);
    }
    /* only the given length is read: a NUL or anything after it does not count */
    CHECK(ids_is_hex("abz", 2));
    CHECK(!ids_is_hex("ab\0c", 3));
}

TEST(secrets_and_hashes)
{
    char a[3 + IDS_SECRET_LEN + 1], b[3 + IDS_SECRET_LEN + 1];
    ids_new_secret("lt_", a, sizeof a);
    ids_new_secret("lt_", b, sizeof b);
    CHECK_EQ_INT(strlen(a), 3 + IDS_SECRET_LEN);
    CHECK(strncmp(a, "lt_", 3) == 0);
    CHECK(ids_is_base64url(a + 3, IDS_SECRET_LEN));
    CHECK(strcmp(a, b) != 0); /* 256 random bits */
    char plain[IDS_SECRET_LEN + 1];
    ids_new_secret("", plain, sizeof plain);
    CHECK_EQ_INT(strlen(plain), IDS_SECRET_LEN);
    /* BLAKE2b-256 test vectors (RFC 7693's function with a 32-byte digest) */
    char hex[IDS_HASH_HEX + 1];
    ids_hash_hex("", 0, hex);
    CHECK_STR(hex, "0e5751c026e543b2e8ab2eb06099daa1d1e5df47778f7787faab45cdf12fe3a8");
    ids_hash_hex("abc", 3, hex);
    CHECK_STR(hex, "bddd813c634239723171ef3fee98579b94964e3bb1cb3e427262c8c068d52319");
    CHECK(ids_is_hex(hex, IDS_HASH_HEX));
}

int main(void)
{
    RUN(uuid);
    RUN(hex_and_base64url);
    RUN(secrets_and_hashes);
    return TEST_REPORT();
}
