/* time: instants and their text forms, computed by hand.
 *
 * An instant is an int64 of microseconds (or, for HTTP, seconds) since the Unix epoch, UTC.
 * Two text forms: RFC 3339 for JSON bodies and log lines ("2026-11-23T09:30:00.123Z"), and
 * HTTP-date in its IMF-fixdate form for the Date, Last-Modified and If-Modified-Since
 * fields ("Sun, 06 Nov 1994 08:49:37 GMT", RFC 9110 5.6.7). Nothing here reads the TZ
 * environment or the locale (strftime's %a and %b would follow LC_TIME): the calendar is
 * Howard Hinnant's proleptic Gregorian arithmetic, exact for every instant an int64 of
 * microseconds can hold. Every function is pure and thread-safe, except that
 * pl_time_now_us reads the clock. */
#ifndef PL_TIME_H
#define PL_TIME_H

#include <stdint.h>

#include "pl/error.h"

/* The instants a timestamp may name: 0001-01-01T00:00:00Z ..= 9999-12-31T23:59:59.999999Z,
 * in microseconds since the epoch (what RFC 3339 in UTC and Postgres both print with a
 * four-digit year). */
#define PL_TIME_MIN_US (-INT64_C(62135596800000000))
#define PL_TIME_MAX_US INT64_C(253402300799999999)

/* The wall clock (CLOCK_REALTIME) in microseconds since the epoch. */
int64_t pl_time_now_us(void);

/* RFC 3339 ("2026-11-23T09:30:00Z", "2026-11-23T10:30:00.5+01:00"; 'T'/'t' and 'Z'/'z'
 * both accepted; seconds 60 refused; an offset is required, any from -23:59 to +23:59;
 * digits past the microsecond truncated). Returns 0 and microseconds since the epoch, or
 * PL_E_INVALID (*out_us untouched), also for an instant outside PL_TIME_MIN_US..
 * PL_TIME_MAX_US (year 0000, or a local time whose offset moves it out of years 0001..9999). */
PL_MUST_USE int pl_time_parse_rfc3339(const char *s, int64_t *out_us);

/* UTC with milliseconds, floored: "2026-11-23T09:30:00.123Z", always PL_RFC3339_LEN
 * characters and a NUL for an instant within PL_TIME_MIN_US..PL_TIME_MAX_US (out needs 32
 * bytes; outside that range the year has more digits and is cut at 31 characters). */
#define PL_RFC3339_LEN 24
void pl_time_format_rfc3339(int64_t us, char out[32]);

/* YYYY-MM-DD (a real calendar date). Returns 0 or PL_E_INVALID. */
PL_MUST_USE int pl_date_parse(const char *s, int *year, int *month, int *day);

/* IMF-fixdate of a second since the epoch: "Sun, 06 Nov 1994 08:49:37 GMT", always
 * PL_HTTP_DATE_LEN characters and a NUL (out needs 32 bytes). An instant outside years
 * 0001..9999 is clamped to the first or last second of that range. */
#define PL_HTTP_DATE_LEN 29
void pl_time_format_http(int64_t sec, char out[32]);

/* Parses an IMF-fixdate exactly as pl_time_format_http writes it: day and month names as
 * RFC 9110 spells them (case-sensitive), two-digit day, four-digit year, "GMT", nothing
 * before or after; the date must exist, seconds 00..59 (a leap second is refused). The
 * obsolete RFC 850 and asctime forms are not accepted. The day name is not checked against
 * the date. Returns 0 and seconds since the epoch, or PL_E_INVALID (*out_sec untouched). */
PL_MUST_USE int pl_time_parse_http(const char *s, int64_t *out_sec);

#endif
