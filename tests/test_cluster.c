/* SPDX-License-Identifier: MIT */
/*
 * Many engines (DESIGN section 9, G12): tr_post from foreign threads and
 * from tasks of other engines, tr_call with its cancellation carried
 * across and still waited for (G1), and clusters: their lockstep shutdown
 * at one signal, the ladder's rungs on every engine, the order of the
 * phases across engines, the first failing main, the combined report.
 *
 * Every case runs in a forked child (threads and signals stay there) with
 * a deadline, and says what failed by its exit status.
 */
#include "tr_test.h"
#include "tr_harness.h"
#include "tr_internal.h"

#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/epoll.h>
#include <sys/mman.h>

#define MS 1000000ull
#define CK TR_CHILD_CK /* tr_harness.h: a child's check, by its exit status */

/* The report goes to a memfd, read back by the child. */
static int report_memfd(void)
{
    return memfd_create("report", MFD_CLOEXEC);
}

static bool report_has(int fd, const char *needle, char *buf, size_t len)
{
    ssize_t n = pread(fd, buf, len - 1, 0);
    if (n < 0)
        return false;
    buf[n] = 0;
    return strstr(buf, needle) != NULL;
}

/* ---- tr_post from foreign threads ---------------------------------------------- */

#define POSTERS 3
#if defined(__SANITIZE_THREAD__)
#define POSTS 1000 /* TSan caps live fibers (a task each) at 8128 */
#else
#define POSTS 20000
#endif

static struct {
    tr_engine *e;
    atomic_int go;
    unsigned next[POSTERS]; /* the engine's thread only */
    unsigned got, out_of_order;
    atomic_int posters_done;
} g_post;

static int posted_fn(void *arg)
{
    uintptr_t v = (uintptr_t)arg;
    unsigned who = (unsigned)(v >> 32), seq = (unsigned)v;
    if (g_post.next[who] != seq)
        g_post.out_of_order++;
    g_post.next[who] = seq + 1;
    g_post.got++;
    return 0;
}

static void *poster(void *arg)
{
    uintptr_t who = (uintptr_t)arg;
    while (!atomic_load(&g_post.go))
        sched_yield();
    for (uintptr_t i = 0; i < POSTS; i++) {
        int r;
        while ((r = tr_post(g_post.e, posted_fn, (void *)((who << 32) | i))) == -ENOMEM)
            sched_yield();
        if (r != 0)
            return (void *)1;
    }
    if (atomic_fetch_add(&g_post.posters_done, 1) + 1 == POSTERS)
        tr_engine_shutdown(g_post.e); /* after the last post: all of them run */
    return NULL;
}

static int post_waiter(void *arg)
{
    (void)arg;
    atomic_store(&g_post.go, 1);
    return tr_wait_shutdown();
}

static int post_foreign_child(void *arg)
{
    (void)arg;
    g_post.e = tr_child_engine(true);
    CK(g_post.e, 10);
    pthread_t th[POSTERS];
    for (uintptr_t i = 0; i < POSTERS; i++)
        CK(pthread_create(&th[i], NULL, poster, (void *)i) == 0, 11);
    CK(tr_spawn(g_post.e, NULL, post_waiter, NULL, NULL) == 0, 12);
    CK(tr_engine_run(g_post.e) == 0, 13);
    for (int i = 0; i < POSTERS; i++) {
        void *r;
        pthread_join(th[i], &r);
        CK(r == NULL, 14);
    }
    CK(g_post.got == POSTERS * POSTS, 15);
    CK(g_post.out_of_order == 0, 16); /* each thread's posts in its order */
    /* The shutdown began: refused. */
    CK(tr_post(g_post.e, posted_fn, NULL) == -ESHUTDOWN, 17);
    struct tr_stats st;
    tr_engine_stats(g_post.e, &st);
    CK(st.posts_failed == 0 && st.tasks_live == 0, 18);
    CK(tr_engine_destroy(g_post.e) == 0, 19);
    return 0;
}

static void test_cluster_post_from_foreign_threads_in_order(void **state)
{
    (void)state;
    tr_child_run_exit0(post_foreign_child, "posts from foreign threads");
}

/* A post to an engine that is not running waits for its next run, and
 * the engine cannot be destroyed meanwhile. */
static int ran_once;
static int ran_fn(void *arg)
{
    (void)arg;
    ran_once++;
    return 0;
}

static int post_idle_child(void *arg)
{
    (void)arg;
    tr_engine *e = tr_child_engine(true);
    CK(e, 10);
    CK(tr_post(NULL, ran_fn, NULL) == -EINVAL, 11);
    CK(tr_post(e, NULL, NULL) == -EINVAL, 12);
    CK(tr_post(e, ran_fn, NULL) == 0, 13);
    CK(tr_engine_destroy(e) == -EBUSY, 14); /* a post waits in it */
    CK(ran_once == 0, 15);
    CK(tr_engine_run(e) == 0, 16);
    CK(ran_once == 1, 17);
    CK(tr_engine_destroy(e) == 0, 18);
    return 0;
}

static void test_cluster_post_waits_for_run_and_holds_destroy(void **state)
{
    (void)state;
    tr_child_run_exit0(post_idle_child, "post to an idle engine");
}

/* ---- tr_call between two lone engines ------------------------------------------- */

