/* SPDX-License-Identifier: MIT */
/*
 * Description: cancel scopes and deadlines (DESIGN section 7): a deadline
 * cuts a blocked read short with -ETIMEDOUT and no SQE of its own, the
 * scope stays triggered (level) until its exit, tr_scope_exit reports on
 * its own scope only, nesting, shields (with their own deadline; a
 * tr_shield_begin inside a scope), the task's cancellation beating a
 * deadline, tr_scope_cancel from another task, moving a deadline earlier,
 * later and away, a passed deadline at the enter, every blocking call
 * honouring scopes (sleep, yield, join, tr_wait_shutdown, cancel_all), a
 * deadline racing real completions 10,000 times with every byte accounted,
 * misuse (-EINVAL, nothing changes; G10 for a task that ends inside
 * scopes), the dump (also past a scope left in a returned frame), 100,000
 * tasks in scopes all expiring, a shutdown with 10,000 tasks in scopes,
 * and the deadlock check's pruning of deadline timers that wake nobody. No timing assertions:
 * deadlines are only ever "soon" or "far" (an hour), and waits are for events.
 */
#define _GNU_SOURCE
#include "tr_harness.h"
#include "tr_test_task.h"

#include <stdlib.h>
#include <sys/mman.h>

#define MS 1000000ull
#define HOUR (3600ull * 1000000000ull)

static uint64_t soon(void)
{
    return tr_now_ns() + 2 * MS;
}

static uint64_t far(void)
{
    return tr_now_ns() + HOUR;
}

/* ------------------------------------------------ a deadline, level-triggered */

struct pipe_ctx {
    int pfd[2];
    long r1, r2, r3;
    int x1, x2;
    uint64_t sub0, sub1;
};

static int fn_read_timeout(void *p)
{
    struct pipe_ctx *c = p;
    struct tr_scope s;
    char b[8];
    TCHECK_EQ(tr_scope_enter(&s, soon(), 0), 0);
    c->r1 = tr_read(c->pfd[0], b, sizeof(b), -1); /* nobody writes: the deadline ends it */
    c->sub0 = tstats().ops_submitted;
    c->r2 = tr_nop(); /* level: at once, nothing submitted */
    c->r3 = tr_sleep_ns(HOUR);
    c->sub1 = tstats().ops_submitted;
    c->x1 = tr_scope_exit(&s);
    c->x2 = tr_nop(); /* after the exit, calls work again */
    return 0;
}

static void test_scope_deadline_cuts_read(void **state)
{
    (void)state;
    struct pipe_ctx c = {0};
    make_pipe(c.pfd);
    assert_int_equal(tt_run(fn_read_timeout, &c), 0);
    assert_int_equal(c.r1, -ETIMEDOUT);
    assert_int_equal(c.r2, -ETIMEDOUT);
    assert_int_equal(c.r3, -ETIMEDOUT);
    assert_true(c.sub1 == c.sub0); /* cut short before submitting */
    assert_int_equal(c.x1, -ETIMEDOUT);
    assert_int_equal(c.x2, 0);
    close_pair(c.pfd);
}

/* A deadline that has passed at the enter triggers the scope at once: the
 * first call submits nothing. */
static int fn_passed_deadline(void *p)
{
    struct pipe_ctx *c = p;
    struct tr_scope s;
    char b[4];
    c->sub0 = tstats().ops_submitted;
    TCHECK_EQ(tr_scope_enter(&s, tr_now_ns() - MS, 0), 0);
    c->r1 = tr_read(c->pfd[0], b, sizeof(b), -1);
    c->sub1 = tstats().ops_submitted;
    c->x1 = tr_scope_exit(&s);
    return 0;
}

static void test_scope_passed_deadline_submits_nothing(void **state)
{
    (void)state;
    struct pipe_ctx c = {0};
    make_pipe(c.pfd);
    assert_int_equal(tt_run(fn_passed_deadline, &c), 0);
    assert_int_equal(c.r1, -ETIMEDOUT);
    assert_true(c.sub1 == c.sub0);
    assert_int_equal(c.x1, -ETIMEDOUT);
    close_pair(c.pfd);
}

/* A scope that cut nothing short exits with 0, even after its deadline
 * passed with nothing blocking in it; one without a deadline, too. */
static int fn_nothing_cut(void *p)
{
    int *rc = p;
    struct tr_scope a, b;
    TCHECK_EQ(tr_scope_enter(&a, 0, 0), 0);
    TCHECK_EQ(tr_nop(), 0);
    rc[0] = tr_scope_exit(&a);
    TCHECK_EQ(tr_scope_enter(&b, far(), 0), 0);
    TCHECK_EQ(tr_sleep_ns(100000), 0);
    rc[1] = tr_scope_exit(&b);
    return 0;
}

static void test_scope_exit_zero_when_nothing_cut(void **state)
{
    (void)state;
    int rc[2] = {-1, -1};
    assert_int_equal(tt_run(fn_nothing_cut, rc), 0);
    assert_int_equal(rc[0], 0);
    assert_int_equal(rc[1], 0);
}

/* ---------------------------------------------------------------- nesting */

struct nest_ctx {
    int r_inner, x_inner, r_mid, x_outer;
    int r_b, x_binner, x_bouter;
};

static int fn_nesting(void *p)
{
    struct nest_ctx *c = p;
    /* Inner deadline first: only the inner scope reports it. */
    struct tr_scope outer, inner;
    TCHECK_EQ(tr_scope_enter(&outer, far(), 0), 0);
    TCHECK_EQ(tr_scope_enter(&inner, soon(), 0), 0);
    c->r_inner = tr_sleep_ns(HOUR);
    c->x_inner = tr_scope_exit(&inner);
    c->r_mid = tr_nop(); /* the outer one has not triggered */
    c->x_outer = tr_scope_exit(&outer);
    /* Outer deadline first: the call inside the inner scope is cut short
     * by the outer one; the inner exits with 0. */
    struct tr_scope bo, bi;
    TCHECK_EQ(tr_scope_enter(&bo, soon(), 0), 0);
    TCHECK_EQ(tr_scope_enter(&bi, far(), 0), 0);
    c->r_b = tr_sleep_ns(HOUR);
    c->x_binner = tr_scope_exit(&bi);
    c->x_bouter = tr_scope_exit(&bo);
    return 0;
}

