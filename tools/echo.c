/* SPDX-License-Identifier: MIT */
/*
 * echo.c — an echo server on taskring: one task per connection.
 *
 * When the connection task is cancelled (shutdown), it says goodbye inside a
 * shield — real I/O after the cancel — then closes with a lingering close
 * (net_close_lingering): it shuts its write side, so the client reads the
 * goodbye and then an orderly EOF, and discards what the client still sends
 * until the client closes too (or a second passes). A plain close with the
 * client's next message unread would make the kernel reset the connection,
 * and the client could lose the goodbye. A peer that never reads can stall
 * the goodbye; the shutdown's grace period (or a second Ctrl+C) breaks the
 * shield.
 *
 * The acceptor backs off at the fd limit (net_accept); every connection that
 * closes ends its wait, since it freed the fd the next accept needs.
 *
 * The idle timeout (echo_idle_timeout_ms): a connection that brings no input
 * for that long is closed with the lingering close and no goodbye (the
 * goodbye announces a shutdown, which this is not). The time counts from
 * the recv of the last input, or from the last progress of an echo's send
 * to a client that reads slowly: a client that takes nothing of an echo
 * for that long is reset (net_close_reset: it cannot be sent more, and the
 * kernel would hold the echo for it). One cancel scope per connection
 * whose deadline moves (net_deadline): no SQE and no system call per
 * message.
 */
#include "echo.h"

#include "net.h"
#include "taskring.h"

#include <errno.h>
#include <pthread.h>
#include <fcntl.h>
#include <netinet/tcp.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

_Thread_local struct echo_counters echo_counters;
struct echo_counters echo_counters_total;
static pthread_mutex_t counters_mu = PTHREAD_MUTEX_INITIALIZER;

int echo_counters_add(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&counters_mu);
    struct echo_counters *t = &echo_counters_total, *c = &echo_counters;
    t->accepted += c->accepted;
    t->live += c->live;
    t->ended_cancelled += c->ended_cancelled;
    t->ended_eof += c->ended_eof;
    t->ended_reset += c->ended_reset;
    t->ended_failed += c->ended_failed;
    t->ended_idle += c->ended_idle;
    t->goodbyes += c->goodbyes;
    t->lingered_eof += c->lingered_eof;
    t->bytes += c->bytes;
    pthread_mutex_unlock(&counters_mu);
    memset(c, 0, sizeof(*c));
    return 0;
}
unsigned echo_idle_timeout_ms = 60000;
struct load_counters load_counters;
struct sockaddr_storage echo_server_addr;
socklen_t echo_server_addr_len;

static _Thread_local struct net_backoff echo_backoff; /* the acceptor's (one per engine) */

/* The connection's first error that ends it (-ETIMEDOUT: dl's deadline,
 * or the socket's), or 0 when the peer closed; *in_send: it came from a
 * send. */
static int echo_loop(int fd, struct net_deadline *dl, bool *in_send)
{
    char buf[4096];
    /* One pass per message; the peer, a cancel or the deadline ends it. */
    for (;;) {
        ssize_t n = tr_recv(fd, buf, sizeof(buf), 0);
        if (n <= 0)
            return (int)n;
        if (echo_idle_timeout_ms) {
            uint64_t now = tr_now_ns();
            net_deadline_move(dl, now, net_after_ms(now, echo_idle_timeout_ms));
        }
        for (ssize_t off = 0; off < n;) {
            if (off > 0 && echo_idle_timeout_ms) {
                /* The rest of a partial send: the client took some, so it
                 * gets the idle time again to take the rest. */
                uint64_t now = tr_now_ns();
                net_deadline_move(dl, now, net_after_ms(now, echo_idle_timeout_ms));
            }
            ssize_t w = tr_send(fd, buf + off, (size_t)(n - off), 0);
            if (w <= 0) {
                *in_send = true;
                return w < 0 ? (int)w : -EPIPE;
            }
            off += w;
        }
        echo_counters.bytes += (uint64_t)n;
    }
}

static int echo_conn(void *arg)
{
    int fd = (int)(intptr_t)arg;
    echo_counters.live++;
    struct net_deadline dl;
    /* Cannot fail: inside a task, with storage of our own. */
    net_deadline_enter(&dl, net_after_ms(tr_now_ns(), echo_idle_timeout_ms));
    bool in_send = false;
    int rc = echo_loop(fd, &dl, &in_send);
    if (net_deadline_exit(&dl) == -ETIMEDOUT && rc == -ETIMEDOUT) {
        echo_counters.ended_idle++;
        if (in_send)
            net_close_reset(fd); /* it stopped reading: our echo would never leave */
        else
            net_close_lingering(fd, NET_LINGER_MS);
        rc = 0; /* a silent client is its business, not a failed task */
    } else if (rc == -ECANCELED) {
        tr_shield_begin();
        if (tr_send(fd, ECHO_BYE, ECHO_BYE_LEN, 0) == (ssize_t)ECHO_BYE_LEN)
            echo_counters.goodbyes++;
        tr_shield_end();
        echo_counters.ended_cancelled++;
        if (net_close_lingering(fd, NET_LINGER_MS) == 0)
            echo_counters.lingered_eof++;
    } else {
        if (rc == 0)
            echo_counters.ended_eof++;
        else if (rc == -ECONNRESET || rc == -EPIPE)
            echo_counters.ended_reset++;
        else
            echo_counters.ended_failed++;
        /* The peer closed or reset first: nothing is left unread that a
         * close could turn into a reset. Never cancelled. */
        tr_close(fd);
    }
    echo_counters.live--;
    net_backoff_wake(&echo_backoff);
    /* A peer that resets is its business, not a failed task. */
    return rc == -ECONNRESET || rc == -EPIPE ? 0 : rc;
}

