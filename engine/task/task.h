/* SPDX-License-Identifier: MIT */
/*
 * task.h — tasks and their stacks: records, states, spawn/end, parking
 * and waking, the switch, guard pages and canaries.
 */
#ifndef TR_TASK_H
#define TR_TASK_H

struct tr__group;

#include "wait/wait.h"

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
    bool pooled;          /* in the pool: on the resident list, or the cold one if advised */
    bool advised;         /* pooled with its pages given back (or never touched) */
    unsigned vg_id;       /* valgrind stack id */
    uint64_t free_since;  /* pooled since then (pass_ns clock) */
    struct tr_stack *next_free, *prev_free; /* its pool list (the cold one: next only) */
};

#define TR_SLAB_STACKS 64
/* Free default-size stacks an engine keeps with their pages: beyond
 * TR_STACK_POOL_MAX, wholly free slabs give their pages back
 * (MADV_DONTNEED, tr__stack_trim) once the surplus has lasted
 * TR_STACK_TRIM_DELAY_NS; beyond the TR_STACK_POOL_HOT most recently freed,
 * each stack that has stayed in the pool for TR_STACK_IDLE_TRIM_NS (a spike
 * of connections is over: its memory goes back; a steady churn keeps its
 * stacks warm). */
#define TR_STACK_POOL_MAX 4096
#define TR_STACK_POOL_HOT 16
#define TR_STACK_IDLE_TRIM_NS 1000000000ull /* 1 s */
/* Tests: the idle trim's delay (TR_STACK_IDLE_TRIM_NS unless set). */
extern uint64_t tr__stack_idle_trim_ns;
struct tr_slab {
    struct tr_slab *next;
    void *map;
    size_t map_len;
    unsigned nfree;      /* of its stacks, how many are in the pool */
    unsigned nabandoned; /* ...how many were abandoned (tr__stack_abandon): never unmapped */
    uint8_t guard;       /* enum tr__guard, the same for all its stacks */
    bool advised;        /* pages given back at once while wholly free (its stacks' advised too) */
    unsigned nres;       /* of its stacks, how many are pooled and resident */
    uint64_t free_since; /* wholly free since then (pass_ns clock), while nfree is all */
    struct tr_stack stacks[TR_SLAB_STACKS];
};

int tr__stack_alloc(tr_engine *e, size_t size, struct tr_stack **out);
void tr__stack_free(tr_engine *e, struct tr_stack *s);
/* s may still be written by another thread (a killed task's offloaded
 * job): it is never reused, and its memory stays mapped for good (a
 * slab with such a stack is not unmapped at the engine's end). */
void tr__stack_abandon(tr_engine *e, struct tr_stack *s);
void tr__stack_pool_drain(tr_engine *e);
/* tr_config.task_prefill: n default-size stacks in the pool with their
 * top page touched, kept there by the trim. 0 or -ENOMEM. */
int tr__stack_prefill(tr_engine *e, unsigned n);
/* The same for task records: n of them on the free list. */
int tr__task_records_prefill(tr_engine *e, unsigned n);
/* Gives the pages of spare pool stacks back to the kernel (see
 * TR_STACK_POOL_MAX): per call, at most max single stacks and
 * max / TR_SLAB_COST wholly free slabs, at least one (a stack's madvise
 * takes 4 us here, a slab's 100 us: the loop bounds what one wait may
 * spend on it). */
#define TR_SLAB_COST 16
/* A trim is due this much before its time: the loop's clock is the coarse
 * one (a jiffy, at most 4 ms at HZ 250), and a wait shorter than its step
 * would wake to the same reading, over and over. */
#define TR_TRIM_SLACK_NS 4000000ull
void tr__stack_trim(tr_engine *e, unsigned max, bool returning);
#define TR_STACK_TRIM_DELAY_NS 10000000ull /* 10 ms */
/* The canary: the lowest 256 bytes of an unguarded stack hold this word,
 * random with no zero byte, chosen once per process (stack.c). Checked at
 * every switch by tr__stack_canary_check (below). */
#define TR_CANARY_WORDS 32
extern uint64_t tr__stack_canary_word;
/* Reports the task whose canary is gone and aborts. */
void tr__stack_canary_fail(tr_task *t) __attribute__((noreturn, cold, noinline));
/* A misuse that would corrupt the engine if it went on: names the task,
 * says what, aborts (G8). */
void tr__task_misuse_fail(const tr_task *t, const char *what) __attribute__((noreturn, cold));
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
/* Tests: one process_madvise per slab for its guard regions (default), or
 * one madvise per stack. */
void tr__stack_set_guard_batch(bool on);

/* Installs the process-wide SIGSEGV handler (once) and an alternate signal
 * stack for the calling thread (once per thread). */
void tr__guard_thread_init(void);

/* --------------------------------------------------------------- tasks */

enum tr__task_state {
    TR_TASK_READY = 1, /* on the run queue */
    TR_TASK_RUNNING,   /* on the CPU */
    TR_TASK_PARKED,    /* waiting: see wait */
    TR_TASK_DONE,      /* ended, handle not yet joined */
    TR_TASK_FREED      /* poison: the record is on the free list */
};

