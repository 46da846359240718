/* SPDX-License-Identifier: MIT */
/*
 * work_sync.c — the sync kind (DESIGN section 8): a coordinator makes a
 * world of primitives on the heap (a semaphore of 1-4 units, a mutex, a
 * condition, an event, a channel of capacity 0 (a rendezvous), 1, 2, 3, 8
 * or 32), sometimes enters a scope with a deadline (passed, near, far),
 * then a task group, into which it spawns 3-11 workers with roles
 * (sync_world.h): producers of numbered messages and their consumers, unit
 * takers, mutex holders updating a counter across a yield, condition
 * waiters and signallers, event waiters and togglers, children that fail
 * for real, and pokers that cancel the group or the coordinator's scope,
 * move its deadline and try what only the owner may do. Half the blocking
 * calls are in a scope of their own with a deadline 0-2 ms ahead
 * (scope1_enter/leave: the scope oracle checks each). The round's random
 * cancels, tr_cancel_all and its shutdown (kill rung included) cut any of
 * them short at any point.
 *
 * Checked as it runs: a message received is one that was sent (or is
 * being sent), once, after what that receiver had from its sender; a
 * receive cut short wrote nothing into its buffer, a send cut short is
 * never received; the semaphore never has more units out than it has; a
 * mutex lock (and a condition wait, also one cut short) returns with the
 * caller the owner, and never while the model's holder is alive; a
 * try-acquire's -EAGAIN only with no unit free; an event wait returns 0
 * only if the event was set at its call or since; a set or a broadcast
 * leaves nobody waiting, a signal one fewer; the misuses get their -errno
 * (a non-owner's tr_group_spawn/tr_group_wait -EPERM, an unlock by a
 * non-owner -EPERM, a relock and an owner's trylock -EDEADLK, init of a
 * waited-on semaphore or of a held mutex -EBUSY, an unknown channel flag -EINVAL,
 * a second tr_group_init -EINVAL, a done group's wait -EINVAL); each
 * tr_group_spawn's result against what the model knows of the group
 * (-ECANCELED once it is cancelling for sure, 0 while nothing can have
 * cancelled it). After tr_group_wait: G10 and the failures, then the
 * world's conservation audit (sync_audit.c). The workers' roles are in
 * sync_roles.c.
 */
#include "sync_world.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

_Atomic uint64_t g_worlds, g_groups, g_msgs, g_gfail;

static bool shields_broken(void)
{
    return tr_self_engine()->sd.shields_broken; /* white-box */
}

/* --------------------------------------------------------------- the model */

/* The group is cancelling for sure: tr_group_cancel returned 0 (or a
 * spawn said so), the coordinator's scope was cancelled, the coordinator
 * is cancelled (it never shields), or a child ended with a failure that
 * only a group not yet cancelling counts. */
static bool grp_certain(const struct sworld *w)
{
    if (w->gcancel_known || (w->scoped && w->sm.cancelled) || tr__task_cancelled(w->owner))
        return true;
    for (unsigned i = 0; i < w->nends; i++) {
        const struct sw_end *e = &w->ends[i];
        if (e->res < 0 && (!sw_is_cut(e->res) || (!e->known && !e->maybe)))
            return true;
    }
    return false;
}

/* It may be: also when the scope's deadline has passed (its timer may not
 * have fired yet), or a child ended with a cut that may count. */
static bool grp_possible(const struct sworld *w, uint64_t now)
{
    if (grp_certain(w) || (w->scoped && w->sm.earliest && w->sm.earliest <= now))
        return true;
    for (unsigned i = 0; i < w->nends; i++)
        if (w->ends[i].res < 0)
            return true;
    return false;
}

int w_syncw(struct tctx *c)
{
    struct sworker *me = c->sw;
    struct sworld *w = me->w;
    me->started = true;
    me->t = tr_self();
    me->id = tr_task_id(me->t);
    int res = sw_role_run(c, me);
    /* A stubborn world's workers, once a shutdown has begun, go on inside
     * a shield (cleanup that still sends, receives, waits and holds), and
     * once the shutdown breaks the shields, ignore the cuts until the
     * kill rung ends them: it then meets them parked, granted, holding.
     * Each round passes through the scheduler (a pause) first. Bounded:
     * 3 s, or 100,000 rounds. */
    bool sh = false;
    uint64_t end = now_ns() + 3000 * MS;
    for (unsigned i = 0;
         i < 100000 && w->stubborn && !me->holds_mtx && tr_shutting_down() && now_ns() < end; i++) {
        if (!sh && tr_shield_begin() >= 1)
            sh = true;
        (void)sw_pause(c);
        res = sw_role_run(c, me);
    }
    if (sh && tr_shield_end() < 0)
        viol(w->r, "sync: tr_shield_end = -EINVAL after a stubborn worker's shield");
    /* Its ending, with what the model knows of the group now: nothing runs
     * between this and the engine's end of the task. */
    struct sw_end *e = &w->ends[w->nends++];
    e->w = me->idx;
    e->res = res;
    e->known = w->gcancel_known || (w->scoped && w->sm.cancelled) || tr__task_cancelled(w->owner) ||
               tr_shutting_down();
    e->maybe = e->known || (w->scoped && w->sm.earliest && w->sm.earliest <= now_ns());
    me->returned = true;
    me->result = res;
    return res;
}

