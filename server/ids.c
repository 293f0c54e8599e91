/* ids: see ids.h. */
#include "ids.h"

#include <assert.h>
#include <sodium.h>
#include <string.h>

static bool hex_digit(char c, bool upper_too)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (upper_too && c >= 'A' && c <= 'F');
}

bool ids_is_uuid(const char *s)
{
    if (strlen(s) != 36) return false;
    for (int i = 0; i < 36; i++) {
        bool want_dash = i == 8 || i == 13 || i == 18 || i == 23;
        if (want_dash ? s[i] != '-' : !hex_digit(s[i], true)) return false;
    }
    return true;
}

bool ids_is_hex(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (!hex_digit(s[i], false)) return false;
    return true;
}

bool ids_is_base64url(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_'))
            return false;
    }
    return true;
}

void ids_new_secret(const char *prefix, char *out, size_t cap)
{
    size_t p = strlen(prefix);
    assert(cap >= p + IDS_SECRET_LEN + 1);
    unsigned char raw[32];
    randombytes_buf(raw, sizeof raw);
    memcpy(out, prefix, p);
    sodium_bin2base64(out + p, cap - p, raw, sizeof raw, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    sodium_memzero(raw, sizeof raw);
}

void ids_hash_hex(const void *data, size_t len, char out[IDS_HASH_HEX + 1])
{
    unsigned char h[32];
    crypto_generichash(h, sizeof h, data, len, NULL, 0);
    sodium_bin2hex(out, IDS_HASH_HEX + 1, h, sizeof h);
}
