/* SPDX-License-Identifier: MIT */
/*
 * work_scope.c — the scope kind: cancel scopes and deadlines (DESIGN
 * section 7), nested several levels deep, each checked against the model
 * of scope_oracle.h (what the contract lets a caller predict).
 *
 * A scope task enters 1-3 chains of nested scopes (up to SC_MAX_LEVEL),
 * each with a deadline that has passed, is near (0-2 ms ahead), is far (an
 * hour) or none, some of them TR_SCOPE_SHIELD; inside them it opens
 * tr_shield_begin shields, moves its deadlines (earlier, later, away, into
 * the past), and makes blocking calls that a deadline may cut short while
 * they are in flight: reads of a pipe of its own (that it or other tasks
 * feed at random times, so a real result races the expiry; every byte is
 * accounted for), sleeps, joins of children, accepts on a listener of its
 * own (sometimes with a client waiting), nops, yields, and tr_close (never
 * cut short). It publishes some of its scopes in the round's slots, where
 * other scope tasks cancel them (tr_scope_cancel) or move their deadlines;
 * a slot is cleared before its scope's exit and used only before the
 * shutdown's Kill phase (a killed owner's stack is gone), and its owner is
 * checked to be still inside it. It also tries the misuses (out-of-order
 * exit, a second enter, bad flags, a scope never entered, a shield end
 * whose begin is outside the innermost scope, an exit with a shield open
 * inside): -EINVAL, and nothing changes. A few tasks end with scopes
 * entered on purpose (G10: the engine unlinks them; records on the heap).
 *
 * Checked: every call's result against the oracle (no real result inside
 * a triggered scope, -ECANCELED only when a cancellation applies,
 * -ETIMEDOUT only when none does and a deadline that the walk reaches has
 * passed), every exit's result, every exit's timer disarmed (white-box)
 * and the chain restored, and after the round (audit.c): timers_pending 0,
 * scopes_left = the scopes left on purpose + those of killed tasks,
 * deadline_cuts = the -ETIMEDOUT results our tasks saw.
 *
 * scope1_enter/leave put one call of another kind (the stream ends) in a
 * scope of its own, so that expiries race real data on the streams, whose
 * bytes audit.c accounts for.
 */
#include "stress.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define SC_MAX_LEVEL 5               /* nesting of a scope task */
#define SC_FAR (3600ull * 1000 * MS) /* "far": an hour */
#define SC_PIPE_MAX 8192             /* bytes waiting in a scope task's pipe, at most */
#define SC_READ_MAX 512              /* one read, one feed */
#define SC_KIDS 4                    /* children a scope task joins */

_Static_assert(SC_MAX_LEVEL <= SO_MAX_DEPTH, "the oracle models the whole chain");

/* One entered scope of a scope task, on its stack: the engine's record and
 * the model's. */
struct sframe {
    struct tr_scope s;
    struct so_scope m;
    struct sctx *x; /* its owner */
    int slot;       /* its slot in r->sslot, or -1 */
    bool in;        /* entered: a poker checks it */
};

/* A scope task's state, on its stack. */
struct sctx {
    struct tctx *c;
    struct round *r;
    struct so_task mt;
    struct sframe *lv[SC_MAX_LEVEL]; /* lv[i]: the scope at depth i + 1 */
    int budget;                      /* steps left (bounds the task) */
    int ps0, ps1;                    /* its pipe's read and write ends (slots), or -1 */
    int ls, cs;                      /* its listener and a client of it (slots), or -1 */
    uint64_t pseed, pin, pout;       /* the pipe's pattern, bytes fed, bytes read */
    tr_task *kids[SC_KIDS];
    unsigned nkids;
    struct sockaddr_in la;
};

/* Scopes left entered on purpose: on the heap (the task's frames are
 * gone when the engine unlinks them), freed after the round. */
struct scope_left {
    struct scope_left *next;
    struct tr_scope s[2];
};

/* ------------------------------------------------------------ the oracle */

static bool shields_broken(void)
{
    return tr_self_engine()->sd.shields_broken; /* white-box */
}

