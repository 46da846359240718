/*
 * stack.c — task stacks: mmap'd, guarded, pooled.
 *
 * A guarded stack is one mapping whose lowest page is PROT_NONE: an overflow
 * faults there and guard.c names the task (G8). It costs two kernel
 * mappings (VMAs), and a stock kernel allows 65530 per process
 * (vm.max_map_count): guard pages alone would cap us near 30k tasks. So a
 * process-wide budget hands out guards while it lasts; further stacks come
 * without a guard page (adjacent ones merge into one VMA) and rely on a
 * canary in their lowest bytes, checked at every switch away from the task.
 */
#include "tr_internal.h"

#include <errno.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#if defined(TR_HAVE_VALGRIND_H)
#include <valgrind/valgrind.h>
#endif

/* Stacks of the default size kept for reuse per engine. Beyond it, freed
 * stacks are unmapped: a pooled stack keeps the pages it touched. */
#define TR_STACK_POOL_MAX 4096
/* The canary: the lowest 256 bytes of an unguarded stack must stay zero.
 * Zero because fresh anonymous pages are zero: the canary needs no write,
 * so the stack's bottom page is never touched (reading it maps the shared
 * zero page) and a parked task keeps costing one page, not two. A task that
 * overflows writes frames (return addresses, saved registers) through it. */
#define TR_CANARY_WORDS 32

/* Guarded stacks this process may still create; -1 until first computed. */
static _Atomic long guard_budget = -1;

static size_t page_size(void)
{
    static size_t ps;
    if (!ps)
        ps = (size_t)sysconf(_SC_PAGESIZE);
    return ps;
}

static long read_long(const char *path, long dflt)
{
    FILE *f = fopen(path, "re");
    long v = dflt;
    if (f) {
        if (fscanf(f, "%ld", &v) != 1)
            v = dflt;
        fclose(f);
    }
    return v;
}

static long count_maps(void)
{
    FILE *f = fopen("/proc/self/maps", "re");
    long n = 0;
    int c;
    if (!f)
        return 0;
    while ((c = fgetc(f)) != EOF)
        n += (c == '\n');
    fclose(f);
    return n;
}

static long initial_budget(void)
{
    long max = read_long("/proc/sys/vm/max_map_count", 65530);
    long used = count_maps();
    /* Leave a quarter of the limit (at least 8192 mappings) to the rest of
     * the process: its libraries, malloc arenas, its own mmaps. */
    long reserve = max / 4 > 8192 ? max / 4 : 8192;
    long avail = max - used - reserve;
    return avail > 0 ? avail / 2 : 0;
}

static bool guard_take(void)
{
    long b = atomic_load(&guard_budget);
    if (b < 0) {
        long init = initial_budget();
        /* Only the first caller's computation counts. */
        atomic_compare_exchange_strong(&guard_budget, &b, init);
        b = atomic_load(&guard_budget);
    }
    while (b > 0) {
        if (atomic_compare_exchange_weak(&guard_budget, &b, b - 1))
            return true;
    }
    return false;
}

static void guard_give_back(void)
{
    atomic_fetch_add(&guard_budget, 1);
}

void tr__stack_set_guard_budget(long n)
{
    atomic_store(&guard_budget, n);
}

long tr__stack_guard_budget(void)
{
    return atomic_load(&guard_budget);
}

bool tr__stack_canary_ok(const struct tr_stack *s)
{
    const volatile uint64_t *w = s->lo;
    for (int i = 0; i < TR_CANARY_WORDS; i++)
        if (w[i] != 0)
            return false;
    return true;
}

int tr__stack_alloc(tr_engine *e, size_t size, struct tr_stack **out)
{
    if (size == e->stack_size && e->stack_pool) {
        struct tr_stack *s = e->stack_pool;
        e->stack_pool = s->next_free;
        e->stack_pool_len--;
        s->next_free = NULL;
        *out = s;
        return 0;
    }
    struct tr_stack *s = calloc(1, sizeof(*s));
    if (!s)
        return -ENOMEM;
    size_t ps = page_size();
    bool guarded = guard_take();
    size_t len = size + (guarded ? ps : 0);
    /* No MAP_NORESERVE: an absurd size must fail with -ENOMEM here, not
     * fault later. Only touched pages cost memory. MAP_STACK: since 6.7 also
     * keeps transparent huge pages off, so a parked task costs ~1 page. */
    void *m = mmap(NULL, len, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
    if (m == MAP_FAILED) {
        int err = errno;
        if (guarded)
            guard_give_back();
        free(s);
        return err == ENOMEM || err == EAGAIN ? -ENOMEM : -err;
    }
    if (guarded && mprotect(m, ps, PROT_NONE) != 0) {
        /* The split needs a new VMA; out of them, go canary-only. */
        guard_give_back();
        guarded = false;
    }
    s->map = m;
    s->map_len = len;
    s->lo = (char *)m + (guarded ? ps : 0);
    s->hi = (char *)m + len;
    s->guarded = guarded;
#if defined(TR_HAVE_VALGRIND_H)
    s->vg_id = VALGRIND_STACK_REGISTER(s->lo, s->hi);
#endif
    if (guarded)
        e->st.stacks_guarded++;
    else
        e->st.stacks_canary++;
    *out = s;
    return 0;
}

static void stack_unmap(tr_engine *e, struct tr_stack *s)
{
#if defined(TR_HAVE_VALGRIND_H)
    VALGRIND_STACK_DEREGISTER(s->vg_id);
#endif
    if (s->guarded) {
        guard_give_back();
        e->st.stacks_guarded--;
    } else {
        e->st.stacks_canary--;
    }
    munmap(s->map, s->map_len);
    free(s);
}

void tr__stack_free(tr_engine *e, struct tr_stack *s)
{
    size_t size = (size_t)((char *)s->hi - (char *)s->lo);
    /* A smashed canary was reported at the switch; never pool such a stack. */
    if (size == e->stack_size && e->stack_pool_len < TR_STACK_POOL_MAX &&
        (s->guarded || tr__stack_canary_ok(s))) {
        s->next_free = e->stack_pool;
        e->stack_pool = s;
        e->stack_pool_len++;
        return;
    }
    stack_unmap(e, s);
}

void tr__stack_pool_drain(tr_engine *e)
{
    while (e->stack_pool) {
        struct tr_stack *s = e->stack_pool;
        e->stack_pool = s->next_free;
        e->stack_pool_len--;
        stack_unmap(e, s);
    }
}

size_t tr__stack_round(size_t size)
{
    size_t ps = page_size();
    if (size > SIZE_MAX - ps)
        return 0;
    return (size + ps - 1) & ~(ps - 1);
}
