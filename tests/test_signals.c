/*
 * Description: shutdown signals (DESIGN section 4, "Signals" and the
 * 3-signal ladder). Rung 1: the first SIGTERM/SIGINT (or a custom shutdown
 * signal), from the process itself or from a child, starts one orderly
 * shutdown. Rung 2: the second signal breaks the shields. Rung 3: the third
 * kills the stragglers, after their op's completion was reaped (G1). Also:
 * the caller's signal mask and fd table are the same before and after
 * tr_run; tr_engine_shutdown from a signal handler; a storm of 10,000
 * signals ends in exactly one shutdown; 100,000 parked tasks ended by one
 * SIGTERM.
 *
 * Safety: a SIGTERM/SIGINT that arrives while no engine blocks it kills the
 * test process. Every such signal here is sent while an engine exists, and
 * every child that sends one is reaped (waitpid) inside that engine's
 * lifetime: in a task after tr_wait_shutdown returned (so the child's kill
 * is already done), or in a tr_at_shutdown hook that calls waitpid before
 * it ever parks.
 *
 * White-box where it buys determinism: tests read tr_task.state/wait and
 * tr_engine.sd (tr_internal.h) to know that a task is parked, or which
 * phase the shutdown is in, instead of sleeping.
 */
#define _GNU_SOURCE /* pipe2, memfd_create, sigabbrev_np */
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
static int thread_count(void)
{
    return tr_test_dir_entries("/proc/self/task");
}

/* Per test (TR_TEST_SETUP): the shared setup, then the process's state
 * every test here relies on. */
static int sig_setup(void **state)
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
static bool wait_signals(uint64_t n)
{
    for (long i = 0; i < 1000000 && tstats().signals_received < n; i++)
        (void)tr_yield();
    return tstats().signals_received >= n;
}

static void kill_self(int sig)
{
    TCHECK_EQ(kill(getpid(), sig), 0);
}

/* After the run: the pipe's 16 bytes written now are all still there to
 * read, i.e. no read of a cancelled/killed task is still consuming from it
 * (and so none writes into a freed stack). */
static void assert_pipe_passes_16(int p[2])
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
static int report_open(void)
{
    int fd = memfd_create("tr-report", MFD_CLOEXEC);
    assert_true(fd >= 0);
    return fd;
}

/* Returns the whole report as a NUL-terminated malloc'd string. */
static char *report_text(int fd)
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

static void assert_lacks(const char *hay, const char *needle)
{
    if (strstr(hay, needle))
        fail_msg("report has \"%s\"; report:\n%s", needle, hay);
}

/* Every test's report: exactly one, quiescent. */
static void assert_one_quiescent_report(const char *rep)
{
    if (count_substr(rep, "shutdown report") != 1)
        fail_msg("%d shutdown reports, want 1:\n%s", count_substr(rep, "shutdown report"), rep);
    assert_contains(rep, "audit: 0 tasks live, 0 ops in flight: quiescent");
    assert_lacks(rep, "NOT QUIESCENT");
}

static void cfg_with_report(struct tr_config *cfg, int report_fd)
{
    tr_config_init(cfg);
    cfg->report_fd = report_fd;
}

/* After the engine is gone: the signal is neither blocked nor pending. */
static void assert_signal_released(int sig)
{
    sigset_t m, p;
    assert_int_equal(pthread_sigmask(SIG_BLOCK, NULL, &m), 0);
    assert_int_equal(sigpending(&p), 0);
    assert_int_equal(sigismember(&m, sig), 0);
    assert_int_equal(sigismember(&p, sig), 0);
}

static bool sig_blocked_here(int sig)
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

static int int_cmp(const void *a, const void *b)
{
    int x = *(const int *)a, y = *(const int *)b;
    return (x > y) - (x < y);
}

static void snap_take(struct proc_snap *s)
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

static void snap_assert_same(const struct proc_snap *a, const struct proc_snap *b)
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

static int capture_stats_hook(void *arg)
{
    (void)arg;
    hook_ran++;
    hook_stats = tstats();
    return 0;
}

static const char *sig_abbrev(int sig)
{
    const char *a = sigabbrev_np(sig);
    return a ? a : "?";
}

/* ------------------------------------------- rung 1: graceful shutdown */

struct r1_ctx {
    int sig;
    int pfd[2];
    tr_task *reader, *sleeper;
    ssize_t r_read;
    int r_sleep;
    int r_wait;
    int read_returned, sleep_returned;
    bool before_sd, after_sd;
    bool mask_sig, mask_term, mask_int; /* blocked inside the engine's tasks? */
};

static int r1_reader(void *p)
{
    struct r1_ctx *c = p;
    char b[8];
    c->r_read = tr_read(c->pfd[0], b, sizeof(b), -1);
    c->read_returned = 1;
    return (int)c->r_read;
}

static int r1_sleeper(void *p)
{
    struct r1_ctx *c = p;
    c->r_sleep = tr_sleep_ns(HOUR_NS);
    c->sleep_returned = 1;
    return c->r_sleep;
}

static int r1_killer(void *p)
{
    struct r1_ctx *c = p;
    TCHECK(wait_parked_lax(c->reader, TR_WAIT_OP));
    TCHECK(wait_parked_lax(c->sleeper, TR_WAIT_TIMER));
    c->mask_sig = sig_blocked_here(c->sig);
    c->mask_term = sig_blocked_here(SIGTERM);
    c->mask_int = sig_blocked_here(SIGINT);
    c->before_sd = tr_shutting_down();
    kill_self(c->sig);
    c->r_wait = tr_wait_shutdown();
    c->after_sd = tr_shutting_down();
    return 0;
}

/* One rung-1 run: a reader parked on a pipe, a sleeper, and a task that
 * sends `sig` to the process and waits for the shutdown. custom: the
 * engine's shutdown set is {sig} only. */
