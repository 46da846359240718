#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""asyncio_cancel.py — asyncio cancelling N parked tasks: the anchor of
`bench_cancel --mode sleep` and `--mode sigterm`.

    asyncio_cancel.py [--mode sleep|sigterm] [--tasks N]

N defaults to 100,000. Each parked task sits in asyncio.sleep(3600) and
must end with CancelledError; any other outcome, or a count that does not
add up, exits 1 with no JSON.

sleep (default): inside asyncio.run, the main coroutine creates N tasks,
    yields (asyncio.sleep(0)) until all N have started, then cancels each
    (Task.cancel) and awaits gather(*tasks, return_exceptions=True).
    value = ms from the first cancel to gather returning (time.perf_counter).
    Extra field rss_per_task_bytes: (VmRSS from /proc/self/status with all
    N parked - VmRSS just before the first create_task) / N, as
    bench_cancel measures it; the list holding the N task references is
    included (asyncio keeps only weak references to tasks).
sigterm: asyncio.run with a SIGTERM handler (loop.add_signal_handler) that
    sets an event; main creates N sleepers, waits until all started, sends
    os.kill(os.getpid(), SIGTERM) and returns once the event is set;
    asyncio.run then cancels every remaining task, gathers them and closes
    the loop, as tr_run's shutdown does. value = ms from the kill() to
    asyncio.run returning.

Output, one JSON line on stdout:
    {"bench":"cancel","impl":"asyncio","params":{"mode":"sleep","N":100000},
     "value":<ms>,"unit":"ms","ns_per_task":..,"rss_per_task_bytes":..,"cpu_util":..}
cpu_util: thread CPU time / wall time of the measured part (about 1.0 when
the machine left us alone).

Compared with bench_cancel (taskring). Python 3 standard library only.
"""
import argparse
import asyncio
import json
import os
import signal
import sys
import time

SLEEP_S = 3600


class Run:
    def __init__(self, n):
        self.n = n
        self.started = 0
        self.cancelled = 0   # sleepers that saw CancelledError
        self.other = None    # the first other outcome
        self.t0 = self.t1 = 0.0
        self.c0 = self.c1 = 0.0  # time.thread_time() at t0 and t1
        self.rss0 = self.rss1 = 0


def vmrss_bytes():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


async def sleeper(r):
    r.started += 1
    try:
        await asyncio.sleep(SLEEP_S)
    except asyncio.CancelledError:
        r.cancelled += 1
        raise
    if r.other is None:
        r.other = "sleep returned"


async def spawn_all(r):
    tasks = [asyncio.create_task(sleeper(r)) for _ in range(r.n)]
    # Bounded: one pass of the loop runs every task created before it.
    for _ in range(3):
        if r.started == r.n:
            return tasks
        await asyncio.sleep(0)
    raise RuntimeError("only %d of %d tasks started" % (r.started, r.n))


async def main_sleep(r):
    r.rss0 = vmrss_bytes()
    tasks = await spawn_all(r)
    r.rss1 = vmrss_bytes()
    r.c0, r.t0 = time.thread_time(), time.perf_counter()
    for t in tasks:
        t.cancel()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    r.t1, r.c1 = time.perf_counter(), time.thread_time()
    bad = [x for x in results if not isinstance(x, asyncio.CancelledError)]
    if bad:
        raise RuntimeError("%d tasks did not end cancelled: %r" % (len(bad), bad[0]))


async def main_sigterm(r):
    tasks = await spawn_all(r)
    got = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, got.set)
    r.c0, r.t0 = time.thread_time(), time.perf_counter()
    os.kill(os.getpid(), signal.SIGTERM)
    await got.wait()
    del tasks  # asyncio.run's own shutdown cancels and gathers them


def parse_args():
    ap = argparse.ArgumentParser(description="asyncio cancel of N sleeping tasks")
    ap.add_argument("--mode", choices=("sleep", "sigterm"), default="sleep")
    ap.add_argument("--tasks", type=int, default=100000, help="parked tasks (N)")
    a = ap.parse_args()  # exits 2 with the usage on bad arguments
    if a.tasks < 1:
        ap.print_usage(sys.stderr)
        sys.exit(2)
    return a


def main():
    a = parse_args()
    r = Run(a.tasks)
    try:
        if a.mode == "sleep":
            asyncio.run(main_sleep(r))
        else:
            asyncio.run(main_sigterm(r))
            r.t1, r.c1 = time.perf_counter(), time.thread_time()
        if r.other is not None:
            raise RuntimeError(r.other)
        if r.started != r.n or r.cancelled != r.n:
            raise RuntimeError("%d started, %d cancelled, expected %d" % (r.started, r.cancelled, r.n))
    except Exception as exc:  # a broken run must not print a figure
        print("error: %s" % exc, file=sys.stderr)
        sys.exit(1)
    ms = (r.t1 - r.t0) * 1e3
    out = {"bench": "cancel", "impl": "asyncio", "params": {"mode": a.mode, "N": a.tasks},
           "value": round(ms, 3), "unit": "ms", "ns_per_task": round(ms * 1e6 / a.tasks, 1),
           "cpu_util": round((r.c1 - r.c0) / (r.t1 - r.t0), 3)}
    if a.mode == "sleep":
        out["rss_per_task_bytes"] = round((r.rss1 - r.rss0) / a.tasks, 1)
    print(json.dumps(out, separators=(",", ":")))


if __name__ == "__main__":
    main()
