/* SPDX-License-Identifier: MIT */
/*
 * Description: operations refused: -EBADF on invalid fds, -EPERM
 * outside a task (and nothing done: fds stay open, no data moves, no file is
 * created).
 * Every test: a fresh engine, the audit, the same fds after (tr_test_ops.h).
 */
#define _GNU_SOURCE /* pipe2 */
#include "tr_test_ops.h"

/* --------------------------------------------------------- invalid fds */

static void check_badf(int fd)
{
    char buf[8] = {0};
    TCHECK_EQ(tr_read(fd, buf, sizeof buf, -1), -EBADF);
    TCHECK_EQ(tr_read(fd, buf, sizeof buf, 0), -EBADF);
    TCHECK_EQ(tr_write(fd, buf, sizeof buf, -1), -EBADF);
    TCHECK_EQ(tr_write(fd, buf, sizeof buf, 0), -EBADF);
    TCHECK_EQ(tr_recv(fd, buf, sizeof buf, 0), -EBADF);
    TCHECK_EQ(tr_send(fd, buf, sizeof buf, MSG_NOSIGNAL), -EBADF);
    TCHECK_EQ(tr_poll(fd, POLLIN), -EBADF);
    TCHECK_EQ(tr_fsync(fd), -EBADF);
    TCHECK_EQ(tr_close(fd), -EBADF);
    struct sockaddr_in sa;
    socklen_t len = sizeof sa;
    TCHECK_EQ(tr_accept(fd, (struct sockaddr *)&sa, &len, 0), -EBADF);
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    sa.sin_port = htons(9);
    TCHECK_EQ(tr_connect(fd, (struct sockaddr *)&sa, sizeof sa), -EBADF);
}

static int fn_bad_fds(void *p)
{
    (void)p;
    check_badf(-1);
    /* A number that was an fd a moment ago. */
    int pfd[2];
    if (TCHECK_EQ(pipe2(pfd, O_CLOEXEC), 0)) {
        TCHECK_EQ(close(pfd[0]), 0);
        TCHECK_EQ(close(pfd[1]), 0);
        check_badf(pfd[0]);
    }
    /* A valid fd of the wrong kind: recv on a pipe is -ENOTSOCK. */
    if (TCHECK_EQ(pipe2(pfd, O_CLOEXEC), 0)) {
        char c;
        TCHECK_EQ(tr_recv(pfd[0], &c, 1, 0), -ENOTSOCK);
        TCHECK_EQ(tr_close(pfd[0]), 0);
        TCHECK_EQ(tr_close(pfd[1]), 0);
    }
    return 0;
}

static void test_ops_invalid_fd_ebadf(void **state)
{
    (void)state;
    assert_int_equal(tt_run(fn_bad_fds, NULL), 0);
}

/* -------------------------------------------------------- outside tasks */

static void prep_never(struct io_uring_sqe *sqe, void *ctx)
{
    (void)sqe;
    *(int *)ctx = 1;
}

/* Every op refuses with -EPERM outside a task and does nothing: the fds
 * stay open, no data moves, no file is created. */
static void check_ops_eperm(void)
{
    int pfd[2], sv[2];
    char buf[8] = "abcdefg";
    assert_int_equal(pipe2(pfd, O_CLOEXEC), 0);
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    char dir[] = "/tmp/taskring-ops-eperm-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[128];
    snprintf(path, sizeof path, "%s/created", dir);

    assert_int_equal(tr_nop(), -EPERM);
    assert_int_equal(tr_sleep_ns(1), -EPERM);
    assert_int_equal(tr_write(pfd[1], buf, 4, -1), -EPERM);
    assert_int_equal(tr_read(pfd[0], buf, 4, -1), -EPERM);
    assert_int_equal(tr_send(sv[0], buf, 4, MSG_NOSIGNAL), -EPERM);
    assert_int_equal(tr_recv(sv[1], buf, 4, 0), -EPERM);
    struct sockaddr_in sa;
    socklen_t len = sizeof sa;
    assert_int_equal(tr_accept(sv[0], (struct sockaddr *)&sa, &len, 0), -EPERM);
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    sa.sin_port = htons(9);
    assert_int_equal(tr_connect(sv[0], (struct sockaddr *)&sa, sizeof sa), -EPERM);
    assert_int_equal(tr_poll(pfd[0], POLLIN), -EPERM);
    assert_int_equal(tr_openat(AT_FDCWD, path, O_CREAT | O_WRONLY | O_CLOEXEC, 0600), -EPERM);
    assert_int_equal(tr_fsync(pfd[1]), -EPERM);
    assert_int_equal(tr_close(pfd[0]), -EPERM);
    int called = 0;
    assert_int_equal(tr_op(prep_never, &called), -EPERM);
    assert_int_equal(called, 0);

    /* Nothing happened. */
    struct pollfd pl[2] = {{pfd[0], POLLIN, 0}, {sv[1], POLLIN, 0}};
    assert_int_equal(poll(pl, 2, 0), 0);
    assert_true(fd_is_open(pfd[0]));
    assert_int_equal(access(path, F_OK), -1);
    assert_int_equal(errno, ENOENT);

    assert_int_equal(rmdir(dir), 0);
    close(pfd[0]);
    close(pfd[1]);
    close(sv[0]);
    close(sv[1]);
}

static void test_ops_outside_task_eperm(void **state)
{
    (void)state;
    int fds_before = count_fds();
    /* With no engine at all, then with an engine that is not running. */
    check_ops_eperm();
    tr_engine *e = NULL;
    assert_int_equal(tr_engine_create(&e, NULL), 0);
    check_ops_eperm();
    struct tr_stats st;
    assert_int_equal(tr_engine_stats(e, &st), 0);
    assert_int_equal(st.ops_submitted, st.ops_completed);
    assert_int_equal(st.timers_pending, 0);
    assert_int_equal(tr_engine_run(e), 0);
    tr_test_assert_quiescent(e);
    assert_int_equal(tr_engine_destroy(e), 0);
    assert_int_equal(count_fds(), fds_before);
}

/* ----------------------------------------------------------------- main */

int main(void)
{
    /* Writing to a pipe or socket without a reader must show as -EPIPE, not
     * kill the suite. */
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        T(test_ops_invalid_fd_ebadf),
        T(test_ops_outside_task_eperm),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
