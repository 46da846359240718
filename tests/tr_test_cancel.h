/* SPDX-License-Identifier: MIT */
/*
 * Shared by the test_cancel_*.c suites, cancellation (DESIGN G4, G5,
 * section 3): running an engine to its audited end, and a seeded PRNG for
 * the races. Header-only, like tr_test.h; each suite is one translation unit.
 *
 * White-box where it buys determinism: tests read tr_task.state/wait (from
 * tr_internal.h) to know that a task is parked before they cancel it, instead
 * of sleeping.
 */
#ifndef TR_TEST_CANCEL_H
#define TR_TEST_CANCEL_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* pipe2, accept4, strsignal */
#endif

#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "tr_test.h"
#include "tr_internal.h"

/* ------------------------------------------------------------ helpers */

/* Runs e to the end, then: no failed task check, the G2 audit, destroy. */
static inline void eng_finish(tr_engine *e)
{
    assert_int_equal(tr_engine_run(e), 0);
    tr_test_assert_clean();
    tr_test_assert_quiescent(e);
    assert_int_equal(tr_engine_destroy(e), 0);
}

/* xorshift64*: a fixed seed makes every run replay the same interleavings. */
static uint64_t prng_state;
static inline uint64_t prng(void)
{
    uint64_t x = prng_state;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    prng_state = x;
    return x * 0x2545F4914F6CDD1Dull;
}

#endif
