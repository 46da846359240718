/* SPDX-License-Identifier: MIT */
/*
 * task.c — tasks: spawn, switch, park/wake, end, join, detach, yield,
 * shields.
 *
 * Task states: READY (on the run queue) -> RUNNING -> PARKED (waiting in
 * the wait record t->wait) -> READY ... -> DONE (ended; its stack is back in the pool) ->
 * FREED (the record is recycled, after tr_join or tr_detach). The
 * scheduler switches into the first task of a pass; a task that parks,
 * yields or ends switches straight to the next task of the pass (one stack
 * switch, not two); the last one begins the next pass itself when the
 * scheduler has nothing to do (tr__loop_pass_inline, loop.c), else switches back
 * to it. Whoever runs next frees an ended task's stack (bury) and checks the
 * canary of the task that left (arrive).
 */
#include "tr_internal.h"

#include <errno.h>
#include <stddef.h>
#include <string.h>
#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/common_interface_defs.h>
#define TR_ASAN 1
#endif
#if defined(__SANITIZE_THREAD__)
/* ThreadSanitizer must know about every stack switch, or it mixes up the
 * shadow stacks of tasks and reports nonsense: each task is a TSan fiber. */
#include <sanitizer/tsan_interface.h>
#define TR_TSAN 1
#endif

TR_TLS tr_task *tr__current;

/* ---- switching ------------------------------------------------------------ */

#if defined(TR_ASAN)
/* Arriving on a task's stack: ASan tells where we came from. Only a switch
 * from the scheduler teaches us the scheduler's stack; a direct switch (the
 * leaving task is in switch_prev until arrive) comes from another task's. */
static void asan_arrived(tr_engine *e, void *fake)
{
    const void *lo;
    size_t size;
    __sanitizer_finish_switch_fiber(fake, &lo, &size);
    if (!e->sch.switch_prev) {
        e->sch.stack_lo = lo;
        e->sch.stack_size = size;
    }
}
#endif

/* An ended task that no code runs on any more: its stack (and TSan fiber)
 * go back, and its record too when nobody will join it. */
static void release_stack(tr_engine *e, tr_task *t)
{
#if defined(TR_TSAN)
    __tsan_destroy_fiber(t->tsan_fiber);
    t->tsan_fiber = NULL;
#endif
    if (TR_UNLIKELY(t->stack_lent))
        tr__stack_abandon(e, t->stack);
    else
        tr__stack_free(e, t->stack);
    t->stack = NULL;
    if (t->detached)
        tr__task_free_record(e, t);
}

/* The task that just ended is off its stack once another stack runs: the
 * one that runs next (task or scheduler) frees it. */
static void bury(tr_engine *e)
{
    tr_task *d = e->sch.dying;
    if (!d)
        return;
    TR_ASSERT(d->state == TR_TASK_DONE);
    TR_ASSERT(d != tr__current);
    e->sch.dying = NULL;
    release_stack(e, d);
}

/* On a task's stack after a switch: the task that switched here directly
 * is off its stack now, switch frame included, so its canary is checked
 * here (the scheduler checks those that come back to it); then a task that
 * ended is buried. */
static void arrive(tr_engine *e)
{
    tr_task *p = e->sch.switch_prev;
    if (p) {
        e->sch.switch_prev = NULL;
        tr__stack_canary_check(p);
    }
    bury(e);
}

/* The next task of this pass that a task may hand the CPU to directly: not
 * one to be killed (only the scheduler tears those down). */
static tr_task *direct_next(tr_engine *e)
{
    tr_task *n = e->sch.batch;
    return (n && !n->killed) ? n : NULL;
}

/*
 * From a task to the next one of this pass, or back to the scheduler when
 * there is none. final: the task has ended and its stack will be freed by
 * whoever runs next (bury), so ASan may drop its fake stack. A direct
 * switch costs one stack switch instead of two; the pass is the same: the
 * scheduler's batch (e->sch.batch) is consumed in order either way, and tasks
 * woken meanwhile wait for the next pass.
 */
