/* SPDX-License-Identifier: MIT */
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
 *
 *   taskring-demo [--help] [--version]
 *
 * It takes no other arguments (any other is an error, exit status 2). Each
 * goodbye is followed by a lingering close, so every client reads its
 * goodbye and then the server's orderly EOF: the last lines count them, and
 * the resets (0). Exit status 0 when everything checked out, 1 otherwise.
 */
#include "cli.h"
#include "echo.h"
#include "net.h"
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
#define RUN_NS (3000ull * 1000000ull)
#define TICK_NS (500ull * 1000000ull)

static int listen_fd = -1;
static int done_pipe[2] = {-1, -1}; /* the load thread closes [1] when done */
static pthread_t load_thread;

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* ---- the load generator: its own thread, its own engine ---------------- */

static int load_main(void *arg)
{
    (void)arg;
    tr_task *c[CLIENTS];
    int n = 0;
    for (unsigned i = 0; i < CLIENTS; i++)
        if (tr_spawn(NULL, &c[n], echo_client, (void *)(uintptr_t)i, NULL) == 0)
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
        uint64_t t = now_ns(), v = load_counters.verified;
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
    if (err == 0 &&
        (pipe(done_pipe) < 0 || pthread_create(&load_thread, NULL, load_thread_fn, NULL)))
        err = -errno;
    if (err)
        return err;
    /* Printed inside the engine, whose creation blocked SIGTERM: from here
     * on a SIGTERM is a graceful shutdown (as in taskring-echo). */
    char name[CLI_ADDRSTRLEN];
    cli_format_addr((struct sockaddr *)&echo_server_addr, name, sizeof(name));
    printf("demo: echo server on %s, %d client connections from a load thread\n", name, CLIENTS);
    tr_wait_shutdown();
    return 0;
}

int main(int argc, char **argv)
{
    const struct cli_prog prog = {
        "taskring-demo",
        "An echo server, 200 clients on a load thread, and a graceful shutdown after 3 s.", NULL, 0,
        "No other arguments. Exit status: 0 when every check passed, 1 otherwise.\n"};
    int ex = cli_parse(&prog, argc, argv, stdout, stderr);
    if (ex >= 0)
        return ex;
    setvbuf(stdout, NULL, _IOLBF, 0);
    listen_fd = net_listen("127.0.0.1", 0, &echo_server_addr, &echo_server_addr_len);
    if (listen_fd < 0) {
        fprintf(stderr, "demo: listen: %s\n", strerror(-listen_fd));
        return 1;
    }
    struct tr_config cfg;
    tr_config_init(&cfg);
    cfg.report_fd = STDOUT_FILENO;
    uint64_t t0 = now_ns();
    int rc = tr_run(server_main, NULL, &cfg);
    double secs = (double)(now_ns() - t0) / 1e9;
    close(listen_fd);
    struct echo_counters c = echo_counters;
    printf("demo: %" PRIu64 " round trips verified in %.1f s (%.0f/s), %" PRIu64 " mismatches\n",
           load_counters.verified, secs, (double)load_counters.verified / secs,
           load_counters.mismatches);
    printf("demo: connections accepted %" PRIu64 ": cancelled %" PRIu64 " (goodbyes sent %" PRIu64
           ", lingered to the peer's EOF %" PRIu64 "), closed by peer %" PRIu64
           ", reset by peer %" PRIu64 ", failed %" PRIu64 "\n",
           c.accepted, c.ended_cancelled, c.goodbyes, c.lingered_eof, c.ended_eof, c.ended_reset,
           c.ended_failed);
    struct load_counters *l = &load_counters;
    printf("demo: clients: %" PRIu64 " connected, %" PRIu64 " read the goodbye, %" PRIu64
           " saw the server's orderly EOF, %" PRIu64 " reset by peer, %" PRIu64 " failed\n",
           (uint64_t)l->connected, (uint64_t)l->goodbyes, (uint64_t)l->eof, (uint64_t)l->reset,
           (uint64_t)l->failed);
    bool ok = rc == 0 && l->verified > 0 && l->mismatches == 0 && c.accepted == CLIENTS &&
              c.ended_cancelled == c.accepted && c.live == 0 && l->goodbyes == CLIENTS &&
              l->eof == CLIENTS && l->reset == 0;
    printf("demo: tr_run returned %d -> %s\n", rc, ok ? "OK" : "FAILED");
    return ok ? 0 : 1;
}
