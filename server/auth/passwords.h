/* passwords: Argon2id (libsodium crypto_pwhash_str) on the libuv thread pool, never on a
 * loop, at most PULSE_ARGON2_CONCURRENCY at once per process (the pool also serves fs and
 * DNS work). Jobs wait in their worker's FIFO for a slot, and that wait is bounded: at most
 * PULSE_ARGON2_QUEUE jobs wait per process (all workers together), none longer than
 * PULSE_ARGON2_WAIT_MS, and a job whose client has gone is dropped without hashing, so a
 * burst of logins cannot grow memory or latency without limit. */
#ifndef PULSE_PASSWORDS_H
#define PULSE_PASSWORDS_H

#include <stdbool.h>

struct worker;
struct app;
struct pl_http_request;

/* Callbacks fire on the worker's loop, exactly once; with a non-zero status possibly before
 * passwords_hash/verify returns (a full queue). status:
 *   0                  done: hash: `hash` is the encoded hash; verify: `ok` tells whether the
 *                      password matched, `needs_rehash` whether the stored hash uses other
 *                      parameters than the configured ones;
 *   PL_E_BUSY          the queue was full, or the job waited longer than PULSE_ARGON2_WAIT_MS:
 *                      nothing was hashed (passwords_failed answers 503);
 *   PL_E_CANCELLED     the client went away before a slot was free, or the worker is
 *                      stopping: nothing was hashed (or the result is dropped);
 *   PL_E_INVALID       libsodium failed (out of memory). */
typedef void (*passwords_hash_cb)(int status, const char *hash, void *ctx);
typedef void (*passwords_verify_cb)(int status, bool ok, bool needs_rehash, void *ctx);

/* password is copied (and wiped after use). req (borrowed, may be NULL for background work)
 * is the request waiting for the answer: while it waits in the queue, a gone client
 * (pl_req_alive false) cancels the job. */
void passwords_hash(struct worker *w, struct pl_http_request *req, const char *password,
                    passwords_hash_cb cb, void *ctx);
/* hash NULL: verify against the dummy hash (always fails, same cost). */
void passwords_verify(struct worker *w, struct pl_http_request *req, const char *password,
                      const char *hash, passwords_verify_cb cb, void *ctx);

/* The callbacks' first step: false when status is 0; otherwise answers it (PL_E_BUSY and
 * PL_E_CANCELLED: 503 /problems/unavailable with a Retry-After of about one wait limit;
 * anything else 500) and returns true (then return at once). */
bool passwords_failed(struct pl_http_request *req, int status);

/* Start-up (main thread, before workers): computes the dummy hash. Returns 0 or -1. */
int passwords_init(struct app *app);
/* What became of password jobs, for /metrics (pulse_argon2_jobs_total{outcome}). */
enum passwords_outcome { PW_HASHED, PW_QUEUE_FULL, PW_TIMED_OUT, PW_CLIENT_GONE, PW_OUTCOMES };
extern const char *const passwords_outcome_names[PW_OUTCOMES];

/* NULL when the password is acceptable (12..128 code points), else a message. */
const char *passwords_check(const char *password);

#endif
