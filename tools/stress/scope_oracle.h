/* SPDX-License-Identifier: MIT */
/*
 * scope_oracle.h — what the contract of cancel scopes (DESIGN section 7,
 * include/taskring.h) lets a caller predict about its own calls, as a
 * model that the stress tool (work_scope.c, work_stream_ends.c) and the
 * API fuzzer (tests/fuzz/fuzz_api.c) keep next to the engine's records.
 * Header-only: both build it into their own binaries.
 *
 * The model mirrors one task's chain of scopes (innermost first) and the
 * tr_shield_begin depths opened in each, and knows what the caller saw:
 * the deadlines each scope ever held, the tr_scope_cancel calls that
 * returned 0 (from any task: the caller of one updates the owner's model
 * before the owner can run again), and the results of the owner's calls.
 * It derives only what the contract guarantees, never anything from how
 * late a timer may fire:
 *
 *   before a call: a cancellation that applies (a cancelled scope the walk
 *   reaches, or the task's own cancellation past every scope and shield)
 *   means -ECANCELED; a scope known to be triggered (cancelled, or the only
 *   possible cause of an earlier -ETIMEDOUT) means the call is cut short:
 *   no real result. (A deadline set in the past need not have triggered it
 *   yet: the engine notices at its next timer pass.)
 *
 *   after a call: -ECANCELED needs a cancellation that applies now;
 *   -ETIMEDOUT needs none to apply and a scope the walk reaches that held
 *   a deadline which has passed. Each result marks what the engine marks:
 *   -ECANCELED every cancelled scope reached; -ETIMEDOUT the expired ones,
 *   which the model knows only when a single scope could have expired.
 *
 *   at tr_scope_exit: -ECANCELED exactly when a call it reached returned
 *   -ECANCELED after it was cancelled; else -ETIMEDOUT when it was the only
 *   possible cause of a -ETIMEDOUT; 0 or -ETIMEDOUT when it was one of
 *   several; else 0.
 *
 * The walk (engine/structure/scope.c, tr__cut_short_slow) goes from the
 * innermost scope outwards; a scope with a tr_shield_begin open inside it
 * ends the walk before it, a TR_SCOPE_SHIELD scope after it, a shield
 * opened outside every scope before the task's own cancellation; once the
 * shutdown breaks shields (its grace period) none of them holds. The
 * caller passes whether shields are broken (white-box: e->sd.shields_broken)
 * and whether its task is cancelled (tr_is_cancelled()).
 */
#ifndef TR_SCOPE_ORACLE_H
#define TR_SCOPE_ORACLE_H

#include "taskring.h"

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>

#define SO_MAX_DEPTH 8 /* the deepest chain either tool builds */

/* The model of one entered scope. */
struct so_scope {
    struct so_scope *parent;
    uint64_t earliest; /* the earliest deadline it ever held, 0: none yet */
    uint64_t deadline; /* as last set (a triggered scope ignores moves) */
    unsigned shields;  /* tr_shield_begin depth opened inside it */
    bool shield;       /* entered with TR_SCOPE_SHIELD */
    bool cancelled;    /* a tr_scope_cancel of it returned 0 */
    bool triggered;    /* known to be triggered */
    bool caught_c;     /* the engine marked it -ECANCELED */
    bool caught_t;     /* ... -ETIMEDOUT (unless caught_c since) */
    bool maybe_t;      /* it may have been marked -ETIMEDOUT */
};

/* The model of one task's scopes. */
struct so_task {
    struct so_scope *top; /* innermost, NULL outside every scope */
    unsigned depth;
    unsigned shield_base; /* tr_shield_begin depth outside every scope */
};

/* What a call must return, known before it starts. */
struct so_pre {
    bool must_cancel; /* -ECANCELED */
    bool must_cut;    /* -ECANCELED or -ETIMEDOUT: no real result */
};

static inline void so_note_deadline(struct so_scope *s, uint64_t deadline_ns, uint64_t now_before)
{
    s->deadline = deadline_ns;
    if (deadline_ns == 0)
        return;
    if (s->earliest == 0 || deadline_ns < s->earliest)
        s->earliest = deadline_ns;
    /* A deadline that has passed triggers s at once only when the engine's
     * clock already shows it (the pass's, or the precise one within 20 ms
     * of it); otherwise at the next timer pass, and a call made meanwhile
     * may complete for real (the deadline lost that race: G5). So a passed
     * deadline allows a cut but requires none. */
    (void)now_before;
}

/* After tr_scope_enter(rec, deadline_ns, flags) returned 0; now_before
 * was read before the call. */
static inline void so_enter(struct so_task *t, struct so_scope *s, uint64_t deadline_ns,
                            unsigned flags, uint64_t now_before)
{
    *s = (struct so_scope){.parent = t->top, .shield = (flags & TR_SCOPE_SHIELD) != 0};
    so_note_deadline(s, deadline_ns, now_before);
    t->top = s;
    t->depth++;
}

/* After tr_scope_exit of the innermost scope returned (not -EINVAL). */
static inline void so_exit(struct so_task *t)
{
    t->top = t->top->parent;
    t->depth--;
}

