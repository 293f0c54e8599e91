/* The IANA zones Postgres knows, loaded once (blocking, off the loops) and searched with
 * bsearch: validating a zone must not cost a query, and pg_timezone_names reads the zone
 * files on every call. */
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../app.h"
#include "user.h"
#include "pl/mem.h"

static int cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int timezones_load(struct app *app, char *err, size_t errlen)
{
    if (atomic_load(&app->timezones_loaded)) return 0;
    PGconn *c = PQconnectdb(app->cfg.database_url);
    if (PQstatus(c) != CONNECTION_OK) {
        snprintf(err, errlen, "time zones: %s", PQerrorMessage(c));
        PQfinish(c);
        return -1;
    }
    PGresult *r = PQexec(c, "SELECT name FROM pg_timezone_names");
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        snprintf(err, errlen, "time zones: %s", PQresultErrorMessage(r));
        PQclear(r);
        PQfinish(c);
        return -1;
    }
    size_t n = (size_t)PQntuples(r);
    char **names = pl_xcalloc(n ? n : 1, sizeof *names);
    for (size_t i = 0; i < n; i++) {
        names[i] = pl_xstrdup(PQgetvalue(r, (int)i, 0));
    }
    PQclear(r);
    PQfinish(c);
    qsort(names, n, sizeof *names, cmp);
    app->timezones = names;
    app->ntimezones = n;
    atomic_store(&app->timezones_loaded, true); /* publishes the array to the workers */
    return 0;
}

bool app_timezone_valid(const struct app *app, const char *name)
{
    if (!atomic_load(&app->timezones_loaded) || !name || !*name) return false;
    return bsearch(&name, app->timezones, app->ntimezones, sizeof *app->timezones, cmp) != NULL;
}

void timezones_free(struct app *app)
{
    for (size_t i = 0; i < app->ntimezones; i++)
        free(app->timezones[i]);
    free(app->timezones);
    app->timezones = NULL;
    app->ntimezones = 0;
}
