/*
 * taskring internals, shared by the engine's files and by white-box tests.
 *
 * Data flow: tr_spawn puts a READY task on the run queue. A scheduling pass
 * (dispatch.c) runs each queued task until it parks. A task that calls an op
 * takes an op slot (op.c), fills an SQE with user_data = slot index and
 * generation, and parks. The pass then submits every SQE of the pass in one
 * io_uring_enter and, when nothing is runnable, waits. Reaping copies each
 * CQE's result into its slot and queues the task; tasks run only after the
 * reap loop (dispatch never nests). The task wakes, takes the result, frees
 * the slot (generation + 1) and goes on.
 *
 * Invariants (asserted where they could break):
 *   - A task has at most one op slot of its own; while it holds one in state
 *     INFLIGHT the task is PARKED and its stack is not freed or reused (G1).
 *   - A slot is freed only by its task after the CQE was reaped.
 *   - ops.inflight == slots INFLIGHT + cancel requests whose CQE is pending.
 */
#ifndef TR_INTERNAL_H
#define TR_INTERNAL_H

#include "taskring.h"
#include "ctx.h"

/* gcc says __SANITIZE_ADDRESS__/__SANITIZE_THREAD__; clang 14 only answers
 * __has_feature. The stack-switch annotations key on the gcc names. */
#if defined(__has_feature)
#if __has_feature(address_sanitizer) && !defined(__SANITIZE_ADDRESS__)
#define __SANITIZE_ADDRESS__ 1
#endif
#if __has_feature(thread_sanitizer) && !defined(__SANITIZE_THREAD__)
#define __SANITIZE_THREAD__ 1
#endif
#endif

#include <errno.h>
#include <liburing.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <sys/signalfd.h>
#include <stdlib.h>
#include <time.h>

/* Always on, in every build: a violated invariant is a bug, and limping on
 * after one risks the kernel writing into reused memory. */
