/*
 * Description: every operation against real file descriptors — pipes,
 * AF_UNIX socketpairs, loopback TCP on an ephemeral port and temp files:
 * read/write (explicit offsets and the file position), recv/send, accept
 * (the fd works, the peer address is filled), connect (also refused), poll,
 * openat, close (the fd is really gone), fsync, sleep (deadline order), nop,
 * tr_op with a custom prep, -EBADF on invalid fds, -EPERM outside a task,
 * and a producer/consumer pair moving 1 MiB through a pipe.
 *
 * Every test runs in a fresh engine, ends with the quiescence audit and
 * checks that the number of open fds is the same before and after.
 *
 * Checks made inside a task never use cmocka's assert_* macros: those
 * longjmp out of the task's stack and would leave the engine (and the
 * thread's notion of "the current task") in the middle of a switch, which
 * turns one failure into a cascade in every later test. Tasks record
 * failures with TCHECK* (tr_test.h); the test asserts there were none once
 * the engine has stopped.
 */
#define _GNU_SOURCE /* pipe2 */
#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <liburing.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "tr_test.h"

/* ------------------------------------------------------------ helpers */

static bool fd_is_open(int fd)
{
    return fcntl(fd, F_GETFD) != -1;
}

static bool fd_is_closed(int fd)
{
    errno = 0;
    return fcntl(fd, F_GETFD) == -1 && errno == EBADF;
}

/* The engine of the test that runs now, for tasks that read its stats. */
static tr_engine *g_e;

/* Runs fn(arg) as the only task of a fresh engine (kept in g_e) made with
 * cfg (NULL: defaults), audits quiescence, task checks and fds, and returns
 * fn's result. */
static int tt_run_cfg(tr_fn fn, void *arg, const struct tr_config *cfg)
{
    int fds_before = count_fds();
    int res = tr_test_run_cfg(fn, arg, cfg, &g_e);
    tr_test_assert_clean();
    assert_int_equal(count_fds(), fds_before);
    return res;
}

static int tt_run(tr_fn fn, void *arg)
{
    return tt_run_cfg(fn, arg, NULL);
}

/* A temp file, already unlinked: it disappears with its last fd. */
static int tmp_file(void)
{
    char path[] = "/tmp/taskring-ops-XXXXXX";
    int fd = mkstemp(path);
    if (fd >= 0)
        unlink(path);
    return fd;
}

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* Reads exactly n bytes unless EOF or an error comes first; bounded by n
 * iterations since each successful read moves at least one byte. */
static ssize_t recv_all(int fd, void *buf, size_t n)
{
    size_t got = 0;
    for (size_t i = 0; i < n && got < n; i++) {
        ssize_t r = tr_recv(fd, (char *)buf + got, n - got, 0);
        if (r <= 0)
            return got > 0 ? (ssize_t)got : r;
        got += (size_t)r;
    }
    return (ssize_t)got;
}

/* -------------------------------------------------------------- nop */

static int fn_nops(void *p)
{
    (void)p;
    struct tr_stats before = stats_of(g_e);
    for (int i = 0; i < 100; i++)
        TCHECK_EQ(tr_nop(), 0);
    struct tr_stats after = stats_of(g_e);
    TCHECK(after.ops_submitted >= before.ops_submitted + 100);
    TCHECK(after.ops_completed >= before.ops_completed + 100);
    return 0;
}

static void test_ops_nop(void **state)
{
    (void)state;
    assert_int_equal(tt_run(fn_nops, NULL), 0);
}

/* ----------------------------------------------------------- read/write */

static int fn_pipe_rw(void *p)
{
    (void)p;
    int pfd[2];
    if (!TCHECK_EQ(pipe2(pfd, O_CLOEXEC), 0))
        return -EIO;
    char buf[16] = {0};
    TCHECK_EQ(tr_write(pfd[1], "hello", 5, -1), 5);
    TCHECK_EQ(tr_read(pfd[0], buf, sizeof buf, -1), 5);
    TCHECK(memcmp(buf, "hello", 5) == 0);
    /* A zero-length read and write complete with 0. */
    TCHECK_EQ(tr_write(pfd[1], buf, 0, -1), 0);
    TCHECK_EQ(tr_close(pfd[1]), 0);
    /* EOF once the write end is gone. */
    TCHECK_EQ(tr_read(pfd[0], buf, sizeof buf, -1), 0);
    TCHECK_EQ(tr_close(pfd[0]), 0);
    return 0;
}

