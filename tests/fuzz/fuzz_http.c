/* SPDX-License-Identifier: MIT */
/*
 * fuzz_http.c — a libFuzzer target for taskring-http's request parser
 * (tools/http_parse.h).
 *
 * Each input is a config byte, then the bytes a connection receives. The
 * target handles them as the server does: parse a head, feed its body,
 * parse the next request where the body ended, until a verdict other than
 * "done" (more bytes needed, or an error status that closes). On the way it
 * checks the parser's contract; any failed check aborts with a message
 * naming it, which is what libFuzzer reports:
 *   - verdicts are HTTP_PARSE_MORE, HTTP_PARSE_DONE or one of the statuses
 *     the header lists, and a valid request routes to 200, 405 or 501;
 *   - nothing is read past the bytes given (every parse runs on a heap
 *     copy of exactly that size, under ASan);
 *   - a done head is within the input and head_max, its target within the
 *     head and target_max, its fields in range, its body framing
 *     consistent with the limits;
 *   - parsing the same bytes again gives the same verdict and fields;
 *   - a prefix gets HTTP_PARSE_MORE or the whole input's verdict (a prefix
 *     shorter than a done head gets MORE), and no more bytes are needed
 *     once head_max are there;
 *   - a body fed in pieces ends with the verdict and at the byte it ends
 *     at when fed at once; it never consumes more than it is given, nor
 *     more than body_max.
 *
 * Config byte: bits 0-1 head_max {default, 64, 256, 1024}, bits 2-3
 * target_max {default, 8, 32, 200}, bits 4-5 body_max {default, 16, 100,
 * 1000}: small limits let short inputs reach 413, 414 and 431. Bits 6-7
 * and the input length seed the piece sizes of the split feeds.
 *
 * Build and run: tools/dev fuzz --seconds N --target http (corpus:
 * tests/fuzz/corpus_http; what a run learns stays in build-fuzz/).
 */
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http_parse.h"

#define FZ_MAX_INPUT (HTTP_HEAD_MAX * 2)
#define FZ_PREFIXES 4 /* cut points checked per head */

static void fail(const char *fmt, ...) __attribute__((noreturn, format(printf, 1, 2)));
static void fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "fuzz_http: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    abort();
}

#define CHECK(c, ...)                                                                              \
    do {                                                                                           \
        if (!(c))                                                                                  \
            fail(__VA_ARGS__);                                                                     \
    } while (0)

static bool known_error(int st)
{
    switch (st) {
    case 400:
    case 413:
    case 414:
    case 417:
    case 431:
    case 501:
    case 505:
        return true;
    }
    return false;
}

/* A heap copy of exactly n bytes, so ASan sees a read past them. */
static char *copy(const char *p, size_t n)
{
    char *c = malloc(n ? n : 1);
    CHECK(c != NULL, "out of memory");
    memcpy(c, p, n);
    return c;
}

static int parse(const char *p, size_t n, const struct http_limits *lim, struct http_req *r)
{
    char *c = copy(p, n);
    int st = http_parse_head(c, n, lim, r);
    free(c);
    return st;
}

static bool same_req(const struct http_req *a, const struct http_req *b)
{
    return a->method == b->method && a->minor == b->minor && a->keep_alive == b->keep_alive &&
           a->expect_continue == b->expect_continue && a->head_len == b->head_len &&
           a->target_off == b->target_off && a->target_len == b->target_len &&
           a->body.kind == b->body.kind && a->body.state == b->body.state &&
           a->body.left == b->body.left && a->body.total == b->body.total &&
           a->body.max == b->body.max && a->body.length == b->body.length;
}

static void check_head(const struct http_req *r, size_t n, const struct http_limits *lim)
{
    CHECK(r->head_len > 0 && r->head_len <= n && r->head_len <= lim->head_max,
          "head_len %zu outside (0, min(%zu, %zu)]", r->head_len, n, lim->head_max);
    CHECK(r->method <= HTTP_M_PATCH, "method %d", (int)r->method);
    CHECK(r->minor <= 1, "minor %u", r->minor);
    CHECK(r->target_len > 0 && r->target_len <= lim->target_max, "target_len %zu", r->target_len);
    CHECK(r->target_off + r->target_len < r->head_len, "target [%zu, +%zu) past the head %zu",
          r->target_off, r->target_len, r->head_len);
    CHECK(r->body.max == lim->body_max && r->body.total == 0 && r->body.state == 0,
          "body decoder not fresh");
    switch (r->body.kind) {
    case HTTP_BODY_NONE:
        CHECK(r->body.left == 0 && !r->expect_continue, "no body, but left/continue");
        break;
    case HTTP_BODY_LENGTH:
        CHECK(r->body.length > 0 && r->body.length <= lim->body_max &&
                  r->body.left == r->body.length,
              "Content-Length framing %llu/%llu", (unsigned long long)r->body.length,
              (unsigned long long)r->body.left);
        break;
    case HTTP_BODY_CHUNKED:
        CHECK(r->minor == 1 && r->body.length == 0, "chunked in HTTP/1.0");
        break;
    default:
        fail("body kind %d", (int)r->body.kind);
    }
    int st = http_req_status(r);
    CHECK(st == 200 || st == 405 || st == 501, "route status %d", st);
    CHECK((st == 501) == (r->method == HTTP_M_OTHER), "501 and method %d", (int)r->method);
}

