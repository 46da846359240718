/* SPDX-License-Identifier: MIT */
/*
 * ctx_selftest.c — a standalone check of the stack switch (engine/base/ctx*.c,
 * engine/base/ctx_<arch>.S): no cmocka, no io_uring, no engine. Two coroutines
 * on mmap'd 64 KiB stacks (guard page below) and the main stack switch back
 * and forth; the program checks that
 *   - values live across a switch survive (integer and floating-point
 *     locals under -O2, which the compiler keeps in callee-saved registers
 *     where it can: rbx/rbp/r12-r15 on x86-64, x19-x29 and d8-d15 on
 *     AArch64),
 *   - every callee-saved register survives, set to known patterns and
 *     compared after the switch by a small assembly helper (x86-64 and
 *     AArch64 only), while the other side scrambles them,
 *   - a recursion that switches away at every level finds its frames
 *     intact when it unwinds,
 *   - coroutine-to-coroutine switches work,
 *   - the stack is 16-byte aligned inside the entry and deeper,
 *   - the floating-point rounding mode is per context: a new context starts
 *     with the default, and each side keeps its own across switches,
 * and prints "ctx ok <arch> <ns per switch>" (timed over 1,000,000 plain
 * switches) and exits 0, or prints what failed and exits 1.
 *
 * Build and run, from the repository root (needs only a C compiler and
 * libm; for AArch64, Debian's gcc-aarch64-linux-gnu, libc6-dev-arm64-cross
 * and qemu-user):
 *   gcc -O2 -I engine/base tests/ctx_selftest.c engine/base/ctx.c engine/base/ctx_x86_64.S -lm
 *   gcc -O2 -DTR_CTX_UCONTEXT -I engine/base tests/ctx_selftest.c engine/base/ctx.c \
 *       engine/base/ctx_ucontext.c -lm
 *   aarch64-linux-gnu-gcc -O2 -static -I engine/base tests/ctx_selftest.c \
 *       engine/base/ctx.c engine/base/ctx_aarch64.S -lm && qemu-aarch64 ./a.out
 */
#define _GNU_SOURCE
#include <fenv.h>
#include <stdalign.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

/* The two functions under test (engine/base/ctx.h declares the same). */
void tr__ctx_switch(void **save_sp, void *new_sp);
void *tr__ctx_make(void *lo, void *hi, void (*entry)(void *), void *arg);

#if defined(TR_CTX_UCONTEXT)
#define VARIANT "-ucontext"
#else
#define VARIANT ""
#endif
#if defined(__x86_64__)
#define ARCH "x86_64" VARIANT
#elif defined(__aarch64__)
#define ARCH "aarch64" VARIANT
#else
#define ARCH "other" VARIANT
#endif

#define STACK_SIZE ((size_t)64 * 1024)
#define SWITCHES 1000000L   /* timed: main <-> A, main <-> B */
#define PING (SWITCHES / 4) /* each round: 4 switches */
#define REG_ROUNDS 20000    /* register-pattern round trips */
#define REC_DEPTH 200       /* recursion levels, each switching away */
#define RING_ROUNDS 10000   /* main -> A -> B -> main */

static int failures;
#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "ctx_selftest: %s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
            failures++;                                                                            \
        }                                                                                          \
    } while (0)

/* ------------------------------------------------ callee-saved patterns */

/* uint64_t tr_test_switch(void **save, void *to, uint64_t seed): sets every
 * callee-saved register to seed + k, calls tr__ctx_switch(save, to) and
 * returns the OR of (register ^ expected) over them: 0 when all survived. */
