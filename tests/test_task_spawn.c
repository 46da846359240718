/* SPDX-License-Identifier: MIT */
/*
 * Description: spawning, joining and detaching tasks: spawns before
 * tr_engine_run, from inside tasks, nested, with e == NULL, bad arguments;
 * joins (results >= 0, < 0, -ECANCELED, already-finished tasks, bad
 * arguments, -EPERM outside a task, -EINVAL for a second joiner); detaching
 * before and after the end, outside the run, a NULL out handle.
 * Checks inside tasks record failures with TCHECK* (see tr_test_task.h).
 */
#define _GNU_SOURCE /* pipe2, in tr_test.h */
#include "tr_test_task.h"

/* ------------------------------------------------------------ spawning */

static void test_task_spawn_before_run(void **state)
{
    (void)state;
    tr_engine *e = NULL;
    int flags[5] = {0};
    assert_int_equal(tr_engine_create(&e, NULL), 0);
    for (int i = 0; i < 5; i++)
        assert_int_equal(tr_spawn(e, NULL, fn_set_flag, &flags[i], NULL), 0);
    /* Nothing runs before tr_engine_run. */
    for (int i = 0; i < 5; i++)
        assert_int_equal(flags[i], 0);
    struct tr_stats st;
    assert_int_equal(tr_engine_stats(e, &st), 0);
    assert_int_equal(st.tasks_spawned, 5);
    assert_int_equal(st.tasks_live, 5);
    assert_int_equal(tr_engine_run(e), 0);
    for (int i = 0; i < 5; i++)
        assert_int_equal(flags[i], 1);
    assert_int_equal(tr_engine_stats(e, &st), 0);
    assert_int_equal(st.tasks_ok, 5);
    tr_test_assert_quiescent(e);
    assert_int_equal(tr_engine_destroy(e), 0);
    tr_test_assert_clean();
}

/* Each level spawns the next with e == NULL and joins it; the leaf returns
 * 0 and every level adds one, so the root sees the depth. */
#define NEST_DEPTH 8
static int fn_nested(void *p)
{
    int level = (int)(intptr_t)p;
    if (level == NEST_DEPTH)
        return 0;
    tr_task *child = NULL;
    if (!TCHECK_EQ(tr_spawn(NULL, &child, fn_nested, (void *)(intptr_t)(level + 1), NULL), 0))
        return -EIO;
    int res = -1;
    TCHECK_EQ(tr_join(child, &res), 0);
    return res + 1;
}

static void test_task_spawn_nested_from_tasks(void **state)
{
    (void)state;
    assert_int_equal(tt_run(fn_nested, (void *)(intptr_t)0), NEST_DEPTH);
}

struct fanout {
    int count;
};

static int fn_fanout_child(void *p)
{
    struct fanout *f = p;
    TCHECK(tr_self() != NULL);
    f->count++;
    return 0;
}

/* Detached children spawned with e == NULL (the caller's engine) and with
 * the engine given explicitly both run; the engine runs until they end. */
static int fn_fanout(void *p)
{
    struct fanout *f = p;
    for (int i = 0; i < 3; i++)
        TCHECK_EQ(tr_spawn(NULL, NULL, fn_fanout_child, f, NULL), 0);
    TCHECK_EQ(tr_spawn(g_e, NULL, fn_fanout_child, f, NULL), 0);
    /* Spawned tasks run at the next pass, not inside tr_spawn. */
    TCHECK_EQ(f->count, 0);
    return 0;
}

static void test_task_spawn_detached_null_engine_from_task(void **state)
{
    (void)state;
    struct fanout f = {0};
    assert_int_equal(tt_run(fn_fanout, &f), 0);
    assert_int_equal(f.count, 4);
}

