/* pulsed: command line, start-up, worker threads, signals and graceful drain.
 *
 * The main thread owns a small loop of its own: signals, the migration check that runs on
 * the thread pool until Postgres answers, and the shutdown sequence. Workers each own a loop
 * with an HTTP server, a Postgres pool and a Redis client; the main thread talks to them
 * only through atomics and uv_async.
 *
 * Once a worker thread exists, the process ends only by returning from main() after every
 * thread has been joined (or by _exit on a second signal): exit() runs the libraries'
 * destructors (libkrb5's, libpq's), which crash a thread still inside them. So every failure
 * found after start-up (migrations found pending later, a worker that cannot start) stops the
 * workers the way SIGTERM does, with the exit status it chose. */
#include <errno.h>
#include <signal.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "app.h"
#include "events.h"
#include "auth/auth.h"
#include "live/live.h"
#include "pl/log.h"
#include "pl/mem.h"
#include "pl/ratelimit.h"
#include "pl/ws.h"
#include "pl/static.h"
#include "records/records_store.h"
#include "users/user.h"

#define ENV_FILE ".env"

static struct app app;
static uv_loop_t main_loop;
static uv_signal_t sig_term, sig_int;
static uv_timer_t delay_timer, migrate_timer, stats_timer;
static int workers_running;
static uv_async_t worker_exited;
static int signals_seen;
static bool stopping;             /* the workers have been told to stop */
static atomic_int workers_failed; /* workers whose start failed */
static int exit_status;           /* cmd_serve's, once every thread has stopped */
/* The static UI (PULSE_WEB_ROOT), loaded once before the workers start and read-only after;
 * NULL when the folder is missing: UI paths then answer 404 and the API works as ever. */
static struct pl_static *web_ui;

static void serve_web_ui(struct pl_http_request *req, void *ctx)
{
    pl_static_serve(web_ui, req);
}

static void usage(FILE *f)
{
    fprintf(f, "usage: pulsed serve | pulsed migrate | pulsed --version | pulsed --help\n\n"
               "  serve      run the HTTP and WebSocket server\n"
               "  migrate    apply pending migrations from PULSE_MIGRATIONS_DIR and exit\n\n"
               "Settings come from the environment, then ./.env, then these defaults:\n");
    for (size_t i = 0; i < pulse_settings_count; i++) {
        const struct pl_setting *s = &pulse_settings[i];
        fprintf(f, "  %-26s %-22s %s\n", s->name,
                s->def ? (*s->def ? s->def : "(empty)") : "(required)", s->help);
    }
}

static int load_config(bool need_services)
{
    char err[512] = "";
    if (pulse_config_load(&app.cfg, ENV_FILE, need_services, err, sizeof err)) {
        pl_error("config invalid", PL_STR("error", err));
        pl_log_flush();
        fprintf(stderr, "pulsed: %s\n", err);
        return 2;
    }
    pl_log_set_level((enum pl_log_level)pl_log_level_parse(app.cfg.log_level));
    return 0;
}

/* Applies pending migrations as the schema owner (PULSE_MIGRATE_DATABASE_URL), then gives the
 * role of DATABASE_URL, when it is another one, its data rights. Blocking. Returns 0 or a
 * negative code with the reason in err; `granted_to` receives the role given rights, or "". */
static int migrate_and_grant(int *applied, char *granted_to, size_t granted_len, char *err,
                             size_t errlen)
{
    granted_to[0] = '\0';
    int rc =
        pl_pg_migrate(app.cfg.migrate_database_url, app.cfg.migrations_dir, applied, err, errlen);
    if (rc) return rc;
    char role[128];
    if (pl_pg_conninfo_user(app.cfg.database_url, role, sizeof role) != 0) {
        snprintf(err, errlen, "invalid DATABASE_URL");
        return PL_E_CONFIG;
    }
    rc = pl_pg_grant_service_role(app.cfg.migrate_database_url, role, err, errlen);
    if (rc == 1) snprintf(granted_to, granted_len, "%s", role);
    return rc < 0 ? rc : 0;
}

static int cmd_migrate(void)
{
    int rc = load_config(true);
    if (rc) return rc;
    char err[512] = "", role[128];
    int applied = 0;
    if (migrate_and_grant(&applied, role, sizeof role, err, sizeof err)) {
        pl_error("migrate failed", PL_STR("error", err));
        pl_log_flush();
        fprintf(stderr, "pulsed: migrate: %s\n", err);
        return 1;
    }
    pl_info("migrated", PL_INT("applied", applied), PL_STR("granted_to", role));
    pl_log_flush();
    return 0;
}

