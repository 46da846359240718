/*
 * echo.c — an echo server on taskring: one task per connection.
 *
 * When the connection task is cancelled (shutdown), it says goodbye inside a
 * shield — real I/O after the cancel — then closes its socket with tr_close,
 * which is never cancelled. A peer that never reads can stall the goodbye;
 * the shutdown's grace period (or a second Ctrl+C) breaks the shield.
 */
#include "echo.h"

#include "taskring.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/tcp.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

struct echo_counters echo_counters;

int echo_listen(int port, struct sockaddr_in *bound)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(a);
    if (bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(fd, 4096) < 0 ||
        getsockname(fd, (struct sockaddr *)&a, &len) < 0) {
        int err = -errno;
        close(fd);
        return err;
    }
    if (bound)
        *bound = a;
    return fd;
}

static int echo_conn(void *arg)
{
    int fd = (int)(intptr_t)arg;
    char buf[4096];
    ssize_t n;
    int rc = 0;
    echo_counters.live++;
    while ((n = tr_recv(fd, buf, sizeof(buf), 0)) > 0) {
        for (ssize_t off = 0; off < n;) {
            ssize_t w = tr_send(fd, buf + off, (size_t)(n - off), MSG_NOSIGNAL);
            if (w <= 0) {
                n = w < 0 ? w : -EPIPE;
                goto out;
            }
            off += w;
        }
        echo_counters.bytes += (uint64_t)n;
    }
out:
    rc = n < 0 ? (int)n : 0;
    if (rc == -ECANCELED) {
        static const char bye[] = "taskring-echo: server shutting down, goodbye\n";
        tr_shield_begin();
        if (tr_send(fd, bye, sizeof(bye) - 1, MSG_NOSIGNAL) > 0)
            echo_counters.goodbyes++;
        tr_shield_end();
        echo_counters.ended_cancelled++;
    } else if (rc == 0) {
        echo_counters.ended_eof++;
    } else {
        echo_counters.ended_failed++;
    }
    tr_close(fd); /* never cancelled: the socket is always closed */
    echo_counters.live--;
    return rc;
}

int echo_acceptor(void *arg)
{
    int lfd = (int)(intptr_t)arg;
    for (;;) {
        int fd = tr_accept(lfd, NULL, NULL, SOCK_CLOEXEC);
        if (fd < 0) {
            if (fd == -ECANCELED)
                return fd;
            if (fd == -EMFILE || fd == -ENFILE || fd == -ECONNABORTED) {
                tr_yield(); /* transient: let connections end */
                continue;
            }
            return fd;
        }
        echo_counters.accepted++;
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        struct tr_spawn_opts o = {.name = "echo-conn"};
        if (tr_spawn(NULL, NULL, echo_conn, (void *)(intptr_t)fd, &o) < 0)
            tr_close(fd);
    }
}

int echo_stubborn(void *arg)
{
    (void)arg;
    int p[2];
    if (pipe2(p, O_CLOEXEC) < 0)
        return -errno;
    char b;
    /* Ignores every cancellation: only the Kill phase ends it. */
    for (unsigned long i = 0; i < ~0ul; i++) {
        tr_shield_begin();
        ssize_t r = tr_read(p[0], &b, 1, -1);
        tr_shield_end();
        if (r < 0)
            tr_yield();
    }
    return 0;
}
