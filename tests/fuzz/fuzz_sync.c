/* SPDX-License-Identifier: MIT */
/*
 * fuzz_sync.c — fuzz_api's ops on the primitives and task groups of
 * DESIGN section 8 (the bytecode: fuzz_api.c's header comment), checked
 * against a model of each and, after the run, for conservation.
 *
 * The programs share one semaphore, one mutex, one condition, one event
 * and two channels, all zeroed at each input (never initialised: every
 * call -EINVAL until an init), and each program context may own a group.
 * A misuse is made on purpose with its documented -errno: NULL and never
 * initialised primitives (-EINVAL), init of a waited-on primitive or a
 * held mutex (-EBUSY), relock and an owner's trylock (-EDEADLK), unlock
 * by a non-owner and a condition wait without the mutex (-EPERM),
 * an unknown flag, elem 0 and NULL out (-EINVAL), close twice (-EPIPE),
 * destroy while a task waits on the channel (-EBUSY), a second
 * tr_group_init of a live group, a LATE child of an owner that is not, a
 * NULL fn (-EINVAL), tr_group_spawn/tr_group_wait by a non-owner (-EPERM),
 * spawn into a group that is cancelling for sure (-ECANCELED), the calls
 * on a done group (-EINVAL), and everything outside a task (-EPERM).
 *
 * Checked as the programs run: blocking calls against the scope model
 * (check_res: -ECANCELED/-ETIMEDOUT only as the contract allows, no real
 * result inside a triggered scope; tr_cond_wait's -ETIMEDOUT against the
 * cancellations before its call: it takes its mutex back, never cut
 * short, after its wait was); the semaphore never has more units out and
 * free than it has (white-box count), a try-acquire -EAGAIN exactly with
 * none free; a lock (and a condition wait, also cut short) returns with
 * the caller the owner, and never while the model's holder is alive; a
 * signal wakes one queued waiter, a broadcast and a set all; an event
 * wait returns 0 only when set at its call or since; a message received
 * was sent (or is being sent), once, after what that receiver had from
 * its sender, and a receive cut short left its buffer alone; -EPIPE only
 * once closed; a spawn's result against what the model knows of its
 * group; after tr_group_wait, every child ended (G10) and the failures
 * replayed as in tools/stress/sync_audit.c (completion order, the first
 * returned, a cancellation never masking a real error, a list taken live
 * a prefix of the final one).
 *
 * After the run (fz_sync_after_run): one more run of a task (it starts
 * cancelled: the try calls it makes are no cancellation points) takes
 * what the channels hold and destroys them (0: nobody waits), counts the
 * semaphore's units and takes the mutex; then every message sent was
 * received once or left (none whose send failed anywhere; one found only
 * in the buffer of a receiver the kill rung ended was given back unless
 * the channel had no room: as many as stats.kill_msgs_lost), units free plus
 * units held equal the units there are, condition wake-ups as signals
 * gave them (killed waiters excepted), and the engine's mutexes_left,
 * groups_abandoned and group_failures as the model counted them.
 */
#include "fuzz_api.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define FY_MAXMSG 4096 /* messages per channel, at most (64 ops a context) */
#define FY_MAXGEN 256  /* channels made in each slot, at most */

#define MS_SENT 0x1u
#define MS_FAILED 0x2u
#define MS_RECV 0x4u
#define MS_LEFT 0x8u
#define MS_KILLBUF 0x10u

static struct {
    bool used; /* a primitive initialised or a channel made: the audit run follows */
    uint64_t seed;
    struct tr_sem sem;
    bool sem_ok;
    uint64_t pool; /* units there are: free + held + granted in flight */
    struct tr_mutex mtx;
    bool mtx_ok;
    tr_task *owner_t; /* the model's holder */
    uint64_t owner_id;
    uint64_t mtx_left; /* holders that ended holding (the engine hands on) */
    struct tr_cond cond;
    bool cond_ok;
    uint64_t granted, ret0;
    struct tr_event ev;
    bool ev_ok;
    uint64_t sets;
    struct tr_chan *ch[FZ_NCHAN];
    bool closed[FZ_NCHAN], epipe[FZ_NCHAN];
    unsigned gen[FZ_NCHAN];            /* channels made in the slot so far */
    bool gclosed[FZ_NCHAN][FY_MAXGEN]; /* ... and which of them were closed */
    uint32_t next[FZ_NCHAN];
    uint32_t max_recv[FZ_NCHAN][FZ_NCTX]; /* 1 + the largest seq received per sender */
    uint8_t st[FZ_NCHAN][FY_MAXMSG];
} Y;

static bool reinit_cv; /* unless FUZZ_MUTEX_REINIT=0: mutex init while a condition waits */

void fz_sync_reset(void)
{
    static uint64_t n;
    memset(&Y, 0, sizeof(Y));
    Y.seed = ++n * 0x9e3779b97f4a7c15ull;
    fz_group_reset();
    const char *k = getenv("FUZZ_MUTEX_REINIT");
    reinit_cv = !(k && *k == '0');
}

/* ------------------------------------------------------------ helpers */

bool fz_is_cut(long r)
{
    return r == -ECANCELED || r == -ETIMEDOUT;
}

