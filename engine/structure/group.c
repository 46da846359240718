/* SPDX-License-Identifier: MIT */
/*
 * group.c — task groups (DESIGN section 8): an owner, its children, and
 * one rule — nothing outlives its owner (G10).
 *
 * The caller's struct tr_group (usually in the owner's frame) points at
 * the engine's record of it, a struct tr__group on the heap, linked into
 * the owner's list (t->groups) from tr_group_init until tr_group_wait has
 * seen every child end; the results are then copied into the caller's
 * struct and the record freed. Each child is a detached task whose record
 * points at the group's (t->group, t->group_link in its list of live
 * children). Nothing of the engine's lives in the caller's struct: an
 * owner that returns without waiting leaves it in a dead frame, and the
 * engine goes on with its own record.
 *
 * Cancelling a group is tr_cancel of each live child: the children's own
 * predicate then cuts their calls short (level-triggered, shields as
 * anywhere). A group starts cancelling at its first real failure, at
 * tr_group_cancel, or when its context — the scopes that enclosed
 * tr_group_init and the owner's own cancellation — cuts the owner's calls
 * short (tr__groups_recheck: called where the owner's cancellation or one
 * of its scopes triggers). Spawning into a cancelling group is refused.
 *
 * A real failure is a child's result < 0 other than a -ECANCELED after the
 * group began cancelling (or during a shutdown, which cancels every task):
 * the group's cancellation reaches a child as tr_cancel, so its -ETIMEDOUT
 * is always its own deadline's. Children killed by the kill rung failed
 * nothing. The context is the shields open at tr_group_init too: one the
 * owner opens later shields the owner only, and its end re-checks.
 *
 * The owner's wait ends only when the last child has ended: a cut of the
 * owner while it waits cancels the children and the wait goes on (the
 * kind's cancel); only the kill rung ends it (the kind's kill), and a
 * killed owner's children forget their group before its stack goes
 * (tr__groups_orphan). An owner that returns with groups not waited for
 * cancels and waits for their children first (tr__groups_release, on its
 * own stack), counted and named in the report.
 */
#include "tr_internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TR_GROUP_MAGIC 0x6e0a9001u

struct tr__group {
    tr_task *owner;
    struct tr__link elink;    /* in its engine's list of live groups */
    struct tr__group *next;   /* the owner's other live groups */
    struct tr_group *g;       /* the caller's struct (its frame may be gone: see above) */
    struct tr_scope *scope;   /* the owner's innermost scope at init: the children's context */
    unsigned shields;         /* the shields open in it (or outside every scope) at init */
    struct tr__link children; /* the live ones */
    unsigned live;
    bool cancelling, waiting;
    bool context_cut; /* cancelled because its context cut the owner short */
    int first;
    size_t nfail;
    struct tr_failure fail[TR_GROUP_FAILURES];
};

_Static_assert(sizeof(((struct tr_failure *)0)->name) == TR_NAME_MAX, "task names fit");

static void group_cancel(struct tr__group *gr)
{
    TR_ASSERT(!gr->cancelling);
    gr->cancelling = true;
    /* Bounded by the live children; a cancel never unlinks one (it ends
     * later, in its own time). */
    for (struct tr__link *l = gr->children.next; l != &gr->children; l = l->next)
        (void)tr_cancel(tr__container_of(l, tr_task, group_link));
}

/* Does the group's context (the scopes and shields around tr_group_init,
 * and the owner's own cancellation) cut the owner's calls short? Shields
 * opened after the init are the owner's, not the children's. */
static bool context_cut_short(const tr_task *owner, const struct tr__group *gr)
{
    return tr__cut_short_capped(owner, gr->scope, gr->shields, NULL) != 0;
}

/* The owner's context cut it short while the group had children to
 * cancel (or could have had): tr_group_wait then returns the cut. */
static void context_cancel(struct tr__group *gr)
{
    gr->context_cut = true;
    if (!gr->cancelling)
        group_cancel(gr);
}

/* ---- the owner's wait ------------------------------------------------------------ */

