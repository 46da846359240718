/* SPDX-License-Identifier: MIT */
/*
 * Description: regression tests for the defects the independent review of
 * the foundation issue found (issue 10, Part B). Each test fails without
 * its fix; the number is the item's in the issue.
 */
#define _GNU_SOURCE
#include "tr_test.h"
#include "tr_harness.h"

#include <liburing.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <sys/wait.h>
#include <time.h>
#include <sys/socket.h>

/* ---- B.12: sends never raise SIGPIPE ---------------------------------------- */

static int send_to_closed_peer(void *arg)
{
    (void)arg;
    int sv[2];
    TCHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    close(sv[1]);
    char b[64] = {0};
    /* With SIGPIPE at its default action, a send without MSG_NOSIGNAL kills
     * the process here (exit 141). */
    ssize_t n = tr_send(sv[0], b, sizeof(b), 0);
    TCHECK(n == -EPIPE || n == -ECONNRESET);
    close(sv[0]);
    return 0;
}

static void test_review_send_to_closed_peer_epipe_not_sigpipe(void **state)
{
    (void)state;
    signal(SIGPIPE, SIG_DFL);
    assert_int_equal(tr_test_run(send_to_closed_peer, NULL), 0);
    tr_test_assert_clean();
}

/* ---- tr_shutdown (IORING_OP_SHUTDOWN) ------------------------------------------ */

static int shutdown_write_side(void *arg)
{
    (void)arg;
    int sv[2];
    TCHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    TCHECK_EQ(tr_send(sv[0], "bye", 3, 0), 3);
    TCHECK_EQ(tr_shutdown(sv[0], SHUT_WR), 0);
    char b[8];
    TCHECK_EQ(tr_recv(sv[1], b, sizeof(b), 0), 3); /* what was sent before... */
    TCHECK_EQ(tr_recv(sv[1], b, sizeof(b), 0), 0); /* ...then an orderly EOF */
    TCHECK_EQ(tr_send(sv[1], "x", 1, 0), 1);       /* the other way still works */
    TCHECK_EQ(tr_recv(sv[0], b, sizeof(b), 0), 1);
    TCHECK_EQ(tr_shutdown(sv[0], 42), -EINVAL);
    TCHECK_EQ(tr_shutdown(-1, SHUT_RDWR), -EBADF);
    close(sv[0]);
    close(sv[1]);
    return 0;
}

static void test_review_shutdown_op_half_closes(void **state)
{
    (void)state;
    assert_int_equal(tr_test_run(shutdown_write_side, NULL), 0);
    tr_test_assert_clean();
    assert_int_equal(tr_shutdown(0, SHUT_WR), -EPERM);
}

/* ---- B.1, B.2: tr_op refuses what one SQE and one CQE cannot honour ---------- */

struct prep_spec {
    int fd;
    unsigned what;
};

static void prep_refused(struct io_uring_sqe *sqe, void *ctx)
{
    const struct prep_spec *p = ctx;
    switch (p->what) {
    case 0:
        io_uring_prep_poll_multishot(sqe, p->fd, POLLIN);
        break;
    case 1:
        io_uring_prep_multishot_accept(sqe, p->fd, NULL, NULL, 0);
        break;
    case 2:
        io_uring_prep_send_zc(sqe, p->fd, "x", 1, 0, 0);
        break;
    case 3:
        io_uring_prep_recv(sqe, p->fd, NULL, 0, 0);
        sqe->ioprio |= IORING_RECV_MULTISHOT;
        break;
    case 4: /* IO_DRAIN: every later SQE, the engine's cancels too, would wait */
        io_uring_prep_poll_add(sqe, p->fd, POLLIN);
        sqe->flags |= IOSQE_IO_DRAIN;
        break;
    case 5:
        io_uring_prep_nop(sqe);
        sqe->flags |= IOSQE_IO_LINK;
        break;
    case 6:
        io_uring_prep_nop(sqe);
        sqe->flags |= IOSQE_CQE_SKIP_SUCCESS;
        break;
    default:
        io_uring_prep_cancel64(sqe, 0, IORING_ASYNC_CANCEL_ANY);
        break;
    }
}

