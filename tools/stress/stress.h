/* SPDX-License-Identifier: MIT */
/*
 * stress.h — what the files of taskring-stress share: the limits, the one
 * PRNG, the records of a round (tasks, streams, fds, hooks), and the entry
 * points of each file. The tool itself is described in main.c.
 *
 * Files, one concern each:
 *   main.c       the command line, the run's setup, the sequence of rounds
 *   round.c      one round: its plan, its engine (create/run/destroy or
 *                tr_run), the checks after it, its summary
 *   audit.c      the checks after a round: the engine's books against
 *                ours, streams, fds, the signal mask
 *   orch.c       the round's orchestrator and the signals that end it
 *   watchdog.c   the progress line each second and the hang detector
 *   tasks.c      task records, spawning, joining, the dispatch on kind
 *   fdtable.c    the round's fd table and buffer pool
 *   hooks.c      tr_at_shutdown hooks
 *   util.c       the streams' byte pattern, names, the violation record
 *   work_*.c     the workload kinds: timers, files, streams, sockets,
 *                the cancellation kinds (control) and cancel scopes
 *                (work_scope.c, checked against scope_oracle.h), task
 *                groups and primitives (work_sync.c, sync_world.h)
 *   sync_roles.c the sync kind's workers, one function per role
 *   sync_audit.c the sync kind's checks: messages, units, the mutex,
 *                the condition, the group's failures (G9, G10)
 *
 * Only the engine's thread touches a round and the PRNG; the progress
 * thread reads the atomic counters and nothing else (but the stuck
 * engine's dump, see watchdog.c).
 */
#ifndef TR_STRESS_H
#define TR_STRESS_H

#include "scope_oracle.h"
#include "taskring.h"
#include "tr_internal.h"

#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

/* ------------------------------------------------------------- limits */

#define MAX_LIVE 4800     /* the tool's tasks alive at once */
#define FD_SOFT 250       /* fds the workload may hold at once (admission) */
#define FD_HARD 1024      /* the table's size: never reached under FD_SOFT */
#define BUF_SZ 16384      /* stream and file buffers */
#define MAX_STREAMS 20000 /* per round */
#define MAX_HOOKS 24      /* per round */
#define MAX_DEPTH 3       /* spawn depth below the orchestrator */
#define WATCHDOG_S 60     /* a round longer than this is a hang */
#define MS (1000000ull)
#define MAX_TASK_HOOKS 16 /* registered by tasks; hooks register up to MAX_HOOKS */
#define SC_SLOTS 64       /* scopes published for other tasks to cancel or move */

/* ------------------------------------------------------------- globals */

extern uint64_t g_rng; /* the one PRNG: only the engine thread draws */
extern uint64_t g_seed;
extern bool g_verbose;
extern char g_dir[64];     /* our directory under /tmp */
extern bool g_tmpfile_ok;  /* O_TMPFILE works in g_dir */
extern uint64_t g_t_start; /* the run's start */
extern int g_devnull;      /* for tr_engine_dump */

/* Read by the progress thread. */
extern _Atomic uint64_t g_round, g_tasks, g_ops, g_cancels, g_shutdowns, g_signals;
extern _Atomic uint64_t g_scopes, g_expiries, g_moves, g_scancels; /* work_scope.c */
extern _Atomic uint64_t g_worlds, g_groups, g_msgs, g_gfail;       /* work_sync.c */
extern _Atomic uint64_t g_round_start;                             /* ns; 0 between rounds */
extern _Atomic int g_stop;
extern _Atomic(tr_engine *) g_engine; /* the current round's engine (for the watchdog) */

/* ------------------------------------------------------------- PRNG */

