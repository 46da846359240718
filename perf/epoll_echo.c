/* SPDX-License-Identifier: MIT */
/*
 * epoll_echo.c — the baseline for taskring-echo: a single-threaded,
 * level-triggered epoll echo server, as one would write it without a
 * framework (perf/echo_bench.py runs both under perf/echo_client).
 *
 *   epoll_echo [--port N] [--addr A]
 *
 * Listens on the IPv4 or IPv6 literal A (default 127.0.0.1), port N
 * (default 0: an ephemeral port) and prints
 *   epoll_echo: listening on ADDR:PORT
 * on stdout once ready; SIGTERM or SIGINT (a signalfd in the same epoll set)
 * ends it with exit status 0 and a last line counting connections and bytes.
 * Exit 1 when it cannot listen or run, 2 for a bad command line.
 *
 * The design is the usual one for echo, chosen for the fewest syscalls per
 * round trip: nonblocking sockets; level-triggered, so one recv per
 * readiness is enough (edge-triggered would need a second recv to see
 * EAGAIN before it may wait again); every read goes into one 64 KiB buffer
 * shared by all connections and is sent back at once, so a connection owns
 * memory only while the peer is not reading its echo: then the unsent rest
 * is copied into the connection, the connection waits for EPOLLOUT alone
 * and reads nothing more until the rest is out (back-pressure, bounded by
 * one read). Accepts are drained up to 64 per wake-up; at the fd limit the
 * listener leaves the set until a connection closes (a level-triggered
 * listener would otherwise spin).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <unistd.h>

#define BUF_SIZE (64 * 1024)
#define MAX_EVENTS 256
#define ACCEPT_BURST 64 /* bounds one wake-up's accepts: connections get served too */

struct conn {
    int fd;
    char *rest;      /* unsent echo (only while the peer is slow to read) */
    size_t rest_len; /* bytes at rest */
    size_t rest_off; /* of which already sent */
};

/* The epoll data of the two special fds; connections carry their struct. */
static char tag_listener, tag_signal;

static int ep, lfd;
static int listener_in_set = 1;
static uint64_t conns_total, bytes_total;
static char buf[BUF_SIZE];

static void die(const char *what)
{
    fprintf(stderr, "epoll_echo: %s: %s\n", what, strerror(errno));
    exit(1);
}

static void set_events(struct conn *c, uint32_t ev)
{
    struct epoll_event e = {.events = ev, .data.ptr = c};
    if (epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &e) < 0)
        die("epoll_ctl MOD");
}

static void conn_close(struct conn *c)
{
    close(c->fd); /* also takes it out of the epoll set */
    free(c->rest);
    free(c);
    if (!listener_in_set) {
        struct epoll_event e = {.events = EPOLLIN, .data.ptr = &tag_listener};
        if (epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &e) < 0)
            die("epoll_ctl ADD listener");
        listener_in_set = 1;
    }
}

static void on_accept(void)
{
    for (int i = 0; i < ACCEPT_BURST; i++) {
        int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
                /* Until a connection closes and frees an fd. */
                if (epoll_ctl(ep, EPOLL_CTL_DEL, lfd, NULL) < 0)
                    die("epoll_ctl DEL listener");
                listener_in_set = 0;
                return;
            }
            if (errno == EAGAIN || errno == ECONNABORTED || errno == EINTR)
                return;
            die("accept4");
        }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        struct conn *c = calloc(1, sizeof(*c));
        if (!c) {
            close(fd);
            continue;
        }
        c->fd = fd;
        struct epoll_event e = {.events = EPOLLIN, .data.ptr = c};
        if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &e) < 0)
            die("epoll_ctl ADD");
        conns_total++;
    }
}

/* Sends what is at rest; back to reading once it is all out. */
static void on_writable(struct conn *c)
{
    ssize_t w = send(c->fd, c->rest + c->rest_off, c->rest_len - c->rest_off, MSG_NOSIGNAL);
    if (w < 0) {
        if (errno != EAGAIN && errno != EINTR)
            conn_close(c);
        return;
    }
    c->rest_off += (size_t)w;
    if (c->rest_off == c->rest_len) {
        free(c->rest);
        c->rest = NULL;
        set_events(c, EPOLLIN);
    }
}

static void on_readable(struct conn *c)
{
    ssize_t n = recv(c->fd, buf, sizeof(buf), 0);
    if (n <= 0) {
        if (n == 0 || (errno != EAGAIN && errno != EINTR))
            conn_close(c); /* EOF, or a reset */
        return;
    }
    bytes_total += (uint64_t)n;
    ssize_t w = send(c->fd, buf, (size_t)n, MSG_NOSIGNAL);
    if (w < 0) {
        if (errno != EAGAIN && errno != EINTR) {
            conn_close(c);
            return;
        }
        w = 0;
    }
    if (w == n)
        return;
    /* The peer is not reading: keep the rest, wait until it can go. */
    c->rest_len = (size_t)(n - w);
    c->rest_off = 0;
    c->rest = malloc(c->rest_len);
    if (!c->rest) {
        conn_close(c);
        return;
    }
    memcpy(c->rest, buf + w, c->rest_len);
    set_events(c, EPOLLOUT);
}

