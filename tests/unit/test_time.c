/* lib/core/time: HTTP-dates (IMF-fixdate) and the wall clock. RFC 3339 and calendar dates
 * are checked in test_json.c, where JSON bodies use them. */
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "pl/time.h"
#include "test.h"

TEST(http_date_format)
{
    static const struct {
        int64_t sec;
        const char *out;
    } cases[] = {
        {0, "Thu, 01 Jan 1970 00:00:00 GMT"},
        {784111777, "Sun, 06 Nov 1994 08:49:37 GMT"}, /* RFC 9110's example */
        {-1, "Wed, 31 Dec 1969 23:59:59 GMT"},
        {951782400, "Tue, 29 Feb 2000 00:00:00 GMT"}, /* 400-year leap day */
        {1709208000, "Thu, 29 Feb 2024 12:00:00 GMT"},
        {-2208988800, "Mon, 01 Jan 1900 00:00:00 GMT"},
        {4102444800, "Fri, 01 Jan 2100 00:00:00 GMT"},
        {-62135596800, "Mon, 01 Jan 0001 00:00:00 GMT"},
        {253402300799, "Fri, 31 Dec 9999 23:59:59 GMT"},
        /* Outside years 0001..9999: clamped, always 29 characters. */
        {-62135596801, "Mon, 01 Jan 0001 00:00:00 GMT"},
        {253402300800, "Fri, 31 Dec 9999 23:59:59 GMT"},
        {INT64_MIN, "Mon, 01 Jan 0001 00:00:00 GMT"},
        {INT64_MAX, "Fri, 31 Dec 9999 23:59:59 GMT"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char out[32];
        pl_time_format_http(cases[i].sec, out);
        CHECK_STR(out, cases[i].out);
        CHECK_EQ_INT(strlen(out), PL_HTTP_DATE_LEN);
    }
}

/* The formatter agrees with the C library's gmtime_r and strftime (C locale) over two
 * centuries, at an odd step so every weekday, month and time of day comes up. */
TEST(http_date_matches_libc)
{
    int bad = 0;
    for (int64_t s = INT64_C(-2208988800); s < INT64_C(4102444800); s += 86400 * 7 + 3607) {
        time_t t = (time_t)s;
        struct tm tm;
        char want[64], got[32];
        gmtime_r(&t, &tm);
        strftime(want, sizeof want, "%a, %d %b %Y %H:%M:%S GMT", &tm);
        pl_time_format_http(s, got);
        if (strcmp(want, got) != 0 && bad++ < 5) fprintf(stderr, "  %s != %s\n", got, want);
    }
    CHECK_EQ_INT(bad, 0);
}

TEST(http_date_parse)
{
    static const struct {
        const char *in;
        bool ok;
        int64_t sec;
    } cases[] = {
        {"Sun, 06 Nov 1994 08:49:37 GMT", true, 784111777},
        {"Thu, 01 Jan 1970 00:00:00 GMT", true, 0},
        {"Wed, 31 Dec 1969 23:59:59 GMT", true, -1},
        {"Tue, 29 Feb 2000 00:00:00 GMT", true, 951782400},
        {"Mon, 01 Jan 0001 00:00:00 GMT", true, -62135596800},
        {"Fri, 31 Dec 9999 23:59:59 GMT", true, 253402300799},
        /* The day name is not checked against the date (RFC 9110 does not ask for it). */
        {"Mon, 06 Nov 1994 08:49:37 GMT", true, 784111777},
        /* Only IMF-fixdate, exactly. */
        {"Sunday, 06-Nov-94 08:49:37 GMT", false, 0}, /* RFC 850 */
        {"Sun Nov  6 08:49:37 1994", false, 0},       /* asctime */
        {"sun, 06 nov 1994 08:49:37 GMT", false, 0},
        {"Sun, 06 Nov 1994 08:49:37 gmt", false, 0},
        {"Sun, 06 Nov 1994 08:49:37 UTC", false, 0},
        {"Sun, 6 Nov 1994 08:49:37 GMT", false, 0},
        {"Sun,  6 Nov 1994 08:49:37 GMT", false, 0},
        {"Sun, 06 Nov 94 08:49:37 GMT", false, 0},
        {"Sun, 06 Nov 1994 8:49:37 GMT", false, 0},
        {"Sun, 06 Nov 1994 08:49:37", false, 0},
        {"Sun, 06 Nov 1994 08:49:37 GMT ", false, 0},
        {" Sun, 06 Nov 1994 08:49:37 GMT", false, 0},
        {"Sun,06 Nov 1994 08:49:37 GMT", false, 0},
        {"Xyz, 06 Nov 1994 08:49:37 GMT", false, 0},
        {"Sun, 06 Foo 1994 08:49:37 GMT", false, 0},
        /* The date and time must exist. */
        {"Thu, 29 Feb 2001 00:00:00 GMT", false, 0},
        {"Mon, 29 Feb 2100 00:00:00 GMT", false, 0},
        {"Thu, 31 Apr 2026 00:00:00 GMT", false, 0},
        {"Thu, 00 Jan 2026 00:00:00 GMT", false, 0},
        {"Thu, 01 Jan 0000 00:00:00 GMT", false, 0},
        {"Thu, 01 Jan 2026 24:00:00 GMT", false, 0},
        {"Thu, 01 Jan 2026 23:60:00 GMT", false, 0},
        {"Thu, 01 Jan 2026 23:59:60 GMT", false, 0}, /* a leap second */
        {"", false, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int64_t sec = 42;
        int rc = pl_time_parse_http(cases[i].in, &sec);
        if (rc != (cases[i].ok ? 0 : PL_E_INVALID)) fprintf(stderr, "  %s\n", cases[i].in);
        CHECK_EQ_INT(rc, cases[i].ok ? 0 : PL_E_INVALID);
        CHECK_EQ_INT(sec, cases[i].ok ? cases[i].sec : 42); /* untouched on failure */
    }
}

TEST(http_date_round_trip)
{
    int bad = 0;
    for (int64_t s = INT64_C(-62135596800); s <= INT64_C(253402300799); s += INT64_C(9876543211)) {
        char text[32];
        int64_t back = 0;
        pl_time_format_http(s, text);
        if (pl_time_parse_http(text, &back) != 0 || back != s) bad++;
    }
    CHECK_EQ_INT(bad, 0);
}

/* The clock is the wall clock (a generous bound: no speed is asserted). */
TEST(now)
{
    int64_t before = (int64_t)time(NULL);
    int64_t now = pl_time_now_us();
    int64_t after = (int64_t)time(NULL);
    CHECK(now / 1000000 >= before - 1 && now / 1000000 <= after + 1);
}

int main(void)
{
    RUN(http_date_format);
    RUN(http_date_matches_libc);
    RUN(http_date_parse);
    RUN(http_date_round_trip);
    RUN(now);
    return TEST_REPORT();
}
