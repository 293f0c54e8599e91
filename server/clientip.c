/* Client IP resolution behind trusted proxies (PULSE_TRUSTED_PROXIES CIDRs).
 *
 * Each trusted proxy appends the address it was connected from to X-Forwarded-For (nginx's
 * $proxy_add_x_forwarded_for), so the hops on the right were written by proxies we trust and
 * everything to their left by whoever connected first, the client included. The walk
 * therefore starts at the right and stops at the first hop that is not a trusted proxy; it
 * sees every hop (the head is bounded, so the header is), and a hop it cannot parse stops it
 * too: whatever lies left of that is the client's to choose. */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "guards.h"
#include "pl/mem.h"

#define MAX_CIDRS 64

struct cidr {
    int family;
    unsigned char addr[16];
    int bits;
};

static struct cidr cidrs[MAX_CIDRS];
static int ncidrs;

/* An IPv4-mapped IPv6 address (::ffff:a.b.c.d, what a dual-stack socket reports for an IPv4
 * peer) is the IPv4 address. */
static void unmap_v4(int *family, unsigned char a[16])
{
    static const unsigned char prefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    if (*family == AF_INET6 && memcmp(a, prefix, sizeof prefix) == 0) {
        memmove(a, a + 12, 4);
        *family = AF_INET;
    }
}

static int parse_ip(const char *s, int *family, unsigned char out[16])
{
    if (inet_pton(AF_INET, s, out) == 1) {
        *family = AF_INET;
        return 0;
    }
    if (inet_pton(AF_INET6, s, out) == 1) {
        *family = AF_INET6;
        unmap_v4(family, out);
        return 0;
    }
    return -1;
}

/* One X-Forwarded-For element: an address, also in the forms some proxies write with a port
 * ("192.0.2.1:4711", "[2001:db8::1]:4711", "[2001:db8::1]"). */
static int parse_hop(const char *s, size_t len, int *family, unsigned char out[16])
{
    char tmp[64];
    if (len == 0 || len >= sizeof tmp) return -1;
    memcpy(tmp, s, len);
    tmp[len] = 0;
    if (tmp[0] == '[') {
        char *close = strchr(tmp, ']');
        if (!close || (close[1] && (close[1] != ':' || !close[2] ||
                                    strspn(close + 2, "0123456789") != strlen(close + 2))))
            return -1;
        *close = 0;
        if (inet_pton(AF_INET6, tmp + 1, out) != 1) return -1;
        *family = AF_INET6;
        unmap_v4(family, out);
        return 0;
    }
    char *colon = strchr(tmp, ':');
    if (colon && !strchr(colon + 1, ':') && colon[1] &&
        strspn(colon + 1, "0123456789") == strlen(colon + 1))
        *colon = 0; /* IPv4 with a port: an IPv6 address has at least two colons */
    return parse_ip(tmp, family, out);
}

int trusted_proxies_init(const char *list, char *err, size_t errlen)
{
    ncidrs = 0;
    char *copy = pl_xstrdup(list ? list : "");
    char *save = NULL;
    int rc = 0;
    for (char *tok = strtok_r(copy, ", ", &save); tok; tok = strtok_r(NULL, ", ", &save)) {
        struct cidr c = {0};
        char *slash = strchr(tok, '/');
        if (slash) *slash = 0;
        int max;
        if (ncidrs == MAX_CIDRS) goto bad;
        if (inet_pton(AF_INET, tok, c.addr) == 1)
            c.family = AF_INET;
        else if (inet_pton(AF_INET6, tok, c.addr) == 1)
            c.family = AF_INET6;
        else
            goto bad;
        max = c.family == AF_INET ? 32 : 128;
        c.bits = max;
        if (slash) {
            char *end;
            long b = strtol(slash + 1, &end, 10);
            if (*end || slash[1] == 0 || b < 0 || b > max) goto bad;
            c.bits = (int)b;
        }
        /* ::ffff:10.0.0.0/104 is 10.0.0.0/8: addresses are compared unmapped */
        if (c.family == AF_INET6 && c.bits >= 96) {
            int fam = c.family;
            unmap_v4(&fam, c.addr);
            if (fam == AF_INET) {
                c.family = AF_INET;
                c.bits -= 96;
            }
        }
        cidrs[ncidrs++] = c;
        continue;
    bad:
        snprintf(err, errlen, "invalid PULSE_TRUSTED_PROXIES entry %.60s: expected an IP or CIDR",
                 tok);
        rc = PL_E_CONFIG;
        break;
    }
    free(copy);
    return rc;
}

