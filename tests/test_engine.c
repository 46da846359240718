/* SPDX-License-Identifier: MIT */
/*
 * Description: the engine as a whole. Stale completions are never delivered
 * (G3, white-box: a CQE for an old generation of a reused op slot is
 * injected while a task is parked on the new one); tr_engine_destroy refuses
 * with -EBUSY and changes nothing while anything is alive (G2); a table of
 * bad inputs each gets its -errno and never a crash (G7); and cancelling
 * 100,000 sleeping tasks and 10,000 tasks parked on kernel ops ends every one
 * of them and leaves the engine quiescent (G4, section 3).
 */
#define _GNU_SOURCE /* pipe2, accept4, strsignal */
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

/* The 100,000-task tests take longest: a higher bound than the default. */
#define TR_TEST_WATCHDOG_S 250
#include "tr_test.h"
#include "tr_internal.h"

/* ------------------------------------------------------------ helpers */

static uint32_t gen_next(uint32_t g)
{
    uint32_t n = (g + 1) & TR_GEN_MASK;
    return n ? n : 1; /* generation 0 is never used */
}

static long rss_bytes(void)
{
    long size = 0, res = 0;
    FILE *f = fopen("/proc/self/statm", "re");
    if (!f)
        return -1;
    if (fscanf(f, "%ld %ld", &size, &res) != 2)
        res = -1;
    fclose(f);
    return res < 0 ? -1 : res * sysconf(_SC_PAGESIZE);
}

static double now_ms(void)
{
    return (double)tr__now_ns() / 1e6;
}

/* ------------------------------------------------------- G3: stale CQEs */

struct stale_ctx {
    tr_engine *e;
    int pfd[2];
    tr_task *a, *r;
    uint32_t i, g;
    int observed;
    int a_nop;
    uint32_t free_head_after_a, gen_after_a;
    uint32_t r_idx, r_gen;
    int post_rc;
    uint64_t stale_before, stale_after;
    int r_still_parked, r_slot_inflight, r_slot_gen_ok;
    ssize_t r_res;
    char r_buf[8];
    int passes;
};

static int stale_nopper(void *p)
{
    struct stale_ctx *c = p;
    c->a_nop = tr_nop();
    return c->a_nop;
}

static int stale_reader(void *p)
{
    struct stale_ctx *c = p;
    c->r_res = tr_read(c->pfd[0], c->r_buf, sizeof(c->r_buf), -1);
    return (int)c->r_res;
}

/* The third task: injects the old generation's CQE while r is parked. */
static int stale_injector(void *p)
{
    struct stale_ctx *c = p;
    c->stale_before = tstats().cqe_stale;
    c->post_rc = tr__ring_post_raw_nop(c->e, tr__ud_make(c->i, c->g));
    /* Our own nops go through the ring after the injected one; bound: the
     * injected NOP completes at its submission, so one pass suffices. */
    for (c->passes = 0; c->passes < 100; c->passes++) {
        TCHECK_EQ(tr_nop(), 0);
        if (tstats().cqe_stale != c->stale_before)
            break;
    }
    c->stale_after = tstats().cqe_stale;
    struct tr_op *op = tr__op_get(c->e, c->i);
    c->r_still_parked = parked_on(c->r, TR_WAIT_OP) && task_op_slot(c->r) == c->i;
    c->r_slot_inflight = op && op->state == TR_OP_INFLIGHT && op->task == c->r;
    c->r_slot_gen_ok = op && op->gen == gen_next(c->g);
    TCHECK(!tr__task_cancelled(c->r));
    /* Now the real data: the reader must get exactly this. */
    TCHECK_EQ(write(c->pfd[1], "real", 4), 4);
    return 0;
}

