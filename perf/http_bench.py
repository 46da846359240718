#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""http_bench.py — taskring-http against nginx under one load generator.

    perf/http_bench.py --server taskring|nginx --client wrk|ab|h2load \
        --conns C --seconds S --bin-dir BUILD/tools [--threads 1] [--nginx nginx]

Starts the server on a free 127.0.0.1 port (taskring-http --port 0, which
prints the port it bound; nginx from perf/nginx.conf.in in a temporary
prefix), checks one response by hand, runs one of three standard HTTP/1.1
load generators (Debian 12 packages), all with keep-alive and one thread:
    wrk     wrk -t1 -cC -dSs --latency URL                        (wrk)
    ab      ab -k -q -cC -tS -n 20000000 -e CSV URL               (apache2-utils)
    h2load  h2load --h1 -t1 -cC -DS --log-file=LOG URL            (nghttp2-client)
(ab -k speaks HTTP/1.0 with "Connection: Keep-Alive"; both servers answer
it with keep-alive. ab's p99 comes from its percentile CSV, h2load's from
its per-request log, wrk's from --latency.) Around the run it reads the
server's CPU time (utime + stime, fields 14 and 15 of /proc/PID/stat, in
clock ticks; for nginx master plus workers; io_uring's io-wq threads are
threads of taskring-http and counted with it) and the client's (its rusage
once reaped). Then stops the server: SIGTERM for taskring-http, whose exit
status must be 0 (graceful shutdown), SIGQUIT (nginx -s quit) for nginx.

Prints one JSON line on stdout:
    {"bench":"http","impl":"taskring","params":{"conns":50,"client":"wrk"},
     "value":REQ_PER_S,"unit":"req/s","p99_ms":..,"cpu_us_per_req":..,
     "requests":N,"server_cpu_s":..,"client_cpu_s":..}
and exits 1 if the server misbehaved (a wrong answer, socket errors,
failed or non-2xx responses, a non-zero exit status). The anchor for
taskring is the same command with --server nginx; compare value, p99_ms
and cpu_us_per_req.