/* ---- workers ---- */

static void publish_stats(struct worker *w)
{
    struct pl_pg_stats ps;
    pl_pg_pool_stats(w->pg, &ps);
    atomic_store(&w->stats.pg_size, ps.size);
    atomic_store(&w->stats.pg_connected, ps.connected);
    atomic_store(&w->stats.pg_busy, ps.busy);
    atomic_store(&w->stats.pg_inflight, ps.inflight);
    atomic_store(&w->stats.pg_waiting, ps.waiting);
    atomic_store(&w->stats.pg_errors, ps.errors);
    struct pl_redis_stats rs;
    pl_redis_stats(w->redis, &rs);
    atomic_store(&w->stats.redis_connected, rs.connected ? 1 : 0);
    atomic_store(&w->stats.redis_errors, rs.errors);
    atomic_store(&w->stats.connections, w->http ? pl_http_server_connections(w->http) : 0);
}

#define CLEANUP_EVERY_TICKS 6000 /* 10 minutes of 100 ms ticks */

static void on_tick(uv_timer_t *t)
{
    struct worker *w = t->data;
    if (w->pg && w->redis) publish_stats(w);
    if (w->http) {
        int n = pl_http_server_inflight(w->http);
        if (n > atomic_load(&w->stats.inflight_peak)) atomic_store(&w->stats.inflight_peak, n);
    }
    /* Worker 0 expires idempotency records now and then (they are kept 24 h). */
    if (w->id == 0 && w->pg && ++w->ticks % CLEANUP_EVERY_TICKS == 1 && atomic_load(&app.migrated))
        records_cleanup(w->pg);
    pl_log_flush();
}

static void worker_close_all(struct worker *w);

/* Shutdown waits for two things: the HTTP drain and the WebSockets' 1001 closes. */
static void stop_part_done(struct worker *w)
{
    if (--w->stop_parts == 0) worker_close_all(w);
}

static void on_drained(struct pl_http_server *s, void *arg)
{
    stop_part_done(arg);
}

static void on_wakeup(uv_async_t *a)
{
    struct worker *w = a->data;
    int cmd = atomic_exchange(&w->command, 0);
    if (w->stopping) return;
    if (cmd >= 1 && w->http) pl_http_server_close_responses(w->http);
    if (cmd >= 2) {
        w->stopping = true;
        w->stop_parts = 2;
        pl_http_server_stop_accepting(w->http);
        live_worker_stop(w, stop_part_done);
        pl_http_server_drain(w->http, (uint64_t)app.cfg.drain_ms, on_drained, w);
    }
}

static void worker_close_all(struct worker *w)
{
    pl_log_flush();
    live_worker_close(w);
    events_worker_close(w);
    pl_http_server_destroy(w->http);
    w->http = NULL;
    pl_pg_pool_destroy(w->pg);
    w->pg = NULL;
    pl_ratelimit_destroy(w->ratelimit);
    w->ratelimit = NULL;
    pl_redis_destroy(w->redis);
    w->redis = NULL;
    auth_worker_close(w);
    uv_close((uv_handle_t *)&w->tick, NULL);
    uv_close((uv_handle_t *)&w->wakeup, NULL);
}

