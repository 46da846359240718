/* SPDX-License-Identifier: MIT */
/*
 * fuzz_group.c — fuzz_api's ops on task groups (DESIGN section 8, G10),
 * with fuzz_sync.c's primitives: the model of each context's group (what
 * its owner's context could have done to it, the children's endings in
 * completion order), the checks of tr_group_spawn/cancel/wait/failures
 * against it (fuzz_sync.c's header lists them), and the engine's
 * groups_abandoned and group_failures after the run.
 */
#include "fuzz_api.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static struct {
    uint64_t gfails;    /* real failures the waits listed */
    uint64_t abandoned; /* owners that ended with a live group, children alive */
} G;

static bool abandon; /* unless FUZZ_ABANDON=0: owners may end without waiting */

void fz_group_reset(void)
{
    memset(&G, 0, sizeof(G));
    const char *k = getenv("FUZZ_ABANDON");
    abandon = !(k && *k == '0');
}

/* -------------------------------------------------------------- the groups */

/* A child's result the group's cancellation (or a shutdown) may mask: only
 * -ECANCELED. The group reaches its children through tr_cancel, so a
 * child's -ETIMEDOUT is its own deadline's, always a real failure. */
static bool child_cut(long r)
{
    return r == -ECANCELED;
}

/* The owner's context may have cancelled its group: it is cancelled, or
 * one of the scopes that enclosed tr_group_init was cancelled, triggered
 * or held a deadline that has passed (shields could only stop it); while
 * it waits in tr_group_wait, any scope of its: a cut of the wait cancels
 * the children. */
static bool owner_maybe(const struct pctx *o, uint64_t now)
{
    if (tr__task_cancelled(o->y.t))
        return true;
    unsigned n = o->y.in_gwait ? o->mt.depth : o->y.init_depth;
    for (unsigned i = 0; i < n && i < o->mt.depth; i++) {
        const struct so_scope *m = &o->sm[i];
        if (m->cancelled || m->triggered || (m->earliest && m->earliest <= now))
            return true;
    }
    return false;
}

static bool grp_certain(const struct pctx *o)
{
    if (o->y.gcancel_known)
        return true;
    for (unsigned i = 0; i < o->y.nends; i++) {
        const struct fz_end *e = &o->y.ends[i];
        if (e->res < 0 && (!child_cut(e->res) || (!e->known && !e->maybe)))
            return true;
    }
    return false;
}

static bool grp_possible(const struct pctx *o)
{
    if (grp_certain(o) || owner_maybe(o, tr_now_ns()))
        return true;
    for (unsigned i = 0; i < o->y.nends; i++)
        if (o->y.ends[i].res < 0)
            return true;
    return false;
}

/* An owner that ended (or was killed) with its group live: gone. */
static int gstate(const struct pctx *t)
{
    if (t->y.gstate == FG_LIVE && fz_killed(t))
        return FG_GONE;
    return t->y.gstate;
}

void fz_sync_start(struct pctx *c)
{
    c->y.t = tr_self();
    c->y.id = tr_task_id(c->y.t);
}

void fz_sync_end(struct pctx *c, int v)
{
    if (c->y.gowner >= 0) {
        struct pctx *o = &S.ctx[c->y.gowner];
        FZ_CHECK(o->y.nends < FZ_MAX_WORKERS, "more endings than children");
        struct fz_end *e = &o->y.ends[o->y.nends++];
        e->ctx = (uint8_t)c->idx;
        e->res = v;
        e->known = o->y.gcancel_known || tr_shutting_down();
        e->maybe = e->known || owner_maybe(o, tr_now_ns());
    }
    if (c->y.gstate == FG_LIVE) {
        /* Returns without waiting: the engine cancels the children and
         * waits for them first; a group with one alive is abandoned. A
         * child that returned is alive still while it waits for a group
         * of its own that it did not wait for (G10). */
        bool any = false;
        for (unsigned k = 0; k < c->y.nkids; k++) {
            const struct pctx *kid = &S.ctx[c->y.kids[k]];
            any |= !kid->started || fz_alive(kid->y.t, kid->y.id);
        }
        if (any) {
            G.abandoned++;
            T.abandoned++;
        }
        c->y.gstate = FG_GONE;
    }
}