struct tr_task {
    /* Hot: what a switch, a wake-up, a cancel and a walk of the live tasks
     * touch, in the first two cache lines (records are cache-line aligned,
     * task.c); the sleep timer's link ends in them. */
    void *sp; /* saved stack pointer while not running */
    tr_engine *e;
    struct tr_task *run_next;            /* run queue link */
    struct tr_task *all_prev, *all_next; /* live tasks list */
    uint64_t id;
    struct tr__wait *wait; /* the record of the call it is parked in (see above) */
    /* Its wait's hot half (wait.h): read by wakers and cancellers without
     * touching the stack. */
    const struct tr__wait_kind *wait_kind; /* valid while wait != NULL */
    struct tr_stack *stack;
    int wait_res;       /* the result handed over by the waker */
    uint32_t wait_slot; /* an op wait's slot */
    uint8_t state;      /* enum tr__task_state */
    uint8_t attn;       /* TR_ATTN_*: what a cancellation point must look at; 0 on the fast path */
    bool cancel_delivered; /* resumed in a blocking call while cut short (the kill rung's rule) */
    bool killed;           /* shutdown's Kill phase: never resumed again */
    bool late;             /* TR_SPAWN_LATE */
    bool internal;         /* the engine's own task (at-shutdown hooks) */
    bool detached;
    bool stack_lent; /* killed while a thread may still use its stack (tr_offload): never freed */
    int shield;      /* shield depth */
    struct tr__timer sleep_tm; /* tr_sleep_ns's timer */
    /* A scope's enter and exit: the third line (dl_tm's hot half on). */
    struct tr__timer dl_tm; /* its scopes' deadlines' timer (scope.c) */
    struct tr_scope *scope; /* the innermost entered scope (structure/scope.c) */
    unsigned nscopes;       /* entered scopes: t->scope's chain length */
    unsigned scope_epoch;   /* + 1 when the engine unlinks its scopes (scope.c) */
    /* Cold. */
    unsigned scopes_triggered; /* entered scopes that have triggered (TR_ATTN_SCOPE) */
    unsigned shield_base;      /* tr_shield_begin depth opened outside every scope */
    int result;
    bool returned; /* its function returned: the result is set, nothing kills it (G10's wait) */
    tr_fn fn;
    void *arg;
    uint64_t parked_ns;          /* when it last parked (the pass's clock) */
    struct tr_task *joiner;      /* the task parked in tr_join on us */
    struct tr_task *join_target; /* as a joiner: the task we wait for */
    struct tr__group *group;     /* the group it is a child of (structure/group.c) */
    struct tr__link group_link;  /* in that group's children */
    struct tr__group *groups;    /* the groups it owns, not yet waited for */
    struct tr_mutex *mutexes;    /* the mutexes it holds (structure/sync.c) */
#if defined(__SANITIZE_ADDRESS__)
    void *asan_fake; /* ASan fake stack of this task, while switched out */
#endif
#if defined(__SANITIZE_THREAD__)
    void *tsan_fiber; /* its TSan fiber */
#endif
    char name[TR_NAME_MAX];
};

/* From the running task t to the next of the pass, or to the scheduler
 * (task.c); t has been queued or parked. */
void tr__task_switch_away(tr_task *t);
/* A wait's result that says "ended by its cut-short" (a kind's cancel
 * wakes with it): the call returns why it was cut short, decided when the
 * task resumes (tr__cut_return). Never a real result. */
#define TR__WAKE_CUT INT32_MIN

/* t->attn: one byte that every cancellation point tests first, so that the
 * common case (nothing applies) costs one load. */
#define TR_ATTN_CANCELLED 0x1u /* tr_cancel'led: level-triggered, never cleared */
#define TR_ATTN_PREP 0x2u      /* inside a tr_op prep callback: no blocking calls */
#define TR_ATTN_SCOPE 0x4u     /* one of its entered scopes has triggered */

static inline bool tr__task_cancelled(const tr_task *t)
{
    return (t->attn & TR_ATTN_CANCELLED) != 0;
}

/* The cancel of a wait that is never cut short (a close's wait for room
 * in the SQ, a condition's taking back of its mutex): the task's
 * cancellation counts as delivered there, so the kill rung may still end
 * the wait — a hold-out that never lets go cannot hang a shutdown. */
static inline void tr__cancel_held(tr_task *t)
{
    if (tr__task_cancelled(t))
        t->cancel_delivered = true;
}

static inline bool tr__task_in_prep(const tr_task *t)
{
    return (t->attn & TR_ATTN_PREP) != 0;
}

/* Parks the running task t in a wait of the given kind, whose record is w,
 * until a waker calls tr__task_wake; returns the result it handed over.
 * Inline (life/engine.h, which sees the engine): every blocking call goes
 * through it. */
