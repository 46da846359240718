/*
 * Description: cancellation in every state a task can be in (DESIGN G4, G5,
 * section 3): READY, parked on a ring op, sleeping, joining, finished; self
 * cancel; the level trigger; shields; tr_close in a cancelled task;
 * tr_cancel_all with and without TR_CANCEL_WAIT; and the G5 races where a
 * cancelled read or accept completes anyway.
 *
 * White-box where it buys determinism: tests read tr_task.state/wait (from
 * tr_internal.h) to know that a task is parked before they cancel it, instead
 * of sleeping.
 */
#define _GNU_SOURCE /* pipe2, accept4, strsignal */
#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "tr_test.h"
#include "tr_internal.h"

/* ------------------------------------------------------------ helpers */

/* Runs e to the end, then: no failed task check, the G2 audit, destroy. */
static void eng_finish(tr_engine *e)
{
    assert_int_equal(tr_engine_run(e), 0);
    tr_test_assert_clean();
    tr_test_assert_quiescent(e);
    assert_int_equal(tr_engine_destroy(e), 0);
}

/* xorshift64*: a fixed seed makes every run replay the same interleavings. */
static uint64_t prng_state;
static uint64_t prng(void)
{
    uint64_t x = prng_state;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    prng_state = x;
    return x * 0x2545F4914F6CDD1Dull;
}

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
    TCHECK(!c->target->cancelled);
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

/* ----------------------------------------------------------------- shields */

struct shield_ctx {
    int pfd[2];
    bool self_cancel;
    tr_task *t;
    int depth_begin, depth_end;
    ssize_t r_read;
    char buf[16];
    int r_after;
    int cancelled_in_shield;
    int parked_through_cancel;
    uint64_t cancels_delta;
};

static int shield_reader(void *p)
{
    struct shield_ctx *c = p;
    if (c->self_cancel)
        TCHECK_EQ(tr_cancel(tr_self()), 0);
    c->depth_begin = tr_shield_begin();
    c->r_read = tr_read(c->pfd[0], c->buf, sizeof(c->buf), -1);
    c->cancelled_in_shield = tr_is_cancelled();
    c->depth_end = tr_shield_end();
    c->r_after = tr_nop();
    return (int)c->r_read;
}

static int shield_main(void *p)
{
    struct shield_ctx *c = p;
    TCHECK_EQ(tr_spawn(NULL, &c->t, shield_reader, c, NULL), 0);
    TCHECK(wait_parked(c->t, TR_WAIT_OP));
    struct tr_stats s0 = tstats();
    if (!c->self_cancel)
        TCHECK_EQ(tr_cancel(c->t), 0);
    /* Give a wrongly delivered cancel every chance to show. */
    int parked = 1;
    for (int i = 0; i < 10; i++) {
        TCHECK_EQ(tr_yield(), 0);
        parked &= parked_on(c->t, TR_WAIT_OP);
    }
    c->parked_through_cancel = parked;
    struct tr_stats s1 = tstats();
    c->cancels_delta = s1.cancels_submitted - s0.cancels_submitted;
    TCHECK_EQ(tr_write(c->pfd[1], "hello", 5, -1), 5);
    TCHECK_EQ(tr_join(c->t, NULL), 0);
    return 0;
}

static void run_shield_case(bool self_cancel)
{
    struct shield_ctx c;
    memset(&c, 0, sizeof(c));
    c.self_cancel = self_cancel;
    make_pipe(c.pfd);
    tr_engine *e = eng_new(NULL);
    assert_int_equal(tr_spawn(e, NULL, shield_main, &c, NULL), 0);
    eng_finish(e);
    assert_int_equal(c.depth_begin, 1);
    assert_int_equal(c.parked_through_cancel, 1);
    assert_int_equal(c.cancels_delta, 0);
    assert_int_equal(c.r_read, 5);
    assert_memory_equal(c.buf, "hello", 5);
    assert_true(c.cancelled_in_shield);
    assert_int_equal(c.depth_end, 0);
    assert_int_equal(c.r_after, -ECANCELED);
    close_pair(c.pfd);
}

/* Inside a shield, a cancelled task's tr_read waits for the real data that
 * another task writes, and gets it; after tr_shield_end the cancel shows. */
