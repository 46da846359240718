/* SPDX-License-Identifier: MIT */
/*
 * Description: the HTTP request parser of taskring-http (tools/http_parse.h)
 * against RFC 9112 and RFC 9110, one table row per rule, each citing its
 * section. A row gives the bytes a connection received and what the server
 * must make of them: the status it answers (200/405/501 for a valid
 * request, the refusal otherwise, 0 when it must wait for more bytes) and,
 * for a valid request, the method, version, keep-alive, and where the next
 * pipelined request starts (`rest`: the bytes left after the request and
 * its body, which must parse as a request of method `next`).
 *
 * The same table then checks what the server's incremental use relies on:
 * every prefix of a row gets "more" or the row's own verdict, and a body fed
 * byte by byte ends where it ends when fed at once. A finding of the fuzzer
 * (tests/fuzz/fuzz_http.c) gets a row whose name starts with "fuzz:"; its
 * first 10-minute run found nothing, and the last rows of the chunked
 * section cover the decoder's branches its corpus did not reach.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "http_parse.h"

#define MORE 0 /* the outcome "wait for more bytes" */
#define ANY (-1)

struct row {
    const char *rfc;  /* the rule */
    const char *name; /* what the row shows */
    const char *in;
    size_t len;
    const struct http_limits *lim; /* NULL: the defaults */
    int status;                    /* the answer, or MORE */
    bool valid;                    /* a valid request: the fields below are checked */
    /* For a valid request (status 200, 405, 501): */
    int method;
    int minor;
    int keep;
    int cont;         /* expect_continue; ANY: not checked */
    const char *rest; /* what follows the request (NULL: nothing) */
    int next;         /* the method of the request in rest (ANY: none) */
};

/* Small limits, so that the rows for 413/414/431 stay readable. */
static const struct http_limits small = {.head_max = 64, .target_max = 8, .body_max = 16};

#define IN(s) .in = (s), .len = sizeof(s) - 1
#define OK(st, m, mi, ka)                                                                          \
    .status = (st), .valid = true, .method = (m), .minor = (mi), .keep = (ka), .cont = ANY
/* OK, and whether the request expects 100 Continue. */
#define OKC(st, m, mi, ka, c)                                                                      \
    .status = (st), .valid = true, .method = (m), .minor = (mi), .keep = (ka), .cont = (c)
#define BAD(st) .status = (st)
#define H11 " HTTP/1.1\r\nHost: h\r\n"
#define NEXT_GET "GET /n HTTP/1.1\r\nHost: h\r\n\r\n"

