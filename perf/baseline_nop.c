/* SPDX-License-Identifier: MIT */
/*
 * baseline_nop.c — bare liburing's NOP rate with T in flight: the anchor of
 * bench_nop.
 *
 *   baseline_nop [--tasks T] [--ops K]
 *
 * The same meaning of T and K as bench_nop (total T x K NOPs; K defaults to
 * 4,000,000 / T): K rounds, each preparing T NOPs, handing them over with
 * ONE io_uring_submit_and_wait(T) and reaping the T CQEs with
 * io_uring_for_each_cqe + io_uring_cq_advance. That is what a perfect
 * engine would do per scheduling pass with T tasks parked on NOPs, minus
 * every task switch. Each CQE must carry res 0 and a user_data of this
 * round; exactly T x K must arrive.
 *
 * The ring is set up as engine/ring/ring.c sets up taskring's (perf_common.h:
 * SINGLE_ISSUER | DEFER_TASKRUN | SUBMIT_ALL when the kernel has them, the
 * same SQ size as bench_nop uses for T, taskring's default CQ size, the
 * ring fd registered), so both go through the same kernel paths. The clock
 * covers the K rounds only.
 *
 * Output, one JSON line on stdout:
 *   {"bench":"nop","impl":"liburing","params":{"T":16,"K":250000},
 *    "value":<NOPs per second>,"unit":"ops/s","ns_per_op":..,"cpu_util":..}
 * cpu_util: thread CPU time / wall time, about 1.0 when undisturbed.
 */
#include "perf_common.h"

static const char usage[] =
    "usage: baseline_nop [--tasks T] [--ops K]\n"
    "  K rounds of T NOPs (default T=16, K=4000000/T), one submit_and_wait per round;\n"
    "  prints one JSON line: NOPs per second.\n";

int main(int argc, char **argv)
{
    long long tasks, ops;
    pc_parse_nop(argc, argv, usage, &tasks, &ops);

    /* bench_nop's SQ for T tasks, and taskring's default CQ for it. */
    unsigned t = (unsigned)tasks;
    unsigned sq = pc_pow2_at_least(t < 64 ? 64 : t);
    struct io_uring ring;
    pc_ring_init(&ring, sq, pc_taskring_cq_entries(sq));

    uint64_t reaped = 0;
    uint64_t t0 = pc_now_ns(), c0 = pc_thread_cpu_ns();
    for (long long round = 0; round < ops; round++) {
        /* Tag each NOP with its round, so a CQE from another round (which
         * cannot happen) would be caught rather than counted. */
        uint64_t tag = (uint64_t)round + 1;
        for (unsigned i = 0; i < t; i++) {
            struct io_uring_sqe *sqe = io_uring_get_sqe(&ring);
            if (!sqe) /* sq >= t and the SQ is empty at each round's start */
                pc_die("no SQE at round %lld, NOP %u", round, i);
            io_uring_prep_nop(sqe);
            sqe->user_data = tag;
        }
        int ret = io_uring_submit_and_wait(&ring, t);
        if (ret != (int)t)
            pc_die("io_uring_submit_and_wait: %d (%s), expected %u", ret,
                   ret < 0 ? strerror(-ret) : "short submit", t);
        unsigned seen = 0, head;
        struct io_uring_cqe *cqe;
        io_uring_for_each_cqe(&ring, head, cqe)
        {
            if (cqe->res != 0 || cqe->user_data != tag)
                pc_die("CQE res %d user_data %llu at round %lld", cqe->res,
                       (unsigned long long)cqe->user_data, round);
            seen++;
        }
        /* submit_and_wait(t) returned, so all t are there; never more, as
         * nothing else is in flight. */
        if (seen != t)
            pc_die("round %lld: %u CQEs, expected %u", round, seen, t);
        io_uring_cq_advance(&ring, seen);
        reaped += seen;
    }
    uint64_t t1 = pc_now_ns(), c1 = pc_thread_cpu_ns();

    uint64_t total = (uint64_t)tasks * (uint64_t)ops;
    if (reaped != total)
        pc_die("%" PRIu64 " CQEs, expected %" PRIu64, reaped, total);
    io_uring_queue_exit(&ring);

    double secs = (double)(t1 - t0) / 1e9;
    printf("{\"bench\":\"nop\",\"impl\":\"liburing\",\"params\":{\"T\":%lld,\"K\":%lld},"
           "\"value\":%.1f,\"unit\":\"ops/s\",\"ns_per_op\":%.2f,\"cpu_util\":%.3f}\n",
           tasks, ops, (double)total / secs, (double)(t1 - t0) / (double)total,
           (double)(c1 - c0) / (double)(t1 - t0));
    return 0;
}
