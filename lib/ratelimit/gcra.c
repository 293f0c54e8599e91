/* GCRA in integer microseconds: the one definition of the arithmetic, which the Lua of
 * script.c repeats step for step (Lua 5.1 numbers are doubles, exact for integers below 2^53;
 * our values stay below 2^52).
 *
 * Emission interval t = ceil(period / count) and tolerance tau = count * t rather than
 * tau = period: with a rounded t, tau = period could let count+1 requests through or refuse
 * the count-th of a burst. The two agree whenever count divides the period in microseconds
 * (every configured default does); otherwise the rate is rounded down by under a microsecond
 * per request, never up. */
#include <limits.h>

#include "ratelimit/ratelimit_internal.h"

#define US_PER_S 1000000

bool gcra_rule_valid(const struct pl_rate_rule *rule)
{
    return rule && rule->count >= 1 && rule->period_s >= 1;
}

void gcra_compute(int64_t stored_tat, int64_t now_us, const struct pl_rate_rule *rule,
                  struct gcra_step *out)
{
    int64_t period_us = (int64_t)rule->period_s * US_PER_S;
    out->t = (period_us + rule->count - 1) / rule->count;
    out->tau = out->t * rule->count;
    /* A TAT in the past means a full bucket: it counts from now. */
    out->tat = stored_tat > now_us ? stored_tat : now_us;
    out->new_tat = out->tat + out->t;
    out->ok = out->new_tat - now_us <= out->tau;
}

static int ceil_s(int64_t us)
{
    if (us <= 0) return 0;
    int64_t s = (us + US_PER_S - 1) / US_PER_S;
    return s > INT_MAX ? INT_MAX : (int)s;
}

void gcra_result(const struct gcra_step *s, int64_t now_us, int limit, bool counted,
                 struct pl_rate_result *out)
{
    out->limit = limit;
    out->allowed = s->ok;
    if (s->ok && counted) {
        out->remaining = (int)((s->tau - (s->new_tat - now_us)) / s->t);
        out->reset_s = ceil_s(s->new_tat - now_us);
        out->retry_after_s = 0;
        return;
    }
    /* Not counted: the key as it stands. Negative only when the stored TAT lies beyond the
     * tolerance (the rule was tightened since it was written). */
    int64_t remaining = (s->tau - (s->tat - now_us)) / s->t;
    out->remaining = remaining < 0 ? 0 : (int)remaining;
    out->reset_s = ceil_s(s->tat - now_us);
    out->retry_after_s = 0;
    if (!s->ok) {
        int retry = ceil_s(s->new_tat - s->tau - now_us);
        out->retry_after_s = retry < 1 ? 1 : retry;
    }
}
