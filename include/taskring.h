/* SPDX-License-Identifier: MIT */
/*
 * taskring — an io_uring task engine.
 *
 * A task is a stackful coroutine. Inside a task, each blocking call (tr_read,
 * tr_recv, tr_sleep_ns, ...) submits one io_uring operation, parks the task
 * and returns the completion's result (>= 0, or -errno) when it arrives.
 * One engine runs on one thread; run one engine per thread for more cores.
 *
 * Conventions, for every function below:
 *   - Functions return 0 (or a count, or a byte count) on success and a
 *     negative errno value on failure. None of them sets errno.
 *   - "Only inside a task" means the call must run on a task's stack; from
 *     anywhere else it returns -EPERM and does nothing.
 *   - An operation that returned an error never resumes the task later:
 *     when a call returns, the kernel has finished with every buffer passed
 *     to it (see "Guarantees" in README.md).
 *
 * Signals: unless TR_CFG_NO_SIGNALS is set, tr_engine_create blocks the
 * shutdown signals (SIGINT and SIGTERM by default) in the calling thread and
 * reads them through a signalfd armed on the engine's ring. Threads created
 * afterwards inherit the blocked mask; threads created BEFORE the engine
 * must block these signals themselves (pthread_sigmask), or the kernel may
 * deliver a SIGTERM to one of them and kill the process with the default
 * action instead of starting a graceful shutdown.
 */
#ifndef TASKRING_H
#define TASKRING_H

#include <stdbool.h>
#include <stddef.h>
#include <signal.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define TR_API __attribute__((visibility("default")))
#else
#define TR_API
#endif

#define TR_VERSION_MAJOR 0
#define TR_VERSION_MINOR 1

struct io_uring_sqe; /* from <liburing.h>, needed only by tr_op() callers */

typedef struct tr_engine tr_engine;
typedef struct tr_task tr_task;

/* A task's body. Its return value is the task's result: >= 0 means it ended
 * well, -ECANCELED that it ended because it was cancelled, any other negative
 * value that it failed. */
typedef int (*tr_fn)(void *arg);

/* ---------------------------------------------------------------- engine */

/* tr_config.flags */
#define TR_CFG_NO_SIGNALS 0x1u /* the engine never touches signals or the signal mask */

struct tr_config {
    unsigned sq_entries; /* submission queue size; default 256, at most 32768 */
    unsigned cq_entries; /* completion queue size; default max(16 * sq_entries, 8192) */
    size_t stack_size;   /* default task stack size in bytes; default 64 KiB, min 16 KiB */
    /* Shutdown (see tr_engine_shutdown): after the trigger, tasks get
     * drain_ms to end on their own (default 0); then all are cancelled;
     * shields hold until grace_ms after the trigger (default 5000) or the
     * 2nd signal; tasks still alive kill_ms later (default 2000) or at the
     * 3rd signal are killed. */
    unsigned drain_ms, grace_ms, kill_ms;
    sigset_t shutdown_signals; /* default { SIGINT, SIGTERM } */
    int report_fd;             /* shutdown report; default 2, -1 silent. Written without
                                  ever blocking: a reader that stalls (a full pipe, a
                                  stopped terminal) loses lines, counted in
                                  stats.report_lines_lost, never the shutdown */
    unsigned flags;            /* TR_CFG_* */
    /* Tasks made ready for at tr_engine_create (default 0, at most
     * TR_PREFILL_MAX): records and default-size stacks, mapped, guarded as
     * every stack is (a guard region, else a guard page while the budget
     * lasts, else the canary) and their top page touched, so that the
     * first burst of that many spawns pays no mmap, madvise or page
     * fault. The pool then keeps at least this many stacks with their
     * pages when idle (without it: made as spawns need them, idle ones
     * beyond 16 given back after 1 s). Costs a page or two per task up
     * front (-ENOMEM when that is not there). */
    unsigned task_prefill;
};
#define TR_PREFILL_MAX 1000000u

/* Fills cfg with the defaults. Set fields afterwards. */
TR_API void tr_config_init(struct tr_config *cfg);

/* Creates an engine with its own io_uring. cfg may be NULL for the defaults.
 * Returns 0 and stores the engine in *out, or -EINVAL (NULL out, bad sizes),
 * -ENOMEM, or the kernel's error from io_uring_setup. The engine belongs to
 * the thread that first runs it (the ring is created with SINGLE_ISSUER when
 * the kernel has it): later runs must be on that thread, else the ring
 * refuses them (-EEXIST). Create, spawn and destroy may happen elsewhere,
 * but never concurrently with a run; only tr_engine_shutdown is
 * thread-safe. */
TR_API int tr_engine_create(tr_engine **out, const struct tr_config *cfg);

/* Runs tasks until none is left alive (and, once a shutdown was triggered,
 * until it has finished), then returns 0. When it returns, nothing is in
 * flight on the ring: the engine's own operations (the signalfd read, the
 * wakeup read) are cancelled and reaped too; a later tr_engine_run re-arms
 * them. Returns -EPERM when called from inside a task, -EBUSY when the
 * engine is already running, -EDEADLK when tasks are left that wait only on
 * each other (a join cycle) and no shutdown is under way: they stay alive
 * and the engine cannot be destroyed until they end. -EEXIST, before any
 * task runs, on a thread other than the one the ring is bound to. A run
 * after a finished shutdown honours the ladder again: the engine stays shut
 * down (tr_shutting_down() is true, new tasks start cancelled), and a signal
 * during the run, or a tr_engine_shutdown() made after the last shutdown
 * ended, starts a new shutdown, Stop to Finalize (shutdown signals that came
 * between the runs belong to the finished one and are consumed). */
