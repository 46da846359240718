/* SPDX-License-Identifier: MIT */
/*
 * Description: the Finalize phase of the graceful shutdown (DESIGN
 * section 4, G6): tr_at_shutdown hooks run LIFO after every task has ended,
 * inside a task, may do I/O and register more hooks; its bad input.
 * Common ground (no signals, no sleeps, white-box parking): tr_test_shutdown.h.
 */
#define _GNU_SOURCE /* pipe2 */
#include "tr_test_shutdown.h"

/* ========================================================== tr_at_shutdown */

#define HK_USER 3

struct hk_ctx {
    tr_engine *e;
    int p[2], io[2];
    tr_task *reader, *sleeper;
    int ended;
    int reg[3], reg_null, h4_reg;
    int order[8], norder;
    int first_ended;
    uint64_t first_live;
    int self_null, sd_false;
    ssize_t io_w, io_r;
    char io_buf[4];
    int io_nop, io_sleep;
};

static void hk_common(struct hk_ctx *c, int id)
{
    if (c->norder == 0) {
        c->first_ended = c->ended;
        c->first_live = tstats().tasks_live;
    }
    if (c->norder < 8)
        c->order[c->norder] = id;
    c->norder++;
    if (tr_self() == NULL)
        c->self_null++;
    if (!tr_shutting_down())
        c->sd_false++;
}

static int hk_h1(void *p)
{
    hk_common(p, 1);
    return 0;
}

/* I/O from a hook. */
static int hk_h2(void *p)
{
    struct hk_ctx *c = p;
    hk_common(c, 2);
    c->io_w = tr_write(c->io[1], "hook", 4, -1);
    c->io_r = tr_read(c->io[0], c->io_buf, sizeof(c->io_buf), -1);
    c->io_nop = tr_nop();
    c->io_sleep = tr_sleep_ns(1000);
    return 0;
}

static int hk_h4(void *p)
{
    hk_common(p, 4);
    return 0;
}

/* Registers a hook from a hook: it runs too. */
static int hk_h3(void *p)
{
    struct hk_ctx *c = p;
    hk_common(c, 3);
    c->h4_reg = tr_at_shutdown(hk_h4, c);
    return 0;
}

static int hk_reader(void *p)
{
    struct hk_ctx *c = p;
    char b[4];
    ssize_t r = tr_read(c->p[0], b, sizeof(b), -1);
    c->ended++;
    return (int)r;
}

static int hk_sleeper(void *p)
{
    struct hk_ctx *c = p;
    int r = tr_sleep_ns(3600ull * 1000000000ull);
    c->ended++;
    return r;
}

static int hk_main(void *p)
{
    struct hk_ctx *c = p;
    c->reg_null = tr_at_shutdown(NULL, c);
    c->reg[0] = tr_at_shutdown(hk_h1, c);
    c->reg[1] = tr_at_shutdown(hk_h2, c);
    c->reg[2] = tr_at_shutdown(hk_h3, c);
    TCHECK(wait_parked(c->reader, TR_WAIT_OP));
    TCHECK(wait_parked(c->sleeper, TR_WAIT_TIMER));
    TCHECK_EQ(tr_engine_shutdown(c->e), 0);
    c->ended++;
    return 0;
}

/* tr_at_shutdown hooks run LIFO after every task has ended, inside a task,
 * during the shutdown; they may do I/O (ring ops, a sleep); a hook
 * registered by a hook runs too; NULL fn is -EINVAL and a call outside a
 * task -EPERM (and registers nothing). */
