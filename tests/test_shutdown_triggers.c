/* SPDX-License-Identifier: MIT */
/*
 * Description: each trigger of the graceful shutdown (DESIGN section 4,
 * G6) leads to one orderly shutdown: tr_engine_shutdown from a task
 * (tr_shutting_down turns true, tr_wait_shutdown waiters wake with 0, parked
 * tasks end with -ECANCELED), before tr_engine_run (also with no task at
 * all), from another thread (while the engine waits on a read, or with only
 * its own wakeup read in flight), and tr_run's main returning (tr_run returns
 * main's result, the report names the trigger; its bad input).
 * Common ground (no signals, no sleeps, white-box parking): tr_test_shutdown.h.
 */
#define _GNU_SOURCE /* pipe2 */
#include "tr_test_shutdown.h"

/* ============================================ trigger from inside a task */

#define FT_WAITERS 3

struct ft_ctx {
    tr_engine *e;
    int rp[2], bp[2];
    tr_task *w[FT_WAITERS], *reader, *sleeper, *joiner, *blocker, *trigger;
    int w_res[FT_WAITERS], w_sd[FT_WAITERS], w_nop[FT_WAITERS];
    ssize_t r_res, b_res;
    int s_res, j_res, j_detach;
    int sd_before, sd_call, sd_wait, sd_after, trig_nop, trig_cancelled;
};

struct ft_arg {
    struct ft_ctx *c;
    int i;
};

static int ft_waiter(void *p)
{
    struct ft_arg *a = p;
    a->c->w_res[a->i] = tr_wait_shutdown();
    a->c->w_sd[a->i] = tr_shutting_down();
    a->c->w_nop[a->i] = tr_nop();
    return a->c->w_res[a->i];
}

static int ft_reader(void *p)
{
    struct ft_ctx *c = p;
    char b[8];
    c->r_res = tr_read(c->rp[0], b, sizeof(b), -1);
    return (int)c->r_res;
}

static int ft_blocker(void *p)
{
    struct ft_ctx *c = p;
    char b[8];
    c->b_res = tr_read(c->bp[0], b, sizeof(b), -1);
    return (int)c->b_res;
}

static int ft_sleeper(void *p)
{
    struct ft_ctx *c = p;
    c->s_res = tr_sleep_ns(3600ull * 1000000000ull);
    return c->s_res;
}

static int ft_joiner(void *p)
{
    struct ft_ctx *c = p;
    int res = 0;
    c->j_res = tr_join(c->blocker, &res);
    /* A cancelled join leaves the handle with us. */
    if (c->j_res == -ECANCELED)
        c->j_detach = tr_detach(c->blocker);
    return c->j_res;
}

static int ft_trigger(void *p)
{
    struct ft_ctx *c = p;
    for (int i = 0; i < FT_WAITERS; i++)
        TCHECK(wait_parked(c->w[i], TR_WAIT_SHUTDOWN));
    TCHECK(wait_parked(c->reader, TR_WAIT_OP));
    TCHECK(wait_parked(c->blocker, TR_WAIT_OP));
    TCHECK(wait_parked(c->sleeper, TR_WAIT_TIMER));
    TCHECK(wait_parked(c->joiner, TR_WAIT_JOIN));
    c->sd_before = tr_shutting_down();
    c->sd_call = tr_engine_shutdown(c->e);
    c->sd_wait = tr_wait_shutdown();
    c->sd_after = tr_shutting_down();
    c->trig_nop = tr_nop();
    c->trig_cancelled = tr_is_cancelled();
    return 0;
}

/* tr_engine_shutdown from inside a task: tr_shutting_down() turns true,
 * every tr_wait_shutdown() waiter wakes with 0, tasks parked on a ring op, a
 * sleep and a join end with -ECANCELED (drain_ms 0), and the run returns 0
 * with every task accounted for and nothing in flight. */
