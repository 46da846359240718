/*
 * taskring-stress — a seeded random workload, ended again and again by real
 * signals, with an audit after every round.
 *
 *   taskring-stress --seconds N [--seed S] [--verbose]
 *
 * One PRNG (splitmix64) seeded from S drives every choice (timing still
 * varies, so a seed reproduces the workload's shape, not its interleaving).
 * The run is a sequence of rounds. Each round builds a fresh engine (either
 * create/run/destroy or tr_run), spawns thousands of tasks doing mixed ops
 * on pipes, socketpairs, loopback TCP, temp files and timers, cancels them
 * at random (tr_cancel, tr_cancel_all with and without TR_CANCEL_WAIT,
 * self-cancels), uses shields, joins, spawns from tasks, TR_SPAWN_LATE tasks
 * and tr_at_shutdown hooks doing I/O. After 1-4 s a REAL signal
 * (kill(getpid(), SIGTERM or SIGINT), from a task or from a helper thread)
 * starts the shutdown; sometimes a 2nd and 3rd follow, so the ladder's
 * rungs (break shields, kill) run with short grace_ms/kill_ms.
 *
 * After each round: the quiescence audit (create/run/destroy rounds read
 * the engine after tr_engine_run; every round also snapshots the stats in
 * the last at_shutdown hook), conservation of tasks (the engine's counts
 * match the tool's own bookkeeping), no fd leak (/proc/self/fd as before the
 * round; an fd that a KILLED task was accepting or opening when its op won
 * the race is the documented leak and is identified and closed), the signal
 * mask as before, and byte conservation on every stream.
 *
 * Stream accounting. A writer adds what the kernel accepted (results > 0);
 * a reader adds what it got, checking each byte against the stream's PRNG
 * pattern. The length of an op in flight is kept while it is in flight, so
 * a task killed there (its result is never seen) widens the bounds by
 * exactly that op. After the round every writer end is closed and every
 * reader end still open is drained to EOF with nonblocking read(2). Then:
 * received <= sent always; received == sent == planned on clean streams
 * (neither side cancelled nor killed); received == sent when the reader saw
 * EOF (the writer closes its end only after its last op); and, when the
 * reader end was kept open until the drain, received + drained == sent
 * (within the in-flight bounds): no byte may be lost or invented by a
 * cancelled op.
 *
 * Also checked: G4 (a cancelled task's blocking calls fail with
 * -ECANCELED, a shield lets them work until the shutdown breaks it), G7
 * (bad input gets -errno), sleeps and timeout ops never end early, tasks
 * spawned during a shutdown (or cancelled before the run) start cancelled,
 * TR_SPAWN_LATE tasks are cancelled only after every other task ended,
 * at_shutdown hooks all run unless the hook task was killed, and
 * tr_engine_destroy refuses with -EBUSY while tasks are alive. Some
 * create/run/destroy rounds run the engine a second time after its
 * shutdown. A watchdog thread reports a round that lasts over 60 s as a
 * hang (with tr_engine_dump) and exits 1.
 *
 * Output: the seed first, a progress line each second, with --verbose a
 * line per round, "VIOLATION: <what> (round R, seed S)" and exit 1 on the
 * first round that fails, else the summary line and exit 0.
 *
 * Killed tasks leak what they own (the contract), so every fd the workload
 * creates lives in a round-level table that the round's cleanup closes, and
 * every buffer the kernel may touch is a heap buffer owned by the round.
 */
#include "taskring.h"
#include "tr_internal.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

/* ------------------------------------------------------------- limits */

#define MAX_LIVE 4800     /* the tool's tasks alive at once */
#define FD_SOFT 250       /* fds the workload may hold at once (admission) */
#define FD_HARD 1024      /* the table's size: never reached under FD_SOFT */
#define BUF_SZ 16384      /* stream and file buffers */
#define MAX_STREAMS 20000 /* per round */
#define MAX_HOOKS 24      /* per round */
#define MAX_DEPTH 3       /* spawn depth below the orchestrator */
#define WATCHDOG_S 60     /* a round longer than this is a hang */
#define MS (1000000ull)

/* ------------------------------------------------------------- PRNG */

static uint64_t g_rng; /* the one PRNG: only the engine thread draws */

