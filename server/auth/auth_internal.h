/* auth_internal: what the files of server/auth share and no other folder may see: a worker's
 * auth state, which the rest of the server holds only as the opaque w->auth. */
#ifndef PULSE_AUTH_INTERNAL_H
#define PULSE_AUTH_INTERNAL_H

#include <stdbool.h>
#include <uv.h>

struct worker;
struct pw_job;
struct pl_redis_script;

/* A worker's password jobs waiting for a hashing slot (passwords.c). */
struct pw_queue {
    struct pw_job *head, *tail; /* FIFO */
    uv_async_t wakeup;          /* another worker freed a slot */
    uv_timer_t timer;           /* the head reaches PULSE_ARGON2_WAIT_MS */
    bool closed;                /* the worker is stopping: no new job */
};

struct auth_worker {
    /* the session scripts on the worker's Redis client (sessions.c) */
    struct pl_redis_script *sess_check, *sess_create, *sess_list, *sess_revoke;
    struct pw_queue pw;
    bool closed;
};

/* passwords.c: the queue's handles on the worker's loop (before the loop runs), and their
 * close, which fails the jobs still waiting with PL_E_CANCELLED (results of jobs still
 * running are dropped). */
void passwords_worker_init(struct worker *w);
void passwords_worker_close(struct worker *w);
/* sessions.c: registers the session scripts on the worker's Redis client. */
int sessions_worker_init(struct worker *w);

#endif
