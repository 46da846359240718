/* SPDX-License-Identifier: MIT */
/*
 * util.c — what every part of the tool uses: the streams' byte pattern, a
 * sleep that survives signals, the names of kinds, and the violation
 * record.
 */
#include "stress.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>

const char *const kind_names[K__COUNT] = {
    "orchestrator", "signaller", "timer",       "file",       "stream",     "writer",
    "reader",       "acceptor",  "client",      "supervisor", "cancel-all", "self-cancel",
    "stubborn",     "late",      "spawn-check", "scope",      "sync",       "sync-worker",
};

const char *const sk_names[3] = {"pipe", "socketpair", "tcp"};

void pat_fill(uint64_t seed, uint64_t off, uint8_t *p, size_t n)
{
    size_t i = 0;
    while (i < n) {
        uint64_t o = off + i;
        uint64_t w = mix64(seed ^ ((o >> 3) * 0xd1342543de82ef95ull));
        for (unsigned b = (unsigned)(o & 7); b < 8 && i < n; b++, i++)
            p[i] = (uint8_t)(w >> (b * 8));
    }
}

size_t pat_check(uint64_t seed, uint64_t off, const uint8_t *p, size_t n)
{
    size_t i = 0;
    while (i < n) {
        uint64_t o = off + i;
        uint64_t w = mix64(seed ^ ((o >> 3) * 0xd1342543de82ef95ull));
        for (unsigned b = (unsigned)(o & 7); b < 8 && i < n; b++, i++)
            if (p[i] != (uint8_t)(w >> (b * 8)))
                return i;
    }
    return n;
}

void sleep_ms(unsigned ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

void viol(struct round *r, const char *fmt, ...)
{
    if (r->nviol < 4) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(r->viol[r->nviol], sizeof(r->viol[0]), fmt, ap);
        va_end(ap);
    }
    r->nviol++;
}
