/* SPDX-License-Identifier: MIT */
/*
 * Description: operations on sockets: recv/send on AF_UNIX
 * socketpairs, accept (the fd works, the peer address is filled) and connect
 * on loopback TCP with an ephemeral port, connect refused.
 * Every test: a fresh engine, the audit, the same fds after (tr_test_ops.h).
 */
#define _GNU_SOURCE /* pipe2 */
#include "tr_test_ops.h"

/* ------------------------------------------------------------ recv/send */

struct sp {
    int sv[2];
    int sent;
    int recv_saw_send;
    char got[64];
};

static int fn_sp_receiver(void *p)
{
    struct sp *s = p;
    ssize_t r = recv_all(s->sv[1], s->got, sizeof s->got);
    s->recv_saw_send = s->sent;
    return (int)r;
}

static int fn_sp_sender(void *p)
{
    struct sp *s = p;
    char msg[64];
    for (int i = 0; i < 64; i++)
        msg[i] = (char)('A' + i % 26);
    for (int i = 0; i < 2; i++)
        TCHECK_EQ(tr_yield(), 0);
    s->sent = 1;
    return (int)tr_send(s->sv[0], msg, sizeof msg, 0);
}

static int fn_socketpair(void *p)
{
    struct sp *s = p;
    if (!TCHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, s->sv), 0))
        return -EIO;
    tr_task *rt = NULL, *st = NULL;
    int rr = -1, sr = -1;
    TCHECK_EQ(tr_spawn(NULL, &rt, fn_sp_receiver, s, NULL), 0);
    TCHECK_EQ(tr_spawn(NULL, &st, fn_sp_sender, s, NULL), 0);
    TCHECK_EQ(tr_join(rt, &rr), 0);
    TCHECK_EQ(tr_join(st, &sr), 0);
    TCHECK_EQ(sr, 64);
    TCHECK_EQ(rr, 64);
    TCHECK_EQ(s->recv_saw_send, 1);
    for (int i = 0; i < 64; i++)
        TCHECK_EQ(s->got[i], 'A' + i % 26);

    /* The other direction, and flags reach the kernel: MSG_PEEK leaves the
     * data queued. */
    char a[8] = {0}, b[8] = {0};
    TCHECK_EQ(tr_send(s->sv[1], "peek", 4, 0), 4);
    TCHECK_EQ(tr_recv(s->sv[0], a, 4, MSG_PEEK), 4);
    TCHECK_EQ(tr_recv(s->sv[0], b, 4, 0), 4);
    TCHECK(memcmp(a, "peek", 4) == 0);
    TCHECK(memcmp(b, "peek", 4) == 0);

    /* EOF after the peer closes; sending to a closed peer is -EPIPE. */
    TCHECK_EQ(tr_close(s->sv[0]), 0);
    TCHECK_EQ(tr_recv(s->sv[1], a, sizeof a, 0), 0);
    TCHECK_EQ(tr_send(s->sv[1], "x", 1, MSG_NOSIGNAL), -EPIPE);
    TCHECK_EQ(tr_close(s->sv[1]), 0);
    return 0;
}

static void test_ops_socketpair_send_recv(void **state)
{
    (void)state;
    struct sp s;
    memset(&s, 0, sizeof s);
    assert_int_equal(tt_run(fn_socketpair, &s), 0);
}

/* --------------------------------------------------- TCP accept/connect */

