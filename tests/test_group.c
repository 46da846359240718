/* SPDX-License-Identifier: MIT */
/*
 * Description: task groups (DESIGN section 8, G10): the owner waits for
 * every child; the first real failure cancels the others and is what the
 * wait returns, a cancellation never masks it; an owner cut short while
 * waiting (cancel, deadline) cancels the children and still waits for all;
 * the scopes enclosing tr_group_init cancel the children when they
 * trigger; spawning into a cancelling group is refused and the child never
 * runs; failures are listed in completion order; an owner that returns
 * without waiting has its children cancelled and ended first (counted);
 * misuse is -EPERM/-EINVAL. No timing assertions: children wait for an
 * hour or for an event, and deadlines are only "passed" or "an hour".
 */
#define _GNU_SOURCE
#include "tr_harness.h"
#include "tr_test_task.h"

#include <stdio.h>
#include <string.h>

#define HOUR (3600ull * 1000000000ull)

static int g_seq; /* order of ends */

struct kid {
    int mode; /* what the child does */
    int result;
    int ended_at;
    bool ran;
};

enum { K_OK, K_FAIL_AFTER_YIELD, K_SLEEP, K_FAIL_ON_CANCEL, K_FAIL_NOW };

static int fn_kid(void *p)
{
    struct kid *k = p;
    k->ran = true;
    int r = 0;
    switch (k->mode) {
    case K_OK:
        r = tr_yield();
        break;
    case K_FAIL_AFTER_YIELD:
        (void)tr_yield();
        r = -EIO;
        break;
    case K_SLEEP:
        r = tr_sleep_ns(HOUR);
        break;
    case K_FAIL_ON_CANCEL:
        /* Cut short, it fails for real: that must not be masked. */
        r = tr_sleep_ns(HOUR) == -ECANCELED ? -ENOSPC : 0;
        break;
    case K_FAIL_NOW:
        r = -EPROTO;
        break;
    }
    k->result = r;
    k->ended_at = ++g_seq;
    return r;
}

static int spawn_kids(struct tr_group *g, struct kid *k, int n)
{
    for (int i = 0; i < n; i++)
        TCHECK_EQ(tr_group_spawn(g, fn_kid, &k[i], NULL), 0);
    return 0;
}

/* ------------------------------------------------------------- basics */

static int fn_all_ok(void *p)
{
    (void)p;
    struct tr_group g;
    struct kid k[5];
    memset(k, 0, sizeof(k));
    TCHECK_EQ(tr_group_init(&g), 0);
    spawn_kids(&g, k, 5);
    TCHECK_EQ(tr_group_wait(&g), 0);
    for (int i = 0; i < 5; i++)
        TCHECK(k[i].ran && k[i].result == 0);
    TCHECK_EQ(tr_group_failures(&g, NULL, 0), 0);
    TCHECK_EQ(tr_group_wait(&g), -EINVAL); /* done */
    TCHECK_EQ(tr_group_init(&g), 0);       /* may be used again */
    TCHECK_EQ(tr_group_wait(&g), 0);       /* no children: at once */
    return 0;
}

static void test_group_all_ok(void **state)
{
    (void)state;
    assert_int_equal(tt_run(fn_all_ok, NULL), 0);
}

/* The first real failure cancels the others; their -ECANCELED is no
 * failure; the wait returns the failure. */
static int fn_first_failure(void *p)
{
    (void)p;
    struct tr_group g;
    struct kid k[3] = {{.mode = K_SLEEP}, {.mode = K_FAIL_AFTER_YIELD}, {.mode = K_SLEEP}};
    TCHECK_EQ(tr_group_init(&g), 0);
    spawn_kids(&g, k, 3);
    TCHECK_EQ(tr_group_wait(&g), -EIO);
    TCHECK_EQ(k[0].result, -ECANCELED);
    TCHECK_EQ(k[2].result, -ECANCELED);
    struct tr_failure f[4];
    TCHECK_EQ(tr_group_failures(&g, f, 4), 1);
    TCHECK_EQ(f[0].result, -EIO);
    TCHECK(strncmp(f[0].name, "task-", 5) == 0);
    struct kid late = {.mode = K_OK};
    TCHECK_EQ(tr_group_spawn(&g, fn_kid, &late, NULL), -EINVAL); /* done */
    TCHECK(tstats().group_failures >= 1);
    return 0;
}