static uint32_t tag_of(uint32_t ch, uint32_t sender, uint32_t seq)
{
    uint64_t z = Y.seed ^ ((uint64_t)ch << 56) ^ ((uint64_t)sender << 40) ^ seq;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return (uint32_t)(z ^ (z >> 31));
}

/* Task records are recycled, never freed while the engine lives. */
bool fz_alive(const tr_task *t, uint64_t id)
{
    return t && t->id == id &&
           (t->state == TR_TASK_READY || t->state == TR_TASK_RUNNING || t->state == TR_TASK_PARKED);
}

bool fz_killed(const struct pctx *c)
{
    return c->started && !c->returned && !fz_alive(c->y.t, c->y.id);
}

/* The waiters queued on a primitive (white-box: its FIFO of links). */
static unsigned qlen(const struct tr__prim *p)
{
    const struct tr__link *h = (const struct tr__link *)(const void *)p->_q;
    unsigned n = 0;
    for (const struct tr__link *l = h->next; l != h && n <= FZ_NCTX; l = l->next)
        n++;
    return n;
}

/* "kind idx", in one of four buffers: a message may name several. */
const char *fz_who(const struct pctx *c)
{
    static char b[4][32];
    static unsigned k;
    char *s = b[k++ % 4];
    snprintf(s, sizeof(b[0]), "%s %d", kind_name(c->kind), c->idx);
    return s;
}

/* A blocking call made of a wait and then the uncancellable taking back
 * of a mutex (tr_cond_wait): a -ETIMEDOUT was decided when the wait was
 * cut, before any cancellation that applies now but did not before the
 * call (one that came during the wait would have ended it -ECANCELED). */
static void check_two_waits(struct pctx *c, const char *what, long r, const struct so_pre *pre,
                            const bool *cz, bool tc)
{
    if (r != -ETIMEDOUT) {
        check_res(c, what, r, 0, 0, 0, pre);
        return;
    }
    bool now[FZ_MAX_SCOPES];
    for (unsigned i = 0; i < c->mt.depth; i++) {
        now[i] = c->sm[i].cancelled;
        c->sm[i].cancelled = cz[i];
    }
    const char *why = "";
    bool ok = so_after(&c->mt, pre, r, tr_now_ns(), shields_broken(), tc, &why);
    for (unsigned i = 0; i < c->mt.depth; i++)
        c->sm[i].cancelled = now[i];
    FZ_CHECK(ok, "%s: %s = -ETIMEDOUT at scope depth %u: %s", fz_who(c), what, c->mt.depth, why);
    S.etimedout++;
    T.etimedout++;
}

/* --------------------------------------------------------- the semaphore */

static uint64_t held_all(void)
{
    uint64_t n = 0;
    for (int i = 0; i < S.nctx; i++)
        n += S.ctx[i].y.held;
    return n;
}

/* A task of ours in tr_sem_acquire, not queued: a unit may be on its way
 * to it (granted, not yet resumed). */
static bool acquirer_in_flight(void)
{
    for (int i = 0; i < S.nctx; i++) {
        const struct fz_sctx *s = &S.ctx[i].y;
        if (s->in_acq && fz_alive(s->t, s->id))
            return true;
    }
    return false;
}

static void sem_took(struct pctx *c)
{
    c->y.held++;
    FZ_CHECK(Y.sem._count + held_all() <= Y.pool,
             "semaphore: %u free + %llu held > the %llu units there are", Y.sem._count,
             (unsigned long long)held_all(), (unsigned long long)Y.pool);
}

static void y_sem(struct pctx *c)
{
    uint8_t a = next(c), k = next(c);
    int r;
    if (!Y.sem_ok && a % 8 != 0 && a % 8 != 6) {
        /* Never initialised: every call refuses it. */
        r = (a & 1) ? tr_sem_acquire(&Y.sem) : tr_sem_release(&Y.sem);
        FZ_CHECK(r == -EINVAL, "a semaphore never initialised: %d", r);
        return;
    }
    switch (a % 8) {
    case 0: {
        unsigned q = Y.sem_ok ? qlen(&Y.sem._p) : 0;
        if (q == 0 && acquirer_in_flight())
            return; /* a granted unit on its way: the model could not place it */
        r = tr_sem_init(&Y.sem, k % 5);
        TRACE("[%s] sem_init(%u) -> %d\n", fz_who(c), k % 5, r);
        if (q > 0) {
            FZ_CHECK(r == -EBUSY, "tr_sem_init with %u waiters = %d, want -EBUSY", q, r);
            return;
        }
        FZ_CHECK(r == 0, "tr_sem_init = %d", r);
        Y.sem_ok = Y.used = true;
        Y.pool = k % 5 + held_all(); /* units held now come back to it */
        return;
    }
    case 1:
    case 2:
    case 7: {
        struct so_pre pre = fz_pre(c);
        c->y.in_acq = true;
        r = tr_sem_acquire(&Y.sem);
        c->y.in_acq = false;
        TRACE("[%s] sem_acquire -> %d\n", fz_who(c), r);
        check_res(c, "tr_sem_acquire", r, 0, 0, 0, &pre);
        if (r != 0)
            return;
        sem_took(c);
        if (a % 8 != 7)
            return;
        /* 7: a quick take: given back at once */
        FZ_CHECK(tr_sem_release(&Y.sem) == 0, "tr_sem_release");
        c->y.held--;
        return;
    }
    case 3: {
        unsigned free0 = Y.sem._count; /* white-box */
        r = tr_sem_try_acquire(&Y.sem);
        TRACE("[%s] sem_try_acquire -> %d\n", fz_who(c), r);
        FZ_CHECK(free0 > 0 ? r == 0 : r == -EAGAIN, "tr_sem_try_acquire = %d with %u free", r,
                 free0);
        if (r == 0)
            sem_took(c);
        return;
    }
    case 4:
    case 5:
        r = tr_sem_release(&Y.sem);
        TRACE("[%s] sem_release (holding %u) -> %d\n", fz_who(c), c->y.held, r);
        FZ_CHECK(r == 0, "tr_sem_release = %d", r);
        if (c->y.held > 0)
            c->y.held--;
        else
            Y.pool++; /* a unit more: a semaphore has no owner */
        FZ_CHECK(Y.sem._count + held_all() <= Y.pool, "semaphore: more units than there are");
        return;
    default: {
        struct tr_sem z;
        memset(&z, 0, sizeof(z));
        FZ_CHECK(tr_sem_acquire(NULL) == -EINVAL && tr_sem_release(NULL) == -EINVAL &&
                     tr_sem_try_acquire(NULL) == -EINVAL && tr_sem_init(NULL, 1) == -EINVAL &&
                     tr_sem_acquire(&z) == -EINVAL && tr_sem_try_acquire(&z) == -EINVAL,
                 "a NULL or never initialised semaphore");
        return;
    }
    }
}

