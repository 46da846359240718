/* SPDX-License-Identifier: MIT */
/*
 * Description: the Report phase of the graceful shutdown and
 * tr_engine_dump (DESIGN section 4, G6): the report names the trigger,
 * counts the endings, lists failures (with their errno) and kills but no
 * -ECANCELED ending, and ends with the audit; report_fd -1 writes nothing
 * anywhere; tr_engine_dump lists one line per live task with its state and
 * marks, and returns how many it listed.
 * Common ground (no signals, no sleeps, white-box parking): tr_test_shutdown.h.
 */
#define _GNU_SOURCE /* pipe2 */
#include "tr_test_shutdown.h"

/* ================================================================ the report */

#define RP_READERS 3

struct rp_ctx {
    tr_engine *e;
    int p[2];
    tr_task *t[RP_READERS + 2];
};

static int rp_reader(void *p)
{
    struct rp_ctx *c = p;
    char b[4];
    return (int)tr_read(c->p[0], b, sizeof(b), -1);
}

/* Fails during the shutdown with an error of its own. */
static int rp_failer(void *p)
{
    struct rp_ctx *c = p;
    char b[4];
    ssize_t r = tr_read(c->p[0], b, sizeof(b), -1);
    return r == -ECANCELED ? -EIO : 0;
}

static int rp_stubborn(void *p)
{
    struct rp_ctx *c = p;
    for (long i = 0; i < KILL_LOOP_BOUND; i++) {
        char b[4];
        (void)tr_shield_begin();
        (void)tr_read(c->p[0], b, sizeof(b), -1);
        (void)tr_shield_end();
    }
    return 0;
}

static int rp_trigger(void *p)
{
    struct rp_ctx *c = p;
    for (int i = 0; i < RP_READERS + 2; i++)
        TCHECK(wait_parked(c->t[i], TR_WAIT_OP));
    TCHECK_EQ(tr_engine_shutdown(c->e), 0);
    /* End after the trigger took effect, so the report counts this end. */
    TCHECK_EQ(tr_wait_shutdown(), 0);
    return 7;
}

static void rp_spawn_all(struct rp_ctx *c)
{
    char name[16];
    for (int i = 0; i < RP_READERS; i++) {
        snprintf(name, sizeof(name), "reader-%d", i);
        assert_int_equal(spawn_named(c->e, &c->t[i], rp_reader, c, name, 0), 0);
    }
    assert_int_equal(spawn_named(c->e, &c->t[RP_READERS], rp_failer, c, "failer", 0), 0);
    assert_int_equal(spawn_named(c->e, &c->t[RP_READERS + 1], rp_stubborn, c, "stubborn", 0), 0);
    assert_int_equal(spawn_named(c->e, NULL, rp_trigger, c, "trigger", 0), 0);
}

/* The report of a shutdown with known outcomes (1 ok, 3 cancelled, 1 failed
 * with -EIO, 1 killed): the trigger, the counts line, one line for the
 * failure with its errno and one for the kill, the audit "quiescent", and
 * no line per -ECANCELED ending. */
static void test_shutdown_report_names_failures_and_kills(void **state)
{
    (void)state;
    struct rp_ctx c;
    memset(&c, 0, sizeof(c));
    make_pipe(c.p);
    struct tr_config cfg = cfg_quiet();
    cfg.grace_ms = 20;
    cfg.kill_ms = 20;
    rep_open(&cfg);
    c.e = eng_new(&cfg);
    rp_spawn_all(&c);
    eng_run(c.e);
    struct tr_stats s = stats_of(c.e);
    assert_int_equal(s.tasks_ok, 1);
    assert_int_equal(s.tasks_cancelled, RP_READERS);
    assert_int_equal(s.tasks_failed, 1);
    assert_int_equal(s.tasks_killed, 1);
    assert_int_equal(result_of(c.t[RP_READERS]), -EIO);
    assert_int_equal(tr_engine_destroy(c.e), 0);
    rep_collect();

    assert_int_equal(count_substr(rep.text, "shutdown report"), 1);
    assert_contains(rep.text, "tr_engine_shutdown()");
    assert_contains(rep.text, "tasks ended: 1 ok, 3 cancelled, 1 failed, 1 killed");
    char line[512];
    assert_true(line_with(rep.text, "failed: task 'failer'", line, sizeof(line)));
    if (!strstr(line, "-5") && !strstr(line, "EIO") && !strstr(line, strerror(EIO)))
        fail_msg("no errno in the failure line: %s", line);
    assert_int_equal(count_substr(rep.text, "failed: task"), 1);
    assert_contains(rep.text, "killed: task 'stubborn'");
    assert_int_equal(count_substr(rep.text, "killed: task"), 1);
    assert_true(line_with(rep.text, "audit", line, sizeof(line)));
    assert_contains(line, "quiescent");
    assert_null(strstr(line, "NOT"));
    /* The cancelled readers are counted, never listed. */
    assert_null(strstr(rep.text, "reader-"));
    close_pair(c.p);
}

