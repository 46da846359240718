/* SPDX-License-Identifier: MIT */
/*
 * Description: the tools' command-line parser (tools/cli.c): strict
 * numbers with ranges, IP literals (v4, v6, brackets, zones) and their
 * printing, and the conventions every tool shares (--help and --version
 * exit 0 on stdout; a bad value, an unknown option or a missing required
 * one exit 2 with one message on stderr).
 */
#define _GNU_SOURCE
#include "tr_test.h"

#include "cli.h"

#include <arpa/inet.h>
#include <net/if.h>
#include <netinet/in.h>
#include <stdlib.h>

/* ---- numbers -------------------------------------------------------------------- */

static void test_cli_uint_accepts_plain_decimals(void **state)
{
    (void)state;
    unsigned long v = 12345;
    assert_int_equal(cli_parse_uint("0", 0, 65535, &v), 0);
    assert_int_equal(v, 0);
    assert_int_equal(cli_parse_uint("65535", 0, 65535, &v), 0);
    assert_int_equal(v, 65535);
    assert_int_equal(cli_parse_uint("007", 0, 65535, &v), 0); /* leading zeros are decimal */
    assert_int_equal(v, 7);
    assert_int_equal(cli_parse_uint("1", 1, 1, &v), 0);
    assert_int_equal(v, 1);
}

static void test_cli_uint_rejects_what_atoi_took(void **state)
{
    (void)state;
    /* Each of these once became a port nobody asked for. */
    const char *bad[] = {"abc", "", " 80", "80 ", "+80", "-1", "0x50", "80k", "8.0", "1e3", "٣"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        unsigned long v = 4242;
        assert_int_equal(cli_parse_uint(bad[i], 0, 65535, &v), -EINVAL);
        assert_int_equal(v, 4242); /* untouched on error */
    }
    unsigned long v = 4242;
    assert_int_equal(cli_parse_uint(NULL, 0, 1, &v), -EINVAL);
    assert_int_equal(cli_parse_uint("1", 0, 1, NULL), -EINVAL);
}

static void test_cli_uint_range_is_checked(void **state)
{
    (void)state;
    unsigned long v = 4242;
    assert_int_equal(cli_parse_uint("99999", 0, 65535, &v), -ERANGE);
    assert_int_equal(cli_parse_uint("65536", 0, 65535, &v), -ERANGE);
    assert_int_equal(cli_parse_uint("0", 1, 10, &v), -ERANGE);
    /* Too many digits for an unsigned long is out of range, not a wrap. */
    assert_int_equal(cli_parse_uint("99999999999999999999999999", 0, 65535, &v), -ERANGE);
    assert_int_equal(cli_parse_uint("18446744073709551616", 0, ~0ul, &v), -ERANGE);
    assert_int_equal(v, 4242);
    assert_int_equal(cli_parse_uint("18446744073709551615", 0, ~0ul, &v), 0);
    assert_true(v == ~0ul);
}

/* ---- addresses ------------------------------------------------------------------ */

static void test_cli_addr_ipv4_literal(void **state)
{
    (void)state;
    struct sockaddr_storage ss;
    socklen_t len = 0;
    assert_int_equal(cli_parse_addr("127.0.0.1", 7777, &ss, &len), 0);
    const struct sockaddr_in *a = (const struct sockaddr_in *)&ss;
    assert_int_equal(a->sin_family, AF_INET);
    assert_int_equal(ntohs(a->sin_port), 7777);
    assert_int_equal(ntohl(a->sin_addr.s_addr), INADDR_LOOPBACK);
    assert_int_equal(len, sizeof(struct sockaddr_in));
    char buf[CLI_ADDRSTRLEN];
    assert_int_equal(cli_format_addr((struct sockaddr *)&ss, buf, sizeof(buf)), 14);
    assert_string_equal(buf, "127.0.0.1:7777");
}

