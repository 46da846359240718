#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""linger_check.py — does every client of taskring-echo get a clean goodbye?

Per run: starts taskring-echo on an ephemeral port and taskring-load with C
streaming clients (default 100: each sends its next 64-byte message as soon
as the last one's echo is back, so the server always has input it has not
read yet), waits until all are connected and echoing, sends the server
SIGTERM, and reads taskring-load's last line, which counts per client:
read the goodbye, ended by the server's orderly EOF, reset by peer. A clean
run is C goodbyes, C EOFs, 0 resets and 0 mismatches, with the server's exit
status 0. Prints one line per run and a total; exit status 1 unless every
run was clean.

    tools/linger_check.py [--bin-dir build/tools] [--conns 100] [--runs 5]
                          [--echo PATH]   (another taskring-echo, to compare)

Bounded: each run waits at most 10 s for the clients, 15 s for the ends.
"""
import argparse
import os
import re
import signal
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
LOAD_RE = re.compile(
    r"(\d+) clients \((\d+) connected\): (\d+) round trips verified, (\d+) mismatches; "
    r"(\d+) read the goodbye; ended: (\d+) by the server's orderly EOF, (\d+) reset by peer, "
    r"(\d+) stopped by us, (\d+) failed")


def wait_line(proc, pattern, deadline):
    """Reads proc.stdout lines until one matches; returns the match or None."""
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            return None
        m = re.search(pattern, line)
        if m:
            return m
    return None


def one_run(echo, load, conns):
    srv = subprocess.Popen([echo, "--port", "0"], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True)
    cli = None
    try:
        m = wait_line(srv, r"listening on 127\.0\.0\.1:(\d+)", time.monotonic() + 10)
        if not m:
            return None, "the server never listened"
        port = m.group(1)
        cli = subprocess.Popen([load, "--port", port, "--conns", str(conns)],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        # Progress lines come every 0.5 s: wait for one with every client
        # connected and messages flowing.
        deadline = time.monotonic() + 10
        ready = False
        while not ready and time.monotonic() < deadline:
            line = cli.stdout.readline()
            if not line:
                break
            pm = re.search(r"connected\s+(\d+)\s+(\d+) msg/s", line)
            ready = bool(pm) and int(pm.group(1)) == conns and int(pm.group(2)) > 0
        if not ready:
            return None, "the clients never all connected"
        srv.send_signal(signal.SIGTERM)
        out, _ = cli.communicate(timeout=15)
        srv_out, srv_err = srv.communicate(timeout=15)
        lm = LOAD_RE.search(out)
        if not lm:
            return None, f"no final line from taskring-load: {out[-300:]!r}"
        v = [int(x) for x in lm.groups()]
        res = dict(clients=v[0], connected=v[1], verified=v[2], mismatches=v[3], goodbyes=v[4],
                   eof=v[5], reset=v[6], stopped=v[7], failed=v[8], server_rc=srv.returncode)
        sm = re.search(r"taskring-echo: .*", srv_out)
        res["server_line"] = sm.group(0) if sm else "(no counts line)"
        return res, None
    except subprocess.TimeoutExpired:
        return None, "timed out"
    finally:
        for p in (cli, srv):
            if p and p.poll() is None:
                p.kill()
                p.wait()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    ap.add_argument("--bin-dir", default=os.path.join(HERE, "..", "build", "tools"))
    ap.add_argument("--conns", type=int, default=100)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--echo", help="the server binary (default: BIN_DIR/taskring-echo)")
    a = ap.parse_args()
    echo = a.echo or os.path.join(a.bin_dir, "taskring-echo")
    load = os.path.join(a.bin_dir, "taskring-load")
    clean = 0
    tot = dict(goodbyes=0, eof=0, reset=0, mismatches=0, failed=0)
    for i in range(1, a.runs + 1):
        res, err = one_run(echo, load, a.conns)
        if err:
            print(f"linger: run {i}: FAILED: {err}")
            continue
        ok = (res["goodbyes"] == a.conns and res["eof"] == a.conns and res["reset"] == 0
              and res["mismatches"] == 0 and res["failed"] == 0 and res["server_rc"] == 0)
        clean += ok
        for k in tot:
            tot[k] += res[k]
        print(f"linger: run {i}: {a.conns} clients: {res['goodbyes']} read the goodbye, "
              f"{res['eof']} orderly EOF, {res['reset']} reset by peer, {res['mismatches']} "
              f"mismatches, {res['failed']} failed; server exit {res['server_rc']}"
              f" -> {'clean' if ok else 'NOT clean'}")
        print(f"linger:        server: {res['server_line']}")
    print(f"linger: {clean}/{a.runs} runs clean; in all: {tot['goodbyes']} goodbyes, "
          f"{tot['eof']} orderly EOFs, {tot['reset']} resets out of {a.conns * a.runs} clients")
    return 0 if clean == a.runs else 1


if __name__ == "__main__":
    sys.exit(main())
