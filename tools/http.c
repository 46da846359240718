/* SPDX-License-Identifier: MIT */
/*
 * taskring-http — a minimal HTTP/1.1 keep-alive server on one engine.
 *
 *   taskring-http --port N [--addr A] [--quiet] [--help] [--version]
 *
 * Answers GET and HEAD of any target with the 13-byte body "Hello, world!"
 * (HEAD: the same header fields, Content-Length: 13 included, and no
 * body). It exists to be measured: perf/http_bench.py drives it with wrk
 * and compares req/s, p99 latency and server CPU per request with nginx
 * serving the same bytes (perf/nginx.conf.in). A is an IPv4 or IPv6 literal
 * (default 127.0.0.1; "::1" or "[::1]" for IPv6). --port 0 binds an
 * ephemeral port; the address is printed on stderr as
 *   taskring-http: listening on 127.0.0.1:PORT   (or [::1]:PORT)
 * from the engine's main task, after tr_engine_create has blocked
 * SIGINT/SIGTERM: a SIGTERM sent the moment that line appears shuts the
 * server down gracefully, never by the signal's default action. Shut down
 * (every connection task is cancelled and closes its socket), the exit
 * status is 0, and a last line on stderr counts connections, requests, how
 * they ended (closed by peer, closed by us, reset by peer, cancelled,
 * failed) and the ring ops and io_uring_enter calls they took. --quiet
 * silences that line and the engine's shutdown report. A connection we
 * close (Connection: close, HTTP/1.0, a 4xx) closes lingering (net.h). At
 * the fd limit the acceptor backs off instead of spinning. Exit status 2
 * for a bad command line, 1 when the server cannot listen or run.
 *
 * One task accepts; one task per connection loops: recv into its buffer,
 * answer every complete request in it (pipelined requests get their
 * answers batched into one send), keep what is left of a partial one.
 *
 * Requests are parsed strictly (tools/http_parse.h lists every refusal and
 * its RFC 9112 / RFC 9110 section), so no proxy in front of it can see a
 * request boundary this server does not:
 *   - HTTP/1.0 and HTTP/1.1 (1.2 to 1.9 are read as 1.1); keep-alive per
 *     RFC 9112 §9.3 and pipelining.
 *   - Request bodies framed by Content-Length or by Transfer-Encoding:
 *     chunked are read and thrown away, up to 1 MiB on the wire, and the
 *     next pipelined request is parsed after them; "Expect: 100-continue"
 *     gets "100 Continue" first.
 *   - Other known methods (POST, PUT, DELETE, ...) get 405 with
 *     "Allow: GET, HEAD", unknown ones 501; the connection persists.
 *   - Refused, answered, then the connection is closed: malformed requests
 *     (bare LF or CR, whitespace before a colon, obs-fold, NUL or controls
 *     in the target or a field value, a missing, duplicate or invalid Host
 *     in HTTP/1.1, an invalid or duplicate Content-Length, Content-Length
 *     with Transfer-Encoding, a Transfer-Encoding that does not end in a
 *     lone chunked, a malformed chunked body) 400; a body over 1 MiB 413; a
 *     target over 8000 bytes 414; an Expect other than 100-continue 417; a
 *     head over 16 KiB 431; a transfer coding other than chunked 501; a
 *     version with a major other than 1 505.
 */
#include "cli.h"
#include "net.h"
#include "taskring.h"
#include "http_parse.h"

#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

/* A request's head (request line and fields) must fit here: the parser
 * refuses a head that reaches HTTP_HEAD_MAX bytes (431) before the buffer
 * could fill. Body bytes pass through it and are dropped. */
#define HTTP_IN_MAX HTTP_HEAD_MAX
/* Answers to pipelined requests collect here; a full buffer is sent and
 * refilled, so its size only bounds how many answers share one send. */
#define HTTP_OUT_MAX 8192

/* The 200 answers are fixed strings: they are the benchmark's hot path. A
 * HEAD answer is the GET one without its body (RFC 9110 §9.3.2). */
#define OK_BODY "Hello, world!"
static const char RESP_OK[] = "HTTP/1.1 200 OK\r\nContent-Length: 13\r\n"
                              "Content-Type: text/plain\r\n\r\n" OK_BODY;
static const char RESP_OK_CLOSE[] = "HTTP/1.1 200 OK\r\nContent-Length: 13\r\n"
                                    "Content-Type: text/plain\r\nConnection: close\r\n\r\n" OK_BODY;
