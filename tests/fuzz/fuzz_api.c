/* SPDX-License-Identifier: MIT */
/*
 * fuzz_api.c — a libFuzzer target for taskring's public API.
 *
 * Each input is a small bytecode program. A fresh engine runs a "driver"
 * task that interprets it; the program may spawn workers (and register
 * at-shutdown hooks) whose own programs are slices of the input, and every
 * task does ring ops on a few fds made for the input (2 pipes, 1
 * socketpair, 1 memfd), cancels, shields, joins, detaches, shuts down.
 * Every result is checked against the contract of include/taskring.h and
 * DESIGN.md (G1-G7); after the run the quiescence audit (G2) must pass,
 * tr_engine_destroy must return 0 and no fd may leak. Any failed check
 * aborts with a message naming it, which is what libFuzzer reports.
 *
 * Input layout
 *   byte 0  engine config: bits 0-2 sq_entries {1,2,4,8,16,8,16,4},
 *           bits 3-4 grace_ms {0,2,5,10}, bits 5-6 kill_ms {0,1,3,5},
 *           bit 7 a second tr_engine_run after the first (spawns after a
 *           finished shutdown start cancelled)
 *   byte 1  bits 0-1 drain_ms {0,0,1,2}, bit 2 cq_entries = sq_entries
 *           (the engine raises it to 2 * sq: tiny CQs, overflow paths)
 *   rest    the driver's program (at most FZ_MAX_INPUT bytes in all)
 *
 * A program is a sequence of ops, one opcode byte (mod FZ_NOPS) then its
 * argument bytes (missing bytes read as 0). A task runs at most FZ_MAX_OPS
 * ops, then returns 0. Arguments: ep = endpoint (mod 8: pipe0 r/w, pipe1
 * r/w, sock0, sock1, memfd, fd -1), n = byte count (mod 33), h = handle
 * (mod 16: the i-th worker spawned with a handle), k = body length.
 *    0 NOP                       12 SHIELD_END
 *    1 SLEEP a   (a * 4 us)      13 YIELD
 *    2 READ  ep n aux            14 JOIN h aux
 *    3 WRITE ep n aux            15 DETACH h
 *    4 RECV  ep n aux            16 AT_SHUTDOWN f [body: f % 32 bytes]
 *    5 SEND  ep n aux            17 SHUTDOWN f
 *    6 POLL  ep ev               18 WAIT_SHUTDOWN
 *    7 CLOSE ep (dup, tr_close)  19 MISC s (G7 probes, stats, dump)
 *    8 SPAWN f k [body: k bytes] 20 RETURN v
 *    9 CANCEL h                  21 CANCEL_SELF
 *   10 CANCEL_ALL f h            22 FSYNC ep
 *   11 SHIELD_BEGIN              23 TASK_RESULT h
 *   24 SCOPE_ENTER f d           27 SCOPE_MOVE w l d
 *   25 SCOPE_EXIT f              28 SCOPE_LEAVE
 *   26 SCOPE_CANCEL w l
 *   29 SEM a k                   32 EVENT a
 *   30 MUTEX a                   33 CHAN s a
 *   31 COND a                    34 GROUP s [args]
 * SPAWN f: bit 0 TR_SPAWN_LATE, bit 1 e = NULL (the caller's engine),
 * bits 2-3 stack {default, 16 KiB, 8 KiB (-EINVAL), 20000 (rounded)},
 * bit 4 an invalid flag (-EINVAL), bits 5-6 name {NULL, short, too long,
 * ""}, bit 7 detached (out = NULL).
 *
 * Cancel scopes (DESIGN section 7), each task with up to FZ_MAX_SCOPES
 * nested, their records in its program context: SCOPE_ENTER f: bit 0
 * TR_SCOPE_SHIELD, bit 1 first an unknown flag (-EINVAL), bit 2 first the
 * innermost again (entered: -EINVAL); d: deadline d & 3 {none, passed by
 * (d >> 2) us, (d >> 2) * 32 us ahead (0-2 ms), an hour}. SCOPE_EXIT f:
 * bit 0 first the enclosing scope (out of order: -EINVAL, nothing
 * changes); with a shield open in the innermost scope -EINVAL and it
 * stays; with none entered, a record never entered (-EINVAL). SCOPE_CANCEL
 * and SCOPE_MOVE act on scope l (from the outermost; mod the depth of
 * that task's chain, or with bit 7 set l & 0x7f mod FZ_MAX_SCOPES) of
 * program context w (mod the contexts so far): tr_scope_cancel, or
 * tr_scope_set_deadline to d (as SCOPE_ENTER's, 0 removes it), when that
 * scope is entered and its task may be touched (itself, or a live task
 * before the shutdown's Kill phase); else the call on a record never
 * entered (-EINVAL). SCOPE_LEAVE toggles whether the task ends with its
 * scopes entered (G10: the engine unlinks them); otherwise they are left
 * innermost first when its program ends.
 *
 * Primitives and task groups (DESIGN section 8; fuzz_sync.c, whose header
 * says what is checked, and fuzz_group.c): the programs share one semaphore, mutex,
 * condition and event, never initialised until an init, and two
 * channels; each context may own a group. SEM a: a % 8 {init with k % 5
 * units (-EBUSY while one waits), acquire, acquire, try_acquire, release,
 * release, NULL and never-initialised probes, acquire then release}; with
 * none initialised, a call on it (-EINVAL). MUTEX a: a % 8 {init (-EBUSY
 * held or waited on), lock, lock (-EDEADLK by its owner), trylock,
 * unlock, unlock (-EPERM by a non-owner), probes, probes}. COND a: a % 6
 * {init, wait (-EPERM without the mutex), wait, signal, broadcast,
 * probes}. EVENT a: a % 6 {init, set, clear, wait, wait, probes}. CHAN s
 * a: channel s & 1, (s >> 1) % 8 {create (capacity {0,1,2,4}[a & 3]; a &
 * 4, 8, 16: first an unknown flag, elem 0, NULL out, -EINVAL), send, send,
 * try_send, recv, recv, try_recv, close (a & 1: destroy; -EBUSY while a
 * task waits on it, else what it holds is taken first)}; numbered
 * messages. GROUP s: s % 8 {init (-EINVAL when live), spawn f k [body]
 * (f: bit 0 LATE, bit 1 fn NULL, bit 2 16 KiB stack), spawn f k [body],
 * cancel w (the group of context w), wait, failures w m (m % 9 entries),
 * misuse w (a non-owner's spawn and wait, NULLs), init}; hooks share one
 * task and own no group. A program that ends with its group live leaves
 * it (G10: the engine cancels and waits for the children,
 * groups_abandoned). After the run a task of one more run takes what the
 * channels hold and counts units and the mutex, for the conservation
 * checks.
 *
 * Every blocking call's result is checked against the scope model
 * (tools/stress/scope_oracle.h): -ECANCELED only when a cancellation
 * applies (the task's outside every shield, a cancelled scope reached),
 * -ETIMEDOUT only when none does and a reached scope held a deadline that
 * has passed, no real result once a reached scope is known triggered;
 * every tr_scope_exit's result too, its timer disarmed (white-box). After
 * the run: stats.timers_pending 0, stats.scopes_left = the scopes left on
 * purpose + those of tasks killed inside them, stats.deadline_cuts = the
 * -ETIMEDOUT results the programs saw. At exit the totals are printed.
 *
 * Termination: a backstop task sleeps FZ_BACKSTOP_NS and then calls
 * tr_engine_shutdown; the driver calls it when its program ends (the
 * shutdown cancels the sleeping backstop). Parked reads thus always end,
 * through the shutdown's cancel, and nothing in here is non-blocking.
 * tr_cancel_all always excepts the backstop.
 *
 * FUZZ_TRACE=1 in the environment prints every op and its result.
 * FUZZ_JOIN_WINDOW=0 stops a second task from calling tr_join/tr_detach on
 * a handle that another task joins after that join's wait ended but before
 * the joiner resumed (the contract: -EINVAL). FUZZ_FINAL_SHIELD=0 stops
 * tasks spawned by at-shutdown hooks from entering shields. Both found
 * engine bugs (a second join freed the record under the first joiner; a
 * shielded task spawned by a hook hung the shutdown), fixed with the
 * regression tests test_regress_join_window_second_join_einval and
 * test_regress_final_shielded_task_bounded; both are exercised by default
 * and the switches exist to isolate a future finding.
 * tr_wait_shutdown inside a triggered scope once the shutdown has begun
 * returns 0 and cuts nothing (its scheduler pass used to count a deadline
 * cut and make tr_scope_exit report -ETIMEDOUT: corpus/wait_shutdown_scoped,
 * test_scope_wait_shutdown_after_begin_is_real).
 * FUZZ_ABANDON=0 makes a program that ends with its group live wait for
 * it first, and FUZZ_MUTEX_REINIT=0 skips the mutex's init while a task
 * waits on the condition. Both found engine bugs (an owner that returned
 * without waiting for its group was killed by the kill rung, its result
 * lost; a mutex initialised while a condition's waiter had let go of it
 * was taken back unbound and could be initialised while held), fixed with
 * test_regress_kill_rung_spares_returned_owner and
 * test_regress_mutex_init_refused_while_cond_takes_it_back; both are
 * exercised by default and the switches exist to isolate a future finding.
 * A message handed to a receiver the kill rung then ended must be given
 * back (received later or left in the channel) or counted in
 * stats.kill_msgs_lost, exactly.
 *
 * Build and run (from the repository root; engine/base/ctx_ucontext.c compiles to
 * nothing on x86-64, fault.c to nothing without TR_FAULT_INJECTION):
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
 *     -D_GNU_SOURCE -Iinclude -Iengine -Itools/stress tests/fuzz/fuzz_api.c \
 *     tests/fuzz/fuzz_sync.c tests/fuzz/fuzz_group.c \
 *     engine/?*.c engine/ctx_x86_64.S -luring -lpthread -o /tmp/fuzz_api
 *   mkdir -p /tmp/fuzzwork && cp tests/fuzz/corpus/. -r /tmp/fuzzwork/
 *   /tmp/fuzz_api -max_total_time=600 -timeout=10 -max_len=1024 /tmp/fuzzwork tests/fuzz/corpus
 * (-D__SANITIZE_ADDRESS__: clang 14 does not define it, and the engine's
 * ASan fiber annotations are keyed on it.)
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "fuzz_api.h"

enum {
    OP_NOP,
    OP_SLEEP,
    OP_READ,
    OP_WRITE,
    OP_RECV,
    OP_SEND,
    OP_POLL,
    OP_CLOSE,
    OP_SPAWN,
    OP_CANCEL,
    OP_CANCEL_ALL,
    OP_SHIELD_BEGIN,
    OP_SHIELD_END,
    OP_YIELD,
    OP_JOIN,
    OP_DETACH,
    OP_AT_SHUTDOWN,
    OP_SHUTDOWN,
    OP_WAIT_SHUTDOWN,
    OP_MISC,
    OP_RETURN,
    OP_CANCEL_SELF,
    OP_FSYNC,
    OP_TASK_RESULT,
    OP_SCOPE_ENTER,
    OP_SCOPE_EXIT,
    OP_SCOPE_CANCEL,
    OP_SCOPE_MOVE,
    OP_SCOPE_LEAVE,
    OP_SEM, /* fuzz_sync.c: primitives and groups, in the order of FY_* */
    OP_MUTEX,
    OP_COND,
    OP_EVENT,
    OP_CHAN,
    OP_GROUP,
    FZ_NOPS
};

