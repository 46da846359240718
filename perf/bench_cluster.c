/* SPDX-License-Identifier: MIT */
/*
 * bench_cluster.c — SIGTERM -> exit of a cluster (DESIGN section 9): E
 * engines, N parked tasks on each.
 *
 *   bench_cluster [--engines E] [--tasks N]
 *
 * tr_cluster_run with E engines (default 4) and the default signal
 * handling (engine 0 owns SIGINT and SIGTERM; report_fd -1). Each main
 * spawns N (default 25,000) tasks parked in tr_sleep_ns(3600 s); once all
 * E * N have started, engine 0's main sends kill(getpid(), SIGTERM). value
 * = ms from the kill() to tr_cluster_run returning: the signal read and
 * told to every engine, every task cancelled and ended, the lockstep's
 * phases, the report skipped, every engine destroyed. ns_per_task =
 * value / (E * N). Every parked task must end with -ECANCELED, and the
 * cluster must return 0.
 *
 * Compared with: itself at E = 1 in the same run (perf/run.py): the time
 * per task of a cluster should stay within 1.5x of one engine's, whatever
 * E is (more engines than cores included).
 *
 * One JSON line: {"bench":"cluster","impl":"taskring","params":{"E":..,"N":..},
 *                 "value":<ms>,"unit":"ms","ns_per_task":..}
 */
#include "perf_common.h"

#include <signal.h>
#include <stdatomic.h>

static const char usage[] = "usage: bench_cluster [--engines E] [--tasks N]\n"
                            "  SIGTERM -> exit of E engines with N parked tasks each.\n";

static struct {
    long long e, n;
    _Atomic long long started, cancelled, bad;
    uint64_t t0;
    _Atomic int err;
} R;

static int sleeper(void *arg)
{
    (void)arg;
    atomic_fetch_add_explicit(&R.started, 1, memory_order_relaxed);
    int r = tr_sleep_ns(3600ull * 1000000000ull);
    if (r == -ECANCELED)
        atomic_fetch_add_explicit(&R.cancelled, 1, memory_order_relaxed);
    else
        atomic_fetch_add(&R.bad, 1);
    return r;
}

static int cl_main(void *arg)
{
    (void)arg;
    for (long long i = 0; i < R.n; i++) {
        int err = tr_spawn(NULL, NULL, sleeper, NULL, NULL);
        if (err) {
            atomic_store(&R.err, err);
            return err;
        }
    }
    if (tr_engine_index() == 0) {
        /* Bounded: every engine spawns its N at once. */
        while (atomic_load(&R.started) < R.e * R.n && !atomic_load(&R.err))
            tr_sleep_ns(100000);
        R.t0 = pc_now_ns();
        kill(getpid(), SIGTERM);
    }
    (void)tr_wait_shutdown();
    return 0;
}

int main(int argc, char **argv)
{
    R.e = 4;
    R.n = 25000;
    const struct pc_opt opts[] = {
        {"--engines", &R.e, 1, 4096, NULL, NULL},
        {"--tasks", &R.n, 1, 10000000, NULL, NULL},
    };
    pc_parse(argc, argv, opts, sizeof(opts) / sizeof(opts[0]), usage);
    struct tr_cluster_config cfg;
    tr_cluster_config_init(&cfg);
    cfg.engines = (unsigned)R.e;
    cfg.engine.report_fd = -1;
    int res = tr_cluster_run(cl_main, NULL, &cfg);
    uint64_t t1 = pc_now_ns();
    if (res || atomic_load(&R.err))
        pc_die("tr_cluster_run: %d, spawn: %d", res, atomic_load(&R.err));
    if (atomic_load(&R.cancelled) != R.e * R.n || atomic_load(&R.bad))
        pc_die("%lld of %lld tasks ended with -ECANCELED", atomic_load(&R.cancelled), R.e * R.n);
    double ms = (double)(t1 - R.t0) / 1e6;
    printf("{\"bench\":\"cluster\",\"impl\":\"taskring\",\"params\":{\"E\":%lld,\"N\":%lld},"
           "\"value\":%.3f,\"unit\":\"ms\",\"ns_per_task\":%.1f}\n",
           R.e, R.n, ms, ms * 1e6 / (double)(R.e * R.n));
    return 0;
}
