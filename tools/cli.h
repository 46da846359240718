/* SPDX-License-Identifier: MIT */
/*
 * cli.h — the command line of every tool (taskring-echo, -http, -load,
 * -demo), parsed by one table-driven parser so that they all keep the same
 * conventions:
 *
 *   --help      usage on stdout, exit status 0
 *   --version   "<tool> <TR_VERSION_MAJOR>.<TR_VERSION_MINOR>" on stdout, 0
 *   --name V or --name=V for an option with a value
 *   a bad value, a missing value, an unknown option, a stray argument or a
 *   missing required option: one message on stderr, exit status 2
 *
 * Numbers are parsed strictly (cli_parse_uint): decimal digits only, no
 * sign, no blanks, no suffix, within the option's range. "--port abc" and
 * "--port 99999" are errors, never a port the user did not ask for.
 * Addresses are IPv4 or IPv6 literals (cli_parse_addr), never host names:
 * a server must not block on name resolution before its engine runs.
 *
 * The parsers need no engine and touch no global state: tests/test_cli.c
 * runs them in-process.
 */
#ifndef TR_TOOLS_CLI_H
#define TR_TOOLS_CLI_H

#include <stddef.h>
#include <stdio.h>
#include <sys/socket.h>

enum cli_kind {
    CLI_FLAG, /* no value; *(int *)dst = 1 */
    CLI_UINT, /* a decimal number in [min, max]; *(unsigned *)dst */
    CLI_ADDR, /* an IPv4 or IPv6 literal; *(const char **)dst = the argument */
};

struct cli_opt {
    const char *name;    /* without the dashes: "port" is --port */
    const char *metavar; /* the value's name in the usage ("N"); NULL for a flag */
    enum cli_kind kind;
    unsigned min, max; /* CLI_UINT's range, both included */
    void *dst;         /* see enum cli_kind; left alone unless the option is given */
    int required;      /* an error when the option is absent */
    const char *help;  /* one line for --help, defaults included */
};

struct cli_prog {
    const char *name;    /* "taskring-echo": the usage and every message start with it */
    const char *summary; /* one line under the usage line */
    const struct cli_opt *opts;
    size_t n_opts;
    const char *epilog; /* more text after the option list, or NULL */
};

/* Parses argv[1..argc) against p. Returns -1 when the program should go on
 * (every given option stored through its dst), or the exit status the
 * program should return at once: 0 after --help (usage written to out) or
 * --version (to out), 2 after an error (one line to err, plus a hint to run
 * --help). Writes nothing else. */
int cli_parse(const struct cli_prog *p, int argc, char **argv, FILE *out, FILE *err);

/* Writes p's usage text to f. */
void cli_usage(const struct cli_prog *p, FILE *f);

/* Parses s as a decimal number in [min, max]: digits only (no sign, blanks,
 * base prefix or suffix), at least one. Returns 0 and stores it in *out;
 * -EINVAL when s is not such a number (or NULL), -ERANGE when it is one but
 * outside [min, max] (however many digits it has). *out is untouched on
 * error. */
int cli_parse_uint(const char *s, unsigned long min, unsigned long max, unsigned long *out);

/* Parses s as an IP literal: IPv4 dotted quad ("127.0.0.1", exactly four
 * decimal parts, as inet_pton takes it), or IPv6 ("::1", also in brackets
 * "[::1]", with an optional zone "fe80::1%lo" or "fe80::1%1"). Stores a
 * sockaddr_in or sockaddr_in6 with the given port in *ss and its size in
 * *len. Returns 0, or -EINVAL (not a literal, an unknown zone, port >
 * 65535, NULL arguments). No name resolution: "localhost" is -EINVAL. */
int cli_parse_addr(const char *s, unsigned port, struct sockaddr_storage *ss, socklen_t *len);

/* Enough for any address cli_format_addr writes: an IPv6 literal (45), a
 * zone (%, 15), brackets, ":65535" and the NUL. */
#define CLI_ADDRSTRLEN 72

/* Formats sa as "127.0.0.1:7777", "[::1]:7777" or "[fe80::1%eth0]:7777"
 * into buf (n bytes; CLI_ADDRSTRLEN is always enough). Returns the length
 * written, or -EINVAL (not AF_INET or AF_INET6, NULL arguments) / -ENOSPC
 * (buf too small; then buf is "" when n > 0). */
int cli_format_addr(const struct sockaddr *sa, char *buf, size_t n);

#endif
