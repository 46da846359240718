/*
 * Description: regression tests for the bugs an engine review found (the
 * fix is commit "Fix review findings"). Each test fails without its fix.
 *   1. a config stack_size whose page rounding overflows (or absurdly large)
 *      was accepted and crashed the first spawn: now -EINVAL;
 *   2. the CQ limit was 1M although the kernel allows 65536: documented
 *      configs (sq_entries 32768) failed with -EINVAL;
 *   3. the registered ring fd stayed in the running thread's table after
 *      tr_engine_run, so engines run on one worker and destroyed elsewhere
 *      filled the table (16 slots) and leaked their rings;
 *   4. of two engines on one thread, destroying the first unblocked the
 *      shutdown signals under the second;
 *   5. an at_shutdown hook blocked in I/O held the shutdown forever when no
 *      signal came: hooks now get grace_ms, then kill_ms;
 *   6. -EDEADLK returned with the engine's own reads still in flight (G2).
 */
#define _GNU_SOURCE
#include "tr_test.h"

#include <pthread.h>

/* ---- 1 ---------------------------------------------------------------------- */

static void test_regress_config_stack_size_bounds(void **state)
{
    (void)state;
    struct tr_config cfg;
    tr_engine *e = NULL;
    tr_config_init(&cfg);
    cfg.stack_size = SIZE_MAX; /* rounding to pages overflows */
    assert_int_equal(tr_engine_create(&e, &cfg), -EINVAL);
    cfg.stack_size = (size_t)1 << 58; /* a slab of 64 would overflow */
    assert_int_equal(tr_engine_create(&e, &cfg), -EINVAL);
    cfg.stack_size = ((size_t)1 << 30) + 1;
    assert_int_equal(tr_engine_create(&e, &cfg), -EINVAL);
    assert_null(e);
}

/* ---- 2 ---------------------------------------------------------------------- */

static void test_regress_cq_limits_match_kernel(void **state)
{
    (void)state;
    struct tr_config cfg;
    tr_engine *e = NULL;
    tr_config_init(&cfg);
    cfg.flags = TR_CFG_NO_SIGNALS;
    cfg.sq_entries = 32768; /* the header's maximum, default CQ */
    assert_int_equal(tr_engine_create(&e, &cfg), 0);
    assert_int_equal(tr_engine_destroy(e), 0);
    cfg.sq_entries = 256;
    cfg.cq_entries = 65536;
    assert_int_equal(tr_engine_create(&e, &cfg), 0);
    assert_int_equal(tr_engine_destroy(e), 0);
    cfg.cq_entries = 65537;
    assert_int_equal(tr_engine_create(&e, &cfg), -EINVAL);
}

/* ---- 3 ---------------------------------------------------------------------- */

#define RING_ENGINES 24 /* more than the 16 registered-ring slots of a thread */

static tr_engine *ring_engines[RING_ENGINES];
static int ring_registered[RING_ENGINES];
static int ring_run_rc[RING_ENGINES];

static int probe_registered(void *arg)
{
    int i = (int)(intptr_t)arg;
    ring_registered[i] = ring_engines[i]->ring_registered;
    return tr_nop();
}

static void *ring_worker(void *arg)
{
    (void)arg;
    for (int i = 0; i < RING_ENGINES; i++)
        ring_run_rc[i] = tr_engine_run(ring_engines[i]);
    return NULL;
}

static void test_regress_ring_fd_registered_per_run(void **state)
{
    (void)state;
    struct tr_config cfg;
    tr_config_init(&cfg);
    cfg.flags = TR_CFG_NO_SIGNALS;
    /* Created here, run on one worker thread, destroyed here. */
    for (int i = 0; i < RING_ENGINES; i++) {
        ring_engines[i] = eng_new(&cfg);
        assert_int_equal(tr_spawn(ring_engines[i], NULL, probe_registered, (void *)(intptr_t)i, NULL),
                         0);
    }
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, ring_worker, NULL), 0);
    assert_int_equal(pthread_join(th, NULL), 0);
    for (int i = 0; i < RING_ENGINES; i++) {
        assert_int_equal(ring_run_rc[i], 0);
        /* Every run could register its ring: earlier ones gave theirs back. */
        assert_int_equal(ring_registered[i], 1);
        assert_false(ring_engines[i]->ring_registered);
        tr_test_assert_quiescent(ring_engines[i]);
        assert_int_equal(tr_engine_destroy(ring_engines[i]), 0);
    }
}

