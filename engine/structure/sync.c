/* SPDX-License-Identifier: MIT */
/*
 * sync.c — the primitives tasks coordinate with (DESIGN section 8): event,
 * semaphore, mutex, condition. Caller storage, one engine's tasks.
 *
 * Each primitive has a FIFO of waiters: a sync_wait record in each
 * waiter's frame, linked into the primitive's queue, with a wait kind of
 * the primitive's (the dump's name, the cancel, the kill, the reap).
 *
 * G9, by hand-off: a release, an unlock, a set or a signal takes the first
 * waiter off the queue and wakes it with 0 — the unit, the ownership or
 * the event is its from then on, and it returns 0 even if a cancellation
 * comes before it runs (the real result wins; the cut shows at its next
 * blocking call). A waiter cut short while still queued unlinks itself
 * and returns the cut (-ECANCELED/-ETIMEDOUT) having taken nothing; the
 * next release goes to the next waiter. A waiter killed by the shutdown's
 * kill rung after its grant gives the grant on (the kind's reap).
 *
 * Invariants (asserted): a semaphore with waiters has no free unit; a
 * mutex with waiters has an owner.
 */
#include "tr_internal.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>

#define TR_EVENT_MAGIC 0x5e7e0001u
#define TR_SEM_MAGIC 0x5e7e0002u
#define TR_MUTEX_MAGIC 0x5e7e0003u
#define TR_COND_MAGIC 0x5e7e0004u

struct sync_wait {
    struct tr__wait w;
    struct tr__link link; /* in its primitive's queue */
    struct tr__prim *p;
    struct tr_mutex *m;    /* a condition's mutex (the dump's) */
    struct tr_cond *taken; /* a retake's: the condition whose signal it took */
    bool cancellable;      /* false: a condition's taking back of its mutex */
};

_Static_assert(sizeof(((struct tr__prim *)0)->_q) == sizeof(struct tr__link),
               "a primitive's queue head is a list head");

static struct tr__link *queue(struct tr__prim *p)
{
    return (struct tr__link *)(void *)p->_q;
}

static bool queue_empty(const struct tr__prim *p)
{
    return tr__list_empty((const struct tr__link *)(const void *)p->_q);
}

static struct sync_wait *wait_of(tr_task *t)
{
    return (struct sync_wait *)(void *)t->wait;
}

/* ---- the kinds --------------------------------------------------------------- */

static void signal_on(tr_engine *e, struct tr_cond *c);

static void sync_kill(tr_engine *e, tr_task *t)
{
    struct sync_wait *sw = wait_of(t);
    tr__list_del(&sw->link);
    e->st.prim_waits_cut++;
    tr__task_wake(t, TR__WAKE_CUT);
    /* Killed while taking its mutex back after a signal: the signal was
     * the next waiter's too (G9). */
    if (sw->taken)
        signal_on(e, sw->taken);
}

/* t takes its mutex back after a tr_cond_wait, which is never cut short:
 * may its owner never hand it on? Then the kill rung must end t without
 * t having seen its cancellation (a shutdown is bounded). It may while the
 * owner runs or waits like any task: cancelled, it lets go or is killed,
 * and a killed owner's mutexes are handed on. It may not when the owner
 * has returned and waits for its groups' children (t may be one), runs
 * t in a group of its (it waits for t, in tr_group_wait or at its end), is
 * LATE and not cancelled before t ends, or itself takes a mutex back (a
 * cycle of those would wait for each other). */
static bool retake_stuck(const tr_engine *e, const tr_task *t)
{
    const struct sync_wait *sw = (const struct sync_wait *)(const void *)t->wait;
    const struct tr_mutex *m = (const struct tr_mutex *)(const void *)sw->p;
    const tr_task *o = m->_owner;
    if (o == t)
        return false; /* handed to it: it runs next */
    if (!o)
        return true; /* not expected (a waiter is handed a freed mutex) */
    if (o->killed)
        return false; /* handed on at its teardown */
    if (o->returned || (o->late && !t->late && !e->sd.late_cancelled))
        return true;
    if (TR_UNLIKELY(t->group != NULL) && tr__groups_ancestor(o, t))
        return true; /* t runs in a group of o's: o waits for t's end */
    return o->state == TR_TASK_PARKED && o->wait_kind == &tr__wk_mutex &&
           !((const struct sync_wait *)(const void *)o->wait)->cancellable;
}