static uint64_t mix64(uint64_t z)
{
    z += 0x9e3779b97f4a7c15ull;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static uint64_t rnd(void)
{
    uint64_t z = g_rng;
    g_rng += 0x9e3779b97f4a7c15ull;
    return mix64(z);
}

static uint64_t rbelow(uint64_t n)
{
    return n ? rnd() % n : 0;
}

static bool pct(unsigned p)
{
    return rbelow(100) < p;
}

/* Byte `off` of the stream with this seed. */
static void pat_fill(uint64_t seed, uint64_t off, uint8_t *p, size_t n)
{
    size_t i = 0;
    while (i < n) {
        uint64_t o = off + i;
        uint64_t w = mix64(seed ^ ((o >> 3) * 0xd1342543de82ef95ull));
        for (unsigned b = (unsigned)(o & 7); b < 8 && i < n; b++, i++)
            p[i] = (uint8_t)(w >> (b * 8));
    }
}

/* Returns n when p matches the pattern, else the index of the first
 * mismatching byte. */
static size_t pat_check(uint64_t seed, uint64_t off, const uint8_t *p, size_t n)
{
    size_t i = 0;
    while (i < n) {
        uint64_t o = off + i;
        uint64_t w = mix64(seed ^ ((o >> 3) * 0xd1342543de82ef95ull));
        for (unsigned b = (unsigned)(o & 7); b < 8 && i < n; b++, i++)
            if (p[i] != (uint8_t)(w >> (b * 8)))
                return i;
    }
    return n;
}

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void sleep_ms(unsigned ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

/* ------------------------------------------------------------- globals */

static uint64_t g_seed;
static bool g_verbose;
static char g_dir[64];     /* our directory under /tmp */
static bool g_tmpfile_ok;  /* O_TMPFILE works in g_dir */
static uint64_t g_t_start; /* the run's start */
static int g_devnull = -1; /* for tr_engine_dump */

/* Read by the progress thread. */
static _Atomic uint64_t g_round, g_tasks, g_ops, g_cancels, g_shutdowns, g_signals;
static _Atomic uint64_t g_round_start; /* ns; 0 between rounds */
static _Atomic int g_stop;
static _Atomic(tr_engine *) g_engine; /* the current round's engine (for the watchdog) */

static void opc(void)
{
    atomic_fetch_add_explicit(&g_ops, 1, memory_order_relaxed);
}

/* ------------------------------------------------------------- records */

enum kind {
    K_ORCH = 0, /* the round's orchestrator (tr_run's main) */
    K_SIG,      /* sends the round's signals */
    K_TIMER,    /* sleeps, nops, yields, timeout ops, spawns, hooks */
    K_FILE,     /* temp file: openat, write, fsync, read back, close */
    K_STREAM,   /* makes a stream, spawns its writer and reader, supervises */
    K_WRITER,
    K_READER,
    K_ACCEPTOR, /* accepts on the round's listener, reads until EOF */
    K_CLIENT,   /* connects to the round's listener, sends, closes */
    K_SUPER,    /* spawns children with handles, cancels some, joins all */
    K_CALL,     /* tr_cancel_all */
    K_SELF,     /* cancels itself; checks G4 and G7 */
    K_STUB,     /* ignores cancellation inside shields: only Kill ends it */
    K_LATE,     /* TR_SPAWN_LATE: I/O after the stop, checks the LATE order */
    K_SPAWNCHK, /* spawned during the shutdown: must start cancelled */
    K__COUNT
};

static const char *const kind_names[K__COUNT] = {
    "orchestrator", "signaller",   "timer",    "file",   "stream",
    "writer",       "reader",      "acceptor", "client", "supervisor",
    "cancel-all",   "self-cancel", "stubborn", "late",   "spawn-check",
};

enum { SS_NEW = 0, SS_RUN, SS_CLEAN, SS_DIRTY };
enum { SK_PIPE = 0, SK_UNIX, SK_TCP };
static const char *const sk_names[] = {"pipe", "socketpair", "tcp"};

struct stream {
    uint64_t seed, planned;
    uint64_t sent;      /* bytes the kernel accepted from the writer */
    uint64_t recvd;     /* bytes the reader got */
    uint64_t drained;   /* bytes read after the round */
    uint32_t w_pending; /* the writer's op in flight (its length), else 0 */
    uint32_t r_pending; /* the reader's */
    int wslot, rslot;   /* fd table slots while the ends are open, else -1 */
    uint8_t kind, wstate, rstate;
    bool eof, abandoned, kept, drained_ok, waitall;
};

enum { FR_FREE = 0, FR_OTHER, FR_W, FR_R, FR_LISTEN };

struct fdent {
    int fd;
    uint8_t role;
    int stream;
};

enum { HK_AUDIT = 0, HK_PIPE, HK_FILE, HK_SLEEP, HK_SLOW, HK_SPAWN, HK__COUNT };
#define MAX_TASK_HOOKS 16 /* registered by tasks; hooks register up to MAX_HOOKS */

struct round;

struct hctx {
    struct round *r;
    uint8_t kind;
    bool started, done, in_open;
    uint64_t seed;
    struct hctx *next;
    uint8_t buf[4096];
};

struct tctx {
    struct round *r;
    uint8_t kind;
    uint8_t state; /* 0 spawned, 1 running, 2 returned */
    uint8_t depth;
    bool late, in_accept, in_open;
    int resv; /* fd table slots reserved by this task */
    int stream;
    uint8_t *buf; /* BUF_SZ, from the round's pool */
    struct __kernel_timespec ts;
    struct sockaddr_in sa;
    struct tctx *next_free;
    char path[96];
    uint8_t small[256];
};

struct round {
    unsigned no;
    /* the plan */
    unsigned dur_ms, nsig, gap_ms[3], grace_ms, kill_ms, drain_ms, sq, target, nstub, nlate;
    unsigned ncall;
    uint64_t call_at[3];
    int sig[3];
    bool trrun, thread_sig, preblock, late_sig, hooks_stubborn;
    size_t stack_size;
    uint64_t t0;
    tr_engine *e;

    /* tasks: every record ever allocated (freed after the round), and the
     * records of returned tasks ready for reuse */
    struct tctx **all;
    size_t nall, capall;
    struct tctx *freel;
    uint64_t spawned, returned, ok, cancelled, failed, live_nonlate;
    tr_task *except[2];
    size_t nexcept;
    unsigned cancel_alls, acceptors, calls_done, late_checks, late_live, reruns;
    uint64_t cancels; /* tr_cancel calls that hit, and tasks cancel_all hit */

    /* fds */
    struct fdent fds[FD_HARD];
    int freeslots[FD_HARD];
    int nfree, used, reserved;
    int lslot;
    struct sockaddr_in laddr;
    uint8_t lports[65536 / 8]; /* ports our listeners had: accepted sockets show them */

    /* streams */
    struct stream *st;
    size_t nst;

    /* buffers */
    uint8_t *bfree;
    uint8_t **ball;
    size_t nball, capball;

    /* hooks */
    struct hctx *hooks;
    unsigned hooks_reg, hooks_started, hooks_done;
    bool audit_done, have_est;
    struct tr_stats audit, est;
    uint64_t audit_spawned, audit_returned, audit_ok, audit_cancelled, audit_failed;
    uint64_t audit_hooks_reg;

    /* signals */
    _Atomic unsigned sigs_sent;
    pthread_t thr;
    bool thr_started;

    unsigned files;
    unsigned nviol;
    char viol[4][320];
};

static void viol(struct round *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void viol(struct round *r, const char *fmt, ...)
{
    if (r->nviol < 4) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(r->viol[r->nviol], sizeof(r->viol[0]), fmt, ap);
        va_end(ap);
    }
    r->nviol++;
}

/* ------------------------------------------------------------- buffers */

static uint8_t *buf_get(struct round *r)
{
    uint8_t *b = r->bfree;
    if (b) {
        memcpy(&r->bfree, b, sizeof(r->bfree));
        return b;
    }
    if (r->nball == r->capball) {
        size_t cap = r->capball ? r->capball * 2 : 64;
        uint8_t **n = realloc(r->ball, cap * sizeof(*n));
        if (!n)
            return NULL;
        r->ball = n;
        r->capball = cap;
    }
    b = malloc(BUF_SZ);
    if (b)
        r->ball[r->nball++] = b;
    return b;
}

static void buf_put(struct round *r, uint8_t *b)
{
    memcpy(b, &r->bfree, sizeof(r->bfree));
    r->bfree = b;
}

/* ------------------------------------------------------------- fd table */

/* Reserves n slots for the task's next fds, or refuses (0). */
static int fdt_admit(struct tctx *c, int n)
{
    struct round *r = c->r;
    if (r->used + r->reserved + n > FD_SOFT)
        return 0;
    r->reserved += n;
    c->resv += n;
    return 1;
}

static void fdt_release(struct tctx *c)
{
    c->r->reserved -= c->resv;
    c->resv = 0;
}

/* Registers fd (no park between its creation and this call). */
static int fdt_reg(struct round *r, struct tctx *c, int fd, int role, int stream)
{
    if (c && c->resv > 0) {
        c->resv--;
        r->reserved--;
    }
    if (r->nfree == 0) {
        close(fd);
        viol(r, "fd table full (%d fds)", r->used);
        return -1;
    }
    int s = r->freeslots[--r->nfree];
    r->fds[s] = (struct fdent){fd, (uint8_t)role, stream};
    r->used++;
    return s;
}

static int fdt_take(struct round *r, int slot)
{
    int fd = r->fds[slot].fd;
    r->fds[slot] = (struct fdent){-1, FR_FREE, -1};
    r->freeslots[r->nfree++] = slot;
    r->used--;
    return fd;
}

/* Unregisters, then closes with tr_close (never cancelled: even a task
 * killed while parked in it has its fd closed). */
static int tclose(struct round *r, int slot)
{
    if (slot < 0)
        return 0;
    int fd = fdt_take(r, slot);
    int rc = tr_close(fd);
    opc();
    if (rc == -ENOMEM || rc == -EBUSY) { /* never submitted */
        close(fd);
        rc = 0;
    } else if (rc < 0) {
        viol(r, "tr_close(%d) = %s", fd, strerror(-rc));
    }
    return rc;
}

static int fd_of(struct round *r, int slot)
{
    return r->fds[slot].fd;
}

static int listen_socket(struct round *r, struct sockaddr_in *addr)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    struct sockaddr_in a = {.sin_family = AF_INET};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(a);
    if (bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(fd, 1024) < 0 ||
        getsockname(fd, (struct sockaddr *)&a, &len) < 0) {
        int err = -errno;
        close(fd);
        return err;
    }
    uint16_t port = ntohs(a.sin_port);
    r->lports[port / 8] |= (uint8_t)(1u << (port % 8));
    *addr = a;
    return fd;
}

/* ------------------------------------------------------------- spawning */

static int task_main(void *arg);

static struct tctx *ctx_get(struct round *r)
{
    struct tctx *c = r->freel;
    if (c) {
        r->freel = c->next_free;
    } else {
        if (r->nall == r->capall) {
            size_t cap = r->capall ? r->capall * 2 : 1024;
            struct tctx **n = realloc(r->all, cap * sizeof(*n));
            if (!n)
                return NULL;
            r->all = n;
            r->capall = cap;
        }
        c = malloc(sizeof(*c));
        if (!c)
            return NULL;
        r->all[r->nall++] = c;
    }
    memset(c, 0, offsetof(struct tctx, path));
    c->r = r;
    c->stream = -1;
    return c;
}

static void ctx_put(struct round *r, struct tctx *c)
{
    c->state = 2;
    c->next_free = r->freel;
    r->freel = c;
}

/* opt: an optional spawn, refused at MAX_LIVE; essential ones (a stream's
 * two ends) may exceed it by a little. */
static int spawn_kind(struct round *r, tr_engine *e, tr_task **out, int kind, unsigned flags,
                      unsigned depth, int stream, bool opt)
{
    if (opt && r->spawned - r->returned >= MAX_LIVE)
        return -EAGAIN;
    struct tctx *c = ctx_get(r);
    if (!c)
        return -ENOMEM;
    c->kind = (uint8_t)kind;
    c->late = (flags & TR_SPAWN_LATE) != 0;
    c->depth = (uint8_t)depth;
    c->stream = stream;
    struct tr_spawn_opts o = {.name = kind_names[kind], .stack_size = 0, .flags = flags};
    if (pct(8)) /* an odd size: its own mapping, not a pooled slab stack */
        o.stack_size = 32 * 1024 + rbelow(40000);
    int err = tr_spawn(e, out, task_main, c, &o);
    if (err) {
        ctx_put(r, c);
        viol(r, "tr_spawn(%s) = %s", kind_names[kind], strerror(-err));
        return err;
    }
    if (kind == K_ACCEPTOR)
        r->acceptors++;
    if (kind == K_LATE)
        r->late_live++;
    r->spawned++;
    if (!c->late)
        r->live_nonlate++;
    atomic_fetch_add_explicit(&g_tasks, 1, memory_order_relaxed);
    return 0;
}

static void cancel_checked(struct round *r, tr_task *t)
{
    int rc = tr_cancel(t);
    if (rc == 0) {
        r->cancels++;
        atomic_fetch_add_explicit(&g_cancels, 1, memory_order_relaxed);
    } else if (rc != -ESRCH) {
        viol(r, "tr_cancel = %s", strerror(-rc));
    }
}

/* Joins a child we own; on -ECANCELED maybe retries inside a shield, else
 * gives the handle up with tr_detach. Returns 0 or -ECANCELED. */
static int join_child(struct round *r, tr_task *t)
{
    int res = 0;
    int rc = tr_join(t, &res);
    opc();
    if (rc == -ECANCELED && pct(50)) {
        tr_shield_begin();
        rc = tr_join(t, &res);
        opc();
        tr_shield_end();
    }
    if (rc == -ECANCELED) {
        int d = tr_detach(t);
        if (d != 0)
            viol(r, "tr_detach after a cancelled tr_join = %s", strerror(-d));
        return -ECANCELED;
    }
    if (rc != 0) {
        viol(r, "tr_join = %s", strerror(-rc));
        return -EIO;
    }
    if (res != 0 && res != -ECANCELED && res != -EIO /* -EIO: a violation already recorded */)
        viol(r, "a child ended with %d (%s)", res, strerror(-res));
    return 0;
}

static int pick_kind(struct round *r, unsigned depth)
{
    unsigned x = (unsigned)rbelow(100);
    if (x < 48)
        return K_TIMER;
    if (x < 62)
        return K_STREAM;
    if (x < 70)
        return K_FILE;
    if (x < 77)
        return K_CLIENT;
    if (x < 80)
        return r->acceptors < 12 ? K_ACCEPTOR : K_TIMER;
    if (x < 94)
        return depth < MAX_DEPTH ? K_SUPER : K_TIMER;
    return K_SELF;
}

/* ------------------------------------------------------------- hooks */

static void add_hook(struct round *r, uint8_t kind);

static int hook_fn(void *arg)
{
    struct hctx *h = arg;
    struct round *r = h->r;
    int res = 0;
    h->started = true;
    r->hooks_started++;
    switch (h->kind) {
    case HK_AUDIT:
        /* Registered first, so it runs last: every task has ended. */
        tr_engine_stats(tr_self_engine(), &r->audit);
        r->audit_spawned = r->spawned;
        r->audit_returned = r->returned;
        r->audit_ok = r->ok;
        r->audit_cancelled = r->cancelled;
        r->audit_failed = r->failed;
        r->audit_hooks_reg = r->hooks_reg;
        r->audit_done = true;
        break;
    case HK_PIPE: {
        int p[2];
        if (pipe2(p, O_CLOEXEC) < 0) {
            viol(r, "hook: pipe2: %s", strerror(errno));
            break;
        }
        int s0 = fdt_reg(r, NULL, p[0], FR_OTHER, -1);
        int s1 = fdt_reg(r, NULL, p[1], FR_OTHER, -1);
        if (s0 < 0 || s1 < 0)
            break;
        pat_fill(h->seed, 0, h->buf, 64);
        ssize_t w = tr_write(p[1], h->buf, 64, -1);
        opc();
        if (w == 64) {
            ssize_t g = tr_read(p[0], h->buf + 1024, 64, -1);
            opc();
            if (g == 64) {
                if (pat_check(h->seed, 0, h->buf + 1024, 64) != 64)
                    viol(r, "hook: pipe data mismatch");
            } else if (g != -ECANCELED) {
                viol(r, "hook: tr_read = %zd", g);
            } else {
                res = -ECANCELED;
            }
        } else if (w != -ECANCELED) {
            viol(r, "hook: tr_write = %zd", w);
        } else {
            res = -ECANCELED;
        }
        tclose(r, s0);
        tclose(r, s1);
        break;
    }
    case HK_FILE: {
        if (!g_tmpfile_ok)
            break;
        h->in_open = true;
        int fd = tr_openat(AT_FDCWD, g_dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
        opc();
        if (fd < 0) {
            h->in_open = false;
            if (fd == -ECANCELED)
                res = fd;
            else
                viol(r, "hook: tr_openat(O_TMPFILE) = %s", strerror(-fd));
            break;
        }
        int s = fdt_reg(r, NULL, fd, FR_OTHER, -1);
        h->in_open = false;
        if (s < 0)
            break;
        pat_fill(h->seed, 0, h->buf, 2048);
        ssize_t w = tr_write(fd, h->buf, 2048, 0);
        opc();
        if (w == 2048) {
            ssize_t g = tr_read(fd, h->buf + 2048, 2048, 0);
            opc();
            if (g == 2048) {
                if (pat_check(h->seed, 0, h->buf + 2048, 2048) != 2048)
                    viol(r, "hook: file data mismatch");
            } else if (g == -ECANCELED) {
                res = -ECANCELED;
            } else {
                viol(r, "hook: file tr_read = %zd", g);
            }
        } else if (w == -ECANCELED) {
            res = -ECANCELED;
        } else {
            viol(r, "hook: file tr_write = %zd", w);
        }
        tclose(r, s);
        break;
    }
    case HK_SLOW: {
        /* Holds the Finalize phase: a shielded sleep, then (sometimes)
         * ignoring the cancellation until the hook is killed. */
        tr_shield_begin();
        int z = tr_sleep_ns(rbelow(400 * MS));
        opc();
        tr_shield_end();
        if (z != 0 && z != -ECANCELED)
            viol(r, "hook: shielded tr_sleep_ns = %d", z);
        if (r->hooks_stubborn && pct(50)) {
            uint64_t end = now_ns() + 2000 * MS;
            for (unsigned i = 0; i < 10000000 && now_ns() < end; i++) {
                z = tr_sleep_ns(MS);
                opc();
                if (z != 0 && z != -ECANCELED)
                    viol(r, "hook: tr_sleep_ns = %d", z);
            }
        }
        break;
    }
    case HK_SPAWN: {
        /* A task spawned during the shutdown (here: Finalize) starts
         * cancelled; a hook may also register another hook. */
        tr_task *t;
        if (spawn_kind(r, NULL, &t, K_SPAWNCHK, 0, 1, -1, false) == 0)
            (void)join_child(r, t);
        if (r->hooks_reg < MAX_HOOKS)
            add_hook(r, (uint8_t)(HK_PIPE + rbelow(3)));
        break;
    }
    default: {
        int z = tr_sleep_ns(rbelow(2 * MS));
        opc();
        if (z == -ECANCELED)
            res = z;
        else if (z != 0)
            viol(r, "hook: tr_sleep_ns = %d", z);
        break;
    }
    }
    h->done = true;
    r->hooks_done++;
    return res;
}

static void add_hook(struct round *r, uint8_t kind)
{
    struct hctx *h = calloc(1, sizeof(*h));
    if (!h)
        return;
    h->r = r;
    h->kind = kind;
    h->seed = rnd();
    h->next = r->hooks;
    r->hooks = h;
    int rc = tr_at_shutdown(hook_fn, h);
    if (rc != 0)
        viol(r, "tr_at_shutdown = %s", strerror(-rc));
    else
        r->hooks_reg++;
}

/* ------------------------------------------------------------- workers */

static void prep_timeout(struct io_uring_sqe *sqe, void *arg)
{
    struct tctx *c = arg;
    io_uring_prep_timeout(sqe, &c->ts, 0, 0);
}

static int w_timer(struct tctx *c)
{
    struct round *r = c->r;
    unsigned n = 1 + (unsigned)rbelow(16);
    for (unsigned i = 0; i < n; i++) {
        unsigned what = (unsigned)rbelow(100);
        int z = 0;
        if (what < 42) {
            static const uint64_t pick[] = {0, 1000, 50000, 1000000, 3000000};
            uint64_t ns = pct(30) ? rbelow(20 * MS) : pick[rbelow(5)];
            uint64_t t0 = now_ns();
            z = tr_sleep_ns(ns);
            opc();
            uint64_t el = now_ns() - t0;
            if (z == 0 && el < ns)
                viol(r, "tr_sleep_ns(%" PRIu64 ") returned 0 after %" PRIu64 " ns", ns, el);
        } else if (what < 50) {
            /* A long sleep inside a shield: holds the shutdown's drain
             * until the grace period ends or the 2nd signal. */
            tr_shield_begin();
            uint64_t ns = rbelow(300 * MS), t0 = now_ns();
            z = tr_sleep_ns(ns);
            opc();
            if (z == 0 && now_ns() - t0 < ns)
                viol(r, "shielded tr_sleep_ns(%" PRIu64 ") returned early", ns);
            tr_shield_end();
        } else if (what < 60) {
            z = tr_nop();
            opc();
        } else if (what < 72) {
            z = tr_yield();
            opc();
        } else if (what < 82) {
            uint64_t ns = rbelow(3 * MS);
            c->ts.tv_sec = 0;
            c->ts.tv_nsec = (long long)ns;
            uint64_t t0 = now_ns();
            z = tr_op(prep_timeout, c);
            opc();
            uint64_t el = now_ns() - t0;
            if (z == -ETIME) {
                if (el < ns)
                    viol(r, "timeout op of %" PRIu64 " ns expired after %" PRIu64 " ns", ns, el);
                z = 0;
            }
        } else if (what < 92) {
            if (c->depth < MAX_DEPTH && r->spawned - r->returned < r->target)
                (void)spawn_kind(r, NULL, NULL, pick_kind(r, c->depth + 1u), 0, c->depth + 1u, -1,
                                 true);
        } else if (what < 96) {
            if (r->hooks_reg < MAX_TASK_HOOKS)
                add_hook(r, (uint8_t)(HK_PIPE + rbelow(HK__COUNT - HK_PIPE)));
        } else if (!tr_is_cancelled()) {
            /* G7: bad input gets -errno. */
            int rc;
            if ((rc = tr_join(tr_self(), NULL)) != -EINVAL)
                viol(r, "tr_join(self) = %d, want -EINVAL", rc);
            if ((rc = tr_shield_end()) != -EINVAL)
                viol(r, "unbalanced tr_shield_end = %d, want -EINVAL", rc);
            if ((rc = tr_cancel(NULL)) != -EINVAL)
                viol(r, "tr_cancel(NULL) = %d, want -EINVAL", rc);
            if ((rc = tr_detach(NULL)) != -EINVAL)
                viol(r, "tr_detach(NULL) = %d, want -EINVAL", rc);
            if ((rc = tr_spawn(NULL, NULL, NULL, NULL, NULL)) != -EINVAL)
                viol(r, "tr_spawn(fn NULL) = %d, want -EINVAL", rc);
            ssize_t b = tr_read(-1, c->small, 1, -1);
            opc();
            if (b != -EBADF && b != -ECANCELED)
                viol(r, "tr_read(-1) = %zd, want -EBADF", b);
            z = b == -ECANCELED ? -ECANCELED : 0;
        }
        if (z == -ECANCELED)
            return -ECANCELED;
        if (z != 0) {
            viol(r, "timer worker: op %u = %d (%s)", what, z, strerror(-z));
            return -EIO;
        }
    }
    return 0;
}

static int w_file(struct tctx *c)
{
    struct round *r = c->r;
    if (!fdt_admit(c, 1))
        return 0;
    c->buf = buf_get(r);
    if (!c->buf)
        return 0;
    bool named = !g_tmpfile_ok || pct(40);
    int flags = O_RDWR | O_CLOEXEC;
    if (named) {
        snprintf(c->path, sizeof(c->path), "%s/f%u-%u", g_dir, r->no, r->files++);
        flags |= O_CREAT | O_EXCL;
    } else {
        snprintf(c->path, sizeof(c->path), "%s", g_dir);
        flags |= O_TMPFILE;
    }
    c->in_open = true;
    int fd = tr_openat(AT_FDCWD, c->path, flags, 0600);
    opc();
    if (fd < 0) {
        c->in_open = false;
        if (fd == -ECANCELED)
            return fd;
        viol(r, "tr_openat(%s) = %s", c->path, strerror(-fd));
        return -EIO;
    }
    int slot = fdt_reg(r, c, fd, FR_OTHER, -1);
    c->in_open = false;
    if (slot < 0)
        return -EIO;
    uint64_t seed = rnd(), size = 0;
    int res = 0;
    unsigned n = 1 + (unsigned)rbelow(8);
    for (unsigned i = 0; i < n; i++) {
        size_t len = 1 + rbelow(BUF_SZ);
        pat_fill(seed, size, c->buf, len);
        ssize_t w = tr_write(fd, c->buf, len, (int64_t)size);
        opc();
        if (w == -ECANCELED) {
            res = -ECANCELED;
            break;
        }
        if (w <= 0 || (size_t)w > len) {
            viol(r, "file tr_write(%zu) = %zd", len, w);
            res = -EIO;
            break;
        }
        size += (uint64_t)w;
    }
    if (res == 0 && pct(30)) {
        int z = tr_fsync(fd);
        opc();
        if (z == -ECANCELED)
            res = z;
        else if (z != 0)
            viol(r, "tr_fsync = %s", strerror(-z));
    }
    for (uint64_t off = 0, it = 0; res == 0 && off < size && it < 1000; it++) {
        size_t len = 1 + rbelow(BUF_SZ);
        if (len > size - off)
            len = (size_t)(size - off);
        ssize_t g = tr_read(fd, c->buf, len, (int64_t)off);
        opc();
        if (g == -ECANCELED) {
            res = -ECANCELED;
            break;
        }
        if (g <= 0) {
            viol(r, "file tr_read(%zu at %" PRIu64 " of %" PRIu64 ") = %zd", len, off, size, g);
            res = -EIO;
            break;
        }
        size_t k = pat_check(seed, off, c->buf, (size_t)g);
        if (k != (size_t)g) {
            viol(r, "file data mismatch at offset %" PRIu64, off + k);
            res = -EIO;
            break;
        }
        off += (uint64_t)g;
    }
    tclose(r, slot);
    if (named)
        unlink(c->path);
    return res;
}

static int w_writer(struct tctx *c)
{
    struct round *r = c->r;
    struct stream *s = &r->st[c->stream];
    s->wstate = SS_RUN;
    c->buf = buf_get(r);
    int fd = fd_of(r, s->wslot);
    bool cancelled = false;
    for (unsigned it = 0; s->sent < s->planned && it < 100000 && c->buf; it++) {
        uint64_t left = s->planned - s->sent;
        size_t n = 1 + rbelow(pct(50) ? 512 : BUF_SZ);
        if (n > left)
            n = (size_t)left;
        unsigned pace = (unsigned)rbelow(100);
        int z = 0;
        if (pace < 8)
            z = tr_sleep_ns(rbelow(2 * MS));
        else if (pace < 14)
            z = tr_yield();
        if (pace < 14) {
            opc();
            if (z == -ECANCELED) {
                cancelled = true;
                break;
            }
        }
        pat_fill(s->seed, s->sent, c->buf, n);
        s->w_pending = (uint32_t)n;
        ssize_t w = s->kind == SK_PIPE
                        ? tr_write(fd, c->buf, n, -1)
                        : tr_send(fd, c->buf, n, MSG_NOSIGNAL | (s->waitall ? MSG_WAITALL : 0));
        opc();
        s->w_pending = 0;
        if (w > 0) {
            if ((size_t)w > n)
                viol(r, "stream writer: %zd bytes accepted of %zu", w, n);
            s->sent += (uint64_t)w;
            continue;
        }
        if (w == -ECANCELED) {
            cancelled = true;
            break;
        }
        if (w == -EPIPE || w == -ECONNRESET)
            break; /* the reader closed its end */
        viol(r, "stream writer (%s): %zd (%s)", sk_names[s->kind], w, strerror((int)-w));
        break;
    }
    if (cancelled && pct(30) && s->sent < s->planned && c->buf) {
        /* Cleanup I/O after the cancel: one more chunk inside a shield. */
        tr_shield_begin();
        size_t n = 1 + rbelow(1024);
        if (n > s->planned - s->sent)
            n = (size_t)(s->planned - s->sent);
        pat_fill(s->seed, s->sent, c->buf, n);
        s->w_pending = (uint32_t)n;
        ssize_t w =
            s->kind == SK_PIPE ? tr_write(fd, c->buf, n, -1) : tr_send(fd, c->buf, n, MSG_NOSIGNAL);
        opc();
        s->w_pending = 0;
        if (w > 0)
            s->sent += (uint64_t)w;
        else if (w != -ECANCELED && w != -EPIPE && w != -ECONNRESET)
            viol(r, "stream writer, shielded: %zd", w);
        tr_shield_end();
    }
    s->wstate = (!cancelled && s->sent == s->planned) ? SS_CLEAN : SS_DIRTY;
    int slot = s->wslot;
    s->wslot = -1;
    tclose(r, slot);
    return cancelled ? -ECANCELED : 0;
}

static int w_reader(struct tctx *c)
{
    struct round *r = c->r;
    struct stream *s = &r->st[c->stream];
    s->rstate = SS_RUN;
    c->buf = buf_get(r);
    int fd = fd_of(r, s->rslot);
    bool cancelled = false;
    for (unsigned it = 0; it < 1000000 && c->buf; it++) {
        if (pct(10)) {
            int p = tr_poll(fd, POLLIN);
            opc();
            if (p == -ECANCELED) {
                cancelled = true;
                break;
            }
            if (p < 0 || !(p & (POLLIN | POLLHUP | POLLERR | POLLRDHUP)))
                viol(r, "stream reader: tr_poll = %d", p);
        }
        size_t n = 1 + rbelow(pct(50) ? 512 : BUF_SZ);
        s->r_pending = (uint32_t)n;
        ssize_t g = s->kind == SK_PIPE ? tr_read(fd, c->buf, n, -1)
                                       : tr_recv(fd, c->buf, n, s->waitall ? MSG_WAITALL : 0);
        opc();
        s->r_pending = 0;
        if (g > 0) {
            size_t k = pat_check(s->seed, s->recvd, c->buf, (size_t)g);
            if (k != (size_t)g)
                viol(r, "stream %td (%s): data mismatch at offset %" PRIu64, s - r->st,
                     sk_names[s->kind], s->recvd + k);
            s->recvd += (uint64_t)g;
            if (s->recvd > s->sent + s->w_pending)
                viol(r, "stream %td (%s): received %" PRIu64 " > sent %" PRIu64 " (+%u in flight)",
                     s - r->st, sk_names[s->kind], s->recvd, s->sent, s->w_pending);
            continue;
        }
        if (g == 0) {
            s->eof = true;
            break;
        }
        if (g == -ECANCELED) {
            cancelled = true;
            break;
        }
        if (g == -ECONNRESET)
            break;
        viol(r, "stream reader (%s): %zd (%s)", sk_names[s->kind], g, strerror((int)-g));
        break;
    }
    if (cancelled && pct(30) && c->buf) {
        /* Cleanup I/O after the cancel: one more read inside a shield.
         * The writer either writes (it returns) or ends (EOF). */
        tr_shield_begin();
        size_t n = 1 + rbelow(1024);
        s->r_pending = (uint32_t)n;
        ssize_t g = s->kind == SK_PIPE ? tr_read(fd, c->buf, n, -1) : tr_recv(fd, c->buf, n, 0);
        opc();
        s->r_pending = 0;
        if (g > 0) {
            size_t k = pat_check(s->seed, s->recvd, c->buf, (size_t)g);
            if (k != (size_t)g)
                viol(r, "stream %td (%s): data mismatch at offset %" PRIu64 " (shielded read)",
                     s - r->st, sk_names[s->kind], s->recvd + k);
            s->recvd += (uint64_t)g;
        } else if (g == 0) {
            s->eof = true;
        } else if (g != -ECANCELED && g != -ECONNRESET) {
            viol(r, "stream reader, shielded: %zd", g);
        }
        tr_shield_end();
    }
    s->rstate = (s->eof && !cancelled) ? SS_CLEAN : SS_DIRTY;
    /* Keeping an end costs no new fd, only delays its close: during the
     * shutdown (no new streams) always affordable. */
    if (!s->eof && (tr_shutting_down() || r->used < FD_SOFT / 2) && pct(60)) {
        s->kept = true; /* left to the round: drained after it, exactly */
    } else {
        if (!s->eof)
            s->abandoned = true;
        int slot = s->rslot;
        s->rslot = -1;
        tclose(r, slot);
    }
    return cancelled ? -ECANCELED : 0;
}

static int w_stream(struct tctx *c)
{
    struct round *r = c->r;
    if (r->nst >= MAX_STREAMS)
        return 0;
    int kind = (int)rbelow(3);
    if (!fdt_admit(c, kind == SK_TCP ? 3 : 2))
        return 0;
    int rs = -1, ws = -1;
    if (kind == SK_PIPE) {
        int p[2];
        if (pipe2(p, O_CLOEXEC) < 0) {
            viol(r, "pipe2: %s", strerror(errno));
            return -EIO;
        }
        rs = fdt_reg(r, c, p[0], FR_OTHER, -1);
        ws = fdt_reg(r, c, p[1], FR_OTHER, -1);
    } else if (kind == SK_UNIX) {
        int sv[2];
        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
            viol(r, "socketpair: %s", strerror(errno));
            return -EIO;
        }
        rs = fdt_reg(r, c, sv[0], FR_OTHER, -1);
        ws = fdt_reg(r, c, sv[1], FR_OTHER, -1);
    } else {
        int lfd = listen_socket(r, &c->sa);
        if (lfd < 0) {
            viol(r, "listen: %s", strerror(-lfd));
            return -EIO;
        }
        int ls = fdt_reg(r, c, lfd, FR_OTHER, -1);
        int cfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (cfd < 0) {
            viol(r, "socket: %s", strerror(errno));
            tclose(r, ls);
            return -EIO;
        }
        ws = fdt_reg(r, c, cfd, FR_OTHER, -1);
        if (ls < 0 || ws < 0)
            return -EIO;
        int z = tr_connect(cfd, (struct sockaddr *)&c->sa, sizeof(c->sa));
        opc();
        if (z < 0) {
            if (z != -ECANCELED)
                viol(r, "tr_connect(stream) = %s", strerror(-z));
            tclose(r, ls);
            tclose(r, ws);
            fdt_release(c);
            return z == -ECANCELED ? z : -EIO;
        }
        c->in_accept = true;
        int afd = tr_accept(lfd, NULL, NULL, SOCK_CLOEXEC);
        opc();
        if (afd < 0) {
            c->in_accept = false;
            if (afd != -ECANCELED)
                viol(r, "tr_accept(stream) = %s", strerror(-afd));
            tclose(r, ls);
            tclose(r, ws);
            fdt_release(c);
            return afd == -ECANCELED ? afd : -EIO;
        }
        rs = fdt_reg(r, c, afd, FR_OTHER, -1);
        c->in_accept = false;
        tclose(r, ls);
        if (pct(50)) {
            int one = 1;
            setsockopt(cfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        }
    }
    if (rs < 0 || ws < 0)
        return -EIO;
    size_t idx = r->nst++;
    struct stream *s = &r->st[idx];
    memset(s, 0, sizeof(*s));
    s->kind = (uint8_t)kind;
    s->seed = rnd();
    unsigned sz = (unsigned)rbelow(100);
    s->planned = sz < 10   ? 0
                 : sz < 55 ? rbelow(4096)
                 : sz < 88 ? rbelow(65536)
                           : rbelow(512 * 1024);
    s->waitall = kind != SK_PIPE && pct(20);
    s->wslot = ws;
    s->rslot = rs;
    r->fds[ws].role = FR_W;
    r->fds[ws].stream = (int)idx;
    r->fds[rs].role = FR_R;
    r->fds[rs].stream = (int)idx;

    tr_task *hw = NULL, *hr = NULL;
    if (spawn_kind(r, NULL, &hw, K_WRITER, 0, c->depth + 1u, (int)idx, false) != 0)
        hw = NULL;
    if (spawn_kind(r, NULL, &hr, K_READER, 0, c->depth + 1u, (int)idx, false) != 0)
        hr = NULL;
    if (!hw || !hr)
        return -EIO; /* a violation is recorded; the round's cleanup closes the fds */

    /* Supervise: maybe cancel one side; when the reader ends dirty,
     * cancel the writer (which could wait forever for room). */
    unsigned plan = (unsigned)rbelow(100);
    int victim = plan < 20 ? 1 : plan < 40 ? 2 : 0;
    uint64_t cat = now_ns() + rbelow(30 * MS);
    bool prop = false, cancelled = false, both = false;
    for (unsigned it = 0; it < 20000; it++) {
        bool wend = s->wstate >= SS_CLEAN, rend = s->rstate >= SS_CLEAN;
        if (wend && rend) {
            both = true;
            break;
        }
        if (victim && now_ns() >= cat) {
            cancel_checked(r, victim == 1 ? hw : hr);
            victim = 0;
        }
        if (!prop && rend && s->rstate == SS_DIRTY && !wend) {
            cancel_checked(r, hw);
            prop = true;
        }
        int z = tr_sleep_ns(200000 + rbelow(3 * MS));
        opc();
        if (z == -ECANCELED) {
            cancelled = true;
            break;
        }
    }
    if (!both) {
        cancel_checked(r, hw);
        cancel_checked(r, hr);
    }
    bool first_w = pct(50);
    int j1 = join_child(r, first_w ? hw : hr);
    int j2 = join_child(r, first_w ? hr : hw);
    return (cancelled || j1 || j2) ? -ECANCELED : 0;
}

static int w_acceptor(struct tctx *c)
{
    struct round *r = c->r;
    int res = 0;
    for (unsigned i = 0; i < 32 && res == 0; i++) {
        if (!fdt_admit(c, 1)) {
            int z = tr_sleep_ns(2 * MS);
            opc();
            if (z == -ECANCELED)
                res = z;
            continue;
        }
        c->in_accept = true;
        int fd = tr_accept(fd_of(r, r->lslot), NULL, NULL, SOCK_CLOEXEC);
        opc();
        if (fd < 0) {
            c->in_accept = false;
            fdt_release(c);
            if (fd == -ECANCELED)
                res = fd;
            else if (fd != -ECONNABORTED) {
                viol(r, "acceptor: tr_accept = %s", strerror(-fd));
                res = -EIO;
            }
            continue;
        }
        int slot = fdt_reg(r, c, fd, FR_OTHER, -1);
        c->in_accept = false;
        if (slot < 0)
            return -EIO;
        for (unsigned k = 0; k < 64; k++) {
            ssize_t g = tr_recv(fd, c->small, sizeof(c->small), 0);
            opc();
            if (g > 0)
                continue;
            if (g == -ECANCELED)
                res = -ECANCELED;
            else if (g != 0 && g != -ECONNRESET)
                viol(r, "acceptor: tr_recv = %zd", g);
            break;
        }
        tclose(r, slot);
    }
    r->acceptors--;
    return res;
}

static int w_client(struct tctx *c)
{
    struct round *r = c->r;
    if (!fdt_admit(c, 1))
        return 0;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        viol(r, "socket: %s", strerror(errno));
        return -EIO;
    }
    int slot = fdt_reg(r, c, fd, FR_OTHER, -1);
    if (slot < 0)
        return -EIO;
    int res = 0;
    int z = tr_connect(fd, (struct sockaddr *)&r->laddr, sizeof(r->laddr));
    opc();
    if (z == -ECANCELED) {
        res = z;
    } else if (z < 0) {
        if (z != -ECONNREFUSED && z != -ETIMEDOUT && z != -ECONNRESET)
            viol(r, "client: tr_connect = %s", strerror(-z));
    } else {
        unsigned n = 1 + (unsigned)rbelow(3);
        for (unsigned i = 0; i < n; i++) {
            ssize_t w = tr_send(fd, c->small, 1 + rbelow(200), MSG_NOSIGNAL);
            opc();
            if (w == -ECANCELED) {
                res = -ECANCELED;
                break;
            }
            if (w < 0) {
                if (w != -EPIPE && w != -ECONNRESET)
                    viol(r, "client: tr_send = %zd", w);
                break;
            }
            if (pct(30)) {
                int y = tr_sleep_ns(rbelow(3 * MS));
                opc();
                if (y == -ECANCELED) {
                    res = y;
                    break;
                }
            }
        }
    }
    tclose(r, slot);
    return res;
}

static int w_super(struct tctx *c)
{
    struct round *r = c->r;
    tr_task *h[8];
    unsigned nh = 0, n = 2 + (unsigned)rbelow(5);
    for (unsigned i = 0; i < n; i++) {
        int k = pick_kind(r, c->depth + 1u);
        if (spawn_kind(r, NULL, &h[nh], k, 0, c->depth + 1u, -1, true) == 0)
            nh++;
    }
    int res = 0;
    int z = tr_sleep_ns(rbelow(20 * MS));
    opc();
    if (z == -ECANCELED)
        res = z;
    for (unsigned i = 0; i < nh; i++)
        if (res || pct(35))
            cancel_checked(r, h[i]);
    /* Join in a random order. */
    for (unsigned i = nh; i > 1; i--) {
        unsigned j = (unsigned)rbelow(i);
        tr_task *t = h[i - 1];
        h[i - 1] = h[j];
        h[j] = t;
    }
    for (unsigned i = 0; i < nh; i++) {
        if (join_child(r, h[i]) == -ECANCELED && res == 0) {
            res = -ECANCELED;
            for (unsigned k = i + 1; k < nh; k++)
                cancel_checked(r, h[k]);
        }
    }
    return res;
}

static int w_call(struct tctx *c)
{
    struct round *r = c->r;
    unsigned flags = pct(50) ? TR_CANCEL_WAIT : 0;
    bool sh = pct(20);
    if (sh)
        tr_shield_begin();
    r->cancel_alls++;
    int n = tr_cancel_all(r->except, r->nexcept, flags);
    opc();
    if (sh)
        tr_shield_end();
    if (n >= 0) {
        r->cancels += (unsigned)n;
        atomic_fetch_add_explicit(&g_cancels, (uint64_t)n, memory_order_relaxed);
        return 0;
    }
    if (n != -ECANCELED)
        viol(r, "tr_cancel_all = %s", strerror(-n));
    return n == -ECANCELED ? n : -EIO;
}

static int w_self(struct tctx *c)
{
    struct round *r = c->r;
    bool sh = pct(40);
    if (sh)
        tr_shield_begin();
    int rc = tr_cancel(tr_self());
    if (rc != 0)
        viol(r, "tr_cancel(self) = %d", rc);
    else
        atomic_fetch_add_explicit(&g_cancels, 1, memory_order_relaxed);
    if (!tr_is_cancelled())
        viol(r, "tr_is_cancelled() false after tr_cancel(self)");
    int z = tr_nop();
    opc();
    if (sh) {
        /* A shield lets blocking calls work, until shutdown breaks it. */
        if (z != 0 && !(z == -ECANCELED && tr_shutting_down()))
            viol(r, "tr_nop in a shield after a self-cancel = %d", z);
        tr_shield_end();
        z = tr_nop();
        opc();
    }
    if (z != -ECANCELED)
        viol(r, "tr_nop after a self-cancel = %d, want -ECANCELED (G4)", z);
    if ((z = tr_sleep_ns(MS)) != -ECANCELED)
        viol(r, "tr_sleep_ns after a self-cancel = %d, want -ECANCELED (G4)", z);
    if ((z = tr_yield()) != -ECANCELED)
        viol(r, "tr_yield after a self-cancel = %d, want -ECANCELED (G4)", z);
    opc();
    opc();
    /* tr_close still closes in a cancelled task. */
    if (fdt_admit(c, 2)) {
        int p[2];
        if (pipe2(p, O_CLOEXEC) == 0) {
            int s0 = fdt_reg(r, c, p[0], FR_OTHER, -1);
            int s1 = fdt_reg(r, c, p[1], FR_OTHER, -1);
            if (s0 >= 0 && fcntl(p[0], F_GETFD) < 0)
                viol(r, "pipe fd not open");
            if (tclose(r, s0) != 0 || tclose(r, s1) != 0)
                viol(r, "tr_close in a cancelled task failed");
        }
    }
    return -ECANCELED;
}

static int w_stub(struct tctx *c)
{
    struct round *r = c->r;
    int s0 = -1, s1 = -1;
    if (fdt_admit(c, 2)) {
        int p[2];
        if (pipe2(p, O_CLOEXEC) == 0) {
            s0 = fdt_reg(r, c, p[0], FR_OTHER, -1);
            s1 = fdt_reg(r, c, p[1], FR_OTHER, -1);
        }
    }
    uint64_t end = now_ns() + 30000 * MS;
    for (unsigned i = 0; i < 10000000 && now_ns() < end; i++) {
        tr_shield_begin();
        int z;
        if (s0 >= 0 && pct(50))
            z = (int)tr_read(fd_of(r, s0), c->small, 1, -1); /* nobody writes */
        else
            z = tr_sleep_ns(2 * MS);
        opc();
        tr_shield_end();
        if (z < 0) {
            if (z != -ECANCELED)
                viol(r, "stubborn: %d", z);
            /* Ignores the cancellation: yields, or parks on an op that is
             * never cancelled (tr_close), where the Kill must wait for
             * its completion. */
            if (pct(50)) {
                (void)tr_yield();
            } else {
                int b = tr_close(-1);
                if (b != -EBADF)
                    viol(r, "tr_close(-1) = %d, want -EBADF", b);
            }
            opc();
        }
    }
    tclose(r, s0);
    tclose(r, s1);
    return 0;
}

/* The engine's count of live tasks that are not TR_SPAWN_LATE. */
static uint64_t tstats_live_nonlate(void)
{
    const tr_engine *e = tr__current->e;
    return e->sch.live - e->sch.live_late;
}

static int w_late(struct tctx *c)
{
    struct round *r = c->r;
    bool check = !tr_shutting_down();
    unsigned calls0 = r->cancel_alls; /* a cancel_all from now on also cancels us */
    int s0 = -1, s1 = -1;
    if (fdt_admit(c, 2)) {
        int p[2];
        if (pipe2(p, O_CLOEXEC) == 0) {
            s0 = fdt_reg(r, c, p[0], FR_OTHER, -1);
            s1 = fdt_reg(r, c, p[1], FR_OTHER, -1);
        }
    }
    bool cancelled = false;
    int z = tr_wait_shutdown();
    opc();
    if (z == -ECANCELED) {
        cancelled = true; /* a cancel_all before the shutdown */
        check = false;
    } else if (z != 0) {
        viol(r, "tr_wait_shutdown = %d", z);
    } else if (!tr_shutting_down()) {
        viol(r, "tr_wait_shutdown returned 0 but tr_shutting_down() is false");
    }
    for (unsigned i = 0; !cancelled && i < 20000; i++) {
        if (s0 >= 0) {
            uint64_t seed = i + 77;
            pat_fill(seed, 0, c->small, 32);
            ssize_t w = tr_write(fd_of(r, s1), c->small, 32, -1);
            opc();
            if (w == -ECANCELED) {
                cancelled = true;
                break;
            }
            if (w != 32)
                viol(r, "late: tr_write = %zd", w);
            ssize_t g = tr_read(fd_of(r, s0), c->small + 64, 32, -1);
            opc();
            if (g == -ECANCELED) {
                cancelled = true;
                break;
            }
            if (g != 32 || pat_check(seed, 0, c->small + 64, 32) != 32)
                viol(r, "late: tr_read = %zd or data mismatch", g);
        }
        z = tr_sleep_ns(500000);
        opc();
        if (z == -ECANCELED)
            cancelled = true;
    }
    if (cancelled && check && r->cancel_alls == calls0)
        r->late_checks++;
    /* Tasks the kill rung ended never ran their epilogue, so live_nonlate
     * still counts them: the engine's live count is the truth for those
     * (a LATE task is cancelled, and killed, only after every other task
     * ended, killed ones included). */
    if (cancelled && check && r->cancel_alls == calls0 && r->live_nonlate != 0 &&
        tstats_live_nonlate() != 0)
        viol(r, "a TR_SPAWN_LATE task was cancelled while %" PRIu64 " other tasks were alive",
             r->live_nonlate);
    tclose(r, s0);
    tclose(r, s1);
    r->late_live--;
    return cancelled ? -ECANCELED : 0;
}

static int w_sig(struct tctx *c)
{
    struct round *r = c->r;
    int z = tr_sleep_ns((uint64_t)r->dur_ms * MS);
    opc();
    if (z != 0)
        viol(r, "signaller: tr_sleep_ns before the first signal = %d", z);
    for (unsigned k = 0; k < r->nsig; k++) {
        if (k > 0) {
            tr_shield_begin();
            (void)tr_sleep_ns((uint64_t)r->gap_ms[k] * MS); /* shields break at the 2nd */
            opc();
            tr_shield_end();
        }
        kill(getpid(), r->sig[k]);
        r->sigs_sent++;
        atomic_fetch_add_explicit(&g_signals, 1, memory_order_relaxed);
    }
    return 0;
}

static int w_spawnchk(struct tctx *c)
{
    struct round *r = c->r;
    if (!tr_is_cancelled())
        viol(r, "a task spawned during the shutdown did not start cancelled");
    int z = tr_nop();
    opc();
    if (z != -ECANCELED)
        viol(r, "a task spawned during the shutdown: tr_nop = %d", z);
    return -ECANCELED;
}

static void *helper_main(void *arg)
{
    struct round *r = arg;
    sleep_ms(r->dur_ms);
    for (unsigned k = 0; k < r->nsig; k++) {
        if (k > 0)
            sleep_ms(r->gap_ms[k]);
        kill(getpid(), r->sig[k]);
        r->sigs_sent++;
        atomic_fetch_add_explicit(&g_signals, 1, memory_order_relaxed);
    }
    return NULL;
}

static int w_orch(struct tctx *c)
{
    struct round *r = c->r;
    r->e = tr_self_engine();
    atomic_store(&g_engine, r->e);
    r->t0 = now_ns();
    r->except[0] = tr_self();
    r->nexcept = 1;
    add_hook(r, HK_AUDIT); /* first registered: runs last */
    tr_task *hs = NULL;
    if (!r->thread_sig) {
        if (spawn_kind(r, NULL, &hs, K_SIG, r->late_sig ? TR_SPAWN_LATE : 0, 0, -1, false) == 0) {
            r->except[1] = hs;
            r->nexcept = 2;
        }
    } else if (r->trrun) {
        /* Created after the engine: it inherits the blocked signals. */
        int err = pthread_create(&r->thr, NULL, helper_main, r);
        if (err)
            viol(r, "pthread_create: %s", strerror(err));
        else
            r->thr_started = true;
    }
    for (unsigned i = 0; i < r->nstub; i++)
        (void)spawn_kind(r, NULL, NULL, K_STUB, 0, 1, -1, false);
    for (unsigned i = 0; i < r->nlate; i++)
        (void)spawn_kind(r, NULL, NULL, K_LATE, TR_SPAWN_LATE, 1, -1, false);
    unsigned nacc = 2 + (unsigned)rbelow(5);
    for (unsigned i = 0; i < nacc; i++)
        (void)spawn_kind(r, NULL, NULL, K_ACCEPTOR, 0, 1, -1, true);
    bool cancelled = false;
    for (unsigned it = 0; it < 100000; it++) {
        if (tr_shutting_down())
            break;
        uint64_t now = now_ns();
        if (r->calls_done < r->ncall && now >= r->t0 + r->call_at[r->calls_done]) {
            /* Sometimes several at once: overlapping waiters. */
            unsigned n = pct(30) ? 2 + (unsigned)rbelow(2) : 1;
            for (unsigned i = 0; i < n; i++)
                (void)spawn_kind(r, NULL, NULL, K_CALL, 0, 1, -1, true);
            r->calls_done++;
        }
        while (r->late_live < r->nlate) /* a cancel_all ended them: new ones */
            if (spawn_kind(r, NULL, NULL, K_LATE, TR_SPAWN_LATE, 1, -1, false) != 0)
                break;
        for (unsigned b = 0; b < 150 && r->spawned - r->returned < r->target; b++) {
            int k = pick_kind(r, 1);
            if (spawn_kind(r, NULL, NULL, k, 0, 1, -1, true) != 0)
                break;
        }
        if (pct(2) && g_devnull >= 0) {
            int n = tr_engine_dump(r->e, g_devnull);
            if (n < 1)
                viol(r, "tr_engine_dump = %d", n);
        }
        int z = tr_sleep_ns(MS + rbelow(9 * MS));
        opc();
        if (z == -ECANCELED) {
            cancelled = true;
            break;
        }
    }
    if (!tr_shutting_down()) {
        viol(r, "the orchestrator was cancelled outside a shutdown");
    } else {
        unsigned n = 1 + (unsigned)rbelow(3);
        for (unsigned i = 0; i < n; i++)
            (void)spawn_kind(r, NULL, NULL, K_SPAWNCHK, 0, 1, -1, false);
    }
    if (hs) {
        r->nexcept = 1; /* the handle is consumed below */
        (void)join_child(r, hs);
    }
    return cancelled ? -ECANCELED : 0;
}

static int task_main(void *arg)
{
    struct tctx *c = arg;
    struct round *r = c->r;
    c->state = 1;
    int res;
    switch (c->kind) {
    case K_ORCH:
        res = w_orch(c);
        break;
    case K_SIG:
        res = w_sig(c);
        break;
    case K_TIMER:
        res = w_timer(c);
        break;
    case K_FILE:
        res = w_file(c);
        break;
    case K_STREAM:
        res = w_stream(c);
        break;
    case K_WRITER:
        res = w_writer(c);
        break;
    case K_READER:
        res = w_reader(c);
        break;
    case K_ACCEPTOR:
        res = w_acceptor(c);
        break;
    case K_CLIENT:
        res = w_client(c);
        break;
    case K_SUPER:
        res = w_super(c);
        break;
    case K_CALL:
        res = w_call(c);
        break;
    case K_SELF:
        res = w_self(c);
        break;
    case K_STUB:
        res = w_stub(c);
        break;
    case K_LATE:
        res = w_late(c);
        break;
    case K_SPAWNCHK:
        res = w_spawnchk(c);
        break;
    default:
        res = -EINVAL;
        break;
    }
    if (c->buf) {
        buf_put(r, c->buf);
        c->buf = NULL;
    }
    fdt_release(c);
    r->returned++;
    if (res >= 0)
        r->ok++;
    else if (res == -ECANCELED)
        r->cancelled++;
    else
        r->failed++;
    if (!c->late)
        r->live_nonlate--;
    ctx_put(r, c);
    return res;
}

/* ------------------------------------------------------------- the round */

static int cmp_int(const void *a, const void *b)
{
    int x = *(const int *)a, y = *(const int *)b;
    return (x > y) - (x < y);
}

/* The open fds, sorted; at most cap. */
static int list_fds(int *out, int cap)
{
    DIR *d = opendir("/proc/self/fd");
    if (!d)
        return -1;
    int dfd = dirfd(d), n = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL && n < cap) {
        if (de->d_name[0] == '.')
            continue;
        int fd = atoi(de->d_name);
        if (fd != dfd)
            out[n++] = fd;
    }
    closedir(d);
    qsort(out, (size_t)n, sizeof(int), cmp_int);
    return n;
}

