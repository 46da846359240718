/* SPDX-License-Identifier: MIT */
/*
 * Description: task stacks (engine/task/stack.c) without dying: the tests that
 * need no fault (the death tests are in test_guard.c). Run under TSan too
 * (tools/dev tsan), so nothing here forks a child that dies.
 *   - two threads that create, run and destroy engines at the same time
 *     in a fresh process share the stack code's process-wide state (page
 *     size, guard-region probe, canary, map budget) without a data race
 *     (defect B.13: the page size was initialised lazily, unsynchronised);
 *   - the canary of unguarded stacks is a random word with no zero byte,
 *     another in each process (defect B.11: it was zero, so a zero-filled
 *     overflow never showed), and every canary stack holds it when its
 *     task runs, also a stack whose pages the trim gave back (MADV_DONTNEED
 *     zeroes them);
 *   - guard-region stacks cost no mapping: thousands of them leave
 *     /proc/self/maps a few lines longer, and they count as guarded;
 *   - a parked task on a canary stack costs about what one on a guarded
 *     stack does: the canary has no page of its own.
 */
#define _GNU_SOURCE
#include "tr_test.h"

#include <pthread.h>
#include <sys/uio.h>
#include <sys/wait.h>

/* Under TSan every task is a fiber with about 800 KiB of TSan's state: the
 * tests with thousands of tasks (4,000: 3 GB there) run in the other
 * builds only. What TSan is here for is the two-thread test. */
#if defined(__SANITIZE_THREAD__)
#define SKIP_UNDER_TSAN() skip()
#else
#define SKIP_UNDER_TSAN() ((void)0)
#endif

/* This program: argv[0] when it is a path (under valgrind /proc/self/exe
 * is valgrind's own), else /proc/self/exe. */
static const char *self_path = "/proc/self/exe";

/* Runs this program again with one argument and returns its wait status;
 * its stdout goes to *out (up to n - 1 bytes, NUL-terminated) when out is
 * not NULL. The child starts with none of this process's state. */
static int reexec(const char *arg, char *out, size_t n)
{
    int p[2];
    assert_int_equal(pipe2(p, O_CLOEXEC), 0);
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        if (out && dup2(p[1], STDOUT_FILENO) < 0)
            _exit(126);
        char *argv[] = {"test_stack", (char *)arg, NULL};
        execv(self_path, argv);
        _exit(127);
    }
    close(p[1]);
    size_t len = 0;
    for (;;) {
        char tmp[256];
        ssize_t r = read(p[0], tmp, sizeof(tmp));
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        for (ssize_t i = 0; out && i < r && len + 1 < n; i++)
            out[len++] = tmp[i];
    }
    if (out)
        out[len] = '\0';
    close(p[0]);
    int st = 0;
    pid_t w;
    do {
        w = waitpid(pid, &st, 0);
    } while (w < 0 && errno == EINTR);
    assert_int_equal(w, pid);
    return st;
}

/* --------------------------------------- two threads, fresh process */

#define TT_ROUNDS 20
#define TT_TASKS 100 /* two slabs: every round maps stacks */

static pthread_barrier_t tt_barrier;

static int tt_task(void *p)
{
    (void)p;
    return tr_yield();
}

static int tt_main(void *p)
{
    (void)p;
    for (int i = 0; i < TT_TASKS; i++)
        if (tr_spawn(NULL, NULL, tt_task, NULL, NULL) != 0)
            return -1;
    return tr_sleep_ns(1000);
}

/* Each thread creates and runs TT_ROUNDS engines, then (after both have)
 * destroys them: the creates overlap, and so do the destroys. Not a create
 * after a destroy on the other thread: liburing maps and unmaps rings
 * with raw syscalls that TSan does not see, so a ring mapped where the
 * other thread's last one was would look to it like a race on the SQEs. */