static void rung1(int sig, bool custom)
{
    struct r1_ctx c;
    memset(&c, 0, sizeof(c));
    c.sig = sig;
    c.r_wait = -1;
    make_pipe(c.pfd);
    int rep = report_open();
    struct tr_config cfg;
    cfg_with_report(&cfg, rep);
    if (custom) {
        sigemptyset(&cfg.shutdown_signals);
        sigaddset(&cfg.shutdown_signals, sig);
        assert_false(sig_blocked_here(sig));
    }
    tr_engine *e = NULL;
    assert_int_equal(tr_engine_create(&e, &cfg), 0);
    /* The engine blocks its shutdown signals in this thread while it exists. */
    assert_true(sig_blocked_here(sig));
    struct tr_spawn_opts ro = {.name = "reader"}, so = {.name = "sleeper"}, ko = {.name = "killer"};
    assert_int_equal(tr_spawn(e, &c.reader, r1_reader, &c, &ro), 0);
    assert_int_equal(tr_spawn(e, &c.sleeper, r1_sleeper, &c, &so), 0);
    assert_int_equal(tr_detach(c.reader), 0);
    assert_int_equal(tr_detach(c.sleeper), 0);
    assert_int_equal(tr_spawn(e, NULL, r1_killer, &c, &ko), 0);
    assert_int_equal(tr_engine_run(e), 0);
    tr_test_assert_clean();

    assert_true(c.mask_sig);
    if (custom) {
        /* Only the configured set is blocked: SIGTERM/SIGINT keep their
         * default disposition path. */
        assert_false(c.mask_term);
        assert_false(c.mask_int);
    } else {
        assert_true(c.mask_term);
        assert_true(c.mask_int);
    }
    assert_false(c.before_sd);
    assert_int_equal(c.r_wait, 0);
    assert_true(c.after_sd);
    assert_int_equal(c.read_returned, 1);
    assert_int_equal(c.r_read, -ECANCELED);
    assert_int_equal(c.sleep_returned, 1);
    assert_int_equal(c.r_sleep, -ECANCELED);
    struct tr_stats s = stats_of(e);
    assert_int_equal(s.signals_received, 1);
    assert_int_equal(s.tasks_spawned, 3);
    assert_int_equal(s.tasks_cancelled, 2);
    assert_int_equal(s.tasks_ok, 1);
    assert_int_equal(s.tasks_killed, 0);
    assert_int_equal(s.tasks_failed, 0);
    tr_test_assert_quiescent(e);
    assert_int_equal(tr_engine_destroy(e), 0);

    char *r = report_text(rep);
    char want[64];
    snprintf(want, sizeof(want), "trigger: signal %s (%d)", sig_abbrev(sig), sig);
    assert_contains(r, want);
    assert_contains(r, "signals received: 1)");
    assert_contains(r, "shields held");
    assert_contains(r, "0 tasks killed");
    assert_contains(r, "signal mask restored");
    assert_lacks(r, "killed: task");
    assert_one_quiescent_report(r);
    free(r);
    close(rep);
    assert_pipe_passes_16(c.pfd);
    close_pair(c.pfd);
    assert_signal_released(sig);
}

/* Rung 1: a SIGTERM sent by a task to its own process starts one graceful
 * shutdown: tr_wait_shutdown returns 0, parked tasks end -ECANCELED, one
 * signal counted, the report names it. */
static void test_signals_sigterm_graceful_shutdown(void **state)
{
    (void)state;
    rung1(SIGTERM, false);
}

/* The same with SIGINT. */
static void test_signals_sigint_graceful_shutdown(void **state)
{
    (void)state;
    rung1(SIGINT, false);
}

/* cfg.shutdown_signals = {SIGUSR1}: SIGUSR1 triggers the shutdown, and the
 * engine blocks neither SIGTERM nor SIGINT (observed from inside a task). */
static void test_signals_custom_set_sigusr1(void **state)
{
    (void)state;
    rung1(SIGUSR1, true);
    assert_signal_released(SIGUSR1);
}

/* ------------------------------------------- a signal from a child process */

struct child_ctx {
    int pfd[2];
    tr_task *reader;
    ssize_t r_read;
    int r_wait;
    pid_t pid;
    int wstatus;
    pid_t waited;
};

static int child_reader(void *p)
{
    struct child_ctx *c = p;
    char b[8];
    c->r_read = tr_read(c->pfd[0], b, sizeof(b), -1);
    return (int)c->r_read;
}

static int child_parent(void *p)
{
    struct child_ctx *c = p;
    TCHECK(wait_parked_lax(c->reader, TR_WAIT_OP));
    pid_t pid = tr_child_signal_parent(SIGTERM); /* one signal to us, then gone */
    TCHECK(pid > 0);
    c->pid = pid;
    if (pid < 0)
        return -1;
    /* The shutdown began, so the child's kill() is done: waitpid only waits
     * for its _exit. */
    c->r_wait = tr_wait_shutdown();
    c->waited = tr_child_reap(pid, &c->wstatus);
    return 0;
}

/* A SIGTERM from another process (a forked child) starts the same orderly
 * shutdown. The child is reaped while the engine still blocks SIGTERM. */
static void test_signals_from_child_process(void **state)
{
    (void)state;
    struct child_ctx c;
    memset(&c, 0, sizeof(c));
    c.r_wait = -1;
    make_pipe(c.pfd);
    int rep = report_open();
    struct tr_config cfg;
    cfg_with_report(&cfg, rep);
    tr_engine *e = NULL;
    assert_int_equal(tr_engine_create(&e, &cfg), 0);
    assert_int_equal(tr_spawn(e, &c.reader, child_reader, &c, NULL), 0);
    assert_int_equal(tr_detach(c.reader), 0);
    assert_int_equal(tr_spawn(e, NULL, child_parent, &c, NULL), 0);
    assert_int_equal(tr_engine_run(e), 0);
    tr_test_assert_clean();
    assert_true(c.pid > 0);
    assert_int_equal(c.waited, c.pid);
    assert_true(WIFEXITED(c.wstatus));
    assert_int_equal(WEXITSTATUS(c.wstatus), 0);
    assert_int_equal(c.r_wait, 0);
    assert_int_equal(c.r_read, -ECANCELED);
    struct tr_stats s = stats_of(e);
    assert_int_equal(s.signals_received, 1);
    assert_int_equal(s.tasks_cancelled, 1);
    assert_int_equal(s.tasks_ok, 1);
    assert_int_equal(s.tasks_killed, 0);
    tr_test_assert_quiescent(e);
    assert_int_equal(tr_engine_destroy(e), 0);
    char *r = report_text(rep);
    assert_contains(r, "trigger: signal TERM (15)");
    assert_one_quiescent_report(r);
    free(r);
    close(rep);
    close_pair(c.pfd);
    assert_signal_released(SIGTERM);
}

/* ------------------------------------------- rung 2: the 2nd signal breaks shields */

struct r2_ctx {
    tr_engine *e;
    int pfd[2];
    tr_task *shielded;
    ssize_t s_res;
    int s_returned;
    int s_shield_after;
    /* observed by the controller between the 1st and 2nd signal */
    bool got1, got2;
    bool sd_began, still_parked, is_cancelled, is_shielded, in_drain, shields_intact;
    bool still_parked_later;
    int dump_n;
    char dump[1024];
};

static int r2_shielded(void *p)
{
    struct r2_ctx *c = p;
    char b[8];
    TCHECK_EQ(tr_shield_begin(), 1);
    c->s_res = tr_read(c->pfd[0], b, sizeof(b), -1);
    c->s_returned = 1;
    c->s_shield_after = tr_shield_end();
    return c->s_res < 0 ? (int)c->s_res : 0;
}

static int r2_controller(void *p)
{
    struct r2_ctx *c = p;
    tr_task *s = c->shielded;
    TCHECK(wait_parked_lax(s, TR_WAIT_OP));
    kill_self(SIGTERM);
    c->got1 = wait_signals(1);
    c->sd_began = tr_shutting_down();
    /* The shutdown is in its Drain phase: everyone is cancelled, but the
     * shield holds the read in flight. */
    c->in_drain = c->e->sd.phase == TR_PH_DRAIN;
    c->shields_intact = !c->e->sd.shields_broken;
    c->still_parked = parked_on(s, TR_WAIT_OP) && c->s_returned == 0;
    c->is_cancelled = s->cancelled;
    c->is_shielded = s->shield > 0;
    int mfd = memfd_create("dump", MFD_CLOEXEC);
    TCHECK(mfd >= 0);
    if (mfd >= 0) {
        c->dump_n = tr_engine_dump(c->e, mfd);
        ssize_t n = pread(mfd, c->dump, sizeof(c->dump) - 1, 0);
        c->dump[n > 0 ? n : 0] = '\0';
        close(mfd);
    }
    /* More passes change nothing: only a 2nd signal (or grace, 60 s away)
     * moves it. */
    yields_lax(50);
    c->still_parked_later = parked_on(s, TR_WAIT_OP) && c->s_returned == 0;
    TCHECK_EQ(tstats().signals_received, 1);
    kill_self(SIGTERM);
    c->got2 = wait_signals(2);
    return 0;
}