bool fz_sync_scope_pinned(const struct pctx *c)
{
    return c->y.gstate == FG_LIVE && c->mt.depth > 0 && c->y.init_depth == c->mt.depth;
}

static void group_spawn(struct pctx *c)
{
    uint8_t f = next(c);
    size_t k = next(c) % (FZ_BODY_MAX + 1);
    if (k > c->len - c->pos)
        k = c->len - c->pos;
    const uint8_t *body = c->p + c->pos;
    c->pos += k;
    if (c->kind == K_HOOK || S.nworkers >= FZ_MAX_WORKERS)
        return;
    bool late = (f & 1) != 0, nofn = (f & 2) != 0;
    int want; /* 1: 0 or -ECANCELED */
    if (c->y.gstate != FG_LIVE || nofn || (late && !c->y.late))
        want = -EINVAL;
    else if (grp_certain(c))
        want = -ECANCELED;
    else if (!grp_possible(c))
        want = 0;
    else
        want = 1;
    struct pctx *w = new_ctx(K_WORKER, body, k);
    w->born_in_shutdown = tr_shutting_down();
    w->final_born = c->final_born || S.e->sd.phase == TR_PH_FINAL; /* white-box */
    w->y.late = late;
    w->y.gowner = c->idx;
    struct tr_spawn_opts o = {
        .name = "fz-child", .stack_size = (f & 4) ? 16384 : 0, .flags = late ? TR_SPAWN_LATE : 0};
    int r = tr_group_spawn(&c->y.g, nofn ? NULL : worker_main, w, &o);
    TRACE("[%s] group_spawn(flags 0x%x, %zu bytes) -> %d: worker %d\n", fz_who(c), f, k, r, w->idx);
    FZ_CHECK(want == 1 ? (r == 0 || r == -ECANCELED) : r == want,
             "tr_group_spawn = %d, want %d (1: 0 or -ECANCELED)", r, want);
    if (r != 0) {
        S.nctx--; /* unused */
        if (r == -ECANCELED)
            c->y.gcancel_known = true;
        return;
    }
    c->y.kids[c->y.nkids++] = (uint8_t)w->idx;
    S.nworkers++;
}

/* G10 after the wait: every child ended. */
static void children_ended(const struct pctx *c)
{
    bool kill = S.e->sd.phase >= TR_PH_KILL; /* white-box */
    for (unsigned k = 0; k < c->y.nkids; k++) {
        const struct pctx *kid = &S.ctx[c->y.kids[k]];
        FZ_CHECK(kid->started, "G10: tr_group_wait returned; child %d never started", kid->idx);
        /* Ended, not only returned: one that returned without waiting for
         * a group of its own ends after that group's children. */
        FZ_CHECK(!fz_alive(kid->y.t, kid->y.id),
                 "G10: tr_group_wait returned while child %d is alive", kid->idx);
        FZ_CHECK(kid->returned || kill, "child %d ended without returning, outside the kill rung",
                 kid->idx);
    }
}

/* The endings replayed (see tools/stress/sync_audit.c): the real failures
 * the engine must list, in order; returns the first one's result. */