static void test_group_first_failure_cancels_the_rest(void **state)
{
    (void)state;
    assert_int_equal(tt_run(fn_first_failure, NULL), 0);
}

/* A cancelling group refuses new children: they never run. Failures are
 * listed in completion order, all of them counted. */
static int fn_cancelling_refuses(void *p)
{
    (void)p;
    struct tr_group g;
    struct kid k[2] = {{.mode = K_FAIL_NOW}, {.mode = K_SLEEP}};
    TCHECK_EQ(tr_group_init(&g), 0);
    spawn_kids(&g, k, 2);
    TCHECK_EQ(tr_yield(), 0); /* k0 fails: the group is cancelling */
    struct kid late = {.mode = K_OK};
    TCHECK_EQ(tr_group_spawn(&g, fn_kid, &late, NULL), -ECANCELED);
    TCHECK_EQ(tr_group_wait(&g), -EPROTO);
    TCHECK(!late.ran);
    /* Ten children failing at once: completion order, ten counted. */
    struct kid many[10];
    for (int i = 0; i < 10; i++)
        many[i] = (struct kid){.mode = K_FAIL_NOW};
    TCHECK_EQ(tr_group_init(&g), 0);
    spawn_kids(&g, many, 10);
    TCHECK_EQ(tr_group_wait(&g), -EPROTO);
    struct tr_failure f[TR_GROUP_FAILURES];
    /* each fails for real, cancelled or not: none of them masked */
    TCHECK_EQ(tr_group_failures(&g, f, TR_GROUP_FAILURES), 10);
    for (int i = 0; i + 1 < TR_GROUP_FAILURES; i++) /* completion order: they ran in spawn order */
        TCHECK(f[i].task_id < f[i + 1].task_id && f[i].result == -EPROTO);
    return 0;
}

static void test_group_cancelling_refuses_spawn(void **state)
{
    (void)state;
    assert_int_equal(tt_run(fn_cancelling_refuses, NULL), 0);
}

/* ------------------------------------------------ the owner cut short */

struct owner_ctx {
    struct kid k[3];
    int wait_res, exit_res;
    tr_task *owner;
};

static int fn_owner_waits(void *p)
{
    struct owner_ctx *c = p;
    struct tr_group g;
    TCHECK_EQ(tr_group_init(&g), 0);
    spawn_kids(&g, c->k, 3);
    c->wait_res = tr_group_wait(&g);
    return 0;
}

/* Cancelled while it waits: the children are cancelled, the wait goes on
 * until all ended and returns -ECANCELED — or the real failure of a child
 * that fails when cancelled (never masked). */
static int fn_owner_cancelled(void *p)
{
    struct owner_ctx *c = p;
    tr_task *o;
    TCHECK_EQ(tr_spawn(NULL, &o, fn_owner_waits, c, NULL), 0);
    for (int i = 0; i < 4; i++)
        TCHECK_EQ(tr_yield(), 0);
    TCHECK(tr__task_parked_on(o, TR_WAIT_GROUP));
    TCHECK_EQ(tr_cancel(o), 0);
    TCHECK_EQ(tr_join(o, NULL), 0);
    for (int i = 0; i < 3; i++)
        TCHECK(c->k[i].ended_at > 0); /* all ended before the owner returned */
    return 0;
}

static void test_group_owner_cancelled_waits_for_all(void **state)
{
    (void)state;
    struct owner_ctx c = {.k = {{.mode = K_SLEEP}, {.mode = K_SLEEP}, {.mode = K_SLEEP}}};
    assert_int_equal(tt_run(fn_owner_cancelled, &c), 0);
    assert_int_equal(c.wait_res, -ECANCELED);
    for (int i = 0; i < 3; i++)
        assert_int_equal(c.k[i].result, -ECANCELED);

    struct owner_ctx d = {.k = {{.mode = K_SLEEP}, {.mode = K_FAIL_ON_CANCEL}, {.mode = K_SLEEP}}};
    assert_int_equal(tt_run(fn_owner_cancelled, &d), 0);
    assert_int_equal(d.wait_res, -ENOSPC); /* not masked by -ECANCELED */
}

/* A deadline of the scope around the group: it fires while the owner
 * sleeps (not waiting on the group): the children are cancelled then;
 * the owner's wait returns -ETIMEDOUT, its scope's exit too. */