The client and the server share the machine's cores; nothing is pinned, so
the scheduler places them as it would in production. client_cpu_s says how
close the load generator itself was to one full core: when it is, req/s
measures the client as much as the server, and CPU/req is the fairer
comparison.
"""
import argparse
import json
import os
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
BODY = b"Hello, world!"
CLK_TCK = os.sysconf("SC_CLK_TCK")


def die(msg):
    print(f"http_bench: {msg}", file=sys.stderr)
    sys.exit(1)


def cpu_ticks(pid):
    """utime + stime of a process (all its threads, live and dead)."""
    with open(f"/proc/{pid}/stat") as f:
        # The command name (field 2) may hold spaces: split after its ')'.
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # fields 14 and 15 of the line


def children(pid):
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                if int(f.read().rsplit(")", 1)[1].split()[1]) == pid:
                    out.append(int(d))
        except (OSError, ValueError, IndexError):
            pass  # the process went away while we looked
    return out


def children_cpu_s():
    """CPU seconds of our reaped children (wrk, once it has exited)."""
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def free_port():
    # Races another program binding it before nginx does; rare on this
    # machine, and nginx then fails loudly instead of measuring the wrong
    # thing.
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_accepting(port, proc, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            die(f"server exited early with status {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.02)
    die(f"nothing accepts on port {port}")


def check_answer(port):
    """One keep-alive GET by hand: status 200 and the 13-byte body."""
    with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
        s.sendall(b"GET / HTTP/1.1\r\nHost: bench\r\n\r\n")
        data = b""
        while b"\r\n\r\n" not in data or not data.endswith(BODY):
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
    if not data.startswith(b"HTTP/1.1 200 ") or not data.endswith(BODY):
        die(f"wrong answer: {data!r}")


def start_taskring(args, err):
    exe = os.path.join(args.bin_dir, "taskring-http")
    proc = subprocess.Popen([exe, "--port", "0", "--threads", str(args.workers)],
                            stdout=subprocess.DEVNULL, stderr=err)
    deadline = time.monotonic() + 10
    port = None
    while port is None and time.monotonic() < deadline:
        if proc.poll() is not None:
            die(f"taskring-http exited with status {proc.returncode}")
        with open(err.name) as f:
            m = re.search(r"listening on 127\.0\.0\.1:(\d+)", f.read())
        if m:
            port = int(m.group(1))
        else:
            time.sleep(0.02)
    if port is None:
        die("taskring-http never said it was listening")
    wait_accepting(port, proc)
    return proc, port, lambda: [proc.pid]


def start_nginx(args, err, prefix):
    port = free_port()
    with open(os.path.join(HERE, "nginx.conf.in")) as f:
        conf = f.read().replace("@PORT@", str(port)).replace("@PREFIX@", prefix)
        conf = conf.replace("worker_processes 1;", "worker_processes %d;" % args.workers)
        if args.workers > 1:  # as taskring-http --threads: a SO_REUSEPORT listener per worker
            conf = re.sub(r"(listen\s+[^;]*@?\d*[^;]*?);", r"\1 reuseport;", conf, count=1)
    path = os.path.join(prefix, "nginx.conf")
    with open(path, "w") as f:
        f.write(conf)
    proc = subprocess.Popen([args.nginx, "-p", prefix, "-c", path, "-e", "stderr"],
                            stdout=subprocess.DEVNULL, stderr=err)
    wait_accepting(port, proc)
    # The worker forks after the listener exists: wait until it is there.
    deadline = time.monotonic() + 5
    while len(children(proc.pid)) < args.workers and time.monotonic() < deadline:
        time.sleep(0.02)
    if len(children(proc.pid)) < args.workers:
        die("nginx started %d of %d workers" % (len(children(proc.pid)), args.workers))
    return proc, port, lambda: [proc.pid] + children(proc.pid)


def parse_latency(s):
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m)", s)
    if not m:
        die(f"unparsable latency {s!r}")
    scale = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3}[m.group(2)]
    return float(m.group(1)) * scale


def parse_wrk(out, prefix):
    res = {}
    m = re.search(r"^\s*(\d+) requests in ([\d.]+)(\w+)", out, re.M)
    m2 = re.search(r"^Requests/sec:\s+([\d.]+)", out, re.M)
    m3 = re.search(r"^\s+99%\s+(\S+)", out, re.M)
    if not (m and m2 and m3):
        die("unparsable wrk output:\n" + out)
    res["requests"] = int(m.group(1))
    res["rps"] = float(m2.group(1))
    res["p99_ms"] = parse_latency(m3.group(1))
    errs = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    res["errors"] = sum(int(x) for x in errs.groups()) if errs else 0
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    res["non2xx"] = int(non2xx.group(1)) if non2xx else 0
    return res


def parse_ab(out, prefix):
    """ab's summary, and p99 from its percentile CSV (-e: "99,TIME_MS")."""
    res = {}
    m = re.search(r"^Complete requests:\s+(\d+)", out, re.M)
    m2 = re.search(r"^Requests per second:\s+([\d.]+)", out, re.M)
    m3 = re.search(r"^Failed requests:\s+(\d+)", out, re.M)
    m4 = re.search(r"^Keep-Alive requests:\s+(\d+)", out, re.M)
    if not (m and m2 and m3 and m4):
        die("unparsable ab output:\n" + out)
    res["requests"] = int(m.group(1))
    res["rps"] = float(m2.group(1))
    # Every request but each connection's last must have been kept alive.
    res["errors"] = int(m3.group(1))
    if int(m4.group(1)) < res["requests"] * 0.99:
        die("ab: only %s of %d requests kept alive" % (m4.group(1), res["requests"]))
    non2xx = re.search(r"^Non-2xx responses:\s+(\d+)", out, re.M)
    res["non2xx"] = int(non2xx.group(1)) if non2xx else 0
    p99 = None
    with open(os.path.join(prefix, "ab.csv")) as f:
        for line in f:
            pct, _, ms = line.strip().partition(",")
            if pct == "99":
                p99 = float(ms)
    if p99 is None:
        die("ab wrote no 99th percentile")
    res["p99_ms"] = p99
    return res


