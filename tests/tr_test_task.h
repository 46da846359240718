/* SPDX-License-Identifier: MIT */
/*
 * Shared by the test_task_*.c suites, the task lifecycle: running one task
 * in a fresh engine kept in g_e (tt_run) and small task bodies. Header-only,
 * like tr_test.h; each suite is one translation unit.
 *
 * Checks made inside a task never use cmocka's assert_* macros: those
 * longjmp out of the task's stack and would leave the engine (and the
 * thread's notion of "the current task") in the middle of a switch, which
 * turns one failure into a cascade in every later test. Tasks record
 * failures with TCHECK* (tr_test.h); the test asserts there were none once
 * the engine has stopped.
 */
#ifndef TR_TEST_TASK_H
#define TR_TEST_TASK_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* pipe2, in tr_test.h */
#endif

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
static inline int tt_run(tr_fn fn, void *arg)
{
    int res = tr_test_run_cfg(fn, arg, NULL, &g_e);
    tr_test_assert_clean();
    return res;
}

/* Runs fn in a fresh engine with a short shutdown ladder (grace and kill
 * 10 ms, no signals, no report) until every task has ended — fn starts a
 * shutdown that its stubborn tasks make reach the kill rung — and asserts
 * that nothing hung or failed: every task ended. Returns the engine's
 * last stats. */
static inline struct tr_stats tt_run_to_kill(tr_fn fn, void *arg)
{
    struct tr_config cfg;
    tr_config_init(&cfg);
    cfg.flags = TR_CFG_NO_SIGNALS;
    cfg.grace_ms = 10;
    cfg.kill_ms = 10;
    cfg.report_fd = -1;
    tr_engine *e = eng_new(&cfg);
    g_e = e;
    assert_int_equal(tr_spawn(e, NULL, fn, arg, NULL), 0);
    assert_int_equal(tr_engine_run(e), 0); /* returns: nothing hangs */
    tr_test_assert_clean();
    struct tr_stats st = stats_of(e);
    assert_int_equal(st.tasks_live, 0);
    assert_int_equal(tr_engine_destroy(e), 0);
    g_e = NULL;
    return st;
}

/* ------------------------------------------------------- small bodies */

static inline int fn_return_arg(void *p)
{
    return (int)(intptr_t)p;
}

static inline int fn_set_flag(void *p)
{
    *(int *)p += 1;
    return 0;
}

/* Sleeps 30 s, far longer than any test: the tests that spawn it cancel it. */
static inline int fn_sleep_long(void *p)
{
    (void)p;
    return tr_sleep_ns(30ull * 1000000000ull);
}

/* Yields n times (bounded by the caller's n), then returns n. */
static inline int fn_yield_n(void *p)
{
    int n = (int)(intptr_t)p;
    for (int i = 0; i < n; i++)
        TCHECK_EQ(tr_yield(), 0);
    return n;
}

#endif
