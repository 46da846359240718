/*
 * Description: the graceful shutdown of DESIGN section 4 (G6) and the calls
 * around it. Each trigger (tr_engine_shutdown from a task, before
 * tr_engine_run, from another thread; tr_run's main returning) leads to one
 * orderly shutdown; the phases keep their order: Stop (tr_shutting_down,
 * tr_wait_shutdown waiters wake with 0, new spawns start cancelled,
 * drain_ms), Cancel (LATE tasks only after all others ended), Drain (shields
 * hold until grace_ms), Kill (kill_ms after grace; the killed task's read is
 * cancelled and reaped before its stack goes, G1), Finalize (tr_at_shutdown
 * hooks LIFO in a task, the audit), Report. Also tr_engine_dump, tr_run and
 * re-running an engine after a natural end (G2: nothing in flight between
 * runs, the engine's own reads included).
 *
 * Real signals are tested in test_signals.c: every engine here is created
 * with TR_CFG_NO_SIGNALS. No test sleeps to synchronise or asserts a
 * duration: deadlines are set small (grace_ms 20-50) or large (drain_ms
 * 10000, which never slows a test because a phase ends as soon as no task
 * is left), and tests assert results and the ORDER of events. White-box
 * where it buys determinism: tr_task.state/wait (tr_internal.h) say that a
 * task is parked before a test triggers the shutdown.
 */
#define _GNU_SOURCE /* pipe2 */
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

static void ev_log(int ev)
{
    if (evl.n < EV_MAX)
        evl.ev[evl.n++] = ev;
}

/* The position of the first ev in the log, or -1. */
static int ev_pos(int ev)
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
static int sd_setup(void **state)
{
    tr_test_setup(state);
    memset(&evl, 0, sizeof(evl));
    memset(&rep, 0, sizeof(rep));
    rep.fd[0] = rep.fd[1] = -1;
    return 0;
}

static int sd_teardown(void **state)
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
static struct tr_config cfg_quiet(void)
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
static void rep_open(struct tr_config *c)
{
    assert_int_equal(pipe2(rep.fd, O_CLOEXEC), 0);
    c->report_fd = rep.fd[1];
}

/* After tr_engine_destroy (which writes the report's last line): the whole
 * report, NUL-terminated, in rep.text. */
static void rep_collect(void)
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
static bool line_with(const char *text, const char *needle, char *out, size_t cap)
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
static void sd_audit(tr_engine *e)
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
static void eng_run(tr_engine *e)
{
    assert_int_equal(tr_engine_run(e), 0);
    tr_test_assert_clean();
    sd_audit(e);
}

static int spawn_named(tr_engine *e, tr_task **out, tr_fn fn, void *arg, const char *name,
                       unsigned flags)
{
    struct tr_spawn_opts o = {.name = name, .stack_size = 0, .flags = flags};
    return tr_spawn(e, out, fn, arg, &o);
}

static int result_of(const tr_task *t)
{
    int r = 12345;
    assert_int_equal(tr_task_result(t, &r), 0);
    return r;
}

/* ============================================ trigger from inside a task */

#define FT_WAITERS 3

struct ft_ctx {
    tr_engine *e;
    int rp[2], bp[2];
    tr_task *w[FT_WAITERS], *reader, *sleeper, *joiner, *blocker, *trigger;
    int w_res[FT_WAITERS], w_sd[FT_WAITERS], w_nop[FT_WAITERS];
    ssize_t r_res, b_res;
    int s_res, j_res, j_detach;
    int sd_before, sd_call, sd_wait, sd_after, trig_nop, trig_cancelled;
};

struct ft_arg {
    struct ft_ctx *c;
    int i;
};

static int ft_waiter(void *p)
{
    struct ft_arg *a = p;
    a->c->w_res[a->i] = tr_wait_shutdown();
    a->c->w_sd[a->i] = tr_shutting_down();
    a->c->w_nop[a->i] = tr_nop();
    return a->c->w_res[a->i];
}

static int ft_reader(void *p)
{
    struct ft_ctx *c = p;
    char b[8];
    c->r_res = tr_read(c->rp[0], b, sizeof(b), -1);
    return (int)c->r_res;
}

static int ft_blocker(void *p)
{
    struct ft_ctx *c = p;
    char b[8];
    c->b_res = tr_read(c->bp[0], b, sizeof(b), -1);
    return (int)c->b_res;
}

static int ft_sleeper(void *p)
{
    struct ft_ctx *c = p;
    c->s_res = tr_sleep_ns(3600ull * 1000000000ull);
    return c->s_res;
}

static int ft_joiner(void *p)
{
    struct ft_ctx *c = p;
    int res = 0;
    c->j_res = tr_join(c->blocker, &res);
    /* A cancelled join leaves the handle with us. */
    if (c->j_res == -ECANCELED)
        c->j_detach = tr_detach(c->blocker);
    return c->j_res;
}

static int ft_trigger(void *p)
{
    struct ft_ctx *c = p;
    for (int i = 0; i < FT_WAITERS; i++)
        TCHECK(wait_parked(c->w[i], TR_WAIT_SHUTDOWN));
    TCHECK(wait_parked(c->reader, TR_WAIT_OP));
    TCHECK(wait_parked(c->blocker, TR_WAIT_OP));
    TCHECK(wait_parked(c->sleeper, TR_WAIT_TIMER));
    TCHECK(wait_parked(c->joiner, TR_WAIT_JOIN));
    c->sd_before = tr_shutting_down();
    c->sd_call = tr_engine_shutdown(c->e);
    c->sd_wait = tr_wait_shutdown();
    c->sd_after = tr_shutting_down();
    c->trig_nop = tr_nop();
    c->trig_cancelled = tr_is_cancelled();
    return 0;
}

/* tr_engine_shutdown from inside a task: tr_shutting_down() turns true,
 * every tr_wait_shutdown() waiter wakes with 0, tasks parked on a ring op, a
 * sleep and a join end with -ECANCELED (drain_ms 0), and the run returns 0
 * with every task accounted for and nothing in flight. */
static void test_shutdown_from_task_wakes_waiters_cancels_parked(void **state)
{
    (void)state;
    struct ft_ctx c;
    memset(&c, 0, sizeof(c));
    make_pipe(c.rp);
    make_pipe(c.bp);
    struct tr_config cfg = cfg_quiet();
    rep_open(&cfg);
    c.e = eng_new(&cfg);
    struct ft_arg args[FT_WAITERS];
    for (int i = 0; i < FT_WAITERS; i++) {
        args[i] = (struct ft_arg){&c, i};
        c.w_res[i] = c.w_nop[i] = 777;
        assert_int_equal(tr_spawn(c.e, &c.w[i], ft_waiter, &args[i], NULL), 0);
    }
    assert_int_equal(tr_spawn(c.e, &c.reader, ft_reader, &c, NULL), 0);
    assert_int_equal(tr_spawn(c.e, &c.blocker, ft_blocker, &c, NULL), 0);
    assert_int_equal(tr_spawn(c.e, &c.sleeper, ft_sleeper, &c, NULL), 0);
    assert_int_equal(tr_spawn(c.e, &c.joiner, ft_joiner, &c, NULL), 0);
    assert_int_equal(tr_spawn(c.e, &c.trigger, ft_trigger, &c, NULL), 0);
    eng_run(c.e);

    assert_false(c.sd_before);
    assert_int_equal(c.sd_call, 0);
    assert_int_equal(c.sd_wait, 0);
    assert_true(c.sd_after);
    assert_int_equal(c.trig_nop, -ECANCELED);
    assert_true(c.trig_cancelled);
    for (int i = 0; i < FT_WAITERS; i++) {
        assert_int_equal(c.w_res[i], 0);
        assert_true(c.w_sd[i]);
        assert_int_equal(c.w_nop[i], -ECANCELED);
        assert_int_equal(result_of(c.w[i]), 0);
    }
    assert_int_equal(c.r_res, -ECANCELED);
    assert_int_equal(c.b_res, -ECANCELED);
    assert_int_equal(c.s_res, -ECANCELED);
    assert_int_equal(c.j_res, -ECANCELED);
    assert_int_equal(c.j_detach, 0);
    assert_int_equal(result_of(c.reader), -ECANCELED);
    assert_int_equal(result_of(c.sleeper), -ECANCELED);
    assert_int_equal(result_of(c.joiner), -ECANCELED);
    assert_int_equal(result_of(c.trigger), 0);
    struct tr_stats s = stats_of(c.e);
    assert_int_equal(s.tasks_spawned, FT_WAITERS + 5);
    assert_int_equal(s.tasks_ok, FT_WAITERS + 1);
    assert_int_equal(s.tasks_cancelled, 4);
    assert_int_equal(s.tasks_failed, 0);
    assert_int_equal(s.tasks_killed, 0);
    assert_int_equal(tr_engine_destroy(c.e), 0);
    rep_collect();
    assert_int_equal(count_substr(rep.text, "shutdown report"), 1);
    assert_contains(rep.text, "tr_engine_shutdown()");
    close_pair(c.rp);
    close_pair(c.bp);
}

