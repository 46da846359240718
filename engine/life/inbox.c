/* SPDX-License-Identifier: MIT */
/*
 * inbox.c — tr_post and tr_call: messages into an engine from any thread
 * (see inbox.h for the protocol).
 */
#include "tr_internal.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

int tr__inbox_init(tr_engine *e)
{
    int err = tr__mutex_init_adaptive(&e->ib.mu);
    if (err)
        return err;
    tr__list_init(&e->ib.served);
    return 0;
}

int tr__inbox_close_for_destroy(tr_engine *e)
{
    pthread_mutex_lock(&e->ib.mu);
    bool busy = e->ib.head != NULL || e->ib.cancels > 0 || e->ib.nserved > 0 ||
                atomic_load(&e->ib.unacked_fail) > 0;
    pthread_mutex_unlock(&e->ib.mu);
    if (busy)
        return -EBUSY;
    /* Whoever took the lock before us has left it: nobody is inside. */
    pthread_mutex_destroy(&e->ib.mu);
    return 0;
}

void tr__inbox_shut(tr_engine *e)
{
    pthread_mutex_lock(&e->ib.mu);
    e->ib.closed = true;
    pthread_mutex_unlock(&e->ib.mu);
}

/* Under the lock: the message is queued, and a sleeping engine is woken. */
static void ring_doorbell_locked(tr_engine *e)
{
    atomic_store_explicit(&e->ib.pending, true, memory_order_seq_cst);
    /* Pairs with tr__inbox_sleep: either the engine sees pending before it
     * sleeps, or we see sleeping and wake it. */
    if (atomic_load_explicit(&e->ib.sleeping, memory_order_seq_cst) &&
        atomic_exchange_explicit(&e->ib.sleeping, false, memory_order_relaxed))
        tr__wake_write(e);
}

/* control: REPLY and ACK, which the shutdown never refuses. */
static int push(tr_engine *e, struct tr__msg *m, bool control)
{
    m->next = NULL;
    pthread_mutex_lock(&e->ib.mu);
    if (!control && e->ib.closed) {
        pthread_mutex_unlock(&e->ib.mu);
        return -ESHUTDOWN;
    }
    if (e->ib.tail)
        e->ib.tail->next = m;
    else
        e->ib.head = m;
    e->ib.tail = m;
    ring_doorbell_locked(e);
    pthread_mutex_unlock(&e->ib.mu);
    return 0;
}

void tr__inbox_push_control(tr_engine *e, struct tr__msg *m)
{
    (void)push(e, m, true);
}

bool tr__inbox_sleep(tr_engine *e)
{
    atomic_store_explicit(&e->ib.sleeping, true, memory_order_seq_cst);
    if (!atomic_load_explicit(&e->ib.pending, memory_order_seq_cst))
        return true;
    atomic_store_explicit(&e->ib.sleeping, false, memory_order_relaxed);
    return false;
}

void tr__inbox_awake(tr_engine *e)
{
    atomic_store_explicit(&e->ib.sleeping, false, memory_order_relaxed);
}

/* ---- serving a call ---------------------------------------------------------- */

int tr__served_run(void *arg)
{
    struct tr__served *s = arg;
    return s->fn(s->arg);
}

/* The caller gets the call's outcome, unless its kill rung gave up on it
 * (then nothing of the caller may be touched: false). */
static bool reply(tr_engine *e, tr_engine *caller_e, struct tr__call *c, struct tr__served *s,
                  int status, int result)
{
    int pending = TR_CALL_PENDING;
    if (!atomic_compare_exchange_strong_explicit(&c->state, &pending, TR_CALL_REPLIED,
                                                 memory_order_acq_rel, memory_order_acquire))
        return false;
    c->status = status;
    c->result = result;
    c->msg.kind = TR_MSG_REPLY;
    c->msg.srv = s;
    if (!s)
        atomic_fetch_add(&e->ib.unacked_fail, 1); /* until the caller has read it */
    (void)push(caller_e, &c->msg, true);
    return true;
}

static void served_free(tr_engine *e, struct tr__served *s)
{
    TR_ASSERT(e->ib.nserved > 0);
    tr__list_del(&s->link);
    e->ib.nserved--;
    free(s);
}

/* The task ended (returned, or was killed): the caller gets its result. */
void tr__served_ended(tr_engine *e, tr_task *t, int result)
{
    struct tr__served *s = t->arg;
    TR_ASSERT(!s->replied);
    s->replied = true;
    s->task = NULL;
    struct tr__call *c = s->call;
    s->call = NULL; /* its frame may be gone once the REPLY is read */
    if (!reply(e, s->caller_e, c, s, 0, result))
        served_free(e, s); /* abandoned: no REPLY, so no ACK will come */
}

