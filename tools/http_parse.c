/* SPDX-License-Identifier: MIT */
/*
 * http_parse.c — the strict HTTP/1.1 request parser of http_parse.h.
 *
 * One forward pass over the bytes, each judged by one table lookup (cls[]).
 * The head is re-read from its start on every call instead of resuming from
 * saved state: heads are small and normally arrive whole, and a parser
 * without state between calls cannot get out of step with its buffer. The
 * chunked body decoder does keep state (struct http_body), because a body
 * may be larger than any buffer.
 *
 * Strictness is the point: every place where two HTTP implementations could
 * disagree on where a message ends (whitespace before a colon, bare LF or
 * CR, duplicate or malformed Content-Length, Transfer-Encoding next to
 * Content-Length, obs-fold, chunk extensions) is refused, so this server
 * can never see a different request boundary than a proxy in front of it.
 */
#include "http_parse.h"

#include <string.h>

const struct http_limits http_limits_default = {
    .head_max = HTTP_HEAD_MAX,
    .target_max = HTTP_TARGET_MAX,
    .body_max = HTTP_BODY_MAX,
};

/* "Keep going": the internal verdict of a step that found nothing wrong. */
#define GO (-1)

/* ---- character classes ------------------------------------------------------ */

enum {
    C_TCHAR = 1,   /* token (RFC 9110 §5.6.2) */
    C_FVAL = 2,    /* field-value octet: SP, HTAB, VCHAR, obs-text (RFC 9110 §5.5) */
    C_TARGET = 4,  /* request-target octet: RFC 3986 characters but '#' */
    C_HEX = 8,     /* HEXDIG */
    C_HOST = 16,   /* reg-name octet: unreserved, sub-delims, '%' (RFC 3986 §3.2.2) */
    C_QDTEXT = 32, /* qdtext (RFC 9110 §5.6.4) */
};

#define IS_ALPHA(c) (((c) >= 'a' && (c) <= 'z') || ((c) >= 'A' && (c) <= 'Z'))
#define IS_DIGIT(c) ((c) >= '0' && (c) <= '9')
#define IS_UNRESERVED(c)                                                                           \
    (IS_ALPHA(c) || IS_DIGIT(c) || (c) == '-' || (c) == '.' || (c) == '_' || (c) == '~')
#define IS_SUBDELIM(c)                                                                             \
    ((c) == '!' || (c) == '$' || (c) == '&' || (c) == '\'' || (c) == '(' || (c) == ')' ||          \
     (c) == '*' || (c) == '+' || (c) == ',' || (c) == ';' || (c) == '=')
#define IS_TCHAR(c)                                                                                \
    (IS_ALPHA(c) || IS_DIGIT(c) || (c) == '!' || (c) == '#' || (c) == '$' || (c) == '%' ||         \
     (c) == '&' || (c) == '\'' || (c) == '*' || (c) == '+' || (c) == '-' || (c) == '.' ||          \
     (c) == '^' || (c) == '_' || (c) == '`' || (c) == '|' || (c) == '~')
#define IS_VCHAR(c) ((c) >= 0x21 && (c) <= 0x7e)
#define IS_OBS(c) ((c) >= 0x80)
#define IS_FVAL(c) ((c) == ' ' || (c) == '\t' || IS_VCHAR(c) || IS_OBS(c))
#define IS_TARGET(c)                                                                               \
    (IS_UNRESERVED(c) || IS_SUBDELIM(c) || (c) == ':' || (c) == '/' || (c) == '?' || (c) == '[' || \
     (c) == ']' || (c) == '@' || (c) == '%')
#define IS_HEX(c) (IS_DIGIT(c) || ((c) >= 'a' && (c) <= 'f') || ((c) >= 'A' && (c) <= 'F'))
#define IS_HOST(c) (IS_UNRESERVED(c) || IS_SUBDELIM(c) || (c) == '%')
#define IS_QDTEXT(c)                                                                               \
    ((c) == '\t' || (c) == ' ' || (c) == 0x21 || ((c) >= 0x23 && (c) <= 0x5b) ||                   \
     ((c) >= 0x5d && (c) <= 0x7e) || IS_OBS(c))