/* ---- 4 ---------------------------------------------------------------------- */

static bool blocked(int sig)
{
    sigset_t m;
    pthread_sigmask(SIG_BLOCK, NULL, &m);
    return sigismember(&m, sig) == 1;
}

static void test_regress_two_engines_signal_blocks_refcounted(void **state)
{
    (void)state;
    assert_false(blocked(SIGTERM));
    tr_engine *a = eng_new(NULL), *b = eng_new(NULL);
    assert_true(blocked(SIGTERM));
    assert_int_equal(tr_engine_destroy(a), 0); /* first created, first destroyed */
    assert_true(blocked(SIGTERM));              /* b still reads SIGTERM */
    assert_true(blocked(SIGINT));
    assert_int_equal(tr_engine_destroy(b), 0);
    assert_false(blocked(SIGTERM));
    assert_false(blocked(SIGINT));
}

/* ---- 5 ---------------------------------------------------------------------- */

static int hook_pipe[2];
static int hook_read_rc = 1;

static int stuck_hook(void *arg)
{
    (void)arg;
    char b;
    hook_read_rc = (int)tr_read(hook_pipe[0], &b, 1, -1); /* nobody writes */
    return hook_read_rc;
}

static int register_stuck_hook(void *arg)
{
    (void)arg;
    TCHECK_EQ(tr_at_shutdown(stuck_hook, NULL), 0);
    return tr_engine_shutdown(tr_self_engine());
}

static void test_regress_hook_bounded_without_signals(void **state)
{
    (void)state;
    struct tr_config cfg;
    tr_config_init(&cfg);
    cfg.flags = TR_CFG_NO_SIGNALS;
    cfg.grace_ms = 20;
    cfg.kill_ms = 20;
    cfg.report_fd = -1;
    make_pipe(hook_pipe);
    tr_engine *e = eng_new(&cfg);
    assert_int_equal(tr_spawn(e, NULL, register_stuck_hook, NULL, NULL), 0);
    assert_int_equal(tr_engine_run(e), 0); /* returns: the hook was cancelled */
    tr_test_assert_clean();
    assert_int_equal(hook_read_rc, -ECANCELED);
    tr_test_assert_quiescent(e);
    assert_int_equal(tr_engine_destroy(e), 0);
    close_pair(hook_pipe);
}

/* ---- 6 ---------------------------------------------------------------------- */

static tr_task *cyc_a, *cyc_b;

static int join_b(void *arg)
{
    (void)arg;
    return tr_join(cyc_b, NULL);
}

static int join_a(void *arg)
{
    (void)arg;
    return tr_join(cyc_a, NULL);
}

static void test_regress_edeadlk_leaves_nothing_in_flight(void **state)
{
    (void)state;
    tr_engine *e = eng_new(NULL);
    assert_int_equal(tr_spawn(e, &cyc_a, join_b, NULL, NULL), 0);
    assert_int_equal(tr_spawn(e, &cyc_b, join_a, NULL, NULL), 0);
    assert_int_equal(tr_engine_run(e), -EDEADLK);
    struct tr_stats st = stats_of(e);
    assert_int_equal(st.engine_ops_inflight, 0);
    assert_int_equal(st.ops_inflight, 0);
    assert_int_equal(tr__ring_sq_pending(e), 0);
    assert_true(tr__ring_cq_empty(e));
    assert_int_equal(tr_cancel(cyc_a), 0);
    assert_int_equal(tr_cancel(cyc_b), 0);
    assert_int_equal(tr_engine_run(e), 0);
    assert_int_equal(tr_detach(cyc_a), 0);
    assert_int_equal(tr_detach(cyc_b), 0);
    tr_test_assert_quiescent(e);
    assert_int_equal(tr_engine_destroy(e), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_regress_config_stack_size_bounds),
        T(test_regress_cq_limits_match_kernel),
        T(test_regress_ring_fd_registered_per_run),
        T(test_regress_two_engines_signal_blocks_refcounted),
        T(test_regress_hook_bounded_without_signals),
        T(test_regress_edeadlk_leaves_nothing_in_flight),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
