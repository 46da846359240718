/* SPDX-License-Identifier: MIT */
/*
 * wait_sq.c — waiting for room in the submission queue.
 *
 * Getting an SQE never reaps (ring.c): when the SQ is full and the kernel
 * will not take it until completions are consumed, a task that wants to
 * submit parks here, and the scheduler wakes every such task once it has
 * reaped (loop.c's reap phase). The whole of a new kind of wait: its kind
 * record and its queue.
 */
#include "tr_internal.h"

/* A close not yet submitted is not given up by the kill rung: the fd
 * would leak. It waits for the next pass, when there is room; the close's
 * own op is then killed like any other. */
static bool sq_kill_later(const tr_task *t)
{
    return !tr__waitq_cancellable(t);
}

/* Cut short only when its op may be cancelled (tr_close may not). */
static const struct tr__wait_kind sq_wait_kind = {
    .name = "sq-room-wait",
    .cancel = tr__waitq_cancel,
    .kill = tr__waitq_kill,
    .kill_later = sq_kill_later,
};

int tr__sq_wait(tr_task *t, bool cancellable)
{
    t->e->st.sq_waits++;
    return tr__waitq_park(t, &t->e->sq_room, &sq_wait_kind, cancellable);
}

bool tr__sq_waiters(const tr_engine *e)
{
    return !tr__waitq_empty(&e->sq_room);
}

void tr__sq_waiters_wake(tr_engine *e)
{
    (void)tr__waitq_wake_all(&e->sq_room, 0);
}