/* The table is computed by the compiler from the predicates above, so it
 * cannot drift from them and costs nothing at run time. */
#define CLS(c)                                                                                     \
    ((IS_TCHAR(c) ? C_TCHAR : 0) | (IS_FVAL(c) ? C_FVAL : 0) | (IS_TARGET(c) ? C_TARGET : 0) |     \
     (IS_HEX(c) ? C_HEX : 0) | (IS_HOST(c) ? C_HOST : 0) | (IS_QDTEXT(c) ? C_QDTEXT : 0))
#define CLS4(c) CLS(c), CLS((c) + 1), CLS((c) + 2), CLS((c) + 3)
#define CLS16(c) CLS4(c), CLS4((c) + 4), CLS4((c) + 8), CLS4((c) + 12)
#define CLS64(c) CLS16(c), CLS16((c) + 16), CLS16((c) + 32), CLS16((c) + 48)
static const unsigned char cls[256] = {CLS64(0), CLS64(64), CLS64(128), CLS64(192)};

static bool is(unsigned char c, unsigned mask)
{
    return (cls[c] & mask) != 0;
}

static bool ows(unsigned char c)
{
    return c == ' ' || c == '\t';
}

static unsigned hexval(unsigned char c)
{
    return IS_DIGIT(c) ? (unsigned)(c - '0') : (unsigned)((c | 0x20) - 'a' + 10);
}

/* Compares n bytes with a lower-case literal, ignoring ASCII case. OR-ing
 * 0x20 folds only letters here: the other literal bytes ('-', digits)
 * already have the bit, and the bytes that fold onto them (controls) were
 * refused before any comparison. */
static bool ieq(const unsigned char *s, size_t n, const char *lit)
{
    if (n != strlen(lit))
        return false;
    for (size_t i = 0; i < n; i++) {
        if ((s[i] | 0x20) != (unsigned char)lit[i])
            return false;
    }
    return true;
}

/* ---- the request line (RFC 9112 §3) ------------------------------------------- */

/* The bytes the head parser may look at, and its verdict when they run out:
 * more to come, or 431 when the head already has all head_max bytes. */
struct scan {
    const unsigned char *p;
    size_t n;
    int out;
};

static enum http_method method_of(const unsigned char *m, size_t n)
{
    /* Methods are case-sensitive (RFC 9110 §9.1): "get" is not GET. */
    static const struct {
        const char *name;
        enum http_method m;
    } known[] = {
        {"GET", HTTP_M_GET},         {"HEAD", HTTP_M_HEAD},     {"POST", HTTP_M_POST},
        {"PUT", HTTP_M_PUT},         {"DELETE", HTTP_M_DELETE}, {"CONNECT", HTTP_M_CONNECT},
        {"OPTIONS", HTTP_M_OPTIONS}, {"TRACE", HTTP_M_TRACE},   {"PATCH", HTTP_M_PATCH},
    };
    for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++) {
        if (strlen(known[i].name) == n && !memcmp(m, known[i].name, n))
            return known[i].m;
    }
    return HTTP_M_OTHER;
}

/* A percent-escape at s[i] ('%') is followed by two HEXDIG. */
static bool pct_ok(const unsigned char *s, size_t len, size_t i)
{
    return i + 2 < len && is(s[i + 1], C_HEX) && is(s[i + 2], C_HEX);
}

/* uri-host [ ":" port ] (RFC 9112 §3.2, RFC 3986 §3.2.2-3): an IP-literal
 * in brackets or a reg-name, then an optional port of digits. An empty
 * Host is valid (a target without authority); the authority-form of
 * CONNECT needs a host and a port. */