static const struct row rows[] = {
    /* ---- valid requests, their fields and their ends ---- */
    {"RFC 9112 §3", "plain GET", IN("GET /" H11 "\r\n"), OK(200, HTTP_M_GET, 1, 1)},
    {"RFC 9110 §9.3.2", "HEAD is served", IN("HEAD /" H11 "\r\n"), OK(200, HTTP_M_HEAD, 1, 1)},
    {"RFC 9112 §9.3", "HTTP/1.0 closes by default", IN("GET / HTTP/1.0\r\n\r\n"),
     OK(200, HTTP_M_GET, 0, 0)},
    {"RFC 9112 §9.3", "HTTP/1.0 keep-alive persists",
     IN("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n"), OK(200, HTTP_M_GET, 0, 1)},
    {"RFC 9112 §9.6", "Connection: close ends HTTP/1.1",
     IN("GET /" H11 "Connection: upgrade, close\r\n\r\n"), OK(200, HTTP_M_GET, 1, 0)},
    {"RFC 9112 §9.3.2", "pipelined requests: the next starts after the blank line",
     IN("GET /a" H11 "\r\n" NEXT_GET), OK(200, HTTP_M_GET, 1, 1), .rest = NEXT_GET,
     .next = HTTP_M_GET},
    {"RFC 9112 §2.2", "empty lines before the request line are ignored",
     IN("\r\n\r\nGET /" H11 "\r\n"), OK(200, HTTP_M_GET, 1, 1)},
    {"RFC 9112 §6.3", "a Content-Length body is skipped, the next request follows it",
     IN("GET /" H11 "Content-Length: 5\r\n\r\nHEAD " NEXT_GET), OK(200, HTTP_M_GET, 1, 1),
     .rest = NEXT_GET, .next = HTTP_M_GET},
    {"RFC 9112 §7.1", "a chunked body with extensions and a trailer, then the next request",
     IN("POST /" H11 "Transfer-Encoding: chunked\r\n\r\n"
        "5;a=b;c=\"x;\\\"y\"\r\nhello\r\n1A ; z\r\nabcdefghijklmnopqrstuvwxyz\r\n"
        "000\r\nT: v\r\n\r\n" NEXT_GET),
     OK(405, HTTP_M_POST, 1, 1), .rest = NEXT_GET, .next = HTTP_M_GET},
    {"RFC 9112 §7.1.3", "Transfer-Encoding is case-insensitive, OWS and empty elements ignored",
     IN("PUT /" H11 "Transfer-Encoding: , Chunked \r\n\r\n0\r\n\r\n"), OK(405, HTTP_M_PUT, 1, 1)},
    {"RFC 9110 §8.6", "Content-Length: 0 means no body; OWS around the value",
     IN("GET /" H11 "Content-Length: \t0 \r\n\r\n" NEXT_GET), OK(200, HTTP_M_GET, 1, 1),
     .rest = NEXT_GET, .next = HTTP_M_GET},
    {"RFC 9110 §15.5.6", "a known method other than GET/HEAD: 405", IN("DELETE /x" H11 "\r\n"),
     OK(405, HTTP_M_DELETE, 1, 1)},
    {"RFC 9110 §9.1", "an unknown method: 501, the connection persists", IN("BREW /" H11 "\r\n"),
     OK(501, HTTP_M_OTHER, 1, 1)},
    {"RFC 9110 §9.1", "methods are case-sensitive: get is not GET", IN("get /" H11 "\r\n"),
     OK(501, HTTP_M_OTHER, 1, 1)},
    {"RFC 9110 §6.2", "HTTP/1.2 is read as HTTP/1.1", IN("GET / HTTP/1.2\r\nHost: h\r\n\r\n"),
     OK(200, HTTP_M_GET, 1, 1)},
    {"RFC 9112 §3.2", "HTTP/1.0 needs no Host", IN("GET / HTTP/1.0\r\n\r\n"),
     OK(200, HTTP_M_GET, 0, 0)},
    {"RFC 9112 §3.2", "an empty Host is valid", IN("GET / HTTP/1.1\r\nHost:\r\n\r\n"),
     OK(200, HTTP_M_GET, 1, 1)},
    {"RFC 9112 §3.2", "Host with an IPv6 literal and a port",
     IN("GET / HTTP/1.1\r\nHOST: [::1]:8080\r\n\r\n"), OK(200, HTTP_M_GET, 1, 1)},
    {"RFC 9112 §3.2.2", "absolute-form target", IN("GET http://h/p?q=%41" H11 "\r\n"),
     OK(200, HTTP_M_GET, 1, 1)},
    {"RFC 9112 §3.2.3", "authority-form for CONNECT: 405", IN("CONNECT h:443" H11 "\r\n"),
     OK(405, HTTP_M_CONNECT, 1, 1)},
    {"RFC 9112 §3.2.4", "asterisk-form for OPTIONS: 405", IN("OPTIONS *" H11 "\r\n"),
     OK(405, HTTP_M_OPTIONS, 1, 1)},
    {"RFC 9110 §5.5", "obs-text in a field value is allowed", IN("GET /" H11 "X: \x80\xff\r\n\r\n"),
     OK(200, HTTP_M_GET, 1, 1)},
    {"RFC 9110 §10.1.1", "Expect: 100-continue on a request with a body",
     IN("PUT /" H11 "Expect: 100-Continue\r\nContent-Length: 1\r\n\r\nx"),
     OKC(405, HTTP_M_PUT, 1, 1, 1)},
    {"RFC 9110 §10.1.1", "Expect: 100-continue is ignored in HTTP/1.0",
     IN("PUT / HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\nx"),
     OKC(405, HTTP_M_PUT, 0, 0, 0)},

    /* ---- incomplete: wait ---- */
    {"RFC 9112 §2.1", "a head without its blank line yet", IN("GET /" H11), BAD(MORE)},
    {"RFC 9112 §7.1", "a chunked body without its last chunk yet",
     IN("POST /" H11 "Transfer-Encoding: chunked\r\n\r\n5\r\nhel"), BAD(MORE)},
    {"RFC 9112 §6.3", "a Content-Length body not all here yet",
     IN("POST /" H11 "Content-Length: 10\r\n\r\nabc"), BAD(MORE)},

    /* ---- the request line ---- */
    {"RFC 9112 §3", "0xff bytes: refused at the first", IN("\xff\xff\xff\xff"), BAD(400)},
    {"RFC 9112 §3", "two spaces after the method", IN("GET  /" H11 "\r\n"), BAD(400)},
    {"RFC 9112 §3", "no version (HTTP/0.9 simple request)", IN("GET /\r\n\r\n"), BAD(400)},
    {"RFC 9112 §3", "space before the CRLF of the request line", IN("GET / HTTP/1.1 \r\n"),
     BAD(400)},
    {"RFC 9112 §3.1", "a method longer than any known: 501",
     IN("ABCDEFGHIJKLMNOPQRSTUVWXYZABCDEFGHIJ /"), BAD(501)},
    {"RFC 9112 §3.2", "NUL in the target", IN("GET /a\0b" H11 "\r\n"), BAD(400)},
    {"RFC 9112 §3.2.1", "a fragment in the target", IN("GET /a#b" H11 "\r\n"), BAD(400)},
    {"RFC 3986 §2.1", "a bad percent-escape in the target", IN("GET /%4g" H11 "\r\n"), BAD(400)},
    {"RFC 9112 §3.2.3", "CONNECT needs the authority-form", IN("CONNECT /" H11 "\r\n"), BAD(400)},
    {"RFC 9112 §3.2.4", "the asterisk-form is only for OPTIONS", IN("GET *" H11 "\r\n"), BAD(400)},
    {"RFC 9110 §15.5.15", "a target over target_max: 414", IN("GET /123456789"), .lim = &small,
     BAD(414)},
    {"RFC 9112 §2.3", "version with letters after it", IN("GET / HTTP/1.1x\r\n"), BAD(400)},
    {"RFC 9112 §2.3", "HTTP-name is case-sensitive", IN("GET / http/1.1\r\n"), BAD(400)},
    {"RFC 9112 §2.3", "a two-digit minor is not a version", IN("GET / HTTP/1.10\r\n"), BAD(400)},
    {"RFC 9110 §15.6.6", "HTTP/2.0 is well-formed but unsupported: 505",
     IN("GET / HTTP/2.0\r\nHost: h\r\n\r\n"), BAD(505)},
    {"RFC 9110 §15.6.6", "HTTP/0.9 named as a version: 505", IN("GET / HTTP/0.9\r\n\r\n"),
     BAD(505)},

    /* ---- field lines ---- */
    {"RFC 9112 §2.2", "a bare LF ends no line", IN("GET / HTTP/1.1\nHost: h\n\n"), BAD(400)},
    {"RFC 9112 §2.2", "a bare CR in a field value", IN("GET /" H11 "X: a\rb\r\n\r\n"), BAD(400)},
    {"RFC 9112 §2.2", "whitespace between the request line and the first field",
     IN("GET / HTTP/1.1\r\n Host: h\r\n\r\n"), BAD(400)},
    {"RFC 9112 §5.1", "whitespace before the colon (the smuggling case)",
     IN("POST /" H11 "Transfer-Encoding : chunked\r\n\r\n0\r\n\r\n" NEXT_GET), BAD(400)},
    {"RFC 9112 §5.1", "an empty field name", IN("GET /" H11 ": x\r\n\r\n"), BAD(400)},
    {"RFC 9112 §5.2", "obs-fold", IN("GET /" H11 "X: a\r\n b\r\n\r\n"), BAD(400)},
    {"RFC 9110 §5.5", "NUL in a field value", IN("GET /" H11 "X: a\0b\r\n\r\n"), BAD(400)},
    {"RFC 9110 §5.5", "DEL in a field value", IN("GET /" H11 "X: a\x7f\r\n\r\n"), BAD(400)},
    {"RFC 6585 §5", "no head within head_max: 431",
     IN("GET / HTTP/1.1\r\nX: 01234567890123456789012345678901234567890123456789\r\n"),
     .lim = &small, BAD(431)},
    {"RFC 9112 §3.2", "HTTP/1.1 without Host", IN("GET / HTTP/1.1\r\n\r\n"), BAD(400)},
    {"RFC 9112 §3.2", "two Host lines", IN("GET /" H11 "Host: h\r\n\r\n"), BAD(400)},
    {"RFC 9112 §3.2", "an invalid Host (userinfo)", IN("GET / HTTP/1.1\r\nHost: u@h\r\n\r\n"),
     BAD(400)},
    {"RFC 9112 §3.2", "an invalid Host (port not digits)",
     IN("GET / HTTP/1.1\r\nHost: h:8x\r\n\r\n"), BAD(400)},
    {"RFC 9110 §7.6.1", "a Connection option that is not a token",
     IN("GET /" H11 "Connection: close, \"x\"\r\n\r\n"), BAD(400)},
    {"RFC 9110 §10.1.1", "an Expect other than 100-continue: 417",
     IN("GET /" H11 "Expect: coffee\r\n\r\n"), BAD(417)},

    /* ---- framing: Content-Length ---- */
    {"RFC 9110 §8.6", "Content-Length: -1", IN("GET /" H11 "Content-Length: -1\r\n\r\n"), BAD(400)},
    {"RFC 9110 §8.6", "Content-Length: abc", IN("GET /" H11 "Content-Length: abc\r\n\r\n"),
     BAD(400)},
    {"RFC 9110 §8.6", "Content-Length: 20 digits overflows",
     IN("GET /" H11 "Content-Length: 99999999999999999999\r\n\r\n"), BAD(400)},
    {"RFC 9110 §8.6", "an empty Content-Length", IN("GET /" H11 "Content-Length:\r\n\r\n"),
     BAD(400)},
    {"RFC 9112 §6.3", "two different Content-Length values",
     IN("GET /" H11 "Content-Length: 1\r\nContent-Length: 2\r\n\r\nab"), BAD(400)},
    {"RFC 9110 §8.6", "two equal Content-Length lines are refused too",
     IN("GET /" H11 "Content-Length: 1\r\nContent-Length: 1\r\n\r\na"), BAD(400)},
    {"RFC 9110 §8.6", "a Content-Length list", IN("GET /" H11 "Content-Length: 1, 1\r\n\r\na"),
     BAD(400)},
    {"RFC 9110 §15.5.14", "Content-Length over body_max: 413",
     IN("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 17\r\n\r\n"), .lim = &small, BAD(413)},

    /* ---- framing: Transfer-Encoding ---- */
    {"RFC 9112 §6.1", "Transfer-Encoding with Content-Length",
     IN("POST /" H11 "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"), BAD(400)},
    {"RFC 9112 §6.1", "Transfer-Encoding in HTTP/1.0",
     IN("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"), BAD(400)},
    {"RFC 9112 §6.3", "a final coding other than chunked",
     IN("POST /" H11 "Transfer-Encoding: gzip\r\n\r\n"), BAD(400)},
    {"RFC 9112 §6.3", "chunked not final",
     IN("POST /" H11 "Transfer-Encoding: chunked, gzip\r\n\r\n"), BAD(400)},
    {"RFC 9112 §7", "chunked twice", IN("POST /" H11 "Transfer-Encoding: chunked, chunked\r\n\r\n"),
     BAD(400)},
    {"RFC 9112 §6.1", "a coding we do not implement before chunked: 501",
     IN("POST /" H11 "Transfer-Encoding: gzip, chunked\r\n\r\n"), BAD(501)},
    {"RFC 9110 §5.3", "the list spans field lines: gzip then chunked is 501",
     IN("POST /" H11 "Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n"), BAD(501)},
    {"RFC 9112 §6.3", "an empty Transfer-Encoding", IN("POST /" H11 "Transfer-Encoding:\r\n\r\n"),
     BAD(400)},
    {"RFC 9112 §6.3", "a coding with parameters is not chunked",
     IN("POST /" H11 "Transfer-Encoding: chunked;q=1\r\n\r\n"), BAD(400)},

    /* ---- chunked bodies ---- */
    {"RFC 9112 §7.1", "a chunk size that is not HEXDIG",
     IN("POST /" H11 "Transfer-Encoding: chunked\r\n\r\nx\r\n"), BAD(400)},
    {"RFC 9112 §7.1", "whitespace after a chunk size without an extension",
     IN("POST /" H11 "Transfer-Encoding: chunked\r\n\r\n5 \r\nhello\r\n0\r\n\r\n"), BAD(400)},
    {"RFC 9112 §7.1", "a bare LF after a chunk size",
     IN("POST /" H11 "Transfer-Encoding: chunked\r\n\r\n5\nhello\r\n0\r\n\r\n"), BAD(400)},
    {"RFC 9112 §7.1", "chunk data longer than its size",
     IN("POST /" H11 "Transfer-Encoding: chunked\r\n\r\n3\r\nhello\r\n0\r\n\r\n"), BAD(400)},
    {"RFC 9112 §7.1.1", "an unterminated quoted extension value",
     IN("POST /" H11 "Transfer-Encoding: chunked\r\n\r\n1;a=\"x\r\n"), BAD(400)},
    {"RFC 9112 §7.1.2", "obs-fold in the trailer section",
     IN("POST /" H11 "Transfer-Encoding: chunked\r\n\r\n0\r\nT: v\r\n w\r\n\r\n"), BAD(400)},
    {"RFC 9112 §7.1", "a bare CR after chunk data",
     IN("POST /" H11 "Transfer-Encoding: chunked\r\n\r\n1\r\na\rx"), BAD(400)},
    {"RFC 9112 §7.1", "the final CR of a chunked body without its LF",
     IN("POST /" H11 "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\r"), BAD(400)},
    {"RFC 9110 §5.6.4", "a control after a backslash in a quoted extension value",
     IN("POST /" H11 "Transfer-Encoding: chunked\r\n\r\n1;a=\"\\\x01\"\r\n"), BAD(400)},
    {"RFC 9110 §15.5.14", "a first chunk-size digit over what is left of body_max",
     IN("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\na\r\n0123456789\r\nf"),
     .lim = &small, BAD(413)},
    {"RFC 9110 §15.5.14", "a chunk size over body_max: 413 at its digit",
     IN("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n11"), .lim = &small,
     BAD(413)},
};