static inline int tr__task_park(tr_task *t, struct tr__wait *w, const struct tr__wait_kind *kind);
/* Is t parked in a wait of this kind? */
static inline bool tr__task_parked_on(const tr_task *t, const struct tr__wait_kind *kind)
{
    return t->state == TR_TASK_PARKED && t->wait_kind == kind;
}
/* Queues the parked task t with result res for its wait. */
/* Both inline (engine.h, where the run queue is known): every hand-off of
 * a primitive and every completion goes through them. */
static inline void tr__task_wake(tr_task *t, int res);
static inline void tr__task_enqueue(tr_task *t);
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
 * and why? 0: no; -ECANCELED: a cancellation applies (the task's, outside
 * every shield, or a cancelled scope's); -ETIMEDOUT: an expired scope's
 * deadline. Every cancellation point and every re-check of a parked wait
 * asks this, and nothing else. Inline fast path (one byte); the walk over
 * the scopes is structure/scope.c's (the one call up from this layer, as
 * the predicate of the layer above it). */
static inline int tr__cut_short(const tr_task *t);
int tr__cut_short_slow(const tr_task *t, bool *task_level);
/* A blocking call of t returns because it was cut short: returns why
 * (never 0), tells the scopes that caught it, and counts the kill rung's
 * delivery when the task's own cancellation applied. */
int tr__cut_return(tr_task *t);
/* t resumed in a blocking call with a real result while something may cut
 * its calls short: only the kill rung's delivery. */
void tr__cut_note(tr_task *t);
/* Groups (structure/group.c): t, a child, ends with result; t, an owner,
 * ends with groups not waited for (on its stack: cancels their children
 * and waits for them); t's calls may now be cut short (cancel its groups
 * whose context is); t, an owner, is killed (its children forget it). */
void tr__group_child_ended(tr_engine *e, tr_task *t, int result);
void tr__groups_release(tr_task *t);
void tr__groups_recheck(tr_task *t);
void tr__groups_orphan(tr_engine *e, tr_task *t);
/* t ends holding mutexes: each is handed on (sync.c). */
void tr__mutexes_release(tr_engine *e, tr_task *t);
/* Has a group of t children that have not ended? */
bool tr__groups_live(const tr_task *t);
/* Was a live group of t initialised inside its scope s? Only asked when
 * s->_flags has TR__SCOPE_GROUPS (set by tr_group_init inside it): a
 * scope's exit then touches no more of the task than it must. */
bool tr__groups_in_scope(const tr_task *t, const struct tr_scope *s);
#define TR__SCOPE_GROUPS 0x80000000u /* engine-only, never a caller's flag */
/* Does t run inside a group of a's (a group of a's, or of the owner of
 * its group, and so on up)? Cancelling a would cancel t. */
bool tr__groups_ancestor(const tr_task *a, const tr_task *t);
/* The cancellation predicate for calls made in the context of scope s of
 * t and its enclosing ones (a group's children: s is the scope t was in at
 * tr_group_init). */
int tr__cut_short_from(const tr_task *t, const struct tr_scope *s, bool *task_level);
/* The same, counting at most cap of the shields opened (tr_shield_begin)
 * in s, or outside every scope when s is NULL: a group's context is the
 * shields its owner had open at tr_group_init, not those opened since
 * (shields nest, so those are the innermost cap of them). */
int tr__cut_short_capped(const tr_task *t, const struct tr_scope *s, unsigned cap,
                         bool *task_level);
/* G10: unlinks the scopes still entered when t ends (scope.c). */
void tr__scopes_release(tr_engine *e, tr_task *t);
/* Disarms t's deadline timer (kept armed lazily, scope.c): at t's end, and
 * the deadlock check's pruning. */
void tr__deadline_timer_drop(tr_engine *e, tr_task *t);
/* Every armed timer is a deadline timer (e->tm.len == e->dl_armed): would
 * each wake nobody (its task has no scope whose deadline may still
 * expire)? Disarms each such one it meets; stops at the first that may
 * wake someone (false). Amortised O(1) timers: what it passes over, it
 * disarms. */
bool tr__deadline_timers_idle(tr_engine *e);
/* Is a TR_SCOPE_SHIELD scope of t entered (the dump's "shielded")? */
bool tr__scope_shielded(const tr_task *t);
/* The dump's " deadline=...ms scope=..." for t (scope.c). */
void tr__scope_describe(const tr_task *t, uint64_t now, char *buf, size_t len);
/* Level-triggered cancel check at the top of every blocking call: when the
 * call is cut short it yields once (passing through the scheduler) and
 * returns the reason (-ECANCELED); else 0. Also refuses blocking calls
 * made inside a tr_op prep callback (-EPERM). */
int tr__cancel_point_slow(tr_task *t);
static inline int tr__cancel_point(tr_task *t)
{
    if (TR_LIKELY(t->attn == 0))
        return 0; /* the common case, inline in every blocking call */
    return tr__cancel_point_slow(t);
}
/* t is parked: end its wait if its call is now cut short (after a cancel,
 * or when shields break). */
static inline void tr__wait_recheck(tr_engine *e, tr_task *t);
extern TR_TLS tr_task *tr__current;

#endif /* TR_TASK_H */
