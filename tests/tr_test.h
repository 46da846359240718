/* SPDX-License-Identifier: MIT */
/*
 * Shared helpers for the cmocka suites. Each test runs in a fresh engine.
 *
 * Header-only: everything here is a macro or a `static inline` function, so
 * a suite pays only for what it uses, and the few pieces of state (the
 * failure recorder, the watchdog's test name) are private to each test
 * executable (one translation unit per suite).
 *
 * Sections:
 *   1. the quiescence audit (DESIGN G2)
 *   2. one-task runs (tr_test_run, tr_test_run_cfg)
 *   3. the failure recorder for checks inside tasks (TCHECK, TCHECK_EQ)
 *   4. the watchdog, per-test setup/teardown and the T(f) registration
 *   5. engines and counters (eng_new, stats_of, tstats)
 *   6. task states, white-box (parked_on, wait_parked, yields)
 *   7. pipes and fds (make_pipe, close_pair, pipe_bytes, count_fds)
 *   8. text (count_substr, assert_contains)
 *
 * Child processes (fork isolation) and fault-injection sweeps live in
 * tr_harness.h, which includes this header.
 *
 * Include order: this header needs _GNU_SOURCE (pipe2) before the first
 * system header. A suite either includes it before any system header or
 * defines _GNU_SOURCE on its first line, as most suites do.
 */
#ifndef TR_TEST_H
#define TR_TEST_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* pipe2 */
#endif

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>
#include <cmocka.h>

#include "taskring.h"
#include "tr_internal.h" /* section 6 and tstats are white-box */

/* ============================================ 1. the quiescence audit */

/* Asserts the quiescence audit of DESIGN G2 on a stopped engine, killed
 * tasks included in the balance. Outside tasks only (cmocka asserts). */
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

/* ============================================== 2. one-task runs */

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

/* Runs fn(arg) as the only (detached) task of a fresh engine made with cfg
 * (NULL: the defaults), runs the engine to the end, audits it, destroys it
 * and returns fn's result. While the engine exists it is also in *keep
 * (when keep is not NULL), for tasks that need the test's engine; *keep is
 * NULL again after the destroy. */
static inline int tr_test_run_cfg(tr_fn fn, void *arg, const struct tr_config *cfg,
                                  tr_engine **keep)
{
    tr_engine *e = NULL;
    struct tr_test_call c = {fn, arg, -1, 0};
    assert_int_equal(tr_engine_create(&e, cfg), 0);
    if (keep)
        *keep = e;
    assert_int_equal(tr_spawn(e, NULL, tr_test_tramp, &c, NULL), 0);
    assert_int_equal(tr_engine_run(e), 0);
    assert_int_equal(c.ran, 1);
    tr_test_assert_quiescent(e);
    assert_int_equal(tr_engine_destroy(e), 0);
    if (keep)
        *keep = NULL;
    return c.res;
}

/* tr_test_run_cfg with the default config, the engine kept nowhere. */
static inline int tr_test_run(tr_fn fn, void *arg)
{
    return tr_test_run_cfg(fn, arg, NULL, NULL);
}

/* ==================================== 3. the failure recorder (tasks) */

/* cmocka's assertions longjmp back to the test runner; from a task's stack
 * that would abandon the engine mid-switch (and leave the thread's notion of
 * "the current task" behind), which turns one failure into a cascade in
 * every later test. Checks inside tasks (and shutdown hooks) therefore only
 * record failures with TCHECK/TCHECK_EQ, and each test asserts after the
 * run, on the runner's stack, that none was recorded (tr_test_assert_clean).
 * tr_test_setup clears the record before each test. */
static struct {
    int failures;
    char first[512];
} tr_test_rec;

/* Records one failure: the first is kept for the final message, the first
 * 20 are printed (the rest only count: one bug can fail a whole loop). */
static inline void tr_test_fail(const char *file, int line, const char *what)
{
    if (tr_test_rec.failures == 0)
        snprintf(tr_test_rec.first, sizeof(tr_test_rec.first), "%s:%d: %s", file, line, what);
    if (tr_test_rec.failures < 20)
        print_error("task check failed: %s:%d: %s\n", file, line, what);
    tr_test_rec.failures++;
}

/* Returns ok; records a failure when it is false. */
static inline bool tr_test_check(bool ok, const char *what, const char *file, int line)
{
    if (!ok)
        tr_test_fail(file, line, what);
    return ok;
}

