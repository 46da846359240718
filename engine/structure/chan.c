/* SPDX-License-Identifier: MIT */
/*
 * chan.c — the bounded channel of DESIGN section 8: a ring of capacity
 * elements, a FIFO of waiting senders and one of waiting receivers (wait
 * records in their frames). Never both: senders wait only while the ring
 * is full (or, at capacity 0, while no receiver waits), receivers only
 * while it is empty and no sender waits.
 *
 * G9, by hand-off: a send that finds a receiver waiting copies into the
 * receiver's buffer and wakes it with 0; a receive that finds a sender
 * waiting copies the sender's element (into the ring's tail, or straight
 * into its own buffer at capacity 0) and wakes it with 0. Whoever is woken
 * with 0 has had its transfer done, and returns 0 whatever comes after. A
 * waiter cut short while queued unlinks itself: nothing was copied.
 */
#include "tr_internal.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TR_CHAN_MAGIC 0x5e7e0005u

struct tr_chan {
    unsigned magic;
    bool closed;
    bool shared;       /* TR_CHAN_SHARED: everything under mu, waiters of any engine */
    tr_engine *engine; /* bound at first use (not a shared one) */
    struct tr__link senders, receivers;
    unsigned inside; /* tasks in a blocking send or receive: queued, or woken
                        and not yet returned (destroy waits for them) */
    size_t elem, cap, head, len;
    pthread_mutex_t mu;  /* a shared one's */
    unsigned char buf[]; /* cap * elem */
};

struct chan_wait {
    struct tr__wait w;
    struct tr__link link; /* in senders or receivers */
    struct tr_chan *ch;
    void *elem; /* a sender's element (read only), a receiver's buffer */
};

/* A shared channel's waiter: the task, set before it is queued (a granter
 * on another thread reads it, never w.owner, which the park writes);
 * whether it is still queued (under ch->mu); the result and the message
 * that wake it from another engine (in its inbox duty: the record lives
 * until it runs). */
struct chan_swait {
    struct chan_wait c;
    tr_task *task;
    bool queued;
    int res;
    struct tr__msg msg;
};

static struct chan_wait *chan_wait_of(tr_task *t)
{
    return (struct chan_wait *)(void *)t->wait;
}

static void shared_kill(tr_engine *e, tr_task *t);

static void chan_kill(tr_engine *e, tr_task *t)
{
    if (TR_UNLIKELY(chan_wait_of(t)->ch->shared)) {
        shared_kill(e, t);
        return;
    }
    tr__list_del(&chan_wait_of(t)->link);
    e->st.prim_waits_cut++;
    tr__task_wake(t, TR__WAKE_CUT);
}

static void chan_describe(const tr_engine *e, const tr_task *t, char *buf, size_t len)
{
    (void)e;
    const struct tr_chan *ch = ((const struct chan_wait *)(const void *)t->wait)->ch;
    snprintf(buf, len, " chan=%p len=%zu cap=%zu%s", (const void *)ch, ch->len, ch->cap,
             ch->closed ? " closed" : "");
}

static unsigned char *chan_slot(struct tr_chan *ch, size_t i);
static inline __attribute__((always_inline)) struct chan_wait *
wake_first_x(struct tr__link *q, int res, tr_engine *here, bool shared);

/* An element's copy: the usual sizes (a pointer, an index, two of them)
 * without a call to memcpy. */
static inline void chan_copy(const struct tr_chan *ch, void *dst, const void *src)
{
    if (ch->elem == 8)
        memcpy(dst, src, 8);
    else if (ch->elem == 16)
        memcpy(dst, src, 16);
    else
        memcpy(dst, src, ch->elem);
}

/* A receiver killed after a message was handed to it (woken with 0, never
 * resumed): the message goes back where it came from — to the next
 * waiting receiver, else to the front of the ring (it was sent before
 * anything queued there). A ring filled since has no room: the message is
 * lost, counted (kill_msgs_lost) and named in the report. The receiver's
 * buffer is still there: its stack goes only after this. */
static inline __attribute__((always_inline)) void recv_give_back_x(tr_engine *e, tr_task *t,
                                                                   bool shared)
{
    struct chan_wait *cw = chan_wait_of(t);
    struct tr_chan *ch = cw->ch;
    ch->inside--;
    if (t->wait_res != 0)
        return;
    if (!tr__list_empty(&ch->receivers)) {
        TR_ASSERT(ch->len == 0);
        struct chan_wait *next = tr__container_of(ch->receivers.next, struct chan_wait, link);
        chan_copy(ch, next->elem, cw->elem);
        (void)wake_first_x(&ch->receivers, 0, e, shared);
    } else if (ch->len < ch->cap) {
        ch->head = (ch->head + ch->cap - 1) % ch->cap;
        chan_copy(ch, chan_slot(ch, 0), cw->elem);
        ch->len++;
    } else {
        e->st.kill_msgs_lost++;
        return;
    }
    e->st.kill_grants_passed++;
}

