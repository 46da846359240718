/* SPDX-License-Identifier: MIT */
/*
 * taskring-http — a minimal HTTP/1.1 keep-alive server on one engine.
 *
 *   taskring-http --port N [--addr A] [--header-timeout-ms N]
 *                 [--idle-timeout-ms N] [--quiet] [--help] [--version]
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
 * failed, timed out) and the ring ops and io_uring_enter calls they took.
 * --quiet silences that line and the engine's shutdown report. A
 * connection we close (Connection: close, HTTP/1.0, a 4xx, a timeout)
 * closes lingering (net.h), one that stopped reading with a reset. At the
 * fd limit the acceptor backs off instead of spinning. Exit status 2 for a
 * bad command line, 1 when the server cannot listen or run.
 *
 * Time limits (0 turns one off), so that a slow or silent client cannot
 * hold its task and memory for ever (slowloris):
 *   --header-timeout-ms H (10000): the first request's head must be
 *     complete H ms after the connection's start, every later one H ms
 *     after the recv that brought its first byte (or, behind pipelined
 *     requests, after their answers were written); else the answer is 408
 *     with "Connection: close" and the connection closes. It covers heads
 *     only: a complete head is served however late it came, and an answer
 *     being written is never cut short by it.
 *   --idle-timeout-ms I (60000): I ms without a byte from the client,
 *     counted from the recv of the last bytes, while no head is under way:
 *     between the requests of a keep-alive connection it closes quietly;
 *     while a request's body is read it answers 408 first (a request waits
 *     for its answer); while answers are written, a send the client takes
 *     nothing of for I ms resets the connection (net_close_reset: nothing
 *     more can reach that client, and the kernel would hold the answers).
 *     With the header timeout off, a head under way falls under the idle
 *     timeout too (408).
 * A 408 is sent without waiting (MSG_DONTWAIT): a client that does not read
 * gets the close without it. Both limits are one cancel scope per
 * connection whose deadline moves (net_deadline): no SQE and no system
 * call per request.
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
#include <pthread.h>
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
    uint64_t ended_408;       /* a head (or body) not complete in time: 408, closed */
    uint64_t ended_idle;      /* the idle timeout: closed quietly (reset: a client not reading) */
};
/* Each engine's thread counts its own (one engine per thread, --threads);
 * a tr_at_shutdown hook adds them to the totals. */
static _Thread_local struct http_counters ctr;
static struct http_counters ctr_total;
static uint64_t ops_total, enters_total; /* the engines' ring ops and io_uring_enter calls */
static pthread_mutex_t total_mu = PTHREAD_MUTEX_INITIALIZER;

static unsigned header_timeout_ms = 10000, idle_timeout_ms = 60000; /* 0: none */
static _Thread_local struct net_backoff backoff; /* the acceptor's, woken by each close */
static char listen_name[CLI_ADDRSTRLEN];
#define MAX_THREADS 256
static int listen_fds[MAX_THREADS];
static unsigned nthreads = 1;

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
    case 408:
        return "Request Timeout";
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
    return "Error"; /* the parser returns only the codes above, and 408 is ours */
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

/* What a connection waits for; it decides what an expiry means. */
enum wait_for {
    W_HEAD, /* the rest of a head (for the first request, its first byte too) */
    W_BODY, /* more of a request's body */
    W_NEXT, /* the next request of a keep-alive connection */
    W_SEND, /* the client to take our answers */
};

struct conn {
    int fd;
    enum wait_for wait;
    bool answer_408;        /* at an expiry: answer 408 before closing */
    bool sent;              /* a send since the last recv: the next moves the deadline */
    uint64_t head_ns;       /* when the head under way began (tr_now_ns) */
    struct net_deadline dl; /* the connection's one scope: header and idle deadlines */
};

/* Writes p[0..n) to c's client. Every send gets the idle time: what times
 * out is a send the client takes nothing of. The first send after a recv
 * has it already (the recv set the deadline), so the usual pass, one recv
 * and one send, moves the deadline once; later sends (pipelined answers
 * past HTTP_OUT_MAX, the rest of a partial send) move it themselves. */