#define NROWS (sizeof(rows) / sizeof(rows[0]))

/* What the server does with the bytes: the head, then the body in one go.
 * Returns the status it answers or MORE; for a valid request (*valid),
 * *consumed is where the next request starts. */
static int outcome(const char *in, size_t len, const struct http_limits *lim, struct http_req *r,
                   size_t *consumed, bool *valid)
{
    *valid = false;
    int st = http_parse_head(in, len, lim, r);
    if (st != HTTP_PARSE_DONE)
        return st == HTTP_PARSE_MORE ? MORE : st;
    struct http_body b = r->body;
    size_t used = 0;
    st = http_body_feed(&b, in + r->head_len, len - r->head_len, &used);
    if (st != HTTP_PARSE_DONE)
        return st == HTTP_PARSE_MORE ? MORE : st;
    *consumed = r->head_len + used;
    *valid = true;
    return http_req_status(r);
}

static void test_http_parse_table(void **state)
{
    (void)state;
    int failed = 0;
    for (size_t i = 0; i < NROWS; i++) {
        const struct row *w = &rows[i];
        struct http_req r;
        size_t consumed = 0;
        bool valid;
        int st = outcome(w->in, w->len, w->lim, &r, &consumed, &valid);
        size_t rest = w->rest ? strlen(w->rest) : 0;
        int ok = st == w->status && valid == w->valid;
        if (ok && valid) {
            ok = (int)r.method == w->method && (int)r.minor == w->minor &&
                 r.keep_alive == (w->keep != 0) && consumed == w->len - rest &&
                 (w->cont == ANY || r.expect_continue == (w->cont != 0));
            if (ok && w->rest) {
                struct http_req n;
                ok = http_parse_head(w->in + consumed, rest, w->lim, &n) == HTTP_PARSE_DONE &&
                     (int)n.method == w->next && n.head_len == rest;
            }
        }
        if (!ok) {
            printf("FAIL row %zu (%s, %s): status %d (want %d), method %d, minor %u, keep %d, "
                   "consumed %zu of %zu\n",
                   i, w->rfc, w->name, st, w->status, (int)r.method, r.minor, r.keep_alive,
                   consumed, w->len);
            failed++;
        }
    }
    printf("%zu rows, %d failed\n", NROWS, failed);
    assert_int_equal(failed, 0);
}

