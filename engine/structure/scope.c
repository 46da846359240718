/* SPDX-License-Identifier: MIT */
/*
 * scope.c — cancel scopes and deadlines (DESIGN section 7).
 *
 * A scope is a record in its owner's memory, linked into its task's chain
 * (t->scope, innermost first). It triggers once — its deadline fires (a
 * timer record in the wheel, no SQE) or tr_scope_cancel — and stays
 * triggered until its exit. What a blocking call sees is decided by one
 * walk (tr__cut_short_slow), from the innermost scope outwards:
 *   - a cancelled scope cuts with -ECANCELED, an expired one with
 *     -ETIMEDOUT; -ECANCELED wins when both apply;
 *   - a shield (TR_SCOPE_SHIELD, or a tr_shield_begin opened inside a
 *     scope, or outside every scope) ends the walk: what lies outside it
 *     does not reach in — until the shutdown breaks shields;
 *   - past the outermost scope, the task's own cancellation applies.
 * The walk only runs when the task's attention byte says something may
 * apply (TR_ATTN_CANCELLED or TR_ATTN_SCOPE): the fast path is one load.
 *
 * Deadlines: one timer per task (t->dl_tm, in its record), armed for the
 * earliest deadline of its scopes or earlier, and kept lazily: entering a
 * scope with a later deadline, leaving one, or moving one later touches no
 * timer at all; only an earlier deadline moves it. When it fires, the
 * owner's scopes are walked: those whose deadline has passed trigger, and
 * the timer is re-armed for the earliest left (a timer that fired early
 * for a scope that is gone costs that one walk). So a scope per request or
 * per op costs a few stores, not a timer insert and remove (bench_scope).
 *
 * A trigger re-checks the owner's wait: a parked op gets its per-op
 * ASYNC_CANCEL and the owner waits for the op's own CQE (G1); the op's real
 * result wins a race (G5); any other wait ends at once. The call then
 * returns the walk's answer (tr__cut_return), which also tells each
 * triggered scope that caught it (what its tr_scope_exit reports).
 *
 * G10: a task that ends with scopes entered has them unlinked here (their
 * timers disarmed) before its stack goes, counted and named.
 */
#include "tr_internal.h"

#include <errno.h>
#include <limits.h>
#include <string.h>
#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#endif

#define TR_SCOPE_MAGIC 0x5c09e5a1u

/* Is s entered in e, by a task that is alive and has not had its scopes
 * unlinked since (G10: a killed task's scope in a connection's heap record,
 * a hook's scope after the hook returned, a fresh struct where an old one
 * lay)? Task records are recycled, never freed while their engine lives:
 * reading one of e's is safe, and its id tells a new owner apart. A scope
 * of another engine (by serial: a destroyed engine's address and records
 * may be reused) is never followed: its records may be freed, or another
 * thread's. */
static bool scope_entered(const struct tr_scope *s, const tr_engine *e)
{
    if (s->_magic != TR_SCOPE_MAGIC || !s->_task || s->_engine != e->serial)
        return false;
    const tr_task *t = s->_task;
    return t->id == s->_task_id && t->scope_epoch == s->_epoch &&
           (t->state == TR_TASK_READY || t->state == TR_TASK_RUNNING || t->state == TR_TASK_PARKED);
}

uint64_t tr_now_ns(void)
{
    uint64_t now = tr__now_ns();
    tr_task *t = tr__current;
    if (t)
        t->e->sch.clock_ns = now; /* fresher for tr_deadline_after, for free */
    return now;
}

/* The clock read: the first tr_deadline_after of a pass, or outside a
 * task (out of line: the common call has no frame). */
static __attribute__((noinline)) uint64_t deadline_after_read(tr_task *t, uint64_t ns)
{
    uint64_t now = tr__now_ns();
    if (t)
        t->e->sch.clock_ns = now;
    return tr__add_sat(now, ns);
}

uint64_t tr_deadline_after(uint64_t ns)
{
    tr_task *t = tr__current;
    uint64_t now;
    if (TR_UNLIKELY(t == NULL) || TR_UNLIKELY((now = t->e->sch.clock_ns) == 0))
        return deadline_after_read(t, ns);
    return tr__add_sat(now, ns);
}

static bool scope_triggered(const struct tr_scope *s)
{
    return s->_expired || s->_cancelled;
}

/* ---- the walk --------------------------------------------------------------- */

