/* SPDX-License-Identifier: MIT */
/*
 * The suites' shared harness for what must not take the test process down
 * with it: child processes (fork isolation) and fault-injection sweeps.
 * Written once here instead of once per suite.
 *
 * Header-only, like tr_test.h (include that first): each suite is one
 * translation unit and pays only for what it uses.
 *
 * Sections:
 *   1. child processes: tr_child_run (a function in a forked child, its
 *      stderr captured, a report sent back, a deadline), tr_child_fork and
 *      tr_child_signal_parent (bare children, e.g. from inside a task),
 *      tr_child_reap, tr_child_describe, tr_child_assert_signal
 *   2. fault sweeps (suites linked to taskring_fault only): plans, the
 *      step report, a step's own check recorder (WCHECK), failure kinds,
 *      one isolated step, the countdown sweep, the totals
 */
#ifndef TR_HARNESS_H
#define TR_HARNESS_H

#include "tr_test.h"

#include <poll.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>

/* ============================================== 1. child processes */

/* How tr_child_run runs its child. */
struct tr_child_opts {
    /* The child's stderr goes to tr_child_out.err instead of the suite's. */
    bool capture_stderr;
    /* The child starts from a clean slate (tr_child_clean_slate): for
     * children that die on purpose. Else it keeps the suite's handlers. */
    bool clean_slate;
    /* The child's alarm(2): its own watchdog (0 cancels the one it
     * inherits from the suite, see tr_test.h section 4). */
    unsigned alarm_s;
    /* The parent's deadline from the fork to the child's end (EOF on its
     * pipes); past it the child is killed (SIGKILL) and timed_out is set.
     * 0: no deadline. */
    unsigned timeout_s;
    /* When fn returns, the child sends its copy of these bytes back, and
     * the parent's copy receives them; one that arrives incomplete is
     * zeroed. NULL: nothing is sent. */
    void *report;
    size_t report_size;
};

/* What tr_child_run saw of its child. */
struct tr_child_out {
    int status;        /* waitpid's */
    bool timed_out;    /* killed by the parent at the deadline */
    bool report_whole; /* the whole report arrived */
    char err[16384];   /* the captured stderr, NUL-terminated (truncated) */
    size_t len;
};

/* In a child about to die on purpose: the crash handlers cmocka installs
 * around each test (they would longjmp back into the runner in the child)
 * reset to the default, no signal blocked, no core file written. */
static inline void tr_child_clean_slate(void)
{
    static const int sigs[] = {SIGSEGV, SIGBUS, SIGABRT, SIGILL, SIGFPE, SIGALRM};
    for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++)
        signal(sigs[i], SIG_DFL);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    struct rlimit rl = {0, 0};
    setrlimit(RLIMIT_CORE, &rl);
    prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
}

/* waitpid(pid, status, 0), again after EINTR. Returns waitpid's result. */
static inline pid_t tr_child_reap(pid_t pid, int *status)
{
    pid_t w;
    do {
        w = waitpid(pid, status, 0);
    } while (w < 0 && errno == EINTR);
    return w;
}

/* A bare child that runs fn(arg) and _exits with its result (no atexit,
 * no stdio flush, no cmocka: the parent goes on). Returns its pid, or -1
 * if fork failed. Callable from a task: nothing here parks. */
static inline pid_t tr_child_fork(int (*fn)(void *), void *arg)
{
    pid_t pid = fork();
    if (pid == 0)
        _exit(fn(arg));
    return pid;
}

static inline int tr_child_signal_parent_fn(void *arg)
{
    return kill(getppid(), (int)(intptr_t)arg) == 0 ? 0 : 1;
}

/* A bare child that sends sig to this process and exits: 0 if its kill(2)
 * worked, else 1. Returns its pid, or -1. */
static inline pid_t tr_child_signal_parent(int sig)
{
    return tr_child_fork(tr_child_signal_parent_fn, (void *)(intptr_t)sig);
}

/* In the child: all of n bytes to fd, or _exit(2). */
static inline void tr_child_send(int fd, const void *buf, size_t n)
{
    const char *b = buf;
    while (n > 0) {
        ssize_t k = write(fd, b, n);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            _exit(2);
        b += k;
        n -= (size_t)k;
    }
}

