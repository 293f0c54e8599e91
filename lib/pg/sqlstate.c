/* SQLSTATE lookup. The mapping from SQLSTATE to an HTTP answer belongs to server/problems.c;
 * this only digs the code out of a result. */
#include "pl/pg.h"

const char *pl_pg_error_sqlstate(const PGresult *res)
{
    if (!res) return "";
    const char *s = PQresultErrorField(res, PG_DIAG_SQLSTATE);
    return s ? s : "";
}