static void chan_recv_reap(tr_engine *e, tr_task *t)
{
    struct tr_chan *ch = chan_wait_of(t)->ch;
    if (TR_LIKELY(!ch->shared)) {
        recv_give_back_x(e, t, false);
        return;
    }
    e->ib.awaiting--;
    pthread_mutex_lock(&ch->mu);
    recv_give_back_x(e, t, true);
    pthread_mutex_unlock(&ch->mu);
}

/* A killed sender took nothing back (woken with 0, its element is sent). */
static void chan_send_reap(tr_engine *e, tr_task *t)
{
    struct tr_chan *ch = chan_wait_of(t)->ch;
    if (TR_LIKELY(!ch->shared)) {
        ch->inside--;
        return;
    }
    e->ib.awaiting--;
    pthread_mutex_lock(&ch->mu);
    ch->inside--;
    pthread_mutex_unlock(&ch->mu);
}

const struct tr__wait_kind tr__wk_chan_send = {.name = "chan-send",
                                               .cancel = chan_kill,
                                               .kill = chan_kill,
                                               .reap = chan_send_reap,
                                               .describe = chan_describe};
const struct tr__wait_kind tr__wk_chan_recv = {.name = "chan-recv",
                                               .cancel = chan_kill,
                                               .kill = chan_kill,
                                               .reap = chan_recv_reap,
                                               .describe = chan_describe};

int tr_chan_create(struct tr_chan **out, size_t elem_size, size_t capacity, unsigned flags)
{
    if (!out || elem_size == 0 || (flags & ~TR_CHAN_SHARED))
        return -EINVAL;
    if (capacity > (SIZE_MAX - sizeof(struct tr_chan)) / elem_size)
        return -ENOMEM;
    struct tr_chan *ch = TR_FAULT(TR_FS_ALLOC) ? NULL : malloc(sizeof(*ch) + capacity * elem_size);
    if (!ch)
        return -ENOMEM;
    ch->magic = TR_CHAN_MAGIC;
    ch->closed = false;
    ch->shared = (flags & TR_CHAN_SHARED) != 0;
    if (ch->shared) {
        int err = tr__mutex_init_adaptive(&ch->mu);
        if (err) {
            free(ch);
            return err;
        }
    }
    ch->inside = 0;
    ch->engine = NULL;
    tr__list_init(&ch->senders);
    tr__list_init(&ch->receivers);
    ch->elem = elem_size;
    ch->cap = capacity;
    ch->head = ch->len = 0;
    *out = ch;
    return 0;
}

/* The calling task, with ch bound to its engine: 0 or the -errno. */
static int chan_use(struct tr_chan *ch, tr_task **self)
{
    if (!ch || ch->magic != TR_CHAN_MAGIC)
        return -EINVAL;
    tr_task *t = tr__current;
    if (!t)
        return -EPERM;
    if (TR_UNLIKELY(ch->engine != t->e) && !ch->shared) {
        if (ch->engine)
            return -EXDEV;
        ch->engine = t->e;
    }
    *self = t;
    return 0;
}

static unsigned char *chan_slot(struct tr_chan *ch, size_t i)
{
    return ch->buf + ((ch->head + i) % ch->cap) * ch->elem;
}

/* A shared channel's waiter woken from another engine: in its engine's
 * inbox duty, on its thread. */
static void shared_wake_hook(tr_engine *e, struct tr__msg *m)
{
    (void)e;
    struct chan_swait *sw = tr__container_of(m, struct chan_swait, msg);
    tr__task_wake(sw->task, sw->res);
}

/* The first waiter of q, unlinked and woken with res. A shared channel's
 * (under its mutex): at once when it is a task of here, the engine whose
 * thread calls, else through its own engine's inbox. shared is a constant
 * at every call: each kind of channel gets its own code. */
static inline __attribute__((always_inline)) struct chan_wait *
wake_first_x(struct tr__link *q, int res, tr_engine *here, bool shared)
{
    TR_ASSERT(!tr__list_empty(q));
    struct chan_wait *cw = tr__container_of(q->next, struct chan_wait, link);
    tr__list_del(&cw->link);
    if (!shared) {
        tr__task_wake(cw->w.owner, res);
        return cw;
    }
    struct chan_swait *sw = tr__container_of(cw, struct chan_swait, c);
    sw->queued = false;
    if (sw->task->e == here) {
        tr__task_wake(sw->task, res);
    } else {
        sw->res = res;
        sw->msg.kind = TR_MSG_HOOK;
        sw->msg.hook = shared_wake_hook;
        tr__inbox_push_control(sw->task->e, &sw->msg);
    }
    return cw;
}