static int replay(const struct pctx *c, const struct tr_failure *f, size_t nf)
{
    size_t nl = nf < TR_GROUP_FAILURES ? nf : TR_GROUP_FAILURES, k = 0;
    bool cancelling = false;
    int first = 0;
    for (unsigned i = 0; i < c->y.nends; i++) {
        const struct fz_end *e = &c->y.ends[i];
        const struct pctx *kid = &S.ctx[e->ctx];
        bool real;
        if (e->res >= 0)
            real = false;
        else if (!child_cut(e->res))
            real = true;
        else if (cancelling || e->known)
            real = false;
        else if (!e->maybe)
            real = true;
        else
            real = k < nl && f[k].task_id == kid->y.id;
        if (!real)
            continue;
        FZ_CHECK(k >= nl || (f[k].task_id == kid->y.id && f[k].result == e->res &&
                             strcmp(f[k].name, "fz-child") == 0),
                 "real failure %zu: listed task %llu (%.31s) with %d, the endings worker %d "
                 "(task %llu) with %d",
                 k, (unsigned long long)f[k].task_id, f[k].name, f[k].result, kid->idx,
                 (unsigned long long)kid->y.id, e->res);
        if (k == 0)
            first = e->res;
        k++;
        cancelling = true;
    }
    FZ_CHECK(nf == k, "tr_group_failures counts %zu real failures, the endings make %zu", nf, k);
    return first;
}

static void group_wait(struct pctx *c)
{
    if (c->y.gstate != FG_LIVE) {
        int r = tr_group_wait(&c->y.g);
        FZ_CHECK(r == -EINVAL, "tr_group_wait of a group not live = %d", r);
        return;
    }
    struct so_pre pre = fz_pre(c);
    c->y.in_gwait = true;
    int r = tr_group_wait(&c->y.g);
    c->y.in_gwait = false;
    TRACE("[%s] group_wait (%u children) -> %d\n", fz_who(c), c->y.nkids, r);
    struct tr_failure f[TR_GROUP_FAILURES];
    memset(f, 0, sizeof(f));
    size_t nf = tr_group_failures(&c->y.g, f, TR_GROUP_FAILURES);
    if (nf == 0) {
        scope_check(c, "tr_group_wait", r, &pre);
        FZ_CHECK(r == 0 || fz_is_cut(r), "tr_group_wait = %d with no real failure", r);
    }
    children_ended(c);
    int first = replay(c, f, nf);
    FZ_CHECK(nf == 0 || r == first,
             "tr_group_wait = %d, the first real failure was %d (a cancellation never masks a "
             "real error)",
             r, first);
    if (c->y.have_snap) {
        bool prefix = c->y.nsnap <= nf;
        for (size_t i = 0; prefix && i < c->y.nsnap && i < TR_GROUP_FAILURES; i++)
            prefix = c->y.snap[i].task_id == f[i].task_id && c->y.snap[i].result == f[i].result;
        FZ_CHECK(prefix,
                 "tr_group_failures of the live group (%zu) is no prefix of the final (%zu)",
                 c->y.nsnap, nf);
    }
    c->y.gstate = FG_DONE;
    c->y.nfinal = nf;
    G.gfails += nf;
    T.groups++;
    T.gfails += nf;
}

void fz_sync_prog_end(struct pctx *c)
{
    if (!abandon && c->y.gstate == FG_LIVE)
        group_wait(c);
}

static void group_failures(struct pctx *c)
{
    struct pctx *t = &S.ctx[next(c) % S.nctx];
    size_t max = next(c) % (TR_GROUP_FAILURES + 1);
    struct tr_failure f[TR_GROUP_FAILURES];
    size_t n = tr_group_failures(&t->y.g, f, max);
    TRACE("[%s] group_failures(%s, %zu) -> %zu\n", fz_who(c), fz_who(t), max, n);
    FZ_CHECK(tr_group_failures(NULL, f, 1) == 0 && tr_group_failures(&t->y.g, NULL, 1) == 0,
             "tr_group_failures with NULL");
    switch (gstate(t)) {
    case FG_LIVE:
        FZ_CHECK(!t->y.have_snap || n >= t->y.nsnap, "tr_group_failures went from %zu to %zu",
                 t->y.nsnap, n);
        if (max == TR_GROUP_FAILURES && !t->y.in_gwait) {
            memcpy(t->y.snap, f, sizeof(f));
            t->y.nsnap = n;
            t->y.have_snap = true;
        }
        return;
    case FG_DONE:
        FZ_CHECK(n == t->y.nfinal, "tr_group_failures of a done group = %zu, its wait's %zu", n,
                 t->y.nfinal);
        return;
    default: /* never initialised, or its owner ended without waiting */
        FZ_CHECK(n == 0, "tr_group_failures of a group not live = %zu", n);
        return;
    }
}

