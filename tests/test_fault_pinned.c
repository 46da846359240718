/* SPDX-License-Identifier: MIT */
/*
 * Description: the minimal reproductions of what the fault sweeps
 * (test_fault_sweep.c) found, pinned as tests of their own, and a CQ that
 * overflows. Pinned: tr_at_shutdown reserves the hooks' task up front (an
 * -ENOMEM there used to drop every hook silently); tr_engine_run returns
 * when the cancel of its wakeup read gets no SQE; a task's cancel ends even
 * when its SQE is refused twice (G4). Each runs in a child process
 * (fault_run_isolated, tr_harness.h), so that a crash, an engine abort or a
 * hang fails that case, not the suite. The overflow: sq_entries 4,
 * cq_entries 8, 200 tasks completing at once, and no completion may be
 * lost.
 */
#define _GNU_SOURCE /* pipe2 */
#include "tr_harness.h"

#include <pthread.h>
#include <stdatomic.h>

/* ------------------------------------------ pinned: minimal reproductions */

/* A one-task engine whose task arms a plan just before it returns, so
 * that the plan's countdown starts at the engine's own work after the
 * last task: the at-shutdown task's spawn, the stop of the internal reads. */
struct pinned {
    struct fault_plan plan;
    bool shutdown; /* register a hook and call tr_engine_shutdown first */
    int hook_ran;
};

static int pinned_hook(void *arg)
{
    struct pinned *pp = arg;
    pp->hook_ran++;
    return 0;
}

static int pinned_task(void *arg)
{
    struct pinned *pp = arg;
    WCHECK_EQ(tr_nop(), 0);
    if (pp->shutdown) {
        WCHECK_EQ(tr_at_shutdown(pinned_hook, pp), 0);
        WCHECK_EQ(tr_engine_shutdown(tr_self_engine()), 0);
    }
    tr__fault_arm(TR_FAULT_BIT(pp->plan.site), 1, pp->plan.burst, pp->plan.submit_err,
                  pp->plan.cqe_mode);
    return 0;
}

static void pinned_fn(const void *arg)
{
    struct pinned *pp = (struct pinned *)arg;
    struct tr_config cfg;
    fault_engine_cfg(&cfg);
    tr_engine *e = NULL;
    int rc = tr_engine_create(&e, &cfg);
    if (!SCHECK(rc == 0, rc))
        return;
    rc = tr_spawn(e, NULL, pinned_task, pp, NULL);
    if (!SCHECK(rc == 0, rc))
        return;
    int run = tr_engine_run(e);
    fault_rep.injected = tr__fault_injected();
    tr__fault_disarm();
    SCHECK(run == 0, run);
    if (fault_wrec.count)
        fault_rep_fail(fault_wrec.first, fault_wrec.first);
    SCHECK(fault_rep.injected > 0, fault_rep.injected);
    if (pp->shutdown)
        SCHECK(pp->hook_ran == 1, pp->hook_ran);
    struct tr_stats st;
    SCHECK(tr_engine_stats(e, &st) == 0, 0);
    SCHECK(st.engine_ops_inflight == 0, st.engine_ops_inflight);
    SCHECK(st.tasks_live == 0, st.tasks_live);
    int d = tr_engine_destroy(e);
    SCHECK(d == 0, d);
}

static void pinned_run(struct pinned *pp, const char *what)
{
    fault_steps_reset();
    snprintf(fault_step_desc, sizeof(fault_step_desc),
             "%s: site %s mode %s countdown 1 after the last task, "
             "burst %llu",
             fault_step_test, fault_site_name[pp->plan.site], fault_plan_mode(&pp->plan),
             (unsigned long long)pp->plan.burst);
    snprintf(fault_plan_label, sizeof(fault_plan_label), "pinned");
    fault_run_isolated(pinned_fn, pp);
    fault_record_step();
    snprintf(fault_step_desc, sizeof(fault_step_desc), "%s", fault_step_test);
    fault_sweeps_done(what);
}