#define TR_ASSERT(cond)                                                                            \
    do {                                                                                           \
        if (__builtin_expect(!(cond), 0))                                                          \
            tr__assert_fail(#cond, __FILE__, __LINE__, __func__);                                  \
    } while (0)

__attribute__((noreturn, cold)) void tr__assert_fail(const char *expr, const char *file, int line,
                                                     const char *func);

/* The kernel fills read buffers behind valgrind's back: tell it, so that
 * memcheck needs no suppressions for them. Free without valgrind.h. */
#if defined(TR_HAVE_VALGRIND_H)
#include <valgrind/memcheck.h>
#define TR_VG_DEFINED(p, n) ((void)VALGRIND_MAKE_MEM_DEFINED((p), (n)))
#else
#define TR_VG_DEFINED(p, n) ((void)0)
#endif

#define TR_UNLIKELY(x) __builtin_expect(!!(x), 0)
#define TR_LIKELY(x) __builtin_expect(!!(x), 1)

#define TR_STACK_MIN ((size_t)16 * 1024)
#define TR_STACK_DEFAULT ((size_t)64 * 1024)
#define TR_NAME_MAX 32

/* ------------------------------------------------------------ contexts */

/* Switches stacks: saves the callee-saved registers on the current stack,
 * stores the stack pointer in *save_sp, loads new_sp and restores from it.
 * Returns when something switches back to *save_sp. (ctx_<arch>.S) */
void tr__ctx_switch(void **save_sp, void *new_sp);

/* Prepares a fresh stack [lo, hi) so that switching to the returned stack
 * pointer calls entry(arg) on it. entry must never return. */
void *tr__ctx_make(void *lo, void *hi, void (*entry)(void *), void *arg);

/* --------------------------------------------------------------- stacks */

struct tr_slab;

/* What sits in the page below a stack's lo (stack.c). */
enum tr__guard {
    TR_GUARD_NONE = 0, /* none: the stack relies on its canary */
    TR_GUARD_PAGE,     /* mprotect'd PROT_NONE: a VMA of its own, from the budget */
    TR_GUARD_REGION,   /* MADV_GUARD_INSTALL (Linux >= 6.13): no VMA of its own */
};

struct tr_stack {
    struct tr_slab *slab; /* its slab (default size), or NULL: own mapping */
    void *map;            /* own mapping (guard page included), when slab is NULL */
    size_t map_len;       /* its length */
    void *lo, *hi;        /* the usable stack */
    uint8_t guard;        /* enum tr__guard: the page below lo */
    unsigned vg_id;       /* valgrind stack id */
    struct tr_stack *next_free;
};

#define TR_SLAB_STACKS 64
/* Free default-size stacks an engine keeps with their pages; beyond it,
 * wholly free slabs give their pages back (MADV_DONTNEED, tr__stack_trim). */
#define TR_STACK_POOL_MAX 4096
struct tr_slab {
    struct tr_slab *next;
    void *map;
    size_t map_len;
    unsigned nfree; /* of its stacks, how many are in the pool */
    uint8_t guard;  /* enum tr__guard, the same for all its stacks */
    bool advised;   /* pages given back while wholly free */
    struct tr_stack stacks[TR_SLAB_STACKS];
};

int tr__stack_alloc(tr_engine *e, size_t size, struct tr_stack **out);
void tr__stack_free(tr_engine *e, struct tr_stack *s);
void tr__stack_pool_drain(tr_engine *e);
/* Gives the pages of wholly free slabs beyond the pool's cap back to the
 * kernel, at most max slabs per call. */
void tr__stack_trim(tr_engine *e, unsigned max);
#define TR_STACK_TRIM_DELAY_NS 10000000ull /* 10 ms */
/* The canary: the lowest 256 bytes of an unguarded stack hold this word,
 * random with no zero byte, chosen once per process (stack.c). Checked at
 * every switch by tr__stack_canary_check (below). */
#define TR_CANARY_WORDS 32
extern uint64_t tr__stack_canary_word;
/* Reports the task whose canary is gone and aborts. */
void tr__stack_canary_fail(tr_task *t) __attribute__((noreturn, cold, noinline));
/* Rounds up to whole pages; 0 on overflow. */
size_t tr__stack_round(size_t size);
/* Tests: the number of guard pages (TR_GUARD_PAGE) the process may still
 * create (0 forces canary-only stacks where guard regions are off; a
 * negative value recomputes from vm.max_map_count). */
void tr__stack_set_guard_budget(long n);
long tr__stack_guard_budget(void);
/* Tests: guard regions for stacks mapped from now on (false forces the
 * fallback of kernels before 6.13), and whether new stacks get them (true
 * until a slab found the kernel without them). */
void tr__stack_set_guard_regions(bool on);
bool tr__stack_guard_regions(void);

/* Installs the process-wide SIGSEGV handler (once) and an alternate signal
 * stack for the calling thread (once per thread). */
void tr__guard_thread_init(void);

/* ------------------------------------------------------------ op slots */

enum tr__op_state { TR_OP_FREE = 0, TR_OP_INFLIGHT, TR_OP_COMPLETED };

/* The op table (ops.c): one entry per kind of operation, checked at init. */
enum tr__opcode {
    TR_OPC_NOP = 0,
    TR_OPC_READ,
    TR_OPC_WRITE,
    TR_OPC_RECV,
    TR_OPC_SEND,
    TR_OPC_ACCEPT,
    TR_OPC_CONNECT,
    TR_OPC_POLL,
    TR_OPC_OPENAT,
    TR_OPC_CLOSE,
    TR_OPC_FSYNC,
    TR_OPC_SHUTDOWN,
    TR_OPC_CUSTOM,
    TR_OPC__COUNT
};

struct tr__opdef {
    const char *name;
    bool cancellable; /* tr_close is not: it always closes */
    bool returns_fd;  /* a completed result >= 0 is an fd the caller owns */
};
extern const struct tr__opdef tr__opdefs[TR_OPC__COUNT];
void tr__opdefs_check(void);

struct tr_op {
    uint32_t gen;         /* bumped on free: the CQE of an old activation is stale */
    uint8_t state;        /* enum tr__op_state */
    uint8_t opcode;       /* enum tr__opcode */
    bool cancel_sent;     /* an ASYNC_CANCEL targets this activation */
    bool cancel_deferred; /* wanted, but the ring refused it: retried each pass */
    int32_t res;          /* the CQE's result, once COMPLETED */
    uint32_t cqe_flags;
    uint32_t next_free; /* free list link (index) */
    tr_task *task;      /* the parked owner */
};

#define TR_OP_NONE UINT32_MAX
/* Slots live in fixed chunks that never move, so a slot's address is stable
 * for the life of the engine. */
#define TR_OP_CHUNK_SHIFT 12
#define TR_OP_CHUNK (1u << TR_OP_CHUNK_SHIFT)
#define TR_OP_MAX_CHUNKS 1024 /* 4M slots: more than tasks can ever hold */

/* user_data layout: bits 0-31 slot index, 32-62 generation. Bit 63 tags the
 * engine's own requests, which have no slot; bits 56-62 then say which
 * (enum tr__udk). LIBURING_UDATA_TIMEOUT (all ones) is liburing's own and
 * never ours. */
#define TR_UD_ENGINE (1ull << 63)
#define TR_UD_KIND_SHIFT 56
#define TR_UD_KIND(ud) ((unsigned)((ud) >> TR_UD_KIND_SHIFT) & 0x7fu)
enum tr__udk {
    TR_UDK_CANCEL = 0,  /* ASYNC_CANCEL of a task's op (low bits: its slot) */
    TR_UDK_SIGNAL = 1,  /* the signalfd read */
    TR_UDK_WAKE = 2,    /* the wakeup eventfd read */
    TR_UDK_ICANCEL = 3, /* ASYNC_CANCEL of one of the two reads above */
    TR_UDK_VOID = 4,    /* a NOP filling an SQE that was taken but not used */
};
#define TR_UD_CANCEL (TR_UD_ENGINE | ((uint64_t)TR_UDK_CANCEL << TR_UD_KIND_SHIFT))
#define TR_UD_SIGNAL (TR_UD_ENGINE | ((uint64_t)TR_UDK_SIGNAL << TR_UD_KIND_SHIFT))
#define TR_UD_WAKE (TR_UD_ENGINE | ((uint64_t)TR_UDK_WAKE << TR_UD_KIND_SHIFT))
#define TR_UD_ICANCEL (TR_UD_ENGINE | ((uint64_t)TR_UDK_ICANCEL << TR_UD_KIND_SHIFT))
#define TR_UD_VOID (TR_UD_ENGINE | ((uint64_t)TR_UDK_VOID << TR_UD_KIND_SHIFT))
#define TR_GEN_MASK 0x7fffffffu
/* A cancel's user_data carries the low 24 bits of its target's generation
 * in bits 32-55, so its CQE is never taken for a later activation's. */
#define TR_UD_CANCEL_GEN_MASK (0xffffffull << 32)
static inline uint64_t tr__ud_cancel_gen(uint32_t gen)
{
    return ((uint64_t)gen << 32) & TR_UD_CANCEL_GEN_MASK;
}

static inline uint64_t tr__ud_make(uint32_t idx, uint32_t gen)
{
    return ((uint64_t)gen << 32) | idx;
}

int tr__op_alloc(tr_engine *e, uint32_t *idx_out);
struct tr_op *tr__op_get(const tr_engine *e, uint32_t idx);
void tr__op_free(tr_engine *e, uint32_t idx);
void tr__op_table_free(tr_engine *e);
struct tr__op_wait;
int tr__op_begin(tr_task *t, uint8_t opcode, int fd, struct tr__op_wait *ow,
                 struct io_uring_sqe **sqe_out);
int tr__op_park(tr_task *t, struct tr__op_wait *ow, struct io_uring_sqe *sqe);

/* --------------------------------------------------------------- tasks */

enum tr__task_state {
    TR_TASK_READY = 1, /* on the run queue */
    TR_TASK_RUNNING,   /* on the CPU */
    TR_TASK_PARKED,    /* waiting: see wait */
    TR_TASK_DONE,      /* ended, handle not yet joined */
    TR_TASK_FREED      /* poison: the record is on the free list */
};

/* ---------------------------------------------------------------- lists */

/* An intrusive doubly linked list: a head is a link whose prev/next point
 * at itself when empty. */
struct tr__link {
    struct tr__link *prev, *next;
};

static inline void tr__list_init(struct tr__link *h)
{
    h->prev = h->next = h;
}

static inline bool tr__list_empty(const struct tr__link *h)
{
    return h->next == h;
}

static inline void tr__list_add_tail(struct tr__link *h, struct tr__link *l)
{
    l->prev = h->prev;
    l->next = h;
    h->prev->next = l;
    h->prev = l;
}

static inline void tr__list_del(struct tr__link *l)
{
    l->prev->next = l->next;
    l->next->prev = l->prev;
    l->prev = l->next = l;
}

#define tr__container_of(ptr, type, member) ((type *)(void *)((char *)(ptr)-offsetof(type, member)))

/* ---------------------------------------------------------------- waits */

/*
 * One wait record per blocking call, in the caller's frame (its task's
 * stack): what the task waits for and how to end that wait. The engine
 * never switches on what kind of wait it is: cancellation, the kill rung,
 * the reap of a killed task and the dump all go through the kind's
 * functions. A new kind of wait is one new kind record.
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
    /* The owner's call is cut short (tr__cut_short says so): end the wait,
     * at once (unhook and tr__task_wake with -ECANCELED) or as soon as the
     * kernel allows (an op's ASYNC_CANCEL; its CQE wakes the owner). */
    void (*cancel)(tr_engine *e, struct tr__wait *w);
    /* The kill rung: end the wait whatever shields say. NULL: as cancel. */
    void (*kill)(tr_engine *e, struct tr__wait *w);
    /* A killed owner is never resumed: release what the ended wait still
     * holds (an op's slot; a completed fd is closed). NULL: nothing. */
    void (*reap)(tr_engine *e, struct tr__wait *w);
    /* The dump's details after the state, e.g. "op=read fd=7". NULL: none. */
    void (*describe)(const tr_engine *e, const struct tr__wait *w, char *buf, size_t len);
};

