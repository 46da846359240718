/* SPDX-License-Identifier: MIT */
/*
 * work_stream_ends.c — a stream's two ends (work_stream.c makes the
 * stream). The writer sends the stream's pattern in random chunks at a
 * random pace and adds what the kernel accepted (results > 0); the reader
 * reads in random chunks (sometimes polling first), checks each byte
 * against the pattern and adds what it got. The length of an op in flight
 * is kept while it is in flight, so a task killed there widens the bounds
 * of the audit by exactly that op. After a cancel either end may do one
 * more op inside a shield (cleanup I/O). Some ops run in a scope of their
 * own whose deadline (0-2 ms) races them (work_scope.c checks the result
 * and the exit; a cut op moved no byte and is tried again), so expiries
 * in flight are held to the same accounting. The writer closes its end after
 * its last op; the reader closes its end, or keeps it open for the round
 * to drain exactly (audit.c).
 */
#include "stress.h"

#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>

/* One write or send of n bytes of the pattern from s->sent; scoped: in a
 * scope of its own whose deadline (0-2 ms ahead) may cut it short while
 * in flight (-ETIMEDOUT: nothing was written, the caller tries again). */
static ssize_t writer_op(struct tctx *c, struct stream *s, int fd, size_t n, int flags, bool scoped)
{
    struct scope1 q;
    pat_fill(s->seed, s->sent, c->buf, n);
    if (scoped)
        scope1_enter(c, &q);
    s->w_pending = (uint32_t)n;
    ssize_t w = s->kind == SK_PIPE ? tr_write(fd, c->buf, n, -1) : tr_send(fd, c->buf, n, flags);
    opc();
    s->w_pending = 0;
    if (scoped)
        w = scope1_leave(c, &q, w, "stream write");
    return w;
}

/* Sends until the plan is done, the reader is gone or a cancel comes
 * (bounded: 100,000 ops); returns whether it was cancelled. */
static bool writer_loop(struct tctx *c, struct stream *s, int fd)
{
    struct round *r = c->r;
    for (unsigned it = 0; s->sent < s->planned && it < 100000 && c->buf; it++) {
        uint64_t left = s->planned - s->sent;
        size_t n = 1 + rbelow(pct(50) ? 512 : BUF_SZ);
        if (n > left)
            n = (size_t)left;
        unsigned pace = (unsigned)rbelow(100);
        int z = 0;
        if (pace < 8)
            z = tr_sleep_ns(rbelow(2 * MS));
        else if (pace < 14)
            z = tr_yield();
        if (pace < 14) {
            opc();
            if (z == -ECANCELED)
                return true;
        }
        ssize_t w = writer_op(c, s, fd, n, MSG_NOSIGNAL | (s->waitall ? MSG_WAITALL : 0), pct(12));
        if (w > 0) {
            if ((size_t)w > n)
                viol(r, "stream writer: %zd bytes accepted of %zu", w, n);
            s->sent += (uint64_t)w;
            continue;
        }
        if (w == -ETIMEDOUT)
            continue; /* its scope's deadline: again */
        if (w == -ECANCELED)
            return true;
        if (w == -EPIPE || w == -ECONNRESET)
            break; /* the reader closed its end */
        viol(r, "stream writer (%s): %zd (%s)", sk_names[s->kind], w, strerror((int)-w));
        break;
    }
    return false;
}

/* Cleanup I/O after the cancel: one more chunk inside a shield. */
static void writer_shielded(struct tctx *c, struct stream *s, int fd)
{
    struct round *r = c->r;
    tr_shield_begin();
    size_t n = 1 + rbelow(1024);
    if (n > s->planned - s->sent)
        n = (size_t)(s->planned - s->sent);
    ssize_t w = writer_op(c, s, fd, n, MSG_NOSIGNAL, false);
    if (w > 0)
        s->sent += (uint64_t)w;
    else if (w != -ECANCELED && w != -EPIPE && w != -ECONNRESET)
        viol(r, "stream writer, shielded: %zd", w);
    tr_shield_end();
}

int w_writer(struct tctx *c)
{
    struct round *r = c->r;
    struct stream *s = &r->st[c->stream];
    s->wstate = SS_RUN;
    c->buf = buf_get(r);
    int fd = fd_of(r, s->wslot);
    bool cancelled = writer_loop(c, s, fd);
    if (cancelled && pct(30) && s->sent < s->planned && c->buf)
        writer_shielded(c, s, fd);
    s->wstate = (!cancelled && s->sent == s->planned) ? SS_CLEAN : SS_DIRTY;
    int slot = s->wslot;
    s->wslot = -1;
    tclose(r, slot);
    return cancelled ? -ECANCELED : 0;
}

