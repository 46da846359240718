/* SPDX-License-Identifier: MIT */
/*
 * Description: the engine's timing wheel (engine/wait/timer.c), white-box,
 * driven with a synthetic clock: a timer never fires before its deadline
 * and has fired once the clock is a tick past it, on every level and in
 * the overflow list; equal deadlines fire in arming order, also when one
 * was cascaded from a higher level; disarm and move; the next-deadline
 * hint never sleeps past a due timer; and a seeded random walk of arms,
 * moves, disarms and clock jumps checked against a plain list after every
 * step. No real time passes: expire is called with chosen clocks.
 */
#define _GNU_SOURCE
#include "tr_test.h"

#include <stdlib.h>

#define TICK_NS (1ull << TR_TICK_SHIFT)

struct ttimer {
    struct tr__timer tm;
    uint64_t deadline;
    uint64_t due;      /* the deadline, or the clock when it was armed if later */
    uint64_t fired_at; /* the clock passed to the expire that fired it; 0: not fired */
    int order;         /* the position among fired timers */
    bool armed;        /* the model's view */
};

static uint64_t g_now;
static int g_fired;

static void tfire(tr_engine *e, struct tr__timer *tm)
{
    (void)e;
    struct ttimer *t = tr__container_of(tm, struct ttimer, tm);
    assert_int_equal(t->fired_at, 0);
    assert_false(tr__timer_armed(tm));
    t->fired_at = g_now;
    t->order = g_fired++;
    t->armed = false;
}

static tr_engine *wheel_engine(void)
{
    struct tr_config cfg;
    tr_config_init(&cfg);
    cfg.flags |= TR_CFG_NO_SIGNALS;
    cfg.report_fd = -1;
    g_fired = 0;
    tr_engine *e = eng_new(&cfg);
    /* The synthetic clock starts a second after the real one: arming into
     * an empty wheel reads the real (coarse) clock, which stays behind. */
    g_now = tr__now_ns() + 1000000000ull;
    return e;
}

static void arm(tr_engine *e, struct ttimer *t, uint64_t deadline)
{
    tr__timer_init(&t->tm, tfire);
    t->deadline = deadline;
    t->due = deadline > g_now ? deadline : g_now;
    t->fired_at = 0;
    t->armed = true;
    assert_int_equal(tr__timer_arm(e, &t->tm, deadline), 0);
}

static void advance(tr_engine *e, uint64_t now)
{
    assert_true(now >= g_now);
    g_now = now;
    (void)tr__timer_expire(e, now);
}

/* After expire(g_now): fired ones were due; armed ones are not a tick
 * late; the hint does not sleep past the earliest armed deadline's tick. */
static void check_all(tr_engine *e, struct ttimer *ts, size_t n)
{
    uint64_t earliest = UINT64_MAX;
    uint32_t armed = 0;
    for (size_t i = 0; i < n; i++) {
        struct ttimer *t = &ts[i];
        if (t->fired_at) {
            assert_true(t->fired_at >= t->deadline); /* never early */
            continue;
        }
        if (!t->armed)
            continue;
        armed++;
        assert_true(tr__timer_armed(&t->tm));
        /* Due a whole tick ago: must have fired (a deadline that had
         * passed when it was armed is due from then). */
        if (t->due <= UINT64_MAX - TICK_NS)
            assert_false(t->due + TICK_NS <= g_now);
        if (t->due < earliest)
            earliest = t->due;
    }
    assert_int_equal(e->tm.len, armed);
    uint64_t hint = tr__timer_next_ns(e, g_now);
    if (armed == 0) {
        assert_true(hint == UINT64_MAX);
    } else if (earliest < UINT64_MAX - 2 * TICK_NS) {
        /* Woken by then, the earliest is due (deadline rounded up to its
         * tick's end): the hint never oversleeps it. */
        uint64_t due = ((earliest >> TR_TICK_SHIFT) + 1) << TR_TICK_SHIFT;
        assert_true(g_now + hint <= (due > g_now ? due : g_now));
    }
}

