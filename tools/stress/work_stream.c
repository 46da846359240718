/* SPDX-License-Identifier: MIT */
/*
 * work_stream.c — the stream kind: makes a byte stream (a pipe, an
 * AF_UNIX socketpair or a loopback TCP connection), plans how many bytes
 * it carries, spawns its writer and reader (work_stream_ends.c) and
 * supervises them: maybe cancels one side, and cancels the writer when
 * the reader ended dirty (it could wait forever for room). The byte
 * accounting is checked after the round (audit.c).
 */
#include "stress.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/tcp.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* Which end the supervisor cancels on its own, if any. */
enum victim { V_NONE = 0, V_WRITER, V_READER };

/* The two ends of a pipe (kind SK_PIPE) or a socketpair (SK_UNIX),
 * registered: 0, or -EIO. */
static int stream_pair(struct tctx *c, int kind, int *rs, int *ws)
{
    struct round *r = c->r;
    int p[2];
    if (kind == SK_PIPE) {
        if (pipe2(p, O_CLOEXEC) < 0) {
            viol(r, "pipe2: %s", strerror(errno));
            return -EIO;
        }
    } else if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, p) < 0) {
        viol(r, "socketpair: %s", strerror(errno));
        return -EIO;
    }
    *rs = fdt_reg(r, c, p[0], FR_OTHER, -1);
    *ws = fdt_reg(r, c, p[1], FR_OTHER, -1);
    return 0;
}

/* A loopback TCP connection through a listener of its own (closed once
 * the connection is accepted), registered: 0, or the result to return.
 * in_accept marks the accept whose fd a kill would leak. */
static int stream_tcp(struct tctx *c, int *rs, int *ws)
{
    struct round *r = c->r;
    int lfd = listen_socket(r, &c->sa);
    if (lfd < 0) {
        viol(r, "listen: %s", strerror(-lfd));
        return -EIO;
    }
    int ls = fdt_reg(r, c, lfd, FR_OTHER, -1);
    int cfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (cfd < 0) {
        viol(r, "socket: %s", strerror(errno));
        tclose(r, ls);
        return -EIO;
    }
    *ws = fdt_reg(r, c, cfd, FR_OTHER, -1);
    if (ls < 0 || *ws < 0)
        return -EIO;
    int z = tr_connect(cfd, (struct sockaddr *)&c->sa, sizeof(c->sa));
    opc();
    if (z < 0) {
        if (z != -ECANCELED)
            viol(r, "tr_connect(stream) = %s", strerror(-z));
        tclose(r, ls);
        tclose(r, *ws);
        fdt_release(c);
        return z == -ECANCELED ? z : -EIO;
    }
    c->in_accept = true;
    int afd = tr_accept(lfd, NULL, NULL, SOCK_CLOEXEC);
    opc();
    if (afd < 0) {
        c->in_accept = false;
        if (afd != -ECANCELED)
            viol(r, "tr_accept(stream) = %s", strerror(-afd));
        tclose(r, ls);
        tclose(r, *ws);
        fdt_release(c);
        return afd == -ECANCELED ? afd : -EIO;
    }
    *rs = fdt_reg(r, c, afd, FR_OTHER, -1);
    c->in_accept = false;
    tclose(r, ls);
    if (pct(50)) {
        int one = 1;
        setsockopt(cfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    }
    return 0;
}

/* The round's record of a new stream over slots ws and rs, with its plan:
 * the pattern's seed, the bytes to carry (none, up to 4 KiB, 64 KiB or
 * 512 KiB), MSG_WAITALL on sockets sometimes. Returns its index. */
static size_t stream_new(struct round *r, int kind, int ws, int rs)
{
    size_t idx = r->nst++;
    struct stream *s = &r->st[idx];
    memset(s, 0, sizeof(*s));
    s->kind = (uint8_t)kind;
    s->seed = rnd();
    unsigned sz = (unsigned)rbelow(100);
    s->planned = sz < 10   ? 0
                 : sz < 55 ? rbelow(4096)
                 : sz < 88 ? rbelow(65536)
                           : rbelow(512 * 1024);
    s->waitall = kind != SK_PIPE && pct(20);
    s->wslot = ws;
    s->rslot = rs;
    r->fds[ws].role = FR_W;
    r->fds[ws].stream = (int)idx;
    r->fds[rs].role = FR_R;
    r->fds[rs].stream = (int)idx;
    return idx;
}

/* Until both ends ended (bounded: 20,000 naps of 0.2-3.2 ms): maybe
 * cancel one side at a random time; when the reader ends dirty, cancel
 * the writer. Both are cancelled if the wait ends otherwise. Returns
 * whether the supervisor itself was cancelled. */
static bool stream_supervise(struct round *r, struct stream *s, tr_task *hw, tr_task *hr)
{
    unsigned plan = (unsigned)rbelow(100);
    enum victim victim = plan < 20 ? V_WRITER : plan < 40 ? V_READER : V_NONE;
    uint64_t cat = now_ns() + rbelow(30 * MS);
    bool prop = false, cancelled = false, both = false;
    for (unsigned it = 0; it < 20000; it++) {
        bool wend = s->wstate >= SS_CLEAN, rend = s->rstate >= SS_CLEAN;
        if (wend && rend) {
            both = true;
            break;
        }
        if (victim != V_NONE && now_ns() >= cat) {
            cancel_checked(r, victim == V_WRITER ? hw : hr);
            victim = V_NONE;
        }
        if (!prop && rend && s->rstate == SS_DIRTY && !wend) {
            cancel_checked(r, hw);
            prop = true;
        }
        int z = tr_sleep_ns(200000 + rbelow(3 * MS));
        opc();
        if (z == -ECANCELED) {
            cancelled = true;
            break;
        }
    }
    if (!both) {
        cancel_checked(r, hw);
        cancel_checked(r, hr);
    }
    return cancelled;
}

int w_stream(struct tctx *c)
{
    struct round *r = c->r;
    if (r->nst >= MAX_STREAMS)
        return 0;
    int kind = (int)rbelow(3);
    if (!fdt_admit(c, kind == SK_TCP ? 3 : 2))
        return 0;
    int rs = -1, ws = -1;
    int err = kind == SK_TCP ? stream_tcp(c, &rs, &ws) : stream_pair(c, kind, &rs, &ws);
    if (err != 0)
        return err;
    if (rs < 0 || ws < 0)
        return -EIO;
    size_t idx = stream_new(r, kind, ws, rs);
    struct stream *s = &r->st[idx];

    tr_task *hw = NULL, *hr = NULL;
    if (spawn_kind(r, NULL, &hw, K_WRITER, 0, c->depth + 1u, (int)idx, false) != 0)
        hw = NULL;
    if (spawn_kind(r, NULL, &hr, K_READER, 0, c->depth + 1u, (int)idx, false) != 0)
        hr = NULL;
    if (!hw || !hr)
        return -EIO; /* a violation is recorded; the round's cleanup closes the fds */

    bool cancelled = stream_supervise(r, s, hw, hr);
    bool first_w = pct(50);
    int j1 = join_child(r, first_w ? hw : hr);
    int j2 = join_child(r, first_w ? hr : hw);
    return (cancelled || j1 || j2) ? -ECANCELED : 0;
}
