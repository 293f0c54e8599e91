/* Schema migrations with the blocking libpq API: for `pulsed migrate` and start-up, before any
 * loop runs. Every replica may run this at once: a session advisory lock serialises them,
 * and each file is applied in its own transaction together with its schema_migrations row,
 * so a file is either fully applied and recorded or not at all. */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <pwd.h>
#include <unistd.h>

#include "pg/pg_internal.h"
#include "pl/pg.h"

/* "PulseMig" as a big-endian int64: any fixed key works as long as every pulsed uses it. */
#define MIGRATE_LOCK_SQL   "SELECT pg_advisory_lock(5797659338185992551)"
#define MIGRATE_UNLOCK_SQL "SELECT pg_advisory_unlock(5797659338185992551)"
#define MAX_VERSION        1000 /* three digits */

struct mig_file {
    int version;
    char name[256];
};

struct mig_list {
    struct mig_file *files;
    int n, cap;
};

static void set_err(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
    if (!err || errlen == 0) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    /* One line: server messages may carry DETAIL, HINT and LINE parts. */
    err[strcspn(err, "\r\n")] = '\0';
}

/* The server's primary message ("division by zero"), else libpq's first line. */
static const char *pg_message(const PGconn *pg, const PGresult *res)
{
    const char *m = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;
    if (!m || !*m) m = res ? PQresultErrorMessage(res) : NULL;
    if (!m || !*m) m = PQerrorMessage(pg);
    return m;
}

/* ^[0-9]{3}_[a-z0-9_]+\.sql$ */
static bool name_matches(const char *s)
{
    size_t len = strlen(s);
    if (len < 9 || strcmp(s + len - 4, ".sql") != 0) return false;
    for (int i = 0; i < 3; i++)
        if (!isdigit((unsigned char)s[i])) return false;
    if (s[3] != '_') return false;
    for (size_t i = 4; i < len - 4; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || isdigit((unsigned char)s[i]) || s[i] == '_'))
            return false;
    return true;
}

static int cmp_files(const void *a, const void *b)
{
    return strcmp(((const struct mig_file *)a)->name, ((const struct mig_file *)b)->name);
}

static int scan_dir(const char *dir, struct mig_list *out, char *err, size_t errlen)
{
    DIR *d = opendir(dir);
    if (!d) {
        set_err(err, errlen, "cannot open migrations dir %s: %s", dir, strerror(errno));
        return PL_E_CONFIG;
    }
    struct dirent *e;
    while ((e = readdir(d))) {
        if (!name_matches(e->d_name) || strlen(e->d_name) >= sizeof out->files[0].name) continue;
        if (out->n == out->cap) {
            out->cap = out->cap ? out->cap * 2 : 32;
            out->files = realloc(out->files, (size_t)out->cap * sizeof *out->files);
            if (!out->files) abort();
        }
        struct mig_file *f = &out->files[out->n++];
        f->version = (e->d_name[0] - '0') * 100 + (e->d_name[1] - '0') * 10 + (e->d_name[2] - '0');
        snprintf(f->name, sizeof f->name, "%s", e->d_name);
    }
    closedir(d);
    if (out->n) qsort(out->files, (size_t)out->n, sizeof *out->files, cmp_files);
    for (int i = 1; i < out->n; i++) {
        if (out->files[i].version == out->files[i - 1].version) {
            set_err(err, errlen, "migrations %s and %s share a version", out->files[i - 1].name,
                    out->files[i].name);
            return PL_E_CONFIG;
        }
    }
    return 0;
}

static void quiet_notices(void *arg, const char *msg)
{
    /* "relation already exists, skipping" and friends are expected here. */
    (void)arg;
    (void)msg;
}

PGconn *pl_pg_connect_blocking(const char *conninfo, const char *app_name, char *err, size_t errlen)
{
    /* A 5 s connect_timeout unless the conninfo sets its own (see pg_connect_params). */
    const char *keys[PG_CONNECT_PARAMS], *values[PG_CONNECT_PARAMS];
    pg_connect_params(conninfo, app_name, "5", keys, values);
    PGconn *pg = PQconnectdbParams(keys, values, 1);
    if (!pg) abort();
    if (PQstatus(pg) != CONNECTION_OK) {
        set_err(err, errlen, "cannot connect to postgres: %s", PQerrorMessage(pg));
        PQfinish(pg);
        return NULL;
    }
    PQsetNoticeProcessor(pg, quiet_notices, NULL);
    return pg;
}

