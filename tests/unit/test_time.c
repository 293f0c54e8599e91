/* lib/core/time: RFC 3339 timestamps, calendar dates, HTTP-dates (IMF-fixdate) and the
 * wall clock, table by table. */
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "pl/time.h"
#include "test.h"

#define S INT64_C(1000000) /* microseconds per second */

/* ---- RFC 3339 ---------------------------------------------------------------------------- */

TEST(rfc3339_parse)
{
    static const struct {
        const char *in;
        bool ok;
        int64_t us;
    } cases[] = {
        {"1970-01-01T00:00:00Z", true, 0},
        {"1970-01-01T00:00:01Z", true, 1 * S},
        {"2026-11-23T09:30:00Z", true, 1795426200 * S},
        {"2026-11-23T10:30:00+01:00", true, 1795426200 * S},
        {"2026-11-23T04:00:00-05:30", true, 1795426200 * S},
        {"2026-11-23t09:30:00z", true, 1795426200 * S},
        {"2026-11-23T09:30:00-00:00", true, 1795426200 * S},
        {"2026-11-23T10:30:00.5+01:00", true, 1795426200 * S + 500000},
        {"2000-01-01T00:00:00.000001Z", true, 946684800 * S + 1},
        /* Digits past microseconds are truncated, not rounded. */
        {"2000-01-01T00:00:00.123456999Z", true, 946684800 * S + 123456},
        {"2024-02-29T12:00:00Z", true, 1709208000 * S},
        {"2000-02-29T00:00:00Z", true, 951782400 * S}, /* 400-year leap */
        {"1969-12-31T23:59:59.999Z", true, -1000},
        {"1900-01-01T00:00:00Z", true, INT64_C(-2208988800) * S},
        {"0001-01-01T00:00:00Z", true, INT64_C(-62135596800) * S},
        {"0001-01-01T00:00:00Z", true, PL_TIME_MIN_US},
        {"9999-12-31T23:59:59.999999Z", true, INT64_C(253402300799) * S + 999999},
        {"9999-12-31T23:59:59.999999Z", true, PL_TIME_MAX_US},
        {"2026-01-01T00:30:00+23:59", true, 1767141060 * S},
        {"2026-12-31T23:59:59-23:59", true, 1798847939 * S},
        {"", false, 0},
        {"2023-02-29T00:00:00Z", false, 0}, /* not a leap year */
        {"1900-02-29T00:00:00Z", false, 0}, /* century, not a leap year */
        {"2026-11-23T09:30:00", false, 0},  /* no offset */
        {"2026-11-23 09:30:00Z", false, 0}, /* space instead of T */
        {"2026-11-23T24:00:00Z", false, 0}, /* hour 24 */
        {"2026-11-23T23:60:00Z", false, 0},
        {"2026-12-31T23:59:60Z", false, 0}, /* leap second */
        {"2026-13-01T00:00:00Z", false, 0},
        {"2026-00-01T00:00:00Z", false, 0},
        {"2026-04-31T00:00:00Z", false, 0},
        {"2026-01-00T00:00:00Z", false, 0},
        {"2026-1-01T00:00:00Z", false, 0},
        {"26-01-01T00:00:00Z", false, 0},
        {"+2026-01-01T00:00:00Z", false, 0},
        {"2026-01-01T0:00:00Z", false, 0},
        {"2026-01-01T00:00Z", false, 0},     /* seconds required */
        {"2026-01-01T00:00:00.Z", false, 0}, /* empty fraction */
        {"2026-01-01T00:00:00,5Z", false, 0},
        {"2026-01-01T00:00:00.1234567890Z", false, 0}, /* 10 fraction digits */
        {"2026-01-01T00:00:00+01", false, 0},
        {"2026-01-01T00:00:00+0100", false, 0},
        {"2026-01-01T00:00:00+24:00", false, 0},
        {"2026-01-01T00:00:00+01:60", false, 0},
        {"2026-01-01T00:00:00 Z", false, 0},
        {"2026-01-01T00:00:00Zjunk", false, 0},
        {"2026-01-01T00:00:00Z ", false, 0},
        {"2026-01-01T00:00:00UTC", false, 0},
        {"２026-01-01T00:00:00Z", false, 0}, /* fullwidth digit */
        {"2026-01-01", false, 0},
        {"2026-01-01T", false, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int64_t us = 42;
        int rc = pl_time_parse_rfc3339(cases[i].in, &us);
        if (rc != (cases[i].ok ? 0 : PL_E_INVALID)) fprintf(stderr, "  %s\n", cases[i].in);
        CHECK_EQ_INT(rc, cases[i].ok ? 0 : PL_E_INVALID);
        CHECK_EQ_INT(us, cases[i].ok ? cases[i].us : 42); /* untouched on failure */
    }
}

/* The instant, not the local date, must lie in years 0001..9999 (UTC): what Postgres and
 * pl_time_format_rfc3339 both print with four digits. Offsets are RFC 3339's (up to 23:59,
 * more than Postgres's own parser takes: callers hand SQL microseconds, not this text). */
TEST(rfc3339_range)
{
    static const struct {
        const char *in;
        bool ok;
    } cases[] = {
        {"0000-01-01T00:00:00Z", false},
        {"0000-12-31T23:59:59.999999Z", false},
        {"0000-12-31T23:59:59-00:01", true}, /* 0001-01-01T00:00:59Z */
        {"0001-01-01T00:00:00Z", true},
        {"0001-01-01T00:00:00+00:01", false}, /* 0000-12-31T23:59:00Z */
        {"0001-01-01T00:00:00-23:59", true},
        {"0001-01-01T23:58:59+23:59", false},
        {"9999-12-31T23:59:59.999999Z", true},
        {"9999-12-31T23:59:59.9999999Z", true}, /* truncated, not rounded into 10000 */
        {"9999-12-31T23:59:59+14:00", true},
        {"9999-12-31T23:59:59-14:00", false},
        {"9999-12-31T23:59:59-00:01", false},
        {"9999-12-31T00:00:00-23:59", true},
        {"9999-12-31T00:01:00-23:59", false}, /* 10000-01-01T00:00:00Z */
        {"2026-06-01T12:00:00+23:59", true},
        {"2026-06-01T12:00:00-23:59", true},
        {"2026-06-01T12:00:00+15:59", true},
        {"2026-06-01T12:00:00+16:00", true},
        {"2026-06-01T12:00:00-24:00", false},
        {"2026-06-01T12:00:00+24:00", false},
        {"2026-06-01T12:00:00+99:00", false},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int64_t us = 42;
        int rc = pl_time_parse_rfc3339(cases[i].in, &us);
        if ((rc == 0) != cases[i].ok) {
            fprintf(stderr, "  %s: %s\n", cases[i].in, rc == 0 ? "accepted" : "refused");
            CHECK(false);
        }
        if (rc == 0) {
            CHECK(us >= PL_TIME_MIN_US && us <= PL_TIME_MAX_US);
            char out[32];
            pl_time_format_rfc3339(us, out);
            CHECK_EQ_INT(strlen(out), PL_RFC3339_LEN); /* YYYY-MM-DDTHH:MM:SS.mmmZ */
        } else {
            CHECK(us == 42);
        }
    }
}

TEST(rfc3339_format)
{
    static const struct {
        int64_t us;
        const char *out;
    } cases[] = {
        {0, "1970-01-01T00:00:00.000Z"},
        {INT64_C(1795426200123456), "2026-11-23T09:30:00.123Z"},
        /* Floor for instants before the epoch. */
        {-1, "1969-12-31T23:59:59.999Z"},
        {-1000000, "1969-12-31T23:59:59.000Z"},
        {-86400000001, "1969-12-30T23:59:59.999Z"},
        {PL_TIME_MIN_US, "0001-01-01T00:00:00.000Z"},
        {PL_TIME_MAX_US, "9999-12-31T23:59:59.999Z"},
    };
    char out[32];
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        pl_time_format_rfc3339(cases[i].us, out);
        CHECK_STR(out, cases[i].out);
    }
    /* The extremes of int64 still print within 32 bytes. */
    pl_time_format_rfc3339(INT64_MAX, out);
    CHECK(strlen(out) < 32);
    pl_time_format_rfc3339(INT64_MIN, out);
    CHECK(strlen(out) < 32);
}