static struct so_pre pre_call(const struct so_task *mt)
{
    return so_before(mt, shields_broken(), tr_is_cancelled());
}

/* A call's result res against the oracle, cancelled being whether the
 * task's cancellation could have decided it; counts the -ETIMEDOUT ones
 * (stats.deadline_cuts must match). Returns whether res is a cut. */
static bool post_call_c(struct round *r, struct so_task *mt, const struct so_pre *pre, long res,
                        const char *what, bool cancelled)
{
    const char *why = NULL;
    if (!so_after(mt, pre, res, now_ns(), shields_broken(), cancelled, &why))
        viol(r, "scope: %s = %ld at depth %u: %s", what, res, mt->depth, why);
    if (res == -ETIMEDOUT) {
        r->etimedout++;
        atomic_fetch_add_explicit(&g_expiries, 1, memory_order_relaxed);
    }
    return res == -ETIMEDOUT || res == -ECANCELED;
}

static bool post_call(struct round *r, struct so_task *mt, const struct so_pre *pre, long res,
                      const char *what)
{
    return post_call_c(r, mt, pre, res, what, tr_is_cancelled());
}

/* tr_scope_exit of the innermost scope s (model m), checked: its result
 * against the oracle, the chain back to its parent. (Deadlines are one lazy
 * timer per task: an exit leaves it armed, to fire once for nothing; the
 * round's end audits that no timer is left.) */
static int exit_checked(struct round *r, struct so_task *mt, struct tr_scope *s, const char *what)
{
    struct tr_scope *parent = s->_parent;
    struct so_scope *m = mt->top;
    int rc = tr_scope_exit(s);
    if (rc == -EINVAL) {
        viol(r, "scope: tr_scope_exit of the innermost scope (%s) = -EINVAL", what);
        return rc;
    }
    const char *want;
    if (!so_exit_ok(m, rc, &want))
        viol(r, "scope: tr_scope_exit (%s, depth %u) = %d, want %s", what, mt->depth, rc, want);
    if (tr_self()->scope != parent) /* white-box: the chain */
        viol(r, "scope: after tr_scope_exit (%s) the innermost scope is not its parent", what);
    so_exit(mt);
    if (rc == -ETIMEDOUT)
        r->exits_t++;
    else if (rc == -ECANCELED)
        r->exits_c++;
    return rc;
}

/* -------------------------------------------------------------- deadlines */

/* A deadline to enter with: passed, near (0-2 ms ahead), far, or none. */
static uint64_t pick_deadline(uint64_t now)
{
    unsigned x = (unsigned)rbelow(100);
    if (x < 15)
        return 0;
    if (x < 30)
        return now - 1 - rbelow(MS);
    if (x < 75)
        return now + rbelow(2 * MS);
    return now + SC_FAR;
}

/* A move: earlier (near), later than now, away (0), passed, or far. */
static uint64_t pick_move(const struct so_scope *m, uint64_t now)
{
    unsigned x = (unsigned)rbelow(100);
    if (x < 30)
        return now + rbelow(2 * MS);
    if (x < 50)
        return (m->deadline > now ? m->deadline : now) + 1 + rbelow(5 * MS);
    if (x < 70)
        return 0;
    if (x < 85)
        return now - 1 - rbelow(MS);
    return now + SC_FAR;
}

/* tr_scope_set_deadline from any task (the owner's, or a poker's). */
static void move_checked(struct round *r, struct tr_scope *s, struct so_scope *m)
{
    uint64_t now = now_ns();
    uint64_t d = pick_move(m, now);
    int rc = tr_scope_set_deadline(s, d);
    if (rc != 0) {
        viol(r, "scope: tr_scope_set_deadline = %d", rc);
        return;
    }
    so_move(m, d, now);
    r->scope_moves++;
    atomic_fetch_add_explicit(&g_moves, 1, memory_order_relaxed);
}

static void cancel_scope_checked(struct round *r, struct tr_scope *s, struct so_scope *m)
{
    int rc = tr_scope_cancel(s);
    if (rc != 0) {
        viol(r, "scope: tr_scope_cancel = %d", rc);
        return;
    }
    so_cancel(m);
    r->scope_cancels++;
    atomic_fetch_add_explicit(&g_scancels, 1, memory_order_relaxed);
}