static void switch_away(tr_task *t, bool final)
{
    tr_engine *e = t->e;
    tr_task *n = direct_next(e);
    (void) final; /* used by the ASan annotations only */
    if (!n && !e->sch.batch && e->sch.run_head && tr__loop_pass_inline(e))
        n = direct_next(e);
    if (n == t) {
        /* t yielded and is the next pass's first: it just goes on. */
        e->sch.batch = t->run_next;
        t->run_next = NULL;
        t->state = TR_TASK_RUNNING;
        return;
    }
    if (n) {
        TR_ASSERT(n->state == TR_TASK_READY);
        e->sch.batch = n->run_next;
        n->run_next = NULL;
        tr__prefetch_frame(e->sch.batch);
        n->state = TR_TASK_RUNNING;
        e->sch.switch_prev = t; /* its canary is checked on arrival */
        tr__current = n;
#if defined(TR_ASAN)
        __sanitizer_start_switch_fiber(final ? NULL : &t->asan_fake, n->stack->lo,
                                       (size_t)((char *)n->stack->hi - (char *)n->stack->lo));
#endif
#if defined(TR_TSAN)
        __tsan_switch_to_fiber(n->tsan_fiber, 0);
#endif
        tr__ctx_switch(&t->sp, n->sp);
    } else {
        e->sch.back = t;
#if defined(TR_ASAN)
        __sanitizer_start_switch_fiber(final ? NULL : &t->asan_fake, e->sch.stack_lo,
                                       e->sch.stack_size);
#endif
#if defined(TR_TSAN)
        __tsan_switch_to_fiber(e->sch.tsan_fiber, 0);
#endif
        tr__ctx_switch(&t->sp, e->sch.sp);
    }
#if defined(TR_ASAN)
    asan_arrived(e, t->asan_fake);
#endif
    arrive(e);
}

static void task_finish(tr_task *t, int result) __attribute__((noreturn));

static void task_entry(void *arg)
{
    tr_task *t = arg;
#if defined(TR_ASAN)
    asan_arrived(t->e, NULL); /* first time on this stack */
#endif
    arrive(t->e);
    task_finish(t, t->fn(t->arg));
}

void tr__run_task(tr_engine *e, tr_task *t)
{
    TR_ASSERT(t->state == TR_TASK_READY);
    TR_ASSERT(tr__current == NULL);
    if (TR_UNLIKELY(t->killed)) {
        tr__kill_teardown(e, t);
        return;
    }
    t->state = TR_TASK_RUNNING;
    tr__current = t;
#if defined(TR_ASAN)
    TR_ASSERT(e->sch.switch_prev == NULL); /* asan_arrived: from the scheduler */
    __sanitizer_start_switch_fiber(&e->sch.asan_fake, t->stack->lo,
                                   (size_t)((char *)t->stack->hi - (char *)t->stack->lo));
#endif
#if defined(TR_TSAN)
    e->sch.tsan_fiber = __tsan_get_current_fiber();
    __tsan_switch_to_fiber(t->tsan_fiber, 0);
#endif
    tr__ctx_switch(&e->sch.sp, t->sp);
#if defined(TR_ASAN)
    __sanitizer_finish_switch_fiber(e->sch.asan_fake, NULL, NULL);
#endif
    /* Back, from t or from a task t (or its successors) switched to. */
    tr_task *b = e->sch.back;
    TR_ASSERT(b != NULL && b == tr__current);
    e->sch.back = NULL;
    tr__current = NULL;
    tr__stack_canary_check(b);
    bury(e);
}

/* ---- queueing, parking, waking -------------------------------------------- */

void tr__task_switch_away(tr_task *t)
{
    switch_away(t, false);
}

__attribute__((noinline)) int tr__cancel_point_slow(tr_task *t)
{
    if (TR_UNLIKELY(tr__task_in_prep(t)))
        return -EPERM; /* inside a tr_op prep callback: the SQE is half made */
    if (TR_LIKELY(tr__cut_short(t) == 0))
        return 0;
    /* Pass through the scheduler so that a task that ignores -ECANCELED in
     * a loop can neither starve the others nor escape being killed. The
     * answer is the walk's after the pass (a cancel may have come). Its
     * cancellation is then delivered: the kill rung may reach it (DESIGN
     * section 4: a rung fires only after the one before it was delivered). */
    TR_ASSERT(t->state == TR_TASK_RUNNING);
    tr__task_enqueue(t);
    switch_away(t, false);
    return tr__cut_return(t);
}