static struct {
    tr_engine *a, *b;
    atomic_int b_ready;
    int calls_ok, wrong_engine;
    /* The cancelled call */
    atomic_int remote_started, remote_saw_cancel, remote_wrote;
    int cancel_ret, cancel_result, buf_seen;
    tr_task *caller;
} g_call;

static int on_b(void *arg)
{
    if (tr_self_engine() != g_call.b)
        g_call.wrong_engine++;
    return (int)(intptr_t)arg * 2;
}

static int cl_twice_here(void *arg)
{
    return tr_self_engine() == g_call.a ? (int)(intptr_t)arg * 2 : -EXDEV;
}

/* Runs on b: shielded, it writes into the caller's frame 20 ms after the
 * caller was cancelled; the caller must still be waiting (G1). */
static int slow_writer_on_b(void *arg)
{
    int *buf = arg;
    atomic_store(&g_call.remote_started, 1);
    int r = tr_sleep_ns(30ull * 1000 * MS); /* cancelled by the caller's cancel */
    if (r == -ECANCELED)
        atomic_store(&g_call.remote_saw_cancel, 1);
    tr_shield_begin();
    (void)tr_sleep_ns(20 * MS);
    tr_shield_end();
    *buf = 4242;
    atomic_store(&g_call.remote_wrote, 1);
    return r;
}

static int caller_cancelled(void *arg)
{
    (void)arg;
    int buf = 0, result = 0;
    g_call.cancel_ret = tr_call(g_call.b, slow_writer_on_b, &buf, &result);
    g_call.cancel_result = result;
    g_call.buf_seen = buf; /* written before tr_call returned */
    /* The cancellation shows at the next blocking call. */
    return tr_yield() == -ECANCELED ? 0 : -EIO;
}

static int canceller(void *arg)
{
    (void)arg;
    /* Bounded: the remote starts within the deadline of the child. */
    while (!atomic_load(&g_call.remote_started))
        if (tr_sleep_ns(MS) != 0)
            return -EIO;
    return tr_cancel(g_call.caller);
}

static int on_a_main(void *arg)
{
    (void)arg;
    while (!atomic_load(&g_call.b_ready))
        tr_sleep_ns(MS);
    for (int i = 0; i < 1000; i++) {
        int res = -1;
        if (tr_call(g_call.b, on_b, (void *)(intptr_t)i, &res) == 0 && res == 2 * i)
            g_call.calls_ok++;
    }
    /* Its own engine: fine too. */
    int res = -1;
    if (tr_call(g_call.a, cl_twice_here, (void *)(intptr_t)7, &res) != 0 || res != 14)
        return -EIO;
    if (tr_call(NULL, on_b, NULL, NULL) != -EINVAL ||
        tr_call(g_call.b, NULL, NULL, NULL) != -EINVAL)
        return -EINVAL;
    tr_task *c, *k;
    if (tr_spawn(NULL, &c, caller_cancelled, NULL, NULL) != 0)
        return -ENOMEM;
    g_call.caller = c;
    if (tr_spawn(NULL, &k, canceller, NULL, NULL) != 0)
        return -ENOMEM;
    int rc = 0, rk = 0;
    tr_join(k, &rk);
    tr_join(c, &rc);
    tr_engine_shutdown(g_call.b);
    return rc == 0 && rk == 0 ? 0 : -EIO;
}

static int b_main(void *arg)
{
    (void)arg;
    atomic_store(&g_call.b_ready, 1);
    return tr_wait_shutdown();
}

static void *run_b(void *arg)
{
    (void)arg;
    tr_spawn(g_call.b, NULL, b_main, NULL, NULL);
    return (void *)(intptr_t)tr_engine_run(g_call.b);
}

static int call_child(void *arg)
{
    (void)arg;
    g_call.a = tr_child_engine(true);
    g_call.b = tr_child_engine(true);
    CK(g_call.a && g_call.b, 10);
    pthread_t th;
    CK(pthread_create(&th, NULL, run_b, NULL) == 0, 11);
    tr_task *m;
    CK(tr_spawn(g_call.a, &m, on_a_main, NULL, NULL) == 0, 12);
    CK(tr_engine_run(g_call.a) == 0, 13);
    int mr = -1;
    CK(tr_task_result(m, &mr) == 0 && mr == 0, 14);
    void *rb;
    pthread_join(th, &rb);
    CK(rb == NULL, 15);
    CK(g_call.calls_ok == 1000 && g_call.wrong_engine == 0, 16);
    CK(atomic_load(&g_call.remote_saw_cancel), 17); /* the cancel crossed over */
    CK(atomic_load(&g_call.remote_wrote), 18);
    CK(g_call.cancel_ret == 0 && g_call.cancel_result == -ECANCELED, 19);
    CK(g_call.buf_seen == 4242, 20); /* the caller waited for the remote end (G1) */
    CK(tr_call(g_call.b, on_b, NULL, NULL) == -EPERM, 21); /* outside a task */
    tr_detach(m);
    CK(tr_engine_destroy(g_call.a) == 0, 22);
    CK(tr_engine_destroy(g_call.b) == 0, 23);
    return 0;
}

static void test_cluster_call_between_engines_cancel_waits(void **state)
{
    (void)state;
    tr_child_run_exit0(call_child, "tr_call between engines");
}

/* A call to an engine that is not running is taken back by the caller's
 * cancellation: it never ran, and the target holds nothing of it. */