/* Rung 2: with grace_ms far away, the 1st SIGTERM cancels everyone but a
 * shielded read stays parked; the 2nd SIGTERM breaks the shield: the read
 * returns -ECANCELED and the run ends without killing anyone. */
static void test_signals_second_signal_breaks_shield(void **state)
{
    (void)state;
    struct r2_ctx c;
    memset(&c, 0, sizeof(c));
    c.s_res = 1;
    make_pipe(c.pfd);
    int rep = report_open();
    struct tr_config cfg;
    cfg_with_report(&cfg, rep);
    cfg.grace_ms = 60000;
    cfg.kill_ms = 60000;
    tr_engine *e = NULL;
    assert_int_equal(tr_engine_create(&e, &cfg), 0);
    c.e = e;
    struct tr_spawn_opts so = {.name = "shielded-reader"};
    assert_int_equal(tr_spawn(e, &c.shielded, r2_shielded, &c, &so), 0);
    assert_int_equal(tr_detach(c.shielded), 0);
    assert_int_equal(tr_spawn(e, NULL, r2_controller, &c, NULL), 0);
    assert_int_equal(tr_engine_run(e), 0);
    tr_test_assert_clean();
    assert_true(c.got1);
    assert_true(c.sd_began);
    assert_true(c.in_drain);
    assert_true(c.shields_intact);
    assert_true(c.still_parked);
    assert_true(c.is_cancelled);
    assert_true(c.is_shielded);
    assert_true(c.still_parked_later);
    assert_int_equal(c.dump_n, 2);
    if (!strstr(c.dump, "'shielded-reader' parked-op op=read") ||
        !strstr(c.dump, "cancelled shielded"))
        fail_msg("dump does not show the shielded read parked:\n%s", c.dump);
    assert_true(c.got2);
    assert_int_equal(c.s_returned, 1);
    assert_int_equal(c.s_res, -ECANCELED);
    assert_int_equal(c.s_shield_after, 0);
    struct tr_stats s = stats_of(e);
    assert_int_equal(s.signals_received, 2);
    assert_int_equal(s.tasks_killed, 0);
    assert_int_equal(s.tasks_cancelled, 1);
    assert_int_equal(s.tasks_ok, 1);
    tr_test_assert_quiescent(e);
    assert_int_equal(tr_engine_destroy(e), 0);
    char *r = report_text(rep);
    assert_contains(r, "trigger: signal TERM (15), signals received: 2)");
    assert_contains(r, "shields broken");
    assert_contains(r, "0 tasks killed");
    assert_lacks(r, "killed: task");
    assert_one_quiescent_report(r);
    free(r);
    close(rep);
    assert_pipe_passes_16(c.pfd);
    close_pair(c.pfd);
    assert_signal_released(SIGTERM);
}

/* ------------------------------------------- rung 3: the 3rd signal kills */

#define FOREVER 1000000000000ll /* a bound no test ever reaches */

struct r3_ctx {
    tr_engine *e;
    int pfd[2];
    tr_task *stubborn;
    long long iters;
    long long ecanceled;
    int returned;
    bool got1, got2;
    bool alive_after1, alive_after2, spinning_after2, broken_after2;
    long long iters_at2;
};

static int r3_stubborn(void *p)
{
    struct r3_ctx *c = p;
    char b[8];
    /* Ignores cancellation: re-reads in a shield after every -ECANCELED. */
    for (long long i = 0; i < FOREVER; i++) {
        tr_shield_begin();
        ssize_t r = tr_read(c->pfd[0], b, sizeof(b), -1);
        tr_shield_end();
        c->iters++;
        if (r == -ECANCELED)
            c->ecanceled++;
    }
    c->returned = 1;
    return 0;
}

static int r3_controller(void *p)
{
    struct r3_ctx *c = p;
    tr_task *k = c->stubborn;
    TCHECK(wait_parked_lax(k, TR_WAIT_OP));
    kill_self(SIGTERM);
    c->got1 = wait_signals(1);
    yields_lax(20);
    c->alive_after1 = parked_on(k, TR_WAIT_OP) && c->iters == 0;
    kill_self(SIGTERM);
    c->got2 = wait_signals(2);
    c->iters_at2 = c->iters;
    yields_lax(20);
    /* Shields are broken: the stubborn task's reads now fail at once, and
     * it keeps looping (through the scheduler), alive. */
    c->broken_after2 = c->e->sd.shields_broken && c->e->sd.phase == TR_PH_DRAIN;
    c->spinning_after2 = c->iters > c->iters_at2 && c->ecanceled == c->iters;
    c->alive_after2 = k->state != TR_TASK_DONE && k->state != TR_TASK_FREED && !c->returned;
    kill_self(SIGTERM);
    /* Return at once: a task still alive when the 3rd signal is read is
     * killed, and only the stubborn one should be. */
    return 0;
}

/* Rung 3: with grace_ms and kill_ms far away, a task that ignores
 * cancellation forever survives the 1st and 2nd signal and is killed by
 * the 3rd: tasks_killed == 1, the report names it, the run ends. */
static void test_signals_third_signal_kills_stubborn_task(void **state)
{
    (void)state;
    struct r3_ctx c;
    memset(&c, 0, sizeof(c));
    make_pipe(c.pfd);
    int rep = report_open();
    struct tr_config cfg;
    cfg_with_report(&cfg, rep);
    cfg.grace_ms = 60000;
    cfg.kill_ms = 60000;
    tr_engine *e = NULL;
    assert_int_equal(tr_engine_create(&e, &cfg), 0);
    c.e = e;
    struct tr_spawn_opts so = {.name = "stubborn"}, co = {.name = "controller"};
    assert_int_equal(tr_spawn(e, &c.stubborn, r3_stubborn, &c, &so), 0);
    assert_int_equal(tr_detach(c.stubborn), 0);
    assert_int_equal(tr_spawn(e, NULL, r3_controller, &c, &co), 0);
    assert_int_equal(tr_engine_run(e), 0);
    tr_test_assert_clean();
    assert_true(c.got1);
    assert_true(c.alive_after1);
    assert_true(c.got2);
    assert_true(c.broken_after2);
    assert_true(c.spinning_after2);
    assert_true(c.alive_after2);
    assert_int_equal(c.returned, 0); /* never resumed after the kill */
    struct tr_stats s = stats_of(e);
    assert_int_equal(s.signals_received, 3);
    assert_int_equal(s.tasks_killed, 1);
    assert_int_equal(s.tasks_ok, 1); /* the controller */
    tr_test_assert_quiescent(e);
    assert_int_equal(tr_engine_destroy(e), 0);
    char *r = report_text(rep);
    assert_contains(r, "signals received: 3)");
    assert_contains(r, "shields broken");
    assert_contains(r, "1 tasks killed");
    assert_contains(r, "killed: task 'stubborn'");
    assert_int_equal(count_substr(r, "killed: task"), 1);
    assert_one_quiescent_report(r);
    free(r);
    close(rep);
    assert_pipe_passes_16(c.pfd);
    close_pair(c.pfd);
    assert_signal_released(SIGTERM);
}