static int op_refusals(void *arg)
{
    (void)arg;
    int p[2];
    make_pipe(p);
    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    TCHECK_EQ(bind(lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    TCHECK_EQ(listen(lfd, 8), 0);
    int fds[] = {p[0], lfd, p[1], p[0], p[0], -1, -1, -1};
    struct tr_stats before = tstats();
    for (unsigned i = 0; i < 8; i++) {
        struct prep_spec ps = {fds[i], i};
        TCHECK_EQ(tr_op(prep_refused, &ps), -EINVAL);
    }
    struct tr_stats after = tstats();
    /* Nothing reached the ring. */
    TCHECK_EQ(after.ops_submitted, before.ops_submitted);
    TCHECK_EQ(after.ops_inflight, 0);
    TCHECK_EQ(tr_nop(), 0); /* and the task goes on normally */
    close(lfd);
    close_pair(p);
    return 0;
}

static void test_review_op_refuses_multishot_zc_drain_links(void **state)
{
    (void)state;
    assert_int_equal(tr_test_run(op_refusals, NULL), 0);
    tr_test_assert_clean();
}

/* ---- B.3: no blocking call inside a prep callback; no half-made SQE -------- */

struct prep_yield {
    int fd;
    char *buf;
    int yield_rc, nop_rc, sleep_rc;
};

static void prep_that_blocks(struct io_uring_sqe *sqe, void *ctx)
{
    struct prep_yield *py = ctx;
    py->yield_rc = tr_yield();
    py->nop_rc = tr_nop();
    py->sleep_rc = tr_sleep_ns(1);
    io_uring_prep_read(sqe, py->fd, py->buf, 4, 0);
}

static int blocking_in_prep(void *arg)
{
    (void)arg;
    int p[2];
    make_pipe(p);
    char buf[8] = {0};
    struct prep_yield py = {p[0], buf, 1, 1, 1};
    TCHECK_EQ(write(p[1], "byte", 4), 4);
    TCHECK_EQ(tr_op(prep_that_blocks, &py), 4); /* the read got the bytes */
    TCHECK_EQ(py.yield_rc, -EPERM);
    TCHECK_EQ(py.nop_rc, -EPERM);
    TCHECK_EQ(py.sleep_rc, -EPERM);
    TCHECK(memcmp(buf, "byte", 4) == 0);
    TCHECK_EQ(pipe_bytes(p[0]), 0);
    TCHECK_EQ(tr_yield(), 0); /* outside prep, blocking works again */
    close_pair(p);
    return 0;
}

static void test_review_blocking_call_in_prep_refused(void **state)
{
    (void)state;
    assert_int_equal(tr_test_run(blocking_in_prep, NULL), 0);
    tr_test_assert_clean();
}

/* ---- B.7: a killed task's completed fd is closed, not leaked ---------------- */

struct kill_fd {
    tr_task *a;
    bool via_op; /* the openat through tr_op (R5) instead of tr_openat */
    char path[64];
};

static void prep_openat(struct io_uring_sqe *sqe, void *ctx)
{
    io_uring_prep_openat(sqe, AT_FDCWD, ctx, O_RDONLY | O_CLOEXEC, 0);
}

static int opener(void *arg)
{
    struct kill_fd *k = arg;
    tr_cancel(tr_self());
    tr_shield_begin();
    (void)tr_yield(); /* resumed with its cancellation: the kill rung may reach it */
    int fd = k->via_op ? tr_op(prep_openat, k->path)
                       : tr_openat(AT_FDCWD, k->path, O_RDONLY | O_CLOEXEC, 0);
    /* Never reached when killed; otherwise a real result or a cancel. */
    if (fd >= 0)
        close(fd);
    tr_shield_end();
    return 0;
}

static int kill_fd_driver(void *arg)
{
    struct kill_fd *k = arg;
    TCHECK_EQ(tr_spawn(NULL, &k->a, opener, k, NULL), 0);
    tr_detach(k->a);
    /* The opener runs, yields, then parks on its openat in the same pass
     * as our shutdown request: grace and kill 0 kill it before it can
     * take the fd its openat (completing inline) produced. */
    for (int i = 0; i < 100 && !parked_on(k->a, TR_WAIT_OP); i++)
        TCHECK_EQ(tr_yield(), 0);
    TCHECK_EQ(tr_engine_shutdown(tr_self_engine()), 0);
    return 0;
}

/* 20 rounds of the opener killed in the pass its openat completed: no fd
 * is ever left behind, and the engine closed some (the usual case). */
static void killed_opener_rounds(bool via_op)
{
    struct tr_config cfg;
    tr_config_init(&cfg);
    cfg.grace_ms = 0;
    cfg.kill_ms = 0;
    cfg.report_fd = -1;
    cfg.flags = TR_CFG_NO_SIGNALS;
    struct kill_fd k = {.path = "/tmp/taskring-review-XXXXXX", .via_op = via_op};
    int tmp = mkstemp(k.path);
    assert_true(tmp >= 0);
    close(tmp);
    int fds0 = count_fds();
    uint64_t closed = 0, killed = 0;
    for (int round = 0; round < 20; round++) {
        tr_engine *e = eng_new(&cfg);
        assert_int_equal(tr_spawn(e, NULL, kill_fd_driver, &k, NULL), 0);
        assert_int_equal(tr_engine_run(e), 0);
        struct tr_stats st = stats_of(e);
        closed += st.fds_closed_at_kill;
        killed += st.tasks_killed;
        tr_test_assert_quiescent(e);
        assert_int_equal(tr_engine_destroy(e), 0);
        /* Whatever happened, no fd is left behind. */
        assert_int_equal(count_fds(), fds0);
    }
    unlink(k.path);
    tr_test_assert_clean();
    assert_true(killed > 0);
    assert_true(closed > 0); /* the openat completes inline: the usual case */
}

static void test_review_killed_task_completed_fd_closed(void **state)
{
    (void)state;
    killed_opener_rounds(false);
}

/* ---- B.8: a rung fires only after the one before it was delivered ---------- */

static int ends_on_cancel(void *arg)
{
    int *ended = arg;
    int r = tr_nop(); /* -ECANCELED: spawned during the shutdown's pass */
    (*ended)++;
    return r < 0 ? r : 0;
}

static int spawn_then_shutdown(void *arg)
{
    for (int i = 0; i < 100; i++)
        TCHECK_EQ(tr_spawn(NULL, NULL, ends_on_cancel, arg, NULL), 0);
    TCHECK_EQ(tr_engine_shutdown(tr_self_engine()), 0);
    return 0;
}

static void test_review_runnable_tasks_not_killed_by_instant_ladder(void **state)
{
    (void)state;
    struct tr_config cfg;
    tr_config_init(&cfg);
    cfg.grace_ms = 0; /* the whole ladder in one pass, as three signals in a ms */
    cfg.kill_ms = 0;
    cfg.report_fd = -1;
    cfg.flags = TR_CFG_NO_SIGNALS;
    int ended = 0;
    tr_engine *e = eng_new(&cfg);
    assert_int_equal(tr_spawn(e, NULL, spawn_then_shutdown, &ended, NULL), 0);
    assert_int_equal(tr_engine_run(e), 0);
    struct tr_stats st = stats_of(e);
    assert_int_equal(ended, 100);
    assert_int_equal(st.tasks_killed, 0);
    assert_int_equal(st.tasks_cancelled, 100);
    tr_test_assert_quiescent(e);
    assert_int_equal(tr_engine_destroy(e), 0);
    tr_test_assert_clean();
}

/* A task that ignores every cancellation is still killed by the same
 * instant ladder, once its cancellation was delivered. */
static int ignores_cancel(void *arg)
{
    (void)arg;
    tr_shield_begin();
    for (;;)
        (void)tr_sleep_ns(1000000);
    return 0;
}

static void test_review_instant_ladder_still_kills_stubborn(void **state)
{
    (void)state;
    struct tr_config cfg;
    tr_config_init(&cfg);
    cfg.grace_ms = 0;
    cfg.kill_ms = 0;
    cfg.report_fd = -1;
    cfg.flags = TR_CFG_NO_SIGNALS;
    tr_engine *e = eng_new(&cfg);
    assert_int_equal(tr_spawn(e, NULL, ignores_cancel, NULL, NULL), 0);
    assert_int_equal(tr_spawn(e, NULL, spawn_then_shutdown, &(int){0}, NULL), 0);
    assert_int_equal(tr_engine_run(e), 0);
    struct tr_stats st = stats_of(e);
    assert_int_equal(st.tasks_killed, 1);
    tr_test_assert_quiescent(e);
    assert_int_equal(tr_engine_destroy(e), 0);
}

/* ---- A.5: a task of another engine ------------------------------------------ */

static int cancel_foreign(void *arg)
{
    TCHECK_EQ(tr_cancel((tr_task *)arg), -EXDEV);
    return 0;
}

static int noop_task(void *arg)
{
    (void)arg;
    return 0;
}

static void test_review_cancel_of_other_engines_task_exdev(void **state)
{
    (void)state;
    tr_engine *b = eng_new(NULL);
    tr_task *bt;
    assert_int_equal(tr_spawn(b, &bt, noop_task, NULL, NULL), 0);
    assert_int_equal(tr_test_run(cancel_foreign, bt), 0);
    assert_int_equal(tr_engine_run(b), 0);
    int res = -1;
    assert_int_equal(tr_task_result(bt, &res), 0);
    assert_int_equal(res, 0); /* it was never cancelled */
    assert_int_equal(tr_detach(bt), 0);
    assert_int_equal(tr_engine_destroy(b), 0);
    tr_test_assert_clean();
}

/* Outside a task, from a thread that is not the engine's (a SINGLE_ISSUER
 * ring's): -EXDEV, and the task is not cancelled (it wrote the target's attention byte and could
 * have touched its ring from the wrong thread: review rev2). */
static void *cancel_from_thread(void *arg)
{
    return (void *)(intptr_t)tr_cancel((tr_task *)arg);
}

static void test_review_cancel_from_another_thread_exdev(void **state)
{
    (void)state;
    tr_engine *e = eng_new(NULL);
    assert_int_equal(tr_engine_run(e), 0); /* now the engine has its thread */
    if (!e->rs.single_issuer) {
        /* Before Linux 6.0 a ring may move between threads: no owner. */
        assert_int_equal(tr_engine_destroy(e), 0);
        skip();
    }
    tr_task *t;
    assert_int_equal(tr_spawn(e, &t, noop_task, NULL, NULL), 0);
    pthread_t th;
    void *ret = NULL;
    assert_int_equal(pthread_create(&th, NULL, cancel_from_thread, t), 0);
    assert_int_equal(pthread_join(th, &ret), 0);
    assert_int_equal((int)(intptr_t)ret, -EXDEV);
    assert_int_equal(tr_engine_run(e), 0);
    int res = -1;
    assert_int_equal(tr_task_result(t, &res), 0);
    assert_int_equal(res, 0); /* it was never cancelled */
    assert_int_equal(tr_detach(t), 0);
    assert_int_equal(tr_engine_destroy(e), 0);
    tr_test_assert_clean();
}

/* ---- fork isolation for the tests that send real signals ---------------------- */

/* Runs fn in a child (tr_harness.h) and returns its wait status; -1 when it
 * hung and was killed at the deadline (far above the milliseconds each
 * child takes: a hang detector, not a timing assertion). */
static int in_child(int (*fn)(void *), unsigned timeout_s)
{
    struct tr_child_opts o = {.capture_stderr = true, .timeout_s = timeout_s};
    static struct tr_child_out out;
    tr_child_run(fn, NULL, &o, &out);
    if (out.timed_out || !WIFEXITED(out.status) || WEXITSTATUS(out.status) != 0)
        tr_child_describe("child", &out);
    return out.timed_out ? -1 : out.status;
}

/* ---- B.4: every run honours the ladder ---------------------------------------- */

static int forever(void *arg)
{
    int *ran = arg;
    (*ran)++;
    for (;;) /* ignores every cancellation: only the kill rung ends it */
        (void)tr_sleep_ns(1000000);
    return 0;
}

static int ask_shutdown(void *arg)
{
    (void)arg;
    return tr_engine_shutdown(tr_self_engine());
}

static int raise_term(void *arg)
{
    (void)arg;
    return kill(getpid(), SIGTERM) == 0 ? 0 : -errno;
}

static int later_runs_child(void *arg)
{
    (void)arg;
    struct tr_config cfg;
    tr_config_init(&cfg);
    cfg.grace_ms = 10;
    cfg.kill_ms = 10;
    cfg.report_fd = -1;
    tr_engine *e;
    if (tr_engine_create(&e, &cfg))
        return 10;
    int ran = 0;
    /* Three runs, each ended by the ladder: the first by tr_engine_shutdown,
     * the later ones after a finished shutdown, by tr_engine_shutdown and by
     * a real SIGTERM. */
    tr_fn triggers[] = {ask_shutdown, ask_shutdown, raise_term};
    for (int run = 0; run < 3; run++) {
        if (tr_spawn(e, NULL, forever, &ran, NULL) || tr_spawn(e, NULL, triggers[run], NULL, NULL))
            return 11;
        if (tr_engine_run(e) != 0)
            return 12;
        struct tr_stats st;
        tr_engine_stats(e, &st);
        if (st.tasks_live != 0 || st.tasks_killed != (uint64_t)run + 1)
            return 13 + run;
    }
    if (ran != 3)
        return 17;
    return tr_engine_destroy(e) == 0 ? 0 : 18;
}

static void test_review_runs_after_shutdown_honour_ladder(void **state)
{
    (void)state;
    int st = in_child(later_runs_child, 60);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);
}

/* ---- B.5: a run on the wrong thread changes nothing ----------------------------- */

static int wt_ran;

static int wt_task(void *arg)
{
    (void)arg;
    wt_ran++;
    return tr_nop();
}

static void *wt_thread(void *arg)
{
    tr_engine *e = arg;
    return (void *)(intptr_t)tr_engine_run(e);
}

static void test_review_run_on_other_thread_eexist_first(void **state)
{
    (void)state;
    struct tr_config cfg;
    tr_config_init(&cfg);
    cfg.flags = TR_CFG_NO_SIGNALS;
    tr_engine *e = eng_new(&cfg);
    assert_int_equal(tr_spawn(e, NULL, wt_task, NULL, NULL), 0);
    assert_int_equal(tr_engine_run(e), 0); /* binds the ring to this thread */
    wt_ran = 0;
    assert_int_equal(tr_spawn(e, NULL, wt_task, NULL, NULL), 0);
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, wt_thread, e), 0);
    void *rc;
    assert_int_equal(pthread_join(th, &rc), 0);
    assert_int_equal((int)(intptr_t)rc, -EEXIST);
    assert_int_equal(wt_ran, 0); /* refused before any task ran */
    struct tr_stats st = stats_of(e);
    assert_int_equal(st.ops_inflight, 0);
    assert_int_equal(tr_engine_run(e), 0); /* the owner runs it */
    assert_int_equal(wt_ran, 1);
    tr_test_assert_quiescent(e);
    assert_int_equal(tr_engine_destroy(e), 0);
}