enum { EP_PIPE_R, EP_PIPE_W, EP_SOCK, EP_FILE, EP_BAD };

struct ep {
    int fd;
    int kind;
    int rch, wch; /* byte-accounting channels for reads / writes, or -1 */
    const char *name;
};

struct fz_state S;
struct fz_totals T;
bool trace;
static bool join_window;  /* unless FUZZ_JOIN_WINDOW=0 */
static bool final_shield; /* unless FUZZ_FINAL_SHIELD=0 */

/* ------------------------------------------------------------- failing */

void fz_fail(const char *file, int line, const char *expr, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    fprintf(stderr, "\nfuzz_api: CHECK FAILED at %s:%d: (%s) %s\n", file, line, expr, msg);
    if (S.e)
        tr_engine_dump(S.e, 2);
    abort();
}

const char *kind_name(int k)
{
    static const char *const n[] = {"driver", "worker", "hook", "after"};
    return n[k];
}

/* ------------------------------------------------------------- helpers */

uint8_t next(struct pctx *c)
{
    return c->pos < c->len ? c->p[c->pos++] : 0;
}

static struct ep ep_of(uint8_t b)
{
    switch (b % 8) {
    case 0:
        return (struct ep){S.p0[0], EP_PIPE_R, 0, -1, "pipe0.r"};
    case 1:
        return (struct ep){S.p0[1], EP_PIPE_W, -1, 0, "pipe0.w"};
    case 2:
        return (struct ep){S.p1[0], EP_PIPE_R, 1, -1, "pipe1.r"};
    case 3:
        return (struct ep){S.p1[1], EP_PIPE_W, -1, 1, "pipe1.w"};
    case 4:
        return (struct ep){S.sv[0], EP_SOCK, 3, 2, "sock0"};
    case 5:
        return (struct ep){S.sv[1], EP_SOCK, 2, 3, "sock1"};
    case 6:
        return (struct ep){S.mfd, EP_FILE, -1, -1, "memfd"};
    default:
        return (struct ep){-1, EP_BAD, -1, -1, "fd-1"};
    }
}

static int count_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    FZ_CHECK(d != NULL, "opendir /proc/self/fd: %s", strerror(errno));
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL)
        if (de->d_name[0] != '.')
            n++;
    closedir(d);
    return n - 1; /* the directory's own fd */
}

struct tr_stats stats_now(void)
{
    struct tr_stats st;
    memset(&st, 0xff, sizeof(st));
    FZ_CHECK(tr_engine_stats(S.e, &st) == 0, "tr_engine_stats failed");
    return st;
}

/* ------------------------------------------------------------- scopes */

bool shields_broken(void)
{
    return S.e->sd.shields_broken; /* white-box */
}

/* What a blocking call of c must return, known before it starts (the
 * scope model: G4 when the task's cancellation applies, a triggered scope
 * reached). */
struct so_pre fz_pre(const struct pctx *c)
{
    return so_before(&c->mt, shields_broken(), tr_is_cancelled());
}

/* A blocking call's result against the scope model (read right after the
 * call: the engine's walk saw the same); counts the -ETIMEDOUT ones. */
void scope_check(struct pctx *c, const char *what, long r, const struct so_pre *pre)
{
    const char *why = "";
    FZ_CHECK(so_after(&c->mt, pre, r, tr_now_ns(), shields_broken(), tr_is_cancelled(), &why),
             "%s %d: %s returned %ld at scope depth %u: %s", kind_name(c->kind), c->idx, what, r,
             c->mt.depth, why);
    if (r == -ETIMEDOUT) {
        S.etimedout++;
        T.etimedout++;
    }
}

static bool err_allowed(long r, unsigned errs)
{
    return ((errs & E_BADF) && r == -EBADF) || ((errs & E_NOTSOCK) && r == -ENOTSOCK) ||
           ((errs & E_SPIPE) && r == -ESPIPE) || ((errs & E_AGAIN) && r == -EAGAIN) ||
           ((errs & E_INVAL) && r == -EINVAL);
}

/* A cancellable blocking call's result: in [lo, hi], an allowed error, or
 * -ECANCELED / -ETIMEDOUT as the scope model allows (pre: what it knew
 * before the call; G4 included). */
void check_res(struct pctx *c, const char *what, long r, long lo, long hi, unsigned errs,
               const struct so_pre *pre)
{
    scope_check(c, what, r, pre);
    if (r == -ECANCELED || r == -ETIMEDOUT)
        return;
    FZ_CHECK((r >= lo && r <= hi) || err_allowed(r, errs),
             "%s %d: %s returned %ld, expected [%ld, %ld] or errors 0x%x", kind_name(c->kind),
             c->idx, what, r, lo, hi, errs);
}

/* The buffer of a read: bytes [0, r) came from writers (not checked for
 * the memfd, which also holds tr_engine_dump's text), bytes past r are
 * untouched (an error or a cancel delivered nothing: G5;
 * a stale completion wrote nowhere: G1). */
static void check_buf(const struct pctx *c, const char *what, const uint8_t *buf, long r, bool file)
{
    long got = r > 0 ? r : 0;
    for (long i = 0; i < got && !file; i++)
        FZ_CHECK(buf[i] >= 0x40 && buf[i] < 0x60,
                 "%s %d: %s byte %ld is 0x%02x, not written by any task", kind_name(c->kind),
                 c->idx, what, i, buf[i]);
    for (long i = got; i < FZ_BUF; i++)
        FZ_CHECK(buf[i] == 0xEE, "%s %d: %s returned %ld but byte %ld changed to 0x%02x",
                 kind_name(c->kind), c->idx, what, r, i, buf[i]);
}

struct pctx *new_ctx(int kind, const uint8_t *p, size_t len)
{
    FZ_CHECK(S.nctx < FZ_NCTX, "out of program contexts");
    struct pctx *c = &S.ctx[S.nctx];
    memset(c, 0, sizeof(*c));
    c->idx = S.nctx++;
    c->kind = kind;
    c->p = p;
    c->len = len;
    c->slot = -1;
    c->shieldp = kind == K_HOOK ? &S.hook_shield : &c->shield;
    c->pattern = (uint8_t)(0x40 | (c->idx & 0x1f));
    c->y.in_chan = -1;
    c->y.gowner = -1;
    return c;
}