/* ========================================= trigger before tr_engine_run */

struct br_ctx {
    int p[2];
    int w_res, w_sd;
    int r_sd;
    ssize_t r_res;
};

static int br_waiter(void *p)
{
    struct br_ctx *c = p;
    c->w_res = tr_wait_shutdown();
    c->w_sd = tr_shutting_down();
    return c->w_res;
}

static int br_reader(void *p)
{
    struct br_ctx *c = p;
    char b[4];
    c->r_sd = tr_shutting_down();
    c->r_res = tr_read(c->p[0], b, sizeof(b), -1);
    return (int)c->r_res;
}

/* tr_engine_shutdown before tr_engine_run: the run performs one orderly
 * shutdown (one report, trigger named), the waiter returns 0 at once, the
 * reader is cancelled, and outside a task the shutdown calls answer as
 * documented. */
static void test_shutdown_before_run_one_orderly_shutdown(void **state)
{
    (void)state;
    struct br_ctx c;
    memset(&c, 0, sizeof(c));
    c.w_res = 777;
    make_pipe(c.p);
    assert_int_equal(tr_engine_shutdown(NULL), -EINVAL);
    assert_int_equal(tr_wait_shutdown(), -EPERM);
    assert_false(tr_shutting_down());
    struct tr_config cfg = cfg_quiet();
    rep_open(&cfg);
    tr_engine *e = eng_new(&cfg);
    assert_int_equal(tr_spawn(e, NULL, br_waiter, &c, NULL), 0);
    assert_int_equal(tr_spawn(e, NULL, br_reader, &c, NULL), 0);
    assert_int_equal(tr_engine_shutdown(e), 0);
    assert_int_equal(tr_engine_shutdown(e), 0); /* coalesces */
    eng_run(e);
    assert_int_equal(c.w_res, 0);
    assert_true(c.w_sd);
    assert_true(c.r_sd);
    assert_int_equal(c.r_res, -ECANCELED);
    struct tr_stats s = stats_of(e);
    assert_int_equal(s.tasks_ok, 1);
    assert_int_equal(s.tasks_cancelled, 1);
    assert_false(tr_shutting_down()); /* outside a task */
    assert_int_equal(tr_engine_destroy(e), 0);
    rep_collect();
    assert_int_equal(count_substr(rep.text, "shutdown report"), 1);
    assert_contains(rep.text, "tr_engine_shutdown()");
    assert_contains(rep.text, "tasks ended: 1 ok, 1 cancelled, 0 failed, 0 killed");
    close_pair(c.p);
}

/* A shutdown requested before the run of an engine with no task at all
 * still completes (report included) and the run returns 0. */
static void test_shutdown_before_run_with_no_tasks(void **state)
{
    (void)state;
    struct tr_config cfg = cfg_quiet();
    rep_open(&cfg);
    tr_engine *e = eng_new(&cfg);
    assert_int_equal(tr_engine_shutdown(e), 0);
    eng_run(e);
    assert_int_equal(tr_engine_destroy(e), 0);
    rep_collect();
    assert_int_equal(count_substr(rep.text, "shutdown report"), 1);
    assert_contains(rep.text, "tasks ended: 0 ok, 0 cancelled, 0 failed, 0 killed");
    assert_contains(rep.text, "quiescent");
}

/* ============================================ trigger from another thread */

struct ot_ctx {
    tr_engine *e;
    int sync[2];
    int p[2];
    bool with_reader;
    tr_task *w[2], *reader;
    int w_res[2];
    ssize_t r_res;
    int ann_res;
    int thr_rc1, thr_rc2;
};

struct ot_arg {
    struct ot_ctx *c;
    int i;
};

static int ot_waiter(void *p)
{
    struct ot_arg *a = p;
    a->c->w_res[a->i] = tr_wait_shutdown();
    return a->c->w_res[a->i];
}

static int ot_reader(void *p)
{
    struct ot_ctx *c = p;
    char b[4];
    c->r_res = tr_read(c->p[0], b, sizeof(b), -1);
    return (int)c->r_res;
}

/* Tells the thread that every task is parked, then parks too: from here on
 * only the other thread can end the run. */
static int ot_announcer(void *p)
{
    struct ot_ctx *c = p;
    for (int i = 0; i < 2; i++)
        TCHECK(wait_parked(c->w[i], TR_WAIT_SHUTDOWN));
    if (c->with_reader)
        TCHECK(wait_parked(c->reader, TR_WAIT_OP));
    TCHECK_EQ(write(c->sync[1], "x", 1), 1);
    c->ann_res = tr_wait_shutdown();
    return c->ann_res;
}

static void *ot_thread(void *p)
{
    struct ot_ctx *c = p;
    char b;
    /* Blocks until the announcer wrote: no sleep, a real handshake. */
    if (read(c->sync[0], &b, 1) != 1)
        return NULL;
    c->thr_rc1 = tr_engine_shutdown(c->e);
    c->thr_rc2 = tr_engine_shutdown(c->e);
    return NULL;
}

static void run_other_thread_case(bool with_reader)
{
    struct ot_ctx c;
    memset(&c, 0, sizeof(c));
    c.with_reader = with_reader;
    c.w_res[0] = c.w_res[1] = c.ann_res = 777;
    c.thr_rc1 = c.thr_rc2 = 777;
    make_pipe(c.sync);
    make_pipe(c.p);
    struct tr_config cfg = cfg_quiet();
    rep_open(&cfg);
    c.e = eng_new(&cfg);
    struct ot_arg args[2] = {{&c, 0}, {&c, 1}};
    for (int i = 0; i < 2; i++)
        assert_int_equal(tr_spawn(c.e, &c.w[i], ot_waiter, &args[i], NULL), 0);
    if (with_reader)
        assert_int_equal(tr_spawn(c.e, &c.reader, ot_reader, &c, NULL), 0);
    assert_int_equal(tr_spawn(c.e, NULL, ot_announcer, &c, NULL), 0);
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, ot_thread, &c), 0);
    int rc = tr_engine_run(c.e);
    assert_int_equal(pthread_join(th, NULL), 0);
    assert_int_equal(rc, 0);
    tr_test_assert_clean();
    sd_audit(c.e);
    assert_int_equal(c.thr_rc1, 0);
    assert_int_equal(c.thr_rc2, 0);
    assert_int_equal(c.w_res[0], 0);
    assert_int_equal(c.w_res[1], 0);
    assert_int_equal(c.ann_res, 0);
    if (with_reader)
        assert_int_equal(c.r_res, -ECANCELED);
    assert_int_equal(tr_engine_destroy(c.e), 0);
    rep_collect();
    assert_int_equal(count_substr(rep.text, "shutdown report"), 1);
    assert_contains(rep.text, "tr_engine_shutdown()");
    close_pair(c.sync);
    close_pair(c.p);
}

/* tr_engine_shutdown from another thread while the engine waits in the
 * kernel for a pipe read: the wakeup reaches the ring, waiters return 0, the
 * read is cancelled, one shutdown (two calls coalesce). */
static void test_shutdown_from_thread_while_engine_waits_on_read(void **state)
{
    (void)state;
    run_other_thread_case(true);
}

/* The same with nothing of the tasks' in flight at all (every task in
 * tr_wait_shutdown): only the engine's wakeup read can end the wait; the run
 * must not give up with -EDEADLK. */
static void test_shutdown_from_thread_wakes_idle_engine(void **state)
{
    (void)state;
    run_other_thread_case(false);
}

/* ================================================================ drain_ms */

struct dr_ctx {
    tr_engine *e;
    int p[2];
    tr_task *w;
    ssize_t w_read;
    int w_cancelled_after, w_sd;
    int t_wait;
    int y[3];
    ssize_t t_write;
};

static int dr_worker(void *p)
{
    struct dr_ctx *c = p;
    char b;
    c->w_read = tr_read(c->p[0], &b, 1, -1);
    c->w_cancelled_after = tr_is_cancelled();
    c->w_sd = tr_shutting_down();
    return c->w_read >= 0 ? 0 : (int)c->w_read;
}

