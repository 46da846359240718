/* SPDX-License-Identifier: MIT */
/*
 * Description: the servers' shared socket handling (tools/net.c). The
 * lingering close shuts the write side, discards the peer's input until its
 * EOF or a bound, works in a cancelled task, and leaves a TCP peer with our
 * last bytes and an orderly EOF where a plain close resets it. The accept
 * back-off waits (not spins) at the fd limit, and a freed fd's wake ends
 * the wait at once. The servers' moving deadline (net_deadline) cuts a
 * call short where it was moved to, costs no ring op per move, and a move
 * once it has passed gives a scope that is not triggered (the race of a
 * real result with the deadline). No timing assertions there: deadlines
 * are "soon" (2 ms) or an hour away.
 */
#define _GNU_SOURCE
#include "tr_test.h"

#include "net.h"

#include <inttypes.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* ---- lingering close over a socketpair ------------------------------------------ */

struct pair {
    int sv[2];
    int linger_ms;
    int rc;           /* net_close_lingering's result */
    uint64_t took_ms; /* ... and how long it took */
    int peer_eof;     /* the peer read our EOF */
    int peer_stays;   /* the peer never closes (until the test does) */
};

/* The peer: reads our EOF, talks a little more, closes (unless it stays). */
static int pair_peer(void *arg)
{
    struct pair *p = arg;
    char b[64];
    ssize_t n = tr_recv(p->sv[1], b, sizeof(b), 0);
    p->peer_eof = n == 0;
    TCHECK_EQ(tr_send(p->sv[1], "late words", 10, 0), 10);
    if (!p->peer_stays) {
        TCHECK_EQ(tr_sleep_ns(20 * 1000000ull), 0);
        close(p->sv[1]);
        p->sv[1] = -1;
    }
    return 0;
}

static int pair_main(void *arg)
{
    struct pair *p = arg;
    TCHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, p->sv), 0);
    TCHECK_EQ(tr_send(p->sv[1], "unread input", 12, 0), 12); /* in our queue, unread */
    tr_task *peer;
    TCHECK_EQ(tr_spawn(NULL, &peer, pair_peer, p, NULL), 0);
    uint64_t t0 = now_ms();
    p->rc = net_close_lingering(p->sv[0], (unsigned)p->linger_ms);
    p->took_ms = now_ms() - t0;
    /* The fd is closed: its number is free again. */
    TCHECK_EQ(fcntl(p->sv[0], F_GETFD), -1);
    TCHECK_EQ(tr_join(peer, NULL), 0);
    if (p->sv[1] >= 0)
        close(p->sv[1]);
    return 0;
}

static void test_net_linger_reads_to_the_peers_eof(void **state)
{
    (void)state;
    struct pair p = {.linger_ms = 2000};
    assert_int_equal(tr_test_run(pair_main, &p), 0);
    tr_test_assert_clean();
    assert_int_equal(p.rc, 0);
    assert_int_equal(p.peer_eof, 1);
    /* The peer closed after 20 ms: lingering ended then, not at the bound. */
    assert_true(p.took_ms >= 15);
    assert_true(p.took_ms < 1000);
}

static void test_net_linger_is_bounded_when_the_peer_stays(void **state)
{
    (void)state;
    struct pair p = {.linger_ms = 100, .peer_stays = 1};
    assert_int_equal(tr_test_run(pair_main, &p), 0);
    tr_test_assert_clean();
    assert_int_equal(p.rc, -ETIMEDOUT);
    assert_int_equal(p.peer_eof, 1);
    assert_true(p.took_ms >= 100);
    assert_true(p.took_ms < 1000); /* 100 ms plus a timer tick and scheduling */
}

/* A shutdown cancels the connection task before it closes: the shield
 * inside net_close_lingering lets it linger anyway. */
struct cancelled_linger {
    int sv[2];
    int rc;
};

static int cancelled_linger_peer(void *arg)
{
    struct cancelled_linger *c = arg;
    TCHECK_EQ(tr_sleep_ns(20 * 1000000ull), 0);
    close(c->sv[1]);
    return 0;
}

static int cancelled_linger_main(void *arg)
{
    struct cancelled_linger *c = arg;
    TCHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, c->sv), 0);
    TCHECK_EQ(send(c->sv[1], "unread", 6, 0), 6);
    TCHECK_EQ(tr_spawn(NULL, NULL, cancelled_linger_peer, c, NULL), 0);
    TCHECK_EQ(tr_cancel(tr_self()), 0);
    c->rc = net_close_lingering(c->sv[0], 2000);
    return 0;
}