static void test_scope_nesting_reports_own_scope(void **state)
{
    (void)state;
    struct nest_ctx c;
    memset(&c, 0x55, sizeof(c));
    assert_int_equal(tt_run(fn_nesting, &c), 0);
    assert_int_equal(c.r_inner, -ETIMEDOUT);
    assert_int_equal(c.x_inner, -ETIMEDOUT);
    assert_int_equal(c.r_mid, 0);
    assert_int_equal(c.x_outer, 0);
    assert_int_equal(c.r_b, -ETIMEDOUT);
    assert_int_equal(c.x_binner, 0);
    assert_int_equal(c.x_bouter, -ETIMEDOUT);
}

/* ----------------------------------------------------------------- shields */

struct shield_ctx {
    int r_in, r_own, x_shield, r_after, x_outer;
    int r_sh1, r_sh2, e_bad, x_scope;
};

static int fn_shield_scope(void *p)
{
    struct shield_ctx *c = p;
    struct tr_scope outer, sh;
    TCHECK_EQ(tr_scope_enter(&outer, tr_now_ns() - 1, 0), 0); /* triggered */
    TCHECK_EQ(tr_scope_enter(&sh, soon(), TR_SCOPE_SHIELD), 0);
    c->r_in = tr_nop();               /* the outer expiry does not reach in */
    c->r_own = tr_sleep_ns(HOUR);     /* the shield's own deadline does */
    c->x_shield = tr_scope_exit(&sh); /* -ETIMEDOUT */
    c->r_after = tr_nop();            /* outside the shield again: cut */
    c->x_outer = tr_scope_exit(&outer);
    /* tr_shield_begin inside a scope: the scope's deadline stays out. */
    struct tr_scope s;
    TCHECK_EQ(tr_scope_enter(&s, tr_now_ns() - 1, 0), 0);
    TCHECK_EQ(tr_shield_begin(), 1);
    c->r_sh1 = tr_nop();
    c->e_bad = tr_scope_exit(&s); /* a shield inside it is open: refused */
    TCHECK_EQ(tr_shield_end(), 0);
    c->r_sh2 = tr_nop();
    c->x_scope = tr_scope_exit(&s);
    return 0;
}

static void test_scope_shield_blocks_outside_keeps_own_deadline(void **state)
{
    (void)state;
    struct shield_ctx c;
    memset(&c, 0x55, sizeof(c));
    assert_int_equal(tt_run(fn_shield_scope, &c), 0);
    assert_int_equal(c.r_in, 0);
    assert_int_equal(c.r_own, -ETIMEDOUT);
    assert_int_equal(c.x_shield, -ETIMEDOUT);
    assert_int_equal(c.r_after, -ETIMEDOUT);
    assert_int_equal(c.x_outer, -ETIMEDOUT);
    assert_int_equal(c.r_sh1, 0);
    assert_int_equal(c.e_bad, -EINVAL);
    assert_int_equal(c.r_sh2, -ETIMEDOUT);
    assert_int_equal(c.x_scope, -ETIMEDOUT);
}

/* A shield begun outside the innermost scope cannot end inside it. */
static int fn_shield_order(void *p)
{
    int *rc = p;
    struct tr_scope s;
    TCHECK_EQ(tr_shield_begin(), 1);
    TCHECK_EQ(tr_scope_enter(&s, 0, 0), 0);
    rc[0] = tr_shield_end(); /* begun outside s: refused */
    TCHECK_EQ(tr_scope_exit(&s), 0);
    rc[1] = tr_shield_end();
    return 0;
}

static void test_scope_shield_end_out_of_order(void **state)
{
    (void)state;
    int rc[2] = {1, 1};
    assert_int_equal(tt_run(fn_shield_order, rc), 0);
    assert_int_equal(rc[0], -EINVAL);
    assert_int_equal(rc[1], 0);
}

/* ------------------------------------------- cancellation beats a deadline */

struct cancel_ctx {
    int pfd[2];
    tr_task *victim;
    struct tr_scope *vs;
    int r1, r2, x1;
    int sc_r, sc_x, sc_err;
};

/* The victim waits in a scope whose deadline has passed... */
static int fn_victim(void *p)
{
    struct cancel_ctx *c = p;
    struct tr_scope s;
    char b[4];
    TCHECK_EQ(tr_scope_enter(&s, far(), 0), 0);
    c->r1 = tr_read(c->pfd[0], b, sizeof(b), -1);
    c->r2 = tr_nop();
    c->x1 = tr_scope_exit(&s);
    return 0;
}

/* ...the task is cancelled while its scope is also triggered: -ECANCELED
 * wins, and the scope (not the cause) exits with 0. */
static int fn_cancel_vs_deadline(void *p)
{
    struct cancel_ctx *c = p;
    TCHECK_EQ(tr_spawn(NULL, &c->victim, fn_victim, c, NULL), 0);
    TCHECK_EQ(tr_yield(), 0); /* the victim parks in its read */
    TCHECK(parked_on(c->victim, TR_WAIT_OP));
    struct tr_scope *vs = c->victim->scope;
    TCHECK(vs != NULL);
    TCHECK_EQ(tr_cancel(c->victim), 0);
    TCHECK_EQ(tr_scope_set_deadline(vs, tr_now_ns() - 1), 0); /* and its deadline passes */
    int res = 0;
    TCHECK_EQ(tr_join(c->victim, &res), 0);
    return 0;
}

static void test_scope_task_cancel_beats_deadline(void **state)
{
    (void)state;
    struct cancel_ctx c;
    memset(&c, 0x55, sizeof(c));
    make_pipe(c.pfd);
    assert_int_equal(tt_run(fn_cancel_vs_deadline, &c), 0);
    assert_int_equal(c.r1, -ECANCELED);
    assert_int_equal(c.r2, -ECANCELED);
    assert_int_equal(c.x1, 0);
    close_pair(c.pfd);
}

/* tr_scope_cancel from another task: -ECANCELED inside, and the exit says
 * the scope did it; the task itself is not cancelled. */