/* ---- B.6: a report nobody reads never blocks the shutdown ---------------------- */

static int wait_then_end(void *arg)
{
    (void)arg;
    return tr_wait_shutdown();
}

static void test_review_report_to_full_pipe_never_blocks(void **state)
{
    (void)state;
    int p[2];
    assert_int_equal(pipe2(p, O_CLOEXEC), 0);
    /* Fill the pipe: nobody will ever read it. */
    int fl = fcntl(p[1], F_GETFL);
    fcntl(p[1], F_SETFL, fl | O_NONBLOCK);
    char junk[4096];
    memset(junk, 'x', sizeof(junk));
    for (int i = 0; i < 4096 && write(p[1], junk, sizeof(junk)) > 0; i++)
        ;
    fcntl(p[1], F_SETFL, fl); /* blocking again, as a terminal or a pipe is */
    struct tr_config cfg;
    tr_config_init(&cfg);
    cfg.flags = TR_CFG_NO_SIGNALS;
    cfg.report_fd = p[1];
    cfg.grace_ms = 0;
    tr_engine *e = eng_new(&cfg);
    assert_int_equal(tr_spawn(e, NULL, wait_then_end, NULL, NULL), 0);
    assert_int_equal(tr_spawn(e, NULL, forever, &(int){0}, NULL), 0); /* a dump too */
    assert_int_equal(tr_engine_shutdown(e), 0);
    assert_int_equal(tr_engine_run(e), 0);
    struct tr_stats st = stats_of(e);
    assert_true(st.report_lines_lost > 0);
    tr_test_assert_quiescent(e);
    assert_int_equal(tr_engine_destroy(e), 0);
    close_pair(p);
}

