/* SPDX-License-Identifier: MIT */
/*
 * fuzz_api.h — what the two files of the API fuzzer share: fuzz_api.c (the
 * target, the interpreter, tasks, I/O, scopes; its header comment is the
 * reference of the bytecode) and fuzz_sync.c (the ops on primitives and
 * task groups, their model and their audit).
 */
#ifndef TR_FUZZ_API_H
#define TR_FUZZ_API_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "scope_oracle.h" /* tools/stress: the model of cancel scopes */
#include "taskring.h"
#include "tr_internal.h" /* the audit: internal_inflight, SQ/CQ state */

#define FZ_MAX_WORKERS 16 /* spawned by programs, hooks' spawns included */
#define FZ_MAX_HOOKS 8
#define FZ_MAX_OPS 64 /* per task (per hook) */
#define FZ_MAX_INPUT 1024
#define FZ_BODY_MAX 48
#define FZ_HOOK_BODY_MAX 32
#define FZ_BACKSTOP_NS (3ull * 1000 * 1000)
#define FZ_IO_MAX 32
#define FZ_BUF 48
#define FZ_NCTX (2 + FZ_MAX_WORKERS + FZ_MAX_HOOKS + 2)
#define FZ_MAX_SCOPES 6 /* nested per task */
#define FZ_HOUR (3600ull * 1000 * 1000 * 1000)
#define FZ_NCHAN 2 /* channels the programs share */
_Static_assert(FZ_MAX_SCOPES <= SO_MAX_DEPTH, "the scope model holds a whole chain");

enum { K_DRIVER, K_WORKER, K_HOOK, K_AFTER };
enum { H_EMPTY = 0, H_OWNED, H_JOINING, H_GONE };

/* Errors a call may return besides -ECANCELED. */
#define E_BADF 0x1u
#define E_NOTSOCK 0x2u
#define E_SPIPE 0x4u
#define E_AGAIN 0x8u
#define E_INVAL 0x10u

/* A channel message: numbered per channel, sent by program context
 * sender; tag ties the three to the input. */
struct fz_msg {
    uint32_t ch, sender, seq, tag;
};

/* A child's ending, in completion order, and what its owner's context
 * could have done to the group by then (fuzz_sync.c replays them against
 * tr_group_failures): known, the group was cancelling for sure or a
 * shutdown had begun; maybe, it could have been. */
struct fz_end {
    uint8_t ctx;
    int res;
    bool known, maybe;
};

enum { FG_NONE = 0, FG_LIVE, FG_DONE, FG_GONE /* its owner ended without waiting */ };

/* A program context's part in the primitives and groups (fuzz_sync.c). */
struct fz_sctx {
    tr_task *t; /* its task from its start (a hook's: the at-shutdown task) */
    uint64_t id;
    bool late;     /* spawned TR_SPAWN_LATE */
    unsigned held; /* semaphore units */
    bool in_acq, in_cond, in_send, in_recv;
    int in_chan; /* the channel of its send or receive in progress, or -1 */
    uint32_t sending;
    struct fz_msg sbuf, rbuf;         /* rbuf: a killed receiver's shows its message */
    uint32_t last[FZ_NCHAN][FZ_NCTX]; /* 1 + the last seq it received from each sender */
    /* its group, as an owner */
    struct tr_group g;
    int gstate;    /* FG_* */
    bool in_gwait; /* in tr_group_wait: done for the engine before it returns (a cut
                      wait passes through the scheduler after it published the results) */
    unsigned init_depth;
    bool gcancel_known; /* tr_group_cancel returned 0, or a spawn -ECANCELED */
    uint8_t kids[FZ_MAX_WORKERS];
    unsigned nkids;
    struct fz_end ends[FZ_MAX_WORKERS];
    unsigned nends;
    struct tr_failure snap[TR_GROUP_FAILURES]; /* a tr_group_failures while live */
    size_t nsnap, nfinal;
    bool have_snap;
    int gowner; /* as a child: its owner's context, or -1 */
};