static int fn_scope_cancelled(void *p)
{
    struct cancel_ctx *c = p;
    struct tr_scope s;
    c->vs = &s;
    TCHECK_EQ(tr_scope_enter(&s, far(), 0), 0);
    c->sc_r = tr_sleep_ns(HOUR);
    c->sc_x = tr_scope_exit(&s);
    c->r2 = tr_nop();
    return tr_is_cancelled() ? -1 : 0;
}

static int fn_scope_cancel_other(void *p)
{
    struct cancel_ctx *c = p;
    tr_task *t;
    TCHECK_EQ(tr_spawn(NULL, &t, fn_scope_cancelled, c, NULL), 0);
    TCHECK_EQ(tr_yield(), 0);
    TCHECK(parked_on(t, TR_WAIT_TIMER));
    c->sc_err = tr_scope_cancel(c->vs);
    int res = -1;
    TCHECK_EQ(tr_join(t, &res), 0);
    TCHECK_EQ(res, 0);
    return 0;
}

static void test_scope_cancel_from_another_task(void **state)
{
    (void)state;
    struct cancel_ctx c;
    memset(&c, 0x55, sizeof(c));
    assert_int_equal(tt_run(fn_scope_cancel_other, &c), 0);
    assert_int_equal(c.sc_err, 0);
    assert_int_equal(c.sc_r, -ECANCELED);
    assert_int_equal(c.sc_x, -ECANCELED);
    assert_int_equal(c.r2, 0);
}

/* ------------------------------------------------------- moving a deadline */

struct move_ctx {
    int r_later, r_earlier, r_removed, r_trig, x_trig, e_moved;
    uint64_t t_removed;
};

static int fn_move(void *p)
{
    struct move_ctx *c = p;
    struct tr_scope s;
    /* Later: a soon deadline moved an hour away does not fire. */
    TCHECK_EQ(tr_scope_enter(&s, soon(), 0), 0);
    TCHECK_EQ(tr_scope_set_deadline(&s, far()), 0);
    c->r_later = tr_sleep_ns(5 * MS); /* past the first deadline */
    TCHECK_EQ(tr_scope_exit(&s), 0);
    /* Earlier: an hour moved to soon fires. */
    TCHECK_EQ(tr_scope_enter(&s, far(), 0), 0);
    TCHECK_EQ(tr_scope_set_deadline(&s, soon()), 0);
    c->r_earlier = tr_sleep_ns(HOUR);
    TCHECK_EQ(tr_scope_exit(&s), -ETIMEDOUT);
    /* Away: 0 removes it. */
    TCHECK_EQ(tr_scope_enter(&s, soon(), 0), 0);
    TCHECK_EQ(tr_scope_set_deadline(&s, 0), 0);
    c->r_removed = tr_sleep_ns(5 * MS);
    /* The task's deadline timer, kept armed lazily for the removed
     * deadline, fired during the sleep for nothing and was not re-armed. */
    c->t_removed = tstats().timers_pending;
    TCHECK_EQ(tr_scope_exit(&s), 0);
    /* Once triggered, moving changes nothing. */
    TCHECK_EQ(tr_scope_enter(&s, tr_now_ns() - 1, 0), 0);
    c->e_moved = tr_scope_set_deadline(&s, far());
    c->r_trig = tr_nop();
    c->x_trig = tr_scope_exit(&s);
    return 0;
}

static void test_scope_set_deadline_later_earlier_away(void **state)
{
    (void)state;
    struct move_ctx c;
    memset(&c, 0x55, sizeof(c));
    assert_int_equal(tt_run(fn_move, &c), 0);
    assert_int_equal(c.r_later, 0);
    assert_int_equal(c.r_earlier, -ETIMEDOUT);
    assert_int_equal(c.r_removed, 0);
    assert_int_equal(c.t_removed, 0);
    assert_int_equal(c.e_moved, 0);
    assert_int_equal(c.r_trig, -ETIMEDOUT);
    assert_int_equal(c.x_trig, -ETIMEDOUT);
}

/* ------------------------------------------------ every blocking call honours */

struct calls_ctx {
    int r_yield, r_join, r_ws, r_ca;
    tr_task *sleeper;
};

static int fn_calls(void *p)
{
    struct calls_ctx *c = p;
    TCHECK_EQ(tr_spawn(NULL, &c->sleeper, fn_sleep_long, NULL, NULL), 0);
    struct tr_scope s;
    TCHECK_EQ(tr_scope_enter(&s, soon(), 0), 0);
    c->r_join = tr_join(c->sleeper, NULL); /* parked until the deadline */
    c->r_yield = tr_yield();
    c->r_ws = tr_wait_shutdown();
    c->r_ca = tr_cancel_all(NULL, 0, TR_CANCEL_WAIT); /* cancels the sleeper, waits: cut */
    TCHECK_EQ(tr_scope_exit(&s), -ETIMEDOUT);
    TCHECK_EQ(tr_join(c->sleeper, NULL), 0); /* outside the scope: the real wait */
    return 0;
}

static void test_scope_every_blocking_call(void **state)
{
    (void)state;
    struct calls_ctx c;
    memset(&c, 0x55, sizeof(c));
    assert_int_equal(tt_run(fn_calls, &c), 0);
    assert_int_equal(c.r_join, -ETIMEDOUT);
    assert_int_equal(c.r_yield, -ETIMEDOUT);
    assert_int_equal(c.r_ws, -ETIMEDOUT);
    assert_int_equal(c.r_ca, -ETIMEDOUT);
}

/* Once the shutdown has begun, tr_wait_shutdown returns 0 (what it waits
 * for has happened: a real result) even inside a triggered scope; its pass
 * through the scheduler is no call cut short: the scope exits with 0 and
 * no deadline cut is counted (fuzz_api's scope model found it counted). */