/* ---- B.9: a signal during the end of a shutdown belongs to it -------------------- */

static int sd_ready[2], sd_report[2];

static int sleeper_long(void *arg)
{
    (void)arg;
    return tr_sleep_ns(3600ull * 1000000000ull);
}

static int b9_main(void *arg)
{
    (void)arg;
    /* Many stacks to tear down: the engine's destroy takes a while after
     * its last report line, and the second signal lands in it. */
    for (int i = 0; i < 20000; i++)
        if (tr_spawn(NULL, NULL, sleeper_long, NULL, NULL))
            return -ENOMEM;
    char c = 1;
    if (write(sd_ready[1], &c, 1) != 1)
        return -EIO;
    return tr_wait_shutdown();
}

static int b9_child(void *arg)
{
    (void)arg;
    close(sd_report[0]);
    struct tr_config cfg;
    tr_config_init(&cfg);
    cfg.report_fd = sd_report[1];
    int r = tr_run(b9_main, NULL, &cfg);
    /* From here on a signal is ours (the contract ends at tr_run's return). */
    sigset_t ss;
    sigemptyset(&ss);
    sigaddset(&ss, SIGTERM);
    sigprocmask(SIG_BLOCK, &ss, NULL);
    return r == 0 ? 0 : 1;
}

static void test_review_signal_during_teardown_consumed(void **state)
{
    (void)state;
    for (int round = 0; round < 5; round++) {
        assert_int_equal(pipe2(sd_ready, O_CLOEXEC), 0);
        assert_int_equal(pipe2(sd_report, O_CLOEXEC), 0);
        pid_t pid = tr_child_fork(b9_child, NULL);
        assert_true(pid >= 0);
        close(sd_report[1]);
        char c;
        assert_int_equal(read(sd_ready[0], &c, 1), 1);
        assert_int_equal(kill(pid, SIGTERM), 0);
        /* The report's last line is written once the signalfd is closed:
         * the second SIGTERM then arrives while the engine is torn down. */
        char buf[8192];
        size_t got = 0;
        while (got < sizeof(buf) - 1) {
            ssize_t k = read(sd_report[0], buf + got, sizeof(buf) - 1 - got);
            if (k <= 0)
                break;
            got += (size_t)k;
            buf[got] = '\0';
            if (strstr(buf, "ring closed"))
                break;
        }
        assert_int_equal(kill(pid, SIGTERM), 0);
        int st;
        assert_int_equal(tr_child_reap(pid, &st), pid);
        if (!WIFEXITED(st))
            fail_msg("round %d: the child died by signal %d", round,
                     WIFSIGNALED(st) ? WTERMSIG(st) : 0);
        assert_int_equal(WEXITSTATUS(st), 0);
        close_pair(sd_ready);
        close(sd_report[0]);
    }
}