/* From the ALLOC sweep: the at-shutdown task used to be allocated when the
 * hooks were due, and an -ENOMEM there dropped every hook silently. Now
 * tr_at_shutdown takes the task's record and stack up front: a failure is
 * its -ENOMEM, and at shutdown, with every allocation failing, the hooks
 * still run. */
static int ar_hook_ran;

static int ar_hook(void *arg)
{
    (void)arg;
    ar_hook_ran++;
    return 0;
}

static int ar_task(void *arg)
{
    (void)arg;
    tr__fault_arm(TR_FAULT_BIT(TR_FS_ALLOC), 1, 1, 0, 0);
    TCHECK_EQ(tr_at_shutdown(ar_hook, NULL), -ENOMEM); /* the reservation failed */
    TCHECK_EQ(tr__fault_injected(), 1);
    tr__fault_disarm();
    TCHECK_EQ(tr_at_shutdown(ar_hook, NULL), 0);
    /* From here every allocation fails, for good. */
    tr__fault_arm(TR_FAULT_BIT(TR_FS_ALLOC), 1, 0, 0, 0);
    TCHECK_EQ(tr_engine_shutdown(tr_self_engine()), 0);
    return 0;
}

static void test_fault_at_shutdown_reserves_hook_task(void **state)
{
    (void)state;
    struct tr_config cfg;
    fault_engine_cfg(&cfg);
    tr_engine *e = eng_new(&cfg);
    ar_hook_ran = 0;
    assert_int_equal(tr_spawn(e, NULL, ar_task, NULL, NULL), 0);
    int run = tr_engine_run(e);
    tr__fault_disarm();
    tr_test_assert_clean();
    assert_int_equal(run, 0);
    assert_int_equal(ar_hook_ran, 1); /* exactly the hook that was accepted */
    tr_test_assert_quiescent(e);
    assert_int_equal(tr_engine_destroy(e), 0);
}

/* From the GET_SQE sweep (its last countdown, burst 9): when the engine is
 * about to return and the cancel of its wakeup read gets no SQE (one
 * tr__ring_get_sqe gives up: 1 + 8 retries refused), tr_engine_run must
 * still return: retry the cancel, never wait for a read nobody ends. */
static void test_fault_run_returns_when_stop_cancel_refused(void **state)
{
    (void)state;
    struct pinned pp = {.plan = {TR_FS_GET_SQE, 9, 0, 0}};
    pinned_run(&pp, "pinned: the internal read's stop cancel is refused once");
}

/* A reader parked on a pipe nobody writes to, cancelled by another task
 * while the ring refuses the cancel's SQE twice in a row. */
static struct {
    int p[2];
    tr_task *reader;
    long res;
    int cancel_rc, join_rc;
    uint64_t burst;
} dc;

static int dc_reader(void *arg)
{
    (void)arg;
    char c;
    dc.res = tr_read(dc.p[0], &c, 1, -1);
    return 0;
}

static int dc_canceller(void *arg)
{
    (void)arg;
    for (int i = 0; i < 100 && !parked_on(dc.reader, TR_WAIT_OP); i++)
        WCHECK_EQ(tr_yield(), 0);
    WCHECK(parked_on(dc.reader, TR_WAIT_OP));
    /* The cancel's tr__ring_get_sqe gives up (9 refusals), then so does
     * the retry of the deferred cancel in the same pass (9 more). */
    tr__fault_arm(TR_FAULT_BIT(TR_FS_GET_SQE), 1, dc.burst, 0, 0);
    dc.cancel_rc = tr_cancel(dc.reader);
    dc.join_rc = tr_join(dc.reader, NULL);
    return 0;
}