static bool addr_trusted(int family, const unsigned char a[16])
{
    for (int i = 0; i < ncidrs; i++) {
        if (cidrs[i].family != family) continue;
        int full = cidrs[i].bits / 8, rest = cidrs[i].bits % 8;
        if (memcmp(a, cidrs[i].addr, (size_t)full) != 0) continue;
        if (rest) {
            unsigned char mask = (unsigned char)(0xff << (8 - rest));
            if ((a[full] & mask) != (cidrs[i].addr[full] & mask)) continue;
        }
        return true;
    }
    return false;
}

bool ip_is_trusted_proxy(const char *ip)
{
    int family;
    unsigned char a[16];
    return ncidrs > 0 && parse_ip(ip, &family, a) == 0 && addr_trusted(family, a);
}

/* The canonical text of an address (one spelling per address: the same rate-limit key). */
static void addr_text(int family, const unsigned char a[16], char *out, size_t cap)
{
    char tmp[INET6_ADDRSTRLEN];
    if (!inet_ntop(family, a, tmp, sizeof tmp)) tmp[0] = 0;
    snprintf(out, cap, "%s", tmp);
}

/* A hop that is no address, as the client: printable ASCII only, bounded. */
static void hop_text(const char *s, size_t len, char *out, size_t cap)
{
    size_t n = 0;
    for (size_t i = 0; i < len && n + 1 < cap; i++)
        out[n++] = s[i] > 0x20 && s[i] < 0x7f ? s[i] : '?';
    out[n] = 0;
}

void client_ip_resolve(const char *peer, const char *xff, char *out, size_t cap)
{
    int family;
    unsigned char a[16];
    if (parse_ip(peer, &family, a) != 0) {
        snprintf(out, cap, "%s", peer); /* "-": the socket had no address */
        return;
    }
    addr_text(family, a, out, cap);
    if (!addr_trusted(family, a) || !xff) return;
    /* From the right; an empty element (",,") is skipped, as RFC 9110 lists allow. When every
     * hop is a trusted proxy, the leftmost is as far as anyone can tell. */
    for (size_t end = strlen(xff);;) {
        size_t start = end;
        while (start > 0 && xff[start - 1] != ',')
            start--;
        size_t s = start, e = end;
        while (s < e && (xff[s] == ' ' || xff[s] == '\t'))
            s++;
        while (e > s && (xff[e - 1] == ' ' || xff[e - 1] == '\t'))
            e--;
        if (e > s) {
            if (parse_hop(xff + s, e - s, &family, a) != 0) {
                hop_text(xff + s, e - s, out, cap);
                return;
            }
            addr_text(family, a, out, cap);
            if (!addr_trusted(family, a)) return;
        }
        if (start == 0) return;
        end = start - 1;
    }
}

void client_ip_rate_key(const char *ip, char *out, size_t cap)
{
    int family;
    unsigned char a[16];
    if (parse_ip(ip, &family, a) != 0) {
        snprintf(out, cap, "%s", ip);
        return;
    }
    if (family == AF_INET) {
        addr_text(family, a, out, cap);
        return;
    }
    /* One IPv6 subscriber usually holds a whole /64: its addresses share one budget. */
    memset(a + 8, 0, 8);
    char tmp[INET6_ADDRSTRLEN];
    addr_text(AF_INET6, a, tmp, sizeof tmp);
    snprintf(out, cap, "%s/64", tmp);
}

const char *req_client_ip(struct pl_http_request *req)
{
    char ip[CLIENT_IP_MAX];
    client_ip_resolve(pl_req_peer_ip(req), pl_req_header_list(req, "x-forwarded-for"), ip,
                      sizeof ip);
    return pl_req_strdup(req, ip);
}

const char *req_client_rate_key(struct pl_http_request *req)
{
    char key[CLIENT_IP_MAX + 4];
    client_ip_rate_key(req_client_ip(req), key, sizeof key);
    return pl_req_strdup(req, key);
}
