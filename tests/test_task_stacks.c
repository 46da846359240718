/* SPDX-License-Identifier: MIT */
/*
 * Description: task stacks: sequential tasks reuse them (10,000 spawns),
 * custom sizes per task (tr_spawn_opts.stack_size) and per engine
 * (tr_config.stack_size) give room for a large local.
 * Checks inside tasks record failures with TCHECK* (see tr_test_task.h).
 */
#define _GNU_SOURCE /* pipe2, in tr_test.h */
#include "tr_test_task.h"

/* --------------------------------------------------------------- stacks */

#define SEQ_TASKS 10000
struct seq {
    uint64_t max_stacks;
    int ok;
};

static int fn_seq_child(void *p)
{
    return (int)((intptr_t)p & 0xff);
}

static int fn_seq(void *p)
{
    struct seq *s = p;
    for (int i = 0; i < SEQ_TASKS; i++) {
        tr_task *t = NULL;
        if (!TCHECK_EQ(tr_spawn(NULL, &t, fn_seq_child, (void *)(intptr_t)i, NULL), 0))
            return -EIO;
        int r = -1;
        if (!TCHECK_EQ(tr_join(t, &r), 0))
            return -EIO;
        if (r == (i & 0xff))
            s->ok++;
        struct tr_stats st = stats_of(g_e);
        uint64_t stacks = st.stacks_guarded + st.stacks_canary;
        if (stacks > s->max_stacks)
            s->max_stacks = stacks;
    }
    return 0;
}

static void test_task_sequential_spawns_reuse_stacks(void **state)
{
    (void)state;
    struct seq s = {0, 0};
    assert_int_equal(tt_run(fn_seq, &s), 0);
    assert_int_equal(s.ok, SEQ_TASKS);
    /* At most two tasks live at once: one slab (64 stacks) serves them all. */
    assert_true(s.max_stacks >= 1);
    assert_true(s.max_stacks <= 64);
}

#define BIG_STACK (256 * 1024)
#define BIG_LOCAL (200 * 1024)

static int fn_big_local(void *p)
{
    (void)p;
    volatile unsigned char buf[BIG_LOCAL];
    for (size_t i = 0; i < sizeof buf; i += 512)
        buf[i] = (unsigned char)(i >> 9);
    buf[sizeof buf - 1] = 0x5a;
    /* Park with the deep frame live: the stack must survive a switch. */
    TCHECK_EQ(tr_yield(), 0);
    TCHECK_EQ(tr_nop(), 0);
    int bad = 0;
    for (size_t i = 0; i < sizeof buf; i += 512)
        bad += buf[i] != (unsigned char)(i >> 9);
    bad += buf[sizeof buf - 1] != 0x5a;
    return bad == 0 ? 1 : -EIO;
}

static int fn_stack_sizes(void *p)
{
    (void)p;
    tr_task *t = NULL;
    int r = 0;
    struct tr_spawn_opts o = {.name = "big", .stack_size = BIG_STACK};
    TCHECK_EQ(tr_spawn(NULL, &t, fn_big_local, NULL, &o), 0);
    TCHECK_EQ(tr_join(t, &r), 0);
    TCHECK_EQ(r, 1);
    /* The minimum and a size that is not a whole number of pages work. */
    o.stack_size = 16 * 1024;
    TCHECK_EQ(tr_spawn(NULL, &t, fn_yield_n, (void *)(intptr_t)2, &o), 0);
    TCHECK_EQ(tr_join(t, &r), 0);
    TCHECK_EQ(r, 2);
    o.stack_size = 20000;
    TCHECK_EQ(tr_spawn(NULL, &t, fn_yield_n, (void *)(intptr_t)3, &o), 0);
    TCHECK_EQ(tr_join(t, &r), 0);
    TCHECK_EQ(r, 3);
    o.stack_size = 16 * 1024 - 1;
    TCHECK_EQ(tr_spawn(NULL, &t, fn_yield_n, NULL, &o), -EINVAL);
    return 0;
}

static void test_task_custom_stack_size(void **state)
{
    (void)state;
    assert_int_equal(tt_run(fn_stack_sizes, NULL), 0);
}

/* The engine's default stack size comes from the config. */
static void test_task_config_stack_size(void **state)
{
    (void)state;
    tr_engine *e = NULL;
    struct tr_config cfg;
    tr_config_init(&cfg);
    assert_int_equal(cfg.stack_size, 64 * 1024);
    cfg.stack_size = BIG_STACK;
    assert_int_equal(tr_engine_create(&e, &cfg), 0);
    tr_task *t = NULL;
    assert_int_equal(tr_spawn(e, &t, fn_big_local, NULL, NULL), 0);
    assert_int_equal(tr_detach(t), 0);
    assert_int_equal(tr_engine_run(e), 0);
    struct tr_stats st;
    assert_int_equal(tr_engine_stats(e, &st), 0);
    assert_int_equal(st.tasks_ok, 1);
    tr_test_assert_quiescent(e);
    assert_int_equal(tr_engine_destroy(e), 0);
    tr_test_assert_clean();
}

/* ----------------------------------------------------------------- main */

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_task_sequential_spawns_reuse_stacks),
        T(test_task_custom_stack_size),
        T(test_task_config_stack_size),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
