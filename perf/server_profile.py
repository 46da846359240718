#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""server_profile.py — where a server's CPU goes per request (perf/ANALYSIS.md).

    perf/server_profile.py --server taskring-http|nginx|taskring-echo|epoll \
        [--client wrk|ab|h2load] [--conns 50] [--size 64] [--seconds 5] \
        [--build build-perf] [--record]

Starts the server as perf/http_bench.py or perf/echo_bench.py would, drives
it with one client for --seconds, and meanwhile counts, for the server's
processes only (perf stat -p):
    syscalls (raw_syscalls:sys_enter), io_uring requests submitted, poll
    arms (a recv that found no data and waits for readiness), context
    switches and task-clock,
then prints each per request (http) or per round trip (echo). With
--record it also samples the server (perf record -e cpu-clock -g -p, the
only sampling event this VM offers: it has no hardware counters, so
"instructions per request" come from valgrind's callgrind instead, run by
hand as ANALYSIS.md shows) and sorts the samples into buckets — user space
by binary, and the kernel into tcp/ip, io_uring, epoll, syscall entry and
exit, scheduler and wake-ups, memory, other — each as ns per request.

A diagnostic, not a benchmark: perf's tracepoints cost the server time,
so the absolute CPU figures are higher than perf/run.py's; the counts are
exact. Needs perf (linux-perf) and root.
"""
import argparse
import collections
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time

PERF = os.path.dirname(os.path.abspath(__file__))
EVENTS = ["raw_syscalls:sys_enter", "io_uring:io_uring_submit_req", "io_uring:io_uring_poll_arm",
          "context-switches", "task-clock"]

# Kernel symbol -> bucket, first match wins.
BUCKETS = [
    ("io_uring", r"^(__)?io_|io_uring|^tctx_|^task_work"),
    ("epoll", r"^ep_|epoll|^__ep"),
    ("syscall entry/exit", r"^(do_syscall_64|entry_SYSCALL|syscall_|__x64_sys_|x64_sys_call"
                           r"|exit_to_user|__fget|fget|fdget|fput|__fdget|__sys_|sys_|srso_)"),
    ("sched + wake-ups", r"schedule|ttwu|try_to_wake_up|wake_up|^enqueue_|^dequeue_|pick_next"
                         r"|update_curr|finish_task_switch|__switch_to|_raw_spin|native_queued"
                         r"|psi_|select_task_rq|^sched_|update_load|reweight|set_next"),
    ("tcp/ip", r"^(__)?tcp|^(__)?ip_|^(__)?inet|^(__)?sk_|^(__)?skb|^(__)?sock|^__dev|^dev_"
               r"|^net|^__net|^napi|loopback|^(__)?release_sock|^lock_sock|bbr|^validate_xmit"
               r"|^process_backlog|^__napi|^ipv4|^raw_v4|^nf_|^__copy_skb|^kfree_skb|^__kfree_skb"
               r"|^tso_|^security_sock|^apparmor_sock|csum|^rps|softirq|^__local_bh|read_tsc|ktime_get"
               r"|^raw_local_deliver|^eth_type_trans|xfrm|bpf_skops|^hook_socket|^__mod_timer"),
    ("memory/copy", r"copy_|memcpy|memset|memmove|kmem_|kmalloc|kfree|slab|__alloc|alloc_|page"
                    r"|folio|^__check_object|check_heap|__virt_addr"),
]


def start(args, tmp):
    """Starts the server; returns (Popen, port, [pids to watch])."""
    out = open(os.path.join(tmp, "server.out"), "w+")
    b = args.build
    if args.server == "taskring-http":
        argv, pat = [os.path.join(b, "tools", "taskring-http"), "--port", "0", "--quiet"], r"listening on 127\.0\.0\.1:(\d+)"
    elif args.server == "taskring-echo":
        argv, pat = [os.path.join(b, "tools", "taskring-echo"), "--port", "0"], r"listening on 127\.0\.0\.1:(\d+)"
    elif args.server == "epoll":
        argv, pat = [os.path.join(b, "perf", "epoll_echo"), "--port", "0"], r"listening on 127\.0\.0\.1:(\d+)"
    else:
        import socket
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        with open(os.path.join(PERF, "nginx.conf.in")) as f:
            conf = f.read().replace("@PORT@", str(port)).replace("@PREFIX@", tmp)
        with open(os.path.join(tmp, "nginx.conf"), "w") as f:
            f.write(conf)
        proc = subprocess.Popen(["nginx", "-p", tmp, "-c", os.path.join(tmp, "nginx.conf"), "-e",
                                 "stderr"], stdout=out, stderr=out)
        time.sleep(0.5)
        pids = subprocess.run(["pgrep", "-P", str(proc.pid)], stdout=subprocess.PIPE,
                              text=True).stdout.split()
        return proc, port, [proc.pid] + [int(p) for p in pids]
    proc = subprocess.Popen(argv, stdout=out, stderr=out)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with open(out.name) as f:
            m = re.search(pat, f.read())
        if m:
            return proc, int(m.group(1)), [proc.pid]
        time.sleep(0.02)
    sys.exit("server_profile: the server never said it was listening")


def client_argv(args, port, tmp):
    if args.server in ("taskring-echo", "epoll"):
        return [os.path.join(args.build, "perf", "echo_client"), "--port", str(port), "--conns",
                str(args.conns), "--size", str(args.size), "--seconds", str(args.seconds)]
    url = "http://127.0.0.1:%d/" % port
    c, s = str(args.conns), str(args.seconds)
    return {"wrk": ["wrk", "-t1", "-c" + c, "-d" + s + "s", url],
            "ab": ["ab", "-k", "-q", "-c", c, "-t", s, "-n", "20000000", url],
            "h2load": ["h2load", "--h1", "-t1", "-c" + c, "-D" + s, url]}[args.client]


def count_ops(args, out):
    """Requests or round trips, from the client's own output."""
    if args.server in ("taskring-echo", "epoll"):
        return json.loads([l for l in out.splitlines() if l.startswith("{")][0])["round_trips_all"]
    for pat in (r"^\s*(\d+) requests in", r"^Complete requests:\s+(\d+)",
                r"^requests: \d+ total, \d+ started, (\d+) done"):
        m = re.search(pat, out, re.M)
        if m:
            return int(m.group(1))
    sys.exit("server_profile: no request count in:\n" + out)