/* ------------------------------------------------------------- the mutex */

/* A task of ours in tr_cond_wait (it takes the mutex back at the end). */
static bool cond_waiting(void)
{
    for (int i = 0; i < S.nctx; i++)
        if (S.ctx[i].y.in_cond && fz_alive(S.ctx[i].y.t, S.ctx[i].y.id))
            return true;
    return false;
}

static bool mine(void)
{
    tr_task *t = tr_self();
    return Y.mtx._owner == t && Y.mtx._owner_id == tr_task_id(t); /* white-box */
}

/* The caller got the mutex (a lock, a trylock, a condition wait): it is
 * the owner; the model's previous holder let go, or ended holding it (the
 * engine handed it on: one of its mutexes_left). */
static void mtx_got(struct pctx *c, const char *how)
{
    FZ_CHECK(mine(), "%s: %s returned, but the mutex's owner is task %llu", fz_who(c), how,
             (unsigned long long)(Y.mtx._owner ? Y.mtx._owner->id : 0));
    if (Y.owner_t && !(Y.owner_t == tr_self() && Y.owner_id == tr_task_id(tr_self()))) {
        FZ_CHECK(!fz_alive(Y.owner_t, Y.owner_id),
                 "%s: two owners: %s gave it the mutex while task %llu (alive) holds it", fz_who(c),
                 how, (unsigned long long)Y.owner_id);
        Y.mtx_left++;
    }
    Y.owner_t = tr_self();
    Y.owner_id = tr_task_id(Y.owner_t);
}

static void y_mutex(struct pctx *c)
{
    uint8_t a = next(c);
    int r;
    if (!Y.mtx_ok && a % 8 != 0 && a % 8 != 6) {
        r = (a & 1) ? tr_mutex_lock(&Y.mtx) : tr_mutex_unlock(&Y.mtx);
        FZ_CHECK(r == -EINVAL, "a mutex never initialised: %d", r);
        return;
    }
    switch (a % 8) {
    case 0: {
        bool held = Y.mtx_ok && Y.mtx._owner != NULL;
        unsigned q = Y.mtx_ok ? qlen(&Y.mtx._p) : 0;
        bool back = cond_waiting(); /* let go by a condition's waiter, to be taken back */
        if (!reinit_cv && back)
            return; /* see FUZZ_MUTEX_REINIT at the top */
        r = tr_mutex_init(&Y.mtx);
        TRACE("[%s] mutex_init (held %d, %u waiting) -> %d\n", fz_who(c), (int)held, q, r);
        if (held || q > 0 || back) {
            FZ_CHECK(r == -EBUSY, "tr_mutex_init of a held or waited-on mutex = %d", r);
            return;
        }
        FZ_CHECK(r == 0, "tr_mutex_init = %d", r);
        if (Y.owner_t) { /* its holder ended holding it: handed on to nobody */
            FZ_CHECK(!fz_alive(Y.owner_t, Y.owner_id), "tr_mutex_init = 0 while its holder lives");
            Y.mtx_left++;
        }
        Y.owner_t = NULL;
        Y.mtx_ok = Y.used = true;
        return;
    }
    case 1:
    case 2: {
        bool m = mine();
        struct so_pre pre = fz_pre(c);
        r = tr_mutex_lock(&Y.mtx);
        TRACE("[%s] mutex_lock -> %d\n", fz_who(c), r);
        if (m) {
            FZ_CHECK(r == -EDEADLK, "tr_mutex_lock by its owner = %d", r);
            return;
        }
        check_res(c, "tr_mutex_lock", r, 0, 0, 0, &pre);
        if (r == 0)
            mtx_got(c, "tr_mutex_lock");
        return;
    }
    case 3: {
        bool m = mine(), held = Y.mtx._owner != NULL;
        r = tr_mutex_trylock(&Y.mtx);
        TRACE("[%s] mutex_trylock -> %d\n", fz_who(c), r);
        FZ_CHECK(r == (m      ? -EDEADLK
                       : held ? -EBUSY
                              : 0),
                 "tr_mutex_trylock = %d (mine %d held %d)", r, (int)m, (int)held);
        if (r == 0)
            mtx_got(c, "tr_mutex_trylock");
        return;
    }
    case 4:
    case 5: {
        bool m = mine();
        r = tr_mutex_unlock(&Y.mtx);
        TRACE("[%s] mutex_unlock (mine %d) -> %d\n", fz_who(c), (int)m, r);
        FZ_CHECK(r == (m ? 0 : -EPERM), "tr_mutex_unlock = %d (the owner: %d)", r, (int)m);
        if (m)
            Y.owner_t = NULL;
        return;
    }
    default: {
        struct tr_mutex z;
        memset(&z, 0, sizeof(z));
        FZ_CHECK(tr_mutex_lock(NULL) == -EINVAL && tr_mutex_unlock(NULL) == -EINVAL &&
                     tr_mutex_trylock(NULL) == -EINVAL && tr_mutex_init(NULL) == -EINVAL &&
                     tr_mutex_lock(&z) == -EINVAL && tr_mutex_unlock(&z) == -EINVAL,
                 "a NULL or never initialised mutex");
        return;
    }
    }
}

