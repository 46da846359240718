/* SPDX-License-Identifier: MIT */
/*
 * bench_sync.c — what the primitives and groups of DESIGN section 8 cost.
 *
 *   bench_sync --mode chan   [--iters N]   ping-pong over two rendezvous channels
 *   bench_sync --mode mutex  [--iters N]   uncontended tr_mutex_lock + unlock
 *   bench_sync --mode event  [--iters N]   tr_event_set with no waiter
 *   bench_sync --mode sem    [--iters N]   semaphore hand-off between two tasks
 *   bench_sync --mode group  [--tasks N]   a group of N children, one fails
 *
 * chan: task A sends i on channel ab (capacity 0) and receives the echo on
 *   ba; task B receives on ab and sends back on ba. One round trip is two
 *   rendezvous, each a hand-off to a parked receiver and a switch. Value:
 *   ns per round trip. Anchor: perf/go_chanpingpong.go (unbuffered
 *   channels, GOMAXPROCS=1).
 * mutex: one task, N lock+unlock pairs of a mutex nobody else wants.
 *   Value: ns per pair; extra: ns per call (half of it).
 * event: one task, N tr_event_set of a set event nobody waits on. Value:
 *   ns per call.
 * sem: two tasks, two semaphores at 0. A releases s1 and acquires s2; B
 *   acquires s1 and releases s2: every acquire parks and every release
 *   hands its unit to the parked one. Value: ns per hand-off (two per
 *   round trip, each a release to a parked waiter and a switch). Extra:
 *   switch_ns, the same two tasks ping-ponging with tr_yield (one switch
 *   per yield, as bench_switch) measured in the same process, and
 *   ratio_to_switch = value / switch_ns (issue 13's goal: <= 1.5).
 * group: the owner inits a group and spawns N children; each sleeps an
 *   hour (tr_sleep_ns: an engine timer) except the last, which fails at once (-EIO); the failure
 *   cancels the N-1 others; tr_group_wait returns -EIO. Timed from the
 *   init to the wait's return; one group on fresh stacks (cold_ms: the
 *   kernel maps and faults in N stacks), then --reps more on the same
 *   engine, whose pool has the stacks (a server fanning out request after
 *   request): value is their median in ms. Anchor: perf/asyncio_group.py
 *   (TaskGroup, the same steps, the same warm-up).
 *
 * Every call must return what it should (0, -EIO, -ECANCELED for the
 * children); every message must come back in order; otherwise the program
 * dies and prints no figure.
 *
 * Output, one JSON line on stdout:
 *   {"bench":"sync","impl":"taskring","params":{"mode":..,"N":..},"value":..,"unit":..,...}
 */
#include "taskring.h"
#include "perf_common.h"

#include <stdlib.h>

static const char usage[] =
    "usage: bench_sync --mode chan|mutex|event|sem|group [--iters N] [--tasks N] [--reps R]\n"
    "  chan: ping-pong round trips over two rendezvous channels (default N 2000000);\n"
    "  mutex: uncontended lock+unlock pairs (default N 50000000);\n"
    "  event: tr_event_set calls, no waiter (default N 100000000);\n"
    "  sem: hand-offs between two tasks over two semaphores, and the tr_yield switch in\n"
    "       the same process (default N 4000000);\n"
    "  group: N children (default 10000), one fails, the rest are cancelled, R reps (5);\n"
    "  prints one JSON line.\n";

enum { M_CHAN, M_MUTEX, M_EVENT, M_SEM, M_GROUP };

static struct {
    int mode;
    long long n;
    uint64_t t0, t1;
    int err; /* first unexpected result */
    struct tr_chan *ab, *ba;
    struct tr_sem s1, s2;
    struct tr_mutex m;
    struct tr_event ev;
    long long done;
} B;

static void bad(int r)
{
    if (!B.err)
        B.err = r ? r : -EPROTO;
}

/* ---- chan ------------------------------------------------------------------ */

static tr_task *g_sleeper;

static int chan_a(void *arg)
{
    (void)arg;
    B.t0 = pc_now_ns();
    for (long long i = 0; i < B.n; i++) {
        long long v = i, back = -1;
        int r = tr_chan_send(B.ab, &v);
        if (r == 0)
            r = tr_chan_recv(B.ba, &back);
        if (r != 0 || back != i + 1) {
            bad(r);
            return r;
        }
    }
    B.t1 = pc_now_ns();
    B.done = B.n;
    if (g_sleeper)
        tr_cancel(g_sleeper);
    return 0;
}

static int chan_b(void *arg)
{
    (void)arg;
    for (long long i = 0; i < B.n; i++) {
        long long v = -1;
        int r = tr_chan_recv(B.ab, &v);
        if (r != 0 || v != i) {
            bad(r);
            return r;
        }
        v++;
        r = tr_chan_send(B.ba, &v);
        if (r != 0) {
            bad(r);
            return r;
        }
    }
    return 0;
}

