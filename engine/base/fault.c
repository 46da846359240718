/* SPDX-License-Identifier: MIT */
/*
 * fault.c — the fault-injection seam (SQLite's countdown, TigerBeetle's
 * seeded faults). Compiled into the library only with TR_FAULT_INJECTION
 * (the taskring_fault target the fault suite links); the release
 * libraries contain none of it and the call sites compile to nothing.
 *
 * A plan names the sites to fail (a bit mask of enum tr__fault_site), a
 * countdown (the Nth call at an armed site fails) and a burst (how many
 * consecutive armed calls fail from then on; 0: all of them). Calls are
 * counted per site so a test can step the countdown through every one.
 */
#include "tr_internal.h"

#if defined(TR_FAULT_INJECTION)

#include <errno.h>
#include <string.h>

static struct {
    unsigned mask;
    uint64_t countdown;
    uint64_t burst_left;
    bool unlimited;
    int submit_err;
    int cqe_mode;
    uint64_t calls[TR_FS__COUNT];
    uint64_t injected;
} plan;

void tr__fault_arm(unsigned sites, uint64_t countdown, uint64_t burst, int submit_err, int cqe_mode)
{
    memset(&plan, 0, sizeof(plan));
    plan.mask = sites;
    plan.countdown = countdown;
    plan.burst_left = burst;
    plan.unlimited = burst == 0;
    plan.submit_err = submit_err ? submit_err : -EBUSY;
    plan.cqe_mode = cqe_mode;
}

void tr__fault_disarm(void)
{
    plan.mask = 0;
}

uint64_t tr__fault_calls(enum tr__fault_site site)
{
    return plan.calls[site];
}

uint64_t tr__fault_injected(void)
{
    return plan.injected;
}

bool tr__fault(enum tr__fault_site site)
{
    if (!(plan.mask & (1u << site)))
        return false;
    plan.calls[site]++;
    if (plan.countdown > 1) {
        plan.countdown--;
        return false;
    }
    if (plan.countdown == 1)
        plan.countdown = 0; /* reached: fail from here on, for the burst */
    if (!plan.unlimited) {
        if (plan.burst_left == 0)
            return false;
        plan.burst_left--;
    }
    plan.injected++;
    return true;
}

int tr__fault_submit_err(void)
{
    return plan.submit_err;
}

int32_t tr__fault_cqe(const struct tr_op *op, int32_t res)
{
    if (!tr__fault(TR_FS_CQE))
        return res;
    /* Never hide a completed fd: that would leak it (G5 is the engine's
     * promise; the fault layer must not break it itself). */
    if (tr__opdefs[op->opcode].returns_fd && res >= 0)
        return res;
    switch (plan.cqe_mode) {
    case TR_FAULT_CQE_EINTR:
        return -EINTR;
    case TR_FAULT_CQE_SHORT: {
        bool rw = op->opcode == TR_OPC_READ || op->opcode == TR_OPC_WRITE ||
                  op->opcode == TR_OPC_RECV || op->opcode == TR_OPC_SEND;
        return (rw && res > 1) ? res / 2 : res;
    }
    case TR_FAULT_CQE_ECANCELED:
        return -ECANCELED;
    default:
        return res;
    }
}

#endif