static int fn_ws_after_begin(void *p)
{
    int *rc = p;
    TCHECK_EQ(tr_engine_shutdown(tr_self_engine()), 0);
    TCHECK_EQ(tr_yield(), -ECANCELED); /* the shutdown began: we are cancelled */
    struct tr_scope s;
    TCHECK_EQ(tr_scope_enter(&s, tr_now_ns() - 1, TR_SCOPE_SHIELD), 0);
    uint64_t cuts0 = tstats().deadline_cuts;
    rc[0] = tr_wait_shutdown();
    rc[1] = (int)(tstats().deadline_cuts - cuts0);
    rc[2] = tr_scope_exit(&s);
    return 0;
}

static void test_scope_wait_shutdown_after_begin_is_real(void **state)
{
    (void)state;
    int rc[3] = {7, 7, 7};
    assert_int_equal(tt_run(fn_ws_after_begin, rc), 0);
    assert_int_equal(rc[0], 0);
    assert_int_equal(rc[1], 0);
    assert_int_equal(rc[2], 0);
}

/* tr_close is never cut short. */
static int fn_close_in_scope(void *p)
{
    int *fds = p;
    struct tr_scope s;
    TCHECK_EQ(tr_scope_enter(&s, tr_now_ns() - 1, 0), 0);
    fds[2] = tr_close(fds[0]);
    fds[3] = tr_scope_exit(&s);
    return 0;
}

static void test_scope_close_never_cut(void **state)
{
    (void)state;
    int fds[4];
    make_pipe(fds);
    assert_int_equal(tt_run(fn_close_in_scope, fds), 0);
    assert_int_equal(fds[2], 0);
    assert_int_equal(fds[3], 0);
    assert_int_equal(fcntl(fds[0], F_GETFD), -1); /* closed */
    close(fds[1]);
}

/* ------------------------------------- a deadline racing real completions */

#define RACE_BYTES 10000

struct race_ctx {
    int pfd[2];
    unsigned char got[RACE_BYTES];
    long nread, timeouts, iters;
    int order_ok;
    bool writer_done;
};

static int fn_race_writer(void *p)
{
    struct race_ctx *c = p;
    unsigned seed = 11;
    /* Bytes come now at once, now after a pause as long as the reader's
     * deadlines, so that reads end both ways and some in the same pass. */
    for (int i = 0; i < RACE_BYTES; i++) {
        unsigned char b = (unsigned char)(i * 7 + 1);
        TCHECK_EQ(tr_write(c->pfd[1], &b, 1, -1), 1);
        if (i % 2 == 0)
            TCHECK_EQ(tr_sleep_ns((uint64_t)(rand_r(&seed) % 40000)), 0);
        else
            TCHECK_EQ(tr_yield(), 0);
    }
    c->writer_done = true;
    return 0;
}

static int fn_race_reader(void *p)
{
    struct race_ctx *c = p;
    unsigned seed = 7;
    /* Bounded: each round reads a byte or times out after <= 30 us; the
     * writer writes every byte within its own bounded loop. */
    while (c->nread < RACE_BYTES && c->iters < 50L * RACE_BYTES) {
        c->iters++;
        struct tr_scope s;
        uint64_t d = tr_now_ns() + (uint64_t)(rand_r(&seed) % 30000);
        TCHECK_EQ(tr_scope_enter(&s, d, 0), 0);
        unsigned char b[4];
        long r = tr_read(c->pfd[0], b, sizeof(b), -1);
        int x = tr_scope_exit(&s);
        if (r > 0) {
            for (long i = 0; i < r && c->nread < RACE_BYTES; i++)
                c->got[c->nread++] = b[i];
            TCHECK(x == 0 || x == -ETIMEDOUT); /* expired after the data came: fine */
        } else {
            TCHECK_EQ(r, -ETIMEDOUT);
            TCHECK_EQ(x, -ETIMEDOUT);
            c->timeouts++;
        }
    }
    return 0;
}

static int fn_race(void *p)
{
    tr_task *w, *r;
    TCHECK_EQ(tr_spawn(NULL, &r, fn_race_reader, p, NULL), 0);
    TCHECK_EQ(tr_spawn(NULL, &w, fn_race_writer, p, NULL), 0);
    TCHECK_EQ(tr_join(w, NULL), 0);
    TCHECK_EQ(tr_join(r, NULL), 0);
    return 0;
}

static void test_scope_deadline_races_real_completions(void **state)
{
    (void)state;
    struct race_ctx *c = calloc(1, sizeof(*c));
    assert_non_null(c);
    make_pipe(c->pfd);
    assert_int_equal(tt_run(fn_race, c), 0);
    assert_true(c->writer_done);
    /* Every byte arrived, once, in order: a read whose data came as its
     * deadline fired returned the data (G5), never lost it. */
    assert_int_equal(c->nread, RACE_BYTES);
    for (int i = 0; i < RACE_BYTES; i++)
        assert_int_equal(c->got[i], (unsigned char)(i * 7 + 1));
    assert_int_equal(pipe_bytes(c->pfd[0]), 0);
    print_message("race: %ld rounds, %ld timed out\n", c->iters, c->timeouts);
    close_pair(c->pfd);
    free(c);
}

/* -------------------------------------------------------------- misuse */

struct misuse_ctx {
    int e_null, e_flags, e_twice, e_order, r_inner_ok, x_inner, x_outer;
    int e_other, e_notentered, e_cancel_ne, e_dl_ne;
    struct tr_scope *other;
};

static int fn_holder(void *p)
{
    struct misuse_ctx *c = p;
    struct tr_scope s;
    TCHECK_EQ(tr_scope_enter(&s, 0, 0), 0);
    c->other = &s;
    TCHECK_EQ(tr_yield(), 0); /* the misuser tries to exit it */
    TCHECK_EQ(tr_scope_exit(&s), 0);
    return 0;
}

