/* SPDX-License-Identifier: MIT */
/*
 * sync_roles.c — what the sync kind's workers do (work_sync.c spawns them
 * into their world's group; sync_world.h lists the roles): each role's
 * calls, half in a scope of their own, with the checks made as they run
 * (work_sync.c's header lists them), and the helpers the coordinator
 * shares (closing the channel, signalling the condition, setting the
 * event, a look at the failures, a deadline).
 */
#include "sync_world.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

const char *const sw_role_names[SR__COUNT] = {
    "sync-consumer",  "sync-producer", "sync-sem",      "sync-mutex", "sync-condwait",
    "sync-signaller", "sync-evwait",   "sync-evtoggle", "sync-fail",  "sync-poke",
};

/* The real failures a child may end with (none is a cut's result). */
static const int fail_codes[] = {-EIO, -EPROTO, -ENOSPC, -EBADMSG, -ENOTCONN};

/* --------------------------------------------------------- a worker's calls */

/* A blocking call of a worker, in a scope of its own (0-2 ms) or not. */
struct bcall {
    struct scope1 q;
    bool scoped;
};

static void bc_begin(struct tctx *c, struct bcall *b, unsigned p)
{
    b->scoped = pct(p);
    if (b->scoped)
        scope1_enter(c, &b->q);
}

/* The call's result rc, checked: by the scope oracle inside its scope;
 * outside, a worker is in no scope (its group's context reaches it as a
 * cancellation): never -ETIMEDOUT, -ECANCELED only when cancelled. */
static int bc_end(struct tctx *c, struct bcall *b, int rc, const char *what)
{
    opc();
    if (b->scoped)
        return (int)scope1_leave(c, &b->q, rc, what);
    if (rc == -ETIMEDOUT)
        viol(c->r, "sync: %s = -ETIMEDOUT outside every scope", what);
    else if (rc == -ECANCELED && !tr_is_cancelled())
        viol(c->r, "sync: %s = -ECANCELED, but the task is not cancelled", what);
    return rc;
}

/* A cut by the call's own scope (left already): the worker may go on. */
static bool go_on(const struct bcall *b, int rc)
{
    return rc == -ETIMEDOUT && b->scoped && pct(50);
}

/* A short sleep or a yield, outside any scope of its own. */
int sw_pause(struct tctx *c)
{
    struct bcall b = {.scoped = false};
    bool y = pct(40);
    int rc = y ? tr_yield() : tr_sleep_ns(rbelow(300000));
    return bc_end(c, &b, rc, y ? "tr_yield" : "tr_sleep_ns");
}

/* ------------------------------------------------------- the mutex's model */

/* lock (or a condition wait) returned: the caller owns the mutex, and the
 * model's previous holder let go or has ended (a killed holder's mutex,
 * or one a worker returned holding, is handed on by the engine). */
static void mtx_got(struct sworker *me, const char *how)
{
    struct sworld *w = me->w;
    if (w->mtx._owner != me->t || w->mtx._owner_id != me->id) /* white-box */
        viol(w->r, "sync: %s returned, but the mutex's owner is task %" PRIu64 ", not %" PRIu64,
             how, w->mtx._owner ? w->mtx._owner->id : 0, me->id);
    if (w->holder_t) {
        if (sw_task_alive(w->holder_t, w->holder_id))
            viol(w->r,
                 "sync: two owners: %s gave task %" PRIu64 " the mutex while task %" PRIu64
                 " (alive) holds it",
                 how, me->id, w->holder_id);
        else
            w->handed_from_dead++;
    }
    w->holder_t = me->t;
    w->holder_id = me->id;
    me->holds_mtx = true;
}

static void mtx_put(struct sworker *me)
{
    struct sworld *w = me->w;
    if (w->holder_t != me->t || w->holder_id != me->id)
        viol(w->r, "sync: the mutex's holder changed while task %" PRIu64 " held it", me->id);
    w->holder_t = NULL;
    w->holder_id = 0;
    me->holds_mtx = false;
    int rc = tr_mutex_unlock(&w->mtx);
    if (rc != 0)
        viol(w->r, "sync: tr_mutex_unlock by its owner = %d", rc);
}

/* ------------------------------------------------------------- the channel */