/* An HTTP/1.0 client that asked for keep-alive must be told it got it. */
static const char RESP_OK_KA10[] =
    "HTTP/1.1 200 OK\r\nContent-Length: 13\r\n"
    "Content-Type: text/plain\r\nConnection: keep-alive\r\n\r\n" OK_BODY;
static const char RESP_100[] = "HTTP/1.1 100 Continue\r\n\r\n";

struct http_counters {
    uint64_t accepted;
    uint64_t requests;
    uint64_t ended_eof;       /* the peer closed */
    uint64_t ended_reset;     /* the peer reset (-ECONNRESET, -EPIPE) */
    uint64_t ended_close;     /* we closed: Connection: close, HTTP/1.0, 4xx */
    uint64_t ended_cancelled; /* shutdown */
    uint64_t ended_failed;    /* a socket error */
};
static struct http_counters ctr;
static struct tr_stats stats; /* the engine's counters when shutdown began */

static struct net_backoff backoff; /* the acceptor's, woken by each close */
static char listen_name[CLI_ADDRSTRLEN];

/* How one request is answered. */
struct answer {
    int status; /* 200, 405, 501 for a valid request; else the parser's error */
    bool head;  /* HEAD: no body */
    bool close; /* close the connection after the answer */
    bool ka10;  /* HTTP/1.0 keep-alive: the answer says so */
};

static struct answer request_answer(const struct http_req *r)
{
    return (struct answer){
        .status = http_req_status(r),
        .head = r->method == HTTP_M_HEAD,
        .close = !r->keep_alive,
        .ka10 = r->keep_alive && r->minor == 0,
    };
}

/* An error: after it, where the next request starts is unknown. */
static struct answer error_answer(int status)
{
    return (struct answer){.status = status, .close = true};
}

static const char *reason(int status)
{
    switch (status) {
    case 400:
        return "Bad Request";
    case 405:
        return "Method Not Allowed";
    case 413:
        return "Content Too Large";
    case 414:
        return "URI Too Long";
    case 417:
        return "Expectation Failed";
    case 431:
        return "Request Header Fields Too Large";
    case 501:
        return "Not Implemented";
    case 505:
        return "HTTP Version Not Supported";
    }
    return "Error"; /* the parser returns only the codes above */
}

/* Writes the answer into buf (at least 256 bytes); returns its length. */
static size_t render(char *buf, size_t room, const struct answer *a)
{
    if (a->status == 200) {
        const char *r = a->close ? RESP_OK_CLOSE : a->ka10 ? RESP_OK_KA10 : RESP_OK;
        size_t n = a->close  ? sizeof(RESP_OK_CLOSE) - 1
                   : a->ka10 ? sizeof(RESP_OK_KA10) - 1
                             : sizeof(RESP_OK) - 1;
        if (a->head)
            n -= sizeof(OK_BODY) - 1;
        memcpy(buf, r, n);
        return n;
    }
    /* 405 must say what is allowed (RFC 9110 §15.5.6). */
    int n = snprintf(buf, room, "HTTP/1.1 %d %s\r\n%sContent-Length: 0\r\n%s\r\n", a->status,
                     reason(a->status), a->status == 405 ? "Allow: GET, HEAD\r\n" : "",
                     a->close  ? "Connection: close\r\n"
                     : a->ka10 ? "Connection: keep-alive\r\n"
                               : "");
    return n > 0 && (size_t)n < room ? (size_t)n : 0;
}

static ssize_t send_all(int fd, const char *p, size_t n)
{
    for (size_t off = 0; off < n;) {
        ssize_t w = tr_send(fd, p + off, n - off, MSG_NOSIGNAL);
        if (w <= 0)
            return w < 0 ? w : -EPIPE;
        off += (size_t)w;
    }
    return (ssize_t)n;
}

/* Appends p[0..n) to the answers waiting in out[], sending them first when
 * it would not fit. Returns 0 or the send's -errno. */
static int queue(int fd, char *out, size_t *olen, const char *p, size_t n)
{
    if (*olen + n > HTTP_OUT_MAX) {
        ssize_t w = send_all(fd, out, *olen);
        if (w < 0)
            return (int)w;
        *olen = 0;
    }
    memcpy(out + *olen, p, n);
    *olen += n;
    return 0;
}