static int fn_misuse(void *p)
{
    struct misuse_ctx *c = p;
    struct tr_scope a, b, n;
    c->e_null = tr_scope_enter(NULL, 0, 0);
    c->e_flags = tr_scope_enter(&a, 0, 0x80);
    TCHECK_EQ(tr_scope_enter(&a, far(), 0), 0);
    c->e_twice = tr_scope_enter(&a, 0, 0);
    TCHECK_EQ(tr_scope_enter(&b, tr_now_ns() - 1, 0), 0);
    c->e_order = tr_scope_exit(&a); /* a is not innermost: refused, nothing changes */
    c->r_inner_ok = tr_nop();       /* b still triggered */
    c->x_inner = tr_scope_exit(&b);
    c->x_outer = tr_scope_exit(&a);
    tr_task *h;
    TCHECK_EQ(tr_spawn(NULL, &h, fn_holder, c, NULL), 0);
    TCHECK_EQ(tr_yield(), 0);
    c->e_other = tr_scope_exit(c->other); /* another task's */
    TCHECK_EQ(tr_join(h, NULL), 0);
    memset(&n, 0, sizeof(n));
    c->e_notentered = tr_scope_exit(&n);
    c->e_cancel_ne = tr_scope_cancel(&n);
    c->e_dl_ne = tr_scope_set_deadline(&n, far());
    return 0;
}

static void test_scope_misuse_einval(void **state)
{
    (void)state;
    struct misuse_ctx c;
    memset(&c, 0x55, sizeof(c));
    assert_int_equal(tt_run(fn_misuse, &c), 0);
    assert_int_equal(c.e_null, -EINVAL);
    assert_int_equal(c.e_flags, -EINVAL);
    assert_int_equal(c.e_twice, -EINVAL);
    assert_int_equal(c.e_order, -EINVAL);
    assert_int_equal(c.r_inner_ok, -ETIMEDOUT);
    assert_int_equal(c.x_inner, -ETIMEDOUT);
    assert_int_equal(c.x_outer, 0);
    assert_int_equal(c.e_other, -EINVAL);
    assert_int_equal(c.e_notentered, -EINVAL);
    assert_int_equal(c.e_cancel_ne, -EINVAL);
    assert_int_equal(c.e_dl_ne, -EINVAL);
    /* Outside a task. */
    struct tr_scope s;
    memset(&s, 0, sizeof(s));
    assert_int_equal(tr_scope_enter(&s, 0, 0), -EPERM);
    assert_int_equal(tr_scope_exit(&s), -EPERM);
}

/* G10: a task that returns with scopes entered (their records in its
 * returned frame) has them unlinked: no timer left armed, counted, named
 * in the report. */
static int __attribute__((noinline)) enter_and_leave(void)
{
    struct tr_scope a, b;
    TCHECK_EQ(tr_scope_enter(&a, far(), 0), 0);
    TCHECK_EQ(tr_scope_enter(&b, far(), 0), 0);
    return 0; /* both still entered: misuse */
}

static int fn_leaky(void *p)
{
    (void)p;
    return enter_and_leave();
}

static int fn_leak_main(void *p)
{
    uint64_t *out = p;
    tr_task *t;
    struct tr_spawn_opts o = {.name = "leaky"};
    TCHECK_EQ(tr_spawn(NULL, &t, fn_leaky, NULL, &o), 0);
    TCHECK_EQ(tr_join(t, NULL), 0);
    struct tr_stats st = tstats();
    out[0] = st.scopes_left;
    out[1] = st.timers_pending;
    TCHECK_EQ(tr_engine_shutdown(tr_self_engine()), 0); /* for the report */
    return 0;
}

static void test_scope_left_entered_unlinked_g10(void **state)
{
    (void)state;
    int pfd[2];
    make_pipe(pfd);
    struct tr_config cfg;
    tr_config_init(&cfg);
    cfg.flags |= TR_CFG_NO_SIGNALS;
    cfg.report_fd = pfd[1];
    uint64_t out[2] = {99, 99};
    tr_engine *e = eng_new(&cfg);
    g_e = e;
    assert_int_equal(tr_spawn(e, NULL, fn_leak_main, out, NULL), 0);
    assert_int_equal(tr_engine_run(e), 0);
    tr_test_assert_clean();
    assert_int_equal(out[0], 2);
    assert_int_equal(out[1], 0);
    tr_test_assert_quiescent(e);
    assert_int_equal(tr_engine_destroy(e), 0);
    char buf[8192];
    ssize_t n = read(pfd[0], buf, sizeof(buf) - 1);
    assert_true(n > 0);
    buf[n] = '\0';
    assert_contains(buf, "task 'leaky'");
    assert_contains(buf, "ended with 2 scope(s) entered");
    close_pair(pfd);
}

/* A scope left entered by a function that returned, while its task goes
 * on: its record is dead memory. When the engine next needs the chain (its
 * deadline fires), the misuse is loud (G8): the process dies naming the
 * task, instead of reading a reused frame. */
/* An engine for a child process's test (no signals; quiet: no report),
 * NULL if it cannot be made: the child returns a code, never asserts. */

static __attribute__((noinline)) int fn_dead_frame(void *p)
{
    (void)p;
    struct tr_scope s;
    TCHECK_EQ(tr_scope_enter(&s, tr_now_ns() + 5 * MS, 0), 0);
    return 0; /* returns with s entered: its frame is gone */
}

/* Overwrites the stack below its caller's frame, where fn_dead_frame's was. */
static __attribute__((noinline)) void burn_below(void)
{
    volatile char burn[2048];
    for (size_t i = 0; i < sizeof(burn); i++)
        burn[i] = 0x5a;
}

static int fn_dead_frame_task(void *p)
{
    (void)p;
    (void)fn_dead_frame(NULL);
    burn_below();
    (void)tr_sleep_ns(HOUR); /* the deadline fires while it sleeps */
    return 0;
}

static int dead_frame_child(void *p)
{
    (void)p;
    tr_engine *e = tr_child_engine(false);
    if (!e)
        return 90;
    struct tr_spawn_opts o = {.name = "returner"};
    if (tr_spawn(e, NULL, fn_dead_frame_task, NULL, &o) != 0)
        return 91;
    (void)tr_engine_run(e);
    return 92; /* not reached: the misuse aborts */
}

static void test_scope_left_in_returned_frame_is_loud(void **state)
{
    (void)state;
    static const struct tr_child_opts o = {
        .capture_stderr = true, .clean_slate = true, .alarm_s = 60};
    struct tr_child_out out;
    tr_child_run(dead_frame_child, NULL, &o, &out);
#if defined(__SANITIZE_ADDRESS__)
    /* ASan sees the read of the dead record first and ends the child with
     * its own report: as loud. */
    assert_false(WIFEXITED(out.status) && WEXITSTATUS(out.status) == 92);
    assert_contains(out.err, "AddressSanitizer");
#else
    tr_child_assert_signal(&out, SIGABRT);
    assert_contains(out.err, "'returner'");
    assert_contains(out.err, "left entered by a function that returned");
#endif
}