/* ---- B.10: two engines, one SIGTERM ---------------------------------------------- */

static int g12_ready[2];

static int g12_main(void *arg)
{
    (void)arg;
    char c = 1;
    if (write(g12_ready[1], &c, 1) != 1)
        return -EIO;
    return tr_wait_shutdown();
}

static void *g12_thread(void *arg)
{
    (void)arg;
    struct tr_config cfg;
    tr_config_init(&cfg);
    cfg.report_fd = -1;
    return (void *)(intptr_t)tr_run(g12_main, NULL, &cfg);
}

static int g12_child(void *arg)
{
    (void)arg;
    /* This thread must not take the process-directed signal either. */
    sigset_t ss;
    sigemptyset(&ss);
    sigaddset(&ss, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &ss, NULL);
    if (pipe2(g12_ready, O_CLOEXEC))
        return 20;
    pthread_t th[2];
    for (int i = 0; i < 2; i++)
        if (pthread_create(&th[i], NULL, g12_thread, NULL))
            return 21;
    char c;
    for (int i = 0; i < 2; i++)
        if (read(g12_ready[0], &c, 1) != 1)
            return 22;
    /* Both engines run and handle SIGTERM: one signal to the process. */
    kill(getpid(), SIGTERM);
    int bad = 0;
    for (int i = 0; i < 2; i++) {
        void *rc;
        pthread_join(th[i], &rc);
        bad += rc != NULL;
    }
    return bad ? 23 : 0;
}

