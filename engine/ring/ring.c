/* SPDX-License-Identifier: MIT */
/*
 * ring.c — the only file that calls liburing's submission and completion
 * functions. Every error of io_uring_enter that we can meet is named here.
 * It calls nothing above it: completions are copied out to the scheduler
 * (tr__ring_ready/tr__ring_cqe), which dispatches them.
 */
#include "tr_internal.h"

#include <errno.h>
#include <string.h>

/* How often one call retries a refused submission before giving up for this
 * pass. Each retry reaps first, which is what the kernel waits for (-EBUSY:
 * completions must be consumed); 8 is far more than one reap ever needs. */
#define TR_RING_RETRIES 8

int tr__ring_init(tr_engine *e, const struct tr_config *cfg)
{
    (void)cfg;
    struct io_uring_params p;
    /* Preferred first, then without the 6.1 flags, then bare. The ring is
     * created disabled: with SINGLE_ISSUER the kernel binds it to the thread
     * that enables it, which is the thread that first runs the engine, not
     * necessarily the one that created it. */
    /* TASKRUN_FLAG: the kernel flags pending completion work in the SQ
     * ring, so a pass with tasks to run and nothing to submit can skip
     * io_uring_enter altogether (tr__ring_enter_needed). */
    static const unsigned tries[] = {
        IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_SUBMIT_ALL |
            IORING_SETUP_TASKRUN_FLAG,
        IORING_SETUP_COOP_TASKRUN | IORING_SETUP_SUBMIT_ALL | IORING_SETUP_TASKRUN_FLAG,
        0,
    };
    int ret = -EINVAL;
    for (size_t i = 0; i < sizeof(tries) / sizeof(tries[0]); i++) {
        memset(&p, 0, sizeof(p));
        p.flags = tries[i] | IORING_SETUP_CQSIZE | IORING_SETUP_R_DISABLED;
        p.cq_entries = e->rs.cq_entries;
        ret = io_uring_queue_init_params(e->rs.sq_entries, &e->rs.uring, &p);
        if (ret != -EINVAL)
            break;
    }
    if (ret < 0)
        return ret;
    /* We rely on NODROP (no CQE is ever lost to overflow) and EXT_ARG (the
     * wait takes the timer's timeout without an SQE of its own): 5.11+. */
    if (!(p.features & IORING_FEAT_NODROP) || !(p.features & IORING_FEAT_EXT_ARG)) {
        io_uring_queue_exit(&e->rs.uring);
        return -EOPNOTSUPP;
    }
    e->rs.defer_taskrun = (p.flags & IORING_SETUP_DEFER_TASKRUN) != 0;
    e->rs.single_issuer = (p.flags & IORING_SETUP_SINGLE_ISSUER) != 0;
    e->rs.taskrun_flag = (p.flags & IORING_SETUP_TASKRUN_FLAG) != 0;
    e->rs.cq_entries = p.cq_entries;
    e->rs.ready = true;
    e->rs.enabled = false;
    return 0;
}

/* Called by tr_engine_run on the thread that runs the engine. */
int tr__ring_enable(tr_engine *e)
{
    if (e->rs.enabled)
        return 0;
    /* io_uring_enable_rings() is declared by liburing 2.3 but missing from
     * its exported symbols, so register the opcode ourselves. */
    int ret =
        io_uring_register((unsigned)e->rs.uring.ring_fd, IORING_REGISTER_ENABLE_RINGS, NULL, 0);
    if (ret < 0)
        return ret;
    e->rs.enabled = true;
    e->rs.thread = pthread_self();
    return 0;
}

/* The registered ring fd saves an fdget per enter (measured +11-15% on
 * NOPs). Registrations are per thread, so tr_engine_run registers on entry
 * and unregisters on exit, on the thread that runs; failure only costs
 * speed. */
void tr__ring_register(tr_engine *e)
{
    if (!e->rs.registered)
        e->rs.registered = io_uring_register_ring_fd(&e->rs.uring) == 1;
}

void tr__ring_unregister(tr_engine *e)
{
    if (e->rs.registered)
        (void)io_uring_unregister_ring_fd(&e->rs.uring);
    e->rs.registered = false;
}

void tr__ring_exit(tr_engine *e)
{
    if (!e->rs.ready)
        return;
    io_uring_queue_exit(&e->rs.uring);
    e->rs.ready = false;
}

unsigned tr__ring_sq_pending(const tr_engine *e)
{
    return io_uring_sq_ready(&e->rs.uring);
}

bool tr__ring_overflow_pending(const tr_engine *e)
{
    return (IO_URING_READ_ONCE(*e->rs.uring.sq.kflags) & IORING_SQ_CQ_OVERFLOW) != 0;
}