static int sleeper(void *arg)
{
    (void)arg;
    return tr_sleep_ns(3600ull * 1000000000ull) == -ECANCELED ? 0 : -1;
}
/* ---- mutex, event ------------------------------------------------------------- */

static int mutex_loop(void *arg)
{
    (void)arg;
    if (tr_mutex_init(&B.m) != 0)
        bad(-EPROTO);
    B.t0 = pc_now_ns();
    for (long long i = 0; i < B.n; i++) {
        int r = tr_mutex_lock(&B.m);
        if (r == 0)
            r = tr_mutex_unlock(&B.m);
        if (r != 0) {
            bad(r);
            return r;
        }
    }
    B.t1 = pc_now_ns();
    B.done = B.n;
    return 0;
}

static int event_loop(void *arg)
{
    (void)arg;
    if (tr_event_init(&B.ev) != 0)
        bad(-EPROTO);
    B.t0 = pc_now_ns();
    for (long long i = 0; i < B.n; i++) {
        int r = tr_event_set(&B.ev);
        if (r != 0) {
            bad(r);
            return r;
        }
    }
    B.t1 = pc_now_ns();
    if (!tr_event_is_set(&B.ev))
        bad(-EPROTO);
    B.done = B.n;
    return 0;
}

/* ---- sem, and the switch it is measured against -------------------------------- */

static int sem_a(void *arg)
{
    (void)arg;
    B.t0 = pc_now_ns();
    for (long long i = 0; i < B.n / 2; i++) {
        int r = tr_sem_release(&B.s1);
        if (r == 0)
            r = tr_sem_acquire(&B.s2);
        if (r != 0) {
            bad(r);
            return r;
        }
    }
    B.t1 = pc_now_ns();
    B.done = B.n;
    return 0;
}

static int sem_b(void *arg)
{
    (void)arg;
    for (long long i = 0; i < B.n / 2; i++) {
        int r = tr_sem_acquire(&B.s1);
        if (r == 0)
            r = tr_sem_release(&B.s2);
        if (r != 0) {
            bad(r);
            return r;
        }
    }
    return 0;
}

static int yielder(void *arg)
{
    int first = arg != NULL;
    if (first)
        B.t0 = pc_now_ns();
    for (long long i = 0; i < B.n / 2; i++) {
        int r = tr_yield();
        if (r != 0) {
            bad(r);
            return r;
        }
    }
    if (!first) {
        B.t1 = pc_now_ns();
        B.done = B.n;
    }
    return 0;
}

/* ---- group --------------------------------------------------------------------- */

static long long g_cancelled;

static int child_wait(void *arg)
{
    (void)arg;
    int r = tr_sleep_ns(3600ull * 1000000000ull);
    if (r == -ECANCELED)
        g_cancelled++;
    else
        bad(r);
    return r;
}

static int child_fail(void *arg)
{
    (void)arg;
    return -EIO;
}

static uint64_t *g_times; /* one per rep */
static long long g_reps;

/* The owner: reps groups in a row on one engine, each timed from its init
 * to its wait's return. The first runs on fresh stacks (mapped and
 * faulted in); the later ones on the engine's pooled stacks, as a server
 * that fans out request after request does. */
static int group_owner(void *arg)
{
    (void)arg;
    for (long long k = 0; k < g_reps; k++) {
        struct tr_group g;
        g_cancelled = 0;
        uint64_t t0 = pc_now_ns();
        int r = tr_group_init(&g);
        for (long long i = 0; r == 0 && i < B.n; i++)
            r = tr_group_spawn(&g, i == B.n - 1 ? child_fail : child_wait, NULL, NULL);
        if (r != 0) {
            bad(r);
            return r;
        }
        r = tr_group_wait(&g);
        g_times[k] = pc_now_ns() - t0;
        struct tr_failure f;
        if (r != -EIO || tr_group_failures(&g, &f, 1) != 1 || f.result != -EIO ||
            g_cancelled != B.n - 1) {
            bad(r);
            return r;
        }
    }
    B.t0 = B.t1 = 0;
    B.done = B.n;
    return 0;
}

/* ---- the runs ------------------------------------------------------------------ */