/* splitmix64's finaliser. */
static inline uint64_t mix64(uint64_t z)
{
    z += 0x9e3779b97f4a7c15ull;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static inline uint64_t rnd(void)
{
    uint64_t z = g_rng;
    g_rng += 0x9e3779b97f4a7c15ull;
    return mix64(z);
}

static inline uint64_t rbelow(uint64_t n)
{
    return n ? rnd() % n : 0;
}

static inline bool pct(unsigned p)
{
    return rbelow(100) < p;
}

/* Byte `off` of the stream with this seed, n of them, into p. */
void pat_fill(uint64_t seed, uint64_t off, uint8_t *p, size_t n);

/* Returns n when p matches the pattern, else the index of the first
 * mismatching byte. */
size_t pat_check(uint64_t seed, uint64_t off, const uint8_t *p, size_t n);

/* ------------------------------------------------------------- time */

static inline uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

void sleep_ms(unsigned ms);

/* One more op for the progress line. */
static inline void opc(void)
{
    atomic_fetch_add_explicit(&g_ops, 1, memory_order_relaxed);
}

/* ------------------------------------------------------------- records */

/* What a task of the tool does (tasks.c dispatches on it). */
enum kind {
    K_ORCH = 0, /* the round's orchestrator (tr_run's main) */
    K_SIG,      /* sends the round's signals */
    K_TIMER,    /* sleeps, nops, yields, timeout ops, spawns, hooks */
    K_FILE,     /* temp file: openat, write, fsync, read back, close */
    K_STREAM,   /* makes a stream, spawns its writer and reader, supervises */
    K_WRITER,
    K_READER,
    K_ACCEPTOR, /* accepts on the round's listener, reads until EOF */
    K_CLIENT,   /* connects to the round's listener, sends, closes */
    K_SUPER,    /* spawns children with handles, cancels some, joins all */
    K_CALL,     /* tr_cancel_all */
    K_SELF,     /* cancels itself; checks G4 and G7 */
    K_STUB,     /* ignores cancellation inside shields: only Kill ends it */
    K_LATE,     /* TR_SPAWN_LATE: I/O after the stop, checks the LATE order */
    K_SPAWNCHK, /* spawned during the shutdown: must start cancelled */
    K_SCOPE,    /* nested cancel scopes with deadlines, moved and cancelled */
    K_SYNC,     /* a task group of workers on a world of primitives (work_sync.c) */
    K_SYNCW,    /* one of those workers, a child of the group */
    K__COUNT
};

extern const char *const kind_names[K__COUNT];

/* A task record's life: spawned, then its function runs, then it returns.
 * A record still short of TS_RETURNED after the round belongs to a task
 * that was killed (or never ran). */
enum task_state { TS_SPAWNED = 0, TS_RUNNING, TS_RETURNED };

/* One end of a stream: not started, running, or ended clean (the writer
 * sent all it planned / the reader saw EOF, uncancelled) or dirty. After
 * the round, SS_RUN means the task was killed there. */
enum stream_state { SS_NEW = 0, SS_RUN, SS_CLEAN, SS_DIRTY };

enum stream_kind { SK_PIPE = 0, SK_UNIX, SK_TCP };
extern const char *const sk_names[3];

struct stream {
    uint64_t seed, planned;
    uint64_t sent;      /* bytes the kernel accepted from the writer */
    uint64_t recvd;     /* bytes the reader got */
    uint64_t drained;   /* bytes read after the round */
    uint32_t w_pending; /* the writer's op in flight (its length), else 0 */
    uint32_t r_pending; /* the reader's */
    int wslot, rslot;   /* fd table slots while the ends are open, else -1 */
    uint8_t kind;       /* enum stream_kind */
    uint8_t wstate;     /* enum stream_state */
    uint8_t rstate;     /* enum stream_state */
    bool eof, abandoned, kept, drained_ok, waitall;
};

/* What an fd of the round's table is: the round's cleanup closes writer
 * ends and the rest first, then drains the reader ends. */
enum fd_role { FR_FREE = 0, FR_OTHER, FR_W, FR_R, FR_LISTEN };

struct fdent {
    int fd;
    uint8_t role; /* enum fd_role */
    int stream;
};

enum hook_kind { HK_AUDIT = 0, HK_PIPE, HK_FILE, HK_SLEEP, HK_SLOW, HK_SPAWN, HK__COUNT };

struct round;
struct sframe; /* work_scope.c: one entered scope of a scope task */
struct sworld; /* sync_world.h: a sync task's primitives, group, workers */
struct sworker;
struct scope_left; /* work_scope.c: scopes left entered on purpose */

struct hctx {
    struct round *r;
    uint8_t kind; /* enum hook_kind */
    bool started, done, in_open;
    uint64_t seed;
    struct hctx *next;
    uint8_t buf[4096];
};

struct tctx {
    struct round *r;
    uint8_t kind;  /* enum kind */
    uint8_t state; /* enum task_state */
    uint8_t depth;
    bool late, in_accept, in_open;
    uint8_t nscope; /* scopes it is inside (a killed task's are left: G10) */
    int resv;       /* fd table slots reserved by this task */
    int stream;
    uint8_t *buf; /* BUF_SZ, from the round's pool */
    struct __kernel_timespec ts;
    struct sockaddr_in sa;
    struct tctx *next_free;
    struct sworker *sw; /* a sync worker's record (K_SYNCW) */
    char path[96];
    uint8_t small[256];
};

struct round {
    unsigned no;
    /* the plan */
    unsigned dur_ms, nsig, gap_ms[3], grace_ms, kill_ms, drain_ms, sq, target, nstub, nlate;
    unsigned ncall;
    uint64_t call_at[3];
    int sig[3];
    bool trrun, thread_sig, preblock, late_sig, hooks_stubborn;
    size_t stack_size;
    uint64_t t0;
    tr_engine *e;

    /* tasks: every record ever allocated (freed after the round), and the
     * records of returned tasks ready for reuse */
    struct tctx **all;
    size_t nall, capall;
    struct tctx *freel;
    uint64_t spawned, returned, ok, cancelled, failed, live_nonlate;
    tr_task *except[2];
    size_t nexcept;
    unsigned cancel_alls, acceptors, calls_done, late_checks, late_live, reruns;
    uint64_t cancels; /* tr_cancel calls that hit, and tasks cancel_all hit */

    /* fds */
    struct fdent fds[FD_HARD];
    int freeslots[FD_HARD];
    int nfree, used, reserved;
    int lslot;
    struct sockaddr_in laddr;
    uint8_t lports[65536 / 8]; /* ports our listeners had: accepted sockets show them */

    /* streams */
    struct stream *st;
    size_t nst;

    /* buffers */
    uint8_t *bfree;
    uint8_t **ball;
    size_t nball, capball;

    /* hooks */
    struct hctx *hooks;
    unsigned hooks_reg, hooks_started, hooks_done;
    bool audit_done, have_est;
    struct tr_stats audit, est;
    uint64_t audit_spawned, audit_returned, audit_ok, audit_cancelled, audit_failed;
    uint64_t audit_hooks_reg;

    /* signals */
    _Atomic unsigned sigs_sent;
    pthread_t thr;
    bool thr_started;

    /* scopes (work_scope.c): the published ones, those left entered on
     * purpose, and the figures the audit holds the engine's stats to */
    struct sframe *sslot[SC_SLOTS];
    struct scope_left *left;
    uint64_t scopes, scope_moves, scope_cancels, exits_t, exits_c;
    uint64_t etimedout;    /* calls of ours that returned -ETIMEDOUT */
    uint64_t left_planned; /* scopes left entered on purpose */
    uint64_t audit_etimedout, audit_left_planned;

    /* task groups and primitives (work_sync.c): the worlds (on the heap,
     * freed after the round) and the figures the audit holds the engine's
     * stats to */
    struct sworld *worlds;
    uint64_t nworlds, groups_waited, sync_msgs, group_fails;
    uint64_t mtx_left_planned; /* workers that returned holding the mutex */
    uint64_t audit_mtx_left_planned, audit_group_fails;
    unsigned worlds_unaudited; /* the last hook never ran: no leftover count */
    uint64_t sync_killed;      /* workers the kill rung ended (seen by the world audits) */
    uint64_t sync_handed_dead; /* mutexes handed on from a holder that had ended */
    uint64_t sync_kh, sync_kc; /* freed worlds' killed holders, killed condition waiters */

    unsigned files;
    unsigned nviol;
    char viol[4][320];
};

/* Records a violation of the round (the first 4 keep their text). */
void viol(struct round *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* ------------------------------------------------- fdtable.c: buffers, fds */

uint8_t *buf_get(struct round *r);
void buf_put(struct round *r, uint8_t *b);
int fdt_admit(struct tctx *c, int n);
void fdt_release(struct tctx *c);
int fdt_reg(struct round *r, struct tctx *c, int fd, int role, int stream);
int fdt_take(struct round *r, int slot);
int tclose(struct round *r, int slot);
int fd_of(struct round *r, int slot);
int listen_socket(struct round *r, struct sockaddr_in *addr);

/* ------------------------------------------------------ tasks.c: records */

int task_main(void *arg);
struct tctx *ctx_get(struct round *r);
int spawn_kind(struct round *r, tr_engine *e, tr_task **out, int kind, unsigned flags,
               unsigned depth, int stream, bool opt);
void cancel_checked(struct round *r, tr_task *t);
int join_child(struct round *r, tr_task *t);
int pick_kind(struct round *r, unsigned depth);
/* Spawns a child of kind into group g with the tool's bookkeeping (its
 * record's sw is sw, its name name). Returns tr_group_spawn's result; a
 * refused child's record goes back at once. */
int spawn_group_kind(struct round *r, struct tr_group *g, int kind, unsigned depth,
                     struct sworker *sw, const char *name);

/* ------------------------------------------------------- hooks.c */

void add_hook(struct round *r, uint8_t kind);

/* ------------------------------------------------- work_*.c, orch.c */

int w_timer(struct tctx *c);
int w_file(struct tctx *c);
int w_stream(struct tctx *c);
int w_writer(struct tctx *c);
int w_reader(struct tctx *c);
int w_acceptor(struct tctx *c);
int w_client(struct tctx *c);
int w_super(struct tctx *c);
int w_call(struct tctx *c);
int w_self(struct tctx *c);
int w_stub(struct tctx *c);
int w_late(struct tctx *c);
int w_spawnchk(struct tctx *c);
int w_scope(struct tctx *c);
int w_sync(struct tctx *c);
int w_syncw(struct tctx *c);
int w_orch(struct tctx *c);
int w_sig(struct tctx *c);
void *helper_main(void *arg);

/* One call of another kind inside a scope of its own with a deadline 0-2
 * ms ahead (work_scope.c): scope1_enter, the call, then scope1_leave
 * checks its result and the exit against the oracle and returns it.
 * two_waits (set after the enter): the call is a wait and then a second,
 * uncancellable one (tr_cond_wait takes its mutex back), so its cut is
 * decided when the first ends, and a cancellation that comes during the
 * second leaves a -ETIMEDOUT as it was. */
struct scope1 {
    struct tr_scope s;
    struct so_task mt;
    struct so_scope m;
    struct so_pre pre;
    bool two_waits;
};
void scope1_enter(struct tctx *c, struct scope1 *q);
long scope1_leave(struct tctx *c, struct scope1 *q, long res, const char *what);

uint64_t scopes_killed(const struct round *r);
void scopes_round_free(struct round *r);

/* sync_audit.c, at the round's end: the worlds whose coordinator did not
 * audit them (it was killed), from the last hook (a task: the leftovers
 * can be taken); the engine's group and mutex counters against ours; the
 * channels of worlds the last hook never saw destroyed (after the audits,
 * outside any task); the worlds freed. */
void sync_audit_hook(struct round *r);
void sync_check_stats(struct round *r, const struct tr_stats *st, const char *when,
                      uint64_t mtx_left_planned, uint64_t group_fails);
void sync_round_end(struct round *r);
void sync_round_free(struct round *r);

/* ------------------------------------------------------- audit.c */

int list_fds(int *out, int cap);
void audit_engine(struct round *r, tr_engine *e);
void audit_last_hook(struct round *r);
void audit_mask(struct round *r, const sigset_t *m0, const sigset_t *orig, const sigset_t *ss);
void close_and_drain(struct round *r);
void audit_fds(struct round *r, const int *before, int nbefore, unsigned *acc, unsigned *opn);
void check_streams(struct round *r, unsigned *nclean, unsigned *neof, unsigned *nexact);
void cleanup_dir(void);

/* ------------------------------------------------------- round.c */

void run_round(unsigned no, uint64_t remaining_ms);

/* ------------------------------------------------------- cluster_round.c */

/* A round as a cluster of 1-8 engines (see the file). Exits 1 on a
 * violation, as run_round does. */
void run_cluster_round(unsigned no, uint64_t remaining_ms);

/* ------------------------------------------------------- watchdog.c */

void *progress_main(void *arg);

#endif