/* Milliseconds left until deadline_ns (CLOCK_MONOTONIC), for poll: -1
 * without a deadline, 0 once it has passed. */
static inline int tr_child_ms_left(uint64_t deadline_ns)
{
    if (deadline_ns == 0)
        return -1;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    uint64_t now = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
    return now >= deadline_ns ? 0 : (int)((deadline_ns - now + 999999) / 1000000);
}

/* The parent's side: reads the child's stderr (efd) and report (rfd) until
 * both are at EOF (-1: not in use), or the deadline passes (returns false).
 * Reading to EOF before waiting keeps a chatty child from blocking on a
 * full pipe. Bounded: each round reads a byte or more, meets an EOF or
 * waits out the deadline; a child that writes forever (more than 1 << 20
 * reads) counts as hung. */
static inline bool tr_child_collect(int efd, int rfd, const struct tr_child_opts *o,
                                    struct tr_child_out *out, size_t *rgot)
{
    uint64_t deadline = 0;
    if (o->timeout_s) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        deadline = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec +
                   (uint64_t)o->timeout_s * 1000000000ull;
    }
    for (long round = 0; round < (1l << 20) && (efd >= 0 || rfd >= 0); round++) {
        struct pollfd pf[2] = {{.fd = efd, .events = POLLIN}, {.fd = rfd, .events = POLLIN}};
        int pr = poll(pf, 2, tr_child_ms_left(deadline));
        if (pr < 0 && errno == EINTR)
            continue;
        if (pr <= 0)
            return false;
        if (efd >= 0 && pf[0].revents) {
            char tmp[4096];
            ssize_t n = read(efd, tmp, sizeof(tmp));
            if (n < 0 && errno == EINTR)
                continue;
            if (n <= 0) {
                efd = -1;
            } else {
                size_t room = sizeof(out->err) - 1 - out->len;
                size_t take = (size_t)n < room ? (size_t)n : room;
                memcpy(out->err + out->len, tmp, take);
                out->len += take;
            }
        }
        if (rfd >= 0 && pf[1].revents) {
            char tmp[4096];
            ssize_t n = read(rfd, tmp, sizeof(tmp));
            if (n < 0 && errno == EINTR)
                continue;
            if (n <= 0) {
                rfd = -1;
            } else {
                size_t room = o->report_size - *rgot;
                size_t take = (size_t)n < room ? (size_t)n : room;
                memcpy((char *)o->report + *rgot, tmp, take);
                *rgot += take;
            }
        }
    }
    return efd < 0 && rfd < 0;
}

/* Runs fn(arg) in a forked child as o says, and fills out with what the
 * parent saw: the wait status, the captured stderr, whether the report
 * arrived whole, whether the child was killed at the deadline. fn's result
 * is the child's exit status (after its report is sent). Outside tasks
 * (cmocka asserts); the parent should hold no engine, so that the fork is
 * cheap and the child owns nothing it shares. */
static inline void tr_child_run(int (*fn)(void *), void *arg, const struct tr_child_opts *o,
                                struct tr_child_out *out)
{
    int ep[2] = {-1, -1}, rp[2] = {-1, -1};
    memset(out, 0, sizeof(*out));
    if (o->capture_stderr)
        assert_int_equal(pipe2(ep, O_CLOEXEC), 0);
    if (o->report)
        assert_int_equal(pipe2(rp, O_CLOEXEC), 0);
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        if (ep[0] >= 0) {
            close(ep[0]);
            if (dup2(ep[1], STDERR_FILENO) < 0)
                _exit(90);
            close(ep[1]);
        }
        if (rp[0] >= 0)
            close(rp[0]);
        if (o->clean_slate)
            tr_child_clean_slate();
        alarm(o->alarm_s);
        int code = fn(arg);
        if (o->report)
            tr_child_send(rp[1], o->report, o->report_size);
        _exit(code);
    }
    if (ep[1] >= 0)
        close(ep[1]);
    if (rp[1] >= 0)
        close(rp[1]);
    size_t rgot = 0;
    if (!tr_child_collect(ep[0], rp[0], o, out, &rgot)) {
        out->timed_out = true;
        kill(pid, SIGKILL);
    }
    out->err[out->len] = '\0';
    if (ep[0] >= 0)
        close(ep[0]);
    if (rp[0] >= 0)
        close(rp[0]);
    assert_int_equal(tr_child_reap(pid, &out->status), pid);
    out->report_whole = o->report && rgot == o->report_size;
    if (o->report && !out->report_whole)
        memset(o->report, 0, o->report_size);
}