/* Runs fa (and fb) on a fresh engine; returns t1 - t0 in ns. */
static uint64_t run2(tr_fn fa, void *aa, tr_fn fb, void *ab)
{
    tr_engine *e = pc_engine_new(0);
    B.err = 0;
    B.done = 0;
    int err = tr_spawn(e, NULL, fa, aa, NULL);
    if (!err && fb)
        err = tr_spawn(e, NULL, fb, ab, NULL);
    if (err)
        pc_die("tr_spawn: %s", strerror(-err));
    err = tr_engine_run(e);
    if (err)
        pc_die("tr_engine_run: %s", strerror(-err));
    if (B.err)
        pc_die("a call returned %d (%s)", B.err, strerror(-B.err));
    if (B.done != B.n)
        pc_die("ended after %lld of %lld", B.done, B.n);
    err = tr_engine_destroy(e);
    if (err)
        pc_die("tr_engine_destroy: %s", strerror(-err));
    return B.t1 - B.t0;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
    const char *mode = NULL;
    long long iters = 0, tasks = 10000, reps = 5;
    const struct pc_opt opts[] = {
        {"--iters", &iters, 2, 1000000000000LL, NULL, NULL},
        {"--tasks", &tasks, 2, 10000000, NULL, NULL},
        {"--reps", &reps, 1, 1000, NULL, NULL},
        {"--mode", NULL, 0, 0, &mode, NULL},
    };
    pc_parse(argc, argv, opts, sizeof(opts) / sizeof(opts[0]), usage);
    if (!mode)
        pc_usage(usage);
    static const char *const names[] = {"chan", "mutex", "event", "sem", "group"};
    static const long long defaults[] = {2000000, 50000000, 100000000, 4000000, 0};
    B.mode = -1;
    for (int i = 0; i < 5; i++)
        if (!strcmp(mode, names[i]))
            B.mode = i;
    if (B.mode < 0)
        pc_usage(usage);
    B.n = B.mode == M_GROUP ? tasks : iters ? iters : defaults[B.mode];
    if (B.mode == M_SEM && B.n % 2)
        B.n++;

    const char *unit = "ns";
    double value = 0;
    char extra[256] = "";
    switch (B.mode) {
    case M_CHAN: {
        int err = tr_chan_create(&B.ab, sizeof(long long), 0, 0);
        if (!err)
            err = tr_chan_create(&B.ba, sizeof(long long), 0, 0);
        if (err)
            pc_die("tr_chan_create: %s", strerror(-err));
        if (getenv("BS_TIMER")) {
            tr_engine *e = pc_engine_new(0);
            B.err = 0;
            tr_spawn(e, NULL, chan_a, NULL, NULL);
            tr_spawn(e, NULL, chan_b, NULL, NULL);
            tr_task *sl;
            tr_spawn(e, &sl, sleeper, NULL, NULL);
            tr_detach(sl);
            g_sleeper = sl;
            tr_engine_run(e);
            tr_engine_destroy(e);
            value = (double)(B.t1 - B.t0) / (double)B.n;
        } else
            value = (double)run2(chan_a, NULL, chan_b, NULL) / (double)B.n;
        unit = "ns/rt";
        tr_chan_destroy(B.ab);
        tr_chan_destroy(B.ba);
        break;
    }
    case M_MUTEX:
        value = (double)run2(mutex_loop, NULL, NULL, NULL) / (double)B.n;
        unit = "ns/pair";
        snprintf(extra, sizeof(extra), ",\"ns_per_call\":%.2f", value / 2);
        break;
    case M_EVENT:
        value = (double)run2(event_loop, NULL, NULL, NULL) / (double)B.n;
        unit = "ns/call";
        break;
    case M_SEM: {
        /* Switch first and last, hand-offs between: the ratio's two sides
         * see the same machine. */
        double sw[2], ho[2];
        for (int i = 0; i < 2; i++) {
            sw[i] = (double)run2(yielder, &B, yielder, NULL) / (double)B.n;
            if (tr_sem_init(&B.s1, 0) || tr_sem_init(&B.s2, 0))
                pc_die("tr_sem_init");
            ho[i] = (double)run2(sem_a, NULL, sem_b, NULL) / (double)B.n;
        }
        double s = sw[0] < sw[1] ? sw[0] : sw[1], h = ho[0] < ho[1] ? ho[0] : ho[1];
        value = h;
        unit = "ns/handoff";
        snprintf(extra, sizeof(extra), ",\"switch_ns\":%.2f,\"ratio_to_switch\":%.3f", s, h / s);
        break;
    }
    case M_GROUP: {
        g_reps = reps + 1;
        g_times = calloc((size_t)g_reps, sizeof(*g_times));
        if (!g_times)
            pc_die("out of memory");
        (void)run2(group_owner, NULL, NULL, NULL);
        uint64_t cold = g_times[0], *t = g_times + 1;
        qsort(t, (size_t)reps, sizeof(*t), cmp_u64);
        value = (double)t[reps / 2] / 1e6;
        unit = "ms";
        snprintf(extra, sizeof(extra), ",\"best_ms\":%.4f,\"cold_ms\":%.4f,\"ns_per_child\":%.1f",
                 (double)t[0] / 1e6, (double)cold / 1e6, (double)t[reps / 2] / (double)B.n);
        free(g_times);
        break;
    }
    }
    printf("{\"bench\":\"sync\",\"impl\":\"taskring\",\"params\":{\"mode\":\"%s\",\"N\":%lld},"
           "\"value\":%.4f,\"unit\":\"%s\"%s}\n",
           mode, B.n, value, unit, extra);
    return 0;
}
