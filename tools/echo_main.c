/* SPDX-License-Identifier: MIT */
/*
 * taskring-echo — an echo server that shuts down gracefully.
 *
 *   taskring-echo [--addr A] [--port N] [--idle-timeout-ms N] [--stubborn]
 *                 [--grace-ms N] [--kill-ms N] [--threads N] [--help] [--version]
 *
 * Listens on the IPv4 or IPv6 literal A (default 127.0.0.1) and port N
 * (default 7777; 0: an ephemeral port). "taskring-echo: listening on
 * ADDR:PORT" on stdout means ready: it is printed from the engine's main
 * task, after tr_engine_create has blocked SIGINT/SIGTERM, so a SIGTERM sent
 * the moment it appears starts the graceful shutdown (exit 0, the report),
 * never the signal's default action. No thread exists that could take the
 * signal instead (io_uring's workers block all signals).
 *
 * Ctrl+C (or SIGTERM) once: graceful (connections cancelled, each sends a
 * goodbye inside a shield, then closes lingering: write side shut, the
 * client's last input read until its EOF, at most a second); twice: break
 * the shields; three times: kill whatever still ignores cancellation.
 * --stubborn adds a task that ignores cancellation, to watch the third rung.
 * --threads N runs a cluster of N engines on N threads (tr_cluster_run),
 * each with its own SO_REUSEPORT listener; one signal shuts all down.
 * At the shutdown's Stop each listener stops taking new connections and
 * drains those the kernel accepted already (net_listener_drain): they get
 * the goodbye too, never a reset.
 * --idle-timeout-ms N (default 60000, 0: never) closes a connection that
 * brought no input for N ms, lingering, without the goodbye (one whose
 * client stopped reading the echo: with a reset; echo.c).
 * At the fd limit the acceptor backs off (1 ms doubling to 100 ms, cut short
 * when a connection closes) instead of spinning. The engine's report goes
 * to stderr, the counts to stdout. Exit status: 0 after a graceful
 * shutdown, 1 on a failure, 2 for a bad command line.
 */
#include "cli.h"
#include "echo.h"
#include "net.h"
#include "taskring.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define MAX_THREADS 256

static int listen_fds[MAX_THREADS];
static unsigned nthreads = 1;
static int stubborn;
static char listen_name[CLI_ADDRSTRLEN];

/* On every engine (one per thread): its own SO_REUSEPORT listener. */
static int server_main(void *arg)
{
    (void)arg;
    unsigned i = tr_engine_index();
    int lfd = listen_fds[i];
    struct tr_spawn_opts ao = {.name = "acceptor"}, so = {.name = "stubborn"};
    int err = tr_at_shutdown(echo_counters_add, NULL);
    if (err == 0)
        err = tr_spawn(NULL, NULL, echo_acceptor, (void *)(intptr_t)lfd, &ao);
    if (err == 0 && stubborn && i == 0)
        err = tr_spawn(NULL, NULL, echo_stubborn, NULL, &so);
    if (err)
        return err;
    /* Ready only now: inside the engine, whose creation blocked the
     * shutdown signals (printed before tr_run, a SIGTERM at once killed
     * the process 28 times in 30). Every listener exists already: what
     * the others' acceptors have not taken yet waits in their queues. */
    if (i == 0) {
        printf("taskring-echo: listening on %s (Ctrl+C: graceful, 2x: break shields, 3x: "
               "kill)\n",
               listen_name);
        fflush(stdout);
    }
    err = tr_wait_shutdown();
    /* Stop: the listener first, with what the kernel accepted already. */
    net_listener_drain(lfd, echo_took, NULL);
    listen_fds[i] = -1;
    return err;
}

int main(int argc, char **argv)
{
    const char *addr = "127.0.0.1";
    unsigned port = 7777;
    struct tr_config cfg;
    tr_config_init(&cfg);
    const struct cli_opt opts[] = {
        {"addr", "A", CLI_ADDR, 0, 0, &addr, 0, "listen on the IPv4 or IPv6 literal A (127.0.0.1)"},
        {"port", "N", CLI_UINT, 0, 65535, &port, 0, "listen on port N, 0: ephemeral (7777)"},
        {"idle-timeout-ms", "N", CLI_UINT, 0, 3600000, &echo_idle_timeout_ms, 0,
         "close a connection with no input for N ms (60000, 0: never)"},
        {"stubborn", NULL, CLI_FLAG, 0, 0, &stubborn, 0,
         "add a task that ignores cancellation (the 3rd rung)"},
        {"grace-ms", "N", CLI_UINT, 0, 3600000, &cfg.grace_ms, 0,
         "shields hold N ms after the 1st signal (5000)"},
        {"kill-ms", "N", CLI_UINT, 0, 3600000, &cfg.kill_ms, 0,
         "stragglers are killed N ms after grace (2000)"},
        {"threads", "N", CLI_UINT, 1, MAX_THREADS, &nthreads, 0,
         "N engines on N threads, a SO_REUSEPORT listener each (1)"},
    };
    const struct cli_prog prog = {
        "taskring-echo", "An echo server on taskring that shuts down gracefully.", opts,
        sizeof(opts) / sizeof(opts[0]),
        "Ctrl+C or SIGTERM once: graceful (goodbye, lingering close); twice: break the\n"
        "shields; three times: kill. Exit status: 0 graceful, 1 failure, 2 bad usage.\n"};
    int ex = cli_parse(&prog, argc, argv, stdout, stderr);
    if (ex >= 0)
        return ex;

    struct sockaddr_storage a;
    int lerr = net_listen_many(addr, port, nthreads, listen_fds, &a);
    if (lerr < 0) {
        fprintf(stderr, "taskring-echo: listen on %s port %u: %s\n", addr, port, strerror(-lerr));
        return 1;
    }
    cli_format_addr((struct sockaddr *)&a, listen_name, sizeof(listen_name));
    int rc = net_run_engines(server_main, &cfg, nthreads, listen_fds);
    struct echo_counters c = echo_counters_total;
    printf("taskring-echo: %" PRIu64 " connections: %" PRIu64 " cancelled (%" PRIu64
           " goodbyes, %" PRIu64 " lingered to the peer's EOF), %" PRIu64
           " closed by peer, %" PRIu64 " reset by peer, %" PRIu64 " failed, %" PRIu64
           " idle timeouts; %" PRIu64 " bytes echoed\n",
           c.accepted, c.ended_cancelled, c.goodbyes, c.lingered_eof, c.ended_eof, c.ended_reset,
           c.ended_failed, c.ended_idle, c.bytes);
    if (rc != 0 && rc != -ECANCELED) {
        fprintf(stderr, "taskring-echo: %s\n", strerror(-rc));
        return 1;
    }
    return 0;
}
