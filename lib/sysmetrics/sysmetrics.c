#include "pl/sysmetrics.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <unistd.h>

/* Lines longer than this are skipped; /proc lines we read are far shorter (/proc/stat's
 * "intr" line is the long one, and it comes after the line we want). */
#define LINE_CAP 4096

struct pl_sysmetrics {
    char stat_path[PATH_MAX];
    char loadavg_path[PATH_MAX];
    char meminfo_path[PATH_MAX];
    char netdev_path[PATH_MAX];
    char disk_path[PATH_MAX];
    char line[LINE_CAP];

    bool have_cpu; /* the previous sample read the cpu line */
    uint64_t cpu_total, cpu_busy;
    bool have_net; /* the previous sample read net/dev */
    uint64_t net_rx, net_tx;
    int64_t net_ts_us;
};

static bool join(char *dst, const char *root, const char *name)
{
    int n = snprintf(dst, PATH_MAX, "%s/%s", root, name);
    return n > 0 && n < PATH_MAX;
}

int pl_sysmetrics_create(const char *proc_root, const char *disk_path, struct pl_sysmetrics **out)
{
    *out = NULL;
    if (!proc_root || !disk_path || strlen(disk_path) >= PATH_MAX) return PL_E_INVALID;
    struct pl_sysmetrics *s = calloc(1, sizeof *s);
    if (!s) abort();
    if (!join(s->stat_path, proc_root, "stat") || !join(s->loadavg_path, proc_root, "loadavg") ||
        !join(s->meminfo_path, proc_root, "meminfo") ||
        !join(s->netdev_path, proc_root, "net/dev")) {
        free(s);
        return PL_E_INVALID;
    }
    memcpy(s->disk_path, disk_path, strlen(disk_path) + 1);
    *out = s;
    return 0;
}

void pl_sysmetrics_destroy(struct pl_sysmetrics *s)
{
    free(s);
}

/* Calls fn with each NUL-terminated line of path (newline removed) until it returns true,
 * streaming through the sampler's fixed buffer: fopen would allocate on every sample, and
 * net/dev on a host with many interfaces can outgrow any one buffer. Returns false if the
 * file could not be opened or a read failed. */
typedef bool line_fn(char *line, void *ctx);

static bool read_lines(struct pl_sysmetrics *s, const char *path, line_fn *fn, void *ctx)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return false;
    char *buf = s->line;
    size_t len = 0;
    bool skipping = false, ok = true;
    for (;;) {
        ssize_t n = read(fd, buf + len, LINE_CAP - 1 - len);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
            ok = false;
            break;
        }
        if (n == 0) {
            if (len > 0 && !skipping) {
                buf[len] = 0;
                fn(buf, ctx);
            }
            break;
        }
        len += (size_t)n;
        char *start = buf, *nl;
        bool stop = false;
        while ((nl = memchr(start, '\n', (size_t)(buf + len - start)))) {
            *nl = 0;
            if (!skipping && fn(start, ctx)) {
                stop = true;
                break;
            }
            skipping = false;
            start = nl + 1;
        }
        if (stop) break;
        len -= (size_t)(start - buf);
        memmove(buf, start, len);
        if (len == LINE_CAP - 1) { /* an over-long line: drop it up to its newline */
            skipping = true;
            len = 0;
        }
    }
    close(fd);
    return ok;
}

/* Parses one unsigned decimal after optional blanks; false on no digits or overflow. */
static bool parse_u64(const char **p, uint64_t *v)
{
    const char *c = *p;
    while (*c == ' ' || *c == '\t')
        c++;
    if (*c < '0' || *c > '9') return false;
    uint64_t x = 0;
    for (; *c >= '0' && *c <= '9'; c++) {
        unsigned d = (unsigned)(*c - '0');
        if (x > (UINT64_MAX - d) / 10) return false;
        x = x * 10 + d;
    }
    if (*c != 0 && *c != ' ' && *c != '\t') return false;
    *p = c;
    *v = x;
    return true;
}

/* /proc/stat: "cpu  user nice system idle iowait irq softirq steal guest guest_nice".
 * guest and guest_nice are already counted in user and nice, so they are left out. */
struct cpu_read {
    bool ok;
    uint64_t total, busy;
};

