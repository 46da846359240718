/* SPDX-License-Identifier: MIT */
/*
 * round.c — one round: plan it, build a fresh engine (create/run/destroy,
 * sometimes run a second time after its shutdown, or tr_run), run the
 * workload until the signals end it, then audit (audit.c), print the
 * round's summary (--verbose) and its violations, free what it owned. The
 * first round with a violation ends the run (exit 1).
 */
#include "stress.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* What the audits after a round found, for its summary. */
struct round_result {
    uint64_t t0;                   /* when the engine started */
    unsigned acc, opn;             /* fds killed tasks leaked (accepted sockets, opened files) */
    unsigned nclean, neof, nexact; /* streams: clean, reader saw EOF, drained exactly */
};

/* The round's plan, every choice drawn from the PRNG before anything
 * runs: duration (1-4 s, cut to what the run has left), 1-3 signals and
 * their gaps, grace/kill/drain, the SQ size, the stack size, the task
 * target, stubborn and LATE tasks, tr_run or create/run/destroy, who
 * signals (a task or a thread), pre-blocked signals, the tr_cancel_all
 * calls and their times. */
static void plan_round(struct round *r, uint64_t remaining_ms)
{
    r->dur_ms = 1000 + (unsigned)rbelow(3001);
    if (r->dur_ms > remaining_ms)
        r->dur_ms = remaining_ms < 300 ? 300 : (unsigned)remaining_ms;
    unsigned x = (unsigned)rbelow(100);
    r->nsig = x < 50 ? 1 : x < 75 ? 2 : 3;
    for (unsigned k = 0; k < 3; k++) {
        r->sig[k] = pct(50) ? SIGTERM : SIGINT;
        r->gap_ms[k] = pct(20) ? 0 : (unsigned)rbelow(250);
    }
    r->grace_ms = 50 + (unsigned)rbelow(151);
    r->kill_ms = 50 + (unsigned)rbelow(151);
    r->drain_ms = pct(60) ? 0 : (unsigned)rbelow(50);
    static const unsigned sqs[] = {32, 64, 128, 256, 1024};
    r->sq = sqs[rbelow(5)];
    r->stack_size = pct(30) ? 32 * 1024 : 0;
    r->target = 200 + (unsigned)rbelow(3800);
    x = (unsigned)rbelow(100);
    r->nstub = x < 35 ? 1 + (unsigned)rbelow(3) : x < 50 ? 10 + (unsigned)rbelow(50) : 0;
    r->nlate = pct(60) ? 1 + (unsigned)rbelow(3) : 0;
    r->trrun = pct(50);
    r->thread_sig = pct(50);
    r->late_sig = !r->thread_sig && pct(30);
    r->hooks_stubborn = pct(30); /* a hook may ignore its cancellation: killed */
    /* tr_run destroys the engine itself: a helper thread that could still
     * signal afterwards needs the signals blocked by us around the run. */
    r->preblock = (r->trrun && r->thread_sig) || pct(15);
    x = (unsigned)rbelow(100);
    r->ncall = x < 45 ? 0 : x < 80 ? 1 : x < 95 ? 2 : 3;
    for (unsigned k = 0; k < r->ncall; k++)
        r->call_at[k] = rbelow((uint64_t)r->dur_ms * MS);
    /* in order */
    for (unsigned a = 0; a < r->ncall; a++)
        for (unsigned b = a + 1; b < r->ncall; b++)
            if (r->call_at[b] < r->call_at[a]) {
                uint64_t t = r->call_at[a];
                r->call_at[a] = r->call_at[b];
                r->call_at[b] = t;
            }
}

/* A fresh round: its records, an empty fd table, its plan. */
static struct round *round_new(unsigned no, uint64_t remaining_ms)
{
    struct round *r = calloc(1, sizeof(*r));
    if (!r) {
        fprintf(stderr, "stress: out of memory\n");
        exit(2);
    }
    r->no = no;
    r->st = calloc(MAX_STREAMS, sizeof(struct stream));
    if (!r->st) {
        fprintf(stderr, "stress: out of memory\n");
        exit(2);
    }
    for (int i = 0; i < FD_HARD; i++) {
        r->fds[i] = (struct fdent){-1, FR_FREE, -1};
        r->freeslots[i] = FD_HARD - 1 - i;
    }
    r->nfree = FD_HARD;
    r->lslot = -1;
    plan_round(r, remaining_ms);
    return r;
}

