/* SPDX-License-Identifier: MIT */
/*
 * Description: the primitives of DESIGN section 8 (event, semaphore,
 * mutex, condition, channel): first come first served; G9 — a waiter cut short
 * (cancelled, or its scope's deadline) takes nothing and the grant goes
 * to the next waiter, while a grant that came first wins over a later
 * cancel; -EDEADLK, -EPERM, -EBUSY, -EAGAIN, -EXDEV, -EINVAL; a condition
 * returns with its mutex held also when cut short; a channel's capacity,
 * rendezvous, close and conservation of numbered messages through cancels;
 * the dump names what a
 * task waits on; the stats count waits cut short. No timing assertions:
 * the order of events comes from the scheduler's FIFO passes (tr_yield),
 * and deadlines are only "passed" or "an hour away".
 */
#define _GNU_SOURCE
#include "tr_harness.h"
#include "tr_test_task.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define HOUR (3600ull * 1000000000ull)

/* Lets every other runnable task run until it parks or ends. */
static void settle(void)
{
    for (int i = 0; i < 8; i++)
        TCHECK_EQ(tr_yield(), 0);
}

/* ------------------------------------------------------------- semaphore */

struct semc {
    struct tr_sem s;
    int order[8], n;
    int res[8];
};

struct semw {
    struct semc *c;
    int id;
};

static int fn_sem_waiter(void *p)
{
    struct semw *w = p;
    int r = tr_sem_acquire(&w->c->s);
    w->c->res[w->id] = r;
    if (r == 0)
        w->c->order[w->c->n++] = w->id;
    return 0;
}

/* Three waiters queue; the second is cancelled while queued (it takes
 * nothing); two releases go to the first and the third, in that order. */
static int fn_sem_fifo_g9(void *p)
{
    struct semc *c = p;
    TCHECK_EQ(tr_sem_init(&c->s, 0), 0);
    struct semw w[3];
    tr_task *t[3];
    for (int i = 0; i < 3; i++) {
        w[i] = (struct semw){c, i};
        TCHECK_EQ(tr_spawn(NULL, &t[i], fn_sem_waiter, &w[i], NULL), 0);
    }
    settle();
    TCHECK(tr__task_parked_on(t[1], TR_WAIT_SEM));
    TCHECK_EQ(tr_cancel(t[1]), 0);
    settle();
    TCHECK_EQ(c->res[1], -ECANCELED);
    TCHECK_EQ(tr_sem_release(&c->s), 0);
    TCHECK_EQ(tr_sem_release(&c->s), 0);
    for (int i = 0; i < 3; i++)
        TCHECK_EQ(tr_join(t[i], NULL), 0);
    TCHECK_EQ(c->n, 2);
    TCHECK_EQ(c->order[0], 0);
    TCHECK_EQ(c->order[1], 2);
    TCHECK_EQ(c->s._count, 0); /* both units consumed, none lost */
    TCHECK_EQ(tr_sem_try_acquire(&c->s), -EAGAIN);
    TCHECK_EQ(tr_sem_release(&c->s), 0);
    TCHECK_EQ(tr_sem_try_acquire(&c->s), 0);
    TCHECK(tstats().prim_waits_cut >= 1);
    return 0;
}

static void test_sync_sem_fifo_and_g9(void **state)
{
    (void)state;
    struct semc c;
    memset(&c, 0, sizeof(c));
    assert_int_equal(tt_run(fn_sem_fifo_g9, &c), 0);
}

/* The grant comes first: the waiter is handed the unit, then cancelled
 * before it runs; the real result wins (it returns 0 holding the unit),
 * and the cancel shows at its next blocking call. */
static int fn_sem_granted_then_cancelled(void *p)
{
    struct semc *c = p;
    TCHECK_EQ(tr_sem_init(&c->s, 0), 0);
    struct semw w = {c, 0};
    tr_task *t;
    TCHECK_EQ(tr_spawn(NULL, &t, fn_sem_waiter, &w, NULL), 0);
    settle();
    TCHECK_EQ(tr_sem_release(&c->s), 0); /* handed over: t is READY */
    TCHECK_EQ(tr_cancel(t), 0);
    TCHECK_EQ(tr_join(t, NULL), 0);
    TCHECK_EQ(c->res[0], 0);
    TCHECK_EQ(c->n, 1);
    TCHECK_EQ(c->s._count, 0);
    return 0;
}

static void test_sync_sem_grant_beats_cancel(void **state)
{
    (void)state;
    struct semc c;
    memset(&c, 0, sizeof(c));
    assert_int_equal(tt_run(fn_sem_granted_then_cancelled, &c), 0);
}

/* A deadline cuts a semaphore wait short with -ETIMEDOUT; a unit released
 * later is still there for the next acquire. */
static int fn_sem_deadline(void *p)
{
    (void)p;
    struct tr_sem s;
    TCHECK_EQ(tr_sem_init(&s, 0), 0);
    struct tr_scope sc;
    TCHECK_EQ(tr_scope_enter(&sc, tr_now_ns() + 1000000ull, 0), 0);
    TCHECK_EQ(tr_sem_acquire(&s), -ETIMEDOUT);
    TCHECK_EQ(tr_scope_exit(&sc), -ETIMEDOUT);
    TCHECK_EQ(tr_sem_release(&s), 0);
    TCHECK_EQ(tr_sem_acquire(&s), 0);
    TCHECK_EQ(s._count, 0);
    return 0;
}

