#include "pl/error.h"

#include <uv.h>

const char *pl_strerror(int code)
{
    switch (code) {
    case PL_OK:
        return "ok";
#define PL_ERROR_CASE(name, c, text)                                                               \
    case c:                                                                                        \
        return text;
        PL_ERRORS(PL_ERROR_CASE)
#undef PL_ERROR_CASE
    default:
        break;
    }
    if (code < 0 && code > -4096) return uv_strerror(code);
    return "unknown error";
}
