/*
 * taskring-echo — an echo server on 127.0.0.1 that shuts down gracefully.
 *
 *   taskring-echo [--port N] [--stubborn] [--grace-ms N] [--kill-ms N]
 *
 * "listening" on stdout means ready: it is printed from the engine's main
 * task, after tr_engine_create has blocked SIGINT/SIGTERM, so a SIGTERM sent
 * the moment it appears starts the graceful shutdown (exit 0, the report),
 * never the signal's default action. No thread exists that could take the
 * signal instead (io_uring's workers block all signals).
 *
 * Ctrl+C (or SIGTERM) once: graceful (connections cancelled, each sends a
 * goodbye inside a shield, then closes lingering: write side shut, the
 * client's last input read until its EOF, at most a second); twice: break the shields; three
 * times: kill whatever still ignores cancellation. --stubborn adds a task
 * that ignores cancellation, to watch the third rung. At the fd limit the
 * acceptor backs off (1 ms doubling to 100 ms, cut short when a connection
 * closes) instead of spinning. The engine's report goes to stderr.
 */
#include "echo.h"
#include "taskring.h"

#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int listen_fd;
static int stubborn;
static unsigned listen_port;

static int server_main(void *arg)
{
    (void)arg;
    struct tr_spawn_opts ao = {.name = "acceptor"}, so = {.name = "stubborn"};
    int err = tr_spawn(NULL, NULL, echo_acceptor, (void *)(intptr_t)listen_fd, &ao);
    if (err == 0 && stubborn)
        err = tr_spawn(NULL, NULL, echo_stubborn, NULL, &so);
    if (err)
        return err;
    /* Ready only now: inside the engine, whose creation blocked the
     * shutdown signals (printed before tr_run, a SIGTERM at once killed
     * the process 28 times in 30). */
    printf("taskring-echo: listening on 127.0.0.1:%u (Ctrl+C: graceful, 2x: break shields, "
           "3x: kill)\n",
           listen_port);
    fflush(stdout);
    return tr_wait_shutdown();
}

static void usage(void)
{
    fprintf(stderr, "usage: taskring-echo [--port N] [--stubborn] [--grace-ms N] [--kill-ms N]\n");
}

int main(int argc, char **argv)
{
    int port = 7777;
    struct tr_config cfg;
    tr_config_init(&cfg);
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--port") && i + 1 < argc)
            port = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--grace-ms") && i + 1 < argc)
            cfg.grace_ms = (unsigned)atoi(argv[++i]);
        else if (!strcmp(argv[i], "--kill-ms") && i + 1 < argc)
            cfg.kill_ms = (unsigned)atoi(argv[++i]);
        else if (!strcmp(argv[i], "--stubborn"))
            stubborn = 1;
        else {
            usage();
            return 2;
        }
    }
    struct sockaddr_in a;
    listen_fd = echo_listen(port, &a);
    if (listen_fd < 0) {
        fprintf(stderr, "taskring-echo: listen on port %d: %s\n", port, strerror(-listen_fd));
        return 1;
    }
    listen_port = ntohs(a.sin_port);
    int rc = tr_run(server_main, NULL, &cfg);
    close(listen_fd);
    struct echo_counters c = echo_counters;
    printf("taskring-echo: %" PRIu64 " connections: %" PRIu64 " cancelled (%" PRIu64
           " goodbyes, %" PRIu64 " lingered to the peer's EOF), %" PRIu64
           " closed by peer, %" PRIu64 " reset by peer, %" PRIu64 " failed; %" PRIu64
           " bytes echoed\n",
           c.accepted, c.ended_cancelled, c.goodbyes, c.lingered_eof, c.ended_eof, c.ended_reset,
           c.ended_failed, c.bytes);
    return rc == 0 || rc == -ECANCELED ? 0 : 1;
}
