/* SPDX-License-Identifier: MIT */
/*
 * cluster.c — N engines on N threads that shut down as one (DESIGN
 * section 9, G12).
 *
 * The calling thread creates engine 0 with the caller's configuration: it
 * is the cluster's one signal owner (it blocks the shutdown signals and
 * reads them), and the threads created after it inherit the blocked mask.
 * Each other thread creates its own engine without signals, so that its
 * ring is its own (SINGLE_ISSUER). Once every engine exists, all are
 * joined to one lockstep (life/shutdown.c) and each runs main(arg) as its
 * task "main". The lockstep does the rest: the first failing main, the end
 * of the last one, tr_engine_shutdown of any engine or a signal shuts all
 * down, phase by phase; each run returns once all are done. Then the
 * threads are joined, one report is written, and the engines are destroyed
 * on the calling thread, engine 0 last (it restores the signal mask).
 */
#include "tr_internal.h"

#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define TR_CLUSTER_MAX 4096u

struct cl_thread {
    struct tr__cluster *c;
    unsigned index;
    pthread_t th;
    bool started;
    int err;     /* creating its engine, or its run */
    int run_err; /* tr_engine_run's */
    tr_engine *e;
    tr_task *main;
};

struct tr__cluster {
    struct tr__lockstep ls;
    tr_fn main;
    void *arg;
    struct tr_config ecfg;
    unsigned flags;
    cpu_set_t cpus;
    unsigned ncpus;
    struct cl_thread *th;
    /* The start: each thread says its engine is made (or not), then waits
     * for go (or abort). */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    unsigned made;
    bool go, abort;
};

void tr_cluster_config_init(struct tr_cluster_config *cfg)
{
    if (!cfg)
        return;
    memset(cfg, 0, sizeof(*cfg));
    tr_config_init(&cfg->engine);
}

/* TR_CLUSTER_PIN: engine i on the i-th CPU the process may use. */
static void pin(struct tr__cluster *c, unsigned index)
{
    if (!(c->flags & TR_CLUSTER_PIN) || c->ncpus == 0)
        return;
    unsigned want = index % c->ncpus, seen = 0;
    for (size_t cpu = 0; cpu < CPU_SETSIZE; cpu++) {
        if (!CPU_ISSET(cpu, &c->cpus))
            continue;
        if (seen++ == want) {
            cpu_set_t one;
            CPU_ZERO(&one);
            CPU_SET(cpu, &one);
            (void)pthread_setaffinity_np(pthread_self(), sizeof(one), &one);
            return;
        }
    }
}

static int make_engine(struct tr__cluster *c, struct cl_thread *t)
{
    struct tr_config cfg = c->ecfg;
    if (t->index > 0)
        cfg.flags |= TR_CFG_NO_SIGNALS; /* engine 0 owns the signals */
    return tr_engine_create(&t->e, &cfg);
}

/* Says whether this thread's engine is made; true when all are and the
 * cluster goes. */
static bool start_wait(struct tr__cluster *c, struct cl_thread *t)
{
    pthread_mutex_lock(&c->mu);
    if (t->err)
        c->abort = true;
    c->made++;
    pthread_cond_broadcast(&c->cv);
    while (!c->go && !c->abort)
        pthread_cond_wait(&c->cv, &c->mu);
    bool go = !c->abort;
    pthread_mutex_unlock(&c->mu);
    return go;
}

static void run_engine(struct tr__cluster *c, struct cl_thread *t)
{
    struct tr_spawn_opts o = {.name = "main"};
    int err = tr_spawn(t->e, &t->main, c->main, c->arg, &o);
    if (err) {
        /* This engine has no main: it counts as failed, which shuts the
         * others down; it still runs, for the lockstep. */
        int none = 0;
        (void)atomic_compare_exchange_strong(&c->ls.first_err, &none, err);
        (void)atomic_fetch_sub(&c->ls.mains_left, 1);
        (void)tr_engine_shutdown(t->e);
    } else {
        t->e->main_task = t->main;
    }
    t->run_err = tr_engine_run(t->e);
    if (t->run_err) {
        /* A ring error: this engine cannot go on. The others shut down
         * without it: it leaves the lockstep (as if it had arrived at every
         * gate), and is left undestroyed if the kernel still holds its ops. */
        int none = 0;
        (void)atomic_compare_exchange_strong(&c->ls.first_err, &none, t->run_err);
        tr__lockstep_leave(t->e);
        for (unsigned i = 0; i < c->ls.n; i++)
            (void)tr_engine_shutdown(c->ls.engines[i]);
    }
    if (t->main) {
        if (t->run_err == 0)
            (void)tr_detach(t->main);
        t->main = NULL;
    }
}

static void *thread_main(void *arg)
{
    struct cl_thread *t = arg;
    struct tr__cluster *c = t->c;
    pin(c, t->index);
    t->err = make_engine(c, t);
    if (start_wait(c, t))
        run_engine(c, t);
    return NULL;
}

static void destroy_all(struct tr__cluster *c, unsigned n)
{
    /* Engine 0 last: its destroy restores the calling thread's mask. */
    for (unsigned i = n; i-- > 0;) {
        struct cl_thread *t = &c->th[i];
        if (t->e && tr_engine_destroy(t->e) == 0)
            t->e = NULL;
    }
}

