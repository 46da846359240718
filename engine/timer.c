/*
 * timer.c — sleeping tasks live in a binary min-heap on their deadline.
 *
 * A sleep costs no SQE: the scheduler passes the nearest deadline to its one
 * io_uring_enter per pass as the wait timeout (IORING_ENTER_EXT_ARG), and
 * expires due sleepers after the wait. Cancelling a sleeper is a heap
 * removal, with no kernel involvement at all.
 */
#include "tr_internal.h"

#include <errno.h>

static bool before(const tr_task *a, const tr_task *b)
{
    /* Ties go to the earlier task, so equal deadlines wake in spawn order. */
    if (a->deadline_ns != b->deadline_ns)
        return a->deadline_ns < b->deadline_ns;
    return a->id < b->id;
}

static void heap_set(tr_engine *e, uint32_t i, tr_task *t)
{
    e->heap[i] = t;
    t->heap_idx = i;
}

static void sift_up(tr_engine *e, uint32_t i)
{
    tr_task *t = e->heap[i];
    while (i > 0) {
        uint32_t parent = (i - 1) / 2;
        if (!before(t, e->heap[parent]))
            break;
        heap_set(e, i, e->heap[parent]);
        i = parent;
    }
    heap_set(e, i, t);
}

static void sift_down(tr_engine *e, uint32_t i)
{
    tr_task *t = e->heap[i];
    for (;;) {
        uint32_t l = 2 * i + 1, r = l + 1, m = i;
        const tr_task *best = t;
        if (l < e->heap_len && before(e->heap[l], best)) {
            m = l;
            best = e->heap[l];
        }
        if (r < e->heap_len && before(e->heap[r], best))
            m = r;
        if (m == i)
            break;
        heap_set(e, i, e->heap[m]);
        i = m;
    }
    heap_set(e, i, t);
}

int tr__timer_add(tr_engine *e, tr_task *t, uint64_t deadline_ns)
{
    TR_ASSERT(t->heap_idx == UINT32_MAX);
    if (e->heap_len == e->heap_cap) {
        uint32_t cap = e->heap_cap ? e->heap_cap * 2 : 64;
        if (cap <= e->heap_cap || TR_FAULT(TR_FS_ALLOC)) /* 2^31: more than tasks can exist */
            return -ENOMEM;
        tr_task **h = realloc(e->heap, (size_t)cap * sizeof(*h));
        if (!h)
            return -ENOMEM;
        e->heap = h;
        e->heap_cap = cap;
    }
    t->deadline_ns = deadline_ns;
    e->heap[e->heap_len] = t;
    t->heap_idx = e->heap_len++;
    sift_up(e, t->heap_idx);
    return 0;
}

void tr__timer_remove(tr_engine *e, tr_task *t)
{
    uint32_t i = t->heap_idx;
    TR_ASSERT(i < e->heap_len);
    TR_ASSERT(e->heap[i] == t);
    t->heap_idx = UINT32_MAX;
    e->heap_len--;
    if (i == e->heap_len)
        return;
    heap_set(e, i, e->heap[e->heap_len]);
    /* The moved element may belong above or below its new place. */
    if (i > 0 && before(e->heap[i], e->heap[(i - 1) / 2]))
        sift_up(e, i);
    else
        sift_down(e, i);
}

unsigned tr__timer_expire(tr_engine *e, uint64_t now_ns)
{
    unsigned n = 0;
    /* Bounded by the heap's length: each round removes one sleeper. */
    while (e->heap_len > 0 && e->heap[0]->deadline_ns <= now_ns) {
        tr_task *t = e->heap[0];
        tr__timer_remove(e, t);
        TR_ASSERT(t->wait == TR_WAIT_TIMER);
        tr__task_wake(t, 0);
        n++;
    }
    return n;
}

uint64_t tr__timer_next_ns(const tr_engine *e, uint64_t now_ns)
{
    if (e->heap_len == 0)
        return UINT64_MAX;
    uint64_t d = e->heap[0]->deadline_ns;
    return d > now_ns ? d - now_ns : 0;
}

void tr__timer_free(tr_engine *e)
{
    TR_ASSERT(e->heap_len == 0);
    free(e->heap);
    e->heap = NULL;
    e->heap_cap = 0;
}
