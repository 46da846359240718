/* SPDX-License-Identifier: MIT */
/*
 * sync_world.h — what work_sync.c (the sync kind: a task group of workers
 * on a world of primitives) and sync_audit.c (its checks) share: the
 * world, its workers, and the books the audits hold the engine to.
 *
 * A world lives on the heap, owned by the round (freed after it): a killed
 * coordinator or worker leaves it whole, so that the audit can still read
 * what each was in the middle of (a killed receiver's buffer, the units a
 * killed holder took).
 */
#ifndef TR_STRESS_SYNC_WORLD_H
#define TR_STRESS_SYNC_WORLD_H

#include "stress.h"

#include <errno.h>

#define SW_MAXW 12    /* workers of a world */
#define SW_MAXP 4     /* producers of a world */
#define SW_MAXSEQ 256 /* messages one producer sends, at most */

enum sw_role {
    SR_CONS = 0, /* receives until the channel is closed and drained */
    SR_PROD,     /* sends numbered messages; the last one closes the channel */
    SR_SEM,      /* takes and gives back semaphore units */
    SR_MTX,      /* a counter updated under the mutex, across a yield */
    SR_CONDW,    /* waits on the condition until the world's "go" */
    SR_SIGNAL,   /* signals and broadcasts the condition, then "go" */
    SR_EVW,      /* waits on the event */
    SR_EVT,      /* sets and clears the event, until the final set */
    SR_FAIL,     /* a few steps, then a real failure */
    SR_POKE,     /* cancels the group or the coordinator's scope, moves its
                    deadline, and tries the calls a non-owner may not make */
    SR__COUNT
};

extern const char *const sw_role_names[SR__COUNT];

/* A message's status bits (sworld.st). */
#define MS_SENT 0x1u     /* its send returned 0 */
#define MS_FAILED 0x2u   /* its send returned an error: nothing was sent */
#define MS_RECV 0x4u     /* a receive returned it */
#define MS_LEFT 0x8u     /* still in the channel at the audit */
#define MS_KILLBUF 0x10u /* in the buffer of a receiver the kill rung ended */

struct smsg {
    uint32_t world, sender, seq, tag;
};

/* One worker: its heap record (the kill rung frees its stack, not this). */
struct sworker {
    struct sworld *w;
    uint8_t role, idx, pidx; /* pidx: a producer's index */
    bool spawned, started, returned;
    tr_task *t; /* from its start: records are recycled, never freed */
    uint64_t id;
    int result;
    /* what it is in the middle of, for the audit of a killed one */
    bool in_recv, in_send, in_cond, holds_mtx;
    bool prod_closed; /* a producer counted itself out of prod_live */
    unsigned held;    /* semaphore units */
    uint32_t sending; /* the seq of the send in progress (in_send) */
    struct smsg rbuf, sbuf;
    uint32_t last[SW_MAXP]; /* 1 + the last seq received from each producer */
};

/* A child's ending, in completion order, with what the coordinator's
 * context could have done to the group by then (group_check replays it
 * against tr_group_failures): known, the group was cancelling for sure
 * (or a shutdown had begun: its cuts fail nothing); maybe, it could have
 * been (an enclosing deadline had passed, its timer perhaps not yet
 * fired). */
struct sw_end {
    uint8_t w;
    int res;
    bool known, maybe;
};

struct sworld {
    struct sworld *next;
    struct round *r;
    uint32_t no;
    uint64_t seed;
    bool audited;    /* its world audit ran (coordinator or last hook) */
    bool stubborn;   /* its workers go on, shielded, when a shutdown cuts them */
    bool group_done; /* tr_group_wait returned and was checked */
    tr_task *owner;  /* the coordinator */

    struct tr_sem sem;
    unsigned k;         /* its units */
    unsigned held_live; /* units the workers know they hold */

    struct tr_mutex mtx;
    tr_task *holder_t; /* the model's holder */
    uint64_t holder_id;
    uint64_t counter, counter_done, handed_from_dead;

    struct tr_cond cond;
    bool go;
    uint64_t cond_granted, cond_ret0;

    struct tr_event ev;
    bool ev_final;
    uint64_t ev_sets;

    struct tr_chan *ch;
    size_t cap;
    bool closed, epipe_recv;
    unsigned nprod, prod_live;
    uint32_t next_seq[SW_MAXP];
    uint32_t max_recv[SW_MAXP]; /* 1 + the largest seq received */
    uint8_t st[SW_MAXP][SW_MAXSEQ];
    uint64_t nsent, nrecv, nleft, nkillbuf;

    /* the group and the coordinator's scope that encloses it */
    struct tr_group g;
    bool scoped;
    struct tr_scope sc;
    struct so_task mt;
    struct so_scope sm;
    bool gcancel_known; /* tr_group_cancel returned 0, or a spawn -ECANCELED */
    struct sw_end ends[SW_MAXW];
    unsigned nends;
    struct tr_failure snap[TR_GROUP_FAILURES]; /* a tr_group_failures while live */
    size_t nsnap;
    bool have_snap;

    struct sworker wk[SW_MAXW];
    unsigned nw;
};

static inline bool sw_is_cut(long rc)
{
    return rc == -ECANCELED || rc == -ETIMEDOUT;
}

/* ------------------------------------------------------------ sync_roles.c */

/* What the worker me does, by its role; its result (0, a real failure,
 * or the cut that ended it). */
int sw_role_run(struct tctx *c, struct sworker *me);
/* A short sleep or a yield, checked (a worker is in no scope of its own
 * then: never -ETIMEDOUT, -ECANCELED only when cancelled). */
int sw_pause(struct tctx *c);
/* The coordinator's too: close the channel (0, or -EPIPE once closed),
 * a signal or broadcast (the grants counted), a set of the event, a look
 * at the live group's failures, a deadline for the coordinator's scope. */
void sw_close_chan(struct sworld *w, const char *who);
void sw_cond_signal(struct sworld *w, bool all);
void sw_ev_set(struct sworld *w);
void sw_failures_snapshot(struct sworld *w);
uint64_t sw_pick_deadline(uint64_t now);

/* ------------------------------------------------------------ sync_audit.c */

uint32_t sw_tag(const struct sworld *w, uint32_t p, uint32_t seq);
bool sw_task_alive(const tr_task *t, uint64_t id);
unsigned sw_qlen(const struct tr__prim *p);
bool sw_msg_valid(const struct sworld *w, const struct smsg *m);
/* A message a receive returned to me: valid, sent (or being sent), not
 * received before, after what me got from its sender. */
void sw_got_msg(struct sworld *w, struct sworker *me, const struct smsg *m);
/* After tr_group_wait returned wr: every child ended (G10), and the
 * failures and wr as the replay of the endings allows. */
void sw_group_check(struct sworld *w, int wr, uint64_t now_after);
/* Inside a task, once every worker has ended: conservation of messages
 * (the leftovers taken with tr_chan_try_recv, then the channel
 * destroyed), of semaphore units, the mutex free and its counter whole,
 * the condition's grants. */
void sw_world_audit(struct sworld *w, const char *where);
/* An audited world: what its killed workers held goes to the round's
 * books (sync_check_stats), then it is unlinked and freed. */
void sw_world_free(struct sworld *w);

#endif
