/* SPDX-License-Identifier: MIT */
/*
 * cli.c — the tools' command-line parser (see cli.h for the conventions).
 *
 * No getopt_long: it permutes argv, takes "--po" for "--port", and turns a
 * bad number into whatever atoi makes of it. Here every option is spelled in
 * full and every value is checked before anything runs.
 */
#include "cli.h"

#include "taskring.h" /* TR_VERSION_MAJOR / _MINOR */

#include <arpa/inet.h>
#include <errno.h>
#include <net/if.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

int cli_parse_uint(const char *s, unsigned long min, unsigned long max, unsigned long *out)
{
    if (!s || !out || !*s)
        return -EINVAL;
    /* strtoul alone would take blanks, a sign ("-1" is ULONG_MAX) and a
     * suffix; only digits pass here, so it only has to convert. */
    for (const char *c = s; *c; c++)
        if (*c < '0' || *c > '9')
            return -EINVAL;
    errno = 0;
    char *end;
    unsigned long v = strtoul(s, &end, 10);
    if (errno == ERANGE || v < min || v > max)
        return -ERANGE;
    *out = v;
    return 0;
}

/* The zone of an IPv6 literal ("eth0" or "2"): its interface index, or 0. */
static unsigned zone_index(const char *z)
{
    unsigned long v;
    if (cli_parse_uint(z, 1, 0xffffffffu, &v) == 0)
        return (unsigned)v;
    return if_nametoindex(z);
}

int cli_parse_addr(const char *s, unsigned port, struct sockaddr_storage *ss, socklen_t *len)
{
    if (!s || !ss || !len || port > 65535)
        return -EINVAL;
    memset(ss, 0, sizeof(*ss));
    struct sockaddr_in *a4 = (struct sockaddr_in *)ss;
    if (inet_pton(AF_INET, s, &a4->sin_addr) == 1) {
        a4->sin_family = AF_INET;
        a4->sin_port = htons((uint16_t)port);
        *len = sizeof(*a4);
        return 0;
    }
    /* IPv6: strip the brackets a URL would have, split off the zone. */
    char buf[INET6_ADDRSTRLEN + IF_NAMESIZE + 4];
    size_t n = strlen(s);
    if (n >= 2 && s[0] == '[' && s[n - 1] == ']') {
        s++;
        n -= 2;
    }
    if (n == 0 || n >= sizeof(buf))
        return -EINVAL;
    memcpy(buf, s, n);
    buf[n] = '\0';
    struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)ss;
    char *zone = strchr(buf, '%');
    if (zone) {
        *zone++ = '\0';
        a6->sin6_scope_id = zone_index(zone);
        if (a6->sin6_scope_id == 0)
            return -EINVAL;
    }
    if (inet_pton(AF_INET6, buf, &a6->sin6_addr) != 1) {
        memset(ss, 0, sizeof(*ss));
        return -EINVAL;
    }
    a6->sin6_family = AF_INET6;
    a6->sin6_port = htons((uint16_t)port);
    *len = sizeof(*a6);
    return 0;
}

int cli_format_addr(const struct sockaddr *sa, char *buf, size_t n)
{
    if (!sa || !buf)
        return -EINVAL;
    char host[INET6_ADDRSTRLEN], zone[IF_NAMESIZE + 2] = "";
    unsigned port;
    int w;
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *a4 = (const struct sockaddr_in *)sa;
        inet_ntop(AF_INET, &a4->sin_addr, host, sizeof(host));
        port = ntohs(a4->sin_port);
        w = snprintf(buf, n, "%s:%u", host, port);
    } else if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *a6 = (const struct sockaddr_in6 *)sa;
        inet_ntop(AF_INET6, &a6->sin6_addr, host, sizeof(host));
        port = ntohs(a6->sin6_port);
        if (a6->sin6_scope_id) {
            char name[IF_NAMESIZE];
            if (if_indextoname(a6->sin6_scope_id, name))
                snprintf(zone, sizeof(zone), "%%%s", name);
            else
                snprintf(zone, sizeof(zone), "%%%u", a6->sin6_scope_id);
        }
        w = snprintf(buf, n, "[%s%s]:%u", host, zone, port);
    } else {
        return -EINVAL;
    }
    if (w < 0 || (size_t)w >= n) {
        if (n)
            buf[0] = '\0';
        return -ENOSPC;
    }
    return w;
}