static int finish(struct pctx *c, int v)
{
    fz_sync_end(c, v);
    c->returned = true;
    c->ret = v;
    TRACE("[%s %d] returns %d\n", kind_name(c->kind), c->idx, v);
    return v;
}

/* The result a joiner of target must see: its return value, or -ECANCELED
 * when it was killed (never resumed, so it never returned). */
static void check_join_result(const struct pctx *target, int res, const char *what)
{
    if (target->returned)
        FZ_CHECK(res == target->ret, "%s: result %d, but the task returned %d", what, res,
                 target->ret);
    else
        FZ_CHECK(res == -ECANCELED, "%s: result %d for a task that never returned (killed?)", what,
                 res);
}

static bool handle_live(int i)
{
    return i < S.nworkers && (S.h[i].state == H_OWNED || S.h[i].state == H_JOINING);
}

/* A handle in H_JOINING: is its joiner's tr_join still waiting inside the
 * engine (white-box: the target's joiner link)? Once the target ended or
 * the joiner was cancelled, the link is gone while the joiner has not yet
 * resumed; a second tr_join or tr_detach in that window returns 0 and
 * frees the record under the first joiner (see FUZZ_JOIN_WINDOW at the
 * top). Only with FUZZ_JOIN_WINDOW=1 are such calls made in the window. */
static bool join_pending(const struct handle *h)
{
    return join_window || h->t->joiner != NULL;
}

static int interp(struct pctx *c);
static void scopes_end(struct pctx *c);

/* c's program, then its scopes (left, or left entered on purpose). */
static int run_prog(struct pctx *c)
{
    int r = interp(c);
    fz_sync_prog_end(c);
    scopes_end(c);
    return r;
}

int worker_main(void *arg)
{
    struct pctx *c = arg;
    c->started = true;
    fz_sync_start(c);
    TRACE("[worker %d] starts%s%s\n", c->idx, tr_is_cancelled() ? " cancelled" : "",
          c->born_in_shutdown ? " (spawned during shutdown)" : "");
    if (c->born_in_shutdown)
        FZ_CHECK(tr_is_cancelled(), "worker %d spawned during a shutdown starts uncancelled",
                 c->idx);
    if (c->slot >= 0 && S.h[c->slot].state == H_OWNED)
        FZ_CHECK(S.h[c->slot].t == tr_self(), "worker %d: tr_self() is not its handle", c->idx);
    return finish(c, run_prog(c));
}

static int hook_main(void *arg)
{
    struct pctx *c = arg;
    c->started = true;
    fz_sync_start(c);
    TRACE("[hook %d] starts\n", c->idx);
    S.hook_shield = 0; /* each hook starts unshielded (shutdown.c, hooks_task) */
    FZ_CHECK(tr_self() != NULL, "hook %d runs outside a task", c->idx);
    FZ_CHECK(tr_shutting_down(), "hook %d runs but tr_shutting_down() is false", c->idx);
    if (!S.hooks_spawned) {
        /* Hooks run after every task ended: only the hook task is alive. */
        struct tr_stats st = stats_now();
        FZ_CHECK(st.tasks_live == 1, "hook %d runs with %llu tasks alive", c->idx,
                 (unsigned long long)st.tasks_live);
    }
    return finish(c, run_prog(c));
}

static int backstop_main(void *arg)
{
    (void)arg;
    int r = tr_sleep_ns(FZ_BACKSTOP_NS);
    FZ_CHECK(r == 0 || r == -ECANCELED, "backstop sleep returned %d", r);
    TRACE("[backstop] %s\n", r == 0 ? "fires: tr_engine_shutdown" : "cancelled");
    if (r == 0)
        FZ_CHECK(tr_engine_shutdown(tr_self_engine()) == 0, "backstop shutdown failed");
    return 0;
}

static int driver_main(void *arg)
{
    struct pctx *c = arg;
    c->started = true;
    fz_sync_start(c);
    int r = run_prog(c);
    TRACE("[driver] program over: tr_engine_shutdown\n");
    FZ_CHECK(tr_engine_shutdown(tr_self_engine()) == 0, "driver shutdown failed");
    return finish(c, r);
}

/* Spawned after the engine's shutdown finished, for a second run. */
static int after_main(void *arg)
{
    struct pctx *c = arg;
    c->started = true;
    fz_sync_start(c);
    FZ_CHECK(tr_is_cancelled(), "a task spawned after the shutdown is not cancelled");
    FZ_CHECK(tr_shutting_down(), "after the shutdown, tr_shutting_down() is false");
    int r = tr_nop();
    FZ_CHECK(r == -ECANCELED, "after shutdown: tr_nop() = %d", r);
    r = tr_yield();
    FZ_CHECK(r == -ECANCELED, "after shutdown: tr_yield() = %d", r);
    r = tr_sleep_ns(1000);
    FZ_CHECK(r == -ECANCELED, "after shutdown: tr_sleep_ns() = %d", r);
    int d = dup(S.p0[0]);
    FZ_CHECK(d >= 0, "dup failed");
    r = tr_close(d);
    if (r != 0)
        close(d);
    FZ_CHECK(r == 0, "after shutdown: tr_close(dup) = %d (never cancelled)", r);
    return finish(c, 0);
}

/* ----------------------------------------------------------------- ops */

static void op_io(struct pctx *c, int op)
{
    struct ep ep = ep_of(next(c));
    size_t n = next(c) % (FZ_IO_MAX + 1);
    uint8_t aux = next(c);
    uint8_t buf[FZ_BUF];
    memset(buf, 0xEE, sizeof(buf));
    struct so_pre mc = fz_pre(c);
    long r = 0;
    unsigned errs = 0;
    char what[64];
    switch (op) {
    case OP_READ: {
        int64_t off = (aux & 1) ? (int64_t)((aux >> 1) % 64) : -1;
        snprintf(what, sizeof(what), "read(%s, %zu, off %lld)", ep.name, n, (long long)off);
        r = tr_read(ep.fd, buf, n, off);
        if (ep.kind == EP_PIPE_W || ep.kind == EP_BAD)
            errs = E_BADF;
        if (off >= 0 && (ep.kind == EP_PIPE_R || ep.kind == EP_SOCK))
            errs |= E_SPIPE;
        check_res(c, what, r, 0, (ep.kind == EP_PIPE_W || ep.kind == EP_BAD) ? -1 : (long)n, errs,
                  &mc);
        check_buf(c, what, buf, r, ep.kind == EP_FILE);
        if (r > 0 && ep.rch >= 0)
            S.got[ep.rch] += (uint64_t)r;
        break;
    }
    case OP_WRITE: {
        int64_t off = (aux & 1) ? (int64_t)((aux >> 1) % 64) : -1;
        snprintf(what, sizeof(what), "write(%s, %zu, off %lld)", ep.name, n, (long long)off);
        memset(buf, c->pattern, n);
        r = tr_write(ep.fd, buf, n, off);
        if (ep.kind == EP_PIPE_R || ep.kind == EP_BAD)
            errs = E_BADF;
        if (off >= 0 && (ep.kind == EP_PIPE_W || ep.kind == EP_SOCK))
            errs |= E_SPIPE;
        check_res(c, what, r, 0, (ep.kind == EP_PIPE_R || ep.kind == EP_BAD) ? -1 : (long)n, errs,
                  &mc);
        if (r > 0 && ep.wch >= 0)
            S.wrote[ep.wch] += (uint64_t)r;
        break;
    }
    case OP_RECV: {
        static const int fl[4] = {0, MSG_DONTWAIT, MSG_WAITALL, MSG_DONTWAIT};
        int flags = fl[aux & 3];
        snprintf(what, sizeof(what), "recv(%s, %zu, 0x%x)", ep.name, n, flags);
        r = tr_recv(ep.fd, buf, n, flags);
        errs = ep.kind == EP_BAD ? E_BADF : ep.kind == EP_SOCK ? 0 : E_NOTSOCK;
        if (flags & MSG_DONTWAIT)
            errs |= E_AGAIN;
        check_res(c, what, r, 0, ep.kind == EP_SOCK ? (long)n : -1, errs, &mc);
        check_buf(c, what, buf, r, false);
        if (r > 0 && ep.rch >= 0)
            S.got[ep.rch] += (uint64_t)r;
        break;
    }
    case OP_SEND: {
        int flags = MSG_NOSIGNAL | ((aux & 1) ? MSG_DONTWAIT : 0);
        snprintf(what, sizeof(what), "send(%s, %zu, 0x%x)", ep.name, n, flags);
        memset(buf, c->pattern, n);
        r = tr_send(ep.fd, buf, n, flags);
        errs = ep.kind == EP_BAD ? E_BADF : ep.kind == EP_SOCK ? 0 : E_NOTSOCK;
        if (flags & MSG_DONTWAIT)
            errs |= E_AGAIN;
        check_res(c, what, r, 0, ep.kind == EP_SOCK ? (long)n : -1, errs, &mc);
        if (r > 0 && ep.wch >= 0)
            S.wrote[ep.wch] += (uint64_t)r;
        break;
    }
    }
    TRACE("[%s %d] %s -> %ld\n", kind_name(c->kind), c->idx, what, r);
}