static inline __attribute__((always_inline)) void wake_all_x(struct tr__link *q, int res,
                                                             tr_engine *here, bool shared)
{
    /* Bounded by the waiters, each unlinked; in arrival order. */
    while (!tr__list_empty(q))
        (void)wake_first_x(q, res, here, shared);
}

static int chan_park(tr_task *t, struct tr_chan *ch, struct tr__link *q, void *elem,
                     const struct tr__wait_kind *kind)
{
    struct chan_wait cw = {.ch = ch, .elem = elem};
    tr__list_add_tail(q, &cw.link);
    ch->inside++;
    int r = tr__task_park(t, &cw.w, kind);
    TR_ASSERT(tr__list_empty(&cw.link));
    TR_ASSERT(ch->inside > 0);
    ch->inside--;
    return r;
}

/* A send without waiting: 0, or -EAGAIN / -EPIPE. */
static inline __attribute__((always_inline)) int send_now_x(struct tr_chan *ch, const void *elem,
                                                            tr_engine *here, bool shared)
{
    if (ch->closed)
        return -EPIPE;
    if (!tr__list_empty(&ch->receivers)) {
        TR_ASSERT(ch->len == 0);
        struct tr__link *first = ch->receivers.next;
        chan_copy(ch, tr__container_of(first, struct chan_wait, link)->elem, elem);
        (void)wake_first_x(&ch->receivers, 0, here, shared);
        return 0;
    }
    if (ch->len < ch->cap) {
        chan_copy(ch, chan_slot(ch, ch->len), elem);
        ch->len++;
        return 0;
    }
    return -EAGAIN;
}

/* A receive without waiting: 0, or -EAGAIN / -EPIPE. */
static inline __attribute__((always_inline)) int recv_now_x(struct tr_chan *ch, void *elem,
                                                            tr_engine *here, bool shared)
{
    if (ch->len > 0) {
        chan_copy(ch, elem, chan_slot(ch, 0));
        ch->head = (ch->head + 1) % ch->cap;
        ch->len--;
        if (!tr__list_empty(&ch->senders)) {
            /* Room now: the first waiting sender's element moves in. */
            struct tr__link *first = ch->senders.next;
            chan_copy(ch, chan_slot(ch, ch->len),
                      tr__container_of(first, struct chan_wait, link)->elem);
            ch->len++;
            (void)wake_first_x(&ch->senders, 0, here, shared);
        }
        return 0;
    }
    if (!tr__list_empty(&ch->senders)) {
        TR_ASSERT(ch->cap == 0); /* a ring with room has no waiting sender */
        struct tr__link *first = ch->senders.next;
        chan_copy(ch, elem, tr__container_of(first, struct chan_wait, link)->elem);
        (void)wake_first_x(&ch->senders, 0, here, shared);
        return 0;
    }
    return ch->closed ? -EPIPE : -EAGAIN;
}

static int send_now(struct tr_chan *ch, const void *elem)
{
    return send_now_x(ch, elem, NULL, false);
}

static int recv_now(struct tr_chan *ch, void *elem)
{
    return recv_now_x(ch, elem, NULL, false);
}

/* ---- shared channels (TR_CHAN_SHARED): the same, under the mutex ------------------ */

/* Cut short while queued: it unlinks itself, nothing was copied. One that
 * a task of another engine has served already (unlinked, its transfer
 * done, its wake-up on the way) waits for that wake-up: its result is real
 * (G5), and its cancellation counts as delivered. */
static void shared_kill(tr_engine *e, tr_task *t)
{
    struct chan_swait *sw = tr__container_of(chan_wait_of(t), struct chan_swait, c);
    struct tr_chan *ch = sw->c.ch;
    pthread_mutex_lock(&ch->mu);
    bool queued = sw->queued;
    if (queued) {
        tr__list_del(&sw->c.link);
        sw->queued = false;
    }
    pthread_mutex_unlock(&ch->mu);
    if (!queued) {
        tr__cancel_held(t);
        return;
    }
    e->st.prim_waits_cut++;
    tr__task_wake(t, TR__WAKE_CUT);
}

/* With ch->mu held, released here before the park: a granter on another
 * engine wakes us through our inbox, which our thread reads only after we
 * have switched away. Waiting here is never a deadlock of our engine. */
static int shared_park(tr_task *t, struct tr_chan *ch, struct tr__link *q, void *elem,
                       const struct tr__wait_kind *kind)
{
    struct chan_swait sw = {.c = {.ch = ch, .elem = elem}, .task = t, .queued = true};
    tr__list_add_tail(q, &sw.c.link);
    ch->inside++;
    t->e->ib.awaiting++;
    pthread_mutex_unlock(&ch->mu);
    int r = tr__task_park(t, &sw.c.w, kind);
    t->e->ib.awaiting--;
    pthread_mutex_lock(&ch->mu);
    TR_ASSERT(!sw.queued);
    TR_ASSERT(ch->inside > 0);
    ch->inside--;
    pthread_mutex_unlock(&ch->mu);
    return r;
}