/* The server re-parses a head as its bytes come, and feeds bodies in the
 * pieces recv hands it: neither may change the verdict. */
static void test_http_parse_prefixes_and_splits(void **state)
{
    (void)state;
    for (size_t i = 0; i < NROWS; i++) {
        const struct row *w = &rows[i];
        struct http_req full, r;
        int want = http_parse_head(w->in, w->len, w->lim, &full);
        for (size_t k = 0; k < w->len; k++) {
            /* An exact-size copy, so a read past the prefix is caught by
             * the sanitizer build. */
            char *p = malloc(k ? k : 1);
            assert_non_null(p);
            memcpy(p, w->in, k);
            int st = http_parse_head(p, k, w->lim, &r);
            free(p);
            if (want == HTTP_PARSE_DONE && k >= full.head_len) {
                assert_int_equal(st, HTTP_PARSE_DONE);
                assert_int_equal(r.head_len, full.head_len);
            } else if (st != HTTP_PARSE_MORE) {
                if (st != want)
                    printf("row %zu (%s): prefix %zu gives %d, the whole %d\n", i, w->name, k, st,
                           want);
                assert_int_equal(st, want);
            }
        }
        if (want != HTTP_PARSE_DONE)
            continue;
        const char *body = w->in + full.head_len;
        size_t blen = w->len - full.head_len, used_once = 0, used = 0;
        struct http_body once = full.body, bytes = full.body;
        int st_once = http_body_feed(&once, body, blen, &used_once);
        int st = HTTP_PARSE_MORE;
        for (size_t k = 0; k < blen && st == HTTP_PARSE_MORE; k++) {
            size_t u = 0;
            st = http_body_feed(&bytes, body + k, 1, &u);
            used += u;
        }
        if (blen == 0)
            st = http_body_feed(&bytes, body, 0, &used);
        assert_int_equal(st, st_once);
        if (st == HTTP_PARSE_DONE)
            assert_int_equal(used, used_once);
    }
}

