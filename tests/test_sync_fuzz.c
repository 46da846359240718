/* SPDX-License-Identifier: MIT */
/*
 * Description: a seeded interleaving fuzzer over every primitive (G9):
 * workers take random steps on two semaphores, two mutexes, a condition,
 * an event and two channels (capacity 0 and 4), most blocking steps
 * inside a scope with a random deadline (often expiring), while other
 * workers cancel those scopes at random and whole workers are cancelled
 * and replaced. Checked: semaphore units are conserved (each worker's
 * holdings plus the count equal the initial count once all have ended), a
 * mutex has one holder at a time and it is its owner, every channel
 * message (numbered) is received at most once and exactly when its send
 * returned 0, and nothing hangs (every wait has a deadline or is woken).
 * test_sync_fuzz_killed: ten shorter runs of stubborn workers ended by
 * the kill rung (grace and kill 0) in the pass a worker handed a grant to
 * a waiter: units conserved counting what the killed held, no mutex left
 * held, every message received once, still queued or counted lost.
 *
 *   TR_FUZZ_SEED (default 20261207), TR_FUZZ_STEPS (default 1,000,000)
 *
 * The seed is printed; a failure names it. Deadlines make the run's
 * interleaving depend on time as well as the seed: what is checked holds
 * for every interleaving.
 */
#define _GNU_SOURCE
#include "tr_harness.h"
#include "tr_test_task.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NW 24 /* workers alive at once */
#define SEM_INIT 3
#define MAXMSG (1u << 21) /* numbered messages per channel, at most */

static uint64_t g_rng;
static uint64_t rnd(void)
{
    g_rng ^= g_rng << 13;
    g_rng ^= g_rng >> 7;
    g_rng ^= g_rng << 17;
    return g_rng;
}
#define R(n) ((unsigned)(rnd() % (n)))

/* Somebody waits on p (white-box: its queue is a list head). */
static bool has_waiters(const struct tr__prim *p)
{
    return p->_q[0] != (const void *)p->_q;
}

struct worker {
    tr_task *t;
    unsigned held[2];     /* semaphore units */
    bool holds[2];        /* mutexes */
    struct tr_scope *cur; /* the scope of its blocking step, for others to cancel */
    unsigned grants;      /* hand-offs to a waiting task it made */
};

static struct {
    struct tr_sem sem[2];
    struct tr_mutex mtx[2];
    tr_task *holder[2];
    struct tr_cond cv;
    struct tr_event ev;
    struct tr_chan *ch[2];
    uint32_t next_seq[2];
    unsigned char *sent[2], *recvd[2];
    struct worker w[NW];
    uint64_t steps, budget;
    uint64_t ok, cut;
    unsigned replaced;
    bool stop;
    bool kill_mode; /* the run ends at the kill rung (test_sync_fuzz_killed) */
    bool sd_sent;   /* ... asked for by a worker, right after it gave a grant */
    int violations;
} F;

#define VIOLATION(...)                                                                             \
    do {                                                                                           \
        if (F.violations++ < 10)                                                                   \
            fprintf(stderr, "sync_fuzz: VIOLATION: " __VA_ARGS__);                                 \
    } while (0)

/* A blocking step's deadline: passed already, or 1-300 us ahead. Every
 * blocking step has one (waits on each other could otherwise close a
 * cycle: a condition's taking back of its mutex is never cut short). */
static uint64_t deadline(void)
{
    return R(4) == 0 ? tr_now_ns() - 1 : tr_now_ns() + 1000 + R(300000);
}

static void count(int r)
{
    if (r == 0)
        F.ok++;
    else if (r == -ECANCELED || r == -ETIMEDOUT)
        F.cut++;
    else
        VIOLATION("unexpected result %d\n", r);
}

