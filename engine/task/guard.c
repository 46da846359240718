/* SPDX-License-Identifier: MIT */
/*
 * guard.c — making misuse loud (G8): stack overflows, smashed canaries and
 * failed invariants end the process with a message that names the task.
 *
 * The SIGSEGV handler runs on an alternate signal stack, because the stack
 * that overflowed has no room left. It recognises a fault on the running
 * task's guard page, writes one line to stderr with write(2) (nothing
 * else is async-signal-safe here) and restores the default action, so the
 * faulting instruction faults again and the process dies by SIGSEGV as it
 * would have without us. Any other fault goes to the handler that was
 * installed before ours.
 */
#include "tr_internal.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define TR_ALTSTACK_SIZE (64 * 1024)
/* A function whose frame is larger than one page can jump over the guard
 * page; faults this far below the stack still count as its overflow. */
#define TR_GUARD_SLACK (64 * 1024)

static struct sigaction old_segv;
static pthread_mutex_t install_lock = PTHREAD_MUTEX_INITIALIZER;
static TR_TLS bool altstack_done;

/* ---- async-signal-safe formatting -------------------------------------- */

struct tr__buf {
    char b[256];
    size_t n;
};

static void buf_str(struct tr__buf *b, const char *s)
{
    while (*s && b->n < sizeof(b->b) - 1)
        b->b[b->n++] = *s++;
}

static void buf_u64(struct tr__buf *b, uint64_t v, unsigned base)
{
    char tmp[24];
    int i = 0;
    do {
        tmp[i++] = "0123456789abcdef"[v % base];
        v /= base;
    } while (v && i < (int)sizeof(tmp));
    if (base == 16)
        buf_str(b, "0x");
    while (i > 0 && b->n < sizeof(b->b) - 1)
        b->b[b->n++] = tmp[--i];
}

static void buf_task(struct tr__buf *b, tr_task *t)
{
    buf_str(b, "task '");
    buf_str(b, tr_task_name(t));
    buf_str(b, "' (id ");
    buf_u64(b, t->id, 10);
    buf_str(b, ")");
}

static void buf_write(struct tr__buf *b)
{
    const char *p = b->b;
    size_t left = b->n;
    while (left > 0) {
        ssize_t w = write(STDERR_FILENO, p, left);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return;
        p += w;
        left -= (size_t)w;
    }
}

/* ---- SIGSEGV ------------------------------------------------------------ */

static bool on_guard(const tr_task *t, uintptr_t addr)
{
    if (!t || !t->stack)
        return false;
    uintptr_t lo = (uintptr_t)t->stack->lo;
    return addr < lo && addr + TR_GUARD_SLACK >= lo;
}

static TR_TLS int segv_depth;

static void segv_handler(int sig, siginfo_t *si, void *uctx)
{
    int saved = errno;
    tr_task *t = tr__current;
    /* In a direct switch the current task is already the next one while
     * the leaving one still pushes its last frame. */
    if (t && !on_guard(t, (uintptr_t)si->si_addr) && t->e->sch.switch_prev)
        t = t->e->sch.switch_prev;
    if (segv_depth++ > 0) {
        /* Re-entered: a chained handler chained back to us. Die plainly. */
        signal(SIGSEGV, SIG_DFL);
        segv_depth--;
        errno = saved;
        return;
    }
    if (on_guard(t, (uintptr_t)si->si_addr)) {
        struct tr__buf b = {.n = 0};
        buf_str(&b, "taskring: ");
        buf_task(&b, t);
        buf_str(&b, " overflowed its stack of ");
        buf_u64(&b, (uint64_t)((char *)t->stack->hi - (char *)t->stack->lo), 10);
        buf_str(&b, " bytes (fault at ");
        buf_u64(&b, (uint64_t)(uintptr_t)si->si_addr, 16);
        buf_str(&b, "); give it a larger tr_spawn_opts.stack_size\n");
        buf_write(&b);
        signal(SIGSEGV, SIG_DFL); /* the retried access kills us by SIGSEGV */
        segv_depth--;
        errno = saved;
        return;
    }
    /* Not ours: chain to whoever was there before. */
    if (old_segv.sa_flags & SA_SIGINFO) {
        if (old_segv.sa_sigaction) {
            old_segv.sa_sigaction(sig, si, uctx);
            segv_depth--;
            errno = saved;
            return;
        }
    } else if (old_segv.sa_handler != SIG_DFL && old_segv.sa_handler != SIG_IGN) {
        old_segv.sa_handler(sig);
        segv_depth--;
        errno = saved;
        return;
    }
    /* Default (or ignored, which the kernel does not honour for real
     * faults): fault again without us. */
    signal(SIGSEGV, SIG_DFL);
    segv_depth--;
    errno = saved;
}

