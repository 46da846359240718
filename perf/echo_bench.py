#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""echo_bench.py — taskring-echo against the epoll baseline under echo_client.

    perf/echo_bench.py --server taskring|epoll --conns C --size M [--depth D] \
        --seconds S --build BUILD

Starts the server on an ephemeral 127.0.0.1 port (BUILD/tools/taskring-echo
or BUILD/perf/epoll_echo, each with --port 0; both print "...: listening on
127.0.0.1:PORT" on stdout once ready), runs
    BUILD/perf/echo_client --port PORT --conns C --size M --depth D --seconds S
(one thread; C connections, D messages of M bytes in flight on each, every
echoed byte checked) and reads the server's CPU time (utime + stime, fields
14 and 15 of /proc/PID/stat: all its threads, io_uring's io-wq workers of
taskring-echo included) just before and after it. Then SIGTERM: both must
exit 0, and taskring-echo must count no failed connection.

Prints one JSON line on stdout:
    {"bench":"echo","impl":"taskring","params":{"conns":50,"size":64,"depth":1},
     "value":RT_PER_S,"unit":"rt/s","p99_us":..,"cpu_us_per_rt":..,
     "round_trips":N,"server_cpu_s":..,"client_cpu_s":..}
cpu_us_per_rt divides the server's CPU by every round trip it served
(those of the drain after the window too). Exit 1 when anything failed.
"""
import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

CLK_TCK = os.sysconf("SC_CLK_TCK")


def die(msg):
    print(f"echo_bench: {msg}", file=sys.stderr)
    sys.exit(1)


def cpu_ticks(pid):
    """utime + stime of a process (all its threads, live and dead)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def start(argv, out_path):
    out = open(out_path, "w+")
    proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            die(f"{argv[0]} exited with status {proc.returncode}")
        with open(out_path) as f:
            m = re.search(r"listening on 127\.0\.0\.1:(\d+)", f.read())
        if m:
            return proc, int(m.group(1))
        time.sleep(0.02)
    proc.kill()
    die(f"{argv[0]} never said it was listening")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--server", choices=["taskring", "epoll"], required=True)
    ap.add_argument("--conns", type=int, default=50)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--depth", type=int, default=1)
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--build", default="build-perf")
    args = ap.parse_args()

    tmp = tempfile.mkdtemp(prefix="taskring-echo-bench-")
    out_path = os.path.join(tmp, "server.out")
    if args.server == "taskring":
        exe = os.path.join(args.build, "tools", "taskring-echo")
    else:
        exe = os.path.join(args.build, "perf", "epoll_echo")
    proc, port = start([exe, "--port", "0"], out_path)
    client = [os.path.join(args.build, "perf", "echo_client"), "--port", str(port),
              "--conns", str(args.conns), "--size", str(args.size), "--depth", str(args.depth),
              "--seconds", str(args.seconds)]
    try:
        cpu0 = cpu_ticks(proc.pid)
        c = subprocess.run(client, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                           timeout=args.seconds + 60)
        cpu1 = cpu_ticks(proc.pid)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            rc = proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            rc = None
    with open(out_path) as f:
        server_out = f.read()
    ok = True
    if c.returncode != 0:
        ok = False
        print(f"echo_bench: echo_client exited {c.returncode}:\n{c.stderr}", file=sys.stderr)
    if rc != 0:
        ok = False
        print(f"echo_bench: {exe} exit status {rc}, expected 0", file=sys.stderr)
    if args.server == "taskring" and not re.search(r" 0 failed[,;]", server_out):
        ok = False
        print("echo_bench: taskring-echo counted failed connections", file=sys.stderr)
    if not ok:
        print(f"echo_bench: the server's output is in {out_path}", file=sys.stderr)
        sys.exit(1)
    j = json.loads([l for l in c.stdout.splitlines() if l.startswith("{")][0])
    cpu_s = (cpu1 - cpu0) / CLK_TCK
    line = {
        "bench": "echo",
        "impl": args.server,
        "params": {"conns": args.conns, "size": args.size, "depth": args.depth},
        "value": j["value"],
        "unit": "rt/s",
        "p50_us": j["p50_us"],
        "p99_us": j["p99_us"],
        "cpu_us_per_rt": round(cpu_s * 1e6 / j["round_trips_all"], 3),
        "round_trips": j["round_trips_all"],
        "server_cpu_s": round(cpu_s, 2),
        "client_cpu_s": j["client_cpu_s"],
    }
    print(json.dumps(line, separators=(",", ":")))
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
