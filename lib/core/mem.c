#include "pl/mem.h"

#include <stdlib.h>
#include <string.h>

void *pl_xmalloc(size_t size)
{
    void *p = malloc(size ? size : 1);
    if (!p) abort();
    return p;
}

void *pl_xrealloc(void *p, size_t size)
{
    void *q = realloc(p, size ? size : 1);
    if (!q) abort();
    return q;
}

void *pl_xcalloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (!p) abort();
    return p;
}

char *pl_xstrdup(const char *s)
{
    char *p = strdup(s);
    if (!p) abort();
    return p;
}
