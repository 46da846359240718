/* SPDX-License-Identifier: MIT */
/*
 * Description: cancellation in every state a task can be in (DESIGN
 * G4, section 3): READY (before it ever ran), parked on a ring op (an
 * ASYNC_CANCEL, -ECANCELED), sleeping (no kernel cancel), joining (the handle
 * stays the caller's), finished (-ESRCH); self cancel; the level trigger
 * (every later blocking call fails fast, a spinner that ignores it cannot
 * starve the others).
 * White-box parking: tr_test_cancel.h.
 */
#define _GNU_SOURCE /* pipe2, accept4, strsignal */
#include "tr_test_cancel.h"

/* --------------------------------------------------- cancel while READY */

struct ready_ctx {
    int pfd[2];
    int ran;
    int was_cancelled;
    int r_nop, r_read, r_yield;
    uint64_t ops_delta;
};

static int ready_body(void *p)
{
    struct ready_ctx *c = p;
    char b[4];
    c->ran = 1;
    c->was_cancelled = tr_is_cancelled();
    struct tr_stats s0 = tstats();
    c->r_nop = tr_nop();
    /* The pipe holds data: a read that reached the kernel would succeed. */
    c->r_read = (int)tr_read(c->pfd[0], b, sizeof(b), -1);
    c->r_yield = tr_yield();
    struct tr_stats s1 = tstats();
    c->ops_delta = s1.ops_submitted - s0.ops_submitted;
    return c->r_nop;
}

static int ready_spawner(void *p)
{
    struct ready_ctx *c = p;
    tr_task *t = NULL;
    int res = 0;
    TCHECK_EQ(tr_spawn(NULL, &t, ready_body, c, NULL), 0);
    TCHECK_EQ(t->state, TR_TASK_READY);
    TCHECK_EQ(tr_cancel(t), 0); /* never ran yet */
    TCHECK_EQ(tr_join(t, &res), 0);
    TCHECK_EQ(res, -ECANCELED);
    return 0;
}

static void check_ready_ctx(const struct ready_ctx *c)
{
    assert_int_equal(c->ran, 1);
    assert_true(c->was_cancelled);
    assert_int_equal(c->r_nop, -ECANCELED);
    assert_int_equal(c->r_read, -ECANCELED);
    assert_int_equal(c->r_yield, -ECANCELED);
    assert_int_equal(c->ops_delta, 0);
    assert_int_equal(pipe_bytes(c->pfd[0]), 3); /* nothing was read */
}

/* A task cancelled before it ever ran (from outside tr_engine_run, and from
 * another task right after tr_spawn) fails its first blocking call. */
static void test_cancel_ready_first_call_fails(void **state)
{
    (void)state;
    struct ready_ctx c1, c2;
    memset(&c1, 0, sizeof(c1));
    memset(&c2, 0, sizeof(c2));
    make_pipe(c1.pfd);
    make_pipe(c2.pfd);
    assert_int_equal(write(c1.pfd[1], "abc", 3), 3);
    assert_int_equal(write(c2.pfd[1], "abc", 3), 3);

    tr_engine *e = eng_new(NULL);
    tr_task *t1 = NULL;
    assert_int_equal(tr_spawn(e, &t1, ready_body, &c1, NULL), 0);
    assert_int_equal(tr_cancel(t1), 0);
    assert_int_equal(tr_detach(t1), 0);
    assert_int_equal(tr_spawn(e, NULL, ready_spawner, &c2, NULL), 0);
    assert_int_equal(tr_engine_run(e), 0);
    tr_test_assert_clean();
    check_ready_ctx(&c1);
    check_ready_ctx(&c2);
    struct tr_stats s = stats_of(e);
    assert_int_equal(s.tasks_cancelled, 2);
    assert_int_equal(s.tasks_ok, 1);
    tr_test_assert_quiescent(e);
    assert_int_equal(tr_engine_destroy(e), 0);
    close_pair(c1.pfd);
    close_pair(c2.pfd);
}

/* ------------------------------------------- cancel while parked on an op */