static int tcp_listener(struct sockaddr_in *addr)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    memset(addr, 0, sizeof *addr);
    addr->sin_family = AF_INET;
    addr->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr->sin_port = 0;
    socklen_t len = sizeof *addr;
    if (bind(fd, (struct sockaddr *)addr, sizeof *addr) != 0 || listen(fd, 16) != 0 ||
        getsockname(fd, (struct sockaddr *)addr, &len) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

struct tcp {
    struct sockaddr_in addr;
    uint16_t client_port; /* network order, from the client's getsockname */
    int connect_rc;
    int pong_ok;
};

static int fn_tcp_client(void *p)
{
    struct tcp *t = p;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (!TCHECK(fd >= 0))
        return -EIO;
    t->connect_rc = tr_connect(fd, (struct sockaddr *)&t->addr, sizeof t->addr);
    if (TCHECK_EQ(t->connect_rc, 0)) {
        struct sockaddr_in me;
        socklen_t len = sizeof me;
        TCHECK_EQ(getsockname(fd, (struct sockaddr *)&me, &len), 0);
        t->client_port = me.sin_port;
        char buf[4];
        TCHECK_EQ(tr_send(fd, "ping", 4, MSG_NOSIGNAL), 4);
        TCHECK_EQ(recv_all(fd, buf, 4), 4);
        t->pong_ok = memcmp(buf, "pong", 4) == 0;
    }
    TCHECK_EQ(tr_close(fd), 0);
    return 0;
}

/* Serves one ping/pong on an accepted fd, then waits for the client's EOF. */
static void serve_one(int cfd)
{
    char buf[8];
    TCHECK_EQ(recv_all(cfd, buf, 4), 4);
    TCHECK(memcmp(buf, "ping", 4) == 0);
    TCHECK_EQ(tr_send(cfd, "pong", 4, MSG_NOSIGNAL), 4);
    TCHECK_EQ(tr_recv(cfd, buf, sizeof buf, 0), 0);
}

static int fn_tcp(void *p)
{
    struct tcp *t = p;
    int lfd = tcp_listener(&t->addr);
    if (!TCHECK(lfd >= 0))
        return -EIO;
    TCHECK(t->addr.sin_port != 0);

    /* First connection: peer address filled, SOCK_CLOEXEC applied. */
    tr_task *c = NULL;
    TCHECK_EQ(tr_spawn(NULL, &c, fn_tcp_client, t, NULL), 0);
    struct sockaddr_in peer;
    memset(&peer, 0xa5, sizeof peer);
    socklen_t plen = sizeof peer;
    int cfd = tr_accept(lfd, (struct sockaddr *)&peer, &plen, SOCK_CLOEXEC);
    if (TCHECK(cfd >= 0)) {
        TCHECK_EQ(plen, sizeof(struct sockaddr_in));
        TCHECK_EQ(peer.sin_family, AF_INET);
        TCHECK_EQ(peer.sin_addr.s_addr, htonl(INADDR_LOOPBACK));
        TCHECK((fcntl(cfd, F_GETFD) & FD_CLOEXEC) != 0);
        serve_one(cfd);
        TCHECK_EQ(tr_close(cfd), 0);
        TCHECK(fd_is_closed(cfd));
    }
    TCHECK_EQ(tr_join(c, NULL), 0);
    TCHECK_EQ(t->connect_rc, 0);
    TCHECK_EQ(t->pong_ok, 1);
    TCHECK_EQ(peer.sin_port, t->client_port);

    /* Second connection: no address wanted, no flags. */
    t->pong_ok = 0;
    TCHECK_EQ(tr_spawn(NULL, &c, fn_tcp_client, t, NULL), 0);
    cfd = tr_accept(lfd, NULL, NULL, 0);
    if (TCHECK(cfd >= 0)) {
        TCHECK_EQ(fcntl(cfd, F_GETFD) & FD_CLOEXEC, 0);
        serve_one(cfd);
        TCHECK_EQ(tr_close(cfd), 0);
    }
    TCHECK_EQ(tr_join(c, NULL), 0);
    TCHECK_EQ(t->pong_ok, 1);

    TCHECK_EQ(tr_close(lfd), 0);
    return 0;
}

static void test_ops_tcp_accept_connect(void **state)
{
    (void)state;
    struct tcp t;
    memset(&t, 0, sizeof t);
    assert_int_equal(tt_run(fn_tcp, &t), 0);
}

static int fn_connect_refused(void *p)
{
    (void)p;
    /* A port that is bound but not listening answers SYN with RST; keeping
     * it bound means nobody else can start listening on it meanwhile. */
    int bfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (!TCHECK(bfd >= 0))
        return -EIO;
    struct sockaddr_in addr;
    memset(&addr, 0, sizeof addr);
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof addr;
    TCHECK_EQ(bind(bfd, (struct sockaddr *)&addr, sizeof addr), 0);
    TCHECK_EQ(getsockname(bfd, (struct sockaddr *)&addr, &len), 0);
    TCHECK(addr.sin_port != 0);

    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (TCHECK(fd >= 0)) {
        TCHECK_EQ(tr_connect(fd, (struct sockaddr *)&addr, sizeof addr), -ECONNREFUSED);
        TCHECK_EQ(tr_close(fd), 0);
    }
    TCHECK_EQ(tr_close(bfd), 0);
    return 0;
}

static void test_ops_connect_refused(void **state)
{
    (void)state;
    assert_int_equal(tt_run(fn_connect_refused, NULL), 0);
}

/* ----------------------------------------------------------------- main */

int main(void)
{
    /* Writing to a pipe or socket without a reader must show as -EPIPE, not
     * kill the suite. */
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        T(test_ops_socketpair_send_recv),
        T(test_ops_tcp_accept_connect),
        T(test_ops_connect_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