/* --------------------------------------------------------------- the dump */

static int fn_dumped(void *p)
{
    (void)p;
    struct tr_scope a, b;
    TCHECK_EQ(tr_scope_enter(&a, far(), 0), 0);
    TCHECK_EQ(tr_scope_enter(&b, 0, TR_SCOPE_SHIELD), 0);
    TCHECK_EQ(tr_sleep_ns(HOUR), -ECANCELED); /* cancelled by the dumper's scope cancel */
    TCHECK_EQ(tr_scope_exit(&b), -ECANCELED);
    TCHECK_EQ(tr_scope_exit(&a), 0);
    return 0;
}

static int fn_dumper(void *p)
{
    int *fds = p;
    tr_task *t;
    struct tr_spawn_opts o = {.name = "dumped"};
    TCHECK_EQ(tr_spawn(NULL, &t, fn_dumped, NULL, &o), 0);
    TCHECK_EQ(tr_yield(), 0);
    TCHECK(tr_engine_dump(tr_self_engine(), fds[1]) >= 2);
    TCHECK_EQ(tr_scope_cancel(t->scope), 0); /* the innermost: b */
    TCHECK_EQ(tr_engine_dump(tr_self_engine(), fds[1]) >= 2, 1);
    TCHECK_EQ(tr_join(t, NULL), 0);
    return 0;
}

static void test_scope_dump_shows_deadline_and_trigger(void **state)
{
    (void)state;
    int fds[2];
    make_pipe(fds);
    assert_int_equal(tt_run(fn_dumper, fds), 0);
    char buf[8192];
    ssize_t n = read(fds[0], buf, sizeof(buf) - 1);
    assert_true(n > 0);
    buf[n] = '\0';
    assert_contains(buf, "'dumped' sleeping");
    assert_contains(buf, "deadline=3");      /* about 3600000 ms left */
    assert_contains(buf, "scope=cancelled"); /* the second dump */
    close_pair(fds);
}

/* ----------------------------------------------------------------- scale */

#define MANY 100000

struct many_ctx {
    long timed_out, other;
};

static int fn_many_one(void *p)
{
    struct many_ctx *c = p;
    struct tr_scope s;
    TCHECK_EQ(tr_scope_enter(&s, tr_now_ns() + 20 * MS, 0), 0);
    int r = tr_sleep_ns(HOUR);
    int x = tr_scope_exit(&s);
    if (r == -ETIMEDOUT && x == -ETIMEDOUT)
        c->timed_out++;
    else
        c->other++;
    return 0;
}

static int fn_many(void *p)
{
    for (int i = 0; i < MANY; i++)
        TCHECK_EQ(tr_spawn(NULL, NULL, fn_many_one, p, NULL), 0);
    return 0;
}

static void test_scope_100k_tasks_all_expire(void **state)
{
    (void)state;
    struct many_ctx c = {0};
    assert_int_equal(tt_run(fn_many, &c), 0);
    assert_int_equal(c.timed_out, MANY);
    assert_int_equal(c.other, 0);
}

#define SD_TASKS 10000

static int fn_sd_one(void *p)
{
    long *n = p;
    struct tr_scope a, b;
    TCHECK_EQ(tr_scope_enter(&a, tr_now_ns() + HOUR, 0), 0);
    TCHECK_EQ(tr_scope_enter(&b, tr_now_ns() + HOUR / 2, 0), 0);
    int r = tr_sleep_ns(HOUR);
    if (r == -ECANCELED)
        (*n)++;
    TCHECK_EQ(tr_scope_exit(&b), 0);
    TCHECK_EQ(tr_scope_exit(&a), 0);
    return r;
}

static void test_scope_shutdown_10k_tasks_in_scopes(void **state)
{
    (void)state;
    struct tr_config cfg;
    tr_config_init(&cfg);
    cfg.flags |= TR_CFG_NO_SIGNALS;
    cfg.report_fd = -1;
    tr_engine *e = eng_new(&cfg);
    long n = 0;
    for (int i = 0; i < SD_TASKS; i++)
        assert_int_equal(tr_spawn(e, NULL, fn_sd_one, &n, NULL), 0);
    assert_int_equal(tr_engine_shutdown(e), 0);
    assert_int_equal(tr_engine_run(e), 0);
    tr_test_assert_clean();
    assert_int_equal(n, SD_TASKS);
    struct tr_stats st = stats_of(e);
    assert_int_equal(st.tasks_cancelled, SD_TASKS);
    assert_int_equal(st.timers_pending, 0);
    assert_int_equal(st.scopes_left, 0);
    tr_test_assert_quiescent(e);
    assert_int_equal(tr_engine_destroy(e), 0);
}

/* A scope left entered by a task that ended names a task record of its
 * engine; once that engine is destroyed the record is freed: a later
 * engine's tr_scope_enter, tr_scope_cancel or tr_scope_set_deadline on the
 * struct must not follow it (ASan: heap-use-after-free before) — it is
 * "not entered" there (0, -EINVAL). While the first engine lives, the
 * second refuses it: -EXDEV for cancel, -EINVAL for enter (review rev2). */
static struct tr_scope g_stale;

static int stale_leaver(void *p)
{
    (void)p;
    TCHECK_EQ(tr_scope_enter(&g_stale, far(), 0), 0);
    return tr_sleep_ns(HOUR); /* cancelled: ends with the scope entered (G10) */
}

static int stale_first(void *p)
{
    (void)p;
    tr_task *t;
    TCHECK_EQ(tr_spawn(NULL, &t, stale_leaver, NULL, NULL), 0);
    TCHECK_EQ(tr_yield(), 0);
    TCHECK_EQ(tr_cancel(t), 0);
    TCHECK_EQ(tr_join(t, NULL), 0);
    TCHECK_EQ(tstats().scopes_left, 1);
    return 0;
}

