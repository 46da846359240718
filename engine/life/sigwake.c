/* SPDX-License-Identifier: MIT */
/*
 * sigwake.c — the engine's own reads: the signalfd (shutdown signals) and
 * an eventfd (tr_engine_shutdown from another thread or a signal handler).
 *
 * Both are ordinary ring reads into buffers inside the engine, re-armed
 * after each completion while the engine runs. They are not tasks and are
 * counted apart from the tasks' ops (stats.engine_ops_inflight). When
 * tr_engine_run is about to return, both are cancelled with ASYNC_CANCEL
 * and their completions reaped, so nothing is in flight between runs (G2).
 */
#include "tr_internal.h"

#include <errno.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

/* The process's signal-handling engines (G12): a process-directed signal
 * is read by one signalfd only, whichever thread's read is armed first, so
 * the engine that reads it tells every other one. The lock only guards
 * the list; telling is an atomic add and an eventfd write. */
static pthread_mutex_t sig_engines_mu = PTHREAD_MUTEX_INITIALIZER;
static tr_engine *sig_engines;

/* Which engine blocked which signal in which thread: a signal an engine
 * blocked (it was not blocked before, or another engine of the same thread
 * had blocked it) is in its sw.sig_added, and is unblocked when the last
 * such engine of that thread goes, on that thread. An engine destroyed on
 * another thread cannot touch its owner's mask: what it blocked there is
 * left as an orphan, which the owner's next engine adopts (and so unblocks
 * when it goes). All under sig_engines_mu. */
#define TR_SIG_ORPHANS 16
static struct {
    bool used;
    pthread_t thread;
    sigset_t set;
} sig_orphans[TR_SIG_ORPHANS];

/* Does another registered engine of thread th hold signal s? */
static bool held_by_other(const tr_engine *e, pthread_t th, int s)
{
    for (const tr_engine *x = sig_engines; x; x = x->sw.next)
        if (x != e && pthread_equal(x->sw.owner, th) && sigismember(&x->sw.sig_added, s) == 1)
            return true;
    return false;
}

/* An orphaned block of signal s in thread th, adopted (taken off the
 * table). */
static bool adopt_orphan(pthread_t th, int s)
{
    for (int i = 0; i < TR_SIG_ORPHANS; i++) {
        if (sig_orphans[i].used && pthread_equal(sig_orphans[i].thread, th) &&
            sigismember(&sig_orphans[i].set, s) == 1) {
            sigdelset(&sig_orphans[i].set, s);
            if (sigisemptyset(&sig_orphans[i].set))
                sig_orphans[i].used = false;
            return true;
        }
    }
    return false;
}

static void leave_orphan(pthread_t th, int s)
{
    int free_slot = -1;
    for (int i = 0; i < TR_SIG_ORPHANS; i++) {
        if (sig_orphans[i].used && pthread_equal(sig_orphans[i].thread, th)) {
            sigaddset(&sig_orphans[i].set, s);
            return;
        }
        if (!sig_orphans[i].used && free_slot < 0)
            free_slot = i;
    }
    if (free_slot < 0)
        return; /* the table is full: that block stays, unowned (rare) */
    sig_orphans[free_slot].used = true;
    sig_orphans[free_slot].thread = th;
    sigemptyset(&sig_orphans[free_slot].set);
    sigaddset(&sig_orphans[free_slot].set, s);
}

static void sig_engines_add(tr_engine *e)
{
    e->sw.next = sig_engines;
    sig_engines = e;
}

static void sig_engines_remove(tr_engine *e)
{
    for (tr_engine **pp = &sig_engines; *pp; pp = &(*pp)->sw.next) {
        if (*pp == e) {
            *pp = e->sw.next;
            break;
        }
    }
    e->sw.next = NULL;
}

void tr__wake_write(const tr_engine *e)
{
    uint64_t one = 1;
    if (e->sw.wake_fd < 0)
        return;
    ssize_t w;
    int saved = errno;
    do {
        w = write(e->sw.wake_fd, &one, sizeof(one));
    } while (w < 0 && errno == EINTR);
    errno = saved;
}

/* Our signalfd read signo: every other engine that handles it shuts down
 * too, each on its own thread, one rung per signal as ours. */
