/* SPDX-License-Identifier: MIT */
/*
 * work_ctl.c — the kinds that exercise cancellation and structure:
 * supervisors (spawn children with handles, cancel some, join all in a
 * random order), tr_cancel_all callers (with and without TR_CANCEL_WAIT,
 * sometimes shielded), self-cancellers (G4: every later blocking call
 * fails with -ECANCELED, but inside a shield until the shutdown breaks
 * it; tr_close still closes), stubborn tasks (ignore cancellation inside
 * shields, sometimes inside scopes: only the Kill ends them),
 * TR_SPAWN_LATE tasks (I/O after the stop; cancelled only after every
 * other task ended), and tasks spawned during the shutdown (must start
 * cancelled).
 */
#include "stress.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <string.h>
#include <unistd.h>

/* A pipe of the task's own, registered in slots *s0 (read end) and *s1,
 * when admission and pipe2 allow; else both stay -1. */
static void own_pipe(struct tctx *c, int *s0, int *s1)
{
    struct round *r = c->r;
    if (fdt_admit(c, 2)) {
        int p[2];
        if (pipe2(p, O_CLOEXEC) == 0) {
            *s0 = fdt_reg(r, c, p[0], FR_OTHER, -1);
            *s1 = fdt_reg(r, c, p[1], FR_OTHER, -1);
        }
    }
}

int w_super(struct tctx *c)
{
    struct round *r = c->r;
    tr_task *h[8];
    unsigned nh = 0, n = 2 + (unsigned)rbelow(5);
    for (unsigned i = 0; i < n; i++) {
        int k = pick_kind(r, c->depth + 1u);
        if (spawn_kind(r, NULL, &h[nh], k, 0, c->depth + 1u, -1, true) == 0)
            nh++;
    }
    int res = 0;
    int z = tr_sleep_ns(rbelow(20 * MS));
    opc();
    if (z == -ECANCELED)
        res = z;
    for (unsigned i = 0; i < nh; i++)
        if (res || pct(35))
            cancel_checked(r, h[i]);
    /* Join in a random order. */
    for (unsigned i = nh; i > 1; i--) {
        unsigned j = (unsigned)rbelow(i);
        tr_task *t = h[i - 1];
        h[i - 1] = h[j];
        h[j] = t;
    }
    for (unsigned i = 0; i < nh; i++) {
        if (join_child(r, h[i]) == -ECANCELED && res == 0) {
            res = -ECANCELED;
            for (unsigned k = i + 1; k < nh; k++)
                cancel_checked(r, h[k]);
        }
    }
    return res;
}

int w_call(struct tctx *c)
{
    struct round *r = c->r;
    unsigned flags = pct(50) ? TR_CANCEL_WAIT : 0;
    bool sh = pct(20);
    if (sh)
        tr_shield_begin();
    r->cancel_alls++;
    int n = tr_cancel_all(r->except, r->nexcept, flags);
    opc();
    if (sh)
        tr_shield_end();
    if (n >= 0) {
        r->cancels += (unsigned)n;
        atomic_fetch_add_explicit(&g_cancels, (uint64_t)n, memory_order_relaxed);
        return 0;
    }
    if (n != -ECANCELED)
        viol(r, "tr_cancel_all = %s", strerror(-n));
    return n == -ECANCELED ? n : -EIO;
}

int w_self(struct tctx *c)
{
    struct round *r = c->r;
    bool sh = pct(40);
    if (sh)
        tr_shield_begin();
    int rc = tr_cancel(tr_self());
    if (rc != 0)
        viol(r, "tr_cancel(self) = %d", rc);
    else
        atomic_fetch_add_explicit(&g_cancels, 1, memory_order_relaxed);
    if (!tr_is_cancelled())
        viol(r, "tr_is_cancelled() false after tr_cancel(self)");
    int z = tr_nop();
    opc();
    if (sh) {
        /* A shield lets blocking calls work, until shutdown breaks it. */
        if (z != 0 && !(z == -ECANCELED && tr_shutting_down()))
            viol(r, "tr_nop in a shield after a self-cancel = %d", z);
        tr_shield_end();
        z = tr_nop();
        opc();
    }
    if (z != -ECANCELED)
        viol(r, "tr_nop after a self-cancel = %d, want -ECANCELED (G4)", z);
    if ((z = tr_sleep_ns(MS)) != -ECANCELED)
        viol(r, "tr_sleep_ns after a self-cancel = %d, want -ECANCELED (G4)", z);
    if ((z = tr_yield()) != -ECANCELED)
        viol(r, "tr_yield after a self-cancel = %d, want -ECANCELED (G4)", z);
    opc();
    opc();
    /* tr_close still closes in a cancelled task. */
    if (fdt_admit(c, 2)) {
        int p[2];
        if (pipe2(p, O_CLOEXEC) == 0) {
            int s0 = fdt_reg(r, c, p[0], FR_OTHER, -1);
            int s1 = fdt_reg(r, c, p[1], FR_OTHER, -1);
            if (s0 >= 0 && fcntl(p[0], F_GETFD) < 0)
                viol(r, "pipe fd not open");
            if (tclose(r, s0) != 0 || tclose(r, s1) != 0)
                viol(r, "tr_close in a cancelled task failed");
        }
    }
    return -ECANCELED;
}

