/* SPDX-License-Identifier: MIT */
/*
 * taskring internals, shared by the engine's files and by white-box tests:
 * every layer's header (docs/DESIGN.md describes them).
 *
 * Data flow: tr_spawn puts a READY task on the run queue. A scheduling pass
 * (life/loop.c) runs each queued task until it parks. A task that calls an op
 * takes an op slot (op.c), fills an SQE with user_data = slot index and
 * generation, and parks. The pass then submits every SQE of the pass in one
 * io_uring_enter and, when nothing is runnable, waits. Reaping copies each
 * CQE's result into its slot and queues the task (io/dispatch.c); tasks run
 * only after the reap loop (dispatch never nests). The task wakes, takes the result, frees
 * the slot (generation + 1) and goes on.
 *
 * Invariants (asserted where they could break):
 *   - A task has at most one op slot of its own; while it holds one in state
 *     INFLIGHT the task is PARKED and its stack is not freed or reused (G1).
 *   - A slot is freed only by its task after the CQE was reaped.
 *   - ops.inflight == slots INFLIGHT + cancel requests whose CQE is pending.
 */
#ifndef TR_INTERNAL_H
#define TR_INTERNAL_H

/* The layers, each including the ones below it (DESIGN section 6):
 *   base/ -> wait/ -> task/ -> ring/, io/ -> structure/ -> life/ */
#include "life/engine.h"
#include "life/duties.h" /* the scheduler's duties, inlined by task.c */

#endif /* TR_INTERNAL_H */