/* Runs a statement without parameters; on failure writes "<what>: <server message>". */
static bool exec_ok(PGconn *pg, const char *sql, const char *what, char *err, size_t errlen)
{
    PGresult *res = PQexec(pg, sql);
    ExecStatusType st = PQresultStatus(res);
    bool ok = st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK || st == PGRES_EMPTY_QUERY;
    if (!ok) set_err(err, errlen, "%s: %s", what, pg_message(pg, res));
    PQclear(res);
    return ok;
}

/* Marks applied versions; a missing table (only checked when `may_be_missing`) means none. */
static int load_applied(PGconn *pg, bool applied[MAX_VERSION], bool may_be_missing, char *err,
                        size_t errlen)
{
    memset(applied, 0, MAX_VERSION * sizeof applied[0]);
    if (may_be_missing) {
        PGresult *res = PQexec(pg, "SELECT to_regclass('schema_migrations') IS NOT NULL");
        if (PQresultStatus(res) != PGRES_TUPLES_OK) {
            set_err(err, errlen, "reading schema_migrations: %s", pg_message(pg, res));
            PQclear(res);
            return PL_E_DB;
        }
        bool exists = PQntuples(res) == 1 && strcmp(PQgetvalue(res, 0, 0), "t") == 0;
        PQclear(res);
        if (!exists) return 0;
    }
    PGresult *res = PQexec(pg, "SELECT version FROM schema_migrations");
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        set_err(err, errlen, "reading schema_migrations: %s", pg_message(pg, res));
        PQclear(res);
        return PL_E_DB;
    }
    for (int i = 0; i < PQntuples(res); i++) {
        long v = strtol(PQgetvalue(res, i, 0), NULL, 10);
        if (v >= 0 && v < MAX_VERSION) applied[v] = true;
    }
    PQclear(res);
    return 0;
}

static char *read_file(const char *path, char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    if (!f) goto fail;
    size_t cap = 4096, len = 0;
    char *buf = malloc(cap);
    if (!buf) abort();
    size_t got;
    while ((got = fread(buf + len, 1, cap - len - 1, f)) > 0) {
        len += got;
        if (cap - len - 1 == 0) {
            cap *= 2;
            buf = realloc(buf, cap);
            if (!buf) abort();
        }
    }
    if (ferror(f)) {
        free(buf);
        fclose(f);
        goto fail;
    }
    fclose(f);
    buf[len] = '\0';
    return buf;
fail:
    set_err(err, errlen, "cannot read %s: %s", path, strerror(errno));
    return NULL;
}

static int apply_one(PGconn *pg, const char *dir, const struct mig_file *f, char *err,
                     size_t errlen)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, f->name);
    char *sql = read_file(path, err, errlen);
    if (!sql) return PL_E_CONFIG;

    char what[300];
    snprintf(what, sizeof what, "migration %s failed", f->name);
    char version[8];
    snprintf(version, sizeof version, "%d", f->version);
    const char *params[] = {version, f->name};
    PGresult *res = NULL;

    if (!exec_ok(pg, "BEGIN", what, err, errlen)) goto fail;
    /* The simple query protocol runs a file of several statements in one call. */
    if (!exec_ok(pg, sql, what, err, errlen)) goto rollback;
    res = PQexecParams(pg, "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)", 2, NULL,
                       params, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_COMMAND_OK) {
        set_err(err, errlen, "%s: %s", what, pg_message(pg, res));
        goto rollback;
    }
    if (!exec_ok(pg, "COMMIT", what, err, errlen)) goto rollback;
    PQclear(res);
    free(sql);
    return 0;

rollback:
    PQclear(PQexec(pg, "ROLLBACK"));
fail:
    PQclear(res);
    free(sql);
    return PL_E_DB;
}

/* What both entry points start with: the files of `dir` and a blocking connection. On an
 * error, *list and *pg may hold what was opened (the caller frees them either way). */
static int open_run(const char *conninfo, const char *dir, struct mig_list *list, PGconn **pg,
                    char *err, size_t errlen)
{
    if (err && errlen) err[0] = '\0';
    if (!conninfo || !dir) {
        set_err(err, errlen, "conninfo and migrations dir are required");
        return PL_E_INVALID;
    }
    int rc = scan_dir(dir, list, err, errlen);
    if (rc) return rc;
    *pg = pl_pg_connect_blocking(conninfo, "pulsed-migrate", err, errlen);
    return *pg ? 0 : PL_E_UNAVAILABLE;
}

