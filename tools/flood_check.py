#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""flood_check.py — no reset for a client whose connect succeeded, at SIGTERM.

Per run: starts a server (taskring-echo or taskring-http, with --threads N:
a cluster, one SO_REUSEPORT listener per engine) on an ephemeral port, then
T client threads that connect over and over (a connect flood: each
connection sends one line or request, reads the answer, and closes or
reads to the server's EOF), sends the server
SIGTERM while the flood runs, and keeps connecting until connects are
refused. Every connection whose connect() succeeded must end in the
server's orderly EOF (with whatever the server answered: an echo, a
goodbye, an HTTP answer, or nothing), never a reset: the listener's drain
at the shutdown's Stop accepts what the kernel had accepted before it
closes. Prints one line per run and exits 1 unless every run was clean
and the server exited 0.

    tools/flood_check.py [--bin-dir build/tools] [--server echo|http]
                         [--threads 2] [--runs 3] [--clients 8]

Bounded: each run lasts about 1 s of flood plus the server's shutdown
(at most 15 s), and every socket has a 5 s timeout.
"""
import argparse
import errno
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def client(port, payload, done_when, stop, tally, lock):
    while not stop.is_set():
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.settimeout(5)
        try:
            s.connect(("127.0.0.1", port))
        except OSError as e:
            s.close()
            with lock:
                tally["refused" if e.errno == errno.ECONNREFUSED else "connect_failed"] += 1
            if e.errno == errno.ECONNREFUSED:
                return  # the listener is gone: the flood is over for us
            continue
        with lock:
            tally["connected"] += 1
        try:
            s.sendall(payload)
            got = b""
            while True:
                b = s.recv(4096)
                if not b:
                    break
                got += b
                if done_when and done_when in got:
                    break  # the answer came: we close first, and connect again
            with lock:
                tally["eof"] += 1
        except ConnectionResetError:
            with lock:
                tally["reset"] += 1
        except BrokenPipeError:
            with lock:
                tally["reset"] += 1
        except socket.timeout:
            with lock:
                tally["timeout"] += 1
        except OSError:
            with lock:
                tally["other"] += 1
        finally:
            s.close()


def one_run(server, threads, nclients, payload, done_when):
    srv = subprocess.Popen(server + ["--port", "0", "--threads", str(threads)],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    port = None
    deadline = time.monotonic() + 10
    pat = re.compile(r"listening on 127\.0\.0\.1:(\d+)")
    stream = srv.stdout if "echo" in server[0] else srv.stderr
    while time.monotonic() < deadline:
        line = stream.readline()
        if not line:
            break
        m = pat.search(line)
        if m:
            port = int(m.group(1))
            break
    if port is None:
        srv.kill()
        srv.wait()
        return False, "the server never listened"
    tally = {k: 0 for k in ("connected", "eof", "reset", "timeout", "other", "refused",
                            "connect_failed")}
    lock = threading.Lock()
    stop = threading.Event()
    ts = [threading.Thread(target=client, args=(port, payload, done_when, stop, tally, lock))
          for _ in range(nclients)]
    for t in ts:
        t.start()
    time.sleep(0.5)  # the flood runs: not synchronisation, the load's length
    srv.send_signal(signal.SIGTERM)
    try:
        out, err = srv.communicate(timeout=15)
        rc = srv.returncode
    except subprocess.TimeoutExpired:
        srv.kill()
        out, err = srv.communicate()
        rc = "hung"
    stop.set()
    for t in ts:
        t.join(10)
    ok = rc == 0 and tally["reset"] == 0 and tally["other"] == 0 and tally["timeout"] == 0 \
        and tally["connected"] > 0 and tally["connected"] == tally["eof"]
    why = "exit %s; %s" % (rc, ", ".join("%s %d" % kv for kv in tally.items()))
    if not ok and err:
        why += "\n" + err[-2000:]
    return ok, why


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin-dir", default=os.path.join(HERE, "..", "build", "tools"))
    ap.add_argument("--server", choices=("echo", "http"), default="echo")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--clients", type=int, default=8)
    a = ap.parse_args()
    if a.server == "echo":
        server = [os.path.join(a.bin_dir, "taskring-echo")]
        payload, done_when = b"hello\n", b"hello\n"
    else:
        server = [os.path.join(a.bin_dir, "taskring-http"), "--quiet"]
        payload = b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        done_when = None  # the server closes after its answer
    bad = 0
    for i in range(a.runs):
        ok, why = one_run(server, a.threads, a.clients, payload, done_when)
        print("flood_check: %s --threads %d run %d: %s: %s" % (
            a.server, a.threads, i + 1, "clean" if ok else "FAILED", why))
        bad += not ok
    print("flood_check: %d of %d runs clean" % (a.runs - bad, a.runs))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
