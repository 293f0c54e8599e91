/* libFuzzer harness for lib/ratelimit/local.c: the in-process GCRA table that holds limits
 * while Redis is down. Keys are client input (IPs, emails), rules come from configuration.
 *
 * The input is a script of checks. Each check takes 1..4 keys (from a pool of 12 small
 * names, or bytes of the input), a rule per key (count 1..1000, period 1..3600 s) and a
 * clock step (0 to hours, so entries expire and sweeps run). The table's cap is lowered to 8
 * keys so that "full of live entries" happens too. Every answer is checked against a model
 * written from the contract (pl/ratelimit.h, local.c): GCRA with t = ceil(period/count) and
 * tau = count * t, all keys judged before any is stored, a refused request stored against
 * none, and a new key not remembered while the table is full of live entries. Invariants:
 * remaining <= limit, retry_after >= 1 when refused and 0 when allowed, reset within tau. */
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pl/log.h"
#include "pl/ratelimit.h"
#include "ratelimit/ratelimit_internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define REQUIRE(cond)                                                                              \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "fuzz_ratelimit_local: %s:%d: %s\n", __FILE__, __LINE__, #cond);       \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

#define CAP       8
#define MAX_MODEL 64 /* distinct keys one input can name (checks x keys) */
#define US        1000000LL

/* ---- the model ---- */

struct mkey {
    char key[16];
    int64_t tat;
};
static struct mkey model[MAX_MODEL];
static int nmodel;

static struct mkey *model_find(const char *key)
{
    for (int i = 0; i < nmodel; i++)
        if (strcmp(model[i].key, key) == 0) return &model[i];
    return NULL;
}

static int model_live(int64_t now)
{
    int n = 0;
    for (int i = 0; i < nmodel; i++)
        n += model[i].tat > now;
    return n;
}

static void model_store(const char *key, int64_t tat, int64_t now)
{
    struct mkey *k = model_find(key);
    if (k && k->tat > now) {
        k->tat = tat;
        return;
    }
    /* Absent or expired (the table may have dropped it): a new entry, if there is room. */
    if (model_live(now) >= CAP) {
        if (k) k->tat = INT64_MIN; /* gone from the table */
        return;
    }
    if (!k) {
        REQUIRE(nmodel < MAX_MODEL);
        k = &model[nmodel++];
        snprintf(k->key, sizeof k->key, "%s", key);
    }
    k->tat = tat;
}

struct step {
    int64_t t, tau, tat, new_tat;
    int ok;
};

static void model_step(const char *key, const struct pl_rate_rule *r, int64_t now, struct step *s)
{
    const struct mkey *k = model_find(key);
    int64_t stored = k ? k->tat : INT64_MIN;
    s->t = ((int64_t)r->period_s * US + r->count - 1) / r->count;
    s->tau = s->t * r->count;
    s->tat = stored > now ? stored : now;
    s->new_tat = s->tat + s->t;
    s->ok = s->new_tat - now <= s->tau;
}

static int64_t ceil_s(int64_t us)
{
    return us <= 0 ? 0 : (us + US - 1) / US;
}

/* ---- the input ---- */

struct reader {
    const uint8_t *p;
    size_t n;
};

static unsigned take(struct reader *r)
{
    if (r->n == 0) return 0;
    r->n--;
    return *r->p++;
}

static unsigned take16(struct reader *r)
{
    return take(r) << 8 | take(r);
}

static const char *const POOL[] = {"ip:10.0.0.1", "ip:10.0.0.2", "ip:::1",     "em:a@b.c",
                                   "em:x@y.z",    "t:1",         "t:2",        "u:42",
                                   "ip:1.1.1.1",  "u:7",         "ip:fe80::1", "t:3"};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int once;
    if (!once) {
        once = 1;
        rl_local_set_cap(CAP);
        pl_log_set_level(PL_LOG_ERROR); /* the "table full" warning, once per episode */
    }
    rl_local_clear();
    nmodel = 0;
    struct reader in = {data, size};
    int64_t now = 1000 * US;
    while (in.n > 0) {
        unsigned op = take(&in);
        int n = 1 + (int)(op & 3);
        /* the clock: mostly small steps, sometimes minutes, sometimes hours */
        unsigned dt = take16(&in);
        switch (op >> 6) {
        case 0:
            break;
        case 1:
            now += (int64_t)dt * 10;
            break; /* up to 0.65 s */
        case 2:
            now += (int64_t)dt * 10000;
            break; /* up to 11 min */
        default:
            now += (int64_t)dt * 1000000;
            break; /* up to 18 h */
        }
        char keys[PL_RATE_MAX_KEYS][16];
        const char *kp[PL_RATE_MAX_KEYS];
        struct pl_rate_rule rules[PL_RATE_MAX_KEYS];
        for (int i = 0; i < n; i++) {
            unsigned k = take(&in);
            if (k < 0xf0) {
                snprintf(keys[i], sizeof keys[i], "%s", POOL[k % 12]);
            } else { /* a raw key from the input: 1..8 bytes, NULs end it early */
                size_t len = 1 + (k & 7), j = 0;
                for (; j < len; j++)
                    keys[i][j] = (char)take(&in);
                keys[i][j] = 0;
            }
            kp[i] = keys[i];
            rules[i].count = 1 + (int)(take16(&in) % 1000);
            rules[i].period_s = 1 + (int)(take16(&in) % 3600);
        }

        struct step st[PL_RATE_MAX_KEYS];
        int all = 1;
        for (int i = 0; i < n; i++) {
            model_step(kp[i], &rules[i], now, &st[i]);
            all = all && st[i].ok;
        }
        struct pl_rate_result res[PL_RATE_MAX_KEYS];
        memset(res, 0x5a, sizeof res);
        bool allowed = pl_ratelimit_local_check(n, kp, rules, now, res);
        if (allowed != (bool)all)
            fprintf(stderr, "now=%" PRId64 " n=%d model=%d table=%d\n", now, n, all, allowed);
        REQUIRE(allowed == (bool)all);
        int refused_keys = 0;
        for (int i = 0; i < n; i++) {
            const struct pl_rate_result *r = &res[i];
            REQUIRE(r->limit == rules[i].count);
            REQUIRE(r->allowed == (bool)st[i].ok);
            REQUIRE(r->remaining >= 0 && r->remaining <= r->limit);
            if (r->allowed) {
                REQUIRE(r->retry_after_s == 0);
            } else {
                /* the wait until the TAT is back within the tolerance, at least 1 s */
                refused_keys++;
                int64_t wait = ceil_s(st[i].new_tat - st[i].tau - now);
                REQUIRE(r->retry_after_s >= 1 && r->retry_after_s == (wait < 1 ? 1 : wait));
            }
            if (allowed) {
                /* counted: this request took a slot, so the bucket is not full */
                REQUIRE(r->reset_s >= 1 && r->reset_s == ceil_s(st[i].new_tat - now));
                REQUIRE(r->reset_s <= ceil_s(st[i].tau) && r->remaining < r->limit);
                REQUIRE(r->remaining == (int)((st[i].tau - (st[i].new_tat - now)) / st[i].t));
            } else {
                /* the key as it stands (its TAT may lie beyond a since-tightened rule) */
                REQUIRE(r->reset_s == ceil_s(st[i].tat - now));
            }
        }
        REQUIRE(allowed == (refused_keys == 0));
        if (allowed)
            for (int i = 0; i < n; i++)
                model_store(kp[i], st[i].new_tat, now);
        REQUIRE(rl_local_size() <= CAP);
    }
    return 0;
}
