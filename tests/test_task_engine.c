/* SPDX-License-Identifier: MIT */
/*
 * Description: the engine around tasks: the task counters of tr_stats
 * (and its bad arguments), an empty run, a run twice, a run from a task
 * (-EPERM), destroy while busy, a join cycle that ends in -EDEADLK.
 * Checks inside tasks record failures with TCHECK* (see tr_test_task.h).
 */
#define _GNU_SOURCE /* pipe2, in tr_test.h */
#include "tr_test_task.h"

/* ---------------------------------------------------------------- stats */

struct stats_run {
    struct tr_stats mid, after_joins;
    int results[7];
};

static int fn_self_cancel_result(void *p)
{
    (void)p;
    return -ECANCELED;
}

static int fn_stats_main(void *p)
{
    struct stats_run *sr = p;
    tr_task *t[7];
    TCHECK_EQ(tr_spawn(NULL, &t[0], fn_return_arg, (void *)(intptr_t)0, NULL), 0);
    TCHECK_EQ(tr_spawn(NULL, &t[1], fn_return_arg, (void *)(intptr_t)1, NULL), 0);
    TCHECK_EQ(tr_spawn(NULL, &t[2], fn_return_arg, (void *)(intptr_t)7, NULL), 0);
    TCHECK_EQ(tr_spawn(NULL, &t[3], fn_return_arg, (void *)(intptr_t)-EIO, NULL), 0);
    TCHECK_EQ(tr_spawn(NULL, &t[4], fn_return_arg, (void *)(intptr_t)-ENOENT, NULL), 0);
    TCHECK_EQ(tr_spawn(NULL, &t[5], fn_self_cancel_result, NULL, NULL), 0);
    TCHECK_EQ(tr_spawn(NULL, &t[6], fn_sleep_long, NULL, NULL), 0);
    sr->mid = stats_of(g_e);
    TCHECK_EQ(tr_cancel(t[6]), 0);
    for (int i = 0; i < 7; i++) {
        sr->results[i] = 555;
        TCHECK_EQ(tr_join(t[i], &sr->results[i]), 0);
    }
    sr->after_joins = stats_of(g_e);
    return 0;
}

static void test_task_stats_counters(void **state)
{
    (void)state;
    struct stats_run sr;
    memset(&sr, 0, sizeof sr);
    struct tr_test_call c = {fn_stats_main, &sr, -1, 0};
    assert_int_equal(tr_engine_create(&g_e, NULL), 0);
    struct tr_stats st;
    assert_int_equal(tr_engine_stats(g_e, &st), 0);
    assert_int_equal(st.tasks_spawned, 0);
    assert_int_equal(st.tasks_live, 0);
    assert_int_equal(tr_spawn(g_e, NULL, tr_test_tramp, &c, NULL), 0);
    assert_int_equal(tr_engine_run(g_e), 0);

    assert_int_equal(sr.mid.tasks_spawned, 8);
    assert_int_equal(sr.mid.tasks_live, 8);
    assert_int_equal(sr.mid.tasks_ok + sr.mid.tasks_failed + sr.mid.tasks_cancelled, 0);

    static const int want[7] = {0, 1, 7, -EIO, -ENOENT, -ECANCELED, -ECANCELED};
    for (int i = 0; i < 7; i++)
        assert_int_equal(sr.results[i], want[i]);
    assert_int_equal(sr.after_joins.tasks_spawned, 8);
    assert_int_equal(sr.after_joins.tasks_live, 1);
    assert_int_equal(sr.after_joins.tasks_ok, 3);
    assert_int_equal(sr.after_joins.tasks_failed, 2);
    assert_int_equal(sr.after_joins.tasks_cancelled, 2);
    assert_int_equal(sr.after_joins.timers_pending, 0);

    assert_int_equal(tr_engine_stats(g_e, &st), 0);
    assert_int_equal(st.tasks_spawned, 8);
    assert_int_equal(st.tasks_live, 0);
    assert_int_equal(st.tasks_ok, 4);
    assert_int_equal(st.tasks_failed, 2);
    assert_int_equal(st.tasks_cancelled, 2);
    tr_test_assert_quiescent(g_e);
    assert_int_equal(tr_engine_destroy(g_e), 0);
    g_e = NULL;
    tr_test_assert_clean();
}

static void test_task_stats_bad_args(void **state)
{
    (void)state;
    tr_engine *e = NULL;
    struct tr_stats st;
    assert_int_equal(tr_engine_stats(NULL, &st), -EINVAL);
    assert_int_equal(tr_engine_create(&e, NULL), 0);
    assert_int_equal(tr_engine_stats(e, NULL), -EINVAL);
    assert_int_equal(tr_engine_stats(e, &st), 0);
    assert_int_equal(st.tasks_spawned, 0);
    tr_test_assert_quiescent(e);
    assert_int_equal(tr_engine_destroy(e), 0);
}

/* --------------------------------------------------- engine lifecycle */

static void test_task_engine_run_without_tasks(void **state)
{
    (void)state;
    tr_engine *e = NULL;
    assert_int_equal(tr_engine_create(NULL, NULL), -EINVAL);
    assert_int_equal(tr_engine_destroy(NULL), -EINVAL);
    assert_int_equal(tr_engine_create(&e, NULL), 0);
    assert_non_null(e);
    assert_int_equal(tr_engine_run(e), 0);
    assert_int_equal(tr_engine_run(e), 0);
    tr_test_assert_quiescent(e);
    struct tr_stats st;
    assert_int_equal(tr_engine_stats(e, &st), 0);
    assert_int_equal(st.tasks_spawned, 0);
    assert_int_equal(tr_engine_destroy(e), 0);
}

