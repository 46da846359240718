/* SPDX-License-Identifier: MIT */
/*
 * Description: operations in bulk: more reads parked at once than
 * the SQ has entries (also with tiny rings, whose CQ the completions
 * outnumber), 300 tasks' NOPs in the same passes on 8-entry rings, and a
 * producer/consumer pair moving 1 MiB through a pipe.
 * Every test: a fresh engine, the audit, the same fds after (tr_test_ops.h).
 */
#define _GNU_SOURCE /* pipe2 */
#include "tr_test_ops.h"

/* ------------------------------------------- many ops parked at once */

/* More reads parked at once than the SQ has entries (their SQEs are made in
 * one pass), completing all at once (plain write(2) inside one task run, so
 * the engine reaps them together): with tiny rings the SQ fills during the
 * pass and the completions outnumber the CQ's entries. Every reader must
 * still get its own byte and the engine must end quiescent. */
#define MANY 300
struct many {
    int pfd[MANY][2];
    char got[MANY];
    int rc[MANY];
    tr_task *t[MANY];
    uint64_t inflight_parked;
};

struct many_reader {
    struct many *m;
    int i;
};

static struct many_reader g_many_readers[MANY];

static int fn_many_reader(void *p)
{
    struct many_reader *r = p;
    r->m->rc[r->i] = (int)tr_read(r->m->pfd[r->i][0], &r->m->got[r->i], 1, -1);
    return 0;
}

static int fn_many(void *p)
{
    struct many *m = p;
    int npipes = 0;
    for (; npipes < MANY; npipes++)
        if (!TCHECK_EQ(pipe2(m->pfd[npipes], O_CLOEXEC), 0))
            break;
    int nspawned = 0;
    for (; nspawned < npipes; nspawned++) {
        g_many_readers[nspawned].m = m;
        g_many_readers[nspawned].i = nspawned;
        m->rc[nspawned] = 12345;
        if (!TCHECK_EQ(
                tr_spawn(NULL, &m->t[nspawned], fn_many_reader, &g_many_readers[nspawned], NULL),
                0))
            break;
    }
    TCHECK_EQ(tr_yield(), 0); /* every reader runs once and parks */
    m->inflight_parked = stats_of(g_e).ops_inflight;
    for (int i = 0; i < npipes; i++) {
        char c = (char)(i * 7 + 1);
        TCHECK_EQ(write(m->pfd[i][1], &c, 1), 1);
    }
    for (int i = 0; i < nspawned; i++)
        TCHECK_EQ(tr_join(m->t[i], NULL), 0);
    for (int i = 0; i < nspawned; i++) {
        TCHECK_EQ(m->rc[i], 1);
        TCHECK_EQ(m->got[i], (char)(i * 7 + 1));
    }
    for (int i = 0; i < npipes; i++) {
        TCHECK_EQ(tr_close(m->pfd[i][0]), 0);
        TCHECK_EQ(tr_close(m->pfd[i][1]), 0);
    }
    return 0;
}

static void test_ops_many_parked_reads(void **state)
{
    (void)state;
    static struct many m;
    memset(&m, 0, sizeof m);
    assert_int_equal(tt_run(fn_many, &m), 0);
    assert_true(m.inflight_parked >= MANY);
}

static void test_ops_many_parked_reads_tiny_rings(void **state)
{
    (void)state;
    static struct many m;
    memset(&m, 0, sizeof m);
    struct tr_config cfg;
    tr_config_init(&cfg);
    cfg.sq_entries = 8;
    cfg.cq_entries = 8;
    assert_int_equal(tt_run_cfg(fn_many, &m, &cfg), 0);
    assert_true(m.inflight_parked >= MANY);
}

/* 300 tasks issue 3 NOPs each, all in the same passes, on an 8-entry SQ
 * and CQ: NOPs complete at submission, so the engine must reap while it
 * flushes the full SQ or lose completions to the CQ. */
struct nop_burst {
    int ok;
};

static int fn_nop3(void *p)
{
    struct nop_burst *nb = p;
    for (int i = 0; i < 3; i++)
        if (TCHECK_EQ(tr_nop(), 0))
            nb->ok++;
    return 0;
}

static int fn_nop_burst(void *p)
{
    for (int i = 0; i < MANY; i++)
        TCHECK_EQ(tr_spawn(NULL, NULL, fn_nop3, p, NULL), 0);
    return 0;
}

static void test_ops_many_nops_one_pass_tiny_rings(void **state)
{
    (void)state;
    struct nop_burst nb = {0};
    struct tr_config cfg;
    tr_config_init(&cfg);
    cfg.sq_entries = 8;
    cfg.cq_entries = 8;
    assert_int_equal(tt_run_cfg(fn_nop_burst, &nb, &cfg), 0);
    assert_int_equal(nb.ok, 3 * MANY);
}

/* -------------------------------------------------- producer/consumer */

#define PC_TOTAL (1u << 20)
#define PC_CHUNK_MAX 65536u