/* ---- records ------------------------------------------------------------- */

static void list_unlink(tr_task **head, tr_task *t)
{
    if (t->all_prev)
        t->all_prev->all_next = t->all_next;
    else
        *head = t->all_next;
    if (t->all_next)
        t->all_next->all_prev = t->all_prev;
    t->all_prev = t->all_next = NULL;
}

static void list_push(tr_task **head, tr_task *t)
{
    t->all_prev = NULL;
    t->all_next = *head;
    if (*head)
        (*head)->all_prev = t;
    *head = t;
}

void tr__task_free_record(tr_engine *e, tr_task *t)
{
    TR_ASSERT(t->state == TR_TASK_DONE);
    TR_ASSERT(t->stack == NULL);
    list_unlink(&e->sch.done_head, t);
    t->state = TR_TASK_FREED;
    t->all_next = e->sch.free_tasks;
    e->sch.free_tasks = t;
}

void tr__task_records_free(tr_engine *e)
{
    while (e->sch.done_head) {
        tr_task *t = e->sch.done_head;
        t->detached = true;
        tr__task_free_record(e, t);
    }
    e->sch.free_tasks = NULL;
    while (e->sch.task_blocks) {
        void *b = e->sch.task_blocks;
        e->sch.task_blocks = *(void **)b;
        free(b);
    }
}

/* ---- spawn and end --------------------------------------------------------- */

/* Records are cut from blocks of this many, cache-line aligned and
 * adjacent: a pass over tasks spawned together walks memory in order (a
 * record of its own from aligned_alloc took ~1.5 times the bytes and
 * scattered them). Never given back while the engine lives: a record is
 * recycled (task.h), and a scope's owner check may read an old one. */
#define TR_TASK_BLOCK 64
#define TR_TASK_RECORD_SIZE ((sizeof(tr_task) + 63) & ~(size_t)63)

static int records_grow(tr_engine *e)
{
    /* The block's first cache line links it to the engine's other blocks. */
    char *b =
        TR_FAULT(TR_FS_ALLOC) ? NULL : aligned_alloc(64, 64 + TR_TASK_BLOCK * TR_TASK_RECORD_SIZE);
    if (!b)
        return -ENOMEM;
    *(void **)b = e->sch.task_blocks;
    e->sch.task_blocks = b;
    /* Pushed from the last, so that they are taken in address order. */
    for (size_t i = TR_TASK_BLOCK; i-- > 0;) {
        tr_task *t = (tr_task *)(void *)(b + 64 + i * TR_TASK_RECORD_SIZE);
        t->state = TR_TASK_FREED;
        t->id = 0;
        t->all_next = e->sch.free_tasks;
        e->sch.free_tasks = t;
    }
    return 0;
}

int tr__task_records_prefill(tr_engine *e, unsigned n)
{
    unsigned have = 0;
    /* Bounded by n: the free list is counted up to n, then grown. */
    for (const tr_task *t = e->sch.free_tasks; t && have < n; t = t->all_next)
        have++;
    for (; have < n; have += TR_TASK_BLOCK) {
        int err = records_grow(e);
        if (err)
            return err;
    }
    return 0;
}

/* A record (recycled or new) and a stack; on error nothing is taken. */
static int task_alloc(tr_engine *e, size_t size, tr_task **tp, struct tr_stack **sp)
{
    if (!e->sch.free_tasks) {
        int err = records_grow(e);
        if (err)
            return err;
    }
    tr_task *t = e->sch.free_tasks;
    TR_ASSERT(t->state == TR_TASK_FREED);
    int err = tr__stack_alloc(e, size, sp);
    if (err)
        return err; /* the record stays on the free list */
    e->sch.free_tasks = t->all_next;
    *tp = t;
    return 0;
}

/* Takes a record and a default-size stack now, for the engine's own task
 * (the at-shutdown hooks) to be spawned later without a chance to fail. */
