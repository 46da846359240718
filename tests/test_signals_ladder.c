/* SPDX-License-Identifier: MIT */
/*
 * Description: the 3-signal ladder of DESIGN section 4. Rung 1: the
 * first SIGTERM/SIGINT (or a custom shutdown signal), from the process itself
 * or from a child process, starts one orderly shutdown. Rung 2: the second
 * signal breaks the shields. Rung 3: the third kills the stragglers, after
 * their op's completion was reaped (G1): a killed task's stack buffer is
 * never written.
 * Safety (every signal sent while an engine blocks it, children reaped
 * inside the engine's lifetime) and white-box parking: tr_test_signals.h.
 */
#define _GNU_SOURCE /* pipe2, memfd_create, sigabbrev_np */
#include "tr_test_signals.h"

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
    c->is_cancelled = tr__task_cancelled(s);
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
    c->uncancelled1 = !tr__task_cancelled(c->late);
    kill_self(SIGTERM);
    c->got2 = wait_signals(2);
    yields_lax(5);
    c->broken2 = e->sd.shields_broken;
    c->parked2 = parked_on(c->late, TR_WAIT_OP);
    c->uncancelled2 = !tr__task_cancelled(c->late);
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

/* ----------------------------------------------------------------- main */

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
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