/* --------------------------------------------------------------- the pipe */

/* Up to n bytes of the pipe's pattern, written with write(2) (its write
 * end does not block): by its owner, or by a poker while the owner waits. */
static void pipe_feed(struct sctx *o, size_t n)
{
    if (o->ps1 < 0 || o->pin - o->pout > SC_PIPE_MAX)
        return;
    uint8_t tmp[SC_READ_MAX];
    if (n > sizeof(tmp))
        n = sizeof(tmp);
    pat_fill(o->pseed, o->pin, tmp, n);
    ssize_t w = write(fd_of(o->r, o->ps1), tmp, n);
    if (w > 0)
        o->pin += (uint64_t)w;
}

/* Whether a blocking read would end without data: the pipe has some, or
 * a scope the walk reaches is triggered or has a deadline near, or the
 * task's cancellation applies. A read that would wait for an hour is
 * replaced by a feed first. */
static bool read_would_end(const struct sctx *x)
{
    if (x->pin > x->pout)
        return true;
    struct so_scope *v[SO_MAX_DEPTH];
    bool tl;
    unsigned n = so_reach(&x->mt, shields_broken(), v, &tl);
    if (tl && tr_is_cancelled())
        return true;
    uint64_t soon = now_ns() + 3 * MS;
    for (unsigned i = 0; i < n; i++)
        if (v[i]->triggered || (v[i]->deadline && v[i]->deadline <= soon))
            return true;
    return false;
}

/* ------------------------------------------------------------- the calls */

static void call_read(struct sctx *x)
{
    struct round *r = x->r;
    if (x->ps0 < 0 || !x->c->buf)
        return;
    if (!read_would_end(x))
        pipe_feed(x, 1 + rbelow(SC_READ_MAX));
    size_t n = 1 + rbelow(SC_READ_MAX);
    uint8_t *b = x->c->buf;
    memset(b, 0xEE, n);
    struct so_pre pre = pre_call(&x->mt);
    ssize_t g = tr_read(fd_of(r, x->ps0), b, n, -1);
    opc();
    if (post_call(r, &x->mt, &pre, g, "tr_read(pipe)")) {
        for (size_t i = 0; i < n; i++)
            if (b[i] != 0xEE) {
                viol(r, "scope: a read cut short (%zd) wrote into its buffer", g);
                break;
            }
        return;
    }
    if (g <= 0 || (size_t)g > n) {
        viol(r, "scope: tr_read(pipe) = %zd (%s)", g, g < 0 ? strerror((int)-g) : "no data");
        return;
    }
    size_t k = pat_check(x->pseed, x->pout, b, (size_t)g);
    if (k != (size_t)g)
        viol(r, "scope: pipe data mismatch at offset %" PRIu64, x->pout + k);
    x->pout += (uint64_t)g;
    if (x->pout > x->pin)
        viol(r, "scope: read %" PRIu64 " bytes of the pipe, %" PRIu64 " were fed", x->pout, x->pin);
}

static void call_sleep(struct sctx *x)
{
    uint64_t ns = pct(30) ? 0 : rbelow(3 * MS);
    struct so_pre pre = pre_call(&x->mt);
    uint64_t t0 = now_ns();
    int z = tr_sleep_ns(ns);
    opc();
    uint64_t el = now_ns() - t0;
    if (post_call(x->r, &x->mt, &pre, z, "tr_sleep_ns"))
        return;
    if (z != 0)
        viol(x->r, "scope: tr_sleep_ns = %d", z);
    else if (el < ns)
        viol(x->r, "scope: tr_sleep_ns(%" PRIu64 ") returned 0 after %" PRIu64 " ns", ns, el);
}

static void call_simple(struct sctx *x, bool yield)
{
    struct so_pre pre = pre_call(&x->mt);
    int z = yield ? tr_yield() : tr_nop();
    opc();
    if (!post_call(x->r, &x->mt, &pre, z, yield ? "tr_yield" : "tr_nop") && z != 0)
        viol(x->r, "scope: %s = %d", yield ? "tr_yield" : "tr_nop", z);
}

