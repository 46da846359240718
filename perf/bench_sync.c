/* SPDX-License-Identifier: MIT */
/*
 * bench_sync.c — the primitives and task groups of DESIGN section 8: what
 * a hand-off, an uncontended lock and a failing group cost.
 *
 *   bench_sync --mode chan|sem|yield  [--iters N] [--shape sym|asym] [--rounds R]
 *   bench_sync --mode mutex|pthread_mutex|event|call  [--iters N] [--rounds R]
 *   bench_sync --mode group  [--tasks T] [--park sleep|event] [--rounds R] [--prefill P]
 *
 * Every mode runs R rounds (default 3; group 5) and reports the median
 * round as value, with the fastest and slowest beside it (min, max). Each
 * round of chan, sem and yield is a fresh engine (TR_CFG_NO_SIGNALS); the
 * other modes run their rounds in one task of one engine. Every call's
 * result is checked (a broken run prints no figure and exits 1).
 *
 * Two tasks, A and B, each doing N iterations (default 2,000,000); the
 * clock starts when the first of them begins and stops when the last one
 * ends, as in bench_switch. --shape sym (the default): both tasks run one
 * function, so both park at the same call sites, as bench_switch's do;
 * asym: A and B are two functions (a producer and a consumer), each
 * parking at call sites of its own. asym is the slower (measured here: a
 * yield switch of 13-23 ns sym, 22-28 ns asym, alternating runs); the
 * likely reason, which this VM's lack of hardware counters does not let
 * us confirm: after a stack switch the CPU's return predictor expects the
 * return addresses of the task that parked, which are the resumed task's
 * too only when both run the same code.
 *   chan   ping-pong over two rendezvous channels (tr_chan capacity 0, a
 *          uint64_t each, one channel each way): each value received is
 *          checked and one more is sent back (sym: A opens with 0, B
 *          receives the even values, A the odd ones; asym: A sends 2i and
 *          receives 2i + 1). value = ns per round trip (two hand-offs, two
 *          task switches); ns_per_handoff = half. Compared with
 *          perf/go_chanpingpong.go (the same shapes over unbuffered
 *          channels, GOMAXPROCS=1); goal >= 5x faster per round trip.
 *   sem    ping-pong over two semaphores of count 0: A releases B's (B,
 *          parked in tr_sem_acquire of it, is handed the unit) and
 *          acquires its own, which B releases before it acquires its own
 *          again. value = ns per hand-off (a round trip is two). Each
 *          round first measures the yield ping-pong below on its own
 *          engine (switch_ns, the median of the rounds), so that ratio =
 *          value / switch_ns compares the two in the same process; goal
 *          ratio <= 1.5.
 *   yield  two tasks ping-pong with tr_yield (as bench_switch): value = ns
 *          per switch (2N switches). The anchor of sem, run by perf/run.py
 *          as its own process, alternating with sem.
 *
 * One task, N iterations (default 20,000,000) of:
 *   mutex          tr_mutex_lock + tr_mutex_unlock of a free mutex: value =
 *                  ns per lock+unlock PAIR (the goal, <= 10 ns, is on the
 *                  pair); ns_per_op = half of it.
 *   pthread_mutex  pthread_mutex_lock + unlock of a default (uncontended)
 *                  mutex, same loop: the anchor of mutex, ns per pair.
 *   event          tr_event_set on an event nobody waits for (set from the
 *                  first call on: the call takes the same path either way,
 *                  it stores the flag and finds the waiter queue empty):
 *                  value = ns per call; goal <= 10 ns.
 *   call           a call to an out-of-line function of this file that
 *                  stores a flag and returns 0, result checked, same loop:
 *                  the floor any library call pays, the anchor of event.
 *
 * group: an owner task does tr_group_init, T tr_group_spawn (default
 * 10,000): T - 1 children park (tr_sleep_ns of an hour, or tr_event_wait
 * on an event never set: --park), the last one returns -EIO once the
 * others have all started (at once: children run in spawn order), which
 * cancels the rest (each must see -ECANCELED and return it); then
 * tr_group_wait, which must return -EIO with exactly one failure listed.
 * value = ms from before tr_group_init to after tr_group_wait returned.
 * Extra field first_ms: the first round alone (cold: its stacks are mapped
 * then; later rounds reuse the engine's pool). --prefill P: the engine is
 * made with tr_config.task_prefill = P (outside the timed rounds), so
 * that with P >= T the first round finds its records and stacks ready
 * too; prefill_ms says what that cost at tr_engine_create. Compared with
 * perf/asyncio_group.py (asyncio.TaskGroup, the same shape); goal >= 20x
 * faster.
 *
 * Output, one JSON line on stdout:
 *   {"bench":"sync","impl":"taskring","params":{"mode":"chan","N":2000000,"R":3,
 *    "shape":"sym"},
 *    "value":..,"unit":"ns/rt","min":..,"max":..,...,"cpu_util":..}
 * cpu_util: thread CPU time / wall time over the measured parts, about
 * 1.0 when the machine left us alone.
 */