static bool in_sorted(const int *a, int n, int v)
{
    return bsearch(&v, a, (size_t)n, sizeof(int), cmp_int) != NULL;
}

static void drain_stream(struct round *r, struct stream *s, int fd, uint8_t *buf, size_t bufsz)
{
    int fl = fcntl(fd, F_GETFL);
    if (fl >= 0)
        fcntl(fd, F_SETFL, fl | O_NONBLOCK);
    bool aligned = s->r_pending == 0; /* else a killed read took an unknown part */
    uint64_t deadline = now_ns() + 3000 * MS;
    for (unsigned it = 0; it < 1000000; it++) {
        ssize_t n = read(fd, buf, bufsz);
        if (n > 0) {
            if (aligned) {
                size_t k = pat_check(s->seed, s->recvd + s->drained, buf, (size_t)n);
                if (k != (size_t)n)
                    viol(r, "stream %td (%s): drained data mismatch at offset %" PRIu64, s - r->st,
                         sk_names[s->kind], s->recvd + s->drained + k);
            }
            s->drained += (uint64_t)n;
            continue;
        }
        if (n == 0) {
            s->drained_ok = true;
            return;
        }
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN) {
            if (now_ns() > deadline) {
                viol(r, "stream %td (%s): no EOF when draining after the round", s - r->st,
                     sk_names[s->kind]);
                return;
            }
            struct pollfd p = {.fd = fd, .events = POLLIN};
            (void)poll(&p, 1, 20);
            continue;
        }
        viol(r, "stream %td (%s): drain read: %s", s - r->st, sk_names[s->kind], strerror(errno));
        return;
    }
}

