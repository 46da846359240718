/* SPDX-License-Identifier: MIT */
/*
 * echo.h — the echo server shared by taskring-demo and taskring-echo, and
 * the client tasks of taskring-load and the demo's load thread.
 */
#ifndef TR_TOOLS_ECHO_H
#define TR_TOOLS_ECHO_H

#include <netinet/in.h>
#include <stdint.h>
#include <sys/socket.h>

struct echo_counters {
    uint64_t accepted;        /* connections accepted */
    uint64_t live;            /* connection tasks alive */
    uint64_t ended_cancelled; /* connection tasks that ended -ECANCELED */
    uint64_t ended_eof;       /* ... because the peer closed */
    uint64_t ended_reset;     /* ... because the peer reset (-ECONNRESET, -EPIPE) */
    uint64_t ended_failed;    /* ... with another error */
    uint64_t ended_idle;      /* ... because the idle timeout closed them */
    uint64_t goodbyes;        /* shielded goodbye lines sent at shutdown */
    uint64_t lingered_eof;    /* lingering closes that read the peer's EOF */
    uint64_t bytes;           /* bytes echoed */
};
/* Each engine's thread counts its own (one engine per thread); the total
 * of every engine that ran is echo_counters_total (echo_counters_add). */
extern _Thread_local struct echo_counters echo_counters;
extern struct echo_counters echo_counters_total;
/* Adds this thread's counters to the total (under a lock), and zeroes
 * them. A tr_at_shutdown hook, once per engine. */
int echo_counters_add(void *arg);

/* The connection tasks close a connection that brought no input for this
 * many ms (lingering close, no goodbye); 0: never. Default 60000. Set it
 * before the acceptor runs. */
extern unsigned echo_idle_timeout_ms;

/* The server's last words to a connection it cancels. */
#define ECHO_BYE "taskring-echo: server shutting down, goodbye\n"
#define ECHO_BYE_LEN (sizeof(ECHO_BYE) - 1)

/* The client side (a load generator's tasks, all on one engine; the demo
 * reads them from another thread, hence atomics). Every client that
 * connected ends in exactly one of: stopped, eof, reset, failed. */
struct load_counters {
    _Atomic uint64_t verified;   /* round trips whose echo matched */
    _Atomic uint64_t mismatches; /* echoes (or goodbyes) that differed: must stay 0 */
    _Atomic uint64_t connected;
    _Atomic uint64_t live;     /* connected and not ended yet */
    _Atomic uint64_t goodbyes; /* clients that read the whole goodbye */
    _Atomic uint64_t eof;      /* ... whose connection ended in the server's orderly EOF */
    _Atomic uint64_t reset;    /* ... in a reset (-ECONNRESET, -EPIPE) */
    _Atomic uint64_t stopped;  /* ... because load_counters.stop (we closed first) */
    _Atomic uint64_t failed;   /* ... in another error, connect included */
    _Atomic int stop;          /* set to end the clients after their next message */
};
extern struct load_counters load_counters;
/* Where echo_client connects (IPv4 or IPv6). */
extern struct sockaddr_storage echo_server_addr;
extern socklen_t echo_server_addr_len;

/* A client task: connects to echo_server_addr and echoes until the server
 * ends the connection or load_counters.stop. After a goodbye it reads on to
 * the server's EOF, so that it closes with nothing unread (no reset from
 * our side either). Returns 0 when the connection ended in the server's
 * EOF or a stop, else the -errno that ended it. arg: a client number. */
int echo_client(void *arg);

/* The acceptor task: arg is the listening fd (intptr_t). Spawns one
 * "echo-conn" task per connection; backs off at the fd limit
 * (net_accept). Returns -ECANCELED at shutdown. */
int echo_acceptor(void *arg);

/* A connection the listener's drain took at shutdown (net_listener_drain):
 * served by a connection task, which starts cancelled (goodbye, lingering
 * close). */
void echo_took(int fd, void *arg);

/* A task that ignores cancellation (shielded reads of a pipe nobody writes),
 * to show the shutdown ladder's later rungs. arg: unused. */
int echo_stubborn(void *arg);

#endif
