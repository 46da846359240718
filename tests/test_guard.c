/* SPDX-License-Identifier: MIT */
/*
 * Description: misuse is loud (DESIGN G8). Death tests, each in a forked
 * child whose stderr goes to a pipe the parent reads:
 *   - a task that recurses without bound hits its guard page and the child
 *     dies by SIGSEGV with a message naming the task;
 *   - with guard regions off and the guard budget exhausted (the white-box
 *     hooks tr__stack_set_guard_regions(false) and
 *     tr__stack_set_guard_budget(0) in stack.c: a kernel before 6.13 past
 *     vm.max_map_count) stacks are canary-only, and a task that
 *     smashes the bottom 64 bytes of its stack makes the child abort
 *     (SIGABRT) at its next switch, with a message naming the task;
 *   - a SIGSEGV that is not on a guard page (a NULL-ish write from main,
 *     outside any task) still kills by SIGSEGV and names no task;
 *   - defect B.11, stacks past the guard-page budget: with guard regions
 *     (Linux >= 6.13) they have a guard too, and zeros written just below
 *     the stack die by SIGSEGV naming the task; on the canary fallback a
 *     zero-filled canary aborts naming the task (the canary was zero);
 *   - of 10,000 parked tasks (TR_GUARD_PARKED=n for more), the one that
 *     overflows is named, for the first, a middle and the last;
 *   - a stack of a slab the trim gave back (MADV_DONTNEED) keeps its guard
 *     region: its overflow still dies naming the task.
 * The children never return into cmocka: every path ends in _exit or death.
 */
#define _GNU_SOURCE /* pipe2, accept4, strsignal */
#include <alloca.h>
#include <limits.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tr_harness.h"
#include "tr_internal.h"

/* ------------------------------------------------------- child plumbing */

/* The children run in tr_child_run (tr_harness.h): stderr captured, a
 * clean slate (default crash handlers, nothing blocked, no core file), and
 * a watchdog alarm that turns a hang into a death by SIGALRM that the
 * parent reports. */
#define child_out tr_child_out

/* Async-signal-safe enough for a child about to die: one write(2). */
static void say(const char *s)
{
    ssize_t rc = write(STDERR_FILENO, s, strlen(s));
    (void)rc;
}

static void (*child_body)(void);

static int child_tramp(void *arg)
{
    (void)arg;
    child_body();
    return 99; /* bodies never return */
}

static void run_child(void (*body)(void), struct child_out *out)
{
    static const struct tr_child_opts o = {
        .capture_stderr = true, .clean_slate = true, .alarm_s = 60};
    child_body = body;
    tr_child_run(child_tramp, NULL, &o, out);
}

static void describe(const char *what, const struct child_out *o)
{
    tr_child_describe(what, o);
}

static void assert_killed_by(const struct child_out *o, int sig)
{
    tr_child_assert_signal(o, sig);
}

/* ----------------------------------------------------- guard page overflow */

static volatile int recurse_limit = INT_MAX;

/* A 1 KiB frame per level; the store after the call keeps the compiler from
 * turning the recursion into a loop or a tail call. */
__attribute__((noinline)) static int recurse(int depth)
{
    volatile char pad[1024];
    pad[0] = (char)depth;
    pad[sizeof(pad) - 1] = (char)depth;
    if (depth >= recurse_limit)
        return pad[0];
    int r = recurse(depth + 1);
    pad[1] = (char)r;
    return r + pad[1] + pad[sizeof(pad) - 1];
}

static int deep_task(void *p)
{
    (void)p;
    if (!tr__current || !tr__current->stack || tr__current->stack->guard == TR_GUARD_NONE) {
        say("TEST: the task's stack has no guard page\n");
        _exit(5);
    }
    return recurse(0);
}

static void child_overflow(void)
{
    tr_engine *e = NULL;
    if (tr_engine_create(&e, NULL) != 0)
        _exit(10);
    struct tr_spawn_opts o = {.name = "deep-recursor", .stack_size = 0, .flags = 0};
    if (tr_spawn(e, NULL, deep_task, NULL, &o) != 0)
        _exit(11);
    (void)tr_engine_run(e);
    say("TEST: tr_engine_run returned after an unbounded recursion\n");
    _exit(12);
}

/* A task that overflows its guarded stack kills the process by SIGSEGV with
 * a message naming the task. */