struct tr__wait {
    const struct tr__wait_kind *kind;
    tr_task *owner;
    int res; /* the result handed over by the waker */
};

/* A ring op's wait record: the slot of its activation and, for the dump,
 * the fd it works on. */
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
 * the waker's result, or -ECANCELED when cut short (cancellable only) or
 * killed. */
int tr__waitq_park(tr_task *t, struct tr__waitq *q, const struct tr__wait_kind *kind,
                   bool cancellable);
/* Wakes every task of q with res, in arrival order; returns how many. */
unsigned tr__waitq_wake_all(struct tr__waitq *q, int res);
void tr__waitq_cancel(tr_engine *e, struct tr__wait *w);
void tr__waitq_kill(tr_engine *e, struct tr__wait *w);

/* ---------------------------------------------------------------- timers */

/* A timer record in its owner's memory: a sleep's, later a scope's
 * deadline. Armed timers sit in the engine's heap; fire runs from the
 * scheduler (never inside a task) once the deadline has passed, after the
 * timer was disarmed. */
struct tr__timer {
    uint64_t deadline_ns;
    uint64_t seq;      /* arming order: equal deadlines fire in that order */
    uint32_t heap_idx; /* its heap slot, UINT32_MAX while not armed */
    void (*fire)(tr_engine *e, struct tr__timer *tm);
};

