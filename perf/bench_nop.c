/* SPDX-License-Identifier: MIT */
/*
 * bench_nop.c — the engine's per-op overhead: T tasks, each doing K
 * tr_nop() calls back to back; total NOPs per second.
 *
 *   bench_nop [--tasks T] [--ops K]
 *
 * T (default 16) tasks on one engine (TR_CFG_NO_SIGNALS; sq_entries = the
 * next power of two >= T, at least 64, so that one pass's T SQEs always fit
 * and go to the kernel in one io_uring_enter). Each task calls tr_nop() K
 * times (default 4,000,000 / T, at least 1: about the same total work at
 * every T); every call must return 0. The clock runs from the first spawn
 * to tr_engine_run returning, so it includes spawning and ending the T
 * tasks (negligible against T x K ops).
 *
 * Output, one JSON line on stdout:
 *   {"bench":"nop","impl":"taskring","params":{"T":16,"K":250000},
 *    "value":<NOPs per second>,"unit":"ops/s","ns_per_op":..,"enters_per_op":..,
 *    "cpu_util":..}
 * enters_per_op (io_uring_enter calls per NOP, from tr_engine_stats) shows
 * the batching: about 1/T when every pass submits all T tasks' NOPs at once.
 * cpu_util (thread CPU time / wall time) near 1.0 says the run was not
 * preempted; lower means the machine was busy and the figure is suspect.
 *
 * Compared with baseline_nop (same --tasks/--ops meaning): a bare liburing
 * loop keeping T NOPs in flight, one submit_and_wait per T, on a ring set
 * up like taskring's. The goal is >= 0.9x the baseline at T >= 16.
 */
#include "taskring.h"
#include "perf_common.h"

static const char usage[] = "usage: bench_nop [--tasks T] [--ops K]\n"
                            "  T tasks (default 16) each do K tr_nop() calls (default 4000000/T);\n"
                            "  prints one JSON line: total NOPs per second.\n";

static long long ops_per_task;
static uint64_t nops_ok; /* NOPs that returned 0, over all tasks */
static int first_err;    /* the first unexpected tr_nop result */

static int nop_task(void *arg)
{
    (void)arg;
    for (long long i = 0; i < ops_per_task; i++) {
        int r = tr_nop();
        if (r != 0) {
            if (!first_err)
                first_err = r < 0 ? r : -EPROTO;
            return r < 0 ? r : -EPROTO;
        }
        nops_ok++;
    }
    return 0;
}

int main(int argc, char **argv)
{
    long long tasks, ops;
    pc_parse_nop(argc, argv, usage, &tasks, &ops);
    ops_per_task = ops;

    tr_engine *e = pc_engine_new(pc_pow2_at_least((unsigned)tasks < 64 ? 64 : (unsigned)tasks));
    int err;

    uint64_t t0 = pc_now_ns(), c0 = pc_thread_cpu_ns();
    for (long long i = 0; i < tasks; i++) {
        err = tr_spawn(e, NULL, nop_task, NULL, NULL);
        if (err)
            pc_die("tr_spawn: %s", strerror(-err));
    }
    err = tr_engine_run(e);
    uint64_t t1 = pc_now_ns(), c1 = pc_thread_cpu_ns();
    if (err)
        pc_die("tr_engine_run: %s", strerror(-err));

    struct tr_stats st;
    tr_engine_stats(e, &st);
    uint64_t total = (uint64_t)tasks * (uint64_t)ops;
    if (first_err)
        pc_die("tr_nop returned %d (%s)", first_err, strerror(-first_err));
    if (nops_ok != total || st.tasks_ok != (uint64_t)tasks || st.ops_completed != total)
        pc_die("count mismatch: %" PRIu64 " NOPs ok, %" PRIu64 " completed, %" PRIu64
               " tasks ok; expected %" PRIu64 " and %lld",
               nops_ok, st.ops_completed, st.tasks_ok, total, tasks);
    err = tr_engine_destroy(e);
    if (err)
        pc_die("tr_engine_destroy: %s", strerror(-err));

    double secs = (double)(t1 - t0) / 1e9;
    printf("{\"bench\":\"nop\",\"impl\":\"taskring\",\"params\":{\"T\":%lld,\"K\":%lld},"
           "\"value\":%.1f,\"unit\":\"ops/s\",\"ns_per_op\":%.2f,\"enters_per_op\":%.4f,"
           "\"cpu_util\":%.3f}\n",
           tasks, ops, (double)total / secs, (double)(t1 - t0) / (double)total,
           (double)st.submit_calls / (double)total, (double)(c1 - c0) / (double)(t1 - t0));
    return 0;
}
