/* SPDX-License-Identifier: MIT */
/*
 * bench_scope.c — what a deadline costs on the hot path: T tasks doing
 * NOPs, each NOP inside its own cancel scope with a deadline 1 s ahead
 * (tr_scope_enter + tr_now_ns + arming a wheel timer + tr_scope_exit +
 * disarming it), against the same NOPs without scopes (--plain).
 *
 *   bench_scope [--tasks T] [--ops K] [--plain 0|1] [--fixed 0|1] [--pass 1]
 *
 * --pass 1: the deadline is tr_deadline_after(1 s), the engine's pass clock
 * (one precise read a pass, shared by the pass's tasks), as a server sets a
 * per-request deadline; the default reads tr_now_ns() for every NOP.
 *
 * --fixed 1: each task computes one deadline (an hour ahead) at its start
 * and enters every scope with it: the scope machinery without the
 * tr_now_ns() per NOP (CLOCK_MONOTONIC measured 34 ns a read on this VM, a
 * fifth of a NOP round trip), to tell the two costs apart.
 *
 * T tasks (default 64) each do K NOPs (default 4,000,000 / T). Every NOP
 * must return 0 and every scope must exit with 0 (nothing is cut short:
 * the deadline is a second away). perf/run.py alternates the two modes in
 * one run; the goal is >= 0.95x the plain rate (issue 12).
 *
 * --alternate R: in one process, R rounds of a plain segment (T tasks x K
 * NOPs on a fresh engine) beside a segment in the chosen mode, swapping
 * which goes first each round; the rates are from the sums of the
 * segments' times. Segments a few milliseconds apart see the same machine,
 * where separate processes seconds apart see a shared VM's slow spells
 * unevenly (single runs moved +-10 %; perf/run.py uses this).
 *
 * Output, one JSON line on stdout:
 *   {"bench":"scope","impl":"scope"|"scope-fixed"|"plain","params":{"T":..,"K":..},
 *    "value":<NOPs per second>,"unit":"ops/s","ns_per_op":..,"cpu_util":..}
 */
#include "taskring.h"
#include "perf_common.h"

static const char usage[] =
    "usage: bench_scope [--tasks T] [--ops K] [--plain 0|1] [--fixed 0|1] [--pass 0|1]\n"
    "                   [--alternate R]\n"
    "  T tasks (default 64) each do K NOPs (default 4000000/T), each inside its own\n"
    "  scope with a deadline 1 s ahead (--plain 1: no scopes; --fixed 1: each task's\n"
    "  scopes share one deadline an hour ahead, read once: no clock read per NOP;\n"
    "  --pass 1: the deadline is tr_deadline_after(1 s), the engine's pass clock);\n"
    "  --alternate R: R rounds of a plain segment beside one in the mode, in one\n"
    "  process (the plain rate and the ratio too); prints one JSON line: total NOPs\n"
    "  per second.\n";

static long long ops_per_task;
static long long plain;
static long long fixed; /* --fixed 1: one deadline per task, not a clock read per NOP */
static long long pass;  /* --pass 1: tr_deadline_after, not tr_now_ns */
static uint64_t nops_ok;
static int first_err;

static int fail(int r)
{
    if (!first_err)
        first_err = r < 0 ? r : -EPROTO;
    return first_err;
}

static int nop_task(void *arg)
{
    (void)arg;
    uint64_t fixed_deadline = tr_now_ns() + 3600ull * 1000000000ull;
    for (long long i = 0; i < ops_per_task; i++) {
        if (plain) {
            int r = tr_nop();
            if (r != 0)
                return fail(r);
        } else {
            struct tr_scope s;
            uint64_t d = fixed  ? fixed_deadline
                         : pass ? tr_deadline_after(1000000000ull)
                                : tr_now_ns() + 1000000000ull;
            int r = tr_scope_enter(&s, d, 0);
            if (r != 0)
                return fail(r);
            r = tr_nop();
            int x = tr_scope_exit(&s);
            if (r != 0 || x != 0)
                return fail(r ? r : x);
        }
        nops_ok++;
    }
    return 0;
}

/* One segment: T tasks each doing ops_per_task NOPs in the current mode
 * (plain or not), on a fresh engine; returns the run's wall time (ns), and
 * its CPU time in *cpu. Dies on any error or count mismatch. */