/* Joins a child (a new one, or one a deadline cut a join of short
 * before); a cut join leaves the handle ours, joined after the scopes. */
static void call_join(struct sctx *x)
{
    struct round *r = x->r;
    struct tctx *c = x->c;
    if (x->nkids == 0 || (x->nkids < SC_KIDS && pct(50))) {
        if (c->depth >= MAX_DEPTH ||
            spawn_kind(r, NULL, &x->kids[x->nkids], K_TIMER, 0, c->depth + 1u, -1, true) != 0)
            return;
        x->nkids++;
    }
    unsigned i = (unsigned)rbelow(x->nkids);
    int res = 0;
    struct so_pre pre = pre_call(&x->mt);
    int z = tr_join(x->kids[i], &res);
    opc();
    if (post_call(r, &x->mt, &pre, z, "tr_join"))
        return;
    if (z != 0) {
        viol(r, "scope: tr_join = %d", z);
        return;
    }
    if (res != 0 && res != -ECANCELED && res != -EIO)
        viol(r, "scope: a child ended with %d", res);
    x->kids[i] = x->kids[--x->nkids];
}

/* An accept on the task's listener: with a client connecting when no
 * deadline would end the wait. An accepted fd is a real result: closed. */
static void call_accept(struct sctx *x)
{
    struct round *r = x->r;
    struct tctx *c = x->c;
    if (x->ls < 0)
        return;
    if (x->cs < 0 && (pct(50) || !read_would_end(x))) {
        int cfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (cfd < 0)
            return;
        x->cs = fdt_reg(r, c, cfd, FR_OTHER, -1);
        if (x->cs < 0)
            return;
        (void)connect(cfd, (struct sockaddr *)&x->la, sizeof(x->la)); /* loopback: at once */
    }
    if (x->cs < 0 && !read_would_end(x))
        return;
    struct so_pre pre = pre_call(&x->mt);
    c->in_accept = true;
    int fd = tr_accept(fd_of(r, x->ls), NULL, NULL, SOCK_CLOEXEC);
    opc();
    if (post_call(r, &x->mt, &pre, fd, "tr_accept")) {
        c->in_accept = false;
        return;
    }
    if (fd < 0) {
        c->in_accept = false;
        if (fd != -ECONNABORTED)
            viol(r, "scope: tr_accept = %s", strerror(-fd));
        return;
    }
    int s = fdt_reg(r, c, fd, FR_OTHER, -1);
    c->in_accept = false;
    tclose(r, s);
    tclose(r, x->cs);
    x->cs = -1;
}

/* tr_close is never cut short, inside a triggered scope too. */
static void call_close(struct sctx *x)
{
    if (x->ps0 < 0)
        return;
    int d = dup(fd_of(x->r, x->ps0));
    if (d < 0)
        return;
    int rc = tr_close(d); /* no park between the dup and its submission */
    opc();
    if (rc != 0) {
        viol(x->r, "scope: tr_close(dup) = %d: tr_close is never cut short", rc);
        close(d);
    }
}

static void call_one(struct sctx *x)
{
    unsigned w = (unsigned)rbelow(100);
    if (w < 30)
        call_read(x);
    else if (w < 50)
        call_sleep(x);
    else if (w < 60)
        call_simple(x, false);
    else if (w < 70)
        call_simple(x, true);
    else if (w < 80)
        call_join(x);
    else if (w < 92)
        call_accept(x);
    else
        call_close(x);
}

/* ------------------------------------------------------- other tasks' scopes */

static void publish(struct sctx *x, struct sframe *f)
{
    unsigned i0 = (unsigned)rbelow(SC_SLOTS);
    for (unsigned k = 0; k < SC_SLOTS; k++) {
        unsigned i = (i0 + k) % SC_SLOTS;
        if (!x->r->sslot[i]) {
            x->r->sslot[i] = f;
            f->slot = (int)i;
            return;
        }
    }
}

static void unpublish(struct sctx *x, struct sframe *f)
{
    if (f->slot >= 0)
        x->r->sslot[f->slot] = NULL;
    f->slot = -1;
}