def parse_h2load(out, prefix):
    """h2load's summary, and p99 from its per-request log (third column:
    microseconds until the end of the response)."""
    res = {}
    m = re.search(r"^finished in ([\d.]+)s, ([\d.]+) req/s", out, re.M)
    m2 = re.search(r"^requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, "
                   r"(\d+) failed, (\d+) errored, (\d+) timeout", out, re.M)
    m3 = re.search(r"^status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx", out, re.M)
    if not (m and m2 and m3):
        die("unparsable h2load output:\n" + out)
    res["rps"] = float(m.group(2))
    res["requests"] = int(m2.group(3))
    res["errors"] = int(m2.group(5)) + int(m2.group(6)) + int(m2.group(7))
    res["non2xx"] = sum(int(x) for x in m3.groups()[1:])
    with open(os.path.join(prefix, "h2load.log")) as f:
        lat = sorted(int(line.split("\t")[2]) for line in f if line.count("\t") == 2)
    if not lat:
        die("h2load logged no request")
    res["p99_ms"] = lat[min(len(lat) - 1, (len(lat) * 99) // 100)] / 1000.0
    return res


def client_argv(args, port, prefix):
    url = f"http://127.0.0.1:{port}/"
    if args.client == "wrk":
        return [args.wrk, f"-t{args.threads}", f"-c{args.conns}", f"-d{args.seconds}s",
                "--latency", url]
    if args.client == "ab":
        # -t alone caps ab at 50,000 requests; -n after it lifts the cap (ab
        # touches its per-request records only as requests complete).
        return [args.ab, "-k", "-q", "-c", str(args.conns), "-t", str(args.seconds),
                "-n", "20000000", "-e", os.path.join(prefix, "ab.csv"), url]
    return [args.h2load, "--h1", f"-t{args.threads}", f"-c{args.conns}", f"-D{args.seconds}",
            f"--log-file={os.path.join(prefix, 'h2load.log')}", url]


PARSERS = {"wrk": parse_wrk, "ab": parse_ab, "h2load": parse_h2load}


def stop(args, proc, prefix):
    if args.server == "taskring":
        proc.send_signal(signal.SIGTERM)
    else:
        subprocess.run([args.nginx, "-p", prefix, "-c", os.path.join(prefix, "nginx.conf"),
                        "-e", "stderr", "-s", "quit"], stderr=subprocess.DEVNULL)
    try:
        return proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        return None


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--server", choices=["taskring", "nginx"], required=True)
    ap.add_argument("--client", choices=sorted(PARSERS), default="wrk")
    ap.add_argument("--conns", type=int, default=50)
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--threads", type=int, default=1, help="wrk and h2load threads (-t)")
    ap.add_argument("--workers", type=int, default=1,
                    help="taskring-http engines (--threads) and nginx worker_processes")
    ap.add_argument("--bin-dir", default="build/tools")
    ap.add_argument("--nginx", default="nginx")
    ap.add_argument("--wrk", default="wrk")
    ap.add_argument("--ab", default="ab")
    ap.add_argument("--h2load", default="h2load")
    args = ap.parse_args()

    prefix = tempfile.mkdtemp(prefix="taskring-http-bench-")
    err = open(os.path.join(prefix, "server.err"), "w+")
    if args.server == "taskring":
        proc, port, pids = start_taskring(args, err)
    else:
        proc, port, pids = start_nginx(args, err, prefix)

    ok = True
    try:
        check_answer(port)
        watched = pids()
        cpu0 = sum(cpu_ticks(p) for p in watched)
        client_cpu0 = children_cpu_s()
        client = subprocess.Popen(client_argv(args, port, prefix), stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, text=True)
        out, _ = client.communicate()
        cpu1 = sum(cpu_ticks(p) for p in watched)
        # Only the client was reaped since client_cpu0: the difference is its CPU.
        client_cpu = children_cpu_s() - client_cpu0
        if watched != pids():
            die("the server's processes changed during the run")
    finally:
        rc = stop(args, proc, prefix)
    if client.returncode != 0:
        die(f"{args.client} failed ({client.returncode}):\n{out}")
    if args.server == "taskring" and rc != 0:
        ok = False
        print(f"http_bench: taskring-http exit status {rc}, expected 0", file=sys.stderr)
    r = PARSERS[args.client](out, prefix)
    if r["errors"] or r["non2xx"]:
        ok = False
        print(f"http_bench: {args.client} saw {r['errors']} errors, "
              f"{r['non2xx']} non-2xx answers", file=sys.stderr)
    cpu_s = (cpu1 - cpu0) / CLK_TCK
    line = {
        "bench": "http",
        "impl": args.server,
        "params": {"conns": args.conns, "client": args.client, "workers": args.workers},
        "value": round(r["rps"], 1),
        "unit": "req/s",
        "p99_ms": round(r["p99_ms"], 3),
        "cpu_us_per_req": round(cpu_s * 1e6 / r["requests"], 3) if r["requests"] else None,
        "requests": r["requests"],
        "server_cpu_s": round(cpu_s, 2),
        "client_cpu_s": round(client_cpu, 2),
    }
    print(json.dumps(line, separators=(",", ":")))
    err.close()
    if ok:
        shutil.rmtree(prefix, ignore_errors=True)
    else:
        print(f"http_bench: the server's stderr is in {err.name}", file=sys.stderr)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