static void test_task_spawn_bad_args(void **state)
{
    (void)state;
    tr_engine *e = NULL;
    tr_task *t = NULL;
    /* No engine: outside a task e == NULL names none. */
    assert_int_equal(tr_spawn(NULL, &t, fn_return_arg, NULL, NULL), -EINVAL);
    assert_int_equal(tr_engine_create(&e, NULL), 0);
    assert_int_equal(tr_spawn(e, &t, NULL, NULL, NULL), -EINVAL);
    struct tr_spawn_opts o = {.name = NULL, .stack_size = 16 * 1024 - 1, .flags = 0};
    assert_int_equal(tr_spawn(e, &t, fn_return_arg, NULL, &o), -EINVAL);
    o.stack_size = 0;
    o.flags = 0x80000000u;
    assert_int_equal(tr_spawn(e, &t, fn_return_arg, NULL, &o), -EINVAL);
    /* On error nothing was created. */
    struct tr_stats st;
    assert_int_equal(tr_engine_stats(e, &st), 0);
    assert_int_equal(st.tasks_spawned, 0);
    assert_int_equal(st.tasks_live, 0);
    assert_int_equal(tr_engine_run(e), 0);
    tr_test_assert_quiescent(e);
    assert_int_equal(tr_engine_destroy(e), 0);
}

/* -------------------------------------------------------------- joining */

struct join_results {
    int results[6];
    int join_rc[6];
};

static int fn_join_results(void *p)
{
    struct join_results *jr = p;
    static const int want[6] = {0, 1, 42, INT_MAX, -EIO, -ECANCELED};
    tr_task *t[6];
    for (int i = 0; i < 6; i++)
        TCHECK_EQ(tr_spawn(NULL, &t[i], fn_return_arg, (void *)(intptr_t)want[i], NULL), 0);
    for (int i = 0; i < 6; i++) {
        jr->results[i] = 12345;
        jr->join_rc[i] = tr_join(t[i], &jr->results[i]);
    }
    return 0;
}

static void test_task_join_returns_result(void **state)
{
    (void)state;
    struct join_results jr;
    static const int want[6] = {0, 1, 42, INT_MAX, -EIO, -ECANCELED};
    assert_int_equal(tt_run(fn_join_results, &jr), 0);
    for (int i = 0; i < 6; i++) {
        assert_int_equal(jr.join_rc[i], 0);
        assert_int_equal(jr.results[i], want[i]);
    }
}

/* A task cancelled while it sleeps ends with -ECANCELED; its joiner sees it. */
static int fn_join_cancelled(void *p)
{
    int *out = p;
    tr_task *t = NULL;
    TCHECK_EQ(tr_spawn(NULL, &t, fn_sleep_long, NULL, NULL), 0);
    TCHECK_EQ(tr_yield(), 0); /* let it start sleeping */
    TCHECK_EQ(tr_cancel(t), 0);
    *out = 777;
    TCHECK_EQ(tr_join(t, out), 0);
    /* The result may be passed as NULL. */
    TCHECK_EQ(tr_spawn(NULL, &t, fn_return_arg, (void *)(intptr_t)5, NULL), 0);
    TCHECK_EQ(tr_join(t, NULL), 0);
    return 0;
}

static void test_task_join_cancelled_task_gets_ecanceled(void **state)
{
    (void)state;
    int res = 0;
    assert_int_equal(tt_run(fn_join_cancelled, &res), 0);
    assert_int_equal(res, -ECANCELED);
}

struct finished {
    int ran;
    int join_rc;
    int res;
    uint64_t live_before_join;
};

static int fn_mark_and_return(void *p)
{
    struct finished *f = p;
    f->ran = 1;
    return 99;
}

static int fn_join_finished(void *p)
{
    struct finished *f = p;
    tr_task *t = NULL;
    TCHECK_EQ(tr_spawn(NULL, &t, fn_mark_and_return, f, NULL), 0);
    for (int i = 0; i < 100 && !f->ran; i++) /* bounded: one pass is enough */
        TCHECK_EQ(tr_yield(), 0);
    TCHECK_EQ(f->ran, 1);
    /* The child has ended even though nobody joined it yet. */
    TCHECK_EQ(tr_yield(), 0);
    f->live_before_join = stats_of(g_e).tasks_live;
    f->res = -1;
    f->join_rc = tr_join(t, &f->res);
    return 0;
}