int tr__task_reserve(tr_engine *e)
{
    if (e->task_reserve)
        return 0;
    tr_task *t;
    struct tr_stack *s;
    int err = task_alloc(e, e->stk.size, &t, &s);
    if (err)
        return err;
    memset(t, 0, sizeof(*t));
    t->state = TR_TASK_FREED; /* not a task yet */
    t->stack = s;
    e->task_reserve = t;
    return 0;
}

void tr__task_reserve_release(tr_engine *e)
{
    tr_task *t = e->task_reserve;
    if (!t)
        return;
    e->task_reserve = NULL;
    tr__stack_free(e, t->stack);
    t->stack = NULL;
    t->all_next = e->sch.free_tasks; /* state FREED already */
    e->sch.free_tasks = t;
}

/* Every field of a record zero but the name, which only needs its first
 * byte: in 16-byte stores, not the memset a compiler turns into a rep
 * stos whose start-up costs more than the stores (the record is
 * cache-line aligned, task_alloc). */
static inline void record_zero(tr_task *t)
{
    typedef uint64_t v2 __attribute__((vector_size(16), may_alias));
    enum { N = offsetof(struct tr_task, name) / sizeof(v2) };
    _Static_assert(offsetof(struct tr_task, name) + TR_NAME_MAX == sizeof(struct tr_task),
                   "the name is the record's last field, with nothing after it: "
                   "record_zero zeroes all before it");
    v2 *p = (v2 *)(void *)t, z = {0, 0};
    for (size_t i = 0; i < N; i++) {
#if defined(__x86_64__)
        __asm__("" : "+x"(z)); /* keeps it a run of stores, not a memset */
#endif
        p[i] = z;
    }
    memset((char *)t + N * sizeof(v2), 0, offsetof(struct tr_task, name) - N * sizeof(v2));
    t->name[0] = '\0';
}

int tr_spawn(tr_engine *e, tr_task **out, tr_fn fn, void *arg, const struct tr_spawn_opts *o)
{
    if (!e)
        e = tr__engine_of_caller();
    if (!e || !fn)
        return -EINVAL;
    size_t size = e->stk.size;
    if (o) {
        if (o->flags & ~TR_SPAWN_LATE)
            return -EINVAL;
        if (o->stack_size) {
            if (o->stack_size < TR_STACK_MIN)
                return -EINVAL;
            size = tr__stack_round(o->stack_size);
            if (!size)
                return -ENOMEM;
        }
    }
    tr_task *t;
    struct tr_stack *s;
    if (e->spawning_internal && e->task_reserve && size == e->stk.size) {
        t = e->task_reserve; /* taken by tr_at_shutdown: cannot fail now */
        e->task_reserve = NULL;
        s = t->stack;
    } else {
        int err = task_alloc(e, size, &t, &s);
        if (err)
            return err;
    }
    record_zero(t);
    tr__timer_init(&t->sleep_tm, NULL); /* not armed; tr_sleep_ns sets it up */
    tr__timer_init(&t->dl_tm, NULL);    /* not armed; scope.c sets it up */
    t->e = e;
    t->stack = s;
    t->id = ++e->sch.next_id;
    t->fn = fn;
    t->arg = arg;
    t->late = o && (o->flags & TR_SPAWN_LATE);
    t->internal = e->spawning_internal;
    /* During a shutdown, new tasks start cancelled (not the engine's own). */
    if (tr__shutdown_begun(e) && !t->internal)
        t->attn |= TR_ATTN_CANCELLED;
    if (t->late)
        e->sch.live_late++;
    if (o && o->name) {
        /* An empty name stays empty: tr_task_name writes the default. */
        strncpy(t->name, o->name, TR_NAME_MAX - 1);
        t->name[TR_NAME_MAX - 1] = '\0';
    }
    t->sp = tr__ctx_make(s->lo, s->hi, task_entry, t);
#if defined(TR_TSAN)
    t->tsan_fiber = __tsan_create_fiber(0);
#endif
    t->detached = (out == NULL);
    list_push(&e->sch.all_head, t);
    e->st.tasks_spawned++;
    e->sch.live++;
    tr__task_enqueue(t);
    if (out)
        *out = t;
    return 0;
}

