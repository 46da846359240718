/* SPDX-License-Identifier: MIT */
/*
 * baseline_cancel.c — bare liburing cancelling N parked pipe reads one by
 * one: the anchor of `bench_cancel --mode pipe`.
 *
 *   baseline_cancel [--tasks N] [--pipes P] [--sq S]
 *
 * Setup (not timed): P pipes (default P = N; read i goes to pipe i % P,
 * nothing is ever written, the write ends stay open), RLIMIT_NOFILE raised
 * to fit them (failing with the limits in the message when the hard limit
 * is too low: see bench_cancel), a ring set up as taskring's (perf_common.h:
 * SINGLE_ISSUER | DEFER_TASKRUN | SUBMIT_ALL, S SQ entries, default 256 as
 * taskring's default, taskring's CQ size for S, registered ring fd). N reads
 * (user_data i + 1, one shared 64-byte buffer: nothing is ever written into
 * it) are submitted in SQ-sized batches; then one more enter, and the CQ
 * must be empty: every read is parked in the kernel.
 *
 * Timed: N IORING_OP_ASYNC_CANCELs, one per read, keyed by its user_data
 * (io_uring_prep_cancel64), prepared in order; whenever the SQ is full they
 * are handed over with io_uring_submit_and_get_events and the CQ is reaped,
 * so the CQ never overflows; then submit_and_wait until all 2N CQEs are
 * reaped: every read's (-ECANCELED, or -EINTR) and every cancel's (0;
 * -ENOENT and -EALREADY are tolerated and counted, as taskring does). That
 * is the least work the kernel interface allows for "cancel them all and
 * know they have ended", which taskring's tr_cancel_all must also do.
 *
 * Output, one JSON line on stdout:
 *   {"bench":"cancel","impl":"liburing","params":{"mode":"pipe","N":..,"P":..,"S":..},
 *    "value":<ms>,"unit":"ms","ns_per_task":..,"cancel_enoent":..,"cancel_ealready":..,
 *    "cpu_util":..}
 * cpu_util: thread CPU time / wall time of the timed part, about 1.0 when
 * the machine left us alone.
 */
#include "perf_common.h"

#include <fcntl.h>

#define CANCEL_TAG (1ull << 63) /* user_data of a cancel: TAG | target's */

static const char usage[] =
    "usage: baseline_cancel [--tasks N] [--pipes P] [--sq S]\n"
    "  N pipe reads (default 100000) on P pipes (default N), cancelled one by one;\n"
    "  prints one JSON line: ms until every read and cancel completed. S: SQ size (256).\n";

struct state {
    struct io_uring ring;
    long long n;
    uint8_t *target_done; /* per read: its CQE arrived (a second one is an error) */
    uint64_t targets, cancels, enoent, ealready;
};

static void reap(struct state *s)
{
    unsigned head, seen = 0;
    struct io_uring_cqe *cqe;
    io_uring_for_each_cqe(&s->ring, head, cqe)
    {
        uint64_t ud = cqe->user_data;
        seen++;
        if (ud & CANCEL_TAG) {
            if (cqe->res == -ENOENT)
                s->enoent++;
            else if (cqe->res == -EALREADY)
                s->ealready++;
            else if (cqe->res != 0)
                pc_die("cancel of read %llu: %d (%s)", (unsigned long long)(ud & ~CANCEL_TAG),
                       cqe->res, strerror(-cqe->res));
            s->cancels++;
            continue;
        }
        if (ud == 0 || ud > (uint64_t)s->n || s->target_done[ud - 1])
            pc_die("unexpected CQE user_data %llu res %d", (unsigned long long)ud, cqe->res);
        if (cqe->res != -ECANCELED && cqe->res != -EINTR)
            pc_die("read %llu ended with %d (%s), expected -ECANCELED", (unsigned long long)ud,
                   cqe->res, cqe->res < 0 ? strerror(-cqe->res) : "data");
        s->target_done[ud - 1] = 1;
        s->targets++;
    }
    io_uring_cq_advance(&s->ring, seen);
}

