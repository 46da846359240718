/* SPDX-License-Identifier: MIT */
/*
 * sync_audit.c — the sync kind's checks (work_sync.c), against DESIGN
 * section 8 and G9/G10.
 *
 * After tr_group_wait (sw_group_check): every child has ended (G10: it
 * returned, or the kill rung ended it: its record is no longer a live
 * task's), and the failures are what the children's endings make. The
 * endings are replayed in completion order: a result >= 0 fails nothing,
 * another negative one other than a cut is a real failure, a cut
 * (-ECANCELED: the group reaches its children through tr_cancel, so a
 * child's -ETIMEDOUT is its own deadline's, a real failure) fails nothing
 * when the group was cancelling for
 * sure when it ended (or a shutdown had begun), and is a real failure
 * when nothing could have cancelled it; in between (an enclosing deadline
 * had passed, its timer perhaps not yet fired) the engine's list decides.
 * The first real failure makes the group cancelling for the rest. Then
 * tr_group_failures must list exactly those, in that order (ids, names,
 * results), count them all, hold any list taken while the group was live
 * as a prefix, and tr_group_wait must have returned the first one (a
 * cancellation never masks a real error).
 *
 * Once every worker of a world has ended (sw_world_audit: by its
 * coordinator after the wait, else from the last at_shutdown hook):
 *   messages: each whose send returned 0 was received exactly once or is
 *   still in the channel (taken with tr_chan_try_recv, then the channel is
 *   destroyed, which must succeed); none whose send failed is anywhere;
 *   one a killed sender was sending is received at most once; what is
 *   left comes, per sender, in order and after everything received from
 *   that sender (the channel is FIFO); nothing is left once a receive saw
 *   -EPIPE. A message found only in the buffer of a receiver that the
 *   kill rung ended (its message had been handed to it) is lost: reported
 *   as such, the engine's known defect (G9).
 *   units: the free ones (counted with tr_sem_try_acquire, then given
 *   back) are all of them but those killed holders took; no live holder.
 *   mutex: free (tr_mutex_trylock), and the counter it guards as many
 *   updates as were made (a lost update is two owners).
 *   condition: waits that returned 0 are at most the grants signals and
 *   broadcasts gave to queued waiters, and at least those minus the
 *   waiters killed in a wait.
 * And per round (sync_check_stats): stats.mutexes_left is the mutexes
 * workers returned holding on purpose plus those killed holders held
 * (plus, at most, killed condition waiters: one cut at the wait's start
 * still holds it), stats.groups_abandoned is 0 (every coordinator waits
 * or is killed), stats.group_failures at least what the waits listed.
 */
#include "sync_world.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

uint32_t sw_tag(const struct sworld *w, uint32_t p, uint32_t seq)
{
    return (uint32_t)mix64(w->seed ^ ((uint64_t)p << 40) ^ seq);
}

/* Task records are recycled, never freed while their engine lives: a
 * record with the id and a live state is that task, alive. */
bool sw_task_alive(const tr_task *t, uint64_t id)
{
    return t && t->id == id &&
           (t->state == TR_TASK_READY || t->state == TR_TASK_RUNNING || t->state == TR_TASK_PARKED);
}

/* The waiters queued on a primitive (white-box: its FIFO of links). */
unsigned sw_qlen(const struct tr__prim *p)
{
    const struct tr__link *h = (const struct tr__link *)(const void *)p->_q;
    unsigned n = 0;
    /* Bounded: a world has SW_MAXW workers; more is a broken list. */
    for (const struct tr__link *l = h->next; l != h && n <= 4 * SW_MAXW; l = l->next)
        n++;
    return n;
}

bool sw_msg_valid(const struct sworld *w, const struct smsg *m)
{
    return m->world == w->no && m->sender < w->nprod && m->seq < w->next_seq[m->sender] &&
           m->tag == sw_tag(w, m->sender, m->seq);
}

static struct sworker *producer(struct sworld *w, uint32_t p)
{
    for (unsigned i = 0; i < w->nw; i++)
        if (w->wk[i].role == SR_PROD && w->wk[i].pidx == p)
            return &w->wk[i];
    return NULL;
}

/* Sent, or its send in progress (the element is handed over before the
 * sender resumes). */
static bool sendable(struct sworld *w, uint32_t p, uint32_t seq)
{
    if (w->st[p][seq] & MS_SENT)
        return true;
    const struct sworker *pw = producer(w, p);
    return pw && pw->in_send && pw->sending == seq;
}

