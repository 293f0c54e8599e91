/* ids: the shapes of identifiers that arrive in paths, cursors, credentials and Redis
 * replies, checked before anything is looked up (an id of the wrong shape is simply not
 * found, after authentication, as the contract orders it). Pure functions. */
#ifndef PULSE_IDS_H
#define PULSE_IDS_H

#include <stdbool.h>
#include <stddef.h>

/* true when s is a canonical UUID: 8-4-4-4-12 hex digits, either case. */
bool ids_is_uuid(const char *s);
/* true when s[0..len) are lower-case hex digits, as hashes print (len 0: true). */
bool ids_is_hex(const char *s, size_t len);
/* true when s[0..len) are base64url characters (A-Z a-z 0-9 - _), as random tokens are
 * written (len 0: true). */
bool ids_is_base64url(const char *s, size_t len);

#endif
