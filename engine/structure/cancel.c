/* SPDX-License-Identifier: MIT */
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
 * Which of these applies is the wait record's (t->wait_kind->cancel);
 * whether a call is cut short at all is tr__cut_short's.
 *   - runnable or running: nothing more; its next blocking call fails.
 * A shield (t->shield > 0) keeps the op in flight: cleanup I/O completes.
 * tr_cancel_all(TR_CANCEL_WAIT) waits here too, told of every task end.
 */
#include "tr_internal.h"

#include <errno.h>
#include <pthread.h>

int tr__cancel_submit(tr_engine *e, uint32_t idx)
{
    struct tr_op *op = tr__op_get(e, idx);
    TR_ASSERT(op != NULL);
    TR_ASSERT(op->state == TR_OP_INFLIGHT);
    if (op->cancel_sent)
        return 0;
    struct io_uring_sqe *sqe = tr__ring_get_sqe(e);
    TR_ASSERT(op->state == TR_OP_INFLIGHT); /* getting an SQE never reaps */
    if (!sqe) {
        /* The ring refused every retry (it keeps answering -EBUSY): try
         * again at the next pass, the task stays parked meanwhile. */
        if (!op->cancel_deferred) {
            op->cancel_deferred = true;
            e->ops.cancels_deferred++;
        }
        return -EBUSY;
    }
    if (op->cancel_deferred) {
        op->cancel_deferred = false;
        e->ops.cancels_deferred--;
    }
    /* The target's SQE is either in the kernel or earlier in this same SQ
     * batch, which the kernel consumes in order: the cancel cannot overtake
     * it. */
    io_uring_prep_cancel64(sqe, tr__ud_make(idx, op->gen), 0);
    sqe->user_data = TR_UD_CANCEL | tr__ud_cancel_gen(op->gen) | idx;
    op->cancel_sent = true;
    e->ops.cancels_inflight++;
    e->st.cancels_submitted++;
    e->st.ops_submitted++;
    e->ops.inflight++;
    return 0;
}

/* The cancel's own CQE: the kernel has seen the cancel of the slot's
 * activation. Its owner has had its cancellation delivered (DESIGN section
 * 4: parked on a kernel op whose cancel was submitted and reaped), so the
 * kill rung may reach it. The generation bits tell a reused slot apart. */
void tr__cancel_reaped(tr_engine *e, uint64_t ud)
{
    struct tr_op *op = tr__op_get(e, (uint32_t)ud);
    /* Only when the task's own cancellation reaches its call (a cancel sent
     * for a scope's deadline or tr_scope_cancel delivers nothing of the
     * shutdown's). */
    if (op && op->state != TR_OP_FREE && op->cancel_sent && op->task &&
        tr__ud_cancel_gen(op->gen) == (ud & TR_UD_CANCEL_GEN_MASK) && op->task->attn)
        tr__cut_note(op->task);
}

/* Called by the scheduler at each pass while some cancel could not be
 * submitted. Rare, so a walk over the live tasks is fine. */
void tr__cancel_retry_deferred(tr_engine *e)
{
    for (tr_task *t = e->sch.all_head; t && e->ops.cancels_deferred; t = t->all_next) {
        if (!tr__task_parked_on(t, &tr__wk_op))
            continue;
        struct tr_op *op = tr__op_get(e, t->wait_slot);
        if (op->cancel_deferred)
            (void)tr__cancel_submit(e, t->wait_slot);
    }
}

int tr_cancel(tr_task *t)
{
    if (!t)
        return -EINVAL;
    if (t->state == TR_TASK_DONE || t->state == TR_TASK_FREED)
        return -ESRCH;
    tr_engine *e = t->e;
    if (tr__current && tr__current->e != e)
        return -EXDEV; /* another engine's task: its thread owns it */
    /* Outside a task: only on the engine's thread, once it has one (a
     * SINGLE_ISSUER ring belongs to the thread of its first run). */
    if (!tr__current && e->rs.enabled && e->rs.single_issuer &&
        !pthread_equal(e->rs.thread, pthread_self()))
        return -EXDEV;
    t->attn |= TR_ATTN_CANCELLED;
    if (t->state == TR_TASK_PARKED)
        tr__wait_recheck(e, t);
    if (TR_UNLIKELY(t->groups != NULL))
        tr__groups_recheck(t); /* its groups' children run in its context */
    return 0;
}