static struct {
    tr_engine *idle;
    tr_task *caller;
    int ret, res, ran;
} g_tb;

static int tb_fn(void *arg)
{
    (void)arg;
    g_tb.ran++;
    return 1;
}

static int tb_caller(void *arg)
{
    (void)arg;
    g_tb.ret = tr_call(g_tb.idle, tb_fn, NULL, &g_tb.res);
    return 0;
}

static int tb_main(void *arg)
{
    (void)arg;
    if (tr_spawn(NULL, &g_tb.caller, tb_caller, NULL, NULL) != 0)
        return -ENOMEM;
    tr_yield(); /* it calls and parks */
    if (g_tb.caller->state != TR_TASK_PARKED)
        return -EIO;
    tr_cancel(g_tb.caller);
    return tr_join(g_tb.caller, NULL);
}

static int take_back_child(void *arg)
{
    (void)arg;
    tr_engine *a = tr_child_engine(true);
    g_tb.idle = tr_child_engine(true);
    CK(a && g_tb.idle, 10);
    CK(tr_spawn(a, NULL, tb_main, NULL, NULL) == 0, 11);
    CK(tr_engine_run(a) == 0, 12);
    CK(g_tb.ret == -ECANCELED && g_tb.ran == 0, 13);
    CK(tr_engine_destroy(g_tb.idle) == 0, 14); /* nothing of the call was left in it */
    CK(tr_engine_destroy(a) == 0, 15);
    return 0;
}

static void test_cluster_call_to_idle_engine_taken_back(void **state)
{
    (void)state;
    tr_child_run_exit0(take_back_child, "tr_call taken back");
}

/* A call to the caller's own engine: its REPLY goes back into the same
 * inbox as the CALL came from. A cancel that comes after the REPLY was
 * queued, before it was read, must leave the REPLY there: taking it back
 * as if it were the CALL lost it, and the engine waited for the caller's
 * ACK for ever (found by the stress tool). The canceller sleeps 1 us at a
 * time: its timer fires in the duties that spawn the served task, so it
 * runs right after that task's end, in the window. */
static struct {
    tr_task *caller;
    bool done;
    int rounds, cut, windows;
} g_self;

static int self_fn(void *arg)
{
    (void)arg;
    return 3;
}

static int self_caller(void *arg)
{
    (void)arg;
    int res = 0;
    int r = tr_call(tr_self_engine(), self_fn, NULL, &res);
    if (r == -ECANCELED)
        g_self.cut++;
    else if (r != 0 || res != 3)
        return -EIO;
    return 0;
}

static int self_canceller(void *arg)
{
    (void)arg;
    tr_engine *e = tr_self_engine();
    /* Bounded: the caller ends within the round. */
    while (!g_self.done) {
        if (g_self.caller && g_self.caller->state == TR_TASK_PARKED && tr__inbox_pending(e) &&
            e->ib.nserved == 1 &&
            tr__container_of(e->ib.served.next, struct tr__served, link)->replied) {
            g_self.windows++; /* the REPLY is queued, not read */
            tr_cancel(g_self.caller);
        }
        if (tr_sleep_ns(1000) != 0)
            return -EIO;
    }
    return 0;
}

static int self_main(void *arg)
{
    (void)arg;
    tr_task *k;
    if (tr_spawn(NULL, &k, self_canceller, NULL, NULL))
        return -ENOMEM;
    for (int i = 0; i < 2000 && g_self.windows < 20; i++) {
        if (tr_spawn(NULL, &g_self.caller, self_caller, NULL, NULL))
            return -ENOMEM;
        int rc = -1;
        tr_join(g_self.caller, &rc);
        g_self.caller = NULL;
        if (rc)
            return -EIO;
        g_self.rounds++;
    }
    g_self.done = true;
    int rk = -1;
    tr_join(k, &rk);
    return rk;
}

static int self_call_child(void *arg)
{
    (void)arg;
    tr_engine *e = tr_child_engine(true);
    CK(e, 10);
    tr_task *m;
    CK(tr_spawn(e, &m, self_main, NULL, NULL) == 0, 11);
    CK(tr_engine_run(e) == 0, 12); /* returns: no ACK left owed */
    int r = -1;
    CK(tr_task_result(m, &r) == 0 && r == 0, 13);
    CK(g_self.windows > 0, 14); /* the case was there */
    tr_detach(m);
    CK(e->ib.nserved == 0, 15);
    CK(tr_engine_destroy(e) == 0, 16);
    return 0;
}

static void test_cluster_self_call_cancel_keeps_reply(void **state)
{
    (void)state;
    tr_child_run_exit0(self_call_child, "tr_call to its own engine, cancelled after the reply");
}

/* The caller's kill rung does not wait for a remote task that ignores its
 * cancellation: the call is abandoned, the caller's stack left to the
 * remote side (which still writes into it), and the caller's engine ends
 * within its grace and kill. */
static struct {
    tr_engine *b;
    atomic_int b_up, remote_in, remote_done, a_done;
} g_ab;

static int ab_remote(void *arg)
{
    volatile int *buf = arg;
    atomic_store(&g_ab.remote_in, 1);
    tr_shield_begin();
    /* Bounded: until engine A has ended (it must not wait for us). */
    for (int i = 0; i < 20000 && !atomic_load(&g_ab.a_done); i++)
        (void)tr_sleep_ns(MS);
    tr_shield_end();
    buf[0] = 99; /* into the abandoned caller's stack: never freed */
    atomic_store(&g_ab.remote_done, 1);
    return 0;
}