static void sync_cancel(tr_engine *e, tr_task *t)
{
    if (wait_of(t)->cancellable) {
        sync_kill(e, t);
        return;
    }
    /* A condition's taking back of its mutex: t's cancellation shows once
     * it has its mutex and returns (DESIGN section 4: the kill rung waits
     * for that), unless the owner may never let go. Asked again at each
     * pass of the kill rung (kill_task re-checks an undelivered task). */
    if (retake_stuck(e, t))
        tr__cancel_held(t);
}

static void sync_describe(const tr_engine *e, const tr_task *t, char *buf, size_t len)
{
    (void)e;
    const struct sync_wait *sw = (const struct sync_wait *)(const void *)t->wait;
    const struct tr__prim *p = sw->p;
    switch (p->_magic) {
    case TR_SEM_MAGIC:
        snprintf(buf, len, " sem=%p count=%u", (const void *)p,
                 ((const struct tr_sem *)(const void *)p)->_count);
        break;
    case TR_MUTEX_MAGIC: {
        const tr_task *o = ((const struct tr_mutex *)(const void *)p)->_owner;
        snprintf(buf, len, " mutex=%p owner=%llu", (const void *)p,
                 (unsigned long long)(o ? o->id : 0));
        break;
    }
    case TR_COND_MAGIC:
        snprintf(buf, len, " cond=%p mutex=%p", (const void *)p, (const void *)sw->m);
        break;
    default:
        snprintf(buf, len, " event=%p", (const void *)p);
        break;
    }
}

static void sem_grant(struct tr_sem *s);
static void mutex_hand_on(struct tr_mutex *m);
static bool owned_by(const struct tr_mutex *m, const tr_task *t);

/* A killed waiter that had been granted gives the grant on (it is never
 * resumed: nobody else would). */
static void sem_reap(tr_engine *e, tr_task *t)
{
    if (t->wait_res != 0)
        return;
    e->st.kill_grants_passed++;
    sem_grant((struct tr_sem *)(void *)wait_of(t)->p);
}

static void mutex_reap(tr_engine *e, tr_task *t)
{
    struct sync_wait *sw = wait_of(t);
    struct tr_mutex *m = (struct tr_mutex *)(void *)sw->p;
    if (!sw->cancellable)
        m->_cond_waiters--; /* a tr_cond_wait's taking back */
    if (t->wait_res != 0)
        return;
    /* Its task's end would hand it on too (tr__mutexes_release): here it
     * goes at once, counted as a grant passed, not as a mutex left. */
    if (owned_by(m, t)) {
        e->st.kill_grants_passed++;
        mutex_hand_on(m);
    }
    if (sw->taken)
        signal_on(e, sw->taken);
}

static void cond_reap(tr_engine *e, tr_task *t)
{
    struct sync_wait *sw = wait_of(t);
    sw->m->_cond_waiters--; /* it never takes it back */
    if (t->wait_res == 0)
        signal_on(e, (struct tr_cond *)(void *)sw->p);
}

const struct tr__wait_kind tr__wk_event = {
    .name = "event-wait", .cancel = sync_cancel, .kill = sync_kill, .describe = sync_describe};
const struct tr__wait_kind tr__wk_sem = {.name = "sem-wait",
                                         .cancel = sync_cancel,
                                         .kill = sync_kill,
                                         .reap = sem_reap,
                                         .describe = sync_describe};
const struct tr__wait_kind tr__wk_mutex = {.name = "mutex-wait",
                                           .cancel = sync_cancel,
                                           .kill = sync_kill,
                                           .reap = mutex_reap,
                                           .describe = sync_describe};
const struct tr__wait_kind tr__wk_cond = {.name = "cond-wait",
                                          .cancel = sync_cancel,
                                          .kill = sync_kill,
                                          .reap = cond_reap,
                                          .describe = sync_describe};

/* ---- common ------------------------------------------------------------------ */

static void prim_init(struct tr__prim *p, unsigned magic)
{
    tr__list_init(queue(p));
    p->_engine = NULL;
    p->_magic = magic;
}

/* Initialising a primitive that tasks wait on would lose them. Caller
 * storage, usually uninitialised: only compared, never followed. */
static bool prim_busy(const struct tr__prim *p, unsigned magic)
{
    TR_VG_INIT_CHECK(p, sizeof(*p));
    return p->_magic == magic && p->_engine != NULL && p->_q[1] != (const void *)p->_q &&
           p->_q[0] != (const void *)p->_q;
}

