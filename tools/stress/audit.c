/* SPDX-License-Identifier: MIT */
/*
 * audit.c — the checks after a round. The quiescence audit (create/run/
 * destroy rounds read the engine after tr_engine_run; every round also
 * snapshots the stats in the last at_shutdown hook); conservation of
 * tasks (the engine's counts match the tool's own bookkeeping); no fd
 * leak (/proc/self/fd as before the round; an fd that a KILLED task was
 * accepting or opening when its op won the race is the documented leak
 * and is identified and closed); the signal mask as before; and byte
 * conservation on every stream; the scopes' books (no timer left armed,
 * scopes_left and deadline_cuts as the tool counted them).
 *
 * Streams: after the round every writer end is closed and every reader
 * end still open is drained to EOF with nonblocking read(2). Then:
 * received <= sent always; received == sent == planned on clean streams
 * (neither side cancelled nor killed); received == sent when the reader
 * saw EOF (the writer closes its end only after its last op); and, when
 * the reader end was kept open until the drain, received + drained ==
 * sent (within the in-flight bounds): no byte may be lost or invented by a
 * cancelled op.
 */
#include "stress.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* ------------------------------------------------------------------ fds */

static int cmp_int(const void *a, const void *b)
{
    int x = *(const int *)a, y = *(const int *)b;
    return (x > y) - (x < y);
}

/* The open fds, sorted; at most cap. */
int list_fds(int *out, int cap)
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

/* -------------------------------------------------------------- streams */

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

/* A stream end's state as the audit sees it: after the round, an end
 * still SS_RUN was killed there. */
static const char *state_name(uint8_t s)
{
    static const char *const n[] = {
        [SS_NEW] = "never ran", [SS_RUN] = "killed", [SS_CLEAN] = "clean", [SS_DIRTY] = "dirty"};
    return s < 4 ? n[s] : "?";
}

void check_streams(struct round *r, unsigned *nclean, unsigned *neof, unsigned *nexact)
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

/* ----------------------------------------- the engine's books, the mask */

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

/* The scopes' books (work_scope.c): no timer armed once every task has
 * ended (none outlives its scope, G10), the scopes left entered are those
 * left on purpose and those of killed tasks, and deadline_cuts counts the
 * -ETIMEDOUT results our tasks saw. */
static void check_scopes(struct round *r, const struct tr_stats *st, const char *when,
                         uint64_t etimedout, uint64_t left_planned)
{
    uint64_t killed = scopes_killed(r);
    if (st->timers_pending != 0)
        viol(r, "%s: timers_pending %" PRIu64 " with every task ended: a timer outlived its scope",
             when, st->timers_pending);
    if (st->scopes_left != left_planned + killed)
        viol(r,
             "%s: scopes_left %" PRIu64 ", the tool left %" PRIu64 " on purpose and killed tasks "
             "were inside %" PRIu64,
             when, st->scopes_left, left_planned, killed);
    if (st->deadline_cuts != etimedout)
        viol(r,
             "%s: deadline_cuts %" PRIu64 ", the tool's calls returned -ETIMEDOUT %" PRIu64
             " times",
             when, st->deadline_cuts, etimedout);
}

void audit_engine(struct round *r, tr_engine *e)
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
    check_scopes(r, &st, "after the run", r->etimedout, r->left_planned);
    sync_check_stats(r, &st, "after the run", r->mtx_left_planned, r->group_fails);
    if (st.signals_received < 1 || st.signals_received > r->nsig)
        viol(r, "signals_received %" PRIu64 ", %u sent", st.signals_received, r->nsig);
    if (st.cq_overflows)
        viol(r, "cq_overflows %" PRIu64, st.cq_overflows);
    r->est = st;
    r->have_est = true;
}

/* ------------------------------------------- what a round leaves behind */

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

void cleanup_dir(void)
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

/* ------------------------------------------------------ after the round */

/* The last hook's view (hook_audit in hooks.c): the at-shutdown task is
 * alive, and tasks that hooks spawned (they start cancelled) may be. */
void audit_last_hook(struct round *r)
{
    if (!r->audit_done)
        return;
    uint64_t ours_live = r->audit.tasks_live - 1;
    if (r->audit.tasks_live < 1)
        viol(r, "at the last hook: tasks_live %" PRIu64 ", want >= 1", r->audit.tasks_live);
    if (r->audit.tasks_spawned != r->audit.tasks_ok + r->audit.tasks_cancelled +
                                      r->audit.tasks_failed + r->audit.tasks_killed +
                                      r->audit.tasks_live)
        viol(r, "conservation at the last hook");
    check_books(r, &r->audit, "at the last hook", r->audit_spawned, r->audit_returned, r->audit_ok,
                r->audit_cancelled, r->audit_failed, r->audit_hooks_reg, 1, ours_live);
    if (r->audit.signals_received < 1)
        viol(r, "at the last hook: no signal received");
    check_scopes(r, &r->audit, "at the last hook", r->audit_etimedout, r->audit_left_planned);
    sync_check_stats(r, &r->audit, "at the last hook", r->audit_mtx_left_planned,
                     r->audit_group_fails);
}

/* The signal mask, as before the round (m0); then, if the round blocked
 * the shutdown signals itself (preblock), the ones that arrived after the
 * engine are consumed and the caller's mask (orig) restored. No shutdown
 * signal may be left pending. */
void audit_mask(struct round *r, const sigset_t *m0, const sigset_t *orig, const sigset_t *ss)
{
    sigset_t m1;
    pthread_sigmask(SIG_BLOCK, NULL, &m1);
    if (!same_mask(m0, &m1))
        viol(r, "the signal mask differs after the round");
    if (r->preblock) {
        struct timespec zero = {0, 0};
        for (int i = 0; i < 16 && sigtimedwait(ss, NULL, &zero) > 0; i++)
            ;
        pthread_sigmask(SIG_SETMASK, orig, NULL);
    }
    sigset_t pend;
    sigpending(&pend);
    if (sigismember(&pend, SIGINT) == 1 || sigismember(&pend, SIGTERM) == 1)
        viol(r, "a shutdown signal is still pending after the round");
}

/* Writer ends and everything else first, then drain the readers. */
void close_and_drain(struct round *r)
{
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
}

/* fds: as before (the sorted list before[nbefore]), except what killed
 * tasks leaked by the contract: *acc accepted sockets and *opn opened
 * files, each closed here. */
void audit_fds(struct round *r, const int *before, int nbefore, unsigned *acc, unsigned *opn)
{
    static int after[4096];
    unsigned allow_acc = 0, allow_open = 0;
    for (size_t i = 0; i < r->nall; i++) {
        struct tctx *c = r->all[i];
        if (c->state != TS_RETURNED) {
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
        classify_leak(r, after[i], acc, opn);
        close(after[i]);
    }
    if (*acc > allow_acc || *opn > allow_open)
        viol(r,
             "fd leak: %u accepted sockets and %u opened files left open; killed tasks were in "
             "accept %u, in openat %u",
             *acc, *opn, allow_acc, allow_open);
    nafter = list_fds(after, 4096);
    if (nafter != nbefore)
        viol(r, "fd count %d after the round, %d before", nafter, nbefore);
}
