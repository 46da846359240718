/* SPDX-License-Identifier: MIT */
/*
 * Description: the hot path allocates nothing. After a warm-up, ops (nop,
 * pipe read/write), sleeps, yields, cancels and spawn+join cycles of
 * default-size tasks must not call malloc, calloc, realloc or mmap: op
 * slots, task records and stacks are recycled from the engine's pools.
 * The engine's calls are counted through the linker's --wrap.
 */
#include "tr_test.h"

#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

static int counting;
static unsigned long allocs;

void *__real_malloc(size_t n);
void *__real_calloc(size_t n, size_t m);
void *__real_realloc(void *p, size_t n);
void *__real_mmap(void *a, size_t n, int prot, int flags, int fd, off_t off);

void *__wrap_malloc(size_t n)
{
    allocs += counting;
    return __real_malloc(n);
}
void *__wrap_calloc(size_t n, size_t m)
{
    allocs += counting;
    return __real_calloc(n, m);
}
void *__wrap_realloc(void *p, size_t n)
{
    allocs += counting;
    return __real_realloc(p, n);
}
void *__wrap_mmap(void *a, size_t n, int prot, int flags, int fd, off_t off)
{
    allocs += counting;
    return __real_mmap(a, n, prot, flags, fd, off);
}

static int pfd[2];

static int child(void *arg)
{
    return (int)(intptr_t)arg;
}

static int blocked_reader(void *arg)
{
    (void)arg;
    char b;
    return (int)tr_read(pfd[0], &b, 1, -1);
}

static int round_of_work(int rounds)
{
    char buf[64] = {0};
    for (int i = 0; i < rounds; i++) {
        if (tr_nop() != 0)
            return -1;
        if (tr_write(pfd[1], buf, sizeof(buf), -1) != (ssize_t)sizeof(buf))
            return -2;
        if (tr_read(pfd[0], buf, sizeof(buf), -1) != (ssize_t)sizeof(buf))
            return -3;
        if (tr_yield() != 0)
            return -4;
        if (tr_sleep_ns(1) != 0)
            return -5;
        tr_task *t;
        int res = -1;
        if (tr_spawn(NULL, &t, child, (void *)(intptr_t)i, NULL) != 0)
            return -6;
        if (tr_join(t, &res) != 0 || res != i)
            return -7;
        /* A cancelled op: the cancel path allocates nothing either. */
        if (tr_spawn(NULL, &t, blocked_reader, NULL, NULL) != 0)
            return -8;
        tr_yield();
        tr_yield();
        if (tr_cancel(t) != 0 || tr_join(t, &res) != 0 || res != -ECANCELED)
            return -9;
    }
    return 0;
}

static int hot_path(void *arg)
{
    unsigned long *out = arg;
    int err = round_of_work(100); /* warm-up: pools fill */
    if (err)
        return err;
    allocs = 0;
    counting = 1;
    err = round_of_work(5000);
    counting = 0;
    *out = allocs;
    return err;
}

static void test_alloc_hot_path_allocates_nothing(void **state)
{
    (void)state;
    unsigned long n = ~0ul;
    assert_int_equal(pipe(pfd), 0);
    assert_int_equal(tr_test_run(hot_path, &n), 0);
    print_message("allocations during 5,000 rounds (35,000 ops/spawns): %lu\n", n);
    assert_int_equal(n, 0);
    close(pfd[0]);
    close(pfd[1]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_alloc_hot_path_allocates_nothing),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