struct parked_ctx {
    int pfd[2];
    tr_task *t;
    ssize_t r_read;
    int r_after;
    int was_cancelled;
    uint64_t cancels_delta;
    int sleep_res;
    uint64_t timers_during, timers_after;
};

static int parked_reader(void *p)
{
    struct parked_ctx *c = p;
    char b[8];
    c->r_read = tr_read(c->pfd[0], b, sizeof(b), -1);
    c->was_cancelled = tr_is_cancelled();
    c->r_after = tr_nop();
    return (int)c->r_read;
}

static int parked_read_main(void *p)
{
    struct parked_ctx *c = p;
    int res = 0;
    TCHECK_EQ(tr_spawn(NULL, &c->t, parked_reader, c, NULL), 0);
    TCHECK(wait_parked(c->t, TR_WAIT_OP));
    struct tr_stats s0 = tstats();
    TCHECK_EQ(tr_cancel(c->t), 0);
    TCHECK_EQ(tr_join(c->t, &res), 0);
    struct tr_stats s1 = tstats();
    c->cancels_delta = s1.cancels_submitted - s0.cancels_submitted;
    TCHECK_EQ(res, -ECANCELED);
    return 0;
}

/* A task parked in tr_read on an empty pipe: the engine submits an
 * ASYNC_CANCEL and the read ends with -ECANCELED. */
static void test_cancel_parked_read_gets_ecanceled(void **state)
{
    (void)state;
    struct parked_ctx c;
    memset(&c, 0, sizeof(c));
    make_pipe(c.pfd);
    tr_engine *e = eng_new(NULL);
    assert_int_equal(tr_spawn(e, NULL, parked_read_main, &c, NULL), 0);
    eng_finish(e);
    assert_int_equal(c.r_read, -ECANCELED);
    assert_true(c.was_cancelled);
    assert_int_equal(c.r_after, -ECANCELED);
    assert_int_equal(c.cancels_delta, 1);
    close_pair(c.pfd);
}

static int parked_sleeper(void *p)
{
    struct parked_ctx *c = p;
    c->sleep_res = tr_sleep_ns(3600ull * 1000000000ull);
    c->r_after = tr_sleep_ns(1);
    return c->sleep_res;
}

static int parked_sleep_main(void *p)
{
    struct parked_ctx *c = p;
    int res = 0;
    TCHECK_EQ(tr_spawn(NULL, &c->t, parked_sleeper, c, NULL), 0);
    TCHECK(wait_parked(c->t, TR_WAIT_TIMER));
    struct tr_stats s0 = tstats();
    c->timers_during = s0.timers_pending;
    TCHECK_EQ(tr_cancel(c->t), 0);
    TCHECK_EQ(tr_join(c->t, &res), 0);
    struct tr_stats s1 = tstats();
    c->cancels_delta = s1.cancels_submitted - s0.cancels_submitted;
    c->timers_after = s1.timers_pending;
    TCHECK_EQ(res, -ECANCELED);
    return 0;
}

/* A sleeper is woken with -ECANCELED by a userspace removal: no ASYNC_CANCEL
 * (DESIGN section 5: timers live in the engine). */
static void test_cancel_parked_sleep_no_kernel_cancel(void **state)
{
    (void)state;
    struct parked_ctx c;
    memset(&c, 0, sizeof(c));
    tr_engine *e = eng_new(NULL);
    assert_int_equal(tr_spawn(e, NULL, parked_sleep_main, &c, NULL), 0);
    eng_finish(e);
    assert_int_equal(c.sleep_res, -ECANCELED);
    assert_int_equal(c.r_after, -ECANCELED);
    assert_int_equal(c.timers_during, 1);
    assert_int_equal(c.timers_after, 0);
    assert_int_equal(c.cancels_delta, 0);
}

/* ------------------------------------------- cancel while parked in join */

struct join_ctx {
    int pfd[2];
    bool detach_after;
    tr_task *target;
    ssize_t target_read;
    int target_cancelled;
    int target_done;
    int join_rc;
    int join_res_untouched;
};