static void test_sync_sem_deadline(void **state)
{
    (void)state;
    assert_int_equal(tt_run(fn_sem_deadline, NULL), 0);
}

/* ----------------------------------------------------------------- mutex */

struct mtxc {
    struct tr_mutex m;
    int order[8], n;
    int res[8];
    bool cancel_self; /* the waiter is cancelled while holding: unlock still works */
};

struct mtxw {
    struct mtxc *c;
    int id;
};

static int fn_mtx_waiter(void *p)
{
    struct mtxw *w = p;
    int r = tr_mutex_lock(&w->c->m);
    w->c->res[w->id] = r;
    if (r != 0)
        return 0;
    w->c->order[w->c->n++] = w->id;
    TCHECK(w->c->m._owner == tr_self());
    if (w->c->cancel_self)
        TCHECK_EQ(tr_cancel(tr_self()), 0);
    TCHECK_EQ(tr_yield(), w->c->cancel_self ? -ECANCELED : 0); /* held across a pass */
    TCHECK_EQ(tr_mutex_unlock(&w->c->m), 0);                   /* never cut short */
    return 0;
}

static int fn_mutex(void *p)
{
    struct mtxc *c = p;
    TCHECK_EQ(tr_mutex_init(&c->m), 0);
    TCHECK_EQ(tr_mutex_lock(&c->m), 0);
    TCHECK_EQ(tr_mutex_lock(&c->m), -EDEADLK);
    TCHECK_EQ(tr_mutex_trylock(&c->m), -EDEADLK);
    struct mtxw w[3];
    tr_task *t[3];
    for (int i = 0; i < 3; i++) {
        w[i] = (struct mtxw){c, i};
        TCHECK_EQ(tr_spawn(NULL, &t[i], fn_mtx_waiter, &w[i], NULL), 0);
    }
    settle();
    TCHECK(tr__task_parked_on(t[0], TR_WAIT_MUTEX));
    TCHECK_EQ(tr_cancel(t[1]), 0); /* queued: takes nothing */
    settle();
    TCHECK_EQ(c->res[1], -ECANCELED);
    TCHECK_EQ(tr_mutex_unlock(&c->m), 0);
    TCHECK_EQ(tr_mutex_unlock(&c->m), -EPERM); /* no longer ours */
    for (int i = 0; i < 3; i++)
        TCHECK_EQ(tr_join(t[i], NULL), 0);
    TCHECK_EQ(c->n, 2);
    TCHECK_EQ(c->order[0], 0);
    TCHECK_EQ(c->order[1], 2);
    TCHECK(c->m._owner == NULL);
    TCHECK_EQ(tr_mutex_trylock(&c->m), 0);
    TCHECK_EQ(tr_mutex_unlock(&c->m), 0);
    return 0;
}

static void test_sync_mutex(void **state)
{
    (void)state;
    struct mtxc c;
    memset(&c, 0, sizeof(c));
    assert_int_equal(tt_run(fn_mutex, &c), 0);
}

/* An owner cancelled while it holds the mutex still unlocks it, and the
 * next waiter gets it. Another task's unlock is -EPERM; trylock of a held
 * mutex is -EBUSY. */
static int fn_mutex_owner_cancelled(void *p)
{
    struct mtxc *c = p;
    TCHECK_EQ(tr_mutex_init(&c->m), 0);
    c->cancel_self = true;
    struct mtxw w[2] = {{c, 0}, {c, 1}};
    tr_task *t[2];
    for (int i = 0; i < 2; i++)
        TCHECK_EQ(tr_spawn(NULL, &t[i], fn_mtx_waiter, &w[i], NULL), 0);
    TCHECK_EQ(tr_yield(), 0); /* t0 holds it, t1 waits */
    TCHECK_EQ(tr_mutex_trylock(&c->m), -EBUSY);
    TCHECK_EQ(tr_mutex_unlock(&c->m), -EPERM);
    for (int i = 0; i < 2; i++)
        TCHECK_EQ(tr_join(t[i], NULL), 0);
    TCHECK_EQ(c->n, 2);
    TCHECK(c->m._owner == NULL);
    return 0;
}

static void test_sync_mutex_owner_cancelled(void **state)
{
    (void)state;
    struct mtxc c;
    memset(&c, 0, sizeof(c));
    assert_int_equal(tt_run(fn_mutex_owner_cancelled, &c), 0);
}

/* ------------------------------------------------------------- condition */

struct condc {
    struct tr_mutex m;
    struct tr_cond cv;
    int ready;
    int res[4];
    bool held[4];
    uint64_t deadline;
};

struct condw {
    struct condc *c;
    int id;
};

