/* SPDX-License-Identifier: MIT */
/*
 * net.h — what both servers (taskring-echo, taskring-http) do the same way
 * with their sockets: listen on an IPv4 or IPv6 literal, accept with a
 * back-off at the fd limit, bound a connection's waits with one moving
 * deadline, and close a connection without a reset.
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

/* n listening sockets on the same address and port, with SO_REUSEPORT (the
 * kernel spreads connections over them): one per engine of a cluster. The
 * first picks the port when port is 0; fds[0..n-1] get them. n == 1 is
 * net_listen. Returns 0 or a -errno (then none is left open). */
int net_listen_many(const char *addr, unsigned port, unsigned n, int *fds,
                    struct sockaddr_storage *bound);

/* Only inside a task, at a shutdown's Stop (DESIGN section 9: listeners
 * stop first, and connections the kernel has accepted are drained before
 * the listener closes, so that no client whose connect succeeded gets a
 * reset): a socket filter on lfd drops new SYNs (their connects do not
 * succeed: once lfd is closed they are refused), handshakes under way
 * still complete; then lfd's queue is accepted to empty (non-blocking),
 * in rounds 1 ms apart (inside a shield) until NET_DRAIN_QUIET_MS pass
 * with none, each connection handed to took(fd, arg), which owns it. Then
 * lfd is closed. A handshake whose last ACK takes longer than that (a
 * slow network) may still be reset.
 * Returns the number of connections drained. */
int net_listener_drain(int lfd, void (*took)(int fd, void *arg), void *arg);
#define NET_DRAIN_QUIET_MS 20

/* Outside tasks: main(NULL) on one engine (tr_run) when n is 1, else on a
 * cluster of n engines (tr_cluster_run), each with cfg; then closes every
 * listener fds[0..n-1] that is still open (>= 0: a main that never reached
 * its drain, which sets its fds[i] to -1). Returns the run's result. */
int net_run_engines(tr_fn main, const struct tr_config *cfg, unsigned n, int *fds);

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

/* A connection's time limits: one cancel scope for the connection's life
 * whose deadline moves as the connection goes (a header deadline, an idle
 * one). A move is a timer move in the engine's wheel: no SQE and no system
 * call, so the limits cost a request a clock read (tr_now_ns, vDSO) and a
 * move. Inside the scope every blocking call returns -ETIMEDOUT once the
 * deadline has passed (cancel scopes, taskring.h).
 *
 * The one subtlety is the race of a real result with the deadline (G5): a
 * deadline that fires as a recv's bytes arrive leaves the recv its bytes
 * but the scope triggered, and a triggered scope stays so until its exit,
 * wherever its deadline moves: every later call in it would fail. So a move
 * made once the old deadline has passed leaves the scope and enters a fresh
 * one (a deadline never fires early, so before it nothing can have
 * triggered). The servers always move after such a result: the request it
 * completed is served. net_deadline_enter initialises the record. */
struct net_deadline {
    struct tr_scope scope;
    uint64_t at_ns; /* the scope's deadline as last set (tr_now_ns clock); 0: none */
};

/* Only inside a task: enters d's scope with the deadline at_ns (absolute,
 * 0: none). Returns tr_scope_enter's result. */
int net_deadline_enter(struct net_deadline *d, uint64_t at_ns);

/* Only inside the task that entered d: moves its deadline to at_ns (0:
 * none). now_ns is tr_now_ns() read after the last blocking call returned;
 * when d's deadline is not after it, the scope is left and a fresh one
 * entered (see above). Changes nothing when at_ns is the deadline already. */
void net_deadline_move(struct net_deadline *d, uint64_t now_ns, uint64_t at_ns);

/* Leaves d's scope. Returns tr_scope_exit's result: -ETIMEDOUT when the
 * deadline cut a call short since the last fresh scope (a cut always ends
 * the servers' connections before any move), else 0. */
int net_deadline_exit(struct net_deadline *d);

/* t + ms milliseconds in ns, or 0 (no deadline) when ms is 0. */
static inline uint64_t net_after_ms(uint64_t t_ns, unsigned ms)
{
    return ms ? t_ns + (uint64_t)ms * 1000000ull : 0;
}

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

/* Only inside a task: closes fd with a reset (SO_LINGER 0, then tr_close),
 * as nginx's reset_timedout_connection does: for a peer that has stopped
 * reading, whose unread bytes a lingering (or plain) close would leave the
 * kernel holding and retrying, in an orphan socket, for minutes. The reset
 * frees them at once; the peer sees ECONNRESET. Returns tr_close's result. */
int net_close_reset(int fd);

#endif