static void test_task_join_already_finished(void **state)
{
    (void)state;
    struct finished f = {0};
    assert_int_equal(tt_run(fn_join_finished, &f), 0);
    assert_int_equal(f.ran, 1);
    assert_int_equal(f.live_before_join, 1);
    assert_int_equal(f.join_rc, 0);
    assert_int_equal(f.res, 99);
}

static int fn_join_bad(void *p)
{
    (void)p;
    TCHECK_EQ(tr_join(NULL, NULL), -EINVAL);
    int r = 0;
    TCHECK_EQ(tr_join(tr_self(), &r), -EINVAL);
    return 0;
}

static void test_task_join_bad_args(void **state)
{
    (void)state;
    assert_int_equal(tt_run(fn_join_bad, NULL), 0);
}

/* Outside a task tr_join refuses (-EPERM) and the handle stays valid: a
 * task joins it afterwards. */
struct join_outside {
    tr_task *target;
    int res;
    int rc;
};

static int fn_joiner(void *p)
{
    struct join_outside *jo = p;
    jo->res = -1;
    jo->rc = tr_join(jo->target, &jo->res);
    return 0;
}

static void test_task_join_outside_task_eperm(void **state)
{
    (void)state;
    tr_engine *e = NULL;
    struct join_outside jo = {NULL, 0, -1};
    int r = 1234;
    assert_int_equal(tr_engine_create(&e, NULL), 0);
    assert_int_equal(tr_spawn(e, &jo.target, fn_return_arg, (void *)(intptr_t)17, NULL), 0);
    assert_int_equal(tr_join(jo.target, &r), -EPERM);
    assert_int_equal(r, 1234);
    assert_int_equal(tr_spawn(e, NULL, fn_joiner, &jo, NULL), 0);
    assert_int_equal(tr_engine_run(e), 0);
    assert_int_equal(jo.rc, 0);
    assert_int_equal(jo.res, 17);
    tr_test_assert_quiescent(e);
    assert_int_equal(tr_engine_destroy(e), 0);
    tr_test_assert_clean();
}

/* Two tasks join the same task: one of them gets it, the other -EINVAL. */
struct double_join {
    tr_task *target;
    int rc[2];
    int res[2];
};

struct double_joiner {
    struct double_join *dj;
    int i;
};

static int fn_double_joiner(void *p)
{
    struct double_joiner *j = p;
    j->dj->res[j->i] = -1;
    j->dj->rc[j->i] = tr_join(j->dj->target, &j->dj->res[j->i]);
    return 0;
}

static void test_task_join_by_two_tasks_einval(void **state)
{
    (void)state;
    tr_engine *e = NULL;
    struct double_join dj = {NULL, {1, 1}, {0, 0}};
    struct double_joiner j0 = {&dj, 0}, j1 = {&dj, 1};
    assert_int_equal(tr_engine_create(&e, NULL), 0);
    assert_int_equal(tr_spawn(e, &dj.target, fn_yield_n, (void *)(intptr_t)5, NULL), 0);
    assert_int_equal(tr_spawn(e, NULL, fn_double_joiner, &j0, NULL), 0);
    assert_int_equal(tr_spawn(e, NULL, fn_double_joiner, &j1, NULL), 0);
    assert_int_equal(tr_engine_run(e), 0);
    /* Exactly one join consumed the handle. */
    assert_true((dj.rc[0] == 0 && dj.rc[1] == -EINVAL) || (dj.rc[0] == -EINVAL && dj.rc[1] == 0));
    assert_int_equal(dj.res[dj.rc[0] == 0 ? 0 : 1], 5);
    tr_test_assert_quiescent(e);
    assert_int_equal(tr_engine_destroy(e), 0);
    tr_test_assert_clean();
}

/* ------------------------------------------------------------ detaching */

struct detach_state {
    int ran;
};

