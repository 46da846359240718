/* SPDX-License-Identifier: MIT */
/*
 * tr_offload and tr_getaddrinfo (DESIGN section 9): jobs on the pool's
 * threads, the bound on the threads and the queue, a cancelled caller that
 * still waits for its running job (G1) or takes back a queued one, the
 * kill rung that leaves a running job its stack and does not hang, name
 * resolution on its own lane, and the errors.
 *
 * Each case runs in a forked child (the pool is process-wide: each child
 * starts with its own, empty), with a deadline.
 */
#include "tr_test.h"
#include "tr_harness.h"
#include "tr_internal.h"

#include <netdb.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <sys/mman.h>

#define MS 1000000ull
#define CK TR_CHILD_CK /* tr_harness.h: a child's check, by its exit status */

static struct {
    pthread_t engine_thread;
    atomic_int running, max_running, on_engine_thread, ran;
    sem_t gate;         /* jobs that block wait here */
    atomic_int blocked; /* jobs waiting at the gate */
    int results_ok, bad;
} g;

/* ---- jobs run on the pool, a few at a time ---------------------------------------- */

static int job_work(void *arg)
{
    int now = atomic_fetch_add(&g.running, 1) + 1;
    int m = atomic_load(&g.max_running);
    while (now > m && !atomic_compare_exchange_weak(&g.max_running, &m, now))
        ;
    if (pthread_equal(pthread_self(), g.engine_thread))
        atomic_fetch_add(&g.on_engine_thread, 1);
    usleep(500);
    atomic_fetch_sub(&g.running, 1);
    return (int)(intptr_t)arg + 1;
}

static int caller(void *arg)
{
    int r = tr_offload(job_work, arg);
    if (r == (int)(intptr_t)arg + 1)
        g.results_ok++;
    else
        g.bad++;
    return 0;
}

static int basic_child(void *arg)
{
    (void)arg;
    CK(tr_offload(job_work, NULL) == -EPERM, 9);
    tr_engine *e = tr_child_engine(true);
    CK(e, 10);
    g.engine_thread = pthread_self();
    for (intptr_t i = 0; i < 64; i++)
        CK(tr_spawn(e, NULL, caller, (void *)i, NULL) == 0, 11);
    CK(tr_engine_run(e) == 0, 12);
    CK(g.results_ok == 64 && g.bad == 0, 13);
    CK(atomic_load(&g.on_engine_thread) == 0, 14);
    CK(atomic_load(&g.max_running) <= 4, 15); /* the general lane's threads */
    CK(tr_engine_destroy(e) == 0, 16);
    return 0;
}

static void test_offload_runs_jobs_on_the_pool(void **state)
{
    (void)state;
    tr_child_run_exit0(basic_child, "offload basics");
}

/* ---- cancellation: queued jobs come back, running ones are waited for --------------- */

static int job_blocked(void *arg)
{
    atomic_fetch_add(&g.blocked, 1);
    while (sem_wait(&g.gate) != 0)
        ;
    int *buf = arg;
    if (buf) {
        usleep(2000); /* the caller, if it did not wait, would be gone by now */
        *buf = 777;
    }
    atomic_fetch_add(&g.ran, 1);
    return 5;
}

static int job_never(void *arg)
{
    (void)arg;
    atomic_fetch_add(&g.ran, 100); /* must not run: it was taken back */
    return 0;
}

static struct {
    int queued_ret, running_ret, running_buf, running_next;
    tr_task *queued, *running;
} c;

static int filler(void *arg)
{
    return tr_offload(job_blocked, arg) == 5 ? 0 : -EIO;
}

static int queued_caller(void *arg)
{
    (void)arg;
    c.queued_ret = tr_offload(job_never, NULL);
    return 0;
}

static int running_caller(void *arg)
{
    (void)arg;
    int buf = 0;
    c.running_ret = tr_offload(job_blocked, &buf);
    c.running_buf = buf;
    c.running_next = tr_yield();
    return 0;
}

static int cancel_ctl(void *arg)
{
    (void)arg;
    /* Three fillers and the running caller hold the four threads. */
    for (int i = 0; i < 3; i++)
        if (tr_spawn(NULL, NULL, filler, NULL, NULL) != 0)
            return -ENOMEM;
    if (tr_spawn(NULL, &c.running, running_caller, NULL, NULL) != 0)
        return -ENOMEM;
    /* Bounded by the child's deadline. */
    while (atomic_load(&g.blocked) < 4)
        tr_sleep_ns(MS);
    if (tr_spawn(NULL, &c.queued, queued_caller, NULL, NULL) != 0)
        return -ENOMEM;
    tr_yield(); /* it queues its job */
    tr_yield();
    tr_cancel(c.queued);
    tr_cancel(c.running);
    int r;
    tr_join(c.queued, &r); /* taken back at once */
    if (c.queued_ret != -ECANCELED)
        return -EIO;
    /* The running caller still waits: its job has not returned. */
    if (c.running->state != TR_TASK_PARKED)
        return -EBUSY;
    for (int i = 0; i < 4; i++)
        sem_post(&g.gate);
    tr_join(c.running, &r);
    return 0;
}