static void test_shutdown_hooks_run_lifo_after_all_tasks(void **state)
{
    (void)state;
    struct hk_ctx c;
    memset(&c, 0, sizeof(c));
    c.h4_reg = c.reg_null = 777;
    make_pipe(c.p);
    make_pipe(c.io);
    struct tr_config cfg = cfg_quiet();
    c.e = eng_new(&cfg);
    assert_int_equal(tr_at_shutdown(hk_h1, &c), -EPERM);
    assert_int_equal(tr_spawn(c.e, &c.reader, hk_reader, &c, NULL), 0);
    assert_int_equal(tr_spawn(c.e, &c.sleeper, hk_sleeper, &c, NULL), 0);
    assert_int_equal(tr_spawn(c.e, NULL, hk_main, &c, NULL), 0);
    eng_run(c.e);
    assert_int_equal(tr_at_shutdown(hk_h1, &c), -EPERM);
    assert_int_equal(c.reg_null, -EINVAL);
    for (int i = 0; i < 3; i++)
        assert_int_equal(c.reg[i], 0);
    assert_int_equal(c.h4_reg, 0);
    assert_int_equal(c.norder, 4);
    int want[4] = {3, 4, 2, 1};
    for (int i = 0; i < 4; i++)
        assert_int_equal(c.order[i], want[i]);
    assert_int_equal(c.first_ended, HK_USER);
    assert_true(c.first_live <= 1); /* at most the hooks' own task */
    assert_int_equal(c.self_null, 0);
    assert_int_equal(c.sd_false, 0);
    assert_int_equal(c.io_w, 4);
    assert_int_equal(c.io_r, 4);
    assert_memory_equal(c.io_buf, "hook", 4);
    assert_int_equal(c.io_nop, 0);
    assert_int_equal(c.io_sleep, 0);
    assert_int_equal(result_of(c.reader), -ECANCELED);
    assert_int_equal(result_of(c.sleeper), -ECANCELED);
    assert_int_equal(tr_engine_destroy(c.e), 0);
    close_pair(c.p);
    close_pair(c.io);
}

/* ================================================================= main */

/* ---- the hooks' kill rung reaches what hooks spawned --------------------- */

struct late_ctx {
    long yields;
    int late_reg;  /* tr_at_shutdown from the LATE task, after the kill rung */
    bool late_ran; /* it ran at all */
};

/* Spawned by a hook with TR_SPAWN_LATE: it starts cancelled (the engine is
 * shutting down), ignores that and keeps yielding. Only the hooks' kill
 * rung can end it. Bounded: 20 million yields take several seconds. */
static int late_spinner(void *p)
{
    struct late_ctx *c = p;
    c->late_ran = true;
    while (c->yields < 20000000L) {
        (void)tr_yield();
        c->yields++;
    }
    c->late_reg = tr_at_shutdown(late_spinner, p);
    return 0;
}

static int late_hook(void *p)
{
    struct tr_spawn_opts o = {.flags = TR_SPAWN_LATE, .name = "late-spinner"};
    TCHECK_EQ(tr_spawn(NULL, NULL, late_spinner, p, &o), 0);
    return 0;
}

static int late_main(void *p)
{
    TCHECK_EQ(tr_at_shutdown(late_hook, p), 0);
    return 0;
}

/* A LATE task a hook spawns gets the hooks' ladder like any other: a task
 * that ignores its cancellation is killed by the hooks' kill rung, and the
 * shutdown ends. (A hook registered after that rung is refused with
 * -ECANCELED instead of waited for for ever: tests/fuzz/corpus/
 * at_shutdown_after_kill replays the schedule fuzz_api found, which hung
 * the shutdown.) */
static void test_shutdown_hooks_kill_rung_reaches_late_task_of_a_hook(void **state)
{
    (void)state;
    struct late_ctx c = {0, 777, false};
    struct tr_config cfg = cfg_quiet();
    cfg.grace_ms = 0;
    cfg.kill_ms = 0;
    tr_engine *e = eng_new(&cfg);
    assert_int_equal(tr_spawn(e, NULL, late_main, &c, NULL), 0);
    assert_int_equal(tr_engine_shutdown(e), 0);
    eng_run(e);
    assert_true(c.late_ran);
    assert_true(c.yields < 20000000L); /* killed, not run to its end */
    assert_int_equal(c.late_reg, 777); /* never got that far */
    struct tr_stats st = stats_of(e);
    assert_int_equal(st.tasks_killed, 1);
    tr_test_assert_quiescent(e);
    assert_int_equal(tr_engine_destroy(e), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_shutdown_hooks_run_lifo_after_all_tasks),
        T(test_shutdown_hooks_kill_rung_reaches_late_task_of_a_hook),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
