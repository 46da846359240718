/* SPDX-License-Identifier: MIT */
/*
 * stack.c — task stacks: mmap'd, guarded, pooled.
 *
 * Every stack has a guard below its lowest byte where it can: an overflow
 * faults there and guard.c names the task (G8). Three kinds (enum
 * tr__guard), best first:
 *   - a guard region (Linux >= 6.13): madvise(MADV_GUARD_INSTALL) makes the
 *     page below the stack fault on any access with a page-table marker, not
 *     a mapping of its own. A slab of stacks stays one VMA (and adjacent
 *     slabs merge), so no number of tasks spends vm.max_map_count.
 *   - a guard page, where the kernel lacks guard regions: the page below
 *     the stack mprotect'd PROT_NONE. That splits the mapping, two VMAs per
 *     stack, and a stock kernel allows 65530 per process: guard pages alone
 *     would cap us near 30k tasks. So a process-wide budget hands them out
 *     while it lasts;
 *   - past that budget, none: the stack relies on a canary in its lowest
 *     bytes, checked at every switch away from the task.
 */
#include "tr_internal.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>
#if defined(TR_HAVE_VALGRIND_H)
#include <valgrind/valgrind.h>
#endif

/* The canary (TR_CANARY_WORDS): the lowest 256 bytes of an unguarded stack
 * hold tr__stack_canary_word, written when the stack is handed out and
 * checked at every switch away from its task. A task that overflows writes
 * frames (return addresses, saved registers) or its arrays through it. It
 * used to be zero, the value of fresh pages, which cost no write and kept
 * the bottom page untouched, but a zero-filled overflow never disturbed it
 * (defect B.11). Now it is random with no zero byte, and where it lives
 * costs a page only where the stack below it is free (see slab_stack_lo). */
#define CANARY_BYTES (TR_CANARY_WORDS * sizeof(uint64_t))

/* Linux 6.13's values: older headers (Debian 12's) lack the names. An
 * older kernel answers EINVAL, which is how we find out. */
#ifndef MADV_GUARD_INSTALL
#define MADV_GUARD_INSTALL 102
#endif
#ifndef MADV_GUARD_REMOVE
#define MADV_GUARD_REMOVE 103
#endif
#ifndef PIDFD_SELF
#define PIDFD_SELF (-10000) /* Linux 6.14: the calling thread, i.e. our own memory */
#endif

/* Guard pages (mprotect) this process may still create; -1 until first
 * computed. Guard regions take nothing from it. */
static _Atomic long guard_budget = -1;

/* The kernel lacks guard regions (a slab found out); a test turned them
 * off. */
static _Atomic bool regions_missing;
static _Atomic bool regions_off;
/* process_madvise cannot install them for us (regions_install_batch). */
static _Atomic bool batch_missing;
static _Atomic bool batch_off; /* a test's choice */

/*
 * Process-wide facts, computed once (stack_once) by the first thread that
 * needs one and only read afterwards: two threads creating their first
 * engines at the same time must not race on them (defect B.13: the page
 * size was cached by whoever came first, unsynchronised). pthread_once
 * orders the write before every reader.
 */
static pthread_once_t stack_once = PTHREAD_ONCE_INIT;
static size_t stack_page_size;
uint64_t tr__stack_canary_word;

/* Random, so that no overflow writes it by accident, with no zero byte, so
 * that zeros written over any byte of it show. getrandom with
 * GRND_NONBLOCK fails rather than wait before the kernel's pool is ready
 * (early boot); then the clock, the pid and where ASLR put this stack,
 * mixed, still make a value no program writes by accident. */
static uint64_t canary_make(void)
{
    uint64_t v = 0;
    if (getrandom(&v, sizeof(v), GRND_NONBLOCK) != (ssize_t)sizeof(v)) {
        v = tr__now_ns() ^ ((uint64_t)getpid() << 40) ^ (uint64_t)(uintptr_t)&v;
        v ^= v >> 33; /* murmur3's finaliser: every input bit moves many */
        v *= 0xff51afd7ed558ccdull;
        v ^= v >> 33;
    }
    for (unsigned i = 0; i < 64; i += 8)
        if (((v >> i) & 0xff) == 0)
            v |= (uint64_t)0xa5 << i;
    return v;
}

