/* SPDX-License-Identifier: MIT */
/*
 * waitq.c — a FIFO of parked tasks, woken all at once: what the engine's
 * own events are made of (the shutdown's Stop, room in the SQ), and what
 * the primitives of DESIGN section 8 will queue their waiters on.
 *
 * Each user names its wait with a kind record of its own (for the dump and
 * for parked_on), built from tr__waitq_cancel and tr__waitq_kill: a new
 * kind of wait is one record, and no switch anywhere learns of it.
 */
#include "tr_internal.h"

#include <errno.h>

struct waitq_wait {
    struct tr__wait w;
    struct tr__link link; /* in its queue */
    bool cancellable;     /* false: only the kill rung ends it early */
};

void tr__waitq_kill(tr_engine *e, tr_task *t)
{
    (void)e;
    tr__list_del(&((struct waitq_wait *)(void *)t->wait)->link);
    tr__task_wake(t, TR__WAKE_CUT);
}

void tr__waitq_cancel(tr_engine *e, tr_task *t)
{
    if (((struct waitq_wait *)(void *)t->wait)->cancellable)
        tr__waitq_kill(e, t);
    else
        tr__cancel_held(t);
}

bool tr__waitq_cancellable(const tr_task *t)
{
    return ((const struct waitq_wait *)(const void *)t->wait)->cancellable;
}

int tr__waitq_park(tr_task *t, struct tr__waitq *q, const struct tr__wait_kind *kind,
                   bool cancellable)
{
    struct waitq_wait ww = {.cancellable = cancellable};
    tr__list_add_tail(&q->head, &ww.link);
    int r = tr__task_park(t, &ww.w, kind);
    TR_ASSERT(tr__list_empty(&ww.link)); /* unlinked by whoever woke us */
    return r;
}

unsigned tr__waitq_wake_all(struct tr__waitq *q, int res)
{
    unsigned n = 0;
    /* Bounded by the waiters, each unlinked; first come, first served. */
    while (!tr__list_empty(&q->head)) {
        struct waitq_wait *ww = tr__container_of(q->head.next, struct waitq_wait, link);
        tr__list_del(&ww->link);
        tr__task_wake(ww->w.owner, res);
        n++;
    }
    return n;
}
