/* SPDX-License-Identifier: MIT */
/*
 * taskring-load — a load generator for taskring-echo, on taskring itself.
 *
 *   taskring-load [--addr A] [--port N] [--conns C] [--seconds S] [--help] [--version]
 *
 * C client tasks (default 200) each keep one connection to A:N (default
 * 127.0.0.1:7777; A an IPv4 or IPv6 literal) busy with 64-byte messages,
 * checking every echoed byte, until the server ends them (S = 0, the
 * default), or S seconds pass (each client then closes after its next
 * round trip), or Ctrl+C.
 *
 * It is also the checker of a graceful server shutdown: each client that
 * the server ends reads on past the goodbye to the end of the stream, and
 * the last line counts per client how it ended:
 *
 *   taskring-load: 100 clients (100 connected): 123 round trips verified,
 *   0 mismatches; 100 read the goodbye; ended: 100 by the server's orderly
 *   EOF, 0 reset by peer, 0 stopped by us, 0 failed
 *
 * (one line). Exit status 0 when nothing was wrong (no mismatch, no reset,
 * no failure), 1 otherwise, 2 for a bad command line.
 */
#include "cli.h"
#include "echo.h"
#include "taskring.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static unsigned conns = 200;
static unsigned seconds;

static int progress(void *arg)
{
    (void)arg;
    uint64_t last = 0;
    /* One pass per half second until load_main cancels it. */
    for (unsigned tick = 1;; tick++) {
        int r = tr_sleep_ns(500ull * 1000000ull);
        if (r < 0)
            return r;
        uint64_t v = load_counters.verified;
        printf("taskring-load: %5.1f s  connected %3" PRIu64 "  %8.0f msg/s\n", tick * 0.5,
               (uint64_t)load_counters.live, (double)(v - last) * 2.0);
        fflush(stdout);
        last = v;
        if (seconds && tick >= seconds * 2)
            load_counters.stop = 1;
    }
}

static unsigned spawned;

static int load_main(void *arg)
{
    (void)arg;
    tr_task **c = calloc(conns, sizeof(*c));
    tr_task *p;
    struct tr_spawn_opts po = {.name = "progress"};
    if (!c || tr_spawn(NULL, &p, progress, NULL, &po) < 0) {
        free(c);
        return -ENOMEM;
    }
    for (unsigned i = 0; i < conns; i++)
        if (tr_spawn(NULL, &c[spawned], echo_client, (void *)(uintptr_t)i, NULL) == 0)
            spawned++;
    /* Each client counts its own ending. A Ctrl+C cancels us here: the
     * joins then fail fast, the shutdown cancels the clients, and main
     * prints the counts once tr_run has returned, when all have ended. */
    for (unsigned i = 0; i < spawned; i++)
        if (tr_join(c[i], NULL) < 0)
            tr_detach(c[i]);
    tr_cancel(p);
    if (tr_join(p, NULL) < 0)
        tr_detach(p);
    free(c);
    return 0;
}

int main(int argc, char **argv)
{
    const char *addr = "127.0.0.1";
    unsigned port = 7777;
    const struct cli_opt opts[] = {
        {"addr", "A", CLI_ADDR, 0, 0, &addr, 0,
         "connect to the IPv4 or IPv6 literal A (127.0.0.1)"},
        {"port", "N", CLI_UINT, 1, 65535, &port, 0, "connect to port N (7777)"},
        {"conns", "C", CLI_UINT, 1, 1000000, &conns, 0, "C client connections (200)"},
        {"seconds", "S", CLI_UINT, 0, 86400, &seconds, 0,
         "stop after S seconds; 0: when the server ends them (0)"},
    };
    const struct cli_prog prog = {
        "taskring-load", "A load generator and shutdown checker for taskring-echo.", opts,
        sizeof(opts) / sizeof(opts[0]),
        "The last line counts per client: goodbye read, ended by the server's EOF or\n"
        "by a reset, stopped, failed. Exit status: 0 clean, 1 a mismatch, reset or\n"
        "failure, 2 bad usage.\n"};
    int ex = cli_parse(&prog, argc, argv, stdout, stderr);
    if (ex >= 0)
        return ex;
    if (cli_parse_addr(addr, port, &echo_server_addr, &echo_server_addr_len) != 0)
        return 2; /* cli_parse checked it already */
    struct tr_config cfg;
    tr_config_init(&cfg);
    cfg.report_fd = -1;
    int rc = tr_run(load_main, NULL, &cfg);
    if (rc != 0 && rc != -ECANCELED) {
        fprintf(stderr, "taskring-load: %s\n", strerror(-rc));
        return 1;
    }
    struct load_counters *l = &load_counters;
    uint64_t failed = l->failed + (conns - spawned);
    printf("taskring-load: %u clients (%" PRIu64 " connected): %" PRIu64
           " round trips verified, %" PRIu64 " mismatches; %" PRIu64
           " read the goodbye; ended: %" PRIu64 " by the server's orderly EOF, %" PRIu64
           " reset by peer, %" PRIu64 " stopped by us, %" PRIu64 " failed\n",
           conns, (uint64_t)l->connected, (uint64_t)l->verified, (uint64_t)l->mismatches,
           (uint64_t)l->goodbyes, (uint64_t)l->eof, (uint64_t)l->reset, (uint64_t)l->stopped,
           failed);
    return l->mismatches || l->reset || failed ? 1 : 0;
}