uint64_t tr__ring_overflow_count(const tr_engine *e)
{
    return IO_URING_READ_ONCE(*e->rs.uring.cq.koverflow);
}

static struct io_uring_sqe *get_sqe(tr_engine *e)
{
    if (TR_FAULT(TR_FS_GET_SQE))
        return NULL; /* as if the SQ were full */
    return io_uring_get_sqe(&e->rs.uring);
}

static int submit(tr_engine *e)
{
#if defined(TR_FAULT_INJECTION)
    if (TR_FAULT(TR_FS_SUBMIT))
        return tr__fault_submit_err();
#endif
    return io_uring_submit(&e->rs.uring);
}

struct io_uring_sqe *tr__ring_get_sqe(tr_engine *e)
{
    struct io_uring_sqe *sqe = get_sqe(e);
    if (TR_LIKELY(sqe != NULL))
        return sqe;
    /* The SQ is full: hand it to the kernel, which makes room unless it
     * refuses (-EBUSY/-EAGAIN: completions must be consumed first). This
     * never reaps: completions go back to the scheduler only (dispatch
     * never nests, and nothing below the loop calls up into it). A NULL
     * makes the caller wait for the next pass (tasks) or retry then (the
     * engine's own requests). */
    for (int i = 0; i < TR_RING_RETRIES; i++) {
        e->st.submit_calls++;
        int ret = submit(e);
        if (ret == -EBUSY || ret == -EAGAIN) {
            e->st.submit_busy++;
            return NULL;
        }
        sqe = get_sqe(e);
        if (sqe)
            return sqe;
    }
    return NULL;
}

int tr__ring_enter(tr_engine *e, bool wait, uint64_t timeout_ns)
{
    int ret;
    e->st.submit_calls++;
#if defined(TR_FAULT_INJECTION)
    if (TR_FAULT(TR_FS_SUBMIT)) {
        ret = tr__fault_submit_err();
        goto failed;
    }
#endif
    if (!wait) {
        /* GETEVENTS even without waiting: with DEFER_TASKRUN, finished work
         * is only turned into CQEs inside io_uring_enter. */
        ret = io_uring_submit_and_get_events(&e->rs.uring);
    } else if (timeout_ns == UINT64_MAX) {
        ret = io_uring_submit_and_wait(&e->rs.uring, 1);
    } else {
        struct io_uring_cqe *cqe;
        struct __kernel_timespec ts = {
            .tv_sec = (long long)(timeout_ns / 1000000000ull),
            .tv_nsec = (long long)(timeout_ns % 1000000000ull),
        };
        ret = io_uring_submit_and_wait_timeout(&e->rs.uring, &cqe, 1, &ts, NULL);
    }
    if (ret >= 0)
        return 0;
#if defined(TR_FAULT_INJECTION)
failed:
#endif
    switch (ret) {
    case -ETIME: /* the timer's deadline came first: the pass expires it */
    case -EINTR: /* a signal interrupted the wait; nothing was lost and the
                  * pass recomputes the timeout, so return, don't restart */
        return 0;
    case -EBUSY:  /* completions must be consumed before more can start */
    case -EAGAIN: /* the kernel lacked memory for requests: reaping frees some */
        /* Unsubmitted SQEs stay in the SQ and go with the next enter; the
         * caller (the scheduler) reaps right after. */
        e->st.submit_busy++;
        return 0;
    default:
        /* -EBADF, -EFAULT, -EINVAL, -EEXIST (another thread entered a
         * SINGLE_ISSUER ring), -EBADFD (ring still disabled): misuse or an
         * engine bug; tr_engine_run fails with it. */
        return ret;
    }
}

unsigned tr__ring_ready(tr_engine *e, unsigned *first)
{
    struct io_uring *ring = &e->rs.uring;
    unsigned head = *ring->cq.khead;
    /* Acquire: the CQEs up to the tail are written before we read them. */
    unsigned tail = io_uring_smp_load_acquire(ring->cq.ktail);
    *first = head;
    return tail - head;
}

void tr__ring_consume(tr_engine *e, unsigned n)
{
    if (n)
        io_uring_cq_advance(&e->rs.uring, n);
    e->st.cq_overflows = tr__ring_overflow_count(e);
}

int tr__ring_post_raw_nop(tr_engine *e, uint64_t ud)
{
    struct io_uring_sqe *sqe = tr__ring_get_sqe(e);
    if (!sqe)
        return -EBUSY;
    io_uring_prep_nop(sqe);
    sqe->user_data = ud;
    return 0;
}