/* Prints how the child ended and its captured stderr. */
static inline void tr_child_describe(const char *what, const struct tr_child_out *o)
{
    if (o->timed_out)
        print_message("%s: child hung (killed at the deadline); stderr: %s\n", what, o->err);
    else if (WIFSIGNALED(o->status))
        print_message("%s: child killed by signal %d (%s); stderr: %s\n", what, WTERMSIG(o->status),
                      strsignal(WTERMSIG(o->status)), o->err);
    else if (WIFEXITED(o->status))
        print_message("%s: child exited with %d; stderr: %s\n", what, WEXITSTATUS(o->status),
                      o->err);
}

/* Fails the test unless the child died by signal sig. */
static inline void tr_child_assert_signal(const struct tr_child_out *o, int sig)
{
    if (!WIFSIGNALED(o->status) || WTERMSIG(o->status) != sig) {
        tr_child_describe("unexpected end", o);
        fail_msg("child should have died by signal %d (%s)", sig, strsignal(sig));
    }
}

/* Fails the test unless the child exited with 0 (not hung, not killed):
 * what says which check it was, in the description of how it ended. */
static inline void tr_child_assert_exit0(const struct tr_child_out *o, const char *what)
{
    if (o->timed_out || !WIFEXITED(o->status) || WEXITSTATUS(o->status) != 0) {
        tr_child_describe(what, o);
        fail_msg("%s: the child should have exited with 0 (exit %d, timed out: %d)", what,
                 WIFEXITED(o->status) ? WEXITSTATUS(o->status) : -1, o->timed_out);
    }
}

/* A check in a child that reports by its exit status: returns code from
 * the enclosing function (the child's fn) unless c holds. */
#define TR_CHILD_CK(c, code)                                                                       \
    do {                                                                                           \
        if (!(c))                                                                                  \
            return (code);                                                                         \
    } while (0)

/* Runs fn in a child (stderr captured, a 60 s deadline) and fails the
 * test unless it exited with 0. */
static inline void tr_child_run_exit0(int (*fn)(void *), const char *what)
{
    static const struct tr_child_opts o = {.capture_stderr = true, .timeout_s = 60};
    static struct tr_child_out out;
    memset(&out, 0, sizeof(out));
    tr_child_run(fn, NULL, &o, &out);
    tr_child_assert_exit0(&out, what);
}

/* An engine for a child: no signals; quiet, no report either. NULL when
 * it cannot be created. */
static inline tr_engine *tr_child_engine(bool quiet)
{
    struct tr_config cfg;
    tr_config_init(&cfg);
    cfg.flags |= TR_CFG_NO_SIGNALS;
    if (quiet)
        cfg.report_fd = -1;
    tr_engine *e = NULL;
    return tr_engine_create(&e, &cfg) == 0 ? e : NULL;
}

/* ================================================ 2. fault sweeps */

#if defined(TR_FAULT_INJECTION)
#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/lsan_interface.h>
#define FAULT_LSAN 1
#endif

/* A sweep's cap on stepped countdowns (TR_FAULT_STEPS overrides it). */
#define FAULT_MAX_STEPS 400

/* ------------------------------------------------------ step context */

/* What runs now, for the watchdog (tr_test_current) and the abort handler. */
static char fault_step_desc[200] = "?";
static const char *fault_step_test = "?";

static inline void fault_on_abort(int sig)
{
    (void)sig;
    static const char m[] = "\nFAULT STEP at abort: ";
    ssize_t rc = write(2, m, sizeof(m) - 1);
    rc = write(2, fault_step_desc, strlen(fault_step_desc));
    rc = write(2, "\n", 1);
    (void)rc;
    /* SA_RESETHAND: abort() raises again with the default action. */
}