int w_stub(struct tctx *c)
{
    struct round *r = c->r;
    int s0 = -1, s1 = -1;
    own_pipe(c, &s0, &s1);
    /* Sometimes inside 1-2 scopes with far deadlines (or none), which it
     * is still inside when the Kill ends it: the engine must unlink them
     * and disarm their timers (G10; audit.c counts them). */
    struct tr_scope sc[2];
    unsigned nsc = pct(50) ? 1 + (unsigned)rbelow(2) : 0;
    for (unsigned k = 0; k < nsc; k++) {
        memset(&sc[k], 0, sizeof(sc[k]));
        int rc = tr_scope_enter(&sc[k], pct(70) ? now_ns() + 3600000 * MS : 0, 0);
        if (rc != 0) {
            viol(r, "stubborn: tr_scope_enter = %d", rc);
            nsc = k;
            break;
        }
        c->nscope++;
    }
    uint64_t end = now_ns() + 30000 * MS;
    for (unsigned i = 0; i < 10000000 && now_ns() < end; i++) {
        tr_shield_begin();
        int z;
        if (s0 >= 0 && pct(50))
            z = (int)tr_read(fd_of(r, s0), c->small, 1, -1); /* nobody writes */
        else
            z = tr_sleep_ns(2 * MS);
        opc();
        tr_shield_end();
        if (z < 0) {
            if (z != -ECANCELED)
                viol(r, "stubborn: %d", z);
            /* Ignores the cancellation: yields, or parks on an op that is
             * never cancelled (tr_close), where the Kill must wait for
             * its completion. */
            if (pct(50)) {
                (void)tr_yield();
            } else {
                int b = tr_close(-1);
                if (b != -EBADF)
                    viol(r, "tr_close(-1) = %d, want -EBADF", b);
            }
            opc();
        }
    }
    /* Nothing cut its calls short: a cut shows as 0 at the exit. */
    for (unsigned k = nsc; k > 0; k--) {
        int rc = tr_scope_exit(&sc[k - 1]);
        if (rc != 0)
            viol(r, "stubborn: tr_scope_exit = %d, want 0", rc);
        c->nscope--;
    }
    tclose(r, s0);
    tclose(r, s1);
    return 0;
}

/* The LATE task's work after the stop: 32 bytes through its pipe (when it
 * has one) and a 0.5 ms sleep, until it is cancelled (bounded: 20,000
 * rounds, ~10 s, far beyond any Cancel phase). Returns whether it was. */
static bool late_io(struct tctx *c, int s0, int s1)
{
    struct round *r = c->r;
    for (unsigned i = 0; i < 20000; i++) {
        if (s0 >= 0) {
            uint64_t seed = i + 77;
            pat_fill(seed, 0, c->small, 32);
            ssize_t w = tr_write(fd_of(r, s1), c->small, 32, -1);
            opc();
            if (w == -ECANCELED)
                return true;
            if (w != 32)
                viol(r, "late: tr_write = %zd", w);
            ssize_t g = tr_read(fd_of(r, s0), c->small + 64, 32, -1);
            opc();
            if (g == -ECANCELED)
                return true;
            if (g != 32 || pat_check(seed, 0, c->small + 64, 32) != 32)
                viol(r, "late: tr_read = %zd or data mismatch", g);
        }
        int z = tr_sleep_ns(500000);
        opc();
        if (z == -ECANCELED)
            return true;
    }
    return false;
}

int w_late(struct tctx *c)
{
    struct round *r = c->r;
    bool check = !tr_shutting_down();
    unsigned calls0 = r->cancel_alls; /* a cancel_all from now on also cancels us */
    int s0 = -1, s1 = -1;
    own_pipe(c, &s0, &s1);
    bool cancelled = false;
    int z = tr_wait_shutdown();
    opc();
    if (z == -ECANCELED) {
        cancelled = true; /* a cancel_all before the shutdown */
        check = false;
    } else if (z != 0) {
        viol(r, "tr_wait_shutdown = %d", z);
    } else if (!tr_shutting_down()) {
        viol(r, "tr_wait_shutdown returned 0 but tr_shutting_down() is false");
    }
    if (!cancelled)
        cancelled = late_io(c, s0, s1);
    if (cancelled && check && r->cancel_alls == calls0)
        r->late_checks++;
    /* Tasks the kill rung ended never ran their epilogue, so live_nonlate
     * still counts them: the engine's live count is the truth for those (a
     * LATE task is cancelled, and killed, only once every other task ended,
     * killed ones included). */
    const tr_engine *e = tr_self_engine();
    if (cancelled && check && r->cancel_alls == calls0 && r->live_nonlate != 0 &&
        e->sch.live > e->sch.live_late) /* white-box: the engine's non-LATE tasks */
        viol(r, "a TR_SPAWN_LATE task was cancelled while %" PRIu64 " other tasks were alive",
             r->live_nonlate);
    tclose(r, s0);
    tclose(r, s1);
    r->late_live--;
    return cancelled ? -ECANCELED : 0;
}

int w_spawnchk(struct tctx *c)
{
    struct round *r = c->r;
    if (!tr_is_cancelled())
        viol(r, "a task spawned during the shutdown did not start cancelled");
    int z = tr_nop();
    opc();
    if (z != -ECANCELED)
        viol(r, "a task spawned during the shutdown: tr_nop = %d", z);
    return -ECANCELED;
}