#include "taskring.h"
#include "perf_common.h"

#include <pthread.h>

#define SLEEP_NS (3600ull * 1000000000ull)
#define ROUNDS_MAX 101

static const char usage[] =
    "usage: bench_sync --mode chan|sem|yield|mutex|pthread_mutex|event|call|group\n"
    "                  [--iters N] [--shape sym|asym] [--tasks T] [--park sleep|event]\n"
    "                  [--rounds R] [--prefill P]\n"
    "  chan, sem, yield: two tasks ping-pong N times (default 2000000), both running one\n"
    "    function (sym, default) or each its own (asym);\n"
    "  mutex, pthread_mutex, event, call: one task loops N times (default 20000000);\n"
    "  group: T children (default 10000), one fails, the rest are cancelled\n"
    "    (--prefill P: the engine is made with tr_config.task_prefill = P);\n"
    "  R rounds (default 3, group 5), the median printed as one JSON line.\n";

enum mode { M_CHAN, M_SEM, M_YIELD, M_MUTEX, M_PTHREAD, M_EVENT, M_CALL, M_GROUP };

static const char *const mode_names[] = {"chan",          "sem",   "yield", "mutex",
                                         "pthread_mutex", "event", "call",  "group"};

/* One measured part: wall and thread CPU ns. */
struct span {
    uint64_t t0, t1, c0, c1;
};

static void span_begin(struct span *s)
{
    s->t0 = pc_now_ns();
    s->c0 = pc_thread_cpu_ns();
}

static void span_end(struct span *s)
{
    s->t1 = pc_now_ns();
    s->c1 = pc_thread_cpu_ns();
}

/* Every measured part adds here: cpu_util is over all of them. */
static uint64_t total_wall, total_cpu;

static uint64_t span_wall(const struct span *s)
{
    total_wall += s->t1 - s->t0;
    total_cpu += s->c1 - s->c0;
    return s->t1 - s->t0;
}

/* A task's call that returned what it must not: stop with no figure. */
__attribute__((noreturn, cold)) static void bad_call(const char *what, long long ret)
{
    pc_die("%s returned %lld (%s)", what, ret, ret < 0 ? strerror((int)-ret) : "unexpected");
}

static void must(const char *what, int ret)
{
    if (__builtin_expect(ret != 0, 0))
        bad_call(what, ret);
}

/* ---- two tasks: chan, sem, yield ---------------------------------------------------- */

struct pingpong {
    enum mode mode;
    long long iters;
    int started, finished;
    struct span sp;
    struct tr_chan *ch[2]; /* side x receives on ch[x], sends on ch[1 - x] */
    struct tr_sem s[2];    /* side x acquires s[x], releases s[1 - x] */
};

struct side {
    struct pingpong *r;
    int x; /* 0: A, which opens; 1: B */
};

static void pp_begin(struct pingpong *r)
{
    if (r->started++ == 0)
        span_begin(&r->sp);
}

/* The last one to end stops the clock, then checks that every unit a
 * semaphore was given was taken. */
static void pp_end(struct pingpong *r)
{
    if (++r->finished < 2)
        return;
    span_end(&r->sp);
    if (r->mode == M_SEM &&
        (tr_sem_try_acquire(&r->s[0]) != -EAGAIN || tr_sem_try_acquire(&r->s[1]) != -EAGAIN))
        pc_die("a semaphore kept a unit after the ping-pong");
}

/* Side x takes what the other side passed it (the channel's value must be
 * `expect`); yield mode: one tr_yield. Always inlined, so that each call
 * of it is a call site of its own (see --shape). */
__attribute__((always_inline)) static inline void hop_take(struct pingpong *r, int x,
                                                           uint64_t expect)
{
    uint64_t v = 0;
    switch (r->mode) {
    case M_CHAN:
        must("tr_chan_recv", tr_chan_recv(r->ch[x], &v));
        if (v != expect)
            bad_call("tr_chan_recv's value", (long long)v);
        break;
    case M_SEM:
        must("tr_sem_acquire", tr_sem_acquire(&r->s[x]));
        break;
    default:
        must("tr_yield", tr_yield());
        break;
    }
}