static void group_misuse(struct pctx *c)
{
    struct pctx *t = &S.ctx[next(c) % S.nctx];
    int r;
    if (t != c && t->y.gstate == FG_LIVE) {
        /* (-EINVAL once its owner's wait has published the results) */
        int alt = t->y.in_gwait ? -EINVAL : -EPERM;
        r = tr_group_spawn(&t->y.g, worker_main, NULL, NULL);
        FZ_CHECK(r == -EPERM || r == alt, "tr_group_spawn by a non-owner = %d, want -EPERM", r);
        r = tr_group_wait(&t->y.g);
        FZ_CHECK(r == -EPERM || r == alt, "tr_group_wait by a non-owner = %d, want -EPERM", r);
    }
    FZ_CHECK(tr_group_init(NULL) == -EINVAL && tr_group_wait(NULL) == -EINVAL &&
                 tr_group_cancel(NULL) == -EINVAL &&
                 tr_group_spawn(NULL, worker_main, NULL, NULL) == -EINVAL,
             "group calls with NULL");
}

void fz_group_op(struct pctx *c)
{
    uint8_t s = next(c);
    switch (s % 8) {
    case 0:
    case 7: {
        if (c->kind == K_HOOK)
            return; /* the hooks share one task: no groups of their own */
        bool live = c->y.gstate == FG_LIVE;
        int r = tr_group_init(&c->y.g);
        TRACE("[%s] group_init (live %d) -> %d\n", fz_who(c), (int)live, r);
        FZ_CHECK(r == (live ? -EINVAL : 0), "tr_group_init = %d (a live group: %d)", r, (int)live);
        if (live)
            return;
        c->y.gstate = FG_LIVE;
        c->y.init_depth = c->mt.depth;
        c->y.nkids = c->y.nends = 0;
        c->y.gcancel_known = c->y.have_snap = false;
        return;
    }
    case 1:
    case 2:
        group_spawn(c);
        return;
    case 3: {
        struct pctx *t = &S.ctx[next(c) % S.nctx];
        int st = gstate(t);
        int r = tr_group_cancel(&t->y.g);
        TRACE("[%s] group_cancel(%s's) -> %d\n", fz_who(c), fz_who(t), r);
        if (st == FG_LIVE) {
            FZ_CHECK(r == 0 || (t->y.in_gwait && r == -EINVAL),
                     "tr_group_cancel of a live group = %d", r);
            if (r == 0)
                t->y.gcancel_known = true;
        } else {
            /* A killed owner's (or one that ended without waiting) may
             * still look live to the caller's struct: not found. */
            FZ_CHECK(r == -EINVAL || (st == FG_GONE && r == -EXDEV),
                     "tr_group_cancel of a group not live = %d", r);
        }
        return;
    }
    case 4:
        group_wait(c);
        return;
    case 5:
        group_failures(c);
        return;
    default:
        group_misuse(c);
        return;
    }
}

void fz_group_after_run(const struct tr_stats *st)
{
    FZ_CHECK(st->groups_abandoned == G.abandoned, "groups_abandoned %llu, the model %llu",
             (unsigned long long)st->groups_abandoned, (unsigned long long)G.abandoned);
    FZ_CHECK(st->group_failures >= G.gfails, "group_failures %llu, the waits listed %llu",
             (unsigned long long)st->group_failures, (unsigned long long)G.gfails);
}
