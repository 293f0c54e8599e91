/* problems: see problems.h. */
#include "problems.h"

#include <string.h>

#include "pl/log.h"

void reply_failure(struct pl_http_request *req, int status, const char *what)
{
    if (status == PL_E_UNAVAILABLE || status == PL_E_TIMEOUT || status == PL_E_BUSY ||
        status == PL_E_CANCELLED) {
        pl_resp_header(req, "Retry-After", "1");
        pl_respond_problem(req, 503, "a dependency is unavailable, try again shortly", NULL);
        return;
    }
    pl_error("request failed", PL_STR("request_id", pl_req_id(req)), PL_STR("what", what),
             PL_STR("error", pl_strerror(status)));
    pl_respond_problem(req, 500, "internal error", NULL);
}

bool reply_failed(struct pl_http_request *req, int status, const char *what)
{
    if (status == 0) return false;
    reply_failure(req, status, what);
    return true;
}

void reply_errors(struct pl_http_request *req, json_t *errors)
{
    pl_respond_problem(req, 422, "the request body is invalid", errors);
}

void problems_add(json_t **errors, const char *field, const char *message)
{
    if (!*errors) *errors = json_array();
    json_array_append_new(*errors, json_pack("{s:s, s:s}", "field", field, "message", message));
}

bool problems_has(json_t *errors, const char *field)
{
    size_t i;
    json_t *e;
    json_array_foreach(errors, i, e)
    {
        if (strcmp(json_string_value(json_object_get(e, "field")), field) == 0) return true;
    }
    return false;
}

void reply_invalid(struct pl_http_request *req, const char *field, const char *message)
{
    reply_errors(req, json_pack("[{s:s, s:s}]", "field", field, "message", message));
}

void reply_account_gone(struct pl_http_request *req)
{
    pl_respond_problem(req, 401, "the account no longer exists", NULL);
}

/* ---- SQLSTATE ---- */

/* Exact codes first, then classes (the first two characters). */
static const struct {
    const char *code;
    enum db_fault fault;
} sqlstates[] = {
    {"23505", DB_FAULT_UNIQUE}, /* unique_violation */
    {"23514", DB_FAULT_CHECK},  /* check_violation */
    {"XX000", DB_FAULT_INPUT},  /* internal_error: "tsquery stack too small" */
    {"22", DB_FAULT_INPUT},     /* data_exception, every code of the class */
};

enum db_fault db_fault_of(const char *sqlstate)
{
    if (!sqlstate || strlen(sqlstate) != 5) return DB_FAULT_OTHER;
    for (size_t i = 0; i < sizeof sqlstates / sizeof sqlstates[0]; i++) {
        const char *code = sqlstates[i].code;
        if (strncmp(sqlstate, code, strlen(code)) == 0) return sqlstates[i].fault;
    }
    return DB_FAULT_OTHER;
}

enum db_fault db_fault(int status, PGresult *const *results, int n)
{
    if (status != PL_E_DB) return DB_FAULT_NONE;
    for (int i = 0; results && i < n; i++) {
        const char *state = pl_pg_error_sqlstate(results[i]);
        if (*state) return db_fault_of(state);
    }
    return DB_FAULT_OTHER;
}
