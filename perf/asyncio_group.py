#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""asyncio_group.py — asyncio.TaskGroup with one failing child: the anchor
of `bench_sync --mode group` (perf/bench_sync.c).

    asyncio_group.py [--tasks T] [--park sleep|event] [--rounds R]

The same shape as bench_sync's group mode, inside one asyncio.run (the
default event loop): each round enters `async with asyncio.TaskGroup()`,
creates T children with tg.create_task (default T=10,000): T - 1 park
(asyncio.sleep(3600), or --park event: the wait of an asyncio.Event never
set), the last raises OSError(EIO) once all the others have started (at
once: tasks start in creation order), which makes the TaskGroup cancel the
others; the `async with` then raises an ExceptionGroup, which must hold
exactly that one OSError, and every other child must have seen
CancelledError. value = ms from before the `async with` to the
ExceptionGroup caught (time.perf_counter): create + fail + cancel + wait.
R rounds (default 5) on the same loop; value = the median round, with
min, max and first_ms (the first round alone) beside it.

Output, one JSON line on stdout:
    {"bench":"sync","impl":"asyncio","params":{"mode":"group","N":10000,"R":5,"park":"sleep"},
     "value":<ms>,"unit":"ms","min":..,"max":..,"first_ms":..,"ns_per_child":..,"cpu_util":..}
cpu_util: thread CPU time / wall time of the measured parts (about 1.0
when the machine left us alone).

Needs Python 3.11 (asyncio.TaskGroup, except*). Bad arguments print the
usage and exit 2; a wrong outcome exits 1 with no JSON. Python 3 standard
library only.
"""
import argparse
import asyncio
import errno
import json
import statistics
import sys
import time

SLEEP_S = 3600


class Run:
    def __init__(self, n, park_event):
        self.n = n
        self.park_event = park_event
        self.never = None  # the asyncio.Event of --park event
        self.started = self.cancelled = self.failed = 0
        self.other = None  # the first other outcome of a parked child


async def parked(r):
    r.started += 1
    try:
        if r.park_event:
            await r.never.wait()
        else:
            await asyncio.sleep(SLEEP_S)
    except asyncio.CancelledError:
        r.cancelled += 1
        raise
    if r.other is None:
        r.other = "a parked child's wait returned"


async def failing(r):
    # Bounded: each sleep(0) lets every ready task run once.
    for _ in range(3):
        if r.started == r.n - 1:
            break
        await asyncio.sleep(0)
    if r.started != r.n - 1:
        raise RuntimeError("only %d of %d children started" % (r.started, r.n - 1))
    r.failed += 1
    raise OSError(errno.EIO, "the failing child")


async def one_round(r):
    r.started = r.cancelled = r.failed = 0
    caught = None
    t0, c0 = time.perf_counter(), time.thread_time()
    try:
        async with asyncio.TaskGroup() as tg:
            for _ in range(r.n - 1):
                tg.create_task(parked(r))
            tg.create_task(failing(r))
    except* OSError as eg:
        caught = eg.exceptions
    t1, c1 = time.perf_counter(), time.thread_time()
    if caught is None or len(caught) != 1 or caught[0].errno != errno.EIO:
        raise RuntimeError("the TaskGroup raised %r, expected one OSError(EIO)" % (caught,))
    if r.other is not None:
        raise RuntimeError(r.other)
    if r.failed != 1 or r.started != r.n - 1 or r.cancelled != r.n - 1:
        raise RuntimeError("%d started, %d cancelled, %d failed; expected %d, %d, 1" % (
            r.started, r.cancelled, r.failed, r.n - 1, r.n - 1))
    return t1 - t0, c1 - c0


async def main_async(r, rounds):
    r.never = asyncio.Event()
    return [await one_round(r) for _ in range(rounds)]


def parse_args():
    ap = argparse.ArgumentParser(description="asyncio.TaskGroup: one child fails, the rest cancelled")
    ap.add_argument("--tasks", type=int, default=10000, help="children per group (T)")
    ap.add_argument("--park", choices=("sleep", "event"), default="sleep")
    ap.add_argument("--rounds", type=int, default=5, help="rounds (R); the median is printed")
    a = ap.parse_args()  # exits 2 with the usage on bad arguments
    if a.tasks < 2 or not 1 <= a.rounds <= 101:
        ap.print_usage(sys.stderr)
        sys.exit(2)
    return a


def main():
    a = parse_args()
    if sys.version_info < (3, 11):
        print("error: asyncio.TaskGroup needs Python 3.11", file=sys.stderr)
        sys.exit(1)
    r = Run(a.tasks, a.park == "event")
    try:
        res = asyncio.run(main_async(r, a.rounds))
    except Exception as exc:  # a broken run must not print a figure
        print("error: %s" % exc, file=sys.stderr)
        sys.exit(1)
    ms = [w * 1e3 for w, _ in res]
    med = statistics.median(ms)
    out = {"bench": "sync", "impl": "asyncio",
           "params": {"mode": "group", "N": a.tasks, "R": a.rounds, "park": a.park},
           "value": round(med, 3), "unit": "ms", "min": round(min(ms), 3),
           "max": round(max(ms), 3), "first_ms": round(ms[0], 3),
           "ns_per_child": round(med * 1e6 / a.tasks, 1),
           "cpu_util": round(sum(c for _, c in res) / sum(w for w, _ in res), 3)}
    print(json.dumps(out, separators=(",", ":")))


if __name__ == "__main__":
    main()