static void *tt_thread(void *p)
{
    intptr_t id = (intptr_t)p;
    tr_engine *es[TT_ROUNDS];
    struct tr_config cfg;
    tr_config_init(&cfg);
    cfg.flags = TR_CFG_NO_SIGNALS;
    if (id == 1)
        cfg.stack_size = 96 * 1024; /* an own mapping per stack as well */
    intptr_t err = 0;
    int made = 0;
    pthread_barrier_wait(&tt_barrier);
    for (; made < TT_ROUNDS; made++) {
        if (tr_engine_create(&es[made], &cfg) != 0) {
            err = 1;
            break;
        }
        struct tr_spawn_opts o = {.name = "tt-main", .stack_size = id ? 0 : 128 * 1024};
        if (tr_spawn(es[made], NULL, tt_main, NULL, &o) != 0 || tr_engine_run(es[made]) != 0)
            err = 2;
    }
    pthread_barrier_wait(&tt_barrier); /* also after a failure: no hang */
    for (int r = 0; r < made; r++)
        if (tr_engine_destroy(es[r]) != 0)
            err = 3;
    return (void *)err;
}

/* The body, in a process that has not touched the engine yet: the first
 * engine of the process is created by two threads at once. */
static int tt_child(void)
{
    pthread_t th[2];
    pthread_barrier_init(&tt_barrier, NULL, 2);
    for (intptr_t i = 0; i < 2; i++)
        if (pthread_create(&th[i], NULL, tt_thread, (void *)i) != 0)
            return 3;
    int rc = 0;
    for (int i = 0; i < 2; i++) {
        void *res;
        pthread_join(th[i], &res);
        if (res)
            rc = 4 + (int)(intptr_t)res;
    }
    return rc;
}

static const char tt_flag[] = "--two-threads-child";

/* Lazily initialised process-wide state races only on its first use, and
 * this suite's other tests (or cmocka) may have used it already: so the
 * test re-executes this program, whose child runs only tt_child. Under
 * TSan a race makes the child exit 66 with a report on stderr. */
static void test_stack_two_threads_create_engines_race_free(void **state)
{
    (void)state;
    int st = reexec(tt_flag, NULL, 0);
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
        fail_msg("the two-thread child ended with status 0x%x (66: a TSan report above)", st);
}

/* ------------------------------------------------------------ the canary */

static const char cw_flag[] = "--print-canary";

/* The child: makes an engine (the canary is chosen on the way) and prints
 * the word. */
static int cw_child(void)
{
    tr_engine *e = NULL;
    if (tr_engine_create(&e, NULL) != 0 || tr_engine_destroy(e) != 0)
        return 1;
    printf("%016llx\n", (unsigned long long)tr__stack_canary_word);
    return 0;
}

static void test_stack_canary_random_without_zero_byte(void **state)
{
    (void)state;
    tr_engine *e = eng_new(NULL); /* the canary is chosen by now */
    uint64_t c = tr__stack_canary_word;
    for (unsigned i = 0; i < 64; i += 8)
        if (((c >> i) & 0xff) == 0)
            fail_msg("canary %016llx has a zero byte", (unsigned long long)c);
    assert_int_equal(tr_engine_destroy(e), 0);
    /* Another process, another canary (equal by chance: 2^-64). */
    char a[64], b[64];
    assert_int_equal(reexec(cw_flag, a, sizeof(a)), 0);
    assert_int_equal(reexec(cw_flag, b, sizeof(b)), 0);
    assert_int_equal(strlen(a), 17);
    assert_string_not_equal(a, b);
}

/* Canary-only stacks (guard regions off, no guard budget): each task finds
 * the canary in its stack's lowest TR_CANARY_WORDS words, also on a stack
 * of a slab the trim gave back (its pages read zero again), which would
 * otherwise abort at the first switch as a smashed canary. */
#define CT_TASKS (TR_STACK_POOL_MAX + 4 * TR_SLAB_STACKS)

static int ct_bad;

static bool ct_armed(void)
{
    const struct tr_stack *s = tr__current->stack;
    const uint64_t *w = s->lo;
    if (s->guard != TR_GUARD_NONE)
        return false;
    for (int i = 0; i < TR_CANARY_WORDS; i++)
        if (w[i] != tr__stack_canary_word)
            return false;
    return true;
}

static int ct_task(void *p)
{
    (void)p;
    ct_bad += !ct_armed();
    return tr_yield();
}

static int ct_spawner(void *p)
{
    (void)p;
    for (int i = 0; i < CT_TASKS; i++)
        TCHECK_EQ(tr_spawn(NULL, NULL, ct_task, NULL, NULL), 0);
    return 0;
}