TR_API int tr_engine_run(tr_engine *e);

/* Requests a graceful shutdown (DESIGN section 4): Stop (tr_shutting_down()
 * turns true, tr_wait_shutdown() returns, new spawns start cancelled, tasks
 * get drain_ms), Cancel (every task but TR_SPAWN_LATE ones; LATE ones once
 * all others ended), Drain (until grace_ms, shields hold), Kill (kill_ms
 * after grace: the op of each straggler is cancelled and its completion
 * reaped, then the task is never resumed and its stack is freed; what it
 * owned leaks and is named in the report), Finalize (tr_at_shutdown hooks,
 * the quiescence audit), Report (to cfg.report_fd). tr_engine_run returns
 * when it is over. Thread-safe and async-signal-safe: it only sets a flag
 * and writes to an eventfd. Returns 0, or -EINVAL for NULL. */
TR_API int tr_engine_shutdown(tr_engine *e);

/* asyncio.run: creates an engine with cfg (NULL: defaults), spawns
 * main(arg) as the task "main", runs until main returns, then shuts down
 * gracefully (cancelling every other task), destroys the engine and returns
 * main's result. A setup failure returns its -errno. */
TR_API int tr_run(tr_fn main, void *arg, const struct tr_config *cfg);

/* Writes one line per live task to fd: id, name, state, current op, its fd,
 * how long it has been parked, cancelled/shielded/killed. Also written to
 * report_fd when the grace period ends with tasks alive. Returns the number
 * of tasks listed, or -EINVAL / the write's -errno. Never blocks: when fd
 * would block (-EAGAIN) the rest is dropped. Meant for the engine's thread
 * (a task, a hook, between runs); from another thread the lines are a racy
 * snapshot of records the engine is changing. */
TR_API int tr_engine_dump(const tr_engine *e, int fd);

/* Frees the engine, its ring, its stack pool and its records; closes the
 * signalfd and, when called on the creating thread, unblocks the shutdown
 * signals it had blocked, as its very last step (after a shutdown, the
 * signals pending then are consumed: they belong to the shutdown that just
 * ended, as do those arriving during the teardown). Returns -EBUSY and changes
 * nothing while any task is alive, any operation is in flight, the
 * completion queue holds an entry or the engine is running; -EINVAL for
 * NULL. Task handles that were never joined or detached die with it. */
TR_API int tr_engine_destroy(tr_engine *e);

struct tr_stats {
    uint64_t tasks_spawned;     /* tasks ever spawned */
    uint64_t tasks_live;        /* tasks not yet ended */
    uint64_t tasks_ok;          /* ended with a result >= 0 */
    uint64_t tasks_cancelled;   /* ended with -ECANCELED */
    uint64_t tasks_failed;      /* ended with another negative result */
    uint64_t tasks_killed;      /* killed by the shutdown's last phase (never resumed) */
    uint64_t ops_submitted;     /* ring operations prepared for the kernel */
    uint64_t ops_completed;     /* their completions reaped */
    uint64_t ops_inflight;      /* submitted - completed, including cancels */
    uint64_t cancels_submitted; /* IORING_OP_ASYNC_CANCEL requests (counted in ops_*) */
    uint64_t cqe_stale;         /* completions dropped: unknown or outdated user_data */
    uint64_t submit_calls;      /* io_uring_enter calls */
    uint64_t submit_busy;       /* enters refused with -EBUSY/-EAGAIN, retried after a reap */
    uint64_t cq_overflows;      /* completions the kernel could not post (CQ overflow) */
    uint64_t stacks_guarded;    /* task stacks mapped (in use or pooled; default-size ones
                                   come in slabs of 64) with a guard page */
    uint64_t stacks_canary;     /* ... guarded only by a canary (past vm.max_map_count's budget) */
    uint64_t timers_pending;    /* armed engine timers: sleeps, and each task's scope-deadline
                                   timer, which may stay armed after its scopes (lazily) */
    uint64_t
        engine_ops_inflight;     /* the engine's own ops (signal and wakeup reads, their cancels) */
    uint64_t signals_received;   /* shutdown signals of the current (or last) shutdown: read
                                    from the signalfd, or from another engine of the process */
    uint64_t fds_closed_at_kill; /* fds an op of a killed task produced (accept, openat),
                                    closed by the engine: nobody was left to close them */
    uint64_t sq_waits;           /* ops that waited for room in a full submission queue */
    uint64_t report_lines_lost;  /* report lines dropped: report_fd would have blocked */
    uint64_t deadline_cuts;      /* blocking calls that returned -ETIMEDOUT: a scope's
                                    deadline cut them short */
    uint64_t scopes_left;        /* scopes still entered when their task ended (or was
                                    killed): unlinked by the engine, named in the report */
    uint64_t prim_waits_cut;     /* waits on primitives (event, semaphore, mutex,
                                    condition, channel) cut short: they took nothing */
    uint64_t groups_abandoned;   /* groups whose owner ended without waiting: the
                                    engine cancelled and waited for their children */
    uint64_t group_failures;     /* children's real failures, in all groups */
    uint64_t mutexes_left;       /* mutexes held by a task when it ended: handed on */
    uint64_t kill_grants_passed; /* grants (a unit, a mutex, a signal, a message) a
                                    waiter had been given before the kill rung
                                    killed it: passed on to the next waiter */
    uint64_t kill_msgs_lost;     /* channel messages handed to a receiver the kill
                                    rung then killed, with no room to go back */
    uint64_t posts_failed;       /* tr_post messages accepted whose task could not be
                                    spawned here (no memory): their fn never ran */
    uint64_t offload_abandoned;  /* tasks the kill rung ended while their tr_offload job
                                    still ran: the job kept the task's stack, which is
                                    never freed (leaked, named in the report) */
    uint64_t calls_abandoned;    /* tasks the kill rung ended while their tr_call's remote
                                    task had not ended: the same (their stacks leaked) */
};

