/* SPDX-License-Identifier: MIT */
/*
 * Description: an independent review of cancel scopes and deadlines
 * (DESIGN section 7) against the shutdown ladder (section 4), shields
 * (section 3) and the timer wheel. The tests named test_rscope_regress_* are
 * its findings, each failing on the engine as reviewed and fixed since
 * (the comments say what the contract asks and what the code did):
 *   1. a deadline's op cancel counts as the shutdown's delivery (kill rung);
 *   2. a task looping inside a cancelled scope is never killed (G6);
 *   3. an exited scope's lazy timer hides a join-cycle deadlock (-EDEADLK);
 *   4. released (G10) scope records still look entered: a killed task's
 *      heap scope, the next task on a recycled stack, the next hook;
 *   5. shields stay broken in a run after a shutdown that reached grace;
 *   6. the dump does not call a task in a TR_SCOPE_SHIELD scope shielded.
 * The others are what was checked and held.
 * No timing assertions: deadlines are "already passed", "soon" (a few ms)
 * or "far" (an hour, or days for the wheel's overflow list); waits are for
 * events. One finding is a hang (a deadlock the engine no longer sees): it
 * runs in a forked child with a watchdog.
 */
#define _GNU_SOURCE
#include "tr_harness.h"
#include "tr_test_task.h"

#include <stdlib.h>
#include <fcntl.h>
#include <sys/wait.h>

#define MS 1000000ull
#define HOUR (3600ull * 1000000000ull)
#define DAY (24ull * HOUR)

static uint64_t soon(void)
{
    return tr_now_ns() + 2 * MS;
}

static uint64_t far(void)
{
    return tr_now_ns() + HOUR;
}

/* An engine without signals or report, with the given ladder. */
static tr_engine *ladder_engine(unsigned grace_ms, unsigned kill_ms)
{
    struct tr_config cfg;
    tr_config_init(&cfg);
    cfg.flags |= TR_CFG_NO_SIGNALS;
    cfg.report_fd = -1;
    cfg.grace_ms = grace_ms;
    cfg.kill_ms = kill_ms;
    return eng_new(&cfg);
}

/* Runs fn(arg) as the only task of a fresh ladder_engine(grace_ms,
 * kill_ms) to the end, asserts no check inside failed and the engine is
 * quiescent, destroys it; returns its counters. */
static struct tr_stats ladder_run(unsigned grace_ms, unsigned kill_ms, tr_fn fn, void *arg)
{
    tr_engine *e = ladder_engine(grace_ms, kill_ms);
    g_e = e;
    assert_int_equal(tr_spawn(e, NULL, fn, arg, NULL), 0);
    assert_int_equal(tr_engine_run(e), 0);
    tr_test_assert_clean();
    struct tr_stats st = stats_of(e);
    tr_test_assert_quiescent(e);
    assert_int_equal(tr_engine_destroy(e), 0);
    g_e = NULL;
    return st;
}

/* ======================================================================
 * FINDINGS (fail on the reviewed engine)
 * ==================================================================== */

/* ---- 1. a deadline's op cancel counts as the shutdown's delivery -------- */

/*
 * DESIGN section 4: "the kill rung reaches a task only after it was resumed
 * with its cancellation at least once (or parked on a kernel op whose
 * cancel was submitted and reaped)". The cancellation meant is the
 * shutdown's. Here the task's only op cancel was a DEADLINE's, long before
 * any shutdown; it then sleeps. A shutdown with grace 0 / kill 0 must not
 * kill it: it was never given -ECANCELED. The control (same task without
 * the earlier deadline cut, test_rscope_kill_rung_spares_undelivered)
 * ends cancelled. The reviewed engine kills it: tr__cancel_reaped
 * (structure/cancel.c:68) sets cancel_delivered for any reaped cancel,
 * whatever caused it (a deadline, a tr_scope_cancel), and nothing resets it.
 */
struct dk_ctx {
    int pfd[2];
    bool cut_first;
    int r_read, x, r_sleep;
};

static int fn_dk_task(void *p)
{
    struct dk_ctx *c = p;
    if (c->cut_first) {
        struct tr_scope s;
        char b[4];
        TCHECK_EQ(tr_scope_enter(&s, soon(), 0), 0);
        c->r_read = (int)tr_read(c->pfd[0], b, sizeof(b), -1); /* nobody writes */
        c->x = tr_scope_exit(&s);
    }
    TCHECK_EQ(tr_engine_shutdown(tr_self_engine()), 0);
    c->r_sleep = tr_sleep_ns(HOUR); /* the shutdown's cancel ends it */
    return c->r_sleep;
}

static struct tr_stats run_dk(struct dk_ctx *c)
{
    return ladder_run(0, 0, fn_dk_task, c);
}

static void test_rscope_regress_deadline_op_cancel_counts_as_delivery(void **state)
{
    (void)state;
    struct dk_ctx c = {.cut_first = true, .r_read = 1, .x = 1, .r_sleep = 1};
    make_pipe(c.pfd);
    struct tr_stats st = run_dk(&c);
    close_pair(c.pfd);
    assert_int_equal(c.r_read, -ETIMEDOUT); /* the deadline cut the read */
    assert_int_equal(c.x, -ETIMEDOUT);
    /* The contract: never given its cancellation, so not killed. */
    assert_int_equal(st.tasks_killed, 0);
    assert_int_equal(c.r_sleep, -ECANCELED);
    assert_int_equal(st.tasks_cancelled, 1);
}

/* ---- 2. a task looping inside a cancelled scope escapes the kill rung --- */

