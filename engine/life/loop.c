/* SPDX-License-Identifier: MIT */
/*
 * loop.c — the scheduler: tr_engine_run's loop, as named phases.
 *
 * One pass:
 *   1. duties   every per-pass duty of the list below that is pending
 *               (the shutdown's phases, the engine's own reads, deferred
 *               cancels, due timers);
 *   2. run      every task that was runnable when the pass began (tasks
 *               woken during the pass run in the next one, so a pass is
 *               bounded);
 *   3. duties   again: tasks that just ran may have armed timers, ended a
 *               shutdown phase or asked for a cancel;
 *   4. decide   return when nothing is left (idle) or nothing can ever
 *               wake anyone (-EDEADLK);
 *   5. enter    ONE io_uring_enter submits every SQE of the pass and, when
 *               nothing is runnable, waits for a completion or the nearest
 *               deadline (timers, shutdown rungs);
 *   6. reap     completions are taken from the ring and dispatched (queued,
 *               never run), then tasks that waited for SQ room are woken.
 * A task that ends or parks at the end of a pass, with tasks queued for the
 * next one, may begin that pass itself (task.c) — but only when no duty of
 * the list is pending (tr__loop_pass_inline, a direct call): the list is the one both
 * use, so a new duty cannot be skipped by either.
 */
#include "tr_internal.h"

#include <errno.h>

/* madvise calls per idle pass: bounded, so a wake-up waits little. */
#define TR_TRIM_PER_WAIT 16
/* Sleeps without a peek after a peek that found nothing. */
#define TR_PEEK_BACKOFF 16

/* ---- the duties --------------------------------------------------------------- */

/* The list and the pending checks are in duties.h; here, what each runs. */

static __attribute__((noinline)) void peers_run(tr_engine *e)
{
    tr__peer_signals_take(e);
}

static __attribute__((noinline)) void inbox_run(tr_engine *e)
{
    tr__inbox_run(e);
}

static __attribute__((noinline)) void shutdown_run(tr_engine *e)
{
    tr__shutdown_pass(e, tr__now_ns()); /* the phases' deadlines want the precise clock */
}

static __attribute__((noinline)) void reads_run(tr_engine *e)
{
    tr__internal_arm(e);
}

static __attribute__((noinline)) void cancels_run(tr_engine *e)
{
    tr__cancel_retry_deferred(e);
}

static __attribute__((noinline)) void timers_run(tr_engine *e)
{
    uint64_t now = tr__now_ns();
    if (tr__timers_due(e, now))
        tr__timer_expire(e, now);
}

