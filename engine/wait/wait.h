/* SPDX-License-Identifier: MIT */
/*
 * wait.h — wait records (every blocking call parks in one), wait queues,
 * timer records and the heap that orders them, the clocks.
 */
#ifndef TR_WAIT_H
#define TR_WAIT_H

#include "base/base.h"

/* ---------------------------------------------------------------- waits */

/*
 * One wait per blocking call: its kind (what the task waits for and how to
 * end that wait) and its record in the caller's frame (the task's stack).
 * The engine never switches on what kind of wait it is: cancellation, the
 * kill rung, the reap of a killed task and the dump all go through the
 * kind's functions. A new kind of wait is one new kind record.
 *
 * What a waker or a canceller needs sits in the task, not in the frame
 * (t->wait_kind, t->wait_res, t->wait_slot, t->sleep_tm): cancelling
 * 100k parked tasks then touches 100k task records, not 100k cold stack
 * pages (a TLB and a cache miss each, paid again when the task resumes).
 * The record keeps what only the kind's own code reads (queue links, the
 * dump's details), and its owner.
 *
 * Lifetime: tr__task_park links the record to its task (t->wait); it stays
 * linked while the task is PARKED and READY after its wake-up, and is
 * unlinked when the task resumes in the call that owns it, or when the
 * engine reaps a killed task. So a record is never referenced after its
 * frame is gone (G10).
 */
struct tr__wait;
struct tr__wait_kind {
    const char *name; /* the dump's state: "parked-op", "sleeping", ... */
    /* t's call is cut short (tr__cut_short says so): end its wait, at
     * once (unhook and tr__task_wake with -ECANCELED) or as soon as the
     * kernel allows (an op's ASYNC_CANCEL; its CQE wakes the owner). */
    void (*cancel)(tr_engine *e, tr_task *t);
    /* The kill rung: end the wait whatever shields say. NULL: as cancel. */
    void (*kill)(tr_engine *e, tr_task *t);
    /* A killed owner is never resumed: release what the ended wait still
     * holds (an op's slot; a completed fd is closed). NULL: nothing. */
    void (*reap)(tr_engine *e, tr_task *t);
    /* The kill rung must leave t for now (reconsidered at its next pass):
     * ending this wait would lose what the task is about to do for
     * others (a close not yet submitted). NULL: never. */
    bool (*kill_later)(const tr_task *t);
    /* The dump's details after the state, e.g. "op=read fd=7". NULL: none. */
    void (*describe)(const tr_engine *e, const tr_task *t, char *buf, size_t len);
};

struct tr__wait {
    tr_task *owner;
};

/* A ring op's wait record: the slot of its activation (also in
 * t->wait_slot once parked) and, for the dump, the fd it works on. */
struct tr__op_wait {
    struct tr__wait w;
    uint32_t idx;
    int fd;
};

/* The engine's own kinds (one per kind of blocking call). Tests name them
 * TR_WAIT_* (parked_on). */
extern const struct tr__wait_kind tr__wk_op, tr__wk_sleep, tr__wk_join, tr__wk_cancel_all,
    tr__wk_shutdown;
#define TR_WAIT_OP (&tr__wk_op)
#define TR_WAIT_TIMER (&tr__wk_sleep)
#define TR_WAIT_JOIN (&tr__wk_join)
#define TR_WAIT_CANCEL_ALL (&tr__wk_cancel_all)
#define TR_WAIT_SHUTDOWN (&tr__wk_shutdown)
/* The primitives' (structure/sync.c). */
extern const struct tr__wait_kind tr__wk_event, tr__wk_sem, tr__wk_mutex, tr__wk_cond;
#define TR_WAIT_EVENT (&tr__wk_event)
#define TR_WAIT_SEM (&tr__wk_sem)
#define TR_WAIT_MUTEX (&tr__wk_mutex)
#define TR_WAIT_COND (&tr__wk_cond)
extern const struct tr__wait_kind tr__wk_chan_send, tr__wk_chan_recv; /* structure/chan.c */
#define TR_WAIT_CHAN_SEND (&tr__wk_chan_send)
#define TR_WAIT_CHAN_RECV (&tr__wk_chan_recv)
extern const struct tr__wait_kind tr__wk_group; /* structure/group.c */
#define TR_WAIT_GROUP (&tr__wk_group)

/* ----------------------------------------------------------- wait queues */

/* A FIFO of parked tasks (waitq.c). */
struct tr__waitq {
    struct tr__link head;
};

static inline void tr__waitq_init(struct tr__waitq *q)
{
    tr__list_init(&q->head);
}

static inline bool tr__waitq_empty(const struct tr__waitq *q)
{
    return tr__list_empty(&q->head);
}