static void test_review_one_signal_stops_every_engine(void **state)
{
    (void)state;
    int st = in_child(g12_child, 60);
    if (st == -1)
        fail_msg("one SIGTERM left an engine running (killed after 60 s)");
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);
}

/* ==== Findings of the independent review of this work (R1-R9) ==== */

/* ---- R1: a report to a reader that went away costs lines, not SIGPIPE ---- */

static int report_to_gone_reader(void *arg)
{
    bool sock = arg != NULL;
    signal(SIGPIPE, SIG_DFL);
    int p[2];
    if (sock ? socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, p) : pipe2(p, O_CLOEXEC))
        return 30;
    close(p[0]); /* the `| tee` that died of the same Ctrl+C */
    struct tr_config cfg;
    tr_config_init(&cfg);
    cfg.flags = TR_CFG_NO_SIGNALS;
    cfg.report_fd = p[1];
    cfg.grace_ms = 0;
    tr_engine *e;
    if (tr_engine_create(&e, &cfg))
        return 31;
    int ran = 0;
    tr_spawn(e, NULL, forever, &ran, NULL); /* the dump is written too */
    tr_engine_shutdown(e);
    if (tr_engine_run(e) != 0)
        return 32;
    if (tr_engine_dump(e, p[1]) < 0 && false)
        return 33;
    struct tr_stats st;
    tr_engine_stats(e, &st);
    if (st.report_lines_lost == 0)
        return 34;
    sigset_t pend;
    sigpending(&pend);
    if (sigismember(&pend, SIGPIPE) == 1)
        return 35; /* and none left pending for the application */
    return tr_engine_destroy(e) == 0 ? 0 : 36;
}

static void test_review_report_to_gone_reader_no_sigpipe(void **state)
{
    (void)state;
    for (int sock = 0; sock < 2; sock++) {
        struct tr_child_opts o = {.capture_stderr = true, .timeout_s = 60};
        static struct tr_child_out out;
        tr_child_run(report_to_gone_reader, sock ? (void *)1 : NULL, &o, &out);
        if (!WIFEXITED(out.status) || WEXITSTATUS(out.status) != 0)
            tr_child_describe(sock ? "socket" : "pipe", &out);
        assert_true(WIFEXITED(out.status)); /* not killed by SIGPIPE */
        assert_int_equal(WEXITSTATUS(out.status), 0);
    }
}

/* ---- R3: a shutdown asked between runs is honoured after a finished one ---- */

static tr_task *dl_a, *dl_b;

/* Tasks spawned after a finished shutdown start cancelled: shielded, each
 * waits for the other until the next shutdown's grace breaks the shields. */
static int dl_join_b(void *arg)
{
    (void)arg;
    tr_shield_begin();
    int r;
    return tr_join(dl_b, &r);
}

static int dl_join_a(void *arg)
{
    (void)arg;
    tr_shield_begin();
    int r;
    return tr_join(dl_a, &r);
}