static void test_ops_pipe_read_write(void **state)
{
    (void)state;
    assert_int_equal(tt_run(fn_pipe_rw, NULL), 0);
}

/* A reader parked on an empty pipe wakes when another task writes. */
struct pipe_wait {
    int pfd[2];
    int wrote;
    int read_saw_write;
    char got[8];
};

static int fn_pipe_reader(void *p)
{
    struct pipe_wait *pw = p;
    ssize_t r = tr_read(pw->pfd[0], pw->got, sizeof pw->got, -1);
    pw->read_saw_write = pw->wrote;
    return (int)r;
}

static int fn_pipe_writer(void *p)
{
    struct pipe_wait *pw = p;
    for (int i = 0; i < 3; i++)
        TCHECK_EQ(tr_yield(), 0);
    pw->wrote = 1;
    return (int)tr_write(pw->pfd[1], "xyz", 3, -1);
}

static int fn_pipe_wait(void *p)
{
    struct pipe_wait *pw = p;
    if (!TCHECK_EQ(pipe2(pw->pfd, O_CLOEXEC), 0))
        return -EIO;
    tr_task *r = NULL, *w = NULL;
    int rr = -1, wr = -1;
    TCHECK_EQ(tr_spawn(NULL, &r, fn_pipe_reader, pw, NULL), 0);
    TCHECK_EQ(tr_spawn(NULL, &w, fn_pipe_writer, pw, NULL), 0);
    TCHECK_EQ(tr_join(r, &rr), 0);
    TCHECK_EQ(tr_join(w, &wr), 0);
    TCHECK_EQ(rr, 3);
    TCHECK_EQ(wr, 3);
    TCHECK_EQ(pw->read_saw_write, 1);
    TCHECK(memcmp(pw->got, "xyz", 3) == 0);
    TCHECK_EQ(tr_close(pw->pfd[0]), 0);
    TCHECK_EQ(tr_close(pw->pfd[1]), 0);
    return 0;
}

static void test_ops_pipe_read_parks_until_write(void **state)
{
    (void)state;
    struct pipe_wait pw;
    memset(&pw, 0, sizeof pw);
    assert_int_equal(tt_run(fn_pipe_wait, &pw), 0);
}

static int fn_file_offsets(void *p)
{
    (void)p;
    int fd = tmp_file();
    if (!TCHECK(fd >= 0))
        return -EIO;
    char buf[32];
    struct stat sb;

    /* Explicit offsets: pwrite/pread semantics, the position stays put. */
    TCHECK_EQ(tr_write(fd, "abc", 3, 100), 3);
    TCHECK_EQ(tr_write(fd, "0123456789", 10, 0), 10);
    TCHECK_EQ(fstat(fd, &sb), 0);
    TCHECK_EQ(sb.st_size, 103);
    TCHECK_EQ(lseek(fd, 0, SEEK_CUR), 0);
    memset(buf, 'z', sizeof buf);
    TCHECK_EQ(tr_read(fd, buf, 3, 100), 3);
    TCHECK(memcmp(buf, "abc", 3) == 0);
    memset(buf, 'z', sizeof buf);
    TCHECK_EQ(tr_read(fd, buf, 10, 98), 5); /* short: the file ends at 103 */
    TCHECK(memcmp(buf, "\0\0abc", 5) == 0);
    TCHECK_EQ(tr_read(fd, buf, 10, 4096), 0); /* past the end */
    TCHECK_EQ(tr_read(fd, buf, 4, 3), 4);
    TCHECK(memcmp(buf, "3456", 4) == 0);
    TCHECK_EQ(lseek(fd, 0, SEEK_CUR), 0);

    /* off = -1: the file position is used and advanced. */
    TCHECK_EQ(tr_write(fd, "XY", 2, -1), 2);
    TCHECK_EQ(lseek(fd, 0, SEEK_CUR), 2);
    memset(buf, 'z', sizeof buf);
    TCHECK_EQ(tr_read(fd, buf, 3, -1), 3);
    TCHECK(memcmp(buf, "234", 3) == 0);
    TCHECK_EQ(lseek(fd, 0, SEEK_CUR), 5);
    TCHECK_EQ(lseek(fd, 101, SEEK_SET), 101);
    TCHECK_EQ(tr_read(fd, buf, sizeof buf, -1), 2);
    TCHECK(memcmp(buf, "bc", 2) == 0);
    TCHECK_EQ(lseek(fd, 0, SEEK_CUR), 103);
    TCHECK_EQ(tr_read(fd, buf, sizeof buf, -1), 0);
    TCHECK_EQ(pread(fd, buf, 5, 0), 5);
    TCHECK(memcmp(buf, "XY234", 5) == 0);

    TCHECK_EQ(tr_fsync(fd), 0);
    TCHECK_EQ(tr_close(fd), 0);
    return 0;
}