/* Triggers, then wakes the worker a few scheduling passes later. */
static int dr_trigger(void *p)
{
    struct dr_ctx *c = p;
    TCHECK(wait_parked(c->w, TR_WAIT_OP));
    TCHECK_EQ(tr_engine_shutdown(c->e), 0);
    c->t_wait = tr_wait_shutdown();
    for (int i = 0; i < 3; i++)
        c->y[i] = tr_yield();
    c->t_write = tr_write(c->p[1], "x", 1, -1);
    return 0;
}

static void run_drain_case(unsigned drain_ms, struct dr_ctx *c, struct tr_stats *s)
{
    memset(c, 0, sizeof(*c));
    c->t_wait = 777;
    make_pipe(c->p);
    struct tr_config cfg = cfg_quiet();
    cfg.drain_ms = drain_ms;
    c->e = eng_new(&cfg);
    assert_int_equal(tr_spawn(c->e, &c->w, dr_worker, c, NULL), 0);
    assert_int_equal(tr_spawn(c->e, NULL, dr_trigger, c, NULL), 0);
    eng_run(c->e);
    *s = stats_of(c->e);
    assert_int_equal(result_of(c->w), c->w_read >= 0 ? 0 : (int)c->w_read);
    assert_int_equal(tr_engine_destroy(c->e), 0);
}

/* With drain_ms large, a task that another task wakes a few passes after
 * the trigger ends on its own (real data, not cancelled): the run ends as
 * soon as both tasks are done, nobody is cancelled. */
static void test_shutdown_drain_lets_task_finish(void **state)
{
    (void)state;
    struct dr_ctx c;
    struct tr_stats s;
    run_drain_case(10000, &c, &s);
    assert_int_equal(c.t_wait, 0);
    for (int i = 0; i < 3; i++)
        assert_int_equal(c.y[i], 0);
    assert_int_equal(c.t_write, 1);
    assert_int_equal(c.w_read, 1);
    assert_false(c.w_cancelled_after);
    assert_true(c.w_sd);
    assert_int_equal(s.tasks_ok, 2);
    assert_int_equal(s.tasks_cancelled, 0);
    close_pair(c.p);
}

/* With drain_ms 0 the same task is cancelled at once: its read ends with
 * -ECANCELED, the waker's calls fail fast and its write never reaches the
 * pipe. */
static void test_shutdown_drain_zero_cancels_at_once(void **state)
{
    (void)state;
    struct dr_ctx c;
    struct tr_stats s;
    run_drain_case(0, &c, &s);
    assert_int_equal(c.t_wait, 0);
    for (int i = 0; i < 3; i++)
        assert_int_equal(c.y[i], -ECANCELED);
    assert_int_equal(c.t_write, -ECANCELED);
    assert_int_equal(c.w_read, -ECANCELED);
    assert_true(c.w_cancelled_after);
    assert_int_equal(pipe_bytes(c.p[0]), 0);
    assert_int_equal(s.tasks_cancelled, 1);
    assert_int_equal(s.tasks_ok, 1);
    close_pair(c.p);
}

/* =========================================================== TR_SPAWN_LATE */

#define LATE_N 3
enum { EV_TRIGGER_END = 1, EV_LOG_CANCELLED = 2, EV_WORKER_END = 10, EV_LOG_RECV = 20 };

struct late_ctx {
    tr_engine *e;
    int logp[2];
    int wp[LATE_N][2];
    tr_task *logger, *w[LATE_N];
    int recv_ok, recv_bad, drained;
    ssize_t log_final;
    uint64_t live_at_cancel;
    int logger_cancelled_at_worker_end;
    ssize_t w_read[LATE_N], w_write[LATE_N], w_ack[LATE_N], ack_write[LATE_N];
};

struct late_arg {
    struct late_ctx *c;
    int i;
};

/* A LATE logger: records every 4-byte message and acknowledges it to its
 * sender (ring I/O during the shutdown), until its read is cancelled; then
 * counts what is left in the pipe with plain ioctl/read(2). */
static int late_logger(void *p)
{
    struct late_ctx *c = p;
    ssize_t r = 0;
    /* Bound: LATE_N messages, then the cancel; 100 rounds is plenty. */
    for (int round = 0; round < 100; round++) {
        char m[4];
        r = tr_read(c->logp[0], m, sizeof(m), -1);
        if (r == 4 && m[3] >= '0' && m[3] < '0' + LATE_N) {
            int i = m[3] - '0';
            ev_log(EV_LOG_RECV + i);
            c->recv_ok++;
            c->ack_write[i] = tr_write(c->wp[i][1], "k", 1, -1);
        } else if (r > 0) {
            c->recv_bad++;
        } else {
            break;
        }
    }
    c->log_final = r;
    ev_log(EV_LOG_CANCELLED);
    c->live_at_cancel = tstats().tasks_live;
    int left = pipe_bytes(c->logp[0]);
    TCHECK(left >= 0 && left % 4 == 0);
    char rest[64];
    if (left > 0 && left <= (int)sizeof(rest)) {
        TCHECK_EQ(read(c->logp[0], rest, (size_t)left), left);
        c->drained = left / 4;
    }
    return (int)r;
}

/* Cleanup after its cancel, in a shield: a message to the logger, then it
 * waits for the logger's acknowledgement, so it cannot end before the
 * logger has done its work. */
static int late_worker(void *p)
{
    struct late_arg *a = p;
    struct late_ctx *c = a->c;
    char b;
    c->w_read[a->i] = tr_read(c->wp[a->i][0], &b, 1, -1);
    TCHECK_EQ(tr_shield_begin(), 1);
    char msg[4] = {'w', 'r', 'k', (char)('0' + a->i)};
    c->w_write[a->i] = tr_write(c->logp[1], msg, sizeof(msg), -1);
    c->w_ack[a->i] = tr_read(c->wp[a->i][0], &b, 1, -1);
    TCHECK_EQ(tr_shield_end(), 0);
    if (c->logger->cancelled)
        c->logger_cancelled_at_worker_end++;
    ev_log(EV_WORKER_END + a->i);
    return (int)c->w_read[a->i];
}

static int late_trigger(void *p)
{
    struct late_ctx *c = p;
    TCHECK(wait_parked(c->logger, TR_WAIT_OP));
    for (int i = 0; i < LATE_N; i++)
        TCHECK(wait_parked(c->w[i], TR_WAIT_OP));
    TCHECK_EQ(tr_engine_shutdown(c->e), 0);
    ev_log(EV_TRIGGER_END);
    return 0;
}

/* A TR_SPAWN_LATE logger keeps working through the shutdown: it receives
 * the messages that the other tasks' shielded cleanup sends after their
 * cancellation, and is cancelled only once every non-LATE task has ended. */
static void test_shutdown_late_task_cancelled_after_all_others(void **state)
{
    (void)state;
    struct late_ctx c;
    memset(&c, 0, sizeof(c));
    make_pipe(c.logp);
    for (int i = 0; i < LATE_N; i++)
        make_pipe(c.wp[i]);
    struct tr_config cfg = cfg_quiet();
    c.e = eng_new(&cfg);
    assert_int_equal(spawn_named(c.e, &c.logger, late_logger, &c, "logger", TR_SPAWN_LATE), 0);
    struct late_arg args[LATE_N];
    for (int i = 0; i < LATE_N; i++) {
        args[i] = (struct late_arg){&c, i};
        assert_int_equal(tr_spawn(c.e, &c.w[i], late_worker, &args[i], NULL), 0);
    }
    assert_int_equal(tr_spawn(c.e, NULL, late_trigger, &c, NULL), 0);
    eng_run(c.e);

    for (int i = 0; i < LATE_N; i++) {
        assert_int_equal(c.w_read[i], -ECANCELED);
        assert_int_equal(c.w_write[i], 4);
        assert_int_equal(c.ack_write[i], 1);
        assert_int_equal(c.w_ack[i], 1);
    }
    assert_int_equal(c.logger_cancelled_at_worker_end, 0);
    assert_int_equal(c.recv_bad, 0);
    assert_int_equal(c.recv_ok, LATE_N);
    assert_int_equal(c.drained, 0);
    assert_int_equal(c.log_final, -ECANCELED);
    assert_int_equal(c.live_at_cancel, 1); /* the logger alone */
    int pc = ev_pos(EV_LOG_CANCELLED);
    assert_true(pc >= 0);
    assert_true(ev_pos(EV_TRIGGER_END) >= 0 && ev_pos(EV_TRIGGER_END) < pc);
    for (int i = 0; i < LATE_N; i++) {
        int pr = ev_pos(EV_LOG_RECV + i);
        int pw = ev_pos(EV_WORKER_END + i);
        assert_true(pr >= 0 && pr < pw); /* it worked for them during the shutdown */
        assert_true(pw >= 0 && pw < pc); /* and was cancelled after they all ended */
    }
    assert_int_equal(result_of(c.logger), -ECANCELED);
    struct tr_stats s = stats_of(c.e);
    assert_int_equal(s.tasks_cancelled, LATE_N + 1);
    assert_int_equal(s.tasks_ok, 1);
    assert_int_equal(tr_engine_destroy(c.e), 0);
    close_pair(c.logp);
    for (int i = 0; i < LATE_N; i++)
        close_pair(c.wp[i]);
}