static void test_review_deadlock_recovered_after_finished_shutdown(void **state)
{
    (void)state;
    struct tr_config cfg;
    tr_config_init(&cfg);
    cfg.flags = TR_CFG_NO_SIGNALS;
    cfg.report_fd = -1;
    cfg.grace_ms = 10;
    cfg.kill_ms = 10;
    tr_engine *e = eng_new(&cfg);
    /* Run 1: a whole shutdown. */
    assert_int_equal(tr_spawn(e, NULL, ask_shutdown, NULL, NULL), 0);
    assert_int_equal(tr_engine_run(e), 0);
    /* Run 2: two tasks join each other: -EDEADLK; then the recovery of
     * tr_run (tr_engine_shutdown, run again) must end them. */
    assert_int_equal(tr_spawn(e, &dl_a, dl_join_b, NULL, NULL), 0);
    assert_int_equal(tr_spawn(e, &dl_b, dl_join_a, NULL, NULL), 0);
    assert_int_equal(tr_engine_run(e), -EDEADLK);
    assert_int_equal(tr_engine_shutdown(e), 0);
    assert_int_equal(tr_engine_run(e), 0);
    struct tr_stats st = stats_of(e);
    assert_int_equal(st.tasks_live, 0);
    tr_detach(dl_a);
    tr_detach(dl_b);
    assert_int_equal(tr_engine_destroy(e), 0);
}

/* ---- R4: the kill rung reaches a task that only ever closes ---------------- */

static int closes_forever(void *arg)
{
    (void)arg;
    for (;;)
        (void)tr_close(dup(2)); /* tr_close is never cut short */
    return 0;
}

static void test_review_kill_reaches_close_only_loop(void **state)
{
    (void)state;
    struct tr_config cfg;
    tr_config_init(&cfg);
    cfg.flags = TR_CFG_NO_SIGNALS;
    cfg.report_fd = -1;
    cfg.grace_ms = 10;
    cfg.kill_ms = 10;
    tr_engine *e = eng_new(&cfg);
    assert_int_equal(tr_spawn(e, NULL, closes_forever, NULL, NULL), 0);
    assert_int_equal(tr_engine_shutdown(e), 0);
    assert_int_equal(tr_engine_run(e), 0); /* the watchdog catches a hang */
    struct tr_stats st = stats_of(e);
    assert_int_equal(st.tasks_killed, 1);
    tr_test_assert_quiescent(e);
    assert_int_equal(tr_engine_destroy(e), 0);
    /* (The fd it dup'ed last is its own, and leaks with it, as the report
     * says of every killed task.) */
}

/* ---- R5: an fd made by tr_op is closed when its task is killed -------------- */

static void test_review_killed_task_op_fd_closed(void **state)
{
    (void)state;
    killed_opener_rounds(true);
}

/* ---- R6: a task looping on tr_wait_shutdown during a shutdown ends ----------- */

static int waits_forever(void *arg)
{
    (void)arg;
    for (;;)
        (void)tr_wait_shutdown();
    return 0;
}

static void test_review_wait_shutdown_loop_killed(void **state)
{
    (void)state;
    struct tr_config cfg;
    tr_config_init(&cfg);
    cfg.flags = TR_CFG_NO_SIGNALS;
    cfg.report_fd = -1;
    cfg.grace_ms = 10;
    cfg.kill_ms = 10;
    tr_engine *e = eng_new(&cfg);
    assert_int_equal(tr_spawn(e, NULL, waits_forever, NULL, NULL), 0);
    assert_int_equal(tr_engine_shutdown(e), 0);
    assert_int_equal(tr_engine_run(e), 0);
    assert_int_equal(stats_of(e).tasks_killed, 1);
    assert_int_equal(tr_engine_destroy(e), 0);
}

/* ---- R7: prep: a refused call has no effect; a cancel in prep applies ---------- */

struct prep_ca {
    int ca_rc;
    int fd;
};

static void prep_cancel_all(struct io_uring_sqe *sqe, void *ctx)
{
    struct prep_ca *pc = ctx;
    pc->ca_rc = tr_cancel_all(NULL, 0, TR_CANCEL_WAIT);
    io_uring_prep_nop(sqe);
}

static void prep_self_cancel(struct io_uring_sqe *sqe, void *ctx)
{
    struct prep_ca *pc = ctx;
    tr_cancel(tr_self());
    io_uring_prep_poll_add(sqe, pc->fd, POLLIN); /* nobody writes */
}

static int sleeper_1s(void *arg)
{
    int *res = arg;
    *res = tr_sleep_ns(1000000);
    return 0;
}

static int prep_effects(void *arg)
{
    (void)arg;
    int sleep_res = 1;
    TCHECK_EQ(tr_spawn(NULL, NULL, sleeper_1s, &sleep_res, NULL), 0);
    struct prep_ca pc = {1, -1};
    TCHECK_EQ(tr_op(prep_cancel_all, &pc), 0);
    TCHECK_EQ(pc.ca_rc, -EPERM);
    TCHECK_EQ(tr_sleep_ns(5000000), 0);
    TCHECK_EQ(sleep_res, 0); /* the other task was not cancelled */
    int p[2];
    make_pipe(p);
    pc.fd = p[0];
    TCHECK_EQ(tr_op(prep_self_cancel, &pc), -ECANCELED); /* not parked on the poll */
    close_pair(p);
    return 0;
}