void sw_close_chan(struct sworld *w, const char *who)
{
    int rc = tr_chan_close(w->ch);
    if (rc == 0) {
        if (w->closed)
            viol(w->r, "sync: tr_chan_close (%s) = 0 on a closed channel", who);
        w->closed = true;
    } else if (rc != -EPIPE || !w->closed) {
        viol(w->r, "sync: tr_chan_close (%s) = %d (closed before: %d)", who, rc, (int)w->closed);
    }
}

/* One send of the next numbered message; the result. */
static int prod_send(struct tctx *c, struct sworker *me, uint32_t seq, bool tryit, struct bcall *b)
{
    struct sworld *w = me->w;
    uint32_t p = me->pidx;
    me->sbuf = (struct smsg){w->no, p, seq, sw_tag(w, p, seq)};
    me->sending = seq;
    me->in_send = true;
    int rc;
    if (tryit) {
        rc = tr_chan_try_send(w->ch, &me->sbuf);
        me->in_send = false;
        opc();
    } else {
        bc_begin(c, b, 40);
        rc = tr_chan_send(w->ch, &me->sbuf);
        me->in_send = false;
        rc = bc_end(c, b, rc, "tr_chan_send");
    }
    if (rc == 0) {
        w->st[p][seq] |= MS_SENT;
        w->nsent++;
    } else {
        w->st[p][seq] |= MS_FAILED;
        if (w->st[p][seq] & MS_RECV)
            viol(w->r, "sync: G9: message %u/%u was received, yet its send returned %d", p, seq,
                 rc);
    }
    return rc;
}

static int do_prod(struct tctx *c, struct sworker *me)
{
    struct sworld *w = me->w;
    uint32_t p = me->pidx;
    unsigned n = 1 + (unsigned)rbelow(pct(20) ? SW_MAXSEQ : 40);
    int res = 0;
    for (unsigned i = 0; i < n && w->next_seq[p] < SW_MAXSEQ; i++) {
        bool tryit = pct(15);
        struct bcall b = {.scoped = false};
        int rc = prod_send(c, me, w->next_seq[p]++, tryit, &b);
        if (rc == -EPIPE) {
            if (!w->closed)
                viol(w->r, "sync: tr_chan_send = -EPIPE before the channel was closed");
            break;
        }
        if (sw_is_cut(rc)) {
            if (go_on(&b, rc))
                continue;
            res = rc;
            break;
        }
        if (rc != 0 && !(rc == -EAGAIN && tryit)) {
            viol(w->r, "sync: tr_chan_%ssend = %d", tryit ? "try_" : "", rc);
            break;
        }
        if (pct(15) && sw_is_cut(rc = sw_pause(c))) {
            res = rc;
            break;
        }
    }
    /* The last producer closes the channel: the consumers drain it. */
    if (!me->prod_closed && w->prod_live > 0) {
        me->prod_closed = true;
        if (--w->prod_live == 0)
            sw_close_chan(w, "the last producer");
    }
    return res;
}

static bool poisoned(const struct smsg *m)
{
    const uint8_t *b = (const uint8_t *)m;
    for (size_t i = 0; i < sizeof(*m); i++)
        if (b[i] != 0xA5)
            return false;
    return true;
}

static int do_cons(struct tctx *c, struct sworker *me)
{
    struct sworld *w = me->w;
    int res = 0;
    /* Bounded: at most SW_MAXP * SW_MAXSEQ messages, and each -EAGAIN of
     * a try is followed by a pause. */
    for (unsigned i = 0; i < 8 * SW_MAXP * SW_MAXSEQ; i++) {
        memset(&me->rbuf, 0xA5, sizeof(me->rbuf));
        bool tryit = pct(15);
        struct bcall b = {.scoped = false};
        int rc;
        me->in_recv = true;
        if (tryit) {
            rc = tr_chan_try_recv(w->ch, &me->rbuf);
            me->in_recv = false;
            opc();
        } else {
            bc_begin(c, &b, 40);
            rc = tr_chan_recv(w->ch, &me->rbuf);
            me->in_recv = false;
            rc = bc_end(c, &b, rc, "tr_chan_recv");
        }
        if (rc == 0) {
            sw_got_msg(w, me, &me->rbuf);
            continue;
        }
        if (!poisoned(&me->rbuf))
            viol(w->r, "sync: G9: a receive that returned %d wrote into its buffer", rc);
        if (rc == -EAGAIN && tryit) {
            if (sw_is_cut(rc = sw_pause(c))) {
                res = rc;
                break;
            }
            continue;
        }
        if (rc == -EPIPE) {
            if (!w->closed)
                viol(w->r, "sync: tr_chan_recv = -EPIPE before the channel was closed");
            w->epipe_recv = true;
            break;
        }
        if (sw_is_cut(rc)) {
            if (go_on(&b, rc))
                continue;
            res = rc;
            break;
        }
        viol(w->r, "sync: tr_chan_%srecv = %d", tryit ? "try_" : "", rc);
        break;
    }
    return res;
}