/* report_fd -1 writes nothing anywhere, even with a grace dump and a kill:
 * with stderr captured in a pipe, the same shutdown writes to it with
 * report_fd 2 (the control) and not a byte with -1. */
static size_t run_captured(int report_fd)
{
    int cap[2];
    assert_int_equal(pipe2(cap, O_CLOEXEC | O_NONBLOCK), 0);
    fflush(stderr);
    int saved = dup(2);
    assert_true(saved >= 0);
    assert_int_equal(dup2(cap[1], 2), 2);

    struct rp_ctx c;
    memset(&c, 0, sizeof(c));
    make_pipe(c.p);
    struct tr_config cfg = cfg_quiet();
    cfg.grace_ms = 20;
    cfg.kill_ms = 20;
    cfg.report_fd = report_fd;
    tr_engine *e = NULL;
    int rc_create = tr_engine_create(&e, &cfg);
    int rc_run = -1, rc_destroy = -1;
    struct tr_stats s;
    memset(&s, 0, sizeof(s));
    if (rc_create == 0) {
        c.e = e;
        rp_spawn_all(&c);
        rc_run = tr_engine_run(e);
        tr_engine_stats(e, &s);
        rc_destroy = tr_engine_destroy(e);
    }
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    int n = pipe_bytes(cap[0]);
    close_pair(cap);
    close_pair(c.p);
    assert_int_equal(rc_create, 0);
    assert_int_equal(rc_run, 0);
    assert_int_equal(rc_destroy, 0);
    tr_test_assert_clean();
    assert_int_equal(s.tasks_killed, 1);
    assert_int_equal(s.tasks_failed, 1);
    assert_true(n >= 0);
    return (size_t)n;
}

static void test_shutdown_report_fd_minus_one_is_silent(void **state)
{
    (void)state;
    assert_true(run_captured(2) > 0);
    assert_int_equal(run_captured(-1), 0);
}

/* ========================================================== tr_engine_dump */

struct dp_ctx {
    tr_engine *e;
    int rp[2], sp[2], out[2];
    tr_task *reader, *sleeper, *joiner, *shielded;
    int dump_rc, dump_null, dump_badfd, dump_closed;
};

static int dp_reader(void *p)
{
    struct dp_ctx *c = p;
    char b[4];
    return (int)tr_read(c->rp[0], b, sizeof(b), -1);
}

static int dp_sleeper(void *p)
{
    (void)p;
    return tr_sleep_ns(3600ull * 1000000000ull);
}

static int dp_joiner(void *p)
{
    struct dp_ctx *c = p;
    int res;
    int r = tr_join(c->sleeper, &res);
    if (r != 0)
        (void)tr_detach(c->sleeper);
    return r;
}

static int dp_shielded(void *p)
{
    struct dp_ctx *c = p;
    char b[4];
    TCHECK_EQ(tr_shield_begin(), 1);
    TCHECK_EQ(tr_cancel(tr_self()), 0);
    ssize_t r = tr_read(c->sp[0], b, sizeof(b), -1);
    TCHECK_EQ(tr_shield_end(), 0);
    return (int)r;
}

