/*
 * dispatch.c — the scheduler: run the runnable, submit, wait, reap.
 *
 * One pass: run every task that was runnable when the pass began (tasks
 * woken during the pass run in the next one, so a pass is bounded); expire
 * due timers; then ONE io_uring_enter submits every SQE the pass produced
 * and, if nothing is runnable, waits for a completion or the nearest timer
 * deadline; then reap. Reaping only copies each CQE's result into its op
 * slot and queues the task: no task ever runs inside the reap loop.
 */
#include "tr_internal.h"

#include <errno.h>

/* madvise calls per idle pass: bounded, so a wake-up waits little. */
#define TR_TRIM_PER_WAIT 16
/* Sleeps without a peek after a peek that found nothing. */
#define TR_PEEK_BACKOFF 16

void tr__dispatch_cqe(tr_engine *e, uint64_t ud, int32_t res, uint32_t flags)
{
    if (ud & TR_UD_ENGINE) {
        if (ud == LIBURING_UDATA_TIMEOUT) {
            /* liburing's own timeout; never used with EXT_ARG, counted. */
            e->st.cqe_stale++;
            return;
        }
        if (TR_UD_KIND(ud) != TR_UDK_CANCEL) {
            tr__internal_complete(e, ud, res);
            return;
        }
        /* Our ASYNC_CANCEL's own completion: 0, -ENOENT (the target already
         * completed) or -EALREADY (it is running and will complete). The
         * target's CQE decides; this one is only accounted. */
        TR_ASSERT(e->cancels_inflight > 0);
        TR_ASSERT(e->st.ops_inflight > 0);
        e->cancels_inflight--;
        e->st.ops_inflight--;
        e->st.ops_completed++;
        tr__cancel_reaped(e, ud);
        return;
    }
    uint32_t idx = (uint32_t)ud;
    uint32_t gen = (uint32_t)(ud >> 32);
    struct tr_op *op = tr__op_get(e, idx);
    if (!op || op->gen != gen || op->state != TR_OP_INFLIGHT) {
        /* An old activation's CQE (or not ours at all): never delivered. */
        e->st.cqe_stale++;
        return;
    }
    /* IORING_CQE_F_MORE (a multishot op via tr_op) is unsupported: this
     * CQE is delivered, the later ones find a new generation and count as
     * stale. */
    TR_ASSERT(e->st.ops_inflight > 0);
#if defined(TR_FAULT_INJECTION)
    res = tr__fault_cqe(op, res);
#endif
    op->state = TR_OP_COMPLETED;
    op->res = res;
    op->cqe_flags = flags;
    if (op->cancel_deferred) {
        op->cancel_deferred = false;
        e->cancels_deferred--;
    }
    e->st.ops_inflight--;
    e->st.ops_completed++;
    TR_ASSERT(op->task != NULL);
    TR_ASSERT(op->task->state == TR_TASK_PARKED);
    TR_ASSERT(op->task->wait->kind == &tr__wk_op);
    tr__task_wake(op->task, res);
}

static void run_batch(tr_engine *e)
{
    TR_ASSERT(e->batch == NULL);
    e->inline_passes = 0;
    e->batch = e->run_head;
    e->run_head = e->run_tail = NULL;
    /* Bounded by the tasks queued when the pass began. Tasks take their
     * successors off e->batch themselves when they switch directly
     * (task.c), so the scheduler sees only the rest. */
    while (e->batch) {
        tr_task *t = e->batch;
        e->batch = t->run_next;
        t->run_next = NULL;
        tr__prefetch_frame(e->batch);
        tr__run_task(e, t);
    }
}

static bool ring_busy(const tr_engine *e)
{
    return e->st.ops_inflight > 0 || e->internal_inflight > 0 || tr__ring_sq_pending(e) > 0;
}

/* Tasks' work is over: nothing alive, nothing of theirs in flight, no
 * shutdown to finish. What may remain are the engine's own reads. */
static bool user_idle(tr_engine *e)
{
    return e->st.tasks_live == 0 && e->st.ops_inflight == 0 && !tr__shutdown_active(e);
}

/* Live tasks that can only be woken by each other. A task in
 * tr_wait_shutdown waits for the outside world, a shutdown in progress
 * cancels everyone: neither is a deadlock. */
static bool deadlocked(tr_engine *e)
{
    return e->st.tasks_live > 0 && e->st.ops_inflight == 0 && e->heap_len == 0 &&
           tr__list_empty(&e->sd_waiters) && !tr__shutdown_active(e) && e->run_head == NULL;
}