static int stale_main(void *p)
{
    struct stale_ctx *c = p;
    TCHECK_EQ(tr_spawn(NULL, &c->a, stale_nopper, c, NULL), 0);
    /* One yield lets a run once: it takes a slot and parks on its nop. */
    TCHECK_EQ(tr_yield(), 0);
    if (parked_on(c->a, TR_WAIT_OP) && task_op_slot(c->a) != TR_OP_NONE) {
        c->i = task_op_slot(c->a);
        struct tr_op *op = tr__op_get(c->e, c->i);
        TCHECK(op != NULL);
        if (op) {
            c->g = op->gen;
            c->observed = 1;
        }
    }
    TCHECK_EQ(tr_join(c->a, NULL), 0);
    if (!c->observed)
        return -1;
    /* The slot went back on the LIFO free list with the next generation. */
    c->free_head_after_a = c->e->ops.free;
    c->gen_after_a = tr__op_get(c->e, c->i)->gen;

    TCHECK_EQ(tr_spawn(NULL, &c->r, stale_reader, c, NULL), 0);
    TCHECK(wait_parked(c->r, TR_WAIT_OP));
    c->r_idx = task_op_slot(c->r);
    c->r_gen = c->r_idx != TR_OP_NONE ? tr__op_get(c->e, c->r_idx)->gen : 0;

    tr_task *inj = NULL;
    TCHECK_EQ(tr_spawn(NULL, &inj, stale_injector, c, NULL), 0);
    TCHECK_EQ(tr_join(inj, NULL), 0);
    TCHECK_EQ(tr_join(c->r, NULL), 0);
    return 0;
}

/* G3: a CQE carrying an old generation of a slot that was since reused is
 * counted as stale and not delivered: the task parked on the slot's new
 * activation stays parked and later gets its real result. */
static void test_engine_stale_generation_not_delivered(void **state)
{
    (void)state;
    struct stale_ctx c;
    memset(&c, 0, sizeof(c));
    assert_int_equal(pipe2(c.pfd, O_CLOEXEC), 0);
    c.e = eng_new(NULL);
    assert_int_equal(tr_spawn(c.e, NULL, stale_main, &c, NULL), 0);
    assert_int_equal(tr_engine_run(c.e), 0);
    tr_test_assert_clean();
    assert_int_equal(c.observed, 1);
    assert_int_equal(c.a_nop, 0);
    assert_int_equal(c.free_head_after_a, c.i);
    assert_int_equal(c.gen_after_a, gen_next(c.g));
    assert_int_equal(c.r_idx, c.i);           /* LIFO reuse */
    assert_int_equal(c.r_gen, gen_next(c.g)); /* next activation */
    assert_int_equal(c.post_rc, 0);
    assert_int_equal(c.stale_after, c.stale_before + 1);
    assert_true(c.r_still_parked);
    assert_true(c.r_slot_inflight);
    assert_true(c.r_slot_gen_ok);
    assert_int_equal(c.r_res, 4);
    assert_memory_equal(c.r_buf, "real", 4);
    struct tr_stats s = stats_of(c.e);
    assert_int_equal(s.cqe_stale, 1);
    tr_test_assert_quiescent(c.e);
    assert_int_equal(tr_engine_destroy(c.e), 0);
    close(c.pfd[0]);
    close(c.pfd[1]);
}

struct unknown_ctx {
    tr_engine *e;
    int rc[3];
    uint64_t stale0, stale1;
};

static int unknown_body(void *p)
{
    struct unknown_ctx *c = p;
    c->stale0 = tstats().cqe_stale;
    /* An index far beyond any allocated chunk, user_data 0 (generation 0 is
     * never used), and an index in range with a generation never issued. */
    c->rc[0] = tr__ring_post_raw_nop(c->e, tr__ud_make(TR_OP_CHUNK * TR_OP_MAX_CHUNKS - 1, 3));
    c->rc[1] = tr__ring_post_raw_nop(c->e, 0);
    c->rc[2] = tr__ring_post_raw_nop(c->e, tr__ud_make(0, TR_GEN_MASK - 7));
    for (int i = 0; i < 100 && tstats().cqe_stale < c->stale0 + 3; i++)
        TCHECK_EQ(tr_nop(), 0);
    c->stale1 = tstats().cqe_stale;
    return 0;
}