static void op_poll(struct pctx *c)
{
    struct ep ep = ep_of(next(c));
    static const unsigned evs[4] = {POLLIN, POLLOUT, POLLIN | POLLOUT, POLLPRI};
    unsigned ev = evs[next(c) & 3];
    struct so_pre mc = fz_pre(c);
    int r = tr_poll(ep.fd, ev);
    TRACE("[%s %d] poll(%s, 0x%x) -> %d\n", kind_name(c->kind), c->idx, ep.name, ev, r);
    if (ep.kind == EP_BAD)
        check_res(c, "poll(fd -1)", r, 1, 0, E_BADF, &mc);
    else /* a memfd has no ->poll: io_uring refuses it with -EINVAL */
        check_res(c, "poll", r, 1, 0xffff, ep.kind == EP_FILE ? E_INVAL : 0, &mc);
    if (r > 0)
        FZ_CHECK(((unsigned)r & ~(ev | POLLERR | POLLHUP | POLLNVAL)) == 0,
                 "poll(%s, 0x%x) returned events 0x%x", ep.name, ev, r);
}

static void op_close(struct pctx *c)
{
    struct ep ep = ep_of(next(c));
    if (ep.kind == EP_BAD) {
        int r = tr_close(-1);
        TRACE("[%s %d] close(-1) -> %d\n", kind_name(c->kind), c->idx, r);
        FZ_CHECK(r == -EBADF, "tr_close(-1) = %d (never cancelled: the kernel's -EBADF)", r);
        return;
    }
    int d = dup(ep.fd);
    FZ_CHECK(d >= 0, "dup(%s): %s", ep.name, strerror(errno));
    /* No switch between the dup and tr_close's submission: a kill can
     * only come after the close op is in the ring, and it waits for it. */
    int r = tr_close(d);
    TRACE("[%s %d] close(dup %d of %s) -> %d\n", kind_name(c->kind), c->idx, d, ep.name, r);
    if (r != 0 && fcntl(d, F_GETFD) >= 0)
        close(d);
    FZ_CHECK(r == 0, "tr_close(dup of %s) = %d (never cancelled: always closes)", ep.name, r);
}

static void op_fsync(struct pctx *c)
{
    struct ep ep = ep_of(next(c));
    struct so_pre mc = fz_pre(c);
    int r = tr_fsync(ep.fd);
    TRACE("[%s %d] fsync(%s) -> %d\n", kind_name(c->kind), c->idx, ep.name, r);
    unsigned errs = ep.kind == EP_BAD ? E_BADF : E_INVAL; /* pipes, sockets: -EINVAL */
    check_res(c, "fsync", r, 0, ep.kind == EP_BAD ? -1 : 0, errs, &mc);
}

static void op_spawn(struct pctx *c)
{
    uint8_t f = next(c);
    size_t k = next(c) % (FZ_BODY_MAX + 1);
    if (k > c->len - c->pos)
        k = c->len - c->pos;
    const uint8_t *body = c->p + c->pos;
    c->pos += k;
    if (S.nworkers >= FZ_MAX_WORKERS) {
        TRACE("[%s %d] spawn skipped (%d workers)\n", kind_name(c->kind), c->idx, S.nworkers);
        return;
    }
    static const size_t stacks[4] = {0, 16384, 8192, 20000};
    static const char *const names[4] = {NULL, "fz-worker",
                                         "a-name-longer-than-thirty-one-bytes-for-sure", ""};
    struct tr_spawn_opts o = {
        .name = names[(f >> 5) & 3],
        .stack_size = stacks[(f >> 2) & 3],
        .flags = ((f & 1) ? TR_SPAWN_LATE : 0) | ((f & 0x10) ? 0x4u : 0),
    };
    bool bad = (f & 0x10) || o.stack_size == 8192;
    bool detached = (f & 0x80) != 0;
    tr_engine *e = (f & 2) ? NULL : tr_self_engine();
    struct tr_stats before = stats_now();
    struct pctx *w = new_ctx(K_WORKER, body, k);
    int slot = detached ? -1 : S.nworkers;
    w->slot = slot;
    w->born_in_shutdown = tr_shutting_down();
    w->y.late = (f & 1) != 0;
    w->final_born = c->final_born || S.e->sd.phase == TR_PH_FINAL; /* white-box */
    tr_task *t = NULL;
    int r = tr_spawn(e, detached ? NULL : &t, worker_main, w, &o);
    TRACE("[%s %d] spawn(flags 0x%x, stack %zu, %s) body %zu bytes -> %d: worker %d handle %d\n",
          kind_name(c->kind), c->idx, o.flags, o.stack_size, detached ? "detached" : "handle", k, r,
          w->idx, slot);
    if (bad) {
        FZ_CHECK(r == -EINVAL, "tr_spawn with bad opts returned %d", r);
        struct tr_stats after = stats_now();
        FZ_CHECK(after.tasks_spawned == before.tasks_spawned, "a refused tr_spawn created a task");
        S.nctx--; /* unused */
        return;
    }
    FZ_CHECK(r == 0, "tr_spawn returned %d", r);
    if (c->kind == K_HOOK)
        S.hooks_spawned = true;
    if (slot >= 0) {
        FZ_CHECK(t != NULL, "tr_spawn gave no handle");
        S.h[slot] = (struct handle){t, H_OWNED, w, NULL};
    }
    S.nworkers++;
}

static void op_cancel(struct pctx *c)
{
    int i = next(c) % FZ_MAX_WORKERS;
    if (!handle_live(i)) {
        int r = tr_cancel(NULL);
        FZ_CHECK(r == -EINVAL, "tr_cancel(NULL) = %d", r);
        return;
    }
    int r = tr_cancel(S.h[i].t);
    TRACE("[%s %d] cancel(handle %d = worker %d) -> %d\n", kind_name(c->kind), c->idx, i,
          S.h[i].target->idx, r);
    FZ_CHECK(r == 0 || r == -ESRCH, "tr_cancel(handle %d) = %d", i, r);
    if (r == -ESRCH) {
        int res;
        FZ_CHECK(tr_task_result(S.h[i].t, &res) == 0,
                 "tr_cancel said -ESRCH but the task has no result yet");
    }
}

static void op_cancel_all(struct pctx *c)
{
    uint8_t f = next(c);
    int hi = next(c) % FZ_MAX_WORKERS;
    tr_task *except[2] = {S.backstop, NULL};
    size_t n = 1;
    if ((f & 2) && handle_live(hi))
        except[n++] = S.h[hi].t;
    unsigned flags = (f & 1) ? TR_CANCEL_WAIT : 0;
    if (f & 8) {
        int r = tr_cancel_all(NULL, 1, 0);
        FZ_CHECK(r == -EINVAL, "tr_cancel_all(NULL, 1, 0) = %d", r);
    }
    if (f & 4) {
        int r = tr_cancel_all(except, n, flags | 0x80u);
        FZ_CHECK(r == -EINVAL, "tr_cancel_all with a bad flag = %d", r);
        return;
    }
    /* What it must cancel: every live task but the caller and except. */
    struct tr_stats st = stats_now();
    int res;
    uint64_t live_except = 0;
    for (size_t j = 0; j < n; j++)
        if (except[j] != tr_self() && tr_task_result(except[j], &res) == -EBUSY)
            live_except++;
    /* ... and but the owners of the groups the caller runs in (cancelling
     * one would cancel the caller; each waits for it). White-box: the
     * engine's list of live tasks. */
    uint64_t owners = 0;
    for (tr_task *t = tr_self_engine()->sch.all_head; t; t = t->all_next)
        if (t != tr_self() && tr__groups_ancestor(t, tr_self()) && t != except[0] &&
            (n < 2 || t != except[1]))
            owners++;
    uint64_t expect = st.tasks_live - 1 - live_except - owners;
    bool waited_for[FZ_MAX_WORKERS] = {0};
    for (int j = 0; j < S.nworkers; j++)
        waited_for[j] = handle_live(j) && S.h[j].t != tr_self() && !(n == 2 && j == hi) &&
                        !tr__groups_ancestor(S.h[j].t, tr_self());
    struct so_pre pre = fz_pre(c);
    int r = tr_cancel_all(except, n, flags);
    TRACE("[%s %d] cancel_all(except %zu, %s) -> %d (expected %llu)\n", kind_name(c->kind), c->idx,
          n, flags ? "WAIT" : "no wait", r, (unsigned long long)expect);
    if (!flags) {
        FZ_CHECK(r >= 0 && (uint64_t)r == expect,
                 "tr_cancel_all returned %d, but %llu tasks were to be cancelled", r,
                 (unsigned long long)expect);
        return;
    }
    FZ_CHECK(r == -ECANCELED || r == -ETIMEDOUT || (r >= 0 && (uint64_t)r == expect),
             "tr_cancel_all(WAIT) returned %d, but %llu tasks were to be cancelled", r,
             (unsigned long long)expect);
    /* Nothing to wait for: it returns 0 without a cancellation point. */
    if (expect > 0 || r != 0)
        scope_check(c, "tr_cancel_all(WAIT)", r, &pre);
    if (r == -ECANCELED || r == -ETIMEDOUT)
        return;
    /* It waited: every task it cancelled has ended. */
    for (int j = 0; j < S.nworkers; j++)
        if (waited_for[j] && handle_live(j))
            FZ_CHECK(tr_task_result(S.h[j].t, &res) == 0,
                     "tr_cancel_all(WAIT) returned while worker %d (handle %d) is alive",
                     S.h[j].target->idx, j);
}

