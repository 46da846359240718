/* SPDX-License-Identifier: MIT */
/*
 * engine.h — the life of an engine: the loop, the shutdown ladder, the
 * signal and wakeup reads, the report; and the engine itself, which keeps
 * every module's state.
 */
#ifndef TR_ENGINE_H
#define TR_ENGINE_H

#include "structure/cancel.h"
#include "life/inbox.h"
#include <string.h>

/* ----------------------------------------------------------------- loop */

/* The scheduler loop of tr_engine_run (loop.c). */
int tr__engine_loop(tr_engine *e);
/* One pass of it, waiting at most cap_ns: 1 to go on, else what the loop
 * returns (tr_engine_run_once). */
int tr__engine_pass(tr_engine *e, uint64_t cap_ns);
/* A run (tr_engine_run, or a pass of tr_engine_run_once) begins on this
 * thread: -EPERM inside a task, -EBUSY while one runs, -EEXIST on a thread
 * the ring is not bound to, or the ring's enable error; else the ring is
 * registered in this thread's table and the engine runs. first: the run's
 * first pass (a finished shutdown is rearmed). tr__run_leave ends it. */
int tr__run_enter(tr_engine *e, bool first);
void tr__run_leave(tr_engine *e);
/* How long a pass may sleep now (UINT64_MAX: until a completion). */
uint64_t tr__loop_next_ns(tr_engine *e);
/* May a task begin the next pass itself? tr__loop_pass_inline, in
 * duties.h: the one call from the task layer up into the loop, made on
 * every switch that ends a pass with tasks queued, so inline. */

/* -------------------------------------------------------------- shutdown */

enum tr__phase {
    TR_PH_NONE = 0,
    TR_PH_STOP,  /* tr_shutting_down() true; drain_ms for tasks to end */
    TR_PH_DRAIN, /* everything cancelled; shields hold until grace */
    TR_PH_KILL,  /* stragglers killed */
    TR_PH_FINAL, /* hooks, audit */
    TR_PH_DONE,
};

enum tr__trigger { TR_TRIG_NONE = 0, TR_TRIG_SIGNAL, TR_TRIG_CALL, TR_TRIG_MAIN };

#define TR_SD_NAMES 32 /* failed/killed tasks named in the report; more are counted */

struct tr__sd_name {
    uint64_t id;
    int result;
    char name[TR_NAME_MAX];
};

struct tr__shutdown {
    uint8_t phase;   /* enum tr__phase */
    uint8_t trigger; /* enum tr__trigger */
    int trigger_signo;
    bool late_cancelled, shields_broken, dumped, final_cancelled, final_killed;
    uint64_t t_trigger, t_cancel, t_drain, t_grace, t_kill, t_final, t_done;
    uint64_t drain_deadline, grace_deadline, kill_deadline;
    uint64_t hook_cancel_deadline, hook_kill_deadline, hook_retry_at;
    unsigned hooks_abandoned; /* hooks never run: no task for them, or the kill rung */
    int hooks_spawn_err;      /* why: the spawn's -errno, or 0 when killed */
    uint64_t signals;         /* shutdown signals of this shutdown: the ladder's rungs */
    uint64_t signals_at_final;
    /* Counters at the trigger, for the report's differences. */
    uint64_t ok0, cancelled0, failed0, killed0, cancels0, completed0, stale0, cuts0, prim0;
    uint64_t tasks_cancelled_by_sd;
    unsigned nfailed, nkilled;
    struct tr__sd_name failed[TR_SD_NAMES], killed[TR_SD_NAMES];
    unsigned ngfail;                       /* groups that ended with real failures during it */
    struct tr__sd_name gfail[TR_SD_NAMES]; /* their owners, the first failure */
    size_t gfail_n[TR_SD_NAMES];           /* and how many */
};