static int join_target(void *p)
{
    struct join_ctx *c = p;
    char b[8];
    c->target_read = tr_read(c->pfd[0], b, sizeof(b), -1);
    c->target_cancelled = tr_is_cancelled();
    c->target_done = 1;
    return (int)c->target_read;
}

static int join_joiner(void *p)
{
    struct join_ctx *c = p;
    int res = 12345;
    c->join_rc = tr_join(c->target, &res);
    c->join_res_untouched = (res == 12345);
    return c->join_rc;
}

static int join_main(void *p)
{
    struct join_ctx *c = p;
    tr_task *j = NULL;
    int jres = 0;
    TCHECK_EQ(tr_spawn(NULL, &c->target, join_target, c, NULL), 0);
    TCHECK_EQ(tr_spawn(NULL, &j, join_joiner, c, NULL), 0);
    TCHECK(wait_parked(j, TR_WAIT_JOIN));
    TCHECK(parked_on(c->target, TR_WAIT_OP));
    struct tr_stats s0 = tstats();
    TCHECK_EQ(tr_cancel(j), 0);
    TCHECK_EQ(tr_join(j, &jres), 0);
    TCHECK_EQ(jres, -ECANCELED);
    TCHECK_EQ(c->join_rc, -ECANCELED);
    TCHECK(c->join_res_untouched);
    /* The joined task noticed nothing: still parked, not cancelled, no
     * ASYNC_CANCEL was aimed at its op. */
    struct tr_stats s1 = tstats();
    TCHECK_EQ(s1.cancels_submitted, s0.cancels_submitted);
    TCHECK(parked_on(c->target, TR_WAIT_OP));
    TCHECK(!tr__task_cancelled(c->target));
    TCHECK_EQ(c->target_done, 0);
    TCHECK_EQ(write(c->pfd[1], "ab", 2), 2);
    if (!c->detach_after) {
        int tres = 0;
        TCHECK_EQ(tr_join(c->target, &tres), 0);
        TCHECK_EQ(tres, 2);
    } else {
        TCHECK_EQ(tr_detach(c->target), 0);
        c->target = NULL; /* the record is the engine's now */
        for (int i = 0; i < 1000 && !c->target_done; i++)
            TCHECK_EQ(tr_yield(), 0);
        TCHECK(c->target_done);
    }
    return 0;
}

static void run_join_case(bool detach_after)
{
    struct join_ctx c;
    memset(&c, 0, sizeof(c));
    c.detach_after = detach_after;
    make_pipe(c.pfd);
    tr_engine *e = eng_new(NULL);
    assert_int_equal(tr_spawn(e, NULL, join_main, &c, NULL), 0);
    eng_finish(e);
    assert_int_equal(c.join_rc, -ECANCELED);
    assert_int_equal(c.target_done, 1);
    assert_int_equal(c.target_read, 2);
    assert_false(c.target_cancelled);
    close_pair(c.pfd);
}

/* A joiner cancelled in tr_join gets -ECANCELED; the joined task runs on and
 * the handle, still the caller's, can be joined later by another task. */
static void test_cancel_parked_join_handle_joinable_after(void **state)
{
    (void)state;
    run_join_case(false);
}

/* Same, but the handle is detached afterwards. */
static void test_cancel_parked_join_handle_detachable_after(void **state)
{
    (void)state;
    run_join_case(true);
}

/* ---------------------------------------------------- cancel a finished task */

static int quick7(void *p)
{
    (void)p;
    return 7;
}

struct fin_ctx {
    int cancel_rc;
    int join_res;
};

static int fin_main(void *p)
{
    struct fin_ctx *c = p;
    tr_task *t = NULL;
    TCHECK_EQ(tr_spawn(NULL, &t, quick7, NULL, NULL), 0);
    for (int i = 0; i < 1000 && t->state != TR_TASK_DONE; i++)
        TCHECK_EQ(tr_yield(), 0);
    TCHECK_EQ(t->state, TR_TASK_DONE);
    c->cancel_rc = tr_cancel(t);
    TCHECK_EQ(tr_join(t, &c->join_res), 0);
    return 0;
}

/* Cancelling a task that has ended (handle not yet joined) is -ESRCH, from a
 * task and from outside tr_engine_run, and changes nothing. */