static const char *state_name(uint8_t s)
{
    static const char *const n[] = {"never ran", "killed", "clean", "dirty"};
    return s < 4 ? n[s] : "?";
}

static void check_streams(struct round *r, unsigned *nclean, unsigned *neof, unsigned *nexact)
{
    *nclean = *neof = *nexact = 0;
    for (size_t i = 0; i < r->nst; i++) {
        struct stream *s = &r->st[i];
        uint64_t tot = s->recvd + s->drained;
        uint64_t hi = s->sent + s->w_pending;
        if (s->recvd > hi || tot > hi)
            viol(r,
                 "stream %zu (%s): received %" PRIu64 " + drained %" PRIu64 " > sent %" PRIu64
                 " (+%u in flight; writer %s, reader %s)",
                 i, sk_names[s->kind], s->recvd, s->drained, s->sent, s->w_pending,
                 state_name(s->wstate), state_name(s->rstate));
        /* EOF comes only after the writer closed its end, which it does
         * after its last op: then every byte it wrote was read. */
        *neof += s->eof;
        if (s->eof && s->recvd != s->sent)
            viol(r,
                 "stream %zu (%s): reader saw EOF after %" PRIu64 " bytes, writer sent %" PRIu64
                 " (writer %s)",
                 i, sk_names[s->kind], s->recvd, s->sent, state_name(s->wstate));
        if (s->wstate == SS_CLEAN && s->rstate == SS_CLEAN) {
            (*nclean)++;
            if (s->recvd != s->sent || s->sent != s->planned || s->drained != 0)
                viol(r,
                     "clean stream %zu (%s): planned %" PRIu64 " sent %" PRIu64 " received %" PRIu64
                     " drained %" PRIu64,
                     i, sk_names[s->kind], s->planned, s->sent, s->recvd, s->drained);
        }
        if (s->drained_ok) {
            (*nexact)++;
            if (tot + s->r_pending < s->sent)
                viol(r,
                     "stream %zu (%s): bytes lost: sent %" PRIu64 ", received %" PRIu64
                     " + drained %" PRIu64 " (+%u in flight; writer %s, reader %s)",
                     i, sk_names[s->kind], s->sent, s->recvd, s->drained, s->r_pending,
                     state_name(s->wstate), state_name(s->rstate));
        }
    }
}

