/* SPDX-License-Identifier: MIT */
/*
 * Shared by the test_shutdown_*.c suites, the graceful shutdown of DESIGN
 * section 4 (G6): an ordered event log, the report pipe, the suites' config,
 * the audit after a run, and small spawn helpers. Header-only, like
 * tr_test.h; each suite is one translation unit.
 *
 * Common ground of those suites: real signals are tested in
 * test_signals_*.c, so every engine here is created with TR_CFG_NO_SIGNALS.
 * No test sleeps to synchronise or asserts a duration: deadlines are set
 * small (grace_ms 20-50) or large (drain_ms 10000, which never slows a test
 * because a phase ends as soon as no task is left), and tests assert results
 * and the ORDER of events. White-box where it buys determinism:
 * tr_task.state/wait (tr_internal.h) say that a task is parked before a test
 * triggers the shutdown.
 */
#ifndef TR_TEST_SHUTDOWN_H
#define TR_TEST_SHUTDOWN_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* pipe2 */
#endif

#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

/* Each test also resets the event log and the report pipe (sd_setup). */
#define TR_TEST_SETUP sd_setup
#define TR_TEST_TEARDOWN sd_teardown
#include "tr_test.h"
#include "tr_internal.h"

/* ------------------------------------------------------------ helpers */

/* An ordered log of events, for tests that assert the order of phases. */
#define EV_MAX 128
static struct {
    int ev[EV_MAX];
    int n;
} evl;

static inline void ev_log(int ev)
{
    if (evl.n < EV_MAX)
        evl.ev[evl.n++] = ev;
}

/* The position of the first ev in the log, or -1. */
static inline int ev_pos(int ev)
{
    for (int i = 0; i < evl.n; i++)
        if (evl.ev[i] == ev)
            return i;
    return -1;
}

/* The shutdown report, read from a pipe whose write end is report_fd. */
static struct {
    int fd[2];
    char text[65536];
    size_t len;
} rep;

/* Per test (TR_TEST_SETUP/TEARDOWN): the shared setup, then an empty event
 * log and no report pipe; the shared teardown, then the pipe closed. */
static inline int sd_setup(void **state)
{
    tr_test_setup(state);
    memset(&evl, 0, sizeof(evl));
    memset(&rep, 0, sizeof(rep));
    rep.fd[0] = rep.fd[1] = -1;
    return 0;
}

static inline int sd_teardown(void **state)
{
    tr_test_teardown(state);
    if (rep.fd[0] >= 0)
        close(rep.fd[0]);
    if (rep.fd[1] >= 0)
        close(rep.fd[1]);
    rep.fd[0] = rep.fd[1] = -1;
    return 0;
}

/* The suite's config: no signals, silent unless a test routes the report. */
static inline struct tr_config cfg_quiet(void)
{
    struct tr_config c;
    tr_config_init(&c);
    c.flags = TR_CFG_NO_SIGNALS;
    c.report_fd = -1;
    return c;
}

/* Routes cfg's report into a pipe; read it with rep_collect. The report is
 * a few hundred bytes, far below a pipe's 64 KiB, so the engine's blocking
 * writes never wait for a reader. */
static inline void rep_open(struct tr_config *c)
{
    assert_int_equal(pipe2(rep.fd, O_CLOEXEC), 0);
    c->report_fd = rep.fd[1];
}

/* After tr_engine_destroy (which writes the report's last line): the whole
 * report, NUL-terminated, in rep.text. */
static inline void rep_collect(void)
{
    assert_true(rep.fd[1] >= 0);
    close(rep.fd[1]);
    rep.fd[1] = -1;
    /* Bounded: each round reads at least one byte until EOF, or the buffer
     * is full. */
    while (rep.len < sizeof(rep.text) - 1) {
        ssize_t n = read(rep.fd[0], rep.text + rep.len, sizeof(rep.text) - 1 - rep.len);
        if (n <= 0)
            break;
        rep.len += (size_t)n;
    }
    rep.text[rep.len] = '\0';
    close(rep.fd[0]);
    rep.fd[0] = -1;
}

/* Copies into out the first line of text that contains needle. */
static inline bool line_with(const char *text, const char *needle, char *out, size_t cap)
{
    const char *p = strstr(text, needle);
    if (!p)
        return false;
    const char *b = p;
    while (b > text && b[-1] != '\n')
        b--;
    const char *end = strchr(p, '\n');
    size_t len = end ? (size_t)(end - b) : strlen(b);
    if (len >= cap)
        len = cap - 1;
    memcpy(out, b, len);
    out[len] = '\0';
    return true;
}

/* The audit after a run (G2), killed tasks included in the accounting:
 * every task ended one way, nothing in flight, the engine's own reads
 * cancelled and reaped too (public counter and white-box). */
static inline void sd_audit(tr_engine *e)
{
    tr_test_assert_quiescent(e);
    /* G1 for op records: a slot is reused only after its CQE was reaped, so
     * no CQE can ever arrive for an outdated generation in these tests (a
     * kill that freed a slot before its CQE would show here). */
    assert_int_equal(stats_of(e).cqe_stale, 0);
    assert_int_equal(e->sw.inflight, 0);
    assert_false(e->sw.wake_armed);
    assert_false(e->sw.sig_armed);
}

/* Runs e to the end: returns 0, no failed task check, the audit. */
static inline void eng_run(tr_engine *e)
{
    assert_int_equal(tr_engine_run(e), 0);
    tr_test_assert_clean();
    sd_audit(e);
}

static inline int spawn_named(tr_engine *e, tr_task **out, tr_fn fn, void *arg, const char *name,
                              unsigned flags)
{
    struct tr_spawn_opts o = {.name = name, .stack_size = 0, .flags = flags};
    return tr_spawn(e, out, fn, arg, &o);
}

static inline int result_of(const tr_task *t)
{
    int r = 12345;
    assert_int_equal(tr_task_result(t, &r), 0);
    return r;
}

/* The bound of a task's loop that ignores its cancellation until the Kill:
 * far above the loop rounds kill_ms allows (one scheduling pass each), and
 * small enough that an engine that never kills ends the loop before the
 * watchdog: the test then fails on tasks_killed, not on a hang. */
#define KILL_LOOP_BOUND 20000000L

#endif