static void test_net_linger_shields_itself(void **state)
{
    (void)state;
    struct cancelled_linger c = {{-1, -1}, 1};
    assert_int_equal(tr_test_run(cancelled_linger_main, &c), 0);
    tr_test_assert_clean();
    /* It waited the 20 ms for the peer's EOF despite the cancel. */
    assert_int_equal(c.rc, 0);
}

/* ---- TCP: lingering close against a plain close ---------------------------------- */

struct tcp {
    int linger; /* 1: net_close_lingering, 0: a plain close */
    int lfd, cfd, sfd;
    int bye_read;   /* the client read our last bytes */
    int client_end; /* its last recv: 0 (EOF) or -errno */
    int server_rc;
};

static int tcp_client(void *arg)
{
    struct tcp *t = arg;
    char in[64];
    size_t got = 0;
    /* Reads our "bye", then the end: bounded by the bytes there are. */
    for (int i = 0; i < 64; i++) {
        ssize_t n = tr_recv(t->cfd, in + got, sizeof(in) - got, 0);
        if (n <= 0) {
            t->client_end = (int)n;
            break;
        }
        got += (size_t)n;
    }
    t->bye_read = got == 3 && !memcmp(in, "bye", 3);
    close(t->cfd);
    return 0;
}

static int tcp_main(void *arg)
{
    struct tcp *t = arg;
    struct sockaddr_storage a;
    socklen_t len;
    t->lfd = net_listen("127.0.0.1", 0, &a, &len);
    TCHECK(t->lfd >= 0);
    t->cfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    TCHECK_EQ(tr_connect(t->cfd, (struct sockaddr *)&a, len), 0);
    t->sfd = tr_accept(t->lfd, NULL, NULL, SOCK_CLOEXEC);
    TCHECK(t->sfd >= 0);
    char junk[8192];
    memset(junk, 'j', sizeof(junk));
    TCHECK_EQ(tr_send(t->cfd, junk, sizeof(junk), 0), sizeof(junk));
    TCHECK_EQ(tr_sleep_ns(20 * 1000000ull), 0); /* the junk is in the server's queue */
    TCHECK_EQ(tr_send(t->sfd, "bye", 3, 0), 3);
    tr_task *c;
    TCHECK_EQ(tr_spawn(NULL, &c, tcp_client, t, NULL), 0);
    if (t->linger) {
        t->server_rc = net_close_lingering(t->sfd, 2000);
    } else {
        t->server_rc = 0;
        close(t->sfd);
    }
    TCHECK_EQ(tr_join(c, NULL), 0);
    close(t->lfd);
    return 0;
}

static void test_net_linger_tcp_peer_gets_eof_not_reset(void **state)
{
    (void)state;
    struct tcp t = {.linger = 1};
    assert_int_equal(tr_test_run(tcp_main, &t), 0);
    tr_test_assert_clean();
    assert_int_equal(t.bye_read, 1);
    assert_int_equal(t.client_end, 0); /* an orderly EOF */
    assert_int_equal(t.server_rc, 0);  /* and the client's own close read as EOF */
}

/* The control: the reset the lingering close avoids is real here. */
static void test_net_plain_close_with_unread_input_resets(void **state)
{
    (void)state;
    struct tcp t = {.linger = 0};
    assert_int_equal(tr_test_run(tcp_main, &t), 0);
    tr_test_assert_clean();
    assert_int_equal(t.client_end, -ECONNRESET);
}

/* ---- accept back-off ------------------------------------------------------------- */

static void test_net_backoff_grows_and_is_capped(void **state)
{
    (void)state;
    uint64_t d = 0, sum = 0;
    assert_true(net_backoff_next(0) == NET_BACKOFF_MIN_NS);
    for (int i = 0; i < 40; i++) {
        uint64_t n = net_backoff_next(d);
        assert_true(n >= d);
        assert_true(n <= NET_BACKOFF_MAX_NS);
        d = n;
        sum += n;
    }
    assert_true(d == NET_BACKOFF_MAX_NS);
    /* 40 waits take seconds, not microseconds: no spin. */
    assert_true(sum > 3ull * 1000000000ull);
}