static void test_guard_overflow_dies_naming_task(void **state)
{
    (void)state;
    struct child_out o;
    run_child(child_overflow, &o);
    describe("overflow", &o);
    assert_killed_by(&o, SIGSEGV);
    assert_non_null(strstr(o.err, "deep-recursor"));
}

/* ------------------------------------------------------ canary-only stacks */

static int smash_task(void *p)
{
    (void)p;
    struct tr_stack *s = tr__current->stack;
    if (s->guard != TR_GUARD_NONE) {
        say("TEST: a guarded stack despite guard regions off and a guard budget of 0\n");
        _exit(20);
    }
    struct tr_stats st;
    if (tr_engine_stats(tr__current->e, &st) != 0 || st.stacks_canary < 1) {
        say("TEST: stats.stacks_canary does not count the canary-only stack\n");
        _exit(21);
    }
    volatile unsigned char *lo = s->lo;
    for (int i = 0; i < 64; i++)
        lo[i] = 0xA5;
    (void)tr_yield();
    say("TEST: the task survived a smashed canary across a switch\n");
    _exit(22);
}

static void child_canary(void)
{
    tr__stack_set_guard_regions(false);
    tr__stack_set_guard_budget(0);
    tr_engine *e = NULL;
    if (tr_engine_create(&e, NULL) != 0)
        _exit(30);
    struct tr_spawn_opts o = {.name = "canary-smasher", .stack_size = 0, .flags = 0};
    if (tr_spawn(e, NULL, smash_task, NULL, &o) != 0)
        _exit(31);
    (void)tr_engine_run(e);
    say("TEST: tr_engine_run returned after a smashed canary\n");
    _exit(32);
}

/* Without guard regions and with no guard budget left, stacks are
 * canary-only; smashing the canary is caught at the task's next switch:
 * abort with a message naming the task. */
static void test_guard_canary_smash_aborts_naming_task(void **state)
{
    (void)state;
    struct child_out o;
    run_child(child_canary, &o);
    describe("canary", &o);
    assert_killed_by(&o, SIGABRT);
    assert_non_null(strstr(o.err, "canary-smasher"));
}

/* ------------------------------------------------- a fault not on a guard */

static int bystander_task(void *p)
{
    (void)p;
    return tr_nop();
}

static void child_foreign_segv(void)
{
    tr_engine *e = NULL;
    if (tr_engine_create(&e, NULL) != 0)
        _exit(40);
    struct tr_spawn_opts o = {.name = "bystander", .stack_size = 0, .flags = 0};
    /* One task has run (so everything the engine installs is installed),
     * another is alive and READY when the fault happens. */
    if (tr_spawn(e, NULL, bystander_task, NULL, &o) != 0)
        _exit(41);
    if (tr_engine_run(e) != 0)
        _exit(42);
    tr_task *t = NULL;
    if (tr_spawn(e, &t, bystander_task, NULL, &o) != 0)
        _exit(43);
    struct sigaction cur;
    if (sigaction(SIGSEGV, NULL, &cur) == 0 && !(cur.sa_flags & SA_SIGINFO) &&
        cur.sa_handler == SIG_DFL)
        say("TEST: no SIGSEGV handler installed by the engine\n");
    /* Through a volatile so the compiler neither sees the constant address
     * (-Warray-bounds at -O2) nor drops the store. */
    volatile uintptr_t bad_addr = 16;
    *(volatile int *)bad_addr = 1;
    say("TEST: survived a write to address 16\n");
    _exit(44);
}

/* A SIGSEGV that is no stack overflow (a NULL-ish write from main, outside
 * any task) still kills by SIGSEGV: the handler restores the default or
 * chains, and prints no task message. */
static void test_guard_foreign_segv_still_kills(void **state)
{
    (void)state;
    struct child_out o;
    run_child(child_foreign_segv, &o);
    describe("foreign segv", &o);
    assert_killed_by(&o, SIGSEGV);
    assert_null(strstr(o.err, "TEST:"));
    assert_null(strstr(o.err, "bystander"));
    assert_null(strstr(o.err, "overflow"));
}

/* ------------------------------------ the canary and the direct switch */