static void test_cancel_shield_read_waits_for_real_data(void **state)
{
    (void)state;
    run_shield_case(true);
}

/* tr_cancel of a task parked inside a shield does not interrupt its op (no
 * ASYNC_CANCEL, still parked), and shows after tr_shield_end. */
static void test_cancel_shield_cancel_does_not_interrupt_op(void **state)
{
    (void)state;
    run_shield_case(false);
}

struct nest_ctx {
    int d[6];
    int r[5];
};

static int nest_body(void *p)
{
    struct nest_ctx *c = p;
    TCHECK_EQ(tr_cancel(tr_self()), 0);
    c->d[0] = tr_shield_begin();
    c->d[1] = tr_shield_begin();
    c->r[0] = tr_nop();
    c->d[2] = tr_shield_end();
    c->r[1] = tr_nop(); /* still inside the outer shield */
    c->d[3] = tr_shield_end();
    c->r[2] = tr_nop();
    c->d[4] = tr_shield_begin(); /* a new shield after the cancel showed */
    c->r[3] = tr_nop();
    c->d[5] = tr_shield_end();
    c->r[4] = tr_yield();
    return 0;
}

/* Shields nest: only the outermost tr_shield_end lets the cancel show. */
static void test_cancel_shield_nested(void **state)
{
    (void)state;
    struct nest_ctx c;
    memset(&c, 0, sizeof(c));
    tr_engine *e = eng_new(NULL);
    assert_int_equal(tr_spawn(e, NULL, nest_body, &c, NULL), 0);
    eng_finish(e);
    assert_int_equal(c.d[0], 1);
    assert_int_equal(c.d[1], 2);
    assert_int_equal(c.r[0], 0);
    assert_int_equal(c.d[2], 1);
    assert_int_equal(c.r[1], 0);
    assert_int_equal(c.d[3], 0);
    assert_int_equal(c.r[2], -ECANCELED);
    assert_int_equal(c.d[4], 1);
    assert_int_equal(c.r[3], 0);
    assert_int_equal(c.d[5], 0);
    assert_int_equal(c.r[4], -ECANCELED);
}

struct unbal_ctx {
    int e0, b1, e1, e2, b2, r_in, e3, r_out;
};

static int unbal_body(void *p)
{
    struct unbal_ctx *c = p;
    c->e0 = tr_shield_end(); /* never began */
    c->b1 = tr_shield_begin();
    c->e1 = tr_shield_end();
    c->e2 = tr_shield_end(); /* one too many */
    /* The refused ends left the depth at 0, not below. */
    TCHECK_EQ(tr_cancel(tr_self()), 0);
    c->b2 = tr_shield_begin();
    c->r_in = tr_nop();
    c->e3 = tr_shield_end();
    c->r_out = tr_nop();
    return 0;
}

/* tr_shield_end without a matching begin is -EINVAL and changes nothing. */
static void test_cancel_shield_end_unbalanced_einval(void **state)
{
    (void)state;
    struct unbal_ctx c;
    memset(&c, 0, sizeof(c));
    tr_engine *e = eng_new(NULL);
    assert_int_equal(tr_spawn(e, NULL, unbal_body, &c, NULL), 0);
    eng_finish(e);
    assert_int_equal(c.e0, -EINVAL);
    assert_int_equal(c.b1, 1);
    assert_int_equal(c.e1, 0);
    assert_int_equal(c.e2, -EINVAL);
    assert_int_equal(c.b2, 1);
    assert_int_equal(c.r_in, 0);
    assert_int_equal(c.e3, 0);
    assert_int_equal(c.r_out, -ECANCELED);
}

/* ------------------------------------------------ tr_close when cancelled */

struct close_ctx {
    int pfd[2];
    ssize_t r0;
    int rc_close0, rc_close1;
    int fcntl0, errno0, fcntl1, errno1;
    int r_after;
};

