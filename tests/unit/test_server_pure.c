/* The pure logic of server/, table by table: If-Match parsing (records), Cookie header
 * parsing (guards), CIDR matching of PULSE_TRUSTED_PROXIES (clientip). Each function is
 * declared in its module's header; nothing here needs a loop, Postgres or Redis. */
#include <stdio.h>
#include <string.h>

#include "guards.h"
#include "records/records.h"
#include "test.h"

TEST(if_match)
{
    static const struct {
        const char *header; /* NULL = absent */
        const char *want;   /* NULL = no precondition; "-1" = can never match */
    } cases[] = {
        /* no precondition */
        {NULL, NULL},
        {"*", NULL},
        /* a strong tag names a version, in canonical digits */
        {"\"1\"", "1"},
        {"\"42\"", "42"},
        {"\"0\"", "0"},
        {"\"01\"", "1"},
        {"\"0000000001\"", "1"},
        {"\"2147483647\"", "2147483647"},
        /* beyond int4, or longer than any int4 could need */
        {"\"2147483648\"", "-1"},
        {"\"9999999999\"", "-1"},
        {"\"00000000001\"", "-1"},
        /* weak tags never match (strong comparison) */
        {"W/\"1\"", "-1"},
        {"w/\"1\"", "-1"},
        /* malformed */
        {"", "-1"},
        {"1", "-1"},
        {"\"\"", "-1"},
        {"\"", "-1"},
        {"\"1", "-1"},
        {"1\"", "-1"},
        {"\"-1\"", "-1"},
        {"\"+1\"", "-1"},
        {"\" 1\"", "-1"},
        {"\"1 \"", "-1"},
        {"\"1.0\"", "-1"},
        {"\"1e3\"", "-1"},
        {"\"0x1\"", "-1"},
        {"**", "-1"},
        {" *", "-1"},
        /* lists are not read: one tag only */
        {"\"1\", \"2\"", "-1"},
        {"\"1\",\"2\"", "-1"},
        {"*, \"1\"", "-1"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char buf[RECORD_VERSION_MAX];
        memset(buf, 'x', sizeof buf);
        const char *got = record_if_match(cases[i].header, buf);
        if (!cases[i].want) {
            if (got) {
                fprintf(stderr, "  If-Match %s: got %s, want no precondition\n",
                        cases[i].header ? cases[i].header : "(absent)", got);
                CHECK(got == NULL);
            }
            continue;
        }
        if (!got || strcmp(got, cases[i].want) != 0)
            fprintf(stderr, "  If-Match %s: got %s, want %s\n",
                    cases[i].header ? cases[i].header : "(absent)", got ? got : "(none)",
                    cases[i].want);
        CHECK_STR(got, cases[i].want);
    }
}

TEST(cookie_value)
{
    enum { CAP = 8 };
    static const struct {
        const char *header; /* NULL = no Cookie header */
        const char *name;
        const char *want; /* NULL = absent (or does not fit in CAP) */
    } cases[] = {
        {NULL, "s", NULL},
        {"", "s", NULL},
        {"s=abc", "s", "abc"},
        {"s=", "s", ""},
        {"s=abc;", "s", "abc"},
        {"a=1; s=abc; b=2", "s", "abc"},
        {"a=1;s=abc;b=2", "s", "abc"},
        {" ; ;s=abc", "s", "abc"},
        /* the first of two wins */
        {"s=one; s=two", "s", "one"},
        /* names match whole: no prefix, suffix or case folding */
        {"xs=abc", "s", NULL},
        {"s_x=abc", "s", NULL},
        {"S=abc", "s", NULL},
        {"s =abc", "s", NULL},
        {"a=s=abc", "s", NULL},
        {"a=1; xs=2; s=3", "s", "3"},
        /* an item without '=' is skipped, not glued to the next one */
        {"junk; s=abc", "s", "abc"},
        {"junk;s=abc", "s", "abc"},
        {"s; s=abc", "s", "abc"},
        {"a=b=c; s=abc", "s", "abc"},
        /* the value is taken as it is, up to ';' */
        {"s=\"q\"", "s", "\"q\""},
        {"s=a b", "s", "a b"},
        /* the __Host- prefixed name and the plain one are different cookies */
        {"__Host-s=host; s=plain", "s", "plain"},
        {"__Host-s=host; s=plain", "__Host-s", "host"},
        {"s=plain", "__Host-s", NULL},
        /* CAP bytes with the NUL: 7 fit, 8 do not */
        {"s=1234567", "s", "1234567"},
        {"s=12345678", "s", NULL},
        {"s=12345678; s=1", "s", NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char out[CAP];
        memset(out, 'x', sizeof out);
        bool found = cookie_value(cases[i].header, cases[i].name, out, sizeof out);
        const char *got = found ? out : NULL;
        bool ok = cases[i].want ? got && strcmp(got, cases[i].want) == 0 : got == NULL;
        if (!ok)
            fprintf(stderr, "  Cookie \"%s\", name %s: got %s, want %s\n",
                    cases[i].header ? cases[i].header : "(none)", cases[i].name,
                    got ? got : "(absent)", cases[i].want ? cases[i].want : "(absent)");
        CHECK(ok);
    }
}

TEST(cidr_matching)
{
    static const struct {
        const char *list; /* PULSE_TRUSTED_PROXIES */
        const char *ip;
        bool trusted;
    } cases[] = {
        /* byte-aligned prefixes, both edges and one past each */
        {"10.0.0.0/8", "10.0.0.0", true},
        {"10.0.0.0/8", "10.255.255.255", true},
        {"10.0.0.0/8", "9.255.255.255", false},
        {"10.0.0.0/8", "11.0.0.0", false},
        /* prefixes inside a byte */
        {"172.16.0.0/12", "172.16.0.0", true},
        {"172.16.0.0/12", "172.31.255.255", true},
        {"172.16.0.0/12", "172.15.255.255", false},
        {"172.16.0.0/12", "172.32.0.0", false},
        {"192.168.1.128/25", "192.168.1.128", true},
        {"192.168.1.128/25", "192.168.1.255", true},
        {"192.168.1.128/25", "192.168.1.127", false},
        {"198.51.100.6/31", "198.51.100.6", true},
        {"198.51.100.6/31", "198.51.100.7", true},
        {"198.51.100.6/31", "198.51.100.5", false},
        {"198.51.100.6/31", "198.51.100.8", false},
        /* host bits in the list entry do not widen or shift it */
        {"10.1.2.3/8", "10.200.0.1", true},
        {"10.1.2.3/8", "11.1.2.3", false},
        /* no prefix: one address */
        {"192.0.2.1", "192.0.2.1", true},
        {"192.0.2.1", "192.0.2.0", false},
        {"192.0.2.1", "192.0.2.2", false},
        {"192.0.2.1/32", "192.0.2.1", true},
        {"192.0.2.1/32", "192.0.2.3", false},
        /* /0: every address of that family, none of the other */
        {"0.0.0.0/0", "1.2.3.4", true},
        {"0.0.0.0/0", "255.255.255.255", true},
        {"0.0.0.0/0", "::1", false},
        {"::/0", "2001:db8::1", true},
        {"::/0", "::", true},
        {"::/0", "10.0.0.1", false},
        /* IPv6 */
        {"2001:db8::/32", "2001:db8:ffff:ffff::1", true},
        {"2001:db8::/32", "2001:db9::", false},
        {"2001:db8::/32", "2001:db7:ffff::", false},
        {"2001:db8:abcd:12::/63", "2001:db8:abcd:12::", true},
        {"2001:db8:abcd:12::/63", "2001:db8:abcd:13:ffff:ffff:ffff:ffff", true},
        {"2001:db8:abcd:12::/63", "2001:db8:abcd:14::", false},
        {"2001:db8:abcd:12::/63", "2001:db8:abcd:11:ffff:ffff:ffff:ffff", false},
        {"fe80::1/128", "fe80::1", true},
        {"fe80::1/128", "fe80::2", false},
        {"fe80::1", "FE80:0:0:0:0:0:0:1", true},
        /* IPv4-mapped addresses are their IPv4 address, in the list and in the query */
        {"10.0.0.0/8", "::ffff:10.0.0.1", true},
        {"::ffff:10.0.0.0/104", "10.1.2.3", true},
        {"::ffff:10.0.0.0/104", "::ffff:10.1.2.3", true},
        {"::ffff:10.0.0.0/104", "11.0.0.0", false},
        {"::ffff:0.0.0.0/96", "203.0.113.1", true},
        /* several entries: any one matches */
        {"10.0.0.0/8, 192.168.0.0/16,::1", "192.168.4.4", true},
        {"10.0.0.0/8, 192.168.0.0/16,::1", "::1", true},
        {"10.0.0.0/8, 192.168.0.0/16,::1", "172.16.0.1", false},
        /* no list, or no address */
        {"", "127.0.0.1", false},
        {"0.0.0.0/0", "not-an-ip", false},
        {"0.0.0.0/0", "", false},
        {"0.0.0.0/0", "10.0.0.1:80", false},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char err[160] = "";
        if (trusted_proxies_init(cases[i].list, err, sizeof err) != 0) {
            fprintf(stderr, "  list \"%s\" refused: %s\n", cases[i].list, err);
            CHECK(false);
            continue;
        }
        bool got = ip_is_trusted_proxy(cases[i].ip);
        if (got != cases[i].trusted)
            fprintf(stderr, "  list \"%s\", %s: got %s\n", cases[i].list, cases[i].ip,
                    got ? "trusted" : "not trusted");
        CHECK(got == cases[i].trusted);
    }
}

TEST(cidr_list_refused)
{
    static const char *const bad[] = {
        "10.0.0.0/33", "::/129",      "10.0.0.0/",      "10.0.0.0/-1", "10.0.0.0/8x",
        "10.0.0.0/ 8", "10.0.0.256",  "10.0.0",         "example.com", "10.0.0.0/8, nope",
        "::ffff::1",   "1.2.3.4/08x", "2001:db8::/1e2",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char err[160] = "";
        int rc = trusted_proxies_init(bad[i], err, sizeof err);
        if (rc != PL_E_CONFIG) fprintf(stderr, "  accepted \"%s\"\n", bad[i]);
        CHECK_EQ_INT(rc, PL_E_CONFIG);
        CHECK(strstr(err, "PULSE_TRUSTED_PROXIES") != NULL);
    }
    /* up to 64 entries */
    char err[160];
    char list[64 * 20] = "";
    size_t n = 0;
    for (int i = 0; i < 64; i++)
        n += (size_t)snprintf(list + n, sizeof list - n, "%s10.%d.0.0/16", i ? "," : "", i);
    CHECK_EQ_INT(trusted_proxies_init(list, err, sizeof err), 0);
    CHECK(ip_is_trusted_proxy("10.63.1.1"));
    CHECK(!ip_is_trusted_proxy("10.64.1.1"));
    snprintf(list + n, sizeof list - n, ",10.64.0.0/16");
    CHECK_EQ_INT(trusted_proxies_init(list, err, sizeof err), PL_E_CONFIG);
    CHECK_EQ_INT(trusted_proxies_init("", err, sizeof err), 0);
}

int main(void)
{
    RUN(if_match);
    RUN(cookie_value);
    RUN(cidr_matching);
    RUN(cidr_list_refused);
    return TEST_REPORT();
}