static bool on_stat_line(char *line, void *ctx)
{
    struct cpu_read *r = ctx;
    if (strncmp(line, "cpu", 3) != 0 || (line[3] != ' ' && line[3] != '\t')) return false;
    const char *p = line + 3;
    uint64_t v[8] = {0}, total = 0;
    int n = 0;
    while (n < 8 && parse_u64(&p, &v[n])) {
        if (total > UINT64_MAX - v[n]) return true;
        total += v[n++];
    }
    if (n < 4) return true; /* user nice system idle at least */
    uint64_t idle = v[3] + v[4];
    if (idle > total) return true;
    r->ok = true;
    r->total = total;
    r->busy = total - idle;
    return true;
}

static bool sample_cpu(struct pl_sysmetrics *s, struct pl_sys_sample *out)
{
    struct cpu_read r = {0};
    if (!read_lines(s, s->stat_path, on_stat_line, &r) || !r.ok) {
        s->have_cpu = false;
        return false;
    }
    /* iowait may go backwards on Linux, so busy can too: clamp rather than trust it. */
    if (s->have_cpu && r.total > s->cpu_total) {
        double dtotal = (double)(r.total - s->cpu_total);
        double dbusy = (double)r.busy - (double)s->cpu_busy;
        double pct = 100.0 * dbusy / dtotal;
        out->cpu_percent = pct < 0 ? 0 : pct > 100 ? 100 : pct;
    }
    s->have_cpu = true;
    s->cpu_total = r.total;
    s->cpu_busy = r.busy;
    return true;
}

struct load_read {
    bool ok;
    double load1;
};

/* The kernel prints "%lu.%02lu": parsed by hand, since strtod follows the locale and may
 * allocate for a long run of digits. Bounded so a corrupt file cannot make the JSON number
 * absurdly long. */
static bool on_loadavg_line(char *line, void *ctx)
{
    struct load_read *r = ctx;
    const char *p = line;
    double v = 0, scale = 1;
    int digits = 0;
    for (; *p >= '0' && *p <= '9' && digits < 9; p++, digits++)
        v = v * 10 + (*p - '0');
    if (digits == 0) return true;
    if (*p == '.')
        for (p++; *p >= '0' && *p <= '9' && scale > 1e-6; p++)
            v += (*p - '0') * (scale /= 10);
    if (*p == ' ' || *p == 0) {
        r->ok = true;
        r->load1 = v;
    }
    return true;
}

static bool sample_load(struct pl_sysmetrics *s, struct pl_sys_sample *out)
{
    struct load_read r = {0};
    if (!read_lines(s, s->loadavg_path, on_loadavg_line, &r) || !r.ok) return false;
    out->load1 = r.load1;
    return true;
}

/* /proc/meminfo: "MemTotal:       16318836 kB". MemAvailable exists since Linux 3.14;
 * before it, free + buffers + cached is the usual estimate. */
enum { MEM_TOTAL, MEM_AVAILABLE, MEM_FREE, MEM_BUFFERS, MEM_CACHED, MEM_N };

static const char *const mem_keys[MEM_N] = {
    "MemTotal:", "MemAvailable:", "MemFree:", "Buffers:", "Cached:"};

struct mem_read {
    bool have[MEM_N];
    uint64_t v[MEM_N];
};

static bool on_meminfo_line(char *line, void *ctx)
{
    struct mem_read *r = ctx;
    for (int k = 0; k < MEM_N; k++) {
        size_t kl = strlen(mem_keys[k]);
        if (strncmp(line, mem_keys[k], kl) != 0) continue;
        const char *p = line + kl;
        uint64_t v;
        if (!parse_u64(&p, &v)) return false;
        while (*p == ' ' || *p == '\t')
            p++;
        if (strcmp(p, "kB") == 0) {
            if (v > UINT64_MAX / 1024) return false;
            v *= 1024;
        } else if (*p != 0) {
            return false;
        }
        r->have[k] = true;
        r->v[k] = v;
        break;
    }
    return r->have[MEM_TOTAL] && r->have[MEM_AVAILABLE];
}

static bool sample_mem(struct pl_sysmetrics *s, struct pl_sys_sample *out)
{
    struct mem_read r = {0};
    if (!read_lines(s, s->meminfo_path, on_meminfo_line, &r) || !r.have[MEM_TOTAL] ||
        r.v[MEM_TOTAL] == 0)
        return false;
    uint64_t avail;
    if (r.have[MEM_AVAILABLE])
        avail = r.v[MEM_AVAILABLE];
    else if (r.have[MEM_FREE])
        avail = r.v[MEM_FREE] + r.v[MEM_BUFFERS] + r.v[MEM_CACHED];
    else
        return false;
    out->mem_total_bytes = r.v[MEM_TOTAL];
    out->mem_used_bytes = avail < r.v[MEM_TOTAL] ? r.v[MEM_TOTAL] - avail : 0;
    return true;
}

