/* SPDX-License-Identifier: MIT */
/*
 * perf_common.h — small helpers shared by the benchmark programs of perf/
 * (bench_nop, baseline_nop, bench_switch, bench_spawn, bench_cancel,
 * baseline_cancel): the clock, command-line parsing, fatal errors, RSS,
 * RLIMIT_NOFILE, the ring setup of the bare-liburing baselines and the
 * engine of the taskring programs.
 *
 * Everything is static inline: each perf program is one executable built
 * from one .c file (perf/CMakeLists.txt), so there is no library to link.
 *
 * Conventions of every perf program:
 *   - parameters are "--name value" pairs; bad arguments print the usage
 *     on stderr and exit 2;
 *   - exactly one JSON line on stdout, printed only after every result of
 *     the run was checked; any error prints a message on stderr and exits 1
 *     (a broken run must never produce a figure);
 *   - the clock is CLOCK_MONOTONIC, read around the measured part only;
 *     cpu_util (see pc_thread_cpu_ns) says whether the run was disturbed.
 */
#ifndef PERF_COMMON_H
#define PERF_COMMON_H

#include "taskring.h"

#include <errno.h>
#include <inttypes.h>
#include <liburing.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

static inline uint64_t pc_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* CPU time of the calling thread. Next to the wall clock it shows whether a
 * run was preempted (the machine was busy): each program reports
 * cpu_util = thread CPU time / wall time of its measured part, about 1.0
 * for an undisturbed run (its work is all done on its own thread). */
static inline uint64_t pc_thread_cpu_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* A failed check: say what, exit 1. Never returns, so no figure follows. */
__attribute__((noreturn, format(printf, 1, 2))) static inline void pc_die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("error: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(1);
}

/* ---- command line ---------------------------------------------------------- */

/* One "--name value" option. Exactly one of num / str is set. */
struct pc_opt {
    const char *name; /* with the dashes: "--tasks" */
    long long *num;   /* integer option, checked against [min, max] */
    long long min, max;
    const char **str; /* string option (e.g. --mode), checked by the caller */
    bool *seen;       /* optional: set when the option was given */
};

__attribute__((noreturn)) static inline void pc_usage(const char *usage)
{
    fputs(usage, stderr);
    exit(2);
}

/* Parses argv against opts; on anything unexpected prints usage and exits 2.
 * Values are plain decimal integers (no suffixes): a typo must not turn
 * into a different benchmark. */
static inline void pc_parse(int argc, char **argv, const struct pc_opt *opts, size_t nopts,
                            const char *usage)
{
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h"))
            pc_usage(usage);
        const struct pc_opt *o = NULL;
        for (size_t j = 0; j < nopts; j++)
            if (!strcmp(argv[i], opts[j].name))
                o = &opts[j];
        if (!o) {
            fprintf(stderr, "unknown option '%s'\n", argv[i]);
            pc_usage(usage);
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "option %s needs a value\n", o->name);
            pc_usage(usage);
        }
        const char *v = argv[++i];
        if (o->seen)
            *o->seen = true;
        if (o->str) {
            *o->str = v;
            continue;
        }
        char *end;
        errno = 0;
        long long x = strtoll(v, &end, 10);
        if (errno || end == v || *end || x < o->min || x > o->max) {
            fprintf(stderr, "bad value '%s' for %s (an integer in [%lld, %lld])\n", v, o->name,
                    o->min, o->max);
            pc_usage(usage);
        }
        *o->num = x;
    }
}

/* The command line of bench_nop and baseline_nop, one parser so the pair
 * cannot drift apart: --tasks T (default 16) --ops K (default 4,000,000/T). */
static inline void pc_parse_nop(int argc, char **argv, const char *usage, long long *tasks,
                                long long *ops)
{
    bool ops_seen = false;
    *tasks = 16;
    *ops = 0;
    const struct pc_opt opts[] = {
        {"--tasks", tasks, 1, 32768, NULL, NULL},
        {"--ops", ops, 1, 1000000000000LL, NULL, &ops_seen},
    };
    pc_parse(argc, argv, opts, sizeof(opts) / sizeof(opts[0]), usage);
    if (!ops_seen)
        *ops = 4000000 / *tasks > 0 ? 4000000 / *tasks : 1;
}

/* ---- process resources ------------------------------------------------------ */

/* Resident set size in bytes (the second field of /proc/self/statm, in
 * pages): anonymous and file pages this process has mapped in. */
