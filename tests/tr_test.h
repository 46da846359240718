/*
 * Shared helpers for the cmocka suites. Each test runs in a fresh engine.
 */
#ifndef TR_TEST_H
#define TR_TEST_H

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "taskring.h"

/* Asserts the quiescence audit of DESIGN G2 on a stopped engine. */
static inline void tr_test_assert_quiescent(tr_engine *e)
{
    struct tr_stats st;
    assert_int_equal(tr_engine_stats(e, &st), 0);
    assert_int_equal(st.tasks_live, 0);
    assert_int_equal(st.ops_inflight, 0);
    assert_int_equal(st.ops_submitted, st.ops_completed);
    assert_int_equal(st.tasks_spawned,
                     st.tasks_ok + st.tasks_cancelled + st.tasks_failed + st.tasks_killed);
    assert_int_equal(st.engine_ops_inflight, 0);
    assert_int_equal(st.timers_pending, 0);
}

struct tr_test_call {
    tr_fn fn;
    void *arg;
    int res;
    int ran;
};

static inline int tr_test_tramp(void *p)
{
    struct tr_test_call *c = p;
    c->ran = 1;
    c->res = c->fn(c->arg);
    return c->res;
}

/* Runs fn(arg) as the only (detached) task of a fresh engine, runs the
 * engine to the end, audits it, destroys it and returns fn's result. */
static inline int tr_test_run(tr_fn fn, void *arg)
{
    tr_engine *e = NULL;
    struct tr_test_call c = {fn, arg, -1, 0};
    assert_int_equal(tr_engine_create(&e, NULL), 0);
    assert_int_equal(tr_spawn(e, NULL, tr_test_tramp, &c, NULL), 0);
    assert_int_equal(tr_engine_run(e), 0);
    assert_int_equal(c.ran, 1);
    tr_test_assert_quiescent(e);
    assert_int_equal(tr_engine_destroy(e), 0);
    return c.res;
}

#endif