static void test_shutdown_from_task_wakes_waiters_cancels_parked(void **state)
{
    (void)state;
    struct ft_ctx c;
    memset(&c, 0, sizeof(c));
    make_pipe(c.rp);
    make_pipe(c.bp);
    struct tr_config cfg = cfg_quiet();
    rep_open(&cfg);
    c.e = eng_new(&cfg);
    struct ft_arg args[FT_WAITERS];
    for (int i = 0; i < FT_WAITERS; i++) {
        args[i] = (struct ft_arg){&c, i};
        c.w_res[i] = c.w_nop[i] = 777;
        assert_int_equal(tr_spawn(c.e, &c.w[i], ft_waiter, &args[i], NULL), 0);
    }
    assert_int_equal(tr_spawn(c.e, &c.reader, ft_reader, &c, NULL), 0);
    assert_int_equal(tr_spawn(c.e, &c.blocker, ft_blocker, &c, NULL), 0);
    assert_int_equal(tr_spawn(c.e, &c.sleeper, ft_sleeper, &c, NULL), 0);
    assert_int_equal(tr_spawn(c.e, &c.joiner, ft_joiner, &c, NULL), 0);
    assert_int_equal(tr_spawn(c.e, &c.trigger, ft_trigger, &c, NULL), 0);
    eng_run(c.e);

    assert_false(c.sd_before);
    assert_int_equal(c.sd_call, 0);
    assert_int_equal(c.sd_wait, 0);
    assert_true(c.sd_after);
    assert_int_equal(c.trig_nop, -ECANCELED);
    assert_true(c.trig_cancelled);
    for (int i = 0; i < FT_WAITERS; i++) {
        assert_int_equal(c.w_res[i], 0);
        assert_true(c.w_sd[i]);
        assert_int_equal(c.w_nop[i], -ECANCELED);
        assert_int_equal(result_of(c.w[i]), 0);
    }
    assert_int_equal(c.r_res, -ECANCELED);
    assert_int_equal(c.b_res, -ECANCELED);
    assert_int_equal(c.s_res, -ECANCELED);
    assert_int_equal(c.j_res, -ECANCELED);
    assert_int_equal(c.j_detach, 0);
    assert_int_equal(result_of(c.reader), -ECANCELED);
    assert_int_equal(result_of(c.sleeper), -ECANCELED);
    assert_int_equal(result_of(c.joiner), -ECANCELED);
    assert_int_equal(result_of(c.trigger), 0);
    struct tr_stats s = stats_of(c.e);
    assert_int_equal(s.tasks_spawned, FT_WAITERS + 5);
    assert_int_equal(s.tasks_ok, FT_WAITERS + 1);
    assert_int_equal(s.tasks_cancelled, 4);
    assert_int_equal(s.tasks_failed, 0);
    assert_int_equal(s.tasks_killed, 0);
    assert_int_equal(tr_engine_destroy(c.e), 0);
    rep_collect();
    assert_int_equal(count_substr(rep.text, "shutdown report"), 1);
    assert_contains(rep.text, "tr_engine_shutdown()");
    close_pair(c.rp);
    close_pair(c.bp);
}

/* ========================================= trigger before tr_engine_run */

struct br_ctx {
    int p[2];
    int w_res, w_sd;
    int r_sd;
    ssize_t r_res;
};

static int br_waiter(void *p)
{
    struct br_ctx *c = p;
    c->w_res = tr_wait_shutdown();
    c->w_sd = tr_shutting_down();
    return c->w_res;
}

static int br_reader(void *p)
{
    struct br_ctx *c = p;
    char b[4];
    c->r_sd = tr_shutting_down();
    c->r_res = tr_read(c->p[0], b, sizeof(b), -1);
    return (int)c->r_res;
}

/* tr_engine_shutdown before tr_engine_run: the run performs one orderly
 * shutdown (one report, trigger named), the waiter returns 0 at once, the
 * reader is cancelled, and outside a task the shutdown calls answer as
 * documented. */