static int ab_caller(void *arg)
{
    (void)arg;
    int buf[8] = {0};
    int r;
    (void)tr_call(g_ab.b, ab_remote, buf, &r);
    return 0;
}

static int ab_main(void *arg)
{
    (void)arg;
    while (!atomic_load(&g_ab.b_up))
        tr_sleep_ns(MS);
    if (tr_spawn(NULL, NULL, ab_caller, NULL, NULL) != 0)
        return -ENOMEM;
    while (!atomic_load(&g_ab.remote_in))
        tr_sleep_ns(MS);
    return 0; /* tr_run's shutdown: the caller is cancelled, then killed */
}

static int ab_b_main(void *arg)
{
    (void)arg;
    atomic_store(&g_ab.b_up, 1);
    return tr_wait_shutdown();
}

static void *ab_b_thread(void *arg)
{
    (void)arg;
    tr_spawn(g_ab.b, NULL, ab_b_main, NULL, NULL);
    return (void *)(intptr_t)tr_engine_run(g_ab.b);
}

static int abandon_child(void *arg)
{
    (void)arg;
    g_ab.b = tr_child_engine(true);
    CK(g_ab.b, 10);
    pthread_t th;
    CK(pthread_create(&th, NULL, ab_b_thread, NULL) == 0, 11);
    int fd = report_memfd();
    struct tr_config cfg;
    tr_config_init(&cfg);
    cfg.flags |= TR_CFG_NO_SIGNALS;
    cfg.grace_ms = 20;
    cfg.kill_ms = 20;
    cfg.report_fd = fd;
    CK(tr_run(ab_main, NULL, &cfg) == 0, 12);
    CK(!atomic_load(&g_ab.remote_done), 13); /* A did not wait for it */
    atomic_store(&g_ab.a_done, 1);
    static char buf[16384];
    CK(report_has(fd, "calls whose remote task had not ended at the kill rung: 1", buf,
                  sizeof(buf)),
       14);
    /* B finishes the task, sends nothing back, and can end. */
    for (int i = 0; i < 20000 && !atomic_load(&g_ab.remote_done); i++)
        usleep(1000);
    CK(atomic_load(&g_ab.remote_done), 15);
    tr_engine_shutdown(g_ab.b);
    void *rb;
    pthread_join(th, &rb);
    CK(rb == NULL, 16);
    CK(tr_engine_destroy(g_ab.b) == 0, 17);
    return 0;
}

static void test_cluster_kill_rung_abandons_stuck_call(void **state)
{
    (void)state;
    tr_child_run_exit0(abandon_child, "tr_call abandoned at the kill rung");
}

/* ---- clusters ------------------------------------------------------------------ */

static unsigned count_of(const char *hay, const char *needle)
{
    unsigned n = 0;
    for (const char *p = hay; (p = strstr(p, needle)) != NULL; p += strlen(needle))
        n++;
    return n;
}

static struct {
    atomic_int bad, calls, posts;
    atomic_int fail_index; /* -1: none fails */
    atomic_int parked;
} g_cl;

static int cl_posted(void *arg)
{
    (void)arg;
    atomic_fetch_add(&g_cl.posts, 1);
    return 0;
}

static int cl_index_fn(void *arg)
{
    (void)arg;
    return (int)tr_engine_index();
}

static int cl_main(void *arg)
{
    (void)arg;
    unsigned i = tr_engine_index(), n = tr_engine_count();
    if (n != 4 || i >= n || tr_engine_at(i) != tr_self_engine() || tr_engine_at(n) != NULL)
        atomic_fetch_add(&g_cl.bad, 1);
    if ((int)i == atomic_load(&g_cl.fail_index))
        return -EIO;
    if (atomic_load(&g_cl.fail_index) >= 0)
        return tr_wait_shutdown(); /* until the failing main shuts all down */
    for (int k = 0; k < 100; k++) {
        unsigned j = (i + 1 + (unsigned)k) % n;
        int res = -1;
        if (tr_call(tr_engine_at(j), cl_index_fn, NULL, &res) == 0 && res == (int)j)
            atomic_fetch_add(&g_cl.calls, 1);
        if (tr_post(tr_engine_at(j), cl_posted, NULL) != 0)
            atomic_fetch_add(&g_cl.bad, 1);
    }
    return 0; /* the last main's end shuts the cluster down */
}

static int cluster_basic_child(void *arg)
{
    (void)arg;
    CK(tr_engine_index() == 0 && tr_engine_count() == 0 && tr_engine_at(0) == NULL, 9);
    atomic_store(&g_cl.fail_index, -1);
    struct tr_cluster_config cfg;
    tr_cluster_config_init(&cfg);
    cfg.engines = 4;
    cfg.flags = TR_CLUSTER_PIN;
    cfg.engine.report_fd = report_memfd();
    CK(cfg.engine.report_fd >= 0, 10);
    CK(tr_cluster_run(NULL, NULL, &cfg) == -EINVAL, 11);
    struct tr_cluster_config bad = cfg;
    bad.flags = 0x80;
    CK(tr_cluster_run(cl_main, NULL, &bad) == -EINVAL, 12);
    CK(tr_cluster_run(cl_main, NULL, &cfg) == 0, 13);
    CK(atomic_load(&g_cl.bad) == 0, 14);
    CK(atomic_load(&g_cl.calls) == 400, 15);
    /* Posts accepted before the shutdown began all ran (the last main's
     * end starts it, after every post of its own). */
    CK(atomic_load(&g_cl.posts) == 400, 16);
    static char buf[65536];
    CK(report_has(cfg.engine.report_fd, "cluster shutdown report (4 engines", buf, sizeof(buf)),
       17);
    CK(count_of(buf, "taskring:   engine ") >= 4, 18);
    CK(strstr(buf, "audit: 0 tasks live, 0 ops in flight: quiescent") != NULL, 19);
    /* The first failing main's result, and the others shut down. */
    atomic_store(&g_cl.fail_index, 2);
    CK(tr_cluster_run(cl_main, NULL, &cfg) == -EIO, 20);
    CK(atomic_load(&g_cl.bad) == 0, 21);
    return 0;
}