static bool host_ok(const unsigned char *v, size_t len, bool authority_form)
{
    size_t i = 0;
    if (len && v[0] == '[') {
        for (i = 1; i < len && v[i] != ']'; i++) {
            if (!is(v[i], C_HOST) && v[i] != ':')
                return false;
            if (v[i] == '%' && !pct_ok(v, len, i))
                return false;
        }
        if (i == len || i == 1)
            return false;
        i++;
    } else {
        for (; i < len && is(v[i], C_HOST); i++) {
            if (v[i] == '%' && !pct_ok(v, len, i))
                return false;
        }
    }
    if (authority_form && i == 0)
        return false;
    if (i == len)
        return !authority_form;
    if (v[i++] != ':')
        return false;
    if (authority_form && i == len)
        return false;
    for (; i < len; i++) {
        if (!IS_DIGIT(v[i]))
            return false;
    }
    return true;
}

/* The four forms of RFC 9112 §3.2, each with the methods it belongs to. */
static bool target_ok(enum http_method m, const unsigned char *t, size_t len)
{
    if (m == HTTP_M_CONNECT)
        return host_ok(t, len, true); /* authority-form, §3.2.3 */
    if (t[0] == '/')
        return true; /* origin-form, §3.2.1 */
    if (len == 1 && t[0] == '*')
        return m == HTTP_M_OPTIONS; /* asterisk-form, §3.2.4 */
    /* absolute-form (§3.2.2): scheme ":" ... (RFC 3986 §3.1) */
    if (!IS_ALPHA(t[0]))
        return false;
    for (size_t i = 1; i < len; i++) {
        if (t[i] == ':')
            return true;
        if (!IS_ALPHA(t[i]) && !IS_DIGIT(t[i]) && t[i] != '+' && t[i] != '-' && t[i] != '.')
            return false;
    }
    return false;
}

static int request_line(const struct scan *s, size_t *ip, const struct http_limits *lim,
                        struct http_req *r)
{
    const unsigned char *p = s->p;
    size_t i = *ip, n = s->n;

    /* RFC 9112 §2.2: empty lines before the request line are ignored
     * (some clients send a CRLF after a body). */
    while (i < n && p[i] == '\r') {
        if (i + 1 == n)
            return s->out;
        if (p[i + 1] != '\n')
            return 400;
        i += 2;
    }

    size_t m = i;
    for (; i < n && is(p[i], C_TCHAR); i++) {
        if (i - m == HTTP_METHOD_MAX)
            return 501;
    }
    if (i == n)
        return s->out;
    if (p[i] != ' ' || i == m)
        return 400; /* exactly one SP after a non-empty method */
    r->method = method_of(p + m, i - m);

    size_t t = ++i;
    for (; i < n && p[i] != ' '; i++) {
        if (!is(p[i], C_TARGET))
            return 400; /* controls, NUL, SP runs, '#', '"', '<', '\\', 0x80+ ... */
        if (i - t == lim->target_max)
            return 414;
        if (p[i] == '%') {
            /* Judge the escape as soon as its digits are here. */
            for (size_t k = 1; k <= 2; k++) {
                if (i + k >= n)
                    return s->out;
                if (!is(p[i + k], C_HEX))
                    return 400;
            }
        }
    }
    if (i == n)
        return s->out;
    if (i == t || !target_ok(r->method, p + t, i - t))
        return 400;
    r->target_off = t;
    r->target_len = i - t;

    /* HTTP-version = "HTTP/" DIGIT "." DIGIT, then CRLF (RFC 9112 §2.3);
     * '#' stands for a DIGIT. HTTP-name is case-sensitive. */
    static const char pat[] = "HTTP/#.#\r\n";
    size_t v = ++i;
    for (size_t k = 0; k < sizeof(pat) - 1; k++, i++) {
        if (i == n)
            return s->out;
        if (pat[k] == '#' ? !IS_DIGIT(p[i]) : p[i] != (unsigned char)pat[k])
            return 400;
    }
    /* Well-formed but another major: 505 (RFC 9110 §15.6.6). A higher minor
     * of 1 is read as 1.1, the highest we implement (RFC 9110 §6.2). */
    if (p[v + 5] != '1')
        return 505;
    r->minor = p[v + 7] == '0' ? 0 : 1;
    *ip = i;
    return GO;
}

/* ---- field lines (RFC 9112 §5) -------------------------------------------------- */