static void test_cancel_finished_task_esrch(void **state)
{
    (void)state;
    struct fin_ctx c = {0, 0};
    tr_engine *e = eng_new(NULL);
    tr_task *t2 = NULL;
    assert_int_equal(tr_spawn(e, NULL, fin_main, &c, NULL), 0);
    assert_int_equal(tr_spawn(e, &t2, quick7, NULL, NULL), 0);
    assert_int_equal(tr_engine_run(e), 0);
    tr_test_assert_clean();
    assert_int_equal(c.cancel_rc, -ESRCH);
    assert_int_equal(c.join_res, 7);
    assert_int_equal(tr_cancel(t2), -ESRCH);
    assert_int_equal(tr_detach(t2), 0);
    struct tr_stats s = stats_of(e);
    assert_int_equal(s.tasks_cancelled, 0);
    assert_int_equal(s.tasks_ok, 3);
    tr_test_assert_quiescent(e);
    assert_int_equal(tr_engine_destroy(e), 0);
}

/* ------------------------------------------------------------ self cancel */

struct self_ctx {
    int rc_cancel, rc_again;
    int is_before, is_after;
    int r_nop;
};

static int self_body(void *p)
{
    struct self_ctx *c = p;
    c->is_before = tr_is_cancelled();
    c->rc_cancel = tr_cancel(tr_self());
    c->is_after = tr_is_cancelled();
    c->r_nop = tr_nop();
    c->rc_again = tr_cancel(tr_self()); /* still alive: cancelling again is fine */
    return c->r_nop;
}

/* A task may cancel itself: its next blocking call fails with -ECANCELED. */
static void test_cancel_self(void **state)
{
    (void)state;
    struct self_ctx c;
    memset(&c, 0, sizeof(c));
    tr_engine *e = eng_new(NULL);
    assert_int_equal(tr_spawn(e, NULL, self_body, &c, NULL), 0);
    eng_finish(e);
    assert_false(c.is_before);
    assert_int_equal(c.rc_cancel, 0);
    assert_true(c.is_after);
    assert_int_equal(c.r_nop, -ECANCELED);
    assert_int_equal(c.rc_again, 0);
}

/* ---------------------------------------------------------- level trigger */

struct lvl_ctx {
    int pfd[2];
    ssize_t r0;
    int n_calls, n_ecanceled;
    uint64_t ops_delta, cancels_delta;
};

static int lvl_body(void *p)
{
    struct lvl_ctx *c = p;
    char b[16];
    c->r0 = tr_read(c->pfd[0], b, sizeof(b), -1); /* parked, then cancelled */
    /* Data is available now: a read that reached the kernel would return 4. */
    TCHECK_EQ(write(c->pfd[1], "data", 4), 4);
    struct tr_stats s0 = tstats();
    for (int i = 0; i < 100; i++) {
        long r = (i % 2) ? tr_read(c->pfd[0], b, sizeof(b), -1) : tr_nop();
        c->n_calls++;
        if (r == -ECANCELED)
            c->n_ecanceled++;
        else
            TCHECK_EQ(r, -ECANCELED);
    }
    /* Every other kind of blocking call, a few times each. */
    for (int i = 0; i < 5; i++) {
        TCHECK_EQ(tr_write(c->pfd[1], "z", 1, -1), -ECANCELED);
        TCHECK_EQ(tr_poll(c->pfd[0], POLLIN), -ECANCELED);
        TCHECK_EQ(tr_sleep_ns(1000), -ECANCELED);
        TCHECK_EQ(tr_yield(), -ECANCELED);
        TCHECK_EQ(tr_recv(c->pfd[0], b, sizeof(b), 0), -ECANCELED);
        TCHECK_EQ(tr_fsync(c->pfd[1]), -ECANCELED);
    }
    struct tr_stats s1 = tstats();
    c->ops_delta = s1.ops_submitted - s0.ops_submitted;
    c->cancels_delta = s1.cancels_submitted - s0.cancels_submitted;
    return 0;
}