static void test_cluster_runs_mains_calls_posts_and_reports(void **state)
{
    (void)state;
    tr_child_run_exit0(cluster_basic_child, "cluster basics");
}

/* One SIGTERM ends every engine of a cluster of 8 (more than the cores):
 * 200 parked tasks each; the mains, cancelled, did not fail. */
#define SIG_ENGINES 8
#define SIG_TASKS 200

static int parked_fn(void *arg)
{
    (void)arg;
    atomic_fetch_add(&g_cl.parked, 1);
    return tr_sleep_ns(3600ull * 1000 * MS);
}

static int sig_main(void *arg)
{
    (void)arg;
    for (int k = 0; k < SIG_TASKS; k++)
        if (tr_spawn(NULL, NULL, parked_fn, NULL, NULL) != 0)
            return -ENOMEM;
    if (tr_engine_index() == 0) {
        /* Bounded by the child's deadline. */
        while (atomic_load(&g_cl.parked) < SIG_ENGINES * SIG_TASKS)
            if (tr_sleep_ns(MS) != 0)
                return -EIO;
        kill(getpid(), SIGTERM);
    }
    return tr_wait_shutdown() == 0 ? -ECANCELED : -EIO;
}

static int cluster_sigterm_child(void *arg)
{
    (void)arg;
    struct tr_cluster_config cfg;
    tr_cluster_config_init(&cfg);
    cfg.engines = SIG_ENGINES;
    cfg.engine.report_fd = report_memfd();
    CK(tr_cluster_run(sig_main, NULL, &cfg) == 0, 10);
    static char buf[65536];
    CK(report_has(cfg.engine.report_fd, "trigger: signal TERM", buf, sizeof(buf)), 11);
    CK(count_of(buf, "taskring:   engine ") >= SIG_ENGINES, 12);
    char want[96];
    /* The parked tasks and the mains. */
    snprintf(want, sizeof(want), "%d cancelled, 0 failed, 0 killed", SIG_ENGINES * (SIG_TASKS + 1));
    CK(strstr(buf, want) != NULL, 13);
    /* The mask is back as it was: SIGTERM not blocked. */
    sigset_t now;
    pthread_sigmask(SIG_BLOCK, NULL, &now);
    CK(sigismember(&now, SIGTERM) == 0, 14);
    return 0;
}

static void test_cluster_one_sigterm_ends_every_engine(void **state)
{
    (void)state;
    tr_child_run_exit0(cluster_sigterm_child, "cluster SIGTERM");
}

/* The ladder, cluster-wide: shielded stragglers on every engine; the 2nd
 * SIGTERM breaks every engine's shields, the 3rd kills on every engine. A
 * plain thread sends the signals once every straggler saw what the one
 * before did. */
static struct {
    atomic_int saw_cancel, saw_broken;
} g_lad;

static int straggler(void *arg)
{
    (void)arg;
    atomic_fetch_add(&g_cl.parked, 1);
    tr_shield_begin();
    /* Until the kill: each sleep a cancellation point the shield holds,
     * then (shields broken) one that fails at once. */
    bool saw = false, broken = false;
    for (;;) {
        int r = tr_sleep_ns(2 * MS);
        if (!saw && tr_is_cancelled()) {
            saw = true;
            atomic_fetch_add(&g_lad.saw_cancel, 1);
        }
        if (!broken && r == -ECANCELED) {
            broken = true;
            atomic_fetch_add(&g_lad.saw_broken, 1);
            tr_shield_end();
            tr_shield_begin();
        }
        if (broken)
            (void)tr_yield(); /* -ECANCELED at once: the kill rung ends it */
    }
    return 0; /* never: the kill rung ends it */
}

#define LAD_TASKS 10
static void *ladder_thread(void *arg)
{
    (void)arg;
    const int total = SIG_ENGINES * LAD_TASKS;
    /* Bounded by the child's deadline. */
    while (atomic_load(&g_cl.parked) < total)
        usleep(1000);
    kill(getpid(), SIGTERM);
    while (atomic_load(&g_lad.saw_cancel) < total)
        usleep(1000);
    kill(getpid(), SIGTERM);
    while (atomic_load(&g_lad.saw_broken) < total)
        usleep(1000);
    kill(getpid(), SIGTERM);
    return NULL;
}

static int ladder_main(void *arg)
{
    (void)arg;
    for (int k = 0; k < LAD_TASKS; k++)
        if (tr_spawn(NULL, NULL, straggler, NULL, NULL) != 0)
            return -ENOMEM;
    return tr_wait_shutdown() == 0 ? -ECANCELED : -EIO;
}