static void round_free(struct round *r)
{
    for (size_t i = 0; i < r->nall; i++)
        free(r->all[i]);
    free(r->all);
    for (size_t i = 0; i < r->nball; i++)
        free(r->ball[i]);
    free(r->ball);
    while (r->hooks) {
        struct hctx *h = r->hooks;
        r->hooks = h->next;
        free(h);
    }
    scopes_round_free(r);
    sync_round_free(r);
    free(r->st);
    free(r);
}

/* The round's listener (for acceptors and clients) and engine config. */
static void round_prepare(struct round *r, struct tr_config *cfg)
{
    int lfd = listen_socket(r, &r->laddr);
    if (lfd < 0) {
        fprintf(stderr, "stress: listen: %s\n", strerror(-lfd));
        exit(2);
    }
    r->lslot = fdt_reg(r, NULL, lfd, FR_LISTEN, -1);

    tr_config_init(cfg);
    cfg->report_fd = -1;
    cfg->sq_entries = r->sq;
    cfg->stack_size = r->stack_size;
    cfg->grace_ms = r->grace_ms;
    cfg->kill_ms = r->kill_ms;
    cfg->drain_ms = r->drain_ms;
}

static void start_helper(struct round *r)
{
    int err = pthread_create(&r->thr, NULL, helper_main, r);
    if (err)
        viol(r, "pthread_create: %s", strerror(err));
    else
        r->thr_started = true;
}

static void join_helper(struct round *r)
{
    if (r->thr_started)
        pthread_join(r->thr, NULL);
    r->thr_started = false;
}

/* Before tr_engine_run: the orchestrator, sometimes a task cancelled from
 * the engine's thread outside the run (it must start cancelled, *hc), a
 * destroy that must refuse, the signalling thread. Returns the
 * orchestrator's handle, or NULL. */
static tr_task *crd_before_run(struct round *r, tr_engine *e, tr_task **hc)
{
    int rc;
    tr_task *ho = NULL;
    if (spawn_kind(r, e, &ho, K_ORCH, 0, 0, -1, false) != 0)
        ho = NULL;
    if (pct(30) && spawn_kind(r, e, hc, K_SPAWNCHK, 0, 1, -1, false) == 0) {
        /* Cancelled from the engine's thread outside the run: it
         * must start cancelled. */
        if ((rc = tr_cancel(*hc)) != 0)
            viol(r, "tr_cancel before the run = %d", rc);
    }
    if ((rc = tr_engine_destroy(e)) != -EBUSY)
        viol(r, "tr_engine_destroy with tasks alive = %d, want -EBUSY", rc);
    if (r->thread_sig)
        start_helper(r);
    return ho;
}

/* After the run: the handles' results, then the handles given up. */
static void crd_after_run(struct round *r, tr_task *ho, tr_task *hc)
{
    int rc;
    if (ho) {
        int res = 0;
        rc = tr_task_result(ho, &res);
        if (rc != 0 || (res != 0 && res != -ECANCELED))
            viol(r, "orchestrator: tr_task_result = %d, result %d", rc, res);
        if ((rc = tr_detach(ho)) != 0)
            viol(r, "tr_detach(orchestrator) after the run = %d", rc);
    }
    if (hc) {
        int res = 0;
        if ((rc = tr_task_result(hc, &res)) != 0 || res != -ECANCELED)
            viol(r, "a task cancelled before the run: tr_task_result %d, result %d", rc, res);
        tr_detach(hc);
    }
}

/* Run again after the shutdown: a new task starts cancelled, the engine's
 * own reads are re-armed and taken down again. */