static int fn_scope_deadline(void *p)
{
    struct owner_ctx *c = p;
    struct tr_scope s;
    TCHECK_EQ(tr_scope_enter(&s, 0, 0), 0);
    struct tr_group g;
    TCHECK_EQ(tr_group_init(&g), 0);
    spawn_kids(&g, c->k, 3);
    /* Set only now: a deadline set before the spawns could pass during
     * them on a slow machine (valgrind translating new code), and the
     * spawns would be refused. */
    TCHECK_EQ(tr_scope_set_deadline(&s, tr_now_ns() + 2000000ull), 0);
    TCHECK_EQ(tr_scope_exit(&s), -EINVAL); /* the group inside must be waited for first */
    TCHECK_EQ(tr_sleep_ns(HOUR), -ETIMEDOUT);
    for (int i = 0; i < 3; i++)
        TCHECK_EQ(tr_yield(), -ETIMEDOUT); /* level-triggered; the children end meanwhile */
    c->wait_res = tr_group_wait(&g);
    c->exit_res = tr_scope_exit(&s);
    return 0;
}

static void test_group_enclosing_deadline_cancels_children(void **state)
{
    (void)state;
    struct owner_ctx c = {.k = {{.mode = K_SLEEP}, {.mode = K_SLEEP}, {.mode = K_SLEEP}}};
    assert_int_equal(tt_run(fn_scope_deadline, &c), 0);
    assert_int_equal(c.wait_res, -ETIMEDOUT);
    assert_int_equal(c.exit_res, -ETIMEDOUT);
    for (int i = 0; i < 3; i++)
        assert_int_equal(c.k[i].result, -ECANCELED);
}

/* ---------------------------------------------------- others, misuse */

struct cancel_ctx {
    struct tr_group *g;
    int res_spawn, res_wait;
};

static int fn_other(void *p)
{
    struct cancel_ctx *c = p;
    struct kid k = {.mode = K_OK};
    c->res_spawn = tr_group_spawn(c->g, fn_kid, &k, NULL);
    c->res_wait = tr_group_wait(c->g);
    return tr_group_cancel(c->g);
}

static int fn_cancel_by_other(void *p)
{
    (void)p;
    struct tr_group g;
    struct kid k[2] = {{.mode = K_SLEEP}, {.mode = K_SLEEP}};
    TCHECK_EQ(tr_group_init(&g), 0);
    spawn_kids(&g, k, 2);
    struct cancel_ctx c = {.g = &g};
    tr_task *t;
    TCHECK_EQ(tr_spawn(NULL, &t, fn_other, &c, NULL), 0);
    int r = -1;
    TCHECK_EQ(tr_join(t, &r), 0);
    TCHECK_EQ(r, 0);
    TCHECK_EQ(c.res_spawn, -EPERM); /* only the owner */
    TCHECK_EQ(c.res_wait, -EPERM);
    TCHECK_EQ(tr_group_wait(&g), 0); /* cancelled children are no failures */
    TCHECK_EQ(k[0].result, -ECANCELED);
    TCHECK_EQ(tr_group_spawn(NULL, fn_kid, NULL, NULL), -EINVAL);
    TCHECK_EQ(tr_group_init(NULL), -EINVAL);
    return 0;
}

static void test_group_cancel_by_another_task(void **state)
{
    (void)state;
    assert_int_equal(tt_run(fn_cancel_by_other, NULL), 0);
    struct tr_group g;
    assert_int_equal(tr_group_init(&g), -EPERM); /* outside a task */
}

/* G10: an owner that returns without waiting has its children cancelled
 * and ended before it ends; counted, and named in the report. */
static struct kid g_left[3];
static int g_owner_ended_at;

static int fn_leaves(void *p)
{
    (void)p;
    struct tr_group g;
    TCHECK_EQ(tr_group_init(&g), 0);
    for (int i = 0; i < 3; i++)
        g_left[i] = (struct kid){.mode = K_SLEEP};
    spawn_kids(&g, g_left, 3);
    return 0; /* without tr_group_wait */
}

static int fn_watch_leaver(void *p)
{
    (void)p;
    tr_task *o;
    TCHECK_EQ(tr_spawn(NULL, &o, fn_leaves, NULL, NULL), 0);
    TCHECK_EQ(tr_join(o, NULL), 0);
    g_owner_ended_at = ++g_seq;
    TCHECK_EQ(tstats().groups_abandoned, 1);
    return 0;
}