/* --------------------------------------------------------- the condition */

static void cond_wait(struct pctx *c)
{
    if (!Y.cond_ok || !Y.mtx_ok) {
        int r = tr_cond_wait(&Y.cond, &Y.mtx);
        FZ_CHECK(r == -EINVAL, "tr_cond_wait with a primitive never initialised = %d", r);
        return;
    }
    if (!mine()) {
        int r = tr_cond_wait(&Y.cond, &Y.mtx);
        FZ_CHECK(r == -EPERM, "tr_cond_wait without the mutex = %d, want -EPERM", r);
        return;
    }
    bool cz[FZ_MAX_SCOPES];
    for (unsigned i = 0; i < c->mt.depth; i++)
        cz[i] = c->sm[i].cancelled;
    bool tc = tr_is_cancelled();
    struct so_pre pre = fz_pre(c);
    Y.owner_t = NULL; /* the wait lets go of it */
    c->y.in_cond = true;
    int r = tr_cond_wait(&Y.cond, &Y.mtx);
    c->y.in_cond = false;
    TRACE("[%s] cond_wait -> %d\n", fz_who(c), r);
    mtx_got(c, "tr_cond_wait"); /* held again, also when cut short */
    check_two_waits(c, "tr_cond_wait", r, &pre, cz, tc);
    if (r == 0)
        Y.ret0++;
}

static void cond_signal(struct pctx *c, bool all)
{
    unsigned q = Y.cond_ok ? qlen(&Y.cond._p) : 0;
    int r = all ? tr_cond_broadcast(&Y.cond) : tr_cond_signal(&Y.cond);
    TRACE("[%s] cond_%s (%u waiting) -> %d\n", fz_who(c), all ? "broadcast" : "signal", q, r);
    if (!Y.cond_ok) {
        FZ_CHECK(r == -EINVAL, "a condition never initialised: %d", r);
        return;
    }
    FZ_CHECK(r == 0, "tr_cond_%s = %d", all ? "broadcast" : "signal", r);
    unsigned woken = all ? q : q > 0;
    Y.granted += woken;
    FZ_CHECK(qlen(&Y.cond._p) == q - woken, "tr_cond_%s: %u waiters queued, %u before",
             all ? "broadcast" : "signal", qlen(&Y.cond._p), q);
}

static void y_cond(struct pctx *c)
{
    uint8_t a = next(c);
    switch (a % 6) {
    case 0: {
        unsigned q = Y.cond_ok ? qlen(&Y.cond._p) : 0;
        int r = tr_cond_init(&Y.cond);
        TRACE("[%s] cond_init (%u waiting) -> %d\n", fz_who(c), q, r);
        FZ_CHECK(r == (q > 0 ? -EBUSY : 0), "tr_cond_init with %u waiters = %d", q, r);
        if (r == 0)
            Y.cond_ok = Y.used = true;
        return;
    }
    case 1:
    case 2:
        cond_wait(c);
        return;
    case 3:
        cond_signal(c, false);
        return;
    case 4:
        cond_signal(c, true);
        return;
    default:
        FZ_CHECK(tr_cond_signal(NULL) == -EINVAL && tr_cond_broadcast(NULL) == -EINVAL &&
                     tr_cond_init(NULL) == -EINVAL && tr_cond_wait(NULL, &Y.mtx) == -EINVAL &&
                     (!Y.cond_ok || tr_cond_wait(&Y.cond, NULL) == -EINVAL),
                 "a NULL condition or mutex");
        return;
    }
}

/* ------------------------------------------------------------- the event */