static void serve(tr_engine *e, struct tr__msg *m)
{
    struct tr__call *c = m->call;
    tr_engine *caller_e = c->caller_e;
    struct tr__served *s = TR_FAULT(TR_FS_ALLOC) ? NULL : calloc(1, sizeof(*s));
    if (!s) {
        (void)reply(e, caller_e, c, NULL, -ENOMEM, 0);
        return;
    }
    s->call = c;
    s->caller_e = caller_e;
    s->fn = c->fn;
    s->arg = c->arg;
    tr_task *t;
    struct tr_spawn_opts o = {.name = "call"};
    int err = tr_spawn(e, &t, tr__served_run, s, &o);
    if (err) {
        free(s);
        (void)reply(e, caller_e, c, NULL, err, 0);
        return;
    }
    (void)tr_detach(t);
    s->task = t;
    tr__list_add_tail(&e->ib.served, &s->link);
    e->ib.nserved++;
    if (atomic_load_explicit(&c->cancel_req, memory_order_acquire)) {
        s->cancelled = true;
        (void)tr_cancel(t);
    }
}

/* Callers were cut short: cancel the calls they wait for. Only calls not
 * yet replied to are looked at: their callers still wait, so their
 * records live. */
static void serve_cancels(tr_engine *e)
{
    for (struct tr__link *l = e->ib.served.next; l != &e->ib.served; l = l->next) {
        struct tr__served *s = tr__container_of(l, struct tr__served, link);
        if (s->replied || s->cancelled ||
            !atomic_load_explicit(&s->call->cancel_req, memory_order_acquire))
            continue;
        s->cancelled = true;
        (void)tr_cancel(s->task);
    }
}

static void acked(tr_engine *e, struct tr__served *s)
{
    TR_ASSERT(s->replied);
    served_free(e, s);
}

static void replied(tr_engine *e, struct tr__msg *m)
{
    struct tr__call *c = m->call;
    struct tr__served *s = m->srv;
    tr_engine *target = c->target;
    tr_task *caller = c->w.owner;
    TR_ASSERT(caller->e == e);
    TR_ASSERT(e->ib.awaiting > 0);
    e->ib.awaiting--;
    tr__task_wake(caller, c->status);
    if (s) {
        s->msg.kind = TR_MSG_ACK;
        s->msg.srv = s;
        (void)push(target, &s->msg, true);
    } else {
        /* The call never ran: its acknowledgement is a count. */
        pthread_mutex_lock(&target->ib.mu);
        TR_ASSERT(atomic_load(&target->ib.unacked_fail) > 0);
        atomic_fetch_sub(&target->ib.unacked_fail, 1);
        ring_doorbell_locked(target); /* it may wait for nothing else */
        pthread_mutex_unlock(&target->ib.mu);
    }
}

static void posted(tr_engine *e, struct tr__msg *m)
{
    struct tr_spawn_opts o = {.name = "post"};
    if (tr_spawn(e, NULL, m->fn, m->arg, &o) != 0)
        e->ib.posts_failed++; /* no memory for the task: counted, reported */
    free(m);
}

void tr__inbox_run(tr_engine *e)
{
    pthread_mutex_lock(&e->ib.mu);
    struct tr__msg *m = e->ib.head;
    uint32_t cancels = e->ib.cancels;
    e->ib.head = e->ib.tail = NULL;
    e->ib.cancels = 0;
    atomic_store_explicit(&e->ib.pending, false, memory_order_relaxed);
    pthread_mutex_unlock(&e->ib.mu);
    e->ib.last_msg_ns = tr__now_ns();
    /* Bounded by what was queued when the lock was taken. */
    while (m) {
        struct tr__msg *next = m->next;
        switch (m->kind) {
        case TR_MSG_POST:
            posted(e, m);
            break;
        case TR_MSG_CALL:
            serve(e, m);
            break;
        case TR_MSG_REPLY:
            replied(e, m);
            break;
        case TR_MSG_ACK:
            acked(e, m->srv);
            break;
        case TR_MSG_HOOK:
            m->hook(e, m);
            break;
        default:
            TR_ASSERT(!"a message of no known kind");
        }
        m = next;
    }
    /* After the CALLs: a cancel asked before its CALL was read finds its
     * flag there (serve), one asked after finds the served record here. */
    if (cancels)
        serve_cancels(e);
}

/* ---- the caller's side ------------------------------------------------------- */

static struct tr__call *call_of(tr_task *t)
{
    return tr__container_of(t->wait, struct tr__call, w);
}

/* Under the target's lock: the CALL, still queued, comes out (the target
 * never saw it). Found there as a REPLY (a call to our own engine: the
 * record went back into the same inbox), it stays: it is the answer. */