static void sig_engines_tell(const tr_engine *from, int signo)
{
    pthread_mutex_lock(&sig_engines_mu);
    for (tr_engine *x = sig_engines; x; x = x->sw.next) {
        if (x == from || sigismember(&x->sw.sig_set, signo) != 1)
            continue;
        atomic_store_explicit(&x->sw.peer_signo, signo, memory_order_relaxed);
        atomic_fetch_add_explicit(&x->sw.peer_signals, 1, memory_order_release);
        tr__wake_write(x);
    }
    pthread_mutex_unlock(&sig_engines_mu);
}

void tr__sig_drain_pending(tr_engine *e)
{
    if (e->sw.sigfd < 0)
        return;
    /* Bounded as in tr__sig_release. */
    /* A process-directed one may be another engine's too (G12): it is told
     * to them as if our read had taken it. */
    struct timespec zero = {0, 0};
    for (int i = 0; i < 4096; i++) {
        int signo = sigtimedwait(&e->sw.sig_set, NULL, &zero);
        if (signo < 0)
            break;
        sig_engines_tell(e, signo);
    }
    atomic_store_explicit(&e->sw.peer_signals, 0, memory_order_relaxed);
}

bool tr__peer_signals_pending(const tr_engine *e)
{
    return atomic_load_explicit(&e->sw.peer_signals, memory_order_relaxed) != 0;
}

void tr__peer_signals_take(tr_engine *e)
{
    uint64_t n = atomic_exchange_explicit(&e->sw.peer_signals, 0, memory_order_acquire);
    int signo = atomic_load_explicit(&e->sw.peer_signo, memory_order_relaxed);
    /* Bounded: 3 signals take the whole ladder; more change nothing. */
    for (uint64_t i = 0; i < n && i < 4; i++) {
        tr__shutdown_on_signal(e, signo);
        if (e->sw.sigfd >= 0) /* a cluster's signal owner tells its engines */
            tr__lockstep_signal(e, signo);
    }
}

bool tr__shutdown_signals_ok(const sigset_t *set)
{
    static const int never[] = {SIGKILL, SIGSTOP, SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGTRAP, SIGSYS};
    for (size_t i = 0; i < sizeof(never) / sizeof(never[0]); i++)
        if (sigismember(set, never[i]) == 1)
            return false;
    return true;
}

/* Keeps e->sw.reads_owed true to the state it summarises (the scheduler's
 * inline pass start reads it on every switch: one load, not five); called
 * after every change of an fd, an armed flag or stopping. */
static void owed_update(tr_engine *e)
{
    e->sw.reads_owed = !e->sw.stopping && ((e->sw.sigfd >= 0 && !e->sw.sig_armed) ||
                                           (e->sw.wake_fd >= 0 && !e->sw.wake_armed));
}

int tr__sigwake_open(tr_engine *e, const struct tr_config *cfg)
{
    e->sw.sigfd = -1;
    /* Blocking fds: io_uring waits on them by polling, and
     * tr_engine_shutdown's write can never block (the counter would have to
     * reach 2^64 - 2). */
    e->sw.wake_fd = eventfd(0, EFD_CLOEXEC);
    if (e->sw.wake_fd < 0)
        return -errno;
    owed_update(e);
    sigemptyset(&e->sw.sig_set);
    sigemptyset(&e->sw.sig_added);
    e->sw.owner = pthread_self();
    if (cfg->flags & TR_CFG_NO_SIGNALS)
        return 0;
    e->sw.sig_set = cfg->shutdown_signals;
    if (sigisemptyset(&e->sw.sig_set))
        return 0;
    int fd = signalfd(-1, &e->sw.sig_set, SFD_CLOEXEC);
    if (fd < 0) {
        int err = errno;
        close(e->sw.wake_fd);
        e->sw.wake_fd = -1;
        return -err;
    }
    pthread_mutex_lock(&sig_engines_mu);
    sigset_t old;
    int err = pthread_sigmask(SIG_BLOCK, &e->sw.sig_set, &old);
    if (err) {
        pthread_mutex_unlock(&sig_engines_mu);
        close(fd);
        close(e->sw.wake_fd);
        e->sw.wake_fd = -1;
        return -err;
    }
    for (int s = 1; s < NSIG; s++) {
        if (sigismember(&e->sw.sig_set, s) != 1)
            continue;
        /* Ours to unblock: it was not blocked, or an engine blocked it
         * (ours then share it). One the caller had blocked stays theirs. */
        if (sigismember(&old, s) == 0 || held_by_other(e, e->sw.owner, s) ||
            adopt_orphan(e->sw.owner, s))
            sigaddset(&e->sw.sig_added, s);
    }
    e->sw.sigfd = fd;
    owed_update(e);
    sig_engines_add(e);
    pthread_mutex_unlock(&sig_engines_mu);
    return 0;
}

