/* SPDX-License-Identifier: MIT */
/*
 * http_parse.h — a strict HTTP/1.1 request parser (RFC 9112, RFC 9110) for
 * taskring-http.
 *
 * Pure functions over a byte buffer: no I/O, no allocation, no global state,
 * nothing of taskring. The caller owns the buffer; the parser reads at most
 * the `len` bytes it is given and keeps no pointer into them.
 *
 * A request is read in two steps:
 *   1. http_parse_head() on the bytes from the request's first byte. It
 *      re-reads them from the start on every call (a head is at most
 *      head_max bytes, so that costs little and needs no saved state), and
 *      it judges every byte as it reaches it: garbage is refused at once,
 *      not when the buffer fills.
 *   2. http_body_feed() on the bytes after the head, as they come, until it
 *      says the body is done; the caller discards them. Bodies are framed
 *      by Content-Length or by a final "chunked" transfer coding; the
 *      decoder keeps its state in struct http_body, so a body may be far
 *      larger than any buffer.
 * The next pipelined request starts right after the body.
 *
 * Every verdict other than HTTP_PARSE_MORE and HTTP_PARSE_DONE is the status
 * code to answer with, after which the connection must be closed: once a
 * request is malformed, where the next one starts is unknown (RFC 9112 §6.3
 * item 5 says so for framing; the other errors are treated the same way).
 * What is refused, with which status, is listed at http_parse_head().
 */
#ifndef TR_HTTP_PARSE_H
#define TR_HTTP_PARSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define HTTP_PARSE_MORE 0 /* no verdict yet: valid so far, more bytes needed */
#define HTTP_PARSE_DONE 1 /* a complete, valid head (or body) */

/* RFC 9112 §3 recommends accepting request lines of at least 8000 octets;
 * the target gets all of them, and the head has room for the fields too. */
#define HTTP_TARGET_MAX 8000
#define HTTP_HEAD_MAX 16384
/* Bodies are read only to be thrown away: past nginx's default
 * client_max_body_size the cost is refused (413) instead. */
#define HTTP_BODY_MAX (1u << 20)
/* Longer than any method this server knows: 501 (RFC 9112 §3.1). */
#define HTTP_METHOD_MAX 32

struct http_limits {
    size_t head_max;   /* leading empty lines, request line, fields, blank line */
    size_t target_max; /* the request-target's octets */
    uint64_t body_max; /* a body's octets on the wire (chunk framing included) */
};

/* The defaults above, for callers that pass NULL limits. */
extern const struct http_limits http_limits_default;

enum http_method {
    HTTP_M_OTHER, /* a well-formed token this server does not know: 501 */
    HTTP_M_GET,
    HTTP_M_HEAD,
    HTTP_M_POST,
    HTTP_M_PUT,
    HTTP_M_DELETE,
    HTTP_M_CONNECT,
    HTTP_M_OPTIONS,
    HTTP_M_TRACE,
    HTTP_M_PATCH,
};

enum http_body_kind { HTTP_BODY_NONE, HTTP_BODY_LENGTH, HTTP_BODY_CHUNKED };

/* A body decoder: set up by http_parse_head, then fed by http_body_feed.
 * Private to the parser except `kind`. */
struct http_body {
    enum http_body_kind kind;
    unsigned state;  /* the chunked decoder's state */
    uint64_t left;   /* Content-Length: octets still to come; chunked: of this chunk */
    uint64_t total;  /* octets consumed so far (chunked: framing included) */
    uint64_t max;    /* the body budget: limits->body_max */
    uint64_t length; /* Content-Length's value (0 when chunked) */
};

/* One request head, valid when http_parse_head returned HTTP_PARSE_DONE. */
struct http_req {
    enum http_method method;
    unsigned minor;       /* 0 or 1: HTTP/1.2 to HTTP/1.9 read as 1.1 (RFC 9110 §6.2) */
    bool keep_alive;      /* RFC 9112 §9.3: the connection persists after the answer */
    bool expect_continue; /* an HTTP/1.1 "Expect: 100-continue" on a request with a body */
    size_t head_len;      /* bytes of the head, leading empty lines included */
    size_t target_off;    /* the request-target: buf[target_off .. +target_len) */
    size_t target_len;
    struct http_body body; /* the framing of what follows the head */
};

