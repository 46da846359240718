/* SPDX-License-Identifier: MIT */
/*
 * baseline_msgring.c — bench_post's anchor: a bare liburing loop that
 * sends N messages from thread A's ring to thread B's with
 * IORING_OP_MSG_RING, 64 SQEs per submit (IOSQE_CQE_SKIP_SUCCESS: A reaps
 * nothing on success), keeping at most W sent and not yet reaped by B.
 * B's ring is set up as taskring's (SINGLE_ISSUER | DEFER_TASKRUN when
 * the kernel has them) and waits for its CQEs in batches.
 *
 *   baseline_msgring [--messages N] [--window W]
 *
 * One JSON line: {"bench":"post","impl":"liburing-msgring",...,"value":<ns/msg>}
 */
#include "perf_common.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>

static const char usage[] = "usage: baseline_msgring [--messages N] [--window W]\n";

#define BATCH 64

static struct {
    struct io_uring b;
    long long n, window;
    _Atomic long long got;
    _Atomic int b_up;
    uint64_t t1;
} g;

static void *b_thread(void *arg)
{
    (void)arg;
    struct io_uring_params p = {.flags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN,
                                .cq_entries = 16384};
    p.flags |= IORING_SETUP_CQSIZE;
    int err = io_uring_queue_init_params(256, &g.b, &p);
    if (err) {
        p.flags = IORING_SETUP_CQSIZE;
        err = io_uring_queue_init_params(256, &g.b, &p);
    }
    if (err)
        pc_die("io_uring_queue_init (B): %s", strerror(-err));
    atomic_store(&g.b_up, 1);
    long long got = 0;
    while (got < g.n) {
        struct io_uring_cqe *cqe;
        err = io_uring_wait_cqe(&g.b, &cqe);
        if (err == -EINTR)
            continue;
        if (err)
            pc_die("io_uring_wait_cqe: %s", strerror(-err));
        unsigned head, k = 0;
        io_uring_for_each_cqe(&g.b, head, cqe) k++;
        io_uring_cq_advance(&g.b, k);
        got += k;
        atomic_store_explicit(&g.got, got, memory_order_release);
    }
    g.t1 = pc_now_ns();
    return NULL;
}

int main(int argc, char **argv)
{
    g.n = 2000000;
    g.window = 4096;
    const struct pc_opt opts[] = {
        {"--messages", &g.n, 1, 1000000000LL, NULL, NULL},
        {"--window", &g.window, BATCH, 1 << 20, NULL, NULL},
    };
    pc_parse(argc, argv, opts, sizeof(opts) / sizeof(opts[0]), usage);
    struct io_uring a;
    int err = io_uring_queue_init(256, &a, 0);
    if (err)
        pc_die("io_uring_queue_init (A): %s", strerror(-err));
    pthread_t th;
    if (pthread_create(&th, NULL, b_thread, NULL))
        pc_die("pthread_create");
    while (!atomic_load(&g.b_up))
        sched_yield();
    uint64_t t0 = pc_now_ns();
    long long sent = 0;
    while (sent < g.n) {
        while (sent - atomic_load_explicit(&g.got, memory_order_acquire) + BATCH > g.window)
            sched_yield();
        int k = 0;
        for (; k < BATCH && sent < g.n; k++, sent++) {
            struct io_uring_sqe *sqe = io_uring_get_sqe(&a);
            io_uring_prep_msg_ring(sqe, g.b.ring_fd, 0, (uint64_t)sent, 0);
            sqe->flags |= IOSQE_CQE_SKIP_SUCCESS;
        }
        err = io_uring_submit(&a);
        if (err < 0)
            pc_die("io_uring_submit: %s", strerror(-err));
        /* A failed MSG_RING posts a CQE on A: none may. */
        struct io_uring_cqe *cqe;
        if (io_uring_peek_cqe(&a, &cqe) == 0)
            pc_die("MSG_RING failed: %s", strerror(-cqe->res));
    }
    pthread_join(th, NULL);
    printf(
        "{\"bench\":\"post\",\"impl\":\"liburing-msgring\",\"params\":{\"N\":%lld,\"window\":%lld},"
        "\"value\":%.1f,\"unit\":\"ns/msg\"}\n",
        g.n, g.window, (double)(g.t1 - t0) / (double)g.n);
    io_uring_queue_exit(&a);
    io_uring_queue_exit(&g.b);
    return 0;
}