/* ------------------------------------------- a killed task's stack buffer */

struct ks_ctx {
    int pfd[2];
    tr_task *late;
    int late_parked;
    ssize_t late_res;
    int late_resumed;
    bool got1, got2;
    bool parked1, uncancelled1, parked2, uncancelled2, broken2;
    int main_escaped;
};

static int ks_late_reader(void *p)
{
    struct ks_ctx *c = p;
    char buf[16]; /* on this task's stack, which the Kill phase frees */
    memset(buf, 0, sizeof(buf));
    c->late_parked = 1;
    c->late_res = tr_read(c->pfd[0], buf, sizeof(buf), -1);
    c->late_resumed = 1; /* a killed task never gets here */
    return (int)c->late_res;
}

static int ks_main(void *p)
{
    struct ks_ctx *c = p;
    TCHECK_EQ(tr_at_shutdown(capture_stats_hook, NULL), 0);
    /* LATE: not cancelled while another task lives, so it is still parked
     * on its read (not even cancelled) when the 3rd signal kills it. */
    struct tr_spawn_opts lo = {.name = "late-reader", .flags = TR_SPAWN_LATE};
    TCHECK_EQ(tr_spawn(NULL, &c->late, ks_late_reader, c, &lo), 0);
    TCHECK_EQ(tr_detach(c->late), 0);
    TCHECK(wait_parked_lax(c->late, TR_WAIT_OP));
    tr_engine *e = tr__engine_of_caller();
    kill_self(SIGTERM);
    c->got1 = wait_signals(1);
    c->parked1 = parked_on(c->late, TR_WAIT_OP);
    c->uncancelled1 = !c->late->cancelled;
    kill_self(SIGTERM);
    c->got2 = wait_signals(2);
    yields_lax(5);
    c->broken2 = e->sd.shields_broken;
    c->parked2 = parked_on(c->late, TR_WAIT_OP);
    c->uncancelled2 = !c->late->cancelled;
    kill_self(SIGTERM);
    /* Ignore cancellation forever: killed with the late reader. */
    for (long long i = 0; i < FOREVER; i++)
        (void)tr_yield();
    c->main_escaped = 1;
    return 0;
}

/* Rung 3 and G1: a task parked on a pipe read into a buffer on its own
 * stack is killed by the 3rd signal. Its read is cancelled and reaped
 * before the stack goes: after tr_run returns, 16 bytes written to the pipe
 * are all still there (the kernel did not deliver them into the freed
 * stack). */
static void test_signals_killed_task_stack_buffer_not_written(void **state)
{
    (void)state;
    struct ks_ctx c;
    memset(&c, 0, sizeof(c));
    c.late_res = 1;
    make_pipe(c.pfd);
    hook_ran = 0;
    memset(&hook_stats, 0, sizeof(hook_stats));
    int rep = report_open();
    struct tr_config cfg;
    cfg_with_report(&cfg, rep);
    cfg.grace_ms = 60000;
    cfg.kill_ms = 60000;
    int res = tr_run(ks_main, &c, &cfg);
    tr_test_assert_clean();
    assert_int_equal(res, -ECANCELED); /* main was killed */
    assert_true(c.got1);
    assert_true(c.got2);
    assert_true(c.parked1);
    assert_true(c.uncancelled1);
    assert_true(c.broken2);
    assert_true(c.parked2);
    assert_true(c.uncancelled2);
    assert_int_equal(c.late_parked, 1);
    assert_int_equal(c.late_resumed, 0);
    assert_int_equal(c.main_escaped, 0);
    assert_int_equal(hook_ran, 1);
    assert_int_equal(hook_stats.tasks_killed, 2);
    assert_int_equal(hook_stats.signals_received, 3);
    assert_int_equal(hook_stats.ops_inflight, 0);
    assert_int_equal(hook_stats.tasks_live, 1); /* the hook's own task */
    char *r = report_text(rep);
    assert_contains(r, "2 tasks killed");
    assert_contains(r, "killed: task 'late-reader'");
    assert_contains(r, "killed: task 'main'");
    assert_contains(r, "signal mask restored");
    assert_one_quiescent_report(r);
    free(r);
    close(rep);
    assert_pipe_passes_16(c.pfd);
    close_pair(c.pfd);
    assert_signal_released(SIGTERM);
}

/* ------------------------------------------- mask and fds around tr_run */

struct mask_ctx {
    int sig_to_send; /* 0: main just returns */
    int pfd[2];
    bool term_blocked, int_blocked;
    int r_nop, r_sleep, r_wait;
    ssize_t r_read;
    int result;
};

static int mask_reader(void *p)
{
    struct mask_ctx *c = p;
    char b[8];
    c->r_read = tr_read(c->pfd[0], b, sizeof(b), -1);
    return (int)c->r_read;
}

static int mask_main(void *p)
{
    struct mask_ctx *c = p;
    c->term_blocked = sig_blocked_here(SIGTERM);
    c->int_blocked = sig_blocked_here(SIGINT);
    c->r_nop = tr_nop();
    c->r_sleep = tr_sleep_ns(1000);
    /* Fds opened and closed inside the run, and a reader left parked for
     * the shutdown to cancel. */
    TCHECK_EQ(pipe2(c->pfd, O_CLOEXEC), 0);
    tr_task *rd = NULL;
    TCHECK_EQ(tr_spawn(NULL, &rd, mask_reader, c, NULL), 0);
    TCHECK(wait_parked_lax(rd, TR_WAIT_OP));
    TCHECK_EQ(tr_detach(rd), 0);
    TCHECK_EQ(tr_at_shutdown(capture_stats_hook, NULL), 0);
    if (c->sig_to_send) {
        kill_self(c->sig_to_send);
        c->r_wait = tr_wait_shutdown();
    }
    return c->result;
}

/* Closes the pipe mask_main opened (the reader has ended by now). */
static void mask_close_pipe(struct mask_ctx *c)
{
    assert_true(c->pfd[0] >= 0 && c->pfd[1] >= 0);
    close_pair(c->pfd);
}

static void mask_run(struct mask_ctx *c, int sig, int result, int report_fd)
{
    memset(c, 0, sizeof(*c));
    c->pfd[0] = c->pfd[1] = -1;
    c->sig_to_send = sig;
    c->result = result;
    c->r_wait = sig ? -1 : 0;
    hook_ran = 0;
    memset(&hook_stats, 0, sizeof(hook_stats));
    struct tr_config cfg;
    cfg_with_report(&cfg, report_fd);
    assert_int_equal(tr_run(mask_main, c, &cfg), result);
    tr_test_assert_clean();
    assert_true(c->term_blocked);
    assert_true(c->int_blocked);
    assert_int_equal(c->r_nop, 0);
    assert_int_equal(c->r_sleep, 0);
    assert_int_equal(c->r_wait, 0);
    assert_int_equal(c->r_read, -ECANCELED);
    assert_int_equal(hook_ran, 1);
    assert_int_equal(hook_stats.signals_received, sig ? 1 : 0);
}

