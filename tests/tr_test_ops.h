/* SPDX-License-Identifier: MIT */
/*
 * Shared by the test_ops_*.c suites, the operations against real file
 * descriptors: running one task in a fresh engine with the audit and the fd
 * count (tt_run), fd state, temp files, a clock, recv_all. Header-only, like
 * tr_test.h; each suite is one translation unit.
 *
 * Common ground of those suites: every test runs in a fresh engine, ends
 * with the quiescence audit and checks that the number of open fds is the
 * same before and after. Checks made inside a task never use cmocka's
 * assert_* macros: those longjmp out of the task's stack and would leave the
 * engine (and the thread's notion of "the current task") in the middle of a
 * switch, which turns one failure into a cascade in every later test. Tasks
 * record failures with TCHECK* (tr_test.h); the test asserts there were none
 * once the engine has stopped. Each suite's main ignores SIGPIPE, so that
 * writing to a pipe or socket without a reader shows as -EPIPE.
 */
#ifndef TR_TEST_OPS_H
#define TR_TEST_OPS_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* pipe2 */
#endif

#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <liburing.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "tr_test.h"

/* ------------------------------------------------------------ helpers */

static inline bool fd_is_open(int fd)
{
    return fcntl(fd, F_GETFD) != -1;
}

static inline bool fd_is_closed(int fd)
{
    errno = 0;
    return fcntl(fd, F_GETFD) == -1 && errno == EBADF;
}

/* The engine of the test that runs now, for tasks that read its stats. */
static tr_engine *g_e;

/* Runs fn(arg) as the only task of a fresh engine (kept in g_e) made with
 * cfg (NULL: defaults), audits quiescence, task checks and fds, and returns
 * fn's result. */
static inline int tt_run_cfg(tr_fn fn, void *arg, const struct tr_config *cfg)
{
    int fds_before = count_fds();
    int res = tr_test_run_cfg(fn, arg, cfg, &g_e);
    tr_test_assert_clean();
    assert_int_equal(count_fds(), fds_before);
    return res;
}

static inline int tt_run(tr_fn fn, void *arg)
{
    return tt_run_cfg(fn, arg, NULL);
}

/* A temp file, already unlinked: it disappears with its last fd. */
static inline int tmp_file(void)
{
    char path[] = "/tmp/taskring-ops-XXXXXX";
    int fd = mkstemp(path);
    if (fd >= 0)
        unlink(path);
    return fd;
}

static inline uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* Reads exactly n bytes unless EOF or an error comes first; bounded by n
 * iterations since each successful read moves at least one byte. */
static inline ssize_t recv_all(int fd, void *buf, size_t n)
{
    size_t got = 0;
    for (size_t i = 0; i < n && got < n; i++) {
        ssize_t r = tr_recv(fd, (char *)buf + got, n - got, 0);
        if (r <= 0)
            return got > 0 ? (ssize_t)got : r;
        got += (size_t)r;
    }
    return (ssize_t)got;
}

#endif