static void test_group_owner_returns_without_waiting(void **state)
{
    (void)state;
    assert_int_equal(tt_run(fn_watch_leaver, NULL), 0);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(g_left[i].result, -ECANCELED);
        assert_true(g_left[i].ended_at < g_owner_ended_at);
    }
}

/* The dump names the owner's group wait. */
static int fn_dump(void *p)
{
    (void)p;
    struct owner_ctx c = {.k = {{.mode = K_SLEEP}, {.mode = K_SLEEP}, {.mode = K_SLEEP}}};
    tr_task *o;
    struct tr_spawn_opts so = {.name = "owner"};
    TCHECK_EQ(tr_spawn(NULL, &o, fn_owner_waits, &c, &so), 0);
    for (int i = 0; i < 4; i++)
        TCHECK_EQ(tr_yield(), 0);
    FILE *f = tmpfile();
    TCHECK(f != NULL);
    TCHECK(tr_engine_dump(tr_self_engine(), fileno(f)) == 5);
    char buf[8192];
    size_t n = (size_t)pread(fileno(f), buf, sizeof(buf) - 1, 0);
    buf[n] = 0;
    fclose(f);
    TCHECK(strstr(buf, "group-wait group=") != NULL); /* the kind, a space, its details */
    TCHECK(strstr(buf, "children=3") != NULL);
    TCHECK_EQ(tr_cancel(o), 0);
    TCHECK_EQ(tr_join(o, NULL), 0);
    return 0;
}

static void test_group_dump(void **state)
{
    (void)state;
    assert_int_equal(tt_run(fn_dump, NULL), 0);
}

/* The kill rung and a group: the owner waits, a child ignores its
 * cancellation and uses what the owner's frame gave it; the owner is not
 * killed before the child (its stack holds the child's context), and the
 * shutdown ends. */
struct stubborn {
    int on_owner_stack;
    int touched;
};

static int fn_stubborn_child(void *p)
{
    struct stubborn *c = p;
    /* Until killed (bounded all the same). */
    for (long i = 0; i < 100000000L; i++) {
        (void)tr_yield();
        c->on_owner_stack++; /* the owner's frame: must still be there */
        c->touched++;
    }
    return 0;
}

static int fn_group_owner_at_shutdown(void *p)
{
    (void)p;
    struct stubborn c = {0};
    struct tr_group g;
    TCHECK_EQ(tr_group_init(&g), 0);
    TCHECK_EQ(tr_group_spawn(&g, fn_stubborn_child, &c, NULL), 0);
    struct tr_spawn_opts late = {.flags = TR_SPAWN_LATE};
    TCHECK_EQ(tr_group_spawn(&g, fn_stubborn_child, &c, &late), -EINVAL); /* a LATE child */
    TCHECK_EQ(tr_engine_shutdown(tr_self_engine()), 0);
    (void)tr_group_wait(&g);
    return 0;
}

static void test_group_kill_rung_spares_owner_until_children_end(void **state)
{
    (void)state;
    (void)tt_run_to_kill(fn_group_owner_at_shutdown, NULL);
}

/* A cancelled task looping on an empty group's wait passes through the
 * scheduler each time: another task keeps running meanwhile. */
static int g_ticks;

static int fn_ticker(void *p)
{
    (void)p;
    for (int i = 0; i < 100; i++) {
        g_ticks++;
        TCHECK_EQ(tr_yield(), 0);
    }
    return 0;
}

static int fn_spin_wait(void *p)
{
    (void)p;
    tr_task *t;
    TCHECK_EQ(tr_spawn(NULL, &t, fn_ticker, NULL, NULL), 0);
    TCHECK_EQ(tr_cancel(tr_self()), 0);
    int before = g_ticks;
    for (int i = 0; i < 50; i++) {
        struct tr_group g;
        TCHECK_EQ(tr_group_init(&g), 0);
        TCHECK_EQ(tr_group_wait(&g), -ECANCELED);
    }
    TCHECK(g_ticks >= before + 49); /* it ran between our waits */
    (void)tr_join(t, NULL);
    return 0;
}

static void test_group_cut_wait_yields(void **state)
{
    (void)state;
    assert_int_equal(tt_run(fn_spin_wait, NULL), 0);
}

/* ------------------------------------- the review of 2026-12-07 (rev1) */

/* A shield the owner opens after tr_group_init shields the owner only, as
 * a TR_SCOPE_SHIELD scope entered there does: neither encloses the group,
 * so the owner's cancellation cancels the children at once; and closing it
 * re-checks. The tr_shield_begin one kept the children running. */
