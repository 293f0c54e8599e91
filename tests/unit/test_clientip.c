/* Client IP behind trusted proxies (server/clientip.c): which X-Forwarded-For hop is the
 * client, for tables of headers and trusted sets, and the rate-limit key of an address
 * (IPv6 by /64). */
#include <stdio.h>
#include <string.h>

#include "guards.h"
#include "test.h"

#define TRUSTED "127.0.0.0/8, 10.0.0.0/8, 2001:db8:ffff::/48"

struct ip_case {
    const char *trusted;
    const char *peer;
    const char *xff; /* every line joined, as pl_req_header_list gives it; NULL = absent */
    const char *client;
};

static int run_cases(const struct ip_case *cases, size_t n)
{
    int bad = 0;
    for (size_t i = 0; i < n; i++) {
        char err[160];
        if (trusted_proxies_init(cases[i].trusted, err, sizeof err) != 0) {
            fprintf(stderr, "  case %zu: trusted list refused: %s\n", i, err);
            bad++;
            continue;
        }
        char out[CLIENT_IP_MAX];
        client_ip_resolve(cases[i].peer, cases[i].xff, out, sizeof out);
        if (strcmp(out, cases[i].client) != 0) {
            fprintf(stderr, "  case %zu: peer %s, X-Forwarded-For \"%.80s\": got %s, want %s\n", i,
                    cases[i].peer, cases[i].xff ? cases[i].xff : "(none)", out, cases[i].client);
            bad++;
        }
    }
    return bad;
}

TEST(rightmost_untrusted_hop)
{
    static const struct ip_case cases[] = {
        /* no trusted proxies, or a peer that is not one: the socket peer, whatever the header */
        {"", "127.0.0.1", "203.0.113.9", "127.0.0.1"},
        {TRUSTED, "203.0.113.1", "198.51.100.7", "203.0.113.1"},
        {TRUSTED, "192.0.2.1", NULL, "192.0.2.1"},
        {TRUSTED, "-", "198.51.100.7", "-"},
        /* a trusted peer without the header, or with nothing in it */
        {TRUSTED, "127.0.0.1", NULL, "127.0.0.1"},
        {TRUSTED, "127.0.0.1", "", "127.0.0.1"},
        {TRUSTED, "127.0.0.1", " , ,, ", "127.0.0.1"},
        /* the rightmost hop that is not a trusted proxy */
        {TRUSTED, "127.0.0.1", "203.0.113.9", "203.0.113.9"},
        {TRUSTED, "127.0.0.1", "198.51.100.7, 203.0.113.10", "203.0.113.10"},
        {TRUSTED, "127.0.0.1", "198.51.100.8, 203.0.113.11, 127.0.0.5", "203.0.113.11"},
        {TRUSTED, "10.1.2.3", "198.51.100.8,203.0.113.11,10.9.9.9,127.0.0.5", "203.0.113.11"},
        {TRUSTED, "127.0.0.1", "\t203.0.113.12\t, 10.0.0.1", "203.0.113.12"},
        {TRUSTED, "127.0.0.1", "203.0.113.13, , 10.0.0.1,", "203.0.113.13"},
        /* every hop trusted: the leftmost, as far as anyone can tell */
        {TRUSTED, "127.0.0.1", "10.0.0.1, 10.0.0.2", "10.0.0.1"},
        /* a hop that is no address stops the walk: it is the client, not what lies left */
        {TRUSTED, "127.0.0.1", "198.51.100.1, unknown", "unknown"},
        {TRUSTED, "127.0.0.1", "198.51.100.1, unknown, 10.0.0.1", "unknown"},
        {TRUSTED, "127.0.0.1", "unknown, 203.0.113.14", "203.0.113.14"},
        {TRUSTED, "127.0.0.1", "198.51.100.1, 999.1.1.1", "999.1.1.1"},
        {TRUSTED, "127.0.0.1", "198.51.100.1, a b\x01\x7f", "a?b??"},
        {TRUSTED, "127.0.0.1", "1.2.3.4:80:90", "1.2.3.4:80:90"},
        {TRUSTED, "127.0.0.1", "[2001:db8::1", "[2001:db8::1"},
        {TRUSTED, "127.0.0.1", "[2001:db8::1]:x", "[2001:db8::1]:x"},
        {TRUSTED, "127.0.0.1", "fe80::1%eth0", "fe80::1%eth0"},
        /* ports some proxies write, brackets, canonical spellings */
        {TRUSTED, "127.0.0.1", "203.0.113.15:4711", "203.0.113.15"},
        {TRUSTED, "127.0.0.1", "[2001:db8::1]:443", "2001:db8::1"},
        {TRUSTED, "127.0.0.1", "[2001:db8::2]", "2001:db8::2"},
        {TRUSTED, "127.0.0.1", "2001:DB8:0:0:0::3", "2001:db8::3"},
        {TRUSTED, "127.0.0.1", "::ffff:198.51.100.9", "198.51.100.9"},
        /* IPv4-mapped peers and hops are their IPv4 addresses, trusted or not */
        {TRUSTED, "::ffff:127.0.0.1", "203.0.113.16", "203.0.113.16"},
        {TRUSTED, "127.0.0.1", "203.0.113.17, ::ffff:10.0.0.7", "203.0.113.17"},
        {"::ffff:127.0.0.0/104", "127.0.0.1", "203.0.113.18", "203.0.113.18"},
        /* IPv6 proxies */
        {TRUSTED, "2001:db8:ffff::1", "2001:db8:1:2::5, 2001:db8:ffff:1::9", "2001:db8:1:2::5"},
        {TRUSTED, "2001:db8:fffe::1", "2001:db8:1:2::5", "2001:db8:fffe::1"},
    };
    CHECK_EQ_INT(run_cases(cases, sizeof cases / sizeof cases[0]), 0);
}

