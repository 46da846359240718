/* SPDX-License-Identifier: MIT */
/*
 * Description: operations without a file descriptor: nop, sleep
 * (returns 0, deadline order, many sleepers), tr_op with a custom prep.
 * Every test: a fresh engine, the audit, the same fds after (tr_test_ops.h).
 */
#define _GNU_SOURCE /* pipe2 */
#include "tr_test_ops.h"

/* -------------------------------------------------------------- nop */

static int fn_nops(void *p)
{
    (void)p;
    struct tr_stats before = stats_of(g_e);
    for (int i = 0; i < 100; i++)
        TCHECK_EQ(tr_nop(), 0);
    struct tr_stats after = stats_of(g_e);
    TCHECK(after.ops_submitted >= before.ops_submitted + 100);
    TCHECK(after.ops_completed >= before.ops_completed + 100);
    return 0;
}

static void test_ops_nop(void **state)
{
    (void)state;
    assert_int_equal(tt_run(fn_nops, NULL), 0);
}

/* ---------------------------------------------------------------- sleep */

static int fn_sleep_1ms(void *p)
{
    (void)p;
    uint64_t t0 = now_ns();
    TCHECK_EQ(tr_sleep_ns(1000000), 0);
    /* Sleep never returns early (a lower bound cannot flake). */
    TCHECK(now_ns() - t0 >= 1000000);
    TCHECK_EQ(tr_sleep_ns(0), 0);
    TCHECK_EQ(tr_sleep_ns(1), 0);
    return 0;
}

static void test_ops_sleep_returns_zero(void **state)
{
    (void)state;
    assert_int_equal(tt_run(fn_sleep_1ms, NULL), 0);
}

struct sleep_order {
    int log[4];
    int n;
    uint64_t pending_while_asleep;
};

struct sleeper {
    struct sleep_order *so;
    uint64_t ns;
    int who;
};

static int fn_sleeper(void *p)
{
    struct sleeper *s = p;
    int r = tr_sleep_ns(s->ns);
    if (s->so->n < 4)
        s->so->log[s->so->n++] = s->who;
    return r;
}

static int fn_sleep_order(void *p)
{
    struct sleep_order *so = p;
    struct sleeper slow = {so, 2000000, 2}, fast = {so, 1000000, 1};
    tr_task *a = NULL, *b = NULL;
    int ra = -1, rb = -1;
    /* The longer sleep starts first; the shorter deadline must still win. */
    TCHECK_EQ(tr_spawn(NULL, &a, fn_sleeper, &slow, NULL), 0);
    TCHECK_EQ(tr_spawn(NULL, &b, fn_sleeper, &fast, NULL), 0);
    TCHECK_EQ(tr_yield(), 0); /* both run once and park in their sleep */
    so->pending_while_asleep = stats_of(g_e).timers_pending;
    TCHECK_EQ(tr_join(a, &ra), 0);
    TCHECK_EQ(tr_join(b, &rb), 0);
    TCHECK_EQ(ra, 0);
    TCHECK_EQ(rb, 0);
    return 0;
}

static void test_ops_sleep_deadline_order(void **state)
{
    (void)state;
    struct sleep_order so;
    memset(&so, 0, sizeof so);
    assert_int_equal(tt_run(fn_sleep_order, &so), 0);
    assert_int_equal(so.pending_while_asleep, 2);
    assert_int_equal(so.n, 2);
    assert_int_equal(so.log[0], 1);
    assert_int_equal(so.log[1], 2);
}

/* Ten sleepers started in one pass with shuffled deadlines 1..10 ms wake
 * in deadline order. */
#define NSLEEPERS 10
struct sleep_many {
    int log[NSLEEPERS];
    int n;
};

struct many_sleeper {
    struct sleep_many *sm;
    int ms;
};

static int fn_many_sleeper(void *p)
{
    struct many_sleeper *s = p;
    int r = tr_sleep_ns((uint64_t)s->ms * 1000000u);
    if (s->sm->n < NSLEEPERS)
        s->sm->log[s->sm->n++] = s->ms;
    return r;
}