/* After tr_scope_set_deadline(rec, deadline_ns) returned 0. */
static inline void so_move(struct so_scope *s, uint64_t deadline_ns, uint64_t now_before)
{
    so_note_deadline(s, deadline_ns, now_before);
}

/* After tr_scope_cancel(rec) returned 0. */
static inline void so_cancel(struct so_scope *s)
{
    s->cancelled = true;
    s->triggered = true;
}

/* The depth tr_shield_begin/end count in: the innermost scope's, or the
 * one outside every scope. tr_shield_end must fail with -EINVAL when it is
 * 0 (its begin was outside the innermost scope, or there is none). */
static inline unsigned *so_shield_depth(struct so_task *t)
{
    return t->top ? &t->top->shields : &t->shield_base;
}

/* The scopes the walk reaches (innermost first) into out[], their count;
 * *task_level: whether it goes on to the task's own cancellation. */
static inline unsigned so_reach(const struct so_task *t, bool broken,
                                struct so_scope *out[SO_MAX_DEPTH], bool *task_level)
{
    unsigned n = 0;
    *task_level = false;
    for (struct so_scope *s = t->top; s && n < SO_MAX_DEPTH; s = s->parent) {
        if (s->shields > 0 && !broken)
            return n;
        out[n++] = s;
        if (s->shield && !broken)
            return n;
    }
    *task_level = !(t->shield_base > 0 && !broken);
    return n;
}

static inline bool so_cancel_applies(struct so_scope *const *v, unsigned n, bool task_level,
                                     bool cancelled)
{
    if (task_level && cancelled)
        return true;
    for (unsigned i = 0; i < n; i++)
        if (v[i]->cancelled)
            return true;
    return false;
}

static inline struct so_pre so_before(const struct so_task *t, bool broken, bool cancelled)
{
    struct so_scope *v[SO_MAX_DEPTH];
    bool tl;
    unsigned n = so_reach(t, broken, v, &tl);
    struct so_pre p = {.must_cancel = so_cancel_applies(v, n, tl, cancelled)};
    p.must_cut = p.must_cancel;
    for (unsigned i = 0; i < n; i++)
        p.must_cut |= v[i]->triggered;
    return p;
}

/* A call's result res against the model (for a call that never returns
 * -ECANCELED or -ETIMEDOUT of its own): true when the contract allows it,
 * else false and *why says what is wrong. Marks the scopes as the engine
 * does. now_after, broken and cancelled are read right after the call
 * (no engine call in between: the engine's walk saw the same). */
static inline bool so_after(struct so_task *t, const struct so_pre *pre, long res,
                            uint64_t now_after, bool broken, bool cancelled, const char **why)
{
    if (pre->must_cancel && res != -ECANCELED) {
        *why = "a cancellation applied before the call, yet it did not return -ECANCELED";
        return false;
    }
    if (pre->must_cut && res != -ECANCELED && res != -ETIMEDOUT) {
        *why = "inside a triggered scope it did not return -ETIMEDOUT/-ECANCELED";
        return false;
    }
    if (res != -ECANCELED && res != -ETIMEDOUT)
        return true;
    struct so_scope *v[SO_MAX_DEPTH];
    bool tl;
    unsigned n = so_reach(t, broken, v, &tl);
    bool applies = so_cancel_applies(v, n, tl, cancelled);
    if (res == -ECANCELED) {
        if (!applies) {
            *why = "-ECANCELED, but no cancellation applies (none of the task's outside every "
                   "shield, no cancelled scope reached)";
            return false;
        }
        for (unsigned i = 0; i < n; i++)
            if (v[i]->cancelled)
                v[i]->caught_c = true;
        return true;
    }
    if (applies) {
        *why = "-ETIMEDOUT while a cancellation applies (-ECANCELED wins)";
        return false;
    }
    struct so_scope *cand = NULL;
    unsigned nc = 0;
    for (unsigned i = 0; i < n; i++)
        if (v[i]->earliest != 0 && v[i]->earliest <= now_after) {
            cand = v[i];
            nc++;
        }
    if (nc == 0) {
        *why = "-ETIMEDOUT, but no scope it is cut short by ever held a deadline that has passed";
        return false;
    }
    if (nc == 1) {
        cand->caught_t = true; /* the only one that can have expired: it did */
        cand->triggered = true;
    } else {
        for (unsigned i = 0; i < n; i++)
            if (v[i]->earliest != 0 && v[i]->earliest <= now_after)
                v[i]->maybe_t = true;
    }
    return true;
}

/* Whether tr_scope_exit(s)'s result rc (not -EINVAL) is what the model
 * allows; *want names it for the message. */
static inline bool so_exit_ok(const struct so_scope *s, int rc, const char **want)
{
    if (s->caught_c) {
        *want = "-ECANCELED (a call it reached returned -ECANCELED after its tr_scope_cancel)";
        return rc == -ECANCELED;
    }
    if (s->caught_t) {
        *want = "-ETIMEDOUT (the only scope that could have cut a call short with -ETIMEDOUT)";
        return rc == -ETIMEDOUT;
    }
    if (s->maybe_t) {
        *want = "0 or -ETIMEDOUT";
        return rc == 0 || rc == -ETIMEDOUT;
    }
    *want = "0 (it cut nothing short)";
    return rc == 0;
}

#endif