static int cluster_ladder_child(void *arg)
{
    (void)arg;
    struct tr_cluster_config cfg;
    tr_cluster_config_init(&cfg);
    cfg.engines = SIG_ENGINES;
    cfg.engine.grace_ms = 600000; /* only signals move the ladder */
    cfg.engine.kill_ms = 600000;
    cfg.engine.report_fd = report_memfd();
    /* The thread is created with the signals blocked (the engine blocks
     * them only in its own thread): it must not take the SIGTERM. */
    sigset_t s, old;
    sigemptyset(&s);
    sigaddset(&s, SIGTERM);
    sigaddset(&s, SIGINT);
    pthread_sigmask(SIG_BLOCK, &s, &old);
    pthread_t th;
    CK(pthread_create(&th, NULL, ladder_thread, NULL) == 0, 9);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    int r = tr_cluster_run(ladder_main, NULL, &cfg);
    pthread_join(th, NULL);
    CK(r == 0, 10);
    static char buf[65536];
    CK(report_has(cfg.engine.report_fd, "signals received: 3", buf, sizeof(buf)), 11);
    char want[64];
    snprintf(want, sizeof(want), "failed, %d killed", SIG_ENGINES * LAD_TASKS);
    CK(strstr(buf, want) != NULL, 12); /* the totals */
    snprintf(want, sizeof(want), "failed, %d killed", LAD_TASKS);
    CK(count_of(buf, want) == SIG_ENGINES, 13); /* each engine's line */
    CK(count_of(buf, "; shields broken\n") == SIG_ENGINES, 14);
    return 0;
}

static void test_cluster_ladder_rungs_reach_every_engine(void **state)
{
    (void)state;
    tr_child_run_exit0(cluster_ladder_child, "cluster ladder");
}

/* Lockstep: no engine finalizes before every engine's tasks have ended.
 * Engine 1's last task needs 50 ms after its cancellation; engine 0's
 * at-shutdown hook runs after it. */
static atomic_int g_slow_done, g_hook_saw;

static int slow_ender(void *arg)
{
    (void)arg;
    atomic_fetch_add(&g_cl.parked, 1);
    (void)tr_wait_shutdown();
    tr_shield_begin();
    (void)tr_sleep_ns(50 * MS);
    tr_shield_end();
    atomic_store(&g_slow_done, 1);
    return 0;
}

static int hook0(void *arg)
{
    (void)arg;
    atomic_store(&g_hook_saw, atomic_load(&g_slow_done) ? 1 : 2);
    return 0;
}

static int order_main(void *arg)
{
    (void)arg;
    if (tr_engine_index() == 0 && tr_at_shutdown(hook0, NULL) != 0)
        return -ENOMEM;
    if (tr_engine_index() == 1 && tr_spawn(NULL, NULL, slow_ender, NULL, NULL) != 0)
        return -ENOMEM;
    return 0;
}

static int cluster_order_child(void *arg)
{
    (void)arg;
    struct tr_cluster_config cfg;
    tr_cluster_config_init(&cfg);
    cfg.engines = 3;
    cfg.engine.report_fd = -1;
    CK(tr_cluster_run(order_main, NULL, &cfg) == 0, 10);
    CK(atomic_load(&g_slow_done) == 1, 11);
    CK(atomic_load(&g_hook_saw) == 1, 12); /* engine 0 finalized after engine 1's tasks */
    return 0;
}

static void test_cluster_finalize_waits_for_every_engine(void **state)
{
    (void)state;
    tr_child_run_exit0(cluster_order_child, "cluster phase order");
}

/* ---- TR_CHAN_SHARED across a cluster -------------------------------------------- */

/* Producers on every engine send (producer, seq) into one shared channel;
 * consumers on every engine receive, some inside deadlines of a few
 * microseconds that cut them short while they wait (G9: a cut receive
 * took nothing). Every message arrives exactly once. */
#define SH_ENGINES 4
#define SH_PRODUCERS 2 /* per engine */
#define SH_MSGS 3000   /* per producer */
#define SH_CONSUMERS 3 /* per engine */

static struct {
    struct tr_chan *ch;
    _Atomic unsigned char seen[SH_ENGINES * SH_PRODUCERS][SH_MSGS];
    atomic_int dups, bad, got, cut, producers_left, xdev;
} g_sh;

struct sh_msg {
    uint32_t producer, seq;
};

static int sh_producer(void *arg)
{
    uint32_t p = (uint32_t)(uintptr_t)arg;
    for (uint32_t i = 0; i < SH_MSGS; i++) {
        struct sh_msg m = {p, i};
        int r = tr_chan_send(g_sh.ch, &m);
        if (r != 0) {
            atomic_fetch_add(&g_sh.bad, 1);
            return r;
        }
    }
    if (atomic_fetch_sub(&g_sh.producers_left, 1) == 1)
        tr_chan_close(g_sh.ch); /* the last: receivers drain, then -EPIPE */
    return 0;
}

