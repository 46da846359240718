/*
 * Description: task stacks (engine/stack.c) without dying: the tests that
 * need no fault (the death tests are in test_guard.c). Run under TSan too
 * (tools/dev tsan), so nothing here forks a child that dies.
 *   - two threads that create, run and destroy engines at the same time
 *     in a fresh process share the stack code's process-wide state (page
 *     size, guard-region probe, canary, map budget) without a data race
 *     (defect B.13: the page size was initialised lazily, unsynchronised);
 *   - the canary of unguarded stacks is a random word with no zero byte
 *     (defect B.11: it was zero, so a zero-filled overflow never showed);
 *   - guard-region stacks cost no mapping: thousands of them leave
 *     /proc/self/maps a few lines longer, and they count as guarded.
 */
#define _GNU_SOURCE
#include "tr_test.h"

#include <pthread.h>
#include <sys/wait.h>

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

static void *tt_thread(void *p)
{
    intptr_t id = (intptr_t)p;
    struct tr_config cfg;
    tr_config_init(&cfg);
    cfg.flags = TR_CFG_NO_SIGNALS;
    if (id == 1)
        cfg.stack_size = 96 * 1024; /* an own mapping per stack as well */
    pthread_barrier_wait(&tt_barrier);
    for (int r = 0; r < TT_ROUNDS; r++) {
        tr_engine *e = NULL;
        if (tr_engine_create(&e, &cfg) != 0)
            return (void *)1;
        struct tr_spawn_opts o = {.name = "tt-main", .stack_size = id ? 0 : 128 * 1024};
        if (tr_spawn(e, NULL, tt_main, NULL, &o) != 0 || tr_engine_run(e) != 0 ||
            tr_engine_destroy(e) != 0)
            return (void *)2;
    }
    return NULL;
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
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        char *argv[] = {"test_stack", (char *)tt_flag, NULL};
        execv("/proc/self/exe", argv);
        _exit(127);
    }
    int st = 0;
    pid_t w;
    do {
        w = waitpid(pid, &st, 0);
    } while (w < 0 && errno == EINTR);
    assert_int_equal(w, pid);
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
        fail_msg("the two-thread child ended with status 0x%x (66: a TSan report above)", st);
}

int main(int argc, char **argv)
{
    if (argc == 2 && strcmp(argv[1], tt_flag) == 0)
        return tt_child();
    const struct CMUnitTest tests[] = {
        T(test_stack_two_threads_create_engines_race_free),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
