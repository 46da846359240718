/* SPDX-License-Identifier: MIT */
/*
 * ops.c — the op table and the blocking calls built on it.
 *
 * Every call follows one shape: refuse outside a task (-EPERM); the
 * level-triggered cancel point (-ECANCELED without submitting, except for
 * tr_close); take a slot and an SQE (tr__op_begin); prepare; park until the
 * op's own CQE (tr__op_park). An error before the park never leaves
 * anything in flight.
 */
#include "tr_internal.h"

#include <errno.h>
#include <limits.h>
#include <string.h>

const struct tr__opdef tr__opdefs[TR_OPC__COUNT] = {
    [TR_OPC_NOP] = {"nop", true, false},         [TR_OPC_READ] = {"read", true, false},
    [TR_OPC_WRITE] = {"write", true, false},     [TR_OPC_RECV] = {"recv", true, false},
    [TR_OPC_SEND] = {"send", true, false},       [TR_OPC_ACCEPT] = {"accept", true, true},
    [TR_OPC_CONNECT] = {"connect", true, false}, [TR_OPC_POLL] = {"poll", true, false},
    [TR_OPC_OPENAT] = {"openat", true, true},    [TR_OPC_CLOSE] = {"close", false, false},
    [TR_OPC_FSYNC] = {"fsync", true, false},     [TR_OPC_SHUTDOWN] = {"shutdown", true, false},
    [TR_OPC_CUSTOM] = {"op", true, false},
};

/* Run once at the first engine's creation: a missing row is a build bug. */
void tr__opdefs_check(void)
{
    for (int i = 0; i < TR_OPC__COUNT; i++)
        TR_ASSERT(tr__opdefs[i].name != NULL);
}

/* Linux caps one read/write at 0x7ffff000 bytes; larger requests would only
 * be truncated by the kernel anyway, and the SQE's len is 32 bits. */
static unsigned clamp_len(size_t n)
{
    return n > 0x7ffff000u ? 0x7ffff000u : (unsigned)n;
}

/* The common prologue. Declares t, ow (the op's wait record) and sqe, or
 * returns from the caller. */
#define TR_OP_BEGIN(opc, fd)                                                                       \
    tr_task *t = tr__current;                                                                      \
    struct io_uring_sqe *sqe;                                                                      \
    struct tr__op_wait ow;                                                                         \
    if (TR_UNLIKELY(!t))                                                                           \
        return -EPERM;                                                                             \
    do {                                                                                           \
        int err_ = tr__opdefs[opc].cancellable ? tr__cancel_point(t) : tr__prep_check(t);          \
        if (TR_UNLIKELY(err_))                                                                     \
            return err_;                                                                           \
        err_ = tr__op_begin(t, opc, fd, &ow, &sqe);                                                \
        if (TR_UNLIKELY(err_))                                                                     \
            return err_;                                                                           \
    } while (0)

/* tr_close is no cancellation point, but no blocking call may run inside a
 * tr_op prep callback either. */
static inline int tr__prep_check(const tr_task *t)
{
    return TR_UNLIKELY(tr__task_in_prep(t)) ? -EPERM : 0;
}

int tr_nop(void)
{
    TR_OP_BEGIN(TR_OPC_NOP, -1);
    io_uring_prep_nop(sqe);
    return tr__op_park(t, &ow, sqe);
}

ssize_t tr_read(int fd, void *buf, size_t n, int64_t off)
{
    TR_OP_BEGIN(TR_OPC_READ, fd);
    io_uring_prep_read(sqe, fd, buf, clamp_len(n), off < 0 ? (uint64_t)-1 : (uint64_t)off);
    int res = tr__op_park(t, &ow, sqe);
    if (res > 0)
        TR_VG_DEFINED(buf, (size_t)res);
    return res;
}

ssize_t tr_write(int fd, const void *buf, size_t n, int64_t off)
{
    TR_OP_BEGIN(TR_OPC_WRITE, fd);
    io_uring_prep_write(sqe, fd, buf, clamp_len(n), off < 0 ? (uint64_t)-1 : (uint64_t)off);
    return tr__op_park(t, &ow, sqe);
}

