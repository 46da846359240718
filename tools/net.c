/* SPDX-License-Identifier: MIT */
/*
 * net.c — listening, accepting with a back-off, and lingering close, for
 * both servers (see net.h for the contracts).
 */
#include "net.h"

#include "cli.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/filter.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <string.h>
#include <unistd.h>

int net_listen(const char *addr, unsigned port, struct sockaddr_storage *bound,
               socklen_t *bound_len)
{
    struct sockaddr_storage ss;
    socklen_t len;
    if (cli_parse_addr(addr, port, &ss, &len) != 0)
        return -EINVAL;
    int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    int one = 1;
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
        bind(fd, (struct sockaddr *)&ss, len) < 0 || listen(fd, 4096) < 0 ||
        getsockname(fd, (struct sockaddr *)&ss, &len) < 0) {
        int err = -errno;
        close(fd);
        return err;
    }
    if (bound)
        *bound = ss;
    if (bound_len)
        *bound_len = len;
    return fd;
}

static int listen_one(const struct sockaddr_storage *ss, socklen_t len, bool reuseport)
{
    int fd = socket(ss->ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    int one = 1;
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
        (reuseport && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) < 0) ||
        bind(fd, (const struct sockaddr *)ss, len) < 0 || listen(fd, 4096) < 0) {
        int err = -errno;
        close(fd);
        return err;
    }
    return fd;
}

int net_listen_many(const char *addr, unsigned port, unsigned n, int *fds,
                    struct sockaddr_storage *bound)
{
    if (n == 1) {
        fds[0] = net_listen(addr, port, bound, NULL);
        return fds[0] < 0 ? fds[0] : 0;
    }
    struct sockaddr_storage ss;
    socklen_t len;
    if (n == 0 || cli_parse_addr(addr, port, &ss, &len) != 0)
        return -EINVAL;
    for (unsigned i = 0; i < n; i++) {
        int fd = listen_one(&ss, len, true);
        /* The first fixes the port (0: the kernel's pick) for the rest. */
        if (fd >= 0 && i == 0 && getsockname(fd, (struct sockaddr *)&ss, &len) < 0) {
            close(fd);
            fd = -errno;
        }
        if (fd < 0) {
            while (i-- > 0)
                close(fds[i]);
            return fd;
        }
        fds[i] = fd;
    }
    if (bound)
        *bound = ss;
    return 0;
}

/* ---- the listener's drain at a shutdown's Stop ------------------------------------ */

/* Classic BPF, run on each segment to the listener with the TCP header at
 * offset 0: drop a SYN without ACK (a new connection), keep the rest (the
 * final ACKs of handshakes under way). */
static int drop_new_syns(int lfd)
{
    static struct sock_filter code[] = {
        BPF_STMT(BPF_LD | BPF_B | BPF_ABS, 13),           /* the TCP flags */
        BPF_JUMP(BPF_JMP | BPF_JSET | BPF_K, 0x10, 1, 0), /* ACK: keep */
        BPF_JUMP(BPF_JMP | BPF_JSET | BPF_K, 0x02, 1, 0), /* SYN: drop */
        BPF_STMT(BPF_RET | BPF_K, 0xffffffffu),           BPF_STMT(BPF_RET | BPF_K, 0),
    };
    struct sock_fprog prog = {.len = sizeof(code) / sizeof(code[0]), .filter = code};
    return setsockopt(lfd, SOL_SOCKET, SO_ATTACH_FILTER, &prog, sizeof(prog)) == 0 ? 0 : -errno;
}

int net_listener_drain(int lfd, void (*took)(int fd, void *arg), void *arg)
{
    (void)drop_new_syns(lfd); /* without it, as before: the window is the close's */
    /* Non-blocking from now on: the drain's accepts never wait (an accept
     * of the acceptor still in flight sees it too: -EAGAIN, it ends). */
    int lfl = fcntl(lfd, F_GETFL);
    if (lfl >= 0)
        (void)fcntl(lfd, F_SETFL, lfl | O_NONBLOCK);
    int drained = 0;
    tr_shield_begin();
    /* Bounded: new SYNs are dropped, so only handshakes under way at the
     * filter can still arrive (their peers' ACKs, a round trip after our
     * SYN-ACK); the drain goes on until NET_DRAIN_QUIET_MS have passed
     * with none (on loopback a round trip is microseconds; across a
     * network, a client whose ACK takes longer than that may still be
     * reset), and once the shields break every sleep fails at once. */
    int quiet = 0;
    for (int round = 0; round < 10000; round++) {
        int got = 0;
        for (;;) {
            int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
            if (fd < 0) {
                if (errno == EINTR || errno == ECONNABORTED)
                    continue;
                break; /* EAGAIN: empty for now (or a broken listener) */
            }
            got++;
            took(fd, arg);
        }
        drained += got;
        quiet = got ? 0 : quiet + 1;
        if (quiet > NET_DRAIN_QUIET_MS || tr_sleep_ns(1000000) != 0)
            break;
    }
    tr_shield_end();
    close(lfd);
    return drained;
}