/* ---------------------------------------------------------- the coordinator */

static struct sworld *world_new(struct tctx *c)
{
    struct round *r = c->r;
    struct sworld *w = calloc(1, sizeof(*w));
    if (!w)
        return NULL;
    w->r = r;
    w->no = (uint32_t)++r->nworlds;
    w->seed = rnd();
    w->stubborn = pct(25);
    w->next = r->worlds;
    r->worlds = w;
    atomic_fetch_add_explicit(&g_worlds, 1, memory_order_relaxed);
    static const size_t caps[] = {0, 0, 1, 2, 3, 8, 32};
    w->k = 1 + (unsigned)rbelow(4);
    w->cap = caps[rbelow(sizeof(caps) / sizeof(caps[0]))];
    int rc;
    if ((rc = tr_sem_init(&w->sem, w->k)) != 0 || (rc = tr_mutex_init(&w->mtx)) != 0 ||
        (rc = tr_cond_init(&w->cond)) != 0 || (rc = tr_event_init(&w->ev)) != 0 ||
        (rc = tr_chan_create(&w->ch, sizeof(struct smsg), w->cap, 0)) != 0) {
        viol(r, "sync: initialising a world's primitives = %d", rc);
        w->ch = NULL;
        w->audited = true;
        return NULL;
    }
    return w;
}

static void spawn_worker(struct tctx *c, struct sworld *w, int role)
{
    struct round *r = c->r;
    if (w->nw >= SW_MAXW || (role == SR_PROD && w->nprod >= SW_MAXP))
        return;
    struct sworker *me = &w->wk[w->nw];
    memset(me, 0, sizeof(*me));
    me->w = w;
    me->role = (uint8_t)role;
    me->idx = (uint8_t)w->nw;
    me->pidx = (uint8_t)w->nprod;
    bool certain = grp_certain(w), possible = grp_possible(w, now_ns());
    int rc = spawn_group_kind(r, &w->g, K_SYNCW, c->depth + 1u, me, sw_role_names[role]);
    if (rc == 0) {
        if (certain)
            viol(r, "sync: tr_group_spawn = 0 into a group that is cancelling");
        me->spawned = true;
        w->nw++;
        if (role == SR_PROD) {
            w->nprod++;
            w->prod_live++;
        }
    } else if (rc == -ECANCELED) {
        if (!possible)
            viol(r, "sync: tr_group_spawn = -ECANCELED, but nothing can have cancelled the group");
        w->gcancel_known = true;
    } else {
        viol(r, "sync: tr_group_spawn = %d", rc);
    }
}

/* 3-11 workers: consumers first (producers never wait without one), then
 * producers, then the other roles. */
static void spawn_workers(struct tctx *c, struct sworld *w)
{
    unsigned n = 3 + (unsigned)rbelow(SW_MAXW - 3);
    unsigned np = (unsigned)rbelow(SW_MAXP + 1);
    unsigned nc = np ? 1 + (unsigned)rbelow(3) : (unsigned)rbelow(2);
    for (unsigned i = 0; i < nc; i++)
        spawn_worker(c, w, SR_CONS);
    for (unsigned i = 0; i < np; i++)
        spawn_worker(c, w, SR_PROD);
    for (unsigned i = nc + np; i < n; i++)
        spawn_worker(c, w, SR_SEM + (int)rbelow(SR__COUNT - SR_SEM));
}

/* A blocking call of the coordinator, inside its scope: the oracle. */
static void coord_check(struct sworld *w, const struct so_pre *pre, long res, const char *what)
{
    const char *why = NULL;
    if (!so_after(&w->mt, pre, res, now_ns(), shields_broken(), tr_is_cancelled(), &why))
        viol(w->r, "sync: the coordinator's %s = %ld: %s", what, res, why);
    if (res == -ETIMEDOUT)
        w->r->etimedout++;
}

/* While the workers run: sleeps, and sometimes a tr_group_cancel, an
 * early close, a look at the failures, one more worker. */
