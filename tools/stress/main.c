/* SPDX-License-Identifier: MIT */
/*
 * taskring-stress — a seeded random workload, ended again and again by real
 * signals, with an audit after every round.
 *
 *   taskring-stress [--seconds N] [--seed S] [--verbose]
 *   taskring-stress --help | --version
 *
 * One PRNG (splitmix64) seeded from S drives every choice (timing still
 * varies, so a seed reproduces the workload's shape, not its interleaving).
 * The run is a sequence of rounds (round.c). Each round builds a fresh
 * engine (either create/run/destroy or tr_run), spawns thousands of tasks
 * doing mixed ops on pipes, socketpairs, loopback TCP, temp files and
 * timers (work_*.c), cancels them at random (tr_cancel, tr_cancel_all with
 * and without TR_CANCEL_WAIT, self-cancels), uses shields, joins, spawns
 * from tasks, TR_SPAWN_LATE tasks and tr_at_shutdown hooks doing I/O
 * (hooks.c). After 1-4 s a REAL signal (kill(getpid(), SIGTERM or SIGINT),
 * from a task or from a helper thread) starts the shutdown; sometimes a
 * 2nd and 3rd follow, so the ladder's rungs (break shields, kill) run with
 * short grace_ms/kill_ms (orch.c).
 *
 * One round in four is a cluster instead (cluster_round.c): 1-8 engines
 * on their threads posting to each other, calling each other (cancelled,
 * cut by deadlines) and offloading jobs, ended by the same real signals;
 * checked: every post accepted ran once and in order per pair, no call or
 * job returned before its remote side was done (G1), the mask and fds.
 *
 * After each round (audit.c): the quiescence audit, conservation of tasks
 * (the engine's counts match the tool's own bookkeeping), no fd leak (but
 * the documented leak of a KILLED task's accept or openat), the signal
 * mask as before, and byte conservation on every stream (the accounting:
 * work_stream_ends.c and audit.c).
 *
 * Also checked: G4 (a cancelled task's blocking calls fail with
 * -ECANCELED, a shield lets them work until the shutdown breaks it), G7
 * (bad input gets -errno), sleeps and timeout ops never end early, tasks
 * spawned during a shutdown (or cancelled before the run) start cancelled,
 * TR_SPAWN_LATE tasks are cancelled only after every other task ended,
 * cancel scopes and deadlines against the contract's model (work_scope.c:
 * nesting, shields, moves, tr_scope_cancel from other tasks, expiries of
 * calls in flight, tr_scope_exit's results, no timer outliving its scope,
 * scopes left entered counted by the engine), task groups and primitives
 * (work_sync.c, sync_audit.c: groups of workers on a semaphore, a mutex, a
 * condition, an event and a channel, cut short at random and by the
 * shutdown's rungs; messages, units and mutex owners conserved (G9),
 * every child ended when its group's wait returns and the failures listed
 * as the children's endings make them (G10)),
 * at_shutdown hooks all run unless the hook task was killed, and
 * tr_engine_destroy refuses with -EBUSY while tasks are alive. Some
 * create/run/destroy rounds run the engine a second time after its
 * shutdown. A watchdog thread (watchdog.c) reports a round that lasts over
 * 60 s as a hang (with tr_engine_dump) and exits 1.
 *
 * Output: the seed first, a progress line each second, with --verbose a
 * line per round, "VIOLATION: <what> (round R, seed S)" and exit 1 on the
 * first round that fails, else the scopes' figures and the summary line
 * and exit 0. --help prints
 * the usage and --version the version (both exit 0); a bad command line
 * exits 2 with a message on stderr.
 *
 * Killed tasks leak what they own (the contract), so every fd the workload
 * creates lives in a round-level table that the round's cleanup closes, and
 * every buffer the kernel may touch is a heap buffer owned by the round
 * (fdtable.c).
 */
#include "stress.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