/*
 * DESIGN section 3: "a task that ignores -ECANCELED in a loop cannot starve
 * the engine and can still be killed (section 4)"; section 4: tasks still
 * alive kill_ms after grace are killed, once their cancellation was
 * delivered. This task is cancelled by the shutdown and resumed with
 * -ECANCELED thousands of times, but always inside a scope that
 * tr_scope_cancel triggered: the walk (tr__cut_short_slow,
 * structure/scope.c:90-91) returns at the cancelled scope before it looks
 * at the task's own cancellation, so tr__cut_return (scope.c:127) never
 * sets cancel_delivered, and kill_task (life/shutdown.c:167) skips it for
 * ever. With grace 0 / kill 0 it must be killed within a pass or two; here
 * it runs its bounded loop to the end (unbounded, the shutdown would never
 * finish: G6). The same loop in an EXPIRED scope is killed (the task-level
 * cancellation is seen past an expired scope):
 * test_rscope_kill_rung_reaches_loop_in_expired_scope.
 */
#define LOOP_MAX 20000

struct loop_ctx {
    bool cancel_scope; /* else: a passed deadline */
    int iters;
    int finished;
};

static int fn_loop_in_scope(void *p)
{
    struct loop_ctx *c = p;
    struct tr_scope s;
    TCHECK_EQ(tr_scope_enter(&s, c->cancel_scope ? 0 : tr_now_ns() - MS, 0), 0);
    if (c->cancel_scope)
        TCHECK_EQ(tr_scope_cancel(&s), 0);
    TCHECK_EQ(tr_engine_shutdown(tr_self_engine()), 0);
    for (c->iters = 0; c->iters < LOOP_MAX; c->iters++)
        (void)tr_nop(); /* ignores -ECANCELED: passes through the scheduler */
    c->finished = 1;
    (void)tr_scope_exit(&s);
    return 0;
}

static struct tr_stats run_loop(struct loop_ctx *c)
{
    return ladder_run(0, 0, fn_loop_in_scope, c);
}

static void test_rscope_regress_loop_in_cancelled_scope_never_killed(void **state)
{
    (void)state;
    struct loop_ctx c = {.cancel_scope = true};
    struct tr_stats st = run_loop(&c);
    assert_int_equal(c.finished, 0); /* killed long before the loop's end */
    assert_int_equal(st.tasks_killed, 1);
}

/* ---- 3. a lazy deadline timer hides a join-cycle deadlock --------------- */

/*
 * include/taskring.h, tr_engine_run: "-EDEADLK when tasks are left that
 * wait only on each other (a join cycle)". Task a entered a scope with a
 * far deadline and LEFT it (nothing is in any scope any more), then a and b
 * join each other. The lazy deadline timer (t->dl_tm, not disarmed by
 * tr_scope_exit, structure/scope.c:265-275) stays armed for an hour, and
 * deadlocked() (life/loop.c: e->tm.len == 0) counts it as something that
 * could wake a task: the run sleeps for an hour instead of returning
 * -EDEADLK (tr_run's recovery from a cycle waits as long). Run in a child
 * with a 10 s watchdog; the correct engine answers at once.
 */
struct cyc {
    tr_task *a, *b;
};
static struct cyc g_cyc;

static int fn_cyc_a(void *p)
{
    (void)p;
    struct tr_scope s;
    if (tr_scope_enter(&s, far(), 0) != 0 || tr_scope_exit(&s) != 0)
        return -100;
    return tr_join(g_cyc.b, NULL);
}

static int fn_cyc_b(void *p)
{
    (void)p;
    return tr_join(g_cyc.a, NULL);
}

static int cycle_child(void *p)
{
    (void)p;
    struct tr_config cfg;
    tr_config_init(&cfg);
    cfg.flags |= TR_CFG_NO_SIGNALS;
    cfg.report_fd = -1;
    tr_engine *e = NULL;
    if (tr_engine_create(&e, &cfg) != 0)
        return 90;
    if (tr_spawn(e, &g_cyc.a, fn_cyc_a, NULL, NULL) != 0 ||
        tr_spawn(e, &g_cyc.b, fn_cyc_b, NULL, NULL) != 0)
        return 91;
    int rc = tr_engine_run(e);
    return rc == -EDEADLK ? 0 : 92;
}

static void test_rscope_regress_exited_scope_timer_hides_deadlock(void **state)
{
    (void)state;
    static const struct tr_child_opts o = {.capture_stderr = true, .timeout_s = 10};
    static struct tr_child_out out;
    tr_child_run(cycle_child, NULL, &o, &out);
    /* Exit 0: tr_engine_run returned -EDEADLK for the join cycle. */
    tr_child_assert_exit0(&out, "join cycle after a scope");
}

/* ---- 4. a killed task's scope in heap memory stays "entered" ------------ */

/*
 * DESIGN section 7 / G10: a task that ends or is KILLED with scopes entered
 * has them unlinked by the engine. The header: tr_scope_cancel and
 * tr_scope_set_deadline return -EINVAL "for a scope not entered";
 * tr_scope_enter refuses only "an entered scope". A server keeps a scope in
 * its connection record (heap), the shutdown kills the connection's task,
 * and a tr_at_shutdown hook then touches the record's scope. The reviewed
 * engine's tr__scopes_release (structure/scope.c:300-312) leaves the
 * records as they were (magic and owner set): tr_scope_cancel returns 0
 * and writes into the dead task's (freed, recyclable) record (mark():
 * scopes_triggered++, attn), tr_scope_set_deadline would even arm that
 * record's dl_tm in the wheel, and the scope can never be entered again
 * (-EINVAL).
 */
struct heap_ctx {
    struct tr_scope conn_scope; /* not on any task's stack */
    int rc_cancel, rc_enter, rc_exit;
    int finished;
};

static int hook_touch_scope(void *p)
{
    struct heap_ctx *c = p;
    c->rc_cancel = tr_scope_cancel(&c->conn_scope);
    c->rc_enter = tr_scope_enter(&c->conn_scope, 0, 0);
    if (c->rc_enter == 0)
        c->rc_exit = tr_scope_exit(&c->conn_scope);
    return 0;
}