/* Copies the engine's counters into *out. -EINVAL for NULL arguments. */
TR_API int tr_engine_stats(const tr_engine *e, struct tr_stats *out);

/* ----------------------------------------------------------------- tasks */

/* tr_spawn_opts.flags */
#define TR_SPAWN_LATE                                                                              \
    0x1u /* cancelled at shutdown only after all other tasks ended (loggers, flushers) */

struct tr_spawn_opts {
    const char *name;  /* copied (up to 31 bytes); NULL: "task-<id>" */
    size_t stack_size; /* 0: the engine's default; >= 16 KiB, rounded up to pages */
    unsigned flags;    /* TR_SPAWN_* */
};

/* Creates a task that will run fn(arg) on engine e (NULL: the engine of the
 * calling task). The task first runs at the engine's next scheduling pass; it
 * may be spawned before tr_engine_run or from inside any task of e.
 * With out != NULL the caller owns a handle that it must pass to tr_join or
 * tr_detach exactly once; with out NULL the task is detached.
 * Once a shutdown has begun (and after it, on the same engine) a new task
 * starts already cancelled; TR_SPAWN_LATE does not change that.
 * Returns 0, -EINVAL (no engine, NULL fn, bad opts, stack below 16 KiB),
 * -ENOMEM (no memory for the task or its stack). On error nothing was
 * created. */
TR_API int tr_spawn(tr_engine *e, tr_task **out, tr_fn fn, void *arg,
                    const struct tr_spawn_opts *opts);

/* The calling task, or NULL outside a task. */
TR_API tr_task *tr_self(void);

/* The engine of the calling task, or NULL outside a task. */
TR_API tr_engine *tr_self_engine(void);

/* The task's id (unique per engine, counting from 1) and name. Valid while
 * the caller owns the handle. NULL t: 0 and NULL. */
TR_API uint64_t tr_task_id(const tr_task *t);
TR_API const char *tr_task_name(const tr_task *t);

/* The result of an ended task, without consuming the handle (usable outside
 * tasks, e.g. after tr_engine_run). Returns 0 and stores it in *result;
 * -EINVAL for NULL arguments or a released handle; -EBUSY while t has not
 * ended (it runs or waits; also when it has returned with a group not
 * waited for: it ends once that group's children have, G10, with the
 * result it returned, which the shutdown's kill rung does not replace). */
TR_API int tr_task_result(const tr_task *t, int *result);

/* Only inside a task: waits until t has ended, stores its result in *result
 * (if not NULL) and consumes the handle. Returns 0; -EINVAL for NULL, for
 * joining yourself, for a detached task or one another task already joins;
 * -ECANCELED when the caller is cancelled (before or while waiting): then
 * the handle is still the caller's. */
TR_API int tr_join(tr_task *t, int *result);

/* Gives up the handle: the task's record is freed when it ends (at once if it
 * already has). Returns 0, or -EINVAL for NULL, an already detached task or
 * one that a task is joining. */
TR_API int tr_detach(tr_task *t);

/* Cancels t: t is marked cancelled (for good). If it is parked on a ring
 * operation, an IORING_OP_ASYNC_CANCEL is submitted for that operation, and
 * t stays parked until the operation's own completion arrives: t then sees
 * that result (a real result that won the race is kept; "cancelled" reads
 * -ECANCELED). If it waits inside the engine (sleep, join, yield) it wakes
 * with -ECANCELED. From then on each blocking call of t returns -ECANCELED
 * at once (passing through the scheduler) except tr_close and calls inside a
 * shield. A task may cancel itself. Returns 0; -EINVAL for NULL; -ESRCH when
 * t has already ended; -EXDEV from a task of another engine or, outside a
 * task, from a thread other than the one that runs t's engine (each engine
 * belongs to its thread; known from its first run where the ring is
 * SINGLE_ISSUER, Linux >= 6.0). May be called from a task of t's engine or from
 * the engine's thread outside tr_engine_run. */
TR_API int tr_cancel(tr_task *t);

/* tr_cancel_all flags */
#define TR_CANCEL_WAIT 0x1u /* park until every cancelled task has ended */

/* Only inside a task: cancels every live task of the caller's engine except
 * the caller and the n tasks in except (which may be NULL when n is 0), and
 * except, for a group's child, the owners of the groups it runs in (its
 * group's, that owner's group's, ...: cancelling them would cancel the
 * caller, and each waits for the caller's end). With
 * TR_CANCEL_WAIT it then parks until all of them have ended (-ECANCELED if
 * the caller is itself cancelled while waiting). Returns the number of tasks
 * cancelled, or -EPERM / -EINVAL. */
TR_API int tr_cancel_all(tr_task *const *except, size_t n, unsigned flags);

/* Only inside a task: lets every other runnable task run once, then returns
 * 0, or -ECANCELED if the caller is cancelled (outside a shield). */
TR_API int tr_yield(void);

/* Only inside a task (false elsewhere): has the calling task been cancelled? */
TR_API bool tr_is_cancelled(void);

