/* SPDX-License-Identifier: MIT */
/*
 * work_file.c — the file kind: a temp file (named in the tool's directory,
 * or O_TMPFILE) opened with tr_openat, written in random chunks at
 * explicit offsets, sometimes fsynced, read back in random chunks and
 * checked byte for byte, closed (and unlinked).
 */
#include "stress.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

/* Opens the task's file and registers it: 0 and its slot, or the
 * result to return (-ECANCELED, -EIO). in_open marks the openat whose fd
 * a kill would leak (the fd audit allows for it). */
static int file_open(struct tctx *c, bool named, int *slot)
{
    struct round *r = c->r;
    int flags = O_RDWR | O_CLOEXEC;
    if (named) {
        snprintf(c->path, sizeof(c->path), "%s/f%u-%u", g_dir, r->no, r->files++);
        flags |= O_CREAT | O_EXCL;
    } else {
        snprintf(c->path, sizeof(c->path), "%s", g_dir);
        flags |= O_TMPFILE;
    }
    c->in_open = true;
    int fd = tr_openat(AT_FDCWD, c->path, flags, 0600);
    opc();
    if (fd < 0) {
        c->in_open = false;
        if (fd == -ECANCELED)
            return fd;
        viol(r, "tr_openat(%s) = %s", c->path, strerror(-fd));
        return -EIO;
    }
    *slot = fdt_reg(r, c, fd, FR_OTHER, -1);
    c->in_open = false;
    return *slot < 0 ? -EIO : 0;
}

/* 1 to 8 chunks of the pattern at explicit offsets; *size is what the
 * file holds after them. */
static int file_write(struct tctx *c, int fd, uint64_t seed, uint64_t *size)
{
    struct round *r = c->r;
    unsigned n = 1 + (unsigned)rbelow(8);
    for (unsigned i = 0; i < n; i++) {
        size_t len = 1 + rbelow(BUF_SZ);
        pat_fill(seed, *size, c->buf, len);
        ssize_t w = tr_write(fd, c->buf, len, (int64_t)*size);
        opc();
        if (w == -ECANCELED)
            return -ECANCELED;
        if (w <= 0 || (size_t)w > len) {
            viol(r, "file tr_write(%zu) = %zd", len, w);
            return -EIO;
        }
        *size += (uint64_t)w;
    }
    return 0;
}

static int file_sync(struct round *r, int fd)
{
    int z = tr_fsync(fd);
    opc();
    if (z == -ECANCELED)
        return z;
    if (z != 0)
        viol(r, "tr_fsync = %s", strerror(-z));
    return 0;
}

/* Reads the size bytes back in random chunks and checks them. Bounded:
 * 1000 reads, each of at least a byte unless it fails. */
static int file_read_back(struct tctx *c, int fd, uint64_t seed, uint64_t size)
{
    struct round *r = c->r;
    for (uint64_t off = 0, it = 0; off < size && it < 1000; it++) {
        size_t len = 1 + rbelow(BUF_SZ);
        if (len > size - off)
            len = (size_t)(size - off);
        ssize_t g = tr_read(fd, c->buf, len, (int64_t)off);
        opc();
        if (g == -ECANCELED)
            return -ECANCELED;
        if (g <= 0) {
            viol(r, "file tr_read(%zu at %" PRIu64 " of %" PRIu64 ") = %zd", len, off, size, g);
            return -EIO;
        }
        size_t k = pat_check(seed, off, c->buf, (size_t)g);
        if (k != (size_t)g) {
            viol(r, "file data mismatch at offset %" PRIu64, off + k);
            return -EIO;
        }
        off += (uint64_t)g;
    }
    return 0;
}

int w_file(struct tctx *c)
{
    struct round *r = c->r;
    if (!fdt_admit(c, 1))
        return 0;
    c->buf = buf_get(r);
    if (!c->buf)
        return 0;
    bool named = !g_tmpfile_ok || pct(40);
    int slot = -1;
    int res = file_open(c, named, &slot);
    if (res != 0)
        return res;
    int fd = fd_of(r, slot);
    uint64_t seed = rnd(), size = 0;
    res = file_write(c, fd, seed, &size);
    if (res == 0 && pct(30))
        res = file_sync(r, fd);
    if (res == 0)
        res = file_read_back(c, fd, seed, size);
    tclose(r, slot);
    if (named)
        unlink(c->path);
    return res;
}