static void test_shutdown_before_run_one_orderly_shutdown(void **state)
{
    (void)state;
    struct br_ctx c;
    memset(&c, 0, sizeof(c));
    c.w_res = 777;
    make_pipe(c.p);
    assert_int_equal(tr_engine_shutdown(NULL), -EINVAL);
    assert_int_equal(tr_wait_shutdown(), -EPERM);
    assert_false(tr_shutting_down());
    struct tr_config cfg = cfg_quiet();
    rep_open(&cfg);
    tr_engine *e = eng_new(&cfg);
    assert_int_equal(tr_spawn(e, NULL, br_waiter, &c, NULL), 0);
    assert_int_equal(tr_spawn(e, NULL, br_reader, &c, NULL), 0);
    assert_int_equal(tr_engine_shutdown(e), 0);
    assert_int_equal(tr_engine_shutdown(e), 0); /* coalesces */
    eng_run(e);
    assert_int_equal(c.w_res, 0);
    assert_true(c.w_sd);
    assert_true(c.r_sd);
    assert_int_equal(c.r_res, -ECANCELED);
    struct tr_stats s = stats_of(e);
    assert_int_equal(s.tasks_ok, 1);
    assert_int_equal(s.tasks_cancelled, 1);
    assert_false(tr_shutting_down()); /* outside a task */
    assert_int_equal(tr_engine_destroy(e), 0);
    rep_collect();
    assert_int_equal(count_substr(rep.text, "shutdown report"), 1);
    assert_contains(rep.text, "tr_engine_shutdown()");
    assert_contains(rep.text, "tasks ended: 1 ok, 1 cancelled, 0 failed, 0 killed");
    close_pair(c.p);
}

/* A shutdown requested before the run of an engine with no task at all
 * still completes (report included) and the run returns 0. */
static void test_shutdown_before_run_with_no_tasks(void **state)
{
    (void)state;
    struct tr_config cfg = cfg_quiet();
    rep_open(&cfg);
    tr_engine *e = eng_new(&cfg);
    assert_int_equal(tr_engine_shutdown(e), 0);
    eng_run(e);
    assert_int_equal(tr_engine_destroy(e), 0);
    rep_collect();
    assert_int_equal(count_substr(rep.text, "shutdown report"), 1);
    assert_contains(rep.text, "tasks ended: 0 ok, 0 cancelled, 0 failed, 0 killed");
    assert_contains(rep.text, "quiescent");
}

/* ============================================ trigger from another thread */

struct ot_ctx {
    tr_engine *e;
    int sync[2];
    int p[2];
    bool with_reader;
    tr_task *w[2], *reader;
    int w_res[2];
    ssize_t r_res;
    int ann_res;
    int thr_rc1, thr_rc2;
};

struct ot_arg {
    struct ot_ctx *c;
    int i;
};

static int ot_waiter(void *p)
{
    struct ot_arg *a = p;
    a->c->w_res[a->i] = tr_wait_shutdown();
    return a->c->w_res[a->i];
}

static int ot_reader(void *p)
{
    struct ot_ctx *c = p;
    char b[4];
    c->r_res = tr_read(c->p[0], b, sizeof(b), -1);
    return (int)c->r_res;
}

/* Tells the thread that every task is parked, then parks too: from here on
 * only the other thread can end the run. */
static int ot_announcer(void *p)
{
    struct ot_ctx *c = p;
    for (int i = 0; i < 2; i++)
        TCHECK(wait_parked(c->w[i], TR_WAIT_SHUTDOWN));
    if (c->with_reader)
        TCHECK(wait_parked(c->reader, TR_WAIT_OP));
    TCHECK_EQ(write(c->sync[1], "x", 1), 1);
    c->ann_res = tr_wait_shutdown();
    return c->ann_res;
}

static void *ot_thread(void *p)
{
    struct ot_ctx *c = p;
    char b;
    /* Blocks until the announcer wrote: no sleep, a real handshake. */
    if (read(c->sync[0], &b, 1) != 1)
        return NULL;
    c->thr_rc1 = tr_engine_shutdown(c->e);
    c->thr_rc2 = tr_engine_shutdown(c->e);
    return NULL;
}