static void y_event(struct pctx *c)
{
    uint8_t a = next(c);
    int r;
    if (!Y.ev_ok && a % 6 != 0 && a % 6 != 5) {
        r = (a & 1) ? tr_event_wait(&Y.ev) : tr_event_set(&Y.ev);
        FZ_CHECK(r == -EINVAL, "an event never initialised: %d", r);
        FZ_CHECK(!tr_event_is_set(&Y.ev), "an event never initialised is set");
        return;
    }
    switch (a % 6) {
    case 0: {
        unsigned q = Y.ev_ok ? qlen(&Y.ev._p) : 0;
        r = tr_event_init(&Y.ev);
        TRACE("[%s] event_init (%u waiting) -> %d\n", fz_who(c), q, r);
        FZ_CHECK(r == (q > 0 ? -EBUSY : 0), "tr_event_init with %u waiters = %d", q, r);
        if (r == 0)
            Y.ev_ok = Y.used = true;
        return;
    }
    case 1:
        r = tr_event_set(&Y.ev);
        Y.sets++;
        TRACE("[%s] event_set -> %d\n", fz_who(c), r);
        FZ_CHECK(r == 0 && tr_event_is_set(&Y.ev) && qlen(&Y.ev._p) == 0,
                 "tr_event_set = %d: set %d, %u waiters left", r, (int)tr_event_is_set(&Y.ev),
                 qlen(&Y.ev._p));
        return;
    case 2:
        r = tr_event_clear(&Y.ev);
        TRACE("[%s] event_clear -> %d\n", fz_who(c), r);
        FZ_CHECK(r == 0 && !tr_event_is_set(&Y.ev), "tr_event_clear = %d", r);
        return;
    case 3:
    case 4: {
        bool set0 = tr_event_is_set(&Y.ev);
        uint64_t n0 = Y.sets;
        struct so_pre pre = fz_pre(c);
        r = tr_event_wait(&Y.ev);
        TRACE("[%s] event_wait (set %d) -> %d\n", fz_who(c), (int)set0, r);
        check_res(c, "tr_event_wait", r, 0, 0, 0, &pre);
        FZ_CHECK(r != 0 || set0 || Y.sets > n0,
                 "tr_event_wait = 0, but the event was not set at the call nor since");
        return;
    }
    default:
        FZ_CHECK(tr_event_set(NULL) == -EINVAL && tr_event_clear(NULL) == -EINVAL &&
                     tr_event_wait(NULL) == -EINVAL && tr_event_init(NULL) == -EINVAL &&
                     !tr_event_is_set(NULL),
                 "a NULL event");
        return;
    }
}

/* ------------------------------------------------------------ the channels */

static bool msg_valid(int i, const struct fz_msg *m)
{
    return m->ch == (uint32_t)i && m->sender < (uint32_t)S.nctx && m->seq < Y.next[i] &&
           m->tag == tag_of(m->ch, m->sender, m->seq);
}

/* Sent, or being sent (the element is handed over before its sender
 * resumes). */
static bool sendable(int i, const struct fz_msg *m)
{
    const struct fz_sctx *s = &S.ctx[m->sender].y;
    return (Y.st[i][m->seq] & MS_SENT) || (s->in_send && s->in_chan == i && s->sending == m->seq);
}

static void got_msg(struct pctx *c, int i, const struct fz_msg *m, bool left)
{
    FZ_CHECK(msg_valid(i, m), "channel %d: a message never sent (ch %u sender %u seq %u tag %08x)",
             i, m->ch, m->sender, m->seq, m->tag);
    uint8_t *st = &Y.st[i][m->seq];
    FZ_CHECK(sendable(i, m), "G9: channel %d: message %u from %u got through, its send failed", i,
             m->seq, m->sender);
    FZ_CHECK(!(*st & (MS_RECV | MS_LEFT)), "channel %d: message %u received twice", i, m->seq);
    if (left) {
        FZ_CHECK(!Y.epipe[i], "channel %d: a receive saw -EPIPE while message %u was queued", i,
                 m->seq);
        FZ_CHECK(m->seq + 1 > Y.max_recv[i][m->sender] || (*st & MS_KILLBUF),
                 "channel %d: FIFO: message %u from %u still queued after a later one was taken", i,
                 m->seq, m->sender);
        *st |= MS_LEFT;
        return;
    }
    FZ_CHECK(m->seq + 1 > c->y.last[i][m->sender],
             "channel %d: per-sender order: %s got %u from %u after %u", i, fz_who(c), m->seq,
             m->sender, c->y.last[i][m->sender] - 1);
    c->y.last[i][m->sender] = m->seq + 1;
    if (m->seq + 1 > Y.max_recv[i][m->sender])
        Y.max_recv[i][m->sender] = m->seq + 1;
    *st |= MS_RECV;
    T.msgs++;
}

static bool poisoned(const struct fz_msg *m)
{
    const uint8_t *b = (const uint8_t *)m;
    for (size_t k = 0; k < sizeof(*m); k++)
        if (b[k] != 0xA5)
            return false;
    return true;
}

/* A task of ours in a send or receive on channel i that waits there or
 * was woken from that wait and has not returned (tr_chan_destroy says
 * -EBUSY for both: the woken one's return still reads the channel).
 * White-box: its wait record, kept until it runs again. A task queued at
 * its call's cancellation point (a pass through the scheduler) has not
 * touched the channel yet. */