static int stale_other_live(void *p)
{
    (void)p;
    TCHECK_EQ(tr_scope_cancel(&g_stale), -EXDEV);
    TCHECK_EQ(tr_scope_set_deadline(&g_stale, far()), -EXDEV);
    TCHECK_EQ(tr_scope_enter(&g_stale, 0, 0), -EINVAL);
    return 0;
}

static int stale_after(void *p)
{
    (void)p;
    TCHECK_EQ(tr_scope_cancel(&g_stale), -EINVAL);
    TCHECK_EQ(tr_scope_set_deadline(&g_stale, far()), -EINVAL);
    TCHECK_EQ(tr_scope_enter(&g_stale, far(), 0), 0);
    TCHECK_EQ(tr_scope_cancel(&g_stale), 0);
    TCHECK_EQ(tr_yield(), -ECANCELED);
    TCHECK_EQ(tr_scope_exit(&g_stale), -ECANCELED);
    return 0;
}

/* tr_deadline_after: the pass's precise clock plus ns. After tr_now_ns in
 * the same pass it is exact; it is never ahead of tr_now_ns; a new pass
 * reads the clock afresh (the clock is made to move first, so a stale
 * value would show); it saturates; a scope entered with it expires. */
static uint64_t raw_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static int fn_deadline_after(void *p)
{
    int *caught = p;
    uint64_t n1 = tr_now_ns();
    TCHECK_EQ(tr_deadline_after(5), n1 + 5);
    TCHECK(tr_deadline_after(0) <= tr_now_ns());
    TCHECK_EQ(tr_deadline_after(UINT64_MAX), UINT64_MAX);
    TCHECK_EQ(tr_deadline_after(UINT64_MAX - 1), UINT64_MAX);
    uint64_t a = tr_now_ns();
    /* Bounded: the clock counts nanoseconds. */
    for (int i = 0; i < 100000000 && raw_now() <= a; i++)
        ;
    TCHECK(raw_now() > a);
    TCHECK_EQ(tr_yield(), 0); /* the next pass */
    uint64_t b = tr_deadline_after(0);
    TCHECK(b > a);
    TCHECK(b <= tr_now_ns());
    struct tr_scope s;
    TCHECK_EQ(tr_scope_enter(&s, tr_deadline_after(2 * MS), 0), 0);
    caught[0] = tr_sleep_ns(HOUR);
    caught[1] = tr_scope_exit(&s);
    TCHECK_EQ(tr_scope_enter(&s, tr_deadline_after(UINT64_MAX), 0), 0);
    caught[2] = tr_nop();
    caught[3] = tr_scope_exit(&s);
    return 0;
}

static void test_scope_deadline_after_pass_clock(void **state)
{
    (void)state;
    uint64_t before = raw_now();
    uint64_t d = tr_deadline_after(10); /* outside a task: tr_now_ns() + 10 */
    assert_true(d >= before + 10);
    assert_true(d <= raw_now() + 10);
    int caught[4] = {1, 1, 1, 1};
    assert_int_equal(tt_run(fn_deadline_after, caught), 0);
    assert_int_equal(caught[0], -ETIMEDOUT);
    assert_int_equal(caught[1], -ETIMEDOUT);
    assert_int_equal(caught[2], 0);
    assert_int_equal(caught[3], 0);
}

static void test_scope_left_entered_outlives_its_engine(void **state)
{
    (void)state;
    tr_engine *a = eng_new(NULL);
    assert_int_equal(tr_spawn(a, NULL, stale_first, NULL, NULL), 0);
    assert_int_equal(tr_engine_run(a), 0);
    tr_test_assert_clean();
    assert_int_equal(tt_run(stale_other_live, NULL), 0); /* a still lives */
    assert_int_equal(tr_engine_destroy(a), 0);
    assert_int_equal(tt_run(stale_after, NULL), 0);
}

/* The dump (tr_engine_dump) meets a scope left entered in a returned frame:
 * it lists the task and goes on, quietly (the task's own next walk is the
 * loud one, test_scope_left_in_returned_frame_is_loud). The returner and
 * the dumper run in the same first pass, before any timer is looked at. */
static __attribute__((noinline)) int fn_dead_frame_far(void *p)
{
    (void)p;
    struct tr_scope s;
    TCHECK_EQ(tr_scope_enter(&s, tr_now_ns() + HOUR, 0), 0);
    return 0; /* returns with s entered: its frame is gone */
}

static int fn_dead_frame_sleeper(void *p)
{
    (void)p;
    (void)fn_dead_frame_far(NULL);
    burn_below();
    (void)tr_sleep_ns(HOUR);
    return 0;
}

static int fn_dead_dumper(void *p)
{
    int fd = *(int *)p;
    int n = tr_engine_dump(tr_self_engine(), fd);
    _exit(n == 2 ? 0 : 80 + (n < 0 ? 9 : n)); /* both tasks listed, nobody aborted */
}

static int dump_dead_child(void *p)
{
    (void)p;
    tr_engine *e = tr_child_engine(false);
    if (!e)
        return 90;
    static int fd = 2; /* captured stderr */
    struct tr_spawn_opts o = {.name = "returner"};
    if (tr_spawn(e, NULL, fn_dead_frame_sleeper, NULL, &o) != 0 ||
        tr_spawn(e, NULL, fn_dead_dumper, &fd, NULL) != 0)
        return 91;
    (void)tr_engine_run(e);
    return 92; /* not reached: the dumper exits */
}

static void test_scope_dump_passes_dead_scope_quietly(void **state)
{
    (void)state;
    static const struct tr_child_opts o = {
        .capture_stderr = true, .clean_slate = true, .timeout_s = 60};
    static struct tr_child_out out;
    tr_child_run(dump_dead_child, NULL, &o, &out);
    tr_child_assert_exit0(&out, "dump with a dead scope"); /* both listed, none aborted */
    assert_contains(out.err, "'returner'");
}

/* ------------------------------ idle deadline timers and the deadlock check */