/* ===================================================== spawn during shutdown */

struct sp_ctx {
    tr_engine *e;
    int p[2];
    int spawn_rc, join_rc, child_res, parent_cancelled, parent_wait;
    int c_ran, c_cancelled0, c_sd, c_nop, c_sleep;
    ssize_t c_read, c_shield_read;
    char c_byte;
    uint64_t c_ops_delta;
};

static int sp_child(void *p)
{
    struct sp_ctx *c = p;
    c->c_ran = 1;
    c->c_cancelled0 = tr_is_cancelled();
    c->c_sd = tr_shutting_down();
    struct tr_stats s0 = tstats();
    c->c_nop = tr_nop();
    char b;
    c->c_read = tr_read(c->p[0], &b, 1, -1); /* the pipe holds data */
    c->c_sleep = tr_sleep_ns(1000000000ull);
    struct tr_stats s1 = tstats();
    c->c_ops_delta = s1.ops_submitted - s0.ops_submitted;
    /* Shields hold until grace: cleanup I/O still works. */
    TCHECK_EQ(tr_shield_begin(), 1);
    c->c_shield_read = tr_read(c->p[0], &c->c_byte, 1, -1);
    TCHECK_EQ(tr_shield_end(), 0);
    return c->c_nop;
}

/* Spawns during Stop (drain_ms large: the parent itself is not cancelled). */
static int sp_parent_stop(void *p)
{
    struct sp_ctx *c = p;
    TCHECK_EQ(tr_engine_shutdown(c->e), 0);
    c->parent_wait = tr_wait_shutdown();
    c->parent_cancelled = tr_is_cancelled();
    tr_task *t = NULL;
    c->spawn_rc = tr_spawn(NULL, &t, sp_child, c, NULL);
    if (c->spawn_rc == 0)
        c->join_rc = tr_join(t, &c->child_res);
    return 0;
}

/* Spawns during Drain (drain_ms 0: the parent is cancelled), joins in a
 * shield. */
static int sp_parent_drain(void *p)
{
    struct sp_ctx *c = p;
    TCHECK_EQ(tr_engine_shutdown(c->e), 0);
    c->parent_wait = tr_wait_shutdown();
    c->parent_cancelled = tr_is_cancelled();
    tr_task *t = NULL;
    c->spawn_rc = tr_spawn(NULL, &t, sp_child, c, NULL);
    TCHECK_EQ(tr_shield_begin(), 1);
    if (c->spawn_rc == 0)
        c->join_rc = tr_join(t, &c->child_res);
    TCHECK_EQ(tr_shield_end(), 0);
    return 0;
}

static void run_spawn_case(tr_fn parent, unsigned drain_ms, struct sp_ctx *c)
{
    memset(c, 0, sizeof(*c));
    c->spawn_rc = c->join_rc = c->child_res = c->parent_wait = 777;
    make_pipe(c->p);
    assert_int_equal(write(c->p[1], "AB", 2), 2);
    struct tr_config cfg = cfg_quiet();
    cfg.drain_ms = drain_ms;
    cfg.grace_ms = 10000; /* shields hold throughout; nobody waits for it */
    c->e = eng_new(&cfg);
    assert_int_equal(tr_spawn(c->e, NULL, parent, c, NULL), 0);
    eng_run(c->e);
    assert_int_equal(tr_engine_destroy(c->e), 0);
    assert_int_equal(c->parent_wait, 0);
    assert_int_equal(c->spawn_rc, 0);
    assert_int_equal(c->join_rc, 0);
    assert_int_equal(c->child_res, -ECANCELED);
    assert_int_equal(c->c_ran, 1);
    assert_true(c->c_cancelled0);
    assert_true(c->c_sd);
    assert_int_equal(c->c_nop, -ECANCELED);
    assert_int_equal(c->c_read, -ECANCELED);
    assert_int_equal(c->c_sleep, -ECANCELED);
    assert_int_equal(c->c_ops_delta, 0); /* failed fast, nothing submitted */
    assert_int_equal(c->c_shield_read, 1);
    assert_int_equal(c->c_byte, 'A');
    assert_int_equal(pipe_bytes(c->p[0]), 1); /* the unshielded read took nothing */
    close_pair(c->p);
}

/* A task spawned after the trigger, during Stop, while its spawner is not
 * cancelled (drain_ms): it starts cancelled, its blocking calls fail fast
 * with -ECANCELED without submitting, but its shielded read works. */
static void test_shutdown_spawn_during_stop_starts_cancelled(void **state)
{
    (void)state;
    struct sp_ctx c;
    run_spawn_case(sp_parent_stop, 10000, &c);
    assert_false(c.parent_cancelled);
}

/* The same for a task spawned during Drain by a cancelled spawner. */
static void test_shutdown_spawn_during_drain_starts_cancelled(void **state)
{
    (void)state;
    struct sp_ctx c;
    run_spawn_case(sp_parent_drain, 0, &c);
    assert_true(c.parent_cancelled);
}

/* ================================================= shields hold until grace */

struct sh_ctx {
    tr_engine *e;
    int a[2], b[2];
    tr_task *r, *w, *f;
    ssize_t r_read;
    char r_buf[8];
    int r_f_parked_at_data, r_broken_at_data, r_done, r_sd;
    int w_wait, w_yields_bad;
    ssize_t w_write;
    ssize_t f_read;
    int f_broken_at_wake, f_r_done_at_wake;
};

static int sh_reader(void *p)
{
    struct sh_ctx *c = p;
    TCHECK_EQ(tr_shield_begin(), 1);
    c->r_read = tr_read(c->a[0], c->r_buf, sizeof(c->r_buf), -1);
    c->r_sd = tr_shutting_down();
    c->r_broken_at_data = c->e->sd.shields_broken;
    c->r_f_parked_at_data = parked_on(c->f, TR_WAIT_OP);
    c->r_done = 1;
    TCHECK_EQ(tr_shield_end(), 0);
    return 0;
}

/* Shielded too: writes only after the shutdown began (and it is cancelled). */
static int sh_writer(void *p)
{
    struct sh_ctx *c = p;
    TCHECK_EQ(tr_shield_begin(), 1);
    c->w_wait = tr_wait_shutdown();
    for (int i = 0; i < 3; i++)
        if (tr_yield() != 0)
            c->w_yields_bad++;
    c->w_write = tr_write(c->a[1], "data", 4, -1);
    TCHECK_EQ(tr_shield_end(), 0);
    return 0;
}

/* Shielded, waits forever: only the end of grace stops it. */
static int sh_forever(void *p)
{
    struct sh_ctx *c = p;
    char buf[8];
    TCHECK_EQ(tr_shield_begin(), 1);
    c->f_read = tr_read(c->b[0], buf, sizeof(buf), -1);
    c->f_broken_at_wake = c->e->sd.shields_broken;
    c->f_r_done_at_wake = c->r_done;
    TCHECK_EQ(tr_shield_end(), 0);
    return (int)c->f_read;
}

static int sh_trigger(void *p)
{
    struct sh_ctx *c = p;
    TCHECK(wait_parked(c->r, TR_WAIT_OP));
    TCHECK(wait_parked(c->f, TR_WAIT_OP));
    TCHECK(wait_parked(c->w, TR_WAIT_SHUTDOWN));
    TCHECK_EQ(tr_engine_shutdown(c->e), 0);
    return 0;
}

/* Shields hold until grace_ms: a shielded read gets the real data that
 * another shielded task writes after the trigger (while a third shielded
 * read is still parked), and a shielded read that nobody feeds is cancelled
 * only when grace ends (shields broken), after the first got its data. No
 * task is killed (kill_ms large). */
