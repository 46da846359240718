#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""fdlimit_check.py — do the servers back off at the fd limit, and recover?

For each server (taskring-echo, taskring-http): start it with
RLIMIT_NOFILE 256 (soft), connect 1000 clients, each sending one request
(an echo line, or an HTTP GET). About 250 are accepted and answered; the
rest wait in the listen queue while the server is out of fds. Then, with
nothing else going on:

  hold      N s (default 4) with all 1000 connected: the server's CPU time
            (utime + stime of every thread, /proc/PID/stat) over the hold,
            as % of one core. Spinning on EMFILE costs 100 %; waiting, ~0.
            Halfway, each answered client sends a second request: open
            connections must still be served (all answered, latency shown).
  recovery  close the answered clients: their fds are free, and the next
            waiting clients must be accepted and answered at once (the time
            until as many as were closed have their answer, or all are).
            Then close everything.
  service   the server (still at 256 fds) serves 100 fresh clients normally:
            every one answered.

Prints a line per phase and server; exit status 1 unless, for every server,
the hold's CPU stayed under 10 % of a core (--max-cpu), every open
connection was served, recovery answered waiting clients, normal service
followed and SIGTERM ended the server with exit 0.

    tools/fdlimit_check.py [--bin-dir build/tools] [--hold 4] [--clients 1000]
                           [--nofile 256] [--echo PATH] [--http PATH]

Bounded: every wait has a deadline (10 s at most).
"""
import argparse
import os
import re
import resource
import selectors
import signal
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
TICK = os.sysconf("SC_CLK_TCK")
HTTP_REQ = b"GET / HTTP/1.1\r\nHost: check\r\n\r\n"
HTTP_BODY = b"Hello, world!"


def cpu_s(pid):
    """utime + stime of the whole process (all threads), in seconds."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


class Kind:
    """What a request and a complete answer look like for one server."""

    def __init__(self, name):
        self.name = name

    def request(self, i, n):
        if self.name == "taskring-http":
            return HTTP_REQ
        return f"client {i} request {n}\n".encode()

    def complete(self, i, n, data):
        if self.name == "taskring-http":
            return data.endswith(HTTP_BODY) and data.startswith(b"HTTP/1.1 200 ")
        return data == self.request(i, n)


def start(exe, kind, nofile, logdir):
    out = open(os.path.join(logdir, kind.name + ".out"), "w+")
    err = open(os.path.join(logdir, kind.name + ".err"), "w+")

    def limit():
        hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
        resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, hard))

    p = subprocess.Popen([exe, "--port", "0"], stdout=out, stderr=err, preexec_fn=limit)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        for f in (out, err):
            f.seek(0)
            m = re.search(r"listening on 127\.0\.0\.1:(\d+)", f.read())
            if m:
                return p, int(m.group(1)), out, err
        if p.poll() is not None:
            break
        time.sleep(0.02)
    p.kill()
    raise SystemExit(f"fdlimit: {kind.name} never listened")


def exchange(socks, kind, idx, n, timeout):
    """Sends request n on socks[i] for i in idx; waits up to timeout for the
    answers. Returns {i: seconds until its answer was complete}."""
    sel = selectors.DefaultSelector()
    buf = {}
    t0 = time.monotonic()
    for i in idx:
        socks[i].sendall(kind.request(i, n))
        buf[i] = b""
        sel.register(socks[i], selectors.EVENT_READ, i)
    done = {}
    while len(done) < len(idx) and time.monotonic() - t0 < timeout:
        for key, _ in sel.select(timeout=0.05):
            i = key.data
            chunk = socks[i].recv(4096)
            if not chunk:
                sel.unregister(socks[i])
                continue
            buf[i] += chunk
            if kind.complete(i, n, buf[i]):
                done[i] = time.monotonic() - t0
                sel.unregister(socks[i])
    sel.close()
    return done


def wait_answers(socks, kind, idx, n, want, timeout):
    """Waits (without sending) for request n's answers on socks[i], i in idx,
    until `want` are complete or timeout. Returns {i: seconds}."""
    sel = selectors.DefaultSelector()
    buf = {i: b"" for i in idx}
    for i in idx:
        sel.register(socks[i], selectors.EVENT_READ, i)
    t0 = time.monotonic()
    done = {}
    while len(done) < want and time.monotonic() - t0 < timeout:
        for key, _ in sel.select(timeout=0.05):
            i = key.data
            chunk = socks[i].recv(4096)
            if not chunk:
                sel.unregister(socks[i])
                continue
            buf[i] += chunk
            if kind.complete(i, n, buf[i]):
                done[i] = time.monotonic() - t0
                sel.unregister(socks[i])
    sel.close()
    return done