/* One program's interpreter state: a task's, or one hook's. */
struct pctx {
    const uint8_t *p;
    size_t len, pos;
    int kind;
    int idx;    /* in S.ctx */
    int slot;   /* its handle in S.h, or -1 */
    int shield; /* its own shield depth (hooks share S.hook_shield) */
    int *shieldp;
    int ops;
    bool started, returned;
    int ret;
    bool born_in_shutdown;
    bool final_born; /* spawned in the FINAL phase (by a hook), or by such a task */
    uint8_t pattern; /* the byte it writes: 0x40..0x5f */
    /* its scopes: sc[i] (the engine's record) and sm[i] (the model's) at
     * depth i + 1; leave: end with them entered (G10) */
    struct tr_scope sc[FZ_MAX_SCOPES];
    struct so_scope sm[FZ_MAX_SCOPES];
    struct so_task mt;
    bool leave;
    struct fz_sctx y;
};

struct handle {
    tr_task *t;
    int state;
    struct pctx *target;
    struct pctx *joiner; /* while H_JOINING */
};

struct fz_state {
    tr_engine *e;
    int p0[2], p1[2], sv[2], mfd;
    uint64_t wrote[4], got[4];
    struct pctx ctx[FZ_NCTX];
    int nctx;
    struct handle h[FZ_MAX_WORKERS];
    int nworkers;
    int nhooks;
    int hook_shield;
    bool hooks_spawned; /* a hook spawned a task */
    tr_task *driver, *backstop;
    uint8_t *buf;
    size_t len;
    uint64_t etimedout;   /* -ETIMEDOUT results the programs saw */
    uint64_t scopes_left; /* scopes left entered on purpose */
};
extern struct fz_state S;

/* Totals over the run, printed at exit. */
struct fz_totals {
    uint64_t inputs, scopes, etimedout, moves, cancels, left, exits_t, exits_c;
    uint64_t sync_ops, msgs, groups, gfails, abandoned, killbuf;
};
extern struct fz_totals T;

extern bool trace;

__attribute__((noreturn, format(printf, 4, 5))) void
fz_fail(const char *file, int line, const char *expr, const char *fmt, ...);

#define FZ_CHECK(c, ...)                                                                           \
    do {                                                                                           \
        if (__builtin_expect(!(c), 0))                                                             \
            fz_fail(__FILE__, __LINE__, #c, __VA_ARGS__);                                          \
    } while (0)

#define TRACE(...)                                                                                 \
    do {                                                                                           \
        if (trace)                                                                                 \
            fprintf(stderr, __VA_ARGS__);                                                          \
    } while (0)

const char *kind_name(int k);
uint8_t next(struct pctx *c);
struct tr_stats stats_now(void);
bool shields_broken(void);
struct so_pre fz_pre(const struct pctx *c);
void scope_check(struct pctx *c, const char *what, long r, const struct so_pre *pre);
void check_res(struct pctx *c, const char *what, long r, long lo, long hi, unsigned errs,
               const struct so_pre *pre);
struct pctx *new_ctx(int kind, const uint8_t *p, size_t len);
int worker_main(void *arg);

/* ------------------------------------------------------------ fuzz_sync.c */

enum { FY_SEM, FY_MUTEX, FY_COND, FY_EVENT, FY_CHAN, FY_GROUP, FY__COUNT };

/* Before each input. */
void fz_sync_reset(void);
void fz_group_reset(void);
/* fuzz_sync.c's helpers, for fuzz_group.c too. */
bool fz_is_cut(long r);
bool fz_alive(const tr_task *t, uint64_t id); /* its record, that task, alive */
bool fz_killed(const struct pctx *c);         /* started, never returned, not alive */
const char *fz_who(const struct pctx *c);     /* "kind idx" (four buffers in turn) */
/* fuzz_group.c: one GROUP op; the counters after the run. */
void fz_group_op(struct pctx *c);
void fz_group_after_run(const struct tr_stats *st);
/* At a context's start (its task known) and at its end (a child's ending
 * recorded, an owner's group left behind). */
void fz_sync_start(struct pctx *c);
void fz_sync_end(struct pctx *c, int v);
/* One op of kind FY_* with its argument bytes. */
void fz_sync_op(struct pctx *c, int kind);
/* c's program is over: with FUZZ_ABANDON=0 its live group is waited for
 * (else it ends without waiting: the engine waits, groups_abandoned). */
void fz_sync_prog_end(struct pctx *c);
/* Whether tr_scope_exit of c's innermost scope must be refused: a live
 * group was initialised in it. */
bool fz_sync_scope_pinned(const struct pctx *c);
/* After the run: a run of one more task that takes what the channels
 * hold and counts the units and the mutex, then every conservation check
 * and the engine's group and mutex counters. */
void fz_sync_after_run(void);
/* G7 outside any task. */
void fz_sync_outside(void);

#endif
