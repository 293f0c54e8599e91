/* caps: open live sockets counted per user and per client IP, for the whole process (see
 * live.h). A socket lives in one process, so the process is the unit that can count it
 * exactly without a round trip; workers share one table under a mutex, taken once at the
 * handshake and once at the close. */
#include "live.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pl/mem.h"

#define CAP_BUCKETS 1024

struct cap_entry {
    struct cap_entry *next;
    int count;
    char key[]; /* "u:<user id>" or "i:<ip>" */
};

struct live_caps {
    uv_mutex_t lock;
    struct cap_entry *buckets[CAP_BUCKETS];
};

struct live_caps *live_caps_create(void)
{
    struct live_caps *c = pl_xcalloc(1, sizeof *c);
    if (uv_mutex_init(&c->lock) != 0) abort();
    return c;
}

void live_caps_destroy(struct live_caps *c)
{
    if (!c) return;
    for (int b = 0; b < CAP_BUCKETS; b++) {
        while (c->buckets[b]) {
            struct cap_entry *e = c->buckets[b];
            c->buckets[b] = e->next;
            free(e);
        }
    }
    uv_mutex_destroy(&c->lock);
    free(c);
}

static unsigned bucket_of(const char *key)
{
    return live_hash(key) % CAP_BUCKETS;
}

/* The entry of `key`, created with count 0 when `create` (else NULL when absent). */
static struct cap_entry *entry_get(struct live_caps *c, const char *key, bool create)
{
    unsigned b = bucket_of(key);
    for (struct cap_entry *e = c->buckets[b]; e; e = e->next)
        if (strcmp(e->key, key) == 0) return e;
    if (!create) return NULL;
    size_t n = strlen(key) + 1;
    struct cap_entry *e = pl_xcalloc(1, sizeof *e + n);
    memcpy(e->key, key, n);
    e->next = c->buckets[b];
    c->buckets[b] = e;
    return e;
}

/* Frees an entry whose count fell to 0. */
static void entry_drop_if_unused(struct live_caps *c, struct cap_entry *e)
{
    if (e->count > 0) return;
    for (struct cap_entry **p = &c->buckets[bucket_of(e->key)]; *p; p = &(*p)->next) {
        if (*p == e) {
            *p = e->next;
            free(e);
            return;
        }
    }
}

enum live_cap live_caps_take(struct live_caps *c, const char *user_id, const char *ip,
                             long long per_user, long long per_ip, struct live_cap_slot *out)
{
    char ukey[48], ikey[80];
    snprintf(ukey, sizeof ukey, "u:%s", user_id);
    snprintf(ikey, sizeof ikey, "i:%s", ip ? ip : "");
    uv_mutex_lock(&c->lock);
    struct cap_entry *u = entry_get(c, ukey, true);
    struct cap_entry *i = entry_get(c, ikey, true);
    enum live_cap verdict = u->count >= per_user ? LIVE_CAP_USER
                            : i->count >= per_ip ? LIVE_CAP_IP
                                                 : LIVE_CAP_OK;
    if (verdict == LIVE_CAP_OK) {
        u->count++;
        i->count++;
        out->user = u;
        out->ip = i;
    } else {
        entry_drop_if_unused(c, u);
        entry_drop_if_unused(c, i);
        out->user = out->ip = NULL;
    }
    uv_mutex_unlock(&c->lock);
    return verdict;
}

void live_caps_release(struct live_caps *c, struct live_cap_slot *slot)
{
    if (!slot->user) return;
    uv_mutex_lock(&c->lock);
    /* The entries live while a count is held: ours, until now. */
    slot->user->count--;
    entry_drop_if_unused(c, slot->user);
    slot->ip->count--;
    entry_drop_if_unused(c, slot->ip);
    uv_mutex_unlock(&c->lock);
    slot->user = slot->ip = NULL;
}