ssize_t tr_recv(int fd, void *buf, size_t n, int flags)
{
    TR_OP_BEGIN(TR_OPC_RECV, fd);
    io_uring_prep_recv(sqe, fd, buf, clamp_len(n), flags);
    int res = tr__op_park(t, &ow, sqe);
    if (res > 0)
        TR_VG_DEFINED(buf, (size_t)res);
    return res;
}

ssize_t tr_send(int fd, const void *buf, size_t n, int flags)
{
    TR_OP_BEGIN(TR_OPC_SEND, fd);
    /* A peer that closed must cost the caller -EPIPE, not the process. */
    io_uring_prep_send(sqe, fd, buf, clamp_len(n), flags | MSG_NOSIGNAL);
    return tr__op_park(t, &ow, sqe);
}

int tr_accept(int fd, struct sockaddr *sa, socklen_t *len, int flags)
{
    TR_OP_BEGIN(TR_OPC_ACCEPT, fd);
    io_uring_prep_accept(sqe, fd, sa, len, flags);
    int res = tr__op_park(t, &ow, sqe);
    if (res >= 0 && sa && len) {
        TR_VG_DEFINED(len, sizeof(*len));
        TR_VG_DEFINED(sa, *len);
    }
    return res;
}

int tr_connect(int fd, const struct sockaddr *sa, socklen_t len)
{
    TR_OP_BEGIN(TR_OPC_CONNECT, fd);
    io_uring_prep_connect(sqe, fd, sa, len);
    return tr__op_park(t, &ow, sqe);
}

int tr_poll(int fd, unsigned events)
{
    TR_OP_BEGIN(TR_OPC_POLL, fd);
    io_uring_prep_poll_add(sqe, fd, events);
    return tr__op_park(t, &ow, sqe);
}

int tr_openat(int dfd, const char *path, int flags, mode_t mode)
{
    TR_OP_BEGIN(TR_OPC_OPENAT, dfd);
    io_uring_prep_openat(sqe, dfd, path, flags, mode);
    return tr__op_park(t, &ow, sqe);
}

int tr_close(int fd)
{
    TR_OP_BEGIN(TR_OPC_CLOSE, fd);
    io_uring_prep_close(sqe, fd);
    return tr__op_park(t, &ow, sqe);
}

int tr_fsync(int fd)
{
    TR_OP_BEGIN(TR_OPC_FSYNC, fd);
    io_uring_prep_fsync(sqe, fd, 0);
    return tr__op_park(t, &ow, sqe);
}

int tr_shutdown(int fd, int how)
{
    TR_OP_BEGIN(TR_OPC_SHUTDOWN, fd);
    io_uring_prep_shutdown(sqe, fd, how);
    return tr__op_park(t, &ow, sqe);
}

#ifndef IORING_TIMEOUT_MULTISHOT
#define IORING_TIMEOUT_MULTISHOT (1U << 6) /* 6.4; liburing 2.3 lacks it */
#endif

/* What tr_op cannot honour with one SQE and one CQE, or that would let the
 * kernel hold the engine's own requests back (DESIGN sections 4 and 10). */
static bool custom_sqe_ok(const struct io_uring_sqe *sqe)
{
    /* Links tie the op to a stranger's SQE; CQE_SKIP_SUCCESS would leave
     * the task without its completion; IO_DRAIN makes the kernel hold every
     * later SQE (the engine's cancels and signal read included) until all
     * earlier ones completed, so nothing could be cancelled any more. */
    if (sqe->flags & (IOSQE_IO_LINK | IOSQE_IO_HARDLINK | IOSQE_CQE_SKIP_SUCCESS | IOSQE_IO_DRAIN))
        return false;
    switch (sqe->opcode) {
    case IORING_OP_POLL_ADD: /* multishot: more CQEs after the first */
        return !(sqe->len & IORING_POLL_ADD_MULTI);
    case IORING_OP_ACCEPT: /* multishot: every later accepted fd would leak */
        return !(sqe->ioprio & IORING_ACCEPT_MULTISHOT);
    case IORING_OP_RECV:
    case IORING_OP_RECVMSG:
        return !(sqe->ioprio & IORING_RECV_MULTISHOT);
    case IORING_OP_TIMEOUT:
        return !(sqe->timeout_flags & IORING_TIMEOUT_MULTISHOT);
    case IORING_OP_SEND_ZC: /* its notification CQE comes after the result */
    case IORING_OP_SENDMSG_ZC:
    case IORING_OP_LINK_TIMEOUT: /* only meaningful linked */
    case IORING_OP_ASYNC_CANCEL: /* could cancel the engine's own requests */
    case IORING_OP_MSG_RING:     /* could forge a CQE in any engine's ring */
    case IORING_OP_POLL_REMOVE:
    case IORING_OP_TIMEOUT_REMOVE:
        return false;
    default:
        /* 49 is IORING_OP_READ_MULTISHOT (6.7), unknown to liburing 2.3. */
        return sqe->opcode != 49;
    }
}