static ssize_t send_all(struct conn *c, const char *p, size_t n)
{
    for (size_t off = 0; off < n;) {
        if (c->sent) {
            uint64_t now = tr_now_ns();
            net_deadline_move(&c->dl, now, net_after_ms(now, idle_timeout_ms));
        }
        c->sent = true;
        ssize_t w = tr_send(c->fd, p + off, n - off, MSG_NOSIGNAL);
        if (w <= 0)
            return w < 0 ? w : -EPIPE;
        off += (size_t)w;
    }
    return (ssize_t)n;
}

/* Appends p[0..n) to the answers waiting in out[], sending them first when
 * it would not fit. Returns 0 or the send's -errno. */
static int queue(struct conn *c, char *out, size_t *olen, const char *p, size_t n)
{
    if (*olen + n > HTTP_OUT_MAX) {
        ssize_t w = send_all(c, out, *olen);
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
static int answer_all(struct conn *c, const char *in, size_t have, char *out, size_t *olen,
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
                        int err = queue(c, out, olen, RESP_100, sizeof(RESP_100) - 1);
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
        int err = queue(c, out, olen, buf, render(buf, sizeof(buf), &a));
        if (err)
            return err;
        *closing = a.close;
        ctr.requests++;
    }
    *start = at;
    return 0;
}

/* The deadline of a wait for the rest of a head begun at c->head_ns. */
static uint64_t head_deadline(const struct conn *c, uint64_t now)
{
    return header_timeout_ms ? net_after_ms(c->head_ns, header_timeout_ms)
                             : net_after_ms(now, idle_timeout_ms);
}

/* One connection: returns 0 when the peer closed, 1 when we close it
 * (Connection: close, HTTP/1.0, an error answer), -ECANCELED, -ETIMEDOUT
 * when c's deadline cut a call short (c->answer_408 says how to end), or
 * the socket's -errno.
 *
 * Each recv that brings bytes moves the deadline once: to the idle one (the
 * answers they complete are written under it, never under the header
 * deadline), which is also the wait for a body or the next request; only
 * when a head is left incomplete does it move again, to that head's
 * header deadline. */
static int serve(struct conn *c)
{
    char in[HTTP_IN_MAX], out[HTTP_OUT_MAX];
    size_t have = 0; /* bytes in in[] */
    struct pending pb = {.active = false};
    for (;;) {
        ssize_t n = tr_recv(c->fd, in + have, sizeof(in) - have, 0);
        if (n <= 0) {
            if (n == -ETIMEDOUT) /* a request under way waits for its answer */
                c->answer_408 =
                    c->wait == W_BODY || (c->wait == W_HEAD && (header_timeout_ms || have > 0));
            return n < 0 ? (int)n : 0;
        }
        uint64_t now = tr_now_ns();
        bool same_head = c->wait == W_HEAD; /* unless a request ends in these bytes */
        have += (size_t)n;
        c->wait = W_SEND;
        c->sent = false;
        net_deadline_move(&c->dl, now, net_after_ms(now, idle_timeout_ms));

        size_t start = 0, olen = 0;
        bool closing;
        int err = answer_all(c, in, have, out, &olen, &pb, &start, &closing);
        if (err)
            return err;
        if (olen) {
            ssize_t w = send_all(c, out, olen);
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
            ssize_t w = send_all(c, buf, render(buf, sizeof(buf), &a));
            return w < 0 ? (int)w : 1;
        }
        if (pb.active) {
            c->wait = W_BODY;
        } else if (have == 0) {
            c->wait = W_NEXT;
        } else {
            /* A head under way: the one before (no request ended in these
             * bytes, so nothing was sent), or one that came behind the
             * requests just answered. That one's time starts now, after
             * the answers: its rest may have waited in the socket while a
             * slow reader held up our sends. */
            if (!same_head || start > 0)
                c->head_ns = now = tr_now_ns();
            c->wait = W_HEAD;
            net_deadline_move(&c->dl, now, head_deadline(c, now));
        }
    }
}

/* How a connection's socket is closed. Closing with input unread (a body
 * we did not read, the rest of an oversized head, pipelined requests after
 * a Connection: close, a slow client's next bytes) makes the kernel send
 * RST, and the peer may drop our last answer unread: so we close lingering
 * when we end the connection. A client that stopped reading gets a reset
 * instead: nothing more would reach it. A connection the shutdown
 * cancelled lingers too. Otherwise the peer closed or reset first: a plain
 * close. */
enum close_how { CLOSE_PLAIN, CLOSE_LINGER, CLOSE_RESET };

/* Counts how serve() ended (rc) and says how to close. */
static enum close_how conn_end(struct conn *c, int rc, bool timed_out)
{
    if (timed_out) {
        if (c->answer_408) {
            /* Without waiting: a client that does not read gets the close
             * without it, and the lingering close is bounded anyway. */
            char buf[256];
            struct answer a = error_answer(408);
            tr_send(c->fd, buf, render(buf, sizeof(buf), &a), MSG_DONTWAIT);
            ctr.ended_408++;
        } else {
            ctr.ended_idle++;
        }
        return c->wait == W_SEND ? CLOSE_RESET : CLOSE_LINGER;
    }
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
    /* Cancelled (a shutdown): a request may have come in behind the
     * cancelled read, unread; lingering, the client gets our EOF, not a
     * reset (tools/flood_check.py: 1 reset in 5,000 connections without). */
    return rc == 1 || rc == -ECANCELED ? CLOSE_LINGER : CLOSE_PLAIN;
}

static int conn_task(void *arg)
{
    struct conn c = {.fd = (int)(intptr_t)arg, .wait = W_HEAD, .head_ns = tr_now_ns()};
    /* Cannot fail: inside a task, with storage of our own. */
    net_deadline_enter(&c.dl, head_deadline(&c, c.head_ns));
    int rc = serve(&c);
    /* -ETIMEDOUT from a recv or send is ours only if the scope says so (a
     * socket can fail with ETIMEDOUT too: a failure, then). */
    bool timed_out = net_deadline_exit(&c.dl) == -ETIMEDOUT && rc == -ETIMEDOUT;
    enum close_how how = conn_end(&c, rc, timed_out);
    if (how == CLOSE_LINGER)
        net_close_lingering(c.fd, NET_LINGER_MS);
    else if (how == CLOSE_RESET)
        net_close_reset(c.fd);
    else
        tr_close(c.fd); /* never cancelled: the socket is closed even at shutdown */
    net_backoff_wake(&backoff);
    /* A peer that resets, vanishes or dawdles is its business, not a
     * failed task. */
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

/* At each engine's Finalize: its counts into the totals. */
static int counters_add(void *arg)
{
    (void)arg;
    struct tr_stats st;
    tr_engine_stats(tr_self_engine(), &st);
    pthread_mutex_lock(&total_mu);
    ctr_total.accepted += ctr.accepted;
    ctr_total.requests += ctr.requests;
    ctr_total.ended_eof += ctr.ended_eof;
    ctr_total.ended_reset += ctr.ended_reset;
    ctr_total.ended_close += ctr.ended_close;
    ctr_total.ended_cancelled += ctr.ended_cancelled;
    ctr_total.ended_failed += ctr.ended_failed;
    ctr_total.ended_408 += ctr.ended_408;
    ctr_total.ended_idle += ctr.ended_idle;
    ops_total += st.ops_submitted;
    enters_total += st.submit_calls;
    pthread_mutex_unlock(&total_mu);
    memset(&ctr, 0, sizeof(ctr));
    return 0;
}

/* A connection the listener's drain took at shutdown: closed lingering
 * (the client reads our EOF, never a reset; its request is not answered). */
static int drained_conn(void *arg)
{
    net_close_lingering((int)(intptr_t)arg, NET_LINGER_MS);
    ctr.ended_cancelled++;
    return 0;
}

static void took(int fd, void *arg)
{
    (void)arg;
    ctr.accepted++;
    struct tr_spawn_opts o = {.name = "http-drained"};
    if (tr_spawn(NULL, NULL, drained_conn, (void *)(intptr_t)fd, &o) < 0)
        close(fd); /* no memory for a task: closed (a client that sent bytes sees a reset) */
}

/* On every engine (one per thread): its own SO_REUSEPORT listener. */
static int server_main(void *arg)
{
    (void)arg;
    unsigned i = tr_engine_index();
    int lfd = listen_fds[i];
    struct tr_spawn_opts o = {.name = "acceptor"};
    int err = tr_at_shutdown(counters_add, NULL);
    if (err == 0)
        err = tr_spawn(NULL, NULL, acceptor, (void *)(intptr_t)lfd, &o);
    if (err)
        return err;
    /* Ready only now: inside the engine, whose creation blocked the
     * shutdown signals (printed before tr_run, a SIGTERM at once killed
     * the process 20 times in 20). perf/http_bench.py waits for this.
     * Every listener exists already: what the other engines' acceptors
     * have not taken yet waits in their queues. */
    if (i == 0)
        fprintf(stderr, "taskring-http: listening on %s\n", listen_name);
    err = tr_wait_shutdown();
    /* Stop: the listener first, with what the kernel accepted already. */
    net_listener_drain(lfd, took, NULL);
    listen_fds[i] = -1;
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
        {"header-timeout-ms", "N", CLI_UINT, 0, 3600000, &header_timeout_ms, 0,
         "408 for a request head not complete in N ms (10000, 0: off)"},
        {"idle-timeout-ms", "N", CLI_UINT, 0, 3600000, &idle_timeout_ms, 0,
         "close a connection idle N ms between requests (60000, 0: off)"},
        {"threads", "N", CLI_UINT, 1, MAX_THREADS, &nthreads, 0,
         "N engines on N threads, a SO_REUSEPORT listener each (1)"},
        {"quiet", NULL, CLI_FLAG, 0, 0, &quiet, 0, "no last line, no shutdown report"},
    };
    const struct cli_prog prog = {
        "taskring-http", "A minimal HTTP/1.1 keep-alive server on taskring (\"Hello, world!\").",
        opts, sizeof(opts) / sizeof(opts[0]),
        "A head not complete in time is answered 408 and closed; a keep-alive connection\n"
        "idle for the idle time is closed quietly, one that stops reading our answers\n"
        "is reset, a stalled body gets 408. Both: one moving deadline, no syscall.\n"
        "SIGINT/SIGTERM: graceful shutdown, exit status 0. Exit status 1: cannot listen\n"
        "or run; 2: bad usage.\n"};
    int ex = cli_parse(&prog, argc, argv, stdout, stderr);
    if (ex >= 0)
        return ex;
    struct sockaddr_storage a;
    int lerr = net_listen_many(addr, port, nthreads, listen_fds, &a);
    if (lerr < 0) {
        fprintf(stderr, "taskring-http: listen on %s port %u: %s\n", addr, port, strerror(-lerr));
        return 1;
    }
    cli_format_addr((struct sockaddr *)&a, listen_name, sizeof(listen_name));

    struct tr_config cfg;
    tr_config_init(&cfg);
    if (quiet)
        cfg.report_fd = -1;
    int rc = net_run_engines(server_main, &cfg, nthreads, listen_fds);
    struct http_counters c = ctr_total;
    if (!quiet)
        fprintf(stderr,
                "taskring-http: %" PRIu64 " connections, %" PRIu64 " requests; ended: %" PRIu64
                " closed by peer, %" PRIu64 " closed by us, %" PRIu64 " reset by peer, %" PRIu64
                " cancelled, %" PRIu64 " failed, %" PRIu64 " request timeouts (408), %" PRIu64
                " idle timeouts; %" PRIu64 " ring ops in %" PRIu64 " io_uring_enter calls\n",
                c.accepted, c.requests, c.ended_eof, c.ended_close, c.ended_reset,
                c.ended_cancelled, c.ended_failed, c.ended_408, c.ended_idle, ops_total,
                enters_total);
    if (rc != 0 && rc != -ECANCELED) {
        fprintf(stderr, "taskring-http: %s\n", strerror(-rc));
        return 1;
    }
    return 0;
}