static void stack_once_init(void)
{
    stack_page_size = (size_t)sysconf(_SC_PAGESIZE);
    tr__stack_canary_word = canary_make();
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

void tr__stack_set_guard_regions(bool on)
{
    atomic_store(&regions_off, !on);
}

void tr__stack_set_guard_batch(bool on)
{
    atomic_store(&batch_off, !on);
}

bool tr__stack_guard_regions(void)
{
    return !atomic_load(&regions_off) && !atomic_load(&regions_missing);
}

/* The n guards of a slab in one process_madvise (one iovec each) instead
 * of n madvise calls: a cold spawn of 10k tasks made 10k syscalls of
 * ~1.7 us, now 157 of ~60 us (0.8-1 us a stack, measured on 6.18). Needs
 * PIDFD_SELF (Linux 6.14) and any advice for the caller's own memory
 * (6.13); elsewhere it fails once (EBADF, EINVAL or ENOSYS) and the
 * per-stack loop does the work. All or none: a partial success is undone. */
static bool regions_install_batch(char *map, size_t stride, unsigned n, size_t ps)
{
#if defined(SYS_process_madvise)
    if (n > TR_SLAB_STACKS || atomic_load(&batch_missing) || atomic_load(&batch_off))
        return false;
#if defined(TR_HAVE_VALGRIND_H)
    if (RUNNING_ON_VALGRIND)
        return false; /* valgrind 3.19 does not know the syscall */
#endif
    struct iovec iov[TR_SLAB_STACKS];
    for (unsigned i = 0; i < n; i++)
        iov[i] = (struct iovec){.iov_base = map + i * stride, .iov_len = ps};
    long r = syscall(SYS_process_madvise, PIDFD_SELF, iov, (size_t)n, MADV_GUARD_INSTALL, 0u);
    if (r == (long)(n * ps))
        return true;
    if (r < 0 && (errno == EBADF || errno == EINVAL || errno == ENOSYS || errno == EPERM))
        atomic_store(&batch_missing, true);
    else if (r > 0)
        madvise(map, n * stride, MADV_GUARD_REMOVE);
#else
    (void)map, (void)stride, (void)n, (void)ps;
#endif
    return false;
}

/* Guard regions on the first page of each of n strides from map: all or
 * none (a slab's stacks are all of one kind). Once per stack's life: the
 * pool reuses stacks with their guards, and the trim's MADV_DONTNEED keeps
 * them (tests/test_guard.c pins it). */
static bool regions_install(char *map, size_t stride, unsigned n)
{
    size_t ps = page_size();
    if (!tr__stack_guard_regions())
        return false;
    if (regions_install_batch(map, stride, n, ps))
        return true;
    for (unsigned i = 0; i < n; i++) {
        if (madvise(map + i * stride, ps, MADV_GUARD_INSTALL) == 0)
            continue;
        /* EINVAL on the first try: no guard regions in this kernel (or a
         * locked mapping, mlockall, which they refuse as well). Anything
         * else (ENOMEM for page tables) is this slab's problem only. */
        if (i == 0 && errno == EINVAL)
            atomic_store(&regions_missing, true);
        if (i > 0)
            madvise(map, i * stride, MADV_GUARD_REMOVE);
        return false;
    }
    return true;
}

/* Guard pages for n strides from map, from the budget: all or none. */
static bool pages_install(char *map, size_t stride, unsigned n)
{
    size_t ps = page_size();
    if (!guard_take(n))
        return false;
    for (unsigned i = 0; i < n; i++) {
        if (mprotect(map + i * stride, ps, PROT_NONE) != 0) {
            /* Out of VMAs after all: the strides go canary-only. */
            if (i > 0)
                mprotect(map, i * stride, PROT_READ | PROT_WRITE);
            guard_give_back(n);
            return false;
        }
    }
    return true;
}

/* The best guard the process can give n strides from map. */
static enum tr__guard guard_install(char *map, size_t stride, unsigned n)
{
    if (regions_install(map, stride, n))
        return TR_GUARD_REGION;
    if (pages_install(map, stride, n))
        return TR_GUARD_PAGE;
    return TR_GUARD_NONE;
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

static void stack_init(tr_engine *e, struct tr_stack *s, char *lo, size_t size, uint8_t guard)
{
    s->lo = lo;
    s->hi = lo + size;
    s->guard = guard;
#if defined(TR_HAVE_VALGRIND_H)
    s->vg_id = VALGRIND_STACK_REGISTER(s->lo, s->hi);
#endif
    if (guard != TR_GUARD_NONE)
        e->st.stacks_guarded++;
    else
        e->st.stacks_canary++;
}

static void stack_fini(tr_engine *e, struct tr_stack *s)
{
#if defined(TR_HAVE_VALGRIND_H)
    VALGRIND_STACK_DEREGISTER(s->vg_id);
#endif
    if (s->guard != TR_GUARD_NONE)
        e->st.stacks_guarded--;
    else
        e->st.stacks_canary--;
}

/* Where stack i of a slab begins. Guarded: above its guard, the first
 * page of its stride. Canary-only: packed from the slab's first page on,
 * each CANARY_BYTES below a page boundary, so that its canary shares a
 * page with the top of the stack below (stack 0's: the slab's first page).
 * That page is resident whenever the stack below is in use, so the canary
 * costs no page of its own and a parked task keeps costing one page, not
 * two. The mapping's last pages then stay unused (address space only). */
static char *slab_stack_lo(const struct tr_slab *sl, unsigned i, size_t size)
{
    size_t ps = page_size();
    if (sl->guard != TR_GUARD_NONE)
        return (char *)sl->map + i * (size + ps) + ps;
    return (char *)sl->map + ps - CANARY_BYTES + i * size;
}

/*
 * Default-size stacks come in slabs of TR_SLAB_STACKS from one mmap, laid
 * out [guard][stack][guard][stack]... (canary stacks: see slab_stack_lo).
 * One mmap serves 64 spawns, and a freed stack goes back to the engine's
 * pool instead of to munmap: a 100k-task drain makes no syscall per task.
 * A slab whose stacks are all free while the pool holds more than
 * TR_STACK_POOL_MAX gets MADV_DONTNEED when the engine is next about to
 * wait (tr__stack_trim), so a spike's memory goes back to the kernel;
 * slabs are unmapped when the engine is destroyed.
 */
static int slab_create(tr_engine *e)
{
    size_t size = e->stk.size, stride = size + page_size();
    struct tr_slab *sl = calloc(1, sizeof(*sl));
    if (!sl)
        return -ENOMEM;
    int err = 0;
    sl->map_len = stride * TR_SLAB_STACKS;
    sl->map = map_stack_memory(sl->map_len, &err);
    if (!sl->map) {
        free(sl);
        return err;
    }
    sl->guard = (uint8_t)guard_install(sl->map, stride, TR_SLAB_STACKS);
    sl->nfree = TR_SLAB_STACKS;
    /* Never touched: no pages yet, so on the cold list (taken in address
     * order), costing the trim nothing. */
    for (unsigned i = TR_SLAB_STACKS; i-- > 0;) {
        struct tr_stack *s = &sl->stacks[i];
        s->slab = sl;
        stack_init(e, s, slab_stack_lo(sl, i, size), size, sl->guard);
        s->pooled = s->advised = true;
        s->next_free = e->stk.cold;
        e->stk.cold = s;
        e->stk.pool_len++;
        e->stk.advised++;
    }
    sl->next = e->stk.slabs;
    e->stk.slabs = sl;
    return 0;
}

/* An unguarded stack gets its canary each time it is handed out: the trim's
 * MADV_DONTNEED zeroes pooled stacks, and the write is 256 bytes on a path
 * that guarded stacks skip. (A canary stack of its own mapping, not of the
 * default size, pays a page for it.) */
static void canary_arm(struct tr_stack *s)
{
    if (TR_LIKELY(s->guard != TR_GUARD_NONE))
        return;
    uint64_t *w = s->lo;
    for (size_t i = 0; i < CANARY_BYTES / sizeof(*w); i++)
        w[i] = tr__stack_canary_word;
}

/* ---- the pool's two lists ------------------------------------------------------ */

static void resident_unlink(tr_engine *e, struct tr_stack *s)
{
    if (s->prev_free)
        s->prev_free->next_free = s->next_free;
    else
        e->stk.pool = s->next_free;
    if (s->next_free)
        s->next_free->prev_free = s->prev_free;
    else
        e->stk.pool_tail = s->prev_free;
    s->next_free = s->prev_free = NULL;
    TR_ASSERT(s->slab->nres > 0);
    s->slab->nres--;
}

static void resident_push(tr_engine *e, struct tr_stack *s)
{
    s->prev_free = NULL;
    s->next_free = e->stk.pool;
    if (e->stk.pool)
        e->stk.pool->prev_free = s;
    else
        e->stk.pool_tail = s;
    e->stk.pool = s;
    s->slab->nres++;
}

/* A resident pooled stack's pages are given back: to the cold list. */
static void make_cold(tr_engine *e, struct tr_stack *s)
{
    TR_ASSERT(s->pooled && !s->advised);
    resident_unlink(e, s);
    s->advised = true;
    s->next_free = e->stk.cold;
    e->stk.cold = s;
    e->stk.advised++;
}

/* The cold list's first stack, off it; its pages come back as they are
 * touched. Still pooled: the caller hands it out or makes it resident. */
static struct tr_stack *cold_pop(tr_engine *e)
{
    struct tr_stack *s = e->stk.cold;
    e->stk.cold = s->next_free;
    s->next_free = NULL;
    TR_ASSERT(s->advised && e->stk.advised > 0);
    e->stk.advised--;
    s->advised = false;
    return s;
}

int tr__stack_alloc(tr_engine *e, size_t size, struct tr_stack **out)
{
    if (TR_FAULT(TR_FS_ALLOC))
        return -ENOMEM;
    if (size == e->stk.size) {
        /* Warm first (the most recently freed), then cold ones, then a
         * new slab. */
        if (!e->stk.pool && !e->stk.cold) {
            int err = slab_create(e);
            if (err)
                return err;
        }
        struct tr_stack *s = e->stk.pool;
        if (s) {
            resident_unlink(e, s);
        } else {
            s = cold_pop(e);
        }
        TR_ASSERT(s->pooled && !s->advised);
        s->pooled = false;
        e->stk.pool_len--;
        TR_ASSERT(s->slab->nfree > 0);
        s->slab->advised = false; /* no longer wholly given back */
        s->slab->nfree--;
        canary_arm(s);
        *out = s;
        return 0;
    }
    /* Other sizes: one mapping each, unmapped when the task ends. */
    struct tr_stack *s = calloc(1, sizeof(*s));
    if (!s)
        return -ENOMEM;
    size_t ps = page_size(), len = size + ps;
    int err = 0;
    void *m = map_stack_memory(len, &err);
    if (!m) {
        free(s);
        return err;
    }
    s->map = m;
    s->map_len = len;
    stack_init(e, s, (char *)m + ps, size, (uint8_t)guard_install(m, len, 1));
    canary_arm(s);
    *out = s;
    return 0;
}

uint64_t tr__stack_idle_trim_ns = TR_STACK_IDLE_TRIM_NS;

/* Pooled stacks that keep their pages (the resident list). */
static size_t resident(const tr_engine *e)
{
    TR_ASSERT(e->stk.advised <= e->stk.pool_len);
    return e->stk.pool_len - e->stk.advised;
}

/* More pooled stacks keep their pages than the cap, by at least a slab:
 * one wholly free slab can go back to the kernel. */
static bool surplus(const tr_engine *e)
{
    unsigned cap = e->stk.keep > TR_STACK_POOL_MAX ? e->stk.keep : TR_STACK_POOL_MAX;
    return resident(e) > cap + TR_SLAB_STACKS;
}

/* The most recently freed stacks the idle trim leaves alone. */
static unsigned hot_set(const tr_engine *e)
{
    return e->stk.keep > TR_STACK_POOL_HOT ? e->stk.keep : TR_STACK_POOL_HOT;
}

static void trim_owe(tr_engine *e, uint64_t at)
{
    if (!e->stk.trim_owed || at < e->stk.trim_at) {
        e->stk.trim_owed = true;
        e->stk.trim_at = at;
    }
}

void tr__stack_abandon(tr_engine *e, struct tr_stack *s)
{
    stack_fini(e, s);
    if (!s->slab) {
        free(s); /* its mapping stays: leaked on purpose */
        return;
    }
    s->slab->nabandoned++;
    TR_ASSERT(s->slab->nfree + s->slab->nabandoned <= TR_SLAB_STACKS);
}

void tr__stack_free(tr_engine *e, struct tr_stack *s)
{
    if (!s->slab) {
        stack_fini(e, s);
        if (s->guard == TR_GUARD_PAGE)
            guard_give_back(1);
        munmap(s->map, s->map_len);
        free(s);
        return;
    }
    struct tr_slab *sl = s->slab;
    TR_ASSERT(!s->pooled && !s->advised);
    s->pooled = true;
    s->free_since = e->sch.pass_ns;
    resident_push(e, s);
    e->stk.pool_len++;
    sl->nfree++;
    TR_ASSERT(sl->nfree <= TR_SLAB_STACKS);
    /* Not here: a 100k-task drain would pay a madvise per 64 ends (a third
     * of its time). The engine trims when it is about to wait, once the
     * surplus has lasted (a burst of ends, such as a cancel, must not pay
     * for it either). */
    if (sl->nfree == TR_SLAB_STACKS) {
        sl->free_since = e->sch.pass_ns;
        if (surplus(e))
            trim_owe(e, tr__add_sat(sl->free_since, TR_STACK_TRIM_DELAY_NS));
    }
    if (!e->stk.trim_owed && resident(e) > hot_set(e))
        trim_owe(e, tr__add_sat(e->stk.pool_tail->free_since, tr__stack_idle_trim_ns));
}

/* Gives the pages of s back. Whole pages: a canary stack's ends share a
 * page with its neighbours' (slab_stack_lo), which goes too when that
 * neighbour is pooled (its canary is written again when it is handed
 * out) or is none. */
static void stack_advise(tr_engine *e, struct tr_stack *s)
{
    uintptr_t ps = page_size(), lo = (uintptr_t)s->lo, hi = (uintptr_t)s->hi;
    const struct tr_slab *sl = s->slab;
    unsigned i = (unsigned)(s - sl->stacks);
    if (s->guard == TR_GUARD_NONE) {
        bool below_free = i == 0 || sl->stacks[i - 1].pooled;
        bool above_free = i + 1 == TR_SLAB_STACKS || sl->stacks[i + 1].pooled;
        lo = below_free ? lo & ~(ps - 1) : (lo + ps - 1) & ~(ps - 1);
        hi = above_free ? (hi + ps - 1) & ~(ps - 1) : hi & ~(ps - 1);
    }
    if (hi > lo)
        (void)madvise((void *)lo, hi - lo, MADV_DONTNEED);
    make_cold(e, s);
}

void tr__stack_trim(tr_engine *e, unsigned max, bool returning)
{
    if (!e->stk.trim_owed)
        return;
    uint64_t now = e->sch.pass_ns + TR_TRIM_SLACK_NS, next = 0;
    unsigned n = 0, slab_max = max / TR_SLAB_COST + (max % TR_SLAB_COST != 0);
    /* Beyond the pool's cap: wholly free slabs that have been so for
     * TR_STACK_TRIM_DELAY_NS (any, when the engine's run returns: no burst
     * of ends is to come), one madvise each. Bounded by the slabs and
     * by slab_max calls. */
    for (struct tr_slab *sl = e->stk.slabs; sl && surplus(e); sl = sl->next) {
        if (sl->nfree != TR_SLAB_STACKS || sl->nres == 0)
            continue;
        uint64_t due = returning ? 0 : tr__add_sat(sl->free_since, TR_STACK_TRIM_DELAY_NS);
        if (now < due) {
            next = next && next < due ? next : due;
            continue;
        }
        if (n == slab_max) {
            e->stk.trim_at = e->sch.pass_ns; /* more owed: the next wait trims on */
            return;
        }
        /* The mapping and its guard regions stay (MADV_DONTNEED keeps
         * guard markers), as do guard pages. */
        (void)madvise(sl->map, sl->map_len, MADV_DONTNEED);
        sl->advised = true;
        for (unsigned i = 0; i < TR_SLAB_STACKS; i++)
            if (!sl->stacks[i].advised)
                make_cold(e, &sl->stacks[i]);
        n++;
    }
    /* Beyond the hot set: the oldest pooled stacks (the resident list's
     * tail) that have stayed pooled for the idle delay, one madvise each.
     * Bounded by max calls; stops at the first one not ripe (all after
     * it are younger), whose time the next trim is owed at. */
    n = 0;
    while (resident(e) > hot_set(e)) {
        struct tr_stack *s = e->stk.pool_tail;
        uint64_t ripe = tr__add_sat(s->free_since, tr__stack_idle_trim_ns);
        if (now < ripe) {
            next = next && next < ripe ? next : ripe;
            break;
        }
        if (n == max) {
            e->stk.trim_at = e->sch.pass_ns;
            return;
        }
        stack_advise(e, s);
        n++;
    }
    e->stk.trim_owed = next != 0;
    e->stk.trim_at = next;
}

int tr__stack_prefill(tr_engine *e, unsigned n)
{
    e->stk.keep = n;
    /* Bounded by n stacks, a slab per TR_SLAB_STACKS of them. */
    while (resident(e) < n) {
        if (!e->stk.cold) {
            int err = slab_create(e);
            if (err)
                return err;
        }
        struct tr_stack *s = cold_pop(e);
        TR_ASSERT(s->pooled);
        /* The page a task's first frames are on (its top): faulted in now,
         * not at its first switch. */
        ((volatile char *)s->hi)[-1] = 0;
        s->free_since = e->sch.pass_ns;
        resident_push(e, s);
    }
    return 0;
}

void tr__stack_pool_drain(tr_engine *e)
{
    while (e->stk.slabs) {
        struct tr_slab *sl = e->stk.slabs;
        e->stk.slabs = sl->next;
        TR_ASSERT(sl->nfree + sl->nabandoned == TR_SLAB_STACKS);
        if (TR_UNLIKELY(sl->nabandoned > 0)) {
            /* A thread may still write into an abandoned stack: the
             * mapping stays (leaked, as the report says); the pooled
             * stacks' records go. */
            for (unsigned i = 0; i < TR_SLAB_STACKS; i++)
                if (sl->stacks[i].pooled)
                    stack_fini(e, &sl->stacks[i]);
            free(sl);
            continue;
        }
        for (unsigned i = 0; i < TR_SLAB_STACKS; i++)
            stack_fini(e, &sl->stacks[i]);
        if (sl->guard == TR_GUARD_PAGE)
            guard_give_back(TR_SLAB_STACKS);
        munmap(sl->map, sl->map_len);
        free(sl);
    }
    e->stk.pool = e->stk.pool_tail = e->stk.cold = NULL;
    e->stk.pool_len = 0;
    e->stk.advised = 0;
}

size_t tr__stack_round(size_t size)
{
    size_t ps = page_size();
    if (size > SIZE_MAX - ps)
        return 0;
    return (size + ps - 1) & ~(ps - 1);
}