static void step(struct worker *me)
{
    unsigned i = R(2);
    struct tr_scope sc;
    bool scoped = R(16) != 0; /* unscoped: only non-blocking steps run (below) */
    if (scoped) {
        TCHECK_EQ(tr_scope_enter(&sc, deadline(), 0), 0);
        me->cur = &sc;
    }
    int r;
    unsigned what = R(12);
    if (!scoped && what != 1 && what != 3 && what != 9 && what != 10)
        what = 11; /* a blocking step: a yield instead */
    switch (what) {
    case 0: /* semaphore acquire */
        r = tr_sem_acquire(&F.sem[i]);
        count(r);
        if (r == 0)
            me->held[i]++;
        break;
    case 1: /* semaphore release */
        if (me->held[i]) {
            me->grants += has_waiters(&F.sem[i]._p);
            TCHECK_EQ(tr_sem_release(&F.sem[i]), 0);
            me->held[i]--;
        } else {
            r = tr_sem_try_acquire(&F.sem[i]);
            if (r == 0)
                me->held[i]++;
        }
        break;
    case 2: /* mutex lock */
        if (me->holds[i])
            break;
        r = tr_mutex_lock(&F.mtx[i]);
        count(r);
        if (r == 0) {
            if (F.holder[i] != NULL || F.mtx[i]._owner != me->t)
                VIOLATION("mutex %u granted twice\n", i);
            F.holder[i] = me->t;
            me->holds[i] = true;
        }
        break;
    case 3: /* mutex unlock */
        if (me->holds[i]) {
            if (F.holder[i] != me->t)
                VIOLATION("mutex %u holder lost\n", i);
            F.holder[i] = NULL;
            me->holds[i] = false;
            me->grants += has_waiters(&F.mtx[i]._p);
            TCHECK_EQ(tr_mutex_unlock(&F.mtx[i]), 0);
        }
        break;
    case 4:
    case 5: { /* channel send */
        uint32_t seq = F.next_seq[i]++;
        if (seq >= MAXMSG) {
            F.stop = true;
            break;
        }
        F.sent[i][seq] = 2; /* in flight: a sender killed in it leaves it so */
        r = tr_chan_send(F.ch[i], &seq);
        if (r != -EPIPE)
            count(r);
        F.sent[i][seq] = r == 0;
        break;
    }
    case 6:
    case 7: { /* channel receive */
        uint32_t seq = 0;
        r = tr_chan_recv(F.ch[i], &seq);
        if (r != -EPIPE)
            count(r);
        if (r == 0) {
            if (seq >= MAXMSG || F.recvd[i][seq]++)
                VIOLATION("channel %u: message %u received twice\n", i, seq);
        }
        break;
    }
    case 8: /* condition wait, mutex 0 held */
        if (!scoped || me->holds[0] || me->holds[1])
            break; /* only with a deadline, and holding no other lock */
        r = tr_mutex_lock(&F.mtx[0]);
        count(r);
        if (r != 0)
            break;
        if (F.holder[0] != NULL)
            VIOLATION("mutex 0 granted twice (cond)\n");
        /* (the wait lets go of it, and takes it back) */
        r = tr_cond_wait(&F.cv, &F.mtx[0]);
        count(r);
        if (F.mtx[0]._owner != me->t || F.holder[0] != NULL)
            VIOLATION("cond wait returned without its mutex (%d)\n", r);
        TCHECK_EQ(tr_mutex_unlock(&F.mtx[0]), 0);
        break;
    case 9: /* signal, broadcast, event */
        switch (R(5)) {
        case 0:
            me->grants += has_waiters(&F.cv._p);
            TCHECK_EQ(tr_cond_signal(&F.cv), 0);
            break;
        case 1:
            TCHECK_EQ(tr_cond_broadcast(&F.cv), 0);
            break;
        case 2:
            TCHECK_EQ(tr_event_set(&F.ev), 0);
            break;
        case 3:
            TCHECK_EQ(tr_event_clear(&F.ev), 0);
            break;
        default:
            if (scoped)
                count(tr_event_wait(&F.ev));
            break;
        }
        break;
    case 10: { /* cancel another worker's step */
        struct worker *o = &F.w[R(NW)];
        if (o != me && o->cur)
            (void)tr_scope_cancel(o->cur);
        break;
    }
    default:
        r = tr_yield();
        if (r != 0)
            count(r);
        break;
    }
    if (scoped) {
        me->cur = NULL;
        int x = tr_scope_exit(&sc);
        if (x != 0 && x != -ECANCELED && x != -ETIMEDOUT)
            VIOLATION("scope exit %d\n", x);
    }
}

