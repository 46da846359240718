/* SPDX-License-Identifier: MIT */
/*
 * dispatch.c — what a completion means: a task's op (its slot, by index and
 * generation), a cancel's own completion, or one of the engine's reads.
 *
 * Dispatch only copies each CQE's result into its op slot and queues the
 * task: no task ever runs inside the reap loop (loop.c).
 */
#include "tr_internal.h"

#include <errno.h>

void tr__dispatch_cqe(tr_engine *e, uint64_t ud, int32_t res, uint32_t flags)
{
    /* Only the loop's reap phase dispatches: nothing below the loop (an
     * SQE request, a submit) may ever call up into task wake-ups. */
    TR_ASSERT(e->sch.reaping);
    TR_ASSERT(tr__current == NULL);
    if (ud & TR_UD_ENGINE) {
        if (ud == LIBURING_UDATA_TIMEOUT) {
            /* liburing's own timeout; never used with EXT_ARG, counted. */
            e->st.cqe_stale++;
            return;
        }
        if (TR_UD_KIND(ud) == TR_UDK_VOID)
            return; /* an SQE taken but not used: nothing to account */
        if (TR_UD_KIND(ud) != TR_UDK_CANCEL) {
            tr__internal_complete(e, ud, res);
            return;
        }
        /* Our ASYNC_CANCEL's own completion: 0, -ENOENT (the target already
         * completed) or -EALREADY (it is running and will complete). The
         * target's CQE decides; this one is only accounted. */
        TR_ASSERT(e->ops.cancels_inflight > 0);
        TR_ASSERT(e->ops.inflight > 0);
        e->ops.cancels_inflight--;
        e->ops.inflight--;
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
    TR_ASSERT(e->ops.inflight > 0);
#if defined(TR_FAULT_INJECTION)
    res = tr__fault_cqe(op, res);
#endif
    op->state = TR_OP_COMPLETED;
    op->res = res;
    op->cqe_flags = flags;
    if (op->cancel_deferred) {
        op->cancel_deferred = false;
        e->ops.cancels_deferred--;
    }
    e->ops.inflight--;
    e->st.ops_completed++;
    TR_ASSERT(op->task != NULL);
    TR_ASSERT(op->task->state == TR_TASK_PARKED);
    TR_ASSERT(op->task->wait_kind == &tr__wk_op);
    tr__task_wake(op->task, res);
}
