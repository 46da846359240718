/* SPDX-License-Identifier: MIT */
/*
 * hooks.c — tr_at_shutdown hooks. The orchestrator registers the audit
 * hook first, so it runs last (LIFO), when every task has ended; timer
 * tasks register hooks that do I/O on a pipe or a temp file, sleep, hold
 * the Finalize phase (sometimes until they are killed), or spawn a task
 * during the shutdown (which must start cancelled) and register another
 * hook from inside a hook.
 */
#include "stress.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* The last hook: the engine's books and ours at that moment, for
 * audit_last_hook after the round. */
static int hook_audit(struct hctx *h)
{
    struct round *r = h->r;
    /* Registered first, so it runs last: every task has ended. */
    tr_engine_stats(tr_self_engine(), &r->audit);
    r->audit_spawned = r->spawned;
    r->audit_returned = r->returned;
    r->audit_ok = r->ok;
    r->audit_cancelled = r->cancelled;
    r->audit_failed = r->failed;
    r->audit_hooks_reg = r->hooks_reg;
    r->audit_etimedout = r->etimedout;
    r->audit_left_planned = r->left_planned;
    r->audit_mtx_left_planned = r->mtx_left_planned;
    r->audit_group_fails = r->group_fails;
    r->audit_done = true;
    /* Every task has ended: the worlds whose coordinator was killed are
     * audited here, inside a task (their leftovers need one). */
    sync_audit_hook(r);
    return 0;
}

/* 64 bytes through a fresh pipe, checked. */
static int hook_pipe(struct hctx *h)
{
    struct round *r = h->r;
    int res = 0;
    int p[2];
    if (pipe2(p, O_CLOEXEC) < 0) {
        viol(r, "hook: pipe2: %s", strerror(errno));
        return res;
    }
    int s0 = fdt_reg(r, NULL, p[0], FR_OTHER, -1);
    int s1 = fdt_reg(r, NULL, p[1], FR_OTHER, -1);
    if (s0 < 0 || s1 < 0)
        return res;
    pat_fill(h->seed, 0, h->buf, 64);
    ssize_t w = tr_write(p[1], h->buf, 64, -1);
    opc();
    if (w == 64) {
        ssize_t g = tr_read(p[0], h->buf + 1024, 64, -1);
        opc();
        if (g == 64) {
            if (pat_check(h->seed, 0, h->buf + 1024, 64) != 64)
                viol(r, "hook: pipe data mismatch");
        } else if (g != -ECANCELED) {
            viol(r, "hook: tr_read = %zd", g);
        } else {
            res = -ECANCELED;
        }
    } else if (w != -ECANCELED) {
        viol(r, "hook: tr_write = %zd", w);
    } else {
        res = -ECANCELED;
    }
    tclose(r, s0);
    tclose(r, s1);
    return res;
}

/* 2 KiB written to an O_TMPFILE and read back, checked. in_open marks the
 * openat whose fd a kill would leak (the fd audit allows for it). */
static int hook_file(struct hctx *h)
{
    struct round *r = h->r;
    int res = 0;
    if (!g_tmpfile_ok)
        return res;
    h->in_open = true;
    int fd = tr_openat(AT_FDCWD, g_dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
    opc();
    if (fd < 0) {
        h->in_open = false;
        if (fd == -ECANCELED)
            res = fd;
        else
            viol(r, "hook: tr_openat(O_TMPFILE) = %s", strerror(-fd));
        return res;
    }
    int s = fdt_reg(r, NULL, fd, FR_OTHER, -1);
    h->in_open = false;
    if (s < 0)
        return res;
    pat_fill(h->seed, 0, h->buf, 2048);
    ssize_t w = tr_write(fd, h->buf, 2048, 0);
    opc();
    if (w == 2048) {
        ssize_t g = tr_read(fd, h->buf + 2048, 2048, 0);
        opc();
        if (g == 2048) {
            if (pat_check(h->seed, 0, h->buf + 2048, 2048) != 2048)
                viol(r, "hook: file data mismatch");
        } else if (g == -ECANCELED) {
            res = -ECANCELED;
        } else {
            viol(r, "hook: file tr_read = %zd", g);
        }
    } else if (w == -ECANCELED) {
        res = -ECANCELED;
    } else {
        viol(r, "hook: file tr_write = %zd", w);
    }
    tclose(r, s);
    return res;
}

/* Holds the Finalize phase: a shielded sleep, then (sometimes) ignoring
 * the cancellation until the hook is killed. */
static int hook_slow(struct hctx *h)
{
    struct round *r = h->r;
    tr_shield_begin();
    int z = tr_sleep_ns(rbelow(400 * MS));
    opc();
    tr_shield_end();
    if (z != 0 && z != -ECANCELED)
        viol(r, "hook: shielded tr_sleep_ns = %d", z);
    if (r->hooks_stubborn && pct(50)) {
        uint64_t end = now_ns() + 2000 * MS;
        for (unsigned i = 0; i < 10000000 && now_ns() < end; i++) {
            z = tr_sleep_ns(MS);
            opc();
            if (z != 0 && z != -ECANCELED)
                viol(r, "hook: tr_sleep_ns = %d", z);
        }
    }
    return 0;
}

/* A task spawned during the shutdown (here: Finalize) starts cancelled; a
 * hook may also register another hook. */
static int hook_spawn(struct hctx *h)
{
    struct round *r = h->r;
    tr_task *t;
    if (spawn_kind(r, NULL, &t, K_SPAWNCHK, 0, 1, -1, false) == 0)
        (void)join_child(r, t);
    if (r->hooks_reg < MAX_HOOKS)
        add_hook(r, (uint8_t)(HK_PIPE + rbelow(3)));
    return 0;
}

/* A short sleep. */
static int hook_sleep(struct hctx *h)
{
    struct round *r = h->r;
    int res = 0;
    int z = tr_sleep_ns(rbelow(2 * MS));
    opc();
    if (z == -ECANCELED)
        res = z;
    else if (z != 0)
        viol(r, "hook: tr_sleep_ns = %d", z);
    return res;
}

static int hook_fn(void *arg)
{
    struct hctx *h = arg;
    struct round *r = h->r;
    int res = 0;
    h->started = true;
    r->hooks_started++;
    switch (h->kind) {
    case HK_AUDIT:
        res = hook_audit(h);
        break;
    case HK_PIPE:
        res = hook_pipe(h);
        break;
    case HK_FILE:
        res = hook_file(h);
        break;
    case HK_SLOW:
        res = hook_slow(h);
        break;
    case HK_SPAWN:
        res = hook_spawn(h);
        break;
    default:
        res = hook_sleep(h);
        break;
    }
    h->done = true;
    r->hooks_done++;
    return res;
}

void add_hook(struct round *r, uint8_t kind)
{
    struct hctx *h = calloc(1, sizeof(*h));
    if (!h)
        return;
    h->r = r;
    h->kind = kind;
    h->seed = rnd();
    h->next = r->hooks;
    r->hooks = h;
    int rc = tr_at_shutdown(hook_fn, h);
    if (rc != 0)
        viol(r, "tr_at_shutdown = %s", strerror(-rc));
    else
        r->hooks_reg++;
}