int worker_start(struct worker *w)
{
    struct pulse_config *cfg = &w->app->cfg;
    /* First what cannot fail, so that worker_close_all() can undo any partial start. */
    uv_timer_init(&w->loop, &w->tick);
    w->tick.data = w;
    struct pl_pg_config pgc = {
        .conninfo = cfg->database_url,
        .size = (int)cfg->pg_pool,
        .max_inflight = 256,
        .max_waiters = (int)cfg->pg_max_waiters,
        .wait_timeout_ms = (int)cfg->pg_wait_ms,
        .connect_timeout_ms = 5000,
        .query_timeout_ms = 30000,
        .wait_seconds = w->app->pg_wait,
    };
    int rc = pl_pg_pool_create(&w->loop, &pgc, &w->pg);
    if (rc == 0) rc = app_prepare_statements(w->pg);
    if (rc) return rc;
    struct pl_redis_config rcfg = {
        .url = cfg->redis_url, .connect_timeout_ms = 2000, .command_timeout_ms = 2000};
    rc = pl_redis_create(&w->loop, &rcfg, &w->redis);
    if (rc == 0) rc = pl_ratelimit_create(&w->loop, w->redis, "pulse:rl:", &w->ratelimit);
    if (rc == 0) rc = auth_worker_start(w);
    if (rc == 0) rc = events_worker_start(w);
    if (rc) return rc;
    rc = live_worker_init(w);
    if (rc) return rc;
    struct pl_http_config hc = {
        .max_head_bytes = (size_t)cfg->max_head_bytes,
        .max_body_bytes = (size_t)cfg->max_body_bytes,
        .head_timeout_ms = (uint64_t)cfg->head_timeout_ms,
        .idle_timeout_ms = (uint64_t)cfg->idle_timeout_ms,
        .max_connections = (int)cfg->max_connections,
        .conn_count = &w->app->conn_count,
        .access_log = cfg->access_log,
        .hsts = cfg->hsts,
        .public_origin = cfg->public_origin,
        .cors_origins = cfg->cors_origins,
        .router = w->app->router,
        .metrics = w->app->metrics,
        .dispatch = app_dispatch,
        .fallback = serve_web_ui,
        .ctx = w,
    };
    rc = pl_http_server_create(&w->loop, &hc, w->listen_fd, &w->http);
    if (rc) return rc;
    uv_timer_start(&w->tick, on_tick, 100, 100);
    return 0;
}

static void worker_main(void *arg)
{
    struct worker *w = arg;
    int rc = worker_start(w);
    if (rc) {
        /* Not exit(): the other threads are running. Undo what started and tell the main
         * thread, which stops the others and exits 1. */
        pl_error("worker failed to start", PL_INT("worker", w->id),
                 PL_STR("error", pl_strerror(rc)));
        fprintf(stderr, "pulsed: worker %d failed to start: %s\n", w->id, pl_strerror(rc));
        worker_close_all(w);
        atomic_fetch_add(&workers_failed, 1);
    } else if (atomic_load(&w->command)) {
        /* A command may have arrived before the loop ran. */
        uv_async_send(&w->wakeup);
    }
    uv_run(&w->loop, UV_RUN_DEFAULT);
    pl_log_flush();
    atomic_store(&w->exited, true);
    uv_async_send(&worker_exited);
}

/* ---- main loop: migrations, signals, shutdown ---- */

struct migrate_job {
    uv_work_t work;
    int pending; /* migrations not applied, or a negative code */
    int applied;
    int rc;
    char granted_to[128];
    char err[512];
};

static bool migrate_busy;

/* What the pending check reads schema_migrations as: the owner when serve migrates itself,
 * else the service's own role (the migrations granted it SELECT on that table). */
static const char *check_url(void)
{
    return app.cfg.auto_migrate ? app.cfg.migrate_database_url : app.cfg.database_url;
}

static void report_pending(int pending)
{
    pl_error("migrations pending: run `pulsed migrate` or set PULSE_AUTO_MIGRATE=1",
             PL_INT("pending", pending));
    pl_log_flush();
    fprintf(stderr, "pulsed: %d migration(s) pending: run `pulsed migrate` first\n", pending);
}

static void migrate_work(uv_work_t *wk)
{
    struct migrate_job *j = wk->data;
    j->rc = 0;
    if (app.cfg.auto_migrate) {
        /* Also when nothing is pending: the grants are idempotent and may be missing. */
        j->rc = migrate_and_grant(&j->applied, j->granted_to, sizeof j->granted_to, j->err,
                                  sizeof j->err);
        j->pending = j->rc;
    } else {
        j->pending = pl_pg_migrations_pending(app.cfg.database_url, app.cfg.migrations_dir, j->err,
                                              sizeof j->err);
    }
    if (j->pending == 0 && j->rc == 0 && timezones_load(&app, j->err, sizeof j->err) != 0)
        j->rc = -1;
}

static void fail_after_start(int status);

static void migrate_done(uv_work_t *wk, int status)
{
    struct migrate_job *j = wk->data;
    migrate_busy = false;
    if (j->pending > 0) {
        /* Postgres was unreachable at start-up and has pending migrations now. */
        report_pending(j->pending);
        fail_after_start(1);
    } else if (j->pending < 0 || j->rc) {
        pl_warn("migration check failed, retrying", PL_STR("error", j->err));
    } else {
        if (app.cfg.auto_migrate)
            pl_info("migrated", PL_INT("applied", j->applied), PL_STR("granted_to", j->granted_to));
        atomic_store(&app.migrated, true);
        int expected = APP_STARTING;
        atomic_compare_exchange_strong(&app.state, &expected, APP_READY);
        uv_timer_stop(&migrate_timer);
    }
    free(j);
    pl_log_flush();
}