/* Under sig_engines_mu, with e already off the list: says which signals
 * nobody else of e's thread needs blocked (rel->unblock), or, off the
 * owner's thread, leaves them as orphans for the owner's next engine.
 * consume: a shutdown ran, and shutdown signals still pending belong to
 * its ladder: they are consumed rather than let unblocking turn an orderly
 * shutdown into death by the default action. Without one they are left
 * pending and delivered: nobody handled that Ctrl+C, so it acts as usual. */
static void release_blocks(tr_engine *e, bool consume, struct tr__sig_release *rel)
{
    sigemptyset(&rel->unblock);
    rel->consume = consume;
    bool on_owner = pthread_equal(e->sw.owner, pthread_self());
    for (int s = 1; s < NSIG; s++) {
        if (sigismember(&e->sw.sig_added, s) != 1 || held_by_other(e, e->sw.owner, s))
            continue;
        if (on_owner)
            sigaddset(&rel->unblock, s);
        else
            leave_orphan(e->sw.owner, s); /* another thread's mask */
    }
    sigemptyset(&e->sw.sig_added);
}

/* The last step of tr_engine_destroy, after everything else is freed: a
 * shutdown signal that arrives while the engine is torn down belongs to
 * the shutdown until then (DESIGN section 4). */
void tr__sig_release(const struct tr__sig_release *rel)
{
    if (sigisemptyset(&rel->unblock))
        return;
    /* Bounded: each standard signal is pending at most once, real-time ones
     * are capped by RLIMIT_SIGPENDING; 4096 rounds is more than either. */
    struct timespec zero = {0, 0};
    for (int i = 0; rel->consume && i < 4096; i++)
        if (sigtimedwait(&rel->unblock, NULL, &zero) < 0)
            break;
    /* A signal arriving between the last sigtimedwait and the unblock
     * would still be delivered with its default action. While no other
     * engine of the process handles signals (ignoring is process-wide: it
     * would discard theirs), default-action signals are ignored across the
     * unblock, which discards such a latecomer, then restored. */
    struct sigaction old[NSIG];
    sigset_t ignored;
    sigemptyset(&ignored);
    pthread_mutex_lock(&sig_engines_mu);
    bool alone = sig_engines == NULL;
    pthread_mutex_unlock(&sig_engines_mu);
    for (int s = 1; rel->consume && alone && s < NSIG; s++) {
        if (sigismember(&rel->unblock, s) != 1 || sigaction(s, NULL, &old[s]) != 0)
            continue;
        if (!(old[s].sa_flags & SA_SIGINFO) && old[s].sa_handler == SIG_DFL) {
            struct sigaction ign = old[s];
            ign.sa_handler = SIG_IGN;
            if (sigaction(s, &ign, NULL) == 0)
                sigaddset(&ignored, s);
        }
    }
    pthread_sigmask(SIG_UNBLOCK, &rel->unblock, NULL);
    for (int s = 1; s < NSIG; s++)
        if (sigismember(&ignored, s) == 1)
            sigaction(s, &old[s], NULL);
}

void tr__sigwake_close(tr_engine *e, struct tr__sig_release *rel)
{
    sigemptyset(&rel->unblock);
    rel->consume = false;
    TR_ASSERT(!e->sw.sig_armed);
    TR_ASSERT(!e->sw.wake_armed);
    if (e->sw.sigfd >= 0) {
        /* Off the list first: from then on no other engine's thread tells
         * us a signal, so closing our eventfd races with nobody's write. */
        pthread_mutex_lock(&sig_engines_mu);
        sig_engines_remove(e);
        release_blocks(e, e->sd.phase == TR_PH_DONE, rel);
        pthread_mutex_unlock(&sig_engines_mu);
        close(e->sw.sigfd);
        e->sw.sigfd = -1;
    }
    if (e->sw.wake_fd >= 0)
        close(e->sw.wake_fd);
    e->sw.wake_fd = -1;
    owed_update(e);
}

