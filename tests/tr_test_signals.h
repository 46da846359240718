/* SPDX-License-Identifier: MIT */
/*
 * Shared by the test_signals_*.c suites, the shutdown signals of DESIGN
 * section 4 ("Signals" and the 3-signal ladder): the per-test check of the
 * process's signal state (sig_setup), waiting for signals to arrive, the
 * report in a memfd, snapshots of the mask and the fd table. Header-only,
 * like tr_test.h; each suite is one translation unit.
 *
 * Safety, for every suite that includes this: a SIGTERM/SIGINT that arrives
 * while no engine blocks it kills the test process. Every such signal is
 * sent while an engine exists, and every child that sends one is reaped
 * (waitpid) inside that engine's lifetime: in a task after tr_wait_shutdown
 * returned (so the child's kill is already done), or in a tr_at_shutdown
 * hook that calls waitpid before it ever parks.
 *
 * White-box where it buys determinism: tests read tr_task.state/wait and
 * tr_engine.sd (tr_internal.h) to know that a task is parked, or which phase
 * the shutdown is in, instead of sleeping.
 */
#ifndef TR_TEST_SIGNALS_H
#define TR_TEST_SIGNALS_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* pipe2, memfd_create, sigabbrev_np */
#endif

#include <dirent.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* Each test also checks the thread count and the signal mask (sig_setup). */
#define TR_TEST_SETUP sig_setup
#include "tr_harness.h"
#include "tr_internal.h"

/* ------------------------------------------------------------ helpers */

/* The process's threads, or -1. */
static inline int thread_count(void)
{
    return tr_test_dir_entries("/proc/self/task");
}

/* Per test (TR_TEST_SETUP): the shared setup, then the process's state
 * every test here relies on. */
static inline int sig_setup(void **state)
{
    tr_test_setup(state);
    /* A process-directed SIGTERM goes to any thread that does not block it:
     * with a second thread the engine's mask would not protect us. */
    assert_int_equal(thread_count(), 1);
    /* Every test starts with the shutdown signals neither blocked nor
     * pending (a leftover would be the previous engine's bug). */
    sigset_t m, p;
    assert_int_equal(pthread_sigmask(SIG_BLOCK, NULL, &m), 0);
    assert_int_equal(sigpending(&p), 0);
    assert_int_equal(sigismember(&m, SIGTERM), 0);
    assert_int_equal(sigismember(&m, SIGINT), 0);
    assert_int_equal(sigismember(&p, SIGTERM), 0);
    assert_int_equal(sigismember(&p, SIGINT), 0);
    return 0;
}

#define HOUR_NS (3600ull * 1000000000ull)

/* Inside a task: yields until the engine has read n shutdown signals from
 * its signalfd. Bound: the signal is pending as soon as kill() returns and
 * every pass with a runnable task makes one io_uring_enter(GETEVENTS), so a
 * handful of passes suffice; a million is a hang detector, not a wait. */
static inline bool wait_signals(uint64_t n)
{
    for (long i = 0; i < 1000000 && tstats().signals_received < n; i++)
        (void)tr_yield();
    return tstats().signals_received >= n;
}

static inline void kill_self(int sig)
{
    TCHECK_EQ(kill(getpid(), sig), 0);
}

/* After the run: the pipe's 16 bytes written now are all still there to
 * read, i.e. no read of a cancelled/killed task is still consuming from it
 * (and so none writes into a freed stack). */
static inline void assert_pipe_passes_16(int p[2])
{
    char out[16], in[16];
    for (int i = 0; i < 16; i++)
        out[i] = (char)('A' + i);
    assert_int_equal(pipe_bytes(p[0]), 0);
    assert_int_equal(write(p[1], out, sizeof(out)), 16);
    assert_int_equal(pipe_bytes(p[0]), 16);
    memset(in, 0, sizeof(in));
    assert_int_equal(read(p[0], in, sizeof(in)), 16);
    assert_memory_equal(in, out, 16);
}

/* The report goes to a memfd: no capacity limit, read back from offset 0. */
static inline int report_open(void)
{
    int fd = memfd_create("tr-report", MFD_CLOEXEC);
    assert_true(fd >= 0);
    return fd;
}

