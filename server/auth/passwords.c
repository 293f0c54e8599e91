#include "passwords.h"

#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "../app.h"
#include "../guards.h"
#include "../problems.h"
#include "auth_internal.h"
#include "pl/http.h"
#include "pl/json.h"
#include "pl/log.h"
#include "pl/mem.h"
#include "pl/metrics.h"

enum { OP_HASH, OP_VERIFY };

struct pw_job {
    uv_work_t work;
    struct worker *w;
    struct pl_http_request *req; /* NULL for background work (rehash after login) */
    uint64_t deadline;           /* loop time after which it may not start (queued jobs) */
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

const char *const passwords_outcome_names[PW_OUTCOMES] = {"hashed", "queue_full", "timed_out",
                                                          "client_gone"};

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

static void job_free(struct pw_job *j)
{
    sodium_memzero(j->password, j->password_len);
    free(j->password);
    sodium_memzero(j->hash, sizeof j->hash);
    free(j);
}

/* Delivers status to a job that did not run (or whose result is dropped), then frees it. */
static void job_fail(struct pw_job *j, int status)
{
    if (j->op == OP_HASH)
        j->hash_cb(status, NULL, j->ctx);
    else
        j->verify_cb(status, false, false, j->ctx);
    job_free(j);
}

static void count(struct app *app, enum passwords_outcome o)
{
    pl_metric_add(app->argon2_jobs, (size_t)o, 1);
}

static bool client_gone(const struct pw_job *j)
{
    return j->req && !pl_req_alive(j->req);
}

/* Takes one of PULSE_ARGON2_CONCURRENCY slots, or of PULSE_ARGON2_QUEUE places. */
static bool reserve(_Atomic int *counter, long long cap)
{
    int n = atomic_load(counter);
    while (n < cap)
        if (atomic_compare_exchange_weak(counter, &n, n + 1)) return true;
    return false;
}

/* The head of the queue leaves it: un-count it. */
static struct pw_job *pop(struct worker *w)
{
    struct pw_queue *q = &w->auth->pw;
    struct pw_job *j = q->head;
    q->head = j->next;
    if (!q->head) q->tail = NULL;
    j->next = NULL;
    atomic_fetch_sub(&w->app->pw_queued, 1);
    return j;
}

static void on_timeout(uv_timer_t *t);

/* The timer follows the head: jobs are FIFO with one wait limit, so it expires first. */
static void arm(struct worker *w)
{
    struct pw_queue *q = &w->auth->pw;
    if (q->closed) return;
    if (!q->head) {
        uv_timer_stop(&q->timer);
        return;
    }
    uint64_t now = uv_now(&w->loop);
    uv_timer_start(&q->timer, on_timeout, q->head->deadline > now ? q->head->deadline - now : 0, 0);
}

static void after_work(uv_work_t *wk, int status);

/* Runs j on the pool; a slot is already reserved for it. */
static void start(struct worker *w, struct pw_job *j)
{
    j->work.data = j;
    if (uv_queue_work(&w->loop, &j->work, work, after_work) != 0) {
        /* cannot happen with a live loop; fail the job rather than hang the request */
        atomic_fetch_sub(&w->app->pw_running, 1);
        job_fail(j, PL_E_INVALID);
    }
}

/* Starts queued jobs while slots are free, dropping those whose client has gone (they are
 * never hashed). Callbacks may queue more jobs: the head is read again every turn. */
static void try_start(struct worker *w)
{
    struct pw_queue *q = &w->auth->pw;
    struct app *app = w->app;
    while (q->head) {
        if (client_gone(q->head)) {
            count(app, PW_CLIENT_GONE);
            job_fail(pop(w), PL_E_CANCELLED);
            continue;
        }
        if (!reserve(&app->pw_running, app->cfg.argon2_concurrency)) break;
        start(w, pop(w));
    }
    arm(w);
}

/* Queued jobs past their wait limit answer 503 (those whose client has gone are counted
 * as such). */
static void on_timeout(uv_timer_t *t)
{
    struct worker *w = t->data;
    struct pw_queue *q = &w->auth->pw;
    uint64_t now = uv_now(&w->loop);
    while (q->head && q->head->deadline <= now) {
        struct pw_job *j = pop(w);
        bool gone = client_gone(j);
        count(w->app, gone ? PW_CLIENT_GONE : PW_TIMED_OUT);
        job_fail(j, gone ? PL_E_CANCELLED : PL_E_BUSY);
    }
    arm(w);
}

/* Removes this worker's queued jobs whose client has gone, to make room. */
static void drop_gone(struct worker *w)
{
    struct pw_queue *q = &w->auth->pw;
    struct pw_job *gone = NULL, **p = &q->head;
    q->tail = NULL;
    while (*p) {
        struct pw_job *j = *p;
        if (client_gone(j)) {
            *p = j->next;
            atomic_fetch_sub(&w->app->pw_queued, 1);
            j->next = gone;
            gone = j;
        } else {
            q->tail = j;
            p = &j->next;
        }
    }
    /* Callbacks run once the queue is consistent again (they may queue new jobs). */
    while (gone) {
        struct pw_job *j = gone;
        gone = j->next;
        count(w->app, PW_CLIENT_GONE);
        job_fail(j, PL_E_CANCELLED);
    }
}

static void after_work(uv_work_t *wk, int status)
{
    struct pw_job *j = wk->data;
    struct worker *w = j->w;
    struct pw_queue *q = &w->auth->pw;
    struct app *app = w->app;
    atomic_fetch_sub(&app->pw_running, 1);
    count(app, PW_HASHED);
    if (status < 0) j->failed = true;
    if (q->closed) {
        /* The worker's pool and server are gone: nothing may act on the result. */
        job_fail(j, PL_E_CANCELLED);
    } else if (j->op == OP_HASH) {
        if (j->failed) pl_error("password hashing failed");
        j->hash_cb(j->failed ? PL_E_INVALID : 0, j->failed ? NULL : j->hash, j->ctx);
        job_free(j);
    } else {
        j->verify_cb(0, j->ok && !j->failed && !j->dummy, j->needs_rehash, j->ctx);
        job_free(j);
    }
    /* A slot is free: this worker's queue first, then wake the others. */
    if (!q->closed) try_start(w);
    for (int i = 0; i < app->nworkers; i++)
        if (&app->workers[i] != w && !app->workers[i].stopping)
            uv_async_send(&app->workers[i].auth->pw.wakeup);
}

static void on_wakeup(uv_async_t *a)
{
    struct worker *w = a->data;
    struct pw_queue *q = &w->auth->pw;
    if (!q->closed) try_start(w);
}

void passwords_worker_init(struct worker *w)
{
    struct pw_queue *q = &w->auth->pw;
    uv_async_init(&w->loop, &q->wakeup, on_wakeup);
    q->wakeup.data = w;
    uv_timer_init(&w->loop, &q->timer);
    q->timer.data = w;
    q->closed = false;
}

void passwords_worker_close(struct worker *w)
{
    struct pw_queue *q = &w->auth->pw;
    q->closed = true;
    while (q->head)
        job_fail(pop(w), PL_E_CANCELLED);
    uv_close((uv_handle_t *)&q->timer, NULL);
    uv_close((uv_handle_t *)&q->wakeup, NULL);
}

static void enqueue(struct worker *w, struct pw_job *j)
{
    struct pw_queue *q = &w->auth->pw;
    struct app *app = w->app;
    j->w = w;
    if (q->closed) {
        job_fail(j, PL_E_CANCELLED);
        return;
    }
    /* Nobody waiting here and a slot free: no queueing at all. */
    if (!q->head && reserve(&app->pw_running, app->cfg.argon2_concurrency)) {
        start(w, j);
        return;
    }
    if (!reserve(&app->pw_queued, app->cfg.argon2_queue)) {
        drop_gone(w);
        if (!reserve(&app->pw_queued, app->cfg.argon2_queue)) {
            count(app, PW_QUEUE_FULL);
            job_fail(j, PL_E_BUSY);
            try_start(w);
            return;
        }
    }
    j->deadline = uv_now(&w->loop) + (uint64_t)app->cfg.argon2_wait_ms;
    if (q->tail)
        q->tail->next = j;
    else
        q->head = j;
    q->tail = j;
    try_start(w);
}

static struct pw_job *job_new(struct pl_http_request *req, const char *password)
{
    struct pw_job *j = pl_xcalloc(1, sizeof *j);
    j->req = req;
    j->password_len = strlen(password);
    j->password = pl_xmalloc(j->password_len + 1);
    memcpy(j->password, password, j->password_len + 1);
    return j;
}

void passwords_hash(struct worker *w, struct pl_http_request *req, const char *password,
                    passwords_hash_cb cb, void *ctx)
{
    struct pw_job *j = job_new(req, password);
    j->op = OP_HASH;
    j->hash_cb = cb;
    j->ctx = ctx;
    enqueue(w, j);
}

void passwords_verify(struct worker *w, struct pl_http_request *req, const char *password,
                      const char *hash, passwords_verify_cb cb, void *ctx)
{
    struct pw_job *j = job_new(req, password);
    j->op = OP_VERIFY;
    j->verify_cb = cb;
    j->ctx = ctx;
    const char *h = hash ? hash : w->app->dummy_hash;
    if (strlen(h) >= sizeof j->hash) h = w->app->dummy_hash;
    strcpy(j->hash, h);
    j->dummy = !hash; /* spends the same work, and never matches */
    enqueue(w, j);
}

bool passwords_failed(struct pl_http_request *req, int status)
{
    if (status == 0) return false;
    if (status == PL_E_BUSY || status == PL_E_CANCELLED) {
        /* The backlog is about one wait limit long: retrying sooner finds it as full. */
        long long s = (req_worker(req)->app->cfg.argon2_wait_ms + 999) / 1000;
        pl_resp_header(req, "Retry-After", pl_req_printf(req, "%lld", s < 1 ? 1 : s));
        pl_respond_problem(req, 503, "too many passwords are being checked, try again shortly",
                           NULL);
        return true;
    }
    reply_failure(req, status, "password hash");
    return true;
}