/* tr_run ended by main returning: the blocked mask and the list of open
 * fds are identical before and after. */
static void test_signals_mask_and_fds_restored_main_returns(void **state)
{
    (void)state;
    int rep = report_open();
    struct proc_snap before, after;
    snap_take(&before);
    struct mask_ctx c;
    mask_run(&c, 0, 42, rep);
    mask_close_pipe(&c);
    snap_take(&after);
    snap_assert_same(&before, &after);
    char *r = report_text(rep);
    assert_contains(r, "trigger: main task returned");
    assert_contains(r, "signal mask restored");
    assert_one_quiescent_report(r);
    free(r);
    close(rep);
    assert_signal_released(SIGTERM);
    assert_signal_released(SIGINT);
}

/* tr_run ended by SIGTERM: the same. */
static void test_signals_mask_and_fds_restored_after_sigterm(void **state)
{
    (void)state;
    int rep = report_open();
    struct proc_snap before, after;
    snap_take(&before);
    struct mask_ctx c;
    mask_run(&c, SIGTERM, 5, rep);
    mask_close_pipe(&c);
    snap_take(&after);
    snap_assert_same(&before, &after);
    char *r = report_text(rep);
    assert_contains(r, "trigger: signal TERM (15)");
    assert_contains(r, "signal mask restored");
    assert_one_quiescent_report(r);
    free(r);
    close(rep);
    assert_signal_released(SIGTERM);
}

/* A shutdown signal the caller had blocked before tr_run stays blocked
 * after it (the engine restores only what it added), for a run ended by
 * main returning and for one ended by that very signal; the signal the
 * engine consumed is not left pending. */
static void test_signals_caller_blocked_signal_stays_blocked(void **state)
{
    (void)state;
    sigset_t term, orig;
    sigemptyset(&term);
    sigaddset(&term, SIGTERM);
    assert_int_equal(pthread_sigmask(SIG_BLOCK, &term, &orig), 0);
    struct proc_snap before, after;
    snap_take(&before);
    assert_int_equal(before.blocked[SIGTERM], 1);
    assert_int_equal(before.blocked[SIGINT], 0);

    struct mask_ctx c;
    mask_run(&c, 0, 3, -1);
    mask_close_pipe(&c);
    snap_take(&after);
    snap_assert_same(&before, &after);

    mask_run(&c, SIGTERM, 4, -1);
    mask_close_pipe(&c);
    snap_take(&after);
    snap_assert_same(&before, &after);
    assert_int_equal(after.blocked[SIGTERM], 1);

    mask_run(&c, SIGINT, 6, -1);
    mask_close_pipe(&c);
    snap_take(&after);
    snap_assert_same(&before, &after);

    sigset_t pend;
    assert_int_equal(sigpending(&pend), 0);
    bool leftover = sigismember(&pend, SIGTERM) == 1;
    if (leftover) {
        /* Consume it before unblocking, or it would kill the process. */
        struct timespec zero = {0, 0};
        (void)sigtimedwait(&term, NULL, &zero);
    }
    assert_int_equal(pthread_sigmask(SIG_SETMASK, &orig, NULL), 0);
    assert_false(leftover);
    assert_signal_released(SIGTERM);
    assert_signal_released(SIGINT);
}

/* ------------------------------------------- pending at destroy */

static volatile sig_atomic_t caught_term, caught_int;

static void count_handler(int sig)
{
    if (sig == SIGTERM)
        caught_term++;
    else if (sig == SIGINT)
        caught_int++;
}

static int nop_task(void *p)
{
    (void)p;
    return tr_nop();
}

static int shutdown_task(void *p)
{
    (void)p;
    return tr_engine_shutdown(tr_self_engine());
}

/* Shutdown signals that arrive after tr_engine_run returned but before
 * tr_engine_destroy. After a shutdown they belong to its ladder: destroy
 * consumes them before it restores the mask, so they are neither delivered
 * (which, with the default action, would kill the process) nor left
 * pending. Without a shutdown nobody handled them: destroy leaves them
 * pending, and unblocking delivers them once each, as without the engine.
 * Counting handlers stand in for the default action, so a violation fails
 * the test instead of killing the suite. */
static void pending_at_destroy(bool after_shutdown)
{
    struct sigaction sa, old_term, old_int;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = count_handler;
    sigemptyset(&sa.sa_mask);
    assert_int_equal(sigaction(SIGTERM, &sa, &old_term), 0);
    assert_int_equal(sigaction(SIGINT, &sa, &old_int), 0);
    caught_term = caught_int = 0;
    struct tr_config cfg;
    cfg_with_report(&cfg, -1);
    tr_engine *e = NULL;
    assert_int_equal(tr_engine_create(&e, &cfg), 0);
    assert_int_equal(tr_spawn(e, NULL, after_shutdown ? shutdown_task : nop_task, NULL, NULL), 0);
    assert_int_equal(tr_engine_run(e), 0);
    /* The engine still exists: both stay pending. */
    assert_int_equal(kill(getpid(), SIGTERM), 0);
    assert_int_equal(kill(getpid(), SIGINT), 0);
    sigset_t p;
    assert_int_equal(sigpending(&p), 0);
    assert_int_equal(sigismember(&p, SIGTERM), 1);
    assert_int_equal(sigismember(&p, SIGINT), 1);
    assert_int_equal(caught_term + caught_int, 0);
    struct tr_stats s = stats_of(e);
    assert_int_equal(s.signals_received, 0);
    assert_int_equal(tr_engine_destroy(e), 0);
    int term = caught_term, intr = caught_int;
    sigset_t m;
    assert_int_equal(pthread_sigmask(SIG_BLOCK, NULL, &m), 0);
    assert_int_equal(sigpending(&p), 0);
    bool term_pending = sigismember(&p, SIGTERM) == 1, int_pending = sigismember(&p, SIGINT) == 1;
    bool term_blocked = sigismember(&m, SIGTERM) == 1, int_blocked = sigismember(&m, SIGINT) == 1;
    if (term_pending || int_pending) {
        /* Do not leave them for the next test. */
        sigset_t both;
        sigemptyset(&both);
        sigaddset(&both, SIGTERM);
        sigaddset(&both, SIGINT);
        struct timespec zero = {0, 0};
        pthread_sigmask(SIG_BLOCK, &both, NULL);
        while (sigtimedwait(&both, NULL, &zero) > 0)
            ;
    }
    assert_int_equal(sigaction(SIGTERM, &old_term, NULL), 0);
    assert_int_equal(sigaction(SIGINT, &old_int, NULL), 0);
    if (term_blocked || int_blocked) {
        sigset_t both;
        sigemptyset(&both);
        sigaddset(&both, SIGTERM);
        sigaddset(&both, SIGINT);
        pthread_sigmask(SIG_UNBLOCK, &both, NULL);
    }
    assert_int_equal(term, after_shutdown ? 0 : 1);
    assert_int_equal(intr, after_shutdown ? 0 : 1);
    assert_false(term_pending);
    assert_false(int_pending);
    assert_false(term_blocked);
    assert_false(int_blocked);
}