static void on_migrate_timer(uv_timer_t *t)
{
    if (migrate_busy || atomic_load(&app.migrated)) return;
    struct migrate_job *j = pl_xcalloc(1, sizeof *j);
    j->work.data = j;
    migrate_busy = true;
    uv_queue_work(&main_loop, &j->work, migrate_work, migrate_done);
}

/* Before any thread exists, where returning from main() is safe: a reachable database with
 * migrations pending (and no PULSE_AUTO_MIGRATE) refuses the start. An unreachable one is
 * waited for: the loop checks again every 2 s while /health/ready says `starting`. */
static int check_migrations_at_start(void)
{
    char err[512] = "";
    int pending = pl_pg_migrations_pending(check_url(), app.cfg.migrations_dir, err, sizeof err);
    if (pending == 0 || (pending > 0 && app.cfg.auto_migrate)) return 0;
    if (pending > 0) {
        report_pending(pending);
        return 1;
    }
    if (pending == PL_E_UNAVAILABLE) {
        pl_warn("postgres unreachable: serving, not ready, checking again every 2 s",
                PL_STR("error", err));
        return 0;
    }
    pl_error("cannot check migrations", PL_STR("error", err));
    pl_log_flush();
    fprintf(stderr, "pulsed: cannot check migrations: %s\n", err);
    return pending == PL_E_CONFIG ? 2 : 1;
}

static void on_stats_timer(uv_timer_t *t)
{
    pl_log_flush();
}

static void tell_workers(int cmd)
{
    for (int i = 0; i < workers_running; i++) {
        if (atomic_load(&app.workers[i].exited)) continue;
        atomic_store(&app.workers[i].command, cmd);
        uv_async_send(&app.workers[i].wakeup);
    }
}

/* Closes the listeners and drains, once. */
static void stop_workers(void)
{
    if (stopping) return;
    stopping = true;
    uv_timer_stop(&migrate_timer);
    pl_info("closing listeners and draining", PL_INT("drain_ms", app.cfg.drain_ms));
    pl_log_flush();
    /* No metrics message may be handed to a worker that is closing its handles. */
    live_sampler_stop(&app);
    tell_workers(2);
}

static void on_delay_over(uv_timer_t *t)
{
    stop_workers();
}

static void close_main_handles(void)
{
    uv_close((uv_handle_t *)&sig_term, NULL);
    uv_close((uv_handle_t *)&sig_int, NULL);
    uv_close((uv_handle_t *)&delay_timer, NULL);
    uv_close((uv_handle_t *)&migrate_timer, NULL);
    uv_close((uv_handle_t *)&stats_timer, NULL);
    uv_close((uv_handle_t *)&worker_exited, NULL);
    live_sampler_stop(&app);
}

/* A failure after the workers started: they stop at once (no shutdown delay: nothing was
 * ready to be taken out of a load balancer's rotation), then main() returns `status`. */
static void fail_after_start(int status)
{
    exit_status = status;
    atomic_store(&app.state, APP_DRAINING);
    uv_timer_stop(&delay_timer);
    stop_workers();
    if (workers_running == 0 && !uv_is_closing((uv_handle_t *)&worker_exited)) close_main_handles();
}

static void on_signal(uv_signal_t *s, int signum)
{
    if (++signals_seen > 1) {
        /* _exit, not exit: it runs no atexit handler and no library destructor, so the
         * threads still running cannot trip over torn-down library state; the kernel takes
         * back memory, sockets and Postgres connections. The log is flushed first. */
        pl_warn("second signal: exiting now", PL_INT("signal", signum));
        pl_log_flush();
        _exit(1);
    }
    if (stopping) return; /* already stopping after a failure */
    atomic_store(&app.state, APP_DRAINING);
    tell_workers(1);
    pl_info("shutting down", PL_INT("signal", signum),
            PL_INT("shutdown_delay_ms", app.cfg.shutdown_delay_ms));
    pl_log_flush();
    uv_timer_start(&delay_timer, on_delay_over, (uint64_t)app.cfg.shutdown_delay_ms, 0);
}