/* A scope left entered by a function that returned is dead memory, soon
 * reused: misuse, loud when it shows (G8) rather than silently wrong. It
 * shows when the record was overwritten (its magic or owner gone), or when
 * it lies on the task's stack below the stack pointer (the running task's,
 * or the one saved when it switched): no live frame is there. */
static bool scope_dead(const tr_task *t, const struct tr_scope *s)
{
    const char *p = (const char *)s;
    /* Where it lies first: a dead frame is not even read. */
    if (t->stack && p >= (const char *)t->stack->lo && p < (const char *)t->stack->hi) {
        const char *sp = t == tr__current ? (const char *)__builtin_frame_address(0) : t->sp;
        if (sp && p < sp)
            return true;
    }
    return s->_magic != TR_SCOPE_MAGIC || s->_task != t;
}

static void scope_live_check(const tr_task *t, const struct tr_scope *s)
{
    bool dead = scope_dead(t, s);
    if (TR_UNLIKELY(dead))
        tr__task_misuse_fail(t, "a cancel scope was left entered by a function that returned "
                                "(tr_scope_exit it before returning)");
}

/* Shields hold until the shutdown breaks them (its grace period). */
static bool shields_hold(const tr_task *t)
{
    return !t->e->sd.shields_broken;
}

int tr__cut_short_slow(const tr_task *t, bool *task_level)
{
    return tr__cut_short_from(t, t->scope, task_level);
}

int tr__cut_short_from(const tr_task *t, const struct tr_scope *from, bool *task_level)
{
    return tr__cut_short_capped(t, from, UINT_MAX, task_level);
}

int tr__cut_short_capped(const tr_task *t, const struct tr_scope *from, unsigned cap,
                         bool *task_level)
{
    bool hold = shields_hold(t), cancelled = false, reached = true;
    int why = 0;
    /* The walk goes on past a cancelled scope: whether the task's own
     * cancellation reaches the call too decides the kill rung's delivery
     * (a task looping on -ECANCELED inside a cancelled scope must still be
     * killable at shutdown). */
    for (const struct tr_scope *s = from; s && reached; s = s->_parent) {
        scope_live_check(t, s);
        unsigned shields = s == from && s->_shields > cap ? cap : s->_shields;
        if (shields > 0 && hold) {
            reached = false; /* a tr_shield_begin inside s keeps s and beyond out */
            break;
        }
        if (s->_cancelled)
            cancelled = true;
        else if (s->_expired)
            why = -ETIMEDOUT;
        if ((s->_flags & TR_SCOPE_SHIELD) && hold)
            reached = false;
    }
    unsigned base = !from && t->shield_base > cap ? cap : t->shield_base;
    if (reached && base > 0 && hold)
        reached = false;
    bool tl = reached && tr__task_cancelled(t);
    if (task_level)
        *task_level = tl;
    return (cancelled || tl) ? -ECANCELED : why;
}

/* The scopes that cut a call short with why: each applicable triggered
 * scope of that cause (the same walk). */
static void mark_caught(tr_task *t, int why)
{
    bool hold = shields_hold(t);
    for (struct tr_scope *s = t->scope; s; s = s->_parent) {
        if (s->_shields > 0 && hold)
            return;
        if (why == -ECANCELED ? s->_cancelled : (s->_expired && !s->_cancelled))
            s->_caught = why;
        if ((s->_flags & TR_SCOPE_SHIELD) && hold)
            return;
    }
}

int tr__cut_return(tr_task *t)
{
    if (!t->scope) { /* the common case: the task's own cancellation, no scope */
        TR_ASSERT(tr__cut_short(t) == -ECANCELED);
        t->cancel_delivered = true;
        return -ECANCELED;
    }
    bool task_level;
    int why = tr__cut_short_slow(t, &task_level);
    TR_ASSERT(why != 0); /* nothing un-triggers while the call waits */
    if (task_level)
        t->cancel_delivered = true; /* the kill rung's rule (DESIGN section 4) */
    mark_caught(t, why);
    if (why == -ETIMEDOUT)
        t->e->st.deadline_cuts++;
    return why;
}

void tr__cut_note(tr_task *t)
{
    if (!t->scope) {
        if (tr__cut_short(t) != 0)
            t->cancel_delivered = true;
        return;
    }
    bool task_level;
    (void)tr__cut_short_slow(t, &task_level);
    if (task_level)
        t->cancel_delivered = true;
}

/* ---- triggering ------------------------------------------------------------- */