uint64_t g_rng;
uint64_t g_seed;
bool g_verbose;
char g_dir[64];
bool g_tmpfile_ok;
uint64_t g_t_start;
int g_devnull = -1;
_Atomic uint64_t g_round, g_tasks, g_ops, g_cancels, g_shutdowns, g_signals;
_Atomic uint64_t g_scopes, g_expiries, g_moves, g_scancels;
_Atomic uint64_t g_round_start;
/* g_worlds, g_groups, g_msgs, g_gfail: work_sync.c */
_Atomic int g_stop;
_Atomic(tr_engine *) g_engine;

/* ------------------------------------------------------------- command line */

/* The longest run --seconds accepts: a week. Far beyond any use, and far
 * below where the run's end (in ns since boot) would overflow. */
#define MAX_SECONDS 604800ull

struct options {
    uint64_t seconds;
    uint64_t seed;
    bool have_seed, verbose;
};

static void usage(FILE *f)
{
    fprintf(f,
            "usage: taskring-stress [--seconds N] [--seed S] [--verbose]\n"
            "       taskring-stress --help | --version\n"
            "\n"
            "  --seconds N    run for N seconds, 1..%llu (default 10)\n"
            "  --seed S       seed the PRNG with S, 0..2^64-1, decimal or 0x hex\n"
            "                 (default: from the clock; the seed is printed first)\n"
            "  --verbose, -v  a summary line per round\n"
            "  --help, -h     this text\n"
            "  --version      the version\n",
            (unsigned long long)MAX_SECONDS);
}

/* A bad command line: the message, a hint, exit 2. */
static void bad_usage(const char *fmt, const char *arg)
{
    fprintf(stderr, "taskring-stress: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, " (try --help)\n");
    exit(2);
}

/* s as a whole number in [lo, hi] (strtoull with base): no sign, no
 * blanks, nothing after it, no overflow. */
static bool parse_u64(const char *s, int base, uint64_t lo, uint64_t hi, uint64_t *out)
{
    if (!s || !*s || *s == '-' || *s == '+' || *s == ' ' || (*s >= '\t' && *s <= '\r'))
        return false;
    errno = 0;
    char *end;
    unsigned long long v = strtoull(s, &end, base);
    if (errno || *end || v < lo || v > hi)
        return false;
    *out = v;
    return true;
}

/* The value of option argv[*i] ("--opt V" or "--opt=V"), or exit 2. */
static const char *opt_value(int argc, char **argv, int *i, const char *name)
{
    const char *a = argv[*i];
    size_t n = strlen(name);
    if (a[n] == '=')
        return a + n + 1;
    if (*i + 1 >= argc)
        bad_usage("%s needs a value", name);
    return argv[++*i];
}

/* Whether argv[i] is option name, alone or as "name=...". */
static bool is_opt(const char *a, const char *name)
{
    size_t n = strlen(name);
    return strncmp(a, name, n) == 0 && (a[n] == '\0' || a[n] == '=');
}

static void parse_args(int argc, char **argv, struct options *o)
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(stdout);
            exit(0);
        } else if (strcmp(a, "--version") == 0) {
            printf("taskring-stress %d.%d\n", TR_VERSION_MAJOR, TR_VERSION_MINOR);
            exit(0);
        } else if (is_opt(a, "--seconds")) {
            const char *v = opt_value(argc, argv, &i, "--seconds");
            if (!parse_u64(v, 10, 1, MAX_SECONDS, &o->seconds))
                bad_usage("--seconds: '%s' is not a whole number of seconds in 1..604800", v);
        } else if (is_opt(a, "--seed")) {
            const char *v = opt_value(argc, argv, &i, "--seed");
            if (!parse_u64(v, 0, 0, UINT64_MAX, &o->seed))
                bad_usage("--seed: '%s' is not a number in 0..2^64-1", v);
            o->have_seed = true;
        } else if (strcmp(a, "--verbose") == 0 || strcmp(a, "-v") == 0) {
            o->verbose = true;
        } else if (a[0] == '-') {
            bad_usage("unknown option '%s'", a);
        } else {
            bad_usage("unexpected argument '%s'", a);
        }
    }
}