static void crd_rerun(struct round *r, tr_engine *e)
{
    tr_task *h2 = NULL;
    if (spawn_kind(r, e, &h2, K_SPAWNCHK, 0, 1, -1, false) != 0)
        return;
    int rc = tr_engine_run(e);
    if (rc != 0)
        viol(r, "a second tr_engine_run = %d (%s)", rc, strerror(-rc));
    audit_engine(r, e);
    int res = 0;
    if ((rc = tr_task_result(h2, &res)) != 0 || res != -ECANCELED)
        viol(r, "a task spawned after the shutdown: tr_task_result %d, result %d", rc, res);
    tr_detach(h2);
    r->reruns++;
}

/* A create/run/destroy round, audited after the run (and the rerun). */
static void round_create_run_destroy(struct round *r, const struct tr_config *cfg)
{
    tr_engine *e = NULL;
    int rc = tr_engine_create(&e, cfg);
    if (rc) {
        viol(r, "tr_engine_create = %s", strerror(-rc));
        return;
    }
    r->e = e;
    atomic_store(&g_engine, e);
    tr_task *hc = NULL;
    tr_task *ho = crd_before_run(r, e, &hc);
    rc = tr_engine_run(e);
    if (rc != 0)
        viol(r, "tr_engine_run = %d (%s)", rc, strerror(-rc));
    audit_engine(r, e);
    crd_after_run(r, ho, hc);
    join_helper(r);
    if (pct(30))
        crd_rerun(r, e);
    atomic_store(&g_engine, NULL);
    rc = tr_engine_destroy(e);
    if (rc != 0)
        viol(r, "tr_engine_destroy = %d (%s)", rc, strerror(-rc));
}

/* A tr_run round: the orchestrator is main; tr_run destroys the engine,
 * so only the last hook's snapshot audits it. */
static void round_tr_run(struct round *r, const struct tr_config *cfg)
{
    struct tctx *c = ctx_get(r);
    c->kind = K_ORCH;
    r->spawned++;
    r->live_nonlate++;
    atomic_fetch_add_explicit(&g_tasks, 1, memory_order_relaxed);
    int rc = tr_run(task_main, c, cfg);
    atomic_store(&g_engine, NULL);
    if (rc != 0 && rc != -ECANCELED)
        viol(r, "tr_run = %d (%s)", rc, strerror(-rc));
    join_helper(r);
}

/* With --verbose: the round's plan and outcome, and the engine's view. */
static void round_summary(const struct round *r, const struct round_result *x)
{
    unsigned no = r->no;
    printf("stress: round %u: %s, signals %u by %s%s (%d ms), grace %u kill %u drain %u, sq %u, "
           "target %u; tasks %" PRIu64 " (ok %" PRIu64 " cancelled %" PRIu64 " failed %" PRIu64
           " killed %" PRIu64 "), streams %zu (clean %u, eof %u, drained %u), "
           "hooks %u/%u, cancel_alls %u, LATE order checks %u, reruns %u, killed-op leaks %u+%u, "
           "%.2f s\n",
           no, r->trrun ? "tr_run" : "create/run/destroy", (unsigned)r->sigs_sent,
           r->thread_sig ? "thread" : "task", r->preblock ? " (pre-blocked)" : "", (int)r->dur_ms,
           r->grace_ms, r->kill_ms, r->drain_ms, r->sq, r->target, r->spawned, r->ok, r->cancelled,
           r->failed, r->spawned - r->returned, r->nst, x->nclean, x->neof, x->nexact,
           r->hooks_done, r->hooks_reg, r->cancel_alls, r->late_checks, r->reruns, x->acc, x->opn,
           (double)(now_ns() - x->t0) / 1e9);
    printf("stress: round %u: scopes %" PRIu64 " (exits -ETIMEDOUT %" PRIu64 ", -ECANCELED %" PRIu64
           "), -ETIMEDOUT results %" PRIu64 ", moves %" PRIu64 ", tr_scope_cancel %" PRIu64
           ", left entered %" PRIu64 " on purpose + %" PRIu64 " by killed tasks\n",
           no, r->scopes, r->exits_t, r->exits_c, r->etimedout, r->scope_moves, r->scope_cancels,
           r->left_planned, scopes_killed(r));
    printf("stress: round %u: sync worlds %" PRIu64 " (not audited: %u), groups waited %" PRIu64
           ", messages received %" PRIu64 ", real failures listed %" PRIu64
           ", mutexes left held on purpose %" PRIu64 ", workers killed %" PRIu64
           ", mutexes handed on from ended holders %" PRIu64 "\n",
           no, r->nworlds, r->worlds_unaudited, r->groups_waited, r->sync_msgs, r->group_fails,
           r->mtx_left_planned, r->sync_killed, r->sync_handed_dead);
    const struct tr_stats *st = r->have_est ? &r->est : r->audit_done ? &r->audit : NULL;
    if (st)
        printf("stress: round %u: engine (%s): ops %" PRIu64 ", cancels %" PRIu64
               ", enters %" PRIu64 " (busy %" PRIu64 "), stale CQEs %" PRIu64
               ", signals received %" PRIu64 "\n",
               no, r->have_est ? "after the run" : "at the last hook", st->ops_submitted,
               st->cancels_submitted, st->submit_calls, st->submit_busy, st->cqe_stale,
               st->signals_received);
}