static void test_signals_pending_at_destroy_consumed_after_shutdown(void **state)
{
    (void)state;
    pending_at_destroy(true);
}

static void test_signals_pending_at_destroy_delivered_without_shutdown(void **state)
{
    (void)state;
    pending_at_destroy(false);
}

/* ------------------------------------------- tr_engine_shutdown from a handler */

static tr_engine *volatile handler_engine;
static volatile sig_atomic_t handler_calls;
static volatile sig_atomic_t handler_rc;

static void shutdown_handler(int sig)
{
    (void)sig;
    int saved = errno;
    handler_rc = tr_engine_shutdown(handler_engine);
    handler_calls++;
    errno = saved;
}

struct h_ctx {
    int pfd[2];
    tr_task *reader, *waiter;
    bool from_child;
    ssize_t r_read;
    int r_wait_waiter, r_wait_raiser;
    int calls_after_kill;
    pid_t pid, waited;
    int wstatus;
};

static int h_reader(void *p)
{
    struct h_ctx *c = p;
    char b[8];
    c->r_read = tr_read(c->pfd[0], b, sizeof(b), -1);
    return (int)c->r_read;
}

static int h_waiter(void *p)
{
    struct h_ctx *c = p;
    c->r_wait_waiter = tr_wait_shutdown();
    return 0;
}

static int h_raiser(void *p)
{
    struct h_ctx *c = p;
    TCHECK(wait_parked_lax(c->reader, TR_WAIT_OP));
    TCHECK(wait_parked_lax(c->waiter, TR_WAIT_SHUTDOWN));
    if (!c->from_child) {
        /* SIGUSR2 is not blocked: the handler runs before kill returns,
         * on this task's stack. */
        TCHECK_EQ(kill(getpid(), SIGUSR2), 0);
        c->calls_after_kill = handler_calls;
        c->r_wait_raiser = tr_wait_shutdown();
        return 0;
    }
    /* From a child: the signal lands whenever it lands, most likely while
     * the engine waits in io_uring_enter with every task parked. */
    pid_t pid = tr_child_signal_parent(SIGUSR2);
    TCHECK(pid > 0);
    c->pid = pid;
    if (pid < 0)
        return -1;
    c->r_wait_raiser = tr_wait_shutdown();
    /* The handler ran, so the child's kill is done. */
    c->waited = tr_child_reap(pid, &c->wstatus);
    return 0;
}

static void handler_run(bool from_child)
{
    struct h_ctx c;
    memset(&c, 0, sizeof(c));
    c.from_child = from_child;
    c.r_wait_waiter = c.r_wait_raiser = -1;
    make_pipe(c.pfd);
    int rep = report_open();
    struct tr_config cfg;
    cfg_with_report(&cfg, rep);
    tr_engine *e = NULL;
    assert_int_equal(tr_engine_create(&e, &cfg), 0);
    handler_engine = e;
    handler_calls = 0;
    handler_rc = -1;
    struct sigaction sa, old;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = shutdown_handler;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0; /* no SA_RESTART: the engine must cope with EINTR */
    assert_int_equal(sigaction(SIGUSR2, &sa, &old), 0);
    assert_int_equal(tr_spawn(e, &c.reader, h_reader, &c, NULL), 0);
    assert_int_equal(tr_spawn(e, &c.waiter, h_waiter, &c, NULL), 0);
    assert_int_equal(tr_detach(c.reader), 0);
    assert_int_equal(tr_detach(c.waiter), 0);
    assert_int_equal(tr_spawn(e, NULL, h_raiser, &c, NULL), 0);
    assert_int_equal(tr_engine_run(e), 0);
    assert_int_equal(sigaction(SIGUSR2, &old, NULL), 0);
    handler_engine = NULL;
    tr_test_assert_clean();
    assert_int_equal(handler_calls, 1);
    assert_int_equal(handler_rc, 0);
    if (from_child) {
        assert_true(c.pid > 0);
        assert_int_equal(c.waited, c.pid);
        assert_true(WIFEXITED(c.wstatus));
        assert_int_equal(WEXITSTATUS(c.wstatus), 0);
    } else {
        assert_int_equal(c.calls_after_kill, 1);
    }
    assert_int_equal(c.r_wait_raiser, 0);
    assert_int_equal(c.r_wait_waiter, 0);
    assert_int_equal(c.r_read, -ECANCELED);
    struct tr_stats s = stats_of(e);
    assert_int_equal(s.signals_received, 0); /* not a shutdown signal */
    assert_int_equal(s.tasks_cancelled, 1);
    assert_int_equal(s.tasks_ok, 2);
    assert_int_equal(s.tasks_killed, 0);
    tr_test_assert_quiescent(e);
    assert_int_equal(tr_engine_destroy(e), 0);
    char *r = report_text(rep);
    assert_contains(r, "trigger: tr_engine_shutdown(), signals received: 0)");
    assert_one_quiescent_report(r);
    free(r);
    close(rep);
    assert_pipe_passes_16(c.pfd);
    close_pair(c.pfd);
}

/* tr_engine_shutdown called from a SIGUSR2 handler (raised by a task, so
 * the handler runs on a task's stack) starts an orderly shutdown. */
static void test_signals_shutdown_from_signal_handler(void **state)
{
    (void)state;
    handler_run(false);
}

/* The same with SIGUSR2 sent by a child: the handler interrupts the engine
 * wherever it is, typically its wait in io_uring_enter, and the eventfd
 * wakes it. */
static void test_signals_shutdown_from_signal_handler_async(void **state)
{
    (void)state;
    handler_run(true);
}

/* ------------------------------------------- a storm of 10,000 signals */

#define STORM_SIGNALS 10000
#define STORM_PIPES 8
#define STORM_READERS 200 /* plain readers, spread over the pipes */
#define STORM_SLEEPERS 200
#define STORM_SHIELDED 40 /* shielded readers */
#define STORM_SHSLEEP 40  /* shielded sleepers */
#define STORM_CLEANUP 20  /* do shielded I/O after their cancellation */
#define STORM_TASKS                                                                            \
    (STORM_READERS + STORM_SLEEPERS + STORM_SHIELDED + STORM_SHSLEEP + STORM_CLEANUP)

struct storm_ctx {
    int pipes[STORM_PIPES][2];
    int go[2]; /* the parent's "start" to the child */
    pid_t pid, waited;
    int wstatus;
    int hook_calls;
    int r_wait;
    bool all_parked;
    int started;
};

static int storm_fd(struct storm_ctx *c)
{
    return c->pipes[c->started++ % STORM_PIPES][0];
}

struct storm_arg {
    struct storm_ctx *c;
    int fd;
};
static struct storm_arg storm_args[STORM_TASKS];

