/* SPDX-License-Identifier: MIT */
/*
 * inbox.h — messages from other threads and other engines (DESIGN
 * section 9): tr_post, tr_call and what carries them.
 *
 * Each engine has one inbox: a FIFO of message records under a mutex that
 * only senders and the engine's inbox duty take (the duty takes the whole
 * list at once, so a pass pays one lock however many messages came). A
 * sender that finds the engine asleep in its ring wait rings the doorbell:
 * a write to the engine's wakeup eventfd, whose read the ring keeps armed.
 * The doorbell rings only for a sleeping engine; an engine that is running
 * passes sees the inbox at its next one.
 *
 * A sender touches the engine only inside the inbox lock, and
 * tr_engine_destroy takes that lock before it frees anything: a sender
 * finishing its push (the last acknowledgement of a call) can never write
 * into a freed engine.
 *
 * tr_call, in four messages, none of them allocated by the caller:
 *   CALL   the caller's record (on its stack) goes to the target, whose
 *          duty spawns a task for fn(arg) and keeps a "served" record (its
 *          own heap) until the caller acknowledges;
 *   REPLY  the task's end sends the same message record back, with the
 *          result written into the caller's record; the caller's duty
 *          wakes the caller...
 *   ACK    ...and sends the served record back to the target, which frees
 *          it. Until then the target's run does not return: the caller's
 *          cancellation may still reach it.
 *   cancel a CALL still queued in the target's inbox is taken back (the
 *          call never ran); one served already is cancelled by a flag in
 *          the caller's record and a count in the target's inbox that
 *          makes its duty look at the calls it serves. A call whose REPLY
 *          went is never looked at again (its record may be gone), and the
 *          caller waits for the REPLY (G1: the target writes into its
 *          frame), except at its kill rung, which abandons the call: the
 *          caller's stack is never freed, and the target, seeing the mark,
 *          sends nothing back.
 *   A failure REPLY (the target could not run the call) is acknowledged
 *   by the caller's thread directly (a count under the target's lock):
 *   until then the target's run does not return.
 */
#ifndef TR_INBOX_H
#define TR_INBOX_H

#include "task/task.h"

#include <pthread.h>
#include <stdatomic.h>

/* HOOK: a layer above (the offload pool) hands the engine a message that
 * its hook acts on, on the engine's thread, in the inbox duty. */
enum tr__msg_kind { TR_MSG_POST = 1, TR_MSG_CALL, TR_MSG_REPLY, TR_MSG_ACK, TR_MSG_HOOK };

struct tr__call;
struct tr__served;

struct tr__msg {
    struct tr__msg *next;
    uint8_t kind; /* enum tr__msg_kind */
    tr_fn fn;     /* POST */
    void *arg;
    struct tr__call *call;  /* CALL, REPLY */
    struct tr__served *srv; /* REPLY (NULL: the call never ran), ACK */
    void (*hook)(struct tr_engine *e, struct tr__msg *m); /* HOOK */
};

/* A call in flight, in the caller's frame. */
struct tr__call {
    struct tr__wait w;
    struct tr__msg msg; /* CALL out, REPLY back */
    tr_fn fn;
    void *arg;
    tr_engine *target;
    tr_engine *caller_e;     /* read by the target (the owner's task record is not) */
    int result;              /* fn's: written by the target before the REPLY */
    int status;              /* 0: fn ran; -ENOMEM: the target could not run it */
    _Atomic bool cancel_req; /* the caller's call is cut short: the target reads it */
    /* PENDING until the target commits to its REPLY (REPLIED) or the
     * caller's kill rung gives up on it (ABANDONED: the caller's stack is
     * left to it, never freed, and no REPLY comes). One compare-and-swap
     * decides. */
    _Atomic int state;
    bool cancel_sent;
};
enum { TR_CALL_PENDING = 0, TR_CALL_REPLIED, TR_CALL_ABANDONED };

/* A call this engine runs for another, until the caller's ACK. */
struct tr__served {
    struct tr__msg msg; /* the ACK, sent back by the caller's engine */
    struct tr__link link;
    struct tr__call *call; /* valid until replied */
    tr_engine *caller_e;
    tr_task *task;
    tr_fn fn;
    void *arg;
    bool replied, cancelled;
};

struct tr__inbox {
    pthread_mutex_t mu;
    struct tr__msg *head, *tail; /* under mu */
    uint32_t cancels;            /* under mu: calls served whose caller was cut short */
    bool closed;                 /* under mu: POST and CALL refused (-ESHUTDOWN) */
    /* Read without the lock by the duty's check, set under it by senders,
     * cleared under it by the duty. */
    _Atomic bool pending;
    /* Set by the engine before it sleeps in its ring wait, cleared after:
     * a sender that sees it rings the doorbell. */
    _Atomic bool sleeping;
    /* The engine's thread only. */
    struct tr__link served; /* struct tr__served, until acked */
    uint64_t nserved;
    /* Failure REPLYs (the call never ran) whose callers have not read
     * them yet: the callers may still reach us (a cancel). Decremented by
     * the caller's thread, under mu. */
    _Atomic uint64_t unacked_fail;
    uint64_t awaiting; /* tasks of this engine parked for another thread: tr_call, tr_offload */
    uint64_t posts_failed;
    uint64_t last_msg_ns; /* when the duty last found messages (tr__now_ns) */
};

struct tr_engine;
int tr__inbox_init(struct tr_engine *e);
/* tr_engine_destroy: -EBUSY while messages wait or calls are unacked;
 * else waits for a sender still inside the lock, and frees. */
int tr__inbox_close_for_destroy(struct tr_engine *e);
/* Queues a message that is never refused (a HOOK): from any thread. */
void tr__inbox_push_control(struct tr_engine *e, struct tr__msg *m);
/* The shutdown began: POST and CALL are refused from now on. */
void tr__inbox_shut(struct tr_engine *e);
static inline bool tr__inbox_pending(const struct tr_engine *e);
/* The inbox duty: takes the messages and acts on them (spawns, wakes,
 * cancels). */
void tr__inbox_run(struct tr_engine *e);
/* Before the ring wait: false when a message came meanwhile (do not
 * sleep). tr__inbox_awake after the wait. */
bool tr__inbox_sleep(struct tr_engine *e);
void tr__inbox_awake(struct tr_engine *e);
/* A task whose function is this serves a tr_call: its end replies. */
int tr__served_run(void *arg);
void tr__served_ended(struct tr_engine *e, tr_task *t, int result);

#endif /* TR_INBOX_H */