/* CQEs whose user_data is not ours at all are counted and dropped. */
static void test_engine_unknown_user_data_counted_stale(void **state)
{
    (void)state;
    struct unknown_ctx c;
    memset(&c, 0, sizeof(c));
    c.e = eng_new(NULL);
    assert_int_equal(tr_spawn(c.e, NULL, unknown_body, &c, NULL), 0);
    assert_int_equal(tr_engine_run(c.e), 0);
    tr_test_assert_clean();
    for (int i = 0; i < 3; i++)
        assert_int_equal(c.rc[i], 0);
    assert_int_equal(c.stale1, c.stale0 + 3);
    tr_test_assert_quiescent(c.e);
    assert_int_equal(tr_engine_destroy(c.e), 0);
}

/* ------------------------------------------------- G2: destroy refuses */

struct busy_ctx {
    tr_engine *e;
    int pfd[2];
    tr_task *t;
    int rc_inside;
    int same_inside;
    int t_parked_after;
    int t_res;
};

static int busy_reader(void *p)
{
    struct busy_ctx *c = p;
    char b[4];
    return (int)tr_read(c->pfd[0], b, sizeof(b), -1);
}

static int busy_main(void *p)
{
    struct busy_ctx *c = p;
    TCHECK(wait_parked(c->t, TR_WAIT_OP));
    struct tr_stats s0 = tstats();
    c->rc_inside = tr_engine_destroy(c->e);
    struct tr_stats s1 = tstats();
    c->same_inside = memcmp(&s0, &s1, sizeof(s0)) == 0;
    c->t_parked_after = parked_on(c->t, TR_WAIT_OP);
    TCHECK_EQ(write(c->pfd[1], "x", 1), 1);
    TCHECK_EQ(tr_join(c->t, &c->t_res), 0);
    return 0;
}

/* G2: while a task is alive (not yet run, or parked with an op in flight)
 * tr_engine_destroy returns -EBUSY and changes nothing; NULL is -EINVAL. */
static void test_engine_destroy_busy_changes_nothing(void **state)
{
    (void)state;
    struct busy_ctx c;
    memset(&c, 0, sizeof(c));
    assert_int_equal(pipe2(c.pfd, O_CLOEXEC), 0);
    c.e = eng_new(NULL);
    assert_int_equal(tr_spawn(c.e, &c.t, busy_reader, &c, NULL), 0);
    assert_int_equal(tr_spawn(c.e, NULL, busy_main, &c, NULL), 0);

    struct tr_stats s0 = stats_of(c.e), s1;
    assert_int_equal(s0.tasks_live, 2);
    assert_int_equal(tr_engine_destroy(c.e), -EBUSY);
    s1 = stats_of(c.e);
    assert_memory_equal(&s0, &s1, sizeof(s0));

    assert_int_equal(tr_engine_run(c.e), 0);
    tr_test_assert_clean();
    assert_int_equal(c.rc_inside, -EBUSY);
    assert_true(c.same_inside);
    assert_true(c.t_parked_after);
    assert_int_equal(c.t_res, 1);
    tr_test_assert_quiescent(c.e);
    assert_int_equal(tr_engine_destroy(c.e), 0);
    assert_int_equal(tr_engine_destroy(NULL), -EINVAL);
    close(c.pfd[0]);
    close(c.pfd[1]);
}

/* ---------------------------------------------------- G7: bad input table */

struct bad_env {
    tr_engine *e;
    tr_task *t_ready;  /* spawned before run: a valid handle for tr_join outside a task */
    int pfd[2];        /* an empty pipe: ops outside a task must not touch it */
    int spare_fd;      /* tr_close outside a task must not close it */
    int extra_spawned; /* tasks created by rows (helpers, wrongly accepted spawns) */
    int dj_done, dj_join_rc, dj_detach_rc, dj_joiner_done, dj_joiner_rc;
    int dj_pfd[2];
    tr_task *dj_t;
};

static char bad_buf[16];
static struct tr_stats bad_st;

static int bad_dummy(void *p)
{
    (void)p;
    return 0;
}

static void prep_nop(struct io_uring_sqe *sqe, void *ctx)
{
    (void)ctx;
    io_uring_prep_nop(sqe);
}