/* ------------------------------------------------------------- the run */

/* A seed from the clock and the pid, below 10^9 so that it is easy to
 * type back. */
static uint64_t clock_seed(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return mix64(((uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec) ^
                 ((uint64_t)getpid() << 32)) %
           1000000000ull;
}

/* The tool's directory for temp files, whether O_TMPFILE works there, and
 * /dev/null for the dumps. Exits 2 if the directory cannot be made. */
static void setup_files(void)
{
    snprintf(g_dir, sizeof(g_dir), "/tmp/taskring-stress-XXXXXX");
    if (!mkdtemp(g_dir)) {
        fprintf(stderr, "stress: mkdtemp: %s\n", strerror(errno));
        exit(2);
    }
    int tfd = open(g_dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
    g_tmpfile_ok = tfd >= 0;
    if (tfd >= 0)
        close(tfd);
    g_devnull = open("/dev/null", O_WRONLY | O_CLOEXEC);
}

/* The progress thread, created before any engine: it must block the
 * shutdown signals itself (it blocks everything). Exits 2 if it cannot. */
static pthread_t start_progress(void)
{
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    pthread_t prog;
    int err = pthread_create(&prog, NULL, progress_main, NULL);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (err) {
        fprintf(stderr, "stress: pthread_create: %s\n", strerror(err));
        exit(2);
    }
    return prog;
}

int main(int argc, char **argv)
{
    struct options o = {.seconds = 10};
    parse_args(argc, argv, &o);
    g_verbose = o.verbose;
    g_seed = o.have_seed ? o.seed : clock_seed();
    g_rng = g_seed;
    setvbuf(stdout, NULL, _IOLBF, 0);
    printf("stress: seed %" PRIu64 "\n", g_seed);
    fflush(stdout);
    signal(SIGPIPE, SIG_IGN); /* pipe writes to a closed reader: -EPIPE */

    setup_files();
    g_t_start = now_ns();
    pthread_t prog = start_progress();

    uint64_t end = g_t_start + o.seconds * 1000 * MS;
    unsigned rounds = 0;
    /* Bounded: a round lasts 1-4 s (300 ms at the least, the last one), so
     * even a week's run stays below 1,000,000 rounds. */
    for (unsigned no = 1; no < 1000000; no++) {
        uint64_t now = now_ns();
        if (now >= end)
            break;
        /* One round in four is a cluster of 1-8 engines (cluster_round.c). */
        if (rbelow(4) == 0)
            run_cluster_round(no, (end - now) / MS);
        else
            run_round(no, (end - now) / MS);
        rounds = no;
    }
    atomic_store(&g_stop, 1);
    pthread_join(prog, NULL);
    rmdir(g_dir);
    printf("stress: seed %" PRIu64 " scopes %" PRIu64 " expiries %" PRIu64 " moves %" PRIu64
           " scope-cancels %" PRIu64 "\n",
           g_seed, atomic_load(&g_scopes), atomic_load(&g_expiries), atomic_load(&g_moves),
           atomic_load(&g_scancels));
    printf("stress: seed %" PRIu64 " sync worlds %" PRIu64 " groups waited %" PRIu64
           " messages %" PRIu64 " real failures %" PRIu64 "\n",
           g_seed, atomic_load(&g_worlds), atomic_load(&g_groups), atomic_load(&g_msgs),
           atomic_load(&g_gfail));
    printf("stress: seed %" PRIu64 " rounds %u ops %" PRIu64 " cancels %" PRIu64
           " shutdowns %" PRIu64 " signals %" PRIu64 " violations 0 in %.1fs\n",
           g_seed, rounds, atomic_load(&g_ops), atomic_load(&g_cancels), atomic_load(&g_shutdowns),
           atomic_load(&g_signals), (double)(now_ns() - g_t_start) / 1e9);
    return 0;
}