struct group_wait {
    struct tr__wait w;
    struct tr__group *gr;
};

static struct tr__group *group_of_wait(const tr_task *t)
{
    return ((const struct group_wait *)(const void *)t->wait)->gr;
}

/* The owner is cut short while it waits: the children are cancelled, the
 * wait goes on until the last has ended. */
static void gw_cancel(tr_engine *e, tr_task *t)
{
    (void)e;
    context_cancel(group_of_wait(t));
}

/* The kill rung reaches an owner only once its children have all ended
 * (shutdown.c's kill_task): its wait has been woken by then. Should it
 * come earlier, the wait goes on (the children are killed meanwhile):
 * their context lives on the owner's stack. */
static void gw_kill(tr_engine *e, tr_task *t)
{
    gw_cancel(e, t);
}

static void gw_describe(const tr_engine *e, const tr_task *t, char *buf, size_t len)
{
    (void)e;
    const struct tr__group *gr = group_of_wait(t);
    snprintf(buf, len, " group=%p children=%u%s", (const void *)gr->g, gr->live,
             gr->cancelling ? " cancelling" : "");
}

const struct tr__wait_kind tr__wk_group = {
    .name = "group-wait", .cancel = gw_cancel, .kill = gw_kill, .describe = gw_describe};

/* Parks the owner until the group's last child has ended. */
static void wait_children(tr_task *self, struct tr__group *gr)
{
    if (gr->live == 0)
        return;
    if (tr__cut_short(self))
        context_cancel(gr); /* cut short already: it cannot leave early */
    gr->waiting = true;
    struct group_wait gw = {.gr = gr};
    int r = tr__task_park(self, &gw.w, &tr__wk_group);
    TR_ASSERT(r == 0 && gr->live == 0 && !gr->waiting);
    (void)r;
}

/* The group is done: out of its owner's list, and freed. */
static void group_free(tr_task *owner, struct tr__group *gr)
{
    TR_ASSERT(gr->live == 0 && tr__list_empty(&gr->children));
    for (struct tr__group **p = &owner->groups; *p; p = &(*p)->next)
        if (*p == gr) {
            *p = gr->next;
            tr__list_del(&gr->elink);
            free(gr);
            return;
        }
    TR_ASSERT(!"a live group not in its owner's list");
}

/* ---- the calls ---------------------------------------------------------------- */

/* The live group of t that g is, or NULL. g is only compared. */
static struct tr__group *owned(const tr_task *t, const struct tr_group *g)
{
    for (struct tr__group *gr = t->groups; gr; gr = gr->next)
        if (gr->g == g)
            return gr;
    return NULL;
}

int tr_group_init(struct tr_group *g)
{
    tr_task *self = tr__current;
    if (!self)
        return -EPERM;
    if (!g || owned(self, g))
        return -EINVAL;
    struct tr__group *gr = TR_FAULT(TR_FS_ALLOC) ? NULL : calloc(1, sizeof(*gr));
    if (!gr)
        return -ENOMEM;
    gr->owner = self;
    gr->g = g;
    gr->scope = self->scope;
    if (gr->scope)
        gr->scope->_flags |= TR__SCOPE_GROUPS; /* its exit looks for them (scope.c) */
    gr->shields = self->scope ? self->scope->_shields : self->shield_base;
    tr__list_init(&gr->children);
    gr->cancelling = gr->context_cut = context_cut_short(self, gr);
    gr->next = self->groups;
    self->groups = gr;
    tr__list_add_tail(&self->e->groups, &gr->elink);
    memset(g, 0, sizeof(*g));
    g->_core = gr;
    g->_magic = TR_GROUP_MAGIC;
    return 0;
}

/* g is a live group of the caller's: its record, or the -errno. */
static int owner_check(const struct tr_group *g, tr_task **self, struct tr__group **out)
{
    tr_task *t = tr__current;
    if (!t)
        return -EPERM;
    if (!g)
        return -EINVAL;
    struct tr__group *gr = owned(t, g);
    if (!gr)
        return g->_magic == TR_GROUP_MAGIC && g->_core ? -EPERM : -EINVAL;
    *self = t;
    *out = gr;
    return 0;
}

