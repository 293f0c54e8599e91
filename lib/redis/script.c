/* Lua scripts: EVALSHA with the SHA1 computed here (sha1.c), so an eval costs no extra
 * round trip and needs no per-connection state. When Redis answers NOSCRIPT (a restart, a
 * failover, SCRIPT FLUSH), SCRIPT LOAD and the same EVALSHA are pipelined once more; the
 * caller only sees the second answer. */
#include <assert.h>
#include <stdio.h>
#include <string.h>

#include "pl/error.h"
#include "pl/log.h"
#include "redis/redis_internal.h"

int pl_redis_script_create(struct pl_redis *r, const char *lua, struct pl_redis_script **out)
{
    if (!r || !lua || !out) return PL_E_INVALID;
    struct pl_redis_script *s = rd_xcalloc(1, sizeof *s);
    s->len = strlen(lua);
    s->lua = rd_xmalloc(s->len + 1);
    memcpy(s->lua, lua, s->len + 1);
    pl_redis_sha1_hex(s->lua, s->len, s->sha);
    s->next = r->scripts;
    r->scripts = s;
    *out = s;
    return 0;
}

void pl_redis_scripts_free(struct pl_redis *r)
{
    while (r->scripts) {
        struct pl_redis_script *s = r->scripts;
        r->scripts = s->next;
        free(s->lua);
        free(s);
    }
}

int pl_redis_eval(struct pl_redis *r, struct pl_redis_script *s, int nkeys, const char **keys,
                  const size_t *keylens, int nargs, const char **args, const size_t *arglens,
                  pl_redis_cb cb, void *ctx)
{
    assert(s && nkeys >= 0 && nargs >= 0);
    if (r->destroying || !r->conn.ready) return PL_E_UNAVAILABLE;

    int argc = 3 + nkeys + nargs;
    const char **argv = rd_xmalloc((size_t)argc * sizeof *argv);
    size_t *lens = rd_xmalloc((size_t)argc * sizeof *lens);
    char nk[16];
    snprintf(nk, sizeof nk, "%d", nkeys);
    argv[0] = "EVALSHA";
    lens[0] = 7;
    argv[1] = s->sha;
    lens[1] = 40;
    argv[2] = nk;
    lens[2] = strlen(nk);
    for (int i = 0; i < nkeys; i++) {
        argv[3 + i] = keys[i];
        lens[3 + i] = keylens ? keylens[i] : strlen(keys[i]);
    }
    for (int i = 0; i < nargs; i++) {
        argv[3 + nkeys + i] = args[i];
        lens[3 + nkeys + i] = arglens ? arglens[i] : strlen(args[i]);
    }
    /* Formatted once and kept: a NOSCRIPT retry sends the very same bytes. */
    char *formatted;
    int len = redisFormatCommandArgv(&formatted, argc, argv, lens);
    free(argv);
    free(lens);
    if (len < 0) abort(); /* hiredis fails to format only when out of memory */

    struct rd_cmd *cmd = pl_redis_cmd_new(r, cb, ctx);
    cmd->script = s;
    cmd->formatted = formatted;
    cmd->formatted_len = (size_t)len;
    return pl_redis_submit(r, cmd);
}

/* SCRIPT LOAD's reply is not the caller's business, but a script Redis refuses to compile
 * would otherwise only surface as a puzzling NOSCRIPT: say why, once, here. */
static void on_loaded(redisAsyncContext *ac, void *reply_, void *privdata)
{
    struct pl_redis_script *s = privdata;
    redisReply *reply = reply_;
    (void)ac;
    if (!reply || reply->type != REDIS_REPLY_ERROR) return;
    pl_error("redis script load failed", PL_STR("sha", s->sha),
             PL_STRN("error", reply->str, reply->len));
}

int pl_redis_script_retry(struct pl_redis *r, redisAsyncContext *ac, struct rd_cmd *cmd)
{
    struct pl_redis_script *s = cmd->script;
    if (r->destroying || !cmd->formatted) return PL_E_UNAVAILABLE;
    if (redisAsyncCommand(ac, on_loaded, s, "SCRIPT LOAD %b", s->lua, s->len) != REDIS_OK)
        return PL_E_UNAVAILABLE;
    if (redisAsyncFormattedCommand(ac, pl_redis_on_reply, cmd, cmd->formatted,
                                   cmd->formatted_len) != REDIS_OK)
        return PL_E_UNAVAILABLE;
    cmd->retried = true;
    return 0;
}