static int close_body(void *p)
{
    struct close_ctx *c = p;
    char b[4];
    c->r0 = tr_read(c->pfd[0], b, sizeof(b), -1); /* cancelled while parked */
    c->rc_close0 = tr_close(c->pfd[0]);
    c->fcntl0 = fcntl(c->pfd[0], F_GETFD);
    c->errno0 = errno;
    c->rc_close1 = tr_close(c->pfd[1]);
    c->fcntl1 = fcntl(c->pfd[1], F_GETFD);
    c->errno1 = errno;
    c->r_after = tr_nop();
    return 0;
}

static int close_main(void *p)
{
    struct close_ctx *c = p;
    tr_task *t = NULL;
    TCHECK_EQ(tr_spawn(NULL, &t, close_body, c, NULL), 0);
    TCHECK(wait_parked(t, TR_WAIT_OP));
    TCHECK_EQ(tr_cancel(t), 0);
    TCHECK_EQ(tr_join(t, NULL), 0);
    return 0;
}

/* tr_close is never cancelled: in a cancelled task it really closes. */
static void test_cancel_close_in_cancelled_task_closes(void **state)
{
    (void)state;
    struct close_ctx c;
    memset(&c, 0, sizeof(c));
    make_pipe(c.pfd);
    tr_engine *e = eng_new(NULL);
    assert_int_equal(tr_spawn(e, NULL, close_main, &c, NULL), 0);
    eng_finish(e);
    assert_int_equal(c.r0, -ECANCELED);
    assert_int_equal(c.rc_close0, 0);
    assert_int_equal(c.fcntl0, -1);
    assert_int_equal(c.errno0, EBADF);
    assert_int_equal(c.rc_close1, 0);
    assert_int_equal(c.fcntl1, -1);
    assert_int_equal(c.errno1, EBADF);
    assert_int_equal(c.r_after, -ECANCELED);
}

/* -------------------------------------------------------- tr_cancel_all */

#define CA_N 6

struct ca_ctx {
    int pipes[CA_N][2];
    tr_task *t[CA_N];
    ssize_t res[CA_N];
    int n;
    int caller_cancelled;
    int caller_nop;
    int spared_flag[CA_N];
};

struct ca_arg {
    struct ca_ctx *c;
    int i;
};

static int ca_worker(void *p)
{
    struct ca_arg *a = p;
    char b[4];
    a->c->res[a->i] = tr_read(a->c->pipes[a->i][0], b, sizeof(b), -1);
    return (int)a->c->res[a->i];
}

static int ca_sleeper(void *p)
{
    struct ca_arg *a = p;
    a->c->res[a->i] = tr_sleep_ns(3600ull * 1000000000ull);
    return (int)a->c->res[a->i];
}

static int ca_main(void *p)
{
    struct ca_ctx *c = p;
    struct ca_arg args[CA_N];
    /* 0..3 read a pipe, 4 sleeps; 5 is spawned last and never runs before
     * the cancel (READY). 1 and 3 are excepted. */
    for (int i = 0; i < CA_N - 1; i++) {
        args[i].c = c;
        args[i].i = i;
        TCHECK_EQ(tr_spawn(NULL, &c->t[i], i == 4 ? ca_sleeper : ca_worker, &args[i], NULL), 0);
    }
    for (int i = 0; i < 4; i++)
        TCHECK(wait_parked(c->t[i], TR_WAIT_OP));
    TCHECK(wait_parked(c->t[4], TR_WAIT_TIMER));
    args[5].c = c;
    args[5].i = 5;
    TCHECK_EQ(tr_spawn(NULL, &c->t[5], ca_worker, &args[5], NULL), 0);
    tr_task *except[2] = {c->t[1], c->t[3]};
    c->n = tr_cancel_all(except, 2, 0);
    c->caller_cancelled = tr_is_cancelled();
    c->caller_nop = tr_nop();
    for (int i = 0; i < CA_N; i++)
        c->spared_flag[i] = !c->t[i]->cancelled;
    /* The spared ones get real data and end on their own. */
    TCHECK_EQ(write(c->pipes[1][1], "1", 1), 1);
    TCHECK_EQ(write(c->pipes[3][1], "3", 1), 1);
    for (int i = 0; i < CA_N; i++)
        TCHECK_EQ(tr_join(c->t[i], NULL), 0);
    return 0;
}

/* tr_cancel_all(except, n, 0) cancels every other live task (parked on an
 * op, sleeping, not yet started), returns their count and spares the caller
 * and the excepted tasks. */