/* A request whose body is still being read and thrown away. */
struct pending {
    bool active;
    struct http_body body;
    struct answer answer; /* sent once the body is done */
};

/* Answers every complete request in in[0..have) and reports how many bytes
 * it used (*start) and whether the connection closes after the answers.
 * Returns 0 or the send's -errno. Each pass of the loop consumes bytes or
 * ends it: a head is at least one byte, and a body is only pending when it
 * has bytes to come. */
static int answer_all(int fd, const char *in, size_t have, char *out, size_t *olen,
                      struct pending *pb, size_t *start, bool *closing)
{
    size_t at = 0;
    *closing = false;
    while (!*closing) {
        struct answer a;
        if (pb->active) {
            size_t used;
            int st = http_body_feed(&pb->body, in + at, have - at, &used);
            at += used;
            if (st == HTTP_PARSE_MORE)
                break;
            pb->active = false;
            a = st == HTTP_PARSE_DONE ? pb->answer : error_answer(st);
        } else {
            struct http_req r;
            int st = http_parse_head(in + at, have - at, NULL, &r);
            if (st == HTTP_PARSE_MORE)
                break;
            if (st == HTTP_PARSE_DONE) {
                at += r.head_len;
                a = request_answer(&r);
                if (r.body.kind != HTTP_BODY_NONE) {
                    /* Answer after the body: a malformed chunked body
                     * gets its 400 instead of a second answer. */
                    *pb = (struct pending){.active = true, .body = r.body, .answer = a};
                    if (r.expect_continue) {
                        int err = queue(fd, out, olen, RESP_100, sizeof(RESP_100) - 1);
                        if (err)
                            return err;
                    }
                    continue;
                }
            } else {
                a = error_answer(st);
            }
        }
        char buf[256];
        int err = queue(fd, out, olen, buf, render(buf, sizeof(buf), &a));
        if (err)
            return err;
        *closing = a.close;
        ctr.requests++;
    }
    *start = at;
    return 0;
}

/* One connection: returns 0 when the peer closed, 1 when we close it
 * (Connection: close, HTTP/1.0, an error answer), -ECANCELED or the
 * socket's -errno. */
static int serve(int fd)
{
    char in[HTTP_IN_MAX], out[HTTP_OUT_MAX];
    size_t have = 0; /* bytes in in[] */
    struct pending pb = {.active = false};
    for (;;) {
        ssize_t n = tr_recv(fd, in + have, sizeof(in) - have, 0);
        if (n <= 0)
            return n < 0 ? (int)n : 0;
        have += (size_t)n;

        size_t start = 0, olen = 0;
        bool closing;
        int err = answer_all(fd, in, have, out, &olen, &pb, &start, &closing);
        if (err)
            return err;
        if (olen) {
            ssize_t w = send_all(fd, out, olen);
            if (w < 0)
                return (int)w;
        }
        if (closing)
            return 1;
        if (start) {
            memmove(in, in + start, have - start);
            have -= start;
        }
        if (have == sizeof(in)) {
            /* Cannot happen: the parser refuses a head of HTTP_HEAD_MAX
             * bytes, and body bytes are consumed as they come. Kept so a
             * change of either cannot become a recv of zero bytes. */
            char buf[256];
            struct answer a = error_answer(431);
            ssize_t w = send_all(fd, buf, render(buf, sizeof(buf), &a));
            return w < 0 ? (int)w : 1;
        }
    }
}

static int conn_task(void *arg)
{
    int fd = (int)(intptr_t)arg;
    /* Timeouts (later, with cancel scopes): the header and idle deadlines
     * go HERE, a scope around serve() whose deadline each tr_recv in it
     * honours (header: from a request's first byte; idle: between
     * requests). Until then a silent peer holds its task until shutdown. */
    int rc = serve(fd);
    if (rc == -ECANCELED)
        ctr.ended_cancelled++;
    else if (rc == 1)
        ctr.ended_close++;
    else if (rc == 0)
        ctr.ended_eof++;
    else if (rc == -ECONNRESET || rc == -EPIPE)
        ctr.ended_reset++; /* wrk, for one, resets its connections when done */
    else
        ctr.ended_failed++;
    /* Closing with input unread (a body we did not read, the rest of an
     * oversized head, pipelined requests after a Connection: close) makes
     * the kernel send RST, and the peer may drop our last answer unread:
     * so close lingering when we end the connection. Otherwise the peer
     * closed or reset first, or the shutdown cancelled an idle read. */
    if (rc == 1)
        net_close_lingering(fd, NET_LINGER_MS);
    else
        tr_close(fd); /* never cancelled: the socket is closed even at shutdown */
    net_backoff_wake(&backoff);
    /* A peer that resets or vanishes is its business, not a failed task. */
    return rc == -ECANCELED ? rc : 0;
}