/* Returns the whole report as a NUL-terminated malloc'd string. */
static inline char *report_text(int fd)
{
    struct stat st;
    assert_int_equal(fstat(fd, &st), 0);
    size_t n = (size_t)st.st_size;
    char *buf = malloc(n + 1);
    assert_non_null(buf);
    size_t got = 0;
    while (got < n) {
        ssize_t r = pread(fd, buf + got, n - got, (off_t)got);
        assert_true(r > 0);
        got += (size_t)r;
    }
    buf[n] = '\0';
    return buf;
}

static inline void assert_lacks(const char *hay, const char *needle)
{
    if (strstr(hay, needle))
        fail_msg("report has \"%s\"; report:\n%s", needle, hay);
}

/* Every test's report: exactly one, quiescent. */
static inline void assert_one_quiescent_report(const char *rep)
{
    if (count_substr(rep, "shutdown report") != 1)
        fail_msg("%d shutdown reports, want 1:\n%s", count_substr(rep, "shutdown report"), rep);
    assert_contains(rep, "audit: 0 tasks live, 0 ops in flight: quiescent");
    assert_lacks(rep, "NOT QUIESCENT");
}

static inline void cfg_with_report(struct tr_config *cfg, int report_fd)
{
    tr_config_init(cfg);
    cfg->report_fd = report_fd;
}

/* After the engine is gone: the signal is neither blocked nor pending. */
static inline void assert_signal_released(int sig)
{
    sigset_t m, p;
    assert_int_equal(pthread_sigmask(SIG_BLOCK, NULL, &m), 0);
    assert_int_equal(sigpending(&p), 0);
    assert_int_equal(sigismember(&m, sig), 0);
    assert_int_equal(sigismember(&p, sig), 0);
}

static inline bool sig_blocked_here(int sig)
{
    sigset_t m;
    if (pthread_sigmask(SIG_BLOCK, NULL, &m) != 0)
        return false;
    return sigismember(&m, sig) == 1;
}

/* Process state compared around tr_run: the blocked mask and the sorted
 * list of open fds. */
#define MAX_FDS 1024
struct proc_snap {
    int blocked[NSIG];
    int fds[MAX_FDS];
    int nfds;
};

static inline int int_cmp(const void *a, const void *b)
{
    int x = *(const int *)a, y = *(const int *)b;
    return (x > y) - (x < y);
}

static inline void snap_take(struct proc_snap *s)
{
    memset(s, 0, sizeof(*s));
    sigset_t m;
    sigemptyset(&m);
    assert_int_equal(pthread_sigmask(SIG_BLOCK, NULL, &m), 0);
    for (int i = 1; i < NSIG; i++)
        s->blocked[i] = sigismember(&m, i);
    DIR *d = opendir("/proc/self/fd");
    assert_non_null(d);
    int self = dirfd(d);
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.')
            continue;
        int fd = atoi(de->d_name);
        if (fd == self)
            continue;
        assert_true(s->nfds < MAX_FDS);
        s->fds[s->nfds++] = fd;
    }
    closedir(d);
    qsort(s->fds, (size_t)s->nfds, sizeof(int), int_cmp);
}

static inline void snap_assert_same(const struct proc_snap *a, const struct proc_snap *b)
{
    for (int i = 1; i < NSIG; i++)
        if (a->blocked[i] != b->blocked[i])
            fail_msg("signal %d (%s): blocked %d before, %d after", i,
                     sigabbrev_np(i) ? sigabbrev_np(i) : "?", a->blocked[i], b->blocked[i]);
    if (a->nfds != b->nfds)
        fail_msg("%d fds open before, %d after", a->nfds, b->nfds);
    for (int i = 0; i < a->nfds; i++)
        if (a->fds[i] != b->fds[i])
            fail_msg("fd list differs at %d: %d before, %d after", i, a->fds[i], b->fds[i]);
}

/* Stats captured by an at_shutdown hook (tr_run destroys its engine). */
static struct tr_stats hook_stats;
static int hook_ran;

static inline int capture_stats_hook(void *arg)
{
    (void)arg;
    hook_ran++;
    hook_stats = tstats();
    return 0;
}

static inline const char *sig_abbrev(int sig)
{
    const char *a = sigabbrev_np(sig);
    return a ? a : "?";
}

#endif