static int fn_cond_waiter(void *p)
{
    struct condw *w = p;
    struct condc *c = w->c;
    TCHECK_EQ(tr_mutex_lock(&c->m), 0);
    struct tr_scope sc;
    TCHECK_EQ(tr_scope_enter(&sc, w->id == 3 ? c->deadline : 0, 0), 0);
    int r = 0;
    while (!c->ready && r == 0)
        r = tr_cond_wait(&c->cv, &c->m);
    c->res[w->id] = r;
    c->held[w->id] = c->m._owner == tr_self(); /* held also when cut short */
    (void)tr_scope_exit(&sc);
    TCHECK_EQ(tr_mutex_unlock(&c->m), 0);
    return 0;
}

/* Four waiters: one cancelled, one whose deadline passes, then a signal
 * (one wakes, sees nothing ready, waits again) and a broadcast after
 * ready is set. Each returns with the mutex held. */
static int fn_cond(void *p)
{
    struct condc *c = p;
    TCHECK_EQ(tr_mutex_init(&c->m), 0);
    TCHECK_EQ(tr_cond_init(&c->cv), 0);
    c->deadline = tr_now_ns() + 2000000ull; /* 2 ms: passes while it waits */
    struct condw w[4];
    tr_task *t[4];
    for (int i = 0; i < 4; i++) {
        w[i] = (struct condw){c, i};
        TCHECK_EQ(tr_spawn(NULL, &t[i], fn_cond_waiter, &w[i], NULL), 0);
    }
    settle();
    for (int i = 0; i < 4; i++)
        TCHECK(tr__task_parked_on(t[i], TR_WAIT_COND) || i == 3);
    /* Hold the mutex while cancelling: the cancelled waiter must wait for
     * it before it returns. */
    TCHECK_EQ(tr_mutex_lock(&c->m), 0);
    TCHECK_EQ(tr_cancel(t[1]), 0);
    settle();
    TCHECK(tr__task_parked_on(t[1], TR_WAIT_MUTEX)); /* taking it back, not cut short */
    TCHECK_EQ(tr_mutex_unlock(&c->m), 0);
    TCHECK_EQ(tr_join(t[1], NULL), 0);
    TCHECK_EQ(c->res[1], -ECANCELED);
    TCHECK(c->held[1]);
    TCHECK_EQ(tr_join(t[3], NULL), 0); /* its deadline */
    TCHECK_EQ(c->res[3], -ETIMEDOUT);
    TCHECK(c->held[3]);
    TCHECK_EQ(tr_cond_signal(&c->cv), 0); /* t0: nothing ready, waits again */
    settle();
    TCHECK(tr__task_parked_on(t[0], TR_WAIT_COND));
    TCHECK(tr__task_parked_on(t[2], TR_WAIT_COND));
    TCHECK_EQ(tr_mutex_lock(&c->m), 0);
    c->ready = 1;
    TCHECK_EQ(tr_cond_broadcast(&c->cv), 0);
    TCHECK_EQ(tr_mutex_unlock(&c->m), 0);
    TCHECK_EQ(tr_join(t[0], NULL), 0);
    TCHECK_EQ(tr_join(t[2], NULL), 0);
    TCHECK_EQ(c->res[0], 0);
    TCHECK_EQ(c->res[2], 0);
    TCHECK(c->held[0] && c->held[2]);
    TCHECK(c->m._owner == NULL);
    /* Without the mutex: -EPERM, nothing waited. */
    TCHECK_EQ(tr_cond_wait(&c->cv, &c->m), -EPERM);
    return 0;
}

static void test_sync_cond(void **state)
{
    (void)state;
    struct condc c;
    memset(&c, 0, sizeof(c));
    assert_int_equal(tt_run(fn_cond, &c), 0);
}

/* ----------------------------------------------------------------- event */

struct evc {
    struct tr_event ev;
    int woke;
};

static int fn_ev_waiter(void *p)
{
    struct evc *c = p;
    TCHECK_EQ(tr_event_wait(&c->ev), 0);
    c->woke++;
    return 0;
}

static int fn_event(void *p)
{
    struct evc *c = p;
    TCHECK_EQ(tr_event_init(&c->ev), 0);
    TCHECK(!tr_event_is_set(&c->ev));
    tr_task *t[3];
    for (int i = 0; i < 3; i++)
        TCHECK_EQ(tr_spawn(NULL, &t[i], fn_ev_waiter, c, NULL), 0);
    settle();
    TCHECK_EQ(c->woke, 0);
    TCHECK(tr__task_parked_on(t[2], TR_WAIT_EVENT));
    TCHECK_EQ(tr_event_set(&c->ev), 0);
    for (int i = 0; i < 3; i++)
        TCHECK_EQ(tr_join(t[i], NULL), 0);
    TCHECK_EQ(c->woke, 3);
    TCHECK(tr_event_is_set(&c->ev));
    TCHECK_EQ(tr_event_wait(&c->ev), 0); /* set: at once */
    TCHECK_EQ(tr_event_clear(&c->ev), 0);
    TCHECK(!tr_event_is_set(&c->ev));
    /* A cancellation point even when set. */
    TCHECK_EQ(tr_event_set(&c->ev), 0);
    TCHECK_EQ(tr_cancel(tr_self()), 0);
    TCHECK_EQ(tr_event_wait(&c->ev), -ECANCELED);
    return 0;
}