/* A worker lets go of what it holds: never cut short. */
static void let_go(struct worker *me)
{
    for (unsigned i = 0; i < 2; i++) {
        while (me->held[i]) {
            TCHECK_EQ(tr_sem_release(&F.sem[i]), 0);
            me->held[i]--;
        }
        if (me->holds[i]) {
            F.holder[i] = NULL;
            me->holds[i] = false;
            TCHECK_EQ(tr_mutex_unlock(&F.mtx[i]), 0);
        }
    }
}

static int fn_worker(void *p)
{
    struct worker *me = p;
    if (F.kill_mode) {
        /* Cancelled from the start, it ignores that: each step in a shield
         * (which holds until the kill rung's pass, grace 0), a yield
         * between steps (-ECANCELED: delivered, so the rung may kill it
         * in any wait). Bounded by the budget. */
        while (!F.stop && F.steps < F.budget) {
            F.steps++;
            (void)tr_yield();
            tr_shield_begin();
            unsigned grants = me->grants;
            step(me);
            tr_shield_end();
            /* Its step handed something to a waiter, which is now woken
             * and has not run: the shutdown (grace and kill 0) kills it
             * there, in this pass. */
            if (!F.sd_sent && me->grants != grants && F.steps >= F.budget / 2) {
                F.sd_sent = true;
                TCHECK_EQ(tr_engine_shutdown(tr_self_engine()), 0);
            }
        }
        let_go(me);
        return 0;
    }
    /* Bounded by the step budget; a cancelled worker stops at once. */
    while (!F.stop && F.steps < F.budget && !tr_shutting_down()) {
        F.steps++;
        step(me);
        if (tr__task_cancelled(me->t))
            break;
    }
    let_go(me);
    return 0;
}

/* The primitives every worker steps on. */
static void world_init(void)
{
    for (unsigned i = 0; i < 2; i++) {
        TCHECK_EQ(tr_sem_init(&F.sem[i], SEM_INIT), 0);
        TCHECK_EQ(tr_mutex_init(&F.mtx[i]), 0);
        TCHECK_EQ(tr_chan_create(&F.ch[i], sizeof(uint32_t), i ? 4 : 0, 0), 0);
    }
    TCHECK_EQ(tr_cond_init(&F.cv), 0);
    TCHECK_EQ(tr_event_init(&F.ev), 0);
}

static int fn_fuzz(void *p)
{
    (void)p;
    world_init();
    for (unsigned k = 0; k < NW; k++)
        TCHECK_EQ(tr_spawn(NULL, &F.w[k].t, fn_worker, &F.w[k], NULL), 0);
    /* Now and then a worker is cancelled and replaced. Bounded by the
     * budget: each round waits for steps to be taken. */
    while (!F.stop && F.steps < F.budget) {
        TCHECK_EQ(tr_sleep_ns(200000), 0);
        unsigned k = R(NW);
        int cr = tr_cancel(F.w[k].t);
        TCHECK(cr == 0 || cr == -ESRCH); /* -ESRCH: it ended (the budget) */
        TCHECK_EQ(tr_join(F.w[k].t, NULL), 0);
        struct worker fresh = {0};
        F.w[k] = fresh;
        TCHECK_EQ(tr_spawn(NULL, &F.w[k].t, fn_worker, &F.w[k], NULL), 0);
        F.replaced++;
    }
    F.stop = true;
    /* Cut every step short (some wait without a deadline, on each other),
     * wake whoever waits on the event or the condition, close the
     * channels. */
    for (unsigned k = 0; k < NW; k++) {
        int cr = tr_cancel(F.w[k].t);
        TCHECK(cr == 0 || cr == -ESRCH);
    }
    TCHECK_EQ(tr_event_set(&F.ev), 0);
    TCHECK_EQ(tr_cond_broadcast(&F.cv), 0);
    for (unsigned i = 0; i < 2; i++)
        TCHECK_EQ(tr_chan_close(F.ch[i]), 0);
    for (unsigned k = 0; k < NW; k++)
        TCHECK_EQ(tr_join(F.w[k].t, NULL), 0);
    /* Conservation. */
    for (unsigned i = 0; i < 2; i++) {
        if (F.sem[i]._count != SEM_INIT)
            VIOLATION("semaphore %u: %u units at the end, %u at the start\n", i, F.sem[i]._count,
                      SEM_INIT);
        if (F.mtx[i]._owner != NULL || F.holder[i] != NULL)
            VIOLATION("mutex %u still held\n", i);
        uint32_t seq;
        while (tr_chan_try_recv(F.ch[i], &seq) == 0)
            if (seq >= MAXMSG || F.recvd[i][seq]++)
                VIOLATION("channel %u: message %u received twice (drain)\n", i, seq);
        uint32_t n = F.next_seq[i] < MAXMSG ? F.next_seq[i] : MAXMSG;
        for (uint32_t s = 0; s < n; s++)
            if (F.recvd[i][s] != F.sent[i][s])
                VIOLATION("channel %u: message %u sent %u, received %u\n", i, s, F.sent[i][s],
                          F.recvd[i][s]);
        TCHECK_EQ(tr_chan_destroy(F.ch[i]), 0);
    }
    return 0;
}

