/* SPDX-License-Identifier: MIT */
/*
 * Description: tr_cancel_all (DESIGN section 3): it cancels every
 * other live task (parked on an op, sleeping, not yet started), returns
 * their count and spares the caller and the excepted tasks; with
 * TR_CANCEL_WAIT it returns only after every target has ended, including
 * targets that ignore the cancel for a while or clean up in a shield.
 * White-box parking: tr_test_cancel.h.
 */
#define _GNU_SOURCE /* pipe2, accept4, strsignal */
#include "tr_test_cancel.h"

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
        c->spared_flag[i] = !tr__task_cancelled(c->t[i]);
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

/* ----------------------------------------------------------------- main */

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_cancel_all_spares_caller_and_excepted),
        T(test_cancel_all_wait_returns_after_targets_end),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