void sw_got_msg(struct sworld *w, struct sworker *me, const struct smsg *m)
{
    struct round *r = w->r;
    if (!sw_msg_valid(w, m)) {
        viol(r, "sync: world %u received a message never sent (world %u sender %u seq %u tag %08x)",
             w->no, m->world, m->sender, m->seq, m->tag);
        return;
    }
    uint32_t p = m->sender, seq = m->seq;
    uint8_t *s = &w->st[p][seq];
    if (!sendable(w, p, seq))
        viol(r, "sync: G9: message %u/%u received, but its send returned an error", p, seq);
    if (*s & MS_RECV)
        viol(r, "sync: message %u/%u received twice", p, seq);
    if (seq + 1 <= me->last[p])
        viol(r, "sync: per-sender order: receiver %u got message %u/%u after %u/%u", me->idx, p,
             seq, p, me->last[p] - 1);
    *s |= MS_RECV;
    me->last[p] = seq + 1;
    if (seq + 1 > w->max_recv[p])
        w->max_recv[p] = seq + 1;
    w->nrecv++;
    r->sync_msgs++;
    atomic_fetch_add_explicit(&g_msgs, 1, memory_order_relaxed);
}

/* ------------------------------------------------------------- the group */

/* G10: no child outlives the wait. */
static void children_ended(struct sworld *w)
{
    bool kill = tr_self_engine()->sd.phase >= TR_PH_KILL; /* white-box */
    for (unsigned i = 0; i < w->nw; i++) {
        const struct sworker *me = &w->wk[i];
        if (!me->started)
            viol(w->r, "sync: G10: tr_group_wait returned; child %u (%s) never started", i,
                 sw_role_names[me->role]);
        else if (!me->returned && sw_task_alive(me->t, me->id))
            viol(w->r,
                 "sync: G10: tr_group_wait returned while child %u (%s, task %" PRIu64 ") is alive",
                 i, sw_role_names[me->role], me->id);
        else if (!me->returned && !kill)
            viol(w->r, "sync: child %u (%s) ended without returning, outside the kill rung", i,
                 sw_role_names[me->role]);
    }
}

void sw_group_check(struct sworld *w, int wr, uint64_t now_after)
{
    struct round *r = w->r;
    (void)now_after;
    children_ended(w);
    struct tr_failure f[TR_GROUP_FAILURES];
    memset(f, 0, sizeof(f));
    size_t nf = tr_group_failures(&w->g, f, TR_GROUP_FAILURES);
    size_t nl = nf < TR_GROUP_FAILURES ? nf : TR_GROUP_FAILURES;
    bool cancelling = false;
    size_t k = 0;
    int first = 0;
    for (unsigned i = 0; i < w->nends; i++) {
        const struct sw_end *e = &w->ends[i];
        const struct sworker *me = &w->wk[e->w];
        bool real;
        if (e->res >= 0)
            real = false;
        else if (e->res != -ECANCELED) /* -ETIMEDOUT: the child's own deadline */
            real = true;
        else if (cancelling || e->known)
            real = false;
        else if (!e->maybe)
            real = true;
        else /* either: the engine's list says */
            real = k < nl && f[k].task_id == me->id;
        if (!real)
            continue;
        if (k < nl && (f[k].task_id != me->id || f[k].result != e->res ||
                       strncmp(f[k].name, sw_role_names[me->role], sizeof(f[k].name)) != 0))
            viol(r,
                 "sync: real failure %zu: tr_group_failures has task %" PRIu64
                 " (%.31s) with %d, the endings child %u (task %" PRIu64 ", %s) with %d",
                 k, f[k].task_id, f[k].name, f[k].result, e->w, me->id, sw_role_names[me->role],
                 e->res);
        if (k == 0)
            first = e->res;
        k++;
        cancelling = true;
    }
    if (nf != k)
        viol(r, "sync: tr_group_failures counts %zu real failures, the endings make %zu", nf, k);
    if (k > 0 && wr != first)
        viol(r,
             "sync: tr_group_wait = %d, but the first real failure was %d (a cancellation never "
             "masks a real error)",
             wr, first);
    if (k == 0 && wr != 0 && !sw_is_cut(wr))
        viol(r, "sync: tr_group_wait = %d with no real failure", wr);
    if (w->have_snap) {
        bool prefix = w->nsnap <= nf;
        for (size_t i = 0; prefix && i < w->nsnap && i < TR_GROUP_FAILURES; i++)
            prefix = w->snap[i].task_id == f[i].task_id && w->snap[i].result == f[i].result;
        if (!prefix)
            viol(r,
                 "sync: tr_group_failures of the live group (%zu) is no prefix of the final (%zu)",
                 w->nsnap, nf);
    }
    w->group_done = true;
    r->groups_waited++;
    r->group_fails += nf;
    atomic_fetch_add_explicit(&g_groups, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&g_gfail, nf, memory_order_relaxed);
}