/* Only inside a task. Between tr_shield_begin and tr_shield_end (nestable)
 * blocking calls work even though the task is cancelled, and a tr_cancel does
 * not interrupt the operation in flight, so cleanup can do real I/O. After
 * the outermost end, a pending cancellation shows at the next blocking call.
 * A shield is a shield scope without a deadline (TR_SCOPE_SHIELD): scopes
 * entered inside it still cut calls short. Returns the new depth, or -EPERM;
 * tr_shield_end without a begin, or whose begin was outside the innermost
 * scope: -EINVAL. */
TR_API int tr_shield_begin(void);
TR_API int tr_shield_end(void);

/* ---------------------------------------------------- time: cancel scopes */

/* CLOCK_MONOTONIC in nanoseconds: the clock of every deadline. */
TR_API uint64_t tr_now_ns(void);

/* The deadline ns from now by the engine's pass clock, for the deadline of a
 * request or an op where reading the clock would cost a share of the op
 * itself (CLOCK_MONOTONIC costs ~34 ns a read on our VM; a NOP's round trip
 * ~190): inside a task, the precise clock as the first such call of this
 * pass read it (or as tr_now_ns last did in it), so one read serves every
 * task of the pass. It is never ahead of tr_now_ns() and lags it by the wall
 * time of the pass since that read: every task that ran since, which grows
 * with the runnable tasks (1,000 tasks of 10 us each: 10 ms). A deadline
 * from it may fall that much early, or be past already (the scope then
 * triggers at its enter): short timeouts want tr_now_ns() + ns. Outside a task:
 * tr_now_ns() + ns. Saturates at UINT64_MAX (never due). As libuv's loop time
 * and nginx's cached clock; tr_now_ns() + ns where the microseconds matter. */
TR_API uint64_t tr_deadline_after(uint64_t ns);

/* A cancel scope (as Trio's): what runs inside it can be cut short by its
 * deadline or by tr_scope_cancel, and (unless it is a shield) by whatever
 * cuts the enclosing calls short. The caller provides the storage, usually
 * on its stack; the fields are the engine's. */
struct tr_scope {
    struct tr_scope *_parent; /* the enclosing scope of the same task */
    tr_task *_task;           /* its owner */
    uint64_t _deadline_ns;    /* 0: none */
    unsigned _flags;          /* TR_SCOPE_* */
    unsigned _shields;        /* tr_shield_begin depth opened inside it */
    unsigned char _expired, _cancelled;
    int _caught;       /* what tr_scope_exit returns */
    unsigned _magic;   /* entered */
    unsigned _epoch;   /* its owner's scope epoch at the enter */
    uint64_t _task_id; /* its owner's id: records are recycled */
    uint64_t _engine;  /* its owner's engine's serial: records go with it */
};

/* Cancellations from outside (the task's own, enclosing scopes') do not
 * reach inside; the scope's own deadline and tr_scope_cancel still do.
 * During a shutdown, shields hold until its grace period ends (or the
 * second signal), as tr_shield_begin's do. */
#define TR_SCOPE_SHIELD 0x1u

/*
 * Only inside a task. Enters s, nested in the task's innermost scope:
 * deadline_ns is absolute (tr_now_ns() + d, or tr_deadline_after(d)), 0 for
 * none; UINT64_MAX is never due (no timer: tasks left waiting only on it
 * count as deadlocked for tr_engine_run). One that has passed triggers s at once when the engine's
 * clock shows it (read at the start of each pass; the precise clock is read when the deadline is
 * within 20 ms of it), else at the engine's next timer pass: a call made
 * meanwhile may complete for real, as when a deadline races a result. Inside a triggered scope
 * every blocking call (ops, sleeps, joins, waits) returns at once, level-triggered until the exit:
 * -ECANCELED when a cancellation applies (the task's, a tr_scope_cancel), otherwise -ETIMEDOUT for
 * an expired deadline. tr_close is never cut short. A deadline costs no ring operation; when it
 * fires while an op is in flight, that op gets its own ASYNC_CANCEL and the call waits for the op's
 * completion: if the op finished first, its real result is returned and the expiry shows at the
 * next blocking call. Returns 0; -EPERM outside a task; -EINVAL for NULL, an entered scope or
 * unknown flags. A scope left entered by a task that ended (G10) may be entered again, also in a
 * later engine; one left entered in another engine that still lives is refused (-EINVAL).
 */
TR_API int tr_scope_enter(struct tr_scope *s, uint64_t deadline_ns, unsigned flags);
/* Leaves s, which must be the task's innermost scope (and hold no open
 * shield); the task continues normally. Returns 0 when s cut nothing short,
 * -ETIMEDOUT when its deadline did, -ECANCELED when tr_scope_cancel did (a
 * call cut short by the task's cancellation or an enclosing scope leaves it
 * at 0); -EINVAL out of order, for a scope not entered or another task's,
 * or while a group initialised inside it is not waited for (nothing
 * changes); -EPERM outside a task. */
TR_API int tr_scope_exit(struct tr_scope *s);
/* Cancels what runs inside s (it stays triggered until its exit). From any
 * task of s's engine. 0; -EINVAL for a scope not entered (also one of an
 * engine since destroyed); -EPERM outside a task; -EXDEV from another
 * engine's task. */
TR_API int tr_scope_cancel(struct tr_scope *s);
/* Moves s's deadline, earlier or later (an idle timeout reset per request);
 * 0 removes it; a passed one triggers s. Once s has triggered, changes
 * nothing. Errors as tr_scope_cancel's. */
TR_API int tr_scope_set_deadline(struct tr_scope *s, uint64_t deadline_ns);