static void test_review_prep_refusal_has_no_effect(void **state)
{
    (void)state;
    assert_int_equal(tr_test_run(prep_effects, NULL), 0);
    tr_test_assert_clean();
}

/* ---- R8: MSG_RING is refused ----------------------------------------------------- */

static void prep_msg_ring(struct io_uring_sqe *sqe, void *ctx)
{
    (void)ctx;
    io_uring_prep_msg_ring(sqe, 0, 0, 0, 0);
}

static int msg_ring_refused(void *arg)
{
    (void)arg;
    TCHECK_EQ(tr_op(prep_msg_ring, NULL), -EINVAL);
    return 0;
}

static void test_review_op_refuses_msg_ring(void **state)
{
    (void)state;
    assert_int_equal(tr_test_run(msg_ring_refused, NULL), 0);
    tr_test_assert_clean();
}

/* ---- R9: a destroy on another thread leaves no block behind for good ----------- */

static void *destroy_there(void *arg)
{
    return (void *)(intptr_t)tr_engine_destroy(arg);
}

static bool term_blocked(void)
{
    sigset_t m;
    pthread_sigmask(SIG_BLOCK, NULL, &m);
    return sigismember(&m, SIGTERM) == 1;
}

static int mask_child(void *arg)
{
    (void)arg;
    struct tr_config cfg;
    tr_config_init(&cfg);
    cfg.report_fd = -1;
    tr_engine *e1, *e2;
    if (term_blocked() || tr_engine_create(&e1, &cfg))
        return 40;
    pthread_t th;
    void *rc;
    if (pthread_create(&th, NULL, destroy_there, e1) || pthread_join(th, &rc) || rc)
        return 41;
    if (!term_blocked())
        return 42; /* another thread's destroy cannot touch ours */
    if (tr_engine_create(&e2, &cfg) || tr_engine_destroy(e2))
        return 43;
    return term_blocked() ? 44 : 0; /* the next engine here gave it back */
}

static void test_review_mask_after_destroy_elsewhere(void **state)
{
    (void)state;
    int st = in_child(mask_child, 60);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);
}

/* ---- a hook that returns inside a shield leaves nothing to the next (fuzzer) ---- */

static int hk_depths[2];

static int hook_leaves_shield(void *arg)
{
    (void)arg;
    hk_depths[0] = tr_shield_begin(); /* and returns without its end */
    return 0;
}

static int hook_after(void *arg)
{
    (void)arg;
    hk_depths[1] = tr_shield_end(); /* -EINVAL: it starts unshielded */
    return 0;
}

static int register_hooks(void *arg)
{
    (void)arg;
    TCHECK_EQ(tr_at_shutdown(hook_after, NULL), 0);         /* runs second (LIFO) */
    TCHECK_EQ(tr_at_shutdown(hook_leaves_shield, NULL), 0); /* runs first */
    return 0;
}

static void test_review_hooks_start_unshielded(void **state)
{
    (void)state;
    struct tr_config cfg;
    tr_config_init(&cfg);
    cfg.flags = TR_CFG_NO_SIGNALS;
    cfg.report_fd = -1;
    hk_depths[0] = hk_depths[1] = 0;
    assert_int_equal(tr_run(register_hooks, NULL, &cfg), 0);
    tr_test_assert_clean();
    assert_int_equal(hk_depths[0], 1);
    assert_int_equal(hk_depths[1], -EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_review_send_to_closed_peer_epipe_not_sigpipe),
        T(test_review_shutdown_op_half_closes),
        T(test_review_op_refuses_multishot_zc_drain_links),
        T(test_review_blocking_call_in_prep_refused),
        T(test_review_killed_task_completed_fd_closed),
        T(test_review_runnable_tasks_not_killed_by_instant_ladder),
        T(test_review_instant_ladder_still_kills_stubborn),
        T(test_review_cancel_of_other_engines_task_exdev),
        T(test_review_cancel_from_another_thread_exdev),
        T(test_review_runs_after_shutdown_honour_ladder),
        T(test_review_run_on_other_thread_eexist_first),
        T(test_review_report_to_full_pipe_never_blocks),
        T(test_review_signal_during_teardown_consumed),
        T(test_review_one_signal_stops_every_engine),
        T(test_review_report_to_gone_reader_no_sigpipe),
        T(test_review_deadlock_recovered_after_finished_shutdown),
        T(test_review_kill_reaches_close_only_loop),
        T(test_review_killed_task_op_fd_closed),
        T(test_review_wait_shutdown_loop_killed),
        T(test_review_prep_refusal_has_no_effect),
        T(test_review_op_refuses_msg_ring),
        T(test_review_mask_after_destroy_elsewhere),
        T(test_review_hooks_start_unshielded),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
