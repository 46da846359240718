/*
 * taskring-http — a minimal HTTP/1.1 keep-alive server on one engine.
 *
 *   taskring-http --port N [--addr A] [--quiet] [--help] [--version]
 *
 * Answers every GET with the 13-byte body "Hello, world!", anything else
 * with 405. It exists to be measured: perf/http_bench.py drives it with wrk
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
 */
#include "cli.h"
#include "net.h"
#include "taskring.h"

#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

/* A request's head (request line and headers) must fit here, as with
 * nginx's default large_client_header_buffers (8k); beyond, 431. */
#define HTTP_IN_MAX 8192
/* Answers to pipelined requests collect here; a full buffer is sent and
 * refilled, so its size only bounds how many answers share one send. */
#define HTTP_OUT_MAX 8192

#define S(lit) lit, sizeof(lit) - 1

static const char RESP_OK[] = "HTTP/1.1 200 OK\r\nContent-Length: 13\r\n"
                              "Content-Type: text/plain\r\n\r\nHello, world!";
static const char RESP_OK_CLOSE[] = "HTTP/1.1 200 OK\r\nContent-Length: 13\r\n"
                                    "Content-Type: text/plain\r\nConnection: close\r\n\r\n"
                                    "Hello, world!";
/* An HTTP/1.0 client that asked for keep-alive must be told it got it. */
static const char RESP_OK_KA10[] = "HTTP/1.1 200 OK\r\nContent-Length: 13\r\n"
                                   "Content-Type: text/plain\r\nConnection: keep-alive\r\n\r\n"
                                   "Hello, world!";
static const char RESP_405[] = "HTTP/1.1 405 Method Not Allowed\r\nAllow: GET\r\n"
                               "Content-Length: 0\r\n\r\n";
static const char RESP_405_CLOSE[] = "HTTP/1.1 405 Method Not Allowed\r\nAllow: GET\r\n"
                                     "Content-Length: 0\r\nConnection: close\r\n\r\n";
static const char RESP_405_KA10[] = "HTTP/1.1 405 Method Not Allowed\r\nAllow: GET\r\n"
                                    "Content-Length: 0\r\nConnection: keep-alive\r\n\r\n";
static const char RESP_400[] = "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n"
                               "Connection: close\r\n\r\n";
static const char RESP_431[] = "HTTP/1.1 431 Request Header Fields Too Large\r\n"
                               "Content-Length: 0\r\nConnection: close\r\n\r\n";

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

/* What one request asks of us. */
struct verdict {
    const char *resp;
    size_t len;
    int close; /* close the connection after the answer */
};

/* Does the header value (v, n bytes) hold the token tok (lower case)? It is a
 * comma-separated list ("keep-alive, Upgrade"), compared without case. */
static int has_token(const char *v, size_t n, const char *tok)
{
    size_t tl = strlen(tok);
    for (size_t i = 0; i < n;) {
        while (i < n && (v[i] == ' ' || v[i] == '\t' || v[i] == ','))
            i++;
        size_t j = i;
        while (j < n && v[j] != ',' && v[j] != ' ' && v[j] != '\t')
            j++;
        if (j - i == tl && !strncasecmp(v + i, tok, tl))
            return 1;
        i = j;
    }
    return 0;
}

static int header_is(const char *line, size_t name_len, const char *name)
{
    return name_len == strlen(name) && !strncasecmp(line, name, name_len);
}

/* Judges one request head: p[0..len) ends with the blank line. Requests with
 * a body (Content-Length > 0, Transfer-Encoding) get their answer and then
 * the connection is closed: skipping bodies would be code no GET benchmark
 * runs, and closing is what RFC 9112 allows a server that will not read
 * them. */
static struct verdict judge(const char *p, size_t len)
{
    const struct verdict bad = {RESP_400, sizeof(RESP_400) - 1, 1};
    const char *eol = memmem(p, len, "\r\n", 2);
    const char *sp1 = eol ? memchr(p, ' ', (size_t)(eol - p)) : NULL;
    const char *sp2 = sp1 ? memrchr(sp1 + 1, ' ', (size_t)(eol - sp1 - 1)) : NULL;
    if (!sp2 || sp1 == p || sp2 == sp1 + 1 || eol - sp2 - 1 != 8 || memcmp(sp2 + 1, "HTTP/1.", 7))
        return bad;
    int minor = sp2[8] - '0';
    if (minor != 0 && minor != 1)
        return bad;
    int get = sp1 - p == 3 && !memcmp(p, "GET", 3);
    int keep = minor == 1, body = 0;
    const char *end = p + len - 2; /* the final CRLF */
    for (const char *l = eol + 2; l < end;) {
        const char *e = memmem(l, (size_t)(end - l) + 2, "\r\n", 2);
        const char *colon = memchr(l, ':', (size_t)(e - l));
        if (!colon)
            return bad;
        const char *v = colon + 1;
        size_t name_len = (size_t)(colon - l), vlen = (size_t)(e - v);
        if (header_is(l, name_len, "connection")) {
            if (has_token(v, vlen, "close"))
                keep = 0;
            else if (has_token(v, vlen, "keep-alive"))
                keep = 1;
        } else if (header_is(l, name_len, "content-length")) {
            while (vlen && (*v == ' ' || *v == '\t'))
                v++, vlen--;
            if (vlen && !(vlen == 1 && *v == '0'))
                body = 1;
        } else if (header_is(l, name_len, "transfer-encoding")) {
            body = 1;
        }
        l = e + 2;
    }
    struct verdict r;
    if (!keep || body) {
        r = get ? (struct verdict){S(RESP_OK_CLOSE), 1} : (struct verdict){S(RESP_405_CLOSE), 1};
    } else if (minor == 0) {
        r = get ? (struct verdict){S(RESP_OK_KA10), 0} : (struct verdict){S(RESP_405_KA10), 0};
    } else {
        r = get ? (struct verdict){S(RESP_OK), 0} : (struct verdict){S(RESP_405), 0};
    }
    return r;
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

/* One connection: returns 0 when the peer closed, 1 when we close it
 * (Connection: close, HTTP/1.0, a 4xx), -ECANCELED or the socket's -errno. */
static int serve(int fd)
{
    char in[HTTP_IN_MAX], out[HTTP_OUT_MAX];
    size_t have = 0;     /* bytes in in[] */
    size_t searched = 0; /* in[0..searched) holds no complete request head */
    for (;;) {
        ssize_t n = tr_recv(fd, in + have, sizeof(in) - have, 0);
        if (n <= 0)
            return n < 0 ? (int)n : 0;
        have += (size_t)n;

        size_t start = 0, olen = 0;
        int closing = 0;
        while (!closing) {
            /* Resume 3 bytes back: the blank line may straddle two reads. */
            size_t from = searched >= start + 3 ? searched - 3 : start;
            const char *hend = memmem(in + from, have - from, "\r\n\r\n", 4);
            if (!hend) {
                searched = have;
                break;
            }
            size_t rlen = (size_t)(hend + 4 - (in + start));
            struct verdict v = judge(in + start, rlen);
            if (olen + v.len > sizeof(out)) {
                ssize_t w = send_all(fd, out, olen);
                if (w < 0)
                    return (int)w;
                olen = 0;
            }
            memcpy(out + olen, v.resp, v.len);
            olen += v.len;
            closing = v.close;
            start += rlen;
            searched = start;
            ctr.requests++;
        }
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
            searched -= start;
        }
        if (have == sizeof(in)) {
            /* A head that fills the buffer without its blank line. */
            ssize_t w = send_all(fd, RESP_431, sizeof(RESP_431) - 1);
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
