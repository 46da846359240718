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

/* The common prologue. Declares t and sqe or returns from the caller. */
#define TR_OP_BEGIN(opc, fd)                                                                       \
    tr_task *t = tr__current;                                                                      \
    struct io_uring_sqe *sqe;                                                                      \
    if (TR_UNLIKELY(!t))                                                                           \
        return -EPERM;                                                                             \
    if (tr__opdefs[opc].cancellable && tr__cancel_point(t))                                        \
        return -ECANCELED;                                                                         \
    do {                                                                                           \
        int err_ = tr__op_begin(t, opc, &sqe);                                                     \
        if (TR_UNLIKELY(err_))                                                                     \
            return err_;                                                                           \
        t->op_fd = (fd);                                                                           \
    } while (0)

int tr_nop(void)
{
    TR_OP_BEGIN(TR_OPC_NOP, -1);
    io_uring_prep_nop(sqe);
    return tr__op_park(t, sqe);
}

ssize_t tr_read(int fd, void *buf, size_t n, int64_t off)
{
    TR_OP_BEGIN(TR_OPC_READ, fd);
    io_uring_prep_read(sqe, fd, buf, clamp_len(n), off < 0 ? (uint64_t)-1 : (uint64_t)off);
    int res = tr__op_park(t, sqe);
    if (res > 0)
        TR_VG_DEFINED(buf, (size_t)res);
    return res;
}

ssize_t tr_write(int fd, const void *buf, size_t n, int64_t off)
{
    TR_OP_BEGIN(TR_OPC_WRITE, fd);
    io_uring_prep_write(sqe, fd, buf, clamp_len(n), off < 0 ? (uint64_t)-1 : (uint64_t)off);
    return tr__op_park(t, sqe);
}

ssize_t tr_recv(int fd, void *buf, size_t n, int flags)
{
    TR_OP_BEGIN(TR_OPC_RECV, fd);
    io_uring_prep_recv(sqe, fd, buf, clamp_len(n), flags);
    int res = tr__op_park(t, sqe);
    if (res > 0)
        TR_VG_DEFINED(buf, (size_t)res);
    return res;
}

ssize_t tr_send(int fd, const void *buf, size_t n, int flags)
{
    TR_OP_BEGIN(TR_OPC_SEND, fd);
    /* A peer that closed must cost the caller -EPIPE, not the process. */
    io_uring_prep_send(sqe, fd, buf, clamp_len(n), flags | MSG_NOSIGNAL);
    return tr__op_park(t, sqe);
}

int tr_accept(int fd, struct sockaddr *sa, socklen_t *len, int flags)
{
    TR_OP_BEGIN(TR_OPC_ACCEPT, fd);
    io_uring_prep_accept(sqe, fd, sa, len, flags);
    int res = tr__op_park(t, sqe);
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
    return tr__op_park(t, sqe);
}

int tr_poll(int fd, unsigned events)
{
    TR_OP_BEGIN(TR_OPC_POLL, fd);
    io_uring_prep_poll_add(sqe, fd, events);
    return tr__op_park(t, sqe);
}

int tr_openat(int dfd, const char *path, int flags, mode_t mode)
{
    TR_OP_BEGIN(TR_OPC_OPENAT, dfd);
    io_uring_prep_openat(sqe, dfd, path, flags, mode);
    return tr__op_park(t, sqe);
}

int tr_close(int fd)
{
    TR_OP_BEGIN(TR_OPC_CLOSE, fd);
    io_uring_prep_close(sqe, fd);
    return tr__op_park(t, sqe);
}

int tr_fsync(int fd)
{
    TR_OP_BEGIN(TR_OPC_FSYNC, fd);
    io_uring_prep_fsync(sqe, fd, 0);
    return tr__op_park(t, sqe);
}

int tr_shutdown(int fd, int how)
{
    TR_OP_BEGIN(TR_OPC_SHUTDOWN, fd);
    io_uring_prep_shutdown(sqe, fd, how);
    return tr__op_park(t, sqe);
}

int tr_op(void (*prep)(struct io_uring_sqe *sqe, void *ctx), void *ctx)
{
    if (!prep)
        return tr__current ? -EINVAL : -EPERM;
    TR_OP_BEGIN(TR_OPC_CUSTOM, -1);
    prep(sqe, ctx);
    return tr__op_park(t, sqe);
}

int tr_sleep_ns(uint64_t ns)
{
    tr_task *t = tr__current;
    if (!t)
        return -EPERM;
    if (tr__cancel_point(t))
        return -ECANCELED;
    uint64_t now = tr__now_ns();
    uint64_t deadline = ns > UINT64_MAX - now ? UINT64_MAX : now + ns;
    int err = tr__timer_add(t->e, t, deadline);
    if (err)
        return err;
    return tr__task_park(t, TR_WAIT_TIMER);
}