int net_run_engines(tr_fn main, const struct tr_config *cfg, unsigned n, int *fds)
{
    int rc;
    if (n == 1) {
        rc = tr_run(main, NULL, cfg);
    } else {
        struct tr_cluster_config cc;
        tr_cluster_config_init(&cc);
        cc.engines = n;
        cc.engine = *cfg;
        rc = tr_cluster_run(main, NULL, &cc);
    }
    for (unsigned i = 0; i < n; i++)
        if (fds[i] >= 0)
            close(fds[i]);
    return rc;
}

/* ---- accept with a back-off ------------------------------------------------------- */

uint64_t net_backoff_next(uint64_t delay_ns)
{
    if (delay_ns < NET_BACKOFF_MIN_NS)
        return NET_BACKOFF_MIN_NS;
    return delay_ns >= NET_BACKOFF_MAX_NS / 2 ? NET_BACKOFF_MAX_NS : delay_ns * 2;
}

/* The wait itself: a task that sleeps, so that net_backoff_wake can end the
 * sleep by cancelling it (a cancelled sleeper wakes at once, and no other
 * call can wake a sleeping task). Woken early is no failure: 0 either way. */
static int nap(void *arg)
{
    tr_sleep_ns((uint64_t)(uintptr_t)arg);
    return 0;
}

/* Waits b's next delay, or until net_backoff_wake. 0, or -ECANCELED. */
static int backoff_wait(struct net_backoff *b)
{
    b->delay_ns = net_backoff_next(b->delay_ns);
    b->waits++;
    tr_task *t;
    struct tr_spawn_opts o = {.name = "accept-backoff"};
    if (tr_spawn(NULL, &t, nap, (void *)(uintptr_t)b->delay_ns, &o) < 0)
        return tr_sleep_ns(b->delay_ns); /* no memory for a task: wait without a wake */
    b->napper = t;
    int rc = tr_join(t, NULL);
    /* A wake may have cleared it already; the handle was ours until the
     * join consumed it, so the wake's tr_cancel never saw a stale one. */
    b->napper = NULL;
    if (rc < 0) {
        /* We were cancelled first: the napper is still ours to release. */
        tr_cancel(t);
        tr_detach(t);
    }
    return rc;
}

void net_backoff_wake(struct net_backoff *b)
{
    if (!b->napper)
        return;
    tr_cancel(b->napper);
    b->napper = NULL;
    b->woken++;
}

int net_accept(int lfd, int flags, struct net_backoff *b)
{
    /* Ends: each pass blocks (an accept, a wait), and blocking calls fail
     * fast with -ECANCELED once the task is cancelled. */
    for (;;) {
        int fd = tr_accept(lfd, NULL, NULL, flags);
        if (fd >= 0) {
            b->delay_ns = 0;
            return fd;
        }
        if (fd == -ECONNABORTED)
            continue;
        if (fd != -EMFILE && fd != -ENFILE && fd != -ENOBUFS && fd != -ENOMEM)
            return fd; /* -ECANCELED, or a broken listener */
        int rc = backoff_wait(b);
        if (rc < 0)
            return rc;
    }
}

/* ---- deadlines -------------------------------------------------------------------- */

int net_deadline_enter(struct net_deadline *d, uint64_t at_ns)
{
    d->at_ns = at_ns;
    return tr_scope_enter(&d->scope, at_ns, 0);
}

void net_deadline_move(struct net_deadline *d, uint64_t now_ns, uint64_t at_ns)
{
    if (at_ns == d->at_ns)
        return;
    if (d->at_ns && now_ns >= d->at_ns) {
        /* It may have fired while the last call's real result came (G5):
         * a fresh scope, since moving a triggered one changes nothing. */
        tr_scope_exit(&d->scope);
        tr_scope_enter(&d->scope, at_ns, 0);
    } else {
        tr_scope_set_deadline(&d->scope, at_ns);
    }
    d->at_ns = at_ns;
}

int net_deadline_exit(struct net_deadline *d)
{
    return tr_scope_exit(&d->scope);
}

/* ---- lingering close -------------------------------------------------------------- */

int net_close_reset(int fd)
{
    struct linger l = {.l_onoff = 1, .l_linger = 0};
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof(l)); /* not a socket: a plain close */
    return tr_close(fd);
}

int net_close_lingering(int fd, unsigned linger_ms)
{
    char sink[4096];
    /* A shield with its own deadline: a shutdown's cancel does not cut the
     * linger short (until the shields break), the deadline does. Blocking
     * reads, no polling: a quiet peer costs one recv until its EOF or the
     * deadline, whichever comes first (the deadline is no ring op). */
    struct tr_scope s;
    tr_scope_enter(&s, net_after_ms(tr_now_ns(), linger_ms ? linger_ms : 1), TR_SCOPE_SHIELD);
    int rc = tr_shutdown(fd, SHUT_WR);
    /* Bounded by the deadline: every pass discards bytes or ends, and once
     * the deadline has passed every recv returns -ETIMEDOUT at once. */
    while (rc == 0) {
        ssize_t n = tr_recv(fd, sink, sizeof(sink), 0);
        if (n == 0)
            break; /* the peer's orderly EOF: nothing unread, no reset */
        if (n < 0)
            rc = (int)n; /* -ETIMEDOUT, -ECANCELED (the shield broke), the socket's */
    }
    tr_scope_exit(&s);
    tr_close(fd); /* never cancelled */
    return rc;
}