static int sh_consumer(void *arg)
{
    uint64_t k = (uint64_t)(uintptr_t)arg;
    for (;;) {
        struct sh_msg m = {UINT32_MAX, UINT32_MAX};
        struct tr_scope sc;
        bool scoped = (k++ % 3) == 0;
        if (scoped)
            tr_scope_enter(&sc, tr_now_ns() + 2000, 0);
        int r = tr_chan_recv(g_sh.ch, &m);
        if (scoped)
            tr_scope_exit(&sc);
        if (r == -EPIPE)
            return 0;
        if (r == -ETIMEDOUT) {
            if (m.producer != UINT32_MAX)
                atomic_fetch_add(&g_sh.bad, 1); /* cut, and took something */
            atomic_fetch_add(&g_sh.cut, 1);
            continue;
        }
        if (r != 0 || m.producer >= SH_ENGINES * SH_PRODUCERS || m.seq >= SH_MSGS) {
            atomic_fetch_add(&g_sh.bad, 1);
            return -EIO;
        }
        if (atomic_exchange(&g_sh.seen[m.producer][m.seq], 1))
            atomic_fetch_add(&g_sh.dups, 1);
        atomic_fetch_add(&g_sh.got, 1);
    }
}

static int sh_main(void *arg)
{
    (void)arg;
    unsigned i = tr_engine_index();
    tr_task *ts[SH_PRODUCERS + SH_CONSUMERS];
    unsigned n = 0;
    for (unsigned p = 0; p < SH_PRODUCERS; p++)
        if (tr_spawn(NULL, &ts[n++], sh_producer, (void *)(uintptr_t)(i * SH_PRODUCERS + p), NULL))
            return -ENOMEM;
    for (unsigned c = 0; c < SH_CONSUMERS; c++)
        if (tr_spawn(NULL, &ts[n++], sh_consumer, (void *)(uintptr_t)(c + i), NULL))
            return -ENOMEM;
    for (unsigned k = 0; k < n; k++)
        tr_join(ts[k], NULL);
    return 0;
}

static int shared_chan_child(void *arg)
{
    (void)arg;
    CK(tr_chan_create(&g_sh.ch, sizeof(struct sh_msg), 4, TR_CHAN_SHARED) == 0, 10);
    CK(tr_chan_create(&g_sh.ch, sizeof(struct sh_msg), 4, 0x80) == -EINVAL, 11);
    CK(tr_chan_create(&g_sh.ch, sizeof(struct sh_msg), 4, TR_CHAN_SHARED) == 0, 12);
    atomic_store(&g_sh.producers_left, SH_ENGINES * SH_PRODUCERS);
    struct tr_cluster_config cfg;
    tr_cluster_config_init(&cfg);
    cfg.engines = SH_ENGINES;
    cfg.engine.report_fd = -1;
    CK(tr_cluster_run(sh_main, NULL, &cfg) == 0, 13);
    CK(atomic_load(&g_sh.bad) == 0, 14);
    CK(atomic_load(&g_sh.dups) == 0, 15);
    CK(atomic_load(&g_sh.got) == SH_ENGINES * SH_PRODUCERS * SH_MSGS, 16); /* none lost */
    CK(atomic_load(&g_sh.cut) > 0, 18); /* the cut receives were there */
    CK(tr_chan_destroy(g_sh.ch) == 0, 17);
    return 0;
}

/* The order: producers on every engine, one consumer (on engine 0): a
 * FIFO channel hands each producer's messages over in the order they were
 * sent. */
static struct {
    struct tr_chan *ch;
    uint32_t next[SH_ENGINES];
    atomic_int bad, producers_left;
    int got;
} g_sq;

static int sq_producer(void *arg)
{
    (void)arg;
    uint32_t p = tr_engine_index();
    for (uint32_t i = 0; i < SH_MSGS; i++) {
        struct sh_msg m = {p, i};
        if (tr_chan_send(g_sq.ch, &m) != 0) {
            atomic_fetch_add(&g_sq.bad, 1);
            return -EIO;
        }
    }
    if (atomic_fetch_sub(&g_sq.producers_left, 1) == 1)
        tr_chan_close(g_sq.ch);
    return 0;
}

static int sq_main(void *arg)
{
    (void)arg;
    tr_task *p;
    if (tr_spawn(NULL, &p, sq_producer, NULL, NULL))
        return -ENOMEM;
    if (tr_engine_index() == 0) {
        for (;;) {
            struct sh_msg m;
            int r = tr_chan_recv(g_sq.ch, &m);
            if (r == -EPIPE)
                break;
            if (r != 0 || m.producer >= SH_ENGINES || m.seq != g_sq.next[m.producer]) {
                atomic_fetch_add(&g_sq.bad, 1);
                break;
            }
            g_sq.next[m.producer]++;
            g_sq.got++;
        }
    }
    return tr_join(p, NULL);
}

static int shared_order_child(void *arg)
{
    (void)arg;
    CK(tr_chan_create(&g_sq.ch, sizeof(struct sh_msg), 2, TR_CHAN_SHARED) == 0, 10);
    atomic_store(&g_sq.producers_left, SH_ENGINES);
    struct tr_cluster_config cfg;
    tr_cluster_config_init(&cfg);
    cfg.engines = SH_ENGINES;
    cfg.engine.report_fd = -1;
    CK(tr_cluster_run(sq_main, NULL, &cfg) == 0, 11);
    CK(atomic_load(&g_sq.bad) == 0, 12);
    CK(g_sq.got == SH_ENGINES * SH_MSGS, 13);
    CK(tr_chan_destroy(g_sq.ch) == 0, 14);
    return 0;
}