int tr_cluster_run(tr_fn main_fn, void *arg, const struct tr_cluster_config *cfg)
{
    if (!main_fn)
        return -EINVAL;
    if (tr__current)
        return -EPERM;
    struct tr_cluster_config dflt;
    if (!cfg) {
        tr_cluster_config_init(&dflt);
        cfg = &dflt;
    }
    if (cfg->flags & ~TR_CLUSTER_PIN)
        return -EINVAL;
    unsigned n = cfg->engines;
    if (n == 0) {
        long online = sysconf(_SC_NPROCESSORS_ONLN);
        n = online > 0 ? (unsigned)online : 1;
    }
    if (n > TR_CLUSTER_MAX)
        return -EINVAL;
    struct tr__cluster *c = calloc(1, sizeof(*c));
    tr_engine **engines = calloc(n, sizeof(*engines));
    struct cl_thread *th = calloc(n, sizeof(*th));
    if (!c || !engines || !th) {
        free(c);
        free(engines);
        free(th);
        return -ENOMEM;
    }
    c->main = main_fn;
    c->arg = arg;
    c->ecfg = cfg->engine;
    c->flags = cfg->flags;
    c->th = th;
    c->ls.n = n;
    c->ls.engines = engines;
    atomic_store(&c->ls.mains_left, n);
    if (sched_getaffinity(0, sizeof(c->cpus), &c->cpus) == 0)
        c->ncpus = (unsigned)CPU_COUNT(&c->cpus);
    pthread_mutex_init(&c->mu, NULL);
    pthread_cond_init(&c->cv, NULL);
    for (unsigned i = 0; i < n; i++) {
        th[i].c = c;
        th[i].index = i;
    }

    /* Engine 0 first, on this thread: the threads inherit its mask. */
    int err = make_engine(c, &th[0]);
    unsigned started = 1; /* this thread, as engine 0 */
    for (unsigned i = 1; i < n && !err; i++) {
        int perr = pthread_create(&th[i].th, NULL, thread_main, &th[i]);
        if (perr) {
            err = -EAGAIN;
            break;
        }
        th[i].started = true;
        started++;
    }
    cpu_set_t mine;
    bool pinned = (c->flags & TR_CLUSTER_PIN) &&
                  pthread_getaffinity_np(pthread_self(), sizeof(mine), &mine) == 0;
    if (pinned)
        pin(c, 0);
    pthread_mutex_lock(&c->mu);
    c->made++;                /* engine 0's try */
    while (c->made < started) /* every thread's try, made or failed */
        pthread_cond_wait(&c->cv, &c->mu);
    for (unsigned i = 0; i < started && !err; i++)
        if (th[i].err)
            err = th[i].err;
    if (err) {
        c->abort = true;
    } else {
        for (unsigned i = 0; i < n; i++) {
            engines[i] = th[i].e;
            tr__lockstep_join(th[i].e, &c->ls, i);
        }
        c->go = true;
    }
    pthread_cond_broadcast(&c->cv);
    pthread_mutex_unlock(&c->mu);

    if (!err)
        run_engine(c, &th[0]);
    for (unsigned i = 1; i < n; i++)
        if (th[i].started)
            pthread_join(th[i].th, NULL);
    int result = err;
    if (!err) {
        result = atomic_load(&c->ls.first_err);
        if (c->ecfg.report_fd >= 0 && tr__lockstep_done(&c->ls))
            tr__lockstep_report(&c->ls, c->ecfg.report_fd);
    }
    bool reported = !err && c->ecfg.report_fd >= 0 && tr__lockstep_done(&c->ls);
    destroy_all(c, n);
    if (reported && th[0].e == NULL) {
        char line[128];
        int len = snprintf(
            line, sizeof(line), "taskring:   %u rings closed%s\n", n,
            (c->ecfg.flags & TR_CFG_NO_SIGNALS) ? "" : ", signalfd closed, signal mask restored");
        if (len > 0)
            (void)tr__write_all(c->ecfg.report_fd, line, (size_t)len);
    }
    if (pinned)
        (void)pthread_setaffinity_np(pthread_self(), sizeof(mine), &mine);
    /* An engine a ring error left busy cannot be freed under the kernel:
     * it is left as it is (as tr_run does), and so is the cluster. */
    bool left = false;
    for (unsigned i = 0; i < n; i++)
        left |= th[i].e != NULL;
    if (left)
        return result ? result : -EBUSY;
    pthread_cond_destroy(&c->cv);
    pthread_mutex_destroy(&c->mu);
    free(engines);
    free(th);
    free(c);
    return result;
}

unsigned tr_engine_index(void)
{
    tr_engine *e = tr__engine_of_caller();
    return e && e->ls ? e->ls_index : 0;
}

unsigned tr_engine_count(void)
{
    tr_engine *e = tr__engine_of_caller();
    if (!e)
        return 0;
    return e->ls ? e->ls->n : 1;
}

tr_engine *tr_engine_at(unsigned i)
{
    tr_engine *e = tr__engine_of_caller();
    if (!e)
        return NULL;
    if (!e->ls)
        return i == 0 ? e : NULL;
    return i < e->ls->n ? e->ls->engines[i] : NULL;
}
