/*
 * Description: regression tests for the defects the independent review of
 * the foundation issue found (issue 10, Part B). Each test fails without
 * its fix; the number is the item's in the issue.
 */
#define _GNU_SOURCE
#include "tr_test.h"

#include <netinet/in.h>
#include <sys/socket.h>

/* ---- B.12: sends never raise SIGPIPE ---------------------------------------- */

static int send_to_closed_peer(void *arg)
{
    (void)arg;
    int sv[2];
    TCHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    close(sv[1]);
    char b[64] = {0};
    /* With SIGPIPE at its default action, a send without MSG_NOSIGNAL kills
     * the process here (exit 141). */
    ssize_t n = tr_send(sv[0], b, sizeof(b), 0);
    TCHECK(n == -EPIPE || n == -ECONNRESET);
    close(sv[0]);
    return 0;
}

static void test_review_send_to_closed_peer_epipe_not_sigpipe(void **state)
{
    (void)state;
    signal(SIGPIPE, SIG_DFL);
    assert_int_equal(tr_test_run(send_to_closed_peer, NULL), 0);
    tr_test_assert_clean();
}

/* ---- tr_shutdown (IORING_OP_SHUTDOWN) ------------------------------------------ */

static int shutdown_write_side(void *arg)
{
    (void)arg;
    int sv[2];
    TCHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    TCHECK_EQ(tr_send(sv[0], "bye", 3, 0), 3);
    TCHECK_EQ(tr_shutdown(sv[0], SHUT_WR), 0);
    char b[8];
    TCHECK_EQ(tr_recv(sv[1], b, sizeof(b), 0), 3); /* what was sent before... */
    TCHECK_EQ(tr_recv(sv[1], b, sizeof(b), 0), 0); /* ...then an orderly EOF */
    TCHECK_EQ(tr_send(sv[1], "x", 1, 0), 1);       /* the other way still works */
    TCHECK_EQ(tr_recv(sv[0], b, sizeof(b), 0), 1);
    TCHECK_EQ(tr_shutdown(sv[0], 42), -EINVAL);
    TCHECK_EQ(tr_shutdown(-1, SHUT_RDWR), -EBADF);
    close(sv[0]);
    close(sv[1]);
    return 0;
}

static void test_review_shutdown_op_half_closes(void **state)
{
    (void)state;
    assert_int_equal(tr_test_run(shutdown_write_side, NULL), 0);
    tr_test_assert_clean();
    assert_int_equal(tr_shutdown(0, SHUT_WR), -EPERM);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_review_send_to_closed_peer_epipe_not_sigpipe),
        T(test_review_shutdown_op_half_closes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
