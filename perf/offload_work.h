/* SPDX-License-Identifier: MIT */
/*
 * offload_work.h — the job of bench_offload and its libuv anchor: a short
 * computation (~100 ns) whose result checks that the job really ran.
 */
#ifndef OFFLOAD_WORK_H
#define OFFLOAD_WORK_H

static inline int offload_work(unsigned x)
{
    unsigned h = x * 2654435761u;
    for (int i = 0; i < 64; i++)
        h = (h ^ (h >> 13)) * 0x5bd1e995u;
    return (int)(h & 0x7fffffff);
}

#endif