/* A published scope of any scope task (this one's included): cancel it,
 * move its deadline, or feed its owner's pipe. Only before the Kill phase:
 * a killed owner never clears its slots, and its stack is gone. */
static void poke(struct sctx *x)
{
    struct round *r = x->r;
    if (tr_self_engine()->sd.phase >= TR_PH_KILL) /* white-box */
        return;
    struct sframe *f = r->sslot[rbelow(SC_SLOTS)];
    if (!f)
        return;
    if (!f->in || f->s._task == NULL) {
        viol(r, "scope: a published scope that its owner is not inside");
        return;
    }
    unsigned w = (unsigned)rbelow(100);
    if (w < 40)
        cancel_scope_checked(r, &f->s, &f->m);
    else if (w < 80)
        move_checked(r, &f->s, &f->m);
    else
        pipe_feed(f->x, 1 + rbelow(SC_READ_MAX));
}

/* ------------------------------------------------------------ the misuses */

/* Each refused with -EINVAL, the chain unchanged. */
static void misuse(struct sctx *x, struct sframe *f, unsigned lvl)
{
    struct round *r = x->r;
    struct tr_scope *top = tr_self()->scope, z;
    memset(&z, 0, sizeof(z));
    int rc;
    const char *what;
    switch (rbelow(5)) {
    case 0:
        what = "tr_scope_exit out of order";
        rc = lvl >= 2 ? tr_scope_exit(&x->lv[lvl - 2]->s) : tr_scope_exit(&z);
        break;
    case 1:
        what = "tr_scope_enter of an entered scope";
        rc = tr_scope_enter(&f->s, 0, 0);
        break;
    case 2:
        what = "tr_scope_enter with unknown flags";
        rc = tr_scope_enter(&z, 0, 0x80u);
        break;
    case 3:
        what = "tr_scope_cancel/set_deadline of a scope never entered";
        rc = tr_scope_cancel(&z);
        if (rc == -EINVAL)
            rc = tr_scope_set_deadline(&z, 1);
        break;
    default:
        if (*so_shield_depth(&x->mt) != 0)
            return;
        what = "tr_shield_end with no begin in the innermost scope";
        rc = tr_shield_end();
        break;
    }
    if (rc != -EINVAL)
        viol(r, "scope: %s = %d, want -EINVAL", what, rc);
    if (tr_self()->scope != top)
        viol(r, "scope: %s changed the chain", what);
}

/* ----------------------------------------------------------------- levels */

static void level(struct sctx *x, unsigned lvl);

/* A shield (tr_shield_begin) inside the innermost scope, around a few
 * steps; an exit with it open is refused. */
static void shielded(struct sctx *x, struct sframe *f, unsigned lvl)
{
    struct round *r = x->r;
    int rc = tr_shield_begin();
    if (rc < 1) {
        viol(r, "scope: tr_shield_begin = %d", rc);
        return;
    }
    (*so_shield_depth(&x->mt))++;
    if (pct(20)) {
        rc = tr_scope_exit(&f->s);
        if (rc != -EINVAL)
            viol(r, "scope: tr_scope_exit with a shield open inside = %d, want -EINVAL", rc);
    }
    unsigned n = 1 + (unsigned)rbelow(3);
    for (unsigned i = 0; i < n && x->budget > 0; i++) {
        x->budget--;
        if (lvl < SC_MAX_LEVEL && pct(25))
            level(x, lvl + 1);
        else
            call_one(x);
    }
    rc = tr_shield_end();
    if (rc < 0)
        viol(r, "scope: tr_shield_end = %d", rc);
    (*so_shield_depth(&x->mt))--;
}