static void op_join(struct pctx *c)
{
    int i = next(c) % FZ_MAX_WORKERS;
    uint8_t aux = next(c);
    int res = 12345;
    int *resp = (aux & 1) ? NULL : &res;
    if (!handle_live(i)) {
        int r = tr_join(NULL, resp);
        FZ_CHECK(r == -EINVAL, "tr_join(NULL) = %d", r);
        return;
    }
    struct handle *h = &S.h[i];
    if (h->state == H_JOINING) {
        /* Another task joins it: the handle is not ours to consume. */
        struct pctx *j = h->joiner;
        if (!join_pending(h))
            return;
        int r = tr_join(h->t, resp);
        TRACE("[%s %d] join(handle %d, joined by %s %d) -> %d\n", kind_name(c->kind), c->idx, i,
              kind_name(j->kind), j->idx, r);
        FZ_CHECK(r == -EINVAL,
                 "tr_join of a task that %s %d already joins returned %d (must be -EINVAL)",
                 kind_name(j->kind), j->idx, r);
        return;
    }
    if (h->t == tr_self()) {
        int r = tr_join(h->t, resp);
        FZ_CHECK(r == -EINVAL, "joining yourself returned %d", r);
        return;
    }
    struct so_pre mc = fz_pre(c);
    h->state = H_JOINING;
    h->joiner = c;
    int r = tr_join(h->t, resp);
    TRACE("[%s %d] join(handle %d = worker %d) -> %d, result %d\n", kind_name(c->kind), c->idx, i,
          h->target->idx, r, res);
    FZ_CHECK(h->state == H_JOINING && h->joiner == c, "handle %d changed while joined", i);
    h->joiner = NULL;
    scope_check(c, "tr_join", r, &mc);
    if (r == 0) {
        h->state = H_GONE;
        h->t = NULL;
        if (resp)
            check_join_result(h->target, res, "tr_join");
        return;
    }
    h->state = H_OWNED; /* cut short: the handle is still ours */
    FZ_CHECK(r == -ECANCELED || r == -ETIMEDOUT, "tr_join(handle %d) = %d", i, r);
}

static void op_detach(struct pctx *c)
{
    int i = next(c) % FZ_MAX_WORKERS;
    if (!handle_live(i)) {
        int r = tr_detach(NULL);
        FZ_CHECK(r == -EINVAL, "tr_detach(NULL) = %d", r);
        return;
    }
    struct handle *h = &S.h[i];
    if (h->state == H_JOINING && !join_pending(h))
        return;
    int r = tr_detach(h->t);
    TRACE("[%s %d] detach(handle %d = worker %d%s) -> %d\n", kind_name(c->kind), c->idx, i,
          h->target->idx, h->state == H_JOINING ? ", being joined" : "", r);
    if (h->state == H_JOINING) {
        FZ_CHECK(r == -EINVAL, "tr_detach of a task that %s %d joins returned %d (must be -EINVAL)",
                 kind_name(h->joiner->kind), h->joiner->idx, r);
        return;
    }
    FZ_CHECK(r == 0, "tr_detach(handle %d) = %d", i, r);
    h->state = H_GONE;
    h->t = NULL;
}

static void op_task_result(struct pctx *c)
{
    int i = next(c) % FZ_MAX_WORKERS;
    int res = 0;
    if (!handle_live(i)) {
        FZ_CHECK(tr_task_result(NULL, &res) == -EINVAL, "tr_task_result(NULL) != -EINVAL");
        return;
    }
    int r = tr_task_result(S.h[i].t, &res);
    TRACE("[%s %d] task_result(handle %d) -> %d, %d\n", kind_name(c->kind), c->idx, i, r, res);
    FZ_CHECK(r == 0 || r == -EBUSY, "tr_task_result = %d", r);
    if (r == 0)
        check_join_result(S.h[i].target, res, "tr_task_result");
    else /* one that returned with its group live ends after the children (G10) */
        FZ_CHECK(!S.h[i].target->returned || S.h[i].target->y.gstate == FG_GONE,
                 "tr_task_result -EBUSY for a task that returned");
}

static void op_at_shutdown(struct pctx *c)
{
    uint8_t f = next(c);
    size_t k = (f & 0x7f) % (FZ_HOOK_BODY_MAX + 1);
    if (k > c->len - c->pos)
        k = c->len - c->pos;
    const uint8_t *body = c->p + c->pos;
    c->pos += k;
    if (f & 0x80) {
        int r = tr_at_shutdown(NULL, NULL);
        FZ_CHECK(r == -EINVAL, "tr_at_shutdown(NULL) = %d", r);
    }
    if (S.nhooks >= FZ_MAX_HOOKS)
        return;
    struct pctx *hc = new_ctx(K_HOOK, body, k);
    int r = tr_at_shutdown(hook_main, hc);
    TRACE("[%s %d] at_shutdown(hook %d, %zu bytes) -> %d\n", kind_name(c->kind), c->idx, hc->idx, k,
          r);
    /* -ECANCELED only once the hooks' own kill rung has ended them (a task
     * a hook spawned registering one then): a hook that could never run. */
    FZ_CHECK(r == 0 || (r == -ECANCELED && tr_shutting_down()), "tr_at_shutdown = %d", r);
    if (r == 0)
        S.nhooks++;
}

static void op_misc(struct pctx *c)
{
    uint8_t s = next(c);
    int r;
    switch (s % 6) {
    case 0: {
        struct tr_stats st = stats_now();
        FZ_CHECK(st.tasks_live >= 1, "inside a task, tasks_live = 0");
        FZ_CHECK(st.ops_inflight == st.ops_submitted - st.ops_completed,
                 "ops_inflight %llu != submitted %llu - completed %llu",
                 (unsigned long long)st.ops_inflight, (unsigned long long)st.ops_submitted,
                 (unsigned long long)st.ops_completed);
        FZ_CHECK(st.tasks_spawned == st.tasks_live + st.tasks_ok + st.tasks_cancelled +
                                         st.tasks_failed + st.tasks_killed,
                 "task counters do not add up");
        break;
    }
    case 1:
        r = tr_join(tr_self(), NULL);
        FZ_CHECK(r == -EINVAL, "tr_join(self) = %d", r);
        break;
    case 2:
        r = tr_engine_run(tr_self_engine());
        FZ_CHECK(r == -EPERM, "tr_engine_run inside a task = %d", r);
        r = tr_engine_destroy(tr_self_engine());
        FZ_CHECK(r == -EBUSY, "tr_engine_destroy inside a task = %d", r);
        break;
    case 3:
        FZ_CHECK(tr_cancel(NULL) == -EINVAL, "tr_cancel(NULL)");
        FZ_CHECK(tr_detach(NULL) == -EINVAL, "tr_detach(NULL)");
        FZ_CHECK(tr_join(NULL, NULL) == -EINVAL, "tr_join(NULL)");
        FZ_CHECK(tr_engine_shutdown(NULL) == -EINVAL, "tr_engine_shutdown(NULL)");
        break;
    case 4:
        r = tr_spawn(NULL, NULL, NULL, NULL, NULL);
        FZ_CHECK(r == -EINVAL, "tr_spawn(fn NULL) = %d", r);
        r = tr_op(NULL, NULL);
        FZ_CHECK(r == -EINVAL, "tr_op(NULL) in a task = %d", r);
        break;
    case 5:
        r = tr_engine_dump(tr_self_engine(), S.mfd);
        FZ_CHECK(r >= 1, "tr_engine_dump = %d", r);
        break;
    }
    TRACE("[%s %d] misc %d ok\n", kind_name(c->kind), c->idx, s % 6);
}

