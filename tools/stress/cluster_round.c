/* SPDX-License-Identifier: MIT */
/*
 * cluster_round.c — a round as a cluster (DESIGN section 9): 1-8 engines
 * (more than the cores is fine and finds races) on their threads, a
 * workload that crosses them, ended by real signals.
 *
 * On every engine: posters (tr_post to random engines, each post carrying
 * its sender and a per-pair sequence number), callers (tr_call to random
 * engines with their frame as the argument, some inside short deadlines,
 * some cancelled by a canceller task), offloaders (tr_offload with their
 * frame as the argument), sleepers, producers and consumers of one
 * TR_CHAN_SHARED channel (some cut by deadlines); main waits for the
 * shutdown. A helper
 * thread sends 1-3 SIGTERM/SIGINT at random times; grace and kill are
 * short, so the rungs run.
 *
 * Checked: tr_cluster_run returns 0; every post accepted ran exactly once
 * and the posts from one engine to another ran in their order; a tr_call
 * or tr_offload that returned 0 found its frame written by the remote task
 * or the job (which finished before the call returned, G1) and the result
 * of what ran; every message a send put in the shared channel was taken
 * once (received, or drained at Finalize) but those the engines counted
 * lost with killed receivers, and a cut receive took nothing (G9); the
 * signal mask and the fd table are as before the round.
 * Everything shared is atomic or owned by one engine's thread.
 */
#include "stress.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define CL_MAX 8
#define CL_MSGS 65536 /* channel messages per engine at most */

struct cl_round {
    unsigned no, n;
    unsigned dur_ms, nsig, gap_ms[3], grace_ms, kill_ms;
    int sig[3];
    unsigned posters, callers, offloaders, sleepers, chan_pairs;
    /* The round's TR_CHAN_SHARED channel: messages are (engine, seq); a
     * message is marked sent when its send returned 0, and taken once when
     * received (or drained at the end). Messages lost with killed receivers
     * are counted by each engine (stats.kill_msgs_lost, its hook). */
    struct tr_chan *ch;
    _Atomic unsigned char ch_sent[CL_MAX][CL_MSGS], ch_taken[CL_MAX][CL_MSGS];
    _Atomic uint64_t ch_seq[CL_MAX], ch_dups, ch_lost, ch_recv, ch_drained;
    uint64_t seed[CL_MAX]; /* each engine's PRNG */
    /* Posts from engine s to engine d: sent (by s's thread), and on d's
     * thread: ran, the next sequence number expected. */
    _Atomic uint64_t sent[CL_MAX][CL_MAX];
    _Atomic uint64_t ran[CL_MAX][CL_MAX];
    uint64_t next[CL_MAX][CL_MAX];
    _Atomic uint64_t out_of_order, calls_ok, calls_cut, offl_ok, offl_cut, g1_bad, bad_result;
    _Atomic int stop; /* the shutdown began: workers stop starting work */
    _Atomic unsigned sigs_sent;
    /* Live callers of each engine (its thread only): a caller sets its
     * slot while it runs and clears it as it ends, so the canceller only
     * ever cancels a live task. */
    tr_task *live[CL_MAX][64];
    char what[256];
    _Atomic int nviol;
};

static struct cl_round *R;