/* ------------------------------------------------------------- the world */

static bool killed(const struct sworker *me)
{
    return me->started && !me->returned;
}

/* What is still in the channel, taken; then the channel destroyed. */
static void take_leftovers(struct sworld *w)
{
    struct round *r = w->r;
    uint32_t last[SW_MAXP] = {0};
    struct smsg m;
    /* Bounded: the channel holds at most its capacity (32) and each
     * message is taken once; more is a violation already. */
    for (unsigned i = 0; i < SW_MAXP * SW_MAXSEQ + 8; i++) {
        int rc = tr_chan_try_recv(w->ch, &m);
        if (rc == -EAGAIN || rc == -EPIPE)
            break;
        if (rc != 0) {
            viol(r, "sync: tr_chan_try_recv of the leftovers = %d", rc);
            break;
        }
        if (!sw_msg_valid(w, &m)) {
            viol(r, "sync: a message never sent is in the channel (sender %u seq %u)", m.sender,
                 m.seq);
            continue;
        }
        uint32_t p = m.sender, seq = m.seq;
        uint8_t *s = &w->st[p][seq];
        if (!sendable(w, p, seq))
            viol(r, "sync: G9: message %u/%u is in the channel, but its send returned an error", p,
                 seq);
        if (*s & (MS_RECV | MS_LEFT))
            viol(r, "sync: message %u/%u is in the channel and was received", p, seq);
        if (seq + 1 <= last[p] || (seq + 1 <= w->max_recv[p] && !(*s & MS_KILLBUF)))
            viol(r, "sync: FIFO: message %u/%u is still queued after %u/%u was taken", p, seq, p,
                 seq + 1 <= last[p] ? last[p] - 1 : w->max_recv[p] - 1);
        if (w->epipe_recv)
            viol(r, "sync: a receive returned -EPIPE while message %u/%u was still queued", p, seq);
        *s |= MS_LEFT;
        last[p] = seq + 1;
        w->nleft++;
    }
    int rc = tr_chan_destroy(w->ch);
    if (rc != 0)
        viol(r, "sync: tr_chan_destroy once every user ended = %d", rc);
    else
        w->ch = NULL;
}

static void audit_messages(struct sworld *w)
{
    struct round *r = w->r;
    for (unsigned i = 0; i < w->nw; i++) {
        const struct sworker *me = &w->wk[i];
        if (killed(me) && me->in_recv && sw_msg_valid(w, &me->rbuf)) {
            w->st[me->rbuf.sender][me->rbuf.seq] |= MS_KILLBUF;
            w->nkillbuf++;
        }
    }
    if (w->ch)
        take_leftovers(w);
    for (uint32_t p = 0; p < w->nprod; p++)
        for (uint32_t seq = 0; seq < w->next_seq[p]; seq++) {
            uint8_t s = w->st[p][seq];
            bool got = (s & (MS_RECV | MS_LEFT)) != 0;
            if ((s & MS_SENT) && !got) {
                if (s & MS_KILLBUF)
                    viol(r,
                         "sync: G9: message %u/%u (world %u, capacity %zu) was handed to a "
                         "receiver that the kill rung then ended, and is lost (the engine's known "
                         "defect)",
                         p, seq, w->no, w->cap);
                else
                    viol(r,
                         "sync: G9: message %u/%u (world %u, capacity %zu) was sent, but neither "
                         "received nor left in the channel",
                         p, seq, w->no, w->cap);
            }
            if ((s & MS_FAILED) && got)
                viol(r, "sync: G9: message %u/%u got through, but its send returned an error", p,
                     seq);
        }
}

static void audit_units(struct sworld *w)
{
    unsigned killed_held = 0;
    for (unsigned i = 0; i < w->nw; i++)
        if (killed(&w->wk[i]))
            killed_held += w->wk[i].held;
    unsigned units = 0;
    /* Bounded: k units, and a few more would be a violation. */
    while (units < w->k + 8 && tr_sem_try_acquire(&w->sem) == 0)
        units++;
    for (unsigned i = 0; i < units; i++)
        (void)tr_sem_release(&w->sem);
    if (units != w->k - killed_held || w->held_live != killed_held)
        viol(w->r,
             "sync: G9: the semaphore of %u units has %u free; killed holders took %u, the others "
             "hold %u",
             w->k, units, killed_held, w->held_live - killed_held);
}