int pl_pg_migrate(const char *conninfo, const char *dir, int *applied, char *err, size_t errlen)
{
    if (applied) *applied = 0;
    struct mig_list list = {0};
    bool done[MAX_VERSION];
    PGconn *pg = NULL;
    int rc = open_run(conninfo, dir, &list, &pg, err, errlen);
    if (rc) goto out;
    /* Held for the whole run, so replicas starting together apply each file once. */
    rc = PL_E_DB;
    if (!exec_ok(pg, MIGRATE_LOCK_SQL, "taking the migration lock", err, errlen)) goto out;
    if (!exec_ok(pg,
                 "CREATE TABLE IF NOT EXISTS schema_migrations ("
                 "version int PRIMARY KEY, name text NOT NULL, "
                 "applied_at timestamptz NOT NULL DEFAULT now())",
                 "creating schema_migrations", err, errlen))
        goto out;
    rc = load_applied(pg, done, false, err, errlen);
    if (rc) goto out;
    for (int i = 0; i < list.n; i++) {
        if (done[list.files[i].version]) continue;
        rc = apply_one(pg, dir, &list.files[i], err, errlen);
        if (rc) goto out;
        if (applied) (*applied)++;
    }
    rc = exec_ok(pg, MIGRATE_UNLOCK_SQL, "releasing the migration lock", err, errlen) ? 0 : PL_E_DB;
out:
    /* Ending the session also releases the lock after a failure. */
    if (pg) PQfinish(pg);
    free(list.files);
    return rc;
}

int pl_pg_migrations_pending(const char *conninfo, const char *dir, char *err, size_t errlen)
{
    struct mig_list list = {0};
    bool done[MAX_VERSION];
    PGconn *pg = NULL;
    int rc = open_run(conninfo, dir, &list, &pg, err, errlen);
    if (rc) goto out;
    rc = load_applied(pg, done, true, err, errlen);
    if (rc) goto out;
    for (int i = 0; i < list.n; i++)
        if (!done[list.files[i].version]) rc++;
out:
    if (pg) PQfinish(pg);
    free(list.files);
    return rc;
}

int pl_pg_conninfo_user(const char *conninfo, char *user, size_t userlen)
{
    if (!conninfo || !user || userlen == 0) return PL_E_INVALID;
    user[0] = '\0';
    char *errmsg = NULL;
    PQconninfoOption *opts = PQconninfoParse(conninfo, &errmsg);
    /* The message is not passed on: it may quote part of the password. */
    PQfreemem(errmsg);
    if (!opts) return PL_E_CONFIG;
    for (PQconninfoOption *o = opts; o->keyword; o++)
        if (strcmp(o->keyword, "user") == 0 && o->val && *o->val)
            snprintf(user, userlen, "%s", o->val);
    PQconninfoFree(opts);
    /* libpq's own defaults when the conninfo names no user. */
    if (!user[0] && getenv("PGUSER") && *getenv("PGUSER"))
        snprintf(user, userlen, "%s", getenv("PGUSER"));
    if (!user[0]) {
        struct passwd pw, *found = NULL;
        char buf[1024];
        if (getpwuid_r(geteuid(), &pw, buf, sizeof buf, &found) == 0 && found)
            snprintf(user, userlen, "%s", found->pw_name);
    }
    return 0;
}

/* Whether the service's role may be given rights at all: an ordinary role that owns nothing
 * here and cannot create objects. Reads `same` (it is the connected role itself). */