static int fn_conn_killed(void *p)
{
    struct heap_ctx *c = p;
    TCHECK_EQ(tr_at_shutdown(hook_touch_scope, c), 0);
    TCHECK_EQ(tr_scope_enter(&c->conn_scope, 0, 0), 0);
    TCHECK_EQ(tr_engine_shutdown(tr_self_engine()), 0);
    for (int i = 0; i < LOOP_MAX; i++)
        (void)tr_yield(); /* ignores its cancellation: the kill rung ends it */
    c->finished = 1;
    (void)tr_scope_exit(&c->conn_scope);
    return 0;
}

static void test_rscope_regress_killed_tasks_heap_scope_stays_entered(void **state)
{
    (void)state;
    struct heap_ctx *c = calloc(1, sizeof(*c));
    assert_non_null(c);
    c->rc_cancel = c->rc_enter = c->rc_exit = 1;
    struct tr_stats st = ladder_run(0, 0, fn_conn_killed, c);
    assert_int_equal(c->finished, 0);
    assert_int_equal(st.tasks_killed, 1);
    assert_int_equal(st.scopes_left, 1);
    int rc_cancel = c->rc_cancel, rc_enter = c->rc_enter, rc_exit = c->rc_exit;
    free(c);
    assert_int_equal(rc_cancel, -EINVAL); /* unlinked: not entered */
    assert_int_equal(rc_enter, 0);        /* and free to be entered again */
    assert_int_equal(rc_exit, 0);
}

/* ---- 5. shields stay broken in a later run -------------------------------- */

/*
 * include/taskring.h (tr_shield_begin): between begin and end blocking
 * calls work even though the task is cancelled; "during a shutdown" they
 * hold until its grace period ends. A run after a finished shutdown is not
 * during one (tr_engine_run: it starts a new one only at a new trigger);
 * its tasks start cancelled, and a shield is how they do cleanup I/O.
 * Whether that works depends, in the reviewed engine, on the previous
 * shutdown's history: sd.shields_broken (read by shields_hold,
 * structure/scope.c:77) is cleared only by sd_restart at the NEXT
 * trigger (life/shutdown.c:68). After a shutdown that reached its grace
 * (grace 0 here) every shield of the later run is void; after one that
 * ended within its grace (the control engine, default grace) the same task
 * gets its real result.
 */
static int fn_shielded_nop(void *p)
{
    int *r = p;
    TCHECK(tr_is_cancelled()); /* a later run's task starts cancelled */
    TCHECK_EQ(tr_shield_begin(), 1);
    *r = tr_nop();
    TCHECK_EQ(tr_shield_end(), 0);
    return 0;
}

static int fn_noop(void *p)
{
    (void)p;
    return 0;
}

static int later_run_shield(unsigned grace_ms)
{
    tr_engine *e = ladder_engine(grace_ms, 3600000);
    g_e = e;
    assert_int_equal(tr_spawn(e, NULL, fn_noop, NULL, NULL), 0);
    assert_int_equal(tr_engine_shutdown(e), 0);
    assert_int_equal(tr_engine_run(e), 0); /* the shutdown runs to its end */
    int r = 99;
    assert_int_equal(tr_spawn(e, NULL, fn_shielded_nop, &r, NULL), 0);
    assert_int_equal(tr_engine_run(e), 0);
    tr_test_assert_clean();
    tr_test_assert_quiescent(e);
    assert_int_equal(tr_engine_destroy(e), 0);
    g_e = NULL;
    return r;
}

static void test_rscope_regress_shields_stay_broken_in_later_run(void **state)
{
    (void)state;
    int held = later_run_shield(5000); /* the control: its grace never ended */
    int after_grace = later_run_shield(0);
    assert_int_equal(held, 0);
    assert_int_equal(after_grace, 0);
}

/* ---- 6. the dump does not show a shield scope as a shield ----------------- */

/*
 * DESIGN section 2: tr_engine_dump writes "cancel/shield" per task; the
 * header: "cancelled/shielded/killed"; section 7: tr_shield_begin is a
 * shield scope without a deadline, i.e. a TR_SCOPE_SHIELD scope IS a
 * shield. A cancelled task parked inside a TR_SCOPE_SHIELD scope (its
 * sleep goes on because of the shield) is listed "cancelled" but not
 * "shielded": report.c:156 tests only t->shield (tr_shield_begin's depth).
 * Whoever reads the grace-period dump cannot tell why it is still alive.
 */
struct dump_ctx {
    int fds[2];
    tr_task *t;
};

static int fn_in_shield_scope(void *p)
{
    (void)p;
    struct tr_scope s;
    TCHECK_EQ(tr_scope_enter(&s, 0, TR_SCOPE_SHIELD), 0);
    TCHECK_EQ(tr_sleep_ns(HOUR), -ECANCELED); /* the dumper's tr_scope_cancel */
    TCHECK_EQ(tr_scope_exit(&s), -ECANCELED);
    return 0;
}

static int fn_shield_dumper(void *p)
{
    struct dump_ctx *c = p;
    struct tr_spawn_opts o = {.name = "shield-scoped"};
    TCHECK_EQ(tr_spawn(NULL, &c->t, fn_in_shield_scope, NULL, &o), 0);
    TCHECK(wait_parked(c->t, TR_WAIT_TIMER));
    TCHECK_EQ(tr_cancel(c->t), 0);
    TCHECK(parked_on(c->t, TR_WAIT_TIMER)); /* the shield holds */
    TCHECK(tr_engine_dump(tr_self_engine(), c->fds[1]) >= 2);
    TCHECK_EQ(tr_scope_cancel(c->t->scope), 0);
    TCHECK_EQ(tr_join(c->t, NULL), 0);
    return 0;
}