/* Side x passes v to the other side; yield mode: nothing. */
__attribute__((always_inline)) static inline void hop_give(struct pingpong *r, int x, uint64_t v)
{
    switch (r->mode) {
    case M_CHAN:
        must("tr_chan_send", tr_chan_send(r->ch[1 - x], &v));
        break;
    case M_SEM:
        must("tr_sem_release", tr_sem_release(&r->s[1 - x]));
        break;
    default:
        break;
    }
}

/* --shape sym: both sides run this one function, so both park (or yield)
 * at the same call sites, as bench_switch's two tasks do. A opens with 0;
 * then each side takes 2i + 1 - x and passes one more on (A's last take
 * passes nothing on): B takes the even values, A the odd ones. N takes
 * and N gives each. */
static int side_sym(void *arg)
{
    struct side *sd = arg;
    struct pingpong *r = sd->r;
    int x = sd->x;
    pp_begin(r);
    if (x == 0)
        hop_give(r, x, 0);
    for (long long i = 0; i < r->iters; i++) {
        uint64_t v = 2 * (uint64_t)i + (uint64_t)(1 - x);
        hop_take(r, x, v);
        if (x == 1 || i + 1 < r->iters)
            hop_give(r, x, v + 1);
    }
    pp_end(r);
    return 0;
}

/* --shape asym: A and B are two functions (a producer and a consumer, as
 * a program would have them), each parking at call sites of its own (the
 * header says what that costs). Same hops as side_sym. */
static int side_a(void *arg)
{
    struct pingpong *r = ((struct side *)arg)->r;
    pp_begin(r);
    for (long long i = 0; i < r->iters; i++) {
        hop_give(r, 0, 2 * (uint64_t)i);
        hop_take(r, 0, 2 * (uint64_t)i + 1);
    }
    pp_end(r);
    return 0;
}

static int side_b(void *arg)
{
    struct pingpong *r = ((struct side *)arg)->r;
    pp_begin(r);
    for (long long i = 0; i < r->iters; i++) {
        hop_take(r, 1, 2 * (uint64_t)i);
        hop_give(r, 1, 2 * (uint64_t)i + 1);
    }
    pp_end(r);
    return 0;
}

/* One round on a fresh engine: the wall ns of 2 * iters hand-offs or
 * switches. */
static uint64_t pingpong_round(enum mode mode, bool asym, long long iters)
{
    tr_engine *e = pc_engine_new(0);
    struct pingpong r = {.mode = mode, .iters = iters};
    struct side a = {&r, 0}, b = {&r, 1};
    for (int x = 0; x < 2; x++) {
        if (mode == M_CHAN)
            must("tr_chan_create", tr_chan_create(&r.ch[x], sizeof(uint64_t), 0, 0));
        must("tr_sem_init", tr_sem_init(&r.s[x], 0));
    }
    /* B first: it parks (or yields) before A's first hand-off. */
    must("tr_spawn", tr_spawn(e, NULL, asym ? side_b : side_sym, &b, NULL));
    must("tr_spawn", tr_spawn(e, NULL, asym ? side_a : side_sym, &a, NULL));
    must("tr_engine_run", tr_engine_run(e));
    if (r.finished != 2)
        pc_die("%d of 2 tasks finished", r.finished);
    uint64_t wall = span_wall(&r.sp);
    struct tr_stats st;
    must("tr_engine_stats", tr_engine_stats(e, &st));
    if (st.tasks_ok != 2 || st.tasks_live != 0)
        pc_die("count mismatch: %" PRIu64 " tasks ok", st.tasks_ok);
    for (int x = 0; x < 2 && mode == M_CHAN; x++)
        must("tr_chan_destroy", tr_chan_destroy(r.ch[x]));
    must("tr_engine_destroy", tr_engine_destroy(e));
    return wall;
}

/* ---- one task: mutex, pthread_mutex, event, call -------------------------------------- */

struct floor_flag {
    bool set;
};

/* The anchor of event: an out-of-line call that stores a flag. The empty
 * asm keeps the compiler from dropping or folding the call. */
__attribute__((noinline)) static int floor_set(struct floor_flag *f)
{
    __asm__ volatile("" ::: "memory");
    f->set = true;
    return 0;
}