static void cl_viol(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void cl_viol(const char *fmt, ...)
{
    if (atomic_fetch_add(&R->nviol, 1) > 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(R->what, sizeof(R->what), fmt, ap);
    va_end(ap);
}

/* Each engine's own PRNG (splitmix64), on its thread. */
static _Thread_local uint64_t t_rng;
static uint64_t t_next(void)
{
    uint64_t z = (t_rng += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}
static unsigned t_below(unsigned n)
{
    return (unsigned)(t_next() % n);
}

/* ---- posts ------------------------------------------------------------------------ */

static int posted(void *arg)
{
    uintptr_t v = (uintptr_t)arg;
    unsigned src = (unsigned)(v >> 56), dst = tr_engine_index();
    uint64_t seq = v & ((1ull << 56) - 1);
    if (R->next[src][dst] != seq)
        atomic_fetch_add(&R->out_of_order, 1);
    R->next[src][dst] = seq + 1;
    atomic_fetch_add(&R->ran[src][dst], 1);
    return 0;
}

static int poster(void *arg)
{
    (void)arg;
    unsigned me = tr_engine_index();
    /* Bounded: ends at the shutdown (-ESHUTDOWN, or cancelled). */
    while (!atomic_load(&R->stop)) {
        unsigned dst = t_below(R->n);
        /* The number is taken and the post made on our thread, so the
         * sequence is the order of the posts. */
        uint64_t seq = atomic_load(&R->sent[me][dst]);
        int rc = tr_post(tr_engine_at(dst), posted, (void *)(((uintptr_t)me << 56) | seq));
        if (rc == 0)
            atomic_store(&R->sent[me][dst], seq + 1);
        else if (rc != -ESHUTDOWN && rc != -ENOMEM)
            cl_viol("tr_post = %d", rc);
        if (rc == -ESHUTDOWN || tr_sleep_ns(t_below(200) * 1000ull) != 0)
            break;
    }
    return 0;
}

/* ---- calls and offloaded jobs: the frame as the argument ------------------------ */

struct frame {
    uint64_t magic, in, out;
    unsigned sleep_us;
    bool shielded;
};
#define FRAME_MAGIC 0x5a17c0de5a17c0deull

static int remote(void *arg)
{
    struct frame *f = arg;
    if (f->magic != FRAME_MAGIC)
        atomic_fetch_add(&R->g1_bad, 1);
    if (f->shielded)
        tr_shield_begin();
    (void)tr_sleep_ns(f->sleep_us * 1000ull);
    if (f->shielded)
        tr_shield_end();
    f->out = f->in * 3; /* the caller still waits: its frame lives (G1) */
    return (int)(f->in & 0xffff);
}

static int job(void *arg)
{
    struct frame *f = arg;
    if (f->magic != FRAME_MAGIC)
        atomic_fetch_add(&R->g1_bad, 1);
    usleep(f->sleep_us);
    f->out = f->in * 3;
    return (int)(f->in & 0xffff);
}

static void frame_check(const struct frame *f, int rc, int res, bool offl)
{
    if (rc == 0) {
        if (f->out != f->in * 3)
            atomic_fetch_add(&R->g1_bad, 1); /* returned before the remote finished */
        if (res != (int)(f->in & 0xffff))
            atomic_fetch_add(&R->bad_result, 1);
        atomic_fetch_add(offl ? &R->offl_ok : &R->calls_ok, 1);
    } else if (rc == -ECANCELED || rc == -ETIMEDOUT || rc == -ESHUTDOWN) {
        atomic_fetch_add(offl ? &R->offl_cut : &R->calls_cut, 1);
    } else if (rc != -ENOMEM && rc != -EAGAIN) {
        cl_viol("%s = %d", offl ? "tr_offload" : "tr_call", rc);
    }
}

static int caller(void *arg)
{
    uintptr_t slot = (uintptr_t)arg; /* 0: an offloader; k + 1: caller k */
    bool offl = slot == 0;
    unsigned me = tr_engine_index();
    if (!offl)
        R->live[me][slot - 1] = tr_self();
    for (uint64_t k = 0; !atomic_load(&R->stop); k++) {
        struct frame f = {FRAME_MAGIC, (t_next() & 0xffffff) | 1, 0, t_below(3000),
                          t_below(4) == 0};
        struct tr_scope sc;
        bool scoped = t_below(3) == 0;
        if (scoped)
            tr_scope_enter(&sc, tr_now_ns() + t_below(3000) * 1000ull, 0);
        int res = -1, rc;
        if (offl) {
            rc = tr_offload(job, &f);
            res = rc;
            if (rc >= 0) /* the job's result, or the pool's -errno */
                rc = 0;
        } else {
            rc = tr_call(tr_engine_at(t_below(R->n)), remote, &f, &res);
            /* A call that ran returns 0 with the remote task's result,
             * which a cancelled remote cut short: its frame is written all
             * the same, before the REPLY. */
            if (rc == 0 && res < 0 && f.out == f.in * 3)
                res = (int)(f.in & 0xffff);
        }
        if (scoped) {
            int x = tr_scope_exit(&sc);
            if (rc == -ETIMEDOUT && x != -ETIMEDOUT)
                cl_viol("a call's -ETIMEDOUT without its scope's (exit %d)", x);
        }
        frame_check(&f, rc, res, offl);
        if (rc == -ESHUTDOWN || tr_is_cancelled())
            break;
    }
    if (!offl)
        R->live[me][slot - 1] = NULL;
    return 0;
}

static int canceller(void *arg)
{
    (void)arg;
    unsigned me = tr_engine_index();
    while (!atomic_load(&R->stop)) {
        if (tr_sleep_ns(t_below(5000) * 1000ull) != 0)
            break;
        tr_task *t = R->live[me][t_below(R->callers)];
        if (t)
            (void)tr_cancel(t); /* live: its slot is cleared as it ends */
    }
    return 0;
}

/* ---- the shared channel ----------------------------------------------------------- */

static void taken(uint64_t id)
{
    unsigned e = (unsigned)(id >> 32), seq = (unsigned)id;
    if (e >= CL_MAX || seq >= CL_MSGS || atomic_exchange(&R->ch_taken[e][seq], 1))
        atomic_fetch_add(&R->ch_dups, 1);
}

static int ch_producer(void *arg)
{
    (void)arg;
    unsigned me = tr_engine_index();
    while (!atomic_load(&R->stop)) {
        uint64_t seq = atomic_fetch_add(&R->ch_seq[me], 1);
        if (seq >= CL_MSGS)
            break;
        uint64_t id = ((uint64_t)me << 32) | seq;
        struct tr_scope sc;
        bool scoped = t_below(4) == 0;
        if (scoped)
            tr_scope_enter(&sc, tr_now_ns() + t_below(500) * 1000ull, 0);
        int r = tr_chan_send(R->ch, &id);
        if (scoped)
            tr_scope_exit(&sc);
        if (r == 0)
            atomic_store(&R->ch_sent[me][seq], 1);
        else if (r != -ECANCELED && r != -ETIMEDOUT && r != -EPIPE)
            cl_viol("tr_chan_send (shared) = %d", r);
        if (r == -ECANCELED)
            break;
    }
    return 0;
}

static int ch_consumer(void *arg)
{
    (void)arg;
    while (!atomic_load(&R->stop)) {
        uint64_t id = UINT64_MAX;
        struct tr_scope sc;
        bool scoped = t_below(3) == 0;
        if (scoped)
            tr_scope_enter(&sc, tr_now_ns() + t_below(300) * 1000ull, 0);
        int r = tr_chan_recv(R->ch, &id);
        if (scoped)
            tr_scope_exit(&sc);
        if (r == 0) {
            taken(id);
            atomic_fetch_add(&R->ch_recv, 1);
        } else if (id != UINT64_MAX) {
            cl_viol("a cut receive (%d) took a message (G9)", r);
        } else if (r == -ECANCELED) {
            break;
        } else if (r != -ETIMEDOUT && r != -EPIPE) {
            cl_viol("tr_chan_recv (shared) = %d", r);
        }
    }
    return 0;
}

/* Each engine's at-shutdown hook: its lost messages; engine 0's also
 * drains what is left (every task of every engine has ended: the
 * lockstep's Finalize). */
static int ch_hook(void *arg)
{
    (void)arg;
    struct tr_stats st;
    tr_engine_stats(tr_self_engine(), &st);
    atomic_fetch_add(&R->ch_lost, st.kill_msgs_lost);
    if (tr_engine_index() != 0)
        return 0;
    uint64_t id;
    while (tr_chan_try_recv(R->ch, &id) == 0) {
        taken(id);
        atomic_fetch_add(&R->ch_drained, 1);
    }
    return 0;
}

static int sleeper(void *arg)
{
    (void)arg;
    return tr_sleep_ns(3600ull * 1000000000ull);
}

static int cl_main(void *arg)
{
    (void)arg;
    unsigned me = tr_engine_index();
    t_rng = R->seed[me];
    for (unsigned i = 0; i < R->posters; i++)
        (void)tr_spawn(NULL, NULL, poster, NULL, NULL);
    for (unsigned i = 0; i < R->callers; i++)
        (void)tr_spawn(NULL, NULL, caller, (void *)(uintptr_t)(i + 1), NULL);
    for (unsigned i = 0; i < R->offloaders; i++)
        (void)tr_spawn(NULL, NULL, caller, NULL, NULL);
    for (unsigned i = 0; i < R->sleepers; i++)
        (void)tr_spawn(NULL, NULL, sleeper, NULL, NULL);
    for (unsigned i = 0; i < R->chan_pairs; i++) {
        (void)tr_spawn(NULL, NULL, ch_producer, NULL, NULL);
        (void)tr_spawn(NULL, NULL, ch_consumer, NULL, NULL);
    }
    (void)tr_at_shutdown(ch_hook, NULL); /* -ENOMEM: the audit then sees no drain */
    (void)tr_spawn(NULL, NULL, canceller, NULL, NULL);
    int rc = tr_wait_shutdown();
    atomic_store(&R->stop, 1);
    return rc;
}

/* The signals, from a plain thread (created with them blocked). */
static void *signaller(void *arg)
{
    (void)arg;
    usleep(R->dur_ms * 1000u);
    for (unsigned k = 0; k < R->nsig; k++) {
        if (k)
            usleep(R->gap_ms[k] * 1000u);
        kill(getpid(), R->sig[k]);
        atomic_fetch_add(&R->sigs_sent, 1);
        atomic_fetch_add_explicit(&g_signals, 1, memory_order_relaxed);
    }
    return NULL;
}

static void plan(struct cl_round *r, unsigned no, uint64_t remaining_ms)
{
    r->no = no;
    r->n = 1 + (unsigned)rbelow(CL_MAX);
    r->dur_ms = 300 + (unsigned)rbelow(1700);
    if (r->dur_ms > remaining_ms)
        r->dur_ms = remaining_ms < 200 ? 200 : (unsigned)remaining_ms;
    unsigned x = (unsigned)rbelow(100);
    r->nsig = x < 50 ? 1 : x < 75 ? 2 : 3;
    for (unsigned k = 0; k < 3; k++) {
        r->sig[k] = pct(50) ? SIGTERM : SIGINT;
        r->gap_ms[k] = pct(20) ? 0 : (unsigned)rbelow(150);
    }
    r->grace_ms = 30 + (unsigned)rbelow(120);
    r->kill_ms = 30 + (unsigned)rbelow(120);
    r->posters = 1 + (unsigned)rbelow(4);
    r->callers = 1 + (unsigned)rbelow(16);
    r->offloaders = (unsigned)rbelow(6);
    r->sleepers = (unsigned)rbelow(200);
    r->chan_pairs = (unsigned)rbelow(4);
    for (unsigned i = 0; i < CL_MAX; i++)
        r->seed[i] = rnd();
}

static void audit(struct cl_round *r, int rc)
{
    if (rc != 0)
        cl_viol("tr_cluster_run = %d (%s)", rc, strerror(-rc));
    uint64_t sent = 0, ran = 0;
    for (unsigned s = 0; s < r->n; s++)
        for (unsigned d = 0; d < r->n; d++) {
            sent += atomic_load(&r->sent[s][d]);
            ran += atomic_load(&r->ran[s][d]);
            if (atomic_load(&r->sent[s][d]) != atomic_load(&r->ran[s][d]))
                cl_viol("posts from engine %u to %u: %" PRIu64 " accepted, %" PRIu64 " ran", s, d,
                        atomic_load(&r->sent[s][d]), atomic_load(&r->ran[s][d]));
        }
    if (atomic_load(&r->out_of_order))
        cl_viol("%" PRIu64 " posts ran out of their order", atomic_load(&r->out_of_order));
    if (atomic_load(&r->g1_bad))
        cl_viol("%" PRIu64 " calls or jobs returned before the remote side was done (G1)",
                atomic_load(&r->g1_bad));
    uint64_t missing = 0;
    for (unsigned e = 0; e < r->n; e++)
        for (unsigned q = 0; q < CL_MSGS; q++)
            if (atomic_load(&r->ch_sent[e][q]) && !atomic_load(&r->ch_taken[e][q]))
                missing++;
    if (atomic_load(&r->ch_dups))
        cl_viol("%" PRIu64 " shared-channel messages taken twice", atomic_load(&r->ch_dups));
    if (missing > atomic_load(&r->ch_lost))
        cl_viol("%" PRIu64 " shared-channel messages sent and never taken (%" PRIu64
                " counted lost with killed receivers)",
                missing, atomic_load(&r->ch_lost));
    if (atomic_load(&r->bad_result))
        cl_viol("%" PRIu64 " calls or jobs with a result not their function's",
                atomic_load(&r->bad_result));
    if (g_verbose)
        printf(
            "stress: round %u: cluster of %u engines, signals %u, grace %u kill %u; posts %" PRIu64
            ", calls %" PRIu64 " (+%" PRIu64 " cut), offloads %" PRIu64 " (+%" PRIu64
            " cut), shared-channel messages %" PRIu64 " received + %" PRIu64 " drained, %" PRIu64
            " lost with killed receivers\n",
            r->no, r->n, atomic_load(&r->sigs_sent), r->grace_ms, r->kill_ms, ran,
            atomic_load(&r->calls_ok), atomic_load(&r->calls_cut), atomic_load(&r->offl_ok),
            atomic_load(&r->offl_cut), atomic_load(&r->ch_recv), atomic_load(&r->ch_drained),
            atomic_load(&r->ch_lost));
    (void)sent;
}

void run_cluster_round(unsigned no, uint64_t remaining_ms)
{
    struct cl_round *r = calloc(1, sizeof(*r));
    if (!r) {
        fprintf(stderr, "stress: out of memory\n");
        exit(2);
    }
    R = r;
    plan(r, no, remaining_ms);
    atomic_store(&g_round, no);
    sigset_t ss, before, after;
    sigemptyset(&ss);
    sigaddset(&ss, SIGINT);
    sigaddset(&ss, SIGTERM);
    pthread_sigmask(SIG_BLOCK, NULL, &before);
    static int fds0[4096], fds1[4096];
    int n0 = list_fds(fds0, 4096);
    /* Blocked around the whole round, by us: the signaller's 2nd and 3rd
     * signals may come after the cluster is gone (its shutdown takes less
     * than their gaps), and are consumed below, not delivered. Engine 0
     * finds them blocked already and leaves them so. */
    sigset_t old;
    pthread_sigmask(SIG_BLOCK, &ss, &old);
    pthread_t th;
    bool th_ok = pthread_create(&th, NULL, signaller, NULL) == 0;
    if (!th_ok)
        cl_viol("pthread_create failed");
    struct tr_cluster_config cfg;
    tr_cluster_config_init(&cfg);
    cfg.engines = r->n;
    cfg.engine.report_fd = -1;
    cfg.engine.grace_ms = r->grace_ms;
    cfg.engine.kill_ms = r->kill_ms;
    if (tr_chan_create(&r->ch, sizeof(uint64_t), rbelow(3), TR_CHAN_SHARED) != 0)
        cl_viol("tr_chan_create(TR_CHAN_SHARED) failed");
    atomic_store(&g_round_start, now_ns());
    int rc = th_ok ? tr_cluster_run(cl_main, NULL, &cfg) : 0;
    atomic_store(&g_round_start, 0);
    if (th_ok)
        pthread_join(th, NULL);
    if (r->ch && tr_chan_destroy(r->ch) != 0)
        cl_viol("tr_chan_destroy(shared) after the round: busy");
    audit(r, rc);
    /* The mask as the cluster left it: ours, blocked. */
    pthread_sigmask(SIG_BLOCK, NULL, &after);
    if (sigismember(&after, SIGINT) != 1 || sigismember(&after, SIGTERM) != 1)
        cl_viol("the cluster unblocked signals it had found blocked");
    struct timespec zero = {0, 0};
    for (int k = 0; k < 16 && sigtimedwait(&ss, NULL, &zero) > 0; k++)
        ; /* late signals of the round */
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    pthread_sigmask(SIG_BLOCK, NULL, &after);
    for (int s = 1; s < NSIG; s++)
        if (sigismember(&before, s) != sigismember(&after, s))
            cl_viol("signal %d's mask bit changed by the round", s);
    int n1 = list_fds(fds1, 4096);
    if (n1 != n0)
        cl_viol("%d fds before the round, %d after", n0, n1);
    atomic_fetch_add_explicit(&g_shutdowns, 1, memory_order_relaxed);
    int nv = atomic_load(&r->nviol);
    if (nv) {
        printf("VIOLATION: %s (round %u, seed %" PRIu64 ")\n", r->what, no, g_seed);
        printf("stress: seed %" PRIu64 " rounds %u violations %d in %.1fs\n", g_seed, no, nv,
               (double)(now_ns() - g_t_start) / 1e9);
        fflush(stdout);
        exit(1);
    }
    R = NULL;
    free(r);
}