struct emfile {
    int lfd, cfd;
    int fillers[64];
    int n_fillers;
    int wake;    /* the freeing task calls net_backoff_wake */
    int free_ms; /* when it frees an fd */
    struct net_backoff b;
    int afd; /* net_accept's result */
    uint64_t freed_at_ms, accepted_at_ms;
    uint64_t ops_while_waiting;
};

static struct emfile em;

static int emfile_freer(void *arg)
{
    (void)arg;
    TCHECK_EQ(tr_sleep_ns((uint64_t)em.free_ms * 1000000ull), 0);
    em.ops_while_waiting = tstats().ops_submitted;
    close(em.fillers[--em.n_fillers]);
    em.freed_at_ms = now_ms();
    if (em.wake)
        net_backoff_wake(&em.b);
    return 0;
}

static int emfile_main(void *arg)
{
    (void)arg;
    tr_task *f;
    TCHECK_EQ(tr_spawn(NULL, &f, emfile_freer, NULL, NULL), 0);
    uint64_t ops0 = tstats().ops_submitted;
    em.afd = net_accept(em.lfd, SOCK_CLOEXEC, &em.b);
    em.accepted_at_ms = now_ms();
    em.ops_while_waiting -= ops0;
    TCHECK_EQ(tr_join(f, NULL), 0);
    return 0;
}

/* Fills the fd table up to a lowered soft limit, runs the acceptor against
 * a connection waiting in the queue, restores everything. */
static void run_emfile(int wake, int free_ms)
{
    memset(&em, 0, sizeof(em));
    em.wake = wake;
    em.free_ms = free_ms;
    struct sockaddr_storage a;
    socklen_t len;
    em.lfd = net_listen("127.0.0.1", 0, &a, &len);
    assert_true(em.lfd >= 0);
    em.cfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_int_equal(connect(em.cfd, (struct sockaddr *)&a, len), 0); /* now in the queue */
    tr_engine *e = eng_new(NULL);
    struct rlimit old, low;
    assert_int_equal(getrlimit(RLIMIT_NOFILE, &old), 0);
    low = old;
    low.rlim_cur = (rlim_t)count_fds() + 8; /* the lowest free fds are below this */
    assert_int_equal(setrlimit(RLIMIT_NOFILE, &low), 0);
    int fd;
    while ((fd = dup(em.lfd)) >= 0) { /* not fd 0: ctest may run us without stdin */
        assert_true(em.n_fillers < 64);
        em.fillers[em.n_fillers++] = fd;
    }
    assert_int_equal(errno, EMFILE);
    assert_int_equal(tr_spawn(e, NULL, emfile_main, NULL, NULL), 0);
    assert_int_equal(tr_engine_run(e), 0);
    tr_test_assert_quiescent(e);
    assert_int_equal(tr_engine_destroy(e), 0);
    while (em.n_fillers)
        close(em.fillers[--em.n_fillers]);
    assert_int_equal(setrlimit(RLIMIT_NOFILE, &old), 0);
    if (em.afd >= 0)
        close(em.afd);
    close(em.cfd);
    close(em.lfd);
    tr_test_assert_clean();
}

static void test_net_accept_waits_at_emfile_instead_of_spinning(void **state)
{
    (void)state;
    run_emfile(0, 300);
    assert_true(em.afd >= 0);
    /* 300 ms at the limit: 1, 2, 4 ... 64 ms, then 100 ms waits, about
     * 9, each one accept and one nap. The spin this replaces made a ring op
     * per pass: hundreds of thousands in 300 ms. */
    print_message("     300 ms at EMFILE: %" PRIu64 " waits, %" PRIu64 " ring ops\n", em.b.waits,
                  em.ops_while_waiting);
    assert_true(em.b.waits >= 5);
    assert_true(em.b.waits <= 20);
    assert_true(em.ops_while_waiting <= 60);
    /* Without a wake the next try comes within one wait (<= 100 ms). */
    assert_true(em.accepted_at_ms - em.freed_at_ms <= 100 + 200); /* + scheduling slack */
    assert_true(em.b.delay_ns == 0);                              /* reset by the success */
    assert_int_equal(em.b.woken, 0);
}

static void test_net_accept_wake_ends_the_wait_at_once(void **state)
{
    (void)state;
    /* At 140 ms the acceptor is 13 ms into a 100 ms wait (1+2+...+64 =
     * 127): only the wake makes it accept before 227 ms. */
    run_emfile(1, 140);
    assert_true(em.afd >= 0);
    assert_int_equal(em.b.woken, 1);
    print_message("     accepted %" PRIu64 " ms after the fd was freed\n",
                  em.accepted_at_ms - em.freed_at_ms);
    assert_true(em.accepted_at_ms - em.freed_at_ms < 50);
}