static void test_stack_canary_armed_also_after_trim(void **state)
{
    (void)state;
    SKIP_UNDER_TSAN();
    struct tr_config cfg;
    tr_config_init(&cfg);
    cfg.flags = TR_CFG_NO_SIGNALS;
    tr__stack_set_guard_regions(false);
    tr__stack_set_guard_budget(0);
    tr_engine *e = eng_new(&cfg);
    ct_bad = 0;
    assert_int_equal(tr_spawn(e, NULL, ct_spawner, NULL, NULL), 0);
    assert_int_equal(tr_engine_run(e), 0); /* returning trims what is owed */
    tr_test_assert_clean();
    assert_int_equal(ct_bad, 0);
    struct tr_stats st = stats_of(e);
    assert_int_equal(st.stacks_guarded, 0);
    assert_true(st.stacks_canary >= CT_TASKS);
    /* A whole trimmed slab, then a second spike: its stacks come back
     * zeroed by the kernel, and are armed again as they are handed out. */
    unsigned advised = 0;
    for (struct tr_slab *sl = e->stk.slabs; sl; sl = sl->next)
        advised += sl->advised;
    assert_true(advised > 0);
    assert_int_equal(tr_spawn(e, NULL, ct_spawner, NULL, NULL), 0);
    assert_int_equal(tr_engine_run(e), 0);
    tr_test_assert_clean();
    assert_int_equal(ct_bad, 0);
    assert_int_equal(tr_engine_destroy(e), 0);
    tr__stack_set_guard_regions(true);
    tr__stack_set_guard_budget(-1); /* back to vm.max_map_count's */
}

/* ---------------------------------------- guard regions cost no mapping */

/* Enough for a pattern: guard pages would add 8,000 lines. */
#define GR_TASKS 4000

static long maps_lines(void)
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

struct gr_ctx {
    long maps0, maps1;
    int not_region, unguarded;
    struct tr_stats st;
};

/* Does reading the page below lo fault? Asked of the kernel, which refuses
 * (EFAULT) to read a guard region for process_vm_readv: no signal. */
static bool page_below_faults(const void *lo)
{
    char b[8];
    struct iovec local = {.iov_base = b, .iov_len = sizeof(b)};
    struct iovec remote = {.iov_base = (char *)lo - 64, .iov_len = sizeof(b)};
    return process_vm_readv(getpid(), &local, 1, &remote, 1, 0) < 0 && errno == EFAULT;
}

static int gr_sleeper(void *p)
{
    struct gr_ctx *c = p;
    c->not_region += tr__current->stack->guard != TR_GUARD_REGION;
    c->unguarded += !page_below_faults(tr__current->stack->lo);
    return tr_sleep_ns(3600ull * 1000000000ull);
}

static int gr_main(void *p)
{
    struct gr_ctx *c = p;
    c->maps0 = maps_lines();
    for (int i = 0; i < GR_TASKS; i++)
        TCHECK_EQ(tr_spawn(NULL, NULL, gr_sleeper, c, NULL), 0);
    for (int i = 0; i < 100 && tstats().timers_pending < GR_TASKS; i++)
        TCHECK_EQ(tr_yield(), 0);
    c->maps1 = maps_lines();
    c->st = tstats();
    TCHECK_EQ(tr_cancel_all(NULL, 0, TR_CANCEL_WAIT), GR_TASKS);
    return 0;
}

/* batch: the guards of a slab installed in one process_madvise (the
 * default where the kernel has it), else one madvise each. */
static void guard_regions_case(bool batch)
{
    SKIP_UNDER_TSAN();
    tr__stack_set_guard_budget(0); /* guard regions need none */
    tr__stack_set_guard_batch(batch);
    struct gr_ctx c;
    memset(&c, 0, sizeof(c));
    tr_engine *e = eng_new(NULL);
    assert_int_equal(tr_spawn(e, NULL, gr_main, &c, NULL), 0);
    assert_int_equal(tr_engine_run(e), 0);
    tr_test_assert_clean();
    assert_int_equal(tr_engine_destroy(e), 0);
    tr__stack_set_guard_budget(-1);
    tr__stack_set_guard_batch(true);
    if (!tr__stack_guard_regions())
        skip(); /* a kernel before 6.13 */
    print_message("%d parked tasks with guard regions (%s): /proc/self/maps %ld -> %ld lines; "
                  "stacks guarded %llu, canary %llu\n",
                  GR_TASKS, batch ? "batched" : "one madvise each", c.maps0, c.maps1,
                  (unsigned long long)c.st.stacks_guarded, (unsigned long long)c.st.stacks_canary);
    assert_int_equal(c.not_region, 0);
    assert_int_equal(c.unguarded, 0); /* each guard really faults */
    assert_true(c.st.stacks_guarded >= GR_TASKS + 1);
    assert_int_equal(c.st.stacks_canary, 0);
    /* The slabs merge into a VMA or a few (0-3 lines more here; ASan's
     * allocator maps memory of its own, 16 lines); guard pages would have
     * added two lines per stack, 8,000. */
    assert_true(c.maps1 - c.maps0 < GR_TASKS / 16);
}

