/* A worker's auth state (auth_internal.h): created before the worker's thread starts, since
 * other workers' threads signal its password queue, and freed only after that thread has
 * been joined. */
#include <stdlib.h>

#include "../app.h"
#include "auth.h"
#include "auth_internal.h"
#include "pl/mem.h"

void auth_worker_create(struct worker *w)
{
    w->auth = pl_xcalloc(1, sizeof *w->auth);
    passwords_worker_init(w);
}

int auth_worker_start(struct worker *w)
{
    return sessions_worker_init(w);
}

void auth_worker_close(struct worker *w)
{
    if (!w->auth || w->auth->closed) return;
    w->auth->closed = true;
    passwords_worker_close(w);
}

void auth_worker_destroy(struct worker *w)
{
    free(w->auth);
    w->auth = NULL;
}