static int check_service_role(PGconn *pg, const char *role, bool *same, char *err, size_t errlen)
{
    const char *params[] = {role};
    PGresult *res = PQexecParams(
        pg,
        "SELECT r.rolname = current_user, r.rolsuper, "
        "(SELECT count(*) FROM pg_class c WHERE c.relowner = r.oid AND c.relpersistence <> 't' "
        "AND c.relnamespace NOT IN ('pg_catalog'::regnamespace, "
        "'information_schema'::regnamespace)) "
        "+ (SELECT count(*) FROM pg_proc p WHERE p.proowner = r.oid "
        "AND p.pronamespace <> 'pg_catalog'::regnamespace) "
        "+ (SELECT count(*) FROM pg_namespace n WHERE n.nspowner = r.oid) "
        "+ (SELECT count(*) FROM pg_database d WHERE d.datname = current_database() "
        "AND d.datdba = r.oid), "
        "has_database_privilege(r.oid, current_database(), 'CREATE') "
        "OR has_schema_privilege(r.oid, 'public', 'CREATE') "
        "FROM pg_roles r WHERE r.rolname = $1",
        1, NULL, params, NULL, NULL, 0);
    int rc = PL_E_DB;
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        set_err(err, errlen, "checking role %s: %s", role, pg_message(pg, res));
    } else if (PQntuples(res) != 1) {
        set_err(err, errlen, "role \"%s\" does not exist: create it first", role);
    } else if ((*same = strcmp(PQgetvalue(res, 0, 0), "t") == 0)) {
        rc = 0;
    } else if (strcmp(PQgetvalue(res, 0, 1), "t") == 0) {
        set_err(err, errlen, "role \"%s\" is a superuser: the service needs an ordinary role",
                role);
    } else if (strcmp(PQgetvalue(res, 0, 2), "0") != 0) {
        set_err(err, errlen,
                "role \"%s\" owns %s object(s) in this database: the service's role must own "
                "nothing (ALTER ... OWNER TO the migrations' role)",
                role, PQgetvalue(res, 0, 2));
    } else if (strcmp(PQgetvalue(res, 0, 3), "t") == 0) {
        set_err(err, errlen,
                "role \"%s\" may create objects in this database or in schema public: "
                "REVOKE CREATE ON DATABASE ... / ON SCHEMA public FROM PUBLIC and from it",
                role);
    } else {
        rc = 0;
    }
    PQclear(res);
    return rc;
}

int pl_pg_grant_service_role(const char *conninfo, const char *role, char *err, size_t errlen)
{
    if (err && errlen) err[0] = '\0';
    if (!conninfo) {
        set_err(err, errlen, "conninfo is required");
        return PL_E_INVALID;
    }
    if (!role || !*role) return 0;
    PGconn *pg = pl_pg_connect_blocking(conninfo, "pulsed-migrate", err, errlen);
    if (!pg) return PL_E_UNAVAILABLE;
    int rc = PL_E_DB;
    char *id = NULL, *sql = NULL;
    bool same = false;
    /* Concurrent GRANTs on one object can fail ("tuple concurrently updated"). */
    if (!exec_ok(pg, MIGRATE_LOCK_SQL, "taking the migration lock", err, errlen)) goto out;
    if (check_service_role(pg, role, &same, err, errlen)) goto out;
    if (same) {
        rc = 0;
        goto unlock;
    }
    id = PQescapeIdentifier(pg, role, strlen(role));
    if (!id) {
        set_err(err, errlen, "role name: %s", PQerrorMessage(pg));
        goto out;
    }
    /* Data rights only, on what exists and (default privileges) on what this role creates
     * later; schema_migrations is only read (`serve` checks it). TRUNCATE, REFERENCES and
     * TRIGGER are taken back in case an earlier setup granted ALL. */
    static const char fmt[] =
        "BEGIN;"
        "GRANT USAGE ON SCHEMA public TO %1$s;"
        "GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO %1$s;"
        "REVOKE TRUNCATE, REFERENCES, TRIGGER ON ALL TABLES IN SCHEMA public FROM %1$s;"
        "GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO %1$s;"
        "ALTER DEFAULT PRIVILEGES IN SCHEMA public "
        "GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO %1$s;"
        "ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT USAGE, SELECT ON SEQUENCES TO %1$s;"
        "%2$s"
        "COMMIT";
    char revoke[300] = "";
    PGresult *res = PQexec(pg, "SELECT to_regclass('public.schema_migrations') IS NOT NULL");
    bool have_table = PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1 &&
                      strcmp(PQgetvalue(res, 0, 0), "t") == 0;
    PQclear(res);
    if (have_table)
        snprintf(revoke, sizeof revoke,
                 "REVOKE INSERT, UPDATE, DELETE ON public.schema_migrations FROM %s;", id);
    size_t n = sizeof fmt + 8 * strlen(id) + strlen(revoke);
    sql = malloc(n);
    if (!sql) abort();
    snprintf(sql, n, fmt, id, revoke);
    if (!exec_ok(pg, sql, "granting the service role its rights", err, errlen)) {
        PQclear(PQexec(pg, "ROLLBACK"));
        goto out;
    }
    rc = 1;
unlock:
    if (!exec_ok(pg, MIGRATE_UNLOCK_SQL, "releasing the migration lock", err, errlen)) rc = PL_E_DB;
out:
    free(sql);
    PQfreemem(id);
    PQfinish(pg);
    return rc;
}
