/* SPDX-License-Identifier: MIT */
/*
 * watchdog.c — the progress thread: a progress line each second, and the
 * hang detector. A round that lasts over WATCHDOG_S seconds is reported as
 * a hang (with tr_engine_dump of the stuck engine), and the run exits 1.
 * The thread blocks every signal (main.c creates it so), and reads only
 * the atomic counters, but for the dump of an engine that is stuck anyway.
 */
#include "stress.h"

#include <inttypes.h>
#include <stdio.h>
#include <unistd.h>

/* The hang: its violation, the engine's tasks, the run's summary; then
 * the tool's directory removed and _exit(1) (the engine's thread is
 * stuck, nothing else can end the run). */
static void report_hang(uint64_t now, uint64_t rs)
{
    printf("VIOLATION: hang: round %" PRIu64 " has run for %.1f s (round %" PRIu64 ", seed %" PRIu64
           ")\n",
           atomic_load(&g_round), (double)(now - rs) / 1e9, atomic_load(&g_round), g_seed);
    fflush(stdout);
    tr_engine *e = atomic_load(&g_engine);
    if (e) /* racy, but the engine is stuck: better than nothing */
        tr_engine_dump(e, STDOUT_FILENO);
    printf("stress: seed %" PRIu64 " rounds %" PRIu64 " ops %" PRIu64 " cancels %" PRIu64
           " shutdowns %" PRIu64 " signals %" PRIu64 " violations 1 in %.1fs\n",
           g_seed, atomic_load(&g_round), atomic_load(&g_ops), atomic_load(&g_cancels),
           atomic_load(&g_shutdowns), atomic_load(&g_signals), (double)(now - g_t_start) / 1e9);
    fflush(stdout);
    cleanup_dir();
    rmdir(g_dir);
    _exit(1);
}

void *progress_main(void *arg)
{
    (void)arg;
    /* Bounded: a line a second for 100,000,000 s; g_stop ends it first. */
    for (unsigned long i = 0; !atomic_load(&g_stop) && i < 100000000ul; i++) {
        for (int k = 0; k < 10 && !atomic_load(&g_stop); k++)
            sleep_ms(100);
        if (atomic_load(&g_stop))
            break;
        uint64_t now = now_ns();
        printf("stress: %6.1f s  round %" PRIu64 "  tasks %" PRIu64 "  ops %" PRIu64
               "  cancels %" PRIu64 "  shutdowns %" PRIu64 "  signals %" PRIu64 "\n",
               (double)(now - g_t_start) / 1e9, atomic_load(&g_round), atomic_load(&g_tasks),
               atomic_load(&g_ops), atomic_load(&g_cancels), atomic_load(&g_shutdowns),
               atomic_load(&g_signals));
        fflush(stdout);
        uint64_t rs = atomic_load(&g_round_start);
        if (rs && now - rs > (uint64_t)WATCHDOG_S * 1000 * MS)
            report_hang(now, rs);
    }
    return NULL;
}