/* Parses the request head at buf[0..len).
 *
 * Returns HTTP_PARSE_MORE when the bytes so far are a valid beginning of a
 * head (the caller receives more and calls again with all of them),
 * HTTP_PARSE_DONE when buf starts with a complete, valid head (*r says what
 * it asks; the body, if any, starts at buf + r->head_len), or the status to
 * answer before closing the connection:
 *   400  a malformed request line (RFC 9112 §3): not exactly
 *        method SP target SP version CRLF; a method that is not a token; a
 *        target with a byte outside RFC 3986's set, a '#', a bad
 *        percent-escape or the wrong form for the method (§3.2); a version
 *        that is not HTTP/DIGIT.DIGIT (§2.3); a bare LF or bare CR anywhere
 *        in the head (§2.2); a field line that starts with whitespace
 *        (obs-fold §5.2, or whitespace after the request line §2.2); a
 *        field name that is not a token, or whitespace before its colon
 *        (§5.1); NUL, another control or DEL in a field value (RFC 9110
 *        §5.5); an HTTP/1.1 request without Host, or any request with two
 *        Host lines or an invalid Host (§3.2); a Content-Length that is not
 *        1*DIGIT, does not fit in 63 bits, or appears twice (RFC 9110 §8.6,
 *        RFC 9112 §6.3); Transfer-Encoding together with Content-Length, or
 *        in an HTTP/1.0 request (§6.1); a Transfer-Encoding whose final
 *        coding is not chunked, or chunked twice (§6.3 item 4, §7); a
 *        Connection value that is not a list of tokens (RFC 9110 §7.6.1).
 *   413  Content-Length above limits->body_max (RFC 9110 §15.5.14).
 *   414  a target longer than limits->target_max (RFC 9110 §15.5.15).
 *   417  an Expect other than 100-continue (RFC 9110 §10.1.1).
 *   431  no complete head within limits->head_max bytes (RFC 6585 §5).
 *   501  a method longer than HTTP_METHOD_MAX (RFC 9112 §3.1); a transfer
 *        coding other than chunked before the final chunked (§6.1).
 *   505  a well-formed version of a major other than 1 (RFC 9110 §15.6.6).
 * Errors in the request line and in each field line are found at the first
 * offending byte, so a prefix of an input gets either HTTP_PARSE_MORE or the
 * input's own verdict; the checks that need the whole head (Host present,
 * the framing, Expect, the body budget) run at its blank line.
 *
 * limits NULL means http_limits_default. Always fills *r (zeroes on error).
 */
int http_parse_head(const char *buf, size_t len, const struct http_limits *limits,
                    struct http_req *r);

/* Consumes body bytes buf[0..len) of the request whose head set up *b.
 * Sets *used to the bytes that belong to the body (all of them on
 * HTTP_PARSE_MORE; on HTTP_PARSE_DONE the next request starts at
 * buf + *used). Returns HTTP_PARSE_MORE, HTTP_PARSE_DONE (also at once, with
 * *used 0, for a request without a body), or the status to answer before
 * closing: 400 for a malformed chunked body (RFC 9112 §7.1: chunk size,
 * chunk extensions, the CRLF after the data, trailer field lines as strict
 * as the head's), 413 once the body would pass b->max octets (a chunk size
 * that does not fit is refused at its digit). The verdict does not depend
 * on how the bytes are split between calls. */
int http_body_feed(struct http_body *b, const char *buf, size_t len, size_t *used);

/* What this server answers a valid request: 200 for GET and HEAD, 405 for
 * the other methods of RFC 9110 §9.3 and PATCH, 501 for unknown methods
 * (RFC 9110 §9.1). */
int http_req_status(const struct http_req *r);

#endif