static void test_ops_file_read_write_offsets(void **state)
{
    (void)state;
    assert_int_equal(tt_run(fn_file_offsets, NULL), 0);
}

/* The header promises "off < 0", not only -1, uses the file position. */
static int fn_file_negative_offset(void *p)
{
    (void)p;
    int fd = tmp_file();
    if (!TCHECK(fd >= 0))
        return -EIO;
    char buf[8] = {0};
    TCHECK_EQ(tr_write(fd, "hello", 5, -2), 5);
    TCHECK_EQ(lseek(fd, 0, SEEK_CUR), 5);
    TCHECK_EQ(lseek(fd, 1, SEEK_SET), 1);
    TCHECK_EQ(tr_read(fd, buf, 3, INT64_MIN), 3);
    TCHECK(memcmp(buf, "ell", 3) == 0);
    TCHECK_EQ(lseek(fd, 0, SEEK_CUR), 4);
    TCHECK_EQ(tr_close(fd), 0);
    return 0;
}

static void test_ops_file_any_negative_offset_uses_position(void **state)
{
    (void)state;
    assert_int_equal(tt_run(fn_file_negative_offset, NULL), 0);
}

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

/* ---------------------------------------------------------------- poll */

struct pollw {
    int pfd[2];
    int wrote;
    int poll_res;
    int poll_saw_write;
};

static int fn_poller(void *p)
{
    struct pollw *pw = p;
    pw->poll_res = tr_poll(pw->pfd[0], POLLIN);
    pw->poll_saw_write = pw->wrote;
    return 0;
}

static int fn_poll_writer(void *p)
{
    struct pollw *pw = p;
    for (int i = 0; i < 3; i++)
        TCHECK_EQ(tr_yield(), 0);
    pw->wrote = 1;
    TCHECK_EQ(tr_write(pw->pfd[1], "!", 1, -1), 1);
    return 0;
}

static int fn_poll(void *p)
{
    struct pollw *pw = p;
    if (!TCHECK_EQ(pipe2(pw->pfd, O_CLOEXEC), 0))
        return -EIO;
    tr_task *a = NULL, *b = NULL;
    TCHECK_EQ(tr_spawn(NULL, &a, fn_poller, pw, NULL), 0);
    TCHECK_EQ(tr_spawn(NULL, &b, fn_poll_writer, pw, NULL), 0);
    TCHECK_EQ(tr_join(a, NULL), 0);
    TCHECK_EQ(tr_join(b, NULL), 0);
    TCHECK(pw->poll_res > 0);
    TCHECK((pw->poll_res & POLLIN) != 0);
    TCHECK_EQ(pw->poll_saw_write, 1);

    /* Already readable: completes at once. The write end is writable. */
    int r = tr_poll(pw->pfd[0], POLLIN);
    TCHECK(r > 0 && (r & POLLIN) != 0);
    r = tr_poll(pw->pfd[1], POLLOUT);
    TCHECK(r > 0 && (r & POLLOUT) != 0);
    char c = 0;
    TCHECK_EQ(tr_read(pw->pfd[0], &c, 1, -1), 1);
    TCHECK_EQ(c, '!');
    /* A closed write end shows as POLLHUP on the read end. */
    TCHECK_EQ(tr_close(pw->pfd[1]), 0);
    r = tr_poll(pw->pfd[0], POLLIN);
    TCHECK(r > 0 && (r & POLLHUP) != 0);
    TCHECK_EQ(tr_close(pw->pfd[0]), 0);
    return 0;
}

static void test_ops_poll_pipe(void **state)
{
    (void)state;
    struct pollw pw;
    memset(&pw, 0, sizeof pw);
    assert_int_equal(tt_run(fn_poll, &pw), 0);
}

