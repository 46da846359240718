/* SPDX-License-Identifier: MIT */
/*
 * duties.h — the scheduler's per-pass duties (loop.c), in one list that the
 * loop's passes and a task's inline pass start (task.c's switch) both
 * expand. Here, not in loop.c, so that the check a task makes on every
 * switch that ends a pass is inlined: it is on the hot path of tr_yield.
 */
#ifndef TR_DUTIES_H
#define TR_DUTIES_H

#include "life/engine.h"

/* Passes a task may begin in a row before the scheduler runs one. */
#define TR_INLINE_PASSES 64
/* ... and how often among them the whole list is checked: the first after
 * the scheduler's pass, then every 4th (a duty waits 3 task-begun passes
 * at most, as long as a pass of 4 tasks would make it wait: hand-offs
 * between two tasks pay the ring's and the wheel's checks once every 4
 * switches, not at each). A shutdown is looked for at every one: a task
 * that asks for it (or a signal) starts it before anyone else runs. */
#define TR_INLINE_CHECK_EVERY 4
_Static_assert(TR_INLINE_PASSES % TR_INLINE_CHECK_EVERY == 0, "the first is checked in full");

/* Each duty: NAME_pending(e), cheap, says whether it has work this pass;
 * NAME_run(e) (loop.c), if it has one, does it (duties without run are the
 * enter and reap phases' own). */

static inline bool tr__duty_peers_pending(const tr_engine *e)
{
    return tr__peer_signals_pending(e);
}

static inline bool tr__duty_inbox_pending(const tr_engine *e)
{
    return tr__inbox_pending(e);
}

static inline bool tr__duty_shutdown_pending(const tr_engine *e)
{
    return tr__shutdown_active((tr_engine *)e);
}

static inline bool tr__duty_reads_pending(const tr_engine *e)
{
    return tr__internal_arm_owed(e);
}

static inline bool tr__duty_cancels_pending(const tr_engine *e)
{
    return e->ops.cancels_deferred > 0;
}

/* Armed timers, one of which may be due by the pass's coarse clock (which
 * lags the precise one by up to TR_COARSE_LAG_NS): timers far away (idle
 * timeouts) neither read the precise clock every pass nor keep a task
 * from beginning the next pass itself. */
static inline bool tr__duty_timers_pending(const tr_engine *e)
{
    return e->tm.len > 0 && tr__timers_due(e, e->sch.pass_ns + TR_COARSE_LAG_NS);
}

static inline bool tr__duty_submit_pending(const tr_engine *e)
{
    /* SQEs to hand over, or completion work the kernel holds back. */
    return tr__ring_enter_needed(e, true);
}

static inline bool tr__duty_reap_pending(const tr_engine *e)
{
    return !tr__ring_cq_empty(e);
}

static inline bool tr__duty_sq_pending(const tr_engine *e)
{
    return tr__sq_waiters(e);
}

/*
 * THE list of per-pass duties, in the order of a pass: X(name, runs) where
 * runs says whether the duties phase runs it (else the enter and reap
 * phases do). Messages from other threads come before the shutdown (a
 * call's REPLY wakes its caller in the pass its engine learns of it). The
 * shutdown comes after the other engines' signals and
 * before tasks run (a signal reaped last pass starts Stop first); timers
 * last among those that run (a cancel retried or a rung taken may disarm
 * some). Both the loop and a task's inline pass start expand this one
 * list, at compile time: a duty added here cannot be skipped by either.
 */
#define TR_DUTIES(X)                                                                               \
    X(peers, 1)                                                                                    \
    X(inbox, 1)                                                                                    \
    X(shutdown, 1)                                                                                 \
    X(reads, 1)                                                                                    \
    X(cancels, 1)                                                                                  \
    X(timers, 1)                                                                                   \
    X(submit, 0)                                                                                   \
    X(reap, 0)                                                                                     \
    X(sq, 0)

#define TR_DUTY_PENDING(name, runs) || tr__duty_##name##_pending(e)

static inline bool tr__duties_pending(const tr_engine *e)
{
    return false TR_DUTIES(TR_DUTY_PENDING);
}

/* Called by a task at the end of a pass with tasks queued for the next:
 * may it begin that pass itself? Only when the scheduler's part of a pass
 * has nothing to do. Without TASKRUN_FLAG the kernel cannot tell us
 * whether completions wait, so never. Bounded: after TR_INLINE_PASSES the
 * scheduler runs a pass. */
static inline bool tr__loop_pass_inline(tr_engine *e)
{
    unsigned left = e->sch.inline_left; /* 0 without TASKRUN_FLAG (run_batch) */
    if (left == 0)
        return false;
    if (left % TR_INLINE_CHECK_EVERY == 0 ? tr__duties_pending(e) : tr__shutdown_maybe(e))
        return false;
    e->sch.inline_left = left - 1;
    e->sch.clock_ns = 0; /* a new pass: tr_deadline_after reads the clock afresh */
    e->sch.batch = e->sch.run_head;
    e->sch.run_head = e->sch.run_tail = NULL;
    return true;
}

#endif /* TR_DUTIES_H */
