/* SPDX-License-Identifier: MIT */
/*
 * bench_cancel.c — how long cancelling N parked tasks takes, until every
 * one of them has ended; and what a parked task costs in memory.
 *
 *   bench_cancel --mode sleep   [--tasks N] [--sq S] [--rounds R]
 *   bench_cancel --mode pipe    [--tasks N] [--pipes P] [--sq S] [--rounds R]
 *   bench_cancel --mode sigterm [--tasks N] [--sq S]
 *
 * N defaults to 100,000; S (the engine's sq_entries) to taskring's default,
 * 256. Every parked task must come back with -ECANCELED and end with it;
 * any other result, or a count that does not add up, exits 1.
 *
 * sleep: a controller task spawns N detached tasks that each park in
 *   tr_sleep_ns(3600 s) (an engine timer: no ring op), yields until all N
 *   have started (each yield lets every runnable task run once), then
 *   calls tr_cancel_all(NULL, 0, TR_CANCEL_WAIT), which returns when all N
 *   have ended. value = the time that call took, in ms.
 * pipe: the same, but task i parks in tr_read on the read end of pipe
 *   i % P (P defaults to N: each task its own pipe; nothing is ever
 *   written). The controller yields once more after all N started, so the
 *   last pass's SQEs are in the kernel before the clock starts; then each
 *   cancel is an IORING_OP_ASYNC_CANCEL and the task ends when its read's
 *   own CQE arrives. The 2P pipe fds need RLIMIT_NOFILE raised; when the
 *   hard limit is too low (raising it takes CAP_SYS_RESOURCE) this fails
 *   with the limits in the message: pass a smaller --pipes to let several
 *   tasks park on one pipe (a cancel still targets one read; the pipe's
 *   wait queue is only longer).
 *   Both modes also report (extra fields):
 *     enters, cq_overflows  io_uring_enter calls made, and completions the
 *                         kernel dropped for a full CQ (stats.cq_overflows;
 *                         0 unless NODROP's overflow list ran out of
 *                         memory), during the measured part (from
 *                         tr_engine_stats): how the cancel storm was fed;
 *     ns_per_task         value / N, in ns;
 *     rss_per_task_bytes  (RSS with all N parked - RSS just before the
 *                         first spawn) / N, from /proc/self/statm: the
 *                         task's stack pages, its record, its share of
 *                         the timer heap or op slots, malloc overhead.
 * sigterm: tr_run with the default signal handling (SIGINT and SIGTERM
 *   read through a signalfd on the ring; report_fd -1). The main task
 *   spawns N sleepers, yields until all started, sends kill(getpid(),
 *   SIGTERM) and parks in tr_wait_shutdown(), then returns. value = ms from
 *   the kill() to tr_run returning: reading the signal, cancelling all N,
 *   draining, the audit and destroying the engine (unmapping N stacks).
 *
 * --rounds R (sleep, pipe; default 1): R runs on fresh engines in one
 * process; value is their median, min_ms the least, rss_per_task_bytes
 * the first run's. A run of 1k sleepers takes ~70 us, which a single
 * process measures with the VM's noise (first touches, a preempted
 * slice): the median of many is a figure two builds can be compared by.
 *
 * Output, one JSON line on stdout, e.g.
 *   {"bench":"cancel","impl":"taskring","params":{"mode":"sleep","N":100000},
 *    "value":<ms>,"unit":"ms","ns_per_task":..,"rss_per_task_bytes":..}
 * (pipe mode adds "P" to params, every mode adds "S"; every mode adds
 * cpu_util, thread CPU time / wall time of the measured part: about 1.0
 * when the machine left us alone.)
 *
 * Compared with: sleep and sigterm against perf/asyncio_cancel.py (N tasks
 * in asyncio.sleep, cancelled and gathered; asyncio.run ended by SIGTERM);
 * pipe against perf/baseline_cancel.c (bare liburing: N pipe reads
 * cancelled one by one by user_data). Goals: 100k sleepers <= 50 ms;
 * pipe <= 1.2x the baseline; RSS per parked task <= 4.5 KiB.
 */
#include "taskring.h"
#include "perf_common.h"

#include <fcntl.h>
#include <signal.h>

#define SLEEP_NS (3600ull * 1000000000ull)

static const char usage[] =
    "usage: bench_cancel --mode sleep|pipe|sigterm [--tasks N] [--pipes P] [--sq S] [--rounds R]\n"
    "  N parked tasks (default 100000) are cancelled; prints one JSON line: ms until all ended.\n"
    "  sleep: tasks in tr_sleep_ns; pipe: tasks in tr_read on pipe i % P (default P = N);\n"
    "  sigterm: tr_run with N sleepers, ended by kill(getpid(), SIGTERM).\n"
    "  S: the engine's sq_entries (default 256).\n";

enum mode { MODE_SLEEP, MODE_PIPE, MODE_SIGTERM };

