/*
 * net.c — listening and accepting with a back-off, for both servers (see
 * net.h for the contracts).
 */
#include "net.h"

#include "cli.h"

#include <errno.h>
#include <netinet/in.h>
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