static void test_cancel_all_spares_caller_and_excepted(void **state)
{
    (void)state;
    struct ca_ctx c;
    memset(&c, 0, sizeof(c));
    for (int i = 0; i < CA_N; i++)
        make_pipe(c.pipes[i]);
    tr_engine *e = eng_new(NULL);
    assert_int_equal(tr_spawn(e, NULL, ca_main, &c, NULL), 0);
    eng_finish(e);
    assert_int_equal(c.n, 4);
    assert_false(c.caller_cancelled);
    assert_int_equal(c.caller_nop, 0);
    int want_spared[CA_N] = {0, 1, 0, 1, 0, 0};
    for (int i = 0; i < CA_N; i++) {
        assert_int_equal(c.spared_flag[i], want_spared[i]);
        assert_int_equal(c.res[i], want_spared[i] ? 1 : -ECANCELED);
    }
    for (int i = 0; i < CA_N; i++)
        close_pair(c.pipes[i]);
}

#define CW_N 9

struct cw_ctx {
    int pfd[2];
    int ended;
    int n;
    int ended_at_return;
    uint64_t live_at_return;
    int stubborn_ecanceled;
    int shield_nops_ok;
    int caller_cancelled;
};

static int cw_sleeper(void *p)
{
    struct cw_ctx *c = p;
    TCHECK_EQ(tr_sleep_ns(3600ull * 1000000000ull), -ECANCELED);
    c->ended++;
    return -ECANCELED;
}

static int cw_reader(void *p)
{
    struct cw_ctx *c = p;
    char b[4];
    TCHECK_EQ(tr_read(c->pfd[0], b, sizeof(b), -1), -ECANCELED);
    c->ended++;
    return -ECANCELED;
}

/* Yields until cancelled, then ignores the cancel for 50 more yields. */
static int cw_stubborn(void *p)
{
    struct cw_ctx *c = p;
    for (int i = 0; i < 100000 && !tr_is_cancelled(); i++)
        (void)tr_yield();
    for (int i = 0; i < 50; i++)
        if (tr_yield() == -ECANCELED)
            c->stubborn_ecanceled++;
    c->ended++;
    return 0;
}

/* Cleans up inside a shield after the cancel: 10 real ring ops. */
static int cw_cleaner(void *p)
{
    struct cw_ctx *c = p;
    TCHECK_EQ(tr_sleep_ns(3600ull * 1000000000ull), -ECANCELED);
    TCHECK_EQ(tr_shield_begin(), 1);
    for (int i = 0; i < 10; i++)
        if (tr_nop() == 0)
            c->shield_nops_ok++;
    TCHECK_EQ(tr_shield_end(), 0);
    c->ended++;
    return -ECANCELED;
}

static int cw_main(void *p)
{
    struct cw_ctx *c = p;
    tr_fn kinds[4] = {cw_sleeper, cw_reader, cw_stubborn, cw_cleaner};
    for (int i = 0; i < CW_N - 1; i++)
        TCHECK_EQ(tr_spawn(NULL, NULL, kinds[i % 4], c, NULL), 0);
    yields(3);
    TCHECK_EQ(tr_spawn(NULL, NULL, cw_sleeper, c, NULL), 0); /* READY at the cancel */
    c->n = tr_cancel_all(NULL, 0, TR_CANCEL_WAIT);
    c->ended_at_return = c->ended;
    c->live_at_return = tstats().tasks_live;
    c->caller_cancelled = tr_is_cancelled();
    return 0;
}

/* tr_cancel_all(TR_CANCEL_WAIT) returns only after every target has ended,
 * including targets that ignore the cancel for a while or clean up in a
 * shield. */
static void test_cancel_all_wait_returns_after_targets_end(void **state)
{
    (void)state;
    struct cw_ctx c;
    memset(&c, 0, sizeof(c));
    make_pipe(c.pfd);
    tr_engine *e = eng_new(NULL);
    assert_int_equal(tr_spawn(e, NULL, cw_main, &c, NULL), 0);
    eng_finish(e);
    assert_int_equal(c.n, CW_N);
    assert_int_equal(c.ended_at_return, CW_N);
    assert_int_equal(c.ended, CW_N);
    assert_int_equal(c.live_at_return, 1); /* the caller */
    assert_int_equal(c.stubborn_ecanceled, 2 * 50);
    assert_int_equal(c.shield_nops_ok, 2 * 10);
    assert_false(c.caller_cancelled);
    close_pair(c.pfd);
}

