/* passwords: Argon2id (libsodium crypto_pwhash_str) on the libuv thread pool, never on a
 * loop, at most PULSE_ARGON2_CONCURRENCY at once per process (the pool also serves fs and
 * DNS work). Jobs wait in their worker's FIFO for a slot. */
#ifndef PULSE_PASSWORDS_H
#define PULSE_PASSWORDS_H

#include <stdbool.h>

struct worker;
struct app;

/* Fires on the worker's loop. hash: `hash` is the encoded hash (NULL on failure).
 * verify: ok tells whether the password matched; `needs_rehash` whether the stored hash
 * uses other parameters than the configured ones. */
typedef void (*passwords_hash_cb)(const char *hash, void *ctx);
typedef void (*passwords_verify_cb)(bool ok, bool needs_rehash, void *ctx);

/* password is copied (and wiped after use). */
void passwords_hash(struct worker *w, const char *password, passwords_hash_cb cb, void *ctx);
/* hash NULL: verify against the dummy hash (always fails, same cost). */
void passwords_verify(struct worker *w, const char *password, const char *hash,
                      passwords_verify_cb cb, void *ctx);

/* Start-up (main thread, before workers): computes the dummy hash. Returns 0 or -1. */
int passwords_init(struct app *app);
/* Worker start/stop: the wake-up handle. */
void passwords_worker_init(struct worker *w);
void passwords_worker_close(struct worker *w);

/* NULL when the password is acceptable (12..128 code points), else a message. */
const char *passwords_check(const char *password);

#endif