struct loop_run {
    enum mode mode;
    long long iters, rounds;
    uint64_t ns[ROUNDS_MAX];
};

static void loop_once(enum mode mode, long long iters, struct tr_mutex *m, pthread_mutex_t *pm,
                      struct tr_event *ev, struct floor_flag *ff)
{
    switch (mode) {
    case M_MUTEX:
        for (long long i = 0; i < iters; i++) {
            must("tr_mutex_lock", tr_mutex_lock(m));
            must("tr_mutex_unlock", tr_mutex_unlock(m));
        }
        break;
    case M_PTHREAD:
        for (long long i = 0; i < iters; i++) {
            must("pthread_mutex_lock", pthread_mutex_lock(pm));
            must("pthread_mutex_unlock", pthread_mutex_unlock(pm));
        }
        break;
    case M_EVENT:
        for (long long i = 0; i < iters; i++)
            must("tr_event_set", tr_event_set(ev));
        break;
    default:
        for (long long i = 0; i < iters; i++)
            must("floor_set", floor_set(ff));
        break;
    }
}

static int loop_task(void *arg)
{
    struct loop_run *r = arg;
    struct tr_mutex m;
    struct tr_event ev;
    struct floor_flag ff = {false};
    pthread_mutex_t pm = PTHREAD_MUTEX_INITIALIZER;
    must("tr_mutex_init", tr_mutex_init(&m));
    must("tr_event_init", tr_event_init(&ev));
    for (long long k = 0; k < r->rounds; k++) {
        struct span sp;
        span_begin(&sp);
        loop_once(r->mode, r->iters, &m, &pm, &ev, &ff);
        span_end(&sp);
        r->ns[k] = span_wall(&sp);
    }
    /* What the loops left: a free mutex, a set event. */
    if (tr_mutex_trylock(&m) != 0 || tr_mutex_unlock(&m) != 0)
        pc_die("the mutex was left held");
    if (r->mode == M_EVENT && !tr_event_is_set(&ev))
        pc_die("the event is not set");
    if (r->mode == M_CALL && !ff.set)
        pc_die("the floor's flag is not set");
    return 0;
}

static void loop_rounds(struct loop_run *r)
{
    tr_engine *e = pc_engine_new(0);
    must("tr_spawn", tr_spawn(e, NULL, loop_task, r, NULL));
    must("tr_engine_run", tr_engine_run(e));
    struct tr_stats st;
    must("tr_engine_stats", tr_engine_stats(e, &st));
    if (st.tasks_ok != 1 || st.mutexes_left != 0)
        pc_die("the loop task did not end well");
    must("tr_engine_destroy", tr_engine_destroy(e));
}

/* ---- group --------------------------------------------------------------------------- */

struct group_run {
    long long tasks, rounds, prefill;
    uint64_t prefill_ns; /* tr_engine_create with the prefill */
    bool park_event;
    struct tr_event never; /* --park event: never set */
    long long started, cancelled, failed;
    uint64_t ns[ROUNDS_MAX];
};

static int child_parked(void *arg)
{
    struct group_run *r = arg;
    r->started++;
    int ret = r->park_event ? tr_event_wait(&r->never) : tr_sleep_ns(SLEEP_NS);
    if (ret != -ECANCELED)
        bad_call(r->park_event ? "a parked child's tr_event_wait" : "a parked child's tr_sleep_ns",
                 ret);
    r->cancelled++;
    return ret;
}

static int child_failing(void *arg)
{
    struct group_run *r = arg;
    /* Bounded: each yield lets every runnable child run once, and the
     * others were spawned before this one (they have normally all started
     * already: children run in spawn order). */
    for (int i = 0; i < 3 && r->started < r->tasks - 1; i++)
        must("the failing child's tr_yield", tr_yield());
    if (r->started != r->tasks - 1)
        pc_die("only %lld of %lld children started", r->started, r->tasks - 1);
    r->failed++;
    return -EIO;
}