/* Returns a == b; records a failure with both values when not. */
static inline bool tr_test_check_eq(long long a, long long b, const char *what, const char *file,
                                    int line)
{
    char msg[400];
    if (a == b)
        return true;
    snprintf(msg, sizeof(msg), "%s (got %lld, want %lld)", what, a, b);
    tr_test_fail(file, line, msg);
    return false;
}

/* TCHECK(c): records a failure unless c holds. TCHECK_EQ(a, b): records one
 * unless a == b (compared as long long; a is evaluated before b, each once).
 * Both are expressions with the check's outcome, usable as statements or as
 * in `if (!TCHECK_EQ(pipe2(p, O_CLOEXEC), 0)) return -1;`. */
#define TCHECK(c) tr_test_check(!!(c), #c, __FILE__, __LINE__)

#define TCHECK_EQ(a, b)                                                                            \
    ({                                                                                             \
        long long tr_a_ = (long long)(a), tr_b_ = (long long)(b);                                  \
        tr_test_check_eq(tr_a_, tr_b_, #a " == " #b, __FILE__, __LINE__);                          \
    })

/* The failures recorded so far in this test, for loops that give up early
 * once a bug has shown. */
static inline int tr_test_failures(void)
{
    return tr_test_rec.failures;
}

/* On the runner's stack, after the run: fails the test if any check inside
 * a task failed, naming the first. */
static inline void tr_test_assert_clean(void)
{
    if (tr_test_rec.failures)
        fail_msg("%d check(s) failed inside tasks; first: %s", tr_test_rec.failures,
                 tr_test_rec.first);
}

/* ===================== 4. the watchdog, setup/teardown, T(f) registration */

/* A hang is a failure too: the watchdog turns it into one with the test's
 * name instead of a silent CTest timeout. It is no timing assertion: the
 * bound is orders of magnitude above any test's run time. A suite with
 * longer tests defines TR_TEST_WATCHDOG_S before including this header. */
#ifndef TR_TEST_WATCHDOG_S
#define TR_TEST_WATCHDOG_S 200
#endif

/* The name of the test that runs now (T passes it as the prestate). */
static const char *tr_test_current = "?";

/* SIGALRM handler: async-signal-safe, writes the name and exits. */
static inline void tr_test_watchdog(int sig)
{
    (void)sig;
    static const char m1[] = "\nWATCHDOG: test hung: ";
    ssize_t rc = write(2, m1, sizeof(m1) - 1);
    rc = write(2, tr_test_current, strlen(tr_test_current));
    rc = write(2, "\n", 1);
    (void)rc;
    _exit(3);
}

/* Before each test: a clean failure record, the test's name, the watchdog
 * armed. A suite with more to reset wraps this (see TR_TEST_SETUP). */
static inline int tr_test_setup(void **state)
{
    memset(&tr_test_rec, 0, sizeof(tr_test_rec));
    tr_test_current = *state ? (const char *)*state : "?";
    signal(SIGALRM, tr_test_watchdog);
    alarm(TR_TEST_WATCHDOG_S);
    return 0;
}

/* After each test: the watchdog disarmed. */
static inline int tr_test_teardown(void **state)
{
    (void)state;
    alarm(0);
    return 0;
}

/* T(f) registers test f with the setup and teardown above and its own name
 * as the prestate. A suite that needs more per test defines TR_TEST_SETUP
 * and/or TR_TEST_TEARDOWN as the names of its own functions (which call
 * tr_test_setup/tr_test_teardown first) before including this header. */
#ifndef TR_TEST_SETUP
#define TR_TEST_SETUP tr_test_setup
#endif
#ifndef TR_TEST_TEARDOWN
#define TR_TEST_TEARDOWN tr_test_teardown
#endif
#define T(f)                                                                                       \
    cmocka_unit_test_prestate_setup_teardown(f, TR_TEST_SETUP, TR_TEST_TEARDOWN, (void *)#f)

/* ============================================ 5. engines and counters */

/* A fresh engine made with cfg (NULL: the defaults). Outside tasks. */
static inline tr_engine *eng_new(const struct tr_config *cfg)
{
    tr_engine *e = NULL;
    assert_int_equal(tr_engine_create(&e, cfg), 0);
    assert_non_null(e);
    return e;
}

/* e's counters. Inside a task the call's result is a recorded check,
 * outside one an assertion. The struct is filled with ones first, so a
 * field the engine failed to fill cannot pass for a zero. */
static inline struct tr_stats stats_of(tr_engine *e)
{
    struct tr_stats s;
    memset(&s, 0xff, sizeof(s));
    int rc = tr_engine_stats(e, &s);
    if (tr_self())
        TCHECK_EQ(rc, 0);
    else
        assert_int_equal(rc, 0);
    return s;
}

/* Inside a task: the caller's engine's counters. */
static inline struct tr_stats tstats(void)
{
    return stats_of(tr__engine_of_caller());
}

/* ============================== 6. task states (white-box, in tasks) */

/* True when t is parked, waiting for `why` (tr_task.state/wait). */
static inline bool parked_on(const tr_task *t, const struct tr__wait_kind *why)
{
    return tr__task_parked_on(t, why);
}

/* The op slot of the ring op t is parked on (or woken from, not yet
 * resumed), TR_OP_NONE when it waits for something else. */
static inline uint32_t task_op_slot(const tr_task *t)
{
    if (!t->wait || t->wait_kind != TR_WAIT_OP)
        return TR_OP_NONE;
    return t->wait_slot;
}

/* Inside a task: yields until t is parked on `why`; returns whether it is
 * (false is a failure). Bound: a runnable task parks within one scheduling
 * pass, and every yield is at least one pass, so 1000 passes is far more
 * than enough. With check_yields each yield must return 0 (a recorded
 * check); without, its result is ignored, for a caller that may already be
 * cancelled (a cancelled yield still passes through the scheduler). */
static inline bool tr_test_wait_parked(const tr_task *t, const struct tr__wait_kind *why,
                                       bool check_yields)
{
    for (int i = 0; i < 1000 && !parked_on(t, why); i++) {
        int rc = tr_yield();
        if (check_yields)
            TCHECK_EQ(rc, 0);
    }
    return parked_on(t, why);
}

/* Inside a task: k yields. check_yields as for tr_test_wait_parked. */
static inline void tr_test_yields(int k, bool check_yields)
{
    for (int i = 0; i < k; i++) {
        int rc = tr_yield();
        if (check_yields)
            TCHECK_EQ(rc, 0);
    }
}

/* The usual forms: every yield checked... */
static inline bool wait_parked(const tr_task *t, const struct tr__wait_kind *why)
{
    return tr_test_wait_parked(t, why, true);
}

static inline void yields(int k)
{
    tr_test_yields(k, true);
}

/* ...and the lax ones, for callers that may be cancelled. */
static inline bool wait_parked_lax(const tr_task *t, const struct tr__wait_kind *why)
{
    return tr_test_wait_parked(t, why, false);
}

static inline void yields_lax(int k)
{
    tr_test_yields(k, false);
}

/* ============================================== 7. pipes and fds */

/* A close-on-exec pipe. Outside tasks (cmocka assert). */
static inline void make_pipe(int p[2])
{
    assert_int_equal(pipe2(p, O_CLOEXEC), 0);
}

/* Closes both ends that are open (>= 0) and marks them closed (-1). */
static inline void close_pair(int p[2])
{
    if (p[0] >= 0)
        close(p[0]);
    if (p[1] >= 0)
        close(p[1]);
    p[0] = p[1] = -1;
}

/* The bytes waiting in a pipe or socket (FIONREAD), or -1. */
static inline int pipe_bytes(int fd)
{
    int n = -1;
    if (ioctl(fd, FIONREAD, &n) != 0)
        return -1;
    return n;
}

/* The entries of a directory such as /proc/self/fd or /proc/self/task,
 * "." and ".." not counted, or -1 if it cannot be opened. */
static inline int tr_test_dir_entries(const char *path)
{
    DIR *d = opendir(path);
    if (!d)
        return -1;
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL)
        if (de->d_name[0] != '.')
            n++;
    closedir(d);
    return n;
}

/* The process's open fds, not counting the one opendir uses to list them.
 * Outside tasks (cmocka assert). */
static inline int count_fds(void)
{
    int n = tr_test_dir_entries("/proc/self/fd");
    assert_true(n >= 1); /* listed, with at least the directory's own fd */
    return n - 1;
}

/* ============================================================ 8. text */

/* How many times needle occurs in text (non-overlapping). */
static inline int count_substr(const char *text, const char *needle)
{
    int n = 0;
    size_t len = strlen(needle);
    for (const char *p = strstr(text, needle); p; p = strstr(p + len, needle))
        n++;
    return n;
}

/* Fails the test at the caller's line, showing the whole text, unless
 * needle occurs in it. Outside tasks (cmocka's failure longjmps). */
static inline void tr_test_assert_contains(const char *text, const char *needle, const char *file,
                                           int line)
{
    if (!strstr(text, needle)) {
        print_error("ERROR: missing \"%s\" in:\n%s\n", needle, text);
        _fail(file, line);
    }
}

#define assert_contains(text, needle) tr_test_assert_contains((text), (needle), __FILE__, __LINE__)

#endif
