/*
 * Description: the servers' shared socket handling (tools/net.c). The
 * accept back-off waits (not spins) at the fd limit, and a freed fd's wake
 * ends the wait at once.
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
    while ((fd = dup(0)) >= 0) {
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

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_net_backoff_grows_and_is_capped),
        T(test_net_accept_waits_at_emfile_instead_of_spinning),
        T(test_net_accept_wake_ends_the_wait_at_once),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