struct cancel_run {
    enum mode mode;
    long long n;
    long long npipes;
    int *rfds;          /* read ends of the pipes (pipe mode) */
    uint64_t started;   /* parked tasks that began */
    uint64_t cancelled; /* parked tasks whose call returned -ECANCELED */
    int bad_result;     /* first other result seen by a parked task (0: none) */
    bool bad;
    uint64_t rss0, rss1;
    uint64_t t0, t1;
    uint64_t c0, c1;          /* thread CPU time at t0 and t1 */
    int ca_count;             /* tr_cancel_all's return */
    struct tr_stats st0, st1; /* the engine's counters around the cancel */
    int ctl_err;              /* the controller's failure, -errno */
};

static struct cancel_run R;

static int parked(void *arg)
{
    long long i = (long long)(intptr_t)arg;
    int r;
    R.started++;
    if (R.mode == MODE_PIPE) {
        char buf[64];
        r = (int)tr_read(R.rfds[i % R.npipes], buf, sizeof(buf), -1);
    } else {
        r = tr_sleep_ns(SLEEP_NS);
    }
    if (r == -ECANCELED) {
        R.cancelled++;
    } else if (!R.bad) {
        R.bad = true;
        R.bad_result = r;
    }
    return r == -ECANCELED ? r : -EPROTO;
}

static int spawn_parked(void)
{
    for (long long i = 0; i < R.n; i++) {
        int err = tr_spawn(NULL, NULL, parked, (void *)(intptr_t)i, NULL);
        if (err)
            return err;
    }
    /* Bounded: each yield runs every task queued before it once, so after
     * the first yield all N have started unless one failed to. */
    for (int round = 0; R.started < (uint64_t)R.n; round++) {
        if (round > 2)
            return -EPROTO;
        int err = tr_yield();
        if (err)
            return err;
    }
    return 0;
}

/* sleep and pipe modes: the controller. */
static int controller(void *arg)
{
    (void)arg;
    R.rss0 = pc_rss_bytes();
    int err = spawn_parked();
    if (err)
        return R.ctl_err = err;
    if (R.mode == MODE_PIPE) {
        /* We ran after the last reader in this pass, so its SQE may still
         * sit in the SQ: one more pass hands everything to the kernel. */
        err = tr_yield();
        if (err)
            return R.ctl_err = err;
    }
    R.rss1 = pc_rss_bytes();
    tr_engine_stats(tr_self_engine(), &R.st0);
    R.c0 = pc_thread_cpu_ns();
    R.t0 = pc_now_ns();
    int n = tr_cancel_all(NULL, 0, TR_CANCEL_WAIT);
    R.t1 = pc_now_ns();
    R.c1 = pc_thread_cpu_ns();
    tr_engine_stats(tr_self_engine(), &R.st1);
    if (n < 0)
        return R.ctl_err = n;
    R.ca_count = n;
    return 0;
}

/* sigterm mode: tr_run's main task. */
static int sigterm_main(void *arg)
{
    (void)arg;
    int err = spawn_parked();
    if (err)
        return R.ctl_err = err;
    R.c0 = pc_thread_cpu_ns();
    R.t0 = pc_now_ns();
    if (kill(getpid(), SIGTERM) != 0)
        return R.ctl_err = -errno;
    err = tr_wait_shutdown();
    if (err)
        return R.ctl_err = err;
    return 0;
}

static void check_parked(void)
{
    if (R.bad)
        pc_die("a parked task's call returned %d (%s), expected -ECANCELED", R.bad_result,
               R.bad_result < 0 ? strerror(-R.bad_result) : "success");
    if (R.started != (uint64_t)R.n || R.cancelled != (uint64_t)R.n)
        pc_die("%" PRIu64 " tasks started, %" PRIu64 " cancelled; expected %lld", R.started,
               R.cancelled, R.n);
}

