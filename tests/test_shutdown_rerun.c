/* SPDX-License-Identifier: MIT */
/*
 * Description: an engine between runs (DESIGN G2): a run that ends
 * naturally, without a shutdown, leaves nothing in flight (the engine's own
 * wakeup read included), and a second tr_engine_run re-arms that read; the
 * public engine_ops_inflight counter counts the engine's own ops, so the
 * audit's "0 after the run" proves something.
 * Common ground (no signals, no sleeps, white-box parking): tr_test_shutdown.h.
 */
#define _GNU_SOURCE /* pipe2 */
#include "tr_test_shutdown.h"

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

/* ================================================================= main */

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_shutdown_natural_end_then_second_run_rearms),
        T(test_shutdown_stats_count_engine_ops),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
