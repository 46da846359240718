/*
 * echo.c — an echo server on taskring: one task per connection.
 *
 * When the connection task is cancelled (shutdown), it says goodbye inside a
 * shield — real I/O after the cancel — then closes its socket with tr_close,
 * which is never cancelled. A peer that never reads can stall the goodbye;
 * the shutdown's grace period (or a second Ctrl+C) breaks the shield.
 *
 * The acceptor backs off at the fd limit (net_accept); every connection that
 * closes ends its wait, since it freed the fd the next accept needs.
 */
#include "echo.h"

#include "net.h"
#include "taskring.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

struct echo_counters echo_counters;
struct load_counters load_counters;
struct sockaddr_in echo_server_addr;

static struct net_backoff echo_backoff; /* the one acceptor's */

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
        tr_shield_begin();
        if (tr_send(fd, ECHO_BYE, ECHO_BYE_LEN, MSG_NOSIGNAL) > 0)
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
    net_backoff_wake(&echo_backoff);
    return rc;
}

int echo_acceptor(void *arg)
{
    int lfd = (int)(intptr_t)arg;
    /* One pass per connection: net_accept returns -ECANCELED at shutdown.
     * At the fd limit it backs off (a retry at once spun at 100 % of a
     * core) until a close wakes it. */
    for (;;) {
        int fd = net_accept(lfd, SOCK_CLOEXEC, &echo_backoff);
        if (fd < 0)
            return fd;
        echo_counters.accepted++;
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        struct tr_spawn_opts o = {.name = "echo-conn"};
        if (tr_spawn(NULL, NULL, echo_conn, (void *)(intptr_t)fd, &o) < 0)
            tr_close(fd);
    }
}

#define MSG_LEN 64

/* One client connection: sends 64-byte messages and checks every echoed
 * byte until the server says goodbye or closes, or load_counters.stop. */
int echo_client(void *arg)
{
    unsigned id = (unsigned)(uintptr_t)arg;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    int rc = tr_connect(fd, (struct sockaddr *)&echo_server_addr, sizeof(echo_server_addr));
    if (rc == 0)
        load_counters.connected++;
    for (unsigned i = 0; rc == 0 && !load_counters.stop; i++) {
        char out[MSG_LEN], in[MSG_LEN];
        memset(out, 'a' + (int)((id + i) % 26), sizeof(out));
        snprintf(out, sizeof(out), "client %u message %u ", id, i);
        ssize_t w = tr_send(fd, out, sizeof(out), MSG_NOSIGNAL);
        if (w != (ssize_t)sizeof(out)) {
            rc = w < 0 ? (int)w : -EIO;
            break;
        }
        size_t got = 0;
        while (got < sizeof(in)) {
            ssize_t r = tr_recv(fd, in + got, sizeof(in) - got, 0);
            if (r <= 0) {
                rc = r < 0 ? (int)r : -ECONNRESET;
                break;
            }
            got += (size_t)r;
        }
        /* At shutdown the server's goodbye may follow (or replace) part of
         * the echo: where the bytes first differ, the goodbye must begin. */
        size_t k = 0;
        while (k < got && in[k] == out[k])
            k++;
        if (k == sizeof(in)) {
            load_counters.verified++;
        } else if (k < got) {
            size_t m = got - k < ECHO_BYE_LEN ? got - k : ECHO_BYE_LEN;
            if (memcmp(in + k, ECHO_BYE, m) == 0)
                rc = -ECONNRESET;
            else
                load_counters.mismatches++;
            break;
        }
    }
    tr_close(fd);
    if (rc == -ECONNRESET || rc == -EPIPE) {
        load_counters.ended_by_server++;
        return 0;
    }
    return rc;
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