static bool chan_waited(int i)
{
    for (int k = 0; k < S.nctx; k++) {
        const struct fz_sctx *s = &S.ctx[k].y;
        if (s->in_chan == i && fz_alive(s->t, s->id) && s->t->wait &&
            (s->t->wait_kind == TR_WAIT_CHAN_SEND || s->t->wait_kind == TR_WAIT_CHAN_RECV))
            return true;
    }
    return false;
}

/* What channel i holds, taken with tr_chan_try_recv (a task's call). */
static void take_left(int i)
{
    struct fz_msg m;
    /* Bounded: a channel holds at most 4 messages (its capacity). */
    for (int k = 0; k < 64; k++) {
        int r = tr_chan_try_recv(Y.ch[i], &m);
        if (r == -EAGAIN || r == -EPIPE)
            return;
        FZ_CHECK(r == 0, "tr_chan_try_recv of the leftovers = %d", r);
        got_msg(NULL, i, &m, true);
    }
    FZ_CHECK(false, "channel %d holds more than its capacity", i);
}

static void chan_create(struct pctx *c, int i, uint8_t a)
{
    struct tr_chan *x = NULL;
    if (a & 4)
        FZ_CHECK(tr_chan_create(&x, sizeof(struct fz_msg), 1, 0x80) == -EINVAL,
                 "tr_chan_create(an unknown flag)");
    if (a & 8)
        FZ_CHECK(tr_chan_create(&x, 0, 1, 0) == -EINVAL, "tr_chan_create(elem 0)");
    if (a & 16)
        FZ_CHECK(tr_chan_create(NULL, sizeof(struct fz_msg), 1, 0) == -EINVAL,
                 "tr_chan_create(NULL)");
    if (Y.ch[i] || Y.gen[i] + 1 >= FY_MAXGEN)
        return;
    static const size_t caps[4] = {0, 1, 2, 4};
    int r = tr_chan_create(&x, sizeof(struct fz_msg), caps[a & 3], 0);
    TRACE("[%s] chan_create(%d, capacity %zu) -> %d\n", fz_who(c), i, caps[a & 3], r);
    FZ_CHECK(r == 0 && x, "tr_chan_create = %d", r);
    Y.ch[i] = x;
    Y.closed[i] = Y.epipe[i] = false;
    Y.gen[i]++;
    Y.used = true;
}

/* Whether channel i as it was when a call began (generation g0) has been
 * closed: a waiter woken by the close may resume only after another task
 * destroyed that channel and made a new one. */
static bool closed_since(int i, unsigned g0)
{
    return g0 == Y.gen[i] ? Y.closed[i] : Y.gclosed[i][g0];
}

static void chan_send(struct pctx *c, int i, bool tryit)
{
    if (Y.next[i] >= FY_MAXMSG)
        return;
    uint32_t seq = Y.next[i]++;
    struct fz_sctx *s = &c->y;
    s->sbuf = (struct fz_msg){(uint32_t)i, (uint32_t)c->idx, seq, tag_of(i, c->idx, seq)};
    s->sending = seq;
    s->in_chan = i;
    s->in_send = true;
    bool closed0 = Y.closed[i];
    unsigned g0 = Y.gen[i];
    struct so_pre pre = fz_pre(c);
    int r = tryit ? tr_chan_try_send(Y.ch[i], &s->sbuf) : tr_chan_send(Y.ch[i], &s->sbuf);
    s->in_send = false;
    s->in_chan = -1;
    TRACE("[%s] chan_%ssend(%d, seq %u) -> %d\n", fz_who(c), tryit ? "try_" : "", i, seq, r);
    if (r == -EPIPE)
        FZ_CHECK(closed_since(i, g0) && (tryit || !pre.must_cut),
                 "tr_chan_send = -EPIPE (closed %d, cut short before the call %d)",
                 (int)closed_since(i, g0), (int)pre.must_cut);
    else if (tryit)
        FZ_CHECK(!closed0 && (r == 0 || r == -EAGAIN), "tr_chan_try_send = %d (closed %d)", r,
                 (int)closed0);
    else
        check_res(c, "tr_chan_send", r, 0, 0, 0, &pre);
    uint8_t *st = &Y.st[i][seq];
    if (r == 0) {
        *st |= MS_SENT;
    } else {
        *st |= MS_FAILED;
        FZ_CHECK(!(*st & (MS_RECV | MS_LEFT)), "G9: message %u got through, its send returned %d",
                 seq, r);
    }
}

static void chan_recv(struct pctx *c, int i, bool tryit)
{
    struct fz_sctx *s = &c->y;
    memset(&s->rbuf, 0xA5, sizeof(s->rbuf));
    s->in_chan = i;
    s->in_recv = true;
    bool closed0 = Y.closed[i];
    unsigned g0 = Y.gen[i];
    struct so_pre pre = fz_pre(c);
    int r = tryit ? tr_chan_try_recv(Y.ch[i], &s->rbuf) : tr_chan_recv(Y.ch[i], &s->rbuf);
    s->in_recv = false;
    s->in_chan = -1;
    TRACE("[%s] chan_%srecv(%d) -> %d\n", fz_who(c), tryit ? "try_" : "", i, r);
    if (r == 0) {
        got_msg(c, i, &s->rbuf, false);
        return;
    }
    FZ_CHECK(poisoned(&s->rbuf), "G9: a receive that returned %d wrote into its buffer", r);
    if (r == -EPIPE) {
        FZ_CHECK(closed_since(i, g0) && (tryit || !pre.must_cut),
                 "tr_chan_recv = -EPIPE (closed %d, cut short before the call %d)",
                 (int)closed_since(i, g0), (int)pre.must_cut);
        if (g0 == Y.gen[i])
            Y.epipe[i] = true;
    } else if (tryit) {
        FZ_CHECK(r == -EAGAIN && !closed0, "tr_chan_try_recv = %d (closed %d)", r, (int)closed0);
    } else {
        check_res(c, "tr_chan_recv", r, 0, 0, 0, &pre);
    }
}

