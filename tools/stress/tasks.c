/* SPDX-License-Identifier: MIT */
/*
 * tasks.c — the tool's task records and the calls every kind makes on
 * other tasks: spawning with the tool's bookkeeping, cancelling, joining,
 * choosing a random kind, and the one task function that dispatches on
 * the kind and settles the books when it returns.
 */
#include "stress.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------- records */

struct tctx *ctx_get(struct round *r)
{
    struct tctx *c = r->freel;
    if (c) {
        r->freel = c->next_free;
    } else {
        if (r->nall == r->capall) {
            size_t cap = r->capall ? r->capall * 2 : 1024;
            struct tctx **n = realloc(r->all, cap * sizeof(*n));
            if (!n)
                return NULL;
            r->all = n;
            r->capall = cap;
        }
        c = malloc(sizeof(*c));
        if (!c)
            return NULL;
        r->all[r->nall++] = c;
    }
    memset(c, 0, offsetof(struct tctx, path));
    c->r = r;
    c->stream = -1;
    return c;
}

static void ctx_put(struct round *r, struct tctx *c)
{
    c->state = TS_RETURNED;
    c->next_free = r->freel;
    r->freel = c;
}

/* opt: an optional spawn, refused at MAX_LIVE; essential ones (a stream's
 * two ends) may exceed it by a little. */
int spawn_kind(struct round *r, tr_engine *e, tr_task **out, int kind, unsigned flags,
               unsigned depth, int stream, bool opt)
{
    if (opt && r->spawned - r->returned >= MAX_LIVE)
        return -EAGAIN;
    struct tctx *c = ctx_get(r);
    if (!c)
        return -ENOMEM;
    c->kind = (uint8_t)kind;
    c->late = (flags & TR_SPAWN_LATE) != 0;
    c->depth = (uint8_t)depth;
    c->stream = stream;
    struct tr_spawn_opts o = {.name = kind_names[kind], .stack_size = 0, .flags = flags};
    if (pct(8)) /* an odd size: its own mapping, not a pooled slab stack */
        o.stack_size = 32 * 1024 + rbelow(40000);
    int err = tr_spawn(e, out, task_main, c, &o);
    if (err) {
        ctx_put(r, c);
        viol(r, "tr_spawn(%s) = %s", kind_names[kind], strerror(-err));
        return err;
    }
    if (kind == K_ACCEPTOR)
        r->acceptors++;
    if (kind == K_LATE)
        r->late_live++;
    r->spawned++;
    if (!c->late)
        r->live_nonlate++;
    atomic_fetch_add_explicit(&g_tasks, 1, memory_order_relaxed);
    return 0;
}

int spawn_group_kind(struct round *r, struct tr_group *g, int kind, unsigned depth,
                     struct sworker *sw, const char *name)
{
    struct tctx *c = ctx_get(r);
    if (!c)
        return -ENOMEM;
    c->kind = (uint8_t)kind;
    c->depth = (uint8_t)depth;
    c->sw = sw;
    struct tr_spawn_opts o = {.name = name, .stack_size = 0, .flags = 0};
    if (pct(8))
        o.stack_size = 32 * 1024 + rbelow(40000);
    int err = tr_group_spawn(g, task_main, c, &o);
    if (err) {
        ctx_put(r, c);
        return err;
    }
    r->spawned++;
    r->live_nonlate++;
    atomic_fetch_add_explicit(&g_tasks, 1, memory_order_relaxed);
    return 0;
}

void cancel_checked(struct round *r, tr_task *t)
{
    int rc = tr_cancel(t);
    if (rc == 0) {
        r->cancels++;
        atomic_fetch_add_explicit(&g_cancels, 1, memory_order_relaxed);
    } else if (rc != -ESRCH) {
        viol(r, "tr_cancel = %s", strerror(-rc));
    }
}

/* Joins a child we own; on -ECANCELED maybe retries inside a shield, else
 * gives the handle up with tr_detach. Returns 0 or -ECANCELED. */
int join_child(struct round *r, tr_task *t)
{
    int res = 0;
    int rc = tr_join(t, &res);
    opc();
    if (rc == -ECANCELED && pct(50)) {
        tr_shield_begin();
        rc = tr_join(t, &res);
        opc();
        tr_shield_end();
    }
    if (rc == -ECANCELED) {
        int d = tr_detach(t);
        if (d != 0)
            viol(r, "tr_detach after a cancelled tr_join = %s", strerror(-d));
        return -ECANCELED;
    }
    if (rc != 0) {
        viol(r, "tr_join = %s", strerror(-rc));
        return -EIO;
    }
    if (res != 0 && res != -ECANCELED && res != -EIO /* -EIO: a violation already recorded */)
        viol(r, "a child ended with %d (%s)", res, strerror(-res));
    return 0;
}

int pick_kind(struct round *r, unsigned depth)
{
    unsigned x = (unsigned)rbelow(100);
    if (x < 35)
        return K_TIMER;
    if (x < 40)
        return K_SYNC;
    if (x < 48)
        return K_SCOPE;
    if (x < 62)
        return K_STREAM;
    if (x < 70)
        return K_FILE;
    if (x < 77)
        return K_CLIENT;
    if (x < 80)
        return r->acceptors < 12 ? K_ACCEPTOR : K_TIMER;
    if (x < 94)
        return depth < MAX_DEPTH ? K_SUPER : K_TIMER;
    return K_SELF;
}

/* ------------------------------------------------------------- dispatch */

static int (*const workers[K__COUNT])(struct tctx *) = {
    [K_ORCH] = w_orch,     [K_SIG] = w_sig,           [K_TIMER] = w_timer,
    [K_FILE] = w_file,     [K_STREAM] = w_stream,     [K_WRITER] = w_writer,
    [K_READER] = w_reader, [K_ACCEPTOR] = w_acceptor, [K_CLIENT] = w_client,
    [K_SUPER] = w_super,   [K_CALL] = w_call,         [K_SELF] = w_self,
    [K_STUB] = w_stub,     [K_LATE] = w_late,         [K_SPAWNCHK] = w_spawnchk,
    [K_SCOPE] = w_scope,   [K_SYNC] = w_sync,         [K_SYNCW] = w_syncw,
};

/* Every task of the tool: the kind's function, then the books (the
 * record's buffer and fd reservations back to the round, the ending
 * counted). A killed task never gets here: its record stays short of
 * TS_RETURNED, which the fd audit reads. */
int task_main(void *arg)
{
    struct tctx *c = arg;
    struct round *r = c->r;
    c->state = TS_RUNNING;
    int res = c->kind < K__COUNT ? workers[c->kind](c) : -EINVAL;
    if (c->buf) {
        buf_put(r, c->buf);
        c->buf = NULL;
    }
    fdt_release(c);
    r->returned++;
    if (res >= 0)
        r->ok++;
    else if (res == -ECANCELED)
        r->cancelled++;
    else
        r->failed++;
    if (!c->late)
        r->live_nonlate--;
    ctx_put(r, c);
    return res;
}
