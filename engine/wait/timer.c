/* SPDX-License-Identifier: MIT */
/*
 * timer.c — timer records (sleeps, later deadlines) in a binary min-heap.
 *
 * A timer costs no SQE: the scheduler passes the nearest deadline to its one
 * io_uring_enter per pass as the wait timeout (IORING_ENTER_EXT_ARG), and
 * fires due timers after the wait. Disarming is a heap removal, with no
 * kernel involvement at all. The records live in their owners' memory; the
 * heap only points at them.
 */
#include "tr_internal.h"

#include <errno.h>

/* The heap holds each timer's key beside its pointer: comparisons read
 * only the array, never the records, which live on tasks' stacks 64 KiB
 * apart (a TLB miss each). */
static bool before(const struct tr__heap_ent *a, const struct tr__heap_ent *b)
{
    /* Ties go to the earlier armed, so equal deadlines fire in order. */
    if (a->deadline_ns != b->deadline_ns)
        return a->deadline_ns < b->deadline_ns;
    return a->seq < b->seq;
}

static void heap_set(tr_engine *e, uint32_t i, struct tr__heap_ent ent)
{
    e->tm.heap[i] = ent;
    ent.tm->heap_idx = i;
}

static void sift_up(tr_engine *e, uint32_t i)
{
    struct tr__heap_ent t = e->tm.heap[i];
    while (i > 0) {
        uint32_t parent = (i - 1) / 2;
        if (!before(&t, &e->tm.heap[parent]))
            break;
        heap_set(e, i, e->tm.heap[parent]);
        i = parent;
    }
    heap_set(e, i, t);
}

static void sift_down(tr_engine *e, uint32_t i)
{
    struct tr__heap_ent t = e->tm.heap[i];
    for (;;) {
        uint32_t l = 2 * i + 1, r = l + 1, m = i;
        const struct tr__heap_ent *best = &t;
        if (l < e->tm.len && before(&e->tm.heap[l], best)) {
            m = l;
            best = &e->tm.heap[l];
        }
        if (r < e->tm.len && before(&e->tm.heap[r], best))
            m = r;
        if (m == i)
            break;
        heap_set(e, i, e->tm.heap[m]);
        i = m;
    }
    heap_set(e, i, t);
}

int tr__timer_arm(tr_engine *e, struct tr__timer *t, uint64_t deadline_ns)
{
    TR_ASSERT(!tr__timer_armed(t));
    TR_ASSERT(t->fire != NULL);
    if (e->tm.len == e->tm.cap) {
        uint32_t cap = e->tm.cap ? e->tm.cap * 2 : 64;
        if (cap <= e->tm.cap || TR_FAULT(TR_FS_ALLOC)) /* 2^31: more than memory holds */
            return -ENOMEM;
        struct tr__heap_ent *h = realloc(e->tm.heap, (size_t)cap * sizeof(*h));
        if (!h)
            return -ENOMEM;
        e->tm.heap = h;
        e->tm.cap = cap;
    }
    t->deadline_ns = deadline_ns;
    t->seq = ++e->tm.seq;
    uint32_t i = e->tm.len++;
    heap_set(e, i, (struct tr__heap_ent){deadline_ns, t->seq, t});
    sift_up(e, i);
    return 0;
}

void tr__timer_disarm(tr_engine *e, struct tr__timer *t)
{
    uint32_t i = t->heap_idx;
    TR_ASSERT(i < e->tm.len);
    TR_ASSERT(e->tm.heap[i].tm == t);
    t->heap_idx = UINT32_MAX;
    e->tm.len--;
    if (i == e->tm.len)
        return;
    heap_set(e, i, e->tm.heap[e->tm.len]);
    /* The moved element may belong above or below its new place. */
    if (i > 0 && before(&e->tm.heap[i], &e->tm.heap[(i - 1) / 2]))
        sift_up(e, i);
    else
        sift_down(e, i);
}

unsigned tr__timer_expire(tr_engine *e, uint64_t now_ns)
{
    unsigned n = 0;
    /* Bounded by the heap's length at the start: each round disarms one
     * timer, and a timer fired here may not re-arm itself for a deadline
     * that has passed already (fire runs in the scheduler; re-arming is the
     * owner's, after it ran). */
    for (uint32_t max = e->tm.len; n < max && e->tm.len > 0; n++) {
        struct tr__timer *t = e->tm.heap[0].tm;
        if (e->tm.heap[0].deadline_ns > now_ns)
            break;
        tr__timer_disarm(e, t);
        t->fire(e, t);
    }
    return n;
}

uint64_t tr__timer_next_ns(const tr_engine *e, uint64_t now_ns)
{
    if (e->tm.len == 0)
        return UINT64_MAX;
    uint64_t d = e->tm.heap[0].deadline_ns;
    return d > now_ns ? d - now_ns : 0;
}

void tr__timer_free(tr_engine *e)
{
    TR_ASSERT(e->tm.len == 0);
    free(e->tm.heap);
    e->tm.heap = NULL;
    e->tm.cap = 0;
}
