/* SPDX-License-Identifier: MIT */
/*
 * ctx.c — building a task's first frame, one branch per architecture. The
 * switch itself is in ctx_<arch>.S; ctx_ucontext.c is the portable
 * fallback (other architectures, or any with -DTR_CTX_UCONTEXT) and defines
 * its own tr__ctx_make, so this file is then empty.
 */
#include "ctx.h"

#include <stdint.h>

#if defined(TR_CTX_UCONTEXT)

/* ctx_ucontext.c has tr__ctx_make. */

#elif defined(__x86_64__)

void tr__ctx_trampoline(void);

void *tr__ctx_make(void *lo, void *hi, void (*entry)(void *), void *arg)
{
    (void)lo;
    /* X is 16-byte aligned; the trampoline is "returned to" with rsp == X,
     * so its call to entry happens with rsp % 16 == 0 as the ABI wants. */
    uintptr_t x = ((uintptr_t)hi - 16) & ~(uintptr_t)15;
    uint64_t *f = (uint64_t *)(x - 64);
    f[7] = (uint64_t)(uintptr_t)tr__ctx_trampoline; /* return address */
    f[6] = 0;                                       /* rbp: ends frame-pointer walks */
    f[5] = 0;                                       /* rbx */
    f[4] = (uint64_t)(uintptr_t)entry;              /* r12 */
    f[3] = (uint64_t)(uintptr_t)arg;                /* r13 */
    f[2] = 0;                                       /* r14 */
    f[1] = 0;                                       /* r15 */
    /* The default MXCSR (all exceptions masked, round to nearest) and x87
     * control word (extended precision, all exceptions masked). */
    f[0] = 0x1F80u | ((uint64_t)0x037Fu << 32);
    return f;
}

#elif defined(__aarch64__)

void tr__ctx_trampoline(void);

/* The frame ctx_aarch64.S pops, in 8-byte slots (176 bytes). */
enum {
    TR_A64_X19 = 0, /* x19..x28 in slots 0..9 */
    TR_A64_X20 = 1,
    TR_A64_X29 = 10,
    TR_A64_X30 = 11,
    TR_A64_D8 = 12, /* d8..d15 in slots 12..19 */
    TR_A64_FPCR = 20,
    TR_A64_SLOTS = 22 /* slot 21 pads the frame to a multiple of 16 */
};

void *tr__ctx_make(void *lo, void *hi, void (*entry)(void *), void *arg)
{
    (void)lo;
    /* sp must be 16-byte aligned whenever it is used (the hardware checks
     * it): X is, and the frame is a multiple of 16, so both the returned sp
     * and the trampoline's sp (== X, after the switch pops the frame) are. */
    uintptr_t x = (uintptr_t)hi & ~(uintptr_t)15;
    uint64_t *f = (uint64_t *)(x - TR_A64_SLOTS * sizeof(uint64_t));
    for (int i = 0; i < TR_A64_SLOTS; i++)
        f[i] = 0; /* x21-x28, d8-d15: no meaning yet */
    f[TR_A64_X19] = (uint64_t)(uintptr_t)entry;
    f[TR_A64_X20] = (uint64_t)(uintptr_t)arg;
    f[TR_A64_X29] = 0; /* frame pointer: ends frame-record walks */
    f[TR_A64_X30] = (uint64_t)(uintptr_t)tr__ctx_trampoline; /* "returned" to */
    /* FPCR 0 is the Linux default: round to nearest, no traps, no
     * flush-to-zero, no default NaN. */
    f[TR_A64_FPCR] = 0;
    return f;
}

#else

/* No assembly for this architecture: ctx_ucontext.c has tr__ctx_make. */

#endif