static uint64_t min_u64(uint64_t a, uint64_t b)
{
    return a < b ? a : b;
}

int tr__engine_loop(tr_engine *e)
{
    e->internal_stopping = false;
    for (;;) {
        /* pass_ns only dates parks (shown by tr_engine_dump): coarse. */
        uint64_t now = e->pass_ns = tr__now_coarse_ns();
        if (TR_UNLIKELY(tr__shutdown_active(e)))
            tr__shutdown_pass(e, now = tr__now_ns());
        tr__internal_arm(e);
        run_batch(e);
        if (TR_UNLIKELY(e->cancels_deferred))
            tr__cancel_retry_deferred(e);
        if (e->heap_len || tr__shutdown_active(e))
            now = tr__now_ns();
        if (e->heap_len)
            tr__timer_expire(e, now);
        /* Tasks that just ended may complete a phase: step again now, or
         * the pass below would wait for an event that never comes. */
        if (TR_UNLIKELY(tr__shutdown_active(e)))
            tr__shutdown_pass(e, now);
        bool runnable = e->run_head != NULL;
        bool idle = !runnable && user_idle(e);
        bool stuck = !runnable && !idle && deadlocked(e);
        if (idle || stuck) {
            /* Returning: take the engine's own reads down too (G2). A
             * signal read that completes meanwhile starts a shutdown, which
             * ends the deadlock: then the loop goes on. */
            if (e->internal_inflight == 0 && tr__ring_cq_empty(e) && tr__ring_sq_pending(e) == 0) {
                tr__stack_trim(e, UINT32_MAX);
                return idle ? 0 : -EDEADLK;
            }
            tr__internal_stop(e);
        } else if (e->internal_stopping && tr__shutdown_active(e)) {
            /* A shutdown began while the reads were being stopped: it needs
             * them for its later signals. */
            e->internal_stopping = false;
        }
        int err = 0;
        if (runnable) {
            /* Hand over this pass's SQEs and collect what is ready, but do
             * not wait: tasks are waiting to run. Nothing to hand over and
             * nothing flagged ready: no syscall at all. */
            if (tr__ring_enter_needed(e, ring_busy(e)))
                err = tr__ring_enter(e, false, 0);
        } else {
            uint64_t wait = min_u64(tr__timer_next_ns(e, now), tr__shutdown_next_ns(e, now));
            /* A cancel the ring refused is retried at the next pass: never
             * wait for ever while one is owed (its op may only end by it). */
            if (TR_UNLIKELY(e->cancels_deferred || tr__internal_stop_owed(e)))
                wait = min_u64(wait, TR_RETRY_NS);
            /* Idle time is the time to give spare stacks back, once the
             * surplus has lasted a while: wake up for it if need be. */
            if (TR_UNLIKELY(e->stack_trim_owed)) {
                if (e->pass_ns >= e->stack_trim_at)
                    tr__stack_trim(e, TR_TRIM_PER_WAIT);
                else
                    wait = min_u64(wait, e->stack_trim_at - e->pass_ns);
            }
            bool ready = false;
            /* Before sleeping, hand over the SQEs and run the kernel's
             * finished work once: completions from io-wq workers often
             * land meanwhile, and a sleep + wake-up costs more than this
             * one call (+5% IOPS on tmpfs reads). Where it finds nothing
             * (a server waiting on its clients), it is tried only every
             * TR_PEEK_BACKOFF sleeps: +2% CPU otherwise. */
            if (e->st.ops_inflight > 0 && wait > 0 && tr__ring_cq_empty(e)) {
                if (e->peek_skip > 0) {
                    e->peek_skip--;
                } else {
                    err = tr__ring_enter(e, false, 0);
                    /* (On -EBUSY/-EAGAIN the enter reaped: tasks may be queued.) */
                    ready = !tr__ring_cq_empty(e) || e->run_head != NULL;
                    e->peek_skip = ready ? 0 : TR_PEEK_BACKOFF;
                }
            }
            if (err || ready)
                ; /* an error to return, or completions to reap */
            else if (ring_busy(e) || wait != UINT64_MAX)
                err = tr__ring_enter(e, true, wait);
            else if (tr__ring_cq_empty(e))
                return -EDEADLK; /* nothing can ever wake anyone */
        }
        if (err)
            return err;
        tr__ring_reap(e);
    }
}