static void open_pipes(void)
{
    /* 2 fds per pipe, plus stdio, the ring, the eventfd and some slack. */
    pc_need_files((uint64_t)R.npipes * 2 + 64);
    R.rfds = calloc((size_t)R.npipes, sizeof(*R.rfds));
    if (!R.rfds)
        pc_die("out of memory");
    for (long long i = 0; i < R.npipes; i++) {
        int p[2];
        if (pipe2(p, O_CLOEXEC) != 0)
            pc_die("pipe2 (pipe %lld of %lld): %s", i, R.npipes, strerror(errno));
        /* The write end stays open (never written): a read sees no EOF. */
        R.rfds[i] = p[0];
    }
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static void run_engine(unsigned sq)
{
    tr_engine *e = pc_engine_new(sq);
    int err = tr_spawn(e, NULL, controller, NULL, NULL);
    if (err)
        pc_die("tr_spawn: %s", strerror(-err));
    err = tr_engine_run(e);
    if (err)
        pc_die("tr_engine_run: %s", strerror(-err));
    if (R.ctl_err)
        pc_die("controller: %s", strerror(-R.ctl_err));
    check_parked();
    struct tr_stats st;
    tr_engine_stats(e, &st);
    if (R.ca_count != R.n || st.tasks_cancelled != (uint64_t)R.n || st.tasks_ok != 1 ||
        st.tasks_failed != 0 || st.tasks_live != 0)
        pc_die("tr_cancel_all cancelled %d; stats: %" PRIu64 " cancelled, %" PRIu64 " ok, %" PRIu64
               " failed; expected %lld",
               R.ca_count, st.tasks_cancelled, st.tasks_ok, st.tasks_failed, R.n);
    if (R.mode == MODE_PIPE && st.cancels_submitted != (uint64_t)R.n)
        pc_die("%" PRIu64 " ASYNC_CANCELs submitted, expected %lld", st.cancels_submitted, R.n);
    err = tr_engine_destroy(e);
    if (err)
        pc_die("tr_engine_destroy: %s", strerror(-err));
}

static void run_sigterm(unsigned sq)
{
    struct tr_config cfg;
    tr_config_init(&cfg);
    cfg.sq_entries = sq;
    cfg.report_fd = -1;
    int res = tr_run(sigterm_main, NULL, &cfg);
    R.t1 = pc_now_ns();
    R.c1 = pc_thread_cpu_ns();
    if (R.ctl_err)
        pc_die("main task: %s", strerror(-R.ctl_err));
    if (res != 0)
        pc_die("tr_run returned %d (%s)", res, strerror(-res));
    check_parked();
}

int main(int argc, char **argv)
{
    const char *mode = NULL;
    long long n = 100000, npipes = 0, sq = 256, rounds = 1;
    bool pipes_seen = false;
    const struct pc_opt opts[] = {
        {"--mode", NULL, 0, 0, &mode, NULL},
        {"--tasks", &n, 1, 10000000, NULL, NULL},
        {"--pipes", &npipes, 1, 10000000, NULL, &pipes_seen},
        {"--sq", &sq, 1, 32768, NULL, NULL},
        {"--rounds", &rounds, 1, 100000, NULL, NULL},
    };
    pc_parse(argc, argv, opts, sizeof(opts) / sizeof(opts[0]), usage);
    if (!mode)
        pc_usage(usage);
    if (!strcmp(mode, "sleep"))
        R.mode = MODE_SLEEP;
    else if (!strcmp(mode, "pipe"))
        R.mode = MODE_PIPE;
    else if (!strcmp(mode, "sigterm"))
        R.mode = MODE_SIGTERM;
    else
        pc_usage(usage);
    if (pipes_seen && R.mode != MODE_PIPE) {
        fprintf(stderr, "--pipes is for --mode pipe only\n");
        pc_usage(usage);
    }
    if (rounds != 1 && R.mode == MODE_SIGTERM) {
        fprintf(stderr, "--rounds is for --mode sleep and pipe only\n");
        pc_usage(usage);
    }
    R.n = n;
    R.npipes = pipes_seen ? (npipes < n ? npipes : n) : n;

    if (R.mode == MODE_SIGTERM) {
        run_sigterm((unsigned)sq);
        printf("{\"bench\":\"cancel\",\"impl\":\"taskring\",\"params\":{\"mode\":\"sigterm\","
               "\"N\":%lld,\"S\":%lld},\"value\":%.3f,\"unit\":\"ms\",\"ns_per_task\":%.1f,"
               "\"cpu_util\":%.3f}\n",
               n, sq, (double)(R.t1 - R.t0) / 1e6, (double)(R.t1 - R.t0) / (double)n,
               (double)(R.c1 - R.c0) / (double)(R.t1 - R.t0));
        return 0;
    }
    if (R.mode == MODE_PIPE)
        open_pipes();
    uint64_t *ns = calloc((size_t)rounds, sizeof(*ns));
    if (!ns)
        pc_die("out of memory");
    double rss = 0, cpu = 0;
    struct tr_stats st0 = {0}, st1 = {0};
    for (long long r = 0; r < rounds; r++) {
        R.started = R.cancelled = 0;
        R.ca_count = 0;
        run_engine((unsigned)sq);
        ns[r] = R.t1 - R.t0;
        if (r == 0) {
            rss = ((double)R.rss1 - (double)R.rss0) / (double)n;
            cpu = (double)(R.c1 - R.c0) / (double)(R.t1 - R.t0);
            st0 = R.st0;
            st1 = R.st1;
        }
    }
    qsort(ns, (size_t)rounds, sizeof(*ns), cmp_u64);
    uint64_t med = ns[rounds / 2], least = ns[0];
    free(ns);
    printf("{\"bench\":\"cancel\",\"impl\":\"taskring\",\"params\":{\"mode\":\"%s\",\"N\":%lld",
           mode, n);
    if (R.mode == MODE_PIPE)
        printf(",\"P\":%lld", R.npipes);
    if (rounds > 1)
        printf(",\"R\":%lld", rounds);
    printf(",\"S\":%lld},\"value\":%.3f,\"unit\":\"ms\",\"min_ms\":%.3f,\"ns_per_task\":%.1f,"
           "\"rss_per_task_bytes\":%.1f,\"cpu_util\":%.3f,\"enters\":%" PRIu64
           ",\"cq_overflows\":%" PRIu64 "}\n",
           sq, (double)med / 1e6, (double)least / 1e6, (double)med / (double)n, rss, cpu,
           st1.submit_calls - st0.submit_calls, st1.cq_overflows - st0.cq_overflows);
    return 0;
}