static long create_with(unsigned sq, size_t stack, bool null_out)
{
    struct tr_config cfg;
    tr_config_init(&cfg);
    cfg.sq_entries = sq;
    if (stack)
        cfg.stack_size = stack;
    tr_engine *e2 = NULL;
    int rc = tr_engine_create(null_out ? NULL : &e2, &cfg);
    if (rc == 0 && e2)
        tr_engine_destroy(e2);
    return rc;
}

static long spawn_with(struct bad_env *env, tr_engine *e, tr_fn fn, size_t stack, unsigned flags)
{
    struct tr_spawn_opts o = {.name = "bad-input", .stack_size = stack, .flags = flags};
    tr_task *t = NULL;
    int rc = tr_spawn(e, &t, fn, NULL, &o);
    if (rc == 0 && t) {
        /* Wrongly accepted: make sure it ends and is not leaked. */
        env->extra_spawned++;
        (void)tr_cancel(t);
        (void)tr_detach(t);
    }
    return rc;
}

static long cancel_finished(struct bad_env *env)
{
    tr_task *t = NULL;
    TCHECK_EQ(tr_spawn(NULL, &t, bad_dummy, NULL, NULL), 0);
    env->extra_spawned++;
    for (int i = 0; i < 1000 && t->state != TR_TASK_DONE; i++)
        TCHECK_EQ(tr_yield(), 0);
    TCHECK_EQ(t->state, TR_TASK_DONE);
    long rc = tr_cancel(t);
    TCHECK_EQ(tr_join(t, NULL), 0);
    return rc;
}

static int dj_target(void *p)
{
    struct bad_env *env = p;
    char b;
    return (int)tr_read(env->dj_pfd[0], &b, 1, -1);
}

static int dj_joiner(void *p)
{
    struct bad_env *env = p;
    env->dj_joiner_rc = tr_join(env->dj_t, NULL);
    env->dj_joiner_done = 1;
    return env->dj_joiner_rc;
}

/* A task that another task is joining: a second tr_join and a tr_detach of
 * it are both -EINVAL. Runs the scenario once, returns the asked result. */
static long double_join(struct bad_env *env, int detach)
{
    if (!env->dj_done) {
        env->dj_done = 1;
        tr_task *j = NULL;
        TCHECK_EQ(pipe2(env->dj_pfd, O_CLOEXEC), 0);
        TCHECK_EQ(tr_spawn(NULL, &env->dj_t, dj_target, env, NULL), 0);
        TCHECK_EQ(tr_spawn(NULL, &j, dj_joiner, env, NULL), 0);
        env->extra_spawned += 2;
        TCHECK(wait_parked(j, TR_WAIT_JOIN));
        TCHECK_EQ(tr_detach(j), 0);
        env->dj_join_rc = tr_join(env->dj_t, NULL);
        env->dj_detach_rc = tr_detach(env->dj_t);
        TCHECK_EQ(write(env->dj_pfd[1], "x", 1), 1);
        for (int i = 0; i < 1000 && !env->dj_joiner_done; i++)
            TCHECK_EQ(tr_yield(), 0);
        TCHECK(env->dj_joiner_done);
        TCHECK_EQ(env->dj_joiner_rc, 0);
        close(env->dj_pfd[0]);
        close(env->dj_pfd[1]);
    }
    return detach ? env->dj_detach_rc : env->dj_join_rc;
}

enum { OUT = 0, IN = 1 };

