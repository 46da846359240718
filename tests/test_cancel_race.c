/* SPDX-License-Identifier: MIT */
/*
 * Description: the G5 races, where a cancelled op completes anyway:
 * a reader cancelled while data is written gets either the real bytes or
 * -ECANCELED with the bytes still there (no byte lost, none duplicated); a
 * cancelled tr_accept that completed returns its fd, so no fd leaks. Seeded,
 * so every run replays the same interleavings.
 * White-box parking: tr_test_cancel.h.
 */
#define _GNU_SOURCE /* pipe2, accept4, strsignal */
#include "tr_test_cancel.h"

/* ------------------------------------------------------------ G5: read race */

#define RACE_ITERS 10000
#define RACE_MAX 64

struct race_rd {
    int fd;
    int sock;
    unsigned char buf[RACE_MAX];
    ssize_t res;
    int cancel_issued; /* set by the driver once tr_cancel returned */
    int after;
};

/* Waits (yielding, results ignored: they may be -ECANCELED) until the
 * driver has called tr_cancel, so that the probe call after it shows the
 * cancel for sure; a cancel that hit the probe itself could otherwise lose
 * to the probe's real result, as G5 allows. */
static int probe_after_cancel(const int *cancel_issued)
{
    for (int i = 0; i < 1000 && !*cancel_issued; i++)
        (void)tr_yield();
    return tr_nop();
}

static int race_reader(void *p)
{
    struct race_rd *r = p;
    r->res = r->sock ? tr_recv(r->fd, r->buf, sizeof(r->buf), 0)
                     : tr_read(r->fd, r->buf, sizeof(r->buf), -1);
    r->after = probe_after_cancel(&r->cancel_issued);
    return 0;
}

/* Reads whatever is left without blocking; returns the byte count. */
static int drain_nb(int fd, int sock, unsigned char *out, int cap)
{
    int total = 0;
    int fl = 0;
    if (!sock) {
        fl = fcntl(fd, F_GETFL);
        TCHECK(fl >= 0);
        TCHECK_EQ(fcntl(fd, F_SETFL, fl | O_NONBLOCK), 0);
    }
    /* Bound: at most RACE_MAX bytes are ever in flight, one per read at least. */
    for (int i = 0; i < RACE_MAX + 1 && total < cap; i++) {
        ssize_t n = sock ? recv(fd, out + total, (size_t)(cap - total), MSG_DONTWAIT)
                         : read(fd, out + total, (size_t)(cap - total));
        if (n <= 0) {
            TCHECK(n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK));
            break;
        }
        total += (int)n;
    }
    if (!sock)
        TCHECK_EQ(fcntl(fd, F_SETFL, fl), 0);
    return total;
}

struct race_ctx {
    int pfd[2];
    int sp[2];
    uint64_t written, received, drained;
    int n_real, n_cancelled, n_esrch, iters;
};

