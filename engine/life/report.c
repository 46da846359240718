/* SPDX-License-Identifier: MIT */
/*
 * report.c — what the engine tells people: the shutdown report and the
 * task dump. Plain text, one fact per line, prefixed "taskring:".
 */
#include "tr_internal.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <string.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

/* One write to a pipe or FIFO with SIGPIPE blocked: a reader that went
 * away (the `| tee` of a Ctrl+C'd pipeline) costs -EPIPE, not the
 * process. A SIGPIPE our write raised is consumed before the mask comes
 * back; one that was pending already is left alone. */
static ssize_t write_nosigpipe(int fd, const char *buf, size_t len)
{
    sigset_t pipe_set, old, pending;
    sigemptyset(&pipe_set);
    sigaddset(&pipe_set, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &pipe_set, &old);
    sigpending(&pending);
    bool was_pending = sigismember(&pending, SIGPIPE) == 1;
    struct iovec iov = {(void *)buf, len};
    ssize_t w = pwritev2(fd, &iov, 1, -1, RWF_NOWAIT);
    if (w < 0 && (errno == EOPNOTSUPP || errno == EINVAL)) {
        /* No RWF_NOWAIT here (a terminal): poll for room, no timeout. */
        struct pollfd p = {.fd = fd, .events = POLLOUT};
        if (poll(&p, 1, 0) == 1 && (p.revents & POLLOUT))
            w = write(fd, buf, len);
        else
            errno = EAGAIN;
    }
    int saved = errno;
    if (w < 0 && saved == EPIPE && !was_pending) {
        struct timespec zero = {0, 0};
        (void)sigtimedwait(&pipe_set, NULL, &zero);
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    errno = saved;
    return w;
}

/* One write that never blocks and never raises SIGPIPE. Sockets take
 * MSG_DONTWAIT | MSG_NOSIGNAL; pipes, FIFOs and terminals RWF_NOWAIT (or a
 * poll), with SIGPIPE held off; regular files and block devices never wait
 * for a reader: a plain write. */
static ssize_t write_nowait(int fd, const char *buf, size_t len)
{
    struct stat st;
    if (fstat(fd, &st) != 0)
        return -1;
    if (S_ISREG(st.st_mode) || S_ISBLK(st.st_mode))
        return write(fd, buf, len);
    if (S_ISSOCK(st.st_mode))
        return send(fd, buf, len, MSG_DONTWAIT | MSG_NOSIGNAL);
    return write_nosigpipe(fd, buf, len);
}

int tr__write_all(int fd, const char *buf, size_t len)
{
    /* Bounded: each round writes at least one byte or gives up. A reader
     * that stalls (a full pipe nobody drains, a stopped terminal) costs the
     * rest of the line, never the shutdown (DESIGN section 4). */
    while (len > 0) {
        ssize_t w = write_nowait(fd, buf, len);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return w < 0 ? -errno : -EIO;
        buf += w;
        len -= (size_t)w;
    }
    return 0;
}

/* A report line: what could not be written is counted, not waited for. */
void tr__report_line(tr_engine *e, const char *buf, size_t len)
{
    if (e->report_fd < 0)
        return;
    if (tr__write_all(e->report_fd, buf, len) != 0)
        e->st.report_lines_lost++;
}

struct out {
    int fd;
    int err;
    uint64_t *lost; /* counts lines that could not be written, or NULL */
};

__attribute__((format(printf, 2, 3))) static void outf(struct out *o, const char *fmt, ...)
{
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    size_t len = (size_t)n < sizeof(line) ? (size_t)n : sizeof(line) - 1;
    if (o->err) {
        /* The reader stalls: every later line is lost too, counted. */
        if (o->lost)
            (*o->lost)++;
        return;
    }
    o->err = tr__write_all(o->fd, line, len);
    if (o->err && o->lost)
        (*o->lost)++;
}

const char *tr__task_state_name(const tr_task *t)
{
    switch (t->state) {
    case TR_TASK_READY:
        return "ready";
    case TR_TASK_RUNNING:
        return "running";
    case TR_TASK_PARKED:
        return t->wait_kind->name;
    case TR_TASK_DONE:
        return "done";
    default:
        return "freed";
    }
}

int tr_engine_dump(const tr_engine *e, int fd)
{
    if (!e || fd < 0)
        return -EINVAL;
    struct out o = {fd, 0, fd == e->report_fd ? (uint64_t *)&e->st.report_lines_lost : NULL};
    uint64_t now = tr__now_ns();
    int n = 0;
    /* Bounded by the live tasks. */
    for (const tr_task *t = e->sch.all_head; t && !o.err; t = t->all_next) {
        bool parked = t->state == TR_TASK_PARKED;
        char what[96] = " op=- fd=-1";
        if (parked && t->wait_kind->describe)
            t->wait_kind->describe(e, t, what, sizeof(what));
        char scope[64] = "";
        if (t->scope)
            tr__scope_describe(t, now, scope, sizeof(scope));
        double parked_ms = (parked && now > t->parked_ns) ? (double)(now - t->parked_ns) / 1e6 : 0;
        outf(&o, "taskring: task %" PRIu64 " '%s' %s%s parked=%.1fms%s%s%s%s%s\n", t->id,
             tr_task_name(t), tr__task_state_name(t), what, parked_ms, scope,
             tr__task_cancelled(t) ? " cancelled" : "",
             (t->shield > 0 || tr__scope_shielded(t)) ? " shielded" : "", t->late ? " late" : "",
             t->killed ? " killed" : "");
        n++;
    }
    return o.err ? o.err : n;
}

static double ms(uint64_t a, uint64_t b)
{
    return b > a ? (double)(b - a) / 1e6 : 0.0;
}

static const char *trigger_name(int trigger, int signo, char *buf, size_t len)
{
    switch (trigger) {
    case TR_TRIG_SIGNAL:
        snprintf(buf, len, "signal %s (%d)", sigabbrev_np(signo) ? sigabbrev_np(signo) : "?",
                 signo);
        return buf;
    case TR_TRIG_CALL:
        return "tr_engine_shutdown()";
    case TR_TRIG_MAIN:
        return "main task returned";
    default:
        return "none";
    }
}

static void report_details(const tr_engine *e, struct out *o, const char *pfx)
{
    const struct tr__shutdown *sd = &e->sd;
    if (e->st.offload_abandoned > 0)
        outf(o,
             "taskring:   %soffloaded jobs still running at the kill rung: %" PRIu64
             " (their tasks' stacks left to them, leaked)\n",
             pfx, e->st.offload_abandoned);
    if (e->st.calls_abandoned > 0)
        outf(o,
             "taskring:   %scalls whose remote task had not ended at the kill rung: %" PRIu64
             " (their tasks' stacks left to them, leaked)\n",
             pfx, e->st.calls_abandoned);
    if (e->ib.posts_failed > 0)
        outf(o, "taskring:   %sposts whose task could not be spawned (no memory): %" PRIu64 "\n",
             pfx, e->ib.posts_failed);
    if (!pfx[0] || e->st.deadline_cuts > 0) /* the lockstep's lines: only when some were */
        outf(o,
             "taskring:   %scalls cut short by deadlines: %" PRIu64 " (since the trigger), %" PRIu64
             " in all\n",
             pfx, e->st.deadline_cuts - sd->cuts0, e->st.deadline_cuts);
    if (e->st.prim_waits_cut > 0)
        outf(o,
             "taskring:   %swaits on primitives cut short: %" PRIu64
             " (since the trigger), %" PRIu64 " in all: they took nothing\n",
             pfx, e->st.prim_waits_cut - sd->prim0, e->st.prim_waits_cut);
    if (e->st.kill_grants_passed > 0)
        outf(o,
             "taskring:   %sgrants passed on from killed waiters: %" PRIu64
             " (units, mutexes, signals, messages)\n",
             pfx, e->st.kill_grants_passed);
    if (e->st.kill_msgs_lost > 0)
        outf(o,
             "taskring:   %schannel messages lost with killed receivers: %" PRIu64
             " (no room to go back)\n",
             pfx, e->st.kill_msgs_lost);
    for (unsigned i = 0; i < e->nscopes_left && i < TR_SD_NAMES; i++)
        outf(o,
             "taskring:   %sscopes: task '%s' (id %" PRIu64 ") ended with %d scope(s) entered: "
             "unlinked by the engine\n",
             pfx, e->scopes_left[i].name, e->scopes_left[i].id, e->scopes_left[i].result);
    if (e->nscopes_left > TR_SD_NAMES)
        outf(o, "taskring:   %sscopes: %u more tasks ended with scopes entered\n", pfx,
             e->nscopes_left - TR_SD_NAMES);
    for (unsigned i = 0; i < sd->ngfail && i < TR_SD_NAMES; i++)
        outf(o,
             "taskring:   %sgroup of task '%s' (id %" PRIu64
             "): %zu real failure(s), the first %d (%s)\n",
             pfx, sd->gfail[i].name, sd->gfail[i].id, sd->gfail_n[i], sd->gfail[i].result,
             strerror(-sd->gfail[i].result));
    if (sd->ngfail > TR_SD_NAMES)
        outf(o, "taskring:   %sgroups: %u more with failures\n", pfx, sd->ngfail - TR_SD_NAMES);
    for (unsigned i = 0; i < e->ngroups_left && i < TR_SD_NAMES; i++)
        outf(o,
             "taskring:   %sgroups: task '%s' (id %" PRIu64 ") returned without waiting for its "
             "group (%d children): the engine cancelled and waited for them\n",
             pfx, e->groups_left[i].name, e->groups_left[i].id, e->groups_left[i].result);
    if (e->ngroups_left > TR_SD_NAMES)
        outf(o, "taskring:   %sgroups: %u more tasks returned without waiting for a group\n", pfx,
             e->ngroups_left - TR_SD_NAMES);
    for (unsigned i = 0; i < sd->nfailed && i < TR_SD_NAMES; i++)
        outf(o, "taskring:   %sfailed: task '%s' (id %" PRIu64 "): %d (%s)\n", pfx,
             sd->failed[i].name, sd->failed[i].id, sd->failed[i].result,
             strerror(-sd->failed[i].result));
    if (sd->nfailed > TR_SD_NAMES)
        outf(o, "taskring:   %sfailed: %u more\n", pfx, sd->nfailed - TR_SD_NAMES);
    for (unsigned i = 0; i < sd->nkilled && i < TR_SD_NAMES; i++)
        outf(o,
             "taskring:   %skilled: task '%s' (id %" PRIu64 "): its op (if any) was reaped, its "
             "stack freed; what it owned (fds, memory) leaked\n",
             pfx, sd->killed[i].name, sd->killed[i].id);
    if (sd->nkilled > TR_SD_NAMES)
        outf(o, "taskring:   %skilled: %u more\n", pfx, sd->nkilled - TR_SD_NAMES);
    if (sd->hooks_abandoned && sd->hooks_spawn_err)
        outf(o,
             "taskring:   %sat_shutdown: %u hooks NOT run: their task could not be spawned (%s)\n",
             pfx, sd->hooks_abandoned, strerror(-sd->hooks_spawn_err));
    else if (sd->hooks_abandoned)
        outf(o, "taskring:   %sat_shutdown: %u hooks NOT run: the kill rung ended their task\n",
             pfx, sd->hooks_abandoned);
}

void tr__shutdown_report(tr_engine *e)
{
    if (e->report_fd < 0)
        return;
    const struct tr__shutdown *sd = &e->sd;
    struct out o = {e->report_fd, 0, &e->st.report_lines_lost};
    char trig[64];
    uint64_t drain_end = sd->t_kill ? sd->t_kill : sd->t_final;
    outf(&o, "taskring: shutdown report (trigger: %s, signals received: %" PRIu64 ")\n",
         trigger_name(sd->trigger, sd->trigger_signo, trig, sizeof(trig)), e->st.signals_received);
    outf(&o, "taskring:   stop      %8.1f ms\n", ms(sd->t_trigger, sd->t_cancel));
    outf(&o, "taskring:   cancel    %8.1f ms  %" PRIu64 " tasks cancelled\n",
         ms(sd->t_cancel, sd->t_drain), sd->tasks_cancelled_by_sd);
    outf(&o, "taskring:   drain     %8.1f ms  shields %s\n", ms(sd->t_drain, drain_end),
         sd->shields_broken ? "broken" : "held");
    outf(&o, "taskring:   kill      %8.1f ms  %" PRIu64 " tasks killed\n",
         sd->t_kill ? ms(sd->t_kill, sd->t_final) : 0.0, e->st.tasks_killed - sd->killed0);
    outf(&o, "taskring:   finalize  %8.1f ms\n", ms(sd->t_final, sd->t_done));
    outf(&o, "taskring:   total     %8.1f ms\n", ms(sd->t_trigger, sd->t_done));
    outf(&o,
         "taskring:   tasks ended: %" PRIu64 " ok, %" PRIu64 " cancelled, %" PRIu64
         " failed, %" PRIu64 " killed; ops cancelled %" PRIu64 "; CQEs reaped %" PRIu64 "\n",
         e->st.tasks_ok - sd->ok0, e->st.tasks_cancelled - sd->cancelled0,
         e->st.tasks_failed - sd->failed0, e->st.tasks_killed - sd->killed0,
         e->st.cancels_submitted - sd->cancels0,
         (e->st.ops_completed - sd->completed0) + (e->st.cqe_stale - sd->stale0));
    report_details(e, &o, "");
    outf(&o, "taskring:   audit: %" PRIu64 " tasks live, %" PRIu64 " ops in flight: %s\n",
         e->sch.live, e->ops.inflight,
         (e->sch.live == 0 && e->ops.inflight == 0) ? "quiescent" : "NOT QUIESCENT");
}

/* ---- the lockstep's one report ------------------------------------------------ */

struct sd_totals {
    uint64_t ok, cancelled, failed, killed, cancels, reaped;
};

static struct sd_totals sd_totals(const tr_engine *e)
{
    const struct tr__shutdown *sd = &e->sd;
    return (struct sd_totals){
        .ok = e->st.tasks_ok - sd->ok0,
        .cancelled = e->st.tasks_cancelled - sd->cancelled0,
        .failed = e->st.tasks_failed - sd->failed0,
        .killed = e->st.tasks_killed - sd->killed0,
        .cancels = e->st.cancels_submitted - sd->cancels0,
        .reaped = (e->st.ops_completed - sd->completed0) + (e->st.cqe_stale - sd->stale0),
    };
}

void tr__lockstep_report(const struct tr__lockstep *ls, int fd)
{
    if (fd < 0 || ls->n == 0)
        return;
    tr_engine *e0 = ls->engines[0];
    struct out o = {fd, 0, &e0->st.report_lines_lost};
    char trig[64];
    uint64_t t0 = atomic_load(&ls->t_trigger), t_end = t0;
    struct sd_totals all = {0};
    uint64_t live = 0, inflight = 0;
    outf(&o,
         "taskring: cluster shutdown report (%u engines, trigger: %s, signals received: %" PRIu64
         ")\n",
         ls->n,
         trigger_name(atomic_load(&ls->trigger), atomic_load(&ls->trigger_signo), trig,
                      sizeof(trig)),
         e0->st.signals_received);
    for (unsigned i = 0; i < ls->n; i++) {
        const tr_engine *e = ls->engines[i];
        const struct tr__shutdown *sd = &e->sd;
        uint64_t drain_end = sd->t_kill ? sd->t_kill : sd->t_final;
        struct sd_totals t = sd_totals(e);
        outf(&o,
             "taskring:   engine %u: %.1f ms (stop %.1f, cancel %.1f, drain %.1f, kill %.1f, "
             "finalize %.1f); tasks %" PRIu64 " ok, %" PRIu64 " cancelled, %" PRIu64
             " failed, %" PRIu64 " killed; ops cancelled %" PRIu64 "; CQEs reaped %" PRIu64
             "; shields %s\n",
             i, ms(sd->t_trigger, sd->t_done), ms(sd->t_trigger, sd->t_cancel),
             ms(sd->t_cancel, sd->t_drain), ms(sd->t_drain, drain_end),
             sd->t_kill ? ms(sd->t_kill, sd->t_final) : 0.0, ms(sd->t_final, sd->t_done), t.ok,
             t.cancelled, t.failed, t.killed, t.cancels, t.reaped,
             sd->t_grace ? "broken" : "held"); /* shields_broken is reset at the end */
        char pfx[24];
        snprintf(pfx, sizeof(pfx), "engine %u: ", i);
        report_details(e, &o, pfx);
        if (sd->t_done > t_end)
            t_end = sd->t_done;
        all.ok += t.ok;
        all.cancelled += t.cancelled;
        all.failed += t.failed;
        all.killed += t.killed;
        all.cancels += t.cancels;
        all.reaped += t.reaped;
        live += e->sch.live;
        inflight += e->ops.inflight;
    }
    outf(&o,
         "taskring:   all: %.1f ms; tasks %" PRIu64 " ok, %" PRIu64 " cancelled, %" PRIu64
         " failed, %" PRIu64 " killed; ops cancelled %" PRIu64 "; CQEs reaped %" PRIu64 "\n",
         ms(t0, t_end), all.ok, all.cancelled, all.failed, all.killed, all.cancels, all.reaped);
    outf(&o, "taskring:   audit: %" PRIu64 " tasks live, %" PRIu64 " ops in flight: %s\n", live,
         inflight, (live == 0 && inflight == 0) ? "quiescent" : "NOT QUIESCENT");
}
