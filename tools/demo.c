/*
 * taskring-demo — an echo server and its clients on one engine.
 *
 * The server listens on 127.0.0.1 (an ephemeral port): an acceptor task
 * spawns one task per connection that echoes until the peer closes. 200
 * client tasks each send 1,000 messages and check every echoed byte. Then
 * main cancels everything that is left (the acceptor, idle connections, the
 * progress reporter) with tr_cancel_all and waits for it, and the engine's
 * final stats show nothing in flight.
 */
#include "taskring.h"

#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define CLIENTS 200
#define MESSAGES 1000
#define MSG_LEN 64

static struct {
    struct sockaddr_in addr;
    int listen_fd;
    uint64_t messages;   /* verified round trips */
    uint64_t bad;        /* mismatches and errors */
    int clients_left;
} g;

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static int echo_conn(void *arg)
{
    int fd = (int)(intptr_t)arg;
    char buf[4096];
    ssize_t n;
    int rc = 0;
    while ((n = tr_recv(fd, buf, sizeof(buf), 0)) > 0) {
        for (ssize_t off = 0; off < n;) {
            ssize_t w = tr_send(fd, buf + off, (size_t)(n - off), MSG_NOSIGNAL);
            if (w <= 0) {
                rc = w < 0 ? (int)w : -EPIPE;
                goto out;
            }
            off += w;
        }
    }
    rc = n < 0 ? (int)n : 0;
out:
    tr_close(fd); /* closes even when cancelled */
    return rc;
}

static int acceptor(void *arg)
{
    (void)arg;
    for (;;) {
        int fd = tr_accept(g.listen_fd, NULL, NULL, SOCK_CLOEXEC);
        if (fd < 0)
            return fd; /* -ECANCELED when main cancels us */
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        struct tr_spawn_opts o = {.name = "echo-conn"};
        if (tr_spawn(NULL, NULL, echo_conn, (void *)(intptr_t)fd, &o) < 0)
            tr_close(fd);
    }
}

static int client(void *arg)
{
    unsigned id = (unsigned)(uintptr_t)arg;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    int rc = tr_connect(fd, (struct sockaddr *)&g.addr, sizeof(g.addr));
    for (unsigned i = 0; rc == 0 && i < MESSAGES; i++) {
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
        if (rc == 0 && memcmp(in, out, sizeof(in)) == 0)
            g.messages++;
        else if (rc == 0)
            rc = -EBADMSG;
    }
    tr_close(fd);
    if (rc < 0)
        g.bad++;
    g.clients_left--;
    return rc;
}

static void print_stats(const char *when, tr_engine *e)
{
    struct tr_stats st;
    if (tr_engine_stats(e, &st) < 0)
        return;
    printf("demo: stats %s: tasks spawned %" PRIu64 " live %" PRIu64 " ok %" PRIu64
           " cancelled %" PRIu64 " failed %" PRIu64 "\n"
           "demo:   ops submitted %" PRIu64 " completed %" PRIu64 " inflight %" PRIu64
           " cancels %" PRIu64 " stale %" PRIu64 " enters %" PRIu64 " cq_overflows %" PRIu64 "\n",
           when, st.tasks_spawned, st.tasks_live, st.tasks_ok, st.tasks_cancelled,
           st.tasks_failed, st.ops_submitted, st.ops_completed, st.ops_inflight,
           st.cancels_submitted, st.cqe_stale, st.submit_calls, st.cq_overflows);
}

static tr_engine *engine;

static int reporter(void *arg)
{
    (void)arg;
    uint64_t last = 0, t0 = now_ns(), tl = t0;
    for (;;) {
        int r = tr_sleep_ns(250 * 1000000ull);
        if (r < 0)
            return r;
        struct tr_stats st;
        tr_engine_stats(engine, &st);
        uint64_t t = now_ns();
        printf("demo: %6.2f s  %7" PRIu64 "/%d messages  %8.0f msg/s  clients left %3d  ops in "
               "flight %" PRIu64 "\n",
               (double)(t - t0) / 1e9, g.messages, CLIENTS * MESSAGES,
               (double)(g.messages - last) * 1e9 / (double)(t - tl), g.clients_left,
               st.ops_inflight);
        fflush(stdout);
        last = g.messages;
        tl = t;
    }
}