/* An opcode whose result is a new fd (not a direct descriptor): closed by
 * the engine if its task is killed after the completion (G5). */
static bool custom_returns_fd(const struct io_uring_sqe *sqe)
{
    switch (sqe->opcode) {
    case IORING_OP_OPENAT:
    case IORING_OP_OPENAT2:
    case IORING_OP_ACCEPT:
    case IORING_OP_SOCKET:
        return sqe->file_index == 0;
    default:
        return false;
    }
}

int tr_op(void (*prep)(struct io_uring_sqe *sqe, void *ctx), void *ctx)
{
    tr_task *t = tr__current;
    if (!t)
        return -EPERM;
    if (!prep)
        return -EINVAL;
    int err = tr__cancel_point(t);
    if (err)
        return err;
    /* Prepared on the stack, checked, then copied into the ring: the ring
     * never holds a half-prepared or refused SQE, and a blocking call made
     * inside prep (refused: -EPERM) cannot see this op's SQE taken. */
    struct io_uring_sqe local;
    memset(&local, 0, sizeof(local));
    t->attn |= TR_ATTN_PREP;
    prep(&local, ctx);
    t->attn &= (uint8_t)~TR_ATTN_PREP;
    if (!custom_sqe_ok(&local))
        return -EINVAL;
    /* Level-triggered: a cancel that came during prep applies now. */
    err = tr__cancel_point(t);
    if (err)
        return err;
    struct io_uring_sqe *sqe;
    struct tr__op_wait ow;
    err = tr__op_begin(t, TR_OPC_CUSTOM, local.fd, &ow, &sqe);
    if (err)
        return err;
    *sqe = local;
    tr__op_get(t->e, ow.idx)->returns_fd = custom_returns_fd(&local);
    return tr__op_park(t, &ow, sqe);
}

/* ---- sleeps: a wait whose timer is the task's own -------------------------- */

/* The timer is in the task record (t->sleep_tm), not the frame: a sleep's
 * end or cancel touches no stack page (wait.h). */
static void sleep_fire(tr_engine *e, struct tr__timer *tm)
{
    (void)e;
    tr__task_wake(tr__container_of(tm, tr_task, sleep_tm), 0);
}

static void sleep_cancel(tr_engine *e, tr_task *t)
{
    tr__timer_disarm(e, &t->sleep_tm);
    tr__task_wake(t, TR__WAKE_CUT);
}

const struct tr__wait_kind tr__wk_sleep = {.name = "sleeping", .cancel = sleep_cancel};

int tr_sleep_ns(uint64_t ns)
{
    tr_task *t = tr__current;
    if (!t)
        return -EPERM;
    int err = tr__cancel_point(t);
    if (err)
        return err;
    uint64_t now = tr__now_ns();
    uint64_t deadline = tr__add_sat(now, ns);
    struct tr__wait w;
    tr__timer_init(&t->sleep_tm, sleep_fire);
    err = tr__timer_arm(t->e, &t->sleep_tm, deadline);
    if (err)
        return err;
    int r = tr__task_park(t, &w, &tr__wk_sleep);
    TR_ASSERT(!tr__timer_armed(&t->sleep_tm));
    return r;
}
