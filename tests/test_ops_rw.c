/* SPDX-License-Identifier: MIT */
/*
 * Description: operations on pipes and temp files: read/write
 * (explicit offsets and the file position, any negative offset, a reader
 * parked until a write), poll, openat, close (the fd is really gone), fsync.
 * Every test: a fresh engine, the audit, the same fds after (tr_test_ops.h).
 */
#define _GNU_SOURCE /* pipe2 */
#include "tr_test_ops.h"

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

/* ----------------------------------------------------------------- main */

int main(void)
{
    /* Writing to a pipe or socket without a reader must show as -EPIPE, not
     * kill the suite. */
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        T(test_ops_pipe_read_write),
        T(test_ops_pipe_read_parks_until_write),
        T(test_ops_file_read_write_offsets),
        T(test_ops_file_any_negative_offset_uses_position),
        T(test_ops_poll_pipe),
        T(test_ops_openat),
        T(test_ops_close),
        T(test_ops_fsync),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