static void dc_fn(const void *arg)
{
    (void)arg;
    int fds0 = fault_fds_now();
    dc.res = 1;
    dc.cancel_rc = dc.join_rc = 1;
    if (!SCHECK(pipe2(dc.p, O_CLOEXEC) == 0, errno))
        return;
    struct tr_config cfg;
    fault_engine_cfg(&cfg);
    tr_engine *e = NULL;
    int rc = tr_engine_create(&e, &cfg);
    if (!SCHECK(rc == 0, rc))
        return;
    SCHECK(tr_spawn(e, &dc.reader, dc_reader, NULL, NULL) == 0, 0);
    SCHECK(tr_spawn(e, NULL, dc_canceller, NULL, NULL) == 0, 0);
    int run = tr_engine_run(e);
    fault_rep.injected = tr__fault_injected();
    tr__fault_disarm();
    SCHECK(run == 0, run);
    if (fault_wrec.count)
        fault_rep_fail(fault_wrec.first, fault_wrec.first);
    SCHECK(fault_rep.injected == dc.burst, fault_rep.injected);
    SCHECK(dc.cancel_rc == 0, dc.cancel_rc);
    SCHECK(dc.join_rc == 0, dc.join_rc);
    SCHECK(dc.res == -ECANCELED, dc.res);
    struct tr_stats st;
    SCHECK(tr_engine_stats(e, &st) == 0, 0);
    SCHECK(st.ops_inflight == 0, st.ops_inflight);
    SCHECK(tr_engine_destroy(e) == 0, 0);
    close_pair(dc.p);
    SCHECK(fault_fds_now() == fds0, fault_fds_now() - fds0);
}

/* From the GET_SQE sweep (burst 18): G4, a cancellation always ends. When
 * the ring refuses a cancel's SQE, the engine defers it "to the next pass";
 * when the deferred retry is refused too, the next pass must still come
 * (no wait without a deadline while a cancel is pending), and the cancelled
 * read ends with -ECANCELED. Burst 9 (one refusal, retried in the same
 * pass) is the control. */
static void test_fault_cancel_ends_when_cancel_sqe_refused_twice(void **state)
{
    (void)state;
    static const uint64_t bursts[] = {9, 18};
    fault_steps_reset();
    for (size_t i = 0; i < 2; i++) {
        dc.burst = bursts[i];
        snprintf(fault_step_desc, sizeof(fault_step_desc),
                 "%s: site GET_SQE, countdown 1 at tr_cancel of a parked read, burst %llu",
                 fault_step_test, (unsigned long long)dc.burst);
        snprintf(fault_plan_label, sizeof(fault_plan_label), "pinned burst %llu",
                 (unsigned long long)dc.burst);
        fault_run_isolated(dc_fn, NULL);
        fault_record_step();
    }
    snprintf(fault_step_desc, sizeof(fault_step_desc), "%s", fault_step_test);
    fault_sweeps_done("pinned: a task's cancel SQE is refused once (burst 9), twice (burst 18)");
}

/* ------------------------------------------------------------- CQ overflow */

#define OVF_PAIRS 100 /* 200 tasks */

static struct {
    int fd[OVF_PAIRS][2];
    int reader_ok[OVF_PAIRS];
    int writer_ok[OVF_PAIRS];
    int overflow_seen; /* times a task saw the kernel's overflow flag set */
} ovf;

/* Before each op: is the kernel holding completions the CQ had no room
 * for (IORING_SQ_CQ_OVERFLOW)? White-box, for the report only. */
static void ovf_sample(void)
{
    if (tr__ring_overflow_pending(tr_self_engine()))
        ovf.overflow_seen++;
}

static int ovf_reader(void *arg)
{
    int i = (int)(intptr_t)arg;
    char buf[8], want[8];
    snprintf(want, sizeof(want), "r%06d", i);
    ovf_sample();
    ssize_t n = tr_read(ovf.fd[i][0], buf, sizeof(buf), -1);
    TCHECK_EQ(n, 8);
    TCHECK(n == 8 && memcmp(buf, want, 8) == 0);
    for (int k = 0; k < 3; k++) {
        ovf_sample();
        TCHECK_EQ(tr_nop(), 0);
    }
    ovf.reader_ok[i] = 1;
    return i;
}