static void arm_read(tr_engine *e, int fd, void *buf, unsigned len, uint64_t ud, bool *armed)
{
    struct io_uring_sqe *sqe = tr__ring_get_sqe(e);
    if (!sqe)
        return; /* the ring refuses: retried at the next pass */
    io_uring_prep_read(sqe, fd, buf, len, 0);
    sqe->user_data = ud;
    *armed = true;
    e->sw.inflight++;
}

void tr__internal_arm(tr_engine *e)
{
    if (e->sw.stopping)
        return;
    if (e->sw.sigfd >= 0 && !e->sw.sig_armed)
        arm_read(e, e->sw.sigfd, &e->sw.sig_info, sizeof(e->sw.sig_info), TR_UD_SIGNAL,
                 &e->sw.sig_armed);
    if (e->sw.wake_fd >= 0 && !e->sw.wake_armed)
        arm_read(e, e->sw.wake_fd, &e->sw.wake_buf, sizeof(e->sw.wake_buf), TR_UD_WAKE,
                 &e->sw.wake_armed);
    owed_update(e);
}

void tr__internal_resume(tr_engine *e)
{
    e->sw.stopping = false;
    owed_update(e);
}

static void cancel_read(tr_engine *e, uint64_t ud, bool *sent)
{
    if (*sent)
        return;
    struct io_uring_sqe *sqe = tr__ring_get_sqe(e);
    if (!sqe)
        return; /* retried: the loop calls tr__internal_stop each idle pass */
    io_uring_prep_cancel64(sqe, ud, 0);
    sqe->user_data = TR_UD_ICANCEL | (ud & 0xffu);
    e->sw.inflight++;
    *sent = true;
}

void tr__internal_stop(tr_engine *e)
{
    e->sw.stopping = true;
    owed_update(e);
    if (e->sw.sig_armed)
        cancel_read(e, TR_UD_SIGNAL, &e->sw.sig_cancel_sent);
    if (e->sw.wake_armed)
        cancel_read(e, TR_UD_WAKE, &e->sw.wake_cancel_sent);
    tr__embed_stop(e);
}

bool tr__internal_stop_owed(const tr_engine *e)
{
    return e->sw.stopping && ((e->sw.sig_armed && !e->sw.sig_cancel_sent) ||
                              (e->sw.wake_armed && !e->sw.wake_cancel_sent));
}

void tr__internal_complete(tr_engine *e, uint64_t ud, int32_t res)
{
    TR_ASSERT(e->sw.inflight > 0);
    e->sw.inflight--;
    switch (TR_UD_KIND(ud)) {
    case TR_UDK_SIGNAL:
        TR_ASSERT(e->sw.sig_armed);
        e->sw.sig_armed = false;
        e->sw.sig_cancel_sent = false;
        owed_update(e);
        /* A completed read wins over our cancel: the signal is handled. */
        if (res == (int32_t)sizeof(e->sw.sig_info)) {
            TR_VG_DEFINED(&e->sw.sig_info, sizeof(e->sw.sig_info));
            tr__shutdown_on_signal(e, (int)e->sw.sig_info.ssi_signo);
            sig_engines_tell(e, (int)e->sw.sig_info.ssi_signo);
            tr__lockstep_signal(e, (int)e->sw.sig_info.ssi_signo);
        }
        break;
    case TR_UDK_WAKE:
        TR_ASSERT(e->sw.wake_armed);
        e->sw.wake_armed = false;
        e->sw.wake_cancel_sent = false;
        owed_update(e);
        /* The flag, not the counter, says what was asked: nothing to do. */
        break;
    case TR_UDK_ICANCEL:
        break;
    case TR_UDK_EMBTM:
        tr__embed_timeout_done(e);
        break;
    default:
        e->st.cqe_stale++;
        break;
    }
}

int tr_engine_shutdown(tr_engine *e)
{
    if (!e)
        return -EINVAL;
    /* Async-signal-safe and thread-safe: an atomic store and a write(2). */
    atomic_store_explicit(&e->shutdown_req, 1, memory_order_release);
    tr__wake_write(e);
    return 0;
}
