/* The pure checks of care circles (server/subjects): a subject's birth date. */
#include <stddef.h>
#include <stdio.h>

#include "subjects/subjects.h"
#include "test.h"

TEST(birth_dates)
{
    static const struct {
        const char *date;
        int ok;
    } cases[] = {
        {"2024-02-29", 1},  {"2000-02-29", 1},  {"0001-01-01", 1}, {"9999-12-31", 1},
        {"2023-04-30", 1},  {"2023-02-29", 0},  {"1900-02-29", 0}, {"2023-04-31", 0},
        {"0000-01-01", 0},  {"2023-13-01", 0},  {"2023-00-10", 0}, {"2023-01-00", 0},
        {"2023-1-01", 0},   {"2023-01-1", 0},   {"20230101", 0},   {"2023/01/01", 0},
        {"2023-01-01T", 0}, {"+023-01-01", 0},  {"2023-0a-01", 0}, {"", 0},
        {"2023-01-32", 0},  {" 2023-01-01", 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *msg = subjects_date_check(cases[i].date);
        if ((msg == NULL) != cases[i].ok) fprintf(stderr, "date %s\n", cases[i].date);
        CHECK((msg == NULL) == cases[i].ok);
    }
}

int main(void)
{
    RUN(birth_dates);
    return TEST_REPORT();
}
