/* time: RFC 3339 timestamps and calendar dates, computed by hand.
 *
 * timegm() and friends depend on the TZ environment and on the libc; the days-from-civil
 * arithmetic (Howard Hinnant's proleptic Gregorian algorithms) is exact for every year an
 * int64 of microseconds can hold, and needs no locale or table. */
#include <inttypes.h>
#include <stdio.h>

#include "pl/json.h"

#define US_PER_S  INT64_C(1000000)
#define S_PER_DAY INT64_C(86400)
#define FRAC_MAX  9 /* RFC 3339 sets no limit; nanoseconds is all any client sends */
#define US_DIGITS 6

static int64_t days_from_civil(int64_t y, int m, int d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static void civil_from_days(int64_t z, int64_t *y, int *m, int *d)
{
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    *d = (int)(doy - (153 * mp + 2) / 5 + 1);
    *m = (int)(mp < 10 ? mp + 3 : mp - 9);
    *y = yoe + era * 400 + (*m <= 2);
}

static bool is_leap(int y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static int days_in_month(int y, int m)
{
    static const int days[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    return m == 2 && is_leap(y) ? 29 : days[m - 1];
}

/* Exactly n ASCII digits at *p; advances past them. */
static bool digits(const char **p, int n, int *out)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        char c = (*p)[i];
        if (c < '0' || c > '9') return false;
        v = v * 10 + (c - '0');
    }
    *p += n;
    *out = v;
    return true;
}

static bool expect(const char **p, char c)
{
    if (**p != c) return false;
    (*p)++;
    return true;
}

static bool parse_date(const char **p, int *y, int *m, int *d)
{
    return digits(p, 4, y) && expect(p, '-') && digits(p, 2, m) && expect(p, '-') &&
           digits(p, 2, d) && *m >= 1 && *m <= 12 && *d >= 1 && *d <= days_in_month(*y, *m);
}

int pl_date_parse(const char *s, int *year, int *month, int *day)
{
    int y, m, d;
    if (!parse_date(&s, &y, &m, &d) || *s != '\0') return PL_E_INVALID;
    *year = y;
    *month = m;
    *day = d;
    return 0;
}

int pl_time_parse_rfc3339(const char *s, int64_t *out_us)
{
    int y, mo, d, h, mi, sec;
    const char *p = s;
    if (!parse_date(&p, &y, &mo, &d)) return PL_E_INVALID;
    if (*p != 'T' && *p != 't') return PL_E_INVALID;
    p++;
    /* Second 60 is refused: a leap second has no place in microseconds since the epoch. */
    if (!digits(&p, 2, &h) || !expect(&p, ':') || !digits(&p, 2, &mi) || !expect(&p, ':') ||
        !digits(&p, 2, &sec) || h > 23 || mi > 59 || sec > 59)
        return PL_E_INVALID;

    int64_t frac_us = 0;
    if (*p == '.') {
        p++;
        int n = 0;
        while (*p >= '0' && *p <= '9') {
            if (++n > FRAC_MAX) return PL_E_INVALID;
            if (n <= US_DIGITS) frac_us = frac_us * 10 + (*p - '0');
            p++;
        }
        if (n == 0) return PL_E_INVALID;
        for (; n < US_DIGITS; n++)
            frac_us *= 10;
    }

    int offset_s;
    if (*p == 'Z' || *p == 'z') {
        offset_s = 0;
        p++;
    } else if (*p == '+' || *p == '-') {
        int sign = *p == '-' ? -1 : 1, oh, om;
        p++;
        if (!digits(&p, 2, &oh) || !expect(&p, ':') || !digits(&p, 2, &om) || oh > 23 || om > 59)
            return PL_E_INVALID;
        offset_s = sign * (oh * 3600 + om * 60);
    } else {
        return PL_E_INVALID;
    }
    if (*p != '\0') return PL_E_INVALID;

    /* Years 0000..9999 keep this far inside int64. */
    int64_t secs = days_from_civil(y, mo, d) * S_PER_DAY + (int64_t)h * 3600 + (int64_t)mi * 60 +
                   sec - offset_s;
    int64_t us = secs * US_PER_S + frac_us;
    /* The instant itself must have a four-digit year in UTC: 0000-01-01T00:00:00Z is year 1
     * BC to Postgres (printed as 0001), and 9999-12-31T23:00:00-02:00 is in year 10000. */
    if (us < PL_TIME_MIN_US || us > PL_TIME_MAX_US) return PL_E_INVALID;
    *out_us = us;
    return 0;
}

void pl_time_format_rfc3339(int64_t us, char out[32])
{
    /* Floor, not truncation: 1 µs before the epoch is 1969-12-31T23:59:59.999Z. */
    int64_t secs = us / US_PER_S, rem = us % US_PER_S;
    if (rem < 0) {
        secs--;
        rem += US_PER_S;
    }
    int64_t days = secs / S_PER_DAY, sod = secs % S_PER_DAY;
    if (sod < 0) {
        days--;
        sod += S_PER_DAY;
    }
    int64_t y;
    int m, d;
    civil_from_days(days, &y, &m, &d);
    /* A wide scratch buffer: the compiler cannot prove the year fits in four digits. */
    char tmp[160];
    snprintf(tmp, sizeof tmp, "%04" PRId64 "-%02d-%02dT%02d:%02d:%02d.%03dZ", y, m, d,
             (int)(sod / 3600), (int)(sod / 60 % 60), (int)(sod % 60), (int)(rem / 1000));
    snprintf(out, 32, "%.31s", tmp);
}
