/* SPDX-License-Identifier: MIT */
/*
 * bench_timers.c — the engine's timers at scale: N armed deadlines, each
 * moved M times (a server resetting an idle timeout per request), with the
 * engine's timing wheel (engine/wait/timer.c) against the binary heap it
 * replaced (its code kept below, as it was in the engine: entries with
 * their keys, records holding their heap index), in the same run.
 *
 *   bench_timers [--timers N] [--moves M] [--impl wheel|heap]
 *
 * N timers (default 100000) are armed for deadlines spread over 60-120 s
 * from now, then each is moved M times (default 10) in rounds (every timer
 * once per round, in a shuffled order: requests come on random
 * connections), each move an idle-timeout reset to 60 s from the round's
 * time (so earlier than the first deadline for some, later for others),
 * then all are disarmed. Nothing fires: deadlines are a minute away.
 * White-box: it links the engine's internals, as the tests do.
 *
 * Output, one JSON line on stdout:
 *   {"bench":"timers","impl":"wheel"|"heap","params":{"N":..,"M":..},
 *    "value":<ns per move>,"unit":"ns/move","arm_ns":..,"disarm_ns":..,
 *    "bytes_per_timer":..}
 * bytes_per_timer: the timer record plus, for the heap, its array's share
 * (capacity x entry size / N); the wheel's fixed slots are 6 KiB per
 * engine, not per timer. memory_floor_ns: the same moves' least work (read
 * and write each cold record's deadline, in the same order, no timer
 * structure): at 1M timers (40 MB of records) a move is a cache miss.
 */
#include "taskring.h"
#include "perf_common.h"
#include "tr_internal.h"

static const char usage[] =
    "usage: bench_timers [--timers N] [--moves M] [--impl wheel|heap]\n"
    "  N armed deadlines (default 100000), each moved M times (default 10);\n"
    "  prints one JSON line: ns per move.\n";

/* ---- the heap the wheel replaced (engine/wait/timer.c before the wheel) ---- */

struct heap_timer {
    uint64_t deadline_ns;
    uint64_t seq;
    uint32_t heap_idx;
    void (*fire)(void *);
};
struct heap_ent {
    uint64_t deadline_ns, seq;
    struct heap_timer *tm;
};
struct heap {
    struct heap_ent *h;
    uint32_t len, cap;
    uint64_t seq;
};

static bool before(const struct heap_ent *a, const struct heap_ent *b)
{
    if (a->deadline_ns != b->deadline_ns)
        return a->deadline_ns < b->deadline_ns;
    return a->seq < b->seq;
}

static void heap_set(struct heap *q, uint32_t i, struct heap_ent ent)
{
    q->h[i] = ent;
    ent.tm->heap_idx = i;
}

static void sift_up(struct heap *q, uint32_t i)
{
    struct heap_ent t = q->h[i];
    while (i > 0) {
        uint32_t parent = (i - 1) / 2;
        if (!before(&t, &q->h[parent]))
            break;
        heap_set(q, i, q->h[parent]);
        i = parent;
    }
    heap_set(q, i, t);
}

static void sift_down(struct heap *q, uint32_t i)
{
    struct heap_ent t = q->h[i];
    for (;;) {
        uint32_t l = 2 * i + 1, r = l + 1, m = i;
        const struct heap_ent *best = &t;
        if (l < q->len && before(&q->h[l], best)) {
            m = l;
            best = &q->h[l];
        }
        if (r < q->len && before(&q->h[r], best))
            m = r;
        if (m == i)
            break;
        heap_set(q, i, q->h[m]);
        i = m;
    }
    heap_set(q, i, t);
}

static void heap_arm(struct heap *q, struct heap_timer *t, uint64_t d)
{
    if (q->len == q->cap) {
        q->cap = q->cap ? q->cap * 2 : 64;
        q->h = realloc(q->h, (size_t)q->cap * sizeof(*q->h));
        if (!q->h)
            pc_die("out of memory");
    }
    t->deadline_ns = d;
    t->seq = ++q->seq;
    uint32_t i = q->len++;
    heap_set(q, i, (struct heap_ent){d, t->seq, t});
    sift_up(q, i);
}

static void heap_disarm(struct heap *q, struct heap_timer *t)
{
    uint32_t i = t->heap_idx;
    t->heap_idx = UINT32_MAX;
    q->len--;
    if (i == q->len)
        return;
    heap_set(q, i, q->h[q->len]);
    if (i > 0 && before(&q->h[i], &q->h[(i - 1) / 2]))
        sift_up(q, i);
    else
        sift_down(q, i);
}

/* ---- the run ------------------------------------------------------------------ */