static void test_rscope_regress_dump_shield_scope_not_shielded(void **state)
{
    (void)state;
    struct dump_ctx c;
    make_pipe(c.fds);
    assert_int_equal(tt_run(fn_shield_dumper, &c), 0);
    char buf[8192];
    ssize_t n = read(c.fds[0], buf, sizeof(buf) - 1);
    assert_true(n > 0);
    buf[n] = '\0';
    close_pair(c.fds);
    char *line = strstr(buf, "'shield-scoped'");
    assert_non_null(line);
    char *eol = strchr(line, '\n');
    if (eol)
        *eol = '\0';
    assert_contains(line, "cancelled");
    assert_contains(line, "shielded");
}

/* ======================================================================
 * CHECKED AND HELD
 * ==================================================================== */

/* The control of finding 1: without the earlier deadline cut, grace 0 /
 * kill 0 spares the task until it has been given -ECANCELED. */
static void test_rscope_kill_rung_spares_undelivered(void **state)
{
    (void)state;
    struct dk_ctx c = {.cut_first = false, .r_read = 1, .x = 1, .r_sleep = 1};
    make_pipe(c.pfd);
    struct tr_stats st = run_dk(&c);
    close_pair(c.pfd);
    assert_int_equal(st.tasks_killed, 0);
    assert_int_equal(c.r_sleep, -ECANCELED);
}

/* The control of finding 2: past an EXPIRED scope the task's cancellation
 * is seen and delivered; the kill rung ends the loop. */
static void test_rscope_kill_rung_reaches_loop_in_expired_scope(void **state)
{
    (void)state;
    struct loop_ctx c = {.cancel_scope = false};
    struct tr_stats st = run_loop(&c);
    assert_int_equal(c.finished, 0);
    assert_int_equal(st.tasks_killed, 1);
}

/* ---- the wheel: overflow list, UINT64_MAX, deadline 1, stale timers ------ */

struct wheel_ctx {
    int r_over, x_over, r_max, x_max, r_one, x_one;
    uint64_t pend_over, sub0, sub1, pend_idle;
};

static int fn_wheel(void *p)
{
    struct wheel_ctx *c = p;
    /* Beyond the wheel's 13 days: the overflow list; moved earlier twice
     * (still overflow, then soon). */
    struct tr_scope s;
    TCHECK_EQ(tr_scope_enter(&s, tr_now_ns() + 40 * DAY, 0), 0);
    c->pend_over = tstats().timers_pending;
    TCHECK_EQ(tr_scope_set_deadline(&s, tr_now_ns() + 20 * DAY), 0);
    TCHECK_EQ(tr_nop(), 0);
    TCHECK_EQ(tr_scope_set_deadline(&s, soon()), 0);
    c->r_over = tr_sleep_ns(HOUR);
    c->x_over = tr_scope_exit(&s);
    /* UINT64_MAX: never. */
    TCHECK_EQ(tr_scope_enter(&s, UINT64_MAX, 0), 0);
    c->r_max = tr_nop();
    TCHECK_EQ(tr_sleep_ns(100000), 0);
    c->x_max = tr_scope_exit(&s);
    /* 1: the distant past, triggered at the enter, nothing submitted. */
    c->sub0 = tstats().ops_submitted;
    TCHECK_EQ(tr_scope_enter(&s, 1, 0), 0);
    c->r_one = tr_nop();
    c->sub1 = tstats().ops_submitted;
    c->x_one = tr_scope_exit(&s);
    /* A stale lazy timer (a scope left with a deadline soon) fires for
     * nothing during a longer sleep; then nothing is armed. */
    TCHECK_EQ(tr_scope_enter(&s, soon(), 0), 0);
    TCHECK_EQ(tr_scope_exit(&s), 0);
    TCHECK_EQ(tr_sleep_ns(10 * MS), 0);
    c->pend_idle = tstats().timers_pending;
    return 0;
}

static void test_rscope_wheel_overflow_max_and_one(void **state)
{
    (void)state;
    struct wheel_ctx c;
    memset(&c, 0x55, sizeof(c));
    assert_int_equal(tt_run(fn_wheel, &c), 0); /* audits timers_pending == 0 */
    assert_int_equal(c.pend_over, 1);
    assert_int_equal(c.r_over, -ETIMEDOUT);
    assert_int_equal(c.x_over, -ETIMEDOUT);
    assert_int_equal(c.r_max, 0);
    assert_int_equal(c.x_max, 0);
    assert_int_equal(c.r_one, -ETIMEDOUT);
    assert_true(c.sub1 == c.sub0);
    assert_int_equal(c.x_one, -ETIMEDOUT);
    assert_int_equal(c.pend_idle, 0);
}

/* ---- set_deadline from another task while the owner is parked in an op -- */

struct mv_ctx {
    int pfd[2];
    tr_task *owner;
    struct tr_scope *os;
    long r1;
    int r2, x;
    bool early_future; /* earlier but in the future, instead of passed */
    uint64_t c0, c_later, c_zero, c_now;
    bool parked_after_later, parked_after_zero;
};

static int fn_mv_owner(void *p)
{
    struct mv_ctx *c = p;
    struct tr_scope s;
    char b[4];
    TCHECK_EQ(tr_scope_enter(&s, far(), 0), 0);
    c->os = &s;
    c->r1 = tr_read(c->pfd[0], b, sizeof(b), -1);
    c->r2 = tr_nop(); /* level-triggered */
    c->x = tr_scope_exit(&s);
    return 0;
}