/* Regression (a review of the direct task-to-task switch): the canary of
 * an unguarded stack was checked on that very stack before switching, so
 * the check's own frame (~330 B) could write below the stack into its
 * neighbour's top frames, and a smash by the switch frame itself went
 * unseen until a later owner of the stack was blamed. Now it is checked on
 * arrival, by a frameless inline check.
 *
 * The culprit uses its canary-only stack down to a depth, then yields with
 * another task next in the pass (a direct switch); a shutdown with grace 0
 * and kill 0 kills it, so its stack goes back to the pool; a second run
 * gives that stack to 'innocent'. Over a sweep of depths, each child must
 * either end cleanly (victim 7 or cancelled, innocent ran) or abort naming
 * the culprit's smashed canary: never corrupt the victim, never blame
 * innocent. Not in ASan builds: ASan's own frames on the switch path are
 * larger than the 256-byte canary zone, so a culprit this deep overflows
 * into its neighbour there whatever the engine does (canary stacks detect
 * at the next switch, they do not prevent). */
#if !defined(__SANITIZE_ADDRESS__)
static size_t cn_depth;
static tr_engine *cn_e;

__attribute__((noinline)) static int cn_culprit(void *p)
{
    (void)p;
    volatile char *b = alloca(cn_depth);
    b[0] = 1;
    (void)tr_yield();
    for (long i = 0; i < 100000000L; i++)
        (void)tr_yield();
    return b[0];
}

static int cn_trigger(void *p)
{
    (void)p;
    (void)tr_engine_shutdown(cn_e);
    for (long i = 0; i < 100000000L; i++)
        (void)tr_yield();
    return 0;
}

static int cn_victim(void *p)
{
    (void)p;
    (void)tr_sleep_ns(1000000);
    return 7;
}

static void child_canary_direct(void)
{
    tr__stack_set_guard_regions(false); /* canary-only stacks */
    tr__stack_set_guard_budget(0);
    struct tr_config cfg;
    tr_config_init(&cfg);
    cfg.flags = TR_CFG_NO_SIGNALS;
    cfg.grace_ms = 0;
    cfg.kill_ms = 0;
    cfg.report_fd = -1;
    if (tr_engine_create(&cn_e, &cfg))
        _exit(10);
    struct tr_spawn_opts a = {.name = "culprit"}, v = {.name = "victim"},
                         t = {.name = "trigger", .stack_size = 128 * 1024},
                         i = {.name = "innocent"};
    tr_task *vt;
    if (tr_spawn(cn_e, NULL, cn_culprit, NULL, &a) || tr_spawn(cn_e, &vt, cn_victim, NULL, &v) ||
        tr_spawn(cn_e, NULL, cn_trigger, NULL, &t))
        _exit(11);
    if (tr_engine_run(cn_e))
        _exit(12);
    int vr = -1;
    if (tr_task_result(vt, &vr) || (vr != 7 && vr != -ECANCELED))
        _exit(13);
    if (tr_spawn(cn_e, NULL, cn_victim, NULL, &i) || tr_engine_run(cn_e))
        _exit(14);
    _exit(0);
}

static void test_guard_canary_checked_after_direct_switch(void **state)
{
    (void)state;
    int clean = 0, named = 0;
    /* From comfortably inside the stack to past its canary zone. */
    for (cn_depth = 65536 - 700; cn_depth <= 65536 - 280; cn_depth += 12) {
        struct child_out o;
        run_child(child_canary_direct, &o);
        if (WIFEXITED(o.status) && WEXITSTATUS(o.status) == 0) {
            clean++;
            continue;
        }
        if (!(WIFSIGNALED(o.status) && WTERMSIG(o.status) == SIGABRT) ||
            !strstr(o.err, "task 'culprit'") || !strstr(o.err, "canary smashed")) {
            describe("canary/direct switch", &o);
            fail_msg("depth %zu: only the culprit's canary may be reported", cn_depth);
        }
        named++;
    }
    assert_true(clean > 0); /* the sweep covers both sides of the limit */
    assert_true(named > 0);
}
#endif

/* -------------------------------------- past the map budget (B.11) */

/* A child body exits with this when the kernel (or the build) lacks what
 * the test needs; the parent skips. */
#define CHILD_SKIP 77

static void skip_if_child_skipped(const struct child_out *o)
{
    if (WIFEXITED(o->status) && WEXITSTATUS(o->status) == CHILD_SKIP) {
        print_message("skipped: %s", o->err);
        skip();
    }
}