static uint64_t rng = 0x9e3779b97f4a7c15ull;
static uint64_t next_rand(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

static void never_fires(tr_engine *e, struct tr__timer *tm)
{
    (void)e;
    (void)tm;
    pc_die("a timer fired: deadlines are a minute away");
}

int main(int argc, char **argv)
{
    long long n = 100000, m = 10;
    const char *impl = "wheel";
    const struct pc_opt opts[] = {
        {"--timers", &n, 1, 100000000, NULL, NULL},
        {"--moves", &m, 1, 1000, NULL, NULL},
        {"--impl", NULL, 0, 0, &impl, NULL},
    };
    pc_parse(argc, argv, opts, sizeof(opts) / sizeof(opts[0]), usage);
    bool wheel = !strcmp(impl, "wheel");
    if (!wheel && strcmp(impl, "heap"))
        pc_usage(usage);

    /* Deadlines and a shuffled order, made before any clock starts. */
    uint64_t *dl = malloc(sizeof(uint64_t) * (size_t)n * (size_t)(m + 1));
    uint32_t *order = malloc(sizeof(uint32_t) * (size_t)n);
    if (!dl || !order)
        pc_die("out of memory");
    for (long long i = 0; i < n; i++)
        order[i] = (uint32_t)i;
    for (long long i = n - 1; i > 0; i--) {
        uint32_t j = (uint32_t)(next_rand() % (uint64_t)(i + 1)), x = order[i];
        order[i] = order[j];
        order[j] = x;
    }
    uint64_t now = pc_now_ns(), s60 = 60000000000ull;
    /* Round 0 arms over 60-120 s; each round then resets every timer to
     * "60 s from now" (the round's time, 1 ms a round in this model) plus a
     * jitter under 1 ms: an idle timeout reset per request. */
    for (long long i = 0; i < n; i++)
        dl[i] = now + s60 + next_rand() % s60;
    for (long long r = 1; r <= m; r++)
        for (long long i = 0; i < n; i++)
            dl[r * n + i] = now + s60 + (uint64_t)r * 1000000ull + next_rand() % 1000000ull;

    tr_engine *e = NULL;
    struct tr__timer *wt = NULL;
    struct heap q = {0};
    struct heap_timer *ht = NULL;
    if (wheel) {
        e = pc_engine_new(64);
        wt = calloc((size_t)n, sizeof(*wt));
        if (!wt)
            pc_die("out of memory");
        for (long long i = 0; i < n; i++)
            tr__timer_init(&wt[i], never_fires);
    } else {
        ht = calloc((size_t)n, sizeof(*ht));
        if (!ht)
            pc_die("out of memory");
    }

    uint64_t t0 = pc_now_ns();
    for (long long i = 0; i < n; i++) {
        if (wheel)
            (void)tr__timer_arm(e, &wt[i], dl[i]);
        else
            heap_arm(&q, &ht[i], dl[i]);
    }
    uint64_t t1 = pc_now_ns();
    for (long long r = 1; r <= m; r++) {
        const uint64_t *d = dl + r * n;
        for (long long k = 0; k < n; k++) {
            /* The k-th move's deadline (independent draws, read in order:
             * what is timed is the timer's move, not the bench's own
             * random read of its table). */
            uint32_t i = order[k];
            if (wheel) {
                tr__timer_move(e, &wt[i], d[k]);
            } else {
                heap_disarm(&q, &ht[i]);
                heap_arm(&q, &ht[i], d[k]);
            }
        }
    }
    uint64_t t2 = pc_now_ns();
    for (long long i = 0; i < n; i++) {
        if (wheel)
            tr__timer_disarm(e, &wt[i]);
        else
            heap_disarm(&q, &ht[i]);
    }
    uint64_t t3 = pc_now_ns();

    double bytes;
    if (wheel) {
        struct tr_stats st;
        tr_engine_stats(e, &st);
        if (st.timers_pending != 0)
            pc_die("%" PRIu64 " timers left armed", st.timers_pending);
        bytes = (double)sizeof(struct tr__timer);
        int err = tr_engine_destroy(e);
        if (err)
            pc_die("tr_engine_destroy: %s", strerror(-err));
    } else {
        if (q.len != 0)
            pc_die("%u timers left in the heap", q.len);
        bytes = (double)sizeof(struct heap_timer) +
                (double)q.cap * (double)sizeof(struct heap_ent) / (double)n;
    }
    /* The memory's floor, in the same order: each move's least work (read
     * a cold record's deadline, write a later one) on records of the same
     * size, with no timer structure at all. */
    struct floor_rec {
        uint64_t deadline_ns;
        char rest[sizeof(struct tr__timer) - sizeof(uint64_t)];
    } *fr = malloc((size_t)n * sizeof(*fr));
    if (!fr)
        pc_die("out of memory");
    memset(fr, 0, (size_t)n * sizeof(*fr)); /* its pages faulted in before the clock, as wt's */
    uint64_t t4 = pc_now_ns();
    for (long long r = 1; r <= m; r++) {
        const uint64_t *d = dl + r * n;
        for (long long k = 0; k < n; k++) {
            struct floor_rec *f = &fr[order[k]];
            if (d[k] > f->deadline_ns)
                f->deadline_ns = d[k];
        }
    }
    uint64_t t5 = pc_now_ns();
    uint64_t sum = 0;
    for (long long i = 0; i < n; i++)
        sum += fr[i].deadline_ns;
    if (sum == 0)
        pc_die("the floor loop wrote nothing");
    free(fr);
    printf("{\"bench\":\"timers\",\"impl\":\"%s\",\"params\":{\"N\":%lld,\"M\":%lld},"
           "\"value\":%.1f,\"unit\":\"ns/move\",\"arm_ns\":%.1f,\"disarm_ns\":%.1f,"
           "\"bytes_per_timer\":%.1f,\"memory_floor_ns\":%.1f}\n",
           impl, n, m, (double)(t2 - t1) / (double)(n * m), (double)(t1 - t0) / (double)n,
           (double)(t3 - t2) / (double)n, bytes, (double)(t5 - t4) / (double)(n * m));
    return 0;
}
