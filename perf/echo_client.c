/* SPDX-License-Identifier: MIT */
/*
 * echo_client.c — the load client of the echo benchmark (perf/echo_bench.py):
 * N connections, fixed-size messages, a fixed pipeline depth, every echoed
 * byte checked; prints one JSON line.
 *
 *   echo_client --port N [--addr A] --conns C --size M [--depth D] --seconds S
 *
 * Connects C sockets to A:N (default 127.0.0.1), then on each keeps D
 * messages of M bytes in flight (D = 1: ping-pong) for S seconds: a new
 * message goes out as soon as an echo completes. Message k of connection c
 * is M bytes of a fixed pattern starting at offset (17c + k) mod 256, so
 * an echo that is short, reordered, duplicated or from another connection
 * differs from what is expected; each received byte is compared (memcmp
 * against the pattern, no copy). A round trip's latency runs from the send
 * of its message to the arrival of its last echoed byte.
 *
 * Built to cost less than the server it drives: one thread, level-triggered
 * epoll, one recv per readiness into one 64 KiB buffer, one send per
 * message, one clock read per readiness (shared by the round trips it
 * completes and the messages it sends), latencies in a 1 µs histogram
 * (no allocation after setup). Its own CPU time is in the JSON line.
 *
 * After S seconds no new message is sent; those in flight are awaited (at
 * most 2 s), then every socket is closed by us first (so the server sees
 * an orderly EOF). Output, stdout:
 *   {"bench":"echo","impl":"echo_client","params":{...},"value":RT_PER_S,
 *    "unit":"rt/s","p50_us":..,"p99_us":..,"round_trips":N_IN_WINDOW,
 *    "round_trips_all":N,"seconds":..,"client_cpu_s":..}
 * Exit 1 on any mismatch, short echo, connection error or reset (no figure
 * then), 2 for a bad command line.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define BUF_SIZE (64 * 1024)
#define MAX_EVENTS 256
#define DEPTH_MAX 64
#define SIZE_MAX_MSG (1u << 20)
#define HIST_US 1000000 /* 1 µs buckets up to 1 s; slower round trips count as 1 s */
#define DRAIN_NS 2000000000ull

struct conn {
    int fd;
    unsigned id;
    uint64_t sent;                 /* messages sent whole */
    size_t send_off;               /* bytes of message `sent` already sent */
    uint64_t done;                 /* round trips completed */
    size_t recv_off;               /* bytes of message `done` already received */
    int want_out;                  /* EPOLLOUT in its events (a partial send) */
    uint64_t t_sent_ns[DEPTH_MAX]; /* message k's send time at k % depth */
};

static unsigned msg_size, depth;
static unsigned char *pattern; /* msg_size + 256 bytes */
static uint32_t *hist;
static uint64_t in_window, all_done, deadline_ns;
static int ep, stopping;

static void die(const char *what)
{
    fprintf(stderr, "echo_client: %s: %s\n", what, errno ? strerror(errno) : "");
    exit(1);
}

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static const unsigned char *msg_bytes(const struct conn *c, uint64_t k)
{
    return pattern + ((c->id * 17u + k) & 255u);
}

static void want_out(struct conn *c, int on)
{
    if (c->want_out == on)
        return;
    struct epoll_event e = {.events = EPOLLIN | (on ? EPOLLOUT : 0u), .data.ptr = c};
    if (epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &e) < 0)
        die("epoll_ctl MOD");
    c->want_out = on;
}

/* Sends messages until depth are in flight (or the run stops, or the socket
 * is full: then EPOLLOUT says when to go on). Bounded by depth messages. */
static void pump(struct conn *c, uint64_t now)
{
    while (!stopping && c->sent - c->done < depth) {
        const unsigned char *m = msg_bytes(c, c->sent);
        ssize_t w = send(c->fd, m + c->send_off, msg_size - c->send_off, MSG_NOSIGNAL);
        if (w < 0) {
            if (errno == EAGAIN) {
                want_out(c, 1);
                return;
            }
            die("send");
        }
        if (c->send_off == 0)
            c->t_sent_ns[c->sent % depth] = now;
        c->send_off += (size_t)w;
        if (c->send_off < msg_size) {
            want_out(c, 1);
            return;
        }
        c->send_off = 0;
        c->sent++;
    }
    want_out(c, 0);
}

