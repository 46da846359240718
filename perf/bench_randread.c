/* SPDX-License-Identifier: MIT */
/*
 * bench_randread.c — random 4 KiB buffered reads through taskring: IOPS.
 *
 *   bench_randread [--file PATH] [--size-mb 256] [--qd Q] (--seconds S | --ops N) [--async]
 *
 * Q tasks on one engine (TR_CFG_NO_SIGNALS, sq_entries >= Q) each loop
 * tr_read(fd, buf, 4096, off) at a random 4 KiB-aligned offset drawn from
 * their own xorshift64* generator, into their own 4 KiB-aligned buffer,
 * until S seconds have passed or N reads were issued in all. Every read must
 * return exactly 4096 bytes; anything else is an error (exit 1).
 *
 * The file (default /dev/shm/taskring-randread) is opened O_RDONLY, without
 * O_DIRECT: tmpfs has no O_DIRECT, and the anchor reads the same way. When
 * it is missing or smaller than --size-mb it is created (non-zero bytes).
 *
 * --async issues the same read through tr_op with IOSQE_ASYNC set, the
 * counterpart of fio's --force_async=1: the kernel then hands the read to an
 * io-wq worker at once instead of first trying it inline. tmpfs cannot read
 * without blocking (no FMODE_NOWAIT, RWF_NOWAIT fails with EOPNOTSUPP), so
 * every read ends up in io-wq either way; the flag only skips the failed
 * first attempt. The JSON line then says "impl":"taskring-async".
 *
 * Output, one JSON line on stdout:
 *   {"bench":"randread","impl":"taskring","params":{"qd":32},"value":IOPS,
 *    "unit":"IOPS","ops":N,"enters_per_op":X}
 * enters_per_op (io_uring_enter calls per read) shows how well the engine
 * batches; it is not part of the comparison.
 *
 * Anchors: fio's io_uring engine (fio 3.33) on the same file, pinned the
 * same way, one job:
 *   fio --name=rr --filename=/dev/shm/taskring-randread --ioengine=io_uring
 *       --rw=randread --bs=4k --iodepth=Q --size=256m --direct=0 --time_based
 *       --runtime=S --numjobs=1 --output-format=json
 * is the same kernel work as tr_read (IORING_OP_READ, plain buffer and fd,
 * DEFER_TASKRUN ring); adding
 *       --fixedbufs --registerfiles --force_async=1 --gtod_reduce=1
 *       --norandommap --randrepeat=0 --iodepth_batch_submit=Q
 *       --iodepth_batch_complete_min=max(1,Q/4)
 * is fio's strongest setting without SQPOLL (taskring has none), to hold
 * against --async. Both read from the page cache, so this measures per-op
 * overhead and the io-wq hand-off, not storage. Unpinned, the scheduler's
 * placement of the io-wq worker (same CPU as the submitter or not) swings
 * IOPS by up to 7x from run to run for both programs; `taskset -c 0` on
 * both makes runs repeatable.
 */
#include "taskring.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <liburing.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define BLOCK 4096u
#define QD_MAX 32768u /* the engine's largest SQ: one SQE per task must fit */

struct bench {
    int fd;
    uint64_t nblocks;   /* file size in blocks */
    uint64_t ops_limit; /* 0: run for seconds */
    uint64_t issued;    /* reads started (only counted with --ops) */
    uint64_t done;      /* reads that returned 4096 */
    uint64_t end_ns;    /* CLOCK_MONOTONIC deadline of a timed run, 0 with --ops */
    int stop;           /* set by the first error */
    int err;            /* first error: -errno, or -EIO for a short read */
    int async;          /* --async: tr_op + IOSQE_ASYNC instead of tr_read */
    unsigned char *bufs;
};

struct worker {
    struct bench *b;
    uint64_t rng;
    unsigned char *buf;
};

static struct bench B;

/* xorshift64* (Vigna): a few cycles per draw, good enough to spread offsets
 * evenly; a libc rand() would add a lock and a call to every op. */
static uint64_t rng_next(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *s = x;
    return x * 0x2545f4914f6cdd1dull;
}

/* splitmix64, only to turn a task index into a non-zero, unrelated seed. */
static uint64_t seed_of(uint64_t i)
{
    uint64_t z = (i + 1) * 0x9e3779b97f4a7c15ull;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    z ^= z >> 31;
    return z ? z : 1;
}

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

struct read_args {
    int fd;
    void *buf;
    uint64_t off;
};

static void prep_read_async(struct io_uring_sqe *sqe, void *ctx)
{
    struct read_args *a = ctx;
    io_uring_prep_read(sqe, a->fd, a->buf, BLOCK, a->off);
    sqe->flags |= IOSQE_ASYNC;
}

static int reader(void *arg)
{
    struct worker *w = arg;
    struct bench *b = w->b;
    while (!b->stop) {
        /* With --ops the budget is shared, so Q tasks issue N reads in all,
         * not N each. One thread: no atomics needed. */
        if (b->ops_limit && b->issued++ >= b->ops_limit)
            break;
        /* A timed run reads the clock before every op rather than having
         * a timer task end it: a sleeping task would make every wait of
         * the engine a timed one (an hrtimer armed and cancelled per
         * io_uring_enter), which fio's untimed waits do not pay. The vDSO
         * read costs tens of ns, as fio's own per-op timestamps do. */
        if (b->end_ns && now_ns() >= b->end_ns)
            break;
        uint64_t off = (rng_next(&w->rng) % b->nblocks) * BLOCK;
        ssize_t n;
        if (b->async) {
            struct read_args a = {b->fd, w->buf, off};
            n = tr_op(prep_read_async, &a);
        } else {
            n = tr_read(b->fd, w->buf, BLOCK, (int64_t)off);
        }
        if (n != (ssize_t)BLOCK) {
            if (!b->err)
                b->err = n < 0 ? (int)n : -EIO;
            b->stop = 1;
            return b->err;
        }
        b->done++;
    }
    return 0;
}

