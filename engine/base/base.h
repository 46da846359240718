/* SPDX-License-Identifier: MIT */
/*
 * base.h — what knows nothing of the engine: asserts, branch hints,
 * sanitizer and valgrind glue, intrusive lists, the context switch, the
 * fault-injection seam.
 */
#ifndef TR_BASE_H
#define TR_BASE_H

#include "taskring.h"
#include "ctx.h"

/* gcc says __SANITIZE_ADDRESS__/__SANITIZE_THREAD__; clang 14 only answers
 * __has_feature. The stack-switch annotations key on the gcc names. */
#if defined(__has_feature)
#if __has_feature(address_sanitizer) && !defined(__SANITIZE_ADDRESS__)
#define __SANITIZE_ADDRESS__ 1
#endif
#if __has_feature(thread_sanitizer) && !defined(__SANITIZE_THREAD__)
#define __SANITIZE_THREAD__ 1
#endif
#endif

#include <errno.h>
#include <liburing.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <sys/signalfd.h>
#include <stdlib.h>
#include <time.h>

/* Always on, in every build: a violated invariant is a bug, and limping on
 * after one risks the kernel writing into reused memory. */
#define TR_ASSERT(cond)                                                                            \
    do {                                                                                           \
        if (__builtin_expect(!(cond), 0))                                                          \
            tr__assert_fail(#cond, __FILE__, __LINE__, __func__);                                  \
    } while (0)

__attribute__((noreturn, cold)) void tr__assert_fail(const char *expr, const char *file, int line,
                                                     const char *func);

/* The kernel fills read buffers behind valgrind's back: tell it, so that
 * memcheck needs no suppressions for them. Free without valgrind.h. */
/* TR_VG_INIT_CHECK: caller storage the engine reads before it trusts it
 * (an uninitialised scope or primitive, whose bytes are only compared):
 * defined if addressable — memory that is not stays an error. On the hot
 * path of every tr_scope_enter: only under valgrind (tr__on_valgrind, set
 * once at load) does it make the client request, out of line: its argument
 * block and magic sequence cost ~15 instructions and a frame natively. */
#if defined(TR_HAVE_VALGRIND_H)
#include <valgrind/memcheck.h>
extern bool tr__on_valgrind;
#define TR_VG_DEFINED(p, n) ((void)VALGRIND_MAKE_MEM_DEFINED((p), (n)))
__attribute__((cold, noinline)) void tr__vg_init_check(const void *p, size_t n);
#define TR_VG_INIT_CHECK(p, n)                                                                     \
    (TR_UNLIKELY(tr__on_valgrind) ? tr__vg_init_check((p), (n)) : (void)0)
#define TR_VG_ACTIVE tr__on_valgrind /* for a fast path that leaves the check to its slow one */
#else
#define TR_VG_DEFINED(p, n) ((void)0)
#define TR_VG_INIT_CHECK(p, n) ((void)0)
#define TR_VG_ACTIVE false
#endif

#define TR_UNLIKELY(x) __builtin_expect(!!(x), 0)
#define TR_LIKELY(x) __builtin_expect(!!(x), 1)

/* The engine's thread-locals. initial-exec: one load from the thread
 * pointer, also in the shared library, whose default model (PIC: general
 * dynamic) calls __tls_get_addr at every access — tr__current is read by
 * every blocking call, and the SIGSEGV handler's depth counter must not
 * call into the dynamic linker. The cost: libtaskring.so loaded by dlopen
 * needs its few bytes from glibc's static TLS surplus (there by default). */
#define TR_TLS __thread __attribute__((tls_model("initial-exec")))

#define TR_STACK_MIN ((size_t)16 * 1024)
#define TR_STACK_DEFAULT ((size_t)64 * 1024)
#define TR_NAME_MAX 32

/* ------------------------------------------------------------ contexts */

/* Switches stacks: saves the callee-saved registers on the current stack,
 * stores the stack pointer in *save_sp, loads new_sp and restores from it.
 * Returns when something switches back to *save_sp. (ctx_<arch>.S) */
void tr__ctx_switch(void **save_sp, void *new_sp);

/* Prepares a fresh stack [lo, hi) so that switching to the returned stack
 * pointer calls entry(arg) on it. entry must never return. */
void *tr__ctx_make(void *lo, void *hi, void (*entry)(void *), void *arg);

/* ---------------------------------------------------------------- lists */

/* An intrusive doubly linked list: a head is a link whose prev/next point
 * at itself when empty. */
struct tr__link {
    struct tr__link *prev, *next;
};

/* A mutex held only for a few stores by threads that meet on it (an
 * engine's inbox, a shared channel, an offload lane): adaptive, since
 * sleeping in the kernel at once when it is taken costs more than the
 * hold. 0 or -errno. */
static inline int tr__mutex_init_adaptive(pthread_mutex_t *m)
{
    pthread_mutexattr_t at;
    pthread_mutexattr_init(&at);
    pthread_mutexattr_settype(&at, PTHREAD_MUTEX_ADAPTIVE_NP);
    int err = pthread_mutex_init(m, &at);
    pthread_mutexattr_destroy(&at);
    return -err;
}

/* A busy-wait's pause (one round of a spin). */
static inline void tr__cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield" ::: "memory");
#endif
}