static void on_worker_exited(uv_async_t *a)
{
    /* A worker that could not start stops the others. */
    if (atomic_load(&workers_failed) > 0 && !stopping) fail_after_start(1);
    /* uv_async_send coalesces: count the threads that are really done. */
    int done = 0;
    for (int i = 0; i < workers_running; i++)
        if (atomic_load(&app.workers[i].exited)) done++;
    if (done < workers_running) return;
    close_main_handles();
}

static void raise_fd_limit(long long want)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0) return;
    rlim_t target = (rlim_t)want;
    if (rl.rlim_max != RLIM_INFINITY && target > rl.rlim_max) target = rl.rlim_max;
    if (rl.rlim_cur < target) {
        rl.rlim_cur = target;
        if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
            pl_warn("could not raise RLIMIT_NOFILE", PL_INT("wanted", want));
    }
}

/* The static UI, when PULSE_WEB_ROOT holds one (web_ui stays NULL otherwise). */
static void load_web_ui(void)
{
    static const char *const api_prefixes[] = {"/api", "/health", NULL};
    /* WebSockets to the public origin only (the config check made sure it fits a policy). */
    char csp[512], err[256] = "";
    bool csp_ok = pl_static_csp(app.cfg.public_origin, csp, sizeof csp) >= 0;
    struct pl_static_config web_cfg = {
        .root = app.cfg.web_root, .csp = csp_ok ? csp : NULL, .no_fallback = api_prefixes};
    if (pl_static_load(&web_cfg, &web_ui, err, sizeof err) == 0)
        pl_info("web UI loaded", PL_STR("root", app.cfg.web_root),
                PL_UINT("files", pl_static_count(web_ui)));
    else
        pl_warn("web UI not served", PL_STR("root", app.cfg.web_root), PL_STR("error", err));
}

/* Everything before the listeners: config, libraries, the app, the UI, thread counts and the
 * migration check. Returns 0 or cmd_serve's exit status. */
static int serve_prepare(void)
{
    int rc = load_config(true);
    if (rc) return rc;
    signal(SIGPIPE, SIG_IGN);
    pl_ws_log_init();
    if (sodium_init() < 0) {
        fprintf(stderr, "pulsed: libsodium failed to initialise\n");
        return 1;
    }
    pl_config_log(pulse_settings, pulse_settings_count, &app.cfg);
    raise_fd_limit(app.cfg.max_connections + 1024);
    char err[256] = "";
    if ((rc = app_init(&app, err, sizeof err)) != 0) {
        fprintf(stderr, "pulsed: %s\n", err);
        return rc == PL_E_CONFIG ? 2 : 1;
    }
    load_web_ui();
    app.nworkers = (int)app.cfg.workers;
    if (app.nworkers == 0) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        app.nworkers = n > 0 ? (int)n : 1;
    }
    /* The thread pool runs password hashing and migrations; fs and DNS work share it. */
    if (!getenv("UV_THREADPOOL_SIZE")) {
        char n[32];
        snprintf(n, sizeof n, "%d", (int)app.cfg.argon2_concurrency + 4);
        setenv("UV_THREADPOOL_SIZE", n, 1);
    }
    return check_migrations_at_start();
}

/* One listening socket per worker (SO_REUSEPORT) on PULSE_LISTEN; `host` and `port` get the
 * address (the port chosen when it was 0). Returns 0 or an exit status. */
static int open_listeners(char *host, size_t hostlen, int *port)
{
    if (pl_http_parse_listen(app.cfg.listen, host, hostlen, port)) return 2;
    app.workers = pl_xcalloc((size_t)app.nworkers, sizeof *app.workers);
    for (int i = 0; i < app.nworkers; i++) {
        int fd = pl_http_listen_socket(host, port, 4096);
        if (fd < 0) {
            fprintf(stderr, "pulsed: cannot listen on %s: %s\n", app.cfg.listen, pl_strerror(fd));
            return 1;
        }
        app.workers[i].listen_fd = fd;
    }
    app.port = *port;
    return 0;
}

static void main_loop_init(void)
{
    uv_loop_init(&main_loop);
    uv_signal_init(&main_loop, &sig_term);
    uv_signal_init(&main_loop, &sig_int);
    uv_signal_start(&sig_term, on_signal, SIGTERM);
    uv_signal_start(&sig_int, on_signal, SIGINT);
    uv_timer_init(&main_loop, &delay_timer);
    uv_timer_init(&main_loop, &migrate_timer);
    uv_timer_init(&main_loop, &stats_timer);
    uv_async_init(&main_loop, &worker_exited, on_worker_exited);
    uv_timer_start(&migrate_timer, on_migrate_timer, 0, 2000);
    uv_timer_start(&stats_timer, on_stats_timer, 200, 200);
}

