/* loop_test.h: running a libuv loop in tests until a condition holds, with a deadline.
 *
 *   CHECK(WAIT_UNTIL(&loop, result.calls == 1, 5000));   runs the loop until true or 5 s
 *   SLEEP(&loop, 200);                                    runs the loop for 200 ms
 *   finish(&loop);   runs the loop dry; every handle must be closed (uv_loop_close == 0)
 *
 * Include after test.h. */
#ifndef PULSE_LOOP_TEST_H
#define PULSE_LOOP_TEST_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

struct waiter {
    uv_timer_t tick;
    uint64_t deadline;
};

static void on_tick(uv_timer_t *t)
{
    (void)t;
}

static inline void waiter_start(struct waiter *w, uv_loop_t *loop, int ms)
{
    uv_timer_init(loop, &w->tick);
    uv_timer_start(&w->tick, on_tick, 5, 5); /* UV_RUN_ONCE must not block forever */
    uv_update_time(loop);
    w->deadline = uv_now(loop) + (uint64_t)ms;
}

static inline bool waiter_more(struct waiter *w)
{
    return uv_now(w->tick.loop) < w->deadline;
}

static inline void waiter_stop(struct waiter *w)
{
    uv_close((uv_handle_t *)&w->tick, NULL);
    uv_run(w->tick.loop, UV_RUN_NOWAIT);
}

/* Runs the loop until cond holds or ms pass; evaluates to cond. */
#define WAIT_UNTIL(loop, cond, ms)                                                                 \
    __extension__({                                                                                \
        struct waiter w_;                                                                          \
        waiter_start(&w_, (loop), (ms));                                                           \
        while (!(cond) && waiter_more(&w_))                                                        \
            uv_run((loop), UV_RUN_ONCE);                                                           \
        waiter_stop(&w_);                                                                          \
        (bool)(cond);                                                                              \
    })

#define SLEEP(loop, ms) (void)WAIT_UNTIL(loop, false, ms)

/* Every test ends here: all handles must be closed. */
static inline void finish(uv_loop_t *loop)
{
    uv_run(loop, UV_RUN_DEFAULT);
    CHECK_EQ_INT(uv_loop_close(loop), 0);
}

#endif