/* Inside a task of an engine that is shutting down: true. Elsewhere false. */
TR_API bool tr_shutting_down(void);

/* Only inside a task: parks until the engine's shutdown begins (its Stop
 * phase) and returns 0 — once it has begun, 0 after one pass through the
 * scheduler (so a task looping on it cannot starve the engine). -ECANCELED
 * if the task is cancelled first. */
TR_API int tr_wait_shutdown(void);

/* Only inside a task: registers fn(arg) to run when the engine shuts down,
 * after every task has ended and before the ring is torn down. Hooks run
 * LIFO inside one task ("at-shutdown"), so they may do I/O; hooks (and
 * tasks they spawn) may register more. Returns 0, -EPERM, -EINVAL for NULL
 * fn, -ENOMEM; -ECANCELED once the kill rung of the hooks' own phase has
 * ended them (the hook could never run). */
TR_API int tr_at_shutdown(tr_fn fn, void *arg);

/* ------------------------------------------------ task groups (section 8) */

/* A child's real failure: a result < 0 other than a -ECANCELED/-ETIMEDOUT
 * that the group's own cancellation (or its enclosing scopes') caused. */
struct tr_failure {
    uint64_t task_id;
    char name[32];
    int result;
};
/* Failures a group lists (tr_group_failures counts all of them). */
#define TR_GROUP_FAILURES 8

/* A task group (structured concurrency): its owner spawns children into
 * it and waits for all of them. The first real failure cancels every
 * other child; a cancellation never masks a real error. Children run
 * inside the scopes that enclosed tr_group_init: when those (or the
 * owner's own cancellation) cut the owner's calls short, the children are
 * cancelled. Caller storage, usually the owner's stack; the fields are the
 * engine's. An owner that ends without waiting has its children cancelled
 * and waited for before its stack goes (G10), and the misuse is reported. */
struct tr_group {
    void *_core; /* the engine's record of it while it is live */
    unsigned _magic;
    int _first;    /* after the wait: the first real failure's result, or 0 */
    size_t _nfail; /* after the wait: real failures, all of them */
    struct tr_failure _fail[TR_GROUP_FAILURES];
};

/* Only inside a task, which owns the group. 0, -EPERM, -EINVAL (NULL, or
 * a group of the caller's not yet waited for), -ENOMEM. */
TR_API int tr_group_init(struct tr_group *g);
/* Spawns fn(arg) as a child (o as tr_spawn's; the child is detached: the
 * group waits for it). Only by the owner: -EPERM. 0; -ECANCELED once the
 * group is cancelling (the child never runs); -ENOMEM; -EINVAL. */
TR_API int tr_group_spawn(struct tr_group *g, tr_fn fn, void *arg, const struct tr_spawn_opts *o);
/* Cancels every child (the group is then cancelling). By any task of the
 * engine. */
TR_API int tr_group_cancel(struct tr_group *g);
/* Only the owner. Waits until every child ended; cannot be left early:
 * when the owner is cut short meanwhile, the children are cancelled and
 * still waited for. Returns 0, the first real failure's result, or (with
 * no real failure) -ECANCELED/-ETIMEDOUT when the owner is cut short at
 * the call (level-triggered) or its cut reached the group (cancelled it,
 * or came while the owner waited); a cut that comes after the last child
 * ended, before the owner runs again, leaves the result alone and shows
 * at the owner's next blocking call. The group is then done: it may be initialised again. */
TR_API int tr_group_wait(struct tr_group *g);
/* Copies up to max of the first TR_GROUP_FAILURES real failures, in
 * completion order; returns how many there were in all. */
TR_API size_t tr_group_failures(const struct tr_group *g, struct tr_failure *out, size_t max);

/* ------------------------------------------------ primitives (section 8) */

/* Event, semaphore, mutex and condition of one engine's tasks, in caller
 * storage (the fields are the engine's). Every wait is a cancellation
 * point and honours scopes: -ECANCELED / -ETIMEDOUT when cut short, having
 * taken nothing (G9: a grant that comes first wins, and a waiter cut short
 * passes nothing by). Waiters are served first come, first served. A
 * primitive belongs to the engine of the first task that uses it: from a
 * task of another engine, -EXDEV. Blocking calls outside a task: -EPERM;
 * a NULL or never initialised primitive: -EINVAL. The storage must outlive
 * every call on it, including a waiter woken and not yet returned. A
 * waiter killed by the shutdown's kill rung after its grant (a unit, the
 * mutex, a signal) passes the grant on, like a waiter cut short. */
struct tr__prim {
    void *_q[2];        /* its waiters, first come first served */
    tr_engine *_engine; /* bound at first use */
    unsigned _magic;    /* initialised, and which kind */
};

struct tr_event {
    struct tr__prim _p;
    bool _set;
};
TR_API int tr_event_init(struct tr_event *ev);
/* Sets it (waking every waiter); stays set until tr_event_clear. */
TR_API int tr_event_set(struct tr_event *ev);
TR_API int tr_event_clear(struct tr_event *ev);
TR_API bool tr_event_is_set(const struct tr_event *ev);
/* Returns 0 at once when set (after the cancellation point), else parks
 * until set. */
TR_API int tr_event_wait(struct tr_event *ev);

struct tr_sem {
    struct tr__prim _p;
    unsigned _count;
};
TR_API int tr_sem_init(struct tr_sem *s, unsigned count);
/* Takes a unit, parking until one is released to it. */
TR_API int tr_sem_acquire(struct tr_sem *s);
/* Takes a unit if one is free and nobody waits: 0, else -EAGAIN. */
TR_API int tr_sem_try_acquire(struct tr_sem *s);
/* Hands a unit to the first waiter, or adds it to the count (-EOVERFLOW at
 * UINT_MAX). Never blocks. */
