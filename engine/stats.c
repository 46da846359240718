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
    out->timers_pending = e->heap_len;
    out->engine_ops_inflight = e->internal_inflight;
    if (e->ring_ready)
        out->cq_overflows = tr__ring_overflow_count(e);
    return 0;
}
