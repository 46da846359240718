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

void tr__dispatch_cqe(tr_engine *e, uint64_t ud, int32_t res, uint32_t flags)
{
    if (ud & TR_UD_CANCEL) {
        if (ud == LIBURING_UDATA_TIMEOUT) {
            /* liburing's own timeout; never used with EXT_ARG, counted. */
            e->st.cqe_stale++;
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
    if (flags & IORING_CQE_F_MORE) {
        /* A multishot op via tr_op: unsupported, and its later CQEs will be
         * stale. Deliver this one; count the misuse. */
        e->st.cqe_stale++;
    }
    TR_ASSERT(e->st.ops_inflight > 0);
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
    TR_ASSERT(op->task->op == idx);
    TR_ASSERT(op->task->wait == TR_WAIT_OP);
    tr__task_wake(op->task, res);
}

static void run_batch(tr_engine *e)
{
    tr_task *t = e->run_head;
    e->run_head = e->run_tail = NULL;
    /* Bounded by the tasks queued when the pass began. */
    while (t) {
        tr_task *next = t->run_next;
        t->run_next = NULL;
        tr__run_task(e, t);
        t = next;
    }
}

static bool ring_busy(const tr_engine *e)
{
    return e->st.ops_inflight > 0 || tr__ring_sq_pending(e) > 0;
}

int tr__engine_loop(tr_engine *e)
{
    for (;;) {
        run_batch(e);
        if (TR_UNLIKELY(e->cancels_deferred))
            tr__cancel_retry_deferred(e);
        uint64_t now = 0;
        if (e->heap_len) {
            now = tr__now_ns();
            tr__timer_expire(e, now);
        }
        bool runnable = e->run_head != NULL;
        int err = 0;
        if (runnable) {
            /* Hand over this pass's SQEs and collect what is ready, but do
             * not wait: tasks are waiting to run. */
            if (ring_busy(e))
                err = tr__ring_enter(e, false, 0);
        } else if (ring_busy(e) || e->heap_len) {
            err = tr__ring_enter(e, true, tr__timer_next_ns(e, now));
        } else if (!tr__ring_cq_empty(e)) {
            /* Completions nobody waits for (stale ones): reap them so the
             * audit finds an empty CQ. */
        } else if (e->st.tasks_live == 0) {
            /* Nothing runnable, nothing in flight, nobody sleeping, nobody
             * alive: done, and quiescent (G2). */
            TR_ASSERT(e->cancels_inflight == 0);
            return 0;
        } else {
            /* Live tasks that wait only on each other (a join cycle). */
            return -EDEADLK;
        }
        if (err)
            return err;
        tr__ring_reap(e);
    }
}
