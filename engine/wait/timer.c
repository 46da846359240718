/* SPDX-License-Identifier: MIT */
/*
 * timer.c — timer records (sleeps, scope deadlines) in a hierarchical
 * timing wheel, as the kernel's timer wheel and tokio's.
 *
 * A timer costs no SQE: the scheduler passes the nearest deadline to its one
 * io_uring_enter per pass as the wait timeout (IORING_ENTER_EXT_ARG), and
 * fires due timers after the wait. Arming, moving and disarming are O(1)
 * list operations with no kernel involvement: servers move an idle deadline
 * on every request, with 100k+ timers armed (perf/bench_timers.c measures
 * it against the binary heap this replaced).
 *
 * Geometry: time is counted in ticks of 2^TR_TICK_SHIFT ns (16.4 us).
 * Level l has 64 slots of 64^l ticks each: level 0 covers the current 64
 * ticks (1 ms), level 1 the current 64 ms, ... level 5 13 days. A timer
 * goes to the level of the highest 6-bit digit in which its deadline's
 * tick differs from the wheel's time (elapsed), in the slot that digit
 * names; later than level 5 reaches, to the overflow list.
 *
 * A timer's slot may be earlier than its deadline (tr__timer_move later
 * only writes the new deadline): due slots then put it back instead of
 * firing it. Never later.
 *
 * Invariants (asserted): a timer's slot tick is >= elapsed (earlier ones are
 * clamped to it); at level l > 0 its digit is above elapsed's digit there,
 * at level 0 not below, and it agrees with elapsed on every higher digit.
 * So the lowest non-empty level holds the earliest timers, and in it the
 * lowest non-empty slot (one ctz of a 64-bit mask).
 *
 * Expiry: a level-0 slot fires once its tick has wholly passed, so a timer
 * never fires early and at most one tick late; a higher slot is cascaded
 * (its timers re-inserted, each a level lower at least) when elapsed
 * reaches its start. Timers of one slot fire in arming order, and
 * cascading keeps that order: equal deadlines fire in the order they were
 * armed.
 */
#include "tr_internal.h"

#include <errno.h>

#define TICK(ns) ((ns) >> TR_TICK_SHIFT)
#define LEVEL_SHIFT(l) ((unsigned)(l)*TR_WHEEL_BITS)

void tr__timers_init(tr_engine *e)
{
    struct tr__timers *w = &e->tm;
    w->len = 0;
    w->elapsed = TICK(tr__now_ns());
    w->next_due = UINT64_MAX;
    for (unsigned i = 0; i <= TR_WHEEL_OVERFLOW; i++)
        tr__list_init(&w->slot[i]);
    for (unsigned l = 0; l < TR_WHEEL_LEVELS; l++)
        w->occupied[l] = 0;
}

/* Where a timer of tick dt (>= elapsed) goes. */
static unsigned slot_for(const struct tr__timers *w, uint64_t dt)
{
    uint64_t masked = (dt ^ w->elapsed) | (TR_WHEEL_SLOTS - 1);
    unsigned level = (63u - (unsigned)__builtin_clzll(masked)) / TR_WHEEL_BITS;
    if (level >= TR_WHEEL_LEVELS)
        return TR_WHEEL_OVERFLOW;
    return level * TR_WHEEL_SLOTS + (unsigned)((dt >> LEVEL_SHIFT(level)) & (TR_WHEEL_SLOTS - 1));
}

/* The tick at which slot `where` is due: a level-0 slot once its tick
 * has passed, a higher one (cascaded) when elapsed reaches its start, the
 * overflow list when the top level turns over. */
static uint64_t slot_due(const struct tr__timers *w, unsigned where)
{
    if (where == TR_WHEEL_OVERFLOW) {
        unsigned top = LEVEL_SHIFT(TR_WHEEL_LEVELS);
        return ((w->elapsed >> top) + 1) << top;
    }
    unsigned l = where / TR_WHEEL_SLOTS, s = where % TR_WHEEL_SLOTS;
    unsigned sh = LEVEL_SHIFT(l);
    uint64_t start =
        (w->elapsed >> (sh + TR_WHEEL_BITS) << (sh + TR_WHEEL_BITS)) | ((uint64_t)s << sh);
    return l == 0 ? start + 1 : start;
}