/* Regression for B.11: past the guard-page budget a stack had only a zero
 * canary, and writes below the stack went unseen (they skip the canary).
 * With guard regions every stack has a guard, budget or not: a zero
 * written just below the stack faults, naming the task. Without the fix
 * the child survives the writes and exits 52. */
static int below_task(void *p)
{
    (void)p;
    struct tr_stack *s = tr__current->stack;
    if (s->guard != TR_GUARD_REGION) {
        say("TEST: a stack past the budget without a guard region\n");
        _exit(50);
    }
    volatile char *lo = s->lo;
    for (int i = 1; i <= 64; i++)
        lo[-i] = 0; /* what a zero-filled array one frame too deep writes */
    (void)tr_yield();
    say("TEST: zeros written below the stack went unseen\n");
    _exit(52);
}

static void child_below_past_budget(void)
{
    tr__stack_set_guard_budget(0);
    if (!tr__stack_guard_regions()) {
        say("this kernel has no guard regions (MADV_GUARD_INSTALL)\n");
        _exit(CHILD_SKIP);
    }
    tr_engine *e = NULL;
    if (tr_engine_create(&e, NULL) != 0)
        _exit(53);
    struct tr_spawn_opts o = {.name = "zero-writer"};
    if (tr_spawn(e, NULL, below_task, NULL, &o) != 0)
        _exit(54);
    (void)tr_engine_run(e);
    _exit(55);
}

static void test_guard_zeros_below_stack_past_budget_die_naming_task(void **state)
{
    (void)state;
    struct child_out o;
    run_child(child_below_past_budget, &o);
    skip_if_child_skipped(&o);
    describe("zeros below the stack, budget 0", &o);
    assert_killed_by(&o, SIGSEGV);
    assert_non_null(strstr(o.err, "task 'zero-writer'"));
    assert_non_null(strstr(o.err, "overflowed its stack"));
}

/* Regression for B.11, the fallback (a kernel without guard regions, past
 * the budget): the canary was zero, so zeros written over it were no
 * change. Now it is random with no zero byte, and zero-filling its lowest
 * 64 bytes aborts at the next switch, naming the task. Without the fix the
 * child survives the switch and exits 62. */
static int zero_fill_task(void *p)
{
    (void)p;
    struct tr_stack *s = tr__current->stack;
    if (s->guard != TR_GUARD_NONE) {
        say("TEST: a guarded stack despite guard regions off and a guard budget of 0\n");
        _exit(60);
    }
    volatile unsigned char *lo = s->lo;
    for (int i = 0; i < 64; i++)
        lo[i] = 0;
    (void)tr_yield();
    say("TEST: the task survived a zero-filled canary across a switch\n");
    _exit(62);
}

static void child_canary_zero_fill(void)
{
    tr__stack_set_guard_regions(false);
    tr__stack_set_guard_budget(0);
    tr_engine *e = NULL;
    if (tr_engine_create(&e, NULL) != 0)
        _exit(63);
    struct tr_spawn_opts o = {.name = "zero-filler"};
    if (tr_spawn(e, NULL, zero_fill_task, NULL, &o) != 0)
        _exit(64);
    (void)tr_engine_run(e);
    _exit(65);
}

static void test_guard_canary_zero_fill_aborts_naming_task(void **state)
{
    (void)state;
    struct child_out o;
    run_child(child_canary_zero_fill, &o);
    describe("zero-filled canary", &o);
    assert_killed_by(&o, SIGABRT);
    assert_non_null(strstr(o.err, "task 'zero-filler'"));
    assert_non_null(strstr(o.err, "canary smashed"));
}

/* ------------------------------------ one of many parked tasks overflows */

/* TR_GUARD_PARKED=n sets how many (default 10,000; the report's figures
 * use 200,000). Every task but the victim sleeps for an hour; the victim
 * waits on a pipe read. Once all are parked the child prints a TEST-INFO
 * line (RSS per parked task, lines of /proc/self/maps, stack counts),
 * wakes the victim, which recurses without bound: the child must die by
 * SIGSEGV naming the victim. */
static int pk_n, pk_victim;
static int pk_pipe[2];
static tr_task *pk_victim_task;