static void coord_middle(struct tctx *c, struct sworld *w)
{
    unsigned n = (unsigned)rbelow(4);
    for (unsigned i = 0; i < n; i++) {
        struct so_pre pre = so_before(&w->mt, shields_broken(), tr_is_cancelled());
        int z = tr_sleep_ns(rbelow(2 * MS));
        opc();
        coord_check(w, &pre, z, "tr_sleep_ns");
        unsigned x = (unsigned)rbelow(100);
        int rc;
        if (x < 10) {
            if ((rc = tr_group_cancel(&w->g)) != 0)
                viol(w->r, "sync: tr_group_cancel by its owner = %d", rc);
            else
                w->gcancel_known = true;
        } else if (x < 16) {
            sw_close_chan(w, "the coordinator, early");
        } else if (x < 30) {
            sw_failures_snapshot(w);
        } else if (x < 40) {
            spawn_worker(c, w, SR_SEM + (int)rbelow(SR__COUNT - SR_SEM));
        }
    }
}

/* Before the wait: whatever the workers wait for comes (but the
 * messages: those end with the channel's close). */
static void coord_final(struct sworld *w)
{
    w->go = true;
    sw_cond_signal(w, true);
    w->ev_final = true;
    sw_ev_set(w);
    if (w->prod_live == 0 && !w->closed)
        sw_close_chan(w, "the coordinator, no producer left");
}

static void coord_wait(struct sworld *w)
{
    struct so_pre pre = so_before(&w->mt, shields_broken(), tr_is_cancelled());
    /* Cut before the call: level-triggered, the wait returns the cut. One
     * that comes while it waits may lose to the group's end (G5). */
    bool cut0 = tr_is_cancelled() || (w->scoped && w->sm.cancelled);
    int wr = tr_group_wait(&w->g);
    uint64_t t1 = now_ns();
    bool brk = shields_broken(), canc = tr_is_cancelled();
    opc();
    size_t nf = tr_group_failures(&w->g, NULL, 0);
    if (nf == 0) {
        /* No real failure: 0, or the owner's cut (the scope oracle). */
        const char *why = NULL;
        if (!so_after(&w->mt, &pre, wr, t1, brk, canc, &why))
            viol(w->r, "sync: tr_group_wait = %d: %s", wr, why);
        if (wr == 0 && cut0)
            viol(w->r, "sync: tr_group_wait = 0, but its caller was cut short before it");
        if (wr == -ETIMEDOUT)
            w->r->etimedout++;
    }
    sw_group_check(w, wr, t1);
    int rc;
    if (pct(20) && (rc = tr_group_wait(&w->g)) != -EINVAL)
        viol(w->r, "sync: tr_group_wait of a done group = %d, want -EINVAL", rc);
}

/* One episode: a world, its scope perhaps, its group and workers, the
 * wait and the checks; the world is freed once audited. */
static void episode(struct tctx *c)
{
    struct round *r = c->r;
    struct sworld *w = world_new(c);
    if (!w)
        return;
    int rc;
    if (pct(50)) {
        uint64_t now = now_ns(), d = sw_pick_deadline(now);
        if ((rc = tr_scope_enter(&w->sc, d, 0)) != 0) {
            viol(r, "sync: tr_scope_enter = %d", rc);
        } else {
            so_enter(&w->mt, &w->sm, d, 0, now);
            w->scoped = true;
            c->nscope++;
        }
    }
    w->owner = tr_self();
    if ((rc = tr_group_init(&w->g)) != 0) {
        viol(r, "sync: tr_group_init = %d", rc);
        return; /* its scope is left entered: a violation ends the run */
    }
    if (pct(10) && (rc = tr_group_init(&w->g)) != -EINVAL)
        viol(r, "sync: tr_group_init of a live group = %d, want -EINVAL", rc);
    spawn_workers(c, w);
    coord_middle(c, w);
    coord_final(w);
    coord_wait(w);
    sw_world_audit(w, "by its coordinator");
    if (w->scoped) {
        const char *want = NULL;
        rc = tr_scope_exit(&w->sc);
        if (!so_exit_ok(&w->sm, rc, &want))
            viol(r, "sync: the coordinator's tr_scope_exit = %d, want %s", rc, want);
        so_exit(&w->mt);
        c->nscope--;
    }
    sw_world_free(w);
}

/* The coordinator: one episode, or (30%) episode after episode until it
 * is cancelled, so that a shutdown finds worlds in every state. */
int w_sync(struct tctx *c)
{
    unsigned n = pct(30) ? 1 + (unsigned)rbelow(300) : 1;
    for (unsigned i = 0; i < n && !tr_is_cancelled(); i++)
        episode(c);
    return tr_is_cancelled() ? -ECANCELED : 0;
}
