/* SPDX-License-Identifier: MIT */
/*
 * Description: tr_yield: round-robin order, alone and outside a task,
 * and a loop of yielding tasks never starves a completion the kernel holds
 * (another thread's write ends a parked read while two tasks yield to each
 * other).
 * Checks inside tasks record failures with TCHECK* (see tr_test_task.h).
 */
#define _GNU_SOURCE /* pipe2, in tr_test.h */
#include "tr_test_task.h"

/* --------------------------------------------------------------- yield */

#define RR_TASKS 3
#define RR_PASSES 6
struct rr_log {
    int n;
    int log[RR_TASKS * RR_PASSES + 8];
};

struct rr_arg {
    struct rr_log *log;
    int who;
};

static int fn_rr(void *p)
{
    struct rr_arg *a = p;
    for (int i = 0; i < RR_PASSES; i++) {
        if (a->log->n < (int)(sizeof a->log->log / sizeof a->log->log[0]))
            a->log->log[a->log->n++] = a->who;
        TCHECK_EQ(tr_yield(), 0);
    }
    return 0;
}

static void test_task_yield_round_robin(void **state)
{
    (void)state;
    tr_engine *e = NULL;
    struct rr_log log = {0, {0}};
    struct rr_arg a[RR_TASKS];
    assert_int_equal(tr_engine_create(&e, NULL), 0);
    for (int i = 0; i < RR_TASKS; i++) {
        a[i].log = &log;
        a[i].who = i;
        assert_int_equal(tr_spawn(e, NULL, fn_rr, &a[i], NULL), 0);
    }
    assert_int_equal(tr_engine_run(e), 0);
    assert_int_equal(log.n, RR_TASKS * RR_PASSES);
    /* Each pass runs every task exactly once, in the same order each pass. */
    for (int pass = 0; pass < RR_PASSES; pass++) {
        int seen[RR_TASKS] = {0};
        for (int i = 0; i < RR_TASKS; i++) {
            int who = log.log[pass * RR_TASKS + i];
            assert_in_range(who, 0, RR_TASKS - 1);
            seen[who]++;
            assert_int_equal(who, log.log[i]);
        }
        for (int i = 0; i < RR_TASKS; i++)
            assert_int_equal(seen[i], 1);
    }
    tr_test_assert_quiescent(e);
    assert_int_equal(tr_engine_destroy(e), 0);
    tr_test_assert_clean();
}

static int fn_yield_alone(void *p)
{
    (void)p;
    for (int i = 0; i < 10; i++)
        TCHECK_EQ(tr_yield(), 0);
    return 3;
}

static void test_task_yield_alone_and_outside(void **state)
{
    (void)state;
    assert_int_equal(tr_yield(), -EPERM);
    assert_false(tr_is_cancelled());
    assert_int_equal(tt_run(fn_yield_alone, NULL), 3);
}

/* ------------------------------------------------ yields and the kernel */

/* Tasks that only yield begin passes themselves while the scheduler has
 * nothing to do (task.c: begin_pass_inline). A completion the kernel holds
 * as task work must still stop that: here a read parked on a pipe is
 * completed by another thread's write while two tasks yield to each other,
 * and the yielders stop only when the reader has its byte. Were the read's
 * completion starved, both would run into their bound. */
#define YS_BOUND 50000000L

static struct {
    int p[2];
    atomic_int reading;
    atomic_int got;
    long spins[2];
    ssize_t read_res;
} ys;

static void *ys_writer(void *arg)
{
    (void)arg;
    while (!atomic_load(&ys.reading))
        ; /* the reader is about to park; a write before that is fine too */
    char b = 'y';
    if (write(ys.p[1], &b, 1) != 1)
        abort();
    return NULL;
}

static int ys_reader(void *arg)
{
    (void)arg;
    char b = 0;
    atomic_store(&ys.reading, 1);
    ys.read_res = tr_read(ys.p[0], &b, 1, -1);
    atomic_store(&ys.got, b == 'y');
    return 0;
}

static int ys_yielder(void *arg)
{
    long *spins = arg;
    while (!atomic_load(&ys.got) && *spins < YS_BOUND) {
        TCHECK_EQ(tr_yield(), 0);
        (*spins)++;
    }
    return 0;
}

static int ys_main(void *arg)
{
    (void)arg;
    tr_task *t[3];
    TCHECK_EQ(tr_spawn(NULL, &t[0], ys_reader, NULL, NULL), 0);
    TCHECK_EQ(tr_spawn(NULL, &t[1], ys_yielder, &ys.spins[0], NULL), 0);
    TCHECK_EQ(tr_spawn(NULL, &t[2], ys_yielder, &ys.spins[1], NULL), 0);
    for (int i = 0; i < 3; i++)
        TCHECK_EQ(tr_join(t[i], NULL), 0);
    return 0;
}

static void test_task_yield_loop_does_not_starve_completions(void **state)
{
    (void)state;
    memset(&ys, 0, sizeof(ys));
    make_pipe(ys.p);
    pthread_t w;
    assert_int_equal(pthread_create(&w, NULL, ys_writer, NULL), 0);
    assert_int_equal(tr_test_run(ys_main, NULL), 0);
    assert_int_equal(pthread_join(w, NULL), 0);
    tr_test_assert_clean();
    assert_int_equal(ys.read_res, 1);
    assert_int_equal(atomic_load(&ys.got), 1);
    assert_true(ys.spins[0] < YS_BOUND);
    assert_true(ys.spins[1] < YS_BOUND);
    close_pair(ys.p);
}

/* ----------------------------------------------------------------- main */

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_task_yield_round_robin),
        T(test_task_yield_alone_and_outside),
        T(test_task_yield_loop_does_not_starve_completions),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