static void insert(struct tr__timers *w, struct tr__timer *tm)
{
    uint64_t dt = TICK(tm->deadline_ns);
    if (dt < w->elapsed)
        dt = w->elapsed; /* passed already: due at the next expiry */
    unsigned where = slot_for(w, dt);
    tm->where = (uint16_t)where;
    if (where < TR_WHEEL_OVERFLOW)
        w->occupied[where / TR_WHEEL_SLOTS] |= 1ull << (where % TR_WHEEL_SLOTS);
    tr__list_add_tail(&w->slot[where], &tm->link);
    uint64_t due = slot_due(w, where);
    if (due < w->next_due)
        w->next_due = due;
}

static void unlink_timer(struct tr__timers *w, struct tr__timer *tm)
{
    unsigned where = tm->where;
    TR_ASSERT(where <= TR_WHEEL_OVERFLOW);
    tr__list_del(&tm->link);
    if (where < TR_WHEEL_OVERFLOW && tr__list_empty(&w->slot[where]))
        w->occupied[where / TR_WHEEL_SLOTS] &= ~(1ull << (where % TR_WHEEL_SLOTS));
    tm->where = TR_TIMER_UNARMED;
}

int tr__timer_arm(tr_engine *e, struct tr__timer *tm, uint64_t deadline_ns)
{
    struct tr__timers *w = &e->tm;
    TR_ASSERT(!tr__timer_armed(tm));
    TR_ASSERT(tm->fire != NULL);
    /* An empty wheel's time may lag far behind (nothing expired it): bring
     * it to now, so that the timer lands in a low level. The coarse clock
     * is never ahead of the precise one, so elapsed stays <= now. */
    if (w->len == 0) {
        uint64_t now = TICK(tr__now_coarse_ns());
        if (now > w->elapsed)
            w->elapsed = now;
    }
    tm->deadline_ns = deadline_ns;
    insert(w, tm);
    w->len++;
    return 0;
}

void tr__timer_disarm(tr_engine *e, struct tr__timer *tm)
{
    struct tr__timers *w = &e->tm;
    TR_ASSERT(tr__timer_armed(tm));
    TR_ASSERT(w->len > 0);
    unlink_timer(w, tm);
    w->len--;
}

/* Later: only the deadline changes, and the timer stays in its slot, now
 * early for it: when that slot comes due, a timer not yet due is put back
 * where its deadline belongs instead of firing (expire). An idle timeout
 * reset on every request is then one store, and touches no other timer's
 * record (unlinking touches both neighbours, cold ones at 1M timers).
 * Earlier: moved at once, so it is never late. */
void tr__timer_move(tr_engine *e, struct tr__timer *tm, uint64_t deadline_ns)
{
    if (tr__timer_armed(tm)) {
        if (deadline_ns >= tm->deadline_ns) {
            tm->deadline_ns = deadline_ns;
            return;
        }
        tr__timer_disarm(e, tm);
    }
    (void)tr__timer_arm(e, tm, deadline_ns);
}

/* The earliest non-empty slot: its index (TR_WHEEL_OVERFLOW for the
 * overflow list) and the tick at which it is due — a level-0 slot once
 * its tick has passed, a higher one (cascaded) when elapsed reaches its
 * start. false when no timer is armed. */
static bool earliest(const struct tr__timers *w, unsigned *where, uint64_t *due)
{
    for (unsigned l = 0; l < TR_WHEEL_LEVELS; l++) {
        uint64_t bits = w->occupied[l];
        if (!bits)
            continue;
        unsigned s = (unsigned)__builtin_ctzll(bits);
        uint64_t digit = (w->elapsed >> LEVEL_SHIFT(l)) & (TR_WHEEL_SLOTS - 1);
        /* Below elapsed's digit would be a slot the wheel passed over. */
        TR_ASSERT(l == 0 ? s >= digit : s > digit);
        *where = l * TR_WHEEL_SLOTS + s;
        *due = slot_due(w, *where);
        return true;
    }
    if (tr__list_empty(&w->slot[TR_WHEEL_OVERFLOW]))
        return false;
    /* Re-examined when the top level turns over. */
    *where = TR_WHEEL_OVERFLOW;
    *due = slot_due(w, TR_WHEEL_OVERFLOW);
    return true;
}

