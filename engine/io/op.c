/* SPDX-License-Identifier: MIT */
/*
 * op.c — op slots: one record per activation of a ring operation.
 *
 * A slot goes FREE -> INFLIGHT (its SQE is in the ring) -> COMPLETED (its CQE
 * was reaped and the result copied in) -> FREE (its task took the result).
 * user_data carries the slot's index and generation; freeing bumps the
 * generation, so a late or duplicate CQE for an old activation can never be
 * delivered to whoever holds the slot next (G3). Slots live in fixed chunks
 * that are never moved or freed before the engine, and the free list is
 * LIFO so a hot slot stays in cache: after warm-up an op allocates nothing.
 */
#include "tr_internal.h"

#include <errno.h>
#include <unistd.h>

static int op_grow(tr_engine *e)
{
    if (e->ops.nchunks == TR_OP_MAX_CHUNKS || TR_FAULT(TR_FS_ALLOC))
        return -ENOMEM;
    struct tr_op *chunk = calloc(TR_OP_CHUNK, sizeof(*chunk));
    if (!chunk)
        return -ENOMEM;
    uint32_t base = e->ops.nchunks << TR_OP_CHUNK_SHIFT;
    /* Link the new slots so that the lowest index is handed out first. */
    for (uint32_t i = 0; i < TR_OP_CHUNK; i++) {
        chunk[i].gen = 1;
        chunk[i].state = TR_OP_FREE;
        chunk[i].next_free = (i + 1 < TR_OP_CHUNK) ? base + i + 1 : e->ops.free;
    }
    e->ops.chunks[e->ops.nchunks++] = chunk;
    e->ops.free = base;
    return 0;
}

struct tr_op *tr__op_get(const tr_engine *e, uint32_t idx)
{
    uint32_t c = idx >> TR_OP_CHUNK_SHIFT;
    if (c >= e->ops.nchunks)
        return NULL;
    return &e->ops.chunks[c][idx & (TR_OP_CHUNK - 1)];
}

int tr__op_alloc(tr_engine *e, uint32_t *idx_out)
{
    if (TR_UNLIKELY(e->ops.free == TR_OP_NONE)) {
        int err = op_grow(e);
        if (err)
            return err;
    }
    uint32_t idx = e->ops.free;
    struct tr_op *op = tr__op_get(e, idx);
    TR_ASSERT(op != NULL);
    TR_ASSERT(op->state == TR_OP_FREE);
    e->ops.free = op->next_free;
    op->next_free = TR_OP_NONE;
    *idx_out = idx;
    return 0;
}

void tr__op_free(tr_engine *e, uint32_t idx)
{
    struct tr_op *op = tr__op_get(e, idx);
    TR_ASSERT(op != NULL);
    /* Only a reaped (or never submitted) slot may be reused (G1). */
    TR_ASSERT(op->state != TR_OP_INFLIGHT);
    op->state = TR_OP_FREE;
    op->gen = (op->gen + 1) & TR_GEN_MASK;
    if (op->gen == 0) /* 0 is never used, so user_data 0 is never ours */
        op->gen = 1;
    op->cancel_sent = false;
    op->cancel_deferred = false;
    op->task = NULL;
    op->res = 0;
    op->next_free = e->ops.free;
    e->ops.free = idx;
}

void tr__op_table_free(tr_engine *e)
{
    for (uint32_t c = 0; c < e->ops.nchunks; c++) {
        for (uint32_t i = 0; i < TR_OP_CHUNK; i++)
            TR_ASSERT(e->ops.chunks[c][i].state != TR_OP_INFLIGHT);
        free(e->ops.chunks[c]);
        e->ops.chunks[c] = NULL;
    }
    e->ops.nchunks = 0;
    e->ops.free = TR_OP_NONE;
}

/*
 * The path every ring op of a task takes: take a slot and an SQE, let the
 * caller prepare the SQE, then tr__op_park submits and parks in the op's
 * wait record (ow, in the caller's frame).
 */
#define TR_SQ_WAIT_PASSES 64

/* The SQ is full and the kernel refuses it: wait for the scheduler to reap
 * and try again. Bounded: a ring that refuses TR_SQ_WAIT_PASSES passes in a
 * row is broken, and the op fails with -EBUSY. Off the fast path. */
static __attribute__((noinline, cold)) int sqe_wait(tr_task *t, uint8_t opcode,
                                                    struct io_uring_sqe **sqe_out)
{
    bool cancellable = tr__opdefs[opcode].cancellable;
    for (unsigned pass = 0; pass < TR_SQ_WAIT_PASSES; pass++) {
        int err = tr__sq_wait(t, cancellable);
        /* Level-triggered: a cancel that came while we were woken and
         * queued applies before we submit. */
        if (!err && cancellable)
            err = tr__cancel_point(t);
        if (err)
            return err;
        if ((*sqe_out = tr__ring_get_sqe(t->e)) != NULL)
            return 0;
    }
    return -EBUSY;
}