/* What the field lines said, as far as this server cares. */
struct fields {
    unsigned host;       /* Host lines */
    bool cl;             /* a Content-Length line was seen */
    uint64_t cl_value;   /* its value */
    bool te;             /* a Transfer-Encoding line was seen */
    unsigned te_codings; /* non-empty list elements over all its lines */
    unsigned te_chunked; /* of them, "chunked" */
    bool te_last_chunked;
    bool conn_close, conn_keep_alive;
    bool expect_continue, expect_other;
};

/* Calls each(elem) for every non-empty element of a comma-separated list
 * (RFC 9110 §5.6.1: empty elements are ignored), trimmed of OWS. Stops at
 * the first non-GO verdict. The walk is bounded by len. */
#define FOR_EACH_ELEM(v, len, a, b, body)                                                          \
    for (size_t k_ = 0; k_ <= (len);) {                                                            \
        size_t e_ = k_;                                                                            \
        while (e_ < (len) && (v)[e_] != ',')                                                       \
            e_++;                                                                                  \
        size_t a = k_, b = e_;                                                                     \
        while (a < b && ows((v)[a]))                                                               \
            a++;                                                                                   \
        while (b > a && ows((v)[b - 1]))                                                           \
            b--;                                                                                   \
        if (b > a) {                                                                               \
            body                                                                                   \
        }                                                                                          \
        k_ = e_ + 1;                                                                               \
    }

static int content_length(struct fields *f, const unsigned char *v, size_t len)
{
    /* Two lines, even with equal values, are refused: RFC 9110 §8.6 allows
     * that, and it leaves no doubt about which one framed the body. */
    if (f->cl || len == 0)
        return 400;
    f->cl = true;
    uint64_t x = 0;
    for (size_t i = 0; i < len; i++) {
        if (!IS_DIGIT(v[i]))
            return 400; /* "-1", "+5", "abc", "5, 5", "5 5" */
        unsigned d = (unsigned)(v[i] - '0');
        if (x > ((uint64_t)INT64_MAX - d) / 10)
            return 400; /* does not fit an off_t: unparseable, §8.6 */
        x = x * 10 + d;
    }
    f->cl_value = x;
    return GO;
}

static void transfer_encoding(struct fields *f, const unsigned char *v, size_t len)
{
    /* Judged at the end of the head, where all lines of the list are
     * known: only a lone "chunked" is accepted. Codings with parameters
     * count as other codings, which is all they could be. */
    f->te = true;
    FOR_EACH_ELEM(v, len, a, b, {
        bool ch = ieq(v + a, b - a, "chunked");
        f->te_codings++;
        f->te_chunked += ch;
        f->te_last_chunked = ch;
    })
}

static int connection(struct fields *f, const unsigned char *v, size_t len)
{
    FOR_EACH_ELEM(v, len, a, b, {
        for (size_t i = a; i < b; i++) {
            if (!is(v[i], C_TCHAR))
                return 400; /* Connection = #connection-option, a token */
        }
        if (ieq(v + a, b - a, "close"))
            f->conn_close = true;
        else if (ieq(v + a, b - a, "keep-alive"))
            f->conn_keep_alive = true;
    })
    return GO;
}

static void expect(struct fields *f, const unsigned char *v, size_t len)
{
    FOR_EACH_ELEM(v, len, a, b, {
        if (ieq(v + a, b - a, "100-continue"))
            f->expect_continue = true;
        else
            f->expect_other = true;
    })
}

static int field(struct fields *f, const unsigned char *name, size_t nlen, const unsigned char *v,
                 size_t vlen)
{
    switch (nlen) {
    case 4:
        if (ieq(name, nlen, "host") && (++f->host > 1 || !host_ok(v, vlen, false)))
            return 400; /* RFC 9112 §3.2 */
        break;
    case 6:
        if (ieq(name, nlen, "expect"))
            expect(f, v, vlen);
        break;
    case 10:
        if (ieq(name, nlen, "connection"))
            return connection(f, v, vlen);
        break;
    case 14:
        if (ieq(name, nlen, "content-length"))
            return content_length(f, v, vlen);
        break;
    case 17:
        if (ieq(name, nlen, "transfer-encoding"))
            transfer_encoding(f, v, vlen);
        break;
    }
    return GO;
}