void echo_took(int fd, void *arg)
{
    (void)arg;
    echo_counters.accepted++;
    struct tr_spawn_opts o = {.name = "echo-conn"};
    if (tr_spawn(NULL, NULL, echo_conn, (void *)(intptr_t)fd, &o) < 0)
        close(fd); /* no memory for a task: closed (a client that sent bytes sees a reset) */
}

int echo_acceptor(void *arg)
{
    int lfd = (int)(intptr_t)arg;
    /* One pass per connection: net_accept returns -ECANCELED at shutdown. */
    for (;;) {
        int fd = net_accept(lfd, SOCK_CLOEXEC, &echo_backoff);
        if (fd < 0)
            return fd;
        echo_counters.accepted++;
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        struct tr_spawn_opts o = {.name = "echo-conn"};
        if (tr_spawn(NULL, NULL, echo_conn, (void *)(intptr_t)fd, &o) < 0)
            tr_close(fd);
    }
}

#define MSG_LEN 64

/* After the first *bye bytes of the goodbye (already checked): reads the
 * rest of it, then the server's EOF. Returns 0 at that EOF (also one that
 * cuts the goodbye short: *bye then tells), -EBADMSG for bytes that are
 * not the goodbye (counted as a mismatch), or the socket's -errno. */
static int read_goodbye(int fd, size_t *bye)
{
    char in[ECHO_BYE_LEN + 1];
    /* Bounded: each pass takes at least one of the goodbye's bytes. */
    while (*bye < ECHO_BYE_LEN) {
        ssize_t r = tr_recv(fd, in, ECHO_BYE_LEN - *bye, 0);
        if (r <= 0)
            return (int)r;
        if (memcmp(in, &ECHO_BYE[*bye], (size_t)r) != 0) {
            load_counters.mismatches++;
            return -EBADMSG;
        }
        *bye += (size_t)r;
    }
    ssize_t r = tr_recv(fd, in, sizeof(in), 0);
    if (r > 0) {
        load_counters.mismatches++; /* the goodbye is the server's last word */
        return -EBADMSG;
    }
    return (int)r;
}

/* Round trips until the server ends the connection or load_counters.stop.
 * Returns 1 for a stop, 0 for the server's EOF, or the -errno that ended
 * it; *bye gets the goodbye bytes read. */
static int client_loop(int fd, unsigned id, size_t *bye)
{
    /* One pass per message: the server (its goodbye, EOF or reset) or the
     * stop flag ends the loop. */
    for (unsigned i = 0; !load_counters.stop; i++) {
        char out[MSG_LEN], in[MSG_LEN];
        memset(out, 'a' + (int)((id + i) % 26), sizeof(out));
        snprintf(out, sizeof(out), "client %u message %u ", id, i);
        ssize_t w = tr_send(fd, out, sizeof(out), 0);
        if (w != (ssize_t)sizeof(out))
            return w < 0 ? (int)w : -EIO;
        size_t got = 0;
        ssize_t r = 1;
        while (got < sizeof(in) && (r = tr_recv(fd, in + got, sizeof(in) - got, 0)) > 0)
            got += (size_t)r;
        size_t k = 0;
        while (k < got && in[k] == out[k])
            k++;
        if (k == sizeof(in)) {
            load_counters.verified++;
            continue;
        }
        if (k < got) {
            /* At shutdown the server's goodbye may follow (or replace) part
             * of the echo: where the bytes first differ, it must begin. */
            size_t m = got - k;
            if (m > ECHO_BYE_LEN || memcmp(in + k, ECHO_BYE, m) != 0) {
                load_counters.mismatches++;
                return -EBADMSG;
            }
            *bye = m;
            /* r <= 0: the goodbye (or its start) came with the end. */
            return r > 0 ? read_goodbye(fd, bye) : (int)r;
        }
        return (int)r; /* the echo ended early: EOF (0) or an error */
    }
    return 1;
}

/* One client connection: sends 64-byte messages and checks every echoed
 * byte until the server says goodbye or closes, or load_counters.stop. */
int echo_client(void *arg)
{
    unsigned id = (unsigned)(uintptr_t)arg;
    int fd = socket(echo_server_addr.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        load_counters.failed++;
        return -errno;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    int rc = tr_connect(fd, (struct sockaddr *)&echo_server_addr, echo_server_addr_len);
    if (rc < 0) {
        tr_close(fd);
        load_counters.failed++;
        return rc;
    }
    load_counters.connected++;
    load_counters.live++;
    size_t bye = 0;
    rc = client_loop(fd, id, &bye);
    tr_close(fd);
    load_counters.live--;
    if (bye == ECHO_BYE_LEN)
        load_counters.goodbyes++;
    if (rc == 1 || rc == -ECANCELED) /* load_counters.stop, or a Ctrl+C */
        load_counters.stopped++;
    else if (rc == 0)
        load_counters.eof++;
    else if (rc == -ECONNRESET || rc == -EPIPE)
        load_counters.reset++;
    else
        load_counters.failed++;
    return rc > 0 ? 0 : rc;
}

int echo_stubborn(void *arg)
{
    (void)arg;
    int p[2];
    if (pipe2(p, O_CLOEXEC) < 0)
        return -errno;
    char b;
    /* Ignores every cancellation: only the Kill phase ends it. */
    for (unsigned long i = 0; i < ~0ul; i++) {
        tr_shield_begin();
        ssize_t r = tr_read(p[0], &b, 1, -1);
        tr_shield_end();
        if (r < 0)
            tr_yield();
    }
    return 0;
}