static long pk_status_kb(const char *key)
{
    FILE *f = fopen("/proc/self/status", "re");
    char line[256];
    long v = -1;
    size_t klen = strlen(key);
    if (!f)
        return -1;
    while (fgets(line, sizeof(line), f))
        if (strncmp(line, key, klen) == 0 && line[klen] == ':') {
            v = strtol(line + klen + 1, NULL, 10);
            break;
        }
    fclose(f);
    return v;
}

static long pk_maps_lines(void)
{
    FILE *f = fopen("/proc/self/maps", "re");
    long n = 0;
    int c;
    if (!f)
        return -1;
    while ((c = fgetc(f)) != EOF)
        n += c == '\n';
    fclose(f);
    return n;
}

static int pk_task(void *p)
{
    int i = (int)(intptr_t)p;
    if (i != pk_victim)
        return tr_sleep_ns(3600ull * 1000000000ull);
    char c;
    if (tr_read(pk_pipe[0], &c, 1, -1) != 1)
        _exit(70);
    if (tr__current->stack->guard == TR_GUARD_NONE) {
        say("this many tasks outran the guard-page budget (no guard regions)\n");
        _exit(CHILD_SKIP);
    }
    (void)recurse(0);
    _exit(71);
}

static int pk_main(void *p)
{
    tr_engine *e = p;
    long rss0 = pk_status_kb("VmRSS"), maps0 = pk_maps_lines();
    char name[32];
    for (int i = 0; i < pk_n; i++) {
        struct tr_spawn_opts o = {.name = name};
        snprintf(name, sizeof(name), "parked-%d", i);
        tr_task **out = i == pk_victim ? &pk_victim_task : NULL;
        if (tr_spawn(e, out, pk_task, (void *)(intptr_t)i, &o) != 0)
            _exit(72);
    }
    /* Bound: one pass runs every task that was runnable at its start. */
    struct tr_stats st;
    for (int k = 0; k < 100; k++) {
        (void)tr_yield();
        if (tr_engine_stats(e, &st) != 0)
            _exit(73);
        if (st.timers_pending == (uint64_t)pk_n - 1 && parked_on(pk_victim_task, TR_WAIT_OP))
            break;
    }
    if (st.timers_pending != (uint64_t)pk_n - 1 || !parked_on(pk_victim_task, TR_WAIT_OP))
        _exit(74);
    long rss1 = pk_status_kb("VmRSS"), maps1 = pk_maps_lines();
    char info[256];
    snprintf(info, sizeof(info),
             "TEST-INFO: %d parked: RSS %ld -> %ld KiB, %.0f bytes per parked task; "
             "/proc/self/maps %ld -> %ld lines; stacks guarded %llu, canary %llu\n",
             pk_n, rss0, rss1, (double)(rss1 - rss0) * 1024.0 / pk_n, maps0, maps1,
             (unsigned long long)st.stacks_guarded, (unsigned long long)st.stacks_canary);
    say(info);
    if (write(pk_pipe[1], "x", 1) != 1)
        _exit(75);
    (void)tr_sleep_ns(3600ull * 1000000000ull);
    _exit(76);
}

static void child_parked(void)
{
    if (pipe(pk_pipe) != 0)
        _exit(78);
    struct tr_config cfg;
    tr_config_init(&cfg);
    cfg.flags = TR_CFG_NO_SIGNALS;
    tr_engine *e = NULL;
    if (tr_engine_create(&e, &cfg) != 0)
        _exit(79);
    struct tr_spawn_opts o = {.name = "main"};
    if (tr_spawn(e, NULL, pk_main, e, &o) != 0)
        _exit(80);
    (void)tr_engine_run(e);
    _exit(81);
}

