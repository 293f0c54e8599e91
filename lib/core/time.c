/* time: RFC 3339 timestamps, HTTP-dates and calendar dates, computed by hand.
 *
 * timegm(), strftime() and strptime() depend on the TZ environment, the locale and the libc;
 * the days-from-civil arithmetic (Howard Hinnant's proleptic Gregorian algorithms) is exact
 * for every year an int64 of microseconds can hold, and needs no locale or table. */
#include "pl/time.h"

#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#define US_PER_S  INT64_C(1000000)
#define S_PER_DAY INT64_C(86400)
#define FRAC_MAX  9 /* RFC 3339 sets no limit; nanoseconds is all any client sends */
#define US_DIGITS 6

static const char weekdays[7][4] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
static const char months[12][4] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                   "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};

int64_t pl_time_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * US_PER_S + ts.tv_nsec / 1000;
}

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

/* A calendar instant, split from seconds since the epoch (floored: the second before the
 * epoch is 1969-12-31T23:59:59). */
struct civil {
    int64_t year;
    int month, day, hour, minute, second, weekday; /* weekday 0 = Sunday */
};

static void civil_from_seconds(int64_t secs, struct civil *c)
{
    int64_t days = secs / S_PER_DAY, sod = secs % S_PER_DAY;
    if (sod < 0) {
        days--;
        sod += S_PER_DAY;
    }
    civil_from_days(days, &c->year, &c->month, &c->day);
    c->hour = (int)(sod / 3600);
    c->minute = (int)(sod / 60 % 60);
    c->second = (int)(sod % 60);
    c->weekday = (int)(((days % 7) + 11) % 7); /* 1970-01-01 was a Thursday */
}

/* ---- parsing helpers ---- */

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

/* One of the n three-letter names at *p (exact case); advances past it. */
static bool name3(const char **p, const char (*names)[4], int n, int *out)
{
    for (int i = 0; i < n; i++) {
        if (strncmp(*p, names[i], 3) == 0) {
            *p += 3;
            *out = i;
            return true;
        }
    }
    return false;
}

/* "HH:MM:SS", seconds 00..59. */
static bool parse_clock(const char **p, int *h, int *mi, int *sec)
{
    return digits(p, 2, h) && expect(p, ':') && digits(p, 2, mi) && expect(p, ':') &&
           digits(p, 2, sec) && *h <= 23 && *mi <= 59 && *sec <= 59;
}

static bool valid_date(int y, int m, int d)
{
    return m >= 1 && m <= 12 && d >= 1 && d <= days_in_month(y, m);
}

static bool parse_date(const char **p, int *y, int *m, int *d)
{
    return digits(p, 4, y) && expect(p, '-') && digits(p, 2, m) && expect(p, '-') &&
           digits(p, 2, d) && valid_date(*y, *m, *d);
}

static int64_t seconds_of(int y, int m, int d, int h, int mi, int sec)
{
    return days_from_civil(y, m, d) * S_PER_DAY + (int64_t)h * 3600 + (int64_t)mi * 60 + sec;
}

/* ---- RFC 3339 and calendar dates ---- */

int pl_date_parse(const char *s, int *year, int *month, int *day)
{
    int y, m, d;
    if (!parse_date(&s, &y, &m, &d) || *s != '\0') return PL_E_INVALID;
    *year = y;
    *month = m;
    *day = d;
    return 0;
}

/* ".ddd" (1..FRAC_MAX digits) as microseconds, or nothing (0). */
static bool parse_fraction(const char **p, int64_t *frac_us)
{
    *frac_us = 0;
    if (**p != '.') return true;
    (*p)++;
    int n = 0;
    for (; **p >= '0' && **p <= '9'; (*p)++) {
        if (++n > FRAC_MAX) return false;
        if (n <= US_DIGITS) *frac_us = *frac_us * 10 + (**p - '0');
    }
    for (int k = n; k < US_DIGITS; k++)
        *frac_us *= 10;
    return n > 0;
}

/* "Z", "z" or "+HH:MM" / "-HH:MM" as seconds east of UTC. */
static bool parse_offset(const char **p, int *offset_s)
{
    if (**p == 'Z' || **p == 'z') {
        (*p)++;
        *offset_s = 0;
        return true;
    }
    if (**p != '+' && **p != '-') return false;
    int sign = **p == '-' ? -1 : 1, oh, om;
    (*p)++;
    if (!digits(p, 2, &oh) || !expect(p, ':') || !digits(p, 2, &om) || oh > 23 || om > 59)
        return false;
    *offset_s = sign * (oh * 3600 + om * 60);
    return true;
}

int pl_time_parse_rfc3339(const char *s, int64_t *out_us)
{
    int y, mo, d, h, mi, sec, offset_s;
    int64_t frac_us;
    const char *p = s;
    /* Second 60 is refused: a leap second has no place in microseconds since the epoch. */
    if (!parse_date(&p, &y, &mo, &d) || (*p != 'T' && *p != 't')) return PL_E_INVALID;
    p++;
    if (!parse_clock(&p, &h, &mi, &sec) || !parse_fraction(&p, &frac_us) ||
        !parse_offset(&p, &offset_s) || *p != '\0')
        return PL_E_INVALID;
    /* Years 0000..9999 keep this far inside int64. */
    int64_t us = (seconds_of(y, mo, d, h, mi, sec) - offset_s) * US_PER_S + frac_us;
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
    struct civil c;
    civil_from_seconds(secs, &c);
    /* A wide scratch buffer: the compiler cannot prove the year fits in four digits. */
    char tmp[160];
    snprintf(tmp, sizeof tmp, "%04" PRId64 "-%02d-%02dT%02d:%02d:%02d.%03dZ", c.year, c.month,
             c.day, c.hour, c.minute, c.second, (int)(rem / 1000));
    snprintf(out, 32, "%.31s", tmp);
}

/* ---- HTTP-date (IMF-fixdate) ---- */

void pl_time_format_http(int64_t sec, char out[32])
{
    const int64_t lo = PL_TIME_MIN_US / US_PER_S, hi = PL_TIME_MAX_US / US_PER_S;
    struct civil c;
    civil_from_seconds(sec < lo ? lo : sec > hi ? hi : sec, &c);
    /* A wide scratch buffer, as above: the clamp keeps the year within four digits. */
    char tmp[160];
    snprintf(tmp, sizeof tmp, "%s, %02d %s %04" PRId64 " %02d:%02d:%02d GMT", weekdays[c.weekday],
             c.day, months[c.month - 1], c.year, c.hour, c.minute, c.second);
    snprintf(out, 32, "%.31s", tmp);
}

int pl_time_parse_http(const char *s, int64_t *out_sec)
{
    const char *p = s;
    int wd, d, m, y, h, mi, sec;
    if (!name3(&p, weekdays, 7, &wd) || !expect(&p, ',') || !expect(&p, ' ') ||
        !digits(&p, 2, &d) || !expect(&p, ' ') || !name3(&p, months, 12, &m) || !expect(&p, ' ') ||
        !digits(&p, 4, &y) || !expect(&p, ' ') || !parse_clock(&p, &h, &mi, &sec) ||
        strcmp(p, " GMT") != 0 || y < 1 || !valid_date(y, m + 1, d))
        return PL_E_INVALID;
    *out_sec = seconds_of(y, m + 1, d, h, mi, sec);
    return 0;
}