static void drain(tr_engine *e, struct ttimer *ts, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (tr__timer_armed(&ts[i].tm))
            tr__timer_disarm(e, &ts[i].tm);
    assert_int_equal(e->tm.len, 0);
    assert_int_equal(tr_engine_destroy(e), 0);
}

/* One timer on every level, the overflow list and "never": a walk of the
 * clock in growing jumps fires each in its tick. */
static void test_timer_every_level(void **state)
{
    (void)state;
    tr_engine *e = wheel_engine();
    static const uint64_t offs[] = {
        0,
        1,
        16383,
        16384,
        16385,
        1000000,
        64000000,
        999999999,
        60000000000,
        3600000000000,
        86400000000000,
        1300000000000000ull,  /* 15 days: past the top level (13 days) */
        40000000000000000ull, /* 463 days */
    };
    enum { N = sizeof(offs) / sizeof(offs[0]) };
    struct ttimer ts[N + 1];
    memset(ts, 0, sizeof(ts));
    uint64_t t0 = g_now;
    for (size_t i = 0; i < N; i++)
        arm(e, &ts[i], t0 + offs[i]);
    arm(e, &ts[N], UINT64_MAX); /* never */
    check_all(e, ts, N + 1);
    /* Jumps from 1 us, growing by 1.5x: each level cascades many times. */
    uint64_t step = 1000;
    while (g_now < t0 + offs[N - 1] + TICK_NS) {
        advance(e, g_now + step);
        check_all(e, ts, N + 1);
        step += step / 2;
    }
    for (size_t i = 0; i < N; i++)
        assert_true(ts[i].fired_at != 0);
    assert_int_equal(ts[N].fired_at, 0); /* never */
    assert_true(tr__timer_armed(&ts[N].tm));
    drain(e, ts, N + 1);
}

/* Equal deadlines fire in arming order: B is armed with A's deadline after
 * A was cascaded from level 2 to a lower one, C after that again. */
static void test_timer_equal_deadlines_in_order(void **state)
{
    (void)state;
    tr_engine *e = wheel_engine();
    struct ttimer ts[3];
    memset(ts, 0, sizeof(ts));
    /* 300 ms or more from here (level 2 or above), in the middle of a
     * level-2 slot (4096 ticks, 67 ms): 2 ms before it, the wheel's time is
     * inside that slot, so A has been cascaded down whatever the clock's
     * start (a deadline in a slot's first 2 ms was not yet, 3% of runs). */
    uint64_t tick = (g_now + 300000000ull) >> TR_TICK_SHIFT, mid = (tick & ~4095ull) + 2048;
    if (mid < tick)
        mid += 4096;
    uint64_t d = mid << TR_TICK_SHIFT;
    arm(e, &ts[0], d);
    unsigned where0 = ts[0].tm.where;
    advance(e, d - 2000000ull); /* 2 ms before: A cascaded down */
    assert_true(ts[0].tm.where < where0);
    arm(e, &ts[1], d);
    advance(e, d - 10000ull); /* 10 us before: A and B in level 0 */
    arm(e, &ts[2], d);
    check_all(e, ts, 3);
    assert_int_equal(g_fired, 0);
    advance(e, d + TICK_NS);
    assert_int_equal(g_fired, 3);
    for (int i = 0; i < 3; i++)
        assert_int_equal(ts[i].order, i);
    drain(e, ts, 3);
}

/* Disarm and move: a disarmed timer never fires, a moved one fires at its
 * new deadline only (earlier or later), and the slots' masks follow. */