static int ovf_writer(void *arg)
{
    int i = (int)(intptr_t)arg;
    char buf[8];
    snprintf(buf, sizeof(buf), "r%06d", i);
    for (int k = 0; k < 3; k++) {
        ovf_sample();
        TCHECK_EQ(tr_nop(), 0);
    }
    ovf_sample();
    TCHECK_EQ(tr_write(ovf.fd[i][1], buf, sizeof(buf), -1), 8);
    ovf_sample();
    TCHECK_EQ(tr_nop(), 0);
    ovf.writer_ok[i] = 1;
    return 1000 + i;
}

/* A CQ of 8 entries under 200 tasks whose completions arrive together (the
 * readers' all at once, when the writers run): more CQEs than the CQ holds.
 * NODROP keeps the excess in the kernel's overflow list; none may be lost.
 * stats.cq_overflows counts completions the kernel dropped, so it stays 0
 * while the overflow list absorbs them. */
static void test_fault_tiny_cq_overflow_loses_nothing(void **state)
{
    (void)state;
    int fds0 = count_fds();
    struct tr_config cfg;
    tr_config_init(&cfg);
    cfg.flags = TR_CFG_NO_SIGNALS;
    cfg.report_fd = -1;
    cfg.sq_entries = 4;
    cfg.cq_entries = 8;
    tr_engine *e = NULL;
    assert_int_equal(tr_engine_create(&e, &cfg), 0);
    print_message("fault: tiny CQ: asked sq 4 cq 8, the engine has sq %u cq %u\n", e->rs.sq_entries,
                  e->rs.cq_entries);
    assert_true(e->rs.cq_entries >= 8 && e->rs.cq_entries <= 16);
    memset(&ovf, 0, sizeof(ovf));
    tr_task *r[OVF_PAIRS], *wr[OVF_PAIRS];
    for (int i = 0; i < OVF_PAIRS; i++) {
        make_pipe(ovf.fd[i]);
        assert_int_equal(tr_spawn(e, &r[i], ovf_reader, (void *)(intptr_t)i, NULL), 0);
    }
    for (int i = 0; i < OVF_PAIRS; i++)
        assert_int_equal(tr_spawn(e, &wr[i], ovf_writer, (void *)(intptr_t)i, NULL), 0);
    assert_int_equal(tr_engine_run(e), 0);
    tr_test_assert_clean();
    for (int i = 0; i < OVF_PAIRS; i++) {
        int res = -1;
        assert_int_equal(tr_task_result(r[i], &res), 0);
        assert_int_equal(res, i);
        assert_int_equal(tr_task_result(wr[i], &res), 0);
        assert_int_equal(res, 1000 + i);
        assert_int_equal(tr_detach(r[i]), 0);
        assert_int_equal(tr_detach(wr[i]), 0);
        assert_true(ovf.reader_ok[i] && ovf.writer_ok[i]);
        assert_int_equal(pipe_bytes(ovf.fd[i][0]), 0);
    }
    struct tr_stats st = stats_of(e);
    print_message("fault: tiny CQ: %llu ops completed, %llu submit calls, %llu refused "
                  "(busy), cq_overflows %llu, overflow flag seen by tasks %d times\n",
                  (unsigned long long)st.ops_completed, (unsigned long long)st.submit_calls,
                  (unsigned long long)st.submit_busy, (unsigned long long)st.cq_overflows,
                  ovf.overflow_seen);
    /* Every op completed and was delivered: a reader's read and 3 nops, a
     * writer's 4 nops and its write. */
    assert_int_equal(st.tasks_ok, 2 * OVF_PAIRS);
    assert_int_equal(st.ops_completed, OVF_PAIRS * (4 + 5));
    assert_int_equal(st.cancels_submitted, 0);
    assert_int_equal(st.cqe_stale, 0);
    /* The scenario really overflowed the CQ (else it would test nothing). */
    assert_true(ovf.overflow_seen > 0);
    tr_test_assert_quiescent(e);
    assert_int_equal(tr_engine_destroy(e), 0);
    for (int i = 0; i < OVF_PAIRS; i++)
        close_pair(ovf.fd[i]);
    assert_int_equal(count_fds(), fds0);
}