static int dp_main(void *p)
{
    struct dp_ctx *c = p;
    TCHECK(wait_parked(c->reader, TR_WAIT_OP));
    TCHECK(wait_parked(c->sleeper, TR_WAIT_TIMER));
    TCHECK(wait_parked(c->joiner, TR_WAIT_JOIN));
    TCHECK(wait_parked(c->shielded, TR_WAIT_OP));
    c->dump_rc = tr_engine_dump(c->e, c->out[1]);
    c->dump_null = tr_engine_dump(NULL, c->out[1]);
    c->dump_badfd = tr_engine_dump(c->e, -1);
    /* A closed descriptor: the write's own error comes back. */
    int fd = dup(c->out[1]);
    close(fd);
    c->dump_closed = tr_engine_dump(c->e, fd);
    /* Let everyone end: data for the shielded reader, a shutdown for the
     * rest (grace is long; the shield ends on its own). */
    TCHECK_EQ(tr_write(c->sp[1], "s", 1, -1), 1);
    TCHECK_EQ(tr_engine_shutdown(c->e), 0);
    return 0;
}

/* tr_engine_dump lists one line per live task: its name, its state (parked
 * on a read with op=read and the pipe's fd, sleeping, joining), and the
 * cancelled/shielded marks; it returns the number of tasks listed; NULL
 * engine or a negative fd is -EINVAL, a closed fd the write's -EBADF. */
static void test_shutdown_dump_lists_live_tasks(void **state)
{
    (void)state;
    struct dp_ctx c;
    memset(&c, 0, sizeof(c));
    make_pipe(c.rp);
    make_pipe(c.sp);
    make_pipe(c.out);
    struct tr_config cfg = cfg_quiet();
    c.e = eng_new(&cfg);
    assert_int_equal(spawn_named(c.e, &c.reader, dp_reader, &c, "dump-reader", 0), 0);
    assert_int_equal(spawn_named(c.e, &c.sleeper, dp_sleeper, &c, "dump-sleeper", 0), 0);
    assert_int_equal(spawn_named(c.e, &c.joiner, dp_joiner, &c, "dump-joiner", 0), 0);
    assert_int_equal(spawn_named(c.e, &c.shielded, dp_shielded, &c, "dump-shielded", 0), 0);
    assert_int_equal(spawn_named(c.e, NULL, dp_main, &c, "dump-main", 0), 0);
    eng_run(c.e);
    /* After the run nothing is alive: an empty dump. */
    assert_int_equal(tr_engine_dump(c.e, c.out[1]), 0);
    assert_int_equal(tr_engine_destroy(c.e), 0);

    char text[8192];
    close(c.out[1]);
    c.out[1] = -1;
    ssize_t n = read(c.out[0], text, sizeof(text) - 1);
    assert_true(n > 0);
    text[n] = '\0';
    assert_int_equal(c.dump_rc, 5);
    assert_int_equal(c.dump_null, -EINVAL);
    assert_int_equal(c.dump_badfd, -EINVAL);
    assert_int_equal(c.dump_closed, -EBADF);
    assert_int_equal(count_substr(text, "\n"), 5);

    char line[512], want[64];
    assert_true(line_with(text, "'dump-reader'", line, sizeof(line)));
    assert_contains(line, "op=read");
    snprintf(want, sizeof(want), "fd=%d", c.rp[0]);
    assert_contains(line, want);
    assert_null(strstr(line, "cancelled"));
    assert_true(line_with(text, "'dump-sleeper'", line, sizeof(line)));
    assert_contains(line, "sleep");
    assert_true(line_with(text, "'dump-joiner'", line, sizeof(line)));
    assert_contains(line, "join");
    assert_true(line_with(text, "'dump-shielded'", line, sizeof(line)));
    assert_contains(line, "op=read");
    snprintf(want, sizeof(want), "fd=%d", c.sp[0]);
    assert_contains(line, want);
    assert_contains(line, "cancelled");
    assert_contains(line, "shielded");
    assert_true(line_with(text, "'dump-main'", line, sizeof(line)));
    close_pair(c.rp);
    close_pair(c.sp);
    close_pair(c.out);
}

/* ================================================================= main */

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_shutdown_report_names_failures_and_kills),
        T(test_shutdown_report_fd_minus_one_is_silent),
        T(test_shutdown_dump_lists_live_tasks),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
