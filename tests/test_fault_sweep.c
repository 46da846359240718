/* SPDX-License-Identifier: MIT */
/*
 * Description: fault injection, SQLite style (STYLE.md): one deterministic
 * workload that reaches every fault site of the engine, run again and again
 * in a fresh engine while a countdown steps through every call at one site.
 *
 * The sites (engine/fault.c, tr_internal.h "faults"):
 *   ALLOC    task records, stacks, op slot chunks, the timer heap and the
 *            hooks array fail with -ENOMEM: burst 1, and burst 0 (every call
 *            from the k-th on fails, as when memory is really gone);
 *   GET_SQE  io_uring_get_sqe finds the SQ full: bursts 1 and 8; 9, the
 *            one that makes a whole tr__ring_get_sqe give up (its first try
 *            plus TR_RING_RETRIES = 8 retries), so that an op fails with
 *            -EBUSY, a cancel is deferred, an internal read is armed or
 *            cancelled at a later pass; and 18, where that later attempt
 *            is refused once more;
 *   SUBMIT   io_uring_enter fails with -EBUSY, -EAGAIN or -EINTR, submitting
 *            nothing: bursts 1 and 8;
 *   CQE      a task op's completion is rewritten to -EINTR, to a short count
 *            or to -ECANCELED (burst 1).
 * A permanent failure at GET_SQE or SUBMIT would be a kernel that never
 * accepts work, which the engine does not promise to survive: their bursts
 * are bounded.
 *
 * The workload (driver()) runs in an engine with an SQ of 8, so SQ-full
 * paths are real: shutdown hooks (the hooks array grows), pipe, socket and
 * file I/O (read, write, recv, send, poll, nop, openat, fsync, close), a nop
 * storm (20 tasks at once), short sleeps, tasks cancelled one by one,
 * tr_cancel_all over every way to wait (more ring ops than the SQ holds),
 * then 70 long sleepers (the timer heap grows past 64), shutdown waiters,
 * blocked readers and a LATE task left to tr_engine_shutdown. Every call's
 * result must be success (short counts included) or a clean -errno from a
 * small allowed set; a failed spawn is skipped (its partner's fd is closed
 * for it), a failed op ends its loop, and every wait is ended by its
 * partner, by a cancel or by the shutdown, so no step can hang.
 *
 * For each site and mode the workload first runs armed at an unreachable
 * countdown, to learn N (its calls at the site) and check its exact results;
 * then the countdown steps k = 1..N (at most FAULT_MAX_STEPS points, spread
 * evenly over the whole range when N is larger). Every step must end as a
 * clean run does: tr_engine_run returns 0, the quiescence audit (G2)
 * passes, no task is killed, every task of the workload ended, every
 * registered shutdown hook ran, no fd leaked, tr_engine_destroy returns 0.
 *
 * Each step runs in a child process (fault_run_isolated), so that a crash, an
 * engine abort (TR_ASSERT) or a hang fails that step, not the suite; in
 * ASan builds the child of an ALLOC step also runs LeakSanitizer. A failing
 * step is printed with its (site, mode, countdown, burst) once per kind of
 * failure: countdowns step upwards, so that is the minimal reproduction.
 * TR_FAULT_STEPS=<n> changes the step cap, TR_FAULT_FILTER=<glob> runs only
 * the matching tests, TR_FAULT_FORK=0 runs steps in-process (debuggers;
 * then the per-step watchdog or the SIGABRT handler names a bad step).
 *
 * The minimal reproductions of what the sweeps found are pinned in
 * test_fault_pinned.c; the isolation and sweep machinery is tr_harness.h.
 */
#define _GNU_SOURCE /* pipe2, mkdtemp */
#include "tr_harness.h"

#include <poll.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>

/* ------------------------------------------- checks inside the workload */

/* The errors any call may return under faults: no memory (ALLOC), a ring
 * that refused the SQE (GET_SQE/SUBMIT), and the rewritten completions
 * (CQE). Success (>= 0, short counts included) is always allowed. */
static bool soft_err(long r)
{
    return r == -ENOMEM || r == -EBUSY || r == -EINTR || r == -ECANCELED || r == -EAGAIN;
}