/* ------------------------------- the kill rung and a close without room */

/* A close that waits for room in the SQ when the kill rung comes is not
 * given up: killing its task there would leak the fd (the close is never
 * cut short, and nobody else would close it). The closers have had their
 * cancellation (so the rung reaches them); every SQE is refused while
 * they make their closes, then the shutdown (grace and kill 0) comes in
 * the pass they wait for room. No fd may be left behind. */
#define KC_CLOSERS 16

static struct {
    int opened, closed;
    uint64_t sq_waits, killed;
} kc;

static int kc_closer(void *arg)
{
    (void)arg;
    WCHECK_EQ(tr_cancel(tr_self()), 0);
    WCHECK_EQ(tr_yield(), -ECANCELED); /* resumed with its cancellation */
    for (int i = 0; i < 100; i++) {
        int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
        if (!WCHECK(fd >= 0))
            break;
        kc.opened++;
        if (tr_close(fd) == 0)
            kc.closed++;
        (void)tr_yield();
    }
    return 0;
}

static int kc_driver(void *arg)
{
    (void)arg;
    for (int i = 0; i < KC_CLOSERS; i++)
        WCHECK_EQ(tr_spawn(NULL, NULL, kc_closer, NULL, NULL), 0);
    tr__fault_arm(TR_FAULT_BIT(TR_FS_GET_SQE), 1, 0, 0, 0); /* every SQE refused */
    /* The closers run ahead of us in each pass: the first yield lets them
     * take their cancellation, the second make their closes (parked for
     * room). */
    WCHECK_EQ(tr_yield(), 0);
    WCHECK_EQ(tr_yield(), 0);
    tr__fault_disarm();
    WCHECK_EQ(tr_engine_shutdown(tr_self_engine()), 0);
    return 0;
}

static void kc_fn(const void *arg)
{
    (void)arg;
    int fds0 = fault_fds_now();
    memset(&kc, 0, sizeof(kc));
    struct tr_config cfg;
    fault_engine_cfg(&cfg);
    cfg.drain_ms = 0;
    cfg.grace_ms = 0;
    cfg.kill_ms = 0;
    cfg.flags |= TR_CFG_NO_SIGNALS;
    tr_engine *e = NULL;
    int rc = tr_engine_create(&e, &cfg);
    if (!SCHECK(rc == 0, rc))
        return;
    SCHECK(tr_spawn(e, NULL, kc_driver, NULL, NULL) == 0, 0);
    int run = tr_engine_run(e);
    tr__fault_disarm();
    SCHECK(run == 0, run);
    if (fault_wrec.count)
        fault_rep_fail(fault_wrec.first, fault_wrec.first);
    struct tr_stats st;
    SCHECK(tr_engine_stats(e, &st) == 0, 0);
    SCHECK(st.tasks_live == 0, st.tasks_live);
    SCHECK(st.sq_waits >= KC_CLOSERS, st.sq_waits);         /* the case was there */
    SCHECK(st.tasks_killed == KC_CLOSERS, st.tasks_killed); /* and the kill rung */
    SCHECK(tr_engine_destroy(e) == 0, 0);
    SCHECK(fault_fds_now() == fds0, fault_fds_now() - fds0); /* every fd closed */
}

static void test_fault_kill_spares_close_waiting_for_room(void **state)
{
    (void)state;
    fault_steps_reset();
    snprintf(fault_step_desc, sizeof(fault_step_desc),
             "%s: site GET_SQE, every call while %d cancelled tasks close fds, then the kill rung",
             fault_step_test, KC_CLOSERS);
    snprintf(fault_plan_label, sizeof(fault_plan_label), "pinned kill of sq-room waits");
    fault_run_isolated(kc_fn, NULL);
    fault_record_step();
    snprintf(fault_step_desc, sizeof(fault_step_desc), "%s", fault_step_test);
    fault_sweeps_done("pinned: the kill rung spares a close that waits for SQ room");
}