/* Engines that shut down as one (a cluster, DESIGN section 9, G12): the
 * phases in lockstep. Each gate opens once every engine has arrived at it
 * (its own condition held), or for all at once by a deadline or a signal
 * they share: Cancel once every engine's drain is over, the LATE tasks'
 * cancel once every engine has only LATE ones left, Finalize once every
 * engine's tasks have all ended, and the runs return once every engine is
 * done (until then each keeps reading its inbox). Deadlines are taken from
 * the first engine's trigger; signals, read by the one signal owner, are
 * told to every engine. */
enum tr__gate { TR_GATE_CANCEL, TR_GATE_LATE, TR_GATE_FINAL, TR_GATE_DONE, TR_GATES };

struct tr__lockstep {
    unsigned n;
    tr_engine **engines;
    _Atomic uint64_t t_trigger; /* the first engine's Stop (0: none yet) */
    _Atomic int trigger;        /* enum tr__trigger of that engine */
    _Atomic int trigger_signo;
    _Atomic unsigned arrived[TR_GATES];
    _Atomic unsigned mains_left;
    _Atomic int first_err; /* the first main that failed (0: none) */
};

/* Joins e to ls as its engine number index (before its first run). */
void tr__lockstep_join(tr_engine *e, struct tr__lockstep *ls, unsigned index);
/* e cannot take part any more (its run failed): the others go on without
 * it, as if it had arrived at every gate. */
void tr__lockstep_leave(tr_engine *e);
/* Every engine of the lockstep has finished its shutdown. */
bool tr__lockstep_done(const struct tr__lockstep *ls);
/* The signal owner read signo (or was told it by a lone engine): every
 * engine of its lockstep hears it. */
void tr__lockstep_signal(tr_engine *e, int signo);
/* One report for all: a line per engine and the totals. */
void tr__lockstep_report(const struct tr__lockstep *ls, int fd);

struct tr__hook {
    tr_fn fn;
    void *arg;
};

/* Each pass, while a shutdown is requested or under way. */
void tr__shutdown_pass(tr_engine *e, uint64_t now);
/* The next phase deadline, as nanoseconds from now (UINT64_MAX: none). */
uint64_t tr__shutdown_next_ns(const tr_engine *e, uint64_t now);
void tr__shutdown_on_signal(tr_engine *e, int signo);
/* At the start of a run: after a finished shutdown, the next trigger of this
 * run starts a new one (signals pending now belong to the old one). */
void tr__shutdown_rearm(tr_engine *e);
/* Shutdown signals another engine of the process read for us (G12). */
bool tr__peer_signals_pending(const tr_engine *e);
void tr__peer_signals_take(tr_engine *e);
void tr__shutdown_task_ended(tr_engine *e, tr_task *t);
/* t ended with n scopes entered (scope.c): named in the report. */
void tr__scopes_left_record(tr_engine *e, tr_task *t, unsigned n);
/* Groups for the report: t's group ended during a shutdown with nfail
 * real failures (the first, first); t returned with a group of live
 * children not waited for. */
void tr__group_failures_record(tr_engine *e, tr_task *t, size_t nfail, int first);
void tr__groups_left_record(tr_engine *e, tr_task *t, unsigned live);
void tr__shutdown_report(tr_engine *e);
void tr__kill_teardown(tr_engine *e, tr_task *t);
/* The signalfd and wakeup reads (sigwake.c). */
int tr__sigwake_open(tr_engine *e, const struct tr_config *cfg);
/* Signals that cannot be shutdown signals: SIGKILL, SIGSTOP, and the
 * synchronous faults (SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGTRAP, SIGSYS). */
bool tr__shutdown_signals_ok(const sigset_t *set);
/* What tr_engine_destroy does to the signal mask, last of all. */
struct tr__sig_release {
    sigset_t unblock;
    bool consume;
};
void tr__sigwake_close(tr_engine *e, struct tr__sig_release *rel);
void tr__sig_release(const struct tr__sig_release *rel);
/* Consumes the shutdown signals pending now (they belong to a finished
 * shutdown). */
void tr__sig_drain_pending(tr_engine *e);
void tr__internal_arm(tr_engine *e);
/* Wakes the engine's ring wait (its wakeup eventfd): any thread. */
void tr__wake_write(const tr_engine *e);
/* A read is not armed and should be (the ring refused its SQE, or it
 * completed): kept by sigwake.c in one flag. */
