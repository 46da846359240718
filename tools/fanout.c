/* SPDX-License-Identifier: MIT */
/*
 * taskring-fanout — one request, several backends, one deadline: the
 * example to copy for task groups, scopes and channels.
 *
 *   taskring-fanout [--port N] [--backends K] [--workers W] [--deadline-ms T]
 *                   [--backend-delay-ms D] [--backend-fail] [--help] [--version]
 *
 * A client sends lines. For each line the server asks its K backends at
 * once, one child task and one connection each, all in one task group
 * inside one cancel scope whose deadline is T ms away (fan_out), and
 * answers one line:
 *   ok b0(hello) b1(hello) b2(hello)   every backend answered, in backend order
 *   timeout 500 ms                     the deadline came first: the children were cancelled
 *   error backend-0: Protocol error    a backend failed: its siblings were cancelled at once
 * Never a mix: the children's answers are read only when all of them came.
 *
 * The backends live in the program to keep it self-contained: K listeners
 * on 127.0.0.1 (ephemeral ports), a task per connection, each answering a
 * line with "b<i>(<line>)". --backend-delay-ms D makes the last one answer
 * D ms late (the deadline's path); --backend-fail makes the first one hang
 * up without answering (a real failure).
 *
 * Clients are served by a bounded pool of W worker tasks fed by a channel
 * of accepted sockets with room for W: when all are busy and W wait, the
 * acceptor waits too and the kernel's backlog holds the rest. So at most
 * W requests (W * K backend connections) are under way, whatever the load.
 * A real server would also bound a client's own time (net_deadline in
 * tools/net.h): here W silent clients hold every worker.
 *
 * "taskring-fanout: listening on 127.0.0.1:PORT ..." on stdout means ready
 * (printed inside the engine, after SIGINT/SIGTERM were blocked, as in
 * taskring-echo). SIGINT/SIGTERM: tr_run's graceful shutdown, the engine's
 * report on stderr, then a line of counts on stdout. Exit status 0 after a
 * graceful shutdown, 1 on a failure, 2 for a bad command line.
 */
#include "cli.h"
#include "net.h"
#include "taskring.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define MAX_BACKENDS 8
#define LINE_LEN 256           /* a line's buffer: a backend's answer, "\n" included */
#define REQ_MAX (LINE_LEN - 8) /* a request, "\n" included: its answer "b7(...)" fits */
#define MS (1000ull * 1000ull) /* ns */

static unsigned n_backends = 3, n_workers = 4, deadline_ms = 500, delay_ms;
static int backend_fail;
static int backend_fd[MAX_BACKENDS];
static struct sockaddr_storage backend_addr[MAX_BACKENDS];
static socklen_t backend_len[MAX_BACKENDS];
static struct tr_chan *conn_queue; /* accepted client sockets waiting for a worker */
static char listen_name[CLI_ADDRSTRLEN];
static struct {
    uint64_t conns, requests, ok, timeouts, failures;
} count;

/* ---- lines ------------------------------------------------------------------------ */

/* A connection's input, cut into lines. */
struct lines {
    int fd;
    size_t len;
    char buf[LINE_LEN];
};

/* The next line of l into out (max + 1 bytes): the line with its "\n" and
 * a NUL. Returns its length (> 0), 0 at the peer's EOF, -EMSGSIZE for a
 * line longer than max, or the recv's -errno. */
static ssize_t next_line(struct lines *l, char *out, size_t max)
{
    /* Bounded: each pass adds a byte or more to a buffer of LINE_LEN, or ends. */
    for (;;) {
        char *nl = memchr(l->buf, '\n', l->len);
        if (nl) {
            size_t n = (size_t)(nl - l->buf) + 1;
            if (n > max)
                return -EMSGSIZE;
            memcpy(out, l->buf, n);
            out[n] = '\0';
            l->len -= n;
            memmove(l->buf, l->buf + n, l->len);
            return (ssize_t)n;
        }
        if (l->len == sizeof(l->buf))
            return -EMSGSIZE;
        ssize_t r = tr_recv(l->fd, l->buf + l->len, sizeof(l->buf) - l->len, 0);
        if (r <= 0)
            return r;
        l->len += (size_t)r;
    }
}

