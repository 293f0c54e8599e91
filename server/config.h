/* config: every PULSE_* setting, its default and bounds (see .env.example). */
#ifndef PULSE_CONFIG_H
#define PULSE_CONFIG_H

#include <stdbool.h>
#include <stddef.h>

#include "pl/config.h"

struct pulse_config {
    char *listen;
    long long workers; /* 0 = number of cores */
    char *database_url;
    char *migrate_database_url; /* the schema owner's; DATABASE_URL when not set */
    char *redis_url;
    long long pg_pool;
    long long pg_wait_ms;
    long long pg_max_waiters;
    char *web_root;
    char *public_origin;
    char *cors_origins;
    bool cookie_secure;
    char *trusted_proxies;
    long long metrics_interval_ms;
    char *metrics_token;
    bool rate_limits;
    char *log_level;
    long long drain_ms;
    long long max_connections;
    long long max_head_bytes;
    long long max_body_bytes;
    long long head_timeout_ms;
    long long idle_timeout_ms;
    long long shutdown_delay_ms;
    bool auto_migrate;
    char *migrations_dir;
    long long argon2_opslimit;
    long long argon2_memlimit;
    long long argon2_concurrency;
    long long argon2_queue;   /* jobs waiting for a slot, all workers together */
    long long argon2_wait_ms; /* longest wait for a slot */
    long long session_idle_s;
    long long session_absolute_s;
    struct pl_rate rate_login, rate_login_ip, rate_register, rate_read, rate_write, rate_export;
    /* care circles: POST /invitations/accept per user; subjects per user, members and pending
     * invitations per subject (over a quota: 409) */
    struct pl_rate rate_invitation_accept;
    long long quota_subjects, quota_members, quota_invitations;
    bool hsts;
    bool access_log;
    char *instance;
    long long ws_queue_bytes, ws_stall_ms, ws_ping_s, ws_recheck_s, ws_per_user, ws_per_ip;
    char *scale_profile;
    long long scale_p95_warn_ms, scale_p95_ms, scale_concurrency, scale_rss_mb, scale_error_percent;
    /* events (server/events.c): retention of the per-user streams, the outbox sweeper */
    long long events_retain_s, events_retain_count, events_sweep_ms, events_sweep_age_ms;
    bool test_skip_publish;
};

extern const struct pl_setting pulse_settings[];
extern const size_t pulse_settings_count;

/* Loads and validates (cross-field checks included). Returns 0 or PL_E_CONFIG with a
 * one-line reason. `need_services`: DATABASE_URL/REDIS_URL are required. */
int pulse_config_load(struct pulse_config *cfg, const char *env_file, bool need_services, char *err,
                      size_t errlen);
void pulse_config_dispose(struct pulse_config *cfg);

#endif
