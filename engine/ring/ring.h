/* SPDX-License-Identifier: MIT */
/*
 * ring.h — the only code that talks to liburing. It calls nothing above
 * it: completions are copied out to the scheduler, which dispatches them.
 */
#ifndef TR_RING_H
#define TR_RING_H

#include "base/base.h"

/* ---------------------------------------------------------------- ring */

int tr__ring_init(tr_engine *e, const struct tr_config *cfg);
int tr__ring_enable(tr_engine *e);
void tr__ring_register(tr_engine *e);
void tr__ring_unregister(tr_engine *e);
void tr__ring_exit(tr_engine *e);
/* An SQE: flushes the SQ to the kernel when it is full. NULL when the ring
 * refuses (it wants completions consumed first): the caller waits for the
 * next pass. Never reaps. */
struct io_uring_sqe *tr__ring_get_sqe(tr_engine *e);
/* Submits pending SQEs; waits for at least one CQE when wait is true, for at
 * most timeout_ns (UINT64_MAX: no limit). Returns 0 or a fatal -errno; on
 * -EBUSY/-EAGAIN 0, and the caller reaps. */
int tr__ring_enter(tr_engine *e, bool wait, uint64_t timeout_ns);
/* The completions ready now: returns how many, and in *first the index of
 * the first; tr__ring_cqe reads the i-th, tr__ring_consume gives n back to
 * the kernel. The caller (the loop) dispatches them: the ring calls
 * nothing above it. */
unsigned tr__ring_ready(tr_engine *e, unsigned *first);
void tr__ring_consume(tr_engine *e, unsigned n);
#define tr__ring_cqe(e, i) (&(e)->rs.uring.cq.cqes[(i) & (e)->rs.uring.cq.ring_mask])
unsigned tr__ring_sq_pending(const tr_engine *e);
/* tr__ring_cq_empty(e), tr__ring_enter_needed(e, busy): inline, at the end
 * of life/engine.h (they need the ring's state; a task's switch reads them). */
bool tr__ring_overflow_pending(const tr_engine *e);
uint64_t tr__ring_overflow_count(const tr_engine *e);
/* White-box tests: queue a NOP whose CQE carries user_data ud. */
int tr__ring_post_raw_nop(tr_engine *e, uint64_t ud);

#endif /* TR_RING_H */
