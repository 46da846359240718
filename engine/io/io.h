/* SPDX-License-Identifier: MIT */
/*
 * io.h — ring operations of tasks: op slots and generations, the op
 * table, what a completion means (dispatch), waiting for SQ room.
 */
#ifndef TR_IO_H
#define TR_IO_H

#include "task/task.h"
#include "ring/ring.h"

/* ------------------------------------------------------------ op slots */

enum tr__op_state { TR_OP_FREE = 0, TR_OP_INFLIGHT, TR_OP_COMPLETED };

/* The op table (ops.c): one entry per kind of operation, checked at init. */
enum tr__opcode {
    TR_OPC_NOP = 0,
    TR_OPC_READ,
    TR_OPC_WRITE,
    TR_OPC_RECV,
    TR_OPC_SEND,
    TR_OPC_ACCEPT,
    TR_OPC_CONNECT,
    TR_OPC_POLL,
    TR_OPC_OPENAT,
    TR_OPC_CLOSE,
    TR_OPC_FSYNC,
    TR_OPC_SHUTDOWN,
    TR_OPC_CUSTOM,
    TR_OPC__COUNT
};

struct tr__opdef {
    const char *name;
    bool cancellable; /* tr_close is not: it always closes */
    bool returns_fd;  /* a completed result >= 0 is an fd the caller owns */
};
extern const struct tr__opdef tr__opdefs[TR_OPC__COUNT];
void tr__opdefs_check(void);

struct tr_op {
    uint32_t gen;         /* bumped on free: the CQE of an old activation is stale */
    uint8_t state;        /* enum tr__op_state */
    uint8_t opcode;       /* enum tr__opcode */
    bool cancel_sent;     /* an ASYNC_CANCEL targets this activation */
    bool cancel_deferred; /* wanted, but the ring refused it: retried each pass */
    bool returns_fd;      /* a result >= 0 is an fd the caller owns (closed if killed) */
    int32_t res;          /* the CQE's result, once COMPLETED */
    uint32_t cqe_flags;
    uint32_t next_free; /* free list link (index) */
    tr_task *task;      /* the parked owner */
};

#define TR_OP_NONE UINT32_MAX
/* Slots live in fixed chunks that never move, so a slot's address is stable
 * for the life of the engine. */
#define TR_OP_CHUNK_SHIFT 12
#define TR_OP_CHUNK (1u << TR_OP_CHUNK_SHIFT)
#define TR_OP_MAX_CHUNKS 1024 /* 4M slots: more than tasks can ever hold */

/* user_data layout: bits 0-31 slot index, 32-62 generation. Bit 63 tags the
 * engine's own requests, which have no slot; bits 56-62 then say which
 * (enum tr__udk). LIBURING_UDATA_TIMEOUT (all ones) is liburing's own and
 * never ours. */
#define TR_UD_ENGINE (1ull << 63)
#define TR_UD_KIND_SHIFT 56
#define TR_UD_KIND(ud) ((unsigned)((ud) >> TR_UD_KIND_SHIFT) & 0x7fu)
enum tr__udk {
    TR_UDK_CANCEL = 0,  /* ASYNC_CANCEL of a task's op (low bits: its slot) */
    TR_UDK_SIGNAL = 1,  /* the signalfd read */
    TR_UDK_WAKE = 2,    /* the wakeup eventfd read */
    TR_UDK_ICANCEL = 3, /* ASYNC_CANCEL of one of the two reads above */
    TR_UDK_VOID = 4,    /* a NOP filling an SQE that was taken but not used */
    TR_UDK_EMBTM = 5,   /* a ring timeout at a deadline, for tr_engine_fd (embed.c) */
};
#define TR_UD_CANCEL (TR_UD_ENGINE | ((uint64_t)TR_UDK_CANCEL << TR_UD_KIND_SHIFT))
#define TR_UD_SIGNAL (TR_UD_ENGINE | ((uint64_t)TR_UDK_SIGNAL << TR_UD_KIND_SHIFT))
#define TR_UD_WAKE (TR_UD_ENGINE | ((uint64_t)TR_UDK_WAKE << TR_UD_KIND_SHIFT))
#define TR_UD_ICANCEL (TR_UD_ENGINE | ((uint64_t)TR_UDK_ICANCEL << TR_UD_KIND_SHIFT))
#define TR_UD_VOID (TR_UD_ENGINE | ((uint64_t)TR_UDK_VOID << TR_UD_KIND_SHIFT))
#define TR_UD_EMBTM (TR_UD_ENGINE | ((uint64_t)TR_UDK_EMBTM << TR_UD_KIND_SHIFT))
#define TR_GEN_MASK 0x7fffffffu
/* A cancel's user_data carries the low 24 bits of its target's generation
 * in bits 32-55, so its CQE is never taken for a later activation's. */
#define TR_UD_CANCEL_GEN_MASK (0xffffffull << 32)
static inline uint64_t tr__ud_cancel_gen(uint32_t gen)
{
    return ((uint64_t)gen << 32) & TR_UD_CANCEL_GEN_MASK;
}

static inline uint64_t tr__ud_make(uint32_t idx, uint32_t gen)
{
    return ((uint64_t)gen << 32) | idx;
}

int tr__op_alloc(tr_engine *e, uint32_t *idx_out);
struct tr_op *tr__op_get(const tr_engine *e, uint32_t idx);
void tr__op_free(tr_engine *e, uint32_t idx);
void tr__op_table_free(tr_engine *e);
struct tr__op_wait;
int tr__op_begin(tr_task *t, uint8_t opcode, int fd, struct tr__op_wait *ow,
                 struct io_uring_sqe **sqe_out);
int tr__op_park(tr_task *t, struct tr__op_wait *ow, struct io_uring_sqe *sqe);

/* ------------------------------------------------------------- dispatch */

void tr__dispatch_cqe(tr_engine *e, uint64_t ud, int32_t res, uint32_t flags);

/* --------------------------------------------------------- SQ room waits */

/* Parks t until the next pass has reaped (the SQ is full and the kernel
 * wants completions consumed first). 0, or -ECANCELED when cut short (only
 * when cancellable) or killed. */
int tr__sq_wait(tr_task *t, bool cancellable);
bool tr__sq_waiters(const tr_engine *e);
void tr__sq_waiters_wake(tr_engine *e);

#endif /* TR_IO_H */
