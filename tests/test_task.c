/*
 * Description: task lifecycle — spawning (before tr_engine_run, from inside
 * tasks, nested, with e == NULL), joining (results >= 0, < 0, -ECANCELED,
 * already-finished tasks), detaching, names, ids, tr_self, tr_yield's
 * round-robin order, stack reuse across sequential tasks, custom stack
 * sizes, the task counters of tr_stats, and the engine's lifecycle around
 * tasks (empty run, run twice, run from a task, destroy while busy, a join
 * cycle that ends in -EDEADLK).
 *
 * Checks made inside a task never use cmocka's assert_* macros: those
 * longjmp out of the task's stack and would leave the engine (and the
 * thread's notion of "the current task") in the middle of a switch, which
 * turns one failure into a cascade in every later test. Tasks record
 * failures with TCHECK* (tr_test.h); the test asserts there were none once
 * the engine has stopped.
 */
#define _GNU_SOURCE /* pipe2, in tr_test.h */
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tr_test.h"

/* ------------------------------------------------------------ helpers */

/* The engine of the test that runs now, for tasks that read its stats. */
static tr_engine *g_e;

/* Like tr_test_run, but keeps the engine in g_e while it runs, and asserts
 * afterwards that no check inside a task failed. */
static int tt_run(tr_fn fn, void *arg)
{
    int res = tr_test_run_cfg(fn, arg, NULL, &g_e);
    tr_test_assert_clean();
    return res;
}

/* ------------------------------------------------------- small bodies */

static int fn_return_arg(void *p)
{
    return (int)(intptr_t)p;
}

static int fn_set_flag(void *p)
{
    *(int *)p += 1;
    return 0;
}

/* Yields n times (bounded by the caller's n), then returns n. */
static int fn_yield_n(void *p)
{
    int n = (int)(intptr_t)p;
    for (int i = 0; i < n; i++)
        TCHECK_EQ(tr_yield(), 0);
    return n;
}

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
static int fn_sleep_long(void *p)
{
    (void)p;
    return tr_sleep_ns(30ull * 1000000000ull);
}

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

/* ------------------------------------------------------- names and ids */

struct self_name {
    char name[64];
    uint64_t id;
};

static int fn_record_self(void *p)
{
    struct self_name *sn = p;
    const char *n = tr_task_name(tr_self());
    TCHECK(n != NULL);
    if (n != NULL)
        snprintf(sn->name, sizeof sn->name, "%s", n);
    sn->id = tr_task_id(tr_self());
    return 0;
}

static void test_task_names(void **state)
{
    (void)state;
    tr_engine *e = NULL;
    tr_task *given = NULL, *deflt = NULL, *longn = NULL, *copied = NULL;
    struct self_name sn[4];
    memset(sn, 0, sizeof sn);
    char buf[16];
    static const char long_name[] = "0123456789abcdefghijklmnopqrstuvwxyzABCDEF"; /* 42 bytes */

    assert_int_equal(tr_engine_create(&e, NULL), 0);
    struct tr_spawn_opts o = {.name = "worker"};
    assert_int_equal(tr_spawn(e, &given, fn_record_self, &sn[0], &o), 0);
    assert_int_equal(tr_spawn(e, &deflt, fn_record_self, &sn[1], NULL), 0);
    o.name = long_name;
    assert_int_equal(tr_spawn(e, &longn, fn_record_self, &sn[2], &o), 0);
    /* The name is copied: changing the caller's buffer changes nothing. */
    snprintf(buf, sizeof buf, "copied");
    o.name = buf;
    assert_int_equal(tr_spawn(e, &copied, fn_record_self, &sn[3], &o), 0);
    snprintf(buf, sizeof buf, "XXXXXX");

    assert_string_equal(tr_task_name(given), "worker");
    char want[32];
    snprintf(want, sizeof want, "task-%llu", (unsigned long long)tr_task_id(deflt));
    assert_string_equal(tr_task_name(deflt), want);
    assert_int_equal(strlen(tr_task_name(longn)), 31);
    assert_memory_equal(tr_task_name(longn), long_name, 31);
    assert_string_equal(tr_task_name(copied), "copied");

    assert_int_equal(tr_engine_run(e), 0);
    /* Inside the task, tr_task_name(tr_self()) agrees. */
    assert_string_equal(sn[0].name, "worker");
    assert_string_equal(sn[1].name, want);
    assert_int_equal(strlen(sn[2].name), 31);
    assert_memory_equal(sn[2].name, long_name, 31);
    assert_string_equal(sn[3].name, "copied");
    assert_int_equal(sn[1].id, tr_task_id(deflt));

    /* Handles that were never joined or detached die with the engine. */
    tr_test_assert_quiescent(e);
    assert_int_equal(tr_engine_destroy(e), 0);
    tr_test_assert_clean();
}