static int cancel_child(void *arg)
{
    (void)arg;
    sem_init(&g.gate, 0, 0);
    tr_engine *e = tr_child_engine(true);
    CK(e, 10);
    tr_task *m;
    CK(tr_spawn(e, &m, cancel_ctl, NULL, NULL) == 0, 11);
    CK(tr_engine_run(e) == 0, 12);
    int r = -1;
    CK(tr_task_result(m, &r) == 0, 13);
    CK(r == 0, 20 + (r < 0 ? -r % 50 : 0));
    CK(c.running_ret == 5, 14);   /* its job's result (G5) */
    CK(c.running_buf == 777, 15); /* the job wrote into its frame before it returned (G1) */
    CK(c.running_next == -ECANCELED, 16);
    CK(atomic_load(&g.ran) == 4, 17); /* job_never never ran */
    tr_detach(m);
    CK(tr_engine_destroy(e) == 0, 18);
    return 0;
}

static void test_offload_cancel_takes_back_queued_waits_for_running(void **state)
{
    (void)state;
    tr_child_run_exit0(cancel_child, "offload cancellation");
}

/* ---- a full queue -------------------------------------------------------------------- */

static int full_ret;
static int full_ctl(void *arg)
{
    (void)arg;
    /* The four threads first, each blocked in a job... */
    for (int i = 0; i < 4; i++)
        if (tr_spawn(NULL, NULL, filler, NULL, NULL) != 0)
            return -ENOMEM;
    while (atomic_load(&g.blocked) < 4) /* bounded by the child's deadline */
        tr_sleep_ns(MS);
    /* ...then 4096 queued behind them (one pass: each queues and parks)... */
    for (int i = 0; i < 4096; i++)
        if (tr_spawn(NULL, NULL, filler, NULL, NULL) != 0)
            return -ENOMEM;
    tr_yield();
    /* ...and one more finds the queue full. */
    full_ret = tr_offload(job_never, NULL);
    for (int i = 0; i < 4 + 4096; i++)
        sem_post(&g.gate);
    return 0;
}

static int full_child(void *arg)
{
    (void)arg;
    sem_init(&g.gate, 0, 0);
    tr_engine *e = tr_child_engine(true);
    CK(e, 10);
    CK(tr_spawn(e, NULL, full_ctl, NULL, NULL) == 0, 12);
    CK(tr_engine_run(e) == 0, 13);
    CK(full_ret == -EAGAIN, 14);
    CK(atomic_load(&g.ran) == 4 + 4096, 15);
    struct tr_stats st;
    tr_engine_stats(e, &st);
    CK(st.tasks_failed == 0, 16); /* every filler's job ran and returned 5 */
    CK(tr_engine_destroy(e) == 0, 17);
    return 0;
}

static void test_offload_full_queue_is_eagain(void **state)
{
    (void)state;
    tr_child_run_exit0(full_child, "offload queue bound");
}

/* ---- a burst finds threads for all its jobs ------------------------------------------ */

/* One worker exists and is idle (asleep, past its spin); then two jobs are
 * queued in one pass: one blocks until the other has run. With only the
 * one worker for both they would wait on each other (until the child's
 * deadline); the lane makes a second thread. */
static atomic_int g_quick_done;

static int job_until_quick(void *arg)
{
    (void)arg;
    /* Bounded: 10 s, then it gives up (the check below fails). */
    for (int i = 0; i < 10000 && !atomic_load(&g_quick_done); i++)
        usleep(1000);
    return atomic_load(&g_quick_done) ? 1 : -ETIMEDOUT;
}

static int job_quick(void *arg)
{
    (void)arg;
    atomic_store(&g_quick_done, 1);
    return 2;
}

static int burst_slow(void *arg)
{
    (void)arg;
    return tr_offload(job_until_quick, NULL);
}

static int burst_quick(void *arg)
{
    (void)arg;
    return tr_offload(job_quick, NULL);
}

static int burst_ctl(void *arg)
{
    (void)arg;
    if (tr_offload(job_quick, NULL) != 2) /* the lane's first thread */
        return -EIO;
    atomic_store(&g_quick_done, 0);
    tr_sleep_ns(20 * MS); /* it sleeps now (its spin is 50 us): not a sync, a state */
    tr_task *a, *b;
    if (tr_spawn(NULL, &a, burst_slow, NULL, NULL) || tr_spawn(NULL, &b, burst_quick, NULL, NULL))
        return -ENOMEM;
    int ra = 0, rb = 0;
    tr_join(a, &ra);
    tr_join(b, &rb);
    return ra == 1 && rb == 2 ? 0 : -EIO;
}

static int burst_child(void *arg)
{
    (void)arg;
    tr_engine *e = tr_child_engine(true);
    CK(e, 10);
    tr_task *m;
    CK(tr_spawn(e, &m, burst_ctl, NULL, NULL) == 0, 11);
    CK(tr_engine_run(e) == 0, 12);
    int r = -1;
    CK(tr_task_result(m, &r) == 0 && r == 0, 13);
    tr_detach(m);
    CK(tr_engine_destroy(e) == 0, 14);
    return 0;
}