static int acceptor(void *arg)
{
    int lfd = (int)(intptr_t)arg;
    /* One pass per connection. At the fd limit net_accept backs off (a
     * retry at once spun at 100 % of a core) until a close wakes it. */
    for (;;) {
        int fd = net_accept(lfd, SOCK_CLOEXEC, &backoff);
        if (fd < 0)
            return fd; /* -ECANCELED at shutdown, or a broken listener */
        ctr.accepted++;
        int one = 1;
        /* Answers are one small write each: never let Nagle hold one back
         * waiting for the client's ACK of the previous. */
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        struct tr_spawn_opts o = {.name = "http-conn"};
        if (tr_spawn(NULL, NULL, conn_task, (void *)(intptr_t)fd, &o) < 0)
            tr_close(fd);
    }
}

static int server_main(void *arg)
{
    struct tr_spawn_opts o = {.name = "acceptor"};
    int err = tr_spawn(NULL, NULL, acceptor, arg, &o);
    if (err)
        return err;
    /* Ready only now: inside the engine, whose creation blocked the
     * shutdown signals (printed before tr_run, a SIGTERM at once killed
     * the process 20 times in 20). perf/http_bench.py waits for this. */
    fprintf(stderr, "taskring-http: listening on %s\n", listen_name);
    err = tr_wait_shutdown();
    /* tr_run destroys the engine: take its counters while it lives. */
    tr_engine_stats(tr_self_engine(), &stats);
    return err;
}

int main(int argc, char **argv)
{
    const char *addr = "127.0.0.1";
    unsigned port = 0;
    int quiet = 0;
    const struct cli_opt opts[] = {
        {"port", "N", CLI_UINT, 0, 65535, &port, 1, "listen on port N, 0: ephemeral"},
        {"addr", "A", CLI_ADDR, 0, 0, &addr, 0, "listen on the IPv4 or IPv6 literal A (127.0.0.1)"},
        {"quiet", NULL, CLI_FLAG, 0, 0, &quiet, 0, "no last line, no shutdown report"},
    };
    const struct cli_prog prog = {
        "taskring-http", "A minimal HTTP/1.1 keep-alive server on taskring (\"Hello, world!\").",
        opts, sizeof(opts) / sizeof(opts[0]),
        "SIGINT/SIGTERM: graceful shutdown, exit status 0. Exit status 1: cannot listen\n"
        "or run; 2: bad usage.\n"};
    int ex = cli_parse(&prog, argc, argv, stdout, stderr);
    if (ex >= 0)
        return ex;
    struct sockaddr_storage a;
    int lfd = net_listen(addr, port, &a, NULL);
    if (lfd < 0) {
        fprintf(stderr, "taskring-http: listen on %s port %u: %s\n", addr, port, strerror(-lfd));
        return 1;
    }
    cli_format_addr((struct sockaddr *)&a, listen_name, sizeof(listen_name));

    struct tr_config cfg;
    tr_config_init(&cfg);
    if (quiet)
        cfg.report_fd = -1;
    int rc = tr_run(server_main, (void *)(intptr_t)lfd, &cfg);
    close(lfd);
    if (!quiet)
        fprintf(stderr,
                "taskring-http: %" PRIu64 " connections, %" PRIu64 " requests; ended: %" PRIu64
                " closed by peer, %" PRIu64 " closed by us, %" PRIu64 " reset by peer, %" PRIu64
                " cancelled, %" PRIu64 " failed; %" PRIu64 " ring ops in %" PRIu64
                " io_uring_enter calls\n",
                ctr.accepted, ctr.requests, ctr.ended_eof, ctr.ended_close, ctr.ended_reset,
                ctr.ended_cancelled, ctr.ended_failed, stats.ops_submitted, stats.submit_calls);
    if (rc != 0 && rc != -ECANCELED) {
        fprintf(stderr, "taskring-http: %s\n", strerror(-rc));
        return 1;
    }
    return 0;
}