static bool same_mask(const sigset_t *a, const sigset_t *b)
{
    for (int s = 1; s < NSIG; s++)
        if (sigismember(a, s) != sigismember(b, s))
            return false;
    return true;
}

/* The engine's books against ours. The engine's own tasks (the
 * at-shutdown task running the hooks; the engine may need more than one)
 * are the difference: they must exist exactly when hooks were registered,
 * always return 0, and only the Kill may end them otherwise; our own
 * tasks' endings must match exactly. internal_live: engine tasks still
 * alive (1 at the last hook: the hook task itself). */
static void check_books(struct round *r, const struct tr_stats *st, const char *when,
                        uint64_t spawned, uint64_t returned, uint64_t ok, uint64_t cancelled,
                        uint64_t failed, uint64_t hooks_reg, uint64_t internal_live,
                        uint64_t ours_live)
{
    uint64_t ours_killed = spawned - returned - ours_live;
    int64_t isp = (int64_t)(st->tasks_spawned - spawned);
    int64_t ikill = (int64_t)(st->tasks_killed - ours_killed);
    int64_t iok = (int64_t)(st->tasks_ok - ok);
    if (isp < (int64_t)internal_live || (hooks_reg == 0 && isp != 0) || (hooks_reg > 0 && isp < 1))
        viol(r,
             "%s: tasks_spawned %" PRIu64 ", the tool spawned %" PRIu64 " (%" PRIu64
             " hooks registered)",
             when, st->tasks_spawned, spawned, hooks_reg);
    else if (ikill < 0 || ikill > isp)
        viol(r, "%s: tasks_killed %" PRIu64 ", the tool's tasks that never returned %" PRIu64, when,
             st->tasks_killed, ours_killed);
    else if (iok != isp - ikill - (int64_t)internal_live || st->tasks_cancelled != cancelled ||
             st->tasks_failed != failed)
        viol(r,
             "%s: ok/cancelled/failed %" PRIu64 "/%" PRIu64 "/%" PRIu64 ", the tool saw %" PRIu64
             "/%" PRIu64 "/%" PRIu64 " (+%" PRId64 " at-shutdown, %" PRId64 " of them killed)",
             when, st->tasks_ok, st->tasks_cancelled, st->tasks_failed, ok, cancelled, failed, isp,
             ikill);
    else if (internal_live == 0 && ikill == 0 && r->hooks_done != r->hooks_reg)
        viol(r, "%s: %u of %u at_shutdown hooks ran, yet no at-shutdown task was killed", when,
             r->hooks_done, r->hooks_reg);
}