/* ---- pinned: a call its target could not run keeps the target alive ---------- */

/* The target (B, on a thread) fails to make its served record (one
 * injected -ENOMEM) and replies at once; the caller on A is cancelled
 * before A reads that reply. The cancel reaches into B's inbox: B must not
 * be gone. B's run may not return until A has read the failure reply (its
 * count), whatever B's shutdown says. */
static struct {
    tr_engine *b;
    _Atomic int b_up, b_returned;
    tr_task *caller;
    int call_ret;
} fr;

static int fr_fn(void *arg)
{
    (void)arg;
    return 7;
}

static int fr_keeper(void *arg)
{
    (void)arg;
    atomic_store(&fr.b_up, 1);
    return tr_wait_shutdown();
}

static void *fr_b_thread(void *arg)
{
    (void)arg;
    tr_spawn(fr.b, NULL, fr_keeper, NULL, NULL);
    int r = tr_engine_run(fr.b);
    atomic_store(&fr.b_returned, 1);
    return (void *)(intptr_t)r;
}

static int fr_caller(void *arg)
{
    (void)arg;
    int res = 0;
    tr__fault_arm(TR_FAULT_BIT(TR_FS_ALLOC), 1, 1, 0, 0); /* B's served record */
    fr.call_ret = tr_call(fr.b, fr_fn, NULL, &res);
    return 0;
}

/* No yield: A's inbox duty cannot read B's reply meanwhile. Bounded: 10 s. */
static int fr_spinner(void *arg)
{
    (void)arg;
    uint64_t t0 = tr_now_ns();
    while (atomic_load(&fr.b->ib.unacked_fail) == 0 && tr_now_ns() - t0 < 10000000000ull)
        ;
    WCHECK(atomic_load(&fr.b->ib.unacked_fail) == 1);
    /* B is asked to end, and finishes its shutdown, but may not return. */
    tr_engine_shutdown(fr.b);
    t0 = tr_now_ns();
    while (!atomic_load(&fr.b_returned) && tr_now_ns() - t0 < 50000000ull)
        ;
    WCHECK(!atomic_load(&fr.b_returned));
    WCHECK_EQ(tr_cancel(fr.caller), 0); /* reaches into B: alive */
    return 0;
}

static void fr_fn_step(const void *arg)
{
    (void)arg;
    memset(&fr, 0, sizeof(fr));
    struct tr_config cfg;
    fault_engine_cfg(&cfg);
    cfg.flags |= TR_CFG_NO_SIGNALS;
    tr_engine *a = NULL;
    if (!SCHECK(tr_engine_create(&fr.b, &cfg) == 0, 0) ||
        !SCHECK(tr_engine_create(&a, &cfg) == 0, 0))
        return;
    pthread_t th;
    if (!SCHECK(pthread_create(&th, NULL, fr_b_thread, NULL) == 0, 0))
        return;
    while (!atomic_load(&fr.b_up)) /* bounded by the step's deadline */
        usleep(100);
    SCHECK(tr_spawn(a, &fr.caller, fr_caller, NULL, NULL) == 0, 0);
    SCHECK(tr_spawn(a, NULL, fr_spinner, NULL, NULL) == 0, 0);
    int run = tr_engine_run(a);
    tr__fault_disarm();
    SCHECK(run == 0, run);
    void *rb;
    pthread_join(th, &rb);
    SCHECK(rb == NULL, (int)(intptr_t)rb);
    if (fault_wrec.count)
        fault_rep_fail(fault_wrec.first, fault_wrec.first);
    SCHECK(fr.call_ret == -ENOMEM, fr.call_ret);
    int res;
    SCHECK(tr_task_result(fr.caller, &res) == 0, 0);
    tr_detach(fr.caller);
    SCHECK(tr_engine_destroy(fr.b) == 0, 0);
    SCHECK(tr_engine_destroy(a) == 0, 0);
}

