/* SPDX-License-Identifier: MIT */
/*
 * orch.c — the round's orchestrator (the first task: tr_run's main, or
 * spawned before tr_engine_run) and the signals that end the round. The
 * orchestrator registers the audit hook, starts the signaller (a task, or
 * a helper thread), the stubborn and LATE tasks and the acceptors, then
 * keeps the round's task count near its target, spawns the planned
 * tr_cancel_all callers at their times and sometimes dumps the engine,
 * until the shutdown cancels it. After 1-4 s a REAL signal
 * (kill(getpid(), SIGTERM or SIGINT)) starts the shutdown; sometimes a
 * 2nd and 3rd follow, so the ladder's rungs (break shields, kill) run.
 */
#include "stress.h"

#include <errno.h>
#include <string.h>
#include <unistd.h>

/* ------------------------------------------------------------- signals */

/* The signaller task: the round's signals at their times (the gaps
 * inside a shield, which the 2nd signal breaks). */
int w_sig(struct tctx *c)
{
    struct round *r = c->r;
    int z = tr_sleep_ns((uint64_t)r->dur_ms * MS);
    opc();
    if (z != 0)
        viol(r, "signaller: tr_sleep_ns before the first signal = %d", z);
    for (unsigned k = 0; k < r->nsig; k++) {
        if (k > 0) {
            tr_shield_begin();
            (void)tr_sleep_ns((uint64_t)r->gap_ms[k] * MS); /* shields break at the 2nd */
            opc();
            tr_shield_end();
        }
        kill(getpid(), r->sig[k]);
        r->sigs_sent++;
        atomic_fetch_add_explicit(&g_signals, 1, memory_order_relaxed);
    }
    return 0;
}

/* The signaller thread, for rounds that signal from outside the engine. */
void *helper_main(void *arg)
{
    struct round *r = arg;
    sleep_ms(r->dur_ms);
    for (unsigned k = 0; k < r->nsig; k++) {
        if (k > 0)
            sleep_ms(r->gap_ms[k]);
        kill(getpid(), r->sig[k]);
        r->sigs_sent++;
        atomic_fetch_add_explicit(&g_signals, 1, memory_order_relaxed);
    }
    return NULL;
}

/* ------------------------------------------------------------- orchestrator */

/* What the round starts with: the audit hook (first registered: runs
 * last), the signaller (a task, excepted from tr_cancel_all, or a thread
 * created after tr_run's engine, so that it inherits the blocked signals),
 * the stubborn and LATE tasks and 2-6 acceptors. Returns the signaller's
 * handle, or NULL. */
static tr_task *orch_start(struct tctx *c)
{
    struct round *r = c->r;
    r->e = tr_self_engine();
    atomic_store(&g_engine, r->e);
    r->t0 = now_ns();
    r->except[0] = tr_self();
    r->nexcept = 1;
    add_hook(r, HK_AUDIT); /* first registered: runs last */
    tr_task *hs = NULL;
    if (!r->thread_sig) {
        if (spawn_kind(r, NULL, &hs, K_SIG, r->late_sig ? TR_SPAWN_LATE : 0, 0, -1, false) == 0) {
            r->except[1] = hs;
            r->nexcept = 2;
        }
    } else if (r->trrun) {
        /* Created after the engine: it inherits the blocked signals. */
        int err = pthread_create(&r->thr, NULL, helper_main, r);
        if (err)
            viol(r, "pthread_create: %s", strerror(err));
        else
            r->thr_started = true;
    }
    for (unsigned i = 0; i < r->nstub; i++)
        (void)spawn_kind(r, NULL, NULL, K_STUB, 0, 1, -1, false);
    for (unsigned i = 0; i < r->nlate; i++)
        (void)spawn_kind(r, NULL, NULL, K_LATE, TR_SPAWN_LATE, 1, -1, false);
    unsigned nacc = 2 + (unsigned)rbelow(5);
    for (unsigned i = 0; i < nacc; i++)
        (void)spawn_kind(r, NULL, NULL, K_ACCEPTOR, 0, 1, -1, true);
    return hs;
}

/* One pass of the orchestrator: the tr_cancel_all callers that are due,
 * LATE tasks to replace the ones a cancel_all ended, new tasks up to the
 * target (at most 150 a pass), sometimes a dump. */
static void orch_pass(struct round *r)
{
    uint64_t now = now_ns();
    if (r->calls_done < r->ncall && now >= r->t0 + r->call_at[r->calls_done]) {
        /* Sometimes several at once: overlapping waiters. */
        unsigned n = pct(30) ? 2 + (unsigned)rbelow(2) : 1;
        for (unsigned i = 0; i < n; i++)
            (void)spawn_kind(r, NULL, NULL, K_CALL, 0, 1, -1, true);
        r->calls_done++;
    }
    while (r->late_live < r->nlate) /* a cancel_all ended them: new ones */
        if (spawn_kind(r, NULL, NULL, K_LATE, TR_SPAWN_LATE, 1, -1, false) != 0)
            break;
    for (unsigned b = 0; b < 150 && r->spawned - r->returned < r->target; b++) {
        int k = pick_kind(r, 1);
        if (spawn_kind(r, NULL, NULL, k, 0, 1, -1, true) != 0)
            break;
    }
    if (pct(2) && g_devnull >= 0) {
        int n = tr_engine_dump(r->e, g_devnull);
        if (n < 1)
            viol(r, "tr_engine_dump = %d", n);
    }
}

int w_orch(struct tctx *c)
{
    struct round *r = c->r;
    tr_task *hs = orch_start(c);
    bool cancelled = false;
    /* Bounded: 100,000 passes of 1-10 ms each outlast any round. */
    for (unsigned it = 0; it < 100000; it++) {
        if (tr_shutting_down())
            break;
        orch_pass(r);
        int z = tr_sleep_ns(MS + rbelow(9 * MS));
        opc();
        if (z == -ECANCELED) {
            cancelled = true;
            break;
        }
    }
    if (!tr_shutting_down()) {
        viol(r, "the orchestrator was cancelled outside a shutdown");
    } else {
        unsigned n = 1 + (unsigned)rbelow(3);
        for (unsigned i = 0; i < n; i++)
            (void)spawn_kind(r, NULL, NULL, K_SPAWNCHK, 0, 1, -1, false);
    }
    if (hs) {
        r->nexcept = 1; /* the handle is consumed below */
        (void)join_child(r, hs);
    }
    return cancelled ? -ECANCELED : 0;
}