static void audit_engine(struct round *r, tr_engine *e)
{
    struct tr_stats st;
    if (tr_engine_stats(e, &st) != 0) {
        viol(r, "tr_engine_stats failed");
        return;
    }
    if (st.tasks_live || st.ops_inflight || st.engine_ops_inflight || st.timers_pending ||
        st.ops_submitted != st.ops_completed)
        viol(r,
             "quiescence audit: tasks_live %" PRIu64 " ops_inflight %" PRIu64
             " engine_ops_inflight %" PRIu64 " timers_pending %" PRIu64 " submitted %" PRIu64
             " completed %" PRIu64,
             st.tasks_live, st.ops_inflight, st.engine_ops_inflight, st.timers_pending,
             st.ops_submitted, st.ops_completed);
    /* The white-box fields come from tr_internal.h: make sure it matches
     * the library this was linked with (the engine is edited
     * concurrently). */
    if (e->st.tasks_spawned != st.tasks_spawned || e->st.ops_submitted != st.ops_submitted ||
        e->sw.inflight != st.engine_ops_inflight) {
        fprintf(stderr, "stress: engine/tr_internal.h does not match the linked library "
                        "(struct tr_engine differs): rebuild both\n");
        exit(2);
    }
    if (e->sw.inflight || tr__ring_sq_pending(e) || !tr__ring_cq_empty(e) ||
        e->ops.cancels_inflight)
        viol(r,
             "quiescence audit (white-box): internal_inflight %" PRIu64 " sq_pending %u "
             "cq_empty %d cancels_inflight %" PRIu64,
             e->sw.inflight, tr__ring_sq_pending(e), (int)tr__ring_cq_empty(e),
             e->ops.cancels_inflight);
    if (st.tasks_spawned != st.tasks_ok + st.tasks_cancelled + st.tasks_failed + st.tasks_killed)
        viol(r,
             "conservation: spawned %" PRIu64 " != ok %" PRIu64 " + cancelled %" PRIu64
             " + failed %" PRIu64 " + killed %" PRIu64,
             st.tasks_spawned, st.tasks_ok, st.tasks_cancelled, st.tasks_failed, st.tasks_killed);
    check_books(r, &st, "after the run", r->spawned, r->returned, r->ok, r->cancelled, r->failed,
                r->hooks_reg, 0, 0);
    if (st.signals_received < 1 || st.signals_received > r->nsig)
        viol(r, "signals_received %" PRIu64 ", %u sent", st.signals_received, r->nsig);
    if (st.cq_overflows)
        viol(r, "cq_overflows %" PRIu64, st.cq_overflows);
    r->est = st;
    r->have_est = true;
}