/* ------------------------------------------------------------- scope ops */

/* A deadline from d: none, passed by (d >> 2) us, (d >> 2) * 32 us ahead
 * (0-2 ms), an hour. */
static uint64_t fz_deadline(uint8_t d, uint64_t now)
{
    uint64_t k = d >> 2;
    switch (d & 3) {
    case 0:
        return 0;
    case 1:
        return now - 1 - k * 1000;
    case 2:
        return now + k * 32000;
    default:
        return now + FZ_HOUR;
    }
}

/* Leaves c's innermost scope (no shield open in it), checked: the result
 * against the model, the chain back to its parent. (The task's deadline
 * timer stays armed lazily; the audit at the end finds none left.) */
static void scope_exit_checked(struct pctx *c)
{
    unsigned dp = c->mt.depth;
    struct tr_scope *s = &c->sc[dp - 1];
    struct tr_scope *parent = s->_parent;
    int r = tr_scope_exit(s);
    TRACE("[%s %d] scope_exit(depth %u) -> %d\n", kind_name(c->kind), c->idx, dp, r);
    const char *want = "";
    FZ_CHECK(so_exit_ok(c->mt.top, r, &want), "%s %d: tr_scope_exit (depth %u) = %d, want %s",
             kind_name(c->kind), c->idx, dp, r, want);
    FZ_CHECK(tr_self()->scope == parent, "%s %d: after tr_scope_exit the chain is not its parent",
             kind_name(c->kind), c->idx);
    so_exit(&c->mt);
    if (r == -ETIMEDOUT)
        T.exits_t++;
    else if (r == -ECANCELED)
        T.exits_c++;
}

static void op_scope_enter(struct pctx *c)
{
    uint8_t f = next(c), d = next(c);
    unsigned dp = c->mt.depth;
    struct tr_scope *top = tr_self()->scope;
    struct tr_scope z;
    memset(&z, 0, sizeof(z));
    int r;
    if (f & 2) {
        r = tr_scope_enter(&z, 0, 0x2u);
        FZ_CHECK(r == -EINVAL, "tr_scope_enter with an unknown flag = %d", r);
    }
    if ((f & 4) && dp > 0) {
        r = tr_scope_enter(&c->sc[dp - 1], 0, 0);
        FZ_CHECK(r == -EINVAL, "tr_scope_enter of an entered scope = %d", r);
    }
    FZ_CHECK(tr_self()->scope == top, "a refused tr_scope_enter changed the chain");
    if (dp >= FZ_MAX_SCOPES)
        return;
    unsigned flags = (f & 1) ? TR_SCOPE_SHIELD : 0;
    uint64_t now = tr_now_ns();
    uint64_t dl = fz_deadline(d, now);
    memset(&c->sc[dp], 0, sizeof(c->sc[dp]));
    r = tr_scope_enter(&c->sc[dp], dl, flags);
    TRACE("[%s %d] scope_enter(depth %u, %s, deadline %+lld us) -> %d\n", kind_name(c->kind),
          c->idx, dp + 1, flags ? "shield" : "plain",
          dl ? ((long long)dl - (long long)now) / 1000 : 0, r);
    FZ_CHECK(r == 0, "tr_scope_enter = %d", r);
    so_enter(&c->mt, &c->sm[dp], dl, flags, now);
    T.scopes++;
}

static void op_scope_exit(struct pctx *c)
{
    uint8_t f = next(c);
    unsigned dp = c->mt.depth;
    struct tr_scope *top = tr_self()->scope;
    int r;
    if (dp == 0) {
        struct tr_scope z;
        memset(&z, 0, sizeof(z));
        r = tr_scope_exit(&z);
        FZ_CHECK(r == -EINVAL, "tr_scope_exit of a scope never entered = %d", r);
        return;
    }
    if ((f & 1) && dp >= 2) {
        r = tr_scope_exit(&c->sc[dp - 2]);
        FZ_CHECK(r == -EINVAL, "tr_scope_exit out of order = %d", r);
        FZ_CHECK(tr_self()->scope == top, "an out-of-order tr_scope_exit changed the chain");
    }
    if (c->mt.top->shields > 0) {
        r = tr_scope_exit(&c->sc[dp - 1]);
        FZ_CHECK(r == -EINVAL, "tr_scope_exit with a shield open inside = %d", r);
        FZ_CHECK(tr_self()->scope == top, "a refused tr_scope_exit changed the chain");
        return;
    }
    if (fz_sync_scope_pinned(c)) {
        r = tr_scope_exit(&c->sc[dp - 1]);
        FZ_CHECK(r == -EINVAL, "tr_scope_exit of a scope with a live group inside = %d", r);
        FZ_CHECK(tr_self()->scope == top, "a refused tr_scope_exit changed the chain");
        return;
    }
    scope_exit_checked(c);
}

/* Whether c may touch the scopes of t: its own, or those of a live task
 * before the Kill phase (a killed task's are unlinked, and the contract
 * allows using a scope only while its owner is inside it). */
static bool scope_touchable(const struct pctx *c, const struct pctx *t, unsigned lv)
{
    if (lv >= t->mt.depth)
        return false;
    if (t == c)
        return true;
    return t->started && !t->returned && t->kind != K_HOOK &&
           S.e->sd.phase < TR_PH_KILL; /* white-box */
}

static void op_scope_poke(struct pctx *c, bool cancel)
{
    uint8_t w = next(c), l = next(c), d = cancel ? 0 : next(c);
    struct pctx *t = &S.ctx[w % S.nctx];
    unsigned lv = (l & 0x80) || t->mt.depth == 0 ? (l & 0x7f) % FZ_MAX_SCOPES : l % t->mt.depth;
    int r;
    if (!scope_touchable(c, t, lv)) {
        struct tr_scope z;
        memset(&z, 0, sizeof(z));
        r = cancel ? tr_scope_cancel(&z) : tr_scope_set_deadline(&z, 1);
        FZ_CHECK(r == -EINVAL, "tr_scope_%s of a scope never entered = %d",
                 cancel ? "cancel" : "set_deadline", r);
        return;
    }
    FZ_CHECK(t->sc[lv]._task != NULL, "%s %d's scope %u: the model has it entered, the engine not",
             kind_name(t->kind), t->idx, lv + 1);
    if (cancel) {
        r = tr_scope_cancel(&t->sc[lv]);
        TRACE("[%s %d] scope_cancel(%s %d, depth %u) -> %d\n", kind_name(c->kind), c->idx,
              kind_name(t->kind), t->idx, lv + 1, r);
        FZ_CHECK(r == 0, "tr_scope_cancel = %d", r);
        so_cancel(&t->sm[lv]);
        T.cancels++;
        return;
    }
    uint64_t now = tr_now_ns();
    uint64_t dl = fz_deadline(d, now);
    r = tr_scope_set_deadline(&t->sc[lv], dl);
    TRACE("[%s %d] scope_move(%s %d, depth %u, %+lld us) -> %d\n", kind_name(c->kind), c->idx,
          kind_name(t->kind), t->idx, lv + 1, dl ? ((long long)dl - (long long)now) / 1000 : 0, r);
    FZ_CHECK(r == 0, "tr_scope_set_deadline = %d", r);
    so_move(&t->sm[lv], dl, now);
    T.moves++;
}

/* When c's program ends: its scopes left entered on purpose (counted), or
 * left innermost first (the shields open in them ended first). */
static void scopes_end(struct pctx *c)
{
    if (c->leave) {
        S.scopes_left += c->mt.depth;
        T.left += c->mt.depth;
        TRACE("[%s %d] ends inside %u scope(s)\n", kind_name(c->kind), c->idx, c->mt.depth);
        return;
    }
    /* Bounded: each round leaves one scope or ends one shield. */
    while (c->mt.depth > 0) {
        if (c->mt.top->shields == 0 && fz_sync_scope_pinned(c)) {
            /* A live group was initialised in it: the engine unlinks it
             * (and those outside it) at the task's end, after which it
             * cancels and waits for the group's children (G10). */
            S.scopes_left += c->mt.depth;
            T.left += c->mt.depth;
            TRACE("[%s %d] ends inside %u scope(s), a group live in them\n", kind_name(c->kind),
                  c->idx, c->mt.depth);
            return;
        }
        if (c->mt.top->shields > 0) {
            int r = tr_shield_end();
            FZ_CHECK(r == *c->shieldp - 1, "tr_shield_end (at the end) = %d at depth %d", r,
                     *c->shieldp);
            (*c->shieldp)--;
            c->mt.top->shields--;
            continue;
        }
        scope_exit_checked(c);
    }
}