/* ------------------------------------------------------------ G5: read race */

#define RACE_ITERS 10000
#define RACE_MAX 64

struct race_rd {
    int fd;
    int sock;
    unsigned char buf[RACE_MAX];
    ssize_t res;
    int cancel_issued; /* set by the driver once tr_cancel returned */
    int after;
};

/* Waits (yielding, results ignored: they may be -ECANCELED) until the
 * driver has called tr_cancel, so that the probe call after it shows the
 * cancel for sure; a cancel that hit the probe itself could otherwise lose
 * to the probe's real result, as G5 allows. */
static int probe_after_cancel(const int *cancel_issued)
{
    for (int i = 0; i < 1000 && !*cancel_issued; i++)
        (void)tr_yield();
    return tr_nop();
}

static int race_reader(void *p)
{
    struct race_rd *r = p;
    r->res = r->sock ? tr_recv(r->fd, r->buf, sizeof(r->buf), 0)
                     : tr_read(r->fd, r->buf, sizeof(r->buf), -1);
    r->after = probe_after_cancel(&r->cancel_issued);
    return 0;
}

/* Reads whatever is left without blocking; returns the byte count. */
static int drain_nb(int fd, int sock, unsigned char *out, int cap)
{
    int total = 0;
    int fl = 0;
    if (!sock) {
        fl = fcntl(fd, F_GETFL);
        TCHECK(fl >= 0);
        TCHECK_EQ(fcntl(fd, F_SETFL, fl | O_NONBLOCK), 0);
    }
    /* Bound: at most RACE_MAX bytes are ever in flight, one per read at least. */
    for (int i = 0; i < RACE_MAX + 1 && total < cap; i++) {
        ssize_t n = sock ? recv(fd, out + total, (size_t)(cap - total), MSG_DONTWAIT)
                         : read(fd, out + total, (size_t)(cap - total));
        if (n <= 0) {
            TCHECK(n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK));
            break;
        }
        total += (int)n;
    }
    if (!sock)
        TCHECK_EQ(fcntl(fd, F_SETFL, fl), 0);
    return total;
}

struct race_ctx {
    int pfd[2];
    int sp[2];
    uint64_t written, received, drained;
    int n_real, n_cancelled, n_esrch, iters;
};

static int race_main(void *p)
{
    struct race_ctx *c = p;
    for (int it = 0; it < RACE_ITERS; it++) {
        uint64_t x = prng();
        int sock = (int)(x & 1);
        int n = 1 + (int)((x >> 1) % RACE_MAX);
        int cancel_first = (int)((x >> 8) & 1);
        int k = (int)((x >> 9) & 3);
        int via_ring = (int)((x >> 11) & 1);
        int rfd = sock ? c->sp[0] : c->pfd[0];
        int wfd = sock ? c->sp[1] : c->pfd[1];
        unsigned char out[RACE_MAX], left[RACE_MAX * 2];
        for (int b = 0; b < n; b++)
            out[b] = (unsigned char)(it * 131 + b * 7 + 1);

        struct race_rd rd;
        memset(&rd, 0, sizeof(rd));
        rd.fd = rfd;
        rd.sock = sock;
        tr_task *r = NULL;
        TCHECK_EQ(tr_spawn(NULL, &r, race_reader, &rd, NULL), 0);
        if (!wait_parked(r, TR_WAIT_OP)) {
            TCHECK(!"reader never parked");
            (void)tr_cancel(r);
            (void)tr_join(r, NULL);
            break;
        }
        int crc;
        ssize_t w;
        if (!cancel_first) {
            w = via_ring ? tr_write(wfd, out, (size_t)n, -1) : write(wfd, out, (size_t)n);
            yields(k);
            crc = tr_cancel(r);
            rd.cancel_issued = 1;
        } else {
            crc = tr_cancel(r);
            rd.cancel_issued = 1;
            yields(k);
            w = via_ring ? tr_write(wfd, out, (size_t)n, -1) : write(wfd, out, (size_t)n);
        }
        TCHECK_EQ(w, n);
        TCHECK_EQ(tr_join(r, NULL), 0);
        c->written += (uint64_t)n;

        int got = rd.res > 0 ? (int)rd.res : 0;
        if (rd.res > 0) {
            TCHECK(rd.res <= n);
            TCHECK(memcmp(rd.buf, out, (size_t)got) == 0);
            c->n_real++;
        } else {
            TCHECK_EQ(rd.res, -ECANCELED);
            c->n_cancelled++;
        }
        int d = drain_nb(rfd, sock, left, (int)sizeof(left));
        TCHECK_EQ(got + d, n);
        if (got + d == n)
            TCHECK(memcmp(left, out + got, (size_t)d) == 0);
        c->received += (uint64_t)got;
        c->drained += (uint64_t)d;
        if (crc == 0) {
            TCHECK_EQ(rd.after, -ECANCELED); /* the cancel shows at the next call */
        } else {
            /* The reader ended with its data before the cancel came. */
            TCHECK_EQ(crc, -ESRCH);
            TCHECK(!cancel_first);
            TCHECK(rd.res > 0);
            TCHECK_EQ(rd.after, 0);
            c->n_esrch++;
        }
        c->iters++;
        if (tr_test_failures() > 20)
            break;
    }
    return 0;
}