static int storm_reader(void *p)
{
    struct storm_arg *a = p;
    char b[8];
    ssize_t r = tr_read(a->fd, b, sizeof(b), -1);
    return r < 0 ? (int)r : 0;
}

static int storm_sleeper(void *p)
{
    (void)p;
    return tr_sleep_ns(HOUR_NS);
}

static int storm_shielded_reader(void *p)
{
    struct storm_arg *a = p;
    char b[8];
    tr_shield_begin();
    ssize_t r = tr_read(a->fd, b, sizeof(b), -1);
    tr_shield_end();
    return r < 0 ? (int)r : 0;
}

static int storm_shielded_sleeper(void *p)
{
    (void)p;
    tr_shield_begin();
    int r = tr_sleep_ns(HOUR_NS);
    tr_shield_end();
    return r;
}

static int storm_cleanup(void *p)
{
    struct storm_arg *a = p;
    char b[8];
    ssize_t r = tr_read(a->fd, b, sizeof(b), -1);
    /* Cleanup I/O after the cancellation, inside a shield. */
    tr_shield_begin();
    (void)tr_nop();
    tr_shield_end();
    return r < 0 ? (int)r : 0;
}

/* At shutdown, after every task ended: reap the child first thing, before
 * any blocking call, so this hook cannot be cancelled or killed before the
 * child (still sending, maybe) is gone. */
static int storm_hook(void *p)
{
    struct storm_ctx *c = p;
    c->hook_calls++;
    if (c->pid > 0)
        c->waited = tr_child_reap(c->pid, &c->wstatus);
    return 0;
}

static int storm_main(void *p)
{
    struct storm_ctx *c = p;
    TCHECK_EQ(tr_at_shutdown(storm_hook, c), 0);
    int k = 0;
    for (int i = 0; i < STORM_READERS; i++, k++) {
        storm_args[k] = (struct storm_arg){c, storm_fd(c)};
        TCHECK_EQ(tr_spawn(NULL, NULL, storm_reader, &storm_args[k], NULL), 0);
    }
    for (int i = 0; i < STORM_SLEEPERS; i++, k++)
        TCHECK_EQ(tr_spawn(NULL, NULL, storm_sleeper, NULL, NULL), 0);
    for (int i = 0; i < STORM_SHIELDED; i++, k++) {
        storm_args[k] = (struct storm_arg){c, storm_fd(c)};
        TCHECK_EQ(tr_spawn(NULL, NULL, storm_shielded_reader, &storm_args[k], NULL), 0);
    }
    for (int i = 0; i < STORM_SHSLEEP; i++, k++)
        TCHECK_EQ(tr_spawn(NULL, NULL, storm_shielded_sleeper, NULL, NULL), 0);
    for (int i = 0; i < STORM_CLEANUP; i++, k++) {
        storm_args[k] = (struct storm_arg){c, storm_fd(c)};
        TCHECK_EQ(tr_spawn(NULL, NULL, storm_cleanup, &storm_args[k], NULL), 0);
    }
    const uint64_t nreads = STORM_READERS + STORM_SHIELDED + STORM_CLEANUP;
    const uint64_t nsleeps = STORM_SLEEPERS + STORM_SHSLEEP;
    for (int i = 0; i < 100; i++) {
        struct tr_stats s = tstats();
        if (s.ops_inflight == nreads && s.timers_pending == nsleeps)
            break;
        TCHECK_EQ(tr_yield(), 0);
    }
    struct tr_stats s = tstats();
    c->all_parked = s.ops_inflight == nreads && s.timers_pending == nsleeps;
    /* Start the storm; the engine is running with everything parked. */
    TCHECK_EQ(write(c->go[1], "g", 1), 1);
    c->r_wait = tr_wait_shutdown();
    return 0;
}

/* The storm's child (tr_child_fork): waits for "go", then sends
 * STORM_SIGNALS signals to the parent; exits 0 if every kill worked, 1 if
 * one failed, 2 without a "go". */
static int storm_child(void *p)
{
    struct storm_ctx *c = p;
    char g;
    ssize_t rr;
    close(c->go[1]);
    do {
        rr = read(c->go[0], &g, 1);
    } while (rr < 0 && errno == EINTR);
    if (rr != 1)
        return 2;
    pid_t parent = getppid();
    int bad = 0;
    for (int i = 0; i < STORM_SIGNALS; i++)
        bad |= kill(parent, (i % 8 == 7) ? SIGINT : SIGTERM) != 0;
    return bad ? 1 : 0;
}

/* A child sends 10,000 SIGTERM/SIGINT to the parent in a tight loop. The
 * engine, with hundreds of tasks parked on pipes and sleeps (some shielded,
 * some doing cleanup I/O), goes through exactly ONE orderly shutdown:
 * tr_engine_run returns 0 once, one report, quiescent, the balance holds,
 * the child is reaped inside the engine's lifetime. The kernel coalesces
 * pending signals, so only signals_received >= 1 is asserted. */
static void test_signals_storm_one_orderly_shutdown(void **state)
{
    (void)state;
    static struct storm_ctx c;
    memset(&c, 0, sizeof(c));
    c.r_wait = -1;
    for (int i = 0; i < STORM_PIPES; i++)
        make_pipe(c.pipes[i]);
    make_pipe(c.go);
    int rep = report_open();
    struct tr_config cfg;
    cfg_with_report(&cfg, rep);
    tr_engine *e = NULL;
    assert_int_equal(tr_engine_create(&e, &cfg), 0);
    /* The child is forked while the engine blocks SIGTERM/SIGINT: it waits
     * for "go", then storms. */
    pid_t pid = tr_child_fork(storm_child, &c);
    assert_true(pid >= 0);
    c.pid = pid;
    assert_int_equal(tr_spawn(e, NULL, storm_main, &c, NULL), 0);
    int run_rc = tr_engine_run(e);
    if (c.waited != pid) {
        /* The hook never reaped it: do it now, while the engine (and its
         * mask) still exists, then fail. */
        ssize_t w = write(c.go[1], "g", 1);
        (void)w;
        tr_child_reap(pid, &c.wstatus);
        fail_msg("the child was not reaped inside the engine's run (hook calls %d)",
                 c.hook_calls);
    }
    assert_int_equal(run_rc, 0);
    tr_test_assert_clean();
    assert_true(c.all_parked);
    assert_int_equal(c.r_wait, 0);
    assert_int_equal(c.hook_calls, 1);
    assert_true(WIFEXITED(c.wstatus));
    assert_int_equal(WEXITSTATUS(c.wstatus), 0);
    struct tr_stats s = stats_of(e);
    assert_true(s.signals_received >= 1);
    assert_int_equal(s.tasks_spawned, STORM_TASKS + 2); /* + main + the hook task */
    tr_test_assert_quiescent(e);
    /* A second run finds nothing to do: no second shutdown, no report. */
    assert_int_equal(tr_engine_run(e), 0);
    tr_test_assert_quiescent(e);
    struct tr_stats s2 = stats_of(e);
    assert_int_equal(s2.tasks_spawned, s.tasks_spawned);
    assert_int_equal(tr_engine_destroy(e), 0);
    char *r = report_text(rep);
    assert_one_quiescent_report(r);
    assert_contains(r, "trigger: signal ");
    assert_int_equal(count_substr(r, "ring closed"), 1);
    print_message("storm: %d signals sent, %llu read by the engine, %llu tasks killed\n",
                  STORM_SIGNALS, (unsigned long long)s.signals_received,
                  (unsigned long long)s.tasks_killed);
    free(r);
    close(rep);
    for (int i = 0; i < STORM_PIPES; i++) {
        assert_pipe_passes_16(c.pipes[i]);
        close_pair(c.pipes[i]);
    }
    close_pair(c.go);
    assert_signal_released(SIGTERM);
    assert_signal_released(SIGINT);
}