/* Sends all of buf: 0, or the send's -errno. */
static int send_all(int fd, const char *buf, size_t n)
{
    /* Bounded: each pass sends a byte or more, or ends. */
    while (n > 0) {
        ssize_t w = tr_send(fd, buf, n, 0);
        if (w <= 0)
            return w < 0 ? (int)w : -EPIPE;
        buf += w;
        n -= (size_t)w;
    }
    return 0;
}

/* ---- the backends: K listeners in this program -------------------------------------- */

/* One call to backend i: a line in, "b<i>(<line>)" out. */
static int backend_conn(void *arg)
{
    int id = (int)(intptr_t)arg;
    unsigned i = (unsigned)id % MAX_BACKENDS;
    struct lines l = {.fd = id / MAX_BACKENDS};
    char line[LINE_LEN], answer[LINE_LEN + 8];
    ssize_t n = next_line(&l, line, REQ_MAX);
    int rc = n > 0 ? 0 : (int)n;
    /* The slow one sleeps its delay out even when its caller gave up. */
    if (rc == 0 && i == n_backends - 1 && delay_ms)
        rc = tr_sleep_ns(delay_ms * MS); /* -ECANCELED at shutdown */
    /* The failing one hangs up without an answer. */
    if (rc == 0 && !(i == 0 && backend_fail)) {
        line[n - 1] = '\0';
        int w = snprintf(answer, sizeof(answer), "b%u(%s)\n", i, line);
        send_all(l.fd, answer, (size_t)w); /* a caller that gave up is its business */
    }
    tr_close(l.fd);
    return 0;
}

static int backend_acceptor(void *arg)
{
    unsigned i = (unsigned)(uintptr_t)arg;
    struct net_backoff b = {0};
    /* One pass per connection: net_accept returns -ECANCELED at shutdown. */
    for (;;) {
        int fd = net_accept(backend_fd[i], SOCK_CLOEXEC, &b);
        if (fd < 0)
            return fd;
        struct tr_spawn_opts o = {.name = "backend-conn"};
        void *call = (void *)(intptr_t)(fd * MAX_BACKENDS + (int)i);
        if (tr_spawn(NULL, NULL, backend_conn, call, &o) < 0)
            tr_close(fd);
    }
}

/* ---- the fan-out: a group in a scope with a deadline --------------------------------- */

/* One backend's part of one request: its own connection and its own slot. */
struct call {
    const char *req; /* the client's line, "\n" included */
    size_t req_len;
    unsigned backend;
    char answer[LINE_LEN]; /* read only when every call of the request succeeded */
};

/* A child of the request's group: one round trip. 0, or its first -errno:
 * a real failure (-ECONNREFUSED, -EPROTO...) cancels its siblings. A cut
 * (the deadline, a sibling's failure, the shutdown) makes its calls return
 * -ECANCELED, which the group does not count as a failure. */
static int call_backend(void *arg)
{
    struct call *c = arg;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    int rc = tr_connect(fd, (struct sockaddr *)&backend_addr[c->backend], backend_len[c->backend]);
    if (rc == 0)
        rc = send_all(fd, c->req, c->req_len);
    if (rc == 0) {
        struct lines l = {.fd = fd};
        ssize_t n = next_line(&l, c->answer, sizeof(c->answer) - 1);
        rc = n > 0 ? 0 : n == 0 ? -EPROTO : (int)n; /* EOF before the answer: broken */
        if (n > 0)
            c->answer[n - 1] = '\0';
    }
    tr_close(fd); /* never cut short */
    return rc;
}

/* Asks every backend at once, all within deadline_ms, and writes the
 * client's answer line into out. 0, or -ECANCELED when the caller is
 * cancelled (the shutdown). */