/* The workers' loops and the handles other threads signal, before any thread starts. */
static void workers_init(void)
{
    for (int i = 0; i < app.nworkers; i++) {
        struct worker *w = &app.workers[i];
        w->app = &app;
        w->id = i;
        uv_loop_init(&w->loop);
        uv_async_init(&w->loop, &w->wakeup, on_wakeup);
        w->wakeup.data = w;
        live_worker_async_init(w);
        auth_worker_create(w);
    }
}

/* Starts the worker threads; a thread that cannot be created stops those already running. */
static void workers_launch(const char *host, int port)
{
    for (int i = 0; i < app.nworkers; i++) {
        int err_thread = uv_thread_create(&app.workers[i].thread, worker_main, &app.workers[i]);
        if (err_thread != 0) {
            /* Those already running are stopped and joined before main() returns. */
            pl_error("cannot start worker threads", PL_INT("started", workers_running),
                     PL_STR("error", uv_strerror(err_thread)));
            pl_log_flush();
            fprintf(stderr, "pulsed: cannot start worker threads: %s\n", uv_strerror(err_thread));
            fail_after_start(1);
            break;
        }
        workers_running++;
    }
    if (stopping) return;
    char addr[300];
    snprintf(addr, sizeof addr, strchr(host, ':') ? "[%s]:%d" : "%s:%d", host, port);
    pl_info("listening", PL_STR("address", addr), PL_INT("port", port),
            PL_INT("workers", app.nworkers), PL_STR("version", PULSE_VERSION),
            PL_STR("instance", app.cfg.instance));
    pl_log_flush();
}

/* After the main loop has returned: joins the threads and empties every worker's loop. */
static void workers_join(void)
{
    for (int i = 0; i < app.nworkers; i++) {
        struct worker *w = &app.workers[i];
        if (i < workers_running) {
            uv_thread_join(&w->thread);
        } else { /* never started: only the handles made by workers_init */
            uv_close((uv_handle_t *)&w->wakeup, NULL);
            live_worker_close(w);
            auth_worker_close(w);
        }
        /* Let close callbacks of the worker's handles run, then the loop must be empty. */
        uv_run(&w->loop, UV_RUN_DEFAULT);
        live_worker_finish(w);
        uv_run(&w->loop, UV_RUN_DEFAULT);
        auth_worker_destroy(w);
        if (uv_loop_close(&w->loop) != 0)
            pl_warn("worker loop not empty at exit", PL_INT("worker", i));
    }
}

static int cmd_serve(void)
{
    int rc = serve_prepare();
    if (rc) return rc;
    char host[256];
    int port;
    if ((rc = open_listeners(host, sizeof host, &port)) != 0) return rc;
    main_loop_init();
    workers_init();
    if (live_sampler_start(&app, &main_loop) != 0) {
        fprintf(stderr, "pulsed: cannot start the metrics sampler\n");
        return 1;
    }
    workers_launch(host, port);
    uv_run(&main_loop, UV_RUN_DEFAULT);
    workers_join();
    uv_run(&main_loop, UV_RUN_DEFAULT);
    uv_loop_close(&main_loop);
    if (atomic_load(&workers_failed) > 0) exit_status = 1;
    pl_info("stopped", PL_INT("status", exit_status));
    pl_log_flush();
    free(app.workers);
    app_dispose(&app);
    pl_static_destroy(web_ui);
    pulse_config_dispose(&app.cfg);
    return exit_status;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    const char *cmd = argv[1];
    if (strcmp(cmd, "--version") == 0 || strcmp(cmd, "version") == 0) {
        printf("pulsed %s\n", PULSE_VERSION);
        return 0;
    }
    if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0 || strcmp(cmd, "help") == 0) {
        usage(stdout);
        return 0;
    }
    if (argc > 2) {
        fprintf(stderr, "pulsed: unexpected argument %s\n", argv[2]);
        return 2;
    }
    if (strcmp(cmd, "serve") == 0) return cmd_serve();
    if (strcmp(cmd, "migrate") == 0) return cmd_migrate();
    fprintf(stderr, "pulsed: unknown command %s\n", cmd);
    usage(stderr);
    return 2;
}