/* Per test (TF): the shared setup, then an abort handler that names the
 * step (a TR_ASSERT in a child prints which one). */
static inline int fault_setup(void **state)
{
    tr_test_setup(state);
    fault_step_test = tr_test_current;
    snprintf(fault_step_desc, sizeof(fault_step_desc), "%s", fault_step_test);
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = fault_on_abort;
    sa.sa_flags = (int)SA_RESETHAND;
    sigaction(SIGABRT, &sa, NULL);
    return 0;
}

static inline int fault_teardown(void **state)
{
    tr__fault_disarm();
    signal(SIGABRT, SIG_DFL);
    return tr_test_teardown(state);
}

#define TF(f) cmocka_unit_test_prestate_setup_teardown(f, fault_setup, fault_teardown, (void *)#f)

/* ---------------------------------------- checks inside a step's tasks */

/* A step's own failure recorder (never cmocka asserts in a task; see
 * tr_test.h section 3), per step: the first failure's text and a count.
 * A step turns a non-zero count into a step failure. */
static struct {
    int count;
    char first[400];
} fault_wrec;

static inline void fault_wfail(const char *file, int line, const char *what)
{
    const char *base = strrchr(file, '/');
    if (fault_wrec.count++ == 0)
        snprintf(fault_wrec.first, sizeof(fault_wrec.first), "%s:%d: %s", base ? base + 1 : file,
                 line, what);
}

static inline bool fault_wcheck(bool ok, const char *what, const char *file, int line)
{
    if (!ok)
        fault_wfail(file, line, what);
    return ok;
}

static inline bool fault_wcheck_eq(long long a, long long b, const char *what, const char *file,
                                   int line)
{
    if (a == b)
        return true;
    char msg[300];
    snprintf(msg, sizeof(msg), "%s (got %lld, want %lld)", what, a, b);
    fault_wfail(file, line, msg);
    return false;
}