/* Marks s triggered (no re-check of the owner's wait). */
static void mark(struct tr_scope *s, bool cancel)
{
    tr_task *t = s->_task;
    bool was = scope_triggered(s);
    if (cancel)
        s->_cancelled = 1;
    else
        s->_expired = 1;
    if (!was) {
        t->scopes_triggered++;
        t->attn |= TR_ATTN_SCOPE;
    }
}

static void trigger(tr_engine *e, struct tr_scope *s, bool cancel)
{
    mark(s, cancel);
    if (s->_task->state == TR_TASK_PARKED)
        tr__wait_recheck(e, s->_task);
    if (TR_UNLIKELY(s->_task->groups != NULL))
        tr__groups_recheck(s->_task);
}

/* The deadline timers (t->dl_tm), counted apart (e->dl_armed): one kept
 * armed lazily for a task with no scope left wakes nobody, and the
 * deadlock check must not count it — it prunes them instead
 * (tr__deadline_timers_idle), so that a scope's enter and exit never
 * account for it. */
static void deadline_fire(tr_engine *e, struct tr__timer *tm);

static void dl_arm(tr_engine *e, tr_task *t, uint64_t deadline_ns)
{
    t->dl_tm.fire = deadline_fire;
    (void)tr__timer_arm(e, &t->dl_tm, deadline_ns);
    e->dl_armed++;
}

/* Its timer was disarmed, or fired. */
static void dl_gone(tr_engine *e)
{
    TR_ASSERT(e->dl_armed > 0);
    e->dl_armed--;
}

void tr__deadline_timer_drop(tr_engine *e, tr_task *t)
{
    tr__timer_disarm(e, &t->dl_tm);
    dl_gone(e);
}

/* May one of t's scopes still expire (a deadline, not triggered)? Bounded
 * by its scopes. */
static bool deadline_pending(const tr_task *t)
{
    for (const struct tr_scope *s = t->scope; s; s = s->_parent) {
        scope_live_check(t, s);
        if (s->_deadline_ns && s->_deadline_ns != UINT64_MAX && !scope_triggered(s))
            return true;
    }
    return false;
}

/* A deadline timer that can wake nobody (its task has no scope whose
 * deadline may still expire: none left, or none with a deadline, or all
 * triggered): disarmed (true); one that may stops the walk (false). A
 * deadline set later arms it again (set_deadline_slow). */
static bool dl_prune(tr_engine *e, struct tr__timer *tm)
{
    TR_ASSERT(tm->fire == deadline_fire); /* only asked when all armed are */
    tr_task *t = tr__container_of(tm, tr_task, dl_tm);
    if (deadline_pending(t))
        return false;
    tr__deadline_timer_drop(e, t);
    return true;
}

bool tr__deadline_timers_idle(tr_engine *e)
{
    TR_ASSERT(e->tm.len == e->dl_armed);
    return tr__timers_drop_while(e, dl_prune);
}

/* The owner's deadline timer fired: every scope whose deadline has passed
 * triggers; the timer is re-armed for the earliest deadline left. */
static void deadline_fire(tr_engine *e, struct tr__timer *tm)
{
    tr_task *t = tr__container_of(tm, tr_task, dl_tm);
    dl_gone(e); /* no longer armed */
    uint64_t now = e->tm.now_ns, next = 0;
    bool any = false;
    /* Bounded by the task's scopes. */
    for (struct tr_scope *s = t->scope; s; s = s->_parent) {
        scope_live_check(t, s);
        if (!s->_deadline_ns || scope_triggered(s))
            continue;
        if (s->_deadline_ns <= now) {
            mark(s, false);
            any = true;
        } else if (s->_deadline_ns != UINT64_MAX && (!next || s->_deadline_ns < next)) {
            next = s->_deadline_ns; /* UINT64_MAX: never due, no timer */
        }
    }
    if (next)
        dl_arm(e, t, next);
    if (any && t->state == TR_TASK_PARKED)
        tr__wait_recheck(e, t);
    if (any && TR_UNLIKELY(t->groups != NULL))
        tr__groups_recheck(t);
}