static int shared_send(tr_task *self, struct tr_chan *ch, const void *elem, bool wait)
{
    pthread_mutex_lock(&ch->mu);
    int err = send_now_x(ch, elem, self->e, true);
    if (err != -EAGAIN || !wait) {
        pthread_mutex_unlock(&ch->mu);
        return err;
    }
    return shared_park(self, ch, &ch->senders, (void *)(uintptr_t)elem, &tr__wk_chan_send);
}

static int shared_recv(tr_task *self, struct tr_chan *ch, void *elem, bool wait)
{
    pthread_mutex_lock(&ch->mu);
    int err = recv_now_x(ch, elem, self->e, true);
    if (err != -EAGAIN || !wait) {
        pthread_mutex_unlock(&ch->mu);
        return err;
    }
    return shared_park(self, ch, &ch->receivers, elem, &tr__wk_chan_recv);
}

/* A blocking call's start: ch is usable by the caller, elem given, and
 * the call not cut short already. */
static int chan_begin(struct tr_chan *ch, const void *elem, tr_task **self)
{
    int err = chan_use(ch, self);
    if (err)
        return err;
    if (!elem)
        return -EINVAL;
    return tr__cancel_point(*self);
}

int tr_chan_send(struct tr_chan *ch, const void *elem)
{
    tr_task *self;
    int err = chan_begin(ch, elem, &self);
    if (!err && TR_UNLIKELY(ch->shared))
        return shared_send(self, ch, elem, true);
    if (!err)
        err = send_now(ch, elem);
    if (err != -EAGAIN)
        return err;
    return chan_park(self, ch, &ch->senders, (void *)(uintptr_t)elem, &tr__wk_chan_send);
}

int tr_chan_recv(struct tr_chan *ch, void *elem)
{
    tr_task *self;
    int err = chan_begin(ch, elem, &self);
    if (!err && TR_UNLIKELY(ch->shared))
        return shared_recv(self, ch, elem, true);
    if (!err)
        err = recv_now(ch, elem);
    if (err != -EAGAIN)
        return err;
    return chan_park(self, ch, &ch->receivers, elem, &tr__wk_chan_recv);
}

int tr_chan_try_send(struct tr_chan *ch, const void *elem)
{
    tr_task *self;
    int err = chan_use(ch, &self);
    if (err)
        return err;
    if (elem && TR_UNLIKELY(ch->shared))
        return shared_send(self, ch, elem, false);
    return elem ? send_now(ch, elem) : -EINVAL;
}

int tr_chan_try_recv(struct tr_chan *ch, void *elem)
{
    tr_task *self;
    int err = chan_use(ch, &self);
    if (err)
        return err;
    if (elem && TR_UNLIKELY(ch->shared))
        return shared_recv(self, ch, elem, false);
    return elem ? recv_now(ch, elem) : -EINVAL;
}

int tr_chan_close(struct tr_chan *ch)
{
    tr_task *self;
    int err = chan_use(ch, &self);
    if (err)
        return err;
    if (ch->shared)
        pthread_mutex_lock(&ch->mu);
    if (ch->closed) {
        err = -EPIPE;
    } else {
        ch->closed = true;
        /* Waiting senders sent nothing; waiting receivers found it empty
         * (and stay so: nothing more comes). */
        TR_ASSERT(tr__list_empty(&ch->receivers) || ch->len == 0);
        if (ch->shared) {
            wake_all_x(&ch->senders, -EPIPE, self->e, true);
            wake_all_x(&ch->receivers, -EPIPE, self->e, true);
        } else {
            wake_all_x(&ch->senders, -EPIPE, NULL, false);
            wake_all_x(&ch->receivers, -EPIPE, NULL, false);
        }
    }
    if (ch->shared)
        pthread_mutex_unlock(&ch->mu);
    return err;
}

int tr_chan_destroy(struct tr_chan *ch)
{
    if (!ch || ch->magic != TR_CHAN_MAGIC)
        return -EINVAL;
    if (!ch->shared && ch->engine && tr__current && tr__current->e != ch->engine)
        return -EXDEV;
    /* Also a task woken and not yet returned: it is still in its call. */
    if (ch->shared)
        pthread_mutex_lock(&ch->mu);
    bool busy = ch->inside > 0;
    if (ch->shared)
        pthread_mutex_unlock(&ch->mu);
    if (busy)
        return -EBUSY;
    TR_ASSERT(tr__list_empty(&ch->senders) && tr__list_empty(&ch->receivers));
    ch->magic = 0;
    if (ch->shared)
        pthread_mutex_destroy(&ch->mu);
    free(ch);
    return 0;
}