static void step(struct sctx *x, struct sframe *f, unsigned lvl)
{
    unsigned w = (unsigned)rbelow(100);
    if (w < 36)
        call_one(x);
    else if (w < 52)
        lvl < SC_MAX_LEVEL ? level(x, lvl + 1) : call_one(x);
    else if (w < 60)
        shielded(x, f, lvl);
    else if (w < 70) {
        struct sframe *g = x->lv[rbelow(lvl)]; /* its own, at any depth */
        move_checked(x->r, &g->s, &g->m);
    } else if (w < 82)
        poke(x);
    else if (w < 86)
        misuse(x, f, lvl);
    else if (w < 89) {
        struct sframe *g = x->lv[rbelow(lvl)];
        cancel_scope_checked(x->r, &g->s, &g->m); /* its own: from inside */
    } else
        pipe_feed(x, 1 + rbelow(SC_READ_MAX));
}

/* Enters a scope at depth lvl, runs a few steps in it, leaves it. */
static void level(struct sctx *x, unsigned lvl)
{
    struct round *r = x->r;
    struct sframe f;
    memset(&f, 0, sizeof(f));
    f.x = x;
    f.slot = -1;
    unsigned flags = pct(20) ? TR_SCOPE_SHIELD : 0;
    uint64_t now = now_ns();
    uint64_t d = pick_deadline(now);
    int rc = tr_scope_enter(&f.s, d, flags);
    if (rc != 0) {
        viol(r, "scope: tr_scope_enter = %d", rc);
        return;
    }
    so_enter(&x->mt, &f.m, d, flags, now);
    x->c->nscope++;
    x->lv[lvl - 1] = &f;
    f.in = true;
    r->scopes++;
    atomic_fetch_add_explicit(&g_scopes, 1, memory_order_relaxed);
    if (x->mt.depth != lvl)
        viol(r, "scope: the model's depth %u at level %u", x->mt.depth, lvl);
    if (pct(50))
        publish(x, &f);

    unsigned n = 1 + (unsigned)rbelow(6);
    for (unsigned i = 0; i < n && x->budget > 0; i++) {
        x->budget--;
        step(x, &f, lvl);
    }

    unpublish(x, &f);
    f.in = false;
    if (exit_checked(r, &x->mt, &f.s, "a scope task's") != -EINVAL)
        x->c->nscope--;
}

/* ------------------------------------------------------------------ the task */

/* Its pipe (the write end non-blocking), and sometimes a listener: fds
 * from the round's table, when admission allows. */
static void scope_fds(struct sctx *x)
{
    struct round *r = x->r;
    bool lis = pct(40);
    if (!fdt_admit(x->c, lis ? 5 : 2))
        return;
    int p[2];
    if (pipe2(p, O_CLOEXEC) == 0) {
        (void)fcntl(p[1], F_SETFL, O_NONBLOCK);
        x->ps0 = fdt_reg(r, x->c, p[0], FR_OTHER, -1);
        x->ps1 = fdt_reg(r, x->c, p[1], FR_OTHER, -1);
    }
    if (lis) {
        int lfd = listen_socket(r, &x->la);
        if (lfd >= 0)
            x->ls = fdt_reg(r, x->c, lfd, FR_OTHER, -1);
    }
}

/* After every scope: what the pipe still holds, read with read(2), makes
 * up exactly what was fed and not read; then the fds go. */
static void scope_fds_close(struct sctx *x)
{
    struct round *r = x->r;
    if (x->ps0 >= 0) {
        int fd = fd_of(r, x->ps0);
        (void)fcntl(fd, F_SETFL, O_NONBLOCK);
        uint8_t tmp[SC_READ_MAX];
        uint64_t drained = 0;
        /* Bounded: at most SC_PIPE_MAX + SC_READ_MAX bytes wait there. */
        for (unsigned i = 0; i < 1000; i++) {
            ssize_t g = read(fd, tmp, sizeof(tmp));
            if (g <= 0)
                break;
            size_t k = pat_check(x->pseed, x->pout + drained, tmp, (size_t)g);
            if (k != (size_t)g)
                viol(r, "scope: drained pipe data mismatch at offset %" PRIu64,
                     x->pout + drained + k);
            drained += (uint64_t)g;
        }
        if (x->pout + drained != x->pin)
            viol(r,
                 "scope: pipe bytes: fed %" PRIu64 ", read %" PRIu64 " + left %" PRIu64
                 ": lost or invented",
                 x->pin, x->pout, drained);
    }
    tclose(r, x->ps0);
    tclose(r, x->ps1);
    tclose(r, x->cs);
    tclose(r, x->ls);
    x->ps0 = x->ps1 = x->cs = x->ls = -1;
}