/* One read or recv of at most n bytes into the task's buffer; scoped: as
 * writer_op's (-ETIMEDOUT: nothing was read). */
static ssize_t reader_op(struct tctx *c, struct stream *s, int fd, size_t n, int flags, bool scoped)
{
    struct scope1 q;
    if (scoped)
        scope1_enter(c, &q);
    s->r_pending = (uint32_t)n;
    ssize_t g = s->kind == SK_PIPE ? tr_read(fd, c->buf, n, -1) : tr_recv(fd, c->buf, n, flags);
    opc();
    s->r_pending = 0;
    if (scoped)
        g = scope1_leave(c, &q, g, "stream read");
    return g;
}

/* Adds g received bytes, checked against the pattern (what: "" or a note
 * for the message). */
static void reader_got(struct round *r, struct stream *s, const uint8_t *buf, ssize_t g,
                       const char *what)
{
    size_t k = pat_check(s->seed, s->recvd, buf, (size_t)g);
    if (k != (size_t)g)
        viol(r, "stream %td (%s): data mismatch at offset %" PRIu64 "%s", s - r->st,
             sk_names[s->kind], s->recvd + k, what);
    s->recvd += (uint64_t)g;
}

/* Reads until EOF, an error or a cancel (bounded: 1,000,000 ops);
 * returns whether it was cancelled. */
static bool reader_loop(struct tctx *c, struct stream *s, int fd)
{
    struct round *r = c->r;
    for (unsigned it = 0; it < 1000000 && c->buf; it++) {
        if (pct(10)) {
            int p = tr_poll(fd, POLLIN);
            opc();
            if (p == -ECANCELED)
                return true;
            if (p < 0 || !(p & (POLLIN | POLLHUP | POLLERR | POLLRDHUP)))
                viol(r, "stream reader: tr_poll = %d", p);
        }
        size_t n = 1 + rbelow(pct(50) ? 512 : BUF_SZ);
        ssize_t g = reader_op(c, s, fd, n, s->waitall ? MSG_WAITALL : 0, pct(12));
        if (g > 0) {
            reader_got(r, s, c->buf, g, "");
            if (s->recvd > s->sent + s->w_pending)
                viol(r, "stream %td (%s): received %" PRIu64 " > sent %" PRIu64 " (+%u in flight)",
                     s - r->st, sk_names[s->kind], s->recvd, s->sent, s->w_pending);
            continue;
        }
        if (g == 0) {
            s->eof = true;
            break;
        }
        if (g == -ETIMEDOUT)
            continue; /* its scope's deadline: again */
        if (g == -ECANCELED)
            return true;
        if (g == -ECONNRESET)
            break;
        viol(r, "stream reader (%s): %zd (%s)", sk_names[s->kind], g, strerror((int)-g));
        break;
    }
    return false;
}

/* Cleanup I/O after the cancel: one more read inside a shield. The writer
 * either writes (it returns) or ends (EOF). */
static void reader_shielded(struct tctx *c, struct stream *s, int fd)
{
    struct round *r = c->r;
    tr_shield_begin();
    size_t n = 1 + rbelow(1024);
    ssize_t g = reader_op(c, s, fd, n, 0, false); /* a scope would be inside the shield */
    if (g > 0)
        reader_got(r, s, c->buf, g, " (shielded read)");
    else if (g == 0)
        s->eof = true;
    else if (g != -ECANCELED && g != -ECONNRESET)
        viol(r, "stream reader, shielded: %zd", g);
    tr_shield_end();
}

int w_reader(struct tctx *c)
{
    struct round *r = c->r;
    struct stream *s = &r->st[c->stream];
    s->rstate = SS_RUN;
    c->buf = buf_get(r);
    int fd = fd_of(r, s->rslot);
    bool cancelled = reader_loop(c, s, fd);
    if (cancelled && pct(30) && c->buf)
        reader_shielded(c, s, fd);
    s->rstate = (s->eof && !cancelled) ? SS_CLEAN : SS_DIRTY;
    /* Keeping an end costs no new fd, only delays its close: during the
     * shutdown (no new streams) always affordable. */
    if (!s->eof && (tr_shutting_down() || r->used < FD_SOFT / 2) && pct(60)) {
        s->kept = true; /* left to the round: drained after it, exactly */
    } else {
        if (!s->eof)
            s->abandoned = true;
        int slot = s->rslot;
        s->rslot = -1;
        tclose(r, slot);
    }
    return cancelled ? -ECANCELED : 0;
}