static int fn_mv_mover(void *p)
{
    struct mv_ctx *c = p;
    TCHECK_EQ(tr_spawn(NULL, &c->owner, fn_mv_owner, c, NULL), 0);
    TCHECK(wait_parked(c->owner, TR_WAIT_OP));
    c->c0 = tstats().cancels_submitted;
    TCHECK_EQ(tr_scope_set_deadline(c->os, far() + HOUR), 0); /* later */
    yields(3);
    c->c_later = tstats().cancels_submitted;
    c->parked_after_later = parked_on(c->owner, TR_WAIT_OP);
    TCHECK_EQ(tr_scope_set_deadline(c->os, 0), 0); /* away */
    yields(3);
    c->c_zero = tstats().cancels_submitted;
    c->parked_after_zero = parked_on(c->owner, TR_WAIT_OP);
    if (c->early_future) {
        TCHECK_EQ(tr_scope_set_deadline(c->os, soon()), 0);
    } else {
        TCHECK_EQ(tr_scope_set_deadline(c->os, tr_now_ns() - MS), 0);
        c->c_now = tstats().cancels_submitted; /* the trigger submits at once */
    }
    /* Once triggered, moving it changes nothing (and returns 0). */
    while (c->early_future && parked_on(c->owner, TR_WAIT_OP))
        TCHECK_EQ(tr_yield(), 0); /* bounded by the deadline, soon */
    TCHECK_EQ(tr_scope_set_deadline(c->os, far()), 0);
    TCHECK_EQ(tr_join(c->owner, NULL), 0);
    return 0;
}

static void run_mv(bool early_future)
{
    struct mv_ctx c;
    memset(&c, 0, sizeof(c));
    c.early_future = early_future;
    make_pipe(c.pfd);
    assert_int_equal(tt_run(fn_mv_mover, &c), 0);
    close_pair(c.pfd);
    assert_true(c.c_later == c.c0);
    assert_true(c.parked_after_later);
    assert_true(c.c_zero == c.c0);
    assert_true(c.parked_after_zero);
    if (!early_future)
        assert_true(c.c_now == c.c0 + 1);
    assert_int_equal(c.r1, -ETIMEDOUT);
    assert_int_equal(c.r2, -ETIMEDOUT);
    assert_int_equal(c.x, -ETIMEDOUT);
}

static void test_rscope_set_deadline_from_other_task_passed(void **state)
{
    (void)state;
    run_mv(false);
}

static void test_rscope_set_deadline_from_other_task_soon(void **state)
{
    (void)state;
    run_mv(true);
}

/* ---- the owner woken (READY) when its scope is cancelled: G5 ------------- */

struct rdy_ctx {
    int pfd[2];
    tr_task *owner, *joiner, *target, *sleeper;
    struct tr_scope *os, *js, *ss;
    long r1;
    int r2, x;
    int jr, jres, jx, jn;
    int sr, sx;
    int caught_ready, jcaught, scaught;
};

static int fn_rdy_owner(void *p)
{
    struct rdy_ctx *c = p;
    struct tr_scope s;
    char b[4];
    TCHECK_EQ(tr_scope_enter(&s, far(), 0), 0);
    c->os = &s;
    c->r1 = tr_read(c->pfd[0], b, sizeof(b), -1);
    c->r2 = tr_nop();
    c->x = tr_scope_exit(&s);
    return 0;
}

static int fn_rdy_op(void *p)
{
    struct rdy_ctx *c = p;
    TCHECK_EQ(tr_spawn(NULL, &c->owner, fn_rdy_owner, c, NULL), 0);
    TCHECK(wait_parked(c->owner, TR_WAIT_OP));
    TCHECK_EQ(write(c->pfd[1], "z", 1), 1);
    for (int i = 0; i < 100000 && !c->caught_ready; i++) {
        if (c->owner->state == TR_TASK_READY) {
            TCHECK_EQ(tr_scope_cancel(c->os), 0);
            c->caught_ready = 1;
        } else {
            TCHECK_EQ(tr_yield(), 0);
        }
    }
    TCHECK_EQ(tr_join(c->owner, NULL), 0);
    return 0;
}

static void test_rscope_cancel_while_op_owner_ready_real_wins(void **state)
{
    (void)state;
    struct rdy_ctx c;
    memset(&c, 0, sizeof(c));
    make_pipe(c.pfd);
    assert_int_equal(tt_run(fn_rdy_op, &c), 0);
    close_pair(c.pfd);
    assert_int_equal(c.caught_ready, 1);
    assert_int_equal(c.r1, 1);          /* the real result */
    assert_int_equal(c.r2, -ECANCELED); /* the cut at the next call */
    assert_int_equal(c.x, -ECANCELED);
}

/* A join whose target ended (joiner READY) and a sleep whose timer fired
 * (sleeper READY): the event wins over a scope cancel that comes then. The
 * canceller is spawned first, so it runs before the woken task. */
static int fn_rdy_target(void *p)
{
    struct rdy_ctx *c = p;
    TCHECK(wait_parked(c->joiner, TR_WAIT_JOIN));
    return 7;
}

static int fn_rdy_joiner(void *p)
{
    struct rdy_ctx *c = p;
    struct tr_scope s;
    TCHECK_EQ(tr_scope_enter(&s, far(), 0), 0);
    c->js = &s;
    c->jr = tr_join(c->target, &c->jres);
    c->jn = tr_nop();
    c->jx = tr_scope_exit(&s);
    return 0;
}

static int fn_rdy_sleeper(void *p)
{
    struct rdy_ctx *c = p;
    struct tr_scope s;
    TCHECK_EQ(tr_scope_enter(&s, far(), 0), 0);
    c->ss = &s;
    c->sr = tr_sleep_ns(3 * MS);
    c->sx = tr_scope_exit(&s);
    return 0;
}