static void test_sync_event(void **state)
{
    (void)state;
    struct evc c;
    memset(&c, 0, sizeof(c));
    assert_int_equal(tt_run(fn_event, &c), 0);
}

/* --------------------------------------------------------------- misuse */

static struct tr_sem g_sem;

static int fn_bind(void *p)
{
    (void)p;
    TCHECK_EQ(tr_sem_release(&g_sem), 0); /* binds it to this engine */
    return 0;
}

static int fn_other_engine(void *p)
{
    (void)p;
    TCHECK_EQ(tr_sem_release(&g_sem), -EXDEV);
    TCHECK_EQ(tr_sem_acquire(&g_sem), -EXDEV);
    TCHECK_EQ(tr_sem_try_acquire(&g_sem), -EXDEV);
    struct tr_mutex never;
    memset(&never, 0xa5, sizeof(never)); /* never initialised */
    TCHECK_EQ(tr_mutex_lock(&never), -EINVAL);
    TCHECK_EQ(tr_mutex_lock(NULL), -EINVAL);
    TCHECK_EQ(tr_sem_release((struct tr_sem *)(void *)&never), -EINVAL);
    return 0;
}

static void test_sync_misuse(void **state)
{
    (void)state;
    assert_int_equal(tr_sem_init(&g_sem, 0), 0);
    assert_int_equal(tr_sem_acquire(&g_sem), -EPERM); /* outside a task */
    assert_int_equal(tr_sem_init(NULL, 0), -EINVAL);
    /* Two engines alive at once (a destroyed one's memory may be reused). */
    struct tr_config cfg;
    tr_config_init(&cfg);
    cfg.flags = TR_CFG_NO_SIGNALS;
    tr_engine *e1 = eng_new(&cfg), *e2 = eng_new(&cfg);
    assert_int_equal(tr_spawn(e1, NULL, fn_bind, NULL, NULL), 0);
    assert_int_equal(tr_engine_run(e1), 0);
    assert_int_equal(tr_spawn(e2, NULL, fn_other_engine, NULL, NULL), 0);
    assert_int_equal(tr_engine_run(e2), 0);
    tr_test_assert_clean();
    assert_int_equal(tr_engine_destroy(e2), 0);
    assert_int_equal(tr_engine_destroy(e1), 0);
    assert_int_equal(g_sem._count, 1);
}

/* ------------------------------------------------------------ the dump */

static int fn_dump(void *p)
{
    struct semc *c = p;
    TCHECK_EQ(tr_sem_init(&c->s, 0), 0);
    struct semw w = {c, 0};
    tr_task *t;
    struct tr_spawn_opts o = {.name = "sem-waiter"};
    TCHECK_EQ(tr_spawn(NULL, &t, fn_sem_waiter, &w, &o), 0);
    settle();
    FILE *f = tmpfile();
    TCHECK(f != NULL);
    TCHECK_EQ(tr_engine_dump(tr_self_engine(), fileno(f)), 2); /* the two tasks */
    char buf[8192];
    size_t n = (size_t)pread(fileno(f), buf, sizeof(buf) - 1, 0);
    buf[n] = 0;
    fclose(f);
    char want[64];
    snprintf(want, sizeof(want), "sem-wait sem=%p",
             (void *)&c->s); /* the kind, a space, its details */
    TCHECK(strstr(buf, "sem-waiter") != NULL);
    TCHECK(strstr(buf, "sem-wait") != NULL);
    TCHECK(strstr(buf, want) != NULL);
    TCHECK_EQ(tr_sem_release(&c->s), 0);
    TCHECK_EQ(tr_join(t, NULL), 0);
    return 0;
}

static void test_sync_dump_names_the_primitive(void **state)
{
    (void)state;
    struct semc c;
    memset(&c, 0, sizeof(c));
    assert_int_equal(tt_run(fn_dump, &c), 0);
}

/* --------------------------------------------------------------- channel */

struct chc {
    struct tr_chan *ch;
    int got[16], ngot;
    int res;
};

static int fn_ch_sender(void *p)
{
    struct chc *c = p;
    int v = 3;
    c->res = tr_chan_send(c->ch, &v);
    return 0;
}

static int fn_ch_receiver(void *p)
{
    struct chc *c = p;
    int v = -1;
    int r = tr_chan_recv(c->ch, &v);
    c->res = r;
    if (r == 0)
        c->got[c->ngot++] = v;
    return 0;
}

/* Capacity 2: two sends go in, the third waits; a receive takes the first
 * and the waiting sender's moves in; then 2 and 3, in order. */
static int fn_chan_buffered(void *p)
{
    struct chc *c = p;
    TCHECK_EQ(tr_chan_create(&c->ch, sizeof(int), 2, 0), 0);
    int v = 1, out = 0;
    TCHECK_EQ(tr_chan_send(c->ch, &v), 0);
    v = 2;
    TCHECK_EQ(tr_chan_try_send(c->ch, &v), 0);
    TCHECK_EQ(tr_chan_try_send(c->ch, &v), -EAGAIN);
    tr_task *t;
    TCHECK_EQ(tr_spawn(NULL, &t, fn_ch_sender, c, NULL), 0);
    settle();
    TCHECK(tr__task_parked_on(t, TR_WAIT_CHAN_SEND));
    TCHECK_EQ(tr_chan_destroy(c->ch), -EBUSY);
    for (int want = 1; want <= 3; want++) {
        TCHECK_EQ(tr_chan_recv(c->ch, &out), 0);
        TCHECK_EQ(out, want);
    }
    TCHECK_EQ(tr_join(t, NULL), 0);
    TCHECK_EQ(c->res, 0);
    TCHECK_EQ(tr_chan_try_recv(c->ch, &out), -EAGAIN);
    TCHECK_EQ(tr_chan_destroy(c->ch), 0);
    return 0;
}