#define TR_DUTY_RUN_1(name)                                                                        \
    if (tr__duty_##name##_pending(e))                                                              \
        name##_run(e);
#define TR_DUTY_RUN_0(name)
#define TR_DUTY_RUN(name, runs) TR_DUTY_RUN_##runs(name)

/* Inline in the loop, each duty's work out of line: a pass with nothing
 * to do (a lone task's op round trip) costs the checks alone, no call. */
static inline __attribute__((always_inline)) void run_duties(tr_engine *e)
{
    TR_DUTIES(TR_DUTY_RUN)
}

/* ---- the phases ---------------------------------------------------------------- */

static void run_batch(tr_engine *e)
{
    TR_ASSERT(e->sch.batch == NULL);
    /* Without TASKRUN_FLAG the kernel cannot tell us whether completions
     * wait: no task begins a pass then. */
    e->sch.inline_left = e->rs.taskrun_flag ? TR_INLINE_PASSES : 0;
    e->sch.batch = e->sch.run_head;
    e->sch.run_head = e->sch.run_tail = NULL;
    /* Bounded by the tasks queued when the pass began. Tasks take their
     * successors off e->sch.batch themselves when they switch directly
     * (task.c), so the scheduler sees only the rest. */
    while (e->sch.batch) {
        tr_task *t = e->sch.batch;
        e->sch.batch = t->run_next;
        t->run_next = NULL;
        tr__prefetch_frame(e->sch.batch);
        tr__run_task(e, t);
    }
}

static void reap(tr_engine *e)
{
    e->sch.reaping = true;
    /* Bounded by the CQ's size per pass: the kernel cannot post more than
     * the ring holds between two of our reads of its tail. Dispatch only
     * queues tasks, so the CQEs are read in place and given back after. */
    unsigned first;
    unsigned n = tr__ring_ready(e, &first);
    if (n > e->rs.cq_entries)
        n = e->rs.cq_entries;
    for (unsigned i = 0; i < n; i++) {
        const struct io_uring_cqe *cqe = tr__ring_cqe(e, first + i);
        tr__dispatch_cqe(e, cqe->user_data, cqe->res, cqe->flags);
    }
    tr__ring_consume(e, n);
    e->sch.reaping = false;
    /* The enter handed the SQ to the kernel: whoever waited for room may
     * try again. */
    tr__sq_waiters_wake(e);
}

static bool ring_busy(const tr_engine *e)
{
    return e->ops.inflight > 0 || e->sw.inflight > 0 || tr__ring_sq_pending(e) > 0;
}

/* Tasks' work is over: nothing alive, nothing of theirs in flight, no
 * shutdown to finish, no message to read, no call served for another
 * engine that its caller has not acknowledged (its cancellation may still
 * come). What may remain are the engine's own reads. */
static bool user_idle(tr_engine *e)
{
    return e->sch.live == 0 && e->ops.inflight == 0 && !tr__shutdown_active(e) &&
           !tr__inbox_pending(e) && e->ib.nserved == 0 && atomic_load(&e->ib.unacked_fail) == 0 &&
           (!e->ls || tr__lockstep_done(e->ls));
}

/* Live tasks that can only be woken by each other. A task in
 * tr_wait_shutdown waits for the outside world, a shutdown in progress
 * cancels everyone: neither is a deadlock. */
static bool deadlocked(tr_engine *e)
{
    /* Last: a deadline timer whose task has no scope that may still expire
     * wakes nobody, and the check disarms it (scope.c). */
    /* A task in tr_call waits for another engine, and any engine of a
     * lockstep may wake one of ours: never a deadlock here. */
    return !e->ls && e->sch.live > 0 && e->ops.inflight == 0 && e->tm.len == e->dl_armed &&
           e->ib.awaiting == 0 && e->ib.nserved == 0 && tr__waitq_empty(&e->sd_stop) &&
           !tr__sq_waiters(e) && !tr__shutdown_active(e) && e->sch.run_head == NULL &&
           tr__deadline_timers_idle(e);
}

static uint64_t min_u64(uint64_t a, uint64_t b)
{
    return a < b ? a : b;
}

/* Decide: 1 to return (*ret set), 0 to go on. */
static int decide(tr_engine *e, int *ret)
{
    bool runnable = e->sch.run_head != NULL;
    bool idle = !runnable && user_idle(e);
    bool stuck = !runnable && !idle && deadlocked(e);
    if (idle || stuck) {
        /* Returning: take the engine's own reads down too (G2). A signal
         * read that completes meanwhile starts a shutdown, which ends the
         * deadlock: then the loop goes on. */
        if (e->sw.inflight == 0 && tr__ring_cq_empty(e) && tr__ring_sq_pending(e) == 0) {
            tr__stack_trim(e, UINT32_MAX, true);
            *ret = idle ? 0 : -EDEADLK;
            return 1;
        }
        tr__internal_stop(e);
    } else if (e->sw.stopping) {
        /* Work came while the reads were being stopped (a shutdown began,
         * whose later signals need them; a message spawned a task, whose
         * engine must hear the next doorbell). */
        tr__internal_resume(e);
    }
    return 0;
}

/* How long a pass waiting for another engine's message polls before it
 * sleeps (bench_post --mode call: 63 us a round trip with two sleeps,
 * which this removes). */
#define TR_SPIN_NS 50000ull

static __attribute__((noinline)) bool spin_for_messages(tr_engine *e)
{
    uint64_t now = tr__now_ns();
    /* Not for a task that waits for a long job (tr_offload, a slow call):
     * only while an acknowledgement is due or messages keep coming. */
    if (!e->ib.nserved && now - e->ib.last_msg_ns >= TR_SPIN_NS) {
        e->ib.last_msg_ns = 0; /* none recently: sleep, until the next one */
        return false;
    }
    uint64_t until = now + TR_SPIN_NS;
    /* Bounded by the clock, read every 64 rounds. */
    for (unsigned i = 1;; i++) {
        /* A message, or completions (or kernel work for them) of our own. */
        if (tr__inbox_pending(e) || !tr__ring_cq_empty(e) || tr__ring_enter_needed(e, false))
            return true;
        tr__cpu_relax();
        if (i % 64 == 0 && tr__now_ns() >= until)
            return false;
    }
}

/* Enter, when nothing is runnable: sleep until a completion or the nearest
 * deadline. Returns 0 or a fatal -errno; -EDEADLK when nothing can ever
 * wake anyone. */
/* How long the pass may wait: the nearest deadline (timers, shutdown
 * rungs), a retry owed, the stack trim; UINT64_MAX: none. */
static uint64_t next_wait(tr_engine *e)
{
    /* The precise clock only when a deadline bounds the wait (34 ns a read
     * here: a tenth of a lone task's NOP round trip). */
    uint64_t wait = UINT64_MAX;
    if (e->tm.len > 0 || e->sd.phase != TR_PH_NONE) {
        uint64_t now = tr__now_ns();
        wait = min_u64(tr__timer_next_ns(e, now), tr__shutdown_next_ns(e, now));
    }
    /* A cancel the ring refused, or an op waiting for SQ room, is retried
     * at the next pass: never wait for ever while one is owed. */
    if (TR_UNLIKELY(e->ops.cancels_deferred || tr__internal_stop_owed(e) || tr__sq_waiters(e) ||
                    tr__internal_arm_owed(e)))
        wait = min_u64(wait, TR_RETRY_NS);
    /* Idle time is the time to give spare stacks back, once the surplus
     * has lasted a while: wake up for it if need be. */
    if (TR_UNLIKELY(e->stk.trim_owed)) {
        if (e->sch.pass_ns >= e->stk.trim_at)
            tr__stack_trim(e, TR_TRIM_PER_WAIT, false);
        /* More owed now (the call's bound) does not wait: the next pass
         * trims on, between whatever comes in. */
        if (e->stk.trim_owed)
            wait = min_u64(wait,
                           e->stk.trim_at > e->sch.pass_ns ? e->stk.trim_at - e->sch.pass_ns : 0);
    }
    return wait;
}

uint64_t tr__loop_next_ns(tr_engine *e)
{
    return next_wait(e);
}

static int enter_and_wait(tr_engine *e, uint64_t cap)
{
    uint64_t wait = min_u64(next_wait(e), cap);
    /* Before sleeping, hand over the SQEs and run the kernel's finished
     * work once: completions from io-wq workers often land meanwhile, and a
     * sleep + wake-up costs more than this one call (+5% IOPS on tmpfs
     * reads). Where it finds nothing (a server waiting on its clients), it
     * is tried only every TR_PEEK_BACKOFF sleeps: +2% CPU otherwise. */
    if (e->ops.inflight > 0 && wait > 0 && tr__ring_cq_empty(e)) {
        if (e->sch.peek_skip > 0) {
            e->sch.peek_skip--;
        } else {
            int err = tr__ring_enter(e, false, 0);
            bool ready = !tr__ring_cq_empty(e);
            e->sch.peek_skip = ready ? 0 : TR_PEEK_BACKOFF;
            if (err || ready)
                return err; /* an error to return, or completions to reap */
        }
    }
    if (ring_busy(e) || wait != UINT64_MAX) {
        /* Another engine's message is due (an acknowledgement) or likely
         * (one came a moment ago: a reply follows a call): it usually comes within
         * microseconds, and a sleep + wake-up costs tens of them here (a
         * vCPU's halt and IPI). Poll for it a while. */
        if (TR_UNLIKELY(e->ib.nserved || e->ib.last_msg_ns) && wait > TR_SPIN_NS &&
            tr__ring_sq_pending(e) == 0 && spin_for_messages(e))
            return 0;
        /* Asleep for senders from now on: one that queued a message
         * meanwhile is read at the next pass instead. */
        if (!tr__inbox_sleep(e))
            return tr__ring_enter(e, false, 0);
        int err = tr__ring_enter(e, true, wait);
        tr__inbox_awake(e);
        return err;
    }
    if (tr__ring_cq_empty(e) && !tr__inbox_pending(e))
        return -EDEADLK; /* nothing can ever wake anyone */
    return 0;
}

/* One pass (the phases above): 1 to go on, or what the run returns: 0
 * (idle), -EDEADLK, a fatal -errno. cap bounds its wait (UINT64_MAX:
 * none). */
static inline __attribute__((always_inline)) int pass(tr_engine *e, uint64_t cap)
{
    /* pass_ns only dates parks (shown by tr_engine_dump): coarse. The
     * duties that need the precise clock read it themselves. */
    e->sch.pass_ns = tr__now_coarse_ns();
    e->sch.clock_ns = 0; /* tr_deadline_after's: read afresh by its first call */
    run_duties(e);
    run_batch(e);
    run_duties(e);
    int ret;
    if (decide(e, &ret))
        return ret;
    int err = 0;
    if (e->sch.run_head) {
        /* Hand over this pass's SQEs and collect what is ready, but do
         * not wait: tasks are waiting to run. Nothing to hand over and
         * nothing flagged ready: no syscall at all. */
        if (tr__ring_enter_needed(e, ring_busy(e)))
            err = tr__ring_enter(e, false, 0);
    } else {
        err = enter_and_wait(e, cap);
    }
    if (err)
        return err;
    reap(e);
    return 1;
}

int tr__engine_loop(tr_engine *e)
{
    tr__internal_resume(e);
    for (;;) {
        int r = pass(e, UINT64_MAX);
        if (r <= 0)
            return r;
    }
}

int tr__engine_pass(tr_engine *e, uint64_t cap_ns)
{
    return pass(e, cap_ns);
}