static void test_cluster_shared_channel_keeps_each_senders_order(void **state)
{
    (void)state;
    tr_child_run_exit0(shared_order_child, "TR_CHAN_SHARED: each sender's order");
}

static void test_cluster_shared_channel_across_engines(void **state)
{
    (void)state;
    tr_child_run_exit0(shared_chan_child, "TR_CHAN_SHARED across a cluster");
}

/* ---- embedding: an epoll loop drives the engine ------------------------------- */

static struct {
    tr_engine *e;
    int pipe_w;
    atomic_int posted;
    int slept, read_ok, post_ran, deadline_cut;
} g_emb;

static int emb_sleeper(void *arg)
{
    (void)arg;
    g_emb.slept = tr_sleep_ns(20 * MS) == 0; /* only a ring timeout wakes the host */
    return 0;
}

static int emb_reader(void *arg)
{
    int fd = (int)(intptr_t)arg;
    char c;
    g_emb.read_ok = tr_read(fd, &c, 1, 0) == 1 && c == 'x';
    return 0;
}

static int emb_post_fn(void *arg)
{
    (void)arg;
    g_emb.post_ran = 1;
    return 0;
}

static int emb_scoped(void *arg)
{
    (void)arg;
    struct tr_scope sc;
    tr_scope_enter(&sc, tr_now_ns() + 30 * MS, 0);
    g_emb.deadline_cut = tr_wait_shutdown() == -ETIMEDOUT;
    tr_scope_exit(&sc);
    return 0;
}

static void *emb_thread(void *arg)
{
    (void)arg;
    usleep(10000); /* not synchronisation: the loop below blocks until these come */
    (void)!write(g_emb.pipe_w, "x", 1);
    while (tr_post(g_emb.e, emb_post_fn, NULL) == -ENOMEM)
        sched_yield();
    atomic_store(&g_emb.posted, 1);
    return NULL;
}

static int embed_child(void *arg)
{
    (void)arg;
    g_emb.e = tr_child_engine(true);
    tr_engine *e = g_emb.e;
    CK(e, 10);
    CK(tr_engine_fd(NULL) == -EINVAL && tr_engine_run_once(NULL, 0) == -EINVAL, 11);
    CK(tr_engine_run_once(e, -2) == -EINVAL, 12);
    int fd = tr_engine_fd(e);
    CK(fd >= 0 && tr_engine_fd(e) == fd, 13);
    int p[2];
    CK(pipe2(p, O_CLOEXEC) == 0, 14);
    g_emb.pipe_w = p[1];
    CK(tr_spawn(e, NULL, emb_sleeper, NULL, NULL) == 0, 15);
    CK(tr_spawn(e, NULL, emb_reader, (void *)(intptr_t)p[0], NULL) == 0, 16);
    CK(tr_spawn(e, NULL, emb_scoped, NULL, NULL) == 0, 17);
    pthread_t th;
    CK(pthread_create(&th, NULL, emb_thread, NULL) == 0, 18);
    int ep = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event ev = {.events = EPOLLIN};
    CK(epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) == 0, 19);
    /* The host waits for ever: every wake-up must come through the fd (the
     * child's deadline catches one that never does). Bounded: each round
     * either makes progress or waits for the next event. */
    int r = tr_engine_run_once(e, 0);
    int rounds = 0;
    while (r == 1 && rounds < 100000) {
        struct epoll_event out;
        int n = epoll_wait(ep, &out, 1, -1);
        if (n < 0 && errno == EINTR)
            continue;
        CK(n == 1, 20);
        r = tr_engine_run_once(e, 0);
        rounds++;
        /* The post comes after the other three ended: then nothing is
         * alive until it runs. Keep a task alive until the post is in. */
        if (r == 0 && !atomic_load(&g_emb.posted))
            r = tr_spawn(e, NULL, emb_scoped, NULL, NULL) == 0 ? 1 : -ENOMEM;
    }
    pthread_join(th, NULL);
    while (r == 1) /* the post's task, if it came last */
        r = tr_engine_run_once(e, -1);
    CK(r == 0, 21);
    CK(g_emb.slept && g_emb.read_ok && g_emb.deadline_cut, 22);
    CK(g_emb.post_ran, 23);
    struct tr_stats st;
    tr_engine_stats(e, &st);
    CK(st.engine_ops_inflight == 0 && st.tasks_live == 0, 24); /* G2 at the idle return */
    CK(tr_engine_destroy(e) == 0, 25);
    close(ep);
    return 0;
}

static void test_cluster_embed_epoll_drives_engine(void **state)
{
    (void)state;
    tr_child_run_exit0(embed_child, "embedding in epoll");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_cluster_post_from_foreign_threads_in_order),
        T(test_cluster_post_waits_for_run_and_holds_destroy),
        T(test_cluster_call_between_engines_cancel_waits),
        T(test_cluster_call_to_idle_engine_taken_back),
        T(test_cluster_self_call_cancel_keeps_reply),
        T(test_cluster_kill_rung_abandons_stuck_call),
        T(test_cluster_runs_mains_calls_posts_and_reports),
        T(test_cluster_one_sigterm_ends_every_engine),
        T(test_cluster_ladder_rungs_reach_every_engine),
        T(test_cluster_finalize_waits_for_every_engine),
        T(test_cluster_shared_channel_across_engines),
        T(test_cluster_shared_channel_keeps_each_senders_order),
        T(test_cluster_embed_epoll_drives_engine),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