def check_server(exe, kind, a, logdir):
    ok = True
    p, port, out, err = start(exe, kind, a.nofile, logdir)
    name = kind.name
    socks = []
    try:
        for _ in range(a.clients):
            s = socket.create_connection(("127.0.0.1", port), timeout=5)
            s.setblocking(False)
            socks.append(s)
        # Request 0 from everyone: the accepted ones answer at once.
        t_first = time.monotonic()
        answered = exchange(socks, kind, range(a.clients), 0, 1.0)
        served = sorted(answered)
        waiting = [i for i in range(a.clients) if i not in answered]
        print(f"fdlimit: {name}: {a.clients} clients connected with RLIMIT_NOFILE {a.nofile}: "
              f"{len(served)} accepted and answered, {len(waiting)} waiting in the listen queue")
        time.sleep(max(0.0, 1.0 - (time.monotonic() - t_first)))

        # The hold: measure the server's CPU over it.
        c0, t0 = cpu_s(p.pid), time.monotonic()
        time.sleep(a.hold / 2)
        again = exchange(socks, kind, served, 1, 2.0)
        rest = a.hold - (time.monotonic() - t0)
        time.sleep(max(0.0, rest))
        c1, t1 = cpu_s(p.pid), time.monotonic()
        pct = 100.0 * (c1 - c0) / (t1 - t0)
        worst = max(again.values()) * 1000 if again else float("nan")
        hold_ok = pct < a.max_cpu and len(again) == len(served) and served
        ok &= bool(hold_ok)
        print(f"fdlimit: {name}: hold {t1 - t0:.1f} s at the fd limit: server CPU "
              f"{c1 - c0:.2f} s = {pct:.1f} % of a core (limit {a.max_cpu:g} %); open "
              f"connections still served: {len(again)}/{len(served)} answered a 2nd request "
              f"(slowest {worst:.1f} ms) -> {'ok' if hold_ok else 'FAILED'}")

        # Recovery: free the served clients' fds.
        want = min(len(served), len(waiting))
        c0 = cpu_s(p.pid)
        for i in served:
            socks[i].close()
        got = wait_answers(socks, kind, waiting, 0, want, 10.0)
        c1 = cpu_s(p.pid)
        t_all = max(got.values()) * 1000 if got else float("nan")
        rec_ok = len(got) >= want and want > 0
        ok &= rec_ok
        print(f"fdlimit: {name}: recovery: closed {len(served)} clients; {len(got)} waiting "
              f"clients accepted and answered within {t_all:.1f} ms (wanted {want}; server CPU "
              f"{c1 - c0:.2f} s) -> {'ok' if rec_ok else 'FAILED'}")
        for i in range(a.clients):
            socks[i].close()
        socks = []

        # Normal service, still under the same fd limit.
        time.sleep(0.2)
        fresh = [socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(100)]
        for s in fresh:
            s.setblocking(False)
        t0 = time.monotonic()
        done = exchange(fresh, kind, range(100), 0, 5.0)
        svc_ok = len(done) == 100
        ok &= svc_ok
        worst = max(done.values()) * 1000 if done else float("nan")
        print(f"fdlimit: {name}: service afterwards: {len(done)}/100 fresh clients answered "
              f"(slowest {worst:.1f} ms) -> {'ok' if svc_ok else 'FAILED'}")
        for s in fresh:
            s.close()
    finally:
        for s in socks:
            s.close()
        p.send_signal(signal.SIGTERM)
        try:
            rc = p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            p.kill()
            rc = p.wait()
    out.seek(0)
    err.seek(0)
    text = out.read() + err.read()
    last = [ln for ln in text.splitlines() if re.match(re.escape(name) + r": \d+ connections", ln)]
    print(f"fdlimit: {name}: SIGTERM -> exit {rc}; {last[-1] if last else '(no counts line)'}")
    ok &= rc == 0
    return ok


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    ap.add_argument("--bin-dir", default=os.path.join(HERE, "..", "build", "tools"))
    ap.add_argument("--hold", type=float, default=4.0)
    ap.add_argument("--clients", type=int, default=1000)
    ap.add_argument("--nofile", type=int, default=256)
    ap.add_argument("--max-cpu", type=float, default=10.0)
    ap.add_argument("--echo", help="the taskring-echo binary (default: BIN_DIR's)")
    ap.add_argument("--http", help="the taskring-http binary (default: BIN_DIR's)")
    ap.add_argument("--only", choices=["taskring-echo", "taskring-http"])
    a = ap.parse_args()
    # This process holds every client: lift its own soft limit.
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    need = a.clients + 200
    if hard != resource.RLIM_INFINITY and hard < need:
        raise SystemExit(f"fdlimit: need {need} fds here, the hard limit is {hard}")
    resource.setrlimit(resource.RLIMIT_NOFILE, (need, hard))
    servers = {"taskring-echo": a.echo, "taskring-http": a.http}
    ok = True
    with tempfile.TemporaryDirectory(prefix="fdlimit-") as logdir:
        for name, exe in servers.items():
            if a.only and name != a.only:
                continue
            ok &= check_server(exe or os.path.join(a.bin_dir, name), Kind(name), a, logdir)
    print(f"fdlimit: {'all checks passed' if ok else 'FAILED'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