static void test_guard_overflow_in_one_of_many_parked_names_it(void **state)
{
    (void)state;
    const char *env = getenv("TR_GUARD_PARKED");
    pk_n = env ? atoi(env) : 10000;
    assert_true(pk_n >= 2);
    const int victims[] = {0, 1, pk_n / 2 + 13, pk_n - 2, pk_n - 1};
    for (size_t v = 0; v < sizeof(victims) / sizeof(victims[0]); v++) {
        pk_victim = victims[v];
        struct child_out o;
        run_child(child_parked, &o);
        skip_if_child_skipped(&o);
        /* The figures, and the line that named the victim. */
        const char *lines[] = {strstr(o.err, "TEST-INFO:"), strstr(o.err, "taskring:")};
        for (size_t l = 0; l < 2; l++)
            if (lines[l] && strchr(lines[l], '\n'))
                print_message("victim %d: %.*s", pk_victim,
                              (int)(strchr(lines[l], '\n') - lines[l] + 1), lines[l]);
        assert_killed_by(&o, SIGSEGV);
        char want[64];
        snprintf(want, sizeof(want), "task 'parked-%d' (id %d)", pk_victim, pk_victim + 2);
        if (!strstr(o.err, want) || !strstr(o.err, "overflowed its stack")) {
            describe("one of many parked", &o);
            fail_msg("the message does not name %s", want);
        }
    }
}

/* ------------------------------------------- the trim keeps the guard */

/* The stack trim gives a wholly free slab's pages back with MADV_DONTNEED;
 * the kernel keeps guard regions through it (as it keeps PROT_NONE).
 * Pinned: after a spike of tasks and the trim, a stack of a trimmed slab
 * is handed to a task that recurses without bound, and the child dies by
 * SIGSEGV naming that task. */
#define TG_TASKS (TR_STACK_POOL_MAX + 4 * TR_SLAB_STACKS)

static struct tr_stack *tg_target;

static int tg_quick(void *p)
{
    (void)p;
    return tr_yield();
}

static int tg_spawner(void *p)
{
    (void)p;
    for (int i = 0; i < TG_TASKS; i++)
        if (tr_spawn(NULL, NULL, tg_quick, NULL, NULL) != 0)
            _exit(91);
    return 0;
}

static int tg_overflow(void *p)
{
    (void)p;
    if (tr__current->stack != tg_target)
        _exit(92);
    (void)recurse(0);
    _exit(93);
}

static void child_trim(void)
{
    struct tr_config cfg;
    tr_config_init(&cfg);
    cfg.flags = TR_CFG_NO_SIGNALS;
    tr_engine *e = NULL;
    if (tr_engine_create(&e, &cfg) != 0)
        _exit(94);
    if (tr_spawn(e, NULL, tg_spawner, NULL, NULL) != 0 || tr_engine_run(e) != 0)
        _exit(95); /* returning trims what is owed */
    struct tr_slab *sl = e->stk.slabs;
    while (sl && !sl->advised)
        sl = sl->next;
    if (!sl)
        _exit(96);
    if (sl->guard != TR_GUARD_REGION) {
        say("no guard regions: the trim's slabs have guard pages or none\n");
        _exit(CHILD_SKIP);
    }
    /* The trimmed stack is made the next spawn's: the only one pooled (the
     * lists are cut down to it; the others are forgotten: the child
     * exits). */
    tg_target = &sl->stacks[TR_SLAB_STACKS / 2];
    if (!tg_target->pooled || !tg_target->advised)
        _exit(97);
    e->stk.pool = e->stk.pool_tail = NULL;
    e->stk.cold = tg_target;
    tg_target->next_free = NULL;
    struct tr_spawn_opts o = {.name = "after-trim"};
    if (tr_spawn(e, NULL, tg_overflow, NULL, &o) != 0)
        _exit(98);
    (void)tr_engine_run(e);
    _exit(89);
}

static void test_guard_trim_keeps_guard_region(void **state)
{
    (void)state;
    struct child_out o;
    run_child(child_trim, &o);
    skip_if_child_skipped(&o);
    describe("overflow after the trim", &o);
    assert_killed_by(&o, SIGSEGV);
    assert_non_null(strstr(o.err, "task 'after-trim'"));
    assert_non_null(strstr(o.err, "overflowed its stack"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_guard_overflow_dies_naming_task),
        cmocka_unit_test(test_guard_canary_smash_aborts_naming_task),
#if !defined(__SANITIZE_ADDRESS__)
        cmocka_unit_test(test_guard_canary_checked_after_direct_switch),
#endif
        cmocka_unit_test(test_guard_foreign_segv_still_kills),
        cmocka_unit_test(test_guard_zeros_below_stack_past_budget_die_naming_task),
        cmocka_unit_test(test_guard_canary_zero_fill_aborts_naming_task),
        cmocka_unit_test(test_guard_overflow_in_one_of_many_parked_names_it),
        cmocka_unit_test(test_guard_trim_keeps_guard_region),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
