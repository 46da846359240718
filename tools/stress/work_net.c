/* SPDX-License-Identifier: MIT */
/*
 * work_net.c — the round's listener and its two kinds: acceptors accept
 * on it (up to 32 connections each) and read until EOF; clients connect
 * to it, send a few small messages and close (refused or reset
 * connections are part of the game once acceptors are gone).
 */
#include "stress.h"

#include <errno.h>
#include <string.h>
#include <sys/socket.h>

int w_acceptor(struct tctx *c)
{
    struct round *r = c->r;
    int res = 0;
    for (unsigned i = 0; i < 32 && res == 0; i++) {
        if (!fdt_admit(c, 1)) {
            int z = tr_sleep_ns(2 * MS);
            opc();
            if (z == -ECANCELED)
                res = z;
            continue;
        }
        c->in_accept = true;
        int fd = tr_accept(fd_of(r, r->lslot), NULL, NULL, SOCK_CLOEXEC);
        opc();
        if (fd < 0) {
            c->in_accept = false;
            fdt_release(c);
            if (fd == -ECANCELED)
                res = fd;
            else if (fd != -ECONNABORTED) {
                viol(r, "acceptor: tr_accept = %s", strerror(-fd));
                res = -EIO;
            }
            continue;
        }
        int slot = fdt_reg(r, c, fd, FR_OTHER, -1);
        c->in_accept = false;
        if (slot < 0)
            return -EIO;
        for (unsigned k = 0; k < 64; k++) {
            ssize_t g = tr_recv(fd, c->small, sizeof(c->small), 0);
            opc();
            if (g > 0)
                continue;
            if (g == -ECANCELED)
                res = -ECANCELED;
            else if (g != 0 && g != -ECONNRESET)
                viol(r, "acceptor: tr_recv = %zd", g);
            break;
        }
        tclose(r, slot);
    }
    r->acceptors--;
    return res;
}

int w_client(struct tctx *c)
{
    struct round *r = c->r;
    if (!fdt_admit(c, 1))
        return 0;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        viol(r, "socket: %s", strerror(errno));
        return -EIO;
    }
    int slot = fdt_reg(r, c, fd, FR_OTHER, -1);
    if (slot < 0)
        return -EIO;
    int res = 0;
    int z = tr_connect(fd, (struct sockaddr *)&r->laddr, sizeof(r->laddr));
    opc();
    if (z == -ECANCELED) {
        res = z;
    } else if (z < 0) {
        if (z != -ECONNREFUSED && z != -ETIMEDOUT && z != -ECONNRESET)
            viol(r, "client: tr_connect = %s", strerror(-z));
    } else {
        unsigned n = 1 + (unsigned)rbelow(3);
        for (unsigned i = 0; i < n; i++) {
            ssize_t w = tr_send(fd, c->small, 1 + rbelow(200), MSG_NOSIGNAL);
            opc();
            if (w == -ECANCELED) {
                res = -ECANCELED;
                break;
            }
            if (w < 0) {
                if (w != -EPIPE && w != -ECONNRESET)
                    viol(r, "client: tr_send = %zd", w);
                break;
            }
            if (pct(30)) {
                int y = tr_sleep_ns(rbelow(3 * MS));
                opc();
                if (y == -ECANCELED) {
                    res = y;
                    break;
                }
            }
        }
    }
    tclose(r, slot);
    return res;
}