/* name, where it runs (outside any task, or inside one), expected, call */
#define BAD_CASES(X)                                                                               \
    X(create_null_out, OUT, -EINVAL, tr_engine_create(NULL, NULL))                                 \
    X(create_cfg_null_out, OUT, -EINVAL, create_with(256, 0, true))                                \
    X(create_sq_entries_0, OUT, -EINVAL, create_with(0, 0, false))                                 \
    X(create_sq_entries_1M, OUT, -EINVAL, create_with(1u << 20, 0, false))                         \
    X(create_stack_8k, OUT, -EINVAL, create_with(256, 8192, false))                                \
    X(run_null, OUT, -EINVAL, tr_engine_run(NULL))                                                 \
    X(destroy_null, OUT, -EINVAL, tr_engine_destroy(NULL))                                         \
    X(stats_null_engine, OUT, -EINVAL, tr_engine_stats(NULL, &bad_st))                             \
    X(stats_null_out, OUT, -EINVAL, tr_engine_stats(env->e, NULL))                                 \
    X(spawn_null_engine_outside, OUT, -EINVAL, spawn_with(env, NULL, bad_dummy, 0, 0))             \
    X(spawn_null_fn, OUT, -EINVAL, spawn_with(env, env->e, NULL, 0, 0))                            \
    X(spawn_stack_8k, OUT, -EINVAL, spawn_with(env, env->e, bad_dummy, 8192, 0))                   \
    X(spawn_stack_1T, OUT, -ENOMEM, spawn_with(env, env->e, bad_dummy, (size_t)1 << 40, 0))        \
    X(spawn_flags_unknown, OUT, -EINVAL, spawn_with(env, env->e, bad_dummy, 0, 0x80000000u))       \
    X(nop_outside, OUT, -EPERM, tr_nop())                                                          \
    X(read_outside, OUT, -EPERM, tr_read(env->pfd[0], bad_buf, 1, -1))                             \
    X(write_outside, OUT, -EPERM, tr_write(env->pfd[1], "x", 1, -1))                               \
    X(sleep_outside, OUT, -EPERM, tr_sleep_ns(1))                                                  \
    X(poll_outside, OUT, -EPERM, tr_poll(env->pfd[0], POLLIN))                                     \
    X(close_outside, OUT, -EPERM, tr_close(env->spare_fd))                                         \
    X(op_outside, OUT, -EPERM, tr_op(prep_nop, NULL))                                              \
    X(yield_outside, OUT, -EPERM, tr_yield())                                                      \
    X(shield_begin_outside, OUT, -EPERM, tr_shield_begin())                                        \
    X(shield_end_outside, OUT, -EPERM, tr_shield_end())                                            \
    X(cancel_all_outside, OUT, -EPERM, tr_cancel_all(NULL, 0, 0))                                  \
    X(join_outside, OUT, -EPERM, tr_join(env->t_ready, NULL))                                      \
    X(cancel_null_outside, OUT, -EINVAL, tr_cancel(NULL))                                          \
    X(detach_null_outside, OUT, -EINVAL, tr_detach(NULL))                                          \
    X(join_null, IN, -EINVAL, tr_join(NULL, NULL))                                                 \
    X(join_self, IN, -EINVAL, tr_join(tr_self(), NULL))                                            \
    X(cancel_null, IN, -EINVAL, tr_cancel(NULL))                                                   \
    X(detach_null, IN, -EINVAL, tr_detach(NULL))                                                   \
    X(cancel_finished, IN, -ESRCH, cancel_finished(env))                                           \
    X(shield_end_unbalanced, IN, -EINVAL, tr_shield_end())                                         \
    X(read_bad_fd, IN, -EBADF, tr_read(-1, bad_buf, 1, -1))                                        \
    X(write_bad_fd, IN, -EBADF, tr_write(-1, "x", 1, -1))                                          \
    X(recv_bad_fd, IN, -EBADF, tr_recv(-1, bad_buf, 1, 0))                                         \
    X(accept_bad_fd, IN, -EBADF, tr_accept(-1, NULL, NULL, 0))                                     \
    X(close_bad_fd, IN, -EBADF, tr_close(-1))                                                      \
    X(op_null_prep, IN, -EINVAL, tr_op(NULL, NULL))                                                \
    X(spawn_null_fn_in_task, IN, -EINVAL, spawn_with(env, NULL, NULL, 0, 0))                       \
    X(spawn_stack_8k_in_task, IN, -EINVAL, spawn_with(env, NULL, bad_dummy, 8192, 0))              \
    X(cancel_all_null_except, IN, -EINVAL, tr_cancel_all(NULL, 1, 0))                              \
    X(run_inside_task, IN, -EPERM, tr_engine_run(env->e))                                          \
    X(destroy_inside_task, IN, -EBUSY, tr_engine_destroy(env->e))                                  \
    X(join_already_joined, IN, -EINVAL, double_join(env, 0))                                       \
    X(detach_being_joined, IN, -EINVAL, double_join(env, 1))

