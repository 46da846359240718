/* SPDX-License-Identifier: MIT */
/*
 * Description: what a cancellation does not interrupt (DESIGN G4,
 * section 3): inside a shield a cancelled task's read waits for the real
 * data and the cancel shows after tr_shield_end; a task parked in a shield
 * is not interrupted; shields nest; an unbalanced tr_shield_end is -EINVAL;
 * tr_close in a cancelled task really closes.
 * White-box parking: tr_test_cancel.h.
 */
#define _GNU_SOURCE /* pipe2, accept4, strsignal */
#include "tr_test_cancel.h"

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

/* ----------------------------------------------------------------- main */

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_cancel_shield_read_waits_for_real_data),
        T(test_cancel_shield_cancel_does_not_interrupt_op),
        T(test_cancel_shield_nested),
        T(test_cancel_shield_end_unbalanced_einval),
        T(test_cancel_close_in_cancelled_task_closes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