static void test_stack_guard_regions_cost_no_mapping(void **state)
{
    (void)state;
    guard_regions_case(true);
}

static void test_stack_guard_regions_one_madvise_each(void **state)
{
    (void)state;
    guard_regions_case(false);
}

/* ------------------------------------------- what a parked task costs */

/* A canary costs no page of its own: it shares a page with the top of the
 * stack below it (slab_stack_lo). Parked canary stacks cost about what
 * guarded ones do, measured in the same process so that the build's own
 * overheads (sanitizers) cancel out; a canary on a page of its own would
 * add 4 KiB per task. */
#define PC_TASKS 4000

static long rss_kb(void)
{
    FILE *f = fopen("/proc/self/status", "re");
    char line[256];
    long v = -1;
    if (!f)
        return -1;
    while (fgets(line, sizeof(line), f))
        if (strncmp(line, "VmRSS:", 6) == 0) {
            v = strtol(line + 6, NULL, 10);
            break;
        }
    fclose(f);
    return v;
}

static int pc_sleeper(void *p)
{
    (void)p;
    return tr_sleep_ns(3600ull * 1000000000ull);
}

static int pc_main(void *p)
{
    double *per_task = p;
    long rss0 = rss_kb();
    for (int i = 0; i < PC_TASKS; i++)
        TCHECK_EQ(tr_spawn(NULL, NULL, pc_sleeper, NULL, NULL), 0);
    for (int i = 0; i < 100 && tstats().timers_pending < PC_TASKS; i++)
        TCHECK_EQ(tr_yield(), 0);
    *per_task = (double)(rss_kb() - rss0) * 1024.0 / PC_TASKS;
    TCHECK_EQ(tr_cancel_all(NULL, 0, TR_CANCEL_WAIT), PC_TASKS);
    return 0;
}

static double parked_bytes_per_task(bool canary)
{
    double per_task = 0;
    tr__stack_set_guard_regions(!canary);
    tr__stack_set_guard_budget(canary ? 0 : -1);
    tr_engine *e = eng_new(NULL);
    assert_int_equal(tr_spawn(e, NULL, pc_main, &per_task, NULL), 0);
    assert_int_equal(tr_engine_run(e), 0);
    tr_test_assert_clean();
    struct tr_stats st = stats_of(e);
    assert_true((canary ? st.stacks_canary : st.stacks_guarded) >= PC_TASKS);
    assert_int_equal(tr_engine_destroy(e), 0);
    tr__stack_set_guard_regions(true);
    tr__stack_set_guard_budget(-1);
    return per_task;
}

static void test_stack_parked_canary_stack_costs_one_page(void **state)
{
    (void)state;
    SKIP_UNDER_TSAN();
    double guarded = parked_bytes_per_task(false), canary = parked_bytes_per_task(true);
    print_message("RSS per parked task: guarded stacks %.0f bytes, canary stacks %.0f bytes\n",
                  guarded, canary);
    assert_true(canary < guarded + 1024);
}

int main(int argc, char **argv)
{
    if (argc > 0 && strchr(argv[0], '/'))
        self_path = argv[0];
    if (argc == 2 && strcmp(argv[1], tt_flag) == 0)
        return tt_child();
    if (argc == 2 && strcmp(argv[1], cw_flag) == 0)
        return cw_child();
    const struct CMUnitTest tests[] = {
        T(test_stack_two_threads_create_engines_race_free),
        T(test_stack_canary_random_without_zero_byte),
        T(test_stack_canary_armed_also_after_trim),
        T(test_stack_guard_regions_cost_no_mapping),
        T(test_stack_guard_regions_one_madvise_each),
        T(test_stack_parked_canary_stack_costs_one_page),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