/* Parks t in q with a wait of the given kind (whose cancel and kill are
 * tr__waitq_cancel and tr__waitq_kill) until tr__waitq_wake_all. Returns
 * the waker's result, or -ECANCELED when cut short (cancellable only); a
 * killed task never returns. */
int tr__waitq_park(tr_task *t, struct tr__waitq *q, const struct tr__wait_kind *kind,
                   bool cancellable);
/* Wakes every task of q with res, in arrival order; returns how many. */
unsigned tr__waitq_wake_all(struct tr__waitq *q, int res);
void tr__waitq_cancel(tr_engine *e, tr_task *t);
void tr__waitq_kill(tr_engine *e, tr_task *t);
/* t's wait in a queue was parked cancellable. */
bool tr__waitq_cancellable(const tr_task *t);

/* ---------------------------------------------------------------- timers */

/* A timer record in its owner's memory: a sleep's (in the task record), a
 * scope's deadline (in the scope). Armed timers sit in the engine's wheel
 * (timer.c); fire runs from the scheduler (never inside a task) once the
 * deadline has passed, after the timer was disarmed. */
struct tr__timer {
    uint64_t deadline_ns;
    struct tr__link link; /* in its wheel slot's list */
    uint16_t where;       /* its slot (timer.c), TR_TIMER_UNARMED while not armed */
    void (*fire)(tr_engine *e, struct tr__timer *tm);
};
#define TR_TIMER_UNARMED 0xffffu

static inline void tr__timer_init(struct tr__timer *tm,
                                  void (*fire)(tr_engine *, struct tr__timer *))
{
    tm->deadline_ns = 0;
    tr__list_init(&tm->link);
    tm->where = TR_TIMER_UNARMED;
    tm->fire = fire;
}

static inline bool tr__timer_armed(const struct tr__timer *tm)
{
    return tm->where != TR_TIMER_UNARMED;
}

/* --------------------------------------------------------------- timers */

/* The wheel's geometry (timer.c): a tick is 2^TR_TICK_SHIFT ns (16.4 us);
 * TR_WHEEL_LEVELS levels of 64 slots cover 2^36 ticks (13 days); later
 * deadlines wait in one overflow list. */
#define TR_TICK_SHIFT 14
#define TR_WHEEL_BITS 6
#define TR_WHEEL_SLOTS (1u << TR_WHEEL_BITS)
#define TR_WHEEL_LEVELS 6
#define TR_WHEEL_OVERFLOW (TR_WHEEL_LEVELS * TR_WHEEL_SLOTS)

/* The wheel starts at now (called once, by tr_engine_create). */
void tr__timers_init(tr_engine *e);
/* Arms tm (not armed) for deadline_ns (absolute, CLOCK_MONOTONIC). O(1);
 * never fails (the int is for callers that may one day need it). */
int tr__timer_arm(tr_engine *e, struct tr__timer *tm, uint64_t deadline_ns);
/* Moves an armed or unarmed tm to a new deadline. O(1). */
void tr__timer_move(tr_engine *e, struct tr__timer *tm, uint64_t deadline_ns);
/* Disarms an armed timer. */
void tr__timer_disarm(tr_engine *e, struct tr__timer *tm);
/* Fires every timer whose deadline has passed; returns how many. */
unsigned tr__timer_expire(tr_engine *e, uint64_t now_ns);
/* Something may be due at now_ns: tr__timer_expire has work (a slot to
 * fire or cascade). False says for sure there is none. */
#define tr__timers_due(e, now_ns) (((now_ns) >> TR_TICK_SHIFT) >= (e)->tm.next_due)
/* Offers drop every armed timer, in wheel order, until it returns false
 * (then false); drop may disarm the timer it is given, and nothing else.
 * True when every timer was offered. */
bool tr__timers_drop_while(tr_engine *e, bool (*drop)(tr_engine *e, struct tr__timer *tm));
/* Nanoseconds until the nearest deadline, or UINT64_MAX when none. */
uint64_t tr__timer_next_ns(const tr_engine *e, uint64_t now_ns);
void tr__timer_free(tr_engine *e);
static inline uint64_t tr__now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* The same clock at tick resolution (1-4 ms), a third of the cost: only
 * for figures that are shown, never for deadlines. */
/* How far CLOCK_MONOTONIC_COARSE may lag CLOCK_MONOTONIC: a jiffy (4 ms
 * at HZ=250, 10 ms at HZ=100), with room. */
#define TR_COARSE_LAG_NS 20000000ull

static inline uint64_t tr__now_coarse_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

#endif /* TR_WAIT_H */