static inline bool tr__internal_arm_owed(const tr_engine *e);
void tr__internal_stop(tr_engine *e);
/* embed.c's part of it: the armed ring timeouts are cancelled. */
void tr__embed_stop(tr_engine *e);
/* A timeout of embed.c's completed. */
void tr__embed_timeout_done(tr_engine *e);
/* The reads are wanted again after a stop (a shutdown began meanwhile, or
 * a later run). */
void tr__internal_resume(tr_engine *e);
/* A stop was asked but a read's cancel could not be submitted yet. */
bool tr__internal_stop_owed(const tr_engine *e);
/* How soon a pass retries what the ring refused (a cancel). */
#define TR_RETRY_NS 1000000ull
void tr__internal_complete(tr_engine *e, uint64_t ud, int32_t res);
/* Writes without ever blocking (report.c): -EAGAIN when the reader stalls. */
int tr__write_all(int fd, const char *buf, size_t len);
/* A line of the shutdown report; a line that cannot be written is counted
 * in stats.report_lines_lost. */
void tr__report_line(tr_engine *e, const char *buf, size_t len);
const char *tr__task_state_name(const tr_task *t);

/* ---------------------------------------------------------------- engine */

/* Each module's state, kept by the engine (DESIGN section 6: modules own
 * their state). Internal counters that decide things (live tasks, ops in
 * flight) live here; struct tr_stats is only ever copied out. */

/* ring.c */
struct tr__ring_state {
    struct io_uring uring;
    bool ready, enabled;
    bool registered; /* in the running thread's table (see ring.c) */
    bool defer_taskrun;
    bool taskrun_flag;  /* IORING_SQ_TASKRUN tells when completions wait in the kernel */
    bool single_issuer; /* the kernel refuses every thread but `thread` */
    unsigned sq_entries, cq_entries;
    pthread_t thread; /* the thread the ring is bound to (SINGLE_ISSUER) */
};

/* stack.c */
struct tr__stacks {
    size_t size; /* the default stack size */
    /* Free default-size stacks: those that keep their pages on the
     * resident list (most recently freed first, so its tail is the
     * oldest), those without on the cold one. */
    struct tr_stack *pool, *pool_tail, *cold;
    unsigned pool_len; /* on either list */
    struct tr_slab *slabs;
    bool trim_owed;   /* tr__stack_trim has stacks to give back... */
    uint64_t trim_at; /* ...from then on (pass_ns clock) */
    size_t advised;   /* pooled stacks on the cold list */
    unsigned keep;    /* resident pooled stacks the trim leaves (tr_config.task_prefill) */
};

/* task.c and loop.c: who runs, in which order. */
struct tr__sched {
    bool running;
    bool reaping; /* the loop's reap phase: the only place completions are dispatched */
    void *sp;     /* the scheduler's stack pointer while a task runs */
    void *asan_fake;
    void *tsan_fiber; /* the scheduler's TSan fiber (TSan builds) */
    const void *stack_lo;
    size_t stack_size;
    tr_task *run_head, *run_tail;
    tr_task *all_head;    /* live tasks (not yet DONE) */
    tr_task *done_head;   /* ended tasks whose handle is still owned */
    tr_task *free_tasks;  /* recycled task records */
    void *task_blocks;    /* the blocks records are cut from (task.c), freed with the engine */
    tr_task *dying;       /* the task that just ended: whoever runs next frees its stack */
    tr_task *batch;       /* the rest of this pass's runnable tasks */
    tr_task *back;        /* the task that switched back to the scheduler */
    tr_task *switch_prev; /* the task that switched directly to the current one: its
                           * canary is checked on arrival, after its last push */
    uint64_t next_id;
    uint64_t live;                 /* live tasks */
    uint64_t live_late;            /* ...of them TR_SPAWN_LATE */
    struct tr__link end_listeners; /* tr_cancel_all(WAIT) callers, told of every task end */
    unsigned inline_left; /* passes tasks may still begin before the scheduler's next (duties.h) */
    unsigned peek_skip;   /* sleeps left before the next peek for completions */
    uint64_t pass_ns;     /* the clock at the start of the pass */
    uint64_t clock_ns;    /* the precise clock as tr_deadline_after last read it in this
                           * pass (or tr_now_ns from a task did); 0: not yet (scope.c) */
};