/* The finding: only the first 32 hops were kept, so a client that sent 32 addresses ahead
 * of what the proxy appended was keyed by its own 32nd. Every hop counts now. */
TEST(many_hops_never_pick_from_the_left)
{
    static char spoofed[8192], with_proxies[8192], all_trusted[8192];
    size_t n = 0;
    for (int i = 1; i <= 40; i++)
        n += (size_t)snprintf(spoofed + n, sizeof spoofed - n, "192.0.2.%d, ", i);
    memcpy(with_proxies, spoofed, n + 1);
    snprintf(spoofed + n, sizeof spoofed - n, "198.51.100.99");
    /* the real client, then more trusted hops than the old limit */
    size_t m = n + (size_t)snprintf(with_proxies + n, sizeof with_proxies - n, "203.0.113.5");
    for (int i = 1; i <= 40; i++)
        m += (size_t)snprintf(with_proxies + m, sizeof with_proxies - m, ", 10.0.%d.1", i);
    size_t k = 0;
    for (int i = 1; i <= 300; i++)
        k += (size_t)snprintf(all_trusted + k, sizeof all_trusted - k, "%s10.1.%d.%d",
                              i > 1 ? ", " : "", i / 250, i % 250);
    const struct ip_case cases[] = {
        {TRUSTED, "127.0.0.1", spoofed, "198.51.100.99"},
        {TRUSTED, "127.0.0.1", with_proxies, "203.0.113.5"},
        {TRUSTED, "127.0.0.1", all_trusted, "10.1.0.1"},
    };
    CHECK_EQ_INT(run_cases(cases, sizeof cases / sizeof cases[0]), 0);
}

TEST(unparsable_hop_is_bounded)
{
    char xff[300], out[CLIENT_IP_MAX];
    memset(xff, 'x', 200);
    xff[200] = 0;
    char err[160];
    CHECK_EQ_INT(trusted_proxies_init(TRUSTED, err, sizeof err), 0);
    client_ip_resolve("127.0.0.1", xff, out, sizeof out);
    CHECK_EQ_INT(strlen(out), CLIENT_IP_MAX - 1);
    CHECK(strspn(out, "x") == strlen(out));
}

TEST(rate_key_ipv6_by_64)
{
    static const struct {
        const char *ip, *key;
    } cases[] = {
        {"203.0.113.5", "203.0.113.5"},
        {"::ffff:203.0.113.5", "203.0.113.5"},
        {"2001:db8:1:2:aaaa:bbbb:cccc:dddd", "2001:db8:1:2::/64"},
        {"2001:db8:1:2::1", "2001:db8:1:2::/64"},
        {"2001:DB8:1:2:FFFF::9", "2001:db8:1:2::/64"},
        {"2001:db8:1:3::1", "2001:db8:1:3::/64"},
        {"::1", "::/64"},
        {"unknown", "unknown"},
        {"-", "-"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char key[CLIENT_IP_MAX + 4];
        client_ip_rate_key(cases[i].ip, key, sizeof key);
        CHECK_STR(key, cases[i].key);
    }
}

TEST(trusted_list_parsing)
{
    char err[160] = "";
    CHECK_EQ_INT(trusted_proxies_init("10.0.0.0/8 , ::1,2001:db8::/32", err, sizeof err), 0);
    CHECK(ip_is_trusted_proxy("10.255.0.1"));
    CHECK(ip_is_trusted_proxy("::ffff:10.0.0.1"));
    CHECK(ip_is_trusted_proxy("::1"));
    CHECK(ip_is_trusted_proxy("2001:db8:ffff::1"));
    CHECK(!ip_is_trusted_proxy("11.0.0.1"));
    CHECK(!ip_is_trusted_proxy("garbage"));
    CHECK(trusted_proxies_init("10.0.0.0/33", err, sizeof err) == PL_E_CONFIG);
    CHECK(strstr(err, "10.0.0.0") != NULL);
    CHECK(trusted_proxies_init("example.com", err, sizeof err) == PL_E_CONFIG);
    CHECK_EQ_INT(trusted_proxies_init("", err, sizeof err), 0);
    CHECK(!ip_is_trusted_proxy("127.0.0.1"));
}

int main(void)
{
    RUN(rightmost_untrusted_hop);
    RUN(many_hops_never_pick_from_the_left);
    RUN(unparsable_hop_is_bounded);
    RUN(rate_key_ipv6_by_64);
    RUN(trusted_list_parsing);
    return TEST_REPORT();
}