static bool take_back_locked(tr_engine *target, struct tr__msg *m)
{
    struct tr__msg *prev = NULL;
    for (struct tr__msg **pp = &target->ib.head; *pp; prev = *pp, pp = &(*pp)->next) {
        if (*pp != m)
            continue;
        if (m->kind != TR_MSG_CALL)
            return false;
        *pp = m->next;
        if (target->ib.tail == m)
            target->ib.tail = prev;
        return true;
    }
    return false;
}

/* The caller is cut short. A CALL still queued is taken back: the call
 * returns at once (it never ran). A CALL served already: the target
 * cancels the task it runs, and the caller waits for the REPLY (the target
 * writes into its frame); its cancellation counts as delivered, so the
 * kill rung may end the wait (call_kill). The target lives meanwhile: our
 * CALL in its inbox, its served record (until our ACK) or its failure
 * REPLY's count (until we read it) keeps it from being destroyed. */
static void call_cancel(tr_engine *e, tr_task *t)
{
    struct tr__call *c = call_of(t);
    tr_engine *target = c->target;
    pthread_mutex_lock(&target->ib.mu);
    bool taken = !c->cancel_sent && take_back_locked(target, &c->msg);
    if (!taken && !c->cancel_sent) {
        c->cancel_sent = true;
        atomic_store_explicit(&c->cancel_req, true, memory_order_release);
        target->ib.cancels++;
        ring_doorbell_locked(target);
    }
    pthread_mutex_unlock(&target->ib.mu);
    if (taken) {
        TR_ASSERT(e->ib.awaiting > 0);
        e->ib.awaiting--;
        tr__task_wake(t, TR__WAKE_CUT);
        return;
    }
    tr__cancel_held(t);
}

/* The kill rung does not wait for a remote task that ignores its
 * cancellation (a shield, an engine that is not running): once the cancel
 * went, the call is abandoned to the target. The caller's stack is never
 * freed or reused (the target may still read its argument from it), the
 * target sends nothing back (it sees the mark), and the task ends now. If
 * the REPLY is on its way already, it is waited for. */
static void call_kill(tr_engine *e, tr_task *t)
{
    call_cancel(e, t);
    if (t->state != TR_TASK_PARKED)
        return; /* taken back: woken */
    struct tr__call *c = call_of(t);
    int pending = TR_CALL_PENDING;
    if (!atomic_compare_exchange_strong_explicit(&c->state, &pending, TR_CALL_ABANDONED,
                                                 memory_order_acq_rel, memory_order_acquire))
        return; /* REPLIED: it comes */
    t->stack_lent = true;
    e->st.calls_abandoned++;
    TR_ASSERT(e->ib.awaiting > 0);
    e->ib.awaiting--;
    tr__task_wake(t, -ECANCELED);
}

static void call_describe(const tr_engine *e, const tr_task *t, char *buf, size_t len)
{
    (void)e;
    const struct tr__call *c = tr__container_of(t->wait, struct tr__call, w);
    snprintf(buf, len, " engine=%" PRIu64 "%s", c->target->serial,
             c->cancel_sent ? " cancel-sent" : "");
}

const struct tr__wait_kind tr__wk_call = {
    .name = "call",
    .cancel = call_cancel,
    .kill = call_kill,
    .describe = call_describe,
};

int tr_call(tr_engine *target, tr_fn fn, void *arg, int *result)
{
    tr_task *t = tr__current;
    if (!t)
        return -EPERM;
    if (!target || !fn)
        return -EINVAL;
    int why = tr__cancel_point(t); /* -EPERM inside a tr_op prep callback too */
    if (why)
        return why;
    struct tr__call c = {
        .msg = {.kind = TR_MSG_CALL},
        .fn = fn,
        .arg = arg,
        .target = target,
    };
    tr_engine *e = t->e;
    c.msg.call = &c;
    c.caller_e = e;
    int err = push(target, &c.msg, false);
    if (err)
        return err;
    /* The target may serve the CALL and reply at once, on its thread; the
     * REPLY comes back through our own inbox, read only by this thread's
     * duty, so after this task has parked. */
    e->ib.awaiting++;
    int st = tr__task_park(t, &c.w, &tr__wk_call);
    if (st == 0 && result)
        *result = c.result;
    return st;
}

int tr_post(tr_engine *e, tr_fn fn, void *arg)
{
    if (!e || !fn)
        return -EINVAL;
    struct tr__msg *m = TR_FAULT(TR_FS_ALLOC) ? NULL : malloc(sizeof(*m));
    if (!m)
        return -ENOMEM;
    *m = (struct tr__msg){.kind = TR_MSG_POST, .fn = fn, .arg = arg};
    int err = push(e, m, false);
    if (err)
        free(m);
    return err;
}