static int fan_out(const char *req, size_t len, char *out, size_t cap)
{
    struct call calls[MAX_BACKENDS];
    struct tr_scope scope;
    struct tr_group group;
    /* One deadline for the whole request: the scope around the group. Its
     * children run inside it, so when it fires they are cancelled. */
    int rc = tr_scope_enter(&scope, tr_now_ns() + deadline_ms * MS, 0);
    if (rc < 0)
        return rc; /* only outside a task */
    rc = tr_group_init(&group);
    if (rc < 0) {
        tr_scope_exit(&scope);
        return rc; /* -ENOMEM: serve closes the connection */
    }
    for (unsigned i = 0; i < n_backends && rc == 0; i++) {
        calls[i] = (struct call){.req = req, .req_len = len, .backend = i};
        char name[20]; /* "backend-" and any unsigned */
        snprintf(name, sizeof(name), "backend-%u", i);
        struct tr_spawn_opts o = {.name = name};
        rc = tr_group_spawn(&group, call_backend, &calls[i], &o);
    }
    /* Returns once every child has ended (G10: calls[] is on our stack):
     * 0, the first real failure, or -ETIMEDOUT / -ECANCELED for a cut. */
    int res = tr_group_wait(&group);
    tr_scope_exit(&scope); /* its -ETIMEDOUT is the wait's already */

    struct tr_failure f; /* a child's real failure wins, also over a deadline */
    if (tr_group_failures(&group, &f, 1) > 0) {
        count.failures++;
        snprintf(out, cap, "error %s: %s\n", f.name, strerror(-f.result));
    } else if (res == -ECANCELED) {
        return res; /* we are cancelled: the shutdown */
    } else if (res == -ETIMEDOUT) {
        count.timeouts++;
        snprintf(out, cap, "timeout %u ms\n", deadline_ms);
    } else if (rc < 0) {
        return rc; /* a child could not be spawned (-ENOMEM): serve closes */
    } else {
        count.ok++;
        size_t off = (size_t)snprintf(out, cap, "ok");
        for (unsigned i = 0; i < n_backends; i++)
            off += (size_t)snprintf(out + off, cap - off, " %s", calls[i].answer);
        snprintf(out + off, cap - off, "\n");
    }
    return 0;
}

/* ---- the front end: an acceptor, a channel, a pool of workers ------------------------ */

/* One client connection: a fan-out per line until the client's EOF. 0,
 * or the -errno that ended it (-ECANCELED: the shutdown). */
static int serve(int fd)
{
    struct lines l = {.fd = fd};
    char req[LINE_LEN], out[16 + MAX_BACKENDS * (LINE_LEN + 1)];
    /* One pass per request: the client's EOF, an error or a cancel ends it. */
    for (;;) {
        ssize_t n = next_line(&l, req, REQ_MAX);
        if (n == -EMSGSIZE)
            return send_all(fd, "error request too long\n", 23);
        if (n <= 0)
            return (int)n;
        count.requests++;
        int rc = fan_out(req, (size_t)n, out, sizeof(out));
        if (rc == 0)
            rc = send_all(fd, out, strlen(out));
        if (rc < 0)
            return rc;
    }
}

static int worker(void *arg)
{
    (void)arg;
    /* One pass per client connection: the shutdown's cancel ends it. */
    for (;;) {
        int fd;
        int rc = tr_chan_recv(conn_queue, &fd);
        if (rc < 0)
            return rc; /* -ECANCELED, having taken nothing (G9) */
        rc = serve(fd);
        net_close_lingering(fd, NET_LINGER_MS); /* no reset for the client's last bytes */
        if (rc == -ECANCELED)
            return rc;
    }
}

static int acceptor(void *arg)
{
    int lfd = (int)(intptr_t)arg;
    struct net_backoff b = {0};
    /* One pass per connection: -ECANCELED at shutdown ends it. */
    for (;;) {
        int fd = net_accept(lfd, SOCK_CLOEXEC, &b);
        if (fd < 0)
            return fd;
        count.conns++;
        /* Waits while W connections are served and W wait in the queue. */
        int rc = tr_chan_send(conn_queue, &fd);
        if (rc < 0) {
            tr_close(fd); /* cut short: nothing was sent (G9) */
            return rc;
        }
    }
}

/* At shutdown, after every task ended: the connections still queued. */
static int close_queued(void *arg)
{
    (void)arg;
    int fd;
    /* Bounded by the channel's capacity. */
    while (tr_chan_try_recv(conn_queue, &fd) == 0)
        tr_close(fd);
    return 0;
}