static int listen_on(const char *addr, unsigned port, char *name, size_t name_len)
{
    struct sockaddr_storage ss = {0};
    socklen_t len;
    char lit[INET6_ADDRSTRLEN];
    snprintf(lit, sizeof(lit), "%s", addr);
    if (lit[0] == '[') { /* "[::1]" */
        memmove(lit, lit + 1, strlen(lit));
        char *end = strchr(lit, ']');
        if (end)
            *end = 0;
    }
    struct sockaddr_in *a4 = (struct sockaddr_in *)&ss;
    struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&ss;
    if (inet_pton(AF_INET, lit, &a4->sin_addr) == 1) {
        a4->sin_family = AF_INET;
        a4->sin_port = htons((uint16_t)port);
        len = sizeof(*a4);
    } else if (inet_pton(AF_INET6, lit, &a6->sin6_addr) == 1) {
        a6->sin6_family = AF_INET6;
        a6->sin6_port = htons((uint16_t)port);
        len = sizeof(*a6);
    } else {
        fprintf(stderr, "epoll_echo: --addr %s: not an IPv4 or IPv6 literal\n", addr);
        exit(2);
    }
    int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
        bind(fd, (struct sockaddr *)&ss, len) < 0 || listen(fd, 4096) < 0 ||
        getsockname(fd, (struct sockaddr *)&ss, &len) < 0)
        die("listen");
    char host[INET6_ADDRSTRLEN];
    if (ss.ss_family == AF_INET) {
        inet_ntop(AF_INET, &a4->sin_addr, host, sizeof(host));
        snprintf(name, name_len, "%s:%u", host, ntohs(a4->sin_port));
    } else {
        inet_ntop(AF_INET6, &a6->sin6_addr, host, sizeof(host));
        snprintf(name, name_len, "[%s]:%u", host, ntohs(a6->sin6_port));
    }
    return fd;
}

static void usage(void)
{
    fprintf(stderr, "usage: epoll_echo [--port N] [--addr A]\n");
    exit(2);
}

int main(int argc, char **argv)
{
    const char *addr = "127.0.0.1";
    unsigned long port = 0;
    for (int i = 1; i < argc; i += 2) {
        if (i + 1 >= argc)
            usage();
        if (strcmp(argv[i], "--port") == 0) {
            char *end;
            errno = 0;
            port = strtoul(argv[i + 1], &end, 10);
            if (errno || *end || end == argv[i + 1] || port > 65535)
                usage();
        } else if (strcmp(argv[i], "--addr") == 0) {
            addr = argv[i + 1];
        } else {
            usage();
        }
    }

    /* Blocked before the listening line, so a SIGTERM right after it is
     * read from the signalfd, never the default action. */
    sigset_t mask;
    sigemptyset(&mask);
    sigaddset(&mask, SIGTERM);
    sigaddset(&mask, SIGINT);
    if (sigprocmask(SIG_BLOCK, &mask, NULL) < 0)
        die("sigprocmask");
    int sfd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
    char name[INET6_ADDRSTRLEN + 8];
    lfd = listen_on(addr, (unsigned)port, name, sizeof(name));
    ep = epoll_create1(EPOLL_CLOEXEC);
    if (sfd < 0 || ep < 0)
        die("signalfd/epoll_create1");
    struct epoll_event e = {.events = EPOLLIN, .data.ptr = &tag_listener};
    struct epoll_event es = {.events = EPOLLIN, .data.ptr = &tag_signal};
    if (epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &e) < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, sfd, &es) < 0)
        die("epoll_ctl ADD");
    printf("epoll_echo: listening on %s\n", name);
    fflush(stdout);

    struct epoll_event ev[MAX_EVENTS];
    for (;;) {
        int n = epoll_wait(ep, ev, MAX_EVENTS, -1);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            die("epoll_wait");
        }
        for (int i = 0; i < n; i++) {
            void *p = ev[i].data.ptr;
            if (p == &tag_listener) {
                on_accept();
            } else if (p == &tag_signal) {
                /* Connections still open are closed by the exit. */
                printf("epoll_echo: %llu connections, %llu bytes echoed\n",
                       (unsigned long long)conns_total, (unsigned long long)bytes_total);
                return 0;
            } else {
                struct conn *c = p;
                /* A closed connection cannot appear later in this batch:
                 * each fd is in the set once and so in ev[] at most once. */
                if (c->rest)
                    on_writable(c);
                else
                    on_readable(c);
            }
        }
    }
}