/* ---- the moving deadline ------------------------------------------------------------ */

#define MS_NS 1000000ull
#define HOUR_NS (3600ull * 1000000000ull)

struct dl_ctx {
    int cut, after, exit;      /* a call cut short, the one after the move, the exit */
    uint64_t ops_for_moves;    /* ring ops submitted by 1000 moves */
    int unarmed, unarmed_exit; /* a sleep after moving the deadline away, the exit */
};

/* Cut short by its deadline, the scope is triggered and would stay so;
 * the move after it (now past the old deadline) enters a fresh one. */
static int dl_fresh_main(void *arg)
{
    struct dl_ctx *c = arg;
    struct net_deadline d;
    TCHECK_EQ(net_deadline_enter(&d, tr_now_ns() + 2 * MS_NS), 0);
    c->cut = tr_sleep_ns(HOUR_NS);
    uint64_t now = tr_now_ns();
    net_deadline_move(&d, now, now + HOUR_NS);
    c->after = tr_nop();
    c->exit = net_deadline_exit(&d);
    return 0;
}

static void test_net_deadline_move_after_expiry_gives_a_fresh_scope(void **state)
{
    (void)state;
    struct dl_ctx c = {0};
    assert_int_equal(tr_test_run(dl_fresh_main, &c), 0);
    assert_int_equal(c.cut, -ETIMEDOUT);
    assert_int_equal(c.after, 0); /* a plain tr_scope_set_deadline: -ETIMEDOUT */
    assert_int_equal(c.exit, 0);  /* the fresh scope cut nothing */
}

/* Moves are timer moves (no ring op); the last one is the deadline that
 * cuts; moving it away (0) leaves nothing to cut. */
static int dl_moves_main(void *arg)
{
    struct dl_ctx *c = arg;
    struct net_deadline d;
    struct tr_stats a, b;
    TCHECK_EQ(net_deadline_enter(&d, tr_now_ns() + HOUR_NS), 0);
    tr_engine_stats(tr_self_engine(), &a);
    for (unsigned i = 0; i < 1000; i++) {
        uint64_t now = tr_now_ns();
        net_deadline_move(&d, now, net_after_ms(now, 3600u * 1000u - i));
    }
    tr_engine_stats(tr_self_engine(), &b);
    c->ops_for_moves = b.ops_submitted - a.ops_submitted;
    uint64_t now = tr_now_ns();
    net_deadline_move(&d, now, now + 2 * MS_NS);
    c->cut = tr_sleep_ns(HOUR_NS);
    c->exit = net_deadline_exit(&d);

    TCHECK_EQ(net_deadline_enter(&d, tr_now_ns() + 2 * MS_NS), 0);
    net_deadline_move(&d, tr_now_ns(), net_after_ms(0, 0)); /* 0: none */
    c->unarmed = tr_sleep_ns(10 * MS_NS);
    c->unarmed_exit = net_deadline_exit(&d);
    return 0;
}

static void test_net_deadline_moves_cost_no_op_and_the_last_one_cuts(void **state)
{
    (void)state;
    struct dl_ctx c = {0};
    assert_int_equal(tr_test_run(dl_moves_main, &c), 0);
    assert_int_equal(c.ops_for_moves, 0);
    assert_int_equal(c.cut, -ETIMEDOUT);
    assert_int_equal(c.exit, -ETIMEDOUT);
    /* Moved away before it fired, or (the task was slow) after: then the
     * move gave a fresh scope without a deadline. Either way nothing cuts. */
    assert_int_equal(c.unarmed, 0);
    assert_int_equal(c.unarmed_exit, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_net_linger_reads_to_the_peers_eof),
        T(test_net_linger_is_bounded_when_the_peer_stays),
        T(test_net_linger_shields_itself),
        T(test_net_linger_tcp_peer_gets_eof_not_reset),
        T(test_net_plain_close_with_unread_input_resets),
        T(test_net_backoff_grows_and_is_capped),
        T(test_net_accept_waits_at_emfile_instead_of_spinning),
        T(test_net_accept_wake_ends_the_wait_at_once),
        T(test_net_deadline_move_after_expiry_gives_a_fresh_scope),
        T(test_net_deadline_moves_cost_no_op_and_the_last_one_cuts),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
