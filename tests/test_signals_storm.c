/* SPDX-License-Identifier: MIT */
/*
 * Description: shutdown signals under load (DESIGN section 4,
 * "Signals"): a storm of 10,000 SIGTERM/SIGINT from a child, with hundreds of
 * tasks parked (some shielded, some doing cleanup I/O), ends in exactly one
 * orderly shutdown; 100,000 parked tasks are ended by one SIGTERM.
 * Safety (every signal sent while an engine blocks it, children reaped
 * inside the engine's lifetime) and white-box parking: tr_test_signals.h.
 */
#define _GNU_SOURCE /* pipe2, memfd_create, sigabbrev_np */
#include "tr_test_signals.h"

/* ------------------------------------------- a storm of 10,000 signals */

#define STORM_SIGNALS 10000
#define STORM_PIPES 8
#define STORM_READERS 200 /* plain readers, spread over the pipes */
#define STORM_SLEEPERS 200
#define STORM_SHIELDED 40 /* shielded readers */
#define STORM_SHSLEEP 40  /* shielded sleepers */
#define STORM_CLEANUP 20  /* do shielded I/O after their cancellation */
#define STORM_TASKS                                                                                \
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
        fail_msg("the child was not reaped inside the engine's run (hook calls %d)", c.hook_calls);
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

/* ----------------------------------------------------------------- main */

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_signals_storm_one_orderly_shutdown),
        T(test_signals_100k_parked_sigterm),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
