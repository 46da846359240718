/* SPDX-License-Identifier: MIT */
/*
 * stats.c — the engine's counters, copied out.
 */
#include "tr_internal.h"

#include <errno.h>

int tr_engine_stats(const tr_engine *e, struct tr_stats *out)
{
    if (!e || !out)
        return -EINVAL;
    *out = e->st;
    out->tasks_live = e->sch.live;
    out->ops_inflight = e->ops.inflight;
    out->timers_pending = e->tm.len;
    out->engine_ops_inflight = e->sw.inflight;
    out->posts_failed = e->ib.posts_failed;
    if (e->rs.ready)
        out->cq_overflows = tr__ring_overflow_count(e);
    return 0;
}