/* The calling task, with p bound to its engine: 0 or the -errno. */
static int prim_use(struct tr__prim *p, unsigned magic, tr_task **self)
{
    if (!p || p->_magic != magic)
        return -EINVAL;
    tr_task *t = tr__current;
    if (!t)
        return -EPERM;
    if (TR_UNLIKELY(p->_engine != t->e)) {
        if (p->_engine)
            return -EXDEV; /* another engine's: its thread owns it */
        p->_engine = t->e;
    }
    *self = t;
    return 0;
}

/* Parks t in p's queue until a grant (0) or its cut. */
static int prim_park(tr_task *t, struct tr__prim *p, const struct tr__wait_kind *kind,
                     struct tr_mutex *m, struct tr_cond *taken, bool cancellable)
{
    struct sync_wait sw; /* every field set: its owner by the park, its link here */
    sw.p = p;
    sw.m = m;
    sw.taken = taken;
    sw.cancellable = cancellable;
    tr__list_add_tail(queue(p), &sw.link);
    int r = tr__task_park(t, &sw.w, kind);
    TR_ASSERT(tr__list_empty(&sw.link)); /* unlinked by its waker or its cut */
    return r;
}

/* The first waiter, unlinked, woken with res. */
static tr_task *wake_first(struct tr__prim *p, int res)
{
    TR_ASSERT(!queue_empty(p));
    struct sync_wait *sw = tr__container_of(queue(p)->next, struct sync_wait, link);
    tr__list_del(&sw->link);
    tr__task_wake(sw->w.owner, res);
    return sw->w.owner;
}

/* ---- event ------------------------------------------------------------------- */

int tr_event_init(struct tr_event *ev)
{
    if (!ev)
        return -EINVAL;
    if (prim_busy(&ev->_p, TR_EVENT_MAGIC))
        return -EBUSY;
    prim_init(&ev->_p, TR_EVENT_MAGIC);
    ev->_set = false;
    return 0;
}

int tr_event_set(struct tr_event *ev)
{
    tr_task *self;
    int err = prim_use(ev ? &ev->_p : NULL, TR_EVENT_MAGIC, &self);
    if (err)
        return err;
    ev->_set = true;
    /* Bounded by the waiters, each unlinked; in arrival order. */
    while (!queue_empty(&ev->_p))
        (void)wake_first(&ev->_p, 0);
    return 0;
}

int tr_event_clear(struct tr_event *ev)
{
    tr_task *self;
    int err = prim_use(ev ? &ev->_p : NULL, TR_EVENT_MAGIC, &self);
    if (err)
        return err;
    ev->_set = false;
    return 0;
}

bool tr_event_is_set(const struct tr_event *ev)
{
    return ev && ev->_p._magic == TR_EVENT_MAGIC && ev->_set;
}

int tr_event_wait(struct tr_event *ev)
{
    tr_task *self;
    int err = prim_use(ev ? &ev->_p : NULL, TR_EVENT_MAGIC, &self);
    if (err)
        return err;
    err = tr__cancel_point(self);
    if (err)
        return err;
    if (ev->_set)
        return 0;
    return prim_park(self, &ev->_p, &tr__wk_event, NULL, NULL, true);
}

/* ---- semaphore ----------------------------------------------------------------- */

int tr_sem_init(struct tr_sem *s, unsigned count)
{
    if (!s)
        return -EINVAL;
    if (prim_busy(&s->_p, TR_SEM_MAGIC))
        return -EBUSY;
    prim_init(&s->_p, TR_SEM_MAGIC);
    s->_count = count;
    return 0;
}

/* A unit is free: to the first waiter, else to the count. */
static void sem_grant(struct tr_sem *s)
{
    if (!queue_empty(&s->_p)) {
        TR_ASSERT(s->_count == 0);
        (void)wake_first(&s->_p, 0);
    } else {
        s->_count++;
    }
}

int tr_sem_acquire(struct tr_sem *s)
{
    tr_task *self;
    int err = prim_use(s ? &s->_p : NULL, TR_SEM_MAGIC, &self);
    if (err)
        return err;
    err = tr__cancel_point(self);
    if (err)
        return err;
    if (s->_count > 0) {
        TR_ASSERT(queue_empty(&s->_p));
        s->_count--;
        return 0;
    }
    return prim_park(self, &s->_p, &tr__wk_sem, NULL, NULL, true);
}