/* Runs c's program; returns the task's result. */
static int interp(struct pctx *c)
{
    while (c->pos < c->len && c->ops < FZ_MAX_OPS) {
        int op = next(c) % FZ_NOPS;
        c->ops++;
        struct so_pre mc;
        int r;
        switch (op) {
        case OP_NOP:
            mc = fz_pre(c);
            r = tr_nop();
            TRACE("[%s %d] nop -> %d\n", kind_name(c->kind), c->idx, r);
            check_res(c, "nop", r, 0, 0, 0, &mc);
            break;
        case OP_SLEEP: {
            uint64_t ns = (uint64_t)next(c) * 4000;
            mc = fz_pre(c);
            r = tr_sleep_ns(ns);
            TRACE("[%s %d] sleep %llu ns -> %d\n", kind_name(c->kind), c->idx,
                  (unsigned long long)ns, r);
            check_res(c, "sleep", r, 0, 0, 0, &mc);
            break;
        }
        case OP_READ:
        case OP_WRITE:
        case OP_RECV:
        case OP_SEND:
            op_io(c, op);
            break;
        case OP_POLL:
            op_poll(c);
            break;
        case OP_CLOSE:
            op_close(c);
            break;
        case OP_SPAWN:
            op_spawn(c);
            break;
        case OP_CANCEL:
            op_cancel(c);
            break;
        case OP_CANCEL_ALL:
            op_cancel_all(c);
            break;
        case OP_SHIELD_BEGIN:
            if (c->final_born && !final_shield)
                break; /* see FUZZ_FINAL_SHIELD at the top */
            r = tr_shield_begin();
            TRACE("[%s %d] shield_begin -> %d\n", kind_name(c->kind), c->idx, r);
            FZ_CHECK(r == *c->shieldp + 1, "tr_shield_begin = %d at depth %d", r, *c->shieldp);
            (*c->shieldp)++;
            (*so_shield_depth(&c->mt))++; /* counted in the innermost scope */
            break;
        case OP_SHIELD_END:
            r = tr_shield_end();
            TRACE("[%s %d] shield_end -> %d\n", kind_name(c->kind), c->idx, r);
            if (*so_shield_depth(&c->mt) == 0) {
                /* None open, or its begin was outside the innermost scope. */
                FZ_CHECK(r == -EINVAL, "unbalanced tr_shield_end = %d (%d open, %u in scopes)", r,
                         *c->shieldp, c->mt.depth);
            } else {
                FZ_CHECK(r == *c->shieldp - 1, "tr_shield_end = %d at depth %d", r, *c->shieldp);
                (*c->shieldp)--;
                (*so_shield_depth(&c->mt))--;
            }
            break;
        case OP_YIELD:
            mc = fz_pre(c);
            r = tr_yield();
            TRACE("[%s %d] yield -> %d\n", kind_name(c->kind), c->idx, r);
            check_res(c, "yield", r, 0, 0, 0, &mc);
            break;
        case OP_JOIN:
            op_join(c);
            break;
        case OP_DETACH:
            op_detach(c);
            break;
        case OP_AT_SHUTDOWN:
            op_at_shutdown(c);
            break;
        case OP_SHUTDOWN: {
            uint8_t f = next(c);
            if (f & 1)
                FZ_CHECK(tr_engine_shutdown(NULL) == -EINVAL, "tr_engine_shutdown(NULL)");
            r = tr_engine_shutdown(tr_self_engine());
            TRACE("[%s %d] shutdown -> %d\n", kind_name(c->kind), c->idx, r);
            FZ_CHECK(r == 0, "tr_engine_shutdown = %d", r);
            break;
        }
        case OP_WAIT_SHUTDOWN: {
            bool sd = tr_shutting_down();
            mc = fz_pre(c);
            r = tr_wait_shutdown();
            TRACE("[%s %d] wait_shutdown -> %d\n", kind_name(c->kind), c->idx, r);
            if (sd)
                FZ_CHECK(r == 0, "tr_wait_shutdown during a shutdown = %d", r);
            else
                check_res(c, "wait_shutdown", r, 0, 0, 0, &mc);
            if (r == 0)
                FZ_CHECK(tr_shutting_down(), "tr_wait_shutdown = 0 before any shutdown");
            break;
        }
        case OP_MISC:
            op_misc(c);
            break;
        case OP_RETURN: {
            static const int vals[4] = {0, 7, -ECANCELED, -EIO};
            return vals[next(c) & 3];
        }
        case OP_CANCEL_SELF:
            r = tr_cancel(tr_self());
            TRACE("[%s %d] cancel_self -> %d\n", kind_name(c->kind), c->idx, r);
            FZ_CHECK(r == 0, "tr_cancel(self) = %d", r);
            FZ_CHECK(tr_is_cancelled(), "cancelled itself, but tr_is_cancelled() is false");
            break;
        case OP_FSYNC:
            op_fsync(c);
            break;
        case OP_TASK_RESULT:
            op_task_result(c);
            break;
        case OP_SCOPE_ENTER:
            op_scope_enter(c);
            break;
        case OP_SCOPE_EXIT:
            op_scope_exit(c);
            break;
        case OP_SCOPE_CANCEL:
        case OP_SCOPE_MOVE:
            op_scope_poke(c, op == OP_SCOPE_CANCEL);
            break;
        case OP_SCOPE_LEAVE:
            c->leave = !c->leave;
            break;
        case OP_SEM:
        case OP_MUTEX:
        case OP_COND:
        case OP_EVENT:
        case OP_CHAN:
        case OP_GROUP:
            fz_sync_op(c, op - OP_SEM);
            break;
        }
    }
    return 0;
}

/* ------------------------------------------------------------- the run */

static void make_fds(void)
{
    FZ_CHECK(pipe2(S.p0, O_CLOEXEC) == 0, "pipe2: %s", strerror(errno));
    FZ_CHECK(pipe2(S.p1, O_CLOEXEC) == 0, "pipe2: %s", strerror(errno));
    FZ_CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, S.sv) == 0, "socketpair: %s",
             strerror(errno));
    S.mfd = memfd_create("fuzz_api", MFD_CLOEXEC);
    FZ_CHECK(S.mfd >= 0, "memfd_create: %s", strerror(errno));
}

static void close_fds(void)
{
    int fds[] = {S.p0[0], S.p0[1], S.p1[0], S.p1[1], S.sv[0], S.sv[1], S.mfd};
    for (size_t i = 0; i < sizeof(fds) / sizeof(fds[0]); i++)
        FZ_CHECK(close(fds[i]) == 0, "closing fd %d: %s", fds[i], strerror(errno));
}

static int pending_bytes(int fd)
{
    int n = -1;
    FZ_CHECK(ioctl(fd, FIONREAD, &n) == 0, "FIONREAD: %s", strerror(errno));
    return n;
}

/* G2 on a stopped engine. */
static void audit(const char *when)
{
    struct tr_stats st = stats_now();
    tr_engine *e = S.e;
#define AUD(c) FZ_CHECK(c, "audit %s failed", when)
    AUD(st.tasks_live == 0);
    AUD(st.ops_inflight == 0);
    AUD(st.engine_ops_inflight == 0);
    AUD(st.ops_submitted == st.ops_completed);
    AUD(st.tasks_spawned == st.tasks_ok + st.tasks_cancelled + st.tasks_failed + st.tasks_killed);
    AUD(st.timers_pending == 0);
    AUD(e->sw.inflight == 0);
    AUD(tr__ring_sq_pending(e) == 0);
    AUD(tr__ring_cq_empty(e));
#undef AUD
    /* G10: the scopes left entered are those left on purpose and those
     * tasks were inside when killed (never resumed, so never returned). */
    uint64_t killed = 0;
    for (int i = 0; i < S.nctx; i++)
        if (S.ctx[i].started && !S.ctx[i].returned)
            killed += S.ctx[i].mt.depth;
    FZ_CHECK(st.scopes_left == S.scopes_left + killed,
             "audit %s: scopes_left %llu, left on purpose %llu + inside killed tasks %llu", when,
             (unsigned long long)st.scopes_left, (unsigned long long)S.scopes_left,
             (unsigned long long)killed);
    FZ_CHECK(st.deadline_cuts == S.etimedout,
             "audit %s: deadline_cuts %llu, but the programs saw -ETIMEDOUT %llu times", when,
             (unsigned long long)st.deadline_cuts, (unsigned long long)S.etimedout);
}

/* G5: every byte a write reported is either read (as reported) or still
 * in the pipe. Only without killed tasks: a killed task's completed op is
 * never seen by it. */
static void check_accounting(void)
{
    struct tr_stats st = stats_now();
    if (st.tasks_killed > 0)
        return;
    const int rd[4] = {S.p0[0], S.p1[0], S.sv[1], S.sv[0]};
    for (int ch = 0; ch < 4; ch++) {
        int left = pending_bytes(rd[ch]);
        FZ_CHECK(S.wrote[ch] == S.got[ch] + (uint64_t)left,
                 "channel %d: %llu bytes written, %llu read, %d left: bytes lost or invented", ch,
                 (unsigned long long)S.wrote[ch], (unsigned long long)S.got[ch], left);
    }
}