/* op.c, cancel.c */
struct tr__ops {
    struct tr_op *chunks[TR_OP_MAX_CHUNKS];
    uint32_t nchunks;
    uint32_t free;             /* free list head (index) */
    uint64_t inflight;         /* tasks' ops and their cancels, submitted, not reaped */
    uint64_t cancels_inflight; /* ...of them cancels */
    uint64_t cancels_deferred; /* ops whose cancel waits for SQ room */
};

/* timer.c: the hierarchical timing wheel. */
struct tr__timers {
    uint32_t len;                       /* armed timers */
    uint64_t elapsed;                   /* the wheel's time, in ticks: never ahead of now */
    uint64_t next_due;                  /* no slot is due before this tick (a lower bound, kept by
                                           insert and expiry; UINT64_MAX: nothing armed) */
    uint64_t now_ns;                    /* the clock of the expiry running (for fire functions) */
    uint64_t occupied[TR_WHEEL_LEVELS]; /* bit s of level l: slot l*64+s not empty */
    struct tr__link slot[TR_WHEEL_OVERFLOW + 1]; /* level l, slot s at l*64+s; then overflow */
};

/* sigwake.c: the engine's own reads. Their buffers live here, in the
 * engine, which is freed only after their CQEs are reaped (G1). */
struct tr__sigwake {
    int sigfd, wake_fd;
    bool sig_armed, wake_armed, stopping;
    bool reads_owed; /* !stopping and an open fd's read not armed (owed_update) */
    bool sig_cancel_sent, wake_cancel_sent;
    uint64_t inflight;
    struct signalfd_siginfo sig_info;
    uint64_t wake_buf;
    sigset_t sig_set, sig_added; /* shutdown signals; those we blocked */
    pthread_t owner;             /* the creating thread, whose mask we changed */
    /* Signals read by another signal-handling engine of the process
     * (G12): their count and the last one's number, set by that engine's
     * thread, taken by ours. */
    _Atomic uint64_t peer_signals;
    _Atomic int peer_signo;
    struct tr_engine *next; /* the process's signal-handling engines */
};

struct tr_engine {
    struct tr__ring_state rs;
    struct tr__sched sch;
    struct tr__ops ops;
    struct tr__timers tm;
    struct tr__stacks stk;
    struct tr__sigwake sw;
    unsigned cfg_flags;

    /* Shutdown (shutdown.c). shutdown_req is the only field another thread
     * or a signal handler touches (tr_engine_shutdown). */
    _Atomic int shutdown_req;
    bool main_returned;
    bool spawning_internal; /* tr_spawn is creating the engine's own task */
    tr_task *main_task;     /* tr_run's main: its end triggers shutdown */
    tr_task *hook_task;     /* the at-shutdown task while it runs */
    tr_task *task_reserve;  /* its record and stack, taken by tr_at_shutdown */
    struct tr__shutdown sd;
    /* Tasks that ended with scopes entered (G10), named in the report. */
    unsigned nscopes_left;
    struct tr__sd_name scopes_left[TR_SD_NAMES];
    unsigned ngroups_left; /* owners that returned with groups not waited for */
    struct tr__sd_name groups_left[TR_SD_NAMES];
    /* After a finished shutdown (sd.phase DONE): a later run may start the
     * next one (sd_next_ok, set at that run's start), and a signal read in
     * it asks for it (sd_next_signal: its number). */
    bool sd_next_ok;
    int sd_next_signal;
    struct tr__hook *hooks;
    unsigned nhooks, hooks_cap;
    unsigned drain_ms, grace_ms, kill_ms;
    int report_fd;
    struct tr__waitq sd_stop; /* tasks parked in tr_wait_shutdown */
    struct tr__waitq sq_room; /* tasks parked for SQ room (wait_sq.c) */