static void test_fault_call_failure_reply_keeps_target(void **state)
{
    (void)state;
    fault_steps_reset();
    snprintf(fault_step_desc, sizeof(fault_step_desc),
             "%s: site ALLOC once (the target's served record), the caller cancelled before "
             "it reads the failure reply",
             fault_step_test);
    snprintf(fault_plan_label, sizeof(fault_plan_label), "pinned call failure reply");
    fault_run_isolated(fr_fn_step, NULL);
    fault_record_step();
    snprintf(fault_step_desc, sizeof(fault_step_desc), "%s", fault_step_test);
    fault_sweeps_done("pinned: a failure reply keeps the target alive for its caller");
}

/* ---- pinned: a post whose task cannot be spawned is counted ---------------- */

/* The post is accepted (0), then the engine finds no memory for its task
 * when it reads it: fn never runs, stats.posts_failed says so, and the
 * engine goes on (a later post runs). */
static int pf_ran;

static int pf_fn(void *arg)
{
    (void)arg;
    pf_ran++;
    return 0;
}

static void pf_step(const void *arg)
{
    (void)arg;
    pf_ran = 0;
    struct tr_config cfg;
    fault_engine_cfg(&cfg);
    cfg.flags |= TR_CFG_NO_SIGNALS;
    tr_engine *e = NULL;
    if (!SCHECK(tr_engine_create(&e, &cfg) == 0, 0))
        return;
    SCHECK(tr_post(e, pf_fn, NULL) == 0, 0);
    /* Every allocation from here on fails: the post's task record first. */
    tr__fault_arm(TR_FAULT_BIT(TR_FS_ALLOC), 1, 0, 0, 0);
    int run = tr_engine_run(e);
    tr__fault_disarm();
    SCHECK(run == 0, run);
    struct tr_stats st;
    SCHECK(tr_engine_stats(e, &st) == 0, 0);
    SCHECK(st.posts_failed == 1, (int)st.posts_failed);
    SCHECK(pf_ran == 0, pf_ran);
    SCHECK(tr_post(e, pf_fn, NULL) == 0, 0);
    SCHECK(tr_engine_run(e) == 0, 0);
    SCHECK(pf_ran == 1, pf_ran);
    SCHECK(tr_engine_destroy(e) == 0, 0);
}

static void test_fault_post_spawn_failure_counted(void **state)
{
    (void)state;
    fault_steps_reset();
    snprintf(fault_step_desc, sizeof(fault_step_desc),
             "%s: site ALLOC from the run on (the post's task), then a post with memory",
             fault_step_test);
    snprintf(fault_plan_label, sizeof(fault_plan_label), "pinned post spawn failure");
    fault_run_isolated(pf_step, NULL);
    fault_record_step();
    snprintf(fault_step_desc, sizeof(fault_step_desc), "%s", fault_step_test);
    fault_sweeps_done("pinned: a post whose task cannot be spawned is counted");
}

/* ------------------------------------------------------------------- main */

int main(void)
{
    signal(SIGPIPE, SIG_IGN); /* a writer whose reader gave up gets -EPIPE */
    const struct CMUnitTest tests[] = {
        TF(test_fault_at_shutdown_reserves_hook_task),
        TF(test_fault_run_returns_when_stop_cancel_refused),
        TF(test_fault_cancel_ends_when_cancel_sqe_refused_twice),
        TF(test_fault_tiny_cq_overflow_loses_nothing),
        TF(test_fault_kill_spares_close_waiting_for_room),
        TF(test_fault_call_failure_reply_keeps_target),
        TF(test_fault_post_spawn_failure_counted),
    };
    if (getenv("TR_FAULT_FILTER")) /* e.g. "*overflow*": one test, for debugging */
        cmocka_set_test_filter(getenv("TR_FAULT_FILTER"));
    return cmocka_run_group_tests(tests, NULL, NULL);
}