static void test_timer_disarm_and_move(void **state)
{
    (void)state;
    tr_engine *e = wheel_engine();
    enum { N = 1000 };
    struct ttimer *ts = calloc(N, sizeof(*ts));
    assert_non_null(ts);
    uint64_t t0 = g_now;
    for (int i = 0; i < N; i++)
        arm(e, &ts[i], t0 + (uint64_t)(i + 1) * 1000000ull); /* 1 ms apart */
    for (int i = 0; i < N; i += 2) {
        tr__timer_disarm(e, &ts[i].tm);
        ts[i].armed = false;
    }
    /* Every third armed timer moves: a third of those earlier, the rest
     * later. */
    for (int i = 1; i < N; i += 6) {
        uint64_t nd = (i % 18 == 1) ? t0 + 500000ull : ts[i].deadline + 5000000000ull;
        tr__timer_move(e, &ts[i].tm, nd);
        ts[i].deadline = ts[i].due = nd;
    }
    check_all(e, ts, N);
    for (uint64_t now = t0; now < t0 + 7000000000ull; now += 3000000ull) {
        advance(e, now);
        check_all(e, ts, N);
    }
    advance(e, t0 + 7000000000ull);
    check_all(e, ts, N);
    for (int i = 0; i < N; i++) {
        if (i % 2 == 0)
            assert_int_equal(ts[i].fired_at, 0);
        else
            assert_true(ts[i].fired_at >= ts[i].deadline);
    }
    assert_int_equal(e->tm.len, 0);
    for (unsigned l = 0; l < TR_WHEEL_LEVELS; l++)
        assert_int_equal(e->tm.occupied[l], 0);
    drain(e, ts, N);
    free(ts);
}

/* A timer armed for a deadline that has passed is due at the next expiry
 * a tick on, never lost behind the wheel's time. */
static void test_timer_past_deadline(void **state)
{
    (void)state;
    tr_engine *e = wheel_engine();
    struct ttimer ts[2];
    memset(ts, 0, sizeof(ts));
    arm(e, &ts[0], g_now + 5000000ull); /* keeps the wheel non-empty */
    advance(e, g_now + 1000000ull);
    arm(e, &ts[1], g_now - 500000ull); /* 0.5 ms in the past */
    assert_int_equal(tr__timer_next_ns(e, g_now) <= TICK_NS, true);
    advance(e, g_now + TICK_NS);
    assert_true(ts[1].fired_at != 0);
    assert_int_equal(ts[0].fired_at, 0);
    drain(e, ts, 2);
}

/* A seeded random walk against the model: arms (deadlines from 0 to
 * 30 days ahead, some in the past), moves, disarms and clock jumps from
 * nothing to hours; every step checked. */
static void test_timer_random_walk(void **state)
{
    (void)state;
    tr_engine *e = wheel_engine();
    enum { N = 512, STEPS = 60000 };
    struct ttimer *ts = calloc(N, sizeof(*ts));
    assert_non_null(ts);
    for (int i = 0; i < N; i++)
        tr__timer_init(&ts[i].tm, tfire);
    unsigned seed = 20261207;
    static const uint64_t scale[] = {
        0, 20000, 1000000, 100000000, 10000000000ull, 3600000000000ull, 2592000000000000ull};
    enum { NS = sizeof(scale) / sizeof(scale[0]) };
    for (int s = 0; s < STEPS; s++) {
        int i = rand_r(&seed) % N;
        struct ttimer *t = &ts[i];
        int op = rand_r(&seed) % 10;
        uint64_t span = scale[rand_r(&seed) % NS];
        uint64_t r = span ? ((uint64_t)rand_r(&seed) << 31 ^ (uint64_t)rand_r(&seed)) % span : 0;
        if (op < 4) { /* arm or move */
            uint64_t d = (rand_r(&seed) % 16 == 0 && g_now > r) ? g_now - r : g_now + r;
            if (tr__timer_armed(&t->tm)) {
                tr__timer_move(e, &t->tm, d);
            } else {
                t->fired_at = 0;
                assert_int_equal(tr__timer_arm(e, &t->tm, d), 0);
            }
            t->deadline = d;
            t->due = d > g_now ? d : g_now;
            t->armed = true;
        } else if (op < 6) { /* disarm */
            if (tr__timer_armed(&t->tm)) {
                tr__timer_disarm(e, &t->tm);
                t->armed = false;
            }
        } else { /* the clock moves (small jumps are the common case) */
            advance(e, g_now + (op < 9 ? r / 64 : r));
            check_all(e, ts, N);
        }
    }
    check_all(e, ts, N);
    drain(e, ts, N);
    free(ts);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_timer_every_level),     T(test_timer_equal_deadlines_in_order),
        T(test_timer_disarm_and_move), T(test_timer_past_deadline),
        T(test_timer_random_walk),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