/* Reads field lines up to and including the blank line. */
static int field_lines(const struct scan *s, size_t *ip, struct fields *f)
{
    const unsigned char *p = s->p;
    size_t i = *ip, n = s->n;
    /* Each pass consumes at least one byte, so n bounds the passes. */
    for (;;) {
        if (i == n)
            return s->out;
        if (p[i] == '\r') {
            if (i + 1 == n)
                return s->out;
            if (p[i + 1] != '\n')
                return 400;
            *ip = i + 2;
            return GO;
        }
        /* A line that starts with SP/HTAB is obs-fold (RFC 9112 §5.2) or,
         * right after the request line, whitespace there (§2.2): 400, as
         * is a line that starts with ':', LF or any other non-token. */
        size_t nm = i;
        for (; i < n && is(p[i], C_TCHAR); i++)
            ;
        if (i == n)
            return s->out;
        if (p[i] != ':' || i == nm)
            return 400; /* whitespace before the colon is a MUST-reject, §5.1 */
        size_t nlen = i - nm;
        for (i++; i < n && ows(p[i]); i++)
            ;
        size_t v = i;
        for (; i < n && is(p[i], C_FVAL); i++)
            ;
        if (i == n)
            return s->out;
        if (p[i] != '\r')
            return 400; /* NUL, a control, DEL or a bare LF in the value */
        if (i + 1 == n)
            return s->out;
        if (p[i + 1] != '\n')
            return 400; /* a bare CR */
        size_t vend = i;
        while (vend > v && ows(p[vend - 1]))
            vend--;
        i += 2;
        int st = field(f, p + nm, nlen, p + v, vend - v);
        if (st != GO)
            return st;
    }
}

/* The checks that need the whole head, and the framing of the body. */
static int finish(const struct fields *f, const struct http_limits *lim, struct http_req *r)
{
    if (r->minor == 1 && f->host == 0)
        return 400; /* RFC 9112 §3.2 */
    struct http_body *b = &r->body;
    b->max = lim->body_max;
    if (f->te) {
        /* RFC 9112 §6.1: with Content-Length too, or in HTTP/1.0, the
         * framing is faulty; §6.3 item 4: a final coding other than
         * chunked leaves the length unknown; §7: chunked only once. */
        if (f->cl || r->minor == 0 || !f->te_last_chunked || f->te_chunked != 1)
            return 400;
        if (f->te_codings != 1)
            return 501; /* gzip, chunked: a coding we do not implement */
        b->kind = HTTP_BODY_CHUNKED;
    } else if (f->cl && f->cl_value > 0) {
        b->kind = HTTP_BODY_LENGTH;
        b->left = b->length = f->cl_value;
    }
    if (f->expect_other)
        return 417;
    if (b->kind == HTTP_BODY_LENGTH && b->length > lim->body_max)
        return 413;
    /* RFC 9112 §9.3: close wins; HTTP/1.1 persists by default, HTTP/1.0
     * only when it asked for keep-alive. */
    r->keep_alive = !f->conn_close && (r->minor == 1 || f->conn_keep_alive);
    /* RFC 9110 §10.1.1: ignored in HTTP/1.0, pointless without a body. */
    r->expect_continue = f->expect_continue && r->minor == 1 && b->kind != HTTP_BODY_NONE;
    return GO;
}

int http_parse_head(const char *buf, size_t len, const struct http_limits *limits,
                    struct http_req *r)
{
    const struct http_limits *lim = limits ? limits : &http_limits_default;
    memset(r, 0, sizeof(*r));
    struct scan s = {
        .p = (const unsigned char *)buf,
        .n = len < lim->head_max ? len : lim->head_max,
        .out = len < lim->head_max ? HTTP_PARSE_MORE : 431,
    };
    struct fields f = {0};
    size_t i = 0;
    int st = request_line(&s, &i, lim, r);
    if (st == GO)
        st = field_lines(&s, &i, &f);
    if (st == GO)
        st = finish(&f, lim, r);
    if (st != GO) {
        memset(r, 0, sizeof(*r));
        return st;
    }
    r->head_len = i;
    return HTTP_PARSE_DONE;
}