TR_API int tr_sem_release(struct tr_sem *s);

struct tr_mutex {
    struct tr__prim _p;
    tr_task *_owner;
    uint64_t _owner_id;          /* its task id (records are recycled) */
    struct tr_mutex *_next_held; /* the owner's other mutexes */
    unsigned _cond_waiters;      /* in tr_cond_wait: each takes it back */
};
/* -EBUSY while it is held, waited for, or let go by a tr_cond_wait that
 * will take it back. */
TR_API int tr_mutex_init(struct tr_mutex *m);
/* -EDEADLK if the caller holds it. */
TR_API int tr_mutex_lock(struct tr_mutex *m);
/* -EBUSY when held (or when others wait for it), -EDEADLK by its owner. */
TR_API int tr_mutex_trylock(struct tr_mutex *m);
/* -EPERM if the caller is not the owner; hands the mutex to the first
 * waiter. Never cut short. A task that ends (or is killed) holding
 * mutexes has them handed on by the engine (counted in stats). */
TR_API int tr_mutex_unlock(struct tr_mutex *m);

struct tr_cond {
    struct tr__prim _p;
};
TR_API int tr_cond_init(struct tr_cond *c);
/* The caller must hold m (-EPERM). Releases m, parks until signalled, and
 * returns with m held again, also when cut short (-ECANCELED/-ETIMEDOUT):
 * taking m back is never cut short. */
TR_API int tr_cond_wait(struct tr_cond *c, struct tr_mutex *m);
TR_API int tr_cond_signal(struct tr_cond *c);
TR_API int tr_cond_broadcast(struct tr_cond *c);

/* A bounded channel of fixed-size elements (heap storage, the engine's):
 * capacity 0 is a rendezvous (a send waits for its receiver). Sends and
 * receives are cancellation points, served first come, first served; a
 * send cut short has sent nothing, a receive cut short has taken nothing
 * (G9). After tr_chan_close, sends return -EPIPE, and receives drain what
 * is queued, then return -EPIPE; tasks waiting at the close get -EPIPE.
 * A channel belongs to the engine of the first task that uses it (-EXDEV
 * from another), unless it is TR_CHAN_SHARED. A receiver killed by the shutdown's kill rung after
 * its message was handed to it (before it returned) gives the message back: to the next waiting
 * receiver, else to the front of the queue; only a queue filled up since has no room, and the
 * message is counted lost (stats kill_msgs_lost, and the report). */
struct tr_chan;
/* Shared by tasks of every engine (a cluster's, or lone engines on their
 * threads), with the same semantics and G9: a mutex guards it, and a
 * waiter served by a task of another engine is woken through its own
 * engine's inbox. A task waiting on a shared channel is never a deadlock
 * of its engine (another engine may serve it). */
#define TR_CHAN_SHARED 0x1u
/* elem_size > 0; -EINVAL for bad arguments or flags, -ENOMEM. */
TR_API int tr_chan_create(struct tr_chan **out, size_t elem_size, size_t capacity, unsigned flags);
TR_API int tr_chan_send(struct tr_chan *ch, const void *elem);
TR_API int tr_chan_recv(struct tr_chan *ch, void *elem);
/* Without waiting: -EAGAIN when it would wait (full; empty), -EPIPE when
 * closed (a receive: closed and drained). */
TR_API int tr_chan_try_send(struct tr_chan *ch, const void *elem);
TR_API int tr_chan_try_recv(struct tr_chan *ch, void *elem);
/* 0; -EPIPE if it was closed already. */
TR_API int tr_chan_close(struct tr_chan *ch);
/* Create and destroy may be called outside a task (before tr_run, after
 * it); every other call only from a task of the channel's engine.
 * Frees it: -EBUSY while a task is in a blocking send or receive on it
 * (waiting, or woken and not yet returned: yield first), nothing freed.
 * Messages still queued go with it (copies of bytes: nothing they point
 * to is freed; drain them with tr_chan_try_recv first if they own
 * anything). */
TR_API int tr_chan_destroy(struct tr_chan *ch);

/* ------------------------------------- many engines and threads (section 9) */

/* Embedding in another event loop (epoll, libuv, GLib): instead of
 * tr_engine_run, the host polls tr_engine_fd(e) for readability and calls
 * tr_engine_run_once when it is readable (or its own timeout passes).
 *
 * tr_engine_fd: an eventfd that becomes readable when the engine has work:
 * a completion of its ring, tasks still runnable after a pass, its nearest
 * deadline (a sleep, a scope, a shutdown rung: run_once arms a ring timeout
 * for it), a tr_post or tr_engine_shutdown, a shutdown signal (the last
 * three while a run is under way: once run_once has returned 0 the
 * engine's reads are stopped, as at tr_engine_run's end, and they wait for
 * the next run_once, which the host calls when it has given the engine
 * work, e.g. a tr_spawn). Created at
 * the first call and closed by tr_engine_destroy; the same fd every call.
 * Returns the fd, -EINVAL for NULL, or the eventfd's or the ring's -errno.
 * Call it on the thread that runs the engine, before its first run (the
 * ring binds to one thread, SINGLE_ISSUER).
 *
 * tr_engine_run_once: one scheduling pass: runs what is runnable, submits,
 * waits at most timeout_ms (0: not at all, -1: until there is work) for a
 * completion, reaps, and resets the fd. Returns 1 while the engine has work
 * left (tasks alive, a shutdown under way: call again when the fd is
 * readable), 0 once it has none (what tr_engine_run returns at its end:
 * nothing is in flight, the engine's own reads included, G2), or
 * tr_engine_run's errors (-EDEADLK, -EPERM inside a task, -EBUSY while
 * another run is under way, -EEXIST on another thread, a fatal ring error);
 * -EINVAL for NULL or timeout_ms < -1. The shutdown ladder runs as in
 * tr_engine_run, pass by pass. */