static void plan_round(struct round *r, uint64_t remaining_ms)
{
    r->dur_ms = 1000 + (unsigned)rbelow(3001);
    if (r->dur_ms > remaining_ms)
        r->dur_ms = remaining_ms < 300 ? 300 : (unsigned)remaining_ms;
    unsigned x = (unsigned)rbelow(100);
    r->nsig = x < 50 ? 1 : x < 75 ? 2 : 3;
    for (unsigned k = 0; k < 3; k++) {
        r->sig[k] = pct(50) ? SIGTERM : SIGINT;
        r->gap_ms[k] = pct(20) ? 0 : (unsigned)rbelow(250);
    }
    r->grace_ms = 50 + (unsigned)rbelow(151);
    r->kill_ms = 50 + (unsigned)rbelow(151);
    r->drain_ms = pct(60) ? 0 : (unsigned)rbelow(50);
    static const unsigned sqs[] = {32, 64, 128, 256, 1024};
    r->sq = sqs[rbelow(5)];
    r->stack_size = pct(30) ? 32 * 1024 : 0;
    r->target = 200 + (unsigned)rbelow(3800);
    x = (unsigned)rbelow(100);
    r->nstub = x < 35 ? 1 + (unsigned)rbelow(3) : x < 50 ? 10 + (unsigned)rbelow(50) : 0;
    r->nlate = pct(60) ? 1 + (unsigned)rbelow(3) : 0;
    r->trrun = pct(50);
    r->thread_sig = pct(50);
    r->late_sig = !r->thread_sig && pct(30);
    r->hooks_stubborn = pct(30); /* a hook may ignore its cancellation: killed */
    /* tr_run destroys the engine itself: a helper thread that could still
     * signal afterwards needs the signals blocked by us around the run. */
    r->preblock = (r->trrun && r->thread_sig) || pct(15);
    x = (unsigned)rbelow(100);
    r->ncall = x < 45 ? 0 : x < 80 ? 1 : x < 95 ? 2 : 3;
    for (unsigned k = 0; k < r->ncall; k++)
        r->call_at[k] = rbelow((uint64_t)r->dur_ms * MS);
    /* in order */
    for (unsigned a = 0; a < r->ncall; a++)
        for (unsigned b = a + 1; b < r->ncall; b++)
            if (r->call_at[b] < r->call_at[a]) {
                uint64_t t = r->call_at[a];
                r->call_at[a] = r->call_at[b];
                r->call_at[b] = t;
            }
}

static void classify_leak(struct round *r, int fd, unsigned *acc, unsigned *opn)
{
    char p[64], link[256];
    snprintf(p, sizeof(p), "/proc/self/fd/%d", fd);
    ssize_t n = readlink(p, link, sizeof(link) - 1);
    link[n > 0 ? n : 0] = '\0';
    if (strncmp(link, "socket:", 7) == 0) {
        struct sockaddr_in a;
        socklen_t len = sizeof(a);
        if (getsockname(fd, (struct sockaddr *)&a, &len) == 0 && a.sin_family == AF_INET &&
            a.sin_addr.s_addr == htonl(INADDR_LOOPBACK)) {
            uint16_t port = ntohs(a.sin_port);
            if (r->lports[port / 8] & (1u << (port % 8))) {
                (*acc)++;
                return;
            }
        }
    } else if (strncmp(link, g_dir, strlen(g_dir)) == 0) {
        (*opn)++;
        return;
    }
    viol(r, "fd leak: fd %d (%s) is open after the round", fd, link);
}