    /* The public counters, only ever copied out (tr_engine_stats); none of
     * them decides anything (the ladder counts its signals in sd.signals).
     * tasks_live and ops_inflight there are filled from sch.live and
     * ops.inflight. */
    struct tr_stats st;
    /* Cold fields go here, after the counters: one inserted above moves
     * the hot counters across cache lines (bench_spawn measured -15%). */
    struct tr__link groups; /* every live group's record (group.c) */
    /* Armed deadline timers (t->dl_tm, scope.c) among the wheel's: the
     * deadlock check prunes those of tasks left with no scope. */
    uint32_t dl_armed;
    /* Unique in the process, never reused (engine.c): caller storage that
     * names an engine (a scope) names it by serial, since a destroyed
     * engine's address (and its task records') may come back. */
    uint64_t serial;
    tr_engine *live_next; /* the process's live engines (engine.c) */
    /* Messages from other threads and engines (inbox.c). */
    struct tr__inbox ib;
    /* Driven by another event loop (embed.c): tr_engine_fd's eventfd
     * (registered with the ring: the kernel signals it for completions),
     * whether a run_once run is under way, and the ring timeouts that
     * signal it at the engine's deadlines. */
    struct {
        int fd;
        bool active;
        uint32_t timeouts; /* armed, in sw.inflight */
        uint64_t armed_at; /* the earliest armed one's deadline (UINT64_MAX: none) */
        bool ts_queued;    /* ts is read by an SQE not yet submitted */
        struct __kernel_timespec ts;
    } emb;
    /* The engines it shuts down with (a cluster), or NULL. */
    struct tr__lockstep *ls;
    unsigned ls_index;
    bool ls_arrived[TR_GATES];
};

static inline bool tr__inbox_pending(const tr_engine *e)
{
    return atomic_load_explicit(&e->ib.pending, memory_order_relaxed);
}

/* Is an engine of this serial alive (created, not yet destroyed)? Any
 * thread; a lock and a walk of the live engines. */
bool tr__engine_serial_live(uint64_t serial);

/* A shutdown has begun (Stop or later), or has run: after a finished one
 * the engine stays shut down (new tasks start cancelled) until the next
 * trigger of a later run starts the ladder again. */
static inline bool tr__shutdown_begun(const tr_engine *e)
{
    return e->sd.phase != TR_PH_NONE;
}

/* A shutdown is requested or running (not yet done). */
/* ---- ring.c's, inline: every switch that ends a pass reads them ---- */

static inline bool tr__ring_cq_empty(const tr_engine *e)
{
    return io_uring_cq_ready((struct io_uring *)&e->rs.uring) == 0;
}

/* With tasks waiting to run, is an io_uring_enter worth its syscall? Yes
 * when SQEs wait, or the kernel holds completions back (task work flagged
 * by TASKRUN_FLAG, or an overflow). Without TASKRUN_FLAG we cannot know,
 * so whenever anything is in flight. */
static inline bool tr__ring_enter_needed(const tr_engine *e, bool busy)
{
    if (io_uring_sq_ready(&e->rs.uring) > 0)
        return true;
    if (!e->rs.taskrun_flag)
        return busy;
    return (IO_URING_READ_ONCE(*e->rs.uring.sq.kflags) &
            (IORING_SQ_TASKRUN | IORING_SQ_CQ_OVERFLOW)) != 0;
}

/* task.h's enqueue and wake, here where the run queue is known. */
static inline void tr__task_enqueue(tr_task *t)
{
    tr_engine *e = t->e;
    t->state = TR_TASK_READY;
    t->run_next = NULL;
    if (e->sch.run_tail)
        e->sch.run_tail->run_next = t;
    else
        e->sch.run_head = t;
    e->sch.run_tail = t;
}