static int fn_nop_then_flag(void *p)
{
    TCHECK_EQ(tr_nop(), 0);
    *(int *)p += 1;
    return 0;
}

static void test_task_engine_run_twice(void **state)
{
    (void)state;
    tr_engine *e = NULL;
    int a = 0, b = 0;
    struct tr_stats st;
    assert_int_equal(tr_engine_create(&e, NULL), 0);
    assert_int_equal(tr_spawn(e, NULL, fn_nop_then_flag, &a, NULL), 0);
    assert_int_equal(tr_engine_run(e), 0);
    assert_int_equal(a, 1);
    tr_test_assert_quiescent(e);
    assert_int_equal(tr_spawn(e, NULL, fn_nop_then_flag, &b, NULL), 0);
    assert_int_equal(tr_engine_stats(e, &st), 0);
    assert_int_equal(st.tasks_live, 1);
    assert_int_equal(tr_engine_run(e), 0);
    assert_int_equal(a, 1);
    assert_int_equal(b, 1);
    assert_int_equal(tr_engine_stats(e, &st), 0);
    assert_int_equal(st.tasks_spawned, 2);
    assert_int_equal(st.tasks_ok, 2);
    tr_test_assert_quiescent(e);
    assert_int_equal(tr_engine_destroy(e), 0);
    tr_test_assert_clean();
}

struct inside {
    tr_engine *other;
    int run_rc, run_other_rc, destroy_rc;
};

static int fn_run_inside(void *p)
{
    struct inside *in = p;
    in->run_rc = tr_engine_run(g_e);
    in->run_other_rc = tr_engine_run(in->other);
    in->destroy_rc = tr_engine_destroy(g_e);
    return 0;
}

static void test_task_engine_run_from_task_eperm(void **state)
{
    (void)state;
    struct inside in = {NULL, 0, 0, 0};
    assert_int_equal(tr_engine_create(&in.other, NULL), 0);
    assert_int_equal(tt_run(fn_run_inside, &in), 0);
    assert_int_equal(in.run_rc, -EPERM);
    assert_int_equal(in.run_other_rc, -EPERM);
    assert_int_equal(in.destroy_rc, -EBUSY);
    tr_test_assert_quiescent(in.other);
    assert_int_equal(tr_engine_destroy(in.other), 0);
}

static void test_task_engine_destroy_busy(void **state)
{
    (void)state;
    tr_engine *e = NULL;
    int ran = 0;
    struct tr_stats before, after;
    assert_int_equal(tr_engine_create(&e, NULL), 0);
    assert_int_equal(tr_spawn(e, NULL, fn_nop_then_flag, &ran, NULL), 0);
    assert_int_equal(tr_engine_stats(e, &before), 0);
    assert_int_equal(tr_engine_destroy(e), -EBUSY);
    /* Nothing changed: the counters are the same and the task still runs. */
    assert_int_equal(tr_engine_stats(e, &after), 0);
    assert_memory_equal(&before, &after, sizeof before);
    assert_int_equal(ran, 0);
    assert_int_equal(tr_engine_run(e), 0);
    assert_int_equal(ran, 1);
    tr_test_assert_quiescent(e);
    assert_int_equal(tr_engine_destroy(e), 0);
    tr_test_assert_clean();
}

struct cycle {
    tr_task *a, *b;
    int rc_a, rc_b;
};

static int fn_cycle(void *p)
{
    struct cycle *c = p;
    if (tr_self() == c->a)
        return c->rc_a = tr_join(c->b, NULL);
    return c->rc_b = tr_join(c->a, NULL);
}

static void test_task_join_cycle_edeadlk(void **state)
{
    (void)state;
    tr_engine *e = NULL;
    struct cycle c = {NULL, NULL, 1, 1};
    struct tr_stats st;
    assert_int_equal(tr_engine_create(&e, NULL), 0);
    assert_int_equal(tr_spawn(e, &c.a, fn_cycle, &c, NULL), 0);
    assert_int_equal(tr_spawn(e, &c.b, fn_cycle, &c, NULL), 0);
    assert_int_equal(tr_engine_run(e), -EDEADLK);
    assert_int_equal(c.rc_a, 1); /* both still parked in tr_join */
    assert_int_equal(c.rc_b, 1);
    assert_int_equal(tr_engine_stats(e, &st), 0);
    assert_int_equal(st.tasks_live, 2);
    assert_int_equal(st.ops_inflight, 0);
    assert_int_equal(tr_engine_destroy(e), -EBUSY);

    assert_int_equal(tr_cancel(c.a), 0);
    assert_int_equal(tr_cancel(c.b), 0);
    assert_int_equal(tr_engine_run(e), 0);
    assert_int_equal(c.rc_a, -ECANCELED);
    assert_int_equal(c.rc_b, -ECANCELED);
    assert_int_equal(tr_engine_stats(e, &st), 0);
    assert_int_equal(st.tasks_cancelled, 2);
    /* Both have ended now. */
    assert_int_equal(tr_cancel(c.a), -ESRCH);
    tr_test_assert_quiescent(e);
    assert_int_equal(tr_engine_destroy(e), 0);
}

/* ----------------------------------------------------------------- main */

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_task_stats_counters),
        T(test_task_stats_bad_args),
        T(test_task_engine_run_without_tasks),
        T(test_task_engine_run_twice),
        T(test_task_engine_run_from_task_eperm),
        T(test_task_engine_destroy_busy),
        T(test_task_join_cycle_edeadlk),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