static inline void tr__timer_init(struct tr__timer *tm,
                                  void (*fire)(tr_engine *, struct tr__timer *))
{
    tm->deadline_ns = 0;
    tm->seq = 0;
    tm->heap_idx = UINT32_MAX;
    tm->fire = fire;
}

static inline bool tr__timer_armed(const struct tr__timer *tm)
{
    return tm->heap_idx != UINT32_MAX;
}

struct tr_task {
    void *sp; /* saved stack pointer while not running */
    tr_engine *e;
    struct tr_task *run_next;            /* run queue link */
    struct tr_task *all_prev, *all_next; /* live tasks list */
    uint64_t id;
    tr_fn fn;
    void *arg;
    int result;
    uint8_t state;         /* enum tr__task_state */
    bool cancelled;        /* level-triggered: never cleared */
    bool cancel_delivered; /* resumed at least once since cancelled (the kill rung's rule) */
    bool detached;
    bool late;                   /* TR_SPAWN_LATE */
    bool killed;                 /* shutdown's Kill phase: never resumed again */
    bool internal;               /* the engine's own task (at-shutdown hooks) */
    bool in_prep;                /* inside a tr_op prep callback: no blocking calls */
    int shield;                  /* shield depth */
    struct tr__wait *wait;       /* the record of the call it is parked in (see above) */
    uint64_t parked_ns;          /* when it last parked (the pass's clock) */
    struct tr_task *joiner;      /* the task parked in tr_join on us */
    struct tr_task *join_target; /* as a joiner: the task we wait for */
    struct tr_stack *stack;
    void *asan_fake;  /* ASan fake stack of this task, while switched out */
    void *tsan_fiber; /* its TSan fiber (TSan builds) */
    char name[TR_NAME_MAX];
};

