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
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#if defined(TR_HAVE_VALGRIND_H)
#include <valgrind/valgrind.h>
#endif

/* The canary (TR_CANARY_WORDS): the lowest 256 bytes of an unguarded stack
 * must stay zero. Zero because fresh anonymous pages are zero: the canary
 * needs no write, so the stack's bottom page is never touched (reading it
 * maps the shared zero page) and a parked task keeps costing one page, not
 * two. A task that overflows writes frames (return addresses, saved
 * registers) through it. */

/* Guarded stacks this process may still create; -1 until first computed. */
static _Atomic long guard_budget = -1;

/*
 * Process-wide facts, computed once (stack_once) by the first thread that
 * needs one and only read afterwards: two threads creating their first
 * engines at the same time must not race on them (defect B.13: the page
 * size was cached by whoever came first, unsynchronised). pthread_once
 * orders the write before every reader.
 */
static pthread_once_t stack_once = PTHREAD_ONCE_INIT;
static size_t stack_page_size;

static void stack_once_init(void)
{
    stack_page_size = (size_t)sysconf(_SC_PAGESIZE);
}

static size_t page_size(void)
{
    pthread_once(&stack_once, stack_once_init);
    return stack_page_size;
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

/* Takes n guards from the process-wide budget, all or none. */
static bool guard_take(long n)
{
    long b = atomic_load(&guard_budget);
    if (b < 0) {
        long init = initial_budget();
        /* Only the first caller's computation counts. */
        atomic_compare_exchange_strong(&guard_budget, &b, init);
        b = atomic_load(&guard_budget);
    }
    while (b >= n) {
        if (atomic_compare_exchange_weak(&guard_budget, &b, b - n))
            return true;
    }
    return false;
}

static void guard_give_back(long n)
{
    atomic_fetch_add(&guard_budget, n);
}

void tr__stack_set_guard_budget(long n)
{
    atomic_store(&guard_budget, n);
}

long tr__stack_guard_budget(void)
{
    return atomic_load(&guard_budget);
}

static void *map_stack_memory(size_t len, int *err)
{
    /* No MAP_NORESERVE: an absurd size must fail with -ENOMEM here, not
     * fault later. Only touched pages cost memory. MAP_STACK: since 6.7 also
     * keeps transparent huge pages off, so a parked task costs ~1 page. */
    void *m =
        mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
    if (m == MAP_FAILED) {
        *err = (errno == ENOMEM || errno == EAGAIN) ? -ENOMEM : -errno;
        return NULL;
    }
    return m;
}

static void stack_init(tr_engine *e, struct tr_stack *s, char *lo, size_t size, bool guarded)
{
    s->lo = lo;
    s->hi = lo + size;
    s->guarded = guarded;
#if defined(TR_HAVE_VALGRIND_H)
    s->vg_id = VALGRIND_STACK_REGISTER(s->lo, s->hi);
#endif
    if (guarded)
        e->st.stacks_guarded++;
    else
        e->st.stacks_canary++;
}

static void stack_fini(tr_engine *e, struct tr_stack *s)
{
#if defined(TR_HAVE_VALGRIND_H)
    VALGRIND_STACK_DEREGISTER(s->vg_id);
#endif
    if (s->guarded)
        e->st.stacks_guarded--;
    else
        e->st.stacks_canary--;
}

/*
 * Default-size stacks come in slabs of TR_SLAB_STACKS from one mmap, laid
 * out [guard][stack][guard][stack]... (or just [stack][stack]... without
 * guards). One mmap serves 64 spawns, and a freed stack goes back to the
 * engine's pool instead of to munmap: a 100k-task drain makes no syscall
 * per task. A slab whose stacks are all free while the pool holds more than
 * TR_STACK_POOL_MAX gets MADV_DONTNEED when the engine is next about to wait
 * (tr__stack_trim), so a spike's memory goes back to the kernel; slabs are
 * unmapped when the engine is destroyed.
 */
static int slab_create(tr_engine *e)
{
    size_t ps = page_size(), size = e->stack_size;
    struct tr_slab *sl = calloc(1, sizeof(*sl));
    if (!sl)
        return -ENOMEM;
    bool guarded = guard_take(TR_SLAB_STACKS);
    size_t stride = size + (guarded ? ps : 0);
    int err = 0;
    sl->map_len = stride * TR_SLAB_STACKS;
    sl->map = map_stack_memory(sl->map_len, &err);
    if (!sl->map) {
        if (guarded)
            guard_give_back(TR_SLAB_STACKS);
        free(sl);
        return err;
    }
    for (unsigned i = 0; guarded && i < TR_SLAB_STACKS; i++) {
        if (mprotect((char *)sl->map + i * stride, ps, PROT_NONE) != 0) {
            /* Out of VMAs after all: this slab goes canary-only, its guard
             * pages become harmless (and unused) stack bottoms. */
            if (i > 0)
                mprotect(sl->map, sl->map_len, PROT_READ | PROT_WRITE);
            guard_give_back(TR_SLAB_STACKS);
            guarded = false;
        }
    }
    sl->guarded = guarded;
    sl->nfree = TR_SLAB_STACKS;
    for (unsigned i = 0; i < TR_SLAB_STACKS; i++) {
        struct tr_stack *s = &sl->stacks[i];
        char *base = (char *)sl->map + i * stride;
        s->slab = sl;
        stack_init(e, s, base + (stride - size), size, guarded);
        s->next_free = e->stack_pool;
        e->stack_pool = s;
        e->stack_pool_len++;
    }
    sl->next = e->slabs;
    e->slabs = sl;
    return 0;
}

int tr__stack_alloc(tr_engine *e, size_t size, struct tr_stack **out)
{
    if (TR_FAULT(TR_FS_ALLOC))
        return -ENOMEM;
    if (size == e->stack_size) {
        if (!e->stack_pool) {
            int err = slab_create(e);
            if (err)
                return err;
        }
        struct tr_stack *s = e->stack_pool;
        e->stack_pool = s->next_free;
        e->stack_pool_len--;
        s->next_free = NULL;
        TR_ASSERT(s->slab->nfree > 0);
        if (s->slab->advised) {
            /* Its pages come back as they are touched: no longer spare. */
            TR_ASSERT(e->stack_advised >= s->slab->nfree);
            e->stack_advised -= s->slab->nfree;
            s->slab->advised = false;
        }
        s->slab->nfree--;
        *out = s;
        return 0;
    }
    /* Other sizes: one mapping each, unmapped when the task ends. */
    struct tr_stack *s = calloc(1, sizeof(*s));
    if (!s)
        return -ENOMEM;
    size_t ps = page_size();
    bool guarded = guard_take(1);
    size_t len = size + (guarded ? ps : 0);
    int err = 0;
    void *m = map_stack_memory(len, &err);
    if (!m) {
        if (guarded)
            guard_give_back(1);
        free(s);
        return err;
    }
    if (guarded && mprotect(m, ps, PROT_NONE) != 0) {
        /* The split needs a new VMA; out of them, go canary-only. */
        guard_give_back(1);
        guarded = false;
    }
    s->map = m;
    s->map_len = len;
    stack_init(e, s, (char *)m + (guarded ? ps : 0), size, guarded);
    *out = s;
    return 0;
}

/* More pool stacks keep their pages than the pool's cap, by at least a
 * slab: one wholly free slab can go back to the kernel. */
static bool surplus(const tr_engine *e)
{
    return e->stack_pool_len - e->stack_advised > TR_STACK_POOL_MAX + TR_SLAB_STACKS;
}

void tr__stack_free(tr_engine *e, struct tr_stack *s)
{
    if (!s->slab) {
        stack_fini(e, s);
        if (s->guarded)
            guard_give_back(1);
        munmap(s->map, s->map_len);
        free(s);
        return;
    }
    struct tr_slab *sl = s->slab;
    s->next_free = e->stack_pool;
    e->stack_pool = s;
    e->stack_pool_len++;
    sl->nfree++;
    TR_ASSERT(sl->nfree <= TR_SLAB_STACKS);
    /* Not here: a 100k-task drain would pay a madvise per 64 ends (a third
     * of its time). The engine trims when it is about to wait, once the
     * surplus has lasted TR_STACK_TRIM_DELAY_NS (a burst of ends, such as
     * a cancel, must not pay for it either). */
    if (sl->nfree == TR_SLAB_STACKS && !sl->advised && surplus(e) && !e->stack_trim_owed) {
        e->stack_trim_owed = true;
        e->stack_trim_at = e->pass_ns + TR_STACK_TRIM_DELAY_NS;
    }
}

void tr__stack_trim(tr_engine *e, unsigned max)
{
    if (!e->stack_trim_owed)
        return;
    /* Bounded by the slabs and by max madvise calls per call. */
    unsigned n = 0;
    for (struct tr_slab *sl = e->slabs; sl; sl = sl->next) {
        if (!surplus(e))
            break; /* advising one more would leave fewer than the cap */
        if (sl->nfree != TR_SLAB_STACKS || sl->advised)
            continue;
        if (n == max)
            return; /* more owed: the next wait trims on */
        /* Give the pages back; the mapping (and the zero canaries) stay. */
        madvise(sl->map, sl->map_len, MADV_DONTNEED);
        sl->advised = true;
        e->stack_advised += TR_SLAB_STACKS;
        n++;
    }
    e->stack_trim_owed = false;
}

void tr__stack_pool_drain(tr_engine *e)
{
    while (e->slabs) {
        struct tr_slab *sl = e->slabs;
        e->slabs = sl->next;
        TR_ASSERT(sl->nfree == TR_SLAB_STACKS);
        for (unsigned i = 0; i < TR_SLAB_STACKS; i++)
            stack_fini(e, &sl->stacks[i]);
        if (sl->guarded)
            guard_give_back(TR_SLAB_STACKS);
        munmap(sl->map, sl->map_len);
        free(sl);
    }
    e->stack_pool = NULL;
    e->stack_pool_len = 0;
    e->stack_advised = 0;
}

size_t tr__stack_round(size_t size)
{
    size_t ps = page_size();
    if (size > SIZE_MAX - ps)
        return 0;
    return (size + ps - 1) & ~(ps - 1);
}
