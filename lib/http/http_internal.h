/* Shared between lib/http files only. */
#ifndef PL_HTTP_INTERNAL_H
#define PL_HTTP_INTERNAL_H

#include <stdint.h>

#include "pl/http.h"

#define PL_ROUTE_UNMATCHED (-1)
#define PL_ROUTE_STATIC    (-2)

void pl_http_metrics_record(struct pl_http_metrics *m, int route_index, unsigned method, int status,
                            uint64_t duration_ns);

/* Percent-decodes src[0..len) into dst (capacity >= len + 1); '+' becomes ' ' when
 * plus_is_space. Returns the decoded length or -1 on a malformed escape or a NUL byte. */
long pl_http_percent_decode(const char *src, size_t len, char *dst, int plus_is_space);

#endif