void cli_usage(const struct cli_prog *p, FILE *f)
{
    fprintf(f, "usage: %s [options]\n%s\n\noptions:\n", p->name, p->summary);
    /* The helps start in one column: 18 wide, or as wide as the longest
     * option ("--header-timeout-ms N"). */
    int width = 18;
    char lhs[48];
    for (size_t i = 0; i < p->n_opts; i++) {
        const struct cli_opt *o = &p->opts[i];
        int w = snprintf(lhs, sizeof(lhs), "--%s%s%s", o->name, o->metavar ? " " : "",
                         o->metavar ? o->metavar : "");
        if (w > width && w < (int)sizeof(lhs))
            width = w;
    }
    for (size_t i = 0; i < p->n_opts; i++) {
        const struct cli_opt *o = &p->opts[i];
        snprintf(lhs, sizeof(lhs), "--%s%s%s", o->name, o->metavar ? " " : "",
                 o->metavar ? o->metavar : "");
        fprintf(f, "  %-*s %s%s\n", width, lhs, o->help, o->required ? " (required)" : "");
    }
    fprintf(f, "  %-*s %s\n  %-*s %s\n", width, "--help", "print this help and exit", width,
            "--version", "print the version and exit");
    if (p->epilog)
        fprintf(f, "\n%s", p->epilog);
}

/* Reports an error about the command line; returns the exit status 2. */
static int bad(const struct cli_prog *p, FILE *err, const char *what, const char *arg)
{
    fprintf(err, "%s: %s%s%s%s\n", p->name, what, arg ? " '" : "", arg ? arg : "", arg ? "'" : "");
    fprintf(err, "%s: try '%s --help'\n", p->name, p->name);
    return 2;
}

/* Stores value v of option o, checked. Returns -1 (stored) or 2. */
static int store(const struct cli_prog *p, const struct cli_opt *o, const char *v, FILE *err)
{
    char what[160];
    if (o->kind == CLI_UINT) {
        unsigned long n;
        int rc = cli_parse_uint(v, o->min, o->max, &n);
        if (rc) {
            snprintf(what, sizeof(what), "--%s: %s (%u..%u):", o->name,
                     rc == -ERANGE ? "out of range" : "not a decimal number", o->min, o->max);
            return bad(p, err, what, v);
        }
        *(unsigned *)o->dst = (unsigned)n;
        return -1;
    }
    struct sockaddr_storage ss;
    socklen_t len;
    if (cli_parse_addr(v, 0, &ss, &len) != 0) {
        snprintf(what, sizeof(what), "--%s: not an IPv4 or IPv6 address literal:", o->name);
        return bad(p, err, what, v);
    }
    *(const char **)o->dst = v;
    return -1;
}

int cli_parse(const struct cli_prog *p, int argc, char **argv, FILE *out, FILE *err)
{
    unsigned char seen[64] = {0};
    if (p->n_opts > sizeof(seen))
        return bad(p, err, "internal error: too many options", NULL);
    /* Bounded by argc: every pass consumes one or two arguments. */
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strncmp(a, "--", 2) != 0 || a[2] == '\0')
            return bad(p, err, "unexpected argument", a);
        const char *name = a + 2, *eq = strchr(name, '=');
        size_t nlen = eq ? (size_t)(eq - name) : strlen(name);
        if (!eq && !strcmp(name, "help")) {
            cli_usage(p, out);
            return 0;
        }
        if (!eq && !strcmp(name, "version")) {
            fprintf(out, "%s %d.%d\n", p->name, TR_VERSION_MAJOR, TR_VERSION_MINOR);
            return 0;
        }
        size_t k = 0;
        while (k < p->n_opts &&
               !(strlen(p->opts[k].name) == nlen && !strncmp(p->opts[k].name, name, nlen)))
            k++;
        if (k == p->n_opts)
            return bad(p, err, "unknown option", a);
        const struct cli_opt *o = &p->opts[k];
        seen[k] = 1;
        if (o->kind == CLI_FLAG) {
            if (eq)
                return bad(p, err, "this option takes no value:", a);
            *(int *)o->dst = 1;
            continue;
        }
        const char *v = eq ? eq + 1 : NULL;
        if (!v) {
            if (i + 1 >= argc) {
                char what[80];
                snprintf(what, sizeof(what), "--%s needs a value (%s)", o->name, o->metavar);
                return bad(p, err, what, NULL);
            }
            v = argv[++i];
        }
        int rc = store(p, o, v, err);
        if (rc >= 0)
            return rc;
    }
    for (size_t k = 0; k < p->n_opts; k++) {
        if (p->opts[k].required && !seen[k]) {
            char what[80];
            snprintf(what, sizeof(what), "missing --%s %s", p->opts[k].name, p->opts[k].metavar);
            return bad(p, err, what, NULL);
        }
    }
    return -1;
}