static void test_offload_burst_gets_threads(void **state)
{
    (void)state;
    tr_child_run_exit0(burst_child, "offload burst");
}

/* ---- the kill rung does not wait for a running job ----------------------------------- */

static atomic_int g_kill_wrote;

static int job_stuck(void *arg)
{
    int *buf = arg;
    atomic_fetch_add(&g.blocked, 1);
    while (sem_wait(&g.gate) != 0)
        ;
    *buf = 1; /* into the killed task's stack: still mapped */
    atomic_store(&g_kill_wrote, 1);
    return 0;
}

static int stuck_caller(void *arg)
{
    (void)arg;
    int buf[16] = {0};
    (void)tr_offload(job_stuck, &buf[3]);
    return 0;
}

static int kill_main(void *arg)
{
    (void)arg;
    if (tr_spawn(NULL, NULL, stuck_caller, NULL, NULL) != 0)
        return -ENOMEM;
    while (atomic_load(&g.blocked) < 1)
        tr_sleep_ns(MS);
    return 0; /* the shutdown: cancel (waited), grace, kill */
}

static int kill_child(void *arg)
{
    (void)arg;
    sem_init(&g.gate, 0, 0);
    int fd = memfd_create("report", MFD_CLOEXEC);
    struct tr_config cfg;
    tr_config_init(&cfg);
    cfg.flags |= TR_CFG_NO_SIGNALS;
    cfg.grace_ms = 20;
    cfg.kill_ms = 20;
    cfg.report_fd = fd;
    CK(tr_run(kill_main, NULL, &cfg) == 0, 10); /* returned: did not hang on the job */
    CK(atomic_load(&g_kill_wrote) == 0, 11);
    static char buf[16384];
    ssize_t n = pread(fd, buf, sizeof(buf) - 1, 0);
    CK(n > 0, 12);
    buf[n] = 0;
    CK(strstr(buf, "offloaded jobs still running at the kill rung: 1") != NULL, 13);
    CK(strstr(buf, "1 killed") != NULL, 14);
    /* The job goes on, writes into the stack it was left, and frees its
     * record: nothing crashes, nobody is told. */
    sem_post(&g.gate);
    for (int i = 0; i < 10000 && !atomic_load(&g_kill_wrote); i++)
        usleep(1000);
    CK(atomic_load(&g_kill_wrote) == 1, 15);
    return 0;
}

static void test_offload_kill_rung_leaves_running_job_its_stack(void **state)
{
    (void)state;
    tr_child_run_exit0(kill_child, "offload at the kill rung");
}

/* ---- name resolution ------------------------------------------------------------------ */

static int gai_rc[4];
static int gai_task(void *arg)
{
    (void)arg;
    struct addrinfo *res = NULL;
    struct addrinfo hints = {.ai_family = AF_INET,
                             .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_NUMERICHOST | AI_NUMERICSERV};
    gai_rc[0] = tr_getaddrinfo("127.0.0.1", "8080", &hints, &res);
    if (gai_rc[0] == 0) {
        const struct sockaddr_in *sin = (const struct sockaddr_in *)res->ai_addr;
        if (ntohs(sin->sin_port) != 8080)
            gai_rc[0] = -EIO;
        freeaddrinfo(res);
    }
    gai_rc[1] = tr_getaddrinfo("not-a-number", NULL, &hints, &res); /* no DNS: NUMERICHOST */
    gai_rc[2] = tr_getaddrinfo(NULL, NULL, &hints, &res);
    gai_rc[3] = tr_getaddrinfo("127.0.0.1", "80", &hints, NULL);
    return 0;
}

static int gai_child(void *arg)
{
    (void)arg;
    tr_engine *e = tr_child_engine(true);
    CK(e, 10);
    struct addrinfo *res;
    CK(tr_getaddrinfo("127.0.0.1", NULL, NULL, &res) == -EPERM, 11);
    CK(tr_spawn(e, NULL, gai_task, NULL, NULL) == 0, 12);
    CK(tr_engine_run(e) == 0, 13);
    CK(gai_rc[0] == 0, 14);
    CK(gai_rc[1] == -ENOENT, 15);
    CK(gai_rc[2] == -EINVAL && gai_rc[3] == -EINVAL, 16);
    CK(tr_engine_destroy(e) == 0, 17);
    return 0;
}

static void test_offload_getaddrinfo_on_its_lane(void **state)
{
    (void)state;
    tr_child_run_exit0(gai_child, "tr_getaddrinfo");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_offload_runs_jobs_on_the_pool),
        T(test_offload_cancel_takes_back_queued_waits_for_running),
        T(test_offload_full_queue_is_eagain),
        T(test_offload_burst_gets_threads),
        T(test_offload_kill_rung_leaves_running_job_its_stack),
        T(test_offload_getaddrinfo_on_its_lane),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
