/* Joins the feature route tables; the order here is the order of route indexes. */
#include "app.h"
#include "auth/auth.h"
#include "feedings/feedings.h"
#include "live/live.h"
#include "notes/notes.h"
#include "ops/ops.h"
#include "profile/profile.h"
#include "subjects/subjects.h"

static struct pl_route *const tables[] = {ops_routes,     auth_routes,    token_routes,
                                          profile_routes, notes_routes,   feedings_routes,
                                          live_routes,    subjects_routes};

struct pl_route *const *app_route_tables(size_t *n)
{
    *n = sizeof tables / sizeof tables[0];
    return tables;
}
