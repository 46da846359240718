/* SPDX-License-Identifier: MIT */
/*
 * bench_expiry.c — how soon a deadline ends a blocked read: N tasks, each
 * parked in a tr_read on a pipe nobody writes to, inside a scope whose
 * deadline is the same instant D for all (so N expire at once); each
 * notes when its read returned (it must return -ETIMEDOUT). The latency of
 * a task is that time minus D: the wheel's tick (a deadline fires at most
 * 16.4 us late), one loop pass, the per-op ASYNC_CANCEL and the read's own
 * completion, for N of them in one batch.
 *
 *   bench_expiry [--tasks N] [--pipes P]
 *
 * N tasks (default 10000) on P pipes (default min(N, 8192); several reads
 * may park on one pipe, each cancelled by its own user_data).
 *
 * Output, one JSON line on stdout:
 *   {"bench":"expiry","impl":"taskring","params":{"N":..,"P":..},
 *    "value":<max latency ms>,"unit":"ms","p50_ms":..,"p99_ms":..,
 *    "first_ms":..,"cancels":..}
 */
#include "taskring.h"
#include "perf_common.h"

#include <unistd.h>

static const char usage[] =
    "usage: bench_expiry [--tasks N] [--pipes P]\n"
    "  N tasks (default 10000) blocked in reads inside scopes that all\n"
    "  expire at one instant; prints one JSON line: the latest return (ms).\n";

static uint64_t deadline;
static uint64_t *ret_at;
static int (*pipes)[2];
static long long npipes;
static long long bad;

static int reader(void *arg)
{
    long long i = (long long)(intptr_t)arg;
    struct tr_scope s;
    if (tr_scope_enter(&s, deadline, 0) != 0)
        bad++;
    char b[8];
    ssize_t r = tr_read(pipes[i % npipes][0], b, sizeof(b), -1);
    ret_at[i] = tr_now_ns();
    if (r != -ETIMEDOUT || tr_scope_exit(&s) != -ETIMEDOUT)
        bad++;
    return 0;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
    long long n = 10000, p = 0;
    bool p_seen = false;
    const struct pc_opt opts[] = {
        {"--tasks", &n, 1, 1000000, NULL, NULL},
        {"--pipes", &p, 1, 1000000, NULL, &p_seen},
    };
    pc_parse(argc, argv, opts, sizeof(opts) / sizeof(opts[0]), usage);
    npipes = p_seen ? p : (n < 8192 ? n : 8192);
    pc_need_files((uint64_t)npipes * 2 + 64);
    pipes = calloc((size_t)npipes, sizeof(*pipes));
    ret_at = calloc((size_t)n, sizeof(*ret_at));
    if (!pipes || !ret_at)
        pc_die("out of memory");
    for (long long i = 0; i < npipes; i++)
        if (pipe(pipes[i]) != 0)
            pc_die("pipe: %s", strerror(errno));

    tr_engine *e = pc_engine_new(4096);
    /* Far enough for every task to park first (a spawn and a park are
     * well under a microsecond each, a first touch of a stack a few). */
    deadline = tr_now_ns() + 100000000ull + (uint64_t)n * 20000ull;
    for (long long i = 0; i < n; i++) {
        int err = tr_spawn(e, NULL, reader, (void *)(intptr_t)i, NULL);
        if (err)
            pc_die("tr_spawn: %s", strerror(-err));
    }
    int err = tr_engine_run(e);
    if (err)
        pc_die("tr_engine_run: %s", strerror(-err));
    struct tr_stats st;
    tr_engine_stats(e, &st);
    if (bad)
        pc_die("%lld reads or scopes did not end with -ETIMEDOUT", bad);
    err = tr_engine_destroy(e);
    if (err)
        pc_die("tr_engine_destroy: %s", strerror(-err));
    for (long long i = 0; i < n; i++) {
        if (ret_at[i] < deadline)
            pc_die("task %lld returned %.3f ms before its deadline", i,
                   (double)(deadline - ret_at[i]) / 1e6);
        ret_at[i] -= deadline;
    }
    qsort(ret_at, (size_t)n, sizeof(*ret_at), cmp_u64);
    printf("{\"bench\":\"expiry\",\"impl\":\"taskring\",\"params\":{\"N\":%lld,\"P\":%lld},"
           "\"value\":%.3f,\"unit\":\"ms\",\"p50_ms\":%.3f,\"p99_ms\":%.3f,\"first_ms\":%.3f,"
           "\"cancels\":%" PRIu64 ",\"ops\":%" PRIu64 ",\"sq_waits\":%" PRIu64 "}\n",
           n, npipes, (double)ret_at[n - 1] / 1e6, (double)ret_at[n / 2] / 1e6,
           (double)ret_at[(n * 99) / 100] / 1e6, (double)ret_at[0] / 1e6, st.cancels_submitted,
           st.ops_submitted, st.sq_waits);
    return 0;
}