static int fn_sleep_many(void *p)
{
    struct sleep_many *sm = p;
    static const int ms[NSLEEPERS] = {5, 1, 8, 3, 10, 2, 7, 4, 9, 6};
    struct many_sleeper s[NSLEEPERS];
    tr_task *t[NSLEEPERS];
    for (int i = 0; i < NSLEEPERS; i++) {
        s[i].sm = sm;
        s[i].ms = ms[i];
        TCHECK_EQ(tr_spawn(NULL, &t[i], fn_many_sleeper, &s[i], NULL), 0);
    }
    for (int i = 0; i < NSLEEPERS; i++) {
        int r = -1;
        TCHECK_EQ(tr_join(t[i], &r), 0);
        TCHECK_EQ(r, 0);
    }
    return 0;
}

static void test_ops_sleep_many_wake_in_deadline_order(void **state)
{
    (void)state;
    struct sleep_many sm;
    memset(&sm, 0, sizeof sm);
    assert_int_equal(tt_run(fn_sleep_many, &sm), 0);
    assert_int_equal(sm.n, NSLEEPERS);
    for (int i = 0; i < NSLEEPERS; i++)
        assert_int_equal(sm.log[i], i + 1);
}

/* ------------------------------------------------------------- tr_op */

static void prep_nop(struct io_uring_sqe *sqe, void *ctx)
{
    int *calls = ctx;
    (*calls)++;
    io_uring_prep_nop(sqe);
}

struct rw_ctx {
    int fd;
    void *buf;
    unsigned n;
    uint64_t off;
};

static void prep_write(struct io_uring_sqe *sqe, void *ctx)
{
    struct rw_ctx *c = ctx;
    io_uring_prep_write(sqe, c->fd, c->buf, c->n, c->off);
}

static void prep_read(struct io_uring_sqe *sqe, void *ctx)
{
    struct rw_ctx *c = ctx;
    io_uring_prep_read(sqe, c->fd, c->buf, c->n, c->off);
}

static int fn_custom_op(void *p)
{
    (void)p;
    int calls = 0;
    TCHECK_EQ(tr_op(prep_nop, &calls), 0);
    TCHECK_EQ(calls, 1);
    TCHECK_EQ(tr_op(prep_nop, &calls), 0);
    TCHECK_EQ(calls, 2);
    TCHECK_EQ(tr_op(NULL, NULL), -EINVAL);

    int fd = tmp_file();
    if (!TCHECK(fd >= 0))
        return -EIO;
    char msg[] = "custom write";
    struct rw_ctx w = {fd, msg, 12, 7};
    TCHECK_EQ(tr_op(prep_write, &w), 12);
    char buf[32] = {0};
    TCHECK_EQ(pread(fd, buf, 12, 7), 12);
    TCHECK(memcmp(buf, "custom write", 12) == 0);
    memset(buf, 0, sizeof buf);
    struct rw_ctx r = {fd, buf, sizeof buf, 7};
    TCHECK_EQ(tr_op(prep_read, &r), 12);
    TCHECK(memcmp(buf, "custom write", 12) == 0);
    TCHECK_EQ(tr_close(fd), 0);

    /* The kernel's error comes back as is. */
    struct rw_ctx bad = {-1, buf, 1, 0};
    TCHECK_EQ(tr_op(prep_read, &bad), -EBADF);
    return 0;
}

static void test_ops_custom_op(void **state)
{
    (void)state;
    assert_int_equal(tt_run(fn_custom_op, NULL), 0);
}

/* ----------------------------------------------------------------- main */

int main(void)
{
    /* Writing to a pipe or socket without a reader must show as -EPIPE, not
     * kill the suite. */
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        T(test_ops_nop),
        T(test_ops_sleep_returns_zero),
        T(test_ops_sleep_deadline_order),
        T(test_ops_sleep_many_wake_in_deadline_order),
        T(test_ops_custom_op),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