static void group_round(struct group_run *r, long long k)
{
    struct tr_group g;
    r->started = r->cancelled = r->failed = 0;
    struct span sp;
    span_begin(&sp);
    must("tr_group_init", tr_group_init(&g));
    for (long long i = 0; i < r->tasks; i++)
        must("tr_group_spawn",
             tr_group_spawn(&g, i == r->tasks - 1 ? child_failing : child_parked, r, NULL));
    int ret = tr_group_wait(&g);
    span_end(&sp);
    r->ns[k] = span_wall(&sp);
    if (ret != -EIO)
        bad_call("tr_group_wait", ret);
    struct tr_failure f[TR_GROUP_FAILURES];
    size_t nf = tr_group_failures(&g, f, TR_GROUP_FAILURES);
    if (nf != 1 || f[0].result != -EIO)
        pc_die("the group listed %zu failures (the first %d), expected one -EIO", nf,
               nf ? f[0].result : 0);
    if (r->failed != 1 || r->started != r->tasks - 1 || r->cancelled != r->tasks - 1)
        pc_die("%lld started, %lld cancelled, %lld failed; expected %lld, %lld, 1", r->started,
               r->cancelled, r->failed, r->tasks - 1, r->tasks - 1);
}

static int group_owner(void *arg)
{
    struct group_run *r = arg;
    must("tr_event_init", tr_event_init(&r->never));
    for (long long k = 0; k < r->rounds; k++)
        group_round(r, k);
    return 0;
}

static void group_rounds(struct group_run *r)
{
    struct tr_config cfg;
    tr_config_init(&cfg);
    cfg.flags = TR_CFG_NO_SIGNALS;
    cfg.task_prefill = (unsigned)r->prefill;
    tr_engine *e;
    uint64_t t0 = pc_now_ns();
    must("tr_engine_create", tr_engine_create(&e, &cfg));
    r->prefill_ns = pc_now_ns() - t0;
    must("tr_spawn", tr_spawn(e, NULL, group_owner, r, NULL));
    must("tr_engine_run", tr_engine_run(e));
    struct tr_stats st;
    must("tr_engine_stats", tr_engine_stats(e, &st));
    /* The owner ended well; each round one child failed and the others
     * ended cancelled. */
    if (st.tasks_ok != 1 || st.tasks_live != 0 || st.group_failures != (uint64_t)r->rounds)
        pc_die("count mismatch: %" PRIu64 " ok, %" PRIu64 " group failures", st.tasks_ok,
               st.group_failures);
    must("tr_engine_destroy", tr_engine_destroy(e));
}

/* ---- main ---------------------------------------------------------------------------- */

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* The median of n values (sorted in place; n odd or even). */
static double median(uint64_t *v, long long n)
{
    qsort(v, (size_t)n, sizeof(*v), cmp_u64);
    return n % 2 ? (double)v[n / 2] : ((double)v[n / 2 - 1] + (double)v[n / 2]) / 2.0;
}

static enum mode parse_mode(const char *s)
{
    for (size_t i = 0; i < sizeof(mode_names) / sizeof(mode_names[0]); i++)
        if (s && !strcmp(s, mode_names[i]))
            return (enum mode)i;
    fprintf(stderr, "--mode must be one of chan, sem, yield, mutex, pthread_mutex, event, call, "
                    "group\n");
    pc_usage(usage);
}

static void print_head(enum mode mode, long long n, long long rounds, const char *extra_param)
{
    printf("{\"bench\":\"sync\",\"impl\":\"taskring\",\"params\":{\"mode\":\"%s\",\"N\":%lld,"
           "\"R\":%lld%s},",
           mode_names[mode], n, rounds, extra_param);
}

static void print_tail(void)
{
    printf("\"cpu_util\":%.3f}\n", (double)total_cpu / (double)total_wall);
}

/* chan, sem, yield: per round, the ns of 2 * iters hand-offs or switches. */
static void main_pingpong(enum mode mode, bool asym, long long iters, long long rounds)
{
    uint64_t ns[ROUNDS_MAX], sw[ROUNDS_MAX];
    for (long long k = 0; k < rounds; k++) {
        if (mode == M_SEM)
            sw[k] = pingpong_round(M_YIELD, asym, iters);
        ns[k] = pingpong_round(mode, asym, iters);
    }
    double per = 2.0 * (double)iters; /* hand-offs or switches per round */
    double med = median(ns, rounds) / per;
    double lo = (double)ns[0] / per, hi = (double)ns[rounds - 1] / per;
    print_head(mode, iters, rounds, asym ? ",\"shape\":\"asym\"" : ",\"shape\":\"sym\"");
    if (mode == M_CHAN)
        printf("\"value\":%.2f,\"unit\":\"ns/rt\",\"min\":%.2f,\"max\":%.2f,"
               "\"ns_per_handoff\":%.2f,",
               2 * med, 2 * lo, 2 * hi, med);
    else if (mode == M_SEM) {
        double swm = median(sw, rounds) / per;
        printf("\"value\":%.2f,\"unit\":\"ns/handoff\",\"min\":%.2f,\"max\":%.2f,"
               "\"switch_ns\":%.2f,\"ratio\":%.3f,",
               med, lo, hi, swm, med / swm);
    } else
        printf("\"value\":%.2f,\"unit\":\"ns/switch\",\"min\":%.2f,\"max\":%.2f,", med, lo, hi);
    print_tail();
}

