#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""asyncio_spawn.py — asyncio's spawn + run + await, in tasks per second:
the anchor of bench_spawn.

    asyncio_spawn.py [--tasks N] [--batch B]

The same structure as perf/bench_spawn.c: one parent coroutine (run by
asyncio.run on the default event loop) creates B child tasks with
asyncio.create_task (default B=1000), awaits them all with asyncio.gather,
and repeats until N children (default 200,000: asyncio is ~50x slower than
the C engine, so the run still takes about 1 s) have lived; the last batch
may be smaller. A child returns its index in the batch at once, and gather
must hand back exactly those results. The clock (time.perf_counter) runs
inside the parent, from before its first create_task to after its last
gather.

Output, one JSON line on stdout:
    {"bench":"spawn","impl":"asyncio","params":{"N":200000,"B":1000},
     "value":<tasks per second>,"unit":"tasks/s","ns_per_task":..,"cpu_util":..}
cpu_util: thread CPU time / wall time of the measured part (about 1.0 when
the machine left us alone).

Bad arguments print the usage and exit 2; a wrong result exits 1 with no
JSON. Python 3 standard library only.
"""
import argparse
import asyncio
import json
import sys
import time


def parse_args():
    ap = argparse.ArgumentParser(description="asyncio create_task + gather rate")
    ap.add_argument("--tasks", type=int, default=200000, help="children in all (N)")
    ap.add_argument("--batch", type=int, default=1000, help="children per gather (B)")
    a = ap.parse_args()  # exits 2 with the usage on bad arguments
    if a.tasks < 1 or a.batch < 1:
        ap.print_usage(sys.stderr)
        sys.exit(2)
    return a


async def child(i):
    return i


async def parent(n, batch):
    checked = 0
    t0, c0 = time.perf_counter(), time.thread_time()
    left = n
    while left > 0:
        b = min(left, batch)
        tasks = [asyncio.create_task(child(i)) for i in range(b)]
        results = await asyncio.gather(*tasks)
        if results != list(range(b)):
            raise RuntimeError("gather returned wrong results")
        checked += b
        left -= b
    t1, c1 = time.perf_counter(), time.thread_time()
    if checked != n:
        raise RuntimeError("checked %d children, expected %d" % (checked, n))
    return t1 - t0, (c1 - c0) / (t1 - t0)


def main():
    a = parse_args()
    try:
        secs, util = asyncio.run(parent(a.tasks, a.batch))
    except Exception as exc:  # a broken run must not print a figure
        print("error: %s" % exc, file=sys.stderr)
        sys.exit(1)
    print(json.dumps({"bench": "spawn", "impl": "asyncio",
                      "params": {"N": a.tasks, "B": a.batch},
                      "value": round(a.tasks / secs, 1), "unit": "tasks/s",
                      "ns_per_task": round(secs * 1e9 / a.tasks, 2),
                      "cpu_util": round(util, 3)},
                     separators=(",", ":")))


if __name__ == "__main__":
    main()