static void run_other_thread_case(bool with_reader)
{
    struct ot_ctx c;
    memset(&c, 0, sizeof(c));
    c.with_reader = with_reader;
    c.w_res[0] = c.w_res[1] = c.ann_res = 777;
    c.thr_rc1 = c.thr_rc2 = 777;
    make_pipe(c.sync);
    make_pipe(c.p);
    struct tr_config cfg = cfg_quiet();
    rep_open(&cfg);
    c.e = eng_new(&cfg);
    struct ot_arg args[2] = {{&c, 0}, {&c, 1}};
    for (int i = 0; i < 2; i++)
        assert_int_equal(tr_spawn(c.e, &c.w[i], ot_waiter, &args[i], NULL), 0);
    if (with_reader)
        assert_int_equal(tr_spawn(c.e, &c.reader, ot_reader, &c, NULL), 0);
    assert_int_equal(tr_spawn(c.e, NULL, ot_announcer, &c, NULL), 0);
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, ot_thread, &c), 0);
    int rc = tr_engine_run(c.e);
    assert_int_equal(pthread_join(th, NULL), 0);
    assert_int_equal(rc, 0);
    tr_test_assert_clean();
    sd_audit(c.e);
    assert_int_equal(c.thr_rc1, 0);
    assert_int_equal(c.thr_rc2, 0);
    assert_int_equal(c.w_res[0], 0);
    assert_int_equal(c.w_res[1], 0);
    assert_int_equal(c.ann_res, 0);
    if (with_reader)
        assert_int_equal(c.r_res, -ECANCELED);
    assert_int_equal(tr_engine_destroy(c.e), 0);
    rep_collect();
    assert_int_equal(count_substr(rep.text, "shutdown report"), 1);
    assert_contains(rep.text, "tr_engine_shutdown()");
    close_pair(c.sync);
    close_pair(c.p);
}

/* tr_engine_shutdown from another thread while the engine waits in the
 * kernel for a pipe read: the wakeup reaches the ring, waiters return 0, the
 * read is cancelled, one shutdown (two calls coalesce). */
static void test_shutdown_from_thread_while_engine_waits_on_read(void **state)
{
    (void)state;
    run_other_thread_case(true);
}

/* The same with nothing of the tasks' in flight at all (every task in
 * tr_wait_shutdown): only the engine's wakeup read can end the wait; the run
 * must not give up with -EDEADLK. */
static void test_shutdown_from_thread_wakes_idle_engine(void **state)
{
    (void)state;
    run_other_thread_case(false);
}

/* ================================================================== tr_run */

struct run_ctx {
    int p[2];
    int ret;
    int main_ran;
    tr_task *reader, *sleeper, *waiter;
    ssize_t r_res;
    int s_res, w_res, w_nop;
    int ended;
    int reg_rc, hook_ran, hook_ended, hook_self;
};

static int run_reader(void *p)
{
    struct run_ctx *c = p;
    char b[4];
    c->r_res = tr_read(c->p[0], b, sizeof(b), -1);
    c->ended++;
    return (int)c->r_res;
}

static int run_sleeper(void *p)
{
    struct run_ctx *c = p;
    c->s_res = tr_sleep_ns(3600ull * 1000000000ull);
    c->ended++;
    return c->s_res;
}

static int run_waiter(void *p)
{
    struct run_ctx *c = p;
    c->w_res = tr_wait_shutdown();
    c->w_nop = tr_nop();
    c->ended++;
    return c->w_res;
}

static int run_hook(void *p)
{
    struct run_ctx *c = p;
    c->hook_ran++;
    c->hook_ended = c->ended;
    c->hook_self = tr_self() != NULL;
    return 0;
}