static void test_task_name_and_id_of_null(void **state)
{
    (void)state;
    assert_int_equal(tr_task_id(NULL), 0);
    assert_null(tr_task_name(NULL));
}

/* Ids count from 1 per engine and only grow, also for tasks spawned from
 * tasks; a second engine counts from 1 again. */
struct ids {
    uint64_t inner[4];
};

static int fn_spawn_and_record_ids(void *p)
{
    struct ids *ids = p;
    for (int i = 0; i < 4; i++) {
        tr_task *t = NULL;
        TCHECK_EQ(tr_spawn(NULL, &t, fn_return_arg, NULL, NULL), 0);
        ids->inner[i] = tr_task_id(t);
        TCHECK_EQ(tr_join(t, NULL), 0);
    }
    return 0;
}

static void test_task_ids_unique_increasing(void **state)
{
    (void)state;
    tr_engine *e = NULL, *e2 = NULL;
    tr_task *t[5];
    struct ids ids = {{0}};
    assert_int_equal(tr_engine_create(&e, NULL), 0);
    for (int i = 0; i < 5; i++)
        assert_int_equal(tr_spawn(e, &t[i], i == 4 ? fn_spawn_and_record_ids : fn_return_arg,
                                  i == 4 ? (void *)&ids : NULL, NULL),
                         0);
    assert_int_equal(tr_task_id(t[0]), 1);
    for (int i = 1; i < 5; i++)
        assert_true(tr_task_id(t[i]) > tr_task_id(t[i - 1]));
    uint64_t last = tr_task_id(t[4]);
    assert_int_equal(tr_engine_run(e), 0);
    for (int i = 0; i < 4; i++) {
        assert_true(ids.inner[i] > last);
        last = ids.inner[i];
    }
    /* Ids are not reused after tasks end. */
    tr_task *after = NULL;
    assert_int_equal(tr_spawn(e, &after, fn_return_arg, NULL, NULL), 0);
    assert_true(tr_task_id(after) > last);
    assert_int_equal(tr_detach(after), 0);
    assert_int_equal(tr_engine_run(e), 0);

    assert_int_equal(tr_engine_create(&e2, NULL), 0);
    tr_task *first2 = NULL;
    assert_int_equal(tr_spawn(e2, &first2, fn_return_arg, NULL, NULL), 0);
    assert_int_equal(tr_task_id(first2), 1);
    assert_int_equal(tr_engine_run(e2), 0);
    tr_test_assert_quiescent(e2);
    assert_int_equal(tr_engine_destroy(e2), 0);

    tr_test_assert_quiescent(e);
    assert_int_equal(tr_engine_destroy(e), 0);
    tr_test_assert_clean();
}

/* ---------------------------------------------------------------- self */

struct self_check {
    tr_task *seen_by_child;
    tr_task *handle;
    int equal_in_parent;
};

static int fn_store_self(void *p)
{
    struct self_check *sc = p;
    sc->seen_by_child = tr_self();
    return 0;
}

static int fn_self_parent(void *p)
{
    struct self_check *sc = p;
    tr_task *me = tr_self();
    TCHECK(me != NULL);
    TCHECK_EQ(tr_task_id(me), 1); /* the tramp task is the engine's first */
    TCHECK_EQ(tr_spawn(NULL, &sc->handle, fn_store_self, sc, NULL), 0);
    TCHECK(sc->handle != me);
    for (int i = 0; i < 100 && sc->seen_by_child == NULL; i++)
        TCHECK_EQ(tr_yield(), 0);
    sc->equal_in_parent = sc->seen_by_child == sc->handle;
    /* tr_self stays the same across a park. */
    TCHECK(tr_self() == me);
    TCHECK_EQ(tr_join(sc->handle, NULL), 0);
    return 0;
}

static void test_task_self(void **state)
{
    (void)state;
    struct self_check sc = {NULL, NULL, 0};
    tr_engine *e = NULL;
    assert_null(tr_self());
    assert_int_equal(tr_engine_create(&e, NULL), 0);
    assert_null(tr_self());
    assert_int_equal(tr_engine_destroy(e), 0);
    assert_int_equal(tt_run(fn_self_parent, &sc), 0);
    assert_non_null(sc.seen_by_child);
    assert_int_equal(sc.equal_in_parent, 1);
    assert_null(tr_self());
}

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

/* --------------------------------------------------------------- stacks */

#define SEQ_TASKS 10000
struct seq {
    uint64_t max_stacks;
    int ok;
};

static int fn_seq_child(void *p)
{
    return (int)((intptr_t)p & 0xff);
}