static void test_sync_chan_buffered(void **state)
{
    (void)state;
    struct chc c;
    memset(&c, 0, sizeof(c));
    assert_int_equal(tt_run(fn_chan_buffered, &c), 0);
}

/* Capacity 0: a send waits for its receiver and a receive for its sender;
 * a receiver cut short takes nothing; a sender cut short sent nothing. */
static int fn_chan_rendezvous(void *p)
{
    struct chc *c = p;
    TCHECK_EQ(tr_chan_create(&c->ch, sizeof(int), 0, 0), 0);
    int v = 7, out = 0;
    TCHECK_EQ(tr_chan_try_send(c->ch, &v), -EAGAIN);
    TCHECK_EQ(tr_chan_try_recv(c->ch, &out), -EAGAIN);
    tr_task *r;
    TCHECK_EQ(tr_spawn(NULL, &r, fn_ch_receiver, c, NULL), 0);
    settle();
    TCHECK(tr__task_parked_on(r, TR_WAIT_CHAN_RECV));
    TCHECK_EQ(tr_cancel(r), 0); /* cut short while waiting: takes nothing */
    TCHECK_EQ(tr_join(r, NULL), 0);
    TCHECK_EQ(c->res, -ECANCELED);
    TCHECK_EQ(c->ngot, 0);
    /* A sender whose deadline passes sent nothing. */
    struct tr_scope sc;
    TCHECK_EQ(tr_scope_enter(&sc, tr_now_ns() + 1000000ull, 0), 0);
    TCHECK_EQ(tr_chan_send(c->ch, &v), -ETIMEDOUT);
    TCHECK_EQ(tr_scope_exit(&sc), -ETIMEDOUT);
    TCHECK_EQ(tr_chan_try_recv(c->ch, &out), -EAGAIN);
    /* A receiver waits, the send hands over. */
    TCHECK_EQ(tr_spawn(NULL, &r, fn_ch_receiver, c, NULL), 0);
    settle();
    v = 8;
    TCHECK_EQ(tr_chan_send(c->ch, &v), 0);
    TCHECK_EQ(tr_join(r, NULL), 0);
    TCHECK_EQ(c->ngot, 1);
    TCHECK_EQ(c->got[0], 8);
    /* A sender waits, the receive takes. */
    TCHECK_EQ(tr_spawn(NULL, &r, fn_ch_sender, c, NULL), 0);
    settle();
    TCHECK_EQ(tr_chan_recv(c->ch, &out), 0);
    TCHECK_EQ(out, 3);
    TCHECK_EQ(tr_join(r, NULL), 0);
    TCHECK_EQ(c->res, 0);
    TCHECK_EQ(tr_chan_destroy(c->ch), 0);
    return 0;
}

static void test_sync_chan_rendezvous(void **state)
{
    (void)state;
    struct chc c;
    memset(&c, 0, sizeof(c));
    assert_int_equal(tt_run(fn_chan_rendezvous, &c), 0);
}

/* Close: a waiting sender gets -EPIPE; receivers drain what is queued,
 * then -EPIPE (a waiting one too); sends after it -EPIPE. */
static int fn_chan_close(void *p)
{
    struct chc *c = p;
    TCHECK_EQ(tr_chan_create(&c->ch, sizeof(int), 1, 0), 0);
    int v = 1, out = 0;
    TCHECK_EQ(tr_chan_send(c->ch, &v), 0);
    tr_task *t;
    TCHECK_EQ(tr_spawn(NULL, &t, fn_ch_sender, c, NULL), 0);
    settle();
    TCHECK_EQ(tr_chan_close(c->ch), 0);
    TCHECK_EQ(tr_chan_close(c->ch), -EPIPE);
    TCHECK_EQ(tr_join(t, NULL), 0);
    TCHECK_EQ(c->res, -EPIPE);
    TCHECK_EQ(tr_chan_send(c->ch, &v), -EPIPE);
    TCHECK_EQ(tr_chan_recv(c->ch, &out), 0); /* drains */
    TCHECK_EQ(out, 1);
    TCHECK_EQ(tr_chan_recv(c->ch, &out), -EPIPE);
    TCHECK_EQ(tr_chan_try_recv(c->ch, &out), -EPIPE);
    TCHECK_EQ(tr_chan_destroy(c->ch), 0);
    /* A receiver waiting at the close. */
    TCHECK_EQ(tr_chan_create(&c->ch, sizeof(int), 4, 0), 0);
    TCHECK_EQ(tr_spawn(NULL, &t, fn_ch_receiver, c, NULL), 0);
    settle();
    TCHECK_EQ(tr_chan_close(c->ch), 0);
    TCHECK_EQ(tr_join(t, NULL), 0);
    TCHECK_EQ(c->res, -EPIPE);
    TCHECK_EQ(tr_chan_destroy(c->ch), 0);
    return 0;
}

