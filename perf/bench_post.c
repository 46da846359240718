/* SPDX-License-Identifier: MIT */
/*
 * bench_post.c — messages between two engines on two threads (DESIGN
 * section 9).
 *
 *   bench_post [--mode post|call] [--messages N] [--window W]
 *
 * post: a task on engine A posts N messages to engine B (tr_post, each a
 *       detached task on B that counts itself), keeping at most W (default
 *       4096) posted and not yet run: past that it spins until B catches
 *       up, as the anchor's sender does. The clock runs from the first post
 *       to the last message's run on B. ns per message. Anchor:
 *       baseline_msgring (a bare liburing IORING_OP_MSG_RING loop between
 *       two threads, 64 per submit).
 * call: a task on A makes N tr_call round trips to B, one at a time (B
 *       runs a task that returns at once). ns per call, no anchor.
 *
 * Both engines are TR_CFG_NO_SIGNALS; A runs on the main thread, B on a
 * second one. Output, one JSON line:
 *   {"bench":"post","impl":"taskring","params":{...},"value":<ns>,"unit":"ns/msg",
 *    "doorbells_per_msg":..,"b_enters_per_msg":..}
 */
#include "perf_common.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>

static const char usage[] =
    "usage: bench_post [--mode post|call] [--messages N] [--window W]\n"
    "  messages between two engines on two threads; one JSON line: ns per message.\n";

static struct {
    tr_engine *a, *b;
    long long n, window;
    _Atomic long long ran; /* on B */
    _Atomic int b_up;
    uint64_t t0, t1;
    int err;
} g;

static int on_b_count(void *arg)
{
    (void)arg;
    long long r = atomic_fetch_add_explicit(&g.ran, 1, memory_order_release) + 1;
    if (r == g.n)
        g.t1 = pc_now_ns();
    return 0;
}

static int on_b_nothing(void *arg)
{
    return (int)(intptr_t)arg;
}

static int b_main(void *arg)
{
    (void)arg;
    atomic_store(&g.b_up, 1);
    return tr_wait_shutdown();
}

static void *b_thread(void *arg)
{
    (void)arg;
    int err = tr_spawn(g.b, NULL, b_main, NULL, NULL);
    if (err == 0)
        err = tr_engine_run(g.b);
    return (void *)(intptr_t)err;
}

static int a_post(void *arg)
{
    (void)arg;
    while (!atomic_load(&g.b_up))
        tr_sleep_ns(100000);
    g.t0 = pc_now_ns();
    for (long long i = 0; i < g.n; i++) {
        /* Bounded by B's progress: B runs on its own thread. */
        while (i - atomic_load_explicit(&g.ran, memory_order_acquire) >= g.window)
            sched_yield();
        int err = tr_post(g.b, on_b_count, NULL);
        if (err) {
            g.err = err;
            return err;
        }
    }
    while (atomic_load_explicit(&g.ran, memory_order_acquire) < g.n)
        sched_yield();
    return tr_engine_shutdown(g.b);
}

static int a_call(void *arg)
{
    (void)arg;
    while (!atomic_load(&g.b_up))
        tr_sleep_ns(100000);
    g.t0 = pc_now_ns();
    for (long long i = 0; i < g.n; i++) {
        int res = -1;
        int err = tr_call(g.b, on_b_nothing, (void *)(intptr_t)(i & 0xffff), &res);
        if (err || res != (int)(i & 0xffff)) {
            g.err = err ? err : -EIO;
            return g.err;
        }
    }
    g.t1 = pc_now_ns();
    return tr_engine_shutdown(g.b);
}

int main(int argc, char **argv)
{
    const char *mode = "post";
    g.n = 2000000;
    g.window = 4096;
    bool n_seen = false;
    const struct pc_opt opts[] = {
        {"--mode", NULL, 0, 0, &mode, NULL},
        {"--messages", &g.n, 1, 1000000000LL, NULL, &n_seen},
        {"--window", &g.window, 1, 1 << 20, NULL, NULL},
    };
    pc_parse(argc, argv, opts, sizeof(opts) / sizeof(opts[0]), usage);
    bool call = !strcmp(mode, "call");
    if (!call && strcmp(mode, "post"))
        pc_usage(usage);
    if (call && !n_seen)
        g.n = 200000;
    g.a = pc_engine_new(0);
    g.b = pc_engine_new(0);
    pthread_t th;
    if (pthread_create(&th, NULL, b_thread, NULL))
        pc_die("pthread_create");
    int err = tr_spawn(g.a, NULL, call ? a_call : a_post, NULL, NULL);
    if (err)
        pc_die("tr_spawn: %s", strerror(-err));
    err = tr_engine_run(g.a);
    void *berr;
    pthread_join(th, &berr);
    if (err || berr || g.err)
        pc_die("run: a %d, b %d, task %d", err, (int)(intptr_t)berr, g.err);
    struct tr_stats sa, sb;
    tr_engine_stats(g.a, &sa);
    tr_engine_stats(g.b, &sb);
    if (!call && atomic_load(&g.ran) != g.n)
        pc_die("count mismatch: %lld of %lld ran", atomic_load(&g.ran), g.n);
    double ns = (double)(g.t1 - g.t0) / (double)g.n;
    printf("{\"bench\":\"%s\",\"impl\":\"taskring\",\"params\":{\"N\":%lld,\"window\":%lld},"
           "\"value\":%.1f,\"unit\":\"ns/%s\",\"b_enters_per_msg\":%.4f,"
           "\"a_enters_per_msg\":%.4f}\n",
           call ? "call" : "post", g.n, g.window, ns, call ? "call" : "msg",
           (double)sb.submit_calls / (double)g.n, (double)sa.submit_calls / (double)g.n);
    if (tr_engine_destroy(g.a) || tr_engine_destroy(g.b))
        pc_die("tr_engine_destroy");
    return 0;
}