/* G5: a reader parked on a pipe or socketpair is cancelled while data is
 * written, in varying orders. Either it got the real bytes or -ECANCELED and
 * the bytes are still there: no byte lost, none duplicated. */
static void test_cancel_race_read_no_byte_lost(void **state)
{
    (void)state;
    struct race_ctx c;
    memset(&c, 0, sizeof(c));
    make_pipe(c.pfd);
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, c.sp), 0);
    prng_state = 0x5eed7a5c12ab34cdull;
    print_message("seed 0x5eed7a5c12ab34cd\n");
    tr_engine *e = eng_new(NULL);
    assert_int_equal(tr_spawn(e, NULL, race_main, &c, NULL), 0);
    eng_finish(e);
    print_message("%d iterations: %d real results, %d cancelled (%d ended before the "
                  "cancel); %llu bytes written, %llu received, %llu drained\n",
                  c.iters, c.n_real, c.n_cancelled, c.n_esrch, (unsigned long long)c.written,
                  (unsigned long long)c.received, (unsigned long long)c.drained);
    assert_int_equal(c.iters, RACE_ITERS);
    assert_int_equal(c.n_real + c.n_cancelled, RACE_ITERS);
    assert_int_equal(c.written, c.received + c.drained);
    close_pair(c.pfd);
    close_pair(c.sp);
}

/* ---------------------------------------------------------- G5: accept race */

#define ACC_ITERS 5000

struct acc_rd {
    int lfd;
    int res;
    int cancel_issued;
    int after;
};

static int acc_acceptor(void *p)
{
    struct acc_rd *a = p;
    a->res = tr_accept(a->lfd, NULL, NULL, SOCK_CLOEXEC);
    a->after = probe_after_cancel(&a->cancel_issued);
    return 0;
}

struct acc_ctx {
    int lfd;
    struct sockaddr_un addr;
    socklen_t addr_len;
    int by_task, drained, n_esrch, iters, connects;
};

static int acc_connect(struct acc_ctx *c)
{
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    TCHECK(fd >= 0);
    if (fd < 0)
        return -1;
    TCHECK_EQ(connect(fd, (struct sockaddr *)&c->addr, c->addr_len), 0);
    c->connects++;
    return fd;
}

/* Accepts (and closes) whatever connections wait in the backlog, without
 * blocking: poll with a zero timeout first. */
static int acc_drain(int lfd)
{
    int n = 0;
    for (int i = 0; i < 8; i++) {
        struct pollfd pf = {.fd = lfd, .events = POLLIN, .revents = 0};
        if (poll(&pf, 1, 0) <= 0)
            break;
        int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
        if (fd < 0)
            break;
        close(fd);
        n++;
    }
    return n;
}

