/* SPDX-License-Identifier: MIT */
/*
 * uv_offload.c — bench_offload's anchor: libuv's uv_queue_work with K
 * requests in flight, each re-queued from its after-work callback until N
 * jobs have run, on libuv's default thread pool (4 threads). The job is
 * offload_work(), as bench_offload's. Built only for the benchmark (Debian's
 * libuv1-dev), never linked into taskring.
 *
 *   uv_offload [--inflight K] [--jobs N]
 *
 * One JSON line: {"bench":"offload","impl":"libuv",...,"value":<jobs/s>}
 */
#include "perf_common.h"
#include "offload_work.h"

#include <uv.h>

static const char usage[] = "usage: uv_offload [--inflight K] [--jobs N]\n";

struct req {
    uv_work_t w;
    unsigned x;
    int result;
};

static struct {
    long long k, n, issued, done;
    uint64_t t1;
    int bad;
} R;

static void work_cb(uv_work_t *w)
{
    struct req *r = (struct req *)w;
    r->result = offload_work(r->x);
}

static void after_cb(uv_work_t *w, int status);

static void issue(uv_loop_t *loop, struct req *r)
{
    r->x = (unsigned)R.issued++;
    if (uv_queue_work(loop, &r->w, work_cb, after_cb) != 0)
        pc_die("uv_queue_work");
}

static void after_cb(uv_work_t *w, int status)
{
    struct req *r = (struct req *)w;
    if (status != 0 || r->result != offload_work(r->x))
        R.bad++;
    if (++R.done == R.n)
        R.t1 = pc_now_ns();
    if (R.issued < R.n)
        issue(w->loop, r);
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
    uv_loop_t *loop = uv_default_loop();
    struct req *reqs = calloc((size_t)R.k, sizeof(*reqs));
    if (!reqs)
        pc_die("out of memory");
    uint64_t t0 = pc_now_ns();
    for (long long i = 0; i < R.k && R.issued < R.n; i++)
        issue(loop, &reqs[i]);
    uv_run(loop, UV_RUN_DEFAULT);
    if (R.bad || R.done != R.n)
        pc_die("%lld of %lld jobs, %d bad", R.done, R.n, R.bad);
    printf("{\"bench\":\"offload\",\"impl\":\"libuv\",\"params\":{\"K\":%lld,\"N\":%lld},"
           "\"value\":%.0f,\"unit\":\"jobs/s\"}\n",
           R.k, R.n, (double)R.n * 1e9 / (double)(R.t1 - t0));
    free(reqs);
    return 0;
}