static int race_main(void *p)
{
    struct race_ctx *c = p;
    for (int it = 0; it < RACE_ITERS; it++) {
        uint64_t x = prng();
        int sock = (int)(x & 1);
        int n = 1 + (int)((x >> 1) % RACE_MAX);
        int cancel_first = (int)((x >> 8) & 1);
        int k = (int)((x >> 9) & 3);
        int via_ring = (int)((x >> 11) & 1);
        int rfd = sock ? c->sp[0] : c->pfd[0];
        int wfd = sock ? c->sp[1] : c->pfd[1];
        unsigned char out[RACE_MAX], left[RACE_MAX * 2];
        for (int b = 0; b < n; b++)
            out[b] = (unsigned char)(it * 131 + b * 7 + 1);

        struct race_rd rd;
        memset(&rd, 0, sizeof(rd));
        rd.fd = rfd;
        rd.sock = sock;
        tr_task *r = NULL;
        TCHECK_EQ(tr_spawn(NULL, &r, race_reader, &rd, NULL), 0);
        if (!wait_parked(r, TR_WAIT_OP)) {
            TCHECK(!"reader never parked");
            (void)tr_cancel(r);
            (void)tr_join(r, NULL);
            break;
        }
        int crc;
        ssize_t w;
        if (!cancel_first) {
            w = via_ring ? tr_write(wfd, out, (size_t)n, -1) : write(wfd, out, (size_t)n);
            yields(k);
            crc = tr_cancel(r);
            rd.cancel_issued = 1;
        } else {
            crc = tr_cancel(r);
            rd.cancel_issued = 1;
            yields(k);
            w = via_ring ? tr_write(wfd, out, (size_t)n, -1) : write(wfd, out, (size_t)n);
        }
        TCHECK_EQ(w, n);
        TCHECK_EQ(tr_join(r, NULL), 0);
        c->written += (uint64_t)n;

        int got = rd.res > 0 ? (int)rd.res : 0;
        if (rd.res > 0) {
            TCHECK(rd.res <= n);
            TCHECK(memcmp(rd.buf, out, (size_t)got) == 0);
            c->n_real++;
        } else {
            TCHECK_EQ(rd.res, -ECANCELED);
            c->n_cancelled++;
        }
        int d = drain_nb(rfd, sock, left, (int)sizeof(left));
        TCHECK_EQ(got + d, n);
        if (got + d == n)
            TCHECK(memcmp(left, out + got, (size_t)d) == 0);
        c->received += (uint64_t)got;
        c->drained += (uint64_t)d;
        if (crc == 0) {
            TCHECK_EQ(rd.after, -ECANCELED); /* the cancel shows at the next call */
        } else {
            /* The reader ended with its data before the cancel came. */
            TCHECK_EQ(crc, -ESRCH);
            TCHECK(!cancel_first);
            TCHECK(rd.res > 0);
            TCHECK_EQ(rd.after, 0);
            c->n_esrch++;
        }
        c->iters++;
        if (tr_test_failures() > 20)
            break;
    }
    return 0;
}

/* G5: a reader parked on a pipe or socketpair is cancelled while data is
 * written, in varying orders. Either it got the real bytes or -ECANCELED and
 * the bytes are still there: no byte lost, none duplicated. */
static void test_cancel_race_read_no_byte_lost(void **state)
{
    (void)state;
    struct race_ctx c;
    memset(&c, 0, sizeof(c));
    make_pipe(c.pfd);
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, c.sp), 0);
    prng_state = 0x5eed7a5c12ab34cdull;
    print_message("seed 0x5eed7a5c12ab34cd\n");
    tr_engine *e = eng_new(NULL);
    assert_int_equal(tr_spawn(e, NULL, race_main, &c, NULL), 0);
    eng_finish(e);
    print_message("%d iterations: %d real results, %d cancelled (%d ended before the "
                  "cancel); %llu bytes written, %llu received, %llu drained\n",
                  c.iters, c.n_real, c.n_cancelled, c.n_esrch, (unsigned long long)c.written,
                  (unsigned long long)c.received, (unsigned long long)c.drained);
    assert_int_equal(c.iters, RACE_ITERS);
    assert_int_equal(c.n_real + c.n_cancelled, RACE_ITERS);
    assert_int_equal(c.written, c.received + c.drained);
    close_pair(c.pfd);
    close_pair(c.sp);
}

/* ---------------------------------------------------------- G5: accept race */

#define ACC_ITERS 5000

struct acc_rd {
    int lfd;
    int res;
    int cancel_issued;
    int after;
};

static int acc_acceptor(void *p)
{
    struct acc_rd *a = p;
    a->res = tr_accept(a->lfd, NULL, NULL, SOCK_CLOEXEC);
    a->after = probe_after_cancel(&a->cancel_issued);
    return 0;
}

struct acc_ctx {
    int lfd;
    struct sockaddr_un addr;
    socklen_t addr_len;
    int by_task, drained, n_esrch, iters, connects;
};

static int acc_connect(struct acc_ctx *c)
{
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    TCHECK(fd >= 0);
    if (fd < 0)
        return -1;
    TCHECK_EQ(connect(fd, (struct sockaddr *)&c->addr, c->addr_len), 0);
    c->connects++;
    return fd;
}

/* Accepts (and closes) whatever connections wait in the backlog, without
 * blocking: poll with a zero timeout first. */