static int fn_rdy_canceller(void *p)
{
    struct rdy_ctx *c = p;
    for (int i = 0; i < 1000000 && !(c->jcaught && c->scaught); i++) {
        if (!c->jcaught && c->joiner->state == TR_TASK_READY && c->target->state == TR_TASK_DONE) {
            TCHECK_EQ(tr_scope_cancel(c->js), 0);
            c->jcaught = 1;
        }
        if (!c->scaught && c->ss && c->sleeper->state == TR_TASK_READY &&
            !tr__timer_armed(&c->sleeper->sleep_tm)) {
            TCHECK_EQ(tr_scope_cancel(c->ss), 0);
            c->scaught = 1;
        }
        if (!(c->jcaught && c->scaught))
            TCHECK_EQ(tr_yield(), 0);
    }
    return 0;
}

static void test_rscope_join_and_sleep_event_wins_over_scope_cancel(void **state)
{
    (void)state;
    struct rdy_ctx c;
    memset(&c, 0, sizeof(c));
    c.jr = c.jx = c.sr = c.sx = 99;
    struct tr_config cfg;
    tr_config_init(&cfg);
    cfg.flags |= TR_CFG_NO_SIGNALS;
    tr_engine *e = eng_new(&cfg);
    g_e = e;
    assert_int_equal(tr_spawn(e, NULL, fn_rdy_canceller, &c, NULL), 0);
    assert_int_equal(tr_spawn(e, &c.joiner, fn_rdy_joiner, &c, NULL), 0);
    assert_int_equal(tr_spawn(e, &c.target, fn_rdy_target, &c, NULL), 0);
    assert_int_equal(tr_spawn(e, &c.sleeper, fn_rdy_sleeper, &c, NULL), 0);
    assert_int_equal(tr_detach(c.joiner), 0);
    assert_int_equal(tr_detach(c.sleeper), 0);
    assert_int_equal(tr_engine_run(e), 0);
    tr_test_assert_clean();
    tr_test_assert_quiescent(e);
    assert_int_equal(tr_engine_destroy(e), 0);
    g_e = NULL;
    assert_int_equal(c.jcaught, 1);
    assert_int_equal(c.jr, 0);
    assert_int_equal(c.jres, 7);
    assert_int_equal(c.jn, -ECANCELED);
    assert_int_equal(c.jx, -ECANCELED);
    assert_int_equal(c.scaught, 1);
    assert_int_equal(c.sr, 0);
    assert_int_equal(c.sx, 0); /* it cut nothing short */
}

/* ---- many tasks, one instant; deadline_cuts exact ------------------------ */

#define SAME 2000

struct same_ctx {
    uint64_t at;
    long ok, other;
    uint64_t cuts0;
};

static int fn_same_one(void *p)
{
    struct same_ctx *c = p;
    struct tr_scope s;
    TCHECK_EQ(tr_scope_enter(&s, c->at, 0), 0);
    int r = tr_sleep_ns(HOUR);
    int x = tr_scope_exit(&s);
    if (r == -ETIMEDOUT && x == -ETIMEDOUT)
        c->ok++;
    else
        c->other++;
    return 0;
}

static int fn_same(void *p)
{
    struct same_ctx *c = p;
    c->cuts0 = tstats().deadline_cuts;
    c->at = tr_now_ns() + 20 * MS;
    tr_task *h[SAME];
    for (int i = 0; i < SAME; i++)
        TCHECK_EQ(tr_spawn(NULL, &h[i], fn_same_one, c, NULL), 0);
    for (int i = 0; i < SAME; i++)
        TCHECK_EQ(tr_join(h[i], NULL), 0);
    TCHECK_EQ(tstats().deadline_cuts - c->cuts0, SAME);
    return 0;
}

static void test_rscope_many_tasks_one_instant(void **state)
{
    (void)state;
    struct same_ctx c;
    memset(&c, 0, sizeof(c));
    assert_int_equal(tt_run(fn_same, &c), 0);
    assert_int_equal(c.ok, SAME);
    assert_int_equal(c.other, 0);
}

/* Every kind of blocking call cut by a passed deadline counts once; a call
 * cut by the task's cancellation, tr_close and tr_wait_shutdown after the
 * stop do not count. */
static int fn_helper_sleep(void *p)
{
    (void)p;
    return tr_sleep_ns(HOUR);
}

static int fn_cuts(void *p)
{
    uint64_t *out = p;
    tr_task *h, *v;
    TCHECK_EQ(tr_spawn(NULL, &h, fn_helper_sleep, NULL, NULL), 0);
    TCHECK_EQ(tr_spawn(NULL, &v, fn_helper_sleep, NULL, NULL), 0);
    TCHECK(wait_parked(h, TR_WAIT_TIMER));
    uint64_t c0 = tstats().deadline_cuts;
    struct tr_scope s;
    TCHECK_EQ(tr_scope_enter(&s, tr_now_ns() - MS, 0), 0);
    TCHECK_EQ(tr_nop(), -ETIMEDOUT);
    TCHECK_EQ(tr_sleep_ns(HOUR), -ETIMEDOUT);
    TCHECK_EQ(tr_yield(), -ETIMEDOUT);
    TCHECK_EQ(tr_join(h, NULL), -ETIMEDOUT);
    TCHECK_EQ(tr_wait_shutdown(), -ETIMEDOUT);
    tr_task *except[1] = {h};
    TCHECK_EQ(tr_cancel_all(except, 1, TR_CANCEL_WAIT), -ETIMEDOUT); /* v cancelled */
    int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    TCHECK(fd >= 0);
    TCHECK_EQ(tr_close(fd), 0);
    out[0] = tstats().deadline_cuts - c0;
    TCHECK_EQ(tr_scope_exit(&s), -ETIMEDOUT);
    TCHECK_EQ(tr_join(v, NULL), 0);
    TCHECK_EQ(tr_cancel(h), 0);
    TCHECK_EQ(tr_join(h, NULL), 0);
    return 0;
}