static void main_loop(enum mode mode, long long iters, long long rounds)
{
    struct loop_run r = {.mode = mode, .iters = iters, .rounds = rounds};
    loop_rounds(&r);
    double med = median(r.ns, rounds) / (double)iters;
    double lo = (double)r.ns[0] / (double)iters, hi = (double)r.ns[rounds - 1] / (double)iters;
    bool pair = mode == M_MUTEX || mode == M_PTHREAD;
    print_head(mode, iters, rounds, "");
    printf("\"value\":%.3f,\"unit\":\"%s\",\"min\":%.3f,\"max\":%.3f,\"ns_per_op\":%.3f,", med,
           pair ? "ns/pair" : "ns/op", lo, hi, pair ? med / 2 : med);
    print_tail();
}

static void main_group(long long tasks, long long rounds, bool park_event, long long prefill)
{
    struct group_run *r = calloc(1, sizeof(*r));
    if (!r)
        pc_die("out of memory");
    r->tasks = tasks;
    r->rounds = rounds;
    r->park_event = park_event;
    r->prefill = prefill;
    group_rounds(r);
    double first = (double)r->ns[0] / 1e6;
    double med = median(r->ns, rounds) / 1e6;
    char extra[96];
    snprintf(extra, sizeof(extra), ",\"park\":\"%s\",\"prefill\":%lld",
             park_event ? "event" : "sleep", prefill);
    print_head(M_GROUP, tasks, rounds, extra);
    printf("\"value\":%.3f,\"unit\":\"ms\",\"min\":%.3f,\"max\":%.3f,\"first_ms\":%.3f,"
           "\"ns_per_child\":%.1f,\"prefill_ms\":%.3f,",
           med, (double)r->ns[0] / 1e6, (double)r->ns[rounds - 1] / 1e6, first,
           med * 1e6 / (double)tasks, (double)r->prefill_ns / 1e6);
    print_tail();
    free(r);
}

int main(int argc, char **argv)
{
    const char *mode_s = NULL, *park = "sleep", *shape = "sym";
    long long iters = 0, tasks = 10000, rounds = 0, prefill = 0;
    bool iters_seen = false, tasks_seen = false, prefill_seen = false;
    const struct pc_opt opts[] = {
        {"--mode", NULL, 0, 0, &mode_s, NULL},
        {"--iters", &iters, 1, 1000000000000LL, NULL, &iters_seen},
        {"--tasks", &tasks, 2, 1000000, NULL, &tasks_seen},
        {"--park", NULL, 0, 0, &park, NULL},
        {"--shape", NULL, 0, 0, &shape, NULL},
        {"--rounds", &rounds, 1, ROUNDS_MAX, NULL, NULL},
        {"--prefill", &prefill, 0, TR_PREFILL_MAX, NULL, &prefill_seen},
    };
    pc_parse(argc, argv, opts, sizeof(opts) / sizeof(opts[0]), usage);
    enum mode mode = parse_mode(mode_s);
    bool park_event = !strcmp(park, "event");
    if (!park_event && strcmp(park, "sleep")) {
        fprintf(stderr, "--park must be sleep or event\n");
        pc_usage(usage);
    }
    bool asym = !strcmp(shape, "asym");
    if (!asym && strcmp(shape, "sym")) {
        fprintf(stderr, "--shape must be sym or asym\n");
        pc_usage(usage);
    }
    if ((mode == M_GROUP && iters_seen) || (mode != M_GROUP && (tasks_seen || prefill_seen))) {
        fprintf(stderr,
                "--iters is for the loops and ping-pongs, --tasks and --prefill for group\n");
        pc_usage(usage);
    }
    if (!rounds)
        rounds = mode == M_GROUP ? 5 : 3;
    switch (mode) {
    case M_CHAN:
    case M_SEM:
    case M_YIELD:
        main_pingpong(mode, asym, iters_seen ? iters : 2000000, rounds);
        break;
    case M_GROUP:
        main_group(tasks, rounds, park_event, prefill);
        break;
    default:
        main_loop(mode, iters_seen ? iters : 20000000, rounds);
        break;
    }
    return 0;
}