static void test_shutdown_shields_hold_until_grace(void **state)
{
    (void)state;
    struct sh_ctx c;
    memset(&c, 0, sizeof(c));
    c.w_wait = 777;
    make_pipe(c.a);
    make_pipe(c.b);
    struct tr_config cfg = cfg_quiet();
    cfg.grace_ms = 50;
    cfg.kill_ms = 60000;
    c.e = eng_new(&cfg);
    assert_int_equal(spawn_named(c.e, &c.r, sh_reader, &c, "sh-reader", 0), 0);
    assert_int_equal(spawn_named(c.e, &c.w, sh_writer, &c, "sh-writer", 0), 0);
    assert_int_equal(spawn_named(c.e, &c.f, sh_forever, &c, "sh-forever", 0), 0);
    assert_int_equal(tr_spawn(c.e, NULL, sh_trigger, &c, NULL), 0);
    eng_run(c.e);
    assert_int_equal(c.w_wait, 0);
    assert_int_equal(c.w_yields_bad, 0);
    assert_int_equal(c.w_write, 4);
    assert_int_equal(c.r_read, 4);
    assert_memory_equal(c.r_buf, "data", 4);
    assert_true(c.r_sd);
    assert_false(c.r_broken_at_data);
    assert_true(c.r_f_parked_at_data);
    assert_int_equal(c.f_read, -ECANCELED);
    assert_true(c.f_broken_at_wake);
    assert_true(c.f_r_done_at_wake);
    assert_int_equal(result_of(c.r), 0);
    assert_int_equal(result_of(c.w), 0);
    assert_int_equal(result_of(c.f), -ECANCELED);
    struct tr_stats s = stats_of(c.e);
    assert_int_equal(s.tasks_killed, 0);
    assert_int_equal(tr_engine_destroy(c.e), 0);
    close_pair(c.a);
    close_pair(c.b);
}

/* ====================================================================== kill */

/* Far above the loop rounds kill_ms allows (one scheduling pass each), and
 * small enough that an engine that never kills ends the loop before the
 * watchdog: the test then fails on tasks_killed, not on a hang. */
#define KILL_LOOP_BOUND 20000000L

struct kl_ctx {
    tr_engine *e;
    int p[2];
    tr_task *s;
    long iters, ecanceled, other;
    int returned;
    int reg_rc, hook_ran, hook_join, hook_res;
};

/* Ignores cancellation: a shielded read, over and over. */
static int kl_stubborn(void *p)
{
    struct kl_ctx *c = p;
    for (long i = 0; i < KILL_LOOP_BOUND; i++) {
        char buf[16];
        (void)tr_shield_begin();
        ssize_t r = tr_read(c->p[0], buf, sizeof(buf), -1);
        (void)tr_shield_end();
        if (r == -ECANCELED)
            c->ecanceled++;
        else
            c->other++;
        c->iters++;
    }
    c->returned = 1;
    return 0;
}

/* The stubborn task's joiner: any task alive at Kill is killed, so the join
 * that can see the killed task's end runs in an at-shutdown hook. */
static int kl_hook(void *p)
{
    struct kl_ctx *c = p;
    c->hook_ran = 1;
    c->hook_res = 777;
    c->hook_join = tr_join(c->s, &c->hook_res);
    return 0;
}

static int kl_trigger(void *p)
{
    struct kl_ctx *c = p;
    TCHECK_EQ(spawn_named(NULL, &c->s, kl_stubborn, c, "stubborn", 0), 0);
    c->reg_rc = tr_at_shutdown(kl_hook, c);
    TCHECK(wait_parked(c->s, TR_WAIT_OP));
    TCHECK_EQ(tr_engine_shutdown(c->e), 0);
    return 0;
}

/* A task that ignores its cancellation in a loop (shielded reads) is killed
 * kill_ms after grace: tasks_killed == 1, it never returns, its joiner's
 * tr_join returns 0 with result -ECANCELED, the report names it. */
static void test_shutdown_kill_stubborn_loop(void **state)
{
    (void)state;
    struct kl_ctx c;
    memset(&c, 0, sizeof(c));
    make_pipe(c.p);
    struct tr_config cfg = cfg_quiet();
    cfg.grace_ms = 20;
    cfg.kill_ms = 20;
    rep_open(&cfg);
    c.e = eng_new(&cfg);
    assert_int_equal(tr_spawn(c.e, NULL, kl_trigger, &c, NULL), 0);
    eng_run(c.e);
    struct tr_stats s = stats_of(c.e);
    assert_int_equal(s.tasks_killed, 1);
    assert_int_equal(c.returned, 0);
    assert_int_equal(c.other, 0); /* before grace its read never returned */
    assert_int_equal(c.reg_rc, 0);
    assert_int_equal(c.hook_ran, 1);
    assert_int_equal(c.hook_join, 0);
    assert_int_equal(c.hook_res, -ECANCELED);
    assert_int_equal(tr_engine_destroy(c.e), 0);
    rep_collect();
    assert_contains(rep.text, "killed: task 'stubborn'");
    close_pair(c.p);
}

struct g1_ctx {
    tr_engine *e;
    int p[2];
    tr_task *s;
    int reads_started, read_returned;
};

/* Its buffer is on its stack; it is killed while parked in this read. */
static int g1_stubborn(void *p)
{
    struct g1_ctx *c = p;
    for (long i = 0; i < KILL_LOOP_BOUND; i++) {
        unsigned char buf[64];
        (void)tr_shield_begin();
        c->reads_started++;
        ssize_t r = tr_read(c->p[0], buf, sizeof(buf), -1);
        c->read_returned++;
        (void)tr_shield_end();
        (void)r;
    }
    return 0;
}

static int g1_trigger(void *p)
{
    struct g1_ctx *c = p;
    TCHECK(wait_parked(c->s, TR_WAIT_OP));
    TCHECK_EQ(tr_engine_shutdown(c->e), 0);
    return 0;
}

/* G1 for a killed task: killed while parked in a shielded tr_read into a
 * buffer on its own stack (kill_ms 0: the Kill phase starts as grace ends).
 * After the run the read is no longer in flight: bytes written to the pipe
 * all stay there and read(2) gets them back, so the kernel was never left
 * to write into the freed stack; and no CQE arrived for the freed op slot
 * (the audit's cqe_stale == 0). */
static void test_shutdown_killed_task_read_reaped_before_stack_freed(void **state)
{
    (void)state;
    struct g1_ctx c;
    memset(&c, 0, sizeof(c));
    make_pipe(c.p);
    struct tr_config cfg = cfg_quiet();
    cfg.grace_ms = 20;
    cfg.kill_ms = 0;
    rep_open(&cfg);
    c.e = eng_new(&cfg);
    assert_int_equal(spawn_named(c.e, &c.s, g1_stubborn, &c, "g1-stubborn", 0), 0);
    assert_int_equal(tr_spawn(c.e, NULL, g1_trigger, &c, NULL), 0);
    eng_run(c.e);
    struct tr_stats s = stats_of(c.e);
    assert_int_equal(s.tasks_killed, 1);
    assert_int_equal(c.reads_started, 1);
    assert_int_equal(c.read_returned, 0); /* never resumed */
    assert_int_equal(result_of(c.s), -ECANCELED);

    unsigned char out[64], back[64];
    for (int i = 0; i < 64; i++)
        out[i] = (unsigned char)(i * 37 + 11);
    assert_int_equal(write(c.p[1], out, sizeof(out)), (ssize_t)sizeof(out));
    assert_int_equal(pipe_bytes(c.p[0]), (int)sizeof(out));
    assert_int_equal(read(c.p[0], back, sizeof(back)), (ssize_t)sizeof(back));
    assert_memory_equal(out, back, sizeof(out));

    assert_int_equal(tr_engine_destroy(c.e), 0);
    rep_collect();
    /* At grace the dump showed it parked in the read, shielded. */
    char line[512];
    char want[64];
    assert_true(line_with(rep.text, "'g1-stubborn'", line, sizeof(line)));
    assert_contains(line, "op=read");
    snprintf(want, sizeof(want), "fd=%d", c.p[0]);
    assert_contains(line, want);
    assert_contains(line, "shielded");
    assert_contains(rep.text, "killed: task 'g1-stubborn'");
    close_pair(c.p);
}

/* ========================================================== tr_at_shutdown */

#define HK_USER 3

struct hk_ctx {
    tr_engine *e;
    int p[2], io[2];
    tr_task *reader, *sleeper;
    int ended;
    int reg[3], reg_null, h4_reg;
    int order[8], norder;
    int first_ended;
    uint64_t first_live;
    int self_null, sd_false;
    ssize_t io_w, io_r;
    char io_buf[4];
    int io_nop, io_sleep;
};

static void hk_common(struct hk_ctx *c, int id)
{
    if (c->norder == 0) {
        c->first_ended = c->ended;
        c->first_live = tstats().tasks_live;
    }
    if (c->norder < 8)
        c->order[c->norder] = id;
    c->norder++;
    if (tr_self() == NULL)
        c->self_null++;
    if (!tr_shutting_down())
        c->sd_false++;
}

static int hk_h1(void *p)
{
    hk_common(p, 1);
    return 0;
}