static int acc_main(void *p)
{
    struct acc_ctx *c = p;
    for (int it = 0; it < ACC_ITERS; it++) {
        uint64_t x = prng();
        int cancel_first = (int)(x & 1);
        int k = (int)((x >> 1) & 3);
        struct acc_rd a = {c->lfd, -1, 0, 0};
        tr_task *t = NULL;
        TCHECK_EQ(tr_spawn(NULL, &t, acc_acceptor, &a, NULL), 0);
        if (!wait_parked(t, TR_WAIT_OP)) {
            TCHECK(!"acceptor never parked");
            (void)tr_cancel(t);
            (void)tr_join(t, NULL);
            break;
        }
        int cfd, crc;
        if (!cancel_first) {
            cfd = acc_connect(c);
            yields(k);
            crc = tr_cancel(t);
            a.cancel_issued = 1;
        } else {
            crc = tr_cancel(t);
            a.cancel_issued = 1;
            yields(k);
            cfd = acc_connect(c);
        }
        TCHECK_EQ(tr_join(t, NULL), 0);
        int mine = 0;
        if (a.res >= 0) {
            TCHECK(fcntl(a.res, F_GETFD) >= 0);
            TCHECK(a.res != c->lfd && a.res != cfd);
            close(a.res);
            mine = 1;
            c->by_task++;
        } else {
            TCHECK_EQ(a.res, -ECANCELED);
        }
        int d = acc_drain(c->lfd);
        c->drained += d;
        TCHECK_EQ(mine + d, 1); /* exactly one connection, accepted once */
        if (crc == 0) {
            TCHECK_EQ(a.after, -ECANCELED);
        } else {
            TCHECK_EQ(crc, -ESRCH);
            TCHECK(a.res >= 0);
            c->n_esrch++;
        }
        if (cfd >= 0)
            close(cfd);
        c->iters++;
        if (tr_test_failures() > 20)
            break;
    }
    return 0;
}

/* G5: a cancelled tr_accept that completed anyway returns its fd, which the
 * test closes; a cancelled one leaves the connection in the backlog. No fd
 * leaks: the process's fd count is the same before and after. */
static void test_cancel_race_accept_never_leaks_fd(void **state)
{
    (void)state;
    struct acc_ctx c;
    memset(&c, 0, sizeof(c));
    int fds_before = count_fds();
    assert_true(fds_before > 0);

    c.lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(c.lfd >= 0);
    c.addr.sun_family = AF_UNIX;
    /* Abstract namespace: nothing to unlink, unique per process. */
    int len = snprintf(c.addr.sun_path + 1, sizeof(c.addr.sun_path) - 1,
                       "taskring-test-cancel-%d", (int)getpid());
    c.addr_len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + (size_t)len);
    assert_int_equal(bind(c.lfd, (struct sockaddr *)&c.addr, c.addr_len), 0);
    assert_int_equal(listen(c.lfd, 64), 0);

    prng_state = 0xacce97ace0fd1e55ull;
    tr_engine *e = eng_new(NULL);
    assert_int_equal(tr_spawn(e, NULL, acc_main, &c, NULL), 0);
    eng_finish(e);
    close(c.lfd);
    print_message("%d iterations: %d accepted by the task (%d ended before the cancel), "
                  "%d left in the backlog\n",
                  c.iters, c.by_task, c.n_esrch, c.drained);
    assert_int_equal(c.iters, ACC_ITERS);
    assert_int_equal(c.by_task + c.drained, c.connects);
    assert_int_equal(c.connects, ACC_ITERS);
    assert_int_equal(count_fds(), fds_before);
}

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
        T(test_cancel_shield_read_waits_for_real_data),
        T(test_cancel_shield_cancel_does_not_interrupt_op),
        T(test_cancel_shield_nested),
        T(test_cancel_shield_end_unbalanced_einval),
        T(test_cancel_close_in_cancelled_task_closes),
        T(test_cancel_all_spares_caller_and_excepted),
        T(test_cancel_all_wait_returns_after_targets_end),
        T(test_cancel_race_read_no_byte_lost),
        T(test_cancel_race_accept_never_leaks_fd),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
