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