static void cleanup_dir(void)
{
    DIR *d = opendir(g_dir);
    if (!d)
        return;
    struct dirent *de;
    char p[384];
    while ((de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.')
            continue;
        snprintf(p, sizeof(p), "%s/%s", g_dir, de->d_name);
        unlink(p);
    }
    closedir(d);
}

static void run_round(unsigned no, uint64_t remaining_ms)
{
    struct round *r = calloc(1, sizeof(*r));
    if (!r) {
        fprintf(stderr, "stress: out of memory\n");
        exit(2);
    }
    r->no = no;
    r->st = calloc(MAX_STREAMS, sizeof(struct stream));
    if (!r->st) {
        fprintf(stderr, "stress: out of memory\n");
        exit(2);
    }
    for (int i = 0; i < FD_HARD; i++) {
        r->fds[i] = (struct fdent){-1, FR_FREE, -1};
        r->freeslots[i] = FD_HARD - 1 - i;
    }
    r->nfree = FD_HARD;
    r->lslot = -1;
    plan_round(r, remaining_ms);
    atomic_store(&g_round, no);

    sigset_t orig, m0, m1, ss;
    sigemptyset(&ss);
    sigaddset(&ss, SIGINT);
    sigaddset(&ss, SIGTERM);
    pthread_sigmask(SIG_BLOCK, NULL, &orig);
    if (r->preblock)
        pthread_sigmask(SIG_BLOCK, &ss, NULL);
    pthread_sigmask(SIG_BLOCK, NULL, &m0);

    static int before[4096], after[4096];
    int nbefore = list_fds(before, 4096);

    int lfd = listen_socket(r, &r->laddr);
    if (lfd < 0) {
        fprintf(stderr, "stress: listen: %s\n", strerror(-lfd));
        exit(2);
    }
    r->lslot = fdt_reg(r, NULL, lfd, FR_LISTEN, -1);

    struct tr_config cfg;
    tr_config_init(&cfg);
    cfg.report_fd = -1;
    cfg.sq_entries = r->sq;
    cfg.stack_size = r->stack_size;
    cfg.grace_ms = r->grace_ms;
    cfg.kill_ms = r->kill_ms;
    cfg.drain_ms = r->drain_ms;

    uint64_t t0 = now_ns();
    atomic_store(&g_round_start, t0);
    if (!r->trrun) {
        tr_engine *e = NULL;
        int rc = tr_engine_create(&e, &cfg);
        if (rc) {
            viol(r, "tr_engine_create = %s", strerror(-rc));
        } else {
            r->e = e;
            atomic_store(&g_engine, e);
            tr_task *ho = NULL, *hc = NULL;
            if (spawn_kind(r, e, &ho, K_ORCH, 0, 0, -1, false) != 0)
                ho = NULL;
            if (pct(30) && spawn_kind(r, e, &hc, K_SPAWNCHK, 0, 1, -1, false) == 0) {
                /* Cancelled from the engine's thread outside the run: it
                 * must start cancelled. */
                if ((rc = tr_cancel(hc)) != 0)
                    viol(r, "tr_cancel before the run = %d", rc);
            }
            if ((rc = tr_engine_destroy(e)) != -EBUSY)
                viol(r, "tr_engine_destroy with tasks alive = %d, want -EBUSY", rc);
            if (r->thread_sig) {
                int err = pthread_create(&r->thr, NULL, helper_main, r);
                if (err)
                    viol(r, "pthread_create: %s", strerror(err));
                else
                    r->thr_started = true;
            }
            rc = tr_engine_run(e);
            if (rc != 0)
                viol(r, "tr_engine_run = %d (%s)", rc, strerror(-rc));
            audit_engine(r, e);
            if (ho) {
                int res = 0;
                rc = tr_task_result(ho, &res);
                if (rc != 0 || (res != 0 && res != -ECANCELED))
                    viol(r, "orchestrator: tr_task_result = %d, result %d", rc, res);
                if ((rc = tr_detach(ho)) != 0)
                    viol(r, "tr_detach(orchestrator) after the run = %d", rc);
            }
            if (hc) {
                int res = 0;
                if ((rc = tr_task_result(hc, &res)) != 0 || res != -ECANCELED)
                    viol(r, "a task cancelled before the run: tr_task_result %d, result %d", rc,
                         res);
                tr_detach(hc);
            }
            if (r->thr_started)
                pthread_join(r->thr, NULL);
            r->thr_started = false;
            if (pct(30)) {
                /* Run again after the shutdown: a new task starts
                 * cancelled, the engine's own reads are re-armed and
                 * taken down again. */
                tr_task *h2 = NULL;
                if (spawn_kind(r, e, &h2, K_SPAWNCHK, 0, 1, -1, false) == 0) {
                    rc = tr_engine_run(e);
                    if (rc != 0)
                        viol(r, "a second tr_engine_run = %d (%s)", rc, strerror(-rc));
                    audit_engine(r, e);
                    int res = 0;
                    if ((rc = tr_task_result(h2, &res)) != 0 || res != -ECANCELED)
                        viol(r, "a task spawned after the shutdown: tr_task_result %d, result %d",
                             rc, res);
                    tr_detach(h2);
                    r->reruns++;
                }
            }
            atomic_store(&g_engine, NULL);
            rc = tr_engine_destroy(e);
            if (rc != 0)
                viol(r, "tr_engine_destroy = %d (%s)", rc, strerror(-rc));
        }
    } else {
        struct tctx *c = ctx_get(r);
        c->kind = K_ORCH;
        r->spawned++;
        r->live_nonlate++;
        atomic_fetch_add_explicit(&g_tasks, 1, memory_order_relaxed);
        int rc = tr_run(task_main, c, &cfg);
        atomic_store(&g_engine, NULL);
        if (rc != 0 && rc != -ECANCELED)
            viol(r, "tr_run = %d (%s)", rc, strerror(-rc));
        if (r->thr_started)
            pthread_join(r->thr, NULL);
        r->thr_started = false;
    }
    if (r->audit_done) {
        /* The last hook's view: the at-shutdown task is alive, and tasks
         * that hooks spawned (they start cancelled) may be. */
        uint64_t ours_live = r->audit.tasks_live - 1;
        if (r->audit.tasks_live < 1)
            viol(r, "at the last hook: tasks_live %" PRIu64 ", want >= 1", r->audit.tasks_live);
        if (r->audit.tasks_spawned != r->audit.tasks_ok + r->audit.tasks_cancelled +
                                          r->audit.tasks_failed + r->audit.tasks_killed +
                                          r->audit.tasks_live)
            viol(r, "conservation at the last hook");
        check_books(r, &r->audit, "at the last hook", r->audit_spawned, r->audit_returned,
                    r->audit_ok, r->audit_cancelled, r->audit_failed, r->audit_hooks_reg, 1,
                    ours_live);
        if (r->audit.signals_received < 1)
            viol(r, "at the last hook: no signal received");
    }
    atomic_store(&g_round_start, 0);

    /* The signal mask, as before the round. */
    pthread_sigmask(SIG_BLOCK, NULL, &m1);
    if (!same_mask(&m0, &m1))
        viol(r, "the signal mask differs after the round");
    if (r->preblock) {
        struct timespec zero = {0, 0};
        for (int i = 0; i < 16 && sigtimedwait(&ss, NULL, &zero) > 0; i++)
            ;
        pthread_sigmask(SIG_SETMASK, &orig, NULL);
    }
    sigset_t pend;
    sigpending(&pend);
    if (sigismember(&pend, SIGINT) == 1 || sigismember(&pend, SIGTERM) == 1)
        viol(r, "a shutdown signal is still pending after the round");

    /* Writer ends and everything else first, then drain the readers. */
    static uint8_t dbuf[65536];
    for (int i = 0; i < FD_HARD; i++)
        if (r->fds[i].role != FR_FREE && r->fds[i].role != FR_R)
            close(fdt_take(r, i));
    for (int i = 0; i < FD_HARD; i++) {
        if (r->fds[i].role != FR_R)
            continue;
        struct stream *s = &r->st[r->fds[i].stream];
        int fd = fdt_take(r, i);
        drain_stream(r, s, fd, dbuf, sizeof(dbuf));
        close(fd);
    }

    /* fds: as before, except what killed tasks leaked by the contract. */
    unsigned allow_acc = 0, allow_open = 0, acc = 0, opn = 0;
    for (size_t i = 0; i < r->nall; i++) {
        struct tctx *c = r->all[i];
        if (c->state != 2) {
            allow_acc += c->in_accept;
            allow_open += c->in_open;
        }
    }
    for (struct hctx *h = r->hooks; h; h = h->next)
        if (!h->done)
            allow_open += h->in_open;
    int nafter = list_fds(after, 4096);
    for (int i = 0; i < nbefore; i++)
        if (!in_sorted(after, nafter, before[i]))
            viol(r, "fd %d, open before the round, was closed by it", before[i]);
    for (int i = 0; i < nafter; i++) {
        if (in_sorted(before, nbefore, after[i]))
            continue;
        classify_leak(r, after[i], &acc, &opn);
        close(after[i]);
    }
    if (acc > allow_acc || opn > allow_open)
        viol(r,
             "fd leak: %u accepted sockets and %u opened files left open; killed tasks were in "
             "accept %u, in openat %u",
             acc, opn, allow_acc, allow_open);
    nafter = list_fds(after, 4096);
    if (nafter != nbefore)
        viol(r, "fd count %d after the round, %d before", nafter, nbefore);

    unsigned nclean = 0, neof = 0, nexact = 0;
    check_streams(r, &nclean, &neof, &nexact);
    cleanup_dir();

    if (g_verbose) {
        printf(
            "stress: round %u: %s, signals %u by %s%s (%d ms), grace %u kill %u drain %u, sq %u, "
            "target %u; tasks %" PRIu64 " (ok %" PRIu64 " cancelled %" PRIu64 " failed %" PRIu64
            " killed %" PRIu64 "), streams %zu (clean %u, eof %u, drained %u), "
            "hooks %u/%u, cancel_alls %u, LATE order checks %u, reruns %u, killed-op leaks %u+%u, "
            "%.2f s\n",
            no, r->trrun ? "tr_run" : "create/run/destroy", (unsigned)r->sigs_sent,
            r->thread_sig ? "thread" : "task", r->preblock ? " (pre-blocked)" : "", (int)r->dur_ms,
            r->grace_ms, r->kill_ms, r->drain_ms, r->sq, r->target, r->spawned, r->ok, r->cancelled,
            r->failed, r->spawned - r->returned, r->nst, nclean, neof, nexact, r->hooks_done,
            r->hooks_reg, r->cancel_alls, r->late_checks, r->reruns, acc, opn,
            (double)(now_ns() - t0) / 1e9);
        struct tr_stats *st = r->have_est ? &r->est : r->audit_done ? &r->audit : NULL;
        if (st)
            printf("stress: round %u: engine (%s): ops %" PRIu64 ", cancels %" PRIu64
                   ", enters %" PRIu64 " (busy %" PRIu64 "), stale CQEs %" PRIu64
                   ", signals received %" PRIu64 "\n",
                   no, r->have_est ? "after the run" : "at the last hook", st->ops_submitted,
                   st->cancels_submitted, st->submit_calls, st->submit_busy, st->cqe_stale,
                   st->signals_received);
    }

    unsigned nv = r->nviol;
    if (nv) {
        for (unsigned i = 0; i < nv && i < 4; i++)
            printf("VIOLATION: %s (round %u, seed %" PRIu64 ")\n", r->viol[i], no, g_seed);
        if (nv > 4)
            printf("VIOLATION: ... and %u more (round %u, seed %" PRIu64 ")\n", nv - 4, no, g_seed);
    }
    atomic_fetch_add_explicit(&g_shutdowns, 1, memory_order_relaxed);

    for (size_t i = 0; i < r->nall; i++)
        free(r->all[i]);
    free(r->all);
    for (size_t i = 0; i < r->nball; i++)
        free(r->ball[i]);
    free(r->ball);
    while (r->hooks) {
        struct hctx *h = r->hooks;
        r->hooks = h->next;
        free(h);
    }
    free(r->st);
    free(r);
    if (nv) {
        printf("stress: seed %" PRIu64 " rounds %u ops %" PRIu64 " cancels %" PRIu64
               " shutdowns %" PRIu64 " signals %" PRIu64 " violations %u in %.1fs\n",
               g_seed, no, atomic_load(&g_ops), atomic_load(&g_cancels), atomic_load(&g_shutdowns),
               atomic_load(&g_signals), nv, (double)(now_ns() - g_t_start) / 1e9);
        fflush(stdout);
        exit(1);
    }
}

/* ------------------------------------------------------------- progress */

static void *progress_main(void *arg)
{
    (void)arg;
    for (unsigned long i = 0; !atomic_load(&g_stop) && i < 100000000ul; i++) {
        for (int k = 0; k < 10 && !atomic_load(&g_stop); k++)
            sleep_ms(100);
        if (atomic_load(&g_stop))
            break;
        uint64_t now = now_ns();
        printf("stress: %6.1f s  round %" PRIu64 "  tasks %" PRIu64 "  ops %" PRIu64
               "  cancels %" PRIu64 "  shutdowns %" PRIu64 "  signals %" PRIu64 "\n",
               (double)(now - g_t_start) / 1e9, atomic_load(&g_round), atomic_load(&g_tasks),
               atomic_load(&g_ops), atomic_load(&g_cancels), atomic_load(&g_shutdowns),
               atomic_load(&g_signals));
        fflush(stdout);
        uint64_t rs = atomic_load(&g_round_start);
        if (rs && now - rs > (uint64_t)WATCHDOG_S * 1000 * MS) {
            printf("VIOLATION: hang: round %" PRIu64 " has run for %.1f s (round %" PRIu64
                   ", seed %" PRIu64 ")\n",
                   atomic_load(&g_round), (double)(now - rs) / 1e9, atomic_load(&g_round), g_seed);
            fflush(stdout);
            tr_engine *e = atomic_load(&g_engine);
            if (e) /* racy, but the engine is stuck: better than nothing */
                tr_engine_dump(e, STDOUT_FILENO);
            printf("stress: seed %" PRIu64 " rounds %" PRIu64 " ops %" PRIu64 " cancels %" PRIu64
                   " shutdowns %" PRIu64 " signals %" PRIu64 " violations 1 in %.1fs\n",
                   g_seed, atomic_load(&g_round), atomic_load(&g_ops), atomic_load(&g_cancels),
                   atomic_load(&g_shutdowns), atomic_load(&g_signals),
                   (double)(now - g_t_start) / 1e9);
            fflush(stdout);
            cleanup_dir();
            rmdir(g_dir);
            _exit(1);
        }
    }
    return NULL;
}

static void usage(void)
{
    fprintf(stderr, "usage: taskring-stress --seconds N [--seed S] [--verbose]\n");
    exit(2);
}

int main(int argc, char **argv)
{
    uint64_t seconds = 10;
    bool have_seed = false;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--seconds") == 0 && i + 1 < argc) {
            char *end;
            seconds = strtoull(argv[++i], &end, 10);
            if (*end || seconds == 0)
                usage();
        } else if (strcmp(argv[i], "--seed") == 0 && i + 1 < argc) {
            char *end;
            g_seed = strtoull(argv[++i], &end, 0);
            if (*end)
                usage();
            have_seed = true;
        } else if (strcmp(argv[i], "--verbose") == 0 || strcmp(argv[i], "-v") == 0) {
            g_verbose = true;
        } else {
            usage();
        }
    }
    if (!have_seed) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        g_seed = mix64(((uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec) ^
                       ((uint64_t)getpid() << 32)) %
                 1000000000ull;
    }
    g_rng = g_seed;
    setvbuf(stdout, NULL, _IOLBF, 0);
    printf("stress: seed %" PRIu64 "\n", g_seed);
    fflush(stdout);
    signal(SIGPIPE, SIG_IGN); /* pipe writes to a closed reader: -EPIPE */

    snprintf(g_dir, sizeof(g_dir), "/tmp/taskring-stress-XXXXXX");
    if (!mkdtemp(g_dir)) {
        fprintf(stderr, "stress: mkdtemp: %s\n", strerror(errno));
        return 2;
    }
    int tfd = open(g_dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
    g_tmpfile_ok = tfd >= 0;
    if (tfd >= 0)
        close(tfd);

    g_devnull = open("/dev/null", O_WRONLY | O_CLOEXEC);
    g_t_start = now_ns();
    /* Created before any engine: it must block the shutdown signals itself
     * (it blocks everything). */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    pthread_t prog;
    int err = pthread_create(&prog, NULL, progress_main, NULL);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (err) {
        fprintf(stderr, "stress: pthread_create: %s\n", strerror(err));
        return 2;
    }

    uint64_t end = g_t_start + seconds * 1000 * MS;
    unsigned rounds = 0;
    for (unsigned no = 1; no < 1000000; no++) {
        uint64_t now = now_ns();
        if (now >= end)
            break;
        run_round(no, (end - now) / MS);
        rounds = no;
    }
    atomic_store(&g_stop, 1);
    pthread_join(prog, NULL);
    rmdir(g_dir);
    printf("stress: seed %" PRIu64 " rounds %u ops %" PRIu64 " cancels %" PRIu64
           " shutdowns %" PRIu64 " signals %" PRIu64 " violations 0 in %.1fs\n",
           g_seed, rounds, atomic_load(&g_ops), atomic_load(&g_cancels), atomic_load(&g_shutdowns),
           atomic_load(&g_signals), (double)(now_ns() - g_t_start) / 1e9);
    return 0;
}