/* -------------------------------------------------------------- openat */

static int fn_openat(void *p)
{
    (void)p;
    char dir[] = "/tmp/taskring-ops-dir-XXXXXX";
    if (!TCHECK(mkdtemp(dir) != NULL))
        return -EIO;
    char path[128];
    snprintf(path, sizeof path, "%s/file", dir);

    /* Create with AT_FDCWD and an absolute path. */
    int fd = tr_openat(AT_FDCWD, path, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0600);
    if (TCHECK(fd >= 0)) {
        struct stat sb;
        TCHECK_EQ(fstat(fd, &sb), 0);
        TCHECK(S_ISREG(sb.st_mode));
        TCHECK_EQ(sb.st_mode & 0777, 0600);
        TCHECK((fcntl(fd, F_GETFD) & FD_CLOEXEC) != 0);
        TCHECK_EQ(tr_write(fd, "content", 7, 0), 7);
        TCHECK_EQ(tr_close(fd), 0);
    }
    /* O_EXCL on an existing file. */
    TCHECK_EQ(tr_openat(AT_FDCWD, path, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0600), -EEXIST);

    /* Open relative to a directory fd and read back. */
    int dfd = tr_openat(AT_FDCWD, dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0);
    if (TCHECK(dfd >= 0)) {
        fd = tr_openat(dfd, "file", O_RDONLY | O_CLOEXEC, 0);
        if (TCHECK(fd >= 0)) {
            char buf[16] = {0};
            TCHECK_EQ(tr_read(fd, buf, sizeof buf, -1), 7);
            TCHECK(memcmp(buf, "content", 7) == 0);
            TCHECK_EQ(tr_close(fd), 0);
        }
        TCHECK_EQ(tr_openat(dfd, "missing", O_RDONLY | O_CLOEXEC, 0), -ENOENT);
        TCHECK_EQ(tr_close(dfd), 0);
    }

    /* Missing paths. */
    char missing[160];
    snprintf(missing, sizeof missing, "%s/no-such-dir/no-such-file", dir);
    TCHECK_EQ(tr_openat(AT_FDCWD, missing, O_RDONLY | O_CLOEXEC, 0), -ENOENT);
    snprintf(missing, sizeof missing, "%s/no-such-file", dir);
    TCHECK_EQ(tr_openat(AT_FDCWD, missing, O_RDONLY | O_CLOEXEC, 0), -ENOENT);

    TCHECK_EQ(unlink(path), 0);
    TCHECK_EQ(rmdir(dir), 0);
    return 0;
}

static void test_ops_openat(void **state)
{
    (void)state;
    assert_int_equal(tt_run(fn_openat, NULL), 0);
}

/* --------------------------------------------------------- close/fsync */

static int fn_close(void *p)
{
    (void)p;
    int pfd[2];
    if (!TCHECK_EQ(pipe2(pfd, O_CLOEXEC), 0))
        return -EIO;
    TCHECK(fd_is_open(pfd[0]));
    TCHECK_EQ(tr_close(pfd[0]), 0);
    TCHECK(fd_is_closed(pfd[0]));
    /* The other end is untouched, and notices: writing gets -EPIPE (the
     * suite ignores SIGPIPE). */
    TCHECK(fd_is_open(pfd[1]));
    TCHECK_EQ(tr_write(pfd[1], "x", 1, -1), -EPIPE);
    TCHECK_EQ(tr_close(pfd[1]), 0);
    TCHECK(fd_is_closed(pfd[1]));
    /* Closing twice: the second is -EBADF. */
    TCHECK_EQ(tr_close(pfd[1]), -EBADF);

    /* A socket and a regular file close the same way. */
    int sv[2];
    if (TCHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0)) {
        TCHECK_EQ(tr_close(sv[0]), 0);
        TCHECK_EQ(tr_close(sv[1]), 0);
        TCHECK(fd_is_closed(sv[0]));
        TCHECK(fd_is_closed(sv[1]));
    }
    int fd = tmp_file();
    if (TCHECK(fd >= 0)) {
        TCHECK_EQ(tr_close(fd), 0);
        TCHECK(fd_is_closed(fd));
    }
    return 0;
}

static void test_ops_close(void **state)
{
    (void)state;
    assert_int_equal(tt_run(fn_close, NULL), 0);
}