/* Parks the running task t in the wait record w (kind set by the caller)
 * until a waker calls tr__task_wake; returns the result it handed over. */
int tr__task_park(tr_task *t, struct tr__wait *w);
/* Queues the parked task t with result res for its wait. */
void tr__task_wake(tr_task *t, int res);
void tr__task_enqueue(tr_task *t);
void tr__task_free_record(tr_engine *e, tr_task *t);
void tr__task_records_free(tr_engine *e);
int tr__task_reserve(tr_engine *e);
void tr__task_reserve_release(tr_engine *e);
void tr__run_task(tr_engine *e, tr_task *t);

/* Aborts naming the task when its canary is gone (unguarded stacks only).
 * Inline and frameless on the fast path: it may run on the stack it
 * checks, whose last bytes must not be spent on the check itself. */
static inline void tr__stack_canary_check(tr_task *t)
{
    const struct tr_stack *s = t->stack;
    if (s->guard != TR_GUARD_NONE)
        return;
    const volatile uint64_t *w = s->lo;
    uint64_t c = tr__stack_canary_word, any = 0;
    for (int i = 0; i < TR_CANARY_WORDS; i++)
        any |= w[i] ^ c;
    if (TR_UNLIKELY(any != 0))
        tr__stack_canary_fail(t);
}

/* A queued task's saved frame is likely cold (100k parked tasks are 400 MB
 * of stacks): start loading it before switching to it. */
static inline void tr__prefetch_frame(const tr_task *t)
{
    if (t && t->sp)
        __builtin_prefetch(t->sp);
}
void tr__task_end(tr_engine *e, tr_task *t, int result, bool killed);
/* The one cancellation predicate: is a blocking call of t cut short now,
 * and why? 0: no; -ECANCELED: t is cancelled outside a shield (or shields
 * are broken). Every cancellation point and every re-check of a parked
 * wait asks this, and nothing else. */
static inline int tr__cut_short(const tr_task *t);
/* Level-triggered cancel check at the top of every blocking call: when the
 * call is cut short it yields once (passing through the scheduler) and
 * returns the reason (-ECANCELED); else 0. Also refuses blocking calls
 * made inside a tr_op prep callback (-EPERM). */
int tr__cancel_point(tr_task *t);
/* t is parked: end its wait if its call is now cut short (after a cancel,
 * or when shields break). */
void tr__wait_recheck(tr_engine *e, tr_task *t);
extern __thread tr_task *tr__current;

/* --------------------------------------------------------------- timers */

/* Arms tm (not armed) for deadline_ns; -ENOMEM when the heap cannot grow. */
int tr__timer_arm(tr_engine *e, struct tr__timer *tm, uint64_t deadline_ns);
/* Disarms an armed timer. */
void tr__timer_disarm(tr_engine *e, struct tr__timer *tm);
/* Fires every timer whose deadline has passed; returns how many. */
unsigned tr__timer_expire(tr_engine *e, uint64_t now_ns);
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
static inline uint64_t tr__now_coarse_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* ---------------------------------------------------------------- ring */