/* ---- the kill rung ---------------------------------------------------------- */

/* The same workers, stubborn (see fn_worker): halfway through the budget
 * the shutdown comes with grace and kill 0, and kills them wherever they
 * are — some granted a unit, a mutex, a signal or a message that they
 * have not yet returned with. The kill rung gives those grants back: the
 * units are conserved counting what the killed workers held, no mutex
 * stays held, and every message sent is received once, still queued, or
 * counted lost (stats.kill_msgs_lost: no room to go back). */
static int fn_fuzz_killed(void *p)
{
    (void)p;
    F.kill_mode = true;
    world_init();
    for (unsigned k = 0; k < NW; k++) {
        TCHECK_EQ(tr_spawn(NULL, &F.w[k].t, fn_worker, &F.w[k], NULL), 0);
        TCHECK_EQ(tr_cancel(F.w[k].t), 0);
        TCHECK_EQ(tr_detach(F.w[k].t), 0);
    }
    /* Bounded by the budget: the workers take steps meanwhile, and one
     * asks for the shutdown. */
    while (!F.stop && !F.sd_sent && F.steps < F.budget)
        if (tr_sleep_ns(100000) != 0)
            break; /* the shutdown, asked for by a worker */
    if (!F.sd_sent)
        TCHECK_EQ(tr_engine_shutdown(tr_self_engine()), 0);
    return 0;
}

/* After the shutdown, in a second run: what the killed workers left. */
static uint64_t g_lost;

static int fn_fuzz_killed_audit(void *p)
{
    (void)p;
    for (unsigned i = 0; i < 2; i++) {
        unsigned held = 0;
        for (unsigned k = 0; k < NW; k++)
            held += F.w[k].held[i];
        if (F.sem[i]._count + held != SEM_INIT)
            VIOLATION("semaphore %u: %u free + %u held by killed workers, %u at the start\n", i,
                      F.sem[i]._count, held, SEM_INIT);
        if (F.mtx[i]._owner != NULL)
            VIOLATION("mutex %u still held after every task ended\n", i);
        uint32_t seq;
        while (tr_chan_try_recv(F.ch[i], &seq) == 0)
            if (seq >= MAXMSG || F.recvd[i][seq]++)
                VIOLATION("channel %u: message %u received twice (drain)\n", i, seq);
        uint32_t n = F.next_seq[i] < MAXMSG ? F.next_seq[i] : MAXMSG;
        for (uint32_t s = 0; s < n; s++) {
            if (F.recvd[i][s] > 1 || (F.recvd[i][s] && !F.sent[i][s]))
                VIOLATION("channel %u: message %u sent %u, received %u\n", i, s, F.sent[i][s],
                          F.recvd[i][s]);
            else if (F.sent[i][s] == 1 && !F.recvd[i][s])
                g_lost++; /* sent, never received: only a counted loss may explain it */
        }
        TCHECK_EQ(tr_chan_destroy(F.ch[i]), 0);
    }
    return 0;
}

/* The run's seed and step budget, from the environment. */
static void fuzz_env(uint64_t *seed, uint64_t *budget)
{
    const char *s = getenv("TR_FUZZ_SEED"), *n = getenv("TR_FUZZ_STEPS");
    *seed = s ? strtoull(s, NULL, 0) : 20261207ull;
    *budget = n ? strtoull(n, NULL, 0) : 1000000ull;
}