static int fn_fsync(void *p)
{
    (void)p;
    int fd = tmp_file();
    if (!TCHECK(fd >= 0))
        return -EIO;
    static char block[4096];
    memset(block, 0x3c, sizeof block);
    TCHECK_EQ(tr_write(fd, block, sizeof block, 0), (ssize_t)sizeof block);
    TCHECK_EQ(tr_fsync(fd), 0);
    TCHECK_EQ(tr_write(fd, block, 10, -1), 10);
    TCHECK_EQ(tr_fsync(fd), 0);
    struct stat sb;
    TCHECK_EQ(fstat(fd, &sb), 0);
    TCHECK_EQ(sb.st_size, 4096);
    TCHECK_EQ(tr_close(fd), 0);
    return 0;
}

static void test_ops_fsync(void **state)
{
    (void)state;
    assert_int_equal(tt_run(fn_fsync, NULL), 0);
}

/* ---------------------------------------------------------------- sleep */

static int fn_sleep_1ms(void *p)
{
    (void)p;
    uint64_t t0 = now_ns();
    TCHECK_EQ(tr_sleep_ns(1000000), 0);
    /* Sleep never returns early (a lower bound cannot flake). */
    TCHECK(now_ns() - t0 >= 1000000);
    TCHECK_EQ(tr_sleep_ns(0), 0);
    TCHECK_EQ(tr_sleep_ns(1), 0);
    return 0;
}

static void test_ops_sleep_returns_zero(void **state)
{
    (void)state;
    assert_int_equal(tt_run(fn_sleep_1ms, NULL), 0);
}

struct sleep_order {
    int log[4];
    int n;
    uint64_t pending_while_asleep;
};

struct sleeper {
    struct sleep_order *so;
    uint64_t ns;
    int who;
};

static int fn_sleeper(void *p)
{
    struct sleeper *s = p;
    int r = tr_sleep_ns(s->ns);
    if (s->so->n < 4)
        s->so->log[s->so->n++] = s->who;
    return r;
}

static int fn_sleep_order(void *p)
{
    struct sleep_order *so = p;
    struct sleeper slow = {so, 2000000, 2}, fast = {so, 1000000, 1};
    tr_task *a = NULL, *b = NULL;
    int ra = -1, rb = -1;
    /* The longer sleep starts first; the shorter deadline must still win. */
    TCHECK_EQ(tr_spawn(NULL, &a, fn_sleeper, &slow, NULL), 0);
    TCHECK_EQ(tr_spawn(NULL, &b, fn_sleeper, &fast, NULL), 0);
    TCHECK_EQ(tr_yield(), 0); /* both run once and park in their sleep */
    so->pending_while_asleep = stats_of(g_e).timers_pending;
    TCHECK_EQ(tr_join(a, &ra), 0);
    TCHECK_EQ(tr_join(b, &rb), 0);
    TCHECK_EQ(ra, 0);
    TCHECK_EQ(rb, 0);
    return 0;
}

static void test_ops_sleep_deadline_order(void **state)
{
    (void)state;
    struct sleep_order so;
    memset(&so, 0, sizeof so);
    assert_int_equal(tt_run(fn_sleep_order, &so), 0);
    assert_int_equal(so.pending_while_asleep, 2);
    assert_int_equal(so.n, 2);
    assert_int_equal(so.log[0], 1);
    assert_int_equal(so.log[1], 2);
}

/* Ten sleepers started in one pass with shuffled deadlines 1..10 ms wake
 * in deadline order. */
#define NSLEEPERS 10
struct sleep_many {
    int log[NSLEEPERS];
    int n;
};

struct many_sleeper {
    struct sleep_many *sm;
    int ms;
};

static int fn_many_sleeper(void *p)
{
    struct many_sleeper *s = p;
    int r = tr_sleep_ns((uint64_t)s->ms * 1000000u);
    if (s->sm->n < NSLEEPERS)
        s->sm->log[s->sm->n++] = s->ms;
    return r;
}