int tr_group_spawn(struct tr_group *g, tr_fn fn, void *arg, const struct tr_spawn_opts *o)
{
    tr_task *self;
    struct tr__group *gr;
    int err = owner_check(g, &self, &gr);
    if (err)
        return err;
    if (!fn)
        return -EINVAL;
    /* A LATE child of an owner that is not would outlive it at shutdown
     * (LATE tasks are cancelled once all others have ended). */
    if (o && (o->flags & TR_SPAWN_LATE) && !self->late)
        return -EINVAL;
    /* Level-triggered: its context may have been cut short since. */
    if (!gr->context_cut && context_cut_short(self, gr))
        context_cancel(gr);
    if (gr->cancelling)
        return -ECANCELED;
    tr_task *c;
    err = tr_spawn(self->e, &c, fn, arg, o);
    if (err)
        return err;
    (void)tr_detach(c);
    c->group = gr;
    tr__list_add_tail(&gr->children, &c->group_link);
    gr->live++;
    return 0;
}

/* The live group that g is, of any task of e, or NULL. g is only compared
 * (a done group's record is freed). Bounded by e's live groups. */
static struct tr__group *find_live(const tr_engine *e, const struct tr_group *g)
{
    for (const struct tr__link *l = e->groups.next; l != &e->groups; l = l->next) {
        struct tr__group *gr = tr__container_of(l, struct tr__group, elink);
        if (gr->g == g)
            return gr;
    }
    return NULL;
}

int tr_group_cancel(struct tr_group *g)
{
    tr_task *t = tr__current;
    if (!t)
        return -EPERM;
    if (!g || g->_magic != TR_GROUP_MAGIC || !g->_core)
        return -EINVAL;
    struct tr__group *gr = find_live(t->e, g);
    if (!gr)
        return -EXDEV; /* live, but not of this engine's tasks */
    if (!gr->cancelling)
        group_cancel(gr);
    return 0;
}

int tr_group_wait(struct tr_group *g)
{
    tr_task *self;
    struct tr__group *gr;
    int err = owner_check(g, &self, &gr);
    if (err)
        return err;
    if (tr__task_in_prep(self))
        return -EPERM;
    bool parked = gr->live > 0;
    bool cut_at_entry = tr__cut_short(self) != 0; /* level-triggered */
    wait_children(self, gr);
    bool context_cut = gr->context_cut || cut_at_entry;
    /* The results go to the caller's struct: the record goes. */
    g->_first = gr->first;
    g->_nfail = gr->nfail;
    memcpy(g->_fail, gr->fail, sizeof(g->_fail));
    g->_core = NULL;
    if (gr->nfail > 0 && tr__shutdown_begun(self->e))
        tr__group_failures_record(self->e, self, gr->nfail, gr->first);
    group_free(self, gr);
    if (g->_first)
        return g->_first; /* a cancellation never masks a real error */
    /* A cut at the call (level-triggered) or one that reached the group
     * returns the cut; the real result wins (G5) over one that came only
     * after the last child ended, or only inside a shield the owner
     * entered since: the owner's next blocking call sees it. */
    if (!context_cut || !tr__cut_short(self))
        return 0;
    /* Cut short: after a wait, the cut's answer; without one, a pass
     * through the scheduler first (a task looping on it cannot starve
     * the engine or escape the kill rung). */
    return parked ? tr__cut_return(self) : tr__cancel_point(self);
}

size_t tr_group_failures(const struct tr_group *g, struct tr_failure *out, size_t max)
{
    if (!g || (!out && max > 0) || g->_magic != TR_GROUP_MAGIC)
        return 0;
    size_t nfail = g->_nfail;
    const struct tr_failure *f = g->_fail;
    if (g->_core) {
        /* Live: the engine's record, found through its engine's tasks. */
        const struct tr__group *gr = tr__current ? find_live(tr__current->e, g) : NULL;
        if (!gr)
            return 0;
        nfail = gr->nfail;
        f = gr->fail;
    }
    size_t n = nfail < TR_GROUP_FAILURES ? nfail : TR_GROUP_FAILURES;
    for (size_t i = 0; i < n && i < max; i++)
        out[i] = f[i];
    return nfail;
}

