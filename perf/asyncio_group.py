#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""asyncio_group.py — asyncio's TaskGroup spawned, failed once and
cancelled: the anchor of `bench_sync --mode group`.

    asyncio_group.py [--tasks N] [--reps R]

(Sleeps, not one asyncio.Event for all: cancelling a waiter removes it
from the event's deque, O(n), which makes asyncio quadratic here — 45 us
a child at 10,000 — and the comparison would measure that.) The same steps as perf/bench_sync.c's group mode: inside one running loop,
a parent opens an asyncio.TaskGroup and creates N children (default
10,000); each sleeps for an hour (asyncio.sleep), except the last, which
raises OSError(EIO) at once; the failure cancels the N-1 others, and
leaving the `async with` raises an ExceptionGroup holding just that
OSError. Timed (time.perf_counter) from before the TaskGroup is entered to
after the ExceptionGroup is caught; one group first (the warm-up, as
bench_sync's cold group), then R more (default 5): the value is their
median in ms. Every cancelled child must have seen CancelledError, and the
group must have failed with exactly the one OSError.

Output, one JSON line on stdout:
    {"bench":"sync","impl":"asyncio","params":{"mode":"group","N":..},
     "value":<ms>,"unit":"ms","best_ms":..,"cold_ms":..,"ns_per_child":..}

Bad arguments print the usage and exit 2; a wrong result exits 1 with no
JSON. Python 3.11 standard library only.
"""
import argparse
import asyncio
import errno
import json
import statistics
import sys
import time


def parse_args():
    ap = argparse.ArgumentParser(description="asyncio TaskGroup: N children, one fails")
    ap.add_argument("--tasks", type=int, default=10000, help="children per group (N)")
    ap.add_argument("--reps", type=int, default=5, help="timed groups after the warm-up (R)")
    a = ap.parse_args()  # exits 2 with the usage on bad arguments
    if a.tasks < 2 or a.reps < 1:
        ap.print_usage(sys.stderr)
        sys.exit(2)
    return a


async def one_group(n, seen):
    async def waiter():
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            seen[0] += 1
            raise

    async def failer():
        raise OSError(errno.EIO, "child failed")

    t0 = time.perf_counter()
    try:
        async with asyncio.TaskGroup() as tg:
            for i in range(n - 1):
                tg.create_task(waiter())
            tg.create_task(failer())
    except* OSError as eg:
        if len(eg.exceptions) != 1 or eg.exceptions[0].errno != errno.EIO:
            raise RuntimeError("the group failed with %r" % (eg.exceptions,))
    else:
        raise RuntimeError("the group did not fail")
    return time.perf_counter() - t0


async def main(n, reps):
    times = []
    for _ in range(reps + 1):
        seen = [0]
        times.append(await one_group(n, seen))
        if seen[0] != n - 1:
            raise RuntimeError("%d children cancelled, %d expected" % (seen[0], n - 1))
    return times


def run():
    a = parse_args()
    times = asyncio.run(main(a.tasks, a.reps))
    warm = times[1:]
    med = statistics.median(warm)
    print(json.dumps({"bench": "sync", "impl": "asyncio",
                      "params": {"mode": "group", "N": a.tasks},
                      "value": med * 1e3, "unit": "ms", "best_ms": min(warm) * 1e3,
                      "cold_ms": times[0] * 1e3, "ns_per_child": med * 1e9 / a.tasks}))


if __name__ == "__main__":
    try:
        run()
    except RuntimeError as e:
        print("error: %s" % e, file=sys.stderr)
        sys.exit(1)