int tr_sem_try_acquire(struct tr_sem *s)
{
    tr_task *self;
    int err = prim_use(s ? &s->_p : NULL, TR_SEM_MAGIC, &self);
    if (err)
        return err;
    if (s->_count == 0)
        return -EAGAIN;
    s->_count--;
    return 0;
}

int tr_sem_release(struct tr_sem *s)
{
    tr_task *self;
    int err = prim_use(s ? &s->_p : NULL, TR_SEM_MAGIC, &self);
    if (err)
        return err;
    if (!queue_empty(&s->_p)) {
        TR_ASSERT(s->_count == 0);
        (void)wake_first(&s->_p, 0);
    } else if (s->_count == UINT_MAX) {
        return -EOVERFLOW;
    } else {
        s->_count++;
    }
    return 0;
}

/* ---- mutex --------------------------------------------------------------------- */

int tr_mutex_init(struct tr_mutex *m)
{
    if (!m)
        return -EINVAL;
    /* Held (perhaps just handed over), waited for, or to be taken back by
     * a condition's waiter: a mutex with any of them has its engine (bound
     * by the call that made it so; asserted in set_owner). */
    if (prim_busy(&m->_p, TR_MUTEX_MAGIC) ||
        (m->_p._magic == TR_MUTEX_MAGIC && m->_p._engine && (m->_owner || m->_cond_waiters)))
        return -EBUSY;
    prim_init(&m->_p, TR_MUTEX_MAGIC);
    m->_owner = NULL;
    m->_owner_id = 0;
    m->_next_held = NULL;
    m->_cond_waiters = 0;
    return 0;
}

static bool owned_by(const struct tr_mutex *m, const tr_task *t)
{
    return m->_owner == t && m->_owner_id == t->id;
}

static void set_owner(struct tr_mutex *m, tr_task *t)
{
    TR_ASSERT(m->_p._engine == t->e); /* tr_mutex_init's check relies on it */
    m->_owner = t;
    m->_owner_id = t->id;
    m->_next_held = t->mutexes;
    t->mutexes = m;
}

/* Off its owner's list of held mutexes (bounded by what it holds). */
static void clear_owner(struct tr_mutex *m)
{
    tr_task *o = m->_owner;
    TR_ASSERT(o != NULL);
    for (struct tr_mutex **p = &o->mutexes; *p; p = &(*p)->_next_held)
        if (*p == m) {
            *p = m->_next_held;
            break;
        }
    m->_next_held = NULL;
    m->_owner = NULL;
    m->_owner_id = 0;
}

/* The owner lets go: to the first waiter, or free. */
static void mutex_hand_on(struct tr_mutex *m)
{
    clear_owner(m);
    if (!queue_empty(&m->_p))
        set_owner(m, wake_first(&m->_p, 0));
}

void tr__mutexes_release(tr_engine *e, tr_task *t)
{
    /* Bounded by what it holds, each handed on. */
    while (t->mutexes) {
        e->st.mutexes_left++;
        mutex_hand_on(t->mutexes);
    }
}

/* Out of line: inlined, its frame (the wait record) and the registers it
 * needs would cost every free lock a prologue. */
static __attribute__((noinline)) int mutex_park(tr_task *self, struct tr_mutex *m,
                                                struct tr_cond *taken, bool cancellable)
{
    int r = prim_park(self, &m->_p, &tr__wk_mutex, NULL, taken, cancellable);
    TR_ASSERT(r != 0 || owned_by(m, self)); /* handed over by the unlock */
    return r;
}

/* Takes m for self (not its owner), parking in its queue while held;
 * taken: the condition whose signal a retake follows (or NULL). */
static inline int mutex_take(tr_task *self, struct tr_mutex *m, struct tr_cond *taken,
                             bool cancellable)
{
    TR_ASSERT(!owned_by(m, self));
    if (TR_LIKELY(!m->_owner)) {
        TR_ASSERT(queue_empty(&m->_p));
        set_owner(m, self);
        return 0;
    }
    return mutex_park(self, m, taken, cancellable);
}

/* Out of line, like mutex_park: tr_mutex_lock's free case needs no frame. */
static __attribute__((noinline)) int mutex_lock_slow(tr_task *self, struct tr_mutex *m)
{
    if (owned_by(m, self))
        return -EDEADLK;
    int err = tr__cancel_point(self);
    if (err)
        return err;
    return mutex_take(self, m, NULL, true);
}