/* The default limits at their edges: RFC 9112 §3's 8000-octet request
 * line, the 16 KiB head, the 1 MiB body. */
static void test_http_parse_default_limits(void **state)
{
    (void)state;
    static char buf[HTTP_HEAD_MAX + 64];
    struct http_req r;

    /* A target of exactly HTTP_TARGET_MAX octets, then one more. */
    for (size_t extra = 0; extra < 2; extra++) {
        size_t t = HTTP_TARGET_MAX + extra;
        memcpy(buf, "GET /", 5);
        memset(buf + 5, 'a', t - 1);
        int n = snprintf(buf + 4 + t, sizeof(buf) - 4 - t, " HTTP/1.1\r\nHost: h\r\n\r\n");
        int st = http_parse_head(buf, 4 + t + (size_t)n, NULL, &r);
        assert_int_equal(st, extra ? 414 : HTTP_PARSE_DONE); /* RFC 9110 §15.5.15 */
    }

    /* A head of exactly HTTP_HEAD_MAX bytes, then one more (RFC 6585 §5). */
    for (size_t extra = 0; extra < 2; extra++) {
        size_t len = HTTP_HEAD_MAX + extra;
        const char *pre = "GET / HTTP/1.1\r\nHost: h\r\nX: ";
        size_t pl = strlen(pre);
        memcpy(buf, pre, pl);
        memset(buf + pl, 'v', len - pl - 4);
        memcpy(buf + len - 4, "\r\n\r\n", 4);
        assert_int_equal(http_parse_head(buf, len, NULL, &r), extra ? 431 : HTTP_PARSE_DONE);
    }
    /* HTTP_HEAD_MAX bytes without the end of the head: refused at once,
     * without waiting for a byte that could not help. */
    assert_int_equal(http_parse_head(buf, HTTP_HEAD_MAX, NULL, &r), 431);
    assert_int_equal(http_parse_head(buf, HTTP_HEAD_MAX - 1, NULL, &r), HTTP_PARSE_MORE);

    /* Content-Length at the body budget, then one more (RFC 9110 §15.5.14). */
    int n = snprintf(buf, sizeof(buf), "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: %u\r\n\r\n",
                     HTTP_BODY_MAX);
    assert_int_equal(http_parse_head(buf, (size_t)n, NULL, &r), HTTP_PARSE_DONE);
    assert_int_equal(r.body.kind, HTTP_BODY_LENGTH);
    n = snprintf(buf, sizeof(buf), "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: %u\r\n\r\n",
                 HTTP_BODY_MAX + 1);
    assert_int_equal(http_parse_head(buf, (size_t)n, NULL, &r), 413);

    /* A Content-Length body larger than any buffer, fed in pieces. */
    n = snprintf(buf, sizeof(buf), "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: %u\r\n\r\n",
                 HTTP_BODY_MAX);
    assert_int_equal(http_parse_head(buf, (size_t)n, NULL, &r), HTTP_PARSE_DONE);
    static char chunk[4096];
    size_t total = 0, used;
    int st = HTTP_PARSE_MORE;
    for (int i = 0; i < 1000 && st == HTTP_PARSE_MORE; i++) {
        st = http_body_feed(&r.body, chunk, sizeof(chunk), &used);
        total += used;
    }
    assert_int_equal(st, HTTP_PARSE_DONE);
    assert_int_equal(total, HTTP_BODY_MAX);
}

/* A chunked body fed through the budget: 413 at the first byte past it. */
static void test_http_parse_chunked_budget(void **state)
{
    (void)state;
    struct http_req r;
    const char *head = "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n";
    assert_int_equal(http_parse_head(head, strlen(head), &small, &r), HTTP_PARSE_DONE);
    /* "a\r\n" + 10 bytes + "\r\n" = 15 wire bytes; the "0" is the 16th,
     * its CR the 17th: over body_max = 16. */
    const char *body = "a\r\n0123456789\r\n0\r\n\r\n";
    size_t used;
    assert_int_equal(http_body_feed(&r.body, body, strlen(body), &used), 413);
    assert_int_equal(used, 16);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_http_parse_table),
        cmocka_unit_test(test_http_parse_prefixes_and_splits),
        cmocka_unit_test(test_http_parse_default_limits),
        cmocka_unit_test(test_http_parse_chunked_budget),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