#if defined(__x86_64__)
#define HAVE_TEST_SWITCH 1
__asm__(".pushsection .text\n"
        ".p2align 4\n"
        ".type tr_test_switch, @function\n"
        "tr_test_switch:\n"
        ".cfi_startproc\n"
        "pushq %rbp\n"
        "pushq %rbx\n"
        "pushq %r12\n"
        "pushq %r13\n"
        "pushq %r14\n"
        "pushq %r15\n"
        "pushq %rdx\n" /* seed; 7 pushes + return address: rsp % 16 == 0 */
        ".cfi_def_cfa_offset 64\n"
        "leaq 1(%rdx), %rbx\n"
        "leaq 2(%rdx), %rbp\n"
        "leaq 3(%rdx), %r12\n"
        "leaq 4(%rdx), %r13\n"
        "leaq 5(%rdx), %r14\n"
        "leaq 6(%rdx), %r15\n"
        "call tr__ctx_switch@PLT\n"
        "movq (%rsp), %rcx\n"
        "leaq 1(%rcx), %rax\n xorq %rbx, %rax\n"
        "leaq 2(%rcx), %rdx\n xorq %rbp, %rdx\n orq %rdx, %rax\n"
        "leaq 3(%rcx), %rdx\n xorq %r12, %rdx\n orq %rdx, %rax\n"
        "leaq 4(%rcx), %rdx\n xorq %r13, %rdx\n orq %rdx, %rax\n"
        "leaq 5(%rcx), %rdx\n xorq %r14, %rdx\n orq %rdx, %rax\n"
        "leaq 6(%rcx), %rdx\n xorq %r15, %rdx\n orq %rdx, %rax\n"
        "popq %rdx\n"
        "popq %r15\n"
        "popq %r14\n"
        "popq %r13\n"
        "popq %r12\n"
        "popq %rbx\n"
        "popq %rbp\n"
        ".cfi_def_cfa_offset 8\n"
        "ret\n"
        ".cfi_endproc\n"
        ".size tr_test_switch, .-tr_test_switch\n"
        ".popsection\n");
#elif defined(__aarch64__)
#define HAVE_TEST_SWITCH 1
/* x19-x28 = seed+1..10, x29 = seed+11, d8-d15 = (bits) seed+12..19. */
__asm__(".pushsection .text\n"
        ".p2align 4\n"
        ".type tr_test_switch, %function\n"
        "tr_test_switch:\n"
        ".cfi_startproc\n"
        "stp x29, x30, [sp, #-176]!\n"
        ".cfi_def_cfa_offset 176\n"
        ".cfi_offset x29, -176\n"
        ".cfi_offset x30, -168\n"
        "stp x19, x20, [sp, #16]\n"
        "stp x21, x22, [sp, #32]\n"
        "stp x23, x24, [sp, #48]\n"
        "stp x25, x26, [sp, #64]\n"
        "stp x27, x28, [sp, #80]\n"
        "stp d8, d9, [sp, #96]\n"
        "stp d10, d11, [sp, #112]\n"
        "stp d12, d13, [sp, #128]\n"
        "stp d14, d15, [sp, #144]\n"
        "str x2, [sp, #160]\n"
        ".irp n,19,20,21,22,23,24,25,26,27,28,29\n"
        "add x\\n, x2, #(\\n - 18)\n"
        ".endr\n"
        ".irp n,8,9,10,11,12,13,14,15\n"
        "add x9, x2, #(\\n + 4)\n"
        "fmov d\\n, x9\n"
        ".endr\n"
        "bl tr__ctx_switch\n"
        "ldr x2, [sp, #160]\n"
        "mov x0, #0\n"
        ".irp n,19,20,21,22,23,24,25,26,27,28,29\n"
        "add x9, x2, #(\\n - 18)\n"
        "eor x9, x9, x\\n\n"
        "orr x0, x0, x9\n"
        ".endr\n"
        ".irp n,8,9,10,11,12,13,14,15\n"
        "add x9, x2, #(\\n + 4)\n"
        "fmov x10, d\\n\n"
        "eor x9, x9, x10\n"
        "orr x0, x0, x9\n"
        ".endr\n"
        "ldp x19, x20, [sp, #16]\n"
        "ldp x21, x22, [sp, #32]\n"
        "ldp x23, x24, [sp, #48]\n"
        "ldp x25, x26, [sp, #64]\n"
        "ldp x27, x28, [sp, #80]\n"
        "ldp d8, d9, [sp, #96]\n"
        "ldp d10, d11, [sp, #112]\n"
        "ldp d12, d13, [sp, #128]\n"
        "ldp d14, d15, [sp, #144]\n"
        "ldp x29, x30, [sp], #176\n"
        ".cfi_def_cfa_offset 0\n"
        "ret\n"
        ".cfi_endproc\n"
        ".size tr_test_switch, .-tr_test_switch\n"
        ".popsection\n");