static bool sample_disk(struct pl_sysmetrics *s, struct pl_sys_sample *out)
{
    struct statvfs v;
    if (statvfs(s->disk_path, &v) != 0) return false;
    uint64_t frsize = v.f_frsize ? v.f_frsize : v.f_bsize;
    uint64_t blocks = v.f_blocks, bfree = v.f_bfree <= v.f_blocks ? v.f_bfree : v.f_blocks;
    out->disk_total_bytes = blocks * frsize;
    out->disk_used_bytes = (blocks - bfree) * frsize;
    return true;
}

/* /proc/net/dev: two header lines, then "  eth0: rx_bytes rx_packets errs drop fifo frame
 * compressed multicast tx_bytes ...". A malformed interface line spoils the whole read:
 * summing without it would make the next good read look like a burst of traffic. */
struct net_read {
    bool bad;
    uint64_t rx, tx;
};

static bool on_netdev_line(char *line, void *ctx)
{
    struct net_read *r = ctx;
    char *colon = strchr(line, ':');
    if (!colon) return false; /* a header line */
    *colon = 0;
    char *name = line;
    while (*name == ' ' || *name == '\t')
        name++;
    if (strcmp(name, "lo") == 0) return false;
    const char *p = colon + 1;
    uint64_t v[9];
    for (int i = 0; i < 9; i++)
        if (!parse_u64(&p, &v[i])) {
            r->bad = true;
            return true;
        }
    r->rx += v[0]; /* wrapping sums only look like a reset, reported as 0 */
    r->tx += v[8];
    return false;
}

static double rate(uint64_t now, uint64_t prev, double seconds)
{
    return now >= prev ? (double)(now - prev) / seconds : 0;
}

static bool sample_net(struct pl_sysmetrics *s, int64_t now_us, struct pl_sys_sample *out)
{
    struct net_read r = {0};
    if (!read_lines(s, s->netdev_path, on_netdev_line, &r) || r.bad) {
        s->have_net = false;
        return false;
    }
    if (s->have_net && now_us > s->net_ts_us) {
        double seconds = (double)(now_us - s->net_ts_us) / 1e6;
        out->net_rx_bytes_per_s = rate(r.rx, s->net_rx, seconds);
        out->net_tx_bytes_per_s = rate(r.tx, s->net_tx, seconds);
    }
    s->have_net = true;
    s->net_rx = r.rx;
    s->net_tx = r.tx;
    s->net_ts_us = now_us;
    return true;
}

int pl_sysmetrics_sample(struct pl_sysmetrics *s, int64_t now_us, struct pl_sys_sample *out)
{
    memset(out, 0, sizeof *out);
    out->ts_us = now_us;
    /* Non-short-circuit: every source is read whatever the others did. */
    int got = sample_cpu(s, out) + sample_load(s, out) + sample_mem(s, out) + sample_disk(s, out) +
              sample_net(s, now_us, out);
    return got > 0 ? 0 : PL_E_UNAVAILABLE;
}

/* JSON has no NaN or infinity, and a negative zero would print as "-0.00". */
static double finite_nonneg(double v)
{
    return isfinite(v) && v > 0 ? v : 0;
}

int pl_sys_sample_json(const struct pl_sys_sample *s, char *buf, size_t cap)
{
    double cpu = finite_nonneg(s->cpu_percent);
    int n = snprintf(buf, cap,
                     "{\"cpu_percent\":%.2f,\"load1\":%.2f,\"mem_used_bytes\":%" PRIu64
                     ",\"mem_total_bytes\":%" PRIu64 ",\"disk_used_bytes\":%" PRIu64
                     ",\"disk_total_bytes\":%" PRIu64
                     ",\"net_rx_bytes_per_s\":%.2f,\"net_tx_bytes_per_s\":%.2f}",
                     cpu > 100 ? 100 : cpu, finite_nonneg(s->load1), s->mem_used_bytes,
                     s->mem_total_bytes, s->disk_used_bytes, s->disk_total_bytes,
                     finite_nonneg(s->net_rx_bytes_per_s), finite_nonneg(s->net_tx_bytes_per_s));
    return n >= 0 && (size_t)n < cap ? n : -1;
}