/* A fresh run's state: the budget, the generator's start, the message
 * tables. */
static void fuzz_begin(uint64_t budget, uint64_t rng)
{
    memset(&F, 0, sizeof(F));
    F.budget = budget;
    g_rng = rng;
    for (unsigned i = 0; i < 2; i++) {
        F.sent[i] = calloc(MAXMSG, 1);
        F.recvd[i] = calloc(MAXMSG, 1);
        assert_non_null(F.sent[i]);
        assert_non_null(F.recvd[i]);
    }
}

static void fuzz_teardown(void)
{
    for (unsigned i = 0; i < 2; i++) {
        free(F.sent[i]);
        free(F.recvd[i]);
    }
}

static void test_sync_fuzz_killed(void **state)
{
    (void)state;
    uint64_t seed0, steps;
    fuzz_env(&seed0, &steps);
    uint64_t killed = 0, passed = 0;
    uint64_t budget = steps / 10 > 2000 ? steps / 10 : 2000;
    /* Ten short runs: each ends in one kill. */
    for (uint64_t seed = seed0; seed < seed0 + 10; seed++) {
        fuzz_begin(budget, seed * 2654435761u + 7);
        g_lost = 0;
        struct tr_config cfg;
        tr_config_init(&cfg);
        cfg.flags = TR_CFG_NO_SIGNALS;
        cfg.drain_ms = 0;
        cfg.grace_ms = 0;
        cfg.kill_ms = 0;
        cfg.report_fd = -1;
        tr_engine *e = eng_new(&cfg);
        g_e = e;
        assert_int_equal(tr_spawn(e, NULL, fn_fuzz_killed, NULL, NULL), 0);
        assert_int_equal(tr_engine_run(e), 0);
        assert_int_equal(tr_spawn(e, NULL, fn_fuzz_killed_audit, NULL, NULL), 0);
        assert_int_equal(tr_engine_run(e), 0);
        tr_test_assert_clean();
        struct tr_stats st = stats_of(e);
        assert_int_equal(st.tasks_live, 0);
        assert_int_equal(tr_engine_destroy(e), 0);
        g_e = NULL;
        if (g_lost != st.kill_msgs_lost)
            VIOLATION("seed %llu: %llu messages sent and never received, %llu counted lost\n",
                      (unsigned long long)seed, (unsigned long long)g_lost,
                      (unsigned long long)st.kill_msgs_lost);
        killed += st.tasks_killed;
        passed += st.kill_grants_passed;
        fprintf(stderr,
                "sync_fuzz_killed: seed %llu: %llu steps, %llu killed, %llu grants passed on, "
                "%llu messages lost, %d violations\n",
                (unsigned long long)seed, (unsigned long long)F.steps,
                (unsigned long long)st.tasks_killed, (unsigned long long)st.kill_grants_passed,
                (unsigned long long)st.kill_msgs_lost, F.violations);
        int v = F.violations;
        fuzz_teardown();
        assert_int_equal(v, 0);
    }
    assert_true(killed > 0);
    assert_true(passed > 0); /* the case was there: a grant made in the kill's pass */
}

static void test_sync_fuzz(void **state)
{
    (void)state;
    uint64_t seed, steps;
    fuzz_env(&seed, &steps);
    fuzz_begin(steps, seed * 2654435761u + 1);
    assert_int_equal(tt_run(fn_fuzz, NULL), 0);
    fprintf(stderr,
            "sync_fuzz: seed %llu: %llu steps, %llu calls returned 0, %llu cut short, "
            "%u workers replaced, messages %u + %u, %d violations\n",
            (unsigned long long)seed, (unsigned long long)F.steps, (unsigned long long)F.ok,
            (unsigned long long)F.cut, F.replaced, F.next_seq[0], F.next_seq[1], F.violations);
    fuzz_teardown();
    assert_int_equal(F.violations, 0);
    assert_true(F.cut > 0 && F.ok > 0); /* both kinds of outcome were exercised */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sync_fuzz),
        cmocka_unit_test(test_sync_fuzz_killed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