#endif
#if defined(HAVE_TEST_SWITCH)
uint64_t tr_test_switch(void **save, void *to, uint64_t seed);
#else
/* No helper for this architecture: only the C-level checks run. */
static uint64_t tr_test_switch(void **save, void *to, uint64_t seed)
{
    (void)seed;
    tr__ctx_switch(save, to);
    return 0;
}
#endif

/* ------------------------------------------------------------ plumbing */

struct co {
    void *sp;
    int id;
    int done;
    void *map;
    int initial_round_ok; /* the rounding mode a new context starts with */
};

static void *main_sp;
static struct co co[2];

static inline void yield_to_main(struct co *c)
{
    tr__ctx_switch(&c->sp, main_sp);
}
static inline void resume(struct co *c)
{
    tr__ctx_switch(&main_sp, c->sp);
}

/* An address the compiler cannot reason about, so alignment checks are
 * real checks and not folded to "true" from what the ABI promises. */
static uintptr_t opaque_addr(const volatile void *p)
{
    uintptr_t a = (uintptr_t)p;
    __asm__ volatile("" : "+r"(a));
    return a;
}

__attribute__((noinline)) static void check_alignment(void)
{
    alignas(16) volatile unsigned char probe[16];
    probe[0] = 1;
    CHECK((opaque_addr(probe) & 15) == 0);
    CHECK((opaque_addr(__builtin_frame_address(0)) & 15) == 0);
}

/* The rounding mode. On x86-64 fegetround reads only the x87 control word,
 * so the SSE one (MXCSR, what double arithmetic uses) is compared too: a
 * mismatch reads as -1. */
static int cur_round(void)
{
    int r = fegetround();
#if defined(__x86_64__)
    unsigned mxcsr = __builtin_ia32_stmxcsr();
    if ((int)((mxcsr >> 3) & 0xc00u) != r) /* MXCSR.RC is bits 13-14 */
        return -1;
#endif
    return r;
}

/* xorshift64: a sequence the compiler cannot turn into a closed form. */
static inline uint64_t step(uint64_t x)
{
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return x;
}

/* The same computation as the loops below, without switches. Only
 * additions of small integers on the doubles: exact, whatever
 * floating-point contraction the compiler does. */
struct live {
    uint64_t x[6];
    double f[8];
};

__attribute__((noinline)) static void reference(struct live *l, uint64_t seed, long n)
{
    uint64_t x0 = seed, x1 = seed ^ 1, x2 = seed ^ 2, x3 = seed ^ 3, x4 = seed ^ 4, x5 = seed ^ 5;
    double f0 = 0, f1 = 1, f2 = 2, f3 = 3, f4 = 4, f5 = 5, f6 = 6, f7 = 7;
    for (long i = 0; i < n; i++) {
        x0 = step(x0);
        x1 = step(x1 + x0);
        x2 = step(x2 ^ x1);
        x3 = step(x3 + x2);
        x4 = step(x4 ^ x3);
        x5 = step(x5 + x4);
        f0 += (double)(x0 & 255);
        f1 += (double)(x1 & 255);
        f2 += (double)(x2 & 255);
        f3 += (double)(x3 & 255);
        f4 += (double)(x4 & 255);
        f5 += (double)(x5 & 255);
        f6 += (double)(x0 & 15);
        f7 += (double)(x5 & 15);
    }
    l->x[0] = x0;
    l->x[1] = x1;
    l->x[2] = x2;
    l->x[3] = x3;
    l->x[4] = x4;
    l->x[5] = x5;
    l->f[0] = f0;
    l->f[1] = f1;
    l->f[2] = f2;
    l->f[3] = f3;
    l->f[4] = f4;
    l->f[5] = f5;
    l->f[6] = f6;
    l->f[7] = f7;
}

