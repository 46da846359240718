/*
 * cancel.c — every cancellation path in one place (DESIGN section 3).
 *
 * tr_cancel marks the task cancelled for good (level-triggered). What else
 * happens depends on where the task waits:
 *   - on a ring op: an IORING_OP_ASYNC_CANCEL keyed by the op's user_data is
 *     submitted, and the task stays parked until the op's OWN completion
 *     arrives. The cancel's completion (0, -ENOENT, -EALREADY) is reaped and
 *     counted but decides nothing: the kernel may finish the op anyway, and
 *     its buffer is in use until then (G1). tr__op_park maps the outcome.
 *   - in the engine (sleep, join, cancel_all wait): it is unhooked and woken
 *     with -ECANCELED at once; no kernel call.
 *   - runnable or running: nothing more; its next blocking call fails.
 * A shield (t->shield > 0) keeps the op in flight: cleanup I/O completes.
 */
#include "tr_internal.h"

#include <errno.h>

int tr__cancel_submit(tr_engine *e, uint32_t idx)
{
    struct tr_op *op = tr__op_get(e, idx);
    TR_ASSERT(op != NULL);
    TR_ASSERT(op->state == TR_OP_INFLIGHT);
    if (op->cancel_sent)
        return 0;
    struct io_uring_sqe *sqe = tr__ring_get_sqe(e);
    if (op->state != TR_OP_INFLIGHT) {
        /* tr__ring_get_sqe reaped the op's own CQE: nothing to cancel. An
         * SQE it handed out must still go somewhere: a NOP the dispatcher
         * drops as stale. */
        if (sqe) {
            io_uring_prep_nop(sqe);
            sqe->user_data = 0;
        }
        return 0;
    }
    if (!sqe) {
        /* The ring refused every retry (it keeps answering -EBUSY): try
         * again at the next pass, the task stays parked meanwhile. */
        if (!op->cancel_deferred) {
            op->cancel_deferred = true;
            e->cancels_deferred++;
        }
        return -EBUSY;
    }
    if (op->cancel_deferred) {
        op->cancel_deferred = false;
        e->cancels_deferred--;
    }
    /* The target's SQE is either in the kernel or earlier in this same SQ
     * batch, which the kernel consumes in order: the cancel cannot overtake
     * it. */
    io_uring_prep_cancel64(sqe, tr__ud_make(idx, op->gen), 0);
    sqe->user_data = TR_UD_CANCEL | idx;
    op->cancel_sent = true;
    e->cancels_inflight++;
    e->st.cancels_submitted++;
    e->st.ops_submitted++;
    e->st.ops_inflight++;
    return 0;
}

/* Called by the scheduler at each pass while some cancel could not be
 * submitted. Rare, so a walk over the live tasks is fine. */
void tr__cancel_retry_deferred(tr_engine *e)
{
    for (tr_task *t = e->all_head; t && e->cancels_deferred; t = t->all_next) {
        if (t->state != TR_TASK_PARKED || t->wait != TR_WAIT_OP)
            continue;
        struct tr_op *op = tr__op_get(e, t->op);
        if (op->cancel_deferred)
            (void)tr__cancel_submit(e, t->op);
    }
}

/* Drops every cancel_all counter that points at waiter w. */
static void ca_unhook(tr_engine *e, tr_task *w)
{
    for (tr_task *t = e->all_head; t; t = t->all_next)
        if (t->ca_waiter == w)
            t->ca_waiter = NULL;
    w->ca_remaining = 0;
    if (w->ca_rescan) {
        w->ca_rescan = false;
        TR_ASSERT(e->ca_rescanners > 0);
        e->ca_rescanners--;
    }
}