static void test_sync_chan_close(void **state)
{
    (void)state;
    struct chc c;
    memset(&c, 0, sizeof(c));
    assert_int_equal(tt_run(fn_chan_close, &c), 0);
}

/* Conservation with cancels: 4 producers send 500 numbered messages each
 * through a channel of 3; 3 consumers receive, one of them is cancelled
 * midway (each cancel or cut takes nothing); after the producers, the
 * channel is closed and the others drain it. Every message arrives exactly
 * once. */
#define CP_PRODUCERS 4
#define CP_EACH 500
struct cons {
    struct tr_chan *ch;
    unsigned char seen[CP_PRODUCERS * CP_EACH];
    int received, dup, cut;
};

static int fn_producer(void *p)
{
    struct cons *c = (struct cons *)((void **)p)[0];
    int id = (int)(intptr_t)((void **)p)[1];
    for (int i = 0; i < CP_EACH; i++) {
        int v = id * CP_EACH + i;
        TCHECK_EQ(tr_chan_send(c->ch, &v), 0);
    }
    return 0;
}

static int fn_consumer(void *p)
{
    struct cons *c = p;
    for (;;) {
        int v = -1;
        int r = tr_chan_recv(c->ch, &v);
        if (r == -EPIPE)
            return 0;
        if (r < 0) {
            c->cut++;
            return r;
        }
        if (c->seen[v]++)
            c->dup++;
        c->received++;
    }
}

static int fn_chan_conservation(void *p)
{
    struct cons *c = p;
    TCHECK_EQ(tr_chan_create(&c->ch, sizeof(int), 3, 0), 0);
    tr_task *prod[CP_PRODUCERS], *cons[3];
    void *args[CP_PRODUCERS][2];
    for (int i = 0; i < 3; i++)
        TCHECK_EQ(tr_spawn(NULL, &cons[i], fn_consumer, c, NULL), 0);
    for (int i = 0; i < CP_PRODUCERS; i++) {
        args[i][0] = c;
        args[i][1] = (void *)(intptr_t)i;
        TCHECK_EQ(tr_spawn(NULL, &prod[i], fn_producer, args[i], NULL), 0);
    }
    for (int i = 0; i < 50; i++)
        TCHECK_EQ(tr_yield(), 0);
    TCHECK_EQ(tr_cancel(cons[0]), 0);
    for (int i = 0; i < CP_PRODUCERS; i++)
        TCHECK_EQ(tr_join(prod[i], NULL), 0);
    TCHECK_EQ(tr_chan_close(c->ch), 0);
    int res[3];
    for (int i = 0; i < 3; i++)
        TCHECK_EQ(tr_join(cons[i], &res[i]), 0);
    TCHECK_EQ(res[0], -ECANCELED);
    TCHECK_EQ(c->cut, 1);
    TCHECK_EQ(c->dup, 0);
    TCHECK_EQ(c->received, CP_PRODUCERS * CP_EACH);
    for (int i = 0; i < CP_PRODUCERS * CP_EACH; i++)
        TCHECK_EQ(c->seen[i], 1);
    TCHECK_EQ(tr_chan_destroy(c->ch), 0);
    return 0;
}

static void test_sync_chan_conservation(void **state)
{
    (void)state;
    static struct cons c;
    memset(&c, 0, sizeof(c));
    assert_int_equal(tt_run(fn_chan_conservation, &c), 0);
}

static void test_sync_chan_args(void **state)
{
    (void)state;
    struct tr_chan *ch = NULL;
    assert_int_equal(tr_chan_create(&ch, sizeof(int), 4, 0x80), -EINVAL); /* unknown flag */
    assert_int_equal(tr_chan_create(&ch, sizeof(int), 4, TR_CHAN_SHARED), 0);
    assert_int_equal(tr_chan_destroy(ch), 0);
    assert_int_equal(tr_chan_create(&ch, 0, 4, 0), -EINVAL);
    assert_int_equal(tr_chan_create(NULL, 4, 4, 0), -EINVAL);
    assert_int_equal(tr_chan_create(&ch, 1 << 20, SIZE_MAX / 2, 0), -ENOMEM);
    assert_int_equal(tr_chan_create(&ch, sizeof(int), 4, 0), 0);
    int v = 0;
    assert_int_equal(tr_chan_send(ch, &v), -EPERM); /* outside a task */
    assert_int_equal(tr_chan_destroy(NULL), -EINVAL);
    assert_int_equal(tr_chan_destroy(ch), 0);
}

/* ------------------------------------------------- ends and shutdowns */

/* A task that returns holding a mutex has it handed on by the engine: the
 * waiter gets it (nothing hangs), counted. A mutex just handed over cannot
 * be initialised again (-EBUSY). */
static struct tr_mutex g_m;

static int fn_lock_and_return(void *p)
{
    (void)p;
    TCHECK_EQ(tr_mutex_lock(&g_m), 0);
    TCHECK_EQ(tr_yield(), 0); /* the other one queues for it */
    return 0;                 /* without unlocking */
}