/* Creates or extends the file with non-zero bytes, so that no read of it can
 * be served by a hole (tmpfs would hand out the zero page without a copy). */
static int ensure_file(const char *path, uint64_t size)
{
    struct stat st;
    if (stat(path, &st) == 0 && (uint64_t)st.st_size >= size)
        return 0;
    int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0)
        return -errno;
    static unsigned char chunk[1 << 20];
    for (size_t i = 0; i < sizeof(chunk); i++)
        chunk[i] = (unsigned char)(i % 251 + 1);
    for (uint64_t off = 0; off < size;) {
        size_t n = size - off < sizeof(chunk) ? (size_t)(size - off) : sizeof(chunk);
        ssize_t w = pwrite(fd, chunk, n, (off_t)off);
        if (w <= 0) {
            int err = w < 0 ? -errno : -EIO;
            close(fd);
            return err;
        }
        off += (uint64_t)w;
    }
    return close(fd) < 0 ? -errno : 0;
}

static void usage(void)
{
    fprintf(stderr, "usage: bench_randread [--file PATH] [--size-mb MB] [--qd Q] "
                    "(--seconds S | --ops N) [--async]\n");
}

static int run(unsigned qd, double seconds)
{
    struct tr_config cfg;
    tr_config_init(&cfg);
    cfg.flags = TR_CFG_NO_SIGNALS;
    cfg.sq_entries = qd > 256 ? qd : 256; /* one SQE per reader fits */
    tr_engine *e;
    int err = tr_engine_create(&e, &cfg);
    if (err)
        return err;
    struct worker *w = calloc(qd, sizeof(*w));
    if (!w)
        return -ENOMEM;
    for (unsigned i = 0; i < qd && !err; i++) {
        w[i] = (struct worker){.b = &B, .rng = seed_of(i), .buf = B.bufs + (size_t)i * BLOCK};
        err = tr_spawn(e, NULL, reader, &w[i], NULL);
    }
    if (err) {
        /* Tasks already spawned must still run to be destroyed: stop them
         * before their first read. */
        B.stop = 1;
        tr_engine_run(e);
        tr_engine_destroy(e);
        free(w);
        return err;
    }
    uint64_t t0 = now_ns();
    if (!B.ops_limit)
        B.end_ns = t0 + (uint64_t)(seconds * 1e9);
    err = tr_engine_run(e);
    uint64_t t1 = now_ns();
    struct tr_stats st;
    tr_engine_stats(e, &st);
    int derr = tr_engine_destroy(e);
    free(w);
    if (err || derr)
        return err ? err : derr;
    if (B.err)
        return B.err;
    double secs = (double)(t1 - t0) / 1e9;
    printf("{\"bench\":\"randread\",\"impl\":\"taskring%s\",\"params\":{\"qd\":%u},"
           "\"value\":%.0f,\"unit\":\"IOPS\",\"ops\":%" PRIu64 ",\"enters_per_op\":%.4f}\n",
           B.async ? "-async" : "", qd, (double)B.done / secs, B.done,
           B.done ? (double)st.submit_calls / (double)B.done : 0.0);
    return 0;
}

int main(int argc, char **argv)
{
    const char *path = "/dev/shm/taskring-randread";
    uint64_t size_mb = 256;
    unsigned long qd = 32;
    double seconds = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--async")) {
            B.async = 1;
            continue;
        }
        if (i + 1 >= argc) {
            usage();
            return 2;
        }
        if (!strcmp(a, "--file"))
            path = argv[++i];
        else if (!strcmp(a, "--size-mb"))
            size_mb = strtoull(argv[++i], NULL, 10);
        else if (!strcmp(a, "--qd"))
            qd = strtoul(argv[++i], NULL, 10);
        else if (!strcmp(a, "--seconds"))
            seconds = strtod(argv[++i], NULL);
        else if (!strcmp(a, "--ops"))
            B.ops_limit = strtoull(argv[++i], NULL, 10);
        else {
            usage();
            return 2;
        }
    }
    if (qd == 0 || qd >= QD_MAX || size_mb == 0 || (seconds <= 0) == (B.ops_limit == 0)) {
        usage();
        return 2;
    }
    uint64_t size = size_mb << 20;
    int err = ensure_file(path, size);
    if (err) {
        fprintf(stderr, "bench_randread: create %s: %s\n", path, strerror(-err));
        return 1;
    }
    B.fd = open(path, O_RDONLY | O_CLOEXEC);
    if (B.fd < 0) {
        fprintf(stderr, "bench_randread: open %s: %s\n", path, strerror(errno));
        return 1;
    }
    /* Only the first size_mb of a larger file is read, as fio --size does. */
    B.nblocks = size / BLOCK;
    if (posix_memalign((void **)&B.bufs, BLOCK, (size_t)qd * BLOCK)) {
        fprintf(stderr, "bench_randread: out of memory\n");
        return 1;
    }
    err = run((unsigned)qd, seconds);
    close(B.fd);
    free(B.bufs);
    if (err) {
        fprintf(stderr, "bench_randread: %s\n", strerror(-err));
        return 1;
    }
    return 0;
}
