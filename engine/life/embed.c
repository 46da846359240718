/* SPDX-License-Identifier: MIT */
/*
 * embed.c — an engine driven by another event loop (epoll, libuv, GLib):
 * tr_engine_fd and tr_engine_run_once (DESIGN section 9).
 *
 * The fd is an eventfd registered with the ring (IORING_REGISTER_EVENTFD):
 * the kernel signals it whenever it posts a completion, or queues work
 * for the ring's owner (DEFER_TASKRUN). That covers the tasks' I/O, the
 * engine's own reads (a shutdown signal, tr_engine_shutdown, the doorbell
 * of a tr_post). Two kinds of work have no completion of their own, and
 * run_once makes them signal it too:
 *   - tasks left runnable at the end of a pass: run_once writes the fd;
 *   - the nearest deadline (a sleep, a scope, a shutdown rung): a ring
 *     timeout (IORING_OP_TIMEOUT) for it, whose completion signals the fd.
 *     One is armed for the earliest deadline; an earlier one arms another
 *     (the later ones fire, harmlessly); all are cancelled when the engine
 *     goes idle, with the engine's reads (G2).
 * Between two run_once calls the engine counts as asleep for senders, so
 * a post rings the doorbell (a read completion: the fd).
 */
#include "tr_internal.h"

#include <errno.h>
#include <sys/eventfd.h>
#include <unistd.h>

int tr_engine_fd(tr_engine *e)
{
    if (!e)
        return -EINVAL;
    if (e->emb.fd >= 0)
        return e->emb.fd;
    int fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (fd < 0)
        return -errno;
    int err = io_uring_register_eventfd(&e->rs.uring, fd);
    if (err < 0) {
        close(fd);
        return err;
    }
    e->emb.fd = fd;
    return fd;
}

static void fd_signal(tr_engine *e)
{
    if (e->emb.fd < 0)
        return;
    uint64_t one = 1;
    ssize_t w;
    do {
        w = write(e->emb.fd, &one, sizeof(one));
    } while (w < 0 && errno == EINTR);
}

static void fd_drain(tr_engine *e)
{
    uint64_t n;
    if (e->emb.fd >= 0)
        while (read(e->emb.fd, &n, sizeof(n)) < 0 && errno == EINTR)
            ;
}

void tr__embed_timeout_done(tr_engine *e)
{
    TR_ASSERT(e->emb.timeouts > 0);
    if (--e->emb.timeouts == 0)
        e->emb.armed_at = UINT64_MAX;
}

void tr__embed_stop(tr_engine *e)
{
    if (e->emb.timeouts == 0)
        return;
    struct io_uring_sqe *sqe = tr__ring_get_sqe(e);
    if (!sqe)
        return; /* the next idle pass stops again */
    io_uring_prep_cancel64(sqe, TR_UD_EMBTM, IORING_ASYNC_CANCEL_ALL);
    sqe->user_data = TR_UD_ICANCEL | 0x80u;
    e->sw.inflight++;
}

/* The fd tells the host of the nearest deadline too. */
static void arm_deadline(tr_engine *e)
{
    if (e->emb.fd < 0)
        return;
    uint64_t wait = tr__loop_next_ns(e);
    if (wait == UINT64_MAX)
        return;
    uint64_t at = tr__add_sat(tr__now_ns(), wait);
    /* Armed already at or before it (1 ms of slack: deadlines that move by
     * microseconds do not arm a timeout each). */
    if (e->emb.armed_at != UINT64_MAX && e->emb.armed_at <= tr__add_sat(at, 1000000))
        return;
    /* The timespec lives in the engine until its SQE is submitted: one
     * still waiting in the SQ (a refused enter) keeps it. */
    if (e->emb.ts_queued && tr__ring_sq_pending(e) > 0)
        return;
    struct io_uring_sqe *sqe = tr__ring_get_sqe(e);
    if (!sqe) {
        fd_signal(e); /* no room: the host calls again at once */
        return;
    }
    e->emb.ts.tv_sec = (long long)(wait / 1000000000ull);
    e->emb.ts.tv_nsec = (long long)(wait % 1000000000ull);
    io_uring_prep_timeout(sqe, &e->emb.ts, 0, 0);
    e->emb.ts_queued = true;
    sqe->user_data = TR_UD_EMBTM;
    e->sw.inflight++;
    e->emb.timeouts++;
    e->emb.armed_at = at;
}

int tr_engine_run_once(tr_engine *e, int timeout_ms)
{
    if (!e || timeout_ms < -1)
        return -EINVAL;
    /* The first pass of a run begins one, as tr_engine_run does. */
    bool first = !e->emb.active;
    int err = tr__run_enter(e, first);
    if (err)
        return err;
    if (first) {
        tr__internal_resume(e);
        e->emb.active = true;
    }
    tr__inbox_awake(e);
    fd_drain(e);
    uint64_t cap = timeout_ms < 0 ? UINT64_MAX : (uint64_t)(unsigned)timeout_ms * 1000000u;
    int r = tr__engine_pass(e, cap);
    /* Going idle: the passes that take the engine's reads (and timeouts)
     * down, each waiting for those cancels' completions. Bounded: nothing
     * else is left to run, and every cancel completes. */
    while (r == 1 && e->sw.stopping)
        r = tr__engine_pass(e, UINT64_MAX);
    if (r == 1) {
        /* The reads a pass reaped are re-armed now, not at the next call:
         * a doorbell or a signal must reach the fd meanwhile. */
        if (tr__internal_arm_owed(e))
            tr__internal_arm(e);
        if (e->sch.run_head || !tr__inbox_sleep(e))
            fd_signal(e); /* runnable tasks, or a message came: at once */
        else
            arm_deadline(e);
        if (tr__ring_sq_pending(e) > 0)
            err = tr__ring_enter(e, false, 0); /* the timeout, and what tasks queued */
        if (tr__ring_sq_pending(e) == 0)
            e->emb.ts_queued = false;
        if (err)
            r = err;
    }
    if (r != 1) {
        tr__inbox_awake(e);
        e->emb.active = false;
    }
    tr__run_leave(e);
    return r;
}
