/* SPDX-License-Identifier: MIT */
/*
 * ctx_x86_64.S — the task context switch for x86-64 (System V ABI).
 *
 * ABI reference: System V AMD64 psABI, section 3.2.1 "Registers": rbx, rbp,
 * r12-r15 are callee-saved, as are the x87 control word and the MXCSR
 * control bits; everything else is caller-saved, so a C call to
 * tr__ctx_switch already assumes those are clobbered.
 *
 * Saved frame, from the new stack pointer upwards (64 bytes):
 *     [sp+0]  MXCSR (4 bytes), [sp+4] x87 control word (2 bytes, 2 unused)
 *     [sp+8]  r15   [sp+16] r14   [sp+24] r13   [sp+32] r12
 *     [sp+40] rbx   [sp+48] rbp   [sp+56] return address
 *
 * Pitfalls:
 *   - The stack must be 16-byte aligned at every `call`: tr__ctx_make
 *     (ctx.c) builds the first frame so that tr__ctx_trampoline's call
 *     happens with rsp % 16 == 0.
 *   - The trampoline marks rip undefined in its CFI so debuggers and
 *     unwinders stop there instead of walking off the top of the stack.
 *   - No red zone is at risk: the switch is a real call, so the compiler
 *     never keeps live data below rsp across it.
 */
    .text

/* void tr__ctx_switch(void **save_sp, void *new_sp) */
    .globl  tr__ctx_switch
    .hidden tr__ctx_switch
    .type   tr__ctx_switch, @function
    .p2align 4
tr__ctx_switch:
    .cfi_startproc
    pushq   %rbp
    pushq   %rbx
    pushq   %r12
    pushq   %r13
    pushq   %r14
    pushq   %r15
    subq    $8, %rsp
    stmxcsr (%rsp)
    fnstcw  4(%rsp)
    movq    %rsp, (%rdi)
    movq    %rsp, %rax
    movq    %rsi, %rsp
    /* Reload the control words only when they differ: ldmxcsr and fldcw
     * are slow, and tasks almost never change rounding or exception masks. */
    movl    (%rsp), %ecx
    cmpl    (%rax), %ecx
    je      1f
    ldmxcsr (%rsp)
1:  movzwl  4(%rsp), %ecx
    cmpw    4(%rax), %cx
    je      2f
    fldcw   4(%rsp)
2:  addq    $8, %rsp
    popq    %r15
    popq    %r14
    popq    %r13
    popq    %r12
    popq    %rbx
    popq    %rbp
    ret
    .cfi_endproc
    .size   tr__ctx_switch, .-tr__ctx_switch

/* First code on a fresh stack: r12 = entry, r13 = arg (from tr__ctx_make). */
    .globl  tr__ctx_trampoline
    .hidden tr__ctx_trampoline
    .type   tr__ctx_trampoline, @function
    .p2align 4
tr__ctx_trampoline:
    .cfi_startproc
    .cfi_undefined rip
    movq    %r13, %rdi
    callq   *%r12
    ud2     /* entry never returns: a task ends by switching away */
    .cfi_endproc
    .size   tr__ctx_trampoline, .-tr__ctx_trampoline

    .section .note.GNU-stack,"",@progbits