static uint64_t segment(long long tasks, uint64_t *cpu)
{
    nops_ok = 0;
    tr_engine *e = pc_engine_new(pc_pow2_at_least((unsigned)tasks < 64 ? 64 : (unsigned)tasks));
    uint64_t t0 = pc_now_ns(), c0 = pc_thread_cpu_ns();
    for (long long i = 0; i < tasks; i++) {
        int err = tr_spawn(e, NULL, nop_task, NULL, NULL);
        if (err)
            pc_die("tr_spawn: %s", strerror(-err));
    }
    int err = tr_engine_run(e);
    uint64_t t1 = pc_now_ns(), c1 = pc_thread_cpu_ns();
    if (err)
        pc_die("tr_engine_run: %s", strerror(-err));
    struct tr_stats st;
    tr_engine_stats(e, &st);
    uint64_t total = (uint64_t)tasks * (uint64_t)ops_per_task;
    if (first_err)
        pc_die("a NOP or a scope returned %d (%s)", first_err, strerror(-first_err));
    if (nops_ok != total || st.ops_completed != total || st.timers_pending != 0 ||
        st.deadline_cuts != 0)
        pc_die("count mismatch: %" PRIu64 " NOPs ok, %" PRIu64 " completed, %" PRIu64
               " timers left, %" PRIu64 " cut; expected %" PRIu64,
               nops_ok, st.ops_completed, st.timers_pending, st.deadline_cuts, total);
    err = tr_engine_destroy(e);
    if (err)
        pc_die("tr_engine_destroy: %s", strerror(-err));
    *cpu = c1 - c0;
    return t1 - t0;
}

static const char *mode_name(void)
{
    return plain ? "plain" : fixed ? "scope-fixed" : pass ? "scope-pass" : "scope";
}

int main(int argc, char **argv)
{
    long long tasks = 64, ops = 0, alternate = 0;
    bool ops_seen = false;
    const struct pc_opt opts[] = {
        {"--tasks", &tasks, 1, 32768, NULL, NULL},
        {"--ops", &ops, 1, 1000000000000LL, NULL, &ops_seen},
        {"--plain", &plain, 0, 1, NULL, NULL},
        {"--fixed", &fixed, 0, 1, NULL, NULL},
        {"--pass", &pass, 0, 1, NULL, NULL},
        {"--alternate", &alternate, 0, 100000, NULL, NULL},
    };
    pc_parse(argc, argv, opts, sizeof(opts) / sizeof(opts[0]), usage);
    if (!ops_seen)
        ops = 4000000 / tasks > 0 ? 4000000 / tasks : 1;
    ops_per_task = ops;
    uint64_t total = (uint64_t)tasks * (uint64_t)ops;

    if (alternate == 0) {
        uint64_t cpu, ns = segment(tasks, &cpu);
        printf("{\"bench\":\"scope\",\"impl\":\"%s\",\"params\":{\"T\":%lld,\"K\":%lld},"
               "\"value\":%.1f,\"unit\":\"ops/s\",\"ns_per_op\":%.2f,\"cpu_util\":%.3f}\n",
               mode_name(), tasks, ops, (double)total * 1e9 / (double)ns,
               (double)ns / (double)total, (double)cpu / (double)ns);
        return 0;
    }
    /* --alternate R: R rounds of a plain segment and a segment in the
     * chosen mode, which goes first swapped every round; the sums of their
     * times give both rates and the ratio. Short segments side by side
     * see the same machine: a slow spell of a shared VM slows both. */
    long long scoped_plain = plain;
    uint64_t ns_plain = 0, ns_mode = 0, cpu_all = 0, warm_cpu;
    /* One untimed segment of each first: the first segment of a process
     * pays its cold start (measured +0.9 ms on ~14), which would fall on
     * whichever mode went first. */
    for (int k = 0; k < 2; k++) {
        plain = k == 0 ? 1 : scoped_plain;
        (void)segment(tasks, &warm_cpu);
    }
    for (long long r = 0; r < alternate; r++) {
        for (int k = 0; k < 2; k++) {
            bool as_plain = (k == 0) == (r % 2 == 0);
            plain = as_plain ? 1 : scoped_plain;
            uint64_t cpu, ns = segment(tasks, &cpu);
            *(as_plain ? &ns_plain : &ns_mode) += ns;
            cpu_all += cpu;
        }
    }
    plain = scoped_plain;
    double n = (double)total * (double)alternate;
    printf(
        "{\"bench\":\"scope\",\"impl\":\"%s\",\"params\":{\"T\":%lld,\"K\":%lld,\"rounds\":%lld},"
        "\"value\":%.1f,\"unit\":\"ops/s\",\"plain_value\":%.1f,\"ratio\":%.4f,"
        "\"ns_per_op\":%.2f,\"plain_ns_per_op\":%.2f,\"cpu_util\":%.3f}\n",
        mode_name(), tasks, ops, alternate, n * 1e9 / (double)ns_mode, n * 1e9 / (double)ns_plain,
        (double)ns_plain / (double)ns_mode, (double)ns_mode / n, (double)ns_plain / n,
        (double)cpu_all / (double)(ns_plain + ns_mode));
    return 0;
}