static void on_readable(struct conn *c, unsigned char *buf)
{
    ssize_t n = recv(c->fd, buf, BUF_SIZE, 0);
    if (n < 0) {
        if (errno == EAGAIN)
            return;
        die("recv");
    }
    if (n == 0) {
        errno = 0;
        die("the server closed a connection");
    }
    uint64_t now = now_ns();
    /* Bounded: each pass consumes at least one received byte. */
    for (size_t p = 0; p < (size_t)n;) {
        if (c->done >= c->sent + (c->send_off ? 1 : 0)) {
            errno = 0;
            die("echo of bytes never sent");
        }
        size_t k = msg_size - c->recv_off;
        if (k > (size_t)n - p)
            k = (size_t)n - p;
        if (memcmp(buf + p, msg_bytes(c, c->done) + c->recv_off, k) != 0) {
            errno = 0;
            die("echoed bytes differ from those sent");
        }
        p += k;
        c->recv_off += k;
        if (c->recv_off == msg_size) {
            c->recv_off = 0;
            uint64_t us = (now - c->t_sent_ns[c->done % depth]) / 1000;
            c->done++;
            all_done++;
            if (now < deadline_ns) {
                hist[us < HIST_US ? us : HIST_US]++;
                in_window++;
            }
        }
    }
    pump(c, now);
}

static uint64_t percentile_us(uint64_t count, double q)
{
    uint64_t want = (uint64_t)((double)count * q), seen = 0;
    for (uint64_t us = 0; us <= HIST_US; us++) {
        seen += hist[us];
        if (seen > want)
            return us;
    }
    return HIST_US;
}

static unsigned long arg_num(const char *s, unsigned long lo, unsigned long hi)
{
    char *end;
    errno = 0;
    unsigned long v = strtoul(s, &end, 10);
    if (errno || *end || end == s || v < lo || v > hi) {
        fprintf(stderr, "echo_client: bad number %s (%lu..%lu)\n", s, lo, hi);
        exit(2);
    }
    return v;
}