static int fn_seq(void *p)
{
    struct seq *s = p;
    for (int i = 0; i < SEQ_TASKS; i++) {
        tr_task *t = NULL;
        if (!TCHECK_EQ(tr_spawn(NULL, &t, fn_seq_child, (void *)(intptr_t)i, NULL), 0))
            return -EIO;
        int r = -1;
        if (!TCHECK_EQ(tr_join(t, &r), 0))
            return -EIO;
        if (r == (i & 0xff))
            s->ok++;
        struct tr_stats st = stats_of(g_e);
        uint64_t stacks = st.stacks_guarded + st.stacks_canary;
        if (stacks > s->max_stacks)
            s->max_stacks = stacks;
    }
    return 0;
}

static void test_task_sequential_spawns_reuse_stacks(void **state)
{
    (void)state;
    struct seq s = {0, 0};
    assert_int_equal(tt_run(fn_seq, &s), 0);
    assert_int_equal(s.ok, SEQ_TASKS);
    /* At most two tasks live at once: one slab (64 stacks) serves them all. */
    assert_true(s.max_stacks >= 1);
    assert_true(s.max_stacks <= 64);
}

#define BIG_STACK (256 * 1024)
#define BIG_LOCAL (200 * 1024)

static int fn_big_local(void *p)
{
    (void)p;
    volatile unsigned char buf[BIG_LOCAL];
    for (size_t i = 0; i < sizeof buf; i += 512)
        buf[i] = (unsigned char)(i >> 9);
    buf[sizeof buf - 1] = 0x5a;
    /* Park with the deep frame live: the stack must survive a switch. */
    TCHECK_EQ(tr_yield(), 0);
    TCHECK_EQ(tr_nop(), 0);
    int bad = 0;
    for (size_t i = 0; i < sizeof buf; i += 512)
        bad += buf[i] != (unsigned char)(i >> 9);
    bad += buf[sizeof buf - 1] != 0x5a;
    return bad == 0 ? 1 : -EIO;
}

static int fn_stack_sizes(void *p)
{
    (void)p;
    tr_task *t = NULL;
    int r = 0;
    struct tr_spawn_opts o = {.name = "big", .stack_size = BIG_STACK};
    TCHECK_EQ(tr_spawn(NULL, &t, fn_big_local, NULL, &o), 0);
    TCHECK_EQ(tr_join(t, &r), 0);
    TCHECK_EQ(r, 1);
    /* The minimum and a size that is not a whole number of pages work. */
    o.stack_size = 16 * 1024;
    TCHECK_EQ(tr_spawn(NULL, &t, fn_yield_n, (void *)(intptr_t)2, &o), 0);
    TCHECK_EQ(tr_join(t, &r), 0);
    TCHECK_EQ(r, 2);
    o.stack_size = 20000;
    TCHECK_EQ(tr_spawn(NULL, &t, fn_yield_n, (void *)(intptr_t)3, &o), 0);
    TCHECK_EQ(tr_join(t, &r), 0);
    TCHECK_EQ(r, 3);
    o.stack_size = 16 * 1024 - 1;
    TCHECK_EQ(tr_spawn(NULL, &t, fn_yield_n, NULL, &o), -EINVAL);
    return 0;
}

static void test_task_custom_stack_size(void **state)
{
    (void)state;
    assert_int_equal(tt_run(fn_stack_sizes, NULL), 0);
}

/* The engine's default stack size comes from the config. */
static void test_task_config_stack_size(void **state)
{
    (void)state;
    tr_engine *e = NULL;
    struct tr_config cfg;
    tr_config_init(&cfg);
    assert_int_equal(cfg.stack_size, 64 * 1024);
    cfg.stack_size = BIG_STACK;
    assert_int_equal(tr_engine_create(&e, &cfg), 0);
    tr_task *t = NULL;
    assert_int_equal(tr_spawn(e, &t, fn_big_local, NULL, NULL), 0);
    assert_int_equal(tr_detach(t), 0);
    assert_int_equal(tr_engine_run(e), 0);
    struct tr_stats st;
    assert_int_equal(tr_engine_stats(e, &st), 0);
    assert_int_equal(st.tasks_ok, 1);
    tr_test_assert_quiescent(e);
    assert_int_equal(tr_engine_destroy(e), 0);
    tr_test_assert_clean();
}

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
        T(test_task_names),
        T(test_task_name_and_id_of_null),
        T(test_task_ids_unique_increasing),
        T(test_task_self),
        T(test_task_yield_round_robin),
        T(test_task_yield_alone_and_outside),
        T(test_task_sequential_spawns_reuse_stacks),
        T(test_task_custom_stack_size),
        T(test_task_config_stack_size),
        T(test_task_stats_counters),
        T(test_task_stats_bad_args),
        T(test_task_engine_run_without_tasks),
        T(test_task_engine_run_twice),
        T(test_task_engine_run_from_task_eperm),
        T(test_task_engine_destroy_busy),
        T(test_task_join_cycle_edeadlk),
        T(test_task_yield_loop_does_not_starve_completions),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
