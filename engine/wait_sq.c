/*
 * wait_sq.c — waiting for room in the submission queue.
 *
 * Getting an SQE never reaps (ring.c): when the SQ is full and the kernel
 * will not take it until completions are consumed, a task that wants to
 * submit parks here, and the scheduler wakes every such task once it has
 * reaped (loop.c's reap phase). A new kind of wait, as every kind is: one
 * record type, no case in any switch.
 */
#include "tr_internal.h"

#include <errno.h>

struct sq_wait {
    struct tr__wait w;
    struct tr__link link; /* in e->sq_waiters */
    bool cancellable;     /* false for tr_close: it always closes */
};

/* Killed: nothing was taken, nothing is in flight. */
static void sq_wait_kill(tr_engine *e, struct tr__wait *w)
{
    (void)e;
    tr__list_del(&((struct sq_wait *)(void *)w)->link);
    tr__task_wake(w->owner, -ECANCELED);
}

/* Cut short: as killed, unless the op that waits may not be cancelled
 * (then its wait ends at the next pass anyway). */
static void sq_wait_cancel(tr_engine *e, struct tr__wait *w)
{
    if (((struct sq_wait *)(void *)w)->cancellable)
        sq_wait_kill(e, w);
}

static const struct tr__wait_kind sq_wait_kind = {
    .name = "sq-room-wait",
    .cancel = sq_wait_cancel,
    .kill = sq_wait_kill,
};

int tr__sq_wait(tr_task *t, bool cancellable)
{
    tr_engine *e = t->e;
    e->st.sq_waits++;
    struct sq_wait sw = {.w = {.kind = &sq_wait_kind}, .cancellable = cancellable};
    tr__list_add_tail(&e->sq_waiters, &sw.link);
    int r = tr__task_park(t, &sw.w);
    TR_ASSERT(tr__list_empty(&sw.link));
    return r;
}

bool tr__sq_waiters(const tr_engine *e)
{
    return !tr__list_empty(&e->sq_waiters);
}

void tr__sq_waiters_wake(tr_engine *e)
{
    /* Bounded by the waiters, each unlinked; first come, first served. */
    while (!tr__list_empty(&e->sq_waiters)) {
        struct sq_wait *sw = tr__container_of(e->sq_waiters.next, struct sq_wait, link);
        tr__list_del(&sw->link);
        tr__task_wake(sw->w.owner, 0);
    }
}