static void test_rscope_deadline_cuts_exact(void **state)
{
    (void)state;
    uint64_t out[1] = {0};
    assert_int_equal(tt_run(fn_cuts, out), 0);
    assert_int_equal(out[0], 6);
}

/* ---- a shield scope's own deadline during a shutdown; break at grace ---- */

struct sds_ctx {
    int r1, x1, r2;
    int b1, bx;
};

static int fn_sd_shield_deadline(void *p)
{
    struct sds_ctx *c = p;
    struct tr_scope s;
    TCHECK_EQ(tr_scope_enter(&s, soon(), TR_SCOPE_SHIELD), 0);
    TCHECK_EQ(tr_engine_shutdown(tr_self_engine()), 0);
    (void)tr_yield(); /* the shutdown cancels us: the shield holds (0, or -ETIMEDOUT
                       * when a slow pass let the deadline pass first) */
    TCHECK(tr_is_cancelled());
    c->r1 = tr_sleep_ns(HOUR); /* the shield's own deadline still applies */
    c->x1 = tr_scope_exit(&s);
    c->r2 = tr_nop(); /* outside: cancelled */
    return 0;
}

static int fn_sd_shield_break(void *p)
{
    struct sds_ctx *c = p;
    struct tr_scope s;
    TCHECK_EQ(tr_scope_enter(&s, far(), TR_SCOPE_SHIELD), 0);
    TCHECK_EQ(tr_engine_shutdown(tr_self_engine()), 0);
    c->b1 = tr_sleep_ns(HOUR); /* until the grace period breaks shields */
    c->bx = tr_scope_exit(&s); /* cut by the task's cancellation: 0 */
    return 0;
}

static void test_rscope_shield_scope_deadline_and_grace(void **state)
{
    (void)state;
    struct sds_ctx c;
    memset(&c, 0x55, sizeof(c));
    (void)ladder_run(3600000, 3600000, fn_sd_shield_deadline, &c);
    struct tr_stats st = ladder_run(5, 3600000, fn_sd_shield_break, &c);
    assert_int_equal(c.r1, -ETIMEDOUT);
    assert_int_equal(c.x1, -ETIMEDOUT);
    assert_int_equal(c.r2, -ECANCELED);
    assert_int_equal(c.b1, -ECANCELED);
    assert_int_equal(c.bx, 0);
    assert_int_equal(st.tasks_killed, 0);
}

/* ---- finding 4, third form: the next task on a recycled stack ------------ */

/*
 * G10: a task that ends with a scope entered has it unlinked by the engine
 * (counted, named), and its stack goes back to the pool. The next task
 * gets that stack (LIFO); the same handler's "struct tr_scope s" lies at
 * the same address, on the released record's bytes: tr_scope_enter
 * refuses it with -EINVAL (structure/scope.c:226 trusts the stale magic
 * and owner; tr__scopes_release, scope.c:300, leaves the records as they
 * were). A server whose handler once returned early inside a scope would
 * then fail every scope in the next connection on that stack.
 */
struct reuse_ctx {
    bool leak;
    const void *addr[2];
    int rc[2];
};

static __attribute__((noinline)) int fn_scope_user(void *p)
{
    struct reuse_ctx *c = p;
    struct tr_scope s;
    int i = c->leak ? 0 : 1;
    c->addr[i] = &s;
    c->rc[i] = tr_scope_enter(&s, 0, 0);
    if (c->leak || c->rc[i] != 0)
        return 0; /* leak: returns with s entered (G10: the engine unlinks it) */
    TCHECK_EQ(tr_scope_exit(&s), 0);
    return 0;
}

static int fn_reuse_main(void *p)
{
    struct reuse_ctx *c = p;
    tr_task *t;
    c->leak = true;
    TCHECK_EQ(tr_spawn(NULL, &t, fn_scope_user, c, NULL), 0);
    TCHECK_EQ(tr_join(t, NULL), 0);
    c->leak = false;
    TCHECK_EQ(tr_spawn(NULL, &t, fn_scope_user, c, NULL), 0);
    TCHECK_EQ(tr_join(t, NULL), 0);
    return 0;
}

static void test_rscope_regress_recycled_stack_refuses_scope_enter(void **state)
{
    (void)state;
    struct reuse_ctx c;
    memset(&c, 0, sizeof(c));
    c.rc[0] = c.rc[1] = 99;
    assert_int_equal(tt_run(fn_reuse_main, &c), 0);
    assert_int_equal(c.rc[0], 0);
    assert_true(c.addr[0] == c.addr[1]); /* the same stack, the same frame */
    assert_int_equal(c.rc[1], 0);        /* a fresh scope: must enter */
}

/* ---- hooks leaving scopes entered (finding 4, second form) --------------- */

/*
 * A hook that returns with scopes entered: hooks_task (life/shutdown.c:234)
 * unlinks them (counted in scopes_left) and runs the next hook, in the same
 * task, on the same stack. The next hook's own, correct
 * "struct tr_scope s; tr_scope_enter(&s, ...)" lands on the bytes of the
 * released records, which still hold the magic and the (live) owner:
 * tr_scope_enter (structure/scope.c:226) takes uninitialised stack memory
 * for "an entered scope" and refuses with -EINVAL. Everything else held:
 * the released triggered scope no longer cuts (b_nop 0), the stale
 * deadline timer fires for nothing during b's sleep, scopes_left is 2.
 */

struct hk_ctx {
    int b_nop, b_sleep, b_x;
    int a_ran;
};

static int hook_b(void *p) /* registered first: runs second */
{
    struct hk_ctx *c = p;
    c->b_nop = tr_nop();
    c->b_sleep = tr_sleep_ns(10 * MS); /* hook a's stale deadline fires meanwhile */
    struct tr_scope s;
    TCHECK_EQ(tr_scope_enter(&s, far(), 0), 0);
    c->b_x = tr_scope_exit(&s);
    return 0;
}

