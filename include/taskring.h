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
 * Not built yet (see the README): shutdown (signalfd, tr_run,
 * tr_engine_shutdown, the report, tr_engine_dump). Until then the engine
 * never touches signals (TR_CFG_NO_SIGNALS is the only mode).
 */
#ifndef TASKRING_H
#define TASKRING_H

#include <stdbool.h>
#include <stddef.h>
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
#define TR_CFG_NO_SIGNALS 0x1u /* the engine never touches signals (the only mode for now) */

struct tr_config {
    unsigned sq_entries; /* submission queue size; default 256, at most 32768 */
    unsigned cq_entries; /* completion queue size; default max(16 * sq_entries, 8192) */
    size_t stack_size;   /* default task stack size in bytes; default 64 KiB, min 16 KiB */
    unsigned flags;      /* TR_CFG_* */
};

/* Fills cfg with the defaults. Set fields afterwards. */
TR_API void tr_config_init(struct tr_config *cfg);

/* Creates an engine with its own io_uring. cfg may be NULL for the defaults.
 * Returns 0 and stores the engine in *out, or -EINVAL (NULL out, bad sizes),
 * -ENOMEM, or the kernel's error from io_uring_setup. The engine belongs to
 * the thread that runs it. */
TR_API int tr_engine_create(tr_engine **out, const struct tr_config *cfg);

/* Runs tasks until none is left alive, then returns 0. When it returns,
 * nothing is in flight on the ring (the engine's own operations included).
 * Returns -EPERM when called from inside a task, -EBUSY when the engine is
 * already running, -EDEADLK when tasks are left that wait only on each other
 * (a join cycle): they stay alive and the engine cannot be destroyed. */
TR_API int tr_engine_run(tr_engine *e);

/* Frees the engine, its ring, its stack pool and its records. Returns -EBUSY
 * and changes nothing while any task is alive, any operation is in flight,
 * the completion queue holds an entry or the engine is running; -EINVAL for
 * NULL. Task handles that were never joined or detached die with it. */
TR_API int tr_engine_destroy(tr_engine *e);

struct tr_stats {
    uint64_t tasks_spawned;     /* tasks ever spawned */
    uint64_t tasks_live;        /* tasks not yet ended */
    uint64_t tasks_ok;          /* ended with a result >= 0 */
    uint64_t tasks_cancelled;   /* ended with -ECANCELED */
    uint64_t tasks_failed;      /* ended with another negative result */
    uint64_t ops_submitted;     /* ring operations prepared for the kernel */
    uint64_t ops_completed;     /* their completions reaped */
    uint64_t ops_inflight;      /* submitted - completed, including cancels */
    uint64_t cancels_submitted; /* IORING_OP_ASYNC_CANCEL requests (counted in ops_*) */
    uint64_t cqe_stale;         /* completions dropped: unknown or outdated user_data */
    uint64_t submit_calls;      /* io_uring_enter calls */
    uint64_t submit_busy;       /* enters refused with -EBUSY/-EAGAIN, retried after a reap */
    uint64_t cq_overflows;      /* completions the kernel could not post (CQ overflow) */
    uint64_t stacks_guarded;    /* task stacks with a guard page, now mapped */
    uint64_t stacks_canary;     /* task stacks guarded only by a canary, now mapped */
    uint64_t timers_pending;    /* sleeping tasks */
};

/* Copies the engine's counters into *out. -EINVAL for NULL arguments. */
TR_API int tr_engine_stats(const tr_engine *e, struct tr_stats *out);

/* ----------------------------------------------------------------- tasks */

/* tr_spawn_opts.flags: none defined yet; must be 0. */

struct tr_spawn_opts {
    const char *name;  /* copied (up to 31 bytes); NULL: "task-<id>" */
    size_t stack_size; /* 0: the engine's default; >= 16 KiB, rounded up to pages */
    unsigned flags;    /* must be 0 */
};

/* Creates a task that will run fn(arg) on engine e (NULL: the engine of the
 * calling task). The task first runs at the engine's next scheduling pass; it
 * may be spawned before tr_engine_run or from inside any task of e.
 * With out != NULL the caller owns a handle that it must pass to tr_join or
 * tr_detach exactly once; with out NULL the task is detached.
 * Returns 0, -EINVAL (no engine, NULL fn, bad opts, stack below 16 KiB),
 * -ENOMEM (no memory for the task or its stack). On error nothing was
 * created. */
TR_API int tr_spawn(tr_engine *e, tr_task **out, tr_fn fn, void *arg,
                    const struct tr_spawn_opts *opts);

/* The calling task, or NULL outside a task. */
TR_API tr_task *tr_self(void);

/* The task's id (unique per engine, counting from 1) and name. Valid while
 * the caller owns the handle. NULL t: 0 and NULL. */
TR_API uint64_t tr_task_id(const tr_task *t);
TR_API const char *tr_task_name(const tr_task *t);

/* The result of an ended task, without consuming the handle (usable outside
 * tasks, e.g. after tr_engine_run). Returns 0 and stores it in *result;
 * -EINVAL for NULL arguments or a released handle; -EBUSY while t runs. */
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
 * t has already ended. May be called from a task of t's engine or from the
 * engine's thread outside tr_engine_run. */
TR_API int tr_cancel(tr_task *t);

/* tr_cancel_all flags */
#define TR_CANCEL_WAIT 0x1u /* park until every cancelled task has ended */

/* Only inside a task: cancels every live task of the caller's engine except
 * the caller and the n tasks in except (which may be NULL when n is 0). With
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
 * Returns the new depth, or -EPERM; tr_shield_end without a begin: -EINVAL. */
TR_API int tr_shield_begin(void);
TR_API int tr_shield_end(void);

/* ------------------------------------------------------------ operations */
/* Only inside a task. Each returns the completion's result (>= 0 or the
 * kernel's -errno), -ECANCELED when the task is cancelled, -ENOMEM when no op
 * record can be allocated. Buffers must stay valid until the call returns,
 * which is the only time the kernel can touch them. */

TR_API int tr_nop(void);
/* Sleeps ns nanoseconds on the engine's timer (no ring operation). 0 when the
 * time has passed. */
TR_API int tr_sleep_ns(uint64_t ns);
/* off < 0: use (and advance) the file position, as read(2)/write(2) do. */
TR_API ssize_t tr_read(int fd, void *buf, size_t n, int64_t off);
TR_API ssize_t tr_write(int fd, const void *buf, size_t n, int64_t off);
TR_API ssize_t tr_recv(int fd, void *buf, size_t n, int flags);
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
/* Any other single-completion opcode: prep(sqe, ctx) prepares the SQE (do not
 * touch user_data; multishot and zero-copy-notification opcodes are not
 * supported). Returns the completion's res. -EINVAL for NULL prep. */
TR_API int tr_op(void (*prep)(struct io_uring_sqe *sqe, void *ctx), void *ctx);

#ifdef __cplusplus
}
#endif
#endif /* TASKRING_H */