static inline uint64_t pc_rss_bytes(void)
{
    FILE *f = fopen("/proc/self/statm", "re");
    unsigned long long size = 0, resident = 0;
    if (!f)
        pc_die("cannot open /proc/self/statm: %s", strerror(errno));
    int n = fscanf(f, "%llu %llu", &size, &resident);
    fclose(f);
    if (n != 2)
        pc_die("cannot parse /proc/self/statm");
    return (uint64_t)resident * (uint64_t)sysconf(_SC_PAGESIZE);
}

/* Makes room for `need` open files: raises the soft RLIMIT_NOFILE, and the
 * hard one if it must (which takes CAP_SYS_RESOURCE). Dies with the limits
 * in the message when that is impossible, so the user knows what to do. */
static inline void pc_need_files(uint64_t need)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        pc_die("getrlimit(RLIMIT_NOFILE): %s", strerror(errno));
    if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur >= need)
        return;
    struct rlimit want = rl;
    want.rlim_cur = need;
    if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < need)
        want.rlim_max = need;
    if (setrlimit(RLIMIT_NOFILE, &want) != 0)
        pc_die("need %" PRIu64 " open files but RLIMIT_NOFILE is %llu (hard %llu) and cannot be "
               "raised: %s (raising the hard limit takes CAP_SYS_RESOURCE; see fs.nr_open). "
               "Use fewer tasks, or share pipes with --pipes",
               need, (unsigned long long)rl.rlim_cur, (unsigned long long)rl.rlim_max,
               strerror(errno));
}

static inline unsigned pc_pow2_at_least(unsigned x)
{
    unsigned p = 1;
    while (p < x)
        p <<= 1;
    return p;
}

/* ---- the baselines' ring -------------------------------------------------- */

/* The CQ size taskring gives a ring of sq entries when cfg.cq_entries is 0
 * (engine/life/engine.c): max(16 * sq, 8192), at least 2 * sq, at most 65536. */
static inline unsigned pc_taskring_cq_entries(unsigned sq)
{
    unsigned cq = sq * 16 > 8192 ? sq * 16 : 8192;
    if (cq < sq * 2)
        cq = sq * 2;
    return cq > 65536 ? 65536 : cq;
}

/*
 * A ring set up the way engine/ring/ring.c sets up taskring's, so a baseline
 * measures the same kernel paths: SINGLE_ISSUER | DEFER_TASKRUN |
 * SUBMIT_ALL first, then COOP_TASKRUN | SUBMIT_ALL, then bare, each with
 * IORING_SETUP_CQSIZE; and the ring fd registered (taskring registers it in
 * tr_engine_run). taskring also creates its ring disabled and enables it on
 * the running thread; here the creating thread is the running one, so that
 * changes nothing. Returns the setup flags that took.
 */
static inline unsigned pc_ring_init(struct io_uring *ring, unsigned sq, unsigned cq)
{
    static const unsigned tries[] = {
        IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_SUBMIT_ALL,
        IORING_SETUP_COOP_TASKRUN | IORING_SETUP_SUBMIT_ALL,
        0,
    };
    struct io_uring_params p;
    int ret = -EINVAL;
    for (size_t i = 0; i < sizeof(tries) / sizeof(tries[0]); i++) {
        memset(&p, 0, sizeof(p));
        p.flags = tries[i] | IORING_SETUP_CQSIZE;
        p.cq_entries = cq;
        ret = io_uring_queue_init_params(sq, ring, &p);
        if (ret != -EINVAL)
            break;
    }
    if (ret < 0)
        pc_die("io_uring_queue_init_params(%u, cq %u): %s", sq, cq, strerror(-ret));
    if (io_uring_register_ring_fd(ring) != 1)
        pc_die("io_uring_register_ring_fd failed");
    return p.flags;
}

/* ---- taskring engines ------------------------------------------------------ */

/* A benchmark's engine: no signal handling, sq_entries sq (0: the
 * default). Exits 1 when it cannot be made. */
static inline tr_engine *pc_engine_new(unsigned sq)
{
    struct tr_config cfg;
    tr_config_init(&cfg);
    cfg.flags = TR_CFG_NO_SIGNALS;
    if (sq)
        cfg.sq_entries = sq;
    tr_engine *e;
    int err = tr_engine_create(&e, &cfg);
    if (err)
        pc_die("tr_engine_create: %s", strerror(-err));
    return e;
}

#endif /* PERF_COMMON_H */