static int lvl_main(void *p)
{
    struct lvl_ctx *c = p;
    tr_task *t = NULL;
    TCHECK_EQ(tr_spawn(NULL, &t, lvl_body, c, NULL), 0);
    TCHECK(wait_parked(t, TR_WAIT_OP));
    TCHECK_EQ(tr_cancel(t), 0);
    TCHECK_EQ(tr_join(t, NULL), 0);
    return 0;
}

/* After a cancel, 100 successive tr_nop/tr_read calls (and every other kind
 * of blocking call) return -ECANCELED without submitting anything. */
static void test_cancel_level_triggered_calls_fail_fast(void **state)
{
    (void)state;
    struct lvl_ctx c;
    memset(&c, 0, sizeof(c));
    make_pipe(c.pfd);
    tr_engine *e = eng_new(NULL);
    assert_int_equal(tr_spawn(e, NULL, lvl_main, &c, NULL), 0);
    eng_finish(e);
    assert_int_equal(c.r0, -ECANCELED);
    assert_int_equal(c.n_calls, 100);
    assert_int_equal(c.n_ecanceled, 100);
    assert_int_equal(c.ops_delta, 0);
    assert_int_equal(c.cancels_delta, 0);
    assert_int_equal(pipe_bytes(c.pfd[0]), 4); /* nothing read, nothing written */
    close_pair(c.pfd);
}

#define SPIN_OTHER_ROUNDS 1000
#define SPIN_BOUND 1000000

struct spin_ctx {
    int other_rounds;
    int spins;
    int spin_bad;
    int other_nop_ok;
};

/* Ignores -ECANCELED and keeps yielding until the other task has done all
 * its rounds; SPIN_BOUND only stops a broken engine from hanging the test. */
static int spin_stubborn(void *p)
{
    struct spin_ctx *c = p;
    TCHECK_EQ(tr_cancel(tr_self()), 0);
    while (c->other_rounds < SPIN_OTHER_ROUNDS && c->spins < SPIN_BOUND) {
        if (tr_yield() != -ECANCELED)
            c->spin_bad++;
        c->spins++;
    }
    return -ECANCELED;
}

static int spin_other(void *p)
{
    struct spin_ctx *c = p;
    for (int i = 0; i < SPIN_OTHER_ROUNDS; i++) {
        /* Half the rounds need the ring: the spinner must not stall it. */
        int r = (i % 2) ? tr_nop() : tr_yield();
        if (r == 0)
            c->other_nop_ok++;
        c->other_rounds++;
    }
    return 0;
}

/* A cancelled task that ignores -ECANCELED from tr_yield in a loop cannot
 * starve the others: each of its calls passes through the scheduler. */
static void test_cancel_level_triggered_spinner_cannot_starve(void **state)
{
    (void)state;
    struct spin_ctx c;
    memset(&c, 0, sizeof(c));
    tr_engine *e = eng_new(NULL);
    assert_int_equal(tr_spawn(e, NULL, spin_stubborn, &c, NULL), 0);
    assert_int_equal(tr_spawn(e, NULL, spin_other, &c, NULL), 0);
    eng_finish(e);
    assert_int_equal(c.other_rounds, SPIN_OTHER_ROUNDS);
    assert_int_equal(c.other_nop_ok, SPIN_OTHER_ROUNDS);
    assert_true(c.spins < SPIN_BOUND);
    assert_true(c.spins > 0);
    assert_int_equal(c.spin_bad, 0);
    print_message("spinner yielded %d times while the other task did %d rounds\n", c.spins,
                  c.other_rounds);
}

/* ----------------------------------------------------------------- main */

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_cancel_ready_first_call_fails),
        T(test_cancel_parked_read_gets_ecanceled),
        T(test_cancel_parked_sleep_no_kernel_cancel),
        T(test_cancel_parked_join_handle_joinable_after),
        T(test_cancel_parked_join_handle_detachable_after),
        T(test_cancel_finished_task_esrch),
        T(test_cancel_self),
        T(test_cancel_level_triggered_calls_fail_fast),
        T(test_cancel_level_triggered_spinner_cannot_starve),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