/* I/O from a hook. */
static int hk_h2(void *p)
{
    struct hk_ctx *c = p;
    hk_common(c, 2);
    c->io_w = tr_write(c->io[1], "hook", 4, -1);
    c->io_r = tr_read(c->io[0], c->io_buf, sizeof(c->io_buf), -1);
    c->io_nop = tr_nop();
    c->io_sleep = tr_sleep_ns(1000);
    return 0;
}

static int hk_h4(void *p)
{
    hk_common(p, 4);
    return 0;
}

/* Registers a hook from a hook: it runs too. */
static int hk_h3(void *p)
{
    struct hk_ctx *c = p;
    hk_common(c, 3);
    c->h4_reg = tr_at_shutdown(hk_h4, c);
    return 0;
}

static int hk_reader(void *p)
{
    struct hk_ctx *c = p;
    char b[4];
    ssize_t r = tr_read(c->p[0], b, sizeof(b), -1);
    c->ended++;
    return (int)r;
}

static int hk_sleeper(void *p)
{
    struct hk_ctx *c = p;
    int r = tr_sleep_ns(3600ull * 1000000000ull);
    c->ended++;
    return r;
}

static int hk_main(void *p)
{
    struct hk_ctx *c = p;
    c->reg_null = tr_at_shutdown(NULL, c);
    c->reg[0] = tr_at_shutdown(hk_h1, c);
    c->reg[1] = tr_at_shutdown(hk_h2, c);
    c->reg[2] = tr_at_shutdown(hk_h3, c);
    TCHECK(wait_parked(c->reader, TR_WAIT_OP));
    TCHECK(wait_parked(c->sleeper, TR_WAIT_TIMER));
    TCHECK_EQ(tr_engine_shutdown(c->e), 0);
    c->ended++;
    return 0;
}

/* tr_at_shutdown hooks run LIFO after every task has ended, inside a task,
 * during the shutdown; they may do I/O (ring ops, a sleep); a hook
 * registered by a hook runs too; NULL fn is -EINVAL and a call outside a
 * task -EPERM (and registers nothing). */
static void test_shutdown_hooks_run_lifo_after_all_tasks(void **state)
{
    (void)state;
    struct hk_ctx c;
    memset(&c, 0, sizeof(c));
    c.h4_reg = c.reg_null = 777;
    make_pipe(c.p);
    make_pipe(c.io);
    struct tr_config cfg = cfg_quiet();
    c.e = eng_new(&cfg);
    assert_int_equal(tr_at_shutdown(hk_h1, &c), -EPERM);
    assert_int_equal(tr_spawn(c.e, &c.reader, hk_reader, &c, NULL), 0);
    assert_int_equal(tr_spawn(c.e, &c.sleeper, hk_sleeper, &c, NULL), 0);
    assert_int_equal(tr_spawn(c.e, NULL, hk_main, &c, NULL), 0);
    eng_run(c.e);
    assert_int_equal(tr_at_shutdown(hk_h1, &c), -EPERM);
    assert_int_equal(c.reg_null, -EINVAL);
    for (int i = 0; i < 3; i++)
        assert_int_equal(c.reg[i], 0);
    assert_int_equal(c.h4_reg, 0);
    assert_int_equal(c.norder, 4);
    int want[4] = {3, 4, 2, 1};
    for (int i = 0; i < 4; i++)
        assert_int_equal(c.order[i], want[i]);
    assert_int_equal(c.first_ended, HK_USER);
    assert_true(c.first_live <= 1); /* at most the hooks' own task */
    assert_int_equal(c.self_null, 0);
    assert_int_equal(c.sd_false, 0);
    assert_int_equal(c.io_w, 4);
    assert_int_equal(c.io_r, 4);
    assert_memory_equal(c.io_buf, "hook", 4);
    assert_int_equal(c.io_nop, 0);
    assert_int_equal(c.io_sleep, 0);
    assert_int_equal(result_of(c.reader), -ECANCELED);
    assert_int_equal(result_of(c.sleeper), -ECANCELED);
    assert_int_equal(tr_engine_destroy(c.e), 0);
    close_pair(c.p);
    close_pair(c.io);
}

/* ================================================================ the report */

#define RP_READERS 3

struct rp_ctx {
    tr_engine *e;
    int p[2];
    tr_task *t[RP_READERS + 2];
};

static int rp_reader(void *p)
{
    struct rp_ctx *c = p;
    char b[4];
    return (int)tr_read(c->p[0], b, sizeof(b), -1);
}

/* Fails during the shutdown with an error of its own. */
static int rp_failer(void *p)
{
    struct rp_ctx *c = p;
    char b[4];
    ssize_t r = tr_read(c->p[0], b, sizeof(b), -1);
    return r == -ECANCELED ? -EIO : 0;
}

static int rp_stubborn(void *p)
{
    struct rp_ctx *c = p;
    for (long i = 0; i < KILL_LOOP_BOUND; i++) {
        char b[4];
        (void)tr_shield_begin();
        (void)tr_read(c->p[0], b, sizeof(b), -1);
        (void)tr_shield_end();
    }
    return 0;
}

static int rp_trigger(void *p)
{
    struct rp_ctx *c = p;
    for (int i = 0; i < RP_READERS + 2; i++)
        TCHECK(wait_parked(c->t[i], TR_WAIT_OP));
    TCHECK_EQ(tr_engine_shutdown(c->e), 0);
    /* End after the trigger took effect, so the report counts this end. */
    TCHECK_EQ(tr_wait_shutdown(), 0);
    return 7;
}

static void rp_spawn_all(struct rp_ctx *c)
{
    char name[16];
    for (int i = 0; i < RP_READERS; i++) {
        snprintf(name, sizeof(name), "reader-%d", i);
        assert_int_equal(spawn_named(c->e, &c->t[i], rp_reader, c, name, 0), 0);
    }
    assert_int_equal(spawn_named(c->e, &c->t[RP_READERS], rp_failer, c, "failer", 0), 0);
    assert_int_equal(spawn_named(c->e, &c->t[RP_READERS + 1], rp_stubborn, c, "stubborn", 0), 0);
    assert_int_equal(spawn_named(c->e, NULL, rp_trigger, c, "trigger", 0), 0);
}

/* The report of a shutdown with known outcomes (1 ok, 3 cancelled, 1 failed
 * with -EIO, 1 killed): the trigger, the counts line, one line for the
 * failure with its errno and one for the kill, the audit "quiescent", and
 * no line per -ECANCELED ending. */
static void test_shutdown_report_names_failures_and_kills(void **state)
{
    (void)state;
    struct rp_ctx c;
    memset(&c, 0, sizeof(c));
    make_pipe(c.p);
    struct tr_config cfg = cfg_quiet();
    cfg.grace_ms = 20;
    cfg.kill_ms = 20;
    rep_open(&cfg);
    c.e = eng_new(&cfg);
    rp_spawn_all(&c);
    eng_run(c.e);
    struct tr_stats s = stats_of(c.e);
    assert_int_equal(s.tasks_ok, 1);
    assert_int_equal(s.tasks_cancelled, RP_READERS);
    assert_int_equal(s.tasks_failed, 1);
    assert_int_equal(s.tasks_killed, 1);
    assert_int_equal(result_of(c.t[RP_READERS]), -EIO);
    assert_int_equal(tr_engine_destroy(c.e), 0);
    rep_collect();

    assert_int_equal(count_substr(rep.text, "shutdown report"), 1);
    assert_contains(rep.text, "tr_engine_shutdown()");
    assert_contains(rep.text, "tasks ended: 1 ok, 3 cancelled, 1 failed, 1 killed");
    char line[512];
    assert_true(line_with(rep.text, "failed: task 'failer'", line, sizeof(line)));
    if (!strstr(line, "-5") && !strstr(line, "EIO") && !strstr(line, strerror(EIO)))
        fail_msg("no errno in the failure line: %s", line);
    assert_int_equal(count_substr(rep.text, "failed: task"), 1);
    assert_contains(rep.text, "killed: task 'stubborn'");
    assert_int_equal(count_substr(rep.text, "killed: task"), 1);
    assert_true(line_with(rep.text, "audit", line, sizeof(line)));
    assert_contains(line, "quiescent");
    assert_null(strstr(line, "NOT"));
    /* The cancelled readers are counted, never listed. */
    assert_null(strstr(rep.text, "reader-"));
    close_pair(c.p);
}

/* report_fd -1 writes nothing anywhere, even with a grace dump and a kill:
 * with stderr captured in a pipe, the same shutdown writes to it with
 * report_fd 2 (the control) and not a byte with -1. */