#define X_FN(name, where, expect, call)                                                            \
    static long bad_##name(struct bad_env *env)                                                    \
    {                                                                                              \
        (void)env;                                                                                 \
        return (long)(call);                                                                       \
    }
BAD_CASES(X_FN)
#undef X_FN

struct bad_case {
    const char *name;
    int where;
    long expect;
    long (*call)(struct bad_env *env);
};

#define X_ROW(name, where, expect, call) {#name, where, expect, bad_##name},
static const struct bad_case bad_cases[] = {BAD_CASES(X_ROW)};
#undef X_ROW
#define BAD_N (sizeof(bad_cases) / sizeof(bad_cases[0]))

static long bad_got[BAD_N];
static int bad_ran[BAD_N];

static int bad_main(void *p)
{
    struct bad_env *env = p;
    for (size_t i = 0; i < BAD_N; i++) {
        if (bad_cases[i].where != IN)
            continue;
        bad_got[i] = bad_cases[i].call(env);
        bad_ran[i] = 1;
    }
    /* Nothing above may have broken the caller: it still works. */
    TCHECK_EQ(tr_nop(), 0);
    TCHECK(!tr_is_cancelled());
    TCHECK_EQ(tr_join(env->t_ready, NULL), 0);
    return 0;
}

/* G7: each bad input gets its -errno, never a crash, and creates nothing. */
static void test_engine_bad_input_table(void **state)
{
    (void)state;
    struct bad_env env;
    memset(&env, 0, sizeof(env));
    memset(bad_got, 0, sizeof(bad_got));
    memset(bad_ran, 0, sizeof(bad_ran));
    assert_true(BAD_N >= 15);
    assert_int_equal(pipe2(env.pfd, O_CLOEXEC), 0);
    env.spare_fd = dup(env.pfd[1]);
    assert_true(env.spare_fd >= 0);
    env.e = eng_new(NULL);
    assert_int_equal(tr_spawn(env.e, &env.t_ready, bad_dummy, NULL, NULL), 0);

    for (size_t i = 0; i < BAD_N; i++) {
        if (bad_cases[i].where != OUT)
            continue;
        bad_got[i] = bad_cases[i].call(&env);
        bad_ran[i] = 1;
    }
    /* The outside rows did nothing: no op, no task. */
    struct tr_stats s = stats_of(env.e);
    assert_int_equal(s.ops_submitted, 0);
    assert_int_equal(s.tasks_spawned, 1 + (uint64_t)env.extra_spawned);
    assert_true(fcntl(env.spare_fd, F_GETFD) >= 0);
    int queued = -1;
    assert_int_equal(ioctl(env.pfd[0], FIONREAD, &queued), 0);
    assert_int_equal(queued, 0); /* write_outside wrote nothing */

    assert_int_equal(tr_spawn(env.e, NULL, bad_main, &env, NULL), 0);
    assert_int_equal(tr_engine_run(env.e), 0);

    int mismatches = 0;
    for (size_t i = 0; i < BAD_N; i++) {
        if (!bad_ran[i]) {
            print_error("%-28s did not run\n", bad_cases[i].name);
            mismatches++;
        } else if (bad_got[i] != bad_cases[i].expect) {
            print_error("%-28s want %ld (%s), got %ld (%s)\n", bad_cases[i].name,
                        bad_cases[i].expect, strerror((int)-bad_cases[i].expect), bad_got[i],
                        bad_got[i] < 0 ? strerror((int)-bad_got[i]) : "not an error");
            mismatches++;
        }
    }
    print_message("%zu bad-input rows, %d mismatches\n", BAD_N, mismatches);
    tr_test_assert_clean();
    if (mismatches)
        fail_msg("%d of %zu bad-input rows got the wrong result", mismatches, BAD_N);
    s = stats_of(env.e);
    /* bad_main, t_ready and the helpers; the refused spawns created nothing. */
    assert_int_equal(s.tasks_spawned, 2 + (uint64_t)env.extra_spawned);
    tr_test_assert_quiescent(env.e);
    assert_int_equal(tr_engine_destroy(env.e), 0);
    close(env.pfd[0]);
    close(env.pfd[1]);
    close(env.spare_fd);
}