struct pc {
    int pfd[2];
    uint64_t seed;
    uint64_t sum_produced, sum_consumed;
    size_t produced, consumed;
    unsigned writes, reads;
    int producer_rc, consumer_rc;
};

static uint64_t xorshift64(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return *s = x;
}

/* FNV-1a over the byte stream: order-sensitive, so reordered or repeated
 * chunks change it. */
static uint64_t fnv1a(uint64_t h, const unsigned char *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= 0x100000001b3ull;
    }
    return h;
}

static int fn_producer(void *p)
{
    struct pc *pc = p;
    unsigned char *buf = malloc(PC_CHUNK_MAX);
    uint64_t rng = pc->seed, data = pc->seed ^ 0x9e3779b97f4a7c15ull;
    if (!TCHECK(buf != NULL))
        return -ENOMEM;
    pc->sum_produced = 0xcbf29ce484222325ull;
    /* Bounded: each pass writes at least one byte. */
    for (unsigned iter = 0; iter < PC_TOTAL && pc->produced < PC_TOTAL; iter++) {
        size_t n = 1 + (size_t)(xorshift64(&rng) % PC_CHUNK_MAX);
        if (n > PC_TOTAL - pc->produced)
            n = PC_TOTAL - pc->produced;
        for (size_t i = 0; i < n; i++)
            buf[i] = (unsigned char)xorshift64(&data);
        size_t off = 0;
        for (unsigned tries = 0; tries < n && off < n; tries++) {
            ssize_t w = tr_write(pc->pfd[1], buf + off, n - off, -1);
            pc->writes++;
            if (!TCHECK(w > 0)) {
                pc->producer_rc = (int)w;
                goto out;
            }
            off += (size_t)w;
        }
        if (!TCHECK_EQ(off, n))
            goto out;
        pc->sum_produced = fnv1a(pc->sum_produced, buf, n);
        pc->produced += n;
    }
out:
    free(buf);
    TCHECK_EQ(tr_close(pc->pfd[1]), 0); /* the consumer sees EOF */
    return 0;
}

static int fn_consumer(void *p)
{
    struct pc *pc = p;
    unsigned char *buf = malloc(PC_CHUNK_MAX);
    uint64_t rng = pc->seed * 0x2545f4914f6cdd1dull + 1;
    if (!TCHECK(buf != NULL))
        return -ENOMEM;
    pc->sum_consumed = 0xcbf29ce484222325ull;
    /* Bounded: each read but the last (EOF) moves at least one byte. */
    for (unsigned iter = 0; iter <= PC_TOTAL + 1; iter++) {
        size_t n = 1 + (size_t)(xorshift64(&rng) % PC_CHUNK_MAX);
        ssize_t r = tr_read(pc->pfd[0], buf, n, -1);
        pc->reads++;
        if (r == 0)
            break;
        if (!TCHECK(r > 0 && (size_t)r <= n)) {
            pc->consumer_rc = (int)r;
            break;
        }
        pc->sum_consumed = fnv1a(pc->sum_consumed, buf, (size_t)r);
        pc->consumed += (size_t)r;
    }
    free(buf);
    return 0;
}

static int fn_producer_consumer(void *p)
{
    struct pc *pc = p;
    if (!TCHECK_EQ(pipe2(pc->pfd, O_CLOEXEC), 0))
        return -EIO;
    tr_task *c = NULL, *pr = NULL;
    /* The consumer starts first and parks on an empty pipe. */
    TCHECK_EQ(tr_spawn(NULL, &c, fn_consumer, pc, NULL), 0);
    TCHECK_EQ(tr_spawn(NULL, &pr, fn_producer, pc, NULL), 0);
    TCHECK_EQ(tr_join(pr, NULL), 0);
    TCHECK_EQ(tr_join(c, NULL), 0);
    TCHECK_EQ(tr_close(pc->pfd[0]), 0);
    return 0;
}

static void test_ops_pipe_producer_consumer_1mib(void **state)
{
    (void)state;
    struct pc pc;
    memset(&pc, 0, sizeof pc);
    pc.seed = 0x5eed1234abcdull;
    assert_int_equal(tt_run(fn_producer_consumer, &pc), 0);
    assert_int_equal(pc.producer_rc, 0);
    assert_int_equal(pc.consumer_rc, 0);
    assert_int_equal(pc.produced, PC_TOTAL);
    assert_int_equal(pc.consumed, PC_TOTAL);
    assert_true(pc.sum_produced == pc.sum_consumed);
    /* Random chunks of at most 64 KiB: many operations, not one. */
    assert_true(pc.writes >= PC_TOTAL / PC_CHUNK_MAX);
    assert_true(pc.reads >= PC_TOTAL / PC_CHUNK_MAX);
}

/* ----------------------------------------------------------------- main */

int main(void)
{
    /* Writing to a pipe or socket without a reader must show as -EPIPE, not
     * kill the suite. */
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        T(test_ops_many_parked_reads),
        T(test_ops_many_parked_reads_tiny_rings),
        T(test_ops_many_nops_one_pass_tiny_rings),
        T(test_ops_pipe_producer_consumer_1mib),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