def buckets(report, exe_names):
    """perf report --sort dso,sym lines -> {bucket: percent}."""
    res = collections.Counter()
    for line in report.splitlines():
        m = re.match(r"\s*([\d.]+)%\s+(\S+)\s+\[(.)\]\s+(\S+)", line)
        if not m:
            continue
        pct, dso, kind, sym = float(m.group(1)), m.group(2), m.group(3), m.group(4)
        if kind != "k":
            res["user: " + ("server" if dso in exe_names else dso)] += pct
            continue
        for name, rx in BUCKETS:
            if re.search(rx, sym):
                res["kernel: " + name] += pct
                break
        else:
            res["kernel: other"] += pct
    return res


def run_phase(args, record):
    """One server, one client run; returns (ops, {event: value}, report)."""
    tmp = tempfile.mkdtemp(prefix="taskring-profile-")
    proc, port, pids = start(args, tmp)
    pid_list = ",".join(str(p) for p in pids)
    stat_out = os.path.join(tmp, "stat.csv")
    # Tracepoints cost the traced process time: the recording pass counts
    # only the CPU time, so the samples show the server's own work.
    events = ["task-clock"] if record else EVENTS
    mon = [subprocess.Popen(["perf", "stat", "-x,", "-e", ",".join(events), "-p", pid_list,
                             "-o", stat_out])]
    if record:
        mon.append(subprocess.Popen(["perf", "record", "-q", "-e", "cpu-clock", "-g", "-p",
                                     pid_list, "-o", os.path.join(tmp, "perf.data")],
                                    stderr=subprocess.DEVNULL))
    time.sleep(0.3)
    c = subprocess.run(client_argv(args, port, tmp), stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, text=True)
    for m in mon:
        m.send_signal(signal.SIGINT)
        m.wait()
    if args.server == "nginx":
        subprocess.run(["nginx", "-p", tmp, "-c", os.path.join(tmp, "nginx.conf"), "-e", "stderr",
                        "-s", "quit"], stderr=subprocess.DEVNULL)
    else:
        proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=15)
    if c.returncode != 0:
        sys.exit("server_profile: the client failed:\n" + c.stdout)
    vals = {}
    with open(stat_out) as f:
        for line in f:
            fld = line.strip().split(",")
            if len(fld) >= 3 and fld[0] and fld[0][0].isdigit():
                vals[fld[2]] = float(fld[0])
    rep = None
    if record:
        rep = subprocess.run(["perf", "report", "-i", os.path.join(tmp, "perf.data"),
                              "--no-children", "--sort", "dso,sym", "-g", "none", "--stdio"],
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True).stdout
    subprocess.run(["rm", "-rf", tmp])
    return count_ops(args, c.stdout), vals, rep


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--server", required=True,
                    choices=["taskring-http", "nginx", "taskring-echo", "epoll"])
    ap.add_argument("--client", default="wrk", choices=["wrk", "ab", "h2load"])
    ap.add_argument("--conns", type=int, default=50)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--seconds", type=int, default=5)
    ap.add_argument("--build", default="build-perf")
    ap.add_argument("--record", action="store_true")
    ap.add_argument("--top", type=int, default=25, help="symbols listed after the buckets")
    args = ap.parse_args()
    unit = "round trip" if args.server in ("taskring-echo", "epoll") else "request"
    n, vals, _ = run_phase(args, False)
    print("%s under %s, c=%d%s (%d %ss counted):" % (
        args.server, "echo_client" if unit == "round trip" else args.client, args.conns,
        ", %d B" % args.size if unit == "round trip" else "", n, unit))
    for ev in EVENTS:
        if ev == "task-clock":
            print("  %-30s %10.3f us per %s (traced)" % ("CPU", vals.get(ev, 0) * 1e3 / n, unit))
        else:
            print("  %-30s %10.3f per %s" % (ev, vals.get(ev, 0) / n, unit))
    if not args.record:
        return
    n, vals, rep = run_phase(args, True)
    task_ms = vals["task-clock"]
    print("  samples (a second run, %d %ss, CPU %.3f us per %s untraced):" % (
        n, unit, task_ms * 1e3 / n, unit))
    exe = {"taskring-http", "taskring-echo", "epoll_echo", "nginx"}
    for name, pct in sorted(buckets(rep, exe).items(), key=lambda x: -x[1]):
        print("  %-30s %5.1f %%  %7.0f ns per %s" % (name, pct, pct / 100 * task_ms * 1e6 / n,
                                                    unit))
    top = [l for l in rep.splitlines() if re.match(r"\s*[\d.]+%", l)][:args.top]
    print("  top symbols:\n" + "\n".join("    " + l.strip() for l in top))


if __name__ == "__main__":
    main()