/* -------------------------------------------------------------- the others */

static void got_unit(struct sworker *me)
{
    struct sworld *w = me->w;
    me->held++;
    w->held_live++;
    if (w->sem._count + w->held_live > w->k) /* white-box: the count */
        viol(w->r, "sync: the semaphore has %u units free and %u out, of %u", w->sem._count,
             w->held_live, w->k);
}

static void release_units(struct sworker *me)
{
    struct sworld *w = me->w;
    /* Bounded by what it holds. */
    while (me->held > 0) {
        int rc = tr_sem_release(&w->sem);
        if (rc != 0)
            viol(w->r, "sync: tr_sem_release = %d", rc);
        me->held--;
        w->held_live--;
    }
}

static int do_sem(struct tctx *c, struct sworker *me)
{
    struct sworld *w = me->w;
    unsigned n = 1 + (unsigned)rbelow(6);
    int res = 0;
    for (unsigned i = 0; i < n && res == 0; i++) {
        bool tryit = pct(20);
        struct bcall b = {.scoped = false};
        int rc;
        if (tryit) {
            rc = tr_sem_try_acquire(&w->sem);
            opc();
        } else {
            bc_begin(c, &b, 40);
            rc = tr_sem_acquire(&w->sem);
            rc = bc_end(c, &b, rc, "tr_sem_acquire");
        }
        if (rc == 0) {
            got_unit(me);
        } else if (rc == -EAGAIN && tryit) {
            if (w->sem._count != 0)
                viol(w->r, "sync: tr_sem_try_acquire = -EAGAIN with %u units free", w->sem._count);
        } else if (sw_is_cut(rc)) {
            if (!go_on(&b, rc))
                res = rc;
            continue;
        } else {
            viol(w->r, "sync: tr_sem_%sacquire = %d", tryit ? "try_" : "", rc);
            break;
        }
        /* A second unit only without waiting: two waits could deadlock. */
        if (me->held > 0 && pct(30) && tr_sem_try_acquire(&w->sem) == 0)
            got_unit(me);
        if (pct(5) && sw_qlen(&w->sem._p) > 0 && (rc = tr_sem_init(&w->sem, w->k)) != -EBUSY)
            viol(w->r, "sync: tr_sem_init of a semaphore tasks wait on = %d, want -EBUSY", rc);
        if (me->held > 0 && sw_is_cut(rc = sw_pause(c)))
            res = rc;
        release_units(me);
    }
    release_units(me);
    return res;
}

/* A lock or a trylock; -EBUSY only from a trylock. */
static int mtx_lock(struct tctx *c, struct sworker *me, bool tryit, struct bcall *b)
{
    struct sworld *w = me->w;
    int rc;
    if (tryit) {
        bool held = w->mtx._owner != NULL; /* white-box */
        rc = tr_mutex_trylock(&w->mtx);
        opc();
        if (rc == -EBUSY && !held && sw_qlen(&w->mtx._p) == 0)
            viol(w->r, "sync: tr_mutex_trylock = -EBUSY on a free mutex");
        if (rc == 0 && held)
            viol(w->r, "sync: tr_mutex_trylock = 0 on a held mutex");
    } else {
        bc_begin(c, b, 40);
        rc = tr_mutex_lock(&w->mtx);
        rc = bc_end(c, b, rc, "tr_mutex_lock");
    }
    if (rc == 0)
        mtx_got(me, tryit ? "tr_mutex_trylock" : "tr_mutex_lock");
    return rc;
}