static void release_handle(tr_task **tp, const char *what)
{
    int res;
    FZ_CHECK(tr_task_result(*tp, &res) == 0, "%s has no result after the run", what);
    FZ_CHECK(tr_detach(*tp) == 0, "tr_detach(%s) after the run failed", what);
    *tp = NULL;
}

static void second_run(void)
{
    struct pctx *c = new_ctx(K_AFTER, NULL, 0);
    tr_task *t = NULL;
    int r = tr_spawn(S.e, &t, after_main, c, NULL);
    FZ_CHECK(r == 0, "tr_spawn after the shutdown = %d", r);
    r = tr_engine_run(S.e);
    FZ_CHECK(r == 0, "second tr_engine_run = %d", r);
    FZ_CHECK(c->returned && c->ret == 0, "the task of the second run did not finish");
    release_handle(&t, "the second run's task");
    audit("after the second run");
}

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void print_totals(void)
{
    fprintf(
        stderr,
        "fuzz_api: %llu inputs: scopes entered %llu, -ETIMEDOUT results %llu, deadline moves "
        "%llu, tr_scope_cancel %llu, exits -ETIMEDOUT %llu -ECANCELED %llu, left entered %llu\n",
        (unsigned long long)T.inputs, (unsigned long long)T.scopes, (unsigned long long)T.etimedout,
        (unsigned long long)T.moves, (unsigned long long)T.cancels, (unsigned long long)T.exits_t,
        (unsigned long long)T.exits_c, (unsigned long long)T.left);
    fprintf(stderr,
            "fuzz_api: primitive and group ops %llu, messages received %llu, groups waited %llu, "
            "real failures listed %llu, groups abandoned %llu, messages lost to killed receivers "
            "(kill_msgs_lost) %llu\n",
            (unsigned long long)T.sync_ops, (unsigned long long)T.msgs,
            (unsigned long long)T.groups, (unsigned long long)T.gfails,
            (unsigned long long)T.abandoned, (unsigned long long)T.killbuf);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    signal(SIGPIPE, SIG_IGN);
    const char *t = getenv("FUZZ_TRACE");
    trace = t && *t && *t != '0';
    t = getenv("FUZZ_JOIN_WINDOW");
    join_window = !(t && *t == '0');
    t = getenv("FUZZ_FINAL_SHIELD");
    final_shield = !(t && *t == '0');
    atexit(print_totals);
    /* G7 outside tasks: -EPERM, nothing done. */
    char b[4];
    FZ_CHECK(tr_nop() == -EPERM, "tr_nop outside a task");
    FZ_CHECK(tr_yield() == -EPERM, "tr_yield outside a task");
    FZ_CHECK(tr_sleep_ns(1) == -EPERM, "tr_sleep_ns outside a task");
    FZ_CHECK(tr_read(0, b, sizeof(b), -1) == -EPERM, "tr_read outside a task");
    FZ_CHECK(tr_close(-1) == -EPERM, "tr_close outside a task");
    FZ_CHECK(tr_shield_begin() == -EPERM, "tr_shield_begin outside a task");
    FZ_CHECK(tr_shield_end() == -EPERM, "tr_shield_end outside a task");
    FZ_CHECK(tr_join(NULL, NULL) == -EPERM, "tr_join outside a task");
    FZ_CHECK(tr_cancel_all(NULL, 0, 0) == -EPERM, "tr_cancel_all outside a task");
    FZ_CHECK(tr_wait_shutdown() == -EPERM, "tr_wait_shutdown outside a task");
    FZ_CHECK(tr_at_shutdown(hook_main, NULL) == -EPERM, "tr_at_shutdown outside a task");
    struct tr_scope sc;
    memset(&sc, 0, sizeof(sc));
    FZ_CHECK(tr_scope_enter(&sc, 0, 0) == -EPERM, "tr_scope_enter outside a task");
    FZ_CHECK(tr_scope_exit(&sc) == -EPERM, "tr_scope_exit outside a task");
    FZ_CHECK(tr_scope_cancel(&sc) == -EINVAL, "tr_scope_cancel of a scope never entered");
    FZ_CHECK(tr_now_ns() > 0, "tr_now_ns");
    FZ_CHECK(tr_spawn(NULL, NULL, worker_main, NULL, NULL) == -EINVAL, "tr_spawn(NULL engine)");
    FZ_CHECK(tr_engine_run(NULL) == -EINVAL, "tr_engine_run(NULL)");
    FZ_CHECK(tr_engine_destroy(NULL) == -EINVAL, "tr_engine_destroy(NULL)");
    FZ_CHECK(!tr_is_cancelled() && !tr_shutting_down() && tr_self() == NULL, "outside a task");
    fz_sync_outside();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > FZ_MAX_INPUT)
        size = FZ_MAX_INPUT;
    memset(&S, 0, sizeof(S));
    fz_sync_reset();
    T.inputs++;
    int fds_before = count_fds();

    uint8_t h0 = size > 0 ? data[0] : 0, h1 = size > 1 ? data[1] : 0;
    size_t hdr = size < 2 ? size : 2;
    /* A copy of exactly the program: ASan sees any read past its end. */
    S.len = size - hdr;
    S.buf = malloc(S.len ? S.len : 1);
    FZ_CHECK(S.buf != NULL, "malloc");
    if (S.len)
        memcpy(S.buf, data + hdr, S.len);

    static const unsigned sqs[8] = {1, 2, 4, 8, 16, 8, 16, 4};
    static const unsigned graces[4] = {0, 2, 5, 10};
    static const unsigned kills[4] = {0, 1, 3, 5};
    static const unsigned drains[4] = {0, 0, 1, 2};
    struct tr_config cfg;
    tr_config_init(&cfg);
    cfg.flags = TR_CFG_NO_SIGNALS;
    cfg.report_fd = -1;
    cfg.sq_entries = sqs[h0 & 7];
    cfg.grace_ms = graces[(h0 >> 3) & 3];
    cfg.kill_ms = kills[(h0 >> 5) & 3];
    cfg.drain_ms = drains[h1 & 3];
    if (h1 & 4)
        cfg.cq_entries = cfg.sq_entries;
    bool again = (h0 & 0x80) != 0;
    TRACE("=== input: %zu bytes, sq %u cq %u grace %u kill %u drain %u%s\n", size, cfg.sq_entries,
          cfg.cq_entries, cfg.grace_ms, cfg.kill_ms, cfg.drain_ms, again ? ", second run" : "");

    make_fds();
    int r = tr_engine_create(&S.e, &cfg);
    FZ_CHECK(r == 0, "tr_engine_create = %d", r);

    struct tr_spawn_opts bo = {.name = "backstop"};
    r = tr_spawn(S.e, &S.backstop, backstop_main, NULL, &bo);
    FZ_CHECK(r == 0, "spawning the backstop = %d", r);
    struct pctx *drv = new_ctx(K_DRIVER, S.buf, S.len);
    struct tr_spawn_opts dopt = {.name = "driver"};
    r = tr_spawn(S.e, &S.driver, driver_main, drv, &dopt);
    FZ_CHECK(r == 0, "spawning the driver = %d", r);
    r = tr_engine_destroy(S.e);
    FZ_CHECK(r == -EBUSY, "tr_engine_destroy with live tasks = %d", r);

    r = tr_engine_run(S.e);
    FZ_CHECK(r == 0, "tr_engine_run = %d", r);

    FZ_CHECK(drv->started, "the driver never ran");
    release_handle(&S.driver, "the driver");
    release_handle(&S.backstop, "the backstop");
    for (int i = 0; i < S.nworkers; i++) {
        struct handle *h = &S.h[i];
        if (h->state != H_OWNED && h->state != H_JOINING)
            continue;
        int res;
        FZ_CHECK(tr_task_result(h->t, &res) == 0, "worker %d alive after the run", h->target->idx);
        check_join_result(h->target, res, "tr_task_result after the run");
        r = tr_detach(h->t);
        FZ_CHECK(r == 0, "tr_detach(handle %d) after the run = %d", i, r);
        h->state = H_GONE;
        h->t = NULL;
    }
    audit("after the run");
    check_accounting();
    fz_sync_after_run();
    if (again)
        second_run();

    r = tr_engine_destroy(S.e);
    FZ_CHECK(r == 0, "tr_engine_destroy = %d", r);
    S.e = NULL;
    close_fds();
    free(S.buf);
    S.buf = NULL;
    int fds_after = count_fds();
    FZ_CHECK(fds_after == fds_before, "fd leak: %d fds before the input, %d after", fds_before,
             fds_after);
    return 0;
}
