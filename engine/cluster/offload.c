/* SPDX-License-Identifier: MIT */
/*
 * offload.c — tr_offload and tr_getaddrinfo: blocking work on a
 * process-wide pool of threads (DESIGN section 9).
 *
 * Two lanes, each a bounded FIFO of jobs under a mutex, served by threads
 * made on demand up to the lane's count: the general lane and a smaller
 * one for name resolution, so that a stalled DNS server cannot starve the
 * rest. A job is a heap record (the caller's frame may outlive nothing: see
 * the kill rung below) whose completion is a message into the caller's
 * engine's inbox, read by its inbox duty, which wakes the caller.
 *
 * A job's state decides who may touch it:
 *   QUEUED    in its lane: the caller's cancellation takes it back (it
 *             never runs) and the caller returns -ECANCELED;
 *   RUNNING   a worker runs fn(arg): the caller waits whatever happens
 *             (arg may live on its stack, G1);
 *   DONE      the worker finished and sent the completion;
 *   ABANDONED the kill rung ended the caller while fn still ran: the
 *             worker frees the job when fn returns and tells nobody; the
 *             task's stack is never freed or reused (tr__stack_abandon),
 *             and the report names the task.
 * RUNNING -> DONE (the worker) and RUNNING -> ABANDONED (the kill rung)
 * race through one compare-and-swap: exactly one wins.
 */
#include "tr_internal.h"

#include <errno.h>
#include <netdb.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>

enum job_state { JOB_QUEUED = 1, JOB_RUNNING, JOB_DONE, JOB_ABANDONED };

struct lane {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct tr__link queue; /* struct job, FIFO */
    unsigned queued, max_queue;
    unsigned threads, idle, max_threads; /* idle: asleep in cv */
    _Atomic unsigned spinning;           /* workers polling for the next job */
    _Atomic unsigned pending;            /* queued, for the spinners (no lock) */
};

struct job {
    struct tr__msg msg; /* the completion, into the caller's engine */
    struct tr__link link;
    tr_fn fn;
    void *arg;
    int result;
    _Atomic int state;
    struct lane *lane;
    tr_engine *e;
    tr_task *caller;
};

/* The wait record, in the caller's frame. */
struct job_wait {
    struct tr__wait w;
    struct job *job;
};

#define LANE_INIT(q, th)                                                                           \
    {                                                                                              \
        .mu = PTHREAD_ADAPTIVE_MUTEX_INITIALIZER_NP, .cv = PTHREAD_COND_INITIALIZER,               \
        .max_queue = (q), .max_threads = (th)                                                      \
    }
static struct lane lane_general = LANE_INIT(4096, 4), lane_resolve = LANE_INIT(256, 2);

/* fork(2) copies only the calling thread: the child starts with lanes
 * that have no thread (jobs queued in the parent stay the parent's). */
static void atfork_prepare(void)
{
    pthread_mutex_lock(&lane_general.mu);
    pthread_mutex_lock(&lane_resolve.mu);
}

static void atfork_parent(void)
{
    pthread_mutex_unlock(&lane_resolve.mu);
    pthread_mutex_unlock(&lane_general.mu);
}

static void lane_reset(struct lane *l)
{
    (void)tr__mutex_init_adaptive(&l->mu);
    pthread_cond_init(&l->cv, NULL);
    tr__list_init(&l->queue);
    l->queued = l->threads = l->idle = 0;
    atomic_store(&l->spinning, 0);
    atomic_store(&l->pending, 0);
}

static void atfork_child(void)
{
    lane_reset(&lane_general);
    lane_reset(&lane_resolve);
}

static pthread_once_t lanes_once = PTHREAD_ONCE_INIT;

static void lanes_init(void)
{
    tr__list_init(&lane_general.queue);
    tr__list_init(&lane_resolve.queue);
    (void)pthread_atfork(atfork_prepare, atfork_parent, atfork_child);
}

/* A worker with nothing to do polls a while before it sleeps (with
 * l->mu held on entry and return): a job that comes meanwhile costs no
 * futex wake-up, which costs tens of microseconds here (bench_offload at
 * one job in flight: 17k jobs/s without). */
#define TR_WORKER_SPIN_NS 50000ull

static void spin_for_job(struct lane *l)
{
    /* One spinner at a time: more would take the CPU from the engines that
     * feed them (4 workers and an engine on 2 cores: 128 jobs in flight ran
     * at half the rate with every idle worker spinning). */
    unsigned none = 0;
    if (!atomic_compare_exchange_strong_explicit(&l->spinning, &none, 1, memory_order_relaxed,
                                                 memory_order_relaxed))
        return;
    pthread_mutex_unlock(&l->mu);
    uint64_t until = tr__now_ns() + TR_WORKER_SPIN_NS;
    /* Bounded by the clock, read every 64 rounds. */
    for (unsigned i = 1; !atomic_load_explicit(&l->pending, memory_order_relaxed); i++) {
        tr__cpu_relax();
        if (i % 64 == 0 && tr__now_ns() >= until)
            break;
    }
    pthread_mutex_lock(&l->mu);
    atomic_fetch_sub_explicit(&l->spinning, 1, memory_order_relaxed);
}