TR_API int tr_engine_fd(tr_engine *e);
TR_API int tr_engine_run_once(tr_engine *e, int timeout_ms);

/* Only inside a task: fn(arg) runs on a thread of a process-wide pool (4
 * threads, made as jobs need them; they block every signal), and the
 * caller parks until fn has returned: returns fn's result. Cut short (a
 * cancellation, a scope's deadline) while the job is still queued, the job
 * is taken back and never runs: -ECANCELED (or the scope's -ETIMEDOUT);
 * once it runs, the caller waits for it whatever happens (arg may live on
 * its stack, G1), and its cancellation shows at its next blocking call.
 * The shutdown's kill rung does not wait: it ends a task whose job still
 * runs, leaves the job its stack (never freed or reused: leaked, counted in
 * stats.offload_abandoned, the task named in the report), and the job's
 * end then tells nobody. -EPERM outside a task, -EINVAL for NULL fn,
 * -ENOMEM, -EAGAIN when the pool's queue is full (4096 jobs) or it has no
 * thread and none can be created. fn returning INT32_MIN comes back as
 * -EOVERFLOW. After fork(2) the child starts with an empty pool of its
 * own (jobs of the parent's engines stay the parent's: a child must not
 * reuse an engine of its parent). */
TR_API int tr_offload(tr_fn fn, void *arg);

struct addrinfo;
/* Only inside a task: getaddrinfo(3) on the pool's own smaller lane (2
 * threads, 256 queued), so that a slow resolver cannot starve other jobs.
 * As tr_offload, and returns 0 with *res to free with freeaddrinfo, or an
 * -errno for getaddrinfo's error: EAI_NONAME, EAI_NODATA, EAI_ADDRFAMILY
 * -ENOENT; EAI_AGAIN -EAGAIN; EAI_FAIL -EIO; EAI_MEMORY -ENOMEM;
 * EAI_FAMILY -EAFNOSUPPORT; EAI_SOCKTYPE -ESOCKTNOSUPPORT; EAI_SERVICE
 * -EPROTONOSUPPORT; EAI_BADFLAGS -EINVAL; EAI_OVERFLOW -EOVERFLOW;
 * EAI_SYSTEM its errno. -EINVAL for NULL res or both names NULL. */
TR_API int tr_getaddrinfo(const char *node, const char *service, const struct addrinfo *hints,
                          struct addrinfo **res);

/* A cluster: N engines on N threads that shut down as one. Engine 0 runs
 * on the calling thread and owns the signals (engine.shutdown_signals; the
 * other engines get TR_CFG_NO_SIGNALS): it blocks them in the calling
 * thread before the others are created, so they inherit the mask. */
#define TR_CLUSTER_PIN 0x1u /* engine i runs pinned to the i-th CPU the process may use */
struct tr_cluster_config {
    unsigned engines;        /* 0: one per online CPU; at most 4096 */
    unsigned flags;          /* TR_CLUSTER_* */
    struct tr_config engine; /* every engine's configuration */
};

/* Fills cfg with the defaults (engine: tr_config_init's). */
TR_API void tr_cluster_config_init(struct tr_cluster_config *cfg);

/* Runs main(arg) as the task "main" on every engine of a new cluster
 * (cfg NULL: the defaults) and returns when all engines have shut down:
 * 0, or the result of the first main that failed (a main that ends with
 * -ECANCELED once the shutdown has begun did not fail). The shutdown
 * (DESIGN section 4) is the cluster's, in lockstep: the first failing
 * main, the end of the last main, tr_engine_shutdown of any engine, or a
 * shutdown signal starts it on every engine with the same deadlines; the
 * 2nd and 3rd signals take every engine to the next rung; each phase
 * begins everywhere once every engine has finished the one before (Cancel
 * once every engine's drain is over, Finalize once every engine's tasks
 * have ended), and one combined report (a line per engine, the totals) is
 * written to engine.report_fd. Engine handles (tr_engine_at) are valid
 * until tr_cluster_run returns. -EINVAL (NULL main, bad cfg), -EPERM
 * inside a task, -EAGAIN when a thread cannot be created, or an engine's
 * creation error: then nothing ran. */
TR_API int tr_cluster_run(tr_fn main, void *arg, const struct tr_cluster_config *cfg);

/* Inside a task: its engine's index in the cluster (0 for a lone engine or
 * outside a task), the cluster's engine count (1 for a lone engine, 0
 * outside a task), and engine i (NULL when out of range or outside a
 * task; for a lone engine, itself as engine 0). */
TR_API unsigned tr_engine_index(void);
TR_API unsigned tr_engine_count(void);
TR_API tr_engine *tr_engine_at(unsigned i);

