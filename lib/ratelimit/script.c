/* The Lua side of the limiter. pl_ratelimit_lua is a library other scripts prepend to their
 * own text (the session check applies a user's limit in its round trip), so it only defines
 * top-level `local function`s, all named pl_gcra*, and returns nothing.
 *
 * The arithmetic is gcra.c's, step for step. Lua 5.1 numbers are doubles: integers below 2^53
 * are exact, and the quotients floored or ceiled here land on the same integers as C's
 * (a quotient of integers below 2^53 never rounds onto a whole number it does not equal).
 * Numbers sent back to Redis go through string.format('%d'), so the stored TAT is integer
 * text by construction (what gcra.c and anyone reading the key expect), whatever the number
 * formatting of redis.call.
 *
 * TIME inside a script that writes is fine since Redis 5 (effects replication, the only mode
 * in Redis 7): replicas receive the SET, not the script. The key expires just after its TAT,
 * when it would mean the same as no key at all. */
#include "ratelimit/ratelimit_internal.h"

#define GCRA_LUA                                                                                   \
    "local function pl_gcra_now()\n"                                                               \
    "    local t = redis.call('TIME')\n"                                                           \
    "    return tonumber(t[1]) * 1000000 + tonumber(t[2])\n"                                       \
    "end\n"                                                                                        \
    "\n"                                                                                           \
    "local function pl_gcra_state(key, now_us, count, period_s)\n"                                 \
    "    local t = math.ceil(period_s * 1000000 / count)\n"                                        \
    "    local tau = t * count\n"                                                                  \
    "    local tat = tonumber(redis.call('GET', key)) or now_us\n"                                 \
    "    if tat < now_us then tat = now_us end\n"                                                  \
    "    local new_tat = tat + t\n"                                                                \
    "    return {ok = new_tat - now_us <= tau, tat = tat, new_tat = new_tat, t = t, tau = tau}\n"  \
    "end\n"                                                                                        \
    "\n"                                                                                           \
    "local function pl_gcra_result(s, now_us, counted)\n"                                          \
    "    if s.ok and counted then\n"                                                               \
    "        return {1, math.floor((s.tau - (s.new_tat - now_us)) / s.t),\n"                       \
    "                math.ceil((s.new_tat - now_us) / 1000000), 0}\n"                              \
    "    end\n"                                                                                    \
    "    local remaining = math.floor((s.tau - (s.tat - now_us)) / s.t)\n"                         \
    "    if remaining < 0 then remaining = 0 end\n"                                                \
    "    local retry = 0\n"                                                                        \
    "    if not s.ok then\n"                                                                       \
    "        retry = math.max(1, math.ceil((s.new_tat - s.tau - now_us) / 1000000))\n"             \
    "    end\n"                                                                                    \
    "    return {s.ok and 1 or 0, remaining, math.ceil((s.tat - now_us) / 1000000), retry}\n"      \
    "end\n"                                                                                        \
    "\n"                                                                                           \
    "local function pl_gcra_store(key, s, now_us)\n"                                               \
    "    local ttl_ms = math.ceil((s.new_tat - now_us) / 1000) + 1\n"                              \
    "    redis.call('SET', key, string.format('%d', s.new_tat), 'PX',\n"                           \
    "               string.format('%d', ttl_ms))\n"                                                \
    "end\n"                                                                                        \
    "\n"                                                                                           \
    "local function pl_gcra(key, now_us, count, period_s)\n"                                       \
    "    local s = pl_gcra_state(key, now_us, count, period_s)\n"                                  \
    "    if s.ok then pl_gcra_store(key, s, now_us) end\n"                                         \
    "    return pl_gcra_result(s, now_us, true)\n"                                                 \
    "end\n"                                                                                        \
    "\n"                                                                                           \
    "local function pl_gcra_peek(key, now_us, count, period_s)\n"                                  \
    "    return pl_gcra_result(pl_gcra_state(key, now_us, count, period_s), now_us, true)\n"       \
    "end\n"

const char pl_ratelimit_lua[] = GCRA_LUA;

/* All keys are judged before any is stored, so a refused request counts against none. */
const char rl_check_lua[] =
    GCRA_LUA "\n"
             "local now_us = pl_gcra_now()\n"
             "local steps, all = {}, true\n"
             "for i = 1, #KEYS do\n"
             "    steps[i] = pl_gcra_state(KEYS[i], now_us, tonumber(ARGV[2 * i - 1]),\n"
             "                             tonumber(ARGV[2 * i]))\n"
             "    all = all and steps[i].ok\n"
             "end\n"
             "local out = {all and 1 or 0}\n"
             "for i = 1, #KEYS do\n"
             "    if all then pl_gcra_store(KEYS[i], steps[i], now_us) end\n"
             "    local r = pl_gcra_result(steps[i], now_us, all)\n"
             "    for j = 1, 4 do out[#out + 1] = r[j] end\n"
             "end\n"
             "return out\n";