/* ---- tr_cancel_all(TR_CANCEL_WAIT) ----------------------------------------- */

/* The waiter's record: it counts the tasks it cancelled that have not
 * ended yet. Those are exactly the tasks that end later with an id at most
 * max_id (they existed at the call), other than the waiter and the
 * excepted: each task ends once, so counting ends needs no per-task
 * state. */
struct ca_wait {
    struct tr__wait w;
    struct tr__link link; /* in e->sch.end_listeners */
    uint64_t remaining;
    uint64_t max_id;
    tr_task *const *except;
    size_t n;
};

static bool excepted(const tr_task *t, tr_task *const *except, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (except[i] == t)
            return true;
    return false;
}

/* Is t an owner of a group self runs in (its own, or one further up)? */
static bool context_of(const tr_task *t, const tr_task *self)
{
    return TR_UNLIKELY(self->group != NULL) && tr__groups_ancestor(t, self);
}

static void ca_cancel(tr_engine *e, tr_task *t)
{
    (void)e;
    struct ca_wait *cw = (struct ca_wait *)(void *)t->wait;
    tr__list_del(&cw->link);
    tr__task_wake(t, TR__WAKE_CUT);
}

const struct tr__wait_kind tr__wk_cancel_all = {.name = "cancel-all-wait", .cancel = ca_cancel};

int tr_cancel_all(tr_task *const *except, size_t n, unsigned flags)
{
    tr_task *self = tr__current;
    if (!self)
        return -EPERM;
    if ((n > 0 && !except) || (flags & ~TR_CANCEL_WAIT))
        return -EINVAL;
    if ((flags & TR_CANCEL_WAIT) && tr__task_in_prep(self))
        return -EPERM; /* a blocking call in a tr_op prep: nothing done */
    tr_engine *e = self->e;
    uint64_t max_id = e->sch.next_id; /* the tasks this call cancels, by id */
    int count = 0;
    /* Bounded by the live tasks; cancelling never unlinks a task (it only
     * wakes it), so the walk is safe. A group child's owners (up the
     * nesting) are spared too: cancelling one cancels its children, the
     * caller among them, and each waits for the caller to end. */
    for (tr_task *t = e->sch.all_head; t; t = t->all_next) {
        if (t == self || excepted(t, except, n) || context_of(t, self))
            continue;
        (void)tr_cancel(t);
        count++;
    }
    if (!(flags & TR_CANCEL_WAIT) || count == 0)
        return count;
    /* A cancel point that returns 0 never yielded (one that passes through
     * the scheduler returns why the call is cut short: tr__cut_return
     * asserts it is not 0), so nothing ran since the walk: no task ended (a
     * cancel only wakes) and none was spawned. Its count is what is left. */
    int why = tr__cancel_point(self);
    if (why)
        return why;
    struct ca_wait cw = {
        .remaining = (uint64_t)count,
        .max_id = max_id,
        .except = except,
        .n = n,
    };
    tr__list_add_tail(&e->sch.end_listeners, &cw.link);
    int r = tr__task_park(self, &cw.w, &tr__wk_cancel_all);
    TR_ASSERT(tr__list_empty(&cw.link));
    return r < 0 ? r : count;
}

void tr__cancel_notify_end(tr_engine *e, tr_task *t)
{
    if (TR_LIKELY(tr__list_empty(&e->sch.end_listeners)))
        return;
    /* Rare: a cancel_all waiter. Bounded by the waiters; each may be
     * unlinked (woken) during the walk, so the next link is read first. */
    struct tr__link *l = e->sch.end_listeners.next, *next;
    for (; l != &e->sch.end_listeners; l = next) {
        next = l->next;
        struct ca_wait *cw = tr__container_of(l, struct ca_wait, link);
        if (t == cw->w.owner || t->id > cw->max_id || excepted(t, cw->except, cw->n))
            continue;
        TR_ASSERT(cw->remaining > 0);
        if (--cw->remaining == 0) {
            tr__list_del(&cw->link);
            tr__task_wake(cw->w.owner, 0);
        }
    }
}