/* Parsed, formatted in UTC with milliseconds, and parsed back to the same millisecond. */
TEST(rfc3339_round_trip)
{
    static const struct {
        const char *in, *out;
    } cases[] = {
        {"2026-11-23T10:30:00.5+01:00", "2026-11-23T09:30:00.500Z"},
        {"2024-02-29T23:30:00-01:00", "2024-03-01T00:30:00.000Z"},
        {"2025-01-01T00:15:00+01:00", "2024-12-31T23:15:00.000Z"},
        {"1969-07-20T20:17:40.9999Z", "1969-07-20T20:17:40.999Z"},
        {"0001-01-01T00:00:00Z", "0001-01-01T00:00:00.000Z"},
        {"9999-12-31T23:59:59.999999Z", "9999-12-31T23:59:59.999Z"},
        {"2026-11-23T09:30:00.123Z", "2026-11-23T09:30:00.123Z"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int64_t us = 0, again = 0;
        char out[32] = "";
        CHECK_EQ_INT(pl_time_parse_rfc3339(cases[i].in, &us), 0);
        pl_time_format_rfc3339(us, out);
        CHECK_STR(out, cases[i].out);
        CHECK_EQ_INT(pl_time_parse_rfc3339(out, &again), 0);
        CHECK_EQ_INT(again, us - ((us % 1000 + 1000) % 1000));
    }
    /* Every day for 1200 years lands on the same calendar date it came from. */
    int bad = 0;
    for (int64_t day = INT64_C(-200) * 366; day < INT64_C(1000) * 366; day++) {
        int64_t us = (day * 86400 + 43200) * S, back;
        char out[32];
        pl_time_format_rfc3339(us, out);
        if (pl_time_parse_rfc3339(out, &back) != 0 || back != us) bad++;
    }
    CHECK_EQ_INT(bad, 0);
}

/* ---- calendar dates ---------------------------------------------------------------------- */

TEST(date_parse)
{
    static const struct {
        const char *in;
        int y, m, d; /* 0: refused */
    } cases[] = {
        {"2026-11-23", 2026, 11, 23},
        {"2024-02-29", 2024, 2, 29},
        {"2000-02-29", 2000, 2, 29},
        {"2026-12-31", 2026, 12, 31},
        {"2023-02-29", 0, 0, 0},
        {"2100-02-29", 0, 0, 0},
        {"2026-06-31", 0, 0, 0},
        {"2026-13-01", 0, 0, 0},
        {"2026-00-10", 0, 0, 0},
        {"2026-01-00", 0, 0, 0},
        {"2026-1-1", 0, 0, 0},
        {"2026/01/01", 0, 0, 0},
        {"2026-01-01T00:00:00Z", 0, 0, 0},
        {"2026-01-01 ", 0, 0, 0},
        {" 2026-01-01", 0, 0, 0},
        {"", 0, 0, 0},
        {"20260101", 0, 0, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int y = -1, m = -1, d = -1;
        bool ok = cases[i].y != 0;
        CHECK_EQ_INT(pl_date_parse(cases[i].in, &y, &m, &d), ok ? 0 : PL_E_INVALID);
        /* Untouched on failure. */
        CHECK(y == (ok ? cases[i].y : -1) && m == (ok ? cases[i].m : -1) &&
              d == (ok ? cases[i].d : -1));
    }
}

/* ---- HTTP-date --------------------------------------------------------------------------- */

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
    RUN(rfc3339_parse);
    RUN(rfc3339_range);
    RUN(rfc3339_format);
    RUN(rfc3339_round_trip);
    RUN(date_parse);
    RUN(http_date_format);
    RUN(http_date_matches_libc);
    RUN(http_date_parse);
    RUN(http_date_round_trip);
    RUN(now);
    return TEST_REPORT();
}