/* From any thread (a task of any engine, a plain thread, not a signal
 * handler): fn(arg) becomes a detached task on e, which spawns it at its
 * next pass (waking e if it sleeps in its ring wait). Posts from one
 * thread run in the order they were posted. Returns 0; -EINVAL for NULL;
 * -ENOMEM; -ESHUTDOWN once e's shutdown has begun (and, after a finished
 * one, for good). A post accepted just before the shutdown began still
 * runs, as a task that starts cancelled. If e cannot spawn the task when
 * it reads the post (no memory), fn never runs: counted in
 * stats.posts_failed. A post to an engine that is not running waits for
 * its next tr_engine_run; e must not be destroyed while posts to it may
 * come (tr_engine_destroy returns -EBUSY while posts wait in it). */
TR_API int tr_post(tr_engine *e, tr_fn fn, void *arg);

/* Only inside a task: fn(arg) runs as a task named "call" on engine e
 * (another engine's, or the caller's own), and the caller parks until that
 * task has ended. Returns 0 with the task's result in *result (if not
 * NULL); -EINVAL for NULL e or fn; -ECANCELED when the caller is cut short
 * before the call, or while e has not taken the call yet (an engine that
 * is not running: the call is taken back, it never runs); -ESHUTDOWN once
 * e's shutdown has begun; -ENOMEM when e could not spawn the task.
 * Cancelling the caller (or its scope's deadline) once e has taken the
 * call cancels the task on e, and the caller still waits for its end (arg
 * may live on the caller's stack, G1): the call returns 0 with the task's
 * result, often -ECANCELED, and the cancellation shows at the caller's
 * next blocking call. The kill rung of the caller's engine does not wait
 * for a task that ignores its cancellation (in a shield): the call is
 * abandoned, the caller's stack is left to it (never freed: leaked,
 * counted in stats.calls_abandoned, named in the report), and the caller
 * ends. A task waiting in tr_call is never a deadlock of its engine
 * (-EDEADLK), and e's tr_engine_run does not return until the callers of
 * the calls it took have read their results. A call from a TR_SPAWN_LATE
 * task runs as an ordinary task on e: e's shutdown cancels it with the
 * others. */
TR_API int tr_call(tr_engine *e, tr_fn fn, void *arg, int *result);

/* ------------------------------------------------------------ operations */
/* Only inside a task. Each returns the completion's result (>= 0 or the
 * kernel's -errno), -ECANCELED when the task is cancelled, -ENOMEM when no op
 * record can be allocated. Buffers must stay valid until the call returns,
 * which is the only time the kernel can touch them. */

TR_API int tr_nop(void);
/* Sleeps ns nanoseconds on the engine's timer (no ring operation). 0 when the
 * time has passed. A sleep past the clock's end (UINT64_MAX) lasts until the
 * task is cancelled (a shutdown ends it): like tr_wait_shutdown, it waits
 * for the outside world, so tr_engine_run does not call it a deadlock. */
TR_API int tr_sleep_ns(uint64_t ns);
/* off < 0: use (and advance) the file position, as read(2)/write(2) do. */
TR_API ssize_t tr_read(int fd, void *buf, size_t n, int64_t off);
TR_API ssize_t tr_write(int fd, const void *buf, size_t n, int64_t off);
TR_API ssize_t tr_recv(int fd, void *buf, size_t n, int flags);
/* Never raises SIGPIPE: MSG_NOSIGNAL is always added, so a send to a peer
 * that closed returns -EPIPE (or -ECONNRESET). tr_write to a pipe or socket
 * whose reader is gone also returns -EPIPE, but the kernel raises SIGPIPE for
 * it first: use tr_send on sockets, or ignore SIGPIPE for pipes. */
TR_API ssize_t tr_send(int fd, const void *buf, size_t n, int flags);
/* flags: SOCK_NONBLOCK / SOCK_CLOEXEC as accept4(2). An accepted fd is never
 * lost: if the accept completed, its fd is returned even to a cancelled
 * task. */
TR_API int tr_accept(int fd, struct sockaddr *sa, socklen_t *len, int flags);
TR_API int tr_connect(int fd, const struct sockaddr *sa, socklen_t len);
/* One-shot poll: returns the ready events (POLLIN, ...). */
TR_API int tr_poll(int fd, unsigned events);
TR_API int tr_openat(int dfd, const char *path, int flags, mode_t mode);
/* Never cancelled: always closes (even in a cancelled task). */
TR_API int tr_close(int fd);
TR_API int tr_fsync(int fd);
/* shutdown(2) on a socket: how is SHUT_RD, SHUT_WR or SHUT_RDWR. A lingering
 * close shuts the write side down, reads until the peer's EOF (or a bound),
 * then closes: closing with unread input makes the kernel send a reset. */
TR_API int tr_shutdown(int fd, int how);
/* Any other single-completion opcode: prep(sqe, ctx) prepares a zeroed copy
 * of an SQE (do not set user_data), which is checked and only then copied
 * into the ring, so the ring never holds a half-prepared SQE. Refused with
 * -EINVAL, nothing submitted: multishot opcodes (poll, accept, recv,
 * timeout, read), zero-copy sends (their notification comes after the
 * result), IOSQE_IO_LINK/HARDLINK/CQE_SKIP_SUCCESS (one SQE, one CQE), and
 * IOSQE_IO_DRAIN, ASYNC_CANCEL, POLL_REMOVE, TIMEOUT_REMOVE and LINK_TIMEOUT
 * (they would hold back or cancel the engine's own requests). prep must not
 * block: a blocking call made inside it (tr_yield, an op, a sleep) returns
 * -EPERM at once. Returns the completion's res. -EINVAL for NULL prep. */
TR_API int tr_op(void (*prep)(struct io_uring_sqe *sqe, void *ctx), void *ctx);

#ifdef __cplusplus
}
#endif
#endif /* TASKRING_H */
