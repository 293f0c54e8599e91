/* problems: how a failure becomes an HTTP answer. Error codes and SQLSTATEs map to statuses
 * here, and the problem+json answers that several features give are written once; this is
 * the only place the mapping lives (lib/pg only digs the SQLSTATE out of a result).
 *
 * Every function here answers the request: the caller must not touch it afterwards. */
#ifndef PULSE_PROBLEMS_H
#define PULSE_PROBLEMS_H

#include <jansson.h>
#include <stdbool.h>

#include "pl/http.h"
#include "pl/pg.h"

/* Answers a dependency or internal failure: PL_E_UNAVAILABLE/TIMEOUT/BUSY/CANCELLED → 503
 * with Retry-After; anything else → 500, logged with the request id and `what`. */
void reply_failure(struct pl_http_request *req, int status, const char *what);
/* The callbacks' first step: false when status is 0; otherwise answers it with reply_failure
 * and returns true (then return at once). */
bool reply_failed(struct pl_http_request *req, int status, const char *what);
/* 422 /problems/validation with the errors array of {field, message} (taken). */
void reply_errors(struct pl_http_request *req, json_t *errors);
/* Appends {field, message} to *errors, creating the array when it is NULL. */
void problems_add(json_t **errors, const char *field, const char *message);
/* true when errors (NULL: none) has an entry for field. */
bool problems_has(json_t *errors, const char *field);
/* 422 with one field error. */
void reply_invalid(struct pl_http_request *req, const char *field, const char *message);
/* 401: the authenticated user's row is gone (the account was deleted while the credential
 * was being checked). */
void reply_account_gone(struct pl_http_request *req);

/* What a failed statement's SQLSTATE means to a handler. */
enum db_fault {
    DB_FAULT_NONE = 0, /* no failed statement: the status was not PL_E_DB */
    DB_FAULT_OTHER,    /* any SQLSTATE not below: the server's fault (500) */
    DB_FAULT_UNIQUE,   /* 23505 unique_violation: the row exists already (409, a replay) */
    /* A value the client sent that Postgres refused: class 22 (data exception), or XX000,
     * which text search raises for a query too complex to run ("tsquery stack too small"). */
    DB_FAULT_INPUT,
    /* 23514 check_violation: a row that breaks a rule of its table (a record kind's rule on
     * the merged result of an update: 422). */
    DB_FAULT_CHECK,
};
/* The map itself, on a SQLSTATE text ("" or NULL: DB_FAULT_OTHER). Pure. */
enum db_fault db_fault_of(const char *sqlstate);
/* The fault of a pool callback's (status, results, n): DB_FAULT_NONE unless status is
 * PL_E_DB; then that of the failed statement (the first result carrying a SQLSTATE). */
enum db_fault db_fault(int status, PGresult *const *results, int n);

#endif
