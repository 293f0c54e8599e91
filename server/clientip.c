/* Client IP resolution behind trusted proxies (PULSE_TRUSTED_PROXIES CIDRs). */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "guards.h"

#define MAX_CIDRS 64

struct cidr {
    int family;
    unsigned char addr[16];
    int bits;
};

static struct cidr cidrs[MAX_CIDRS];
static int ncidrs;

static int parse_ip(const char *s, int *family, unsigned char out[16])
{
    if (inet_pton(AF_INET, s, out) == 1) {
        *family = AF_INET;
        return 0;
    }
    if (inet_pton(AF_INET6, s, out) == 1) {
        *family = AF_INET6;
        return 0;
    }
    return -1;
}

int trusted_proxies_init(const char *list, char *err, size_t errlen)
{
    ncidrs = 0;
    char *copy = strdup(list ? list : "");
    if (!copy) abort();
    char *save = NULL;
    int rc = 0;
    for (char *tok = strtok_r(copy, ", ", &save); tok; tok = strtok_r(NULL, ", ", &save)) {
        struct cidr c = {0};
        char *slash = strchr(tok, '/');
        if (slash) *slash = 0;
        int max;
        if (parse_ip(tok, &c.family, c.addr) || ncidrs == MAX_CIDRS) goto bad;
        max = c.family == AF_INET ? 32 : 128;
        c.bits = max;
        if (slash) {
            char *end;
            long b = strtol(slash + 1, &end, 10);
            if (*end || slash[1] == 0 || b < 0 || b > max) goto bad;
            c.bits = (int)b;
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

bool ip_is_trusted_proxy(const char *ip)
{
    int family;
    unsigned char a[16];
    if (ncidrs == 0 || parse_ip(ip, &family, a)) return false;
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

const char *req_client_ip(struct pl_http_request *req)
{
    const char *peer = pl_req_peer_ip(req);
    if (!ip_is_trusted_proxy(peer)) return peer;
    const char *xff = pl_req_header(req, "x-forwarded-for");
    if (!xff) return peer;
    /* Walk from the right: the first hop that is not one of our proxies is the client. */
    char *copy = pl_req_strdup(req, xff);
    char *hops[32];
    int n = 0;
    char *save = NULL;
    for (char *t = strtok_r(copy, ", ", &save); t && n < 32; t = strtok_r(NULL, ", ", &save))
        hops[n++] = t;
    for (int i = n - 1; i >= 0; i--) {
        int family;
        unsigned char a[16];
        if (parse_ip(hops[i], &family, a)) return peer; /* garbage: trust only the socket */
        if (!ip_is_trusted_proxy(hops[i])) return hops[i];
    }
    return n ? hops[0] : peer;
}