static int fn_detach_before_end(void *p)
{
    struct detach_state *d = p;
    tr_task *t = NULL;
    TCHECK_EQ(tr_spawn(NULL, &t, fn_set_flag, &d->ran, NULL), 0);
    /* The child has not run yet: detaching it now is "before it ended". */
    TCHECK_EQ(d->ran, 0);
    TCHECK_EQ(tr_detach(t), 0);
    for (int i = 0; i < 100 && !d->ran; i++)
        TCHECK_EQ(tr_yield(), 0);
    TCHECK_EQ(d->ran, 1);

    /* A second detach of a live, already-detached task is refused. */
    TCHECK_EQ(tr_spawn(NULL, &t, fn_yield_n, (void *)(intptr_t)3, NULL), 0);
    TCHECK_EQ(tr_detach(t), 0);
    TCHECK_EQ(tr_detach(t), -EINVAL);
    /* So is joining it. */
    TCHECK_EQ(tr_join(t, NULL), -EINVAL);
    TCHECK_EQ(tr_detach(NULL), -EINVAL);
    return 0;
}

static void test_task_detach_before_end(void **state)
{
    (void)state;
    struct detach_state d = {0};
    assert_int_equal(tt_run(fn_detach_before_end, &d), 0);
    assert_int_equal(d.ran, 1);
}

static int fn_detach_after_end(void *p)
{
    struct detach_state *d = p;
    tr_task *t = NULL;
    TCHECK_EQ(tr_spawn(NULL, &t, fn_set_flag, &d->ran, NULL), 0);
    for (int i = 0; i < 100 && !d->ran; i++)
        TCHECK_EQ(tr_yield(), 0);
    TCHECK_EQ(d->ran, 1);
    TCHECK_EQ(tr_yield(), 0);
    TCHECK_EQ(stats_of(g_e).tasks_live, 1);
    TCHECK_EQ(tr_detach(t), 0); /* frees the record at once */
    return 0;
}

static void test_task_detach_after_end(void **state)
{
    (void)state;
    struct detach_state d = {0};
    assert_int_equal(tt_run(fn_detach_after_end, &d), 0);
    assert_int_equal(d.ran, 1);
}

/* tr_detach is not restricted to tasks: the spawner may give up a handle
 * before tr_engine_run. */
static void test_task_detach_outside_before_run(void **state)
{
    (void)state;
    tr_engine *e = NULL;
    tr_task *t = NULL;
    int ran = 0;
    assert_int_equal(tr_engine_create(&e, NULL), 0);
    assert_int_equal(tr_spawn(e, &t, fn_set_flag, &ran, NULL), 0);
    assert_int_equal(tr_detach(t), 0);
    assert_int_equal(tr_engine_run(e), 0);
    assert_int_equal(ran, 1);
    tr_test_assert_quiescent(e);
    assert_int_equal(tr_engine_destroy(e), 0);
}

/* out == NULL: detached from the start; its result still lands in stats. */
static void test_task_detached_out_null(void **state)
{
    (void)state;
    tr_engine *e = NULL;
    int ran = 0;
    assert_int_equal(tr_engine_create(&e, NULL), 0);
    assert_int_equal(tr_spawn(e, NULL, fn_set_flag, &ran, NULL), 0);
    assert_int_equal(tr_spawn(e, NULL, fn_return_arg, (void *)(intptr_t)-EIO, NULL), 0);
    assert_int_equal(tr_engine_run(e), 0);
    assert_int_equal(ran, 1);
    struct tr_stats st;
    assert_int_equal(tr_engine_stats(e, &st), 0);
    assert_int_equal(st.tasks_spawned, 2);
    assert_int_equal(st.tasks_ok, 1);
    assert_int_equal(st.tasks_failed, 1);
    tr_test_assert_quiescent(e);
    assert_int_equal(tr_engine_destroy(e), 0);
}

/* ----------------------------------------------------------------- main */

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_task_spawn_before_run),
        T(test_task_spawn_nested_from_tasks),
        T(test_task_spawn_detached_null_engine_from_task),
        T(test_task_spawn_bad_args),
        T(test_task_join_returns_result),
        T(test_task_join_cancelled_task_gets_ecanceled),
        T(test_task_join_already_finished),
        T(test_task_join_bad_args),
        T(test_task_join_outside_task_eperm),
        T(test_task_join_by_two_tasks_einval),
        T(test_task_detach_before_end),
        T(test_task_detach_after_end),
        T(test_task_detach_outside_before_run),
        T(test_task_detached_out_null),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
