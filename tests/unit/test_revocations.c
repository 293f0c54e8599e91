/* Revocation messages (server/auth/credentials.c): what pulse:revoke carries and which live
 * sockets each kind closes. */
#include <stdio.h>
#include <string.h>

#include "auth/auth.h"
#include "test.h"

#define USER    "123e4567-e89b-12d3-a456-426614174000"
#define HASH_A  "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
#define HASH_B  "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
#define TOKEN_A "00000000-0000-0000-0000-00000000000a"
#define TOKEN_B "00000000-0000-0000-0000-00000000000b"

TEST(parse)
{
    struct auth_revocation r;
    const char *m = "{\"user_id\":\"" USER "\",\"kind\":\"session\",\"id\":\"" HASH_A "\"}";
    CHECK_EQ_INT(auth_revocation_parse(m, strlen(m), &r), 0);
    CHECK_STR(r.user_id, USER);
    CHECK_EQ_INT(r.kind, AUTH_REVOKE_SESSION);
    CHECK_STR(r.id, HASH_A);
    m = "{\"user_id\":\"" USER "\",\"kind\":\"all\"}";
    CHECK_EQ_INT(auth_revocation_parse(m, strlen(m), &r), 0);
    CHECK_EQ_INT(r.kind, AUTH_REVOKE_ALL);
    CHECK_STR(r.id, "");
    static const char *const refused[] = {
        "",
        "not json",
        "[]",
        "{\"kind\":\"all\"}",                                 /* no user */
        "{\"user_id\":\"" USER "\"}",                         /* no kind */
        "{\"user_id\":\"" USER "\",\"kind\":\"everything\"}", /* unknown kind */
        "{\"user_id\":5,\"kind\":\"all\"}",
        "{\"user_id\":\"" USER USER "\",\"kind\":\"all\"}", /* longer than any user id */
    };
    for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++) {
        if (auth_revocation_parse(refused[i], strlen(refused[i]), &r) == 0)
            fprintf(stderr, "  accepted: %s\n", refused[i]);
        CHECK(auth_revocation_parse(refused[i], strlen(refused[i]), &r) != 0);
    }
}

TEST(covers)
{
    static const struct {
        enum auth_revoke kind;
        const char *id;
        enum principal_kind socket;
        const char *credential;
        bool closes;
    } cases[] = {
        {AUTH_REVOKE_SESSION, HASH_A, PRINCIPAL_SESSION, HASH_A, true},
        {AUTH_REVOKE_SESSION, HASH_A, PRINCIPAL_SESSION, HASH_B, false},
        {AUTH_REVOKE_SESSION, TOKEN_A, PRINCIPAL_TOKEN, TOKEN_A, false},
        {AUTH_REVOKE_OTHERS, HASH_A, PRINCIPAL_SESSION, HASH_A, false},
        {AUTH_REVOKE_OTHERS, HASH_A, PRINCIPAL_SESSION, HASH_B, true},
        {AUTH_REVOKE_OTHERS, HASH_A, PRINCIPAL_TOKEN, TOKEN_A, false}, /* tokens stay */
        {AUTH_REVOKE_ALL, "", PRINCIPAL_SESSION, HASH_A, true},
        {AUTH_REVOKE_ALL, "", PRINCIPAL_TOKEN, TOKEN_A, true},
        {AUTH_REVOKE_TOKEN, TOKEN_A, PRINCIPAL_TOKEN, TOKEN_A, true},
        {AUTH_REVOKE_TOKEN, TOKEN_A, PRINCIPAL_TOKEN, TOKEN_B, false},
        {AUTH_REVOKE_TOKEN, TOKEN_A, PRINCIPAL_SESSION, TOKEN_A, false},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct auth_revocation r = {.kind = cases[i].kind};
        snprintf(r.user_id, sizeof r.user_id, "%s", USER);
        snprintf(r.id, sizeof r.id, "%s", cases[i].id);
        bool got = auth_revocation_covers(&r, cases[i].socket, cases[i].credential);
        if (got != cases[i].closes) fprintf(stderr, "  case %zu: got %d\n", i, got);
        CHECK(got == cases[i].closes);
    }
}

int main(void)
{
    RUN(parse);
    RUN(covers);
    return TEST_REPORT();
}