/* set_deadline's cases other than the common one. */
static __attribute__((noinline)) void set_deadline_slow(tr_engine *e, struct tr_scope *s,
                                                        uint64_t deadline_ns)
{
    /* Passed already: triggered now, so the next call does not even start.
     * The pass's clock (coarse, read once a pass) is never ahead of the
     * precise one and lags it by a jiffy and the pass: only a deadline near
     * it pays for reading the precise clock. */
    if (deadline_ns == UINT64_MAX)
        return; /* never due (a saturated tr_deadline_after): no timer */
    uint64_t pass = e->sch.pass_ns;
    if (deadline_ns <= pass ||
        (deadline_ns < pass + TR_COARSE_LAG_NS && deadline_ns <= tr__now_ns())) {
        trigger(e, s, false);
        return;
    }
    tr_task *t = s->_task;
    struct tr__timer *tm = &t->dl_tm;
    if (!tr__timer_armed(tm)) {
        dl_arm(e, t, deadline_ns);
    } else if (deadline_ns < tm->deadline_ns) {
        tr__timer_disarm(e, tm); /* earlier: moved now (still counted armed) */
        (void)tr__timer_arm(e, tm, deadline_ns);
    } /* else it fires earlier already: re-armed then */
}

/* Sets s's deadline (s not triggered); 0 removes it (the owner's timer
 * stays as it is: lazily, see above). Inline, for a scope per request or
 * per op: the common case (far enough ahead not to have passed, and the
 * owner's timer armed for no later) is two compares. */
static inline void set_deadline(tr_engine *e, struct tr_scope *s, uint64_t deadline_ns)
{
    s->_deadline_ns = deadline_ns;
    if (deadline_ns == 0)
        return;
    const struct tr__timer *tm = &s->_task->dl_tm;
    if (TR_LIKELY(deadline_ns >= e->sch.pass_ns + TR_COARSE_LAG_NS && tr__timer_armed(tm) &&
                  deadline_ns >= tm->deadline_ns))
        return;
    set_deadline_slow(e, s, deadline_ns);
}

/* ---- the calls -------------------------------------------------------------- */

/* s's bytes carry the magic (an exited scope's are cleared, so: entered,
 * or left entered by a task that is gone, or chance): entering it again is
 * refused while it is entered — here, or in another engine that lives
 * (its thread's to say whether it still is). Out of line: the common
 * enter (fresh or exited storage) never comes here. */
static __attribute__((noinline)) bool enter_refused(const struct tr_scope *s, const tr_engine *e)
{
    if (scope_entered(s, e))
        return true;
    return s->_engine != e->serial && tr__engine_serial_live(s->_engine);
}

/* Links s (checked) as t's innermost scope. */
static inline void scope_link(tr_task *t, struct tr_scope *s, uint64_t deadline_ns, unsigned flags)
{
    s->_parent = t->scope;
    s->_task = t;
    s->_deadline_ns = 0;
    s->_flags = flags;
    s->_shields = 0;
    s->_expired = s->_cancelled = 0;
    s->_caught = 0;
    s->_magic = TR_SCOPE_MAGIC;
    s->_epoch = t->scope_epoch;
    s->_task_id = t->id;
    s->_engine = t->e->serial;
    t->scope = s;
    t->nscopes++;
    if (deadline_ns)
        set_deadline(t->e, s, deadline_ns);
}

/* Every case the inline enter leaves: misuse, valgrind's check, bytes
 * that carry the magic. */
static __attribute__((noinline)) int enter_slow(tr_task *t, struct tr_scope *s,
                                                uint64_t deadline_ns, unsigned flags)
{
    if (!t)
        return -EPERM;
    if (!s || (flags & ~TR_SCOPE_SHIELD))
        return -EINVAL;
    /* Caller storage, usually uninitialised: what its bytes say is only
     * trusted when they name a live owner of this engine that entered it
     * (scope_entered). Last entered in another engine that lives: its
     * thread's to say whether it still is. */
    TR_VG_INIT_CHECK(s, sizeof(*s));
    if (s->_magic == TR_SCOPE_MAGIC && enter_refused(s, t->e))
        return -EINVAL;
    scope_link(t, s, deadline_ns, flags);
    return 0;
}

int tr_scope_enter(struct tr_scope *s, uint64_t deadline_ns, unsigned flags)
{
    tr_task *t = tr__current;
    /* A scope per request or per op: fresh (or exited) storage, a valid
     * call, calls no function but the deadline's rare cases. */
    if (TR_UNLIKELY(!t || !s || (flags & ~TR_SCOPE_SHIELD) || TR_VG_ACTIVE ||
                    s->_magic == TR_SCOPE_MAGIC))
        return enter_slow(t, s, deadline_ns, flags);
    scope_link(t, s, deadline_ns, flags);
    return 0;
}

/* s entered, and reachable from the caller: 0 or the -errno. */
static int scope_check(const struct tr_scope *s)
{
    if (!s || s->_magic != TR_SCOPE_MAGIC || !s->_task)
        return -EINVAL;
    if (!tr__current)
        return -EPERM;
    const tr_engine *e = tr__current->e;
    if (s->_engine != e->serial) /* another engine's: its thread owns it (or it is gone) */
        return tr__engine_serial_live(s->_engine) ? -EXDEV : -EINVAL;
    return scope_entered(s, e) ? 0 : -EINVAL;
}

