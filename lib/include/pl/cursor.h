/* cursor: opaque keyset-pagination cursors.
 *
 * A cursor is base64url (no padding) of "c1" followed by its fields, each preceded by '.'.
 * Fields are short ASCII strings without '.'; the caller validates their meaning after
 * decoding (a cursor is client input). Tampering cannot reach another user's rows: list
 * queries are scoped by the caller's user id whatever the cursor says. */
#ifndef PL_CURSOR_H
#define PL_CURSOR_H

#include <stddef.h>

#include "pl/error.h"

#define PL_CURSOR_MAX 256 /* encoded length limit */

/* Encodes n fields into out (cap >= PL_CURSOR_MAX + 1). Returns 0 or PL_E_INVALID (a field
 * holds '.' or is not printable ASCII, or the result would be too long). */
PL_MUST_USE int pl_cursor_encode(const char *const *fields, int n, char *out, size_t cap);

/* Decodes `s` into exactly n fields pointing into buf (cap >= PL_CURSOR_MAX). Returns 0 or
 * PL_E_INVALID for anything else (bad base64, wrong version, wrong field count, too long). */
PL_MUST_USE int pl_cursor_decode(const char *s, char **fields, int n, char *buf, size_t cap);

#endif