unsigned tr__timer_expire(tr_engine *e, uint64_t now_ns)
{
    struct tr__timers *w = &e->tm;
    uint64_t target = TICK(now_ns);
    unsigned fired = 0;
    w->now_ns = now_ns; /* for fire functions that re-arm (scope.c) */
    /* Bounded: each round empties one slot, firing its timers or moving
     * them a level down at least; fired timers are at most the armed ones
     * at the start (a timer fired here that re-arms itself for a deadline
     * that has passed waits for the next pass). */
    uint32_t max = w->len;
    unsigned where;
    uint64_t due;
    for (;;) {
        if (!earliest(w, &where, &due) || due > target) {
            if (target > w->elapsed)
                w->elapsed = target; /* nothing was due before target */
            w->next_due = earliest(w, &where, &due) ? due : UINT64_MAX;
            break;
        }
        if (fired >= max) {
            w->next_due = due; /* elapsed stays: the rest is due next pass */
            break;
        }
        /* Take the slot's list whole: what is armed meanwhile goes to a
         * fresh list and is seen by the next round. */
        struct tr__link list;
        tr__list_init(&list);
        struct tr__link *head = &w->slot[where];
        if (!tr__list_empty(head)) {
            list.next = head->next;
            list.prev = head->prev;
            list.next->prev = &list;
            list.prev->next = &list;
            tr__list_init(head);
        }
        if (where < TR_WHEEL_OVERFLOW)
            w->occupied[where / TR_WHEEL_SLOTS] &= ~(1ull << (where % TR_WHEEL_SLOTS));
        bool fire = where < TR_WHEEL_SLOTS;
        /* The slot's start: where the wheel's time now is. */
        uint64_t start = fire ? due - 1 : due;
        TR_ASSERT(start >= w->elapsed);
        w->elapsed = start;
        while (!tr__list_empty(&list)) {
            struct tr__timer *tm = tr__container_of(list.next, struct tr__timer, link);
            tr__list_del(&tm->link);
            if (fire && TICK(tm->deadline_ns) > start) {
                insert(w, tm); /* moved later since it was put here: not due */
                TR_ASSERT(tm->where != where);
            } else if (fire) {
                TR_ASSERT(tm->deadline_ns < (target << TR_TICK_SHIFT));
                tm->where = TR_TIMER_UNARMED;
                w->len--;
                fired++;
                tm->fire(e, tm);
            } else {
                /* Cascaded: a lower level (a higher one or overflow again
                 * when its deadline was moved later meanwhile). */
                insert(w, tm);
                TR_ASSERT(tm->where != where || where == TR_WHEEL_OVERFLOW);
            }
        }
    }
    return fired;
}

/* One slot's list: drop unlinks only the timer it is given (the next is
 * taken first). */
static bool drop_list(tr_engine *e, struct tr__link *head,
                      bool (*drop)(tr_engine *e, struct tr__timer *tm))
{
    for (struct tr__link *l = head->next, *n; l != head; l = n) {
        n = l->next;
        if (!drop(e, tr__container_of(l, struct tr__timer, link)))
            return false;
    }
    return true;
}

bool tr__timers_drop_while(tr_engine *e, bool (*drop)(tr_engine *e, struct tr__timer *tm))
{
    struct tr__timers *w = &e->tm;
    for (unsigned l = 0; l < TR_WHEEL_LEVELS; l++) {
        /* The slots occupied now: a drop only empties them. */
        for (uint64_t bits = w->occupied[l]; bits; bits &= bits - 1) {
            unsigned where = l * TR_WHEEL_SLOTS + (unsigned)__builtin_ctzll(bits);
            if (!drop_list(e, &w->slot[where], drop))
                return false;
        }
    }
    return drop_list(e, &w->slot[TR_WHEEL_OVERFLOW], drop);
}

uint64_t tr__timer_next_ns(const tr_engine *e, uint64_t now_ns)
{
    unsigned where;
    uint64_t due;
    if (e->tm.len == 0)
        return UINT64_MAX;
    if (!earliest(&e->tm, &where, &due))
        return UINT64_MAX;
    if (due >= (UINT64_MAX >> TR_TICK_SHIFT))
        return UINT64_MAX;
    uint64_t d = due << TR_TICK_SHIFT;
    return d > now_ns ? d - now_ns : 0;
}

void tr__timer_free(tr_engine *e)
{
    TR_ASSERT(e->tm.len == 0);
}