static int acc_drain(int lfd)
{
    int n = 0;
    for (int i = 0; i < 8; i++) {
        struct pollfd pf = {.fd = lfd, .events = POLLIN, .revents = 0};
        if (poll(&pf, 1, 0) <= 0)
            break;
        int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
        if (fd < 0)
            break;
        close(fd);
        n++;
    }
    return n;
}

static int acc_main(void *p)
{
    struct acc_ctx *c = p;
    for (int it = 0; it < ACC_ITERS; it++) {
        uint64_t x = prng();
        int cancel_first = (int)(x & 1);
        int k = (int)((x >> 1) & 3);
        struct acc_rd a = {c->lfd, -1, 0, 0};
        tr_task *t = NULL;
        TCHECK_EQ(tr_spawn(NULL, &t, acc_acceptor, &a, NULL), 0);
        if (!wait_parked(t, TR_WAIT_OP)) {
            TCHECK(!"acceptor never parked");
            (void)tr_cancel(t);
            (void)tr_join(t, NULL);
            break;
        }
        int cfd, crc;
        if (!cancel_first) {
            cfd = acc_connect(c);
            yields(k);
            crc = tr_cancel(t);
            a.cancel_issued = 1;
        } else {
            crc = tr_cancel(t);
            a.cancel_issued = 1;
            yields(k);
            cfd = acc_connect(c);
        }
        TCHECK_EQ(tr_join(t, NULL), 0);
        int mine = 0;
        if (a.res >= 0) {
            TCHECK(fcntl(a.res, F_GETFD) >= 0);
            TCHECK(a.res != c->lfd && a.res != cfd);
            close(a.res);
            mine = 1;
            c->by_task++;
        } else {
            TCHECK_EQ(a.res, -ECANCELED);
        }
        int d = acc_drain(c->lfd);
        c->drained += d;
        TCHECK_EQ(mine + d, 1); /* exactly one connection, accepted once */
        if (crc == 0) {
            TCHECK_EQ(a.after, -ECANCELED);
        } else {
            TCHECK_EQ(crc, -ESRCH);
            TCHECK(a.res >= 0);
            c->n_esrch++;
        }
        if (cfd >= 0)
            close(cfd);
        c->iters++;
        if (tr_test_failures() > 20)
            break;
    }
    return 0;
}

/* G5: a cancelled tr_accept that completed anyway returns its fd, which the
 * test closes; a cancelled one leaves the connection in the backlog. No fd
 * leaks: the process's fd count is the same before and after. */
static void test_cancel_race_accept_never_leaks_fd(void **state)
{
    (void)state;
    struct acc_ctx c;
    memset(&c, 0, sizeof(c));
    int fds_before = count_fds();
    assert_true(fds_before > 0);

    c.lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(c.lfd >= 0);
    c.addr.sun_family = AF_UNIX;
    /* Abstract namespace: nothing to unlink, unique per process. */
    int len = snprintf(c.addr.sun_path + 1, sizeof(c.addr.sun_path) - 1, "taskring-test-cancel-%d",
                       (int)getpid());
    c.addr_len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + (size_t)len);
    assert_int_equal(bind(c.lfd, (struct sockaddr *)&c.addr, c.addr_len), 0);
    assert_int_equal(listen(c.lfd, 64), 0);

    prng_state = 0xacce97ace0fd1e55ull;
    tr_engine *e = eng_new(NULL);
    assert_int_equal(tr_spawn(e, NULL, acc_main, &c, NULL), 0);
    eng_finish(e);
    close(c.lfd);
    print_message("%d iterations: %d accepted by the task (%d ended before the cancel), "
                  "%d left in the backlog\n",
                  c.iters, c.by_task, c.n_esrch, c.drained);
    assert_int_equal(c.iters, ACC_ITERS);
    assert_int_equal(c.by_task + c.drained, c.connects);
    assert_int_equal(c.connects, ACC_ITERS);
    assert_int_equal(count_fds(), fds_before);
}

/* ----------------------------------------------------------------- main */

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_cancel_race_read_no_byte_lost),
        T(test_cancel_race_accept_never_leaks_fd),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