static void check_live(const struct live *got, uint64_t seed, long n)
{
    struct live want;
    reference(&want, seed, n);
    for (int i = 0; i < 6; i++)
        CHECK(got->x[i] == want.x[i]);
    for (int i = 0; i < 8; i++)
        CHECK(got->f[i] == want.f[i]);
}

/* A recursion that switches away at every level, before and after the
 * call, and checks on the way back that its frame is intact. */
static uint64_t rec_plain(int depth)
{
    if (depth == 0)
        return 1;
    return rec_plain(depth - 1) * 3 + (uint64_t)depth;
}

__attribute__((noinline)) static uint64_t rec(struct co *c, int depth)
{
    volatile uint64_t tag[4];
    for (int i = 0; i < 4; i++)
        tag[i] = (uint64_t)depth * 0x9E3779B97F4A7C15u + (uint64_t)i + (uint64_t)c->id;
    if (depth % 50 == 0)
        check_alignment();
    yield_to_main(c);
    if (depth == 0)
        return 1;
    uint64_t r = rec(c, depth - 1);
    yield_to_main(c);
    for (int i = 0; i < 4; i++)
        CHECK(tag[i] == (uint64_t)depth * 0x9E3779B97F4A7C15u + (uint64_t)i + (uint64_t)c->id);
    return r * 3 + (uint64_t)depth;
}

#define SEED_MAIN 0x0123456789abcdefu
#define SEED_CO(id) (0xfedcba9876543210u + (uint64_t)(id))

/* ------------------------------------------------------------ coroutine */

static void co_entry(void *arg)
{
    struct co *c = arg;

    /* 0. Alignment; a fresh context's default rounding mode; its own mode. */
    check_alignment();
    c->initial_round_ok = cur_round() == FE_TONEAREST;
    int mine = c->id == 0 ? FE_UPWARD : FE_DOWNWARD;
    fesetround(mine);
    yield_to_main(c);
    CHECK(cur_round() == mine);
    fesetround(FE_TONEAREST);
    yield_to_main(c);

    /* 1. Timed ping-pong with live integer and floating-point locals. */
    {
        uint64_t seed = SEED_CO(c->id);
        uint64_t x0 = seed, x1 = seed ^ 1, x2 = seed ^ 2, x3 = seed ^ 3, x4 = seed ^ 4,
                 x5 = seed ^ 5;
        double f0 = 0, f1 = 1, f2 = 2, f3 = 3, f4 = 4, f5 = 5, f6 = 6, f7 = 7;
        for (long i = 0; i < PING; i++) {
            x0 = step(x0);
            x1 = step(x1 + x0);
            x2 = step(x2 ^ x1);
            x3 = step(x3 + x2);
            x4 = step(x4 ^ x3);
            x5 = step(x5 + x4);
            f0 += (double)(x0 & 255);
            f1 += (double)(x1 & 255);
            f2 += (double)(x2 & 255);
            f3 += (double)(x3 & 255);
            f4 += (double)(x4 & 255);
            f5 += (double)(x5 & 255);
            f6 += (double)(x0 & 15);
            f7 += (double)(x5 & 15);
            yield_to_main(c);
        }
        struct live l = {{x0, x1, x2, x3, x4, x5}, {f0, f1, f2, f3, f4, f5, f6, f7}};
        check_live(&l, seed, PING);
    }

    /* 2. Register patterns, scrambled from this side too. */
    for (uint64_t i = 0; i < REG_ROUNDS; i++)
        CHECK(tr_test_switch(&c->sp, main_sp, (i + 1) * 0xC2B2AE3D27D4EB4Fu + (uint64_t)c->id) ==
              0);

    /* 3. Recursion. */
    CHECK(rec(c, REC_DEPTH) == rec_plain(REC_DEPTH));

    /* 4. Ring: main -> A -> B -> main. */
    for (int i = 0; i < RING_ROUNDS; i++) {
        if (c->id == 0)
            tr__ctx_switch(&c->sp, co[1].sp);
        else
            yield_to_main(c);
    }

    c->done = 1;
    for (;;)
        yield_to_main(c); /* entry never returns */
}