static void test_cli_addr_ipv6_literal_brackets_and_zone(void **state)
{
    (void)state;
    struct sockaddr_storage ss;
    socklen_t len = 0;
    char buf[CLI_ADDRSTRLEN];
    const char *forms[] = {"::1", "[::1]", "0:0:0:0:0:0:0:1"};
    for (size_t i = 0; i < sizeof(forms) / sizeof(forms[0]); i++) {
        assert_int_equal(cli_parse_addr(forms[i], 8080, &ss, &len), 0);
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)&ss;
        assert_int_equal(a->sin6_family, AF_INET6);
        assert_int_equal(ntohs(a->sin6_port), 8080);
        assert_true(IN6_IS_ADDR_LOOPBACK(&a->sin6_addr));
        assert_int_equal(a->sin6_scope_id, 0);
        assert_int_equal(len, sizeof(struct sockaddr_in6));
        cli_format_addr((struct sockaddr *)&ss, buf, sizeof(buf));
        assert_string_equal(buf, "[::1]:8080");
    }
    /* A zone by number or by name ("lo" exists wherever tests run). */
    assert_int_equal(cli_parse_addr("fe80::1%1", 1, &ss, &len), 0);
    assert_int_equal(((struct sockaddr_in6 *)&ss)->sin6_scope_id, 1);
    assert_int_equal(cli_parse_addr("[fe80::1%lo]", 1, &ss, &len), 0);
    assert_int_equal(((struct sockaddr_in6 *)&ss)->sin6_scope_id, if_nametoindex("lo"));
    cli_format_addr((struct sockaddr *)&ss, buf, sizeof(buf));
    assert_string_equal(buf, "[fe80::1%lo]:1");
}