static __attribute__((noinline)) int hook_a(void *p)
{
    struct hk_ctx *c = p;
    struct tr_scope two[2]; /* left in its returned frame */
    TCHECK_EQ(tr_scope_enter(&two[0], soon(), 0), 0);
    TCHECK_EQ(tr_scope_enter(&two[1], tr_now_ns() - MS, 0), 0); /* triggered */
    TCHECK_EQ(tr_shield_begin(), 1);
    c->a_ran = 1;
    return 0; /* leaves both scopes and the shield open */
}

static int fn_hooks_main(void *p)
{
    TCHECK_EQ(tr_at_shutdown(hook_b, p), 0);
    TCHECK_EQ(tr_at_shutdown(hook_a, p), 0);
    TCHECK_EQ(tr_engine_shutdown(tr_self_engine()), 0);
    return 0;
}

static void test_rscope_regress_next_hook_cannot_enter_scope(void **state)
{
    (void)state;
    struct hk_ctx c;
    memset(&c, 0x55, sizeof(c));
    c.a_ran = 0;
    struct tr_stats st = ladder_run(3600000, 3600000, fn_hooks_main, &c);
    assert_int_equal(c.a_ran, 1);
    assert_int_equal(c.b_nop, 0);
    assert_int_equal(c.b_sleep, 0);
    assert_int_equal(c.b_x, 0);
    assert_int_equal(st.scopes_left, 2);
}

/* ---- misuse -------------------------------------------------------------- */

struct mis_ctx {
    struct tr_scope *other;
    int rc[16];
};

static int fn_mis_other(void *p)
{
    struct mis_ctx *c = p;
    c->rc[10] = tr_scope_exit(c->other); /* another task's */
    return 0;
}

static int fn_misuse(void *p)
{
    struct mis_ctx *c = p;
    struct tr_scope a, b;
    memset(&a, 0, sizeof(a));
    memset(&b, 0, sizeof(b));
    TCHECK_EQ(tr_scope_enter(&a, 0, 0), 0);
    c->rc[0] = tr_scope_enter(&a, 0, 0);   /* twice */
    c->rc[1] = tr_scope_enter(&b, 0, 0x2); /* unknown flag */
    c->rc[2] = tr_scope_enter(NULL, 0, 0);
    TCHECK_EQ(tr_scope_enter(&b, tr_now_ns() - MS, 0), 0);
    c->rc[3] = tr_scope_exit(&a); /* out of order: nothing changes */
    c->rc[4] = tr_nop();          /* b still applies */
    c->other = &b;
    tr_task *t;
    TCHECK_EQ(tr_spawn(NULL, &t, fn_mis_other, c, NULL), 0);
    TCHECK_EQ(tr_join(t, NULL), -ETIMEDOUT); /* b expired: join cut */
    c->rc[5] = tr_scope_exit(&b);
    c->rc[6] = tr_scope_exit(&b); /* after its exit */
    c->rc[7] = tr_scope_cancel(&b);
    c->rc[8] = tr_scope_set_deadline(&b, 1);
    c->rc[9] = tr_scope_exit(&a);
    TCHECK_EQ(tr_join(t, NULL), 0);
    c->rc[11] = tr_scope_cancel(NULL);
    c->rc[12] = tr_nop(); /* nothing left entered */
    return 0;
}

static void test_rscope_misuse(void **state)
{
    (void)state;
    struct mis_ctx c;
    memset(&c, 0x55, sizeof(c));
    assert_int_equal(tt_run(fn_misuse, &c), 0);
    assert_int_equal(c.rc[0], -EINVAL);
    assert_int_equal(c.rc[1], -EINVAL);
    assert_int_equal(c.rc[2], -EINVAL);
    assert_int_equal(c.rc[3], -EINVAL);
    assert_int_equal(c.rc[4], -ETIMEDOUT);
    assert_int_equal(c.rc[10], -EINVAL);
    assert_int_equal(c.rc[5], -ETIMEDOUT);
    assert_int_equal(c.rc[6], -EINVAL);
    assert_int_equal(c.rc[7], -EINVAL);
    assert_int_equal(c.rc[8], -EINVAL);
    assert_int_equal(c.rc[9], 0);
    assert_int_equal(c.rc[11], -EINVAL);
    assert_int_equal(c.rc[12], 0);
    struct tr_scope s;
    assert_int_equal(tr_scope_enter(&s, 0, 0), -EPERM);
    assert_int_equal(tr_scope_exit(&s), -EPERM);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_rscope_regress_deadline_op_cancel_counts_as_delivery),
        T(test_rscope_regress_loop_in_cancelled_scope_never_killed),
        T(test_rscope_regress_exited_scope_timer_hides_deadlock),
        T(test_rscope_regress_killed_tasks_heap_scope_stays_entered),
        T(test_rscope_regress_recycled_stack_refuses_scope_enter),
        T(test_rscope_regress_next_hook_cannot_enter_scope),
        T(test_rscope_regress_shields_stay_broken_in_later_run),
        T(test_rscope_regress_dump_shield_scope_not_shielded),
        T(test_rscope_kill_rung_spares_undelivered),
        T(test_rscope_kill_rung_reaches_loop_in_expired_scope),
        T(test_rscope_wheel_overflow_max_and_one),
        T(test_rscope_set_deadline_from_other_task_passed),
        T(test_rscope_set_deadline_from_other_task_soon),
        T(test_rscope_cancel_while_op_owner_ready_real_wins),
        T(test_rscope_join_and_sleep_event_wins_over_scope_cancel),
        T(test_rscope_many_tasks_one_instant),
        T(test_rscope_deadline_cuts_exact),
        T(test_rscope_shield_scope_deadline_and_grace),
        T(test_rscope_misuse),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