static int main_task(void *arg)
{
    (void)arg;
    tr_task *clients[CLIENTS];
    struct tr_spawn_opts ao = {.name = "acceptor"}, ro = {.name = "reporter"};
    if (tr_spawn(NULL, NULL, acceptor, NULL, &ao) < 0 || tr_spawn(NULL, NULL, reporter, NULL, &ro) < 0)
        return -ENOMEM;
    uint64_t t0 = now_ns();
    g.clients_left = CLIENTS;
    for (unsigned i = 0; i < CLIENTS; i++) {
        char name[32];
        snprintf(name, sizeof(name), "client-%u", i);
        struct tr_spawn_opts co = {.name = name};
        int err = tr_spawn(NULL, &clients[i], client, (void *)(uintptr_t)i, &co);
        if (err < 0)
            return err;
    }
    int failed = 0;
    for (unsigned i = 0; i < CLIENTS; i++) {
        int res = 0;
        if (tr_join(clients[i], &res) < 0 || res < 0)
            failed++;
    }
    double secs = (double)(now_ns() - t0) / 1e9;
    printf("demo: %d clients x %d messages of %d bytes: %" PRIu64 " verified, %d clients failed\n",
           CLIENTS, MESSAGES, MSG_LEN, g.messages, failed);
    printf("demo: %.3f s, %.0f round trips/s, %.1f MB/s echoed\n", secs, (double)g.messages / secs,
           (double)g.messages * MSG_LEN * 2 / secs / 1e6);
    /* Everything left (acceptor, reporter, idle connections) is cancelled,
     * and we wait until each has ended: their ops' CQEs are all reaped. */
    int n = tr_cancel_all(NULL, 0, TR_CANCEL_WAIT);
    printf("demo: tr_cancel_all cancelled and drained %d tasks\n", n);
    print_stats("after tr_cancel_all", engine);
    return (failed == 0 && g.messages == (uint64_t)CLIENTS * MESSAGES) ? 0 : -EIO;
}

int main(void)
{
    g.listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    g.addr.sin_family = AF_INET;
    g.addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t alen = sizeof(g.addr);
    if (g.listen_fd < 0 || bind(g.listen_fd, (struct sockaddr *)&g.addr, sizeof(g.addr)) < 0 ||
        listen(g.listen_fd, 1024) < 0 ||
        getsockname(g.listen_fd, (struct sockaddr *)&g.addr, &alen) < 0) {
        perror("demo: listen");
        return 1;
    }
    printf("demo: echo server on 127.0.0.1:%u\n", ntohs(g.addr.sin_port));
    int err = tr_engine_create(&engine, NULL);
    if (err < 0) {
        fprintf(stderr, "demo: tr_engine_create: %s\n", strerror(-err));
        return 1;
    }
    struct tr_spawn_opts mo = {.name = "main"};
    tr_task *m;
    int result = -1;
    if ((err = tr_spawn(engine, &m, main_task, NULL, &mo)) < 0 || (err = tr_engine_run(engine)) < 0) {
        fprintf(stderr, "demo: engine: %s\n", strerror(-err));
        return 1;
    }
    /* The engine is stopped; the handle tells main's result. */
    tr_task_result(m, &result);
    tr_detach(m);
    print_stats("final", engine);
    struct tr_stats st;
    tr_engine_stats(engine, &st);
    err = tr_engine_destroy(engine);
    close(g.listen_fd);
    printf("demo: main returned %d, ops in flight %" PRIu64 ", destroy %d -> %s\n", result,
           st.ops_inflight, err, (result == 0 && st.ops_inflight == 0 && err == 0) ? "OK" : "FAILED");
    return (result == 0 && st.ops_inflight == 0 && err == 0) ? 0 : 1;
}
