/* SPDX-License-Identifier: MIT */
/*
 * Description: the caller's signal state around an engine (DESIGN
 * section 4, "Signals"): the signal mask and the fd table are the same before
 * and after tr_run, whether main returns or a SIGTERM ends it, and a signal
 * the caller blocked stays blocked; a shutdown signal still pending at
 * tr_engine_destroy is consumed after a shutdown and delivered without one;
 * tr_engine_shutdown from a signal handler (raised in a task, or from a child
 * while the engine waits) starts one orderly shutdown.
 * Safety (every signal sent while an engine blocks it, children reaped
 * inside the engine's lifetime) and white-box parking: tr_test_signals.h.
 */
#define _GNU_SOURCE /* pipe2, memfd_create, sigabbrev_np */
#include "tr_test_signals.h"

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

/* ----------------------------------------------------------------- main */

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_signals_mask_and_fds_restored_main_returns),
        T(test_signals_mask_and_fds_restored_after_sigterm),
        T(test_signals_caller_blocked_signal_stays_blocked),
        T(test_signals_pending_at_destroy_consumed_after_shutdown),
        T(test_signals_pending_at_destroy_delivered_without_shutdown),
        T(test_signals_shutdown_from_signal_handler),
        T(test_signals_shutdown_from_signal_handler_async),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