static void audit_mutex_cond(struct sworld *w)
{
    int rc = tr_mutex_trylock(&w->mtx);
    if (rc == 0)
        (void)tr_mutex_unlock(&w->mtx);
    else
        viol(w->r, "sync: the mutex is held (trylock %d) once every user ended", rc);
    if (w->counter != w->counter_done)
        viol(w->r, "sync: two owners: the counter is %" PRIu64 " after %" PRIu64 " updates",
             w->counter, w->counter_done);
    unsigned killed_cond = 0;
    for (unsigned i = 0; i < w->nw; i++)
        killed_cond += killed(&w->wk[i]) && w->wk[i].in_cond;
    if (w->cond_ret0 > w->cond_granted)
        viol(w->r,
             "sync: %" PRIu64 " condition waits returned 0, but signals woke %" PRIu64 " waiters",
             w->cond_ret0, w->cond_granted);
    else if (w->cond_ret0 + killed_cond < w->cond_granted)
        viol(w->r,
             "sync: G9: signals woke %" PRIu64 " condition waiters; %" PRIu64
             " waits returned 0 and %u waiters were killed",
             w->cond_granted, w->cond_ret0, killed_cond);
}

void sw_world_audit(struct sworld *w, const char *where)
{
    (void)where;
    if (w->audited)
        return;
    w->audited = true;
    for (unsigned i = 0; i < w->nw; i++)
        w->r->sync_killed += killed(&w->wk[i]);
    w->r->sync_handed_dead += w->handed_from_dead;
    audit_messages(w);
    audit_units(w);
    audit_mutex_cond(w);
}

/* ------------------------------------------------------------- the round */

void sync_audit_hook(struct round *r)
{
    for (struct sworld *w = r->worlds; w; w = w->next)
        sw_world_audit(w, "at the last hook");
}

/* Mutexes killed workers held, and killed condition waiters (one cut at
 * its wait's start still holds the mutex). */
static void killed_holders(const struct sworld *w, uint64_t *kh, uint64_t *kc)
{
    for (unsigned i = 0; i < w->nw; i++)
        if (killed(&w->wk[i])) {
            *kh += w->wk[i].holds_mtx;
            *kc += w->wk[i].in_cond;
        }
}

void sw_world_free(struct sworld *w)
{
    struct round *r = w->r;
    TR_ASSERT(w->audited);
    killed_holders(w, &r->sync_kh, &r->sync_kc);
    /* Bounded by the worlds alive: the others are freed as they end. */
    for (struct sworld **p = &r->worlds; *p; p = &(*p)->next)
        if (*p == w) {
            *p = w->next;
            break;
        }
    free(w);
}

void sync_check_stats(struct round *r, const struct tr_stats *st, const char *when,
                      uint64_t mtx_left_planned, uint64_t group_fails)
{
    uint64_t kh = r->sync_kh, kc = r->sync_kc;
    for (struct sworld *w = r->worlds; w; w = w->next)
        killed_holders(w, &kh, &kc);
    if (st->mutexes_left < mtx_left_planned + kh || st->mutexes_left > mtx_left_planned + kh + kc)
        viol(r,
             "%s: mutexes_left %" PRIu64 ", the tool: %" PRIu64 " left on purpose + %" PRIu64
             " held by killed workers (+ up to %" PRIu64 " killed in a condition wait)",
             when, st->mutexes_left, mtx_left_planned, kh, kc);
    if (st->groups_abandoned != 0)
        viol(r, "%s: groups_abandoned %" PRIu64 ", but every coordinator waits for its group", when,
             st->groups_abandoned);
    if (st->group_failures < group_fails)
        viol(r, "%s: group_failures %" PRIu64 ", the waits listed %" PRIu64, when,
             st->group_failures, group_fails);
}

void sync_round_end(struct round *r)
{
    for (struct sworld *w = r->worlds; w; w = w->next) {
        if (w->audited)
            continue;
        /* The last hook never ran: no task to take the leftovers. The
         * engine's records are gone; the channel is only freed. */
        r->worlds_unaudited++;
        if (w->ch) {
            int rc = tr_chan_destroy(w->ch);
            if (rc != 0)
                viol(r, "sync: tr_chan_destroy after the round = %d", rc);
            w->ch = NULL;
        }
    }
}

void sync_round_free(struct round *r)
{
    while (r->worlds) {
        struct sworld *w = r->worlds;
        r->worlds = w->next;
        free(w);
    }
}
