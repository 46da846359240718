/* SPDX-License-Identifier: MIT */
/*
 * net.h — what both servers (taskring-echo, taskring-http) do the same way
 * with their sockets: listen on an IPv4 or IPv6 literal, accept with a
 * back-off at the fd limit, and close a connection without a reset.
 */
#ifndef TR_TOOLS_NET_H
#define TR_TOOLS_NET_H

#include "taskring.h"

#include <stdint.h>
#include <sys/socket.h>

/* A listening TCP socket (close-on-exec, SO_REUSEADDR, backlog 4096) on
 * the IP literal addr (see cli_parse_addr) and port (0: ephemeral). The
 * bound address goes to *bound (and its size to *bound_len) when not NULL.
 * An IPv6 socket keeps the system's IPV6_V6ONLY default (Linux: "::" takes
 * IPv4 too). Returns the fd, -EINVAL for a bad literal, or the socket
 * calls' -errno. Outside tasks too (plain system calls). */
int net_listen(const char *addr, unsigned port, struct sockaddr_storage *bound,
               socklen_t *bound_len);

/* The back-off of one accept loop when the process (-EMFILE) or the system
 * (-ENFILE) is out of fds, or the kernel out of memory (-ENOBUFS,
 * -ENOMEM). Retrying at once would spin: the kernel fails the accept
 * without waiting, so every retry is a ring op and an io_uring_enter of its
 * own (measured: 100 % of a core). Instead the acceptor waits, 1 ms at
 * first, twice as long each time up to NET_BACKOFF_MAX_NS, and starts over
 * after an accept succeeds. Open connections are served all along: only
 * the acceptor waits. A connection that closes calls net_backoff_wake, which
 * ends the wait at once: the fd it freed is the one the next accept needs.
 * Zero-initialise; one per accept loop; only its engine's tasks touch it. */
struct net_backoff {
    uint64_t delay_ns; /* the next wait; 0 after a success */
    uint64_t waits;    /* waits so far */
    uint64_t woken;    /* ... ended early by net_backoff_wake */
    tr_task *napper;   /* the task whose sleep is the wait, while there is one */
};

#define NET_BACKOFF_MIN_NS (1000ull * 1000ull)          /* 1 ms */
#define NET_BACKOFF_MAX_NS (100ull * 1000ull * 1000ull) /* 100 ms: at most 10 tries a second */

/* The next wait after one of delay_ns (0: none yet): MIN, then doubling up
 * to MAX. */
uint64_t net_backoff_next(uint64_t delay_ns);

/* Only inside a task: accepts one connection on lfd (accept4 flags, e.g.
 * SOCK_CLOEXEC), waiting out fd exhaustion as struct net_backoff says and
 * retrying at once after -ECONNABORTED (a peer that gave up in the queue).
 * Returns the connection's fd; -ECANCELED once the caller is cancelled;
 * any other error of the listener (-EBADF, -EINVAL...) as it is. The loop
 * inside ends because each pass is a blocking call, and blocking calls fail
 * fast once the task is cancelled. */
int net_accept(int lfd, int flags, struct net_backoff *b);

/* Only inside a task of b's engine: ends b's current wait, if any, so the
 * acceptor retries now. Call it after closing a connection's fd. */
void net_backoff_wake(struct net_backoff *b);

/* How long a lingering close waits for the peer's EOF at most. */
#define NET_LINGER_MS 1000

/* Only inside a task: closes a connection without making the kernel send a
 * reset. Closing a socket whose receive queue holds unread bytes sends RST,
 * and a peer that gets RST may drop our last bytes (an answer, a goodbye)
 * before reading them. So, like nginx's lingering close: shut the write
 * side down (the peer reads our last bytes, then EOF), read and discard
 * what the peer still sends until it closes too or linger_ms pass, then
 * close (tr_close, always). All of it runs inside a shield, so a cancelled
 * task (a shutdown) still lingers; the engine's grace_ms bounds shields, so
 * a grace below linger_ms cuts the wait short.
 *
 * Returns 0 when the peer closed (its orderly EOF was read), -ETIMEDOUT
 * when linger_ms passed first, -ECANCELED when the shield broke (grace
 * over, or a second signal), or the socket's -errno (-ECONNRESET,
 * -ENOTCONN...). fd is closed in every case. */
int net_close_lingering(int fd, unsigned linger_ms);

#endif
