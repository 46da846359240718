/*
 * taskring-demo — a real echo server, its load, and a graceful shutdown.
 *
 * The server runs under tr_run on the main thread: an acceptor and one task
 * per connection. A load generator thread runs its own engine (one engine
 * per thread) with 200 client tasks that each keep one connection busy,
 * checking every echoed byte. Every 0.5 s a progress line; after about 3 s
 * the demo sends itself SIGTERM. The shutdown cancels every connection task
 * (each says goodbye inside a shield, then closes), the clients see their
 * connections end, an at_shutdown hook waits for the load thread, and the
 * engine's report shows what happened: every connection task cancelled,
 * 0 ops in flight, the ring closed.
 */
#include "echo.h"
#include "taskring.h"

#include <errno.h>
#include <inttypes.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define CLIENTS 200
#define MSG_LEN 64
#define RUN_NS (3000ull * 1000000ull)
#define TICK_NS (500ull * 1000000ull)
#define BYE "taskring-echo: server shutting down, goodbye\n"
#define BYE_LEN (sizeof(BYE) - 1)

static struct sockaddr_in server_addr;
static int listen_fd = -1;
static int done_pipe[2] = {-1, -1}; /* the load thread closes [1] when done */
static pthread_t load_thread;
static _Atomic uint64_t verified;   /* round trips checked by clients */
static _Atomic uint64_t mismatches; /* echoes that differed: must stay 0 */
static _Atomic int clients_connected;
static int clients_ended_by_server; /* goodbye or EOF seen: the server ended it */

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* ---- the load generator: its own thread, its own engine ---------------- */

static int client(void *arg)
{
    unsigned id = (unsigned)(uintptr_t)arg;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    int rc = tr_connect(fd, (struct sockaddr *)&server_addr, sizeof(server_addr));
    if (rc == 0)
        clients_connected++;
    for (unsigned i = 0; rc == 0; i++) {
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
            verified++;
        } else if (k < got) {
            size_t m = got - k < BYE_LEN ? got - k : BYE_LEN;
            if (memcmp(in + k, BYE, m) == 0)
                rc = -ECONNRESET;
            else
                mismatches++;
            break;
        }
    }
    tr_close(fd);
    if (rc == -ECONNRESET || rc == -EPIPE) {
        clients_ended_by_server++;
        return 0;
    }
    return rc;
}

static int load_main(void *arg)
{
    (void)arg;
    tr_task *c[CLIENTS];
    int n = 0;
    for (unsigned i = 0; i < CLIENTS; i++)
        if (tr_spawn(NULL, &c[n], client, (void *)(uintptr_t)i, NULL) == 0)
            n++;
    int failed = 0;
    for (int i = 0; i < n; i++) {
        int res = 0;
        if (tr_join(c[i], &res) < 0 || res < 0)
            failed++;
    }
    return failed ? -EIO : 0;
}

static void *load_thread_fn(void *arg)
{
    (void)arg;
    /* This engine handles no signals: the server's engine owns SIGTERM. */
    struct tr_config cfg;
    tr_config_init(&cfg);
    cfg.flags |= TR_CFG_NO_SIGNALS;
    cfg.report_fd = -1;
    intptr_t rc = tr_run(load_main, NULL, &cfg);
    close(done_pipe[1]); /* EOF for the server's at_shutdown hook */
    return (void *)rc;
}

/* ---- the server ------------------------------------------------------------------ */

static int progress(void *arg)
{
    (void)arg;
    tr_engine *e = arg;
    uint64_t t0 = now_ns(), last_t = t0, last_v = 0;
    bool sent = false;
    for (;;) {
        int r = tr_sleep_ns(TICK_NS);
        if (r < 0)
            return r; /* -ECANCELED at shutdown */
        struct tr_stats st;
        tr_engine_stats(e, &st);
        uint64_t t = now_ns(), v = verified;
        printf("demo: %5.1f s  connections %3" PRIu64 "  %8.0f msg/s  ops in flight %4" PRIu64 "\n",
               (double)(t - t0) / 1e9, echo_counters.live,
               (double)(v - last_v) * 1e9 / (double)(t - last_t), st.ops_inflight);
        fflush(stdout);
        last_t = t;
        last_v = v;
        if (!sent && t - t0 >= RUN_NS) {
            printf("demo: sending SIGTERM to myself\n");
            fflush(stdout);
            kill(getpid(), SIGTERM);
            sent = true;
        }
    }
}

