/* SPDX-License-Identifier: MIT */
/*
 * ctx_ucontext.c — PORTABLE FALLBACK for tr__ctx_switch and tr__ctx_make,
 * built on getcontext/makecontext/swapcontext.
 *
 * Used on architectures with no ctx_<arch>.S (anything but x86-64 and
 * AArch64), or anywhere when compiled with -DTR_CTX_UCONTEXT (ctx.c is then
 * empty and ctx_<arch>.S must not be linked), which is how it is tested on
 * x86-64 (tests/ctx_selftest.c).
 *
 * How the "stack pointer" maps onto ucontext_t: a saved context is a
 * ucontext_t, and the opaque sp handed around is its address.
 *   - tr__ctx_make places a ucontext_t (and the entry/arg pair) at the top
 *     of [lo, hi) and makecontext()s it onto the space below; the first
 *     switch to it starts tr__uc_start, which calls entry(arg). That
 *     ucontext_t is dead after the first switch, but it sits above the
 *     stack the task runs on, so nothing overwrites it before then.
 *   - tr__ctx_switch keeps a ucontext_t in its own frame on the current
 *     stack, stores its address in *save_sp and swapcontext()s to new_sp;
 *     switching back to *save_sp resumes inside that swapcontext.
 *
 * Costs and caveats, compared with the assembly versions:
 *   - Slow: glibc's swapcontext makes an rt_sigprocmask system call on every
 *     switch, and saves and restores far more state than needed.
 *   - The signal mask becomes per task (it is saved and restored with each
 *     context), as is the floating-point environment.
 *   - A ucontext_t is large (about 1 KiB on x86-64, 4.5 KiB on AArch64): it
 *     uses that much of every task's stack while the task is switched out.
 *   - makecontext passes only int arguments, so the pointer to the start
 *     record is split into two 32-bit halves.
 *   - getcontext and friends were removed from POSIX.1-2008; glibc still
 *     has them, musl does not (link libucontext there).
 */
#if defined(TR_CTX_UCONTEXT) || (!defined(__x86_64__) && !defined(__aarch64__))

#include "ctx.h"

#include <stdint.h>
#include <stdlib.h>
#include <ucontext.h>

/* What tr__ctx_make leaves at the top of a fresh stack. */
struct tr__uc_start_rec {
    ucontext_t uc; /* first member: its address is the returned "sp" */
    void (*entry)(void *);
    void *arg;
};

/* makecontext's target: called with the two halves of the record pointer. */
static void tr__uc_start(int hi_bits, int lo_bits)
{
    uintptr_t p = (uintptr_t)(((uint64_t)(uint32_t)hi_bits << 32) | (uint32_t)lo_bits);
    const struct tr__uc_start_rec *rec = (const struct tr__uc_start_rec *)p;
    rec->entry(rec->arg);
    abort(); /* entry never returns: a task ends by switching away */
}

void *tr__ctx_make(void *lo, void *hi, void (*entry)(void *), void *arg)
{
    /* The record's alignment is rounded up to 64 (a cache line, and at least
     * what any ucontext_t needs); everything below it is the task's stack. */
    uintptr_t top = ((uintptr_t)hi - sizeof(struct tr__uc_start_rec)) & ~(uintptr_t)63;
    struct tr__uc_start_rec *rec = (struct tr__uc_start_rec *)top;
    if (getcontext(&rec->uc) != 0)
        abort();
    rec->entry = entry;
    rec->arg = arg;
    rec->uc.uc_link = NULL;
    rec->uc.uc_stack.ss_sp = lo;
    rec->uc.uc_stack.ss_size = (size_t)(top - (uintptr_t)lo);
    rec->uc.uc_stack.ss_flags = 0;
    uint64_t p = (uint64_t)(uintptr_t)rec;
    /* The cast to void (*)(void) is what makecontext's prototype wants;
     * tr__uc_start really takes two ints, as the argc of 2 says. */
    makecontext(&rec->uc, (void (*)(void))tr__uc_start, 2, (int)(uint32_t)(p >> 32),
                (int)(uint32_t)p);
    return &rec->uc;
}

void tr__ctx_switch(void **save_sp, void *new_sp)
{
    ucontext_t self;
    *save_sp = &self;
    if (swapcontext(&self, (ucontext_t *)new_sp) != 0)
        abort();
}

#endif
