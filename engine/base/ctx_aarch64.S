/* SPDX-License-Identifier: MIT */
/*
 * ctx_aarch64.S — the task context switch for AArch64 (AAPCS64, Linux).
 *
 * ABI reference: "Procedure Call Standard for the Arm 64-bit Architecture"
 * (AAPCS64), section 6.1.1 "General-purpose Registers": x19-x28 are
 * callee-saved, x29 is the frame pointer and x30 (lr) the link register;
 * section 6.1.2 "SIMD and Floating-Point Registers": only the low 64 bits
 * (d8-d15) of v8-v15 are callee-saved; section 6.1.3 (FPCR/FPSR): the
 * FPCR's mode fields (rounding, flush-to-zero, default NaN, trap enables)
 * must be preserved across calls, the FPSR's cumulative flags need not be.
 * Everything else is caller-saved, so a C call to tr__ctx_switch already
 * assumes it is clobbered.
 *
 * Saved frame, from the new stack pointer upwards (176 bytes, 16-aligned):
 *     [sp+0]   x19  [sp+8]   x20  [sp+16]  x21  [sp+24]  x22
 *     [sp+32]  x23  [sp+40]  x24  [sp+48]  x25  [sp+56]  x26
 *     [sp+64]  x27  [sp+72]  x28  [sp+80]  x29  [sp+88]  x30 (return address)
 *     [sp+96]  d8   [sp+104] d9   [sp+112] d10  [sp+120] d11
 *     [sp+128] d12  [sp+136] d13  [sp+144] d14  [sp+152] d15
 *     [sp+160] FPCR (8 bytes)     [sp+168] unused (pads to 16)
 * tr__ctx_make (ctx.c, the __aarch64__ branch) builds the same frame with
 * x19 = entry, x20 = arg, x29 = 0, x30 = tr__ctx_trampoline, FPCR = 0.
 *
 * Pitfalls:
 *   - sp must be 16-byte aligned whenever it is used to address memory (the
 *     hardware faults otherwise, SCTLR_EL1.SA0 is set on Linux): the frame
 *     is a multiple of 16 and tr__ctx_make aligns the first one.
 *   - "Return" is `ret` (an x30 branch), so there is no return-address push
 *     as on x86-64: x30 is saved and restored like any other register, and
 *     a fresh stack starts at the trampoline because its frame's x30 says so.
 *   - The trampoline marks x30 undefined in its CFI, and starts with
 *     x29 = 0, so debuggers and unwinders stop there instead of walking off
 *     the top of the stack.
 *   - Writing FPCR can be slow (self-synchronising on some cores), so it is
 *     written only when the two contexts' values differ, which is almost
 *     never.
 *   - Only d8-d15 are saved, not q8-q15: the upper halves are caller-saved.
 *   - Branch protection: built with -mbranch-protection=bti/standard, each
 *     function starts with `bti c` (a NOP on older cores) and the object
 *     carries the GNU property note saying so; without the note the linker
 *     silently turns BTI off for the whole program. `ret` into the
 *     trampoline is not a BTI-checked branch. No lr signing is needed:
 *     tr__ctx_switch is a leaf that keeps x30 in its own frame.
 */
#if defined(__aarch64__) && !defined(TR_CTX_UCONTEXT)

#if defined(__ARM_FEATURE_BTI_DEFAULT) && __ARM_FEATURE_BTI_DEFAULT == 1
#define TR_BTI_C hint #34 /* bti c */
#define TR_FEATURE_BTI 1
#else
#define TR_BTI_C
#define TR_FEATURE_BTI 0
#endif
#if defined(__ARM_FEATURE_PAC_DEFAULT) && __ARM_FEATURE_PAC_DEFAULT != 0
#define TR_FEATURE_PAC 2
#else
#define TR_FEATURE_PAC 0
#endif

    .text

/* void tr__ctx_switch(void **save_sp, void *new_sp) */
    .globl  tr__ctx_switch
    .hidden tr__ctx_switch
    .type   tr__ctx_switch, %function
    .p2align 4
