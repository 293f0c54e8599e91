/* subjects: care circles: subjects, their members and roles, invitations. */
#ifndef PULSE_SUBJECTS_H
#define PULSE_SUBJECTS_H

#include "pl/http.h"
#include "subjects_store.h"

extern struct pl_route subjects_routes[];

#endif