static int join_load(void *arg)
{
    (void)arg;
    /* I/O inside a hook: wait for the load thread's EOF on the ring. */
    char b;
    while (tr_read(done_pipe[0], &b, 1, -1) > 0)
        ;
    void *rc = NULL;
    pthread_join(load_thread, &rc);
    close(done_pipe[0]);
    printf("demo: load generator ended (result %d)\n", (int)(intptr_t)rc);
    struct tr_stats st;
    tr_engine_stats(tr_self_engine(), &st);
    printf("demo: stats in the at_shutdown hook: tasks spawned %" PRIu64 " live %" PRIu64
           " (this hook) ok %" PRIu64 " cancelled %" PRIu64 " failed %" PRIu64 " killed %" PRIu64
           "; ops submitted %" PRIu64 " completed %" PRIu64 " in flight %" PRIu64
           "; io_uring_enter calls %" PRIu64 "\n",
           st.tasks_spawned, st.tasks_live, st.tasks_ok, st.tasks_cancelled, st.tasks_failed,
           st.tasks_killed, st.ops_submitted, st.ops_completed, st.ops_inflight, st.submit_calls);
    return 0;
}

static int server_main(void *arg)
{
    tr_engine *e = arg;
    (void)e;
    struct tr_spawn_opts ao = {.name = "acceptor"}, po = {.name = "progress"};
    int err = tr_spawn(NULL, NULL, echo_acceptor, (void *)(intptr_t)listen_fd, &ao);
    if (err == 0)
        err = tr_spawn(NULL, NULL, progress, tr_self_engine(), &po);
    if (err == 0)
        err = tr_at_shutdown(join_load, NULL);
    /* Created after the engine: the thread inherits the blocked SIGTERM. */
    if (err == 0 && (pipe(done_pipe) < 0 || pthread_create(&load_thread, NULL, load_thread_fn, NULL)))
        err = -errno;
    if (err)
        return err;
    tr_wait_shutdown();
    return 0;
}

int main(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    listen_fd = echo_listen(0, &server_addr);
    if (listen_fd < 0) {
        fprintf(stderr, "demo: listen: %s\n", strerror(-listen_fd));
        return 1;
    }
    printf("demo: echo server on 127.0.0.1:%u, %d client connections from a load thread\n",
           ntohs(server_addr.sin_port), CLIENTS);
    struct tr_config cfg;
    tr_config_init(&cfg);
    cfg.report_fd = STDOUT_FILENO;
    uint64_t t0 = now_ns();
    int rc = tr_run(server_main, NULL, &cfg);
    double secs = (double)(now_ns() - t0) / 1e9;
    close(listen_fd);
    struct echo_counters c = echo_counters;
    printf("demo: %" PRIu64 " round trips verified in %.1f s (%.0f/s), %" PRIu64 " mismatches\n",
           (uint64_t)verified, secs, (double)verified / secs, (uint64_t)mismatches);
    printf("demo: connections accepted %" PRIu64 ": cancelled %" PRIu64 " (goodbyes sent %" PRIu64
           "), ended by peer %" PRIu64 ", failed %" PRIu64 "; clients told by the server %d/%d\n",
           c.accepted, c.ended_cancelled, c.goodbyes, c.ended_eof, c.ended_failed,
           clients_ended_by_server, (int)clients_connected);
    bool ok = rc == 0 && verified > 0 && mismatches == 0 && c.accepted == CLIENTS &&
              c.ended_cancelled == c.accepted && c.live == 0;
    printf("demo: tr_run returned %d -> %s\n", rc, ok ? "OK" : "FAILED");
    return ok ? 0 : 1;
}