/*
 * A scope's deadline timer stays armed after its scopes are gone (lazily);
 * it wakes nobody, so the deadlock check disarms such timers instead of
 * waiting for them — but a timer whose task still has a scope may wake it
 * and must be waited for. Phase 1: 64 tasks leave scopes with deadlines an
 * hour ahead and wait on an event nobody sets: -EDEADLK at once, and the
 * stale timers are gone. Phase 2: 64 tasks leave scopes whose (earlier)
 * deadlines the wheel meets first, and one task waits in a scope of its
 * own: the check passes over the 64 and stops at it, the run waits for its
 * deadline (-ETIMEDOUT, nothing reported as a deadlock before), then
 * returns -EDEADLK for the 64. Phase 3: 64 tasks leave scopes with
 * deadlines an hour ahead, enter scopes without one, with UINT64_MAX
 * (never due) and a triggered one, and wait: their timers can wake nobody
 * either: -EDEADLK at once.
 */
struct idle_dl {
    struct tr_event never;
    uint64_t idle_deadline; /* the idle tasks' scopes' deadline */
    int entered, live_res, live_exit, live_done;
};
static struct idle_dl g_idle;

static int fn_idle_dl(void *p)
{
    (void)p;
    struct tr_scope s;
    if (tr_scope_enter(&s, g_idle.idle_deadline, 0) != 0 || tr_scope_exit(&s) != 0)
        return -100;
    g_idle.entered++;
    return tr_event_wait(&g_idle.never); /* nobody sets it */
}

static int fn_live_dl(void *p)
{
    (void)p;
    struct tr_scope s;
    if (tr_scope_enter(&s, tr_now_ns() + 20 * MS, 0) != 0)
        return -100;
    g_idle.live_res = tr_event_wait(&g_idle.never);
    g_idle.live_exit = tr_scope_exit(&s);
    g_idle.live_done = 1;
    return 0;
}

static int fn_idle_dl_scoped(void *p)
{
    (void)p;
    struct tr_scope s, bare, never, cut;
    if (tr_scope_enter(&s, g_idle.idle_deadline, 0) != 0 || tr_scope_exit(&s) != 0)
        return -100;
    /* No deadline; a saturated one (never due); a triggered one. */
    if (tr_scope_enter(&bare, 0, 0) != 0 ||
        tr_scope_enter(&never, tr_deadline_after(UINT64_MAX), 0) != 0 ||
        tr_scope_enter(&cut, tr_now_ns() + HOUR, 0) != 0 || tr_scope_cancel(&cut) != 0)
        return -101;
    g_idle.entered++;
    int r = tr_event_wait(&g_idle.never); /* -ECANCELED at once: cut is triggered */
    if (r != -ECANCELED || tr_scope_exit(&cut) != -ECANCELED)
        return -102;
    return tr_event_wait(&g_idle.never); /* inside bare only: nobody sets it */
}

static int idle_dl_phase(bool live, bool scoped, struct tr_stats *st)
{
    tr_engine *e = tr_child_engine(true);
    if (!e)
        return 90;
    memset(&g_idle, 0, sizeof(g_idle));
    g_idle.idle_deadline = live ? tr_now_ns() + 5 * MS : tr_now_ns() + HOUR;
    /* Spawned first: their timers are armed before the live one's. */
    for (int i = 0; i < 64; i++)
        if (tr_spawn(e, NULL, scoped ? fn_idle_dl_scoped : fn_idle_dl, NULL, NULL) != 0)
            return 91;
    if (live && tr_spawn(e, NULL, fn_live_dl, NULL, NULL) != 0)
        return 92;
    if (tr_event_init(&g_idle.never) != 0)
        return 93;
    int rc = tr_engine_run(e);
    tr_engine_stats(e, st);
    if (rc != -EDEADLK)
        return 94;
    if (g_idle.entered != 64)
        return 95;
    return 0;
}

static int idle_dl_child(void *p)
{
    (void)p;
    struct tr_stats st;
    int rc = idle_dl_phase(false, false, &st);
    if (rc)
        return rc;
    if (st.timers_pending != 0 || st.tasks_live != 64)
        return 96; /* the stale timers pruned; the 64 still wait */
    rc = idle_dl_phase(true, false, &st);
    if (rc)
        return rc + 10;
    if (!g_idle.live_done || g_idle.live_res != -ETIMEDOUT || g_idle.live_exit != -ETIMEDOUT)
        return 97; /* the live deadline was waited for, and fired */
    if (st.timers_pending != 0 || st.tasks_live != 64)
        return 98;
    rc = idle_dl_phase(false, true, &st);
    if (rc)
        return rc + 20;
    if (st.timers_pending != 0 || st.tasks_live != 64)
        return 99; /* in scopes, but none that may expire: pruned too */
    return 0;
}

static void test_scope_idle_deadline_timers_and_deadlock(void **state)
{
    (void)state;
    static const struct tr_child_opts o = {.capture_stderr = true, .timeout_s = 60};
    static struct tr_child_out out;
    tr_child_run(idle_dl_child, NULL, &o, &out);
    tr_child_assert_exit0(&out, "idle deadline timers");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_scope_deadline_cuts_read),
        T(test_scope_passed_deadline_submits_nothing),
        T(test_scope_exit_zero_when_nothing_cut),
        T(test_scope_nesting_reports_own_scope),
        T(test_scope_shield_blocks_outside_keeps_own_deadline),
        T(test_scope_shield_end_out_of_order),
        T(test_scope_left_entered_outlives_its_engine),
        T(test_scope_deadline_after_pass_clock),
        T(test_scope_task_cancel_beats_deadline),
        T(test_scope_cancel_from_another_task),
        T(test_scope_set_deadline_later_earlier_away),
        T(test_scope_every_blocking_call),
        T(test_scope_close_never_cut),
        T(test_scope_wait_shutdown_after_begin_is_real),
        T(test_scope_deadline_races_real_completions),
        T(test_scope_misuse_einval),
        T(test_scope_left_entered_unlinked_g10),
        T(test_scope_left_in_returned_frame_is_loud),
        T(test_scope_dump_shows_deadline_and_trigger),
        T(test_scope_100k_tasks_all_expire),
        T(test_scope_shutdown_10k_tasks_in_scopes),
        T(test_scope_idle_deadline_timers_and_deadlock),
        T(test_scope_dump_passes_dead_scope_quietly),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