static int run_main(void *p)
{
    struct run_ctx *c = p;
    c->main_ran = 1;
    TCHECK_EQ(tr_spawn(NULL, &c->reader, run_reader, c, NULL), 0);
    TCHECK_EQ(tr_spawn(NULL, &c->sleeper, run_sleeper, c, NULL), 0);
    TCHECK_EQ(tr_spawn(NULL, &c->waiter, run_waiter, c, NULL), 0);
    c->reg_rc = tr_at_shutdown(run_hook, c);
    TCHECK(wait_parked(c->reader, TR_WAIT_OP));
    TCHECK(wait_parked(c->sleeper, TR_WAIT_TIMER));
    TCHECK(wait_parked(c->waiter, TR_WAIT_SHUTDOWN));
    TCHECK_EQ(tr_detach(c->reader), 0);
    TCHECK_EQ(tr_detach(c->sleeper), 0);
    TCHECK_EQ(tr_detach(c->waiter), 0);
    return c->ret;
}

static void run_main_case(int ret)
{
    struct run_ctx c;
    memset(&c, 0, sizeof(c));
    c.ret = ret;
    c.w_res = 777;
    make_pipe(c.p);
    struct tr_config cfg = cfg_quiet();
    rep_open(&cfg);
    assert_int_equal(tr_run(run_main, &c, &cfg), ret);
    tr_test_assert_clean();
    assert_int_equal(c.main_ran, 1);
    assert_int_equal(c.r_res, -ECANCELED);
    assert_int_equal(c.s_res, -ECANCELED);
    assert_int_equal(c.w_res, 0);
    assert_int_equal(c.w_nop, -ECANCELED);
    assert_int_equal(c.ended, 3);
    assert_int_equal(c.reg_rc, 0);
    assert_int_equal(c.hook_ran, 1);
    assert_int_equal(c.hook_ended, 3);
    assert_true(c.hook_self);
    rep_collect();
    assert_int_equal(count_substr(rep.text, "shutdown report"), 1);
    assert_contains(rep.text, "main task returned");
    assert_contains(rep.text, "quiescent");
    close_pair(c.p);
}

/* tr_run returns main's result; the tasks still running when main returns
 * are cancelled (waiters woken with 0 first), hooks run, and the report
 * names the trigger "main task returned". */
static void test_shutdown_run_returns_main_result(void **state)
{
    (void)state;
    run_main_case(42);
}

static void test_shutdown_run_returns_main_error(void **state)
{
    (void)state;
    run_main_case(-EIO);
}

static int run_noop_main(void *p)
{
    int *ran = p;
    (*ran)++;
    return 0;
}

struct nested_ctx {
    int rc;
    int ran;
};

static int run_nested(void *p)
{
    struct nested_ctx *c = p;
    struct tr_config cfg = cfg_quiet();
    c->rc = tr_run(run_noop_main, &c->ran, &cfg);
    return 0;
}

/* tr_run's bad input: NULL main is -EINVAL, a config the engine refuses
 * (sq_entries 0) its -EINVAL, a call from inside a task -EPERM; main never
 * runs in any of them. */
static void test_shutdown_run_bad_input(void **state)
{
    (void)state;
    int ran = 0;
    struct tr_config cfg = cfg_quiet();
    assert_int_equal(tr_run(NULL, NULL, &cfg), -EINVAL);
    cfg.sq_entries = 0;
    assert_int_equal(tr_run(run_noop_main, &ran, &cfg), -EINVAL);
    assert_int_equal(ran, 0);

    struct nested_ctx n = {777, 0};
    struct tr_config qc = cfg_quiet();
    tr_engine *e = eng_new(&qc);
    assert_int_equal(tr_spawn(e, NULL, run_nested, &n, NULL), 0);
    eng_run(e);
    assert_int_equal(tr_engine_destroy(e), 0);
    assert_int_equal(n.rc, -EPERM);
    assert_int_equal(n.ran, 0);
}

/* ================================================================= main */

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_shutdown_from_task_wakes_waiters_cancels_parked),
        T(test_shutdown_before_run_one_orderly_shutdown),
        T(test_shutdown_before_run_with_no_tasks),
        T(test_shutdown_from_thread_while_engine_waits_on_read),
        T(test_shutdown_from_thread_wakes_idle_engine),
        T(test_shutdown_run_returns_main_result),
        T(test_shutdown_run_returns_main_error),
        T(test_shutdown_run_bad_input),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