/* ------------------------------------------- 100,000 parked tasks, one SIGTERM */

#define BIG_SLEEPERS 100000
#define BIG_READERS 1000

struct big_ctx {
    int pfd[2];
    int spawned, spawn_err;
    int n_sleep_cancelled, n_sleep_other;
    int n_read_cancelled, n_read_other;
    bool all_parked;
    uint64_t t_kill_ns;
    int r_wait;
};

static int big_sleeper(void *p)
{
    struct big_ctx *c = p;
    int r = tr_sleep_ns(HOUR_NS);
    if (r == -ECANCELED)
        c->n_sleep_cancelled++;
    else
        c->n_sleep_other++;
    return r;
}

static int big_reader(void *p)
{
    struct big_ctx *c = p;
    char b[8];
    ssize_t r = tr_read(c->pfd[0], b, sizeof(b), -1);
    if (r == -ECANCELED)
        c->n_read_cancelled++;
    else
        c->n_read_other++;
    return (int)r;
}

static int big_main(void *p)
{
    struct big_ctx *c = p;
    TCHECK_EQ(tr_at_shutdown(capture_stats_hook, NULL), 0);
    for (int i = 0; i < BIG_SLEEPERS + BIG_READERS; i++) {
        int rc = tr_spawn(NULL, NULL, i < BIG_SLEEPERS ? big_sleeper : big_reader, c, NULL);
        if (rc != 0) {
            c->spawn_err = rc;
            break;
        }
        c->spawned++;
    }
    /* Bound: one pass runs every task that was runnable at its start. */
    for (int i = 0; i < 100; i++) {
        struct tr_stats s = tstats();
        if (s.timers_pending == BIG_SLEEPERS && s.ops_inflight == BIG_READERS)
            break;
        TCHECK_EQ(tr_yield(), 0);
    }
    struct tr_stats s = tstats();
    c->all_parked = s.timers_pending == BIG_SLEEPERS && s.ops_inflight == BIG_READERS;
    c->t_kill_ns = tr__now_ns();
    kill_self(SIGTERM);
    c->r_wait = tr_wait_shutdown();
    return 0;
}

static long status_kb(const char *key)
{
    FILE *f = fopen("/proc/self/status", "re");
    if (!f)
        return -1;
    char line[256];
    long v = -1;
    size_t klen = strlen(key);
    while (fgets(line, sizeof(line), f))
        if (strncmp(line, key, klen) == 0 && line[klen] == ':') {
            v = strtol(line + klen + 1, NULL, 10);
            break;
        }
    fclose(f);
    return v;
}

/* 100,000 tasks sleeping for an hour plus 1,000 parked on a pipe read, all
 * parked, then one SIGTERM: tr_run returns, every one of them ended
 * -ECANCELED, the run ended quiescent. The wall time from kill() to tr_run
 * returning and the RSS are printed, for information only. */
static void test_signals_100k_parked_sigterm(void **state)
{
    (void)state;
    static struct big_ctx c;
    memset(&c, 0, sizeof(c));
    c.r_wait = -1;
    make_pipe(c.pfd);
    hook_ran = 0;
    memset(&hook_stats, 0, sizeof(hook_stats));
    int rep = report_open();
    struct tr_config cfg;
    cfg_with_report(&cfg, rep);
    long rss0 = status_kb("VmRSS");
    int res = tr_run(big_main, &c, &cfg);
    uint64_t t_end = tr__now_ns();
    long rss1 = status_kb("VmRSS"), hwm = status_kb("VmHWM");
    tr_test_assert_clean();
    double ms = c.t_kill_ns ? (double)(t_end - c.t_kill_ns) / 1e6 : -1;
    print_message("100k parked + 1k reads, SIGTERM: kill() -> tr_run returned in %.1f ms; "
                  "RSS %ld KiB before, %ld KiB after, peak %ld KiB\n",
                  ms, rss0, rss1, hwm);
    if (c.spawn_err)
        print_error("tr_spawn failed after %d tasks: %s\n", c.spawned, strerror(-c.spawn_err));
    assert_int_equal(res, 0);
    assert_int_equal(c.spawned, BIG_SLEEPERS + BIG_READERS);
    assert_true(c.all_parked);
    assert_int_equal(c.r_wait, 0);
    assert_int_equal(c.n_sleep_cancelled, BIG_SLEEPERS);
    assert_int_equal(c.n_sleep_other, 0);
    assert_int_equal(c.n_read_cancelled, BIG_READERS);
    assert_int_equal(c.n_read_other, 0);
    assert_int_equal(hook_ran, 1);
    assert_int_equal(hook_stats.signals_received, 1);
    assert_int_equal(hook_stats.tasks_cancelled, BIG_SLEEPERS + BIG_READERS);
    assert_int_equal(hook_stats.tasks_ok, 1); /* main */
    assert_int_equal(hook_stats.tasks_killed, 0);
    assert_int_equal(hook_stats.tasks_live, 1); /* the hook's own task */
    assert_int_equal(hook_stats.ops_inflight, 0);
    assert_int_equal(hook_stats.timers_pending, 0);
    char *r = report_text(rep);
    assert_contains(r, "trigger: signal TERM (15), signals received: 1)");
    char want[96];
    /* "2 ok": main and the engine's at-shutdown task (the hook). */
    snprintf(want, sizeof(want), "tasks ended: 2 ok, %d cancelled, 0 failed, 0 killed",
             BIG_SLEEPERS + BIG_READERS);
    assert_contains(r, want);
    assert_one_quiescent_report(r);
    free(r);
    close(rep);
    assert_pipe_passes_16(c.pfd);
    close_pair(c.pfd);
    assert_signal_released(SIGTERM);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_signals_sigterm_graceful_shutdown),
        T(test_signals_sigint_graceful_shutdown),
        T(test_signals_custom_set_sigusr1),
        T(test_signals_from_child_process),
        T(test_signals_second_signal_breaks_shield),
        T(test_signals_third_signal_kills_stubborn_task),
        T(test_signals_killed_task_stack_buffer_not_written),
        T(test_signals_mask_and_fds_restored_main_returns),
        T(test_signals_mask_and_fds_restored_after_sigterm),
        T(test_signals_caller_blocked_signal_stays_blocked),
        T(test_signals_pending_at_destroy_consumed_after_shutdown),
        T(test_signals_pending_at_destroy_delivered_without_shutdown),
        T(test_signals_shutdown_from_signal_handler),
        T(test_signals_shutdown_from_signal_handler_async),
        T(test_signals_storm_one_orderly_shutdown),
        T(test_signals_100k_parked_sigterm),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
