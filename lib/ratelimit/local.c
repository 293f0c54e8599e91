/* The in-process GCRA table: one per process, shared by every loop thread behind one mutex
 * (a check holds it for a few hash lookups; loops only come here while Redis is down).
 *
 * A chained hash map keyed by the full key string, storing each key's TAT. An entry whose TAT
 * has passed says nothing a missing entry would not, so expired entries are dropped whenever
 * a store walks past them, and swept all at once when the table is full.
 *
 * Keys come from clients (IPs, emails), so the hash is SipHash with a random key: a flood of
 * colliding keys would otherwise turn every lookup into a walk of one long chain.
 *
 * Memory is capped (RL_LOCAL_DEFAULT_CAP keys). When the table is full of live entries, a new
 * key is answered as a fresh one and not remembered: the table refuses to grow rather than
 * forget a live key, and rather than refuse every client it has not seen, which would turn a
 * Redis outage under load into an outage for every new client. Keys already in the table
 * keep their limits; a warning is logged once per episode. */
#include <assert.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "pl/log.h"
#include "ratelimit/ratelimit_internal.h"

#define NBUCKETS (1u << 17) /* a load factor under 0.8 at the default cap */

struct entry {
    struct entry *next;
    uint64_t hash;
    int64_t tat;
    size_t len;
    char key[];
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct entry **buckets; /* NBUCKETS chains, allocated on first use */
static size_t nentries;
static size_t cap = RL_LOCAL_DEFAULT_CAP;
/* No entry expires before this: a sweep earlier than it would free nothing. */
static int64_t next_sweep_us = INT64_MIN;
static bool full_warned;
static uint64_t sip_k0, sip_k1;

/* ---- SipHash-2-4 ---- */

#define ROTL(x, b) (uint64_t)(((x) << (b)) | ((x) >> (64 - (b))))
#define SIPROUND                                                                                   \
    do {                                                                                           \
        v0 += v1;                                                                                  \
        v1 = ROTL(v1, 13);                                                                         \
        v1 ^= v0;                                                                                  \
        v0 = ROTL(v0, 32);                                                                         \
        v2 += v3;                                                                                  \
        v3 = ROTL(v3, 16);                                                                         \
        v3 ^= v2;                                                                                  \
        v0 += v3;                                                                                  \
        v3 = ROTL(v3, 21);                                                                         \
        v3 ^= v0;                                                                                  \
        v2 += v1;                                                                                  \
        v1 = ROTL(v1, 17);                                                                         \
        v1 ^= v2;                                                                                  \
        v2 = ROTL(v2, 32);                                                                         \
    } while (0)

static uint64_t siphash(const char *in, size_t len)
{
    uint64_t v0 = 0x736f6d6570736575ULL ^ sip_k0, v1 = 0x646f72616e646f6dULL ^ sip_k1;
    uint64_t v2 = 0x6c7967656e657261ULL ^ sip_k0, v3 = 0x7465646279746573ULL ^ sip_k1;
    const unsigned char *p = (const unsigned char *)in;
    size_t whole = len & ~(size_t)7;
    for (size_t i = 0; i < whole; i += 8) {
        uint64_t m = 0;
        for (int j = 0; j < 8; j++)
            m |= (uint64_t)p[i + (size_t)j] << (8 * j);
        v3 ^= m;
        SIPROUND;
        SIPROUND;
        v0 ^= m;
    }
    uint64_t b = (uint64_t)len << 56;
    for (size_t j = 0; j < (len & 7); j++)
        b |= (uint64_t)p[whole + j] << (8 * j);
    v3 ^= b;
    SIPROUND;
    SIPROUND;
    v0 ^= b;
    v2 ^= 0xff;
    SIPROUND;
    SIPROUND;
    SIPROUND;
    SIPROUND;
    return v0 ^ v1 ^ v2 ^ v3;
}

/* ---- the table (every function below runs with `lock` held) ---- */

static void table_init(void)
{
    if (buckets) return;
    buckets = calloc(NBUCKETS, sizeof(struct entry *));
    if (!buckets) abort();
    uint64_t k[2];
    if (getrandom(k, sizeof k, 0) != (ssize_t)sizeof k) {
        /* No entropy source: a predictable key still hashes well, it only loses the
         * protection against crafted collisions. */
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        k[0] = (uint64_t)ts.tv_nsec * 0x9e3779b97f4a7c15ULL;
        k[1] = (uint64_t)ts.tv_sec ^ (uint64_t)(uintptr_t)&k;
    }
    sip_k0 = k[0];
    sip_k1 = k[1];
}

static struct entry *find(uint64_t hash, const char *key, size_t len)
{
    for (struct entry *e = buckets[hash & (NBUCKETS - 1)]; e; e = e->next)
        if (e->hash == hash && e->len == len && memcmp(e->key, key, len) == 0) return e;
    return NULL;
}

/* Frees every expired entry; returns how many. */
static size_t sweep(int64_t now_us)
{
    size_t freed = 0;
    int64_t earliest = INT64_MAX;
    for (size_t b = 0; b < NBUCKETS; b++) {
        struct entry **pp = &buckets[b];
        while (*pp) {
            struct entry *e = *pp;
            if (e->tat <= now_us) {
                *pp = e->next;
                free(e);
                freed++;
            } else {
                if (e->tat < earliest) earliest = e->tat;
                pp = &e->next;
            }
        }
    }
    nentries -= freed;
    next_sweep_us = nentries ? earliest : INT64_MIN;
    return freed;
}

/* Stores key's TAT; returns false when the table is full of live entries (not stored). */
static bool store(uint64_t hash, const char *key, size_t len, int64_t tat, int64_t now_us)
{
    struct entry **pp = &buckets[hash & (NBUCKETS - 1)];
    while (*pp) {
        struct entry *e = *pp;
        if (e->hash == hash && e->len == len && memcmp(e->key, key, len) == 0) {
            e->tat = tat;
            /* A lower TAT (the same key under a looser rule) may now expire first. */
            if (tat < next_sweep_us || next_sweep_us == INT64_MIN) next_sweep_us = tat;
            return true;
        }
        if (e->tat <= now_us) { /* expired: drop it on the way */
            *pp = e->next;
            free(e);
            nentries--;
        } else {
            pp = &e->next;
        }
    }
    if (nentries >= cap && (now_us < next_sweep_us || sweep(now_us) == 0)) return false;
    struct entry *e = malloc(sizeof *e + len);
    if (!e) abort();
    e->hash = hash;
    e->tat = tat;
    e->len = len;
    memcpy(e->key, key, len);
    size_t b = hash & (NBUCKETS - 1);
    e->next = buckets[b];
    buckets[b] = e;
    nentries++;
    if (tat < next_sweep_us || next_sweep_us == INT64_MIN) next_sweep_us = tat;
    return true;
}

bool pl_ratelimit_local_check(int n, const char *const *keys, const struct pl_rate_rule *rules,
                              int64_t now_us, struct pl_rate_result *results)
{
    assert(n >= 1 && n <= PL_RATE_MAX_KEYS && keys && rules && results);
    struct gcra_step steps[PL_RATE_MAX_KEYS];
    uint64_t hashes[PL_RATE_MAX_KEYS];
    size_t lens[PL_RATE_MAX_KEYS];
    bool all = true, dropped = false;

    pthread_mutex_lock(&lock);
    table_init();
    /* Every key is judged before any is stored: a refused request counts against none. */
    for (int i = 0; i < n; i++) {
        assert(keys[i] && gcra_rule_valid(&rules[i]));
        lens[i] = strlen(keys[i]);
        hashes[i] = siphash(keys[i], lens[i]);
        const struct entry *e = find(hashes[i], keys[i], lens[i]);
        gcra_compute(e ? e->tat : INT64_MIN, now_us, &rules[i], &steps[i]);
        all = all && steps[i].ok;
    }
    if (all)
        for (int i = 0; i < n; i++)
            if (!store(hashes[i], keys[i], lens[i], steps[i].new_tat, now_us)) dropped = true;
    bool warn = dropped && !full_warned;
    if (dropped)
        full_warned = true;
    else if (nentries < cap)
        full_warned = false;
    size_t size = nentries;
    pthread_mutex_unlock(&lock);

    if (warn)
        pl_warn("ratelimit fallback table full: new keys are not limited",
                PL_UINT("entries", size));
    for (int i = 0; i < n; i++)
        gcra_result(&steps[i], now_us, rules[i].count, all, &results[i]);
    return all;
}

/* ---- for tests ---- */

void rl_local_clear(void)
{
    pthread_mutex_lock(&lock);
    if (buckets) {
        for (size_t b = 0; b < NBUCKETS; b++) {
            while (buckets[b]) {
                struct entry *e = buckets[b];
                buckets[b] = e->next;
                free(e);
            }
        }
    }
    nentries = 0;
    next_sweep_us = INT64_MIN;
    full_warned = false;
    pthread_mutex_unlock(&lock);
}

void rl_local_set_cap(size_t new_cap)
{
    pthread_mutex_lock(&lock);
    cap = new_cap;
    pthread_mutex_unlock(&lock);
}

size_t rl_local_size(void)
{
    pthread_mutex_lock(&lock);
    size_t n = nentries;
    pthread_mutex_unlock(&lock);
    return n;
}