/* ---- the engine's side ----------------------------------------------------------- */

void tr__group_child_ended(tr_engine *e, tr_task *t, int result)
{
    struct tr__group *gr = t->group;
    TR_ASSERT(gr != NULL && gr->live > 0);
    t->group = NULL;
    tr__list_del(&t->group_link);
    /* Cancelling a group (its failure, tr_group_cancel, its context) and a
     * shutdown reach the children as tr_cancel: -ECANCELED. A child's
     * -ETIMEDOUT is its own deadline's, a real failure. */
    bool cut = result == -ECANCELED && (gr->cancelling || tr__shutdown_begun(e));
    if (result < 0 && !t->killed && !cut) {
        if (gr->nfail < TR_GROUP_FAILURES) {
            struct tr_failure *f = &gr->fail[gr->nfail];
            f->task_id = t->id;
            memcpy(f->name, tr_task_name(t), sizeof(f->name));
            f->result = result;
        }
        gr->nfail++;
        e->st.group_failures++;
        if (!gr->first)
            gr->first = result;
        if (!gr->cancelling)
            group_cancel(gr); /* the first real failure cancels the others */
    }
    if (--gr->live == 0 && gr->waiting) {
        gr->waiting = false;
        TR_ASSERT(tr__task_parked_on(gr->owner, &tr__wk_group));
        tr__task_wake(gr->owner, 0);
    }
}

bool tr__groups_ancestor(const tr_task *a, const tr_task *t)
{
    /* Bounded by the nesting of groups (each owner is alive: it waits). */
    for (const struct tr__group *gr = t->group; gr; gr = gr->owner->group)
        if (gr->owner == a)
            return true;
    return false;
}

void tr__groups_recheck(tr_task *t)
{
    /* Bounded by t's groups. */
    for (struct tr__group *gr = t->groups; gr; gr = gr->next)
        if (!gr->context_cut && gr->live > 0 && context_cut_short(t, gr))
            context_cancel(gr);
}

void tr__groups_release(tr_task *t)
{
    /* G10: t returned with groups not waited for. Their structs were in
     * frames that are gone, and so may be the scopes around them: the
     * engine's records alone are used, and the context is no longer
     * asked (the children are cancelled anyway). Bounded by t's groups,
     * each freed. */
    for (struct tr__group *gr = t->groups; gr; gr = gr->next) {
        gr->g = NULL;
        gr->scope = NULL;
        if (!gr->cancelling)
            group_cancel(gr);
    }
    while (t->groups) {
        struct tr__group *gr = t->groups;
        if (gr->live > 0) {
            t->e->st.groups_abandoned++;
            tr__groups_left_record(t->e, t, gr->live);
            wait_children(t, gr);
        }
        group_free(t, gr);
    }
}

void tr__groups_orphan(tr_engine *e, tr_task *t)
{
    (void)e;
    /* Killed: never resumed, its stack goes now. Bounded by its groups and
     * their children. */
    while (t->groups) {
        struct tr__group *gr = t->groups;
        while (!tr__list_empty(&gr->children)) {
            tr_task *c = tr__container_of(gr->children.next, tr_task, group_link);
            tr__list_del(&c->group_link);
            c->group = NULL;
        }
        gr->live = 0;
        group_free(t, gr);
    }
}

bool tr__groups_in_scope(const tr_task *t, const struct tr_scope *s)
{
    for (const struct tr__group *gr = t->groups; gr; gr = gr->next)
        if (gr->scope == s)
            return true;
    return false;
}

bool tr__groups_live(const tr_task *t)
{
    for (const struct tr__group *gr = t->groups; gr; gr = gr->next)
        if (gr->live > 0)
            return true;
    return false;
}
