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
/* A completion, copied out of the CQ. */
struct tr__cqe {
    uint64_t user_data;
    int32_t res;
    uint32_t flags;
};
/* Copies up to max completions into out and consumes them; returns how
 * many. The caller dispatches them. */
unsigned tr__ring_take(tr_engine *e, struct tr__cqe *out, unsigned max);
unsigned tr__ring_sq_pending(const tr_engine *e);
bool tr__ring_cq_empty(tr_engine *e);
bool tr__ring_enter_needed(const tr_engine *e, bool busy);
bool tr__ring_overflow_pending(const tr_engine *e);
uint64_t tr__ring_overflow_count(const tr_engine *e);
/* White-box tests: queue a NOP whose CQE carries user_data ud. */
int tr__ring_post_raw_nop(tr_engine *e, uint64_t ud);

#endif /* TR_RING_H */