/* An SQE; when the SQ is full, hands it over (reaping what is ready). */
static struct io_uring_sqe *get_sqe(struct state *s)
{
    /* Two tries suffice: after a submit of a SUBMIT_ALL ring the SQ is
     * empty (or the submit failed, which is fatal). */
    for (int i = 0; i < 2; i++) {
        struct io_uring_sqe *sqe = io_uring_get_sqe(&s->ring);
        if (sqe)
            return sqe;
        int ret = io_uring_submit_and_get_events(&s->ring);
        if (ret < 0)
            pc_die("io_uring_submit_and_get_events: %s", strerror(-ret));
        reap(s);
    }
    pc_die("the SQ stays full");
}

int main(int argc, char **argv)
{
    long long n = 100000, npipes = 0, sq = 256;
    bool pipes_seen = false;
    const struct pc_opt opts[] = {
        {"--tasks", &n, 1, 10000000, NULL, NULL},
        {"--pipes", &npipes, 1, 10000000, NULL, &pipes_seen},
        {"--sq", &sq, 1, 32768, NULL, NULL},
    };
    pc_parse(argc, argv, opts, sizeof(opts) / sizeof(opts[0]), usage);
    long long p = pipes_seen ? (npipes < n ? npipes : n) : n;

    struct state s = {.n = n};
    pc_need_files((uint64_t)p * 2 + 64);
    int *rfds = calloc((size_t)p, sizeof(*rfds));
    s.target_done = calloc((size_t)n, 1);
    if (!rfds || !s.target_done)
        pc_die("out of memory");
    for (long long i = 0; i < p; i++) {
        int fds[2];
        if (pipe2(fds, O_CLOEXEC) != 0)
            pc_die("pipe2 (pipe %lld of %lld): %s", i, p, strerror(errno));
        rfds[i] = fds[0];
    }
    pc_ring_init(&s.ring, (unsigned)sq, pc_taskring_cq_entries((unsigned)sq));

    static char buf[64];
    for (long long i = 0; i < n; i++) {
        struct io_uring_sqe *sqe = get_sqe(&s);
        io_uring_prep_read(sqe, rfds[i % p], buf, sizeof(buf), (uint64_t)-1);
        sqe->user_data = (uint64_t)i + 1;
    }
    int ret = io_uring_submit_and_get_events(&s.ring);
    if (ret < 0)
        pc_die("io_uring_submit_and_get_events: %s", strerror(-ret));
    if (io_uring_cq_ready(&s.ring) != 0 || s.targets != 0)
        pc_die("a read completed before any cancel");

    uint64_t t0 = pc_now_ns(), c0 = pc_thread_cpu_ns();
    for (long long i = 0; i < n; i++) {
        struct io_uring_sqe *sqe = get_sqe(&s);
        io_uring_prep_cancel64(sqe, (uint64_t)i + 1, 0);
        sqe->user_data = CANCEL_TAG | ((uint64_t)i + 1);
    }
    /* Bounded: each wait returns at least one of the 2N CQEs still owed. */
    while (s.targets < (uint64_t)n || s.cancels < (uint64_t)n) {
        ret = io_uring_submit_and_wait(&s.ring, 1);
        if (ret < 0 && ret != -EINTR)
            pc_die("io_uring_submit_and_wait: %s", strerror(-ret));
        reap(&s);
    }
    uint64_t t1 = pc_now_ns(), c1 = pc_thread_cpu_ns();

    io_uring_queue_exit(&s.ring);
    printf("{\"bench\":\"cancel\",\"impl\":\"liburing\",\"params\":{\"mode\":\"pipe\",\"N\":%lld,"
           "\"P\":%lld,\"S\":%lld},\"value\":%.3f,\"unit\":\"ms\",\"ns_per_task\":%.1f,"
           "\"cancel_enoent\":%" PRIu64 ",\"cancel_ealready\":%" PRIu64 ",\"cpu_util\":%.3f}\n",
           n, p, sq, (double)(t1 - t0) / 1e6, (double)(t1 - t0) / (double)n, s.enoent, s.ealready,
           (double)(c1 - c0) / (double)(t1 - t0));
    return 0;
}