/* ------------------------------------------- 100,000 parked sleepers */

#define PARK_N 100000

struct park_ctx {
    int n_ecanceled, n_other;
    int spawned, spawn_err;
    uint64_t timers_seen, guarded_seen, canary_seen;
    int cancel_n;
    uint64_t live_after;
    uint64_t cancels_delta;
    long rss_before, rss_parked;
    double ms;
};

static int park_sleeper(void *p)
{
    struct park_ctx *c = p;
    int r = tr_sleep_ns(3600ull * 1000000000ull);
    if (r == -ECANCELED)
        c->n_ecanceled++;
    else
        c->n_other++;
    return r;
}

static int park_main(void *p)
{
    struct park_ctx *c = p;
    uint64_t cancels0 = tstats().cancels_submitted;
    c->rss_before = rss_bytes();
    for (int i = 0; i < PARK_N; i++) {
        int rc = tr_spawn(NULL, NULL, park_sleeper, c, NULL);
        if (rc != 0) {
            c->spawn_err = rc;
            break;
        }
        c->spawned++;
    }
    /* Bound: one pass runs every task that was runnable at its start. */
    for (int i = 0; i < 100 && tstats().timers_pending < (uint64_t)c->spawned; i++)
        TCHECK_EQ(tr_yield(), 0);
    struct tr_stats s = tstats();
    c->timers_seen = s.timers_pending;
    c->guarded_seen = s.stacks_guarded;
    c->canary_seen = s.stacks_canary;
    c->rss_parked = rss_bytes();
    double t0 = now_ms();
    c->cancel_n = tr_cancel_all(NULL, 0, TR_CANCEL_WAIT);
    c->ms = now_ms() - t0;
    struct tr_stats s1 = tstats();
    c->live_after = s1.tasks_live;
    c->cancels_delta = s1.cancels_submitted - cancels0;
    return 0;
}

/* 100,000 tasks parked in tr_sleep_ns are all cancelled by one
 * tr_cancel_all(TR_CANCEL_WAIT) without a single kernel cancel. */
static void test_engine_cancel_100k_sleepers(void **state)
{
    (void)state;
    struct park_ctx c;
    memset(&c, 0, sizeof(c));
    tr_engine *e = eng_new(NULL);
    assert_int_equal(tr_spawn(e, NULL, park_main, &c, NULL), 0);
    assert_int_equal(tr_engine_run(e), 0);
    tr_test_assert_clean();
    print_message("100k sleepers: cancel+drain %.1f ms; RSS +%.0f bytes per parked task; "
                  "stacks guarded %llu, canary %llu\n",
                  c.ms, (double)(c.rss_parked - c.rss_before) / (c.spawned ? c.spawned : 1),
                  (unsigned long long)c.guarded_seen, (unsigned long long)c.canary_seen);
    if (c.spawn_err)
        print_error("tr_spawn failed after %d tasks: %s\n", c.spawned, strerror(-c.spawn_err));
    assert_int_equal(c.spawned, PARK_N);
    assert_int_equal(c.timers_seen, PARK_N);
    /* Stacks are mapped in slabs of 64: at least one per task, at most one
     * partly used slab more. */
    assert_true(c.guarded_seen + c.canary_seen >= PARK_N + 1);
    assert_true(c.guarded_seen + c.canary_seen < PARK_N + 1 + 64);
    assert_int_equal(c.cancel_n, PARK_N);
    assert_int_equal(c.n_ecanceled, PARK_N);
    assert_int_equal(c.n_other, 0);
    assert_int_equal(c.live_after, 1);
    assert_int_equal(c.cancels_delta, 0); /* sleepers cost no kernel cancel */
    tr_test_assert_quiescent(e);
    struct tr_stats s = stats_of(e);
    assert_int_equal(s.tasks_cancelled, PARK_N);
    assert_int_equal(tr_engine_destroy(e), 0);
}

/* ------------------------------------------ 10,000 parked on kernel ops */

#define KOP_N 10000
#define KOP_PER_PIPE 1000
#define KOP_PIPES (KOP_N / KOP_PER_PIPE)