static size_t run_captured(int report_fd)
{
    int cap[2];
    assert_int_equal(pipe2(cap, O_CLOEXEC | O_NONBLOCK), 0);
    fflush(stderr);
    int saved = dup(2);
    assert_true(saved >= 0);
    assert_int_equal(dup2(cap[1], 2), 2);

    struct rp_ctx c;
    memset(&c, 0, sizeof(c));
    make_pipe(c.p);
    struct tr_config cfg = cfg_quiet();
    cfg.grace_ms = 20;
    cfg.kill_ms = 20;
    cfg.report_fd = report_fd;
    tr_engine *e = NULL;
    int rc_create = tr_engine_create(&e, &cfg);
    int rc_run = -1, rc_destroy = -1;
    struct tr_stats s;
    memset(&s, 0, sizeof(s));
    if (rc_create == 0) {
        c.e = e;
        rp_spawn_all(&c);
        rc_run = tr_engine_run(e);
        tr_engine_stats(e, &s);
        rc_destroy = tr_engine_destroy(e);
    }
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    int n = pipe_bytes(cap[0]);
    close_pair(cap);
    close_pair(c.p);
    assert_int_equal(rc_create, 0);
    assert_int_equal(rc_run, 0);
    assert_int_equal(rc_destroy, 0);
    tr_test_assert_clean();
    assert_int_equal(s.tasks_killed, 1);
    assert_int_equal(s.tasks_failed, 1);
    assert_true(n >= 0);
    return (size_t)n;
}

static void test_shutdown_report_fd_minus_one_is_silent(void **state)
{
    (void)state;
    assert_true(run_captured(2) > 0);
    assert_int_equal(run_captured(-1), 0);
}

/* ========================================================== tr_engine_dump */

struct dp_ctx {
    tr_engine *e;
    int rp[2], sp[2], out[2];
    tr_task *reader, *sleeper, *joiner, *shielded;
    int dump_rc, dump_null, dump_badfd, dump_closed;
};

static int dp_reader(void *p)
{
    struct dp_ctx *c = p;
    char b[4];
    return (int)tr_read(c->rp[0], b, sizeof(b), -1);
}

static int dp_sleeper(void *p)
{
    (void)p;
    return tr_sleep_ns(3600ull * 1000000000ull);
}

static int dp_joiner(void *p)
{
    struct dp_ctx *c = p;
    int res;
    int r = tr_join(c->sleeper, &res);
    if (r != 0)
        (void)tr_detach(c->sleeper);
    return r;
}

static int dp_shielded(void *p)
{
    struct dp_ctx *c = p;
    char b[4];
    TCHECK_EQ(tr_shield_begin(), 1);
    TCHECK_EQ(tr_cancel(tr_self()), 0);
    ssize_t r = tr_read(c->sp[0], b, sizeof(b), -1);
    TCHECK_EQ(tr_shield_end(), 0);
    return (int)r;
}

static int dp_main(void *p)
{
    struct dp_ctx *c = p;
    TCHECK(wait_parked(c->reader, TR_WAIT_OP));
    TCHECK(wait_parked(c->sleeper, TR_WAIT_TIMER));
    TCHECK(wait_parked(c->joiner, TR_WAIT_JOIN));
    TCHECK(wait_parked(c->shielded, TR_WAIT_OP));
    c->dump_rc = tr_engine_dump(c->e, c->out[1]);
    c->dump_null = tr_engine_dump(NULL, c->out[1]);
    c->dump_badfd = tr_engine_dump(c->e, -1);
    /* A closed descriptor: the write's own error comes back. */
    int fd = dup(c->out[1]);
    close(fd);
    c->dump_closed = tr_engine_dump(c->e, fd);
    /* Let everyone end: data for the shielded reader, a shutdown for the
     * rest (grace is long; the shield ends on its own). */
    TCHECK_EQ(tr_write(c->sp[1], "s", 1, -1), 1);
    TCHECK_EQ(tr_engine_shutdown(c->e), 0);
    return 0;
}

/* tr_engine_dump lists one line per live task: its name, its state (parked
 * on a read with op=read and the pipe's fd, sleeping, joining), and the
 * cancelled/shielded marks; it returns the number of tasks listed; NULL
 * engine or a negative fd is -EINVAL, a closed fd the write's -EBADF. */
static void test_shutdown_dump_lists_live_tasks(void **state)
{
    (void)state;
    struct dp_ctx c;
    memset(&c, 0, sizeof(c));
    make_pipe(c.rp);
    make_pipe(c.sp);
    make_pipe(c.out);
    struct tr_config cfg = cfg_quiet();
    c.e = eng_new(&cfg);
    assert_int_equal(spawn_named(c.e, &c.reader, dp_reader, &c, "dump-reader", 0), 0);
    assert_int_equal(spawn_named(c.e, &c.sleeper, dp_sleeper, &c, "dump-sleeper", 0), 0);
    assert_int_equal(spawn_named(c.e, &c.joiner, dp_joiner, &c, "dump-joiner", 0), 0);
    assert_int_equal(spawn_named(c.e, &c.shielded, dp_shielded, &c, "dump-shielded", 0), 0);
    assert_int_equal(spawn_named(c.e, NULL, dp_main, &c, "dump-main", 0), 0);
    eng_run(c.e);
    /* After the run nothing is alive: an empty dump. */
    assert_int_equal(tr_engine_dump(c.e, c.out[1]), 0);
    assert_int_equal(tr_engine_destroy(c.e), 0);

    char text[8192];
    close(c.out[1]);
    c.out[1] = -1;
    ssize_t n = read(c.out[0], text, sizeof(text) - 1);
    assert_true(n > 0);
    text[n] = '\0';
    assert_int_equal(c.dump_rc, 5);
    assert_int_equal(c.dump_null, -EINVAL);
    assert_int_equal(c.dump_badfd, -EINVAL);
    assert_int_equal(c.dump_closed, -EBADF);
    assert_int_equal(count_substr(text, "\n"), 5);

    char line[512], want[64];
    assert_true(line_with(text, "'dump-reader'", line, sizeof(line)));
    assert_contains(line, "op=read");
    snprintf(want, sizeof(want), "fd=%d", c.rp[0]);
    assert_contains(line, want);
    assert_null(strstr(line, "cancelled"));
    assert_true(line_with(text, "'dump-sleeper'", line, sizeof(line)));
    assert_contains(line, "sleep");
    assert_true(line_with(text, "'dump-joiner'", line, sizeof(line)));
    assert_contains(line, "join");
    assert_true(line_with(text, "'dump-shielded'", line, sizeof(line)));
    assert_contains(line, "op=read");
    snprintf(want, sizeof(want), "fd=%d", c.sp[0]);
    assert_contains(line, want);
    assert_contains(line, "cancelled");
    assert_contains(line, "shielded");
    assert_true(line_with(text, "'dump-main'", line, sizeof(line)));
    close_pair(c.rp);
    close_pair(c.sp);
    close_pair(c.out);
}

/* ================================================================== tr_run */

struct run_ctx {
    int p[2];
    int ret;
    int main_ran;
    tr_task *reader, *sleeper, *waiter;
    ssize_t r_res;
    int s_res, w_res, w_nop;
    int ended;
    int reg_rc, hook_ran, hook_ended, hook_self;
};

static int run_reader(void *p)
{
    struct run_ctx *c = p;
    char b[4];
    c->r_res = tr_read(c->p[0], b, sizeof(b), -1);
    c->ended++;
    return (int)c->r_res;
}

static int run_sleeper(void *p)
{
    struct run_ctx *c = p;
    c->s_res = tr_sleep_ns(3600ull * 1000000000ull);
    c->ended++;
    return c->s_res;
}

static int run_waiter(void *p)
{
    struct run_ctx *c = p;
    c->w_res = tr_wait_shutdown();
    c->w_nop = tr_nop();
    c->ended++;
    return c->w_res;
}

static int run_hook(void *p)
{
    struct run_ctx *c = p;
    c->hook_ran++;
    c->hook_ended = c->ended;
    c->hook_self = tr_self() != NULL;
    return 0;
}

static int run_main(void *p)
{
    struct run_ctx *c = p;
    c->main_ran = 1;
    TCHECK_EQ(tr_spawn(NULL, &c->reader, run_reader, c, NULL), 0);
    TCHECK_EQ(tr_spawn(NULL, &c->sleeper, run_sleeper, c, NULL), 0);
    TCHECK_EQ(tr_spawn(NULL, &c->waiter, run_waiter, c, NULL), 0);
    c->reg_rc = tr_at_shutdown(run_hook, c);
    TCHECK(wait_parked(c->reader, TR_WAIT_OP));
    TCHECK(wait_parked(c->sleeper, TR_WAIT_TIMER));
    TCHECK(wait_parked(c->waiter, TR_WAIT_SHUTDOWN));
    TCHECK_EQ(tr_detach(c->reader), 0);
    TCHECK_EQ(tr_detach(c->sleeper), 0);
    TCHECK_EQ(tr_detach(c->waiter), 0);
    return c->ret;
}