/* The end of a task, on whichever stack: results, counters, lists,
 * joiners. killed: the shutdown's Kill phase ends it from the scheduler. */
void tr__task_end(tr_engine *e, tr_task *t, int result, bool killed)
{
    TR_ASSERT(t->state == TR_TASK_RUNNING);
    if (TR_UNLIKELY(t->scope != NULL))
        tr__scopes_release(e, t);              /* G10: none of its stack's scopes stays linked */
    TR_ASSERT(t->wait == NULL);                /* no record of its stack is linked (G10) */
    TR_ASSERT(!tr__timer_armed(&t->sleep_tm)); /* nor a timer of its record */
    if (tr__timer_armed(&t->dl_tm))
        tr__deadline_timer_drop(e, t); /* its scopes' (kept armed lazily, scope.c) */
    t->result = result;
    if (killed)
        e->st.tasks_killed++;
    else if (result >= 0)
        e->st.tasks_ok++;
    else if (result == -ECANCELED)
        e->st.tasks_cancelled++;
    else
        e->st.tasks_failed++;
    TR_ASSERT(e->sch.live > 0);
    e->sch.live--;
    if (t->late) {
        TR_ASSERT(e->sch.live_late > 0);
        e->sch.live_late--;
    }
    list_unlink(&e->sch.all_head, t);
    list_push(&e->sch.done_head, t);
    t->state = TR_TASK_DONE;
    /* The joiner keeps its claim (t->joiner) until it has run and freed
     * the record: between this wake and then, nobody else may join or
     * detach t. */
    tr_task *j = t->joiner;
    if (j && tr__task_parked_on(j, &tr__wk_join))
        tr__task_wake(j, 0); /* not if it was cancelled and is about to resume */
    /* A joiner that ends without returning from tr_join (killed) drops its
     * claim, so the target's handle can still be joined or detached. */
    if (t->join_target && t->join_target->joiner == t)
        t->join_target->joiner = NULL;
    t->join_target = NULL;
    if (TR_UNLIKELY(t->mutexes != NULL))
        tr__mutexes_release(e, t); /* nobody else could ever unlock them */
    if (TR_UNLIKELY(t->group != NULL))
        tr__group_child_ended(e, t, killed ? -ECANCELED : result);
    if (TR_UNLIKELY(t->groups != NULL)) {
        TR_ASSERT(killed); /* returning owners released theirs (task_finish) */
        tr__groups_orphan(e, t);
    }
    tr__cancel_notify_end(e, t);
    if (TR_UNLIKELY(t->fn == tr__served_run))
        tr__served_ended(e, t, t->result); /* a tr_call's: its caller gets the result */
    tr__shutdown_task_ended(e, t);
    if (killed) {
        /* Never resumed, off its stack already: free it now. */
        release_stack(e, t);
    }
}

static void task_finish(tr_task *t, int result)
{
    tr_engine *e = t->e;
    if (TR_UNLIKELY(t->groups != NULL)) {
        /* G10: their children end before it does; its scopes (in frames
         * that are gone too) are unlinked first, as at its end. Its result
         * is set: the kill rung kills the children, not it. */
        t->returned = true;
        if (t->scope)
            tr__scopes_release(e, t);
        tr__groups_release(t);
    }
    tr__task_end(e, t, result, false);
    TR_ASSERT(e->sch.dying == NULL);
    e->sch.dying = t;
    switch_away(t, true);
    TR_ASSERT(!"a task that ended was resumed");
    __builtin_unreachable();
}

/* ---- the public task calls ------------------------------------------------- */

tr_task *tr_self(void)
{
    return tr__current;
}

tr_engine *tr_self_engine(void)
{
    return tr__current ? tr__current->e : NULL;
}

uint64_t tr_task_id(const tr_task *t)
{
    return t ? t->id : 0;
}

const char *tr_task_name(const tr_task *tc)
{
    if (!tc)
        return NULL;
    tr_task *t = (tr_task *)tc; /* the default name is written lazily */
    if (!t->name[0]) {
        /* "task-<id>" without snprintf: this runs in the SIGSEGV handler. */
        char digits[24];
        int n = 0;
        uint64_t v = t->id;
        do {
            digits[n++] = (char)('0' + v % 10);
            v /= 10;
        } while (v);
        memcpy(t->name, "task-", 5);
        for (int i = 0; i < n; i++)
            t->name[5 + i] = digits[n - 1 - i];
        t->name[5 + n] = '\0';
    }
    return t->name;
}