static int fn_sleep_many(void *p)
{
    struct sleep_many *sm = p;
    static const int ms[NSLEEPERS] = {5, 1, 8, 3, 10, 2, 7, 4, 9, 6};
    struct many_sleeper s[NSLEEPERS];
    tr_task *t[NSLEEPERS];
    for (int i = 0; i < NSLEEPERS; i++) {
        s[i].sm = sm;
        s[i].ms = ms[i];
        TCHECK_EQ(tr_spawn(NULL, &t[i], fn_many_sleeper, &s[i], NULL), 0);
    }
    for (int i = 0; i < NSLEEPERS; i++) {
        int r = -1;
        TCHECK_EQ(tr_join(t[i], &r), 0);
        TCHECK_EQ(r, 0);
    }
    return 0;
}

static void test_ops_sleep_many_wake_in_deadline_order(void **state)
{
    (void)state;
    struct sleep_many sm;
    memset(&sm, 0, sizeof sm);
    assert_int_equal(tt_run(fn_sleep_many, &sm), 0);
    assert_int_equal(sm.n, NSLEEPERS);
    for (int i = 0; i < NSLEEPERS; i++)
        assert_int_equal(sm.log[i], i + 1);
}

/* ------------------------------------------------------------- tr_op */

static void prep_nop(struct io_uring_sqe *sqe, void *ctx)
{
    int *calls = ctx;
    (*calls)++;
    io_uring_prep_nop(sqe);
}

struct rw_ctx {
    int fd;
    void *buf;
    unsigned n;
    uint64_t off;
};

static void prep_write(struct io_uring_sqe *sqe, void *ctx)
{
    struct rw_ctx *c = ctx;
    io_uring_prep_write(sqe, c->fd, c->buf, c->n, c->off);
}

static void prep_read(struct io_uring_sqe *sqe, void *ctx)
{
    struct rw_ctx *c = ctx;
    io_uring_prep_read(sqe, c->fd, c->buf, c->n, c->off);
}

static int fn_custom_op(void *p)
{
    (void)p;
    int calls = 0;
    TCHECK_EQ(tr_op(prep_nop, &calls), 0);
    TCHECK_EQ(calls, 1);
    TCHECK_EQ(tr_op(prep_nop, &calls), 0);
    TCHECK_EQ(calls, 2);
    TCHECK_EQ(tr_op(NULL, NULL), -EINVAL);

    int fd = tmp_file();
    if (!TCHECK(fd >= 0))
        return -EIO;
    char msg[] = "custom write";
    struct rw_ctx w = {fd, msg, 12, 7};
    TCHECK_EQ(tr_op(prep_write, &w), 12);
    char buf[32] = {0};
    TCHECK_EQ(pread(fd, buf, 12, 7), 12);
    TCHECK(memcmp(buf, "custom write", 12) == 0);
    memset(buf, 0, sizeof buf);
    struct rw_ctx r = {fd, buf, sizeof buf, 7};
    TCHECK_EQ(tr_op(prep_read, &r), 12);
    TCHECK(memcmp(buf, "custom write", 12) == 0);
    TCHECK_EQ(tr_close(fd), 0);

    /* The kernel's error comes back as is. */
    struct rw_ctx bad = {-1, buf, 1, 0};
    TCHECK_EQ(tr_op(prep_read, &bad), -EBADF);
    return 0;
}

static void test_ops_custom_op(void **state)
{
    (void)state;
    assert_int_equal(tt_run(fn_custom_op, NULL), 0);
}

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

int main(void)
{
    /* Writing to a pipe or socket without a reader must show as -EPIPE, not
     * kill the suite. */
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        T(test_ops_nop),
        T(test_ops_pipe_read_write),
        T(test_ops_pipe_read_parks_until_write),
        T(test_ops_file_read_write_offsets),
        T(test_ops_file_any_negative_offset_uses_position),
        T(test_ops_socketpair_send_recv),
        T(test_ops_tcp_accept_connect),
        T(test_ops_connect_refused),
        T(test_ops_poll_pipe),
        T(test_ops_openat),
        T(test_ops_close),
        T(test_ops_fsync),
        T(test_ops_sleep_returns_zero),
        T(test_ops_sleep_deadline_order),
        T(test_ops_sleep_many_wake_in_deadline_order),
        T(test_ops_custom_op),
        T(test_ops_invalid_fd_ebadf),
        T(test_ops_outside_task_eperm),
        T(test_ops_many_parked_reads),
        T(test_ops_many_parked_reads_tiny_rings),
        T(test_ops_many_nops_one_pass_tiny_rings),
        T(test_ops_pipe_producer_consumer_1mib),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