int tr_mutex_lock(struct tr_mutex *m)
{
    tr_task *self;
    int err = prim_use(m ? &m->_p : NULL, TR_MUTEX_MAGIC, &self);
    if (err)
        return err;
    /* The common case: free, and the caller not cut short. */
    if (TR_LIKELY(!m->_owner && self->attn == 0)) {
        set_owner(m, self);
        return 0;
    }
    return mutex_lock_slow(self, m);
}

int tr_mutex_trylock(struct tr_mutex *m)
{
    tr_task *self;
    int err = prim_use(m ? &m->_p : NULL, TR_MUTEX_MAGIC, &self);
    if (err)
        return err;
    if (owned_by(m, self))
        return -EDEADLK;
    if (m->_owner)
        return -EBUSY;
    set_owner(m, self);
    return 0;
}

int tr_mutex_unlock(struct tr_mutex *m)
{
    tr_task *self;
    int err = prim_use(m ? &m->_p : NULL, TR_MUTEX_MAGIC, &self);
    if (err)
        return err;
    if (!owned_by(m, self))
        return -EPERM;
    /* The common case: the last one taken, and nobody waits for it. */
    if (TR_LIKELY(self->mutexes == m && queue_empty(&m->_p))) {
        self->mutexes = m->_next_held;
        m->_next_held = NULL;
        m->_owner = NULL;
        m->_owner_id = 0;
        return 0;
    }
    mutex_hand_on(m);
    return 0;
}

/* ---- condition ----------------------------------------------------------------- */

int tr_cond_init(struct tr_cond *c)
{
    if (!c)
        return -EINVAL;
    if (prim_busy(&c->_p, TR_COND_MAGIC))
        return -EBUSY;
    prim_init(&c->_p, TR_COND_MAGIC);
    return 0;
}

int tr_cond_wait(struct tr_cond *c, struct tr_mutex *m)
{
    tr_task *self;
    int err = prim_use(c ? &c->_p : NULL, TR_COND_MAGIC, &self);
    if (err)
        return err;
    tr_task *mself;
    err = prim_use(m ? &m->_p : NULL, TR_MUTEX_MAGIC, &mself);
    if (err)
        return err;
    if (!owned_by(m, self))
        return -EPERM;
    /* Cut short before it waits: m was never let go. */
    err = tr__cancel_point(self);
    if (err)
        return err;
    m->_cond_waiters++;
    mutex_hand_on(m);
    int r = prim_park(self, &c->_p, &tr__wk_cond, m, NULL, true);
    /* Taken back whatever ended the wait: only the kill rung ends this
     * (and passes on the signal it took, if it took one). A deadline's cut
     * counts once the call returns with it: a task killed meanwhile never
     * does (stats.deadline_cuts counts calls that returned -ETIMEDOUT). */
    if (r == -ETIMEDOUT)
        self->e->st.deadline_cuts--;
    int mr = mutex_take(self, m, r == 0 ? c : NULL, false);
    m->_cond_waiters--;
    if (r == -ETIMEDOUT)
        self->e->st.deadline_cuts++;
    TR_ASSERT(mr == 0);
    (void)mr;
    return r;
}

/* The signal a killed waiter took goes to the next waiter, if any (a
 * broadcast's makes a spurious wake-up at worst: waiters re-check). */
static void signal_on(tr_engine *e, struct tr_cond *c)
{
    if (queue_empty(&c->_p))
        return;
    e->st.kill_grants_passed++;
    (void)wake_first(&c->_p, 0);
}

int tr_cond_signal(struct tr_cond *c)
{
    tr_task *self;
    int err = prim_use(c ? &c->_p : NULL, TR_COND_MAGIC, &self);
    if (err)
        return err;
    if (!queue_empty(&c->_p))
        (void)wake_first(&c->_p, 0);
    return 0;
}

int tr_cond_broadcast(struct tr_cond *c)
{
    tr_task *self;
    int err = prim_use(c ? &c->_p : NULL, TR_COND_MAGIC, &self);
    if (err)
        return err;
    /* Bounded by the waiters, each unlinked; in arrival order. */
    while (!queue_empty(&c->_p))
        (void)wake_first(&c->_p, 0);
    return 0;
}
