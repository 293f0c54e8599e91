/* The SQLSTATE map of server/problems.c: which failed statements are the client's doing (a
 * duplicate row, a value Postgres refused) and which are the server's, table by table. */
#include <stdio.h>

#include "problems.h"
#include "test.h"

TEST(sqlstate_map)
{
    static const struct {
        const char *sqlstate;
        enum db_fault want;
    } cases[] = {
        {"23505", DB_FAULT_UNIQUE}, /* unique_violation */
        {"22001", DB_FAULT_INPUT},  /* string_data_right_truncation */
        {"22P02", DB_FAULT_INPUT},  /* invalid_text_representation */
        {"22008", DB_FAULT_INPUT},  /* datetime_field_overflow */
        {"2200D", DB_FAULT_INPUT},  /* invalid_escape_octet */
        {"XX000", DB_FAULT_INPUT},  /* internal_error: tsquery stack too small */
        /* the rest of class 23 is the server's: its statements should never violate them */
        {"23503", DB_FAULT_OTHER}, /* foreign_key_violation */
        {"23502", DB_FAULT_OTHER}, /* not_null_violation */
        {"23514", DB_FAULT_CHECK}, /* check_violation: a record rule on a merged update */
        {"40001", DB_FAULT_OTHER}, /* serialization_failure */
        {"42601", DB_FAULT_OTHER}, /* syntax_error */
        {"42P01", DB_FAULT_OTHER}, /* undefined_table */
        {"57014", DB_FAULT_OTHER}, /* query_canceled */
        {"XX001", DB_FAULT_OTHER}, /* data_corrupted */
        {"08006", DB_FAULT_OTHER}, /* connection_failure */
        /* not a SQLSTATE at all */
        {"", DB_FAULT_OTHER},
        {NULL, DB_FAULT_OTHER},
        {"22", DB_FAULT_OTHER},
        {"2350", DB_FAULT_OTHER},
        {"235050", DB_FAULT_OTHER},
        {"XX00", DB_FAULT_OTHER},
        {"XX0000", DB_FAULT_OTHER},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        enum db_fault got = db_fault_of(cases[i].sqlstate);
        if (got != cases[i].want)
            fprintf(stderr, "  SQLSTATE %s: got %d, want %d\n",
                    cases[i].sqlstate ? cases[i].sqlstate : "(null)", (int)got, (int)cases[i].want);
        CHECK_EQ_INT(got, cases[i].want);
    }
}

TEST(fault_needs_a_failed_statement)
{
    /* Only PL_E_DB has a failed statement behind it; other failures are no SQLSTATE's. */
    CHECK_EQ_INT(db_fault(0, NULL, 0), DB_FAULT_NONE);
    CHECK_EQ_INT(db_fault(PL_E_UNAVAILABLE, NULL, 0), DB_FAULT_NONE);
    CHECK_EQ_INT(db_fault(PL_E_CANCELLED, NULL, 0), DB_FAULT_NONE);
    /* PL_E_DB without a result carrying a SQLSTATE: the server's fault */
    PGresult *none[2] = {NULL, NULL};
    CHECK_EQ_INT(db_fault(PL_E_DB, none, 2), DB_FAULT_OTHER);
    CHECK_EQ_INT(db_fault(PL_E_DB, NULL, 0), DB_FAULT_OTHER);
}

int main(void)
{
    RUN(sqlstate_map);
    RUN(fault_needs_a_failed_statement);
    return TEST_REPORT();
}