int tr_task_result(const tr_task *t, int *result)
{
    if (!t || !result || t->state == TR_TASK_FREED)
        return -EINVAL;
    if (t->state != TR_TASK_DONE)
        return -EBUSY;
    *result = t->result;
    return 0;
}

int tr_join(tr_task *t, int *result)
{
    tr_task *self = tr__current;
    if (!self)
        return -EPERM;
    if (!t || t == self || t->e != self->e)
        return -EINVAL;
    if (t->state == TR_TASK_FREED || t->detached)
        return -EINVAL;
    if (t->joiner && t->joiner != self)
        return -EINVAL;
    /* Claim t for the whole call, the cancel point's yield included: no
     * other task may join or detach it until we return. */
    t->joiner = self;
    self->join_target = t; /* so that a kill of ours drops the claim */
    int why = tr__cancel_point(self);
    if (why) {
        self->join_target = NULL;
        t->joiner = NULL;
        return why;
    }
    if (t->state != TR_TASK_DONE) {
        struct tr__wait w;
        int r = tr__task_park(self, &w, &tr__wk_join);
        self->join_target = NULL;
        TR_ASSERT(t->joiner == self);
        if (r < 0) {
            /* Cancelled while waiting: give up the claim; the handle stays
             * ours (the target may have ended meanwhile). */
            t->joiner = NULL;
            return r;
        }
    }
    self->join_target = NULL;
    TR_ASSERT(t->state == TR_TASK_DONE);
    TR_ASSERT(t->joiner == self);
    t->joiner = NULL;
    if (result)
        *result = t->result;
    tr__task_free_record(self->e, t);
    return 0;
}

/* A joiner keeps its claim on the target until it has resumed (tr_join
 * drops it): meanwhile nobody else may join or detach the target. */
static void join_cancel(tr_engine *e, tr_task *t)
{
    (void)e;
    TR_ASSERT(t->join_target && t->join_target->joiner == t);
    tr__task_wake(t, TR__WAKE_CUT);
}

const struct tr__wait_kind tr__wk_join = {.name = "joining", .cancel = join_cancel};

int tr_detach(tr_task *t)
{
    if (!t || t->state == TR_TASK_FREED || t->detached || t->joiner)
        return -EINVAL;
    if (t->state == TR_TASK_DONE && t->stack == NULL) {
        t->detached = true;
        tr__task_free_record(t->e, t);
        return 0;
    }
    t->detached = true;
    return 0;
}

int tr_yield(void)
{
    tr_task *t = tr__current;
    if (!t)
        return -EPERM;
    int why = tr__cancel_point(t);
    if (why)
        return why;
    tr__task_enqueue(t);
    switch_away(t, false);
    TR_ASSERT(t->state == TR_TASK_RUNNING);
    return tr__cut_short(t) ? tr__cut_return(t) : 0;
}

bool tr_is_cancelled(void)
{
    return tr__current ? tr__task_cancelled(tr__current) : false;
}

int tr_shield_begin(void)
{
    tr_task *t = tr__current;
    if (!t)
        return -EPERM;
    /* A shield scope without a deadline, nested where the task is: its
     * depth is counted in the innermost scope (or outside every scope),
     * which the cancellation walk stops at (scope.c). */
    if (t->scope)
        t->scope->_shields++;
    else
        t->shield_base++;
    return ++t->shield;
}

int tr_shield_end(void)
{
    tr_task *t = tr__current;
    if (!t)
        return -EPERM;
    unsigned *depth = t->scope ? &t->scope->_shields : &t->shield_base;
    if (t->shield == 0 || *depth == 0)
        return -EINVAL; /* none open, or its begin was outside the innermost scope */
    (*depth)--;
    /* The owner may be cut short again: so may its groups' children. */
    if (TR_UNLIKELY(t->groups != NULL))
        tr__groups_recheck(t);
    return --t->shield;
}