static int server_main(void *arg)
{
    int rc = tr_at_shutdown(close_queued, NULL);
    for (unsigned i = 0; i < n_backends && rc == 0; i++) {
        struct tr_spawn_opts o = {.name = "backend-accept"};
        rc = tr_spawn(NULL, NULL, backend_acceptor, (void *)(uintptr_t)i, &o);
    }
    for (unsigned i = 0; i < n_workers && rc == 0; i++) {
        struct tr_spawn_opts o = {.name = "worker"};
        rc = tr_spawn(NULL, NULL, worker, NULL, &o);
    }
    struct tr_spawn_opts o = {.name = "acceptor"};
    if (rc == 0)
        rc = tr_spawn(NULL, NULL, acceptor, arg, &o);
    if (rc < 0)
        return rc; /* tr_run shuts down what was spawned */
    printf("taskring-fanout: listening on %s (%u backends, %u workers, deadline %u ms)\n",
           listen_name, n_backends, n_workers, deadline_ms);
    fflush(stdout);
    return tr_wait_shutdown();
}

int main(int argc, char **argv)
{
    unsigned port = 7780;
    const struct cli_opt opts[] = {
        {"port", "N", CLI_UINT, 0, 65535, &port, 0,
         "listen on 127.0.0.1 port N, 0: ephemeral (7780)"},
        {"backends", "K", CLI_UINT, 1, MAX_BACKENDS, &n_backends, 0,
         "ask K backends per request (3)"},
        {"workers", "W", CLI_UINT, 1, 4096, &n_workers, 0, "serve W clients at once, queue W (4)"},
        {"deadline-ms", "T", CLI_UINT, 1, 3600000, &deadline_ms, 0,
         "answer each request within T ms (500)"},
        {"backend-delay-ms", "D", CLI_UINT, 0, 3600000, &delay_ms, 0,
         "the last backend answers D ms late (0)"},
        {"backend-fail", NULL, CLI_FLAG, 0, 0, &backend_fail, 0,
         "the first backend hangs up without answering"},
    };
    const struct cli_prog prog = {
        "taskring-fanout", "Each request line asks K backends at once, within one deadline.", opts,
        sizeof(opts) / sizeof(opts[0]),
        "Answers: \"ok b0(LINE) b1(LINE) ...\", \"timeout T ms\" or \"error backend-I: ...\".\n"
        "SIGINT/SIGTERM: graceful shutdown. Exit status: 0 graceful, 1 failure, 2 bad usage.\n"};
    int ex = cli_parse(&prog, argc, argv, stdout, stderr);
    if (ex >= 0)
        return ex;

    struct sockaddr_storage a;
    int lfd = net_listen("127.0.0.1", port, &a, NULL);
    if (lfd < 0) {
        fprintf(stderr, "taskring-fanout: listen on 127.0.0.1 port %u: %s\n", port, strerror(-lfd));
        return 1;
    }
    cli_format_addr((struct sockaddr *)&a, listen_name, sizeof(listen_name));
    int rc = tr_chan_create(&conn_queue, sizeof(int), n_workers, 0);
    unsigned opened = 0;
    /* The backends' listeners, on ephemeral ports. */
    while (rc == 0 && opened < n_backends) {
        int fd = net_listen("127.0.0.1", 0, &backend_addr[opened], &backend_len[opened]);
        if (fd < 0)
            rc = fd;
        else
            backend_fd[opened++] = fd;
    }
    if (rc == 0)
        rc = tr_run(server_main, (void *)(intptr_t)lfd, NULL);
    while (opened > 0)
        close(backend_fd[--opened]);
    close(lfd);
    if (conn_queue)
        tr_chan_destroy(conn_queue); /* no task is left that could wait on it */
    printf("taskring-fanout: %" PRIu64 " connections, %" PRIu64 " requests: %" PRIu64
           " ok, %" PRIu64 " timed out, %" PRIu64 " failed\n",
           count.conns, count.requests, count.ok, count.timeouts, count.failures);
    if (rc != 0 && rc != -ECANCELED) {
        fprintf(stderr, "taskring-fanout: %s\n", strerror(-rc));
        return 1;
    }
    return 0;
}
