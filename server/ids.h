/* ids: the shapes of identifiers that arrive in paths, cursors, credentials and Redis
 * replies, checked before anything is looked up (an id of the wrong shape is simply not
 * found, after authentication, as the contract orders it); and what credentials are made
 * of: random secrets (libsodium's generator) and the hashes they are stored under. */
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

#define IDS_SECRET_LEN 43 /* base64url of 32 random bytes */
#define IDS_HASH_HEX   64 /* BLAKE2b-256 in hex */
/* Writes `prefix` ("" for none) then IDS_SECRET_LEN random base64url characters and a NUL
 * into out; cap must be at least strlen(prefix) + IDS_SECRET_LEN + 1. */
void ids_new_secret(const char *prefix, char *out, size_t cap);
/* BLAKE2b-256 of data[0..len) as lower-case hex (the key a secret is stored under). */
void ids_hash_hex(const void *data, size_t len, char out[IDS_HASH_HEX + 1]);

#endif