int tr__op_begin(tr_task *t, uint8_t opcode, int fd, struct tr__op_wait *ow,
                 struct io_uring_sqe **sqe_out)
{
    tr_engine *e = t->e;
    struct io_uring_sqe *sqe = tr__ring_get_sqe(e);
    if (TR_UNLIKELY(!sqe)) {
        int err = sqe_wait(t, opcode, &sqe);
        if (err)
            return err;
    }
    uint32_t idx;
    int err = tr__op_alloc(e, &idx);
    if (TR_UNLIKELY(err)) {
        /* The SQE is taken: it must still go somewhere, a NOP the
         * dispatcher drops. Only the ring ever sees it. */
        io_uring_prep_nop(sqe);
        sqe->user_data = TR_UD_VOID;
        return err;
    }
    struct tr_op *op = tr__op_get(e, idx);
    op->opcode = opcode;
    op->returns_fd = tr__opdefs[opcode].returns_fd;
    op->task = t;
    ow->idx = idx;
    ow->fd = fd;
    *sqe_out = sqe;
    return 0;
}

int tr__op_park(tr_task *t, struct tr__op_wait *ow, struct io_uring_sqe *sqe)
{
    tr_engine *e = t->e;
    uint32_t idx = ow->idx;
    struct tr_op *op = tr__op_get(e, idx);
    TR_ASSERT(op->state == TR_OP_FREE);
    TR_ASSERT(op->task == t);
    /* One SQE, one CQE: links would tie our op to a stranger's, and a
     * skipped success CQE would park the task forever. (tr_op refuses
     * them; the calls of ops.c never set them.) */
    TR_ASSERT(!(sqe->flags &
                (IOSQE_IO_LINK | IOSQE_IO_HARDLINK | IOSQE_CQE_SKIP_SUCCESS | IOSQE_IO_DRAIN)));
    sqe->user_data = tr__ud_make(idx, op->gen);
    op->state = TR_OP_INFLIGHT;
    e->st.ops_submitted++;
    e->ops.inflight++;

    t->wait_slot = idx;
    int res = tr__task_park(t, &ow->w, &tr__wk_op);

    TR_ASSERT(op->state == TR_OP_COMPLETED);
    /* Our cancel makes the target end with -ECANCELED, or -EINTR when it
     * interrupted a blocking worker; both mean "cancelled". Any other
     * result is real and wins (G5): an fd, a byte count, an error. */
    if (op->cancel_sent && (res == -ECANCELED || res == -EINTR))
        res = tr__cut_return(t); /* -ECANCELED, or -ETIMEDOUT for a deadline */
    tr__op_free(e, idx);
    return res;
}

/* ---- the op's wait record -------------------------------------------------- */

static struct tr_op *wait_op(const tr_engine *e, const tr_task *t)
{
    struct tr_op *op = tr__op_get(e, t->wait_slot);
    TR_ASSERT(op != NULL);
    TR_ASSERT(op->task == t);
    return op;
}

/* Cut short (or killed): ask the kernel to cancel; the op's own CQE wakes
 * the owner, whose buffer is in use until then (G1). tr_close is never
 * cancelled: it always closes, and soon. */
static void op_cancel(tr_engine *e, tr_task *t)
{
    struct tr_op *op = wait_op(e, t);
    if (op->state == TR_OP_INFLIGHT && tr__opdefs[op->opcode].cancellable)
        (void)tr__cancel_submit(e, t->wait_slot);
}

/* A killed owner is never resumed: its CQE has been reaped (it woke the
 * owner), so the slot goes back; a resource the op produced (an accepted
 * or opened fd) would leak with nobody to close it, so it is closed here
 * and counted (G5). */
static void op_reap(tr_engine *e, tr_task *t)
{
    struct tr_op *op = wait_op(e, t);
    TR_ASSERT(op->state == TR_OP_COMPLETED);
    if (op->returns_fd && op->res >= 0) {
        close(op->res);
        e->st.fds_closed_at_kill++;
    }
    tr__op_free(e, t->wait_slot);
}

static void op_describe(const tr_engine *e, const tr_task *t, char *buf, size_t len)
{
    const struct tr_op *op = wait_op(e, t);
    snprintf(buf, len, " op=%s fd=%d", tr__opdefs[op->opcode].name,
             ((const struct tr__op_wait *)(const void *)t->wait)->fd);
}

const struct tr__wait_kind tr__wk_op = {
    .name = "parked-op",
    .cancel = op_cancel,
    .reap = op_reap,
    .describe = op_describe,
};