static int do_mtx(struct tctx *c, struct sworker *me)
{
    struct sworld *w = me->w;
    unsigned n = 1 + (unsigned)rbelow(4);
    int res = 0;
    for (unsigned i = 0; i < n && res == 0; i++) {
        bool tryit = pct(20);
        struct bcall b = {.scoped = false};
        int rc = mtx_lock(c, me, tryit, &b);
        if (rc == -EBUSY && tryit) {
            if (sw_is_cut(rc = sw_pause(c)))
                res = rc;
            continue;
        }
        if (sw_is_cut(rc)) {
            if (!go_on(&b, rc))
                res = rc;
            continue;
        }
        if (rc != 0) {
            viol(w->r, "sync: tr_mutex_%slock = %d", tryit ? "try" : "", rc);
            break;
        }
        if (pct(10) && (rc = tr_mutex_lock(&w->mtx)) != -EDEADLK)
            viol(w->r, "sync: tr_mutex_lock by its owner = %d, want -EDEADLK", rc);
        if (pct(10) && (rc = tr_mutex_trylock(&w->mtx)) != -EDEADLK)
            viol(w->r, "sync: tr_mutex_trylock by its owner = %d, want -EDEADLK", rc);
        if (pct(5) && (rc = tr_mutex_init(&w->mtx)) != -EBUSY)
            viol(w->r, "sync: tr_mutex_init of a held mutex = %d, want -EBUSY", rc);
        /* A lost update shows two owners: read, yield, write. */
        uint64_t v = w->counter;
        int z = sw_pause(c);
        if (w->holder_t != me->t)
            viol(w->r, "sync: the mutex's holder changed across a yield");
        w->counter = v + 1;
        w->counter_done++;
        if (pct(2)) {
            /* Returns holding it: the engine hands it on (mutexes_left). */
            w->r->mtx_left_planned++;
            return 0;
        }
        mtx_put(me);
        if (sw_is_cut(z))
            res = z;
    }
    return res;
}

static int do_condw(struct tctx *c, struct sworker *me)
{
    struct sworld *w = me->w;
    struct bcall b = {.scoped = false};
    int rc = mtx_lock(c, me, false, &b);
    if (rc != 0) {
        if (!sw_is_cut(rc))
            viol(w->r, "sync: tr_mutex_lock = %d", rc);
        return rc;
    }
    int res = 0;
    for (unsigned i = 0; i < 6 && !w->go; i++) {
        /* The wait lets go of the mutex and takes it back. */
        w->holder_t = NULL;
        w->holder_id = 0;
        me->holds_mtx = false;
        struct bcall b2 = {.scoped = false};
        me->in_cond = true;
        bc_begin(c, &b2, 50);
        b2.q.two_waits = true; /* its mutex taken back after the wait's cut */
        rc = tr_cond_wait(&w->cond, &w->mtx);
        me->in_cond = false;
        rc = bc_end(c, &b2, rc, "tr_cond_wait");
        mtx_got(me, "tr_cond_wait"); /* held again, also when cut short */
        if (rc == 0) {
            w->cond_ret0++;
        } else if (sw_is_cut(rc)) {
            if (go_on(&b2, rc))
                continue;
            res = rc;
            break;
        } else {
            viol(w->r, "sync: tr_cond_wait = %d", rc);
            break;
        }
    }
    w->counter++;
    w->counter_done++;
    mtx_put(me);
    return res;
}

/* A signal or a broadcast: the waiters it found queued are woken (the
 * grants, which each waiter's wait returns 0 for, unless it is killed). */
void sw_cond_signal(struct sworld *w, bool all)
{
    unsigned q = sw_qlen(&w->cond._p);
    int rc = all ? tr_cond_broadcast(&w->cond) : tr_cond_signal(&w->cond);
    if (rc != 0)
        viol(w->r, "sync: tr_cond_%s = %d", all ? "broadcast" : "signal", rc);
    unsigned woken = all ? q : q > 0;
    w->cond_granted += woken;
    unsigned q2 = sw_qlen(&w->cond._p);
    if (q2 != q - woken)
        viol(w->r, "sync: after tr_cond_%s %u waiters are queued, %u before",
             all ? "broadcast" : "signal", q2, q);
}