static int fn_lock_wait(void *p)
{
    int *got = p;
    TCHECK_EQ(tr_mutex_lock(&g_m), 0);
    *got = 1;
    TCHECK_EQ(tr_mutex_unlock(&g_m), 0);
    return 0;
}

static int fn_mutex_left(void *p)
{
    (void)p;
    TCHECK_EQ(tr_mutex_init(&g_m), 0);
    int got = 0;
    tr_task *a, *b;
    TCHECK_EQ(tr_spawn(NULL, &a, fn_lock_and_return, NULL, NULL), 0);
    TCHECK_EQ(tr_spawn(NULL, &b, fn_lock_wait, &got, NULL), 0);
    TCHECK_EQ(tr_join(a, NULL), 0);
    TCHECK_EQ(tr_join(b, NULL), 0);
    TCHECK_EQ(got, 1);
    TCHECK_EQ(tstats().mutexes_left, 1);
    TCHECK(g_m._owner == NULL);
    TCHECK_EQ(tr_mutex_lock(&g_m), 0);
    TCHECK_EQ(tr_mutex_init(&g_m), -EBUSY); /* held: not initialised again */
    TCHECK_EQ(tr_mutex_unlock(&g_m), 0);
    TCHECK_EQ(tr_mutex_init(&g_m), 0);
    return 0;
}

static void test_sync_mutex_left_by_a_task_is_handed_on(void **state)
{
    (void)state;
    assert_int_equal(tt_run(fn_mutex_left, NULL), 0);
}

/* Mutexes unlocked in any order (the unlock's fast path is the last one
 * taken): each is free after its unlock, and a task that returns holding
 * the others has exactly those handed on. */
static struct tr_mutex g_ms[4];

static int fn_hold_the_rest(void *p)
{
    (void)p;
    for (int i = 0; i < 4; i++)
        TCHECK_EQ(tr_mutex_lock(&g_ms[i]), 0);
    TCHECK_EQ(tr_mutex_unlock(&g_ms[1]), 0); /* from the middle */
    TCHECK_EQ(tr_mutex_unlock(&g_ms[0]), 0); /* the first one taken */
    TCHECK_EQ(tr_mutex_unlock(&g_ms[1]), -EPERM);
    return 0; /* holding 2 and 3 */
}

static int fn_mutex_any_order(void *p)
{
    (void)p;
    for (int i = 0; i < 4; i++)
        TCHECK_EQ(tr_mutex_init(&g_ms[i]), 0);
    /* Taken 0..3, let go 2, 0, 3, 1: the last one taken, then neither. */
    for (int i = 0; i < 4; i++)
        TCHECK_EQ(tr_mutex_lock(&g_ms[i]), 0);
    static const int order[4] = {2, 0, 3, 1};
    for (int k = 0; k < 4; k++) {
        TCHECK_EQ(tr_mutex_unlock(&g_ms[order[k]]), 0);
        TCHECK(g_ms[order[k]]._owner == NULL);
        TCHECK_EQ(tr_mutex_unlock(&g_ms[order[k]]), -EPERM);
        for (int j = k + 1; j < 4; j++)
            TCHECK(g_ms[order[j]]._owner == tr_self());
    }
    tr_task *t;
    TCHECK_EQ(tr_spawn(NULL, &t, fn_hold_the_rest, NULL, NULL), 0);
    TCHECK_EQ(tr_join(t, NULL), 0);
    TCHECK_EQ(tstats().mutexes_left, 2);
    for (int i = 0; i < 4; i++) {
        TCHECK(g_ms[i]._owner == NULL);
        TCHECK_EQ(tr_mutex_trylock(&g_ms[i]), 0);
    }
    for (int i = 0; i < 4; i++)
        TCHECK_EQ(tr_mutex_unlock(&g_ms[i]), 0); /* the first one taken first */
    return 0;
}

static void test_sync_mutex_unlock_any_order(void **state)
{
    (void)state;
    assert_int_equal(tt_run(fn_mutex_any_order, NULL), 0);
}

/* A shutdown while a condition waiter takes its mutex back from a holder
 * that ignores -ECANCELED: the kill rung ends both (the taking back is
 * never cut short, and must not hang the shutdown). */
static struct tr_cond g_cv;

static int g_waiter_res = 1, g_waiter_ended;

static int fn_stubborn_holder(void *p)
{
    (void)p;
    TCHECK_EQ(tr_mutex_lock(&g_m), 0);
    TCHECK_EQ(tr_cond_signal(&g_cv), 0); /* the waiter now waits for g_m */
    for (long i = 0; i < 100000000L; i++)
        (void)tr_yield(); /* ignores its cancellation: only killed (bounded all the same) */
    return 0;
}

static int fn_cond_waiter_simple(void *p)
{
    (void)p;
    TCHECK_EQ(tr_mutex_lock(&g_m), 0);
    g_waiter_res = tr_cond_wait(&g_cv, &g_m);
    if (g_waiter_res == 0)
        TCHECK_EQ(tr_mutex_unlock(&g_m), 0);
    g_waiter_ended = 1;
    return 0;
}