/* ---- bodies (RFC 9112 §6.3, §7.1) ----------------------------------------------- */

/* The chunked decoder's states, named after the grammar of §7.1:
 *   chunk = chunk-size [ chunk-ext ] CRLF chunk-data CRLF
 *   chunk-ext = *( BWS ";" BWS ext-name [ BWS "=" BWS ext-val ] )
 *   last-chunk = 1*"0" [ chunk-ext ] CRLF, then trailer field lines, CRLF */
enum {
    CK_SIZE0,      /* the first HEXDIG of a chunk size */
    CK_SIZE,       /* more HEXDIG, or what follows the size */
    CK_EXT_BWS,    /* BWS before ';' */
    CK_EXT_NAME0,  /* after ';': BWS, then the name's first tchar */
    CK_EXT_NAME,   /* in the name */
    CK_EXT_AFTER,  /* BWS after the name: '=' or ';' follows */
    CK_EXT_VAL0,   /* after '=': BWS, then a token or a quoted-string */
    CK_EXT_VAL,    /* in a token value */
    CK_EXT_QUOTED, /* in a quoted-string */
    CK_EXT_QESC,   /* after '\' in a quoted-string */
    CK_EXT_QEND,   /* after the closing quote */
    CK_SIZE_LF,    /* the LF ending the chunk-size line */
    CK_DATA,       /* chunk data: b->left octets to skip */
    CK_DATA_CR,    /* the CRLF after the data */
    CK_DATA_LF,
    CK_TR_START, /* a trailer line's first byte, or the final CR */
    CK_TR_NAME,
    CK_TR_VALUE,
    CK_TR_LF,
    CK_FINAL_LF,
    CK_DONE,
};

/* What may follow a chunk size or a complete extension: BWS and ';', ';'
 * (the next extension) or the CR that ends the line. */
static int ext_next(struct http_body *b, unsigned char c)
{
    if (ows(c))
        b->state = CK_EXT_BWS;
    else if (c == ';')
        b->state = CK_EXT_NAME0;
    else if (c == '\r')
        b->state = CK_SIZE_LF;
    else
        return 400;
    return GO;
}