int tr_scope_exit(struct tr_scope *s)
{
    tr_task *t = tr__current;
    if (!t)
        return -EPERM;
    /* Only the task's innermost scope (so one it entered), with no shield
     * open inside it. */
    if (!s || t->scope != s || s->_shields > 0)
        return -EINVAL;
    /* A group initialised inside it must be waited for first. */
    if (TR_UNLIKELY(s->_flags & TR__SCOPE_GROUPS) && tr__groups_in_scope(t, s))
        return -EINVAL;
    TR_ASSERT(s->_magic == TR_SCOPE_MAGIC && s->_task == t);
    /* Its deadline may be the one the owner's timer is armed for: it then
     * fires for nothing once, and re-arms for what is left (lazily). */
    if (scope_triggered(s)) {
        TR_ASSERT(t->scopes_triggered > 0);
        if (--t->scopes_triggered == 0)
            t->attn &= (uint8_t)~TR_ATTN_SCOPE;
    }
    t->scope = s->_parent;
    t->nscopes--;
    s->_magic = 0;
    return s->_caught;
}

int tr_scope_cancel(struct tr_scope *s)
{
    int err = scope_check(s);
    if (err)
        return err;
    trigger(s->_task->e, s, true);
    return 0;
}

int tr_scope_set_deadline(struct tr_scope *s, uint64_t deadline_ns)
{
    int err = scope_check(s);
    if (err)
        return err;
    if (scope_triggered(s))
        return 0; /* stays triggered until its exit */
    set_deadline(s->_task->e, s, deadline_ns);
    return 0;
}

/* ---- the engine's side ------------------------------------------------------- */

void tr__scopes_release(tr_engine *e, tr_task *t)
{
    /* The records are not touched: a task that returned with scopes entered
     * left them in frames that are gone (and maybe reused). Nothing else
     * points at them: the deadline timer is the task's own. */
    unsigned n = t->nscopes;
    t->scope = NULL;
    t->nscopes = 0;
    t->scope_epoch++; /* their records, wherever they are, are no longer entered */
    t->scopes_triggered = 0;
    t->attn &= (uint8_t)~TR_ATTN_SCOPE;
    e->st.scopes_left += n;
    tr__scopes_left_record(e, t, n);
}

/* The dump's walk (tr_engine_dump, the grace period's report): s may be
 * read. A dead one ends the walk, quietly: the dump reports, and the next
 * cancellation point of its task is loud about it. A task running now
 * that is not the caller's (a dump from another thread) has no saved
 * stack pointer to judge by: its scopes' own bytes only. */
static bool dump_readable(const tr_task *t, const struct tr_scope *s)
{
#if defined(__SANITIZE_ADDRESS__)
    /* A dead frame's bytes may lie in a live frame's redzone now: not read. */
    if (__asan_region_is_poisoned((void *)(uintptr_t)s, sizeof(*s)))
        return false;
#endif
    if (t->state == TR_TASK_RUNNING && t != tr__current)
        return s->_magic == TR_SCOPE_MAGIC && s->_task == t;
    return !scope_dead(t, s);
}

bool tr__scope_shielded(const tr_task *t)
{
    for (const struct tr_scope *s = t->scope; s && dump_readable(t, s); s = s->_parent)
        if (s->_flags & TR_SCOPE_SHIELD)
            return true;
    return false;
}

void tr__scope_describe(const tr_task *t, uint64_t now, char *buf, size_t len)
{
    buf[0] = '\0';
    const char *trig = NULL;
    uint64_t deadline = 0;
    for (const struct tr_scope *s = t->scope; s && dump_readable(t, s); s = s->_parent) {
        if (!trig && scope_triggered(s))
            trig = s->_cancelled ? "cancelled" : "timed-out";
        if (!deadline && s->_deadline_ns && s->_deadline_ns != UINT64_MAX && !scope_triggered(s))
            deadline = s->_deadline_ns;
    }
    size_t o = 0;
    if (deadline) {
        double left = deadline > now ? (double)(deadline - now) / 1e6 : 0;
        int w = snprintf(buf, len, " deadline=%.1fms", left);
        o = w > 0 ? (size_t)w : 0;
    }
    if (trig && o < len)
        snprintf(buf + o, len - o, " scope=%s", trig);
}