/* A worker: takes jobs until the process ends. Its signals are blocked
 * (created so): a shutdown signal is never delivered to it. */
static void *worker(void *arg)
{
    struct lane *l = arg;
    pthread_mutex_lock(&l->mu);
    for (;;) {
        if (tr__list_empty(&l->queue))
            spin_for_job(l);
        while (tr__list_empty(&l->queue)) {
            l->idle++;
            pthread_cond_wait(&l->cv, &l->mu);
            l->idle--;
        }
        struct job *j = tr__container_of(l->queue.next, struct job, link);
        tr__list_del(&j->link);
        l->queued--;
        atomic_store_explicit(&l->pending, l->queued, memory_order_relaxed);
        atomic_store_explicit(&j->state, JOB_RUNNING, memory_order_relaxed);
        pthread_mutex_unlock(&l->mu);
        int r = j->fn(j->arg);
        j->result = r == TR__WAKE_CUT ? -EOVERFLOW : r;
        int running = JOB_RUNNING;
        if (atomic_compare_exchange_strong_explicit(&j->state, &running, JOB_DONE,
                                                    memory_order_acq_rel, memory_order_acquire))
            tr__inbox_push_control(j->e, &j->msg);
        else
            free(j); /* abandoned by the kill rung: nobody waits */
        pthread_mutex_lock(&l->mu);
    }
    return NULL;
}

/* Under l->mu, before the job is queued: a thread for it, unless a worker
 * is free for it. 0, or -EAGAIN when the lane has no thread at all and
 * none can be made. */
static int lane_staff(struct lane *l)
{
    /* A thread for each queued job beyond the workers that will take one
     * (asleep, or polling): a burst queued in one pass must not all wait
     * for the one idle worker there was. */
    unsigned avail = l->idle + atomic_load_explicit(&l->spinning, memory_order_relaxed);
    if (l->queued < avail || l->threads >= l->max_threads)
        return 0;
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    pthread_attr_t at;
    pthread_attr_init(&at);
    pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
    pthread_t th;
    int err = TR_FAULT(TR_FS_ALLOC) ? EAGAIN : pthread_create(&th, &at, worker, l);
    pthread_attr_destroy(&at);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (err == 0) {
        l->threads++;
        return 0;
    }
    return l->threads > 0 ? 0 : -EAGAIN;
}

/* The inbox duty of the caller's engine: the job is done. */
static void job_done(tr_engine *e, struct tr__msg *m)
{
    struct job *j = tr__container_of(m, struct job, msg);
    TR_ASSERT(atomic_load(&j->state) == JOB_DONE);
    tr_task *t = j->caller;
    int r = j->result;
    free(j);
    TR_ASSERT(e->ib.awaiting > 0);
    e->ib.awaiting--;
    tr__task_wake(t, r);
}

static struct job *job_of(tr_task *t)
{
    return tr__container_of(t->wait, struct job_wait, w)->job;
}

/* Under the lane's lock: a job still queued comes out of its lane (it
 * will never run). */
static bool take_back(struct job *j)
{
    struct lane *l = j->lane;
    pthread_mutex_lock(&l->mu);
    bool queued = atomic_load_explicit(&j->state, memory_order_relaxed) == JOB_QUEUED;
    if (queued) {
        tr__list_del(&j->link);
        l->queued--;
        atomic_store_explicit(&l->pending, l->queued, memory_order_relaxed);
    }
    pthread_mutex_unlock(&l->mu);
    return queued;
}

/* t's job, if still queued, comes back: freed, and t woken cut short (it
 * never ran). */
static bool take_back_woken(tr_engine *e, tr_task *t, struct job *j)
{
    if (!take_back(j))
        return false;
    free(j);
    e->ib.awaiting--;
    tr__task_wake(t, TR__WAKE_CUT);
    return true;
}

/* Cut short: a job still queued is taken back and never runs; a running
 * one is waited for (G1), the cancellation delivered (the kill rung may
 * then end the wait, below). */
static void job_cancel(tr_engine *e, tr_task *t)
{
    if (!take_back_woken(e, t, job_of(t)))
        tr__cancel_held(t);
}

/* The kill rung: a running job is abandoned to its worker, with the
 * task's stack (never freed, never reused); the task ends now. If the job
 * has just finished, its completion is on its way: wait for it. */
static void job_kill(tr_engine *e, tr_task *t)
{
    struct job *j = job_of(t);
    if (take_back_woken(e, t, j))
        return;
    int running = JOB_RUNNING;
    if (!atomic_compare_exchange_strong(&j->state, &running, JOB_ABANDONED))
        return; /* DONE: the completion wakes it */
    t->stack_lent = true;
    e->st.offload_abandoned++;
    e->ib.awaiting--;
    tr__task_wake(t, -ECANCELED);
}