static int do_signal(struct tctx *c, struct sworker *me)
{
    struct sworld *w = me->w;
    unsigned n = 1 + (unsigned)rbelow(8);
    int res = 0;
    for (unsigned i = 0; i < n; i++) {
        if (sw_is_cut(res = sw_pause(c)))
            break;
        sw_cond_signal(w, pct(30));
    }
    w->go = true;
    sw_cond_signal(w, true);
    return sw_is_cut(res) ? res : 0;
}

void sw_ev_set(struct sworld *w)
{
    int rc = tr_event_set(&w->ev);
    if (rc != 0)
        viol(w->r, "sync: tr_event_set = %d", rc);
    w->ev_sets++;
    if (!tr_event_is_set(&w->ev) || sw_qlen(&w->ev._p) != 0)
        viol(w->r, "sync: after tr_event_set: set %d, %u waiters queued",
             (int)tr_event_is_set(&w->ev), sw_qlen(&w->ev._p));
}

static int do_evw(struct tctx *c, struct sworker *me)
{
    struct sworld *w = me->w;
    unsigned n = 1 + (unsigned)rbelow(3);
    int res = 0;
    for (unsigned i = 0; i < n && res == 0; i++) {
        bool set0 = tr_event_is_set(&w->ev);
        uint64_t n0 = w->ev_sets;
        struct bcall b = {.scoped = false};
        bc_begin(c, &b, 60);
        int rc = tr_event_wait(&w->ev);
        rc = bc_end(c, &b, rc, "tr_event_wait");
        if (rc == 0) {
            if (!set0 && w->ev_sets == n0)
                viol(w->r, "sync: tr_event_wait = 0, but the event was not set at the call "
                           "nor since");
        } else if (sw_is_cut(rc)) {
            if (!go_on(&b, rc))
                res = rc;
            continue;
        } else {
            viol(w->r, "sync: tr_event_wait = %d", rc);
            break;
        }
        if (sw_is_cut(rc = sw_pause(c)))
            res = rc;
    }
    return res;
}

static int do_evt(struct tctx *c, struct sworker *me)
{
    struct sworld *w = me->w;
    unsigned n = 1 + (unsigned)rbelow(6);
    for (unsigned i = 0; i < n && !w->ev_final; i++) {
        if (pct(60)) {
            sw_ev_set(w);
        } else {
            int rc = tr_event_clear(&w->ev);
            if (rc != 0 || tr_event_is_set(&w->ev))
                viol(w->r, "sync: tr_event_clear = %d (set %d)", rc, (int)tr_event_is_set(&w->ev));
        }
        int rc = sw_pause(c);
        if (sw_is_cut(rc))
            return rc;
    }
    return 0;
}

static int do_fail(struct tctx *c, struct sworker *me)
{
    unsigned n = (unsigned)rbelow(4);
    for (unsigned i = 0; i < n; i++) {
        int rc = sw_pause(c);
        if (sw_is_cut(rc))
            return rc;
    }
    if (pct(30) && tr_sem_try_acquire(&me->w->sem) == 0) {
        got_unit(me);
        release_units(me);
    }
    return fail_codes[rbelow(sizeof(fail_codes) / sizeof(fail_codes[0]))];
}