/* The round's violations (at most 4 with their text). */
static void round_violations(const struct round *r)
{
    unsigned nv = r->nviol;
    for (unsigned i = 0; i < nv && i < 4; i++)
        printf("VIOLATION: %s (round %u, seed %" PRIu64 ")\n", r->viol[i], r->no, g_seed);
    if (nv > 4)
        printf("VIOLATION: ... and %u more (round %u, seed %" PRIu64 ")\n", nv - 4, r->no, g_seed);
}

/* The audits after the engine is gone: the signal mask, the streams'
 * bytes (closing and draining every fd the round holds first), the fds. */
static void round_audit(struct round *r, const sigset_t *m0, const sigset_t *orig,
                        const sigset_t *ss, const int *before, int nbefore, struct round_result *x)
{
    audit_mask(r, m0, orig, ss);
    close_and_drain(r);
    audit_fds(r, before, nbefore, &x->acc, &x->opn);
    check_streams(r, &x->nclean, &x->neof, &x->nexact);
    sync_round_end(r);
    cleanup_dir();
}

void run_round(unsigned no, uint64_t remaining_ms)
{
    struct round *r = round_new(no, remaining_ms);
    atomic_store(&g_round, no);

    sigset_t orig, m0, ss;
    sigemptyset(&ss);
    sigaddset(&ss, SIGINT);
    sigaddset(&ss, SIGTERM);
    pthread_sigmask(SIG_BLOCK, NULL, &orig);
    if (r->preblock)
        pthread_sigmask(SIG_BLOCK, &ss, NULL);
    pthread_sigmask(SIG_BLOCK, NULL, &m0);

    static int before[4096];
    int nbefore = list_fds(before, 4096);
    struct tr_config cfg;
    round_prepare(r, &cfg);

    struct round_result x = {.t0 = now_ns()};
    atomic_store(&g_round_start, x.t0);
    if (!r->trrun)
        round_create_run_destroy(r, &cfg);
    else
        round_tr_run(r, &cfg);
    audit_last_hook(r);
    atomic_store(&g_round_start, 0);
    round_audit(r, &m0, &orig, &ss, before, nbefore, &x);
    if (g_verbose)
        round_summary(r, &x);
    round_violations(r);
    atomic_fetch_add_explicit(&g_shutdowns, 1, memory_order_relaxed);

    unsigned nv = r->nviol;
    round_free(r);
    if (nv) {
        printf("stress: seed %" PRIu64 " rounds %u ops %" PRIu64 " cancels %" PRIu64
               " shutdowns %" PRIu64 " signals %" PRIu64 " violations %u in %.1fs\n",
               g_seed, no, atomic_load(&g_ops), atomic_load(&g_cancels), atomic_load(&g_shutdowns),
               atomic_load(&g_signals), nv, (double)(now_ns() - g_t_start) / 1e9);
        fflush(stdout);
        exit(1);
    }
}
