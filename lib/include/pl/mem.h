/* mem: allocation that does not fail.
 *
 * lib/ treats out-of-memory as fatal (design: "out-of-memory aborts"): these wrap the C
 * library's allocators and abort() when they return NULL, so callers never check. The
 * memory is the caller's, freed with free(). */
#ifndef PL_MEM_H
#define PL_MEM_H

#include <stddef.h>

/* malloc(size); never NULL (size 0 allocates one byte). */
void *pl_xmalloc(size_t size);
/* realloc(p, size); never NULL. */
void *pl_xrealloc(void *p, size_t size);
/* calloc(n, size), zeroed; never NULL (n == 0 allocates one element). */
void *pl_xcalloc(size_t n, size_t size);
/* strdup(s); never NULL. */
char *pl_xstrdup(const char *s);

#endif