static void chan_end(struct pctx *c, int i, bool destroy)
{
    int r;
    if (!destroy) {
        bool closed0 = Y.closed[i];
        r = tr_chan_close(Y.ch[i]);
        TRACE("[%s] chan_close(%d) -> %d\n", fz_who(c), i, r);
        FZ_CHECK(r == (closed0 ? -EPIPE : 0), "tr_chan_close = %d (closed before %d)", r,
                 (int)closed0);
        Y.closed[i] = true;
        return;
    }
    if (chan_waited(i)) {
        r = tr_chan_destroy(Y.ch[i]);
        TRACE("[%s] chan_destroy(%d), waited on -> %d\n", fz_who(c), i, r);
        FZ_CHECK(r == -EBUSY, "tr_chan_destroy of a channel a task waits on = %d", r);
        return;
    }
    take_left(i);
    r = tr_chan_destroy(Y.ch[i]);
    TRACE("[%s] chan_destroy(%d) -> %d\n", fz_who(c), i, r);
    FZ_CHECK(r == 0, "tr_chan_destroy with nobody waiting = %d", r);
    Y.ch[i] = NULL;
    Y.gclosed[i][Y.gen[i]] = Y.closed[i];
}

static void y_chan(struct pctx *c)
{
    uint8_t s = next(c), a = next(c);
    int i = s & 1, op = (s >> 1) % 8;
    if (op == 0) {
        chan_create(c, i, a);
        return;
    }
    if (!Y.ch[i]) {
        struct fz_msg m = {0};
        int r = (op & 1) ? tr_chan_send(NULL, &m) : tr_chan_recv(NULL, &m);
        FZ_CHECK(r == -EINVAL && tr_chan_close(NULL) == -EINVAL &&
                     tr_chan_destroy(NULL) == -EINVAL && tr_chan_try_send(NULL, &m) == -EINVAL &&
                     tr_chan_try_recv(NULL, &m) == -EINVAL,
                 "a NULL channel: %d", r);
        return;
    }
    switch (op) {
    case 1:
    case 2:
        chan_send(c, i, false);
        return;
    case 3:
        chan_send(c, i, true);
        return;
    case 4:
    case 5:
        chan_recv(c, i, false);
        return;
    case 6:
        chan_recv(c, i, true);
        return;
    default:
        chan_end(c, i, (a & 1) != 0);
        return;
    }
}

void fz_sync_op(struct pctx *c, int kind)
{
    T.sync_ops++;
    switch (kind) {
    case FY_SEM:
        y_sem(c);
        break;
    case FY_MUTEX:
        y_mutex(c);
        break;
    case FY_COND:
        y_cond(c);
        break;
    case FY_EVENT:
        y_event(c);
        break;
    case FY_CHAN:
        y_chan(c);
        break;
    default:
        fz_group_op(c);
        break;
    }
}

/* ------------------------------------------------------------ after the run */

/* The audit run's task: every task has ended (it starts cancelled: its
 * calls are no cancellation points). */
static int audit_main(void *arg)
{
    (void)arg;
    for (int k = 0; k < S.nctx; k++) {
        const struct pctx *c = &S.ctx[k];
        int i = c->y.in_chan;
        if (fz_killed(c) && c->y.in_recv && i >= 0 && msg_valid(i, &c->y.rbuf))
            Y.st[i][c->y.rbuf.seq] |= MS_KILLBUF;
    }
    for (int i = 0; i < FZ_NCHAN; i++) {
        if (!Y.ch[i])
            continue;
        take_left(i);
        int r = tr_chan_destroy(Y.ch[i]);
        FZ_CHECK(r == 0, "tr_chan_destroy once every task ended = %d", r);
        Y.ch[i] = NULL;
    }
    if (Y.sem_ok) {
        uint64_t units = 0;
        while (units < Y.pool + 8 && tr_sem_try_acquire(&Y.sem) == 0)
            units++;
        for (uint64_t k = 0; k < units; k++)
            FZ_CHECK(tr_sem_release(&Y.sem) == 0, "tr_sem_release");
        FZ_CHECK(units + held_all() == Y.pool,
                 "G9: semaphore: %llu units free + %llu held, but there are %llu",
                 (unsigned long long)units, (unsigned long long)held_all(),
                 (unsigned long long)Y.pool);
    }
    if (Y.mtx_ok) {
        int r = tr_mutex_trylock(&Y.mtx);
        FZ_CHECK(r == 0, "the mutex is held once every task ended (trylock %d)", r);
        FZ_CHECK(tr_mutex_unlock(&Y.mtx) == 0, "tr_mutex_unlock");
        if (Y.owner_t)
            Y.mtx_left++; /* its last holder ended holding it */
        Y.owner_t = NULL;
    }
    return 0;
}