int main(int argc, char **argv)
{
    const char *addr = "127.0.0.1";
    unsigned long port = 0, conns = 50, seconds = 10;
    msg_size = 64;
    depth = 1;
    for (int i = 1; i < argc; i += 2) {
        if (i + 1 >= argc)
            goto usage;
        const char *o = argv[i], *v = argv[i + 1];
        if (strcmp(o, "--port") == 0)
            port = arg_num(v, 1, 65535);
        else if (strcmp(o, "--addr") == 0)
            addr = v;
        else if (strcmp(o, "--conns") == 0)
            conns = arg_num(v, 1, 100000);
        else if (strcmp(o, "--size") == 0)
            msg_size = (unsigned)arg_num(v, 1, SIZE_MAX_MSG);
        else if (strcmp(o, "--depth") == 0)
            depth = (unsigned)arg_num(v, 1, DEPTH_MAX);
        else if (strcmp(o, "--seconds") == 0)
            seconds = arg_num(v, 1, 3600);
        else
            goto usage;
    }
    if (!port)
        goto usage;

    struct sockaddr_storage ss = {0};
    socklen_t slen;
    struct sockaddr_in *a4 = (struct sockaddr_in *)&ss;
    struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&ss;
    if (inet_pton(AF_INET, addr, &a4->sin_addr) == 1) {
        a4->sin_family = AF_INET;
        a4->sin_port = htons((uint16_t)port);
        slen = sizeof(*a4);
    } else if (inet_pton(AF_INET6, addr, &a6->sin6_addr) == 1) {
        a6->sin6_family = AF_INET6;
        a6->sin6_port = htons((uint16_t)port);
        slen = sizeof(*a6);
    } else {
        fprintf(stderr, "echo_client: --addr %s: not an IPv4 or IPv6 literal\n", addr);
        return 2;
    }

    pattern = malloc(msg_size + 256);
    hist = calloc(HIST_US + 1, sizeof(*hist));
    struct conn *cs = calloc(conns, sizeof(*cs));
    unsigned char *buf = malloc(BUF_SIZE);
    if (!pattern || !hist || !cs || !buf)
        die("malloc");
    /* Period 251 against start offsets mod 256: two messages look alike
     * only when their offsets are 0 or 251 apart, so the messages in flight
     * together on a connection (at most 64 consecutive offsets) all differ,
     * and so does any byte shifted within a message. */
    for (size_t i = 0; i < msg_size + 256; i++)
        pattern[i] = (unsigned char)(i % 251);
    ep = epoll_create1(EPOLL_CLOEXEC);
    if (ep < 0)
        die("epoll_create1");
    for (unsigned long i = 0; i < conns; i++) {
        struct conn *c = &cs[i];
        c->id = (unsigned)i;
        c->fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (c->fd < 0)
            die("socket");
        int one = 1;
        setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        if (connect(c->fd, (struct sockaddr *)&ss, slen) < 0)
            die("connect");
        /* Nonblocking only now: connect waited for the handshake. */
        if (fcntl(c->fd, F_SETFL, O_NONBLOCK) < 0)
            die("fcntl");
        struct epoll_event e = {.events = EPOLLIN, .data.ptr = c};
        if (epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &e) < 0)
            die("epoll_ctl ADD");
    }

    struct rusage ru0, ru1;
    getrusage(RUSAGE_SELF, &ru0);
    uint64_t t0 = now_ns();
    deadline_ns = t0 + seconds * 1000000000ull;
    for (unsigned long i = 0; i < conns; i++)
        pump(&cs[i], t0);
    struct epoll_event ev[MAX_EVENTS];
    uint64_t drain_end = 0;
    /* Bounded by the deadline plus the drain's 2 s. */
    for (;;) {
        uint64_t now = now_ns();
        if (!stopping && now >= deadline_ns) {
            stopping = 1;
            drain_end = now + DRAIN_NS;
        }
        if (stopping) {
            uint64_t inflight = 0;
            for (unsigned long i = 0; i < conns; i++)
                inflight += cs[i].sent - cs[i].done + (cs[i].send_off ? 1 : 0);
            if (inflight == 0)
                break;
            if (now >= drain_end) {
                errno = 0;
                die("echoes still missing 2 s after the end");
            }
        }
        uint64_t until = stopping ? drain_end : deadline_ns;
        int timeout_ms = (int)((until - now) / 1000000 + 1);
        int n = epoll_wait(ep, ev, MAX_EVENTS, timeout_ms);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            die("epoll_wait");
        }
        for (int i = 0; i < n; i++) {
            struct conn *c = ev[i].data.ptr;
            if (ev[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP))
                on_readable(c, buf);
            else if (ev[i].events & EPOLLOUT)
                pump(c, now_ns());
        }
    }
    uint64_t t1 = now_ns();
    getrusage(RUSAGE_SELF, &ru1);
    for (unsigned long i = 0; i < conns; i++)
        close(cs[i].fd);

    double window_s = (double)(deadline_ns - t0) / 1e9;
    double cpu_s = (double)(ru1.ru_utime.tv_sec - ru0.ru_utime.tv_sec) +
                   (double)(ru1.ru_utime.tv_usec - ru0.ru_utime.tv_usec) / 1e6 +
                   (double)(ru1.ru_stime.tv_sec - ru0.ru_stime.tv_sec) +
                   (double)(ru1.ru_stime.tv_usec - ru0.ru_stime.tv_usec) / 1e6;
    if (in_window == 0) {
        errno = 0;
        die("no round trip completed");
    }
    printf("{\"bench\":\"echo\",\"impl\":\"echo_client\",\"params\":{\"conns\":%lu,\"size\":%u,"
           "\"depth\":%u},\"value\":%.1f,\"unit\":\"rt/s\",\"p50_us\":%llu,\"p99_us\":%llu,"
           "\"round_trips\":%llu,\"round_trips_all\":%llu,\"seconds\":%.3f,"
           "\"client_cpu_s\":%.3f}\n",
           conns, msg_size, depth, (double)in_window / window_s,
           (unsigned long long)percentile_us(in_window, 0.50),
           (unsigned long long)percentile_us(in_window, 0.99), (unsigned long long)in_window,
           (unsigned long long)all_done, (double)(t1 - t0) / 1e9, cpu_s);
    return 0;

usage:
    fprintf(stderr, "usage: echo_client --port N [--addr A] --conns C --size M [--depth D] "
                    "--seconds S\n");
    return 2;
}
