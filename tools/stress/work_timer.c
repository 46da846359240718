/* SPDX-License-Identifier: MIT */
/*
 * work_timer.c — the timer kind: 1 to 16 random steps among sleeps (which
 * must never end early), shielded sleeps that hold the shutdown's drain,
 * nops, yields, timeout ops (never expired early), spawns below it,
 * shutdown hooks, and G7's bad input (-errno, never a crash).
 */
#include "stress.h"

#include <errno.h>
#include <inttypes.h>
#include <liburing.h>
#include <string.h>

static void prep_timeout(struct io_uring_sqe *sqe, void *arg)
{
    struct tctx *c = arg;
    io_uring_prep_timeout(sqe, &c->ts, 0, 0);
}

/* A sleep of a typical or a random length: 0 only after the deadline. */
static int timer_sleep(struct round *r)
{
    static const uint64_t pick[] = {0, 1000, 50000, 1000000, 3000000};
    uint64_t ns = pct(30) ? rbelow(20 * MS) : pick[rbelow(5)];
    uint64_t t0 = now_ns();
    int z = tr_sleep_ns(ns);
    opc();
    uint64_t el = now_ns() - t0;
    if (z == 0 && el < ns)
        viol(r, "tr_sleep_ns(%" PRIu64 ") returned 0 after %" PRIu64 " ns", ns, el);
    return z;
}

/* A long sleep inside a shield: holds the shutdown's drain until the
 * grace period ends or the 2nd signal. */
static int timer_shielded_sleep(struct round *r)
{
    tr_shield_begin();
    uint64_t ns = rbelow(300 * MS), t0 = now_ns();
    int z = tr_sleep_ns(ns);
    opc();
    if (z == 0 && now_ns() - t0 < ns)
        viol(r, "shielded tr_sleep_ns(%" PRIu64 ") returned early", ns);
    tr_shield_end();
    return z;
}

/* An IORING_OP_TIMEOUT through tr_op: -ETIME only after its time. */
static int timer_timeout_op(struct tctx *c)
{
    struct round *r = c->r;
    uint64_t ns = rbelow(3 * MS);
    c->ts.tv_sec = 0;
    c->ts.tv_nsec = (long long)ns;
    uint64_t t0 = now_ns();
    int z = tr_op(prep_timeout, c);
    opc();
    uint64_t el = now_ns() - t0;
    if (z == -ETIME) {
        if (el < ns)
            viol(r, "timeout op of %" PRIu64 " ns expired after %" PRIu64 " ns", ns, el);
        z = 0;
    }
    return z;
}

/* G7: bad input gets -errno. */
static int timer_bad_input(struct tctx *c)
{
    struct round *r = c->r;
    int rc;
    if ((rc = tr_join(tr_self(), NULL)) != -EINVAL)
        viol(r, "tr_join(self) = %d, want -EINVAL", rc);
    if ((rc = tr_shield_end()) != -EINVAL)
        viol(r, "unbalanced tr_shield_end = %d, want -EINVAL", rc);
    if ((rc = tr_cancel(NULL)) != -EINVAL)
        viol(r, "tr_cancel(NULL) = %d, want -EINVAL", rc);
    if ((rc = tr_detach(NULL)) != -EINVAL)
        viol(r, "tr_detach(NULL) = %d, want -EINVAL", rc);
    if ((rc = tr_spawn(NULL, NULL, NULL, NULL, NULL)) != -EINVAL)
        viol(r, "tr_spawn(fn NULL) = %d, want -EINVAL", rc);
    ssize_t b = tr_read(-1, c->small, 1, -1);
    opc();
    if (b != -EBADF && b != -ECANCELED)
        viol(r, "tr_read(-1) = %zd, want -EBADF", b);
    return b == -ECANCELED ? -ECANCELED : 0;
}

/* One step, chosen by what (0..99); returns its result (0, -ECANCELED,
 * or the error of an op that failed otherwise). */
static int timer_step(struct tctx *c, unsigned what)
{
    struct round *r = c->r;
    int z = 0;
    if (what < 42) {
        z = timer_sleep(r);
    } else if (what < 50) {
        z = timer_shielded_sleep(r);
    } else if (what < 60) {
        z = tr_nop();
        opc();
    } else if (what < 72) {
        z = tr_yield();
        opc();
    } else if (what < 82) {
        z = timer_timeout_op(c);
    } else if (what < 92) {
        if (c->depth < MAX_DEPTH && r->spawned - r->returned < r->target)
            (void)spawn_kind(r, NULL, NULL, pick_kind(r, c->depth + 1u), 0, c->depth + 1u, -1,
                             true);
    } else if (what < 96) {
        if (r->hooks_reg < MAX_TASK_HOOKS)
            add_hook(r, (uint8_t)(HK_PIPE + rbelow(HK__COUNT - HK_PIPE)));
    } else if (!tr_is_cancelled()) {
        z = timer_bad_input(c);
    }
    return z;
}

int w_timer(struct tctx *c)
{
    struct round *r = c->r;
    unsigned n = 1 + (unsigned)rbelow(16);
    for (unsigned i = 0; i < n; i++) {
        unsigned what = (unsigned)rbelow(100);
        int z = timer_step(c, what);
        if (z == -ECANCELED)
            return -ECANCELED;
        if (z != 0) {
            viol(r, "timer worker: op %u = %d (%s)", what, z, strerror(-z));
            return -EIO;
        }
    }
    return 0;
}
