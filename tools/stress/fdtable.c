/* SPDX-License-Identifier: MIT */
/*
 * fdtable.c — what a round owns on behalf of its tasks. Killed tasks leak
 * what they own (the contract), so every fd the workload creates lives in
 * the round's table, which the round's cleanup closes, and every buffer the
 * kernel may touch comes from the round's pool, freed after the round.
 * Admission (fdt_admit) keeps the workload under FD_SOFT fds.
 */
#include "stress.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* ------------------------------------------------------------- buffers */

uint8_t *buf_get(struct round *r)
{
    uint8_t *b = r->bfree;
    if (b) {
        memcpy(&r->bfree, b, sizeof(r->bfree));
        return b;
    }
    if (r->nball == r->capball) {
        size_t cap = r->capball ? r->capball * 2 : 64;
        uint8_t **n = realloc(r->ball, cap * sizeof(*n));
        if (!n)
            return NULL;
        r->ball = n;
        r->capball = cap;
    }
    b = malloc(BUF_SZ);
    if (b)
        r->ball[r->nball++] = b;
    return b;
}

void buf_put(struct round *r, uint8_t *b)
{
    memcpy(b, &r->bfree, sizeof(r->bfree));
    r->bfree = b;
}

/* ------------------------------------------------------------- fd table */

/* Reserves n slots for the task's next fds, or refuses (0). */
int fdt_admit(struct tctx *c, int n)
{
    struct round *r = c->r;
    if (r->used + r->reserved + n > FD_SOFT)
        return 0;
    r->reserved += n;
    c->resv += n;
    return 1;
}

void fdt_release(struct tctx *c)
{
    c->r->reserved -= c->resv;
    c->resv = 0;
}

/* Registers fd (no park between its creation and this call). */
int fdt_reg(struct round *r, struct tctx *c, int fd, int role, int stream)
{
    if (c && c->resv > 0) {
        c->resv--;
        r->reserved--;
    }
    if (r->nfree == 0) {
        close(fd);
        viol(r, "fd table full (%d fds)", r->used);
        return -1;
    }
    int s = r->freeslots[--r->nfree];
    r->fds[s] = (struct fdent){fd, (uint8_t)role, stream};
    r->used++;
    return s;
}

int fdt_take(struct round *r, int slot)
{
    int fd = r->fds[slot].fd;
    r->fds[slot] = (struct fdent){-1, FR_FREE, -1};
    r->freeslots[r->nfree++] = slot;
    r->used--;
    return fd;
}

/* Unregisters, then closes with tr_close (never cancelled: even a task
 * killed while parked in it has its fd closed). */
int tclose(struct round *r, int slot)
{
    if (slot < 0)
        return 0;
    int fd = fdt_take(r, slot);
    int rc = tr_close(fd);
    opc();
    if (rc == -ENOMEM || rc == -EBUSY) { /* never submitted */
        close(fd);
        rc = 0;
    } else if (rc < 0) {
        viol(r, "tr_close(%d) = %s", fd, strerror(-rc));
    }
    return rc;
}

int fd_of(struct round *r, int slot)
{
    return r->fds[slot].fd;
}

int listen_socket(struct round *r, struct sockaddr_in *addr)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    struct sockaddr_in a = {.sin_family = AF_INET};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(a);
    if (bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(fd, 1024) < 0 ||
        getsockname(fd, (struct sockaddr *)&a, &len) < 0) {
        int err = -errno;
        close(fd);
        return err;
    }
    uint16_t port = ntohs(a.sin_port);
    r->lports[port / 8] |= (uint8_t)(1u << (port % 8));
    *addr = a;
    return fd;
}