int tr__ring_init(tr_engine *e, const struct tr_config *cfg);
int tr__ring_enable(tr_engine *e);
void tr__ring_register(tr_engine *e);
void tr__ring_unregister(tr_engine *e);
void tr__ring_exit(tr_engine *e);
/* An SQE: flushes the SQ to the kernel when it is full. NULL when the ring
 * refuses (it wants completions consumed first): the caller waits for the
 * next pass. Never reaps. */
struct io_uring_sqe *tr__ring_get_sqe(tr_engine *e);
/* Submits pending SQEs; waits for at least one CQE when wait is true, for at
 * most timeout_ns (UINT64_MAX: no limit). Returns 0 or a fatal -errno; on
 * -EBUSY/-EAGAIN 0, and the caller reaps. */
int tr__ring_enter(tr_engine *e, bool wait, uint64_t timeout_ns);
/* A completion, copied out of the CQ. */
struct tr__cqe {
    uint64_t user_data;
    int32_t res;
    uint32_t flags;
};
/* Copies up to max completions into out and consumes them; returns how
 * many. The caller dispatches them. */
unsigned tr__ring_take(tr_engine *e, struct tr__cqe *out, unsigned max);
unsigned tr__ring_sq_pending(const tr_engine *e);
bool tr__ring_cq_empty(tr_engine *e);
bool tr__ring_enter_needed(const tr_engine *e, bool busy);
bool tr__ring_overflow_pending(const tr_engine *e);
uint64_t tr__ring_overflow_count(const tr_engine *e);
/* White-box tests: queue a NOP whose CQE carries user_data ud. */
int tr__ring_post_raw_nop(tr_engine *e, uint64_t ud);

/* ------------------------------------------------------------- dispatch */

void tr__dispatch_cqe(tr_engine *e, uint64_t ud, int32_t res, uint32_t flags);

/* ----------------------------------------------------------------- loop */

/* The scheduler loop of tr_engine_run (loop.c). */
int tr__engine_loop(tr_engine *e);
/* May a task begin the next pass itself? (loop.c; task.c reaches it
 * through e->sch.pass_inline, a hook: tasks sit below the loop.) */
bool tr__loop_pass_inline(tr_engine *e);

/* --------------------------------------------------------- SQ room waits */

/* Parks t until the next pass has reaped (the SQ is full and the kernel
 * wants completions consumed first). 0, or -ECANCELED when cut short (only
 * when cancellable) or killed. */
int tr__sq_wait(tr_task *t, bool cancellable);
bool tr__sq_waiters(const tr_engine *e);
void tr__sq_waiters_wake(tr_engine *e);

/* ---------------------------------------------------------------- cancel */

int tr__cancel_submit(tr_engine *e, uint32_t idx);
void tr__cancel_retry_deferred(tr_engine *e);
void tr__cancel_reaped(tr_engine *e, uint64_t ud);
void tr__cancel_notify_end(tr_engine *e, tr_task *t);

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
    uint64_t signals_at_final;
    /* Counters at the trigger, for the report's differences. */
    uint64_t ok0, cancelled0, failed0, killed0, cancels0, completed0, stale0;
    uint64_t tasks_cancelled_by_sd;
    unsigned nfailed, nkilled;
    struct tr__sd_name failed[TR_SD_NAMES], killed[TR_SD_NAMES];
};

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
/* A read is not armed and should be (the ring refused its SQE). */
bool tr__internal_arm_owed(const tr_engine *e);
void tr__internal_stop(tr_engine *e);
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

/* ----------------------------------------------------------------- faults */