static int sh_child_ended, sh_seen_in_shield, sh_mode;

static int sh_child(void *p)
{
    (void)p;
    int r = tr_sleep_ns(HOUR);
    sh_child_ended = 1;
    return r;
}

static int sh_owner(void *p)
{
    (void)p;
    struct tr_group g;
    struct tr_scope s;
    TCHECK_EQ(tr_group_init(&g), 0);
    TCHECK_EQ(tr_group_spawn(&g, sh_child, NULL, NULL), 0);
    if (sh_mode == 0)
        TCHECK(tr_shield_begin() > 0);
    else
        TCHECK_EQ(tr_scope_enter(&s, 0, TR_SCOPE_SHIELD), 0);
    for (int i = 0; i < 16; i++)
        TCHECK_EQ(tr_yield(), 0); /* shielded; the main task cancels us meanwhile */
    sh_seen_in_shield = sh_child_ended;
    if (sh_mode == 0)
        TCHECK(tr_shield_end() >= 0);
    else
        TCHECK_EQ(tr_scope_exit(&s), 0);
    TCHECK_EQ(tr_group_wait(&g), -ECANCELED);
    return 0;
}

/* Spawns the owner *p (a tr_fn), lets it start, cancels it, joins it. */
static int cancel_owner_main(void *p)
{
    tr_task *o;
    TCHECK_EQ(tr_spawn(NULL, &o, *(const tr_fn *)p, NULL, NULL), 0);
    TCHECK_EQ(tr_yield(), 0);
    TCHECK_EQ(tr_yield(), 0);
    TCHECK_EQ(tr_cancel(o), 0);
    TCHECK_EQ(tr_join(o, NULL), 0);
    return 0;
}

static void test_group_shield_after_init_shields_the_owner_only(void **state)
{
    (void)state;
    for (sh_mode = 0; sh_mode < 2; sh_mode++) {
        sh_child_ended = sh_seen_in_shield = 0;
        assert_int_equal(tt_run(cancel_owner_main, &(tr_fn){sh_owner}), 0);
        assert_int_equal(sh_seen_in_shield, 1);
        assert_int_equal(sh_child_ended, 1);
    }
}

/* A shield open at tr_group_init is the children's too (the context):
 * the owner's cancellation reaches them only once it is closed, and the
 * close itself re-checks (the owner makes no call after it here). */
static int shc_in_shield, shc_after;

static int shc_owner(void *p)
{
    (void)p;
    struct tr_group g;
    TCHECK(tr_shield_begin() > 0);
    TCHECK_EQ(tr_group_init(&g), 0);
    TCHECK_EQ(tr_group_spawn(&g, sh_child, NULL, NULL), 0);
    for (int i = 0; i < 16; i++)
        TCHECK_EQ(tr_yield(), 0); /* cancelled meanwhile: the shield holds both */
    shc_in_shield = sh_child_ended;
    TCHECK(tr_shield_end() >= 0);
    shc_after = sh_child_ended; /* nothing ran yet: still parked */
    TCHECK_EQ(tr_group_wait(&g), -ECANCELED);
    TCHECK_EQ(tstats().group_failures, 0); /* its -ECANCELED failed nothing */
    return 0;
}

static void test_group_shield_at_init_holds_until_closed(void **state)
{
    (void)state;
    sh_child_ended = 0;
    assert_int_equal(tt_run(cancel_owner_main, &(tr_fn){shc_owner}), 0);
    assert_int_equal(shc_in_shield, 0);
    assert_int_equal(shc_after, 0);
    assert_int_equal(sh_child_ended, 1);
}

/* A child's own deadline is a real failure, also when it returns its
 * -ETIMEDOUT after the group began cancelling (it was dropped then). */
static struct tr_event to_ev;
static int to_b_first;

static int to_a(void *p)
{
    (void)p;
    TCHECK_EQ(tr_event_set(&to_ev), 0);
    return -EIO;
}

static int to_b(void *p)
{
    (void)p;
    struct tr_scope s;
    TCHECK_EQ(tr_scope_enter(&s, 1, 0), 0); /* passed: triggered */
    to_b_first = tr_yield();                /* its own deadline */
    TCHECK_EQ(tr_scope_exit(&s), -ETIMEDOUT);
    TCHECK(tr_shield_begin() > 0); /* cleans up, while a fails */
    TCHECK_EQ(tr_event_wait(&to_ev), 0);
    TCHECK(tr_shield_end() >= 0);
    return to_b_first;
}