/* One framing byte. Returns GO, or 400 / 413. */
static int chunk_byte(struct http_body *b, unsigned char c)
{
    switch (b->state) {
    case CK_SIZE0:
        if (!is(c, C_HEX))
            return 400;
        b->left = hexval(c);
        b->state = CK_SIZE;
        return b->left > b->max - b->total ? 413 : GO;
    case CK_SIZE:
        if (is(c, C_HEX)) {
            /* Refuse a size over the budget at the digit that makes it so:
             * no overflow, and no waiting for a megabyte to say no. */
            uint64_t budget = b->max - b->total, d = hexval(c);
            if (d > budget || b->left > (budget - d) / 16)
                return 413;
            b->left = b->left * 16 + d;
            return GO;
        }
        return ext_next(b, c);
    case CK_EXT_BWS:
        /* BWS may only lead to ';' ("1 ;a"), never to the CRLF ("1 "). */
        if (ows(c))
            return GO;
        if (c != ';')
            return 400;
        b->state = CK_EXT_NAME0;
        return GO;
    case CK_EXT_NAME0:
        if (ows(c))
            return GO;
        if (!is(c, C_TCHAR))
            return 400;
        b->state = CK_EXT_NAME;
        return GO;
    case CK_EXT_NAME:
        if (is(c, C_TCHAR))
            return GO;
        if (c == '=' || ows(c)) {
            b->state = c == '=' ? CK_EXT_VAL0 : CK_EXT_AFTER;
            return GO;
        }
        return ext_next(b, c);
    case CK_EXT_AFTER:
        /* BWS after a name: '=' or ';' must follow. */
        if (ows(c))
            return GO;
        if (c == '=') {
            b->state = CK_EXT_VAL0;
            return GO;
        }
        if (c != ';')
            return 400;
        b->state = CK_EXT_NAME0;
        return GO;
    case CK_EXT_VAL0:
        if (ows(c))
            return GO;
        if (c != '"' && !is(c, C_TCHAR))
            return 400;
        b->state = c == '"' ? CK_EXT_QUOTED : CK_EXT_VAL;
        return GO;
    case CK_EXT_VAL:
        if (is(c, C_TCHAR))
            return GO;
        return ext_next(b, c);
    case CK_EXT_QUOTED:
        if (c == '"')
            b->state = CK_EXT_QEND;
        else if (c == '\\')
            b->state = CK_EXT_QESC;
        else if (!is(c, C_QDTEXT))
            return 400;
        return GO;
    case CK_EXT_QESC:
        /* quoted-pair = "\" ( HTAB / SP / VCHAR / obs-text ) */
        b->state = CK_EXT_QUOTED;
        return is(c, C_FVAL) ? GO : 400;
    case CK_EXT_QEND:
        return ext_next(b, c);
    case CK_SIZE_LF:
        if (c != '\n')
            return 400;
        b->state = b->left ? CK_DATA : CK_TR_START;
        return GO;
    case CK_DATA_CR:
        b->state = CK_DATA_LF;
        return c == '\r' ? GO : 400;
    case CK_DATA_LF:
        b->state = CK_SIZE0;
        return c == '\n' ? GO : 400;
    case CK_TR_START:
        /* Trailer lines are as strict as field lines in the head: no
         * obs-fold, a token name, no whitespace before the colon. */
        b->state = c == '\r' ? CK_FINAL_LF : CK_TR_NAME;
        return c == '\r' || is(c, C_TCHAR) ? GO : 400;
    case CK_TR_NAME:
        if (is(c, C_TCHAR))
            return GO;
        b->state = CK_TR_VALUE;
        return c == ':' ? GO : 400;
    case CK_TR_VALUE:
        if (is(c, C_FVAL))
            return GO;
        b->state = CK_TR_LF;
        return c == '\r' ? GO : 400;
    case CK_TR_LF:
        b->state = CK_TR_START;
        return c == '\n' ? GO : 400;
    case CK_FINAL_LF:
        b->state = CK_DONE;
        return c == '\n' ? GO : 400;
    }
    return 400; /* CK_DATA and CK_DONE never get here */
}

static int chunked_feed(struct http_body *b, const unsigned char *p, size_t len, size_t *used)
{
    size_t i = 0;
    /* Each pass consumes at least one byte. */
    while (i < len && b->state != CK_DONE) {
        if (b->total >= b->max) {
            *used = i;
            return 413; /* byte max + 1 of a body that is not done */
        }
        if (b->state == CK_DATA) {
            uint64_t n = b->left;
            if (n > len - i)
                n = len - i;
            if (n > b->max - b->total)
                n = b->max - b->total;
            i += n;
            b->left -= n;
            b->total += n;
            if (b->left == 0)
                b->state = CK_DATA_CR;
            continue;
        }
        b->total++;
        int st = chunk_byte(b, p[i++]);
        if (st != GO) {
            *used = i;
            return st;
        }
    }
    *used = i;
    return b->state == CK_DONE ? HTTP_PARSE_DONE : HTTP_PARSE_MORE;
}

int http_body_feed(struct http_body *b, const char *buf, size_t len, size_t *used)
{
    switch (b->kind) {
    case HTTP_BODY_LENGTH: {
        size_t n = b->left < len ? (size_t)b->left : len;
        b->left -= n;
        b->total += n;
        *used = n;
        return b->left ? HTTP_PARSE_MORE : HTTP_PARSE_DONE;
    }
    case HTTP_BODY_CHUNKED:
        return chunked_feed(b, (const unsigned char *)buf, len, used);
    case HTTP_BODY_NONE:
        break;
    }
    *used = 0;
    return HTTP_PARSE_DONE;
}

int http_req_status(const struct http_req *r)
{
    switch (r->method) {
    case HTTP_M_GET:
    case HTTP_M_HEAD:
        return 200;
    case HTTP_M_OTHER:
        return 501;
    default:
        return 405;
    }
}