/* G10 on purpose: 1-2 scopes (records on the heap) entered as the task's
 * last act; the engine unlinks them, disarms their timers and counts them
 * in stats.scopes_left. */
static void leave_entered(struct sctx *x)
{
    struct round *r = x->r;
    struct scope_left *L = calloc(1, sizeof(*L));
    if (!L)
        return;
    L->next = r->left;
    r->left = L;
    unsigned n = 1 + (unsigned)rbelow(2);
    for (unsigned k = 0; k < n; k++) {
        uint64_t now = now_ns();
        uint64_t d = pct(50) ? now + rbelow(2 * MS) : now + SC_FAR;
        int rc = tr_scope_enter(&L->s[k], d, pct(30) ? TR_SCOPE_SHIELD : 0);
        if (rc != 0) {
            viol(r, "scope: tr_scope_enter (to be left) = %d", rc);
            return;
        }
        r->left_planned++;
    }
}

int w_scope(struct tctx *c)
{
    struct round *r = c->r;
    struct sctx x;
    memset(&x, 0, sizeof(x));
    x.c = c;
    x.r = r;
    x.ps0 = x.ps1 = x.ls = x.cs = -1;
    x.pseed = rnd();
    x.budget = 8 + (int)rbelow(40);
    c->buf = buf_get(r);
    scope_fds(&x);
    unsigned n = 1 + (unsigned)rbelow(3);
    for (unsigned i = 0; i < n && x.budget > 0; i++) {
        if (pct(30))
            poke(&x);
        level(&x, 1);
    }
    if (c->nscope != 0 || x.mt.depth != 0 || tr_self()->scope != NULL)
        viol(r, "scope: %u scopes still entered after the levels", (unsigned)c->nscope);
    for (unsigned i = 0; i < x.nkids; i++)
        (void)join_child(r, x.kids[i]);
    x.nkids = 0;
    scope_fds_close(&x);
    int res = tr_is_cancelled() ? -ECANCELED : 0;
    if (pct(3))
        leave_entered(&x); /* the last act: no call after it */
    return res;
}

/* ------------------------------------------------ one call of another kind */

void scope1_enter(struct tctx *c, struct scope1 *q)
{
    memset(q, 0, sizeof(*q));
    /* A shield the caller opened outside every scope (white-box: its
     * depth there) holds its cancellation off this scope's calls too. */
    q->mt.shield_base = tr_self()->shield_base;
    uint64_t now = now_ns();
    uint64_t d = now + rbelow(2 * MS);
    int rc = tr_scope_enter(&q->s, d, 0);
    if (rc != 0) {
        viol(c->r, "scope: tr_scope_enter (one call) = %d", rc);
        return;
    }
    so_enter(&q->mt, &q->m, d, 0, now);
    c->nscope++;
    c->r->scopes++;
    atomic_fetch_add_explicit(&g_scopes, 1, memory_order_relaxed);
    q->pre = pre_call(&q->mt);
}

long scope1_leave(struct tctx *c, struct scope1 *q, long res, const char *what)
{
    if (q->mt.depth == 0)
        return res; /* not entered (a violation is recorded) */
    bool cancelled = tr_is_cancelled() && !(q->two_waits && res == -ETIMEDOUT);
    (void)post_call_c(c->r, &q->mt, &q->pre, res, what, cancelled);
    if (exit_checked(c->r, &q->mt, &q->s, what) != -EINVAL)
        c->nscope--;
    return res;
}

/* --------------------------------------------------------------- the round */

/* Scopes that killed tasks were inside (the engine unlinked them). */
uint64_t scopes_killed(const struct round *r)
{
    uint64_t n = 0;
    for (size_t i = 0; i < r->nall; i++)
        if (r->all[i]->state != TS_RETURNED)
            n += r->all[i]->nscope;
    return n;
}

void scopes_round_free(struct round *r)
{
    while (r->left) {
        struct scope_left *L = r->left;
        r->left = L->next;
        free(L);
    }
}
