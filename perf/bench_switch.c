/* SPDX-License-Identifier: MIT */
/*
 * bench_switch.c — the cost of a context switch between two tasks: ns per
 * tr_yield() that hands the CPU from one task to the other.
 *
 *   bench_switch [--switches N]
 *
 * Two tasks on one engine (TR_CFG_NO_SIGNALS) ping-pong with tr_yield():
 * each does N/2 yields, so there are N in all (default 10,000,000; N must
 * be even). With only the two of them runnable, every tr_yield of one hands
 * the CPU to the other, so we count ONE switch per tr_yield, as libdill's
 * perf/ctxswitch.c does. Inside taskring that switch is two stack switches
 * (task -> scheduler -> other task) plus the scheduler's bookkeeping, and a
 * scheduling pass ends after every second switch (a pass runs the tasks
 * that were runnable when it began): all of that is the cost being
 * measured. Every tr_yield must return 0. The clock starts when the first
 * task begins and stops when the last one finishes its yields, so spawning
 * and the engine's start and end are outside.
 *
 * Extra fields:
 *   self_yield_ns   ns per tr_yield of a task that is alone on its engine
 *                   (it goes round the run queue back to itself: two stack
 *                   switches and one whole scheduling pass per yield), over
 *                   N/4 yields on a second engine;
 *   enters_per_switch  io_uring_enter calls per switch in the ping-pong run
 *                   (from tr_engine_stats): a switch that needs no I/O should
 *                   need no system call, so anything above 0 is overhead;
 *   self_enters_per_yield  the same for the single-task run;
 *   cpu_util        thread CPU time / wall time over both runs: about 1.0
 *                   when the machine left us alone.
 *
 * Output, one JSON line on stdout:
 *   {"bench":"switch","impl":"taskring","params":{"N":10000000},
 *    "value":<ns per switch>,"unit":"ns/switch","self_yield_ns":..,...}
 *
 * Compared with: no anchor program; the goal is <= 10 ns per switch
 * (libdill-class coroutine switches cost a few ns).
 */
#include "taskring.h"
#include "perf_common.h"

static const char usage[] =
    "usage: bench_switch [--switches N]\n"
    "  two tasks ping-pong with tr_yield(), N switches in all (default 10000000, even);\n"
    "  prints one JSON line: ns per switch.\n";

struct run {
    long long yields_per_task;
    int ntasks;   /* tasks taking part */
    int started;  /* tasks that began: the first starts the clock */
    int finished; /* tasks done yielding: the last stops it */
    uint64_t t0, t1;
    uint64_t c0, c1; /* thread CPU time at t0 and t1 */
    uint64_t yields_ok;
    int err; /* first unexpected tr_yield result */
};

static int yielder(void *arg)
{
    struct run *r = arg;
    if (r->started++ == 0) {
        r->t0 = pc_now_ns();
        r->c0 = pc_thread_cpu_ns();
    }
    for (long long i = 0; i < r->yields_per_task; i++) {
        int ret = tr_yield();
        if (ret != 0) {
            if (!r->err)
                r->err = ret;
            return ret;
        }
        r->yields_ok++;
    }
    if (++r->finished == r->ntasks) {
        r->t1 = pc_now_ns();
        r->c1 = pc_thread_cpu_ns();
    }
    return 0;
}

/* Runs ntasks yielders of `yields` yields each on a fresh engine; returns
 * the elapsed ns, the engine's io_uring_enter count and the thread's CPU
 * time over the same span. */
static uint64_t run_yielders(int ntasks, long long yields, uint64_t *enters, uint64_t *cpu)
{
    tr_engine *e = pc_engine_new(0);
    int err;
    struct run r = {.yields_per_task = yields, .ntasks = ntasks};
    for (int i = 0; i < ntasks; i++) {
        err = tr_spawn(e, NULL, yielder, &r, NULL);
        if (err)
            pc_die("tr_spawn: %s", strerror(-err));
    }
    err = tr_engine_run(e);
    if (err)
        pc_die("tr_engine_run: %s", strerror(-err));
    struct tr_stats st;
    tr_engine_stats(e, &st);
    if (r.err)
        pc_die("tr_yield returned %d (%s)", r.err, strerror(-r.err));
    if (r.yields_ok != (uint64_t)ntasks * (uint64_t)yields || r.finished != ntasks ||
        st.tasks_ok != (uint64_t)ntasks)
        pc_die("count mismatch: %" PRIu64 " yields, %d tasks finished", r.yields_ok, r.finished);
    err = tr_engine_destroy(e);
    if (err)
        pc_die("tr_engine_destroy: %s", strerror(-err));
    *enters = st.submit_calls;
    *cpu = r.c1 - r.c0;
    return r.t1 - r.t0;
}

int main(int argc, char **argv)
{
    long long n = 10000000;
    const struct pc_opt opts[] = {
        {"--switches", &n, 4, 1000000000000LL, NULL, NULL},
    };
    pc_parse(argc, argv, opts, sizeof(opts) / sizeof(opts[0]), usage);
    if (n % 2) {
        fprintf(stderr, "--switches must be even (two tasks, N/2 yields each)\n");
        pc_usage(usage);
    }

    uint64_t enters2, enters1, cpu2, cpu1;
    uint64_t ns2 = run_yielders(2, n / 2, &enters2, &cpu2);
    long long self_n = n / 4;
    uint64_t ns1 = run_yielders(1, self_n, &enters1, &cpu1);

    printf("{\"bench\":\"switch\",\"impl\":\"taskring\",\"params\":{\"N\":%lld},"
           "\"value\":%.2f,\"unit\":\"ns/switch\",\"self_yield_ns\":%.2f,"
           "\"enters_per_switch\":%.4f,\"self_enters_per_yield\":%.4f,\"cpu_util\":%.3f}\n",
           n, (double)ns2 / (double)n, (double)ns1 / (double)self_n, (double)enters2 / (double)n,
           (double)enters1 / (double)self_n, (double)(cpu2 + cpu1) / (double)(ns2 + ns1));
    return 0;
}
