/* SPDX-License-Identifier: MIT */
/*
 * ctx.h — the stack-switching primitives, on their own so that ctx.c,
 * ctx_ucontext.c and tests/ctx_selftest.c build without liburing (a cross
 * toolchain usually has no liburing headers). tr_internal.h includes it.
 */
#ifndef TR_CTX_H
#define TR_CTX_H

/* Switches stacks: saves the callee-saved registers on the current stack,
 * stores the stack pointer in *save_sp, loads new_sp and restores from it.
 * Returns when something switches back to *save_sp. (ctx_<arch>.S, or
 * ctx_ucontext.c where no assembly exists or TR_CTX_UCONTEXT is defined) */
void tr__ctx_switch(void **save_sp, void *new_sp);

/* Prepares a fresh stack [lo, hi) so that switching to the returned stack
 * pointer calls entry(arg) on it. entry must never return. (ctx.c, or
 * ctx_ucontext.c) */
void *tr__ctx_make(void *lo, void *hi, void (*entry)(void *), void *arg);

#endif