/* Records a failure unless r >= 0, r is a soft error or one of extra[];
 * returns r >= 0. */
static bool rc_check(long r, const char *what, const char *file, int line, const int *extra,
                     size_t n)
{
    if (r >= 0)
        return true;
    bool ok = soft_err(r);
    for (size_t i = 0; i < n && !ok; i++)
        ok = extra[i] != 0 && r == extra[i];
    if (!ok) {
        char msg[300];
        snprintf(msg, sizeof(msg), "%s = %ld (%s) is not an allowed result", what, r,
                 strerror((int)-r));
        fault_wfail(file, line, msg);
    }
    return false;
}

/* RC(r, extra errnos...): checks r as above; true when r >= 0. */
#define RC(r, ...)                                                                                 \
    rc_check((long)(r), #r, __FILE__, __LINE__, (const int[]){0, ##__VA_ARGS__},                   \
             sizeof((const int[]){0, ##__VA_ARGS__}) / sizeof(int))

/* A spawn's result: 0 or -ENOMEM. True when the task exists. */
static bool spawn_ok_(int rc, const char *file, int line)
{
    fault_wcheck(rc == 0 || rc == -ENOMEM, "tr_spawn returned 0 or -ENOMEM", file, line);
    return rc == 0;
}
#define SPAWN_OK(rc) spawn_ok_((rc), __FILE__, __LINE__)

/* ------------------------------------------------------------- the workload */

#define NPIPE 3   /* pipe writer/reader pairs */
#define NSOCK 2   /* socketpair sender/receiver pairs */
#define NFILE 2   /* openat/write/fsync/read/close on a temp file */
#define NNOP 20   /* nop tasks spawned at once: more SQEs than the SQ holds */
#define NSHORT 6  /* 200 us sleepers */
#define CHUNKS 8  /* writes per writer */
#define CHUNK 64  /* bytes per write: CHUNKS * CHUNK stays far below a pipe's capacity */
#define NHOOK 10  /* shutdown hooks: the array grows 8 -> 16 */
#define NCANCEL 7 /* tasks cancelled one by one */
#define NB4 12    /* blocked at tr_cancel_all: more cancels than the SQ holds */
#define NLONG 70  /* long sleepers at the shutdown: the timer heap grows 64 -> 128 */
#define NWAITSD 3 /* tasks in tr_wait_shutdown at the shutdown */
#define NB5 12    /* blocked at the shutdown: more cancels than the SQ holds */
#define FILE_LEN 4096
#define LONG_NS (10ull * 1000000000ull) /* only a cancellation ends it */

struct wl;

struct pair {
    struct wl *w;
    int idx;
    int fd[2];  /* [0] the reading end, [1] the writing end; -1 once closed */
    long sent;  /* bytes the writer was told it wrote */
    long recvd; /* bytes the reader got */
    bool sock;
};

struct ftask {
    int idx;
    bool ok; /* wrote, synced and read back the same bytes */
};

enum bkind { BK_READ, BK_RECV, BK_POLL, BK_SLEEP, BK__COUNT };

struct blocked {
    struct wl *w;
    enum bkind kind;
    long res;
    bool ended;
    int *ended_count; /* detached ones count their ends here */
};

struct joiner {
    struct wl *w;
    tr_task *target;
};

struct wl {
    int never[2]; /* a pipe nobody writes to */
    int nsock[2]; /* a socketpair nobody writes to */
    struct pair pipes[NPIPE];
    struct pair socks[NSOCK];
    struct ftask files[NFILE];
    struct blocked cancel[NCANCEL];
    struct blocked b4[NB4 + 2]; /* + the join target, + the excepted survivor */
    struct joiner j4;
    struct blocked b5[NB5];
    /* what the run did */
    bool driver_spawned, driver_done;
    int hooks_reg, hooks_ran;
    int p2_spawned, p2_joined;
    int p3_spawned;
    int p4_spawned, p4_ended, p4_count;
    int p5_spawned, p5_ended;
    int late_wait_rc;
};

static char tmpdir[64];

/* Closes *fd through the ring and marks it closed. A close that failed
 * before it reached the kernel (no op slot: -ENOMEM, no SQE: -EBUSY)
 * closes synchronously; one the kernel ran has closed the fd whatever its
 * result says (close(2) on Linux; and the CQE fault only rewrites it). */
static void wclose(int *fd)
{
    if (*fd < 0)
        return;
    int rc = tr_close(*fd);
    RC(rc);
    if (rc == -ENOMEM || rc == -EBUSY)
        WCHECK_EQ(close(*fd), 0);
    *fd = -1;
}

static int pipe_writer(void *arg)
{
    struct pair *p = arg;
    char buf[CHUNK];
    memset(buf, 'a' + p->idx, sizeof(buf));
    for (int j = 0; j < CHUNKS; j++) {
        ssize_t n = p->sock ? tr_send(p->fd[1], buf, sizeof(buf), MSG_NOSIGNAL)
                            : tr_write(p->fd[1], buf, sizeof(buf), -1);
        /* -EPIPE/-ECONNRESET: the reader gave up after an error of its own. */
        if (!RC(n, -EPIPE, -ECONNRESET))
            break;
        p->sent += n;
        if (j % 2)
            RC(tr_nop());
    }
    wclose(&p->fd[1]);
    return 0;
}

static int pipe_reader(void *arg)
{
    struct pair *p = arg;
    char buf[256];
    /* Bound: each successful read returns at least one byte, and at most
     * CHUNKS * CHUNK bytes are ever written; the last read sees EOF. */
    int i;
    for (i = 0; i < CHUNKS * CHUNK + 1; i++) {
        int ev = tr_poll(p->fd[0], POLLIN);
        if (!RC(ev))
            break;
        ssize_t n = p->sock ? tr_recv(p->fd[0], buf, sizeof(buf), 0)
                            : tr_read(p->fd[0], buf, sizeof(buf), -1);
        if (!RC(n, -ECONNRESET) || n == 0)
            break;
        for (ssize_t k = 0; k < n; k++)
            if (!WCHECK(buf[k] == 'a' + p->idx))
                break;
        p->recvd += n;
    }
    WCHECK(i < CHUNKS * CHUNK + 1);
    wclose(&p->fd[0]);
    return 0;
}

static int file_task(void *arg)
{
    struct ftask *f = arg;
    char path[128], data[FILE_LEN], back[FILE_LEN];
    snprintf(path, sizeof(path), "%s/f%d", tmpdir, f->idx);
    for (int i = 0; i < FILE_LEN; i++)
        data[i] = (char)(i * 7 + f->idx);
    int fd = tr_openat(AT_FDCWD, path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (!RC(fd))
        return 0;
    ssize_t n = tr_write(fd, data, sizeof(data), 0);
    RC(n);
    int s = tr_fsync(fd);
    RC(s);
    memset(back, 0, sizeof(back));
    ssize_t m = tr_read(fd, back, sizeof(back), 0);
    RC(m);
    f->ok = n == FILE_LEN && s == 0 && m == FILE_LEN && memcmp(data, back, FILE_LEN) == 0;
    wclose(&fd);
    return 0;
}

static int nop_task(void *arg)
{
    (void)arg;
    for (int i = 0; i < 3; i++)
        RC(tr_nop());
    return 0;
}

static int short_sleeper(void *arg)
{
    (void)arg;
    int rc = tr_sleep_ns(200000);
    WCHECK(rc == 0 || rc == -ENOMEM);
    return 0;
}

/* Blocks until cancelled (or fails before it ever parks) and records the
 * result: nothing ever completes these waits but a cancellation. */
static int blocked_task(void *arg)
{
    struct blocked *b = arg;
    char buf[16];
    switch (b->kind) {
    case BK_READ:
        b->res = tr_read(b->w->never[0], buf, sizeof(buf), -1);
        break;
    case BK_RECV:
        b->res = tr_recv(b->w->nsock[0], buf, sizeof(buf), 0);
        break;
    case BK_POLL:
        b->res = tr_poll(b->w->never[0], POLLIN);
        break;
    default:
        b->res = tr_sleep_ns(LONG_NS);
        break;
    }
    if (b->res != -ECANCELED && b->res != -ENOMEM && b->res != -EBUSY) {
        char msg[120];
        snprintf(msg, sizeof(msg), "a blocked op (kind %d) ended with %ld, not -ECANCELED",
                 (int)b->kind, b->res);
        fault_wfail(__FILE__, __LINE__, msg);
    }
    b->ended = true;
    if (b->ended_count)
        (*b->ended_count)++;
    return b->res == -ECANCELED ? -ECANCELED : 0;
}

static int p4_wait_shutdown(void *arg)
{
    struct wl *w = arg;
    /* tr_cancel_all comes long before any shutdown. */
    WCHECK_EQ(tr_wait_shutdown(), -ECANCELED);
    w->p4_ended++;
    return 0;
}

static int p4_joiner(void *arg)
{
    struct joiner *j = arg;
    int res = 0;
    int rc = tr_join(j->target, &res);
    if (rc == -ECANCELED) {
        WCHECK_EQ(tr_detach(j->target), 0); /* the handle is still ours */
    } else {
        WCHECK_EQ(rc, 0);
        WCHECK(res == 0 || res == -ECANCELED);
    }
    j->w->p4_ended++;
    return 0;
}

static int p5_sleeper(void *arg)
{
    struct wl *w = arg;
    int rc = tr_sleep_ns(LONG_NS);
    WCHECK(rc == -ECANCELED || rc == -ENOMEM);
    w->p5_ended++;
    return 0;
}

static int p5_wait_shutdown(void *arg)
{
    struct wl *w = arg;
    WCHECK_EQ(tr_wait_shutdown(), 0);
    /* Cancelled by now (drain_ms 0): the level trigger, no submission. */
    WCHECK_EQ(tr_nop(), -ECANCELED);
    w->p5_ended++;
    return 0;
}

static int p5_late(void *arg)
{
    struct wl *w = arg;
    w->late_wait_rc = tr_wait_shutdown();
    WCHECK_EQ(w->late_wait_rc, 0);
    int rc = tr_sleep_ns(LONG_NS);
    WCHECK(rc == -ECANCELED || rc == -ENOMEM);
    if (rc == -ECANCELED) {
        /* A LATE task is cancelled only once every other task has ended. */
        struct tr_stats st;
        WCHECK_EQ(tr_engine_stats(tr_self_engine(), &st), 0);
        WCHECK_EQ(st.tasks_live, 1);
    }
    w->p5_ended++;
    return 0;
}

static int hook(void *arg)
{
    struct wl *w = arg;
    RC(tr_nop());
    w->hooks_ran++;
    return 0;
}

/* Spawns fn(arg) with a handle into h[*n]; true when it exists. */
static bool spawn_h(tr_task **h, int *n, tr_fn fn, void *arg)
{
    if (!SPAWN_OK(tr_spawn(NULL, &h[*n], fn, arg, NULL)))
        return false;
    (*n)++;
    return true;
}

/* Spawns fn(arg) detached; 1 when it exists, else 0. */
static int spawn_d(tr_fn fn, void *arg, unsigned flags)
{
    struct tr_spawn_opts o = {.flags = flags};
    return SPAWN_OK(tr_spawn(NULL, NULL, fn, arg, &o)) ? 1 : 0;
}

static void driver_yields(int k)
{
    for (int i = 0; i < k; i++)
        WCHECK_EQ(tr_yield(), 0); /* nobody cancels the driver */
}

/* 2. I/O that ends on its own: pipes, sockets, files, a nop storm, short
 * sleeps; all joined. An end whose task could not be spawned is closed
 * here, so its partner sees EOF (or EPIPE) instead of waiting forever. */
static void phase_io(struct wl *w)
{
    tr_task *h[2 * (NPIPE + NSOCK) + NFILE + NNOP + NSHORT];
    int nh = 0;
    for (int i = 0; i < NPIPE + NSOCK; i++) {
        struct pair *p = i < NPIPE ? &w->pipes[i] : &w->socks[i - NPIPE];
        if (!spawn_h(h, &nh, pipe_writer, p))
            wclose(&p->fd[1]);
        if (!spawn_h(h, &nh, pipe_reader, p))
            wclose(&p->fd[0]);
    }
    for (int i = 0; i < NFILE; i++)
        spawn_h(h, &nh, file_task, &w->files[i]);
    for (int i = 0; i < NNOP; i++)
        spawn_h(h, &nh, nop_task, NULL);
    for (int i = 0; i < NSHORT; i++)
        spawn_h(h, &nh, short_sleeper, NULL);
    w->p2_spawned = nh;
    for (int i = 0; i < nh; i++) {
        int res = -1;
        WCHECK_EQ(tr_join(h[i], &res), 0);
        WCHECK_EQ(res, 0);
        w->p2_joined++;
    }
}

/* 3. Cancel one by one, each parked (or not yet run): readers, receivers,
 * a sleeper; join each. */
static void phase_cancel(struct wl *w)
{
    tr_task *ch[NCANCEL];
    bool have[NCANCEL];
    for (int i = 0; i < NCANCEL; i++) {
        struct blocked *b = &w->cancel[i];
        b->kind = i < 4 ? BK_READ : i < 6 ? BK_RECV : BK_SLEEP;
        have[i] = SPAWN_OK(tr_spawn(NULL, &ch[i], blocked_task, b, NULL));
        w->p3_spawned += have[i];
    }
    driver_yields(3);
    for (int i = 0; i < NCANCEL; i++) {
        if (!have[i])
            continue;
        int rc = tr_cancel(ch[i]);
        WCHECK(rc == 0 || (rc == -ESRCH && w->cancel[i].ended));
        int res = 1;
        WCHECK_EQ(tr_join(ch[i], &res), 0);
        WCHECK(res == 0 || res == -ECANCELED);
        WCHECK(w->cancel[i].ended);
    }
}

/* 4. tr_cancel_all(TR_CANCEL_WAIT) over every way to wait: ring ops (more
 * than the SQ holds), a sleep, a join, tr_wait_shutdown; one excepted task
 * survives it and is cancelled alone afterwards. */
static void phase_cancel_all(struct wl *w)
{
    for (int i = 0; i < NB4; i++) {
        w->b4[i] = (struct blocked){
            .w = w, .kind = (enum bkind)(i % BK__COUNT), .ended_count = &w->p4_ended};
        w->p4_spawned += spawn_d(blocked_task, &w->b4[i], 0);
    }
    w->p4_spawned += spawn_d(p4_wait_shutdown, w, 0);
    tr_task *target;
    struct blocked *bt = &w->b4[NB4];
    *bt = (struct blocked){.w = w, .kind = BK_READ, .ended_count = &w->p4_ended};
    if (SPAWN_OK(tr_spawn(NULL, &target, blocked_task, bt, NULL))) {
        w->p4_spawned++;
        w->j4 = (struct joiner){.w = w, .target = target};
        if (spawn_d(p4_joiner, &w->j4, 0))
            w->p4_spawned++;
        else
            WCHECK_EQ(tr_detach(target), 0);
    }
    tr_task *survivor = NULL;
    struct blocked *bs = &w->b4[NB4 + 1];
    *bs = (struct blocked){.w = w, .kind = BK_RECV};
    if (!SPAWN_OK(tr_spawn(NULL, &survivor, blocked_task, bs, NULL)))
        survivor = NULL;
    driver_yields(3);
    w->p4_count = tr_cancel_all(&survivor, survivor ? 1 : 0, TR_CANCEL_WAIT);
    WCHECK(w->p4_count >= 0 && w->p4_count <= w->p4_spawned);
    WCHECK_EQ(w->p4_ended, w->p4_spawned);
    if (survivor) {
        WCHECK(!bs->ended || bs->res != -ECANCELED); /* excepted */
        int rc = tr_cancel(survivor);
        WCHECK(rc == 0 || (rc == -ESRCH && bs->ended));
        int res = 1;
        WCHECK_EQ(tr_join(survivor, &res), 0);
        WCHECK(bs->ended);
    }
}

/* 5. Left for the shutdown: long sleepers (> 64 at once), shutdown
 * waiters, blocked ring ops (more than the SQ holds), a LATE task; then
 * tr_engine_shutdown from inside. */
static void phase_shutdown(struct wl *w)
{
    for (int i = 0; i < NLONG; i++)
        w->p5_spawned += spawn_d(p5_sleeper, w, 0);
    for (int i = 0; i < NWAITSD; i++)
        w->p5_spawned += spawn_d(p5_wait_shutdown, w, 0);
    for (int i = 0; i < NB5; i++) {
        /* read, recv, poll in turn: ring ops only */
        w->b5[i] =
            (struct blocked){.w = w, .kind = (enum bkind)(i % 3), .ended_count = &w->p5_ended};
        w->p5_spawned += spawn_d(blocked_task, &w->b5[i], 0);
    }
    w->p5_spawned += spawn_d(p5_late, w, TR_SPAWN_LATE);
    driver_yields(3);
    WCHECK_EQ(tr_engine_shutdown(tr_self_engine()), 0);
}

static int driver(void *arg)
{
    struct wl *w = arg;
    /* 1. shutdown hooks */
    for (int i = 0; i < NHOOK; i++) {
        int rc = tr_at_shutdown(hook, w);
        WCHECK(rc == 0 || rc == -ENOMEM);
        w->hooks_reg += rc == 0;
    }
    phase_io(w);
    phase_cancel(w);
    phase_cancel_all(w);
    phase_shutdown(w);
    w->driver_done = true;
    return 0;
}

/* The fds of one run, made outside the engine. No cmocka assert: this may
 * run in a step's child process (see fault_run_isolated). */
static bool wl_init(struct wl *w)
{
    memset(w, 0, sizeof(*w));
    w->late_wait_rc = 1;
    w->never[0] = w->never[1] = w->nsock[0] = w->nsock[1] = -1;
    bool ok = pipe2(w->never, O_CLOEXEC) == 0;
    ok &= socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, w->nsock) == 0;
    for (int i = 0; i < NPIPE; i++) {
        w->pipes[i] = (struct pair){.w = w, .idx = i, .fd = {-1, -1}};
        ok &= pipe2(w->pipes[i].fd, O_CLOEXEC) == 0;
    }
    for (int i = 0; i < NSOCK; i++) {
        w->socks[i] = (struct pair){.w = w, .idx = NPIPE + i, .fd = {-1, -1}, .sock = true};
        ok &= socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, w->socks[i].fd) == 0;
    }
    for (int i = 0; i < NFILE; i++)
        w->files[i] = (struct ftask){.idx = i};
    for (int i = 0; i < NCANCEL; i++)
        w->cancel[i] = (struct blocked){.w = w};
    return ok;
}

/* Closes what the run left open: the never-written pair, and the pairs'
 * ends when the driver itself was never spawned (tasks close their own,
 * the driver closes those of tasks that could not be spawned). */
static void wl_fini(struct wl *w)
{
    close_pair(w->never);
    close_pair(w->nsock);
    for (int i = 0; i < NPIPE; i++)
        close_pair(w->pipes[i].fd);
    for (int i = 0; i < NSOCK; i++)
        close_pair(w->socks[i].fd);
}

/* ----------------------------------------------------------- running steps */

/* One run of the workload in a fresh engine with plan p armed at
 * countdown k; every finding goes to fault_rep. */
static void run_step(const struct fault_plan *p, uint64_t k)
{
    bool ok = true;
    int fds0 = fault_fds_now();
    static struct wl w;
    if (!SCHECK(wl_init(&w), 0)) {
        wl_fini(&w);
        return;
    }
    struct tr_config cfg;
    fault_engine_cfg(&cfg);
    tr_engine *e = NULL;
    int rc = tr_engine_create(&e, &cfg);
    if (!SCHECK(rc == 0, rc)) {
        wl_fini(&w);
        return;
    }

    tr__fault_arm(TR_FAULT_BIT(p->site), k, p->burst, p->submit_err, p->cqe_mode);
    rc = tr_spawn(e, NULL, driver, &w, NULL);
    SCHECK(rc == 0 || rc == -ENOMEM, rc);
    w.driver_spawned = rc == 0;
    int run = tr_engine_run(e);
    fault_rep.calls = tr__fault_calls(p->site);
    fault_rep.injected = tr__fault_injected();
    tr__fault_disarm();
    ok &= SCHECK(run == 0, run);

    if (fault_wrec.count)
        fault_rep_fail(fault_wrec.first, fault_wrec.first);
    ok &= fault_wrec.count == 0;
    struct tr_stats st;
    ok &= SCHECK(tr_engine_stats(e, &st) == 0, 0);
    ok &= SCHECK(st.tasks_live == 0, st.tasks_live);
    ok &= SCHECK(st.ops_inflight == 0, st.ops_inflight);
    ok &= SCHECK(st.ops_submitted == st.ops_completed, st.ops_submitted - st.ops_completed);
    ok &= SCHECK(st.tasks_spawned ==
                     st.tasks_ok + st.tasks_cancelled + st.tasks_failed + st.tasks_killed,
                 st.tasks_spawned);
    ok &= SCHECK(st.engine_ops_inflight == 0, st.engine_ops_inflight);
    ok &= SCHECK(st.timers_pending == 0, st.timers_pending);
    ok &= SCHECK(st.tasks_killed == 0, st.tasks_killed);
    ok &= SCHECK(w.driver_done == w.driver_spawned, w.driver_done);
    ok &= SCHECK(w.hooks_ran == w.hooks_reg, w.hooks_ran - w.hooks_reg);
    ok &= SCHECK(w.p2_joined == w.p2_spawned, w.p2_joined - w.p2_spawned);
    ok &= SCHECK(w.p4_ended == w.p4_spawned, w.p4_ended - w.p4_spawned);
    ok &= SCHECK(w.p5_ended == w.p5_spawned, w.p5_ended - w.p5_spawned);

    if (fault_rep.injected == 0 && w.driver_spawned) {
        /* Nothing was injected: the workload's exact results. */
        for (int i = 0; i < NPIPE + NSOCK; i++) {
            struct pair *pp = i < NPIPE ? &w.pipes[i] : &w.socks[i - NPIPE];
            SCHECK(pp->sent == CHUNKS * CHUNK, pp->sent);
            SCHECK(pp->recvd == CHUNKS * CHUNK, pp->recvd);
        }
        for (int i = 0; i < NFILE; i++)
            SCHECK(w.files[i].ok, i);
        for (int i = 0; i < NCANCEL; i++)
            SCHECK(w.cancel[i].res == -ECANCELED, w.cancel[i].res);
        SCHECK(w.hooks_reg == NHOOK, w.hooks_reg);
        SCHECK(w.p2_spawned == 2 * (NPIPE + NSOCK) + NFILE + NNOP + NSHORT, w.p2_spawned);
        SCHECK(w.p3_spawned == NCANCEL, w.p3_spawned);
        SCHECK(w.p4_spawned == NB4 + 3, w.p4_spawned);
        SCHECK(w.p4_count == w.p4_spawned, w.p4_count);
        SCHECK(w.p5_spawned == NLONG + NWAITSD + NB5 + 1, w.p5_spawned);
        SCHECK(w.late_wait_rc == 0, w.late_wait_rc);
        SCHECK(st.tasks_failed == 0, st.tasks_failed);
    }

    if (ok)
        tr_test_assert_quiescent(e); /* the suites' audit: the same checks, passed above */
    int d = tr_engine_destroy(e);
    SCHECK(d == 0, d);
    wl_fini(&w);
    int fds1 = fault_fds_now();
    SCHECK(fds1 == fds0, fds1 - fds0);
}

/* One step of the workload (fault_step: isolated, its failures recorded);
 * true when clean. */
static bool step(const struct fault_plan *p, uint64_t k)
{
    return fault_step(p, k, run_step);
}

/* A countdown sweep of the workload over plan p (fault_sweep). */
static void sweep(const struct fault_plan *p)
{
    fault_sweep(p, run_step);
}

/* --------------------------------------------------------------- the tests */

/* The workload with nothing injected: its exact results, the audit, and
 * that it reaches every site. */
static void test_fault_workload_clean(void **state)
{
    (void)state;
    fault_steps_reset();
    for (int s = 0; s < TR_FS__COUNT; s++) {
        struct fault_plan p = {(enum tr__fault_site)s, 1, -EBUSY, TR_FAULT_CQE_EINTR};
        step(&p, UINT64_MAX);
        print_message("fault: the workload reaches %-7s %llu times\n", fault_site_name[s],
                      (unsigned long long)fault_rep.calls);
        assert_int_equal(fault_rep.injected, 0);
        assert_true(fault_rep.calls > 0);
    }
    fault_sweeps_done(NULL);
}

/* Every allocation fails once (burst 1), and every allocation from the
 * k-th on fails (burst 0): -ENOMEM, never a crash, a leak or a hang. */
static void test_fault_alloc_enomem_survived(void **state)
{
    (void)state;
    fault_steps_reset();
    sweep(&(struct fault_plan){TR_FS_ALLOC, 1, 0, 0});
    sweep(&(struct fault_plan){TR_FS_ALLOC, 0, 0, 0});
    fault_site_done(TR_FS_ALLOC);
}

/* The SQ looks full at each get_sqe: the engine flushes and retries; an op
 * that still gets no SQE fails with -EBUSY, a cancel is deferred, an
 * internal read is armed or cancelled at a later pass. */
static void test_fault_get_sqe_full_survived(void **state)
{
    (void)state;
    fault_steps_reset();
    sweep(&(struct fault_plan){TR_FS_GET_SQE, 1, 0, 0});
    sweep(&(struct fault_plan){TR_FS_GET_SQE, 8, 0, 0});
    sweep(&(struct fault_plan){TR_FS_GET_SQE, 9, 0, 0});
    sweep(&(struct fault_plan){TR_FS_GET_SQE, 18, 0, 0});
    fault_site_done(TR_FS_GET_SQE);
}

/* io_uring_enter refuses with -EBUSY, -EAGAIN or -EINTR at each call. */
static void test_fault_submit_refused_survived(void **state)
{
    (void)state;
    fault_steps_reset();
    static const int errs[] = {-EBUSY, -EAGAIN, -EINTR};
    for (size_t i = 0; i < 3; i++) {
        sweep(&(struct fault_plan){TR_FS_SUBMIT, 1, errs[i], 0});
        sweep(&(struct fault_plan){TR_FS_SUBMIT, 8, errs[i], 0});
    }
    fault_site_done(TR_FS_SUBMIT);
}

/* Each task op's completion in turn reads -EINTR, a short count or
 * -ECANCELED: the task sees it, nothing else breaks. */
static void test_fault_cqe_rewritten_survived(void **state)
{
    (void)state;
    fault_steps_reset();
    static const int modes[] = {TR_FAULT_CQE_EINTR, TR_FAULT_CQE_SHORT, TR_FAULT_CQE_ECANCELED};
    for (size_t i = 0; i < 3; i++)
        sweep(&(struct fault_plan){TR_FS_CQE, 1, 0, modes[i]});
    fault_site_done(TR_FS_CQE);
}

/* ------------------------------------------------------------------- main */

int main(void)
{
    signal(SIGPIPE, SIG_IGN); /* a writer whose reader gave up gets -EPIPE */
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/tr-fault-XXXXXX");
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 1;
    }
    const struct CMUnitTest tests[] = {
        TF(test_fault_workload_clean),         TF(test_fault_alloc_enomem_survived),
        TF(test_fault_get_sqe_full_survived),  TF(test_fault_submit_refused_survived),
        TF(test_fault_cqe_rewritten_survived),
    };
    if (getenv("TR_FAULT_FILTER")) /* e.g. "*submit*": one test, for debugging */
        cmocka_set_test_filter(getenv("TR_FAULT_FILTER"));
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    fault_print_totals();
    for (int i = 0; i < NFILE; i++) {
        char path[128];
        snprintf(path, sizeof(path), "%s/f%d", tmpdir, i);
        unlink(path);
    }
    rmdir(tmpdir);
    return rc;
}