/* (Re)installs the handler unless it is already in place: something (a
 * test framework, the application) may have restored an older handler
 * since the last engine was created. The handler that was there is the one
 * we chain to; it is never ourselves. */
static void install_handler(void)
{
    struct sigaction cur, sa;
    pthread_mutex_lock(&install_lock);
    if (sigaction(SIGSEGV, NULL, &cur) == 0 &&
        !((cur.sa_flags & SA_SIGINFO) && cur.sa_sigaction == segv_handler)) {
        memset(&sa, 0, sizeof(sa));
        sa.sa_sigaction = segv_handler;
        sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
        sigemptyset(&sa.sa_mask);
        old_segv = cur;
        sigaction(SIGSEGV, &sa, NULL);
    }
    pthread_mutex_unlock(&install_lock);
}

void tr__guard_thread_init(void)
{
    install_handler();
    if (altstack_done)
        return;
    stack_t cur;
    if (sigaltstack(NULL, &cur) == 0 && !(cur.ss_flags & SS_DISABLE) &&
        cur.ss_size >= (size_t)MINSIGSTKSZ) {
        altstack_done = true; /* the thread has one already (ASan makes its own) */
        return;
    }
    /* Lives as long as the thread: a signal can arrive at any time. */
    void *m =
        mmap(NULL, TR_ALTSTACK_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED)
        return; /* no overflow message then, but the fault still kills */
    stack_t ss = {.ss_sp = m, .ss_size = TR_ALTSTACK_SIZE, .ss_flags = 0};
    if (sigaltstack(&ss, NULL) == 0)
        altstack_done = true;
    else
        munmap(m, TR_ALTSTACK_SIZE);
}

/* ---- canary and asserts -------------------------------------------------- */

void tr__stack_canary_fail(tr_task *t)
{
    struct tr__buf b = {.n = 0};
    buf_str(&b, "taskring: ");
    buf_task(&b, t);
    buf_str(&b, " overflowed its unguarded stack of ");
    buf_u64(&b, (uint64_t)((char *)t->stack->hi - (char *)t->stack->lo), 10);
    buf_str(&b, " bytes (canary smashed); give it a larger tr_spawn_opts.stack_size\n");
    buf_write(&b);
    abort();
}

void tr__task_misuse_fail(const tr_task *t, const char *what)
{
    struct tr__buf b = {.n = 0};
    buf_str(&b, "taskring: ");
    buf_task(&b, (tr_task *)t);
    buf_str(&b, ": ");
    buf_str(&b, what);
    buf_str(&b, "\n");
    buf_write(&b);
    abort();
}

void tr__assert_fail(const char *expr, const char *file, int line, const char *func)
{
    struct tr__buf b = {.n = 0};
    buf_str(&b, "taskring: assertion failed: ");
    buf_str(&b, expr);
    buf_str(&b, " (");
    buf_str(&b, file);
    buf_str(&b, ":");
    buf_u64(&b, (uint64_t)line, 10);
    buf_str(&b, " in ");
    buf_str(&b, func);
    buf_str(&b, ")");
    if (tr__current) {
        buf_str(&b, " in ");
        buf_task(&b, tr__current);
    }
    buf_str(&b, "\n");
    buf_write(&b);
    abort();
}