/* Every cut of the head's bytes: MORE, or the whole's verdict. */
static void check_prefixes(const char *p, size_t n, const struct http_limits *lim, int want,
                           const struct http_req *full, uint32_t seed)
{
    size_t end = want == HTTP_PARSE_DONE ? full->head_len : n;
    size_t cuts[FZ_PREFIXES] = {0, end ? end - 1 : 0, end / 2, end ? seed % end : 0};
    for (size_t i = 0; i < FZ_PREFIXES; i++) {
        struct http_req r;
        int st = parse(p, cuts[i], lim, &r);
        if (want == HTTP_PARSE_DONE) {
            CHECK(st == HTTP_PARSE_MORE, "prefix %zu of a %zu-byte head: %d, not MORE", cuts[i],
                  end, st);
        } else {
            CHECK(st == HTTP_PARSE_MORE || st == want, "prefix %zu of %zu: %d, the whole %d",
                  cuts[i], n, st, want);
        }
        if (cuts[i] >= lim->head_max)
            CHECK(st != HTTP_PARSE_MORE, "MORE with %zu >= head_max bytes", cuts[i]);
    }
}

/* Feeds the body once whole and once in pieces; both must agree. Returns
 * the verdict and sets *used. */
static int feed_body(const struct http_req *r, const char *p, size_t n, uint32_t seed, size_t *used)
{
    char *c = copy(p, n);
    struct http_body once = r->body, parts = r->body;
    size_t used_once = 0;
    int st_once = http_body_feed(&once, c, n, &used_once);
    CHECK(used_once <= n, "body used %zu of %zu", used_once, n);
    CHECK(once.total <= once.max, "body total %llu over max %llu", (unsigned long long)once.total,
          (unsigned long long)once.max);
    CHECK(st_once == HTTP_PARSE_MORE || st_once == HTTP_PARSE_DONE || st_once == 400 ||
              st_once == 413,
          "body verdict %d", st_once);
    if (st_once == HTTP_PARSE_MORE)
        CHECK(used_once == n, "body MORE but used %zu of %zu", used_once, n);
    if (r->body.kind == HTTP_BODY_NONE)
        CHECK(st_once == HTTP_PARSE_DONE && used_once == 0, "no body, but %d/%zu", st_once,
              used_once);

    /* The same bytes in pieces of 1..8 bytes, sizes from a small LCG. The
     * loop ends: each pass takes a piece, and pieces are at least 1 byte. */
    size_t at = 0, total = 0;
    int st = HTTP_PARSE_MORE;
    uint32_t x = seed | 1;
    while (st == HTTP_PARSE_MORE && at < n) {
        x = x * 1103515245u + 12345u;
        size_t piece = 1 + (x >> 16) % 8;
        if (piece > n - at)
            piece = n - at;
        char *pc = copy(c + at, piece);
        size_t u = 0;
        st = http_body_feed(&parts, pc, piece, &u);
        free(pc);
        CHECK(u <= piece, "piece used %zu of %zu", u, piece);
        CHECK(st != HTTP_PARSE_MORE || u == piece, "piece MORE but used %zu of %zu", u, piece);
        total += u;
        at += piece;
    }
    if (n == 0)
        st = http_body_feed(&parts, c, 0, &total);
    free(c);
    CHECK(st == st_once, "body split verdict %d, at once %d", st, st_once);
    if (st == HTTP_PARSE_DONE)
        CHECK(total == used_once, "body split ends at %zu, at once at %zu", total, used_once);
    *used = used_once;
    return st_once;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    if (size > FZ_MAX_INPUT)
        size = FZ_MAX_INPUT;
    static const size_t heads[] = {HTTP_HEAD_MAX, 64, 256, 1024};
    static const size_t targets[] = {HTTP_TARGET_MAX, 8, 32, 200};
    static const uint64_t bodies[] = {HTTP_BODY_MAX, 16, 100, 1000};
    uint8_t cfg = data[0];
    struct http_limits lim = {
        .head_max = heads[cfg & 3],
        .target_max = targets[(cfg >> 2) & 3],
        .body_max = bodies[(cfg >> 4) & 3],
    };
    uint32_t seed = (uint32_t)(cfg >> 6) * 2654435761u + (uint32_t)size;
    const char *in = (const char *)data + 1;
    size_t len = size - 1;

    /* Each pass consumes at least one byte (a done head is never empty)
     * or ends the loop. */
    for (size_t at = 0; at <= len;) {
        const char *p = in + at;
        size_t n = len - at;
        struct http_req r, again;
        int st = parse(p, n, &lim, &r);
        CHECK(st == HTTP_PARSE_MORE || st == HTTP_PARSE_DONE || known_error(st), "verdict %d", st);
        int st2 = parse(p, n, &lim, &again);
        CHECK(st2 == st && same_req(&r, &again), "not deterministic: %d then %d", st, st2);
        check_prefixes(p, n, &lim, st, &r, seed);
        if (st == HTTP_PARSE_MORE)
            CHECK(n < lim.head_max, "MORE with %zu >= head_max bytes", n);
        if (st != HTTP_PARSE_DONE)
            break;
        check_head(&r, n, &lim);
        size_t used = 0;
        int bs = feed_body(&r, p + r.head_len, n - r.head_len, seed, &used);
        if (bs != HTTP_PARSE_DONE)
            break;
        at += r.head_len + used;
    }
    return 0;
}
