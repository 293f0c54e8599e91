/* subjects: care circles: subjects, their members and roles, invitations. */
#ifndef PULSE_SUBJECTS_H
#define PULSE_SUBJECTS_H

#include "pl/http.h"
#include "subjects_store.h"

extern struct pl_route subjects_routes[];

/* The check of a birth date: NULL for YYYY-MM-DD naming a real day of the years 0001..9999
 * (leap years included), else the message. */
const char *subjects_date_check(const char *s);

#endif