/* lost: the engine's count of messages handed to a receiver the kill rung
 * ended with no room left to give them back (stats.kill_msgs_lost). */
static void check_messages(uint64_t lost)
{
    uint64_t killbuf = 0;
    for (int i = 0; i < FZ_NCHAN; i++)
        for (uint32_t seq = 0; seq < Y.next[i]; seq++) {
            uint8_t st = Y.st[i][seq];
            bool got = (st & (MS_RECV | MS_LEFT)) != 0;
            if ((st & MS_SENT) && !got && (st & MS_KILLBUF)) {
                killbuf++; /* given back had there been room: counted below */
                continue;
            }
            FZ_CHECK(!(st & MS_SENT) || got,
                     "G9: channel %d: message %u was sent, but neither received nor left", i, seq);
            FZ_CHECK(!(st & MS_FAILED) || !got, "G9: channel %d: message %u: its send failed", i,
                     seq);
        }
    FZ_CHECK(killbuf == lost,
             "G9: %llu messages handed to receivers the kill rung ended are neither received "
             "nor left, but the engine counts %llu lost (stats.kill_msgs_lost)",
             (unsigned long long)killbuf, (unsigned long long)lost);
    T.killbuf += killbuf;
}

void fz_sync_after_run(void)
{
    if (Y.used) {
        tr_task *t = NULL;
        int r = tr_spawn(S.e, &t, audit_main, NULL, NULL);
        FZ_CHECK(r == 0, "tr_spawn of the primitives' audit = %d", r);
        r = tr_engine_run(S.e);
        FZ_CHECK(r == 0, "tr_engine_run of the primitives' audit = %d", r);
        int res = -1;
        FZ_CHECK(tr_task_result(t, &res) == 0 && res == 0 && tr_detach(t) == 0,
                 "the primitives' audit task did not end (%d)", res);
        check_messages(stats_now().kill_msgs_lost);
        uint64_t kc = 0;
        for (int k = 0; k < S.nctx; k++)
            kc += fz_killed(&S.ctx[k]) && S.ctx[k].y.in_cond;
        FZ_CHECK(Y.ret0 <= Y.granted && Y.granted <= Y.ret0 + kc,
                 "G9: condition: %llu waits returned 0, signals woke %llu, %llu waiters killed",
                 (unsigned long long)Y.ret0, (unsigned long long)Y.granted, (unsigned long long)kc);
    }
    struct tr_stats st = stats_now();
    uint64_t kc = 0;
    for (int k = 0; k < S.nctx; k++)
        kc += fz_killed(&S.ctx[k]) && S.ctx[k].y.in_cond;
    FZ_CHECK(st.mutexes_left >= Y.mtx_left && st.mutexes_left <= Y.mtx_left + kc,
             "mutexes_left %llu, the model: %llu holders ended holding (+ up to %llu killed in a "
             "condition wait)",
             (unsigned long long)st.mutexes_left, (unsigned long long)Y.mtx_left,
             (unsigned long long)kc);
    fz_group_after_run(&st);
}

void fz_sync_outside(void)
{
    struct tr_sem s;
    struct tr_mutex m;
    struct tr_cond cv;
    struct tr_event ev;
    struct tr_group g;
    memset(&s, 0, sizeof(s));
    memset(&m, 0, sizeof(m));
    memset(&cv, 0, sizeof(cv));
    memset(&ev, 0, sizeof(ev));
    memset(&g, 0, sizeof(g));
    FZ_CHECK(tr_sem_init(&s, 1) == 0 && tr_mutex_init(&m) == 0 && tr_cond_init(&cv) == 0 &&
                 tr_event_init(&ev) == 0,
             "initialising primitives outside a task");
    FZ_CHECK(tr_sem_acquire(&s) == -EPERM && tr_sem_release(&s) == -EPERM &&
                 tr_sem_try_acquire(&s) == -EPERM && tr_mutex_lock(&m) == -EPERM &&
                 tr_mutex_unlock(&m) == -EPERM && tr_cond_signal(&cv) == -EPERM &&
                 tr_cond_wait(&cv, &m) == -EPERM && tr_event_set(&ev) == -EPERM &&
                 tr_event_wait(&ev) == -EPERM,
             "primitives outside a task: -EPERM");
    struct tr_chan *ch = NULL;
    struct fz_msg msg = {0};
    FZ_CHECK(tr_chan_create(&ch, sizeof(msg), 1, 0) == 0, "tr_chan_create outside a task");
    FZ_CHECK(tr_chan_send(ch, &msg) == -EPERM && tr_chan_recv(ch, &msg) == -EPERM &&
                 tr_chan_try_send(ch, &msg) == -EPERM && tr_chan_close(ch) == -EPERM,
             "a channel outside a task: -EPERM");
    FZ_CHECK(tr_chan_destroy(ch) == 0, "tr_chan_destroy outside a task");
    FZ_CHECK(tr_group_init(&g) == -EPERM && tr_group_wait(&g) == -EPERM &&
                 tr_group_cancel(&g) == -EPERM &&
                 tr_group_spawn(&g, worker_main, NULL, NULL) == -EPERM &&
                 tr_group_failures(&g, NULL, 0) == 0,
             "groups outside a task: -EPERM");
}