static void job_describe(const tr_engine *e, const tr_task *t, char *buf, size_t len)
{
    (void)e;
    const struct job *j = tr__container_of(t->wait, struct job_wait, w)->job;
    int st = atomic_load(&j->state);
    snprintf(buf, len, " job=%s%s", j->lane == &lane_resolve ? "resolve" : "offload",
             st == JOB_QUEUED ? " queued" : " running");
}

static const struct tr__wait_kind wk_offload = {
    .name = "offload",
    .cancel = job_cancel,
    .kill = job_kill,
    .describe = job_describe,
};

static int offload_on(struct lane *l, tr_fn fn, void *arg)
{
    tr_task *t = tr__current;
    if (!t)
        return -EPERM;
    if (!fn)
        return -EINVAL;
    int why = tr__cancel_point(t); /* -EPERM inside a tr_op prep callback too */
    if (why)
        return why;
    struct job *j = TR_FAULT(TR_FS_ALLOC) ? NULL : calloc(1, sizeof(*j));
    if (!j)
        return -ENOMEM;
    j->msg.kind = TR_MSG_HOOK;
    j->msg.hook = job_done;
    j->fn = fn;
    j->arg = arg;
    j->lane = l;
    j->e = t->e;
    j->caller = t;
    atomic_store_explicit(&j->state, JOB_QUEUED, memory_order_relaxed);
    pthread_once(&lanes_once, lanes_init);
    pthread_mutex_lock(&l->mu);
    int err = l->queued >= l->max_queue ? -EAGAIN : lane_staff(l);
    if (!err) {
        tr__list_add_tail(&l->queue, &j->link);
        l->queued++;
        atomic_store_explicit(&l->pending, l->queued, memory_order_relaxed);
        /* A spinner takes one job without being woken: wake a sleeper only
         * for the jobs beyond it. */
        if (l->idle > 0 && l->queued > atomic_load_explicit(&l->spinning, memory_order_relaxed))
            pthread_cond_signal(&l->cv);
    }
    pthread_mutex_unlock(&l->mu);
    if (err) {
        free(j);
        return err;
    }
    /* The wait lives in our frame; the job on the heap (see the top). A
     * task that waits for another thread is never a deadlock (loop.c). */
    struct job_wait w = {.job = j};
    t->e->ib.awaiting++;
    return tr__task_park(t, &w.w, &wk_offload);
}

int tr_offload(tr_fn fn, void *arg)
{
    return offload_on(&lane_general, fn, arg);
}

/* ---- name resolution ---------------------------------------------------------- */

struct gai_job {
    const char *node, *service;
    const struct addrinfo *hints;
    struct addrinfo **res;
    int rc;  /* getaddrinfo's */
    int err; /* errno, for EAI_SYSTEM */
};

static int gai_run(void *arg)
{
    struct gai_job *g = arg;
    g->rc = getaddrinfo(g->node, g->service, g->hints, g->res);
    g->err = g->rc == EAI_SYSTEM ? errno : 0;
    return 0;
}

/* getaddrinfo's EAI_* code as an -errno (the header's table). */
static int gai_errno(int r, int sys_err)
{
    switch (r) {
    case 0:
        return 0;
    case EAI_NONAME:
#ifdef EAI_NODATA
    case EAI_NODATA:
#endif
#ifdef EAI_ADDRFAMILY
    case EAI_ADDRFAMILY:
#endif
        return -ENOENT;
    case EAI_AGAIN:
        return -EAGAIN;
    case EAI_FAIL:
        return -EIO;
    case EAI_MEMORY:
        return -ENOMEM;
    case EAI_FAMILY:
        return -EAFNOSUPPORT;
    case EAI_SOCKTYPE:
        return -ESOCKTNOSUPPORT;
    case EAI_SERVICE:
        return -EPROTONOSUPPORT;
    case EAI_BADFLAGS:
        return -EINVAL;
    case EAI_OVERFLOW:
        return -EOVERFLOW;
    case EAI_SYSTEM:
        return sys_err ? -sys_err : -EIO;
    default:
        return -EIO;
    }
}

int tr_getaddrinfo(const char *node, const char *service, const struct addrinfo *hints,
                   struct addrinfo **res)
{
    if (!res || (!node && !service))
        return -EINVAL;
    *res = NULL;
    struct gai_job g = {node, service, hints, res, 0, 0};
    /* The pool's own errors (-EPERM, -ECANCELED, -EAGAIN, ...) come back
     * from it; getaddrinfo's code, through the job. */
    int r = offload_on(&lane_resolve, gai_run, &g);
    if (r)
        return r;
    return gai_errno(g.rc, g.err);
}
