/* SPDX-License-Identifier: MIT */
/*
 * bench_offload.c — tr_offload throughput: jobs per second with K in
 * flight.
 *
 *   bench_offload [--inflight K] [--jobs N]
 *
 * K tasks (default 16) on one engine each call tr_offload in a loop until
 * N jobs (default 400,000) have run in all; a job is a short computation
 * (work(), below: ~100 ns). The clock runs from the first task's start to
 * the last job's return. Every job must return its input's checksum.
 *
 * Compared with: perf/uv_offload.c, libuv's uv_queue_work with K in flight
 * and the same job, on libuv's default pool (4 threads, as ours).
 *
 * One JSON line: {"bench":"offload","impl":"taskring","params":{"K":..,"N":..},
 *                 "value":<jobs/s>,"unit":"jobs/s"}
 */
#include "perf_common.h"
#include "offload_work.h"

static const char usage[] = "usage: bench_offload [--inflight K] [--jobs N]\n";

static struct {
    long long k, n, issued, done;
    uint64_t t0, t1;
    int err;
} R;

static int job(void *arg)
{
    return offload_work((unsigned)(uintptr_t)arg);
}

static int submitter(void *arg)
{
    (void)arg;
    if (R.t0 == 0)
        R.t0 = pc_now_ns();
    while (R.issued < R.n) {
        unsigned x = (unsigned)R.issued++;
        int r = tr_offload(job, (void *)(uintptr_t)x);
        if (r != offload_work(x)) {
            R.err = r < 0 ? r : -EIO;
            return R.err;
        }
        if (++R.done == R.n)
            R.t1 = pc_now_ns();
    }
    return 0;
}

int main(int argc, char **argv)
{
    R.k = 16;
    R.n = 400000;
    const struct pc_opt opts[] = {
        {"--inflight", &R.k, 1, 4096, NULL, NULL},
        {"--jobs", &R.n, 1, 1000000000LL, NULL, NULL},
    };
    pc_parse(argc, argv, opts, sizeof(opts) / sizeof(opts[0]), usage);
    tr_engine *e = pc_engine_new(0);
    for (long long i = 0; i < R.k; i++) {
        int err = tr_spawn(e, NULL, submitter, NULL, NULL);
        if (err)
            pc_die("tr_spawn: %s", strerror(-err));
    }
    int err = tr_engine_run(e);
    if (err || R.err)
        pc_die("run: %d, job: %d", err, R.err);
    if (R.done != R.n)
        pc_die("%lld of %lld jobs", R.done, R.n);
    printf("{\"bench\":\"offload\",\"impl\":\"taskring\",\"params\":{\"K\":%lld,\"N\":%lld},"
           "\"value\":%.0f,\"unit\":\"jobs/s\"}\n",
           R.k, R.n, (double)R.n * 1e9 / (double)(R.t1 - R.t0));
    if (tr_engine_destroy(e))
        pc_die("tr_engine_destroy");
    return 0;
}