/* Fault injection (fault.c), only in TR_FAULT_INJECTION builds. */
enum tr__fault_site {
    TR_FS_ALLOC = 0, /* task record, stack, op slots, timer heap, hooks: -ENOMEM */
    TR_FS_GET_SQE,   /* io_uring_get_sqe finds the SQ full */
    TR_FS_SUBMIT,    /* io_uring_enter fails with the plan's error, submitting nothing */
    TR_FS_CQE,       /* a task op's CQE result is rewritten (cqe_mode) */
    TR_FS__COUNT
};
enum { TR_FAULT_CQE_EINTR = 1, TR_FAULT_CQE_SHORT = 2, TR_FAULT_CQE_ECANCELED = 3 };
#define TR_FAULT_BIT(site) (1u << (site))
#if defined(TR_FAULT_INJECTION)
/* The countdown-th call at a site in `sites` fails, and the burst - 1 after
 * it (burst 0: every later one). submit_err: -EBUSY, -EAGAIN or -EINTR. */
void tr__fault_arm(unsigned sites, uint64_t countdown, uint64_t burst, int submit_err,
                   int cqe_mode);
void tr__fault_disarm(void);
uint64_t tr__fault_calls(enum tr__fault_site site);
uint64_t tr__fault_injected(void);
bool tr__fault(enum tr__fault_site site);
int tr__fault_submit_err(void);
int32_t tr__fault_cqe(const struct tr_op *op, int32_t res);
#define TR_FAULT(site) TR_UNLIKELY(tr__fault(site))
#else
#define TR_FAULT(site) false
#endif

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
    size_t size;           /* the default stack size */
    struct tr_stack *pool; /* free default-size stacks */
    unsigned pool_len;
    struct tr_slab *slabs;
    bool trim_owed;   /* tr__stack_trim has slabs to give back... */
    uint64_t trim_at; /* ...from then on (pass_ns clock) */
    size_t advised;   /* pool stacks in advised slabs (pages given back) */
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
    tr_task *dying;       /* the task that just ended: whoever runs next frees its stack */
    tr_task *batch;       /* the rest of this pass's runnable tasks */
    tr_task *back;        /* the task that switched back to the scheduler */
    tr_task *switch_prev; /* the task that switched directly to the current one: its
                           * canary is checked on arrival, after its last push */
    uint64_t next_id;
    uint64_t live;                     /* live tasks */
    uint64_t live_late;                /* ...of them TR_SPAWN_LATE */
    struct tr__link end_listeners;     /* tr_cancel_all(WAIT) callers, told of every task end */
    unsigned inline_passes;            /* passes begun by a task since the scheduler's last */
    bool (*pass_inline)(tr_engine *e); /* tr__loop_pass_inline, for task.c */
    unsigned peek_skip;                /* sleeps left before the next peek for completions */
    uint64_t pass_ns;                  /* the clock at the start of the pass */
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

/* timer.c */
struct tr__timers {
    struct tr__timer **heap; /* min-heap on (deadline_ns, seq) */
    uint32_t len, cap;
    uint64_t seq;
};

/* sigwake.c: the engine's own reads. Their buffers live here, in the
 * engine, which is freed only after their CQEs are reaped (G1). */
struct tr__sigwake {
    int sigfd, wake_fd;
    bool sig_armed, wake_armed, stopping;
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
     * them decides anything. tasks_live and ops_inflight there are filled
     * from sch.live and ops.inflight. */
    struct tr_stats st;
};

/* A shutdown is requested or running (not yet done). */
static inline bool tr__shutdown_active(tr_engine *e)
{
    uint8_t ph = e->sd.phase;
    if (ph == TR_PH_DONE) /* over, unless this later run is asked for another */
        return e->sd_next_ok &&
               (e->sd_next_signal || atomic_load_explicit(&e->shutdown_req, memory_order_relaxed));
    return ph != TR_PH_NONE || e->sd.trigger != TR_TRIG_NONE ||
           atomic_load_explicit(&e->shutdown_req, memory_order_relaxed);
}

static inline int tr__cut_short(const tr_task *t)
{
    if (TR_LIKELY(!t->cancelled))
        return 0;
    /* During shutdown, shields hold until the grace period ends. */
    if (t->shield > 0 && !t->e->sd.shields_broken)
        return 0;
    return -ECANCELED;
}

/* Fault-free helpers */
static inline tr_engine *tr__engine_of_caller(void)
{
    return tr__current ? tr__current->e : NULL;
}

#endif /* TR_INTERNAL_H */