struct kop_ctx;
struct kop_arg {
    struct kop_ctx *c;
    int fd;
    int poll;
};

struct kop_ctx {
    int pipes[KOP_PIPES][2];
    struct kop_arg *args;
    int n_ecanceled, n_other;
    uint64_t inflight_seen;
    uint64_t cancels_delta, inflight_after;
    int cancel_n;
    long rss_before, rss_parked;
    double ms;
};

static int kop_task(void *p)
{
    struct kop_arg *a = p;
    char b[8];
    long r = a->poll ? tr_poll(a->fd, POLLIN) : tr_read(a->fd, b, sizeof(b), -1);
    if (r == -ECANCELED)
        a->c->n_ecanceled++;
    else
        a->c->n_other++;
    return (int)r;
}

static int kop_main(void *p)
{
    struct kop_ctx *c = p;
    c->rss_before = rss_bytes();
    for (int i = 0; i < KOP_N; i++)
        TCHECK_EQ(tr_spawn(NULL, NULL, kop_task, &c->args[i], NULL), 0);
    for (int i = 0; i < 100 && tstats().ops_inflight < KOP_N; i++)
        TCHECK_EQ(tr_yield(), 0);
    TCHECK_EQ(tr_yield(), 0); /* one more pass: every SQE reached the kernel */
    struct tr_stats s0 = tstats();
    c->inflight_seen = s0.ops_inflight;
    c->rss_parked = rss_bytes();
    double t0 = now_ms();
    c->cancel_n = tr_cancel_all(NULL, 0, TR_CANCEL_WAIT);
    c->ms = now_ms() - t0;
    struct tr_stats s1 = tstats();
    c->cancels_delta = s1.cancels_submitted - s0.cancels_submitted;
    c->inflight_after = s1.ops_inflight;
    return 0;
}

/* 10,000 tasks parked on kernel ops (reads and polls on 10 pipes) are each
 * cancelled by one ASYNC_CANCEL and all end with -ECANCELED. */
static void test_engine_cancel_10k_kernel_ops(void **state)
{
    (void)state;
    struct kop_ctx c;
    memset(&c, 0, sizeof(c));
    c.args = calloc(KOP_N, sizeof(*c.args));
    assert_non_null(c.args);
    for (int i = 0; i < KOP_PIPES; i++)
        assert_int_equal(pipe2(c.pipes[i], O_CLOEXEC), 0);
    for (int i = 0; i < KOP_N; i++) {
        c.args[i].c = &c;
        c.args[i].fd = c.pipes[i / KOP_PER_PIPE][0];
        c.args[i].poll = i % 2;
    }
    tr_engine *e = eng_new(NULL);
    assert_int_equal(tr_spawn(e, NULL, kop_main, &c, NULL), 0);
    assert_int_equal(tr_engine_run(e), 0);
    tr_test_assert_clean();
    print_message("10k kernel ops: cancel+drain %.1f ms; RSS +%.0f bytes per parked task\n", c.ms,
                  (double)(c.rss_parked - c.rss_before) / KOP_N);
    assert_int_equal(c.inflight_seen, KOP_N);
    assert_int_equal(c.cancel_n, KOP_N);
    assert_int_equal(c.n_ecanceled, KOP_N);
    assert_int_equal(c.n_other, 0);
    assert_int_equal(c.cancels_delta, KOP_N);
    assert_int_equal(c.inflight_after, 0);
    tr_test_assert_quiescent(e);
    struct tr_stats s = stats_of(e);
    assert_int_equal(s.tasks_cancelled, KOP_N);
    assert_int_equal(tr_engine_destroy(e), 0);
    for (int i = 0; i < KOP_PIPES; i++) {
        close(c.pipes[i][0]);
        close(c.pipes[i][1]);
    }
    free(c.args);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_engine_stale_generation_not_delivered),
        T(test_engine_unknown_user_data_counted_stale),
        T(test_engine_destroy_busy_changes_nothing),
        T(test_engine_bad_input_table),
        T(test_engine_cancel_100k_sleepers),
        T(test_engine_cancel_10k_kernel_ops),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