static void cancel_parked(tr_engine *e, tr_task *t)
{
    /* During shutdown, shields hold until the grace period ends. */
    bool shield = t->shield > 0 && !e->sd.shields_broken;
    switch (t->wait) {
    case TR_WAIT_OP: {
        struct tr_op *op = tr__op_get(e, t->op);
        if (!shield && tr__opdefs[op->opcode].cancellable)
            (void)tr__cancel_submit(e, t->op);
        break;
    }
    case TR_WAIT_TIMER:
        if (shield)
            break;
        tr__timer_remove(e, t);
        tr__task_wake(t, -ECANCELED);
        break;
    case TR_WAIT_JOIN:
        if (shield)
            break;
        /* The joiner keeps its claim on the target until it has resumed
         * (tr_join drops it): meanwhile nobody else may join or detach it. */
        TR_ASSERT(t->join_target && t->join_target->joiner == t);
        tr__task_wake(t, -ECANCELED);
        break;
    case TR_WAIT_CANCEL_ALL:
        if (shield)
            break;
        ca_unhook(e, t);
        tr__task_wake(t, -ECANCELED);
        break;
    case TR_WAIT_SHUTDOWN:
        if (shield)
            break;
        TR_ASSERT(e->sd_waiters > 0);
        e->sd_waiters--;
        tr__task_wake(t, -ECANCELED);
        break;
    default:
        TR_ASSERT(!"parked task without a wait reason");
    }
}

int tr_cancel(tr_task *t)
{
    if (!t)
        return -EINVAL;
    if (t->state == TR_TASK_DONE || t->state == TR_TASK_FREED)
        return -ESRCH;
    tr_engine *e = t->e;
    t->cancelled = true;
    if (t->state == TR_TASK_PARKED)
        cancel_parked(e, t);
    return 0;
}

static bool excepted(const tr_task *t, tr_task *const *except, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (except[i] == t)
            return true;
    return false;
}

static bool rescan_done(tr_engine *e, const tr_task *w)
{
    for (const tr_task *t = e->all_head; t; t = t->all_next)
        if (t != w && t->id <= w->ca_max_id && !excepted(t, w->ca_except, w->ca_nexcept))
            return false;
    return true;
}

int tr_cancel_all(tr_task *const *except, size_t n, unsigned flags)
{
    tr_task *self = tr__current;
    if (!self)
        return -EPERM;
    if ((n > 0 && !except) || (flags & ~TR_CANCEL_WAIT))
        return -EINVAL;
    tr_engine *e = self->e;
    bool wait = (flags & TR_CANCEL_WAIT) != 0;
    bool rescan = false;
    int count = 0;
    TR_ASSERT(self->ca_remaining == 0);
    /* Bounded by the live tasks; cancelling never unlinks a task (it only
     * wakes it), so the walk is safe. */
    for (tr_task *t = e->all_head; t; t = t->all_next) {
        if (t == self || excepted(t, except, n))
            continue;
        (void)tr_cancel(t);
        count++;
        if (!wait)
            continue;
        if (!t->ca_waiter) {
            t->ca_waiter = self;
            self->ca_remaining++;
        } else {
            /* Another waiter already counts t (it excepted us, or we are
             * shielded): fall back to rescanning at every task end. */
            rescan = true;
        }
    }
    if (!wait || (self->ca_remaining == 0 && !rescan))
        return count;
    if (self->cancelled && (self->shield == 0 || e->sd.shields_broken)) {
        ca_unhook(e, self);
        (void)tr__cancel_point(self);
        return -ECANCELED;
    }
    if (rescan) {
        self->ca_rescan = true;
        self->ca_max_id = e->next_id;
        self->ca_except = except;
        self->ca_nexcept = n;
        e->ca_rescanners++;
    }
    int r = tr__task_park(self, TR_WAIT_CANCEL_ALL);
    TR_ASSERT(self->ca_remaining == 0);
    TR_ASSERT(!self->ca_rescan);
    return r < 0 ? r : count;
}

void tr__cancel_notify_end(tr_engine *e, tr_task *t)
{
    tr_task *w = t->ca_waiter;
    if (w) {
        t->ca_waiter = NULL;
        TR_ASSERT(w->ca_remaining > 0);
        if (--w->ca_remaining == 0 && !w->ca_rescan)
            tr__task_wake(w, 0);
    }
    if (TR_LIKELY(e->ca_rescanners == 0))
        return;
    /* Rare: overlapping cancel_all waiters. O(live tasks) per end. */
    for (tr_task *x = e->all_head; x; x = x->all_next) {
        if (x->state != TR_TASK_PARKED || x->wait != TR_WAIT_CANCEL_ALL || !x->ca_rescan)
            continue;
        if (x->ca_remaining == 0 && rescan_done(e, x)) {
            x->ca_rescan = false;
            e->ca_rescanners--;
            tr__task_wake(x, 0);
        }
    }
}
