/*
 * taskring-load — a load generator for taskring-echo, on taskring itself.
 *
 *   taskring-load [--port N] [--conns C] [--seconds S]
 *
 * C client tasks (default 200) each keep one connection busy with 64-byte
 * messages, checking every echoed byte, until the server says goodbye, or S
 * seconds pass (0, the default: until the server ends them), or Ctrl+C.
 */
#include "echo.h"
#include "taskring.h"

#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static unsigned conns = 200;
static unsigned seconds;

static int progress(void *arg)
{
    (void)arg;
    uint64_t last = 0;
    for (unsigned tick = 1;; tick++) {
        int r = tr_sleep_ns(500ull * 1000000ull);
        if (r < 0)
            return r;
        uint64_t v = load_counters.verified;
        printf("taskring-load: %5.1f s  connected %3" PRIu64 "  %8.0f msg/s\n", tick * 0.5,
               (uint64_t)load_counters.connected - load_counters.ended_by_server,
               (double)(v - last) * 2.0);
        fflush(stdout);
        last = v;
        if (seconds && tick >= seconds * 2)
            load_counters.stop = 1;
    }
}

static int load_main(void *arg)
{
    (void)arg;
    tr_task **c = calloc(conns, sizeof(*c));
    tr_task *p;
    struct tr_spawn_opts po = {.name = "progress"};
    if (!c || tr_spawn(NULL, &p, progress, NULL, &po) < 0)
        return -ENOMEM;
    unsigned n = 0;
    for (unsigned i = 0; i < conns; i++)
        if (tr_spawn(NULL, &c[n], echo_client, (void *)(uintptr_t)i, NULL) == 0)
            n++;
    unsigned failed = 0;
    for (unsigned i = 0; i < n; i++) {
        int res = 0;
        if (tr_join(c[i], &res) < 0 || res < 0)
            failed++;
    }
    tr_cancel(p);
    tr_join(p, NULL);
    free(c);
    printf("taskring-load: %u clients, %" PRIu64 " round trips verified, %" PRIu64
           " mismatches, %" PRIu64 " ended by the server, %u failed\n",
           n, (uint64_t)load_counters.verified, (uint64_t)load_counters.mismatches,
           (uint64_t)load_counters.ended_by_server, failed);
    return load_counters.mismatches ? -EBADMSG : 0;
}

int main(int argc, char **argv)
{
    int port = 7777;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--port") && i + 1 < argc)
            port = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--conns") && i + 1 < argc)
            conns = (unsigned)atoi(argv[++i]);
        else if (!strcmp(argv[i], "--seconds") && i + 1 < argc)
            seconds = (unsigned)atoi(argv[++i]);
        else {
            fprintf(stderr, "usage: taskring-load [--port N] [--conns C] [--seconds S]\n");
            return 2;
        }
    }
    echo_server_addr.sin_family = AF_INET;
    echo_server_addr.sin_port = htons((uint16_t)port);
    echo_server_addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    struct tr_config cfg;
    tr_config_init(&cfg);
    cfg.report_fd = -1;
    int rc = tr_run(load_main, NULL, &cfg);
    return rc == 0 || rc == -ECANCELED ? 0 : 1;
}