static int to_main(void *p)
{
    (void)p;
    struct tr_group g;
    TCHECK_EQ(tr_event_init(&to_ev), 0);
    TCHECK_EQ(tr_group_init(&g), 0);
    struct tr_spawn_opts ob = {.name = "b"}, oa = {.name = "a"};
    TCHECK_EQ(tr_group_spawn(&g, to_b, NULL, &ob), 0);
    TCHECK_EQ(tr_yield(), 0); /* b times out and parks on the event */
    TCHECK_EQ(tr_group_spawn(&g, to_a, NULL, &oa), 0);
    TCHECK_EQ(tr_group_wait(&g), -EIO);
    struct tr_failure f[4];
    TCHECK_EQ(tr_group_failures(&g, f, 4), 2);
    TCHECK_EQ(f[0].result, -EIO);
    TCHECK_EQ(f[1].result, -ETIMEDOUT);
    TCHECK(strcmp(f[1].name, "b") == 0);
    TCHECK_EQ(to_b_first, -ETIMEDOUT);
    return 0;
}

static void test_group_child_own_timeout_is_a_failure(void **state)
{
    (void)state;
    assert_int_equal(tt_run(to_main, NULL), 0);
}

/* tr_cancel_all called by a group's child spares the owners it runs
 * inside (cancelling one would cancel the caller, and each waits for the
 * caller): it returns its count, the caller is not cancelled, and with
 * TR_CANCEL_WAIT it does not wait for them (it would never end). */
static int ca_ret, ca_self_cancelled;
static unsigned ca_flags;

static int ca_sleeper(void *p)
{
    (void)p;
    return tr_sleep_ns(HOUR);
}

static int ca_inner(void *p)
{
    (void)p;
    ca_ret = tr_cancel_all(NULL, 0, ca_flags);
    ca_self_cancelled = tr_is_cancelled();
    return 0;
}

static int ca_child(void *p)
{
    (void)p;
    struct tr_group g;
    TCHECK_EQ(tr_group_init(&g), 0);
    TCHECK_EQ(tr_group_spawn(&g, ca_inner, NULL, NULL), 0);
    TCHECK_EQ(tr_spawn(NULL, NULL, ca_sleeper, NULL, NULL), 0); /* not of the group */
    TCHECK_EQ(tr_group_wait(&g), 0);
    return 0;
}

static int ca_main(void *p)
{
    (void)p;
    struct tr_group g;
    TCHECK_EQ(tr_spawn(NULL, NULL, ca_sleeper, NULL, NULL), 0);
    TCHECK_EQ(tr_group_init(&g), 0);
    TCHECK_EQ(tr_group_spawn(&g, ca_child, NULL, NULL), 0);
    TCHECK_EQ(tr_group_wait(&g), 0);
    return 0;
}

static void test_group_cancel_all_from_a_child_spares_its_owners(void **state)
{
    (void)state;
    unsigned flags[2] = {0, TR_CANCEL_WAIT};
    for (int i = 0; i < 2; i++) {
        ca_flags = flags[i];
        ca_ret = -1;
        ca_self_cancelled = 1;
        assert_int_equal(tt_run(ca_main, NULL), 0);
        assert_int_equal(ca_ret, 2); /* the two sleepers */
        assert_int_equal(ca_self_cancelled, 0);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_group_all_ok),
        cmocka_unit_test(test_group_first_failure_cancels_the_rest),
        cmocka_unit_test(test_group_cancelling_refuses_spawn),
        cmocka_unit_test(test_group_owner_cancelled_waits_for_all),
        cmocka_unit_test(test_group_enclosing_deadline_cancels_children),
        cmocka_unit_test(test_group_cancel_by_another_task),
        cmocka_unit_test(test_group_owner_returns_without_waiting),
        cmocka_unit_test(test_group_dump),
        cmocka_unit_test(test_group_kill_rung_spares_owner_until_children_end),
        cmocka_unit_test(test_group_cut_wait_yields),
        cmocka_unit_test(test_group_shield_after_init_shields_the_owner_only),
        cmocka_unit_test(test_group_shield_at_init_holds_until_closed),
        cmocka_unit_test(test_group_child_own_timeout_is_a_failure),
        cmocka_unit_test(test_group_cancel_all_from_a_child_spares_its_owners),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
