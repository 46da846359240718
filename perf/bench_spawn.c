/* SPDX-License-Identifier: MIT */
/*
 * bench_spawn.c — a task's whole life: spawn + run + end + join, in tasks
 * per second.
 *
 *   bench_spawn [--tasks N] [--batch B]
 *
 * One parent task (on an engine with TR_CFG_NO_SIGNALS and the default
 * 64 KiB stacks) spawns B children (default 1000) with handles, joins them
 * all, and repeats until N children (default 2,000,000) have lived; the last
 * batch may be smaller. A child returns at once; each returns its index in
 * the batch, and the join must hand back exactly that. B bounds how many
 * children are alive at once (B stacks, B records), as a server's bursts
 * would, and lets the engine recycle stacks and records from its pools:
 * the first batch's stack slabs are mapped inside the measurement, which
 * over N/B batches is noise. The clock runs in the parent, from before its
 * first spawn to after its last join.
 *
 * Extra field detach_tasks_per_s: the same N and B with detached children
 * (tr_spawn with out == NULL) that count themselves done; the parent
 * yields until the batch's count is reached (normally one yield: the
 * children run in the next pass, before the parent). Another engine, the
 * same clock. cpu_util: thread CPU time / wall time over both runs, about
 * 1.0 when the machine left us alone.
 *
 * Output, one JSON line on stdout:
 *   {"bench":"spawn","impl":"taskring","params":{"N":2000000,"B":1000},
 *    "value":<tasks per second>,"unit":"tasks/s","ns_per_task":..,
 *    "detach_tasks_per_s":..}
 *
 * Compared with perf/asyncio_spawn.py (create_task + gather, same N and B).
 * The goal is >= 5 M tasks/s.
 */
#include "taskring.h"
#include "perf_common.h"

static const char usage[] =
    "usage: bench_spawn [--tasks N] [--batch B]\n"
    "  a parent spawns B children, joins them, repeats until N (default N=2000000, B=1000);\n"
    "  prints one JSON line: tasks per second (spawn + run + join).\n";

struct spawn_run {
    long long n, batch;
    bool detach;
    tr_task **handles; /* B handles, allocated before the clock starts */
    uint64_t done;     /* detached children that ran */
    uint64_t t0, t1;
    uint64_t c0, c1;  /* thread CPU time at t0 and t1 */
    uint64_t checked; /* children whose result (or run) was verified */
    int err;          /* first failure, as -errno; -EPROTO: a wrong result */
};

static int child(void *arg)
{
    return (int)(intptr_t)arg;
}

static int child_detached(void *arg)
{
    struct spawn_run *r = arg;
    r->done++;
    return 0;
}

static int fail(struct spawn_run *r, int err)
{
    if (!r->err)
        r->err = err;
    return err;
}

static int parent(void *arg)
{
    struct spawn_run *r = arg;
    r->t0 = pc_now_ns();
    r->c0 = pc_thread_cpu_ns();
    for (long long left = r->n; left > 0;) {
        long long b = left < r->batch ? left : r->batch;
        if (r->detach) {
            uint64_t target = r->done + (uint64_t)b;
            for (long long i = 0; i < b; i++) {
                int err = tr_spawn(NULL, NULL, child_detached, r, NULL);
                if (err)
                    return fail(r, err);
            }
            /* Bounded: every yield lets all runnable children run once. */
            while (r->done < target) {
                int err = tr_yield();
                if (err)
                    return fail(r, err);
            }
            r->checked += (uint64_t)b;
        } else {
            for (long long i = 0; i < b; i++) {
                int err = tr_spawn(NULL, &r->handles[i], child, (void *)(intptr_t)i, NULL);
                if (err)
                    return fail(r, err);
            }
            for (long long i = 0; i < b; i++) {
                int res = -1;
                int err = tr_join(r->handles[i], &res);
                if (err)
                    return fail(r, err);
                if (res != (int)i)
                    return fail(r, -EPROTO);
                r->checked++;
            }
        }
        left -= b;
    }
    r->t1 = pc_now_ns();
    r->c1 = pc_thread_cpu_ns();
    return 0;
}

/* Returns tasks per second; adds the run's wall and CPU ns to *wall, *cpu. */
static double run(long long n, long long batch, bool detach, uint64_t *wall, uint64_t *cpu)
{
    tr_engine *e = pc_engine_new(0);
    int err;
    struct spawn_run r = {.n = n, .batch = batch, .detach = detach};
    r.handles = calloc((size_t)batch, sizeof(*r.handles));
    if (!r.handles)
        pc_die("out of memory");
    err = tr_spawn(e, NULL, parent, &r, NULL);
    if (err)
        pc_die("tr_spawn: %s", strerror(-err));
    err = tr_engine_run(e);
    if (err)
        pc_die("tr_engine_run: %s", strerror(-err));
    if (r.err == -EPROTO)
        pc_die("a joined child returned the wrong result");
    if (r.err)
        pc_die("%s: %s", detach ? "detach run" : "join run", strerror(-r.err));
    struct tr_stats st;
    tr_engine_stats(e, &st);
    /* n children and the parent, all ended well. */
    if (r.checked != (uint64_t)n || st.tasks_ok != (uint64_t)n + 1 || st.tasks_live != 0)
        pc_die("count mismatch: %" PRIu64 " checked, %" PRIu64 " ok, expected %lld", r.checked,
               st.tasks_ok, n + 1);
    err = tr_engine_destroy(e);
    if (err)
        pc_die("tr_engine_destroy: %s", strerror(-err));
    free(r.handles);
    *wall += r.t1 - r.t0;
    *cpu += r.c1 - r.c0;
    return (double)n / ((double)(r.t1 - r.t0) / 1e9);
}

int main(int argc, char **argv)
{
    long long n = 2000000, batch = 1000;
    const struct pc_opt opts[] = {
        {"--tasks", &n, 1, 1000000000000LL, NULL, NULL},
        {"--batch", &batch, 1, 10000000, NULL, NULL},
    };
    pc_parse(argc, argv, opts, sizeof(opts) / sizeof(opts[0]), usage);

    uint64_t wall = 0, cpu = 0;
    double joined = run(n, batch, false, &wall, &cpu);
    double detached = run(n, batch, true, &wall, &cpu);
    printf("{\"bench\":\"spawn\",\"impl\":\"taskring\",\"params\":{\"N\":%lld,\"B\":%lld},"
           "\"value\":%.1f,\"unit\":\"tasks/s\",\"ns_per_task\":%.2f,"
           "\"detach_tasks_per_s\":%.1f,\"cpu_util\":%.3f}\n",
           n, batch, joined, 1e9 / joined, detached, (double)cpu / (double)wall);
    return 0;
}