/* p: the holder's spawn options (LATE or not). */
static int fn_shutdown_main(void *p)
{
    TCHECK_EQ(tr_mutex_init(&g_m), 0);
    TCHECK_EQ(tr_cond_init(&g_cv), 0);
    g_waiter_res = 1;
    g_waiter_ended = 0;
    tr_task *w, *h;
    TCHECK_EQ(tr_spawn(NULL, &w, fn_cond_waiter_simple, NULL, NULL), 0);
    settle();
    TCHECK(tr__task_parked_on(w, TR_WAIT_COND));
    TCHECK_EQ(tr_spawn(NULL, &h, fn_stubborn_holder, NULL, p), 0);
    settle();
    TCHECK(tr__task_parked_on(w, TR_WAIT_MUTEX));
    TCHECK_EQ(tr_engine_shutdown(tr_self_engine()), 0);
    return 0;
}

/* The holder ignores -ECANCELED and is killed (grace and kill at once);
 * its mutex is handed on at its teardown, so the waiter, never resumed
 * with its cancellation before, is not killed: it takes the mutex back
 * and ends on its own (DESIGN section 4). It was killed with the holder,
 * its signal lost, when the taking back counted as delivered. */
static void test_sync_shutdown_kills_cond_retake(void **state)
{
    (void)state;
    struct tr_stats st = tt_run_to_kill(fn_shutdown_main, NULL);
    assert_int_equal(st.tasks_killed, 1);
    assert_int_equal(g_waiter_ended, 1);
    assert_int_equal(g_waiter_res, 0); /* signalled: the real result */
}

/* A LATE holder is cancelled only once the others have ended: it would
 * never hand the mutex on while the waiter lives, so the kill rung ends
 * the waiter's taking back (the shutdown is bounded), then the holder. */
static void test_sync_shutdown_kills_retake_from_late_holder(void **state)
{
    (void)state;
    struct tr_spawn_opts late = {.flags = TR_SPAWN_LATE};
    struct tr_stats st = tt_run_to_kill(fn_shutdown_main, &late);
    assert_int_equal(st.tasks_killed, 2);
    assert_int_equal(g_waiter_ended, 0);
}

/* The holder is the waiter's group owner and waits for it in
 * tr_group_wait, holding the mutex: it never lets go before the waiter
 * ends, so the kill rung ends the waiter's taking back, and then the
 * owner's wait is over (it hung before). */
static int fn_child_cond_waiter(void *p)
{
    (void)p;
    TCHECK_EQ(tr_mutex_lock(&g_m), 0);
    g_waiter_res = tr_cond_wait(&g_cv, &g_m);
    g_waiter_ended = 1;
    return 0;
}

static int fn_owner_holds_and_waits(void *p)
{
    (void)p;
    TCHECK_EQ(tr_mutex_init(&g_m), 0);
    TCHECK_EQ(tr_cond_init(&g_cv), 0);
    g_waiter_res = 1;
    g_waiter_ended = 0;
    struct tr_group g;
    TCHECK_EQ(tr_group_init(&g), 0);
    TCHECK_EQ(tr_group_spawn(&g, fn_child_cond_waiter, NULL, NULL), 0);
    settle();
    TCHECK_EQ(tr_mutex_lock(&g_m), 0);
    TCHECK_EQ(tr_cond_signal(&g_cv), 0); /* the child now waits for g_m */
    TCHECK_EQ(tr_engine_shutdown(tr_self_engine()), 0);
    (void)tr_group_wait(&g); /* holding g_m */
    TCHECK_EQ(tr_mutex_unlock(&g_m), 0);
    return 0;
}

static void test_sync_shutdown_ends_retake_from_waiting_owner(void **state)
{
    (void)state;
    struct tr_stats st = tt_run_to_kill(fn_owner_holds_and_waits, NULL);
    assert_int_equal(st.tasks_killed, 1);
    assert_int_equal(g_waiter_ended, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sync_sem_fifo_and_g9),
        cmocka_unit_test(test_sync_sem_grant_beats_cancel),
        cmocka_unit_test(test_sync_sem_deadline),
        cmocka_unit_test(test_sync_mutex),
        cmocka_unit_test(test_sync_mutex_owner_cancelled),
        cmocka_unit_test(test_sync_cond),
        cmocka_unit_test(test_sync_event),
        cmocka_unit_test(test_sync_misuse),
        cmocka_unit_test(test_sync_dump_names_the_primitive),
        cmocka_unit_test(test_sync_chan_buffered),
        cmocka_unit_test(test_sync_chan_rendezvous),
        cmocka_unit_test(test_sync_chan_close),
        cmocka_unit_test(test_sync_chan_conservation),
        cmocka_unit_test(test_sync_chan_args),
        cmocka_unit_test(test_sync_mutex_left_by_a_task_is_handed_on),
        cmocka_unit_test(test_sync_mutex_unlock_any_order),
        cmocka_unit_test(test_sync_shutdown_kills_cond_retake),
        cmocka_unit_test(test_sync_shutdown_kills_retake_from_late_holder),
        cmocka_unit_test(test_sync_shutdown_ends_retake_from_waiting_owner),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
