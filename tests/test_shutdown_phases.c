/* SPDX-License-Identifier: MIT */
/*
 * Description: the phases of the graceful shutdown keep their order and
 * their deadlines (DESIGN section 4, G6): Stop (drain_ms lets a task finish
 * on its own, drain_ms 0 cancels at once; tasks spawned during Stop or Drain
 * start cancelled), Cancel (TR_SPAWN_LATE tasks only after all others
 * ended), Drain (shields hold until grace_ms), Kill (kill_ms after grace; the
 * killed task's read is cancelled and reaped before its stack goes, G1).
 * Common ground (no signals, no sleeps, white-box parking): tr_test_shutdown.h.
 */
#define _GNU_SOURCE /* pipe2 */
#include "tr_test_shutdown.h"

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
    if (tr__task_cancelled(c->logger))
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

/* ================================================================= main */

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_shutdown_drain_lets_task_finish),
        T(test_shutdown_drain_zero_cancels_at_once),
        T(test_shutdown_late_task_cancelled_after_all_others),
        T(test_shutdown_spawn_during_stop_starts_cancelled),
        T(test_shutdown_spawn_during_drain_starts_cancelled),
        T(test_shutdown_shields_hold_until_grace),
        T(test_shutdown_kill_stubborn_loop),
        T(test_shutdown_killed_task_read_reaped_before_stack_freed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