#define WCHECK(c) fault_wcheck(!!(c), #c, __FILE__, __LINE__)
#define WCHECK_EQ(a, b)                                                                            \
    ({                                                                                             \
        long long wa_ = (long long)(a), wb_ = (long long)(b);                                      \
        fault_wcheck_eq(wa_, wb_, #a " == " #b, __FILE__, __LINE__);                               \
    })

/* ------------------------------------------------------------- plans */

static const char *const fault_site_name[TR_FS__COUNT] = {"ALLOC", "GET_SQE", "SUBMIT", "CQE"};

/* What tr__fault_arm gets, but the countdown. */
struct fault_plan {
    enum tr__fault_site site;
    uint64_t burst;
    int submit_err;
    int cqe_mode;
};

static inline const char *fault_plan_mode(const struct fault_plan *p)
{
    if (p->site == TR_FS_SUBMIT)
        return p->submit_err == -EBUSY ? "-EBUSY" : p->submit_err == -EAGAIN ? "-EAGAIN" : "-EINTR";
    if (p->site == TR_FS_CQE)
        return p->cqe_mode == TR_FAULT_CQE_EINTR   ? "EINTR"
               : p->cqe_mode == TR_FAULT_CQE_SHORT ? "SHORT"
                                                   : "ECANCELED";
    return "-";
}

/* ----------------------------------------------------- a step's report */

/* What one step found, filled where the step runs (a child process, see
 * fault_run_isolated) and handed to the parent through a pipe. */
#define FAULT_REP_FAILS 4
struct fault_report {
    uint64_t calls;    /* calls at the plan's site */
    uint64_t injected; /* faults injected */
    int nfail;
    struct {
        char key[160];    /* the kind: which check */
        char detail[360]; /* with the values */
    } f[FAULT_REP_FAILS];
};

static struct fault_report fault_rep;

static inline void fault_rep_fail(const char *key, const char *detail)
{
    if (fault_rep.nfail < FAULT_REP_FAILS) {
        snprintf(fault_rep.f[fault_rep.nfail].key, sizeof(fault_rep.f[0].key), "%.159s", key);
        snprintf(fault_rep.f[fault_rep.nfail].detail, sizeof(fault_rep.f[0].detail), "%.359s",
                 detail);
    }
    fault_rep.nfail++;
}

static inline bool fault_step_check(bool ok, const char *what, long got)
{
    if (!ok) {
        char detail[300];
        snprintf(detail, sizeof(detail), "%s (got %ld)", what, got);
        fault_rep_fail(what, detail);
    }
    return ok;
}

/* SCHECK(cond, got): a check made by the step itself, outside its tasks. */
#define SCHECK(cond, got) fault_step_check((cond), #cond, (long)(got))

/* ---------------------------------------------------- failure kinds */

/* Step failures of the running test, grouped by kind (the failed check, or
 * the first failed check inside the workload, or a crash or hang) and
 * plan: the first step of each kind is printed at once (countdowns step
 * upwards, so it is the minimal one), the others only counted. */
#define FAULT_MAX_KINDS 64
static struct {
    int failed_steps;
    int nkinds;
    struct {
        char key[160];
        char plan[80];
        int steps;
        char first[600];
    } kinds[FAULT_MAX_KINDS];
} fault_kinds;

static char fault_plan_label[80];

static inline void fault_kind_record(const char *key, const char *detail)
{
    for (int i = 0; i < fault_kinds.nkinds; i++)
        if (!strcmp(fault_kinds.kinds[i].key, key) &&
            !strcmp(fault_kinds.kinds[i].plan, fault_plan_label)) {
            fault_kinds.kinds[i].steps++;
            return;
        }
    if (fault_kinds.nkinds == FAULT_MAX_KINDS)
        return;
    int i = fault_kinds.nkinds++;
    snprintf(fault_kinds.kinds[i].key, sizeof(fault_kinds.kinds[i].key), "%s", key);
    snprintf(fault_kinds.kinds[i].plan, sizeof(fault_kinds.kinds[i].plan), "%s", fault_plan_label);
    fault_kinds.kinds[i].steps = 1;
    snprintf(fault_kinds.kinds[i].first, sizeof(fault_kinds.kinds[i].first), "%s: %s",
             fault_step_desc, detail);
    print_error("FAULT STEP FAILED: %s\n", fault_kinds.kinds[i].first);
}

/* After a step: its failures into the kinds, and one failed step more if
 * it had any. */
static inline void fault_record_step(void)
{
    for (int i = 0; i < fault_rep.nfail && i < FAULT_REP_FAILS; i++)
        fault_kind_record(fault_rep.f[i].key, fault_rep.f[i].detail);
    fault_kinds.failed_steps += fault_rep.nfail > 0;
}

/* -------------------------------------------------- the step's engine */

/* The engine a step runs: small SQ, no signals, silent. */
static inline void fault_engine_cfg(struct tr_config *cfg)
{
    tr_config_init(cfg);
    cfg->flags = TR_CFG_NO_SIGNALS;
    cfg->report_fd = -1;
    cfg->sq_entries = 8;  /* small, so the SQ-full paths are real */
    cfg->grace_ms = 1000; /* nothing in the workload shields: never reached */
    cfg->kill_ms = 500;
}

/* The open fds, without cmocka (a step checks, it never asserts). */
static inline int fault_fds_now(void)
{
    return tr_test_dir_entries("/proc/self/fd") - 1;
}

/* ---------------------------------------------- one step, isolated */

/* A step that crashes, aborts (TR_ASSERT) or hangs must not take the rest
 * of the sweep with it: each step runs in a child process (tr_child_run;
 * the parent has no engine, so a fork is cheap and safe), which sends
 * fault_rep back. A child that dies, exits otherwise (a sanitizer report)
 * or has not reported within FAULT_STEP_TIMEOUT_S is a failed step of its
 * own kind. With TR_FAULT_FORK=0 steps run in this process (for a
 * debugger); then the per-step watchdog ends the suite at a hang, naming
 * the step. */
#define FAULT_STEP_TIMEOUT_S 3 /* a step takes milliseconds, ASan included */

static inline bool fault_fork_steps(void)
{
    const char *s = getenv("TR_FAULT_FORK");
    return !s || strcmp(s, "0") != 0;
}

/* Whether the child runs LeakSanitizer before it leaves (ASan builds).
 * About half a step's cost, so only where the engine allocates: ALLOC
 * plans (their error paths free partial work), clean runs, pinned cases.
 * GET_SQE, SUBMIT and CQE faults allocate nothing. */
static bool fault_leak_check = true;

struct fault_call {
    void (*fn)(const void *);
    const void *arg;
};

/* In the child: the step, then (ASan) the leak check. */
static inline int fault_child(void *p)
{
    const struct fault_call *c = p;
    c->fn(c->arg);
#if defined(FAULT_LSAN)
    /* The child ends with _exit (no exit-time leak check): check here
     * what the step's engine may have leaked on its error paths. */
    if (fault_leak_check && __lsan_do_recoverable_leak_check())
        fault_rep_fail("memory leaked (LeakSanitizer report above)",
                       "memory leaked (LeakSanitizer report above)");
#endif
    return 0;
}

/* Runs fn(arg) as one step with a fresh report and recorder; afterwards
 * fault_rep holds what it found, a crash, hang or silent exit included. */
static inline void fault_run_isolated(void (*fn)(const void *), const void *arg)
{
    memset(&fault_rep, 0, sizeof(fault_rep));
    memset(&fault_wrec, 0, sizeof(fault_wrec));
    if (!fault_fork_steps()) {
        fn(arg);
        return;
    }
    struct fault_call c = {fn, arg};
    const struct tr_child_opts o = {.alarm_s = 0, /* the parent's deadline rules */
                                    .timeout_s = FAULT_STEP_TIMEOUT_S,
                                    .report = &fault_rep,
                                    .report_size = sizeof(fault_rep)};
    static struct tr_child_out out; /* static: 16 KiB of stderr buffer */
    tr_child_run(fault_child, &c, &o, &out);
    char msg[120];
    if (out.timed_out) {
        snprintf(msg, sizeof(msg), "no end within %d s: the engine hangs (child killed)",
                 FAULT_STEP_TIMEOUT_S);
        fault_rep_fail("hang", msg);
    } else if (WIFSIGNALED(out.status)) {
        snprintf(msg, sizeof(msg), "the step's process died of signal %d (%s): see above",
                 WTERMSIG(out.status), strsignal(WTERMSIG(out.status)));
        fault_rep_fail(msg, msg);
    } else if (WEXITSTATUS(out.status) != 0 || !out.report_whole) {
        snprintf(msg, sizeof(msg), "the step's process exited with %d without a report",
                 WEXITSTATUS(out.status));
        fault_rep_fail(msg, msg);
    }
}

/* One run of a workload with plan p armed at countdown k; its findings go
 * to fault_rep (calls and injected included). */
typedef void (*fault_step_fn)(const struct fault_plan *p, uint64_t k);

struct fault_step_arg {
    fault_step_fn run;
    const struct fault_plan *p;
    uint64_t k;
};

static inline void fault_step_tramp(const void *arg)
{
    const struct fault_step_arg *a = arg;
    a->run(a->p, a->k);
}

/* Runs one step of run (isolated) and records its failures; true when
 * clean. */
static inline bool fault_step(const struct fault_plan *p, uint64_t k, fault_step_fn run)
{
    snprintf(fault_step_desc, sizeof(fault_step_desc),
             "%s: site %s mode %s countdown %llu burst %llu", fault_step_test,
             fault_site_name[p->site], fault_plan_mode(p), (unsigned long long)k,
             (unsigned long long)p->burst);
    snprintf(fault_plan_label, sizeof(fault_plan_label), "%s %s burst %llu",
             fault_site_name[p->site], fault_plan_mode(p), (unsigned long long)p->burst);
    tr_test_current = fault_step_desc; /* the watchdog names the step */
    alarm(FAULT_STEP_TIMEOUT_S * 2);   /* a backstop; the child has its own timeout */
    struct fault_step_arg a = {run, p, k};
    fault_leak_check = p->site == TR_FS_ALLOC || k == UINT64_MAX;
    fault_run_isolated(fault_step_tramp, &a);
    fault_leak_check = true;
    fault_record_step();
    tr_test_current = fault_step_test;
    alarm(TR_TEST_WATCHDOG_S);
    return fault_rep.nfail == 0;
}

/* ---------------------------------------------------------- sweeps */

/* Totals over the whole suite, printed at the end. */
static uint64_t fault_total_points, fault_total_injected;
static uint64_t fault_site_points[TR_FS__COUNT], fault_site_injected[TR_FS__COUNT];

static inline unsigned fault_max_steps(void)
{
    const char *s = getenv("TR_FAULT_STEPS");
    long v = s ? strtol(s, NULL, 10) : 0;
    return v > 0 ? (unsigned)v : FAULT_MAX_STEPS;
}

/* The clean run (countdown out of reach) gives N; then countdowns 1..N, or
 * fault_max_steps() points spread evenly over 1..N (both ends included). A
 * plan stops after FAULT_MAX_HANGS hung steps. */
#define FAULT_MAX_HANGS 2

static inline void fault_sweep(const struct fault_plan *p, fault_step_fn run)
{
    fault_step(p, UINT64_MAX, run);
    assert_int_equal(fault_rep.injected, 0);
    uint64_t n = fault_rep.calls;
    unsigned cap = fault_max_steps();
    uint64_t points = n < cap ? n : cap;
    uint64_t injected = 0, failed = 0, hangs = 0, stepped = 0;
    for (uint64_t i = 0; i < points; i++) {
        uint64_t k = points == n ? i + 1 : 1 + (points > 1 ? i * (n - 1) / (points - 1) : 0);
        failed += !fault_step(p, k, run);
        injected += fault_rep.injected;
        stepped++;
        /* Each hang costs FAULT_STEP_TIMEOUT_S; the first ones (the
         * minimal countdowns) say all there is to say. */
        for (int f = 0; f < fault_rep.nfail && f < FAULT_REP_FAILS; f++)
            hangs += !strcmp(fault_rep.f[f].key, "hang");
        if (hangs >= FAULT_MAX_HANGS)
            break;
    }
    print_message("fault: %-7s %-9s burst %-2llu: N=%-4llu calls, stepped %llu points%s, "
                  "%llu injections, %llu failed steps%s\n",
                  fault_site_name[p->site], fault_plan_mode(p), (unsigned long long)p->burst,
                  (unsigned long long)n, (unsigned long long)stepped,
                  points < n ? " (strided)" : "", (unsigned long long)injected,
                  (unsigned long long)failed,
                  stepped < points ? " (stopped after the first hangs)" : "");
    fault_site_points[p->site] += stepped;
    fault_site_injected[p->site] += injected;
    fault_total_points += stepped;
    fault_total_injected += injected;
    /* The workload reaches the site, and the steps do inject. */
    assert_true(n > 0);
    assert_true(injected > 0);
}

static inline void fault_steps_reset(void)
{
    memset(&fault_kinds, 0, sizeof(fault_kinds));
}

/* At the end of a test: every failure kind, and the test fails if a step
 * did. */
static inline void fault_sweeps_done(const char *what)
{
    if (what)
        print_message("fault: %s\n", what);
    for (int i = 0; i < fault_kinds.nkinds; i++)
        print_error("fault: failure kind %d, %d step(s) in [%s]; first (minimal): %s\n", i + 1,
                    fault_kinds.kinds[i].steps, fault_kinds.kinds[i].plan,
                    fault_kinds.kinds[i].first);
    if (fault_kinds.failed_steps)
        fail_msg("%d fault step(s) failed, %d kind(s); first: %s", fault_kinds.failed_steps,
                 fault_kinds.nkinds, fault_kinds.kinds[0].first);
}

static inline void fault_site_done(enum tr__fault_site site)
{
    char line[160];
    snprintf(line, sizeof(line), "%s total: %llu injection points stepped, %llu injections",
             fault_site_name[site], (unsigned long long)fault_site_points[site],
             (unsigned long long)fault_site_injected[site]);
    fault_sweeps_done(line);
}

/* The suite's totals, for its main after the run. */
static inline void fault_print_totals(void)
{
    print_message("fault: all sites: %llu injection points stepped, %llu injections\n",
                  (unsigned long long)fault_total_points, (unsigned long long)fault_total_injected);
}

#endif /* TR_FAULT_INJECTION */

#endif