tr__ctx_switch:
    .cfi_startproc
    TR_BTI_C
    sub     sp, sp, #176
    .cfi_def_cfa_offset 176
    stp     x19, x20, [sp, #0]
    stp     x21, x22, [sp, #16]
    stp     x23, x24, [sp, #32]
    stp     x25, x26, [sp, #48]
    stp     x27, x28, [sp, #64]
    stp     x29, x30, [sp, #80]
    stp     d8,  d9,  [sp, #96]
    stp     d10, d11, [sp, #112]
    stp     d12, d13, [sp, #128]
    stp     d14, d15, [sp, #144]
    /* Both stacks hold the same frame layout, so these rules stay true
     * after sp moves to the new stack. */
    .cfi_offset x19, -176
    .cfi_offset x20, -168
    .cfi_offset x21, -160
    .cfi_offset x22, -152
    .cfi_offset x23, -144
    .cfi_offset x24, -136
    .cfi_offset x25, -128
    .cfi_offset x26, -120
    .cfi_offset x27, -112
    .cfi_offset x28, -104
    .cfi_offset x29, -96
    .cfi_offset x30, -88
    .cfi_offset d8,  -80
    .cfi_offset d9,  -72
    .cfi_offset d10, -64
    .cfi_offset d11, -56
    .cfi_offset d12, -48
    .cfi_offset d13, -40
    .cfi_offset d14, -32
    .cfi_offset d15, -24
    mrs     x9, fpcr
    str     x9, [sp, #160]
    mov     x10, sp
    str     x10, [x0]
    mov     sp, x1
    ldr     x10, [sp, #160]
    cmp     x9, x10
    b.eq    1f
    msr     fpcr, x10
1:
    ldp     x19, x20, [sp, #0]
    ldp     x21, x22, [sp, #16]
    ldp     x23, x24, [sp, #32]
    ldp     x25, x26, [sp, #48]
    ldp     x27, x28, [sp, #64]
    ldp     x29, x30, [sp, #80]
    ldp     d8,  d9,  [sp, #96]
    ldp     d10, d11, [sp, #112]
    ldp     d12, d13, [sp, #128]
    ldp     d14, d15, [sp, #144]
    add     sp, sp, #176
    .cfi_def_cfa_offset 0
    .cfi_restore x19
    .cfi_restore x20
    .cfi_restore x21
    .cfi_restore x22
    .cfi_restore x23
    .cfi_restore x24
    .cfi_restore x25
    .cfi_restore x26
    .cfi_restore x27
    .cfi_restore x28
    .cfi_restore x29
    .cfi_restore x30
    .cfi_restore d8
    .cfi_restore d9
    .cfi_restore d10
    .cfi_restore d11
    .cfi_restore d12
    .cfi_restore d13
    .cfi_restore d14
    .cfi_restore d15
    ret
    .cfi_endproc
    .size   tr__ctx_switch, .-tr__ctx_switch

/* First code on a fresh stack: x19 = entry, x20 = arg (from tr__ctx_make),
 * x29 = 0, sp 16-byte aligned. */
    .globl  tr__ctx_trampoline
    .hidden tr__ctx_trampoline
    .type   tr__ctx_trampoline, %function
    .p2align 4
tr__ctx_trampoline:
    .cfi_startproc
    .cfi_undefined x30
    TR_BTI_C
    mov     x0, x20
    blr     x19
    brk     #0x1    /* entry never returns: a task ends by switching away */
    .cfi_endproc
    .size   tr__ctx_trampoline, .-tr__ctx_trampoline

#if TR_FEATURE_BTI || TR_FEATURE_PAC
/* GNU_PROPERTY_AARCH64_FEATURE_1_AND: this object is BTI- and/or
 * PAC-compatible, so linking it does not turn those off. */
    .pushsection .note.gnu.property, "a"
    .balign 8
    .long   4                   /* name size ("GNU\0") */
    .long   16                  /* descriptor size */
    .long   5                   /* NT_GNU_PROPERTY_TYPE_0 */
    .asciz  "GNU"
    .long   0xc0000000          /* GNU_PROPERTY_AARCH64_FEATURE_1_AND */
    .long   4                   /* property data size */
    .long   (TR_FEATURE_BTI | TR_FEATURE_PAC)
    .long   0                   /* pad to 8 */
    .popsection
#endif

#endif /* __aarch64__ && !TR_CTX_UCONTEXT */

    .section .note.GNU-stack,"",%progbits
