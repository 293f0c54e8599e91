#include "passwords.h"

#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "../app.h"
#include "pl/json.h"
#include "pl/log.h"

enum { OP_HASH, OP_VERIFY };

struct pw_job {
    uv_work_t work;
    struct worker *w;
    int op;
    char *password;
    size_t password_len;
    char hash[crypto_pwhash_STRBYTES];
    bool ok, needs_rehash, failed, dummy;
    passwords_hash_cb hash_cb;
    passwords_verify_cb verify_cb;
    void *ctx;
    struct pw_job *next;
};

const char *passwords_check(const char *password)
{
    size_t n = pl_utf8_length(password, strlen(password));
    if (n < 12) return "must be at least 12 characters";
    if (n > 128) return "must be at most 128 characters";
    return NULL;
}

int passwords_init(struct app *app)
{
    unsigned char random[32];
    char pw[65];
    randombytes_buf(random, sizeof random);
    sodium_bin2hex(pw, sizeof pw, random, sizeof random);
    int rc = crypto_pwhash_str(app->dummy_hash, pw, strlen(pw),
                               (unsigned long long)app->cfg.argon2_opslimit,
                               (size_t)app->cfg.argon2_memlimit);
    sodium_memzero(pw, sizeof pw);
    return rc == 0 ? 0 : -1;
}

static void work(uv_work_t *wk)
{
    struct pw_job *j = wk->data;
    const struct pulse_config *cfg = &j->w->app->cfg;
    unsigned long long ops = (unsigned long long)cfg->argon2_opslimit;
    size_t mem = (size_t)cfg->argon2_memlimit;
    if (j->op == OP_HASH) {
        j->failed = crypto_pwhash_str(j->hash, j->password, j->password_len, ops, mem) != 0;
    } else {
        j->ok = crypto_pwhash_str_verify(j->hash, j->password, j->password_len) == 0;
        j->needs_rehash = j->ok && crypto_pwhash_str_needs_rehash(j->hash, ops, mem) != 0;
    }
    sodium_memzero(j->password, j->password_len);
}

static void try_start(struct worker *w);

static void after_work(uv_work_t *wk, int status)
{
    struct pw_job *j = wk->data;
    struct worker *w = j->w;
    struct app *app = w->app;
    atomic_fetch_sub(&app->pw_running, 1);
    if (status < 0) j->failed = true;
    if (j->op == OP_HASH) {
        if (j->failed) pl_error("password hashing failed");
        j->hash_cb(j->failed ? NULL : j->hash, j->ctx);
    } else {
        j->verify_cb(j->ok && !j->failed && !j->dummy, j->needs_rehash, j->ctx);
    }
    free(j->password);
    sodium_memzero(j->hash, sizeof j->hash);
    free(j);
    /* A slot is free: this worker's queue first, then wake the others. */
    try_start(w);
    for (int i = 0; i < app->nworkers; i++)
        if (&app->workers[i] != w && !app->workers[i].stopping)
            uv_async_send(&app->workers[i].pw_wakeup);
}

static void try_start(struct worker *w)
{
    struct app *app = w->app;
    int cap = (int)app->cfg.argon2_concurrency;
    while (w->pw_head) {
        int running = atomic_load(&app->pw_running);
        if (running >= cap) return;
        if (!atomic_compare_exchange_weak(&app->pw_running, &running, running + 1)) continue;
        struct pw_job *j = w->pw_head;
        w->pw_head = j->next;
        if (!w->pw_head) w->pw_tail = NULL;
        j->work.data = j;
        if (uv_queue_work(&w->loop, &j->work, work, after_work) != 0) {
            /* cannot happen with a live loop; fail the job rather than hang the request */
            j->failed = true;
            after_work(&j->work, UV_ECANCELED);
        }
    }
}

static void on_wakeup(uv_async_t *a)
{
    try_start(a->data);
}

void passwords_worker_init(struct worker *w)
{
    uv_async_init(&w->loop, &w->pw_wakeup, on_wakeup);
    w->pw_wakeup.data = w;
}

void passwords_worker_close(struct worker *w)
{
    uv_close((uv_handle_t *)&w->pw_wakeup, NULL);
}

static void enqueue(struct worker *w, struct pw_job *j)
{
    j->w = w;
    if (w->pw_tail)
        w->pw_tail->next = j;
    else
        w->pw_head = j;
    w->pw_tail = j;
    try_start(w);
}

static struct pw_job *job_new(const char *password)
{
    struct pw_job *j = calloc(1, sizeof *j);
    if (!j) abort();
    j->password_len = strlen(password);
    j->password = malloc(j->password_len + 1);
    if (!j->password) abort();
    memcpy(j->password, password, j->password_len + 1);
    return j;
}

void passwords_hash(struct worker *w, const char *password, passwords_hash_cb cb, void *ctx)
{
    struct pw_job *j = job_new(password);
    j->op = OP_HASH;
    j->hash_cb = cb;
    j->ctx = ctx;
    enqueue(w, j);
}

void passwords_verify(struct worker *w, const char *password, const char *hash,
                      passwords_verify_cb cb, void *ctx)
{
    struct pw_job *j = job_new(password);
    j->op = OP_VERIFY;
    j->verify_cb = cb;
    j->ctx = ctx;
    const char *h = hash ? hash : w->app->dummy_hash;
    if (strlen(h) >= sizeof j->hash) h = w->app->dummy_hash;
    strcpy(j->hash, h);
    j->dummy = !hash; /* spends the same work, and never matches */
    enqueue(w, j);
}