static void test_cli_addr_rejects_names_and_junk(void **state)
{
    (void)state;
    struct sockaddr_storage ss;
    socklen_t len;
    const char *bad[] = {"localhost",
                         "",
                         "127.1",
                         "127.0.0.256",
                         "1.2.3.4.5",
                         " 127.0.0.1",
                         "::1 ",
                         "[::1",
                         "::1]",
                         "[]",
                         ":::",
                         "fe80::1%",
                         "fe80::1%nosuchif0",
                         "[127.0.0.1]",
                         "0x7f.0.0.1"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(cli_parse_addr(bad[i], 1, &ss, &len), -EINVAL);
    assert_int_equal(cli_parse_addr("127.0.0.1", 65536, &ss, &len), -EINVAL);
    assert_int_equal(cli_parse_addr(NULL, 1, &ss, &len), -EINVAL);
}

static void test_cli_format_addr_bounds(void **state)
{
    (void)state;
    struct sockaddr_storage ss;
    socklen_t len;
    assert_int_equal(
        cli_parse_addr("ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255", 65535, &ss, &len), 0);
    char buf[CLI_ADDRSTRLEN];
    int n = cli_format_addr((struct sockaddr *)&ss, buf, sizeof(buf));
    assert_true(n > 0 && (size_t)n < sizeof(buf));
    char small[8] = "xxxxxxx";
    assert_int_equal(cli_format_addr((struct sockaddr *)&ss, small, sizeof(small)), -ENOSPC);
    assert_string_equal(small, "");
    struct sockaddr un = {.sa_family = AF_UNIX};
    assert_int_equal(cli_format_addr(&un, buf, sizeof(buf)), -EINVAL);
}

/* ---- the parser ----------------------------------------------------------------- */

/* One parse of a tool's command line with stdout and stderr caught. */
struct run {
    int rc;
    char out[4096], err[4096];
    unsigned port, ms;
    int flag;
    const char *addr;
};

static void parse(struct run *r, int argc, char **argv)
{
    memset(r, 0, sizeof(*r)); /* fmemopen writes only what is printed */
    r->port = 7777;
    r->ms = 5000;
    r->flag = 0;
    r->addr = "127.0.0.1";
    const struct cli_opt opts[] = {
        {"port", "N", CLI_UINT, 0, 65535, &r->port, 0, "port (7777)"},
        {"grace-ms", "N", CLI_UINT, 0, 3600000, &r->ms, 0, "grace (5000)"},
        {"stubborn", NULL, CLI_FLAG, 0, 0, &r->flag, 0, "a flag"},
        {"addr", "A", CLI_ADDR, 0, 0, &r->addr, 0, "address"},
    };
    const struct cli_prog p = {"tool", "A tool.", opts, 4, "Epilog.\n"};
    FILE *o = fmemopen(r->out, sizeof(r->out), "w"), *e = fmemopen(r->err, sizeof(r->err), "w");
    assert_non_null(o);
    assert_non_null(e);
    r->rc = cli_parse(&p, argc, argv, o, e);
    fclose(o);
    fclose(e);
}

#define ARGV(...)                                                                                  \
    (char *[])                                                                                     \
    {                                                                                              \
        "tool", __VA_ARGS__, NULL                                                                  \
    }
#define ARGC(...) ((int)(sizeof((char *[]){"tool", __VA_ARGS__}) / sizeof(char *)))
#define PARSE(r, ...) parse((r), ARGC(__VA_ARGS__), ARGV(__VA_ARGS__))

static void test_cli_parse_values_both_spellings(void **state)
{
    (void)state;
    struct run r;
    PARSE(&r, "--port", "0", "--grace-ms=250", "--stubborn", "--addr", "::1");
    assert_int_equal(r.rc, -1);
    assert_int_equal(r.port, 0);
    assert_int_equal(r.ms, 250);
    assert_int_equal(r.flag, 1);
    assert_string_equal(r.addr, "::1");
    assert_string_equal(r.out, "");
    assert_string_equal(r.err, "");
    char *none[] = {"tool", NULL};
    parse(&r, 1, none);
    assert_int_equal(r.rc, -1);
    assert_int_equal(r.port, 7777); /* defaults stay */
}

static void test_cli_parse_help_and_version_exit_0_on_stdout(void **state)
{
    (void)state;
    struct run r;
    PARSE(&r, "--help");
    assert_int_equal(r.rc, 0);
    assert_contains(r.out, "usage: tool [options]");
    assert_contains(r.out, "--port N");
    assert_contains(r.out, "--help");
    assert_contains(r.out, "--version");
    assert_contains(r.out, "Epilog.");
    assert_string_equal(r.err, "");
    PARSE(&r, "--port", "1", "--version", "--port", "abc"); /* stops at --version */
    assert_int_equal(r.rc, 0);
    char want[64];
    snprintf(want, sizeof(want), "tool %d.%d\n", TR_VERSION_MAJOR, TR_VERSION_MINOR);
    assert_string_equal(r.out, want);
    assert_string_equal(r.err, "");
}

static void test_cli_parse_errors_exit_2_on_stderr(void **state)
{
    (void)state;
    struct run r;
    struct {
        int argc;
        char **argv;
        const char *msg;
    } cases[] = {
        {ARGC("--port", "abc"), ARGV("--port", "abc"), "not a decimal number"},
        {ARGC("--port", "99999"), ARGV("--port", "99999"), "out of range (0..65535)"},
        {ARGC("--port=-1"), ARGV("--port=-1"), "not a decimal number"},
        {ARGC("--port"), ARGV("--port"), "--port needs a value"},
        {ARGC("--bogus"), ARGV("--bogus"), "unknown option '--bogus'"},
        {ARGC("--po", "1"), ARGV("--po", "1"), "unknown option '--po'"}, /* no prefixes */
        {ARGC("-p", "1"), ARGV("-p", "1"), "unexpected argument '-p'"},
        {ARGC("extra"), ARGV("extra"), "unexpected argument 'extra'"},
        {ARGC("--"), ARGV("--"), "unexpected argument '--'"},
        {ARGC("--stubborn=yes"), ARGV("--stubborn=yes"), "takes no value"},
        {ARGC("--addr", "localhost"), ARGV("--addr", "localhost"), "IPv4 or IPv6"},
        {ARGC("--help=x"), ARGV("--help=x"), "unknown option"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        parse(&r, cases[i].argc, cases[i].argv);
        assert_int_equal(r.rc, 2);
        assert_string_equal(r.out, "");
        assert_contains(r.err, cases[i].msg);
        assert_contains(r.err, "tool: try 'tool --help'");
        assert_int_equal(r.port, 7777); /* nothing stored from a bad value */
    }
}

static void test_cli_parse_required_option(void **state)
{
    (void)state;
    unsigned port = 0;
    const struct cli_opt opts[] = {{"port", "N", CLI_UINT, 0, 65535, &port, 1, "port"}};
    const struct cli_prog p = {"srv", "A server.", opts, 1, NULL};
    char out[512] = "", err[512] = "";
    FILE *o = fmemopen(out, sizeof(out), "w"), *e = fmemopen(err, sizeof(err), "w");
    char *argv[] = {"srv", NULL};
    assert_int_equal(cli_parse(&p, 1, argv, o, e), 2);
    fflush(e);
    assert_contains(err, "srv: missing --port N");
    char *argv2[] = {"srv", "--port", "0", NULL};
    assert_int_equal(cli_parse(&p, 3, argv2, o, e), -1);
    fclose(o);
    fclose(e);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_cli_uint_accepts_plain_decimals),
        T(test_cli_uint_rejects_what_atoi_took),
        T(test_cli_uint_range_is_checked),
        T(test_cli_addr_ipv4_literal),
        T(test_cli_addr_ipv6_literal_brackets_and_zone),
        T(test_cli_addr_rejects_names_and_junk),
        T(test_cli_format_addr_bounds),
        T(test_cli_parse_values_both_spellings),
        T(test_cli_parse_help_and_version_exit_0_on_stdout),
        T(test_cli_parse_errors_exit_2_on_stderr),
        T(test_cli_parse_required_option),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