static void make_co(struct co *c, int id)
{
    long page = sysconf(_SC_PAGESIZE);
    size_t guard = (size_t)page;
    unsigned char *map = mmap(NULL, STACK_SIZE + guard, PROT_READ | PROT_WRITE,
                              MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
    if (map == MAP_FAILED) {
        perror("mmap");
        exit(1);
    }
    if (mprotect(map, guard, PROT_NONE) != 0) {
        perror("mprotect");
        exit(1);
    }
    memset(c, 0, sizeof *c);
    c->id = id;
    c->map = map;
    /* An odd hi: tr__ctx_make must align it itself. */
    c->sp = tr__ctx_make(map + guard, map + guard + STACK_SIZE - 8, co_entry, c);
}

static double now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

int main(void)
{
    make_co(&co[0], 0);
    make_co(&co[1], 1);

    /* 0. Rounding modes: main's survives, a new context starts with the
     * default, each side keeps its own. */
    fesetround(FE_TOWARDZERO);
    for (int k = 0; k < 2; k++) {
        resume(&co[k]);
        CHECK(cur_round() == FE_TOWARDZERO);
        CHECK(co[k].initial_round_ok);
    }
    for (int k = 0; k < 2; k++) {
        resume(&co[k]);
        CHECK(cur_round() == FE_TOWARDZERO);
    }
    fesetround(FE_TONEAREST);

    /* 1. Timed ping-pong: 4 switches a round, live locals on this side too. */
    double t0 = now_ns();
    {
        uint64_t seed = SEED_MAIN;
        uint64_t x0 = seed, x1 = seed ^ 1, x2 = seed ^ 2, x3 = seed ^ 3, x4 = seed ^ 4,
                 x5 = seed ^ 5;
        double f0 = 0, f1 = 1, f2 = 2, f3 = 3, f4 = 4, f5 = 5, f6 = 6, f7 = 7;
        for (long i = 0; i < PING; i++) {
            x0 = step(x0);
            x1 = step(x1 + x0);
            x2 = step(x2 ^ x1);
            x3 = step(x3 + x2);
            x4 = step(x4 ^ x3);
            x5 = step(x5 + x4);
            f0 += (double)(x0 & 255);
            f1 += (double)(x1 & 255);
            f2 += (double)(x2 & 255);
            f3 += (double)(x3 & 255);
            f4 += (double)(x4 & 255);
            f5 += (double)(x5 & 255);
            f6 += (double)(x0 & 15);
            f7 += (double)(x5 & 15);
            resume(&co[0]);
            resume(&co[1]);
        }
        t0 = now_ns() - t0;
        struct live l = {{x0, x1, x2, x3, x4, x5}, {f0, f1, f2, f3, f4, f5, f6, f7}};
        check_live(&l, seed, PING);
    }
    double ns_per_switch = t0 / (double)(PING * 4);

    /* 2. Register patterns. */
    for (uint64_t i = 0; i < REG_ROUNDS; i++)
        for (int k = 0; k < 2; k++)
            CHECK(tr_test_switch(&main_sp, co[k].sp, (i + 1) * 0x9E3779B97F4A7C15u + (uint64_t)k) ==
                  0);

    /* 3. Recursion: 2 * REC_DEPTH + 1 yields each, the last of which also
     * ends step 2 on the coroutine's side. */
    for (int k = 0; k < 2; k++)
        for (int n = 0; n < 2 * REC_DEPTH + 1; n++)
            resume(&co[k]);

    /* 4. Ring: A's switches go to B, B's come back here. The coroutines
     * run their recursion's last part and enter the ring on the first
     * resume. B needs one resume of its own to get there first. */
    resume(&co[1]);
    for (int i = 0; i < RING_ROUNDS; i++)
        resume(&co[0]);
    resume(&co[0]);
    resume(&co[1]);
    CHECK(co[0].done && co[1].done);

    if (failures) {
        fprintf(stderr, "ctx_selftest: %d check(s) failed\n", failures);
        return 1;
    }
    printf("ctx ok %s %.1f\n", ARCH, ns_per_switch);
    return 0;
}