static inline void tr__task_wake(tr_task *t, int res)
{
    TR_ASSERT(t->state == TR_TASK_PARKED);
    TR_ASSERT(t->wait != NULL);
    /* The record stays linked until t resumes in its call (or is reaped
     * after a kill): the reap needs it. */
    t->wait_res = res;
    tr__task_enqueue(t);
}

/* task.h's park, here where the engine's fields are known. */
static inline int tr__task_park(tr_task *t, struct tr__wait *w, const struct tr__wait_kind *kind)
{
    TR_ASSERT(t == tr__current);
    TR_ASSERT(t->state == TR_TASK_RUNNING);
    TR_ASSERT(t->wait == NULL);
    t->state = TR_TASK_PARKED;
    w->owner = t;
    t->wait = w;
    t->wait_kind = kind; /* wait_res: set by the waker (tr__task_wake) */
    t->parked_ns = t->e->sch.pass_ns;
    tr__task_switch_away(t);
    TR_ASSERT(t->state == TR_TASK_RUNNING);
    TR_ASSERT(t->wait == w);
    t->wait = NULL; /* and wait_kind with it: valid only while wait is set */
    int res = t->wait_res;
    /* Resumed while its calls may be cut short: a wait ended by its cut
     * returns why; a real result is returned as it is, and the cut shows
     * at the next call (G5). */
    if (TR_UNLIKELY(t->attn)) {
        if (res == TR__WAKE_CUT)
            return tr__cut_return(t);
        tr__cut_note(t);
    }
    TR_ASSERT(res != TR__WAKE_CUT);
    return res;
}

static inline bool tr__internal_arm_owed(const tr_engine *e)
{
    return e->sw.reads_owed;
}

static inline __attribute__((always_inline)) bool tr__shutdown_active(tr_engine *e)
{
    uint8_t ph = e->sd.phase;
    if (ph == TR_PH_DONE) /* over, unless this later run is asked for another */
        return e->sd_next_ok &&
               (e->sd_next_signal || atomic_load_explicit(&e->shutdown_req, memory_order_relaxed));
    return ph != TR_PH_NONE || e->sd.trigger != TR_TRIG_NONE ||
           atomic_load_explicit(&e->shutdown_req, memory_order_relaxed);
}

/* tr__shutdown_active, with its common case (no shutdown: phase and
 * trigger NONE, nothing requested) in one load of both and one of the
 * request; anything else (under way, or finished: phase DONE, where a run
 * after it must keep its inline passes) asks tr__shutdown_active. */
static inline __attribute__((always_inline)) bool tr__shutdown_maybe(tr_engine *e)
{
    _Static_assert(offsetof(struct tr__shutdown, trigger) ==
                       offsetof(struct tr__shutdown, phase) + 1,
                   "phase and trigger adjacent");
    _Static_assert(TR_PH_NONE == 0 && TR_TRIG_NONE == 0, "none is zero");
    uint16_t pt;
    memcpy(&pt, &e->sd.phase, sizeof(pt));
    if (TR_LIKELY(pt == 0))
        return atomic_load_explicit(&e->shutdown_req, memory_order_relaxed);
    return tr__shutdown_active(e);
}

static inline int tr__cut_short(const tr_task *t)
{
    if (TR_LIKELY(!(t->attn & (TR_ATTN_CANCELLED | TR_ATTN_SCOPE))))
        return 0;
    if (!t->scope) /* no scope: the task's own cancellation, unless shielded */
        return tr__task_cancelled(t) && (t->shield_base == 0 || t->e->sd.shields_broken)
                   ? -ECANCELED
                   : 0;
    return tr__cut_short_slow(t, NULL);
}

static inline void tr__wait_recheck(tr_engine *e, tr_task *t)
{
    TR_ASSERT(t->state == TR_TASK_PARKED);
    if (tr__cut_short(t))
        t->wait_kind->cancel(e, t);
}

/* Fault-free helpers */
static inline tr_engine *tr__engine_of_caller(void)
{
    return tr__current ? tr__current->e : NULL;
}

#endif /* TR_ENGINE_H */