/* What a child may not do, and primitives never initialised: -errno. */
static void poke_misuse(struct sworker *me)
{
    struct sworld *w = me->w;
    struct round *r = w->r;
    int rc;
    if ((rc = tr_group_spawn(&w->g, task_main, NULL, NULL)) != -EPERM)
        viol(r, "sync: tr_group_spawn by a non-owner = %d, want -EPERM", rc);
    if ((rc = tr_group_wait(&w->g)) != -EPERM)
        viol(r, "sync: tr_group_wait by a non-owner = %d, want -EPERM", rc);
    if (!me->holds_mtx) {
        if ((rc = tr_mutex_unlock(&w->mtx)) != -EPERM)
            viol(r, "sync: tr_mutex_unlock by a non-owner = %d, want -EPERM", rc);
        if ((rc = tr_cond_wait(&w->cond, &w->mtx)) != -EPERM)
            viol(r, "sync: tr_cond_wait without the mutex = %d, want -EPERM", rc);
    }
    struct tr_chan *x = NULL;
    if ((rc = tr_chan_create(&x, sizeof(struct smsg), 1, 0x80)) != -EINVAL ||
        (rc = tr_chan_create(&x, 0, 1, 0)) != -EINVAL ||
        (rc = tr_chan_create(NULL, 8, 1, 0)) != -EINVAL)
        viol(r, "sync: tr_chan_create with a bad flag, elem 0 or NULL = %d, want -EINVAL", rc);
    struct tr_sem zs;
    struct tr_event ze;
    memset(&zs, 0, sizeof(zs));
    memset(&ze, 0, sizeof(ze));
    if ((rc = tr_sem_release(&zs)) != -EINVAL || (rc = tr_event_wait(&ze)) != -EINVAL ||
        (rc = tr_sem_acquire(NULL)) != -EINVAL || (rc = tr_group_cancel(NULL)) != -EINVAL)
        viol(r, "sync: a NULL or never initialised primitive = %d, want -EINVAL", rc);
}

/* tr_group_failures of the live group: a prefix of what the wait lists. */
void sw_failures_snapshot(struct sworld *w)
{
    struct tr_failure f[TR_GROUP_FAILURES];
    size_t n = tr_group_failures(&w->g, f, TR_GROUP_FAILURES);
    if (w->have_snap && n < w->nsnap)
        viol(w->r, "sync: tr_group_failures went from %zu to %zu", w->nsnap, n);
    memcpy(w->snap, f, sizeof(f));
    w->nsnap = n;
    w->have_snap = true;
}

uint64_t sw_pick_deadline(uint64_t now)
{
    unsigned x = (unsigned)rbelow(100);
    if (x < 10)
        return now - 1 - rbelow(MS);
    if (x < 60)
        return now + 2 * MS + rbelow(40 * MS);
    if (x < 80)
        return now + 3600000 * MS;
    return 0;
}

static int do_poke(struct tctx *c, struct sworker *me)
{
    struct sworld *w = me->w;
    unsigned n = 1 + (unsigned)rbelow(4);
    for (unsigned i = 0; i < n; i++) {
        int rc = sw_pause(c);
        if (sw_is_cut(rc))
            return rc;
        unsigned x = (unsigned)rbelow(100);
        if (x < 20) {
            if ((rc = tr_group_cancel(&w->g)) != 0)
                viol(w->r, "sync: tr_group_cancel by a child = %d", rc);
            else
                w->gcancel_known = true;
        } else if (x < 35 && w->scoped) {
            if ((rc = tr_scope_cancel(&w->sc)) != 0)
                viol(w->r, "sync: tr_scope_cancel of the coordinator's scope = %d", rc);
            else
                so_cancel(&w->sm);
        } else if (x < 55 && w->scoped) {
            uint64_t now = now_ns(), d = sw_pick_deadline(now);
            if ((rc = tr_scope_set_deadline(&w->sc, d)) != 0)
                viol(w->r, "sync: tr_scope_set_deadline of the coordinator's scope = %d", rc);
            else
                so_move(&w->sm, d, now);
        } else if (x < 75) {
            sw_failures_snapshot(w);
        } else {
            poke_misuse(me);
        }
    }
    return 0;
}

int sw_role_run(struct tctx *c, struct sworker *me)
{
    int res = 0;
    switch (me->role) {
    case SR_PROD:
        res = do_prod(c, me);
        break;
    case SR_CONS:
        res = do_cons(c, me);
        break;
    case SR_SEM:
        res = do_sem(c, me);
        break;
    case SR_MTX:
        res = do_mtx(c, me);
        break;
    case SR_CONDW:
        res = do_condw(c, me);
        break;
    case SR_SIGNAL:
        res = do_signal(c, me);
        break;
    case SR_EVW:
        res = do_evw(c, me);
        break;
    case SR_EVT:
        res = do_evt(c, me);
        break;
    case SR_FAIL:
        res = do_fail(c, me);
        break;
    default:
        res = do_poke(c, me);
        break;
    }
    return res;
}
