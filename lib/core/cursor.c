#include "pl/cursor.h"

#include <sodium.h>
#include <string.h>

int pl_cursor_encode(const char *const *fields, int n, char *out, size_t cap)
{
    char raw[PL_CURSOR_MAX];
    size_t len = 2;
    memcpy(raw, "c1", 2);
    for (int i = 0; i < n; i++) {
        size_t fl = strlen(fields[i]);
        for (size_t k = 0; k < fl; k++)
            if (fields[i][k] == '.' || fields[i][k] < 0x21 || fields[i][k] > 0x7e)
                return PL_E_INVALID;
        if (len + 1 + fl >= sizeof raw) return PL_E_INVALID;
        raw[len++] = '.';
        memcpy(raw + len, fields[i], fl);
        len += fl;
    }
    size_t need = sodium_base64_ENCODED_LEN(len, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    if (need > cap || need > PL_CURSOR_MAX + 1) return PL_E_INVALID;
    sodium_bin2base64(out, cap, (const unsigned char *)raw, len,
                      sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    return 0;
}

int pl_cursor_decode(const char *s, char **fields, int n, char *buf, size_t cap)
{
    size_t slen = strlen(s);
    size_t len;
    if (slen == 0 || slen > PL_CURSOR_MAX || cap < 2) return PL_E_INVALID;
    /* libsodium 1.0.18 decodes bytes >= 0x80 as digits: allow only the alphabet, so that a
     * cursor has one spelling. */
    if (strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_") != slen)
        return PL_E_INVALID;
    if (sodium_base642bin((unsigned char *)buf, cap - 1, s, slen, NULL, &len, NULL,
                          sodium_base64_VARIANT_URLSAFE_NO_PADDING) != 0)
        return PL_E_INVALID;
    buf[len] = 0;
    if (len < 2 || memcmp(buf, "c1", 2) != 0 || memchr(buf, 0, len)) return PL_E_INVALID;
    char *p = buf + 2;
    for (int i = 0; i < n; i++) {
        if (*p != '.') return PL_E_INVALID;
        *p++ = 0;
        fields[i] = p;
        while (*p && *p != '.')
            p++;
    }
    return *p == 0 ? 0 : PL_E_INVALID;
}