static void run_main_case(int ret)
{
    struct run_ctx c;
    memset(&c, 0, sizeof(c));
    c.ret = ret;
    c.w_res = 777;
    make_pipe(c.p);
    struct tr_config cfg = cfg_quiet();
    rep_open(&cfg);
    assert_int_equal(tr_run(run_main, &c, &cfg), ret);
    tr_test_assert_clean();
    assert_int_equal(c.main_ran, 1);
    assert_int_equal(c.r_res, -ECANCELED);
    assert_int_equal(c.s_res, -ECANCELED);
    assert_int_equal(c.w_res, 0);
    assert_int_equal(c.w_nop, -ECANCELED);
    assert_int_equal(c.ended, 3);
    assert_int_equal(c.reg_rc, 0);
    assert_int_equal(c.hook_ran, 1);
    assert_int_equal(c.hook_ended, 3);
    assert_true(c.hook_self);
    rep_collect();
    assert_int_equal(count_substr(rep.text, "shutdown report"), 1);
    assert_contains(rep.text, "main task returned");
    assert_contains(rep.text, "quiescent");
    close_pair(c.p);
}

/* tr_run returns main's result; the tasks still running when main returns
 * are cancelled (waiters woken with 0 first), hooks run, and the report
 * names the trigger "main task returned". */
static void test_shutdown_run_returns_main_result(void **state)
{
    (void)state;
    run_main_case(42);
}

static void test_shutdown_run_returns_main_error(void **state)
{
    (void)state;
    run_main_case(-EIO);
}

static int run_noop_main(void *p)
{
    int *ran = p;
    (*ran)++;
    return 0;
}

struct nested_ctx {
    int rc;
    int ran;
};

static int run_nested(void *p)
{
    struct nested_ctx *c = p;
    struct tr_config cfg = cfg_quiet();
    c->rc = tr_run(run_noop_main, &c->ran, &cfg);
    return 0;
}

/* tr_run's bad input: NULL main is -EINVAL, a config the engine refuses
 * (sq_entries 0) its -EINVAL, a call from inside a task -EPERM; main never
 * runs in any of them. */
static void test_shutdown_run_bad_input(void **state)
{
    (void)state;
    int ran = 0;
    struct tr_config cfg = cfg_quiet();
    assert_int_equal(tr_run(NULL, NULL, &cfg), -EINVAL);
    cfg.sq_entries = 0;
    assert_int_equal(tr_run(run_noop_main, &ran, &cfg), -EINVAL);
    assert_int_equal(ran, 0);

    struct nested_ctx n = {777, 0};
    struct tr_config qc = cfg_quiet();
    tr_engine *e = eng_new(&qc);
    assert_int_equal(tr_spawn(e, NULL, run_nested, &n, NULL), 0);
    eng_run(e);
    assert_int_equal(tr_engine_destroy(e), 0);
    assert_int_equal(n.rc, -EPERM);
    assert_int_equal(n.ran, 0);
}

/* ======================================== natural end, then a second run */

struct na_ctx {
    tr_engine *e;
    int sync[2];
    int nop;
    uint64_t internal_in_task;
    int wake_armed_in_task;
    uint64_t engine_ops_public;
    int wait_res;
    int thr_rc;
};

static int na_first(void *p)
{
    struct na_ctx *c = p;
    c->nop = tr_nop();
    c->internal_in_task = c->e->sw.inflight;
    c->wake_armed_in_task = c->e->sw.wake_armed;
    return 0;
}

static int na_second(void *p)
{
    struct na_ctx *c = p;
    c->internal_in_task = c->e->sw.inflight;
    c->wake_armed_in_task = c->e->sw.wake_armed;
    TCHECK_EQ(write(c->sync[1], "x", 1), 1);
    c->wait_res = tr_wait_shutdown();
    return 0;
}

static void *na_thread(void *p)
{
    struct na_ctx *c = p;
    char b;
    if (read(c->sync[0], &b, 1) != 1)
        return NULL;
    c->thr_rc = tr_engine_shutdown(c->e);
    return NULL;
}

/* A run that ends naturally (no shutdown) leaves nothing in flight, the
 * engine's own wakeup read included; a second tr_engine_run re-arms that
 * read (white-box, and functionally: only it can carry another thread's
 * tr_engine_shutdown to an engine whose one task waits in
 * tr_wait_shutdown); tr_engine_destroy then returns 0. */
static void test_shutdown_natural_end_then_second_run_rearms(void **state)
{
    (void)state;
    struct na_ctx c;
    memset(&c, 0, sizeof(c));
    c.wait_res = c.thr_rc = 777;
    make_pipe(c.sync);
    struct tr_config cfg = cfg_quiet();
    rep_open(&cfg);
    c.e = eng_new(&cfg);
    assert_int_equal(tr_spawn(c.e, NULL, na_first, &c, NULL), 0);
    eng_run(c.e);
    assert_int_equal(c.nop, 0);
    assert_true(c.internal_in_task >= 1);
    assert_true(c.wake_armed_in_task);
    assert_int_equal(c.e->sd.phase, TR_PH_NONE); /* no shutdown happened */

    c.internal_in_task = 0;
    c.wake_armed_in_task = 0;
    assert_int_equal(tr_spawn(c.e, NULL, na_second, &c, NULL), 0);
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, na_thread, &c), 0);
    int rc = tr_engine_run(c.e);
    assert_int_equal(pthread_join(th, NULL), 0);
    assert_int_equal(rc, 0);
    tr_test_assert_clean();
    sd_audit(c.e);
    assert_true(c.internal_in_task >= 1);
    assert_true(c.wake_armed_in_task);
    assert_int_equal(c.thr_rc, 0);
    assert_int_equal(c.wait_res, 0);
    assert_int_equal(tr_engine_destroy(c.e), 0);
    rep_collect();
    assert_int_equal(count_substr(rep.text, "shutdown report"), 1);
    close_pair(c.sync);
}

static int eo_task(void *p)
{
    struct na_ctx *c = p;
    c->engine_ops_public = tstats().engine_ops_inflight;
    c->internal_in_task = c->e->sw.inflight;
    return 0;
}

/* stats.engine_ops_inflight counts the engine's own ops: while a task runs
 * the wakeup read is armed, so the counter is at least 1 (and equals the
 * engine's internal count); after the run it is 0. Without this the "0
 * after the run" checks of the audit would prove nothing. */
static void test_shutdown_stats_count_engine_ops(void **state)
{
    (void)state;
    struct na_ctx c;
    memset(&c, 0, sizeof(c));
    struct tr_config cfg = cfg_quiet();
    c.e = eng_new(&cfg);
    assert_int_equal(tr_spawn(c.e, NULL, eo_task, &c, NULL), 0);
    eng_run(c.e);
    assert_int_equal(tr_engine_destroy(c.e), 0);
    assert_true(c.internal_in_task >= 1);
    assert_int_equal(c.engine_ops_public, c.internal_in_task);
}

/* ==================================================================== main */

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_shutdown_from_task_wakes_waiters_cancels_parked),
        T(test_shutdown_before_run_one_orderly_shutdown),
        T(test_shutdown_before_run_with_no_tasks),
        T(test_shutdown_from_thread_while_engine_waits_on_read),
        T(test_shutdown_from_thread_wakes_idle_engine),
        T(test_shutdown_drain_lets_task_finish),
        T(test_shutdown_drain_zero_cancels_at_once),
        T(test_shutdown_late_task_cancelled_after_all_others),
        T(test_shutdown_spawn_during_stop_starts_cancelled),
        T(test_shutdown_spawn_during_drain_starts_cancelled),
        T(test_shutdown_shields_hold_until_grace),
        T(test_shutdown_kill_stubborn_loop),
        T(test_shutdown_killed_task_read_reaped_before_stack_freed),
        T(test_shutdown_hooks_run_lifo_after_all_tasks),
        T(test_shutdown_report_names_failures_and_kills),
        T(test_shutdown_report_fd_minus_one_is_silent),
        T(test_shutdown_dump_lists_live_tasks),
        T(test_shutdown_run_returns_main_result),
        T(test_shutdown_run_returns_main_error),
        T(test_shutdown_run_bad_input),
        T(test_shutdown_natural_end_then_second_run_rearms),
        T(test_shutdown_stats_count_engine_ops),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