/* a + b, UINT64_MAX when it would not fit (a deadline past the clock's
 * end is "never"). */
static inline uint64_t tr__add_sat(uint64_t a, uint64_t b)
{
    return a > UINT64_MAX - b ? UINT64_MAX : a + b;
}

static inline void tr__list_init(struct tr__link *h)
{
    h->prev = h->next = h;
}

static inline bool tr__list_empty(const struct tr__link *h)
{
    return h->next == h;
}

static inline void tr__list_add_tail(struct tr__link *h, struct tr__link *l)
{
    l->prev = h->prev;
    l->next = h;
    h->prev->next = l;
    h->prev = l;
}

static inline void tr__list_del(struct tr__link *l)
{
    l->prev->next = l->next;
    l->next->prev = l->prev;
    l->prev = l->next = l;
}

#define tr__container_of(ptr, type, member) ((type *)(void *)((char *)(ptr)-offsetof(type, member)))

struct tr_op; /* the fault seam rewrites a CQE for one (io.h) */
/* ----------------------------------------------------------------- faults */

/* Fault injection (fault.c), only in TR_FAULT_INJECTION builds. */
enum tr__fault_site {
    TR_FS_ALLOC = 0, /* task record, stack, op slots, timer heap, hooks: -ENOMEM */
    TR_FS_GET_SQE,   /* io_uring_get_sqe finds the SQ full */
    TR_FS_SUBMIT,    /* io_uring_enter fails with the plan's error, submitting nothing */
    TR_FS_CQE,       /* a task op's CQE result is rewritten (cqe_mode) */
    TR_FS__COUNT
};
enum { TR_FAULT_CQE_EINTR = 1, TR_FAULT_CQE_SHORT = 2, TR_FAULT_CQE_ECANCELED = 3 };
#define TR_FAULT_BIT(site) (1u << (site))
#if defined(TR_FAULT_INJECTION)
/* The countdown-th call at a site in `sites` fails, and the burst - 1 after
 * it (burst 0: every later one). submit_err: -EBUSY, -EAGAIN or -EINTR. */
void tr__fault_arm(unsigned sites, uint64_t countdown, uint64_t burst, int submit_err,
                   int cqe_mode);
void tr__fault_disarm(void);
uint64_t tr__fault_calls(enum tr__fault_site site);
uint64_t tr__fault_injected(void);
bool tr__fault(enum tr__fault_site site);
int tr__fault_submit_err(void);
int32_t tr__fault_cqe(const struct tr_op *op, int32_t res);
#define TR_FAULT(site) TR_UNLIKELY(tr__fault(site))
#else
#define TR_FAULT(site) false
#endif

#endif /* TR_BASE_H */
