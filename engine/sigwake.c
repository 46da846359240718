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

static void release_blocks(tr_engine *e, bool consume);

/* Per thread: how many live engines rely on each signal being blocked by
 * us. A signal the caller had blocked already is never counted (we never
 * unblock it); one we blocked is unblocked when its last engine goes, so
 * engines created and destroyed in any order leave exactly the caller's
 * mask. */
static __thread unsigned block_refs[NSIG];

bool tr__shutdown_signals_ok(const sigset_t *set)
{
    static const int never[] = {SIGKILL, SIGSTOP, SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGTRAP, SIGSYS};
    for (size_t i = 0; i < sizeof(never) / sizeof(never[0]); i++)
        if (sigismember(set, never[i]) == 1)
            return false;
    return true;
}

int tr__sigwake_open(tr_engine *e, const struct tr_config *cfg)
{
    e->sigfd = -1;
    /* Blocking fds: io_uring waits on them by polling, and
     * tr_engine_shutdown's write can never block (the counter would have to
     * reach 2^64 - 2). */
    e->wake_fd = eventfd(0, EFD_CLOEXEC);
    if (e->wake_fd < 0)
        return -errno;
    sigemptyset(&e->sig_set);
    sigemptyset(&e->sig_added);
    e->owner = pthread_self();
    if (cfg->flags & TR_CFG_NO_SIGNALS)
        return 0;
    e->sig_set = cfg->shutdown_signals;
    if (sigisemptyset(&e->sig_set))
        return 0;
    sigset_t old;
    int err = pthread_sigmask(SIG_BLOCK, &e->sig_set, &old);
    if (err) {
        close(e->wake_fd);
        e->wake_fd = -1;
        return -err;
    }
    for (int s = 1; s < NSIG; s++) {
        if (sigismember(&e->sig_set, s) != 1)
            continue;
        if (block_refs[s] > 0 || sigismember(&old, s) == 0) {
            block_refs[s]++;
            sigaddset(&e->sig_added, s);
        }
    }
    e->sigfd = signalfd(-1, &e->sig_set, SFD_CLOEXEC);
    if (e->sigfd < 0) {
        err = errno;
        release_blocks(e, false);
        close(e->wake_fd);
        e->wake_fd = -1;
        return -err;
    }
    return 0;
}

/* Drops this engine's references; unblocks the signals nobody else needs.
 * consume: a shutdown ran, and shutdown signals still pending belong to its
 * ladder; consume them rather than let unblocking turn an orderly shutdown
 * into death by the default action. Without a shutdown they are left
 * pending and delivered: nobody handled that Ctrl+C, so it acts as usual. */
static void release_blocks(tr_engine *e, bool consume)
{
    sigset_t unblock;
    sigemptyset(&unblock);
    for (int s = 1; s < NSIG; s++) {
        if (sigismember(&e->sig_added, s) != 1)
            continue;
        TR_ASSERT(block_refs[s] > 0);
        if (--block_refs[s] == 0)
            sigaddset(&unblock, s);
    }
    sigemptyset(&e->sig_added);
    if (sigisemptyset(&unblock))
        return;
    /* Bounded: each standard signal is pending at most once, real-time ones
     * are capped by RLIMIT_SIGPENDING; 4096 rounds is more than either. */
    struct timespec zero = {0, 0};
    for (int i = 0; consume && i < 4096; i++)
        if (sigtimedwait(&unblock, NULL, &zero) < 0)
            break;
    pthread_sigmask(SIG_UNBLOCK, &unblock, NULL);
}

void tr__sigwake_close(tr_engine *e)
{
    TR_ASSERT(!e->sig_armed);
    TR_ASSERT(!e->wake_armed);
    if (e->wake_fd >= 0)
        close(e->wake_fd);
    e->wake_fd = -1;
    if (e->sigfd < 0)
        return;
    close(e->sigfd);
    e->sigfd = -1;
    if (!pthread_equal(e->owner, pthread_self()))
        return; /* another thread's mask: its owner must restore it */
    release_blocks(e, e->sd.phase == TR_PH_DONE);
}

static void arm_read(tr_engine *e, int fd, void *buf, unsigned len, uint64_t ud, bool *armed)
{
    struct io_uring_sqe *sqe = tr__ring_get_sqe(e);
    if (!sqe)
        return; /* the ring refuses: retried at the next pass */
    io_uring_prep_read(sqe, fd, buf, len, 0);
    sqe->user_data = ud;
    *armed = true;
    e->internal_inflight++;
}

void tr__internal_arm(tr_engine *e)
{
    if (e->internal_stopping)
        return;
    if (e->sigfd >= 0 && !e->sig_armed)
        arm_read(e, e->sigfd, &e->sig_info, sizeof(e->sig_info), TR_UD_SIGNAL, &e->sig_armed);
    if (e->wake_fd >= 0 && !e->wake_armed)
        arm_read(e, e->wake_fd, &e->wake_buf, sizeof(e->wake_buf), TR_UD_WAKE, &e->wake_armed);
}

bool tr__internal_arm_owed(const tr_engine *e)
{
    if (e->internal_stopping)
        return false;
    return (e->sigfd >= 0 && !e->sig_armed) || (e->wake_fd >= 0 && !e->wake_armed);
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
    e->internal_inflight++;
    *sent = true;
}

void tr__internal_stop(tr_engine *e)
{
    e->internal_stopping = true;
    if (e->sig_armed)
        cancel_read(e, TR_UD_SIGNAL, &e->sig_cancel_sent);
    if (e->wake_armed)
        cancel_read(e, TR_UD_WAKE, &e->wake_cancel_sent);
}

bool tr__internal_stop_owed(const tr_engine *e)
{
    return e->internal_stopping &&
           ((e->sig_armed && !e->sig_cancel_sent) || (e->wake_armed && !e->wake_cancel_sent));
}

void tr__internal_complete(tr_engine *e, uint64_t ud, int32_t res)
{
    TR_ASSERT(e->internal_inflight > 0);
    e->internal_inflight--;
    switch (TR_UD_KIND(ud)) {
    case TR_UDK_SIGNAL:
        TR_ASSERT(e->sig_armed);
        e->sig_armed = false;
        e->sig_cancel_sent = false;
        /* A completed read wins over our cancel: the signal is handled. */
        if (res == (int32_t)sizeof(e->sig_info)) {
            TR_VG_DEFINED(&e->sig_info, sizeof(e->sig_info));
            tr__shutdown_on_signal(e, (int)e->sig_info.ssi_signo);
        }
        break;
    case TR_UDK_WAKE:
        TR_ASSERT(e->wake_armed);
        e->wake_armed = false;
        e->wake_cancel_sent = false;
        /* The flag, not the counter, says what was asked: nothing to do. */
        break;
    case TR_UDK_ICANCEL:
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
    uint64_t one = 1;
    if (e->wake_fd >= 0) {
        ssize_t w;
        int saved = errno;
        do {
            w = write(e->wake_fd, &one, sizeof(one));
        } while (w < 0 && errno == EINTR);
        errno = saved;
    }
    return 0;
}
