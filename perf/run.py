#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""perf/run.py — taskring side by side with its anchors; run by `tools/dev bench`.

    perf/run.py --build DIR [--quick] [--out DIR] [--only LIST] [--reps N]

Runs every benchmark of perf/ (each program prints one JSON line), always
alternating taskring and its anchor in the same run on the same machine,
and writes:
    perf/results.json  every sample, the medians, the machine
    perf/RESULTS.md    machine and date, then one row per measured point:
                       benchmark | taskring | anchor | ratio | goal | met?
                       then the multi-client tables: HTTP under wrk, ab and
                       h2load (against nginx), echo under perf/echo_client
                       (against perf/epoll_echo), at c=50 and c=200
    perf/results.png   one panel per benchmark (gnuplot)
(with --only, a subset such as `--only sync`, into BUILD/bench-only/ unless
--out says otherwise, so that perf/RESULTS.md keeps the last full run).

Figures: the programs' own clocks where throughput is the figure, and
hyperfine (--warmup, --export-json) where the whole process's time is (a
process with 100,000 parked tasks started and ended by SIGTERM). Each
figure is the median of its repetitions; ratio = taskring / anchor in the
figure's own unit, so for times lower is better and the goal says so.

Nothing here runs in CTest or CI. Python 3 stdlib only.
"""
import argparse
import datetime
import json
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile

PERF = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(PERF)
RANDREAD_FILE = "/dev/shm/taskring-randread"


# The 1-minute load average before each program of the run: the machine
# line reports its range, so a figure taken on a busy machine says so.
LOADS = []


def log(msg):
    print("bench: " + msg, file=sys.stderr, flush=True)


def run_json(cmd, timeout=300):
    """Runs one benchmark program; returns its JSON line (dict). A program
    that fails or prints no JSON stops the whole run: no figure from a
    broken run is ever reported."""
    LOADS.append(os.getloadavg()[0])
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       text=True, timeout=timeout)
    if p.returncode != 0:
        raise RuntimeError("%s exited %d:\n%s" % (" ".join(cmd), p.returncode, p.stderr[-2000:]))
    lines = [l for l in p.stdout.splitlines() if l.startswith("{")]
    if len(lines) != 1:
        raise RuntimeError("%s printed %d JSON lines:\n%s" % (" ".join(cmd), len(lines), p.stdout[-2000:]))
    return json.loads(lines[0])


def hyperfine(cmds, names, warmup, runs, tmp):
    """Whole-process wall time of each command, alternating (hyperfine runs
    one command's batch after the other, so it is called once per round
    with both commands and the rounds alternate the order)."""
    out = os.path.join(tmp, "hf.json")
    argv = ["hyperfine", "--warmup", str(warmup), "--runs", str(runs), "--export-json", out,
            "--style", "none"]
    for n, c in zip(names, cmds):
        argv += ["--command-name", n, c]
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL)
    with open(out) as f:
        res = json.load(f)["results"]
    return {r["command"]: r for r in res}


def machine():
    cpu = "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    mem_kb = 0
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                mem_kb = int(line.split()[1])
    commit = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True).stdout.strip()
    dirty = subprocess.run(["git", "-C", ROOT, "status", "--porcelain", "--untracked-files=no"],
                           stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True).stdout.strip()

    def ver(cmd):
        try:
            return subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                  text=True).stdout.strip().splitlines()[0]
        except (OSError, IndexError):
            return "?"
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "kernel": platform.release(),
        "cpu": cpu,
        "cores": os.cpu_count(),
        "mem_gib": round(mem_kb / 1048576, 1),
        "commit": commit + ("+dirty" if dirty else ""),
        "python": platform.python_version(),
        "fio": ver(["fio", "--version"]),
        "nginx": ver(["nginx", "-v"]),
        "wrk": " ".join(ver(["wrk", "--version"]).split()[:2]),
        "ab": "ab " + (re.findall(r"Version ([\d.]+)", ver(["ab", "-V"])) or ["?"])[0],
        "h2load": ver(["h2load", "--version"]),
        "go": ver(["go", "version"]),
        "load_start": os.getloadavg()[0],
    }


class Bench:
    """Collects the rows: each row is one measured point of one benchmark."""

    def __init__(self, build, quick, tmp, reps=None):
        self.build = build
        self.quick = quick
        self.tmp = tmp
        self.reps = reps or (1 if quick else 3)
        self.reps_given = reps is not None
        self.rows = []
        self.mc = []  # the multi-client points (mc_point)

    def exe(self, name):
        return os.path.join(self.build, "perf", name)

    def samples(self, tr_cmd, anchor_cmd, reps=None):
        """Alternates the two commands reps times (swapping which goes
        first each round); returns both lists of samples."""
        reps = reps or self.reps
        tr_s, an_s = [], []
        for i in range(reps):
            order = [(tr_cmd, tr_s), (anchor_cmd, an_s)]
            if i % 2:
                order.reverse()
            for cmd, into in order:
                if cmd is not None:
                    into.append(run_json(cmd))
        return tr_s, an_s

    def pair(self, panel, label, tr_cmd, anchor_cmd, anchor_name, goal, reps=None):
        """samples(), then the row with every sample and the medians."""
        tr_s, an_s = self.samples(tr_cmd, anchor_cmd, reps)
        return self.add(panel, label, tr_s, an_s, anchor_name, goal)

    def add(self, panel, label, tr_s, an_s, anchor_name, goal, key="value", unit=None):
        tv = statistics.median(s[key] for s in tr_s)
        av = statistics.median(s[key] for s in an_s) if an_s else None
        unit = unit or (tr_s[0].get("unit", "") if key == "value" else key)
        row = {"panel": panel, "label": label, "unit": unit, "taskring": tv,
               "anchor": av, "anchor_name": anchor_name,
               "ratio": (tv / av) if av else None, "goal": goal,
               "samples": {"taskring": tr_s, "anchor": an_s}}
        row["met"] = goal_met(goal, row)
        self.rows.append(row)
        log("%-34s taskring %s  %s %s  ratio %s  %s" % (
            label, fmt(tv, unit), anchor_name or "-", fmt(av, unit) if av is not None else "-",
            ratio_text(row["ratio"], "x"), met_text(row)))
        return row


def goal_met(goal, row):
    """goal: None, or (kind, number): ratio_ge, ratio_le, value_le, value_ge."""
    if not goal:
        return None
    kind, n = goal[0], goal[1]
    v, r = row["taskring"], row["ratio"]
    if kind == "ratio_ge":
        return r is not None and r >= n
    if kind == "ratio_le":
        return r is not None and r <= n
    if kind == "value_le":
        return v <= n
    if kind == "value_ge":
        return v >= n
    raise ValueError(kind)


def goal_text(goal, unit):
    if not goal:
        return "—"
    kind, n = goal[0], goal[1]
    return {"ratio_ge": "≥ %gx" % n, "ratio_le": "≤ %gx" % n,
            "value_le": "≤ %s" % fmt(n, unit), "value_ge": "≥ %s" % fmt(n, unit)}[kind]


def ratio_text(r, times="×"):
    """Two decimals, or three significant digits below 0.1 (a 0.004x
    must not print as 0.00x)."""
    if not r:
        return "—" if times == "×" else "-"
    return ("%.2f" % r if r >= 0.1 else "%.3g" % r) + times


def met_text(row):
    return {None: "—", True: "yes", False: "**no**"}[row["met"]]


def fmt(v, unit):
    if v is None:
        return "—"
    if unit in ("ops/s", "tasks/s", "IOPS", "req/s", "rt/s", "jobs/s"):
        if v >= 1e6:
            return "%.2f M %s" % (v / 1e6, unit)
        if v >= 1e3:
            return "%.1f k %s" % (v / 1e3, unit)
        return "%.0f %s" % (v, unit)
    if unit == "bytes":
        return "%.2f KiB" % (v / 1024)
    if unit in ("ms", "ns/switch", "ns/move", "us/req", "µs/req", "ns/rt", "ns/pair", "ns/op",
                "ns/handoff", "ratio", "ns/msg", "ns/call", "ns/task"):
        return ("%.3g " % v) + unit
    return "%.4g %s" % (v, unit)


# ---- the benchmarks ---------------------------------------------------------------


def bench_nop(b):
    k = 20000 if b.quick else 100000
    for t in (1, 16, 64, 256):
        ops = max(1000, k * 16 // t) if t > 16 else k  # about the same total work per point
        b.pair("nop", "nop T=%d (ops/s)" % t,
               [b.exe("bench_nop"), "--tasks", str(t), "--ops", str(ops)],
               [b.exe("baseline_nop"), "--tasks", str(t), "--ops", str(ops)],
               "raw liburing", ("ratio_ge", 0.9) if t >= 16 else None)


def bench_switch_spawn(b):
    n = 2000000 if b.quick else 10000000
    rows = []
    for i in range(b.reps):
        rows.append(run_json([b.exe("bench_switch"), "--switches", str(n)]))
    b.add("switch", "switch (ns per tr_yield switch)", rows, [], None, ("value_le", 10))
    n = 200000 if b.quick else 1000000
    b.pair("spawn", "spawn+run+join (tasks/s)",
           [b.exe("bench_spawn"), "--tasks", str(n)],
           [sys.executable, os.path.join(PERF, "asyncio_spawn.py"), "--tasks", str(n)],
           "asyncio", ("value_ge", 5e6))


def bench_cancel(b):
    sizes = (1000, 10000, 100000)
    for n in sizes:
        b.pair("cancel", "cancel %dk sleepers (ms)" % (n // 1000),
               [b.exe("bench_cancel"), "--mode", "sleep", "--tasks", str(n)],
               [sys.executable, os.path.join(PERF, "asyncio_cancel.py"), "--tasks", str(n)],
               "asyncio", ("value_le", 50) if n == 100000 else None)
    for n in sizes:
        # One pipe per read up to 8,192 pipes, then shared pipes (several
        # reads parked on one pipe, each cancelled by its own user_data):
        # 16,384 fds fit the usual RLIMIT_NOFILE of 20,000 here.
        p = str(min(n, 8192))
        b.pair("pipecancel", "cancel %dk pipe reads (ms)" % (n // 1000),
               [b.exe("bench_cancel"), "--mode", "pipe", "--tasks", str(n), "--pipes", p],
               [b.exe("baseline_cancel"), "--tasks", str(n), "--pipes", p],
               "raw liburing", ("ratio_le", 1.2))
    # RSS per parked task at 100k: from the sleepers' runs above.
    big = [r for r in b.rows if r["label"].startswith("cancel 100k sleepers")][0]
    tr_s, an_s = big["samples"]["taskring"], big["samples"]["anchor"]
    b.add("rss", "RSS per parked task, 100k (bytes)", tr_s, an_s, "asyncio",
          ("value_le", 4.5 * 1024), key="rss_per_task_bytes", unit="bytes")
    # SIGTERM -> teardown with 100k parked tasks: the engine's own clock...
    n = 100000
    b.pair("sigterm", "SIGTERM→exit, 100k parked (ms)",
           [b.exe("bench_cancel"), "--mode", "sigterm", "--tasks", str(n)],
           [sys.executable, os.path.join(PERF, "asyncio_cancel.py"), "--mode", "sigterm",
            "--tasks", str(n)],
           "asyncio", None)
    # ...and the whole process (start, park 100k, SIGTERM, exit) by hyperfine.
    if shutil.which("hyperfine"):
        tr = "%s --mode sigterm --tasks %d" % (b.exe("bench_cancel"), n)
        an = "%s %s --mode sigterm --tasks %d" % (sys.executable, os.path.join(PERF, "asyncio_cancel.py"), n)
        tr_s, an_s = [], []
        for i in range(1 if b.quick else 2):
            names = ["taskring", "asyncio"] if i % 2 == 0 else ["asyncio", "taskring"]
            cmds = [tr, an] if i % 2 == 0 else [an, tr]
            res = hyperfine(cmds, names, 1, 3 if b.quick else 5, b.tmp)
            tr_s.append({"value": res["taskring"]["mean"] * 1e3, "unit": "ms",
                         "stddev_ms": res["taskring"]["stddev"] * 1e3})
            an_s.append({"value": res["asyncio"]["mean"] * 1e3, "unit": "ms",
                         "stddev_ms": res["asyncio"]["stddev"] * 1e3})
        b.add("sigterm", "whole process, 100k parked (ms, hyperfine)", tr_s, an_s, "asyncio", None)


def bench_time(b):
    # Deadlines on the hot path: NOPs each inside its own scope (a deadline
    # 1 s ahead) against plain NOPs: the deadline from tr_deadline_after
    # (the engine's pass clock, as a server would set it), from tr_now_ns()
    # per NOP, and one deadline per task (the scope machinery alone).
    # Alternated in one process (--alternate): R rounds of a plain segment
    # (64 tasks x 2000 NOPs on a fresh engine) beside a scoped one; each
    # sample gives both rates from the same rounds.
    rounds = 10 if b.quick else 40
    for mode, label in ((["--pass", "1"], "NOPs in scopes, T=64 (ops/s)"),
                        (["--fixed", "0"], "NOPs in scopes, tr_now_ns per NOP (ops/s)"),
                        (["--fixed", "1"], "NOPs in scopes, no clock read (ops/s)")):
        tr_s, an_s = [], []
        for _ in range(b.reps):
            s = run_json([b.exe("bench_scope"), "--tasks", "64", "--ops", "2000",
                          "--alternate", str(rounds)] + mode)
            tr_s.append(s)
            an_s.append({"value": s["plain_value"], "unit": s["unit"],
                         "ns_per_op": s["plain_ns_per_op"]})
        b.add("scope", label, tr_s, an_s, "no scopes", ("ratio_ge", 0.95))
    # Timers at scale: the wheel against the binary heap it replaced.
    for n in ((100000,) if b.quick else (100000, 1000000)):
        b.pair("timers", "move a deadline, %dk armed (ns)" % (n // 1000),
               [b.exe("bench_timers"), "--timers", str(n), "--impl", "wheel"],
               [b.exe("bench_timers"), "--timers", str(n), "--impl", "heap"],
               "binary heap", ("value_le", 50) if n == 1000000 else None)
    big = [r for r in b.rows if r["label"].startswith("move a deadline")][-1]
    b.add("timers", "bytes per armed timer", big["samples"]["taskring"], big["samples"]["anchor"],
          "binary heap", None, key="bytes_per_timer", unit="bytes")
    # Expiry latency: 10k reads in scopes that expire at one instant.
    rows = [run_json([b.exe("bench_expiry"), "--tasks", "10000"]) for _ in range(b.reps)]
    b.add("expiry", "10k deadlines at once: last read ended (ms)", rows, [], None, None)


GO_SRC = os.path.join(PERF, "go_chanpingpong.go")


def go_build(b):
    """Builds perf/go_chanpingpong.go into the build dir with Debian's Go
    (golang-go, which tools/dev bench installs): standard library only, so
    no module and no network (GOPROXY=off, GOPATH mode); the build cache
    lives in the build dir, so a HOME that is not writable does not
    matter. Returns the command that runs it with GOMAXPROCS=1."""
    go = shutil.which("go")
    if not go:
        raise RuntimeError("no go toolchain: install golang-go (tools/dev bench does)")
    godir = os.path.join(b.build, "perf", "go")
    exe = os.path.join(b.build, "perf", "go_chanpingpong")
    env = dict(os.environ, GOCACHE=os.path.join(godir, "cache"), GOPATH=os.path.join(godir, "path"),
               GOPROXY="off", GO111MODULE="off", GOFLAGS="", CGO_ENABLED="0")
    os.makedirs(godir, exist_ok=True)
    subprocess.run([go, "build", "-o", exe, GO_SRC], check=True, env=env, cwd=godir)
    return ["env", "GOMAXPROCS=1", exe]


def worst_round(b, panel, label, row, goal):
    """The round (one taskring sample and the anchor's of the same round:
    pair() takes them in step) whose ratio is the worst, for goals that
    hold for every run, not only the median."""
    tr_s, an_s = row["samples"]["taskring"], row["samples"]["anchor"]
    i = max(range(len(tr_s)), key=lambda k: tr_s[k]["value"] / an_s[k]["value"])
    b.add(panel, label, [tr_s[i]], [an_s[i]], row["anchor_name"], goal)


def bench_sync(b):
    """Section 8's primitives and groups (perf/bench_sync.c) against Go's
    channels, pthread mutexes, the switch itself and asyncio.TaskGroup.
    At least 5 alternating rounds per point in a full run (they are
    short), as the issue asks."""
    reps = b.reps if (b.quick or b.reps_given) else max(b.reps, 5)
    sync = [b.exe("bench_sync")]
    go = go_build(b)
    n = "500000" if b.quick else "2000000"
    for shape in ("sym", "asym"):
        row = b.pair("chan", "chan ping-pong %s, rendezvous (ns/rt)" % shape,
                     sync + ["--mode", "chan", "--shape", shape, "--iters", n],
                     go + ["-shape", shape, "-iters", n],
                     "Go 1.19 unbuffered", ("ratio_le", 0.2), reps=reps)
        worst_round(b, "chanworst", "chan ping-pong %s, worst round (ns/rt)" % shape, row,
                    ("ratio_le", 1 / 3))
    k = "5000000" if b.quick else "20000000"
    b.pair("mutex", "mutex lock+unlock, uncontended (ns/pair)",
           sync + ["--mode", "mutex", "--iters", k], sync + ["--mode", "pthread_mutex", "--iters", k],
           "pthread_mutex", ("value_le", 10), reps=reps)
    b.pair("event", "event_set, no waiter (ns/op)",
           sync + ["--mode", "event", "--iters", k], sync + ["--mode", "call", "--iters", k],
           "out-of-line call", ("value_le", 10), reps=reps)
    for shape in ("sym", "asym"):
        row = b.pair("sem", "sem hand-off %s (ns/handoff)" % shape,
                     sync + ["--mode", "sem", "--shape", shape, "--iters", n],
                     sync + ["--mode", "yield", "--shape", shape, "--iters", n],
                     "tr_yield switch", ("ratio_le", 1.5), reps=reps)
        # The same ratio inside each sem process (its rounds alternate a
        # yield ping-pong and the semaphores' on fresh engines).
        b.add("semratio", "sem hand-off / switch %s, in-process" % shape,
              row["samples"]["taskring"], [], None, ("value_le", 1.5), key="ratio", unit="ratio")
    for park in ("sleep", "event"):
        goal = ("ratio_le", 0.05) if park == "sleep" else None
        row = b.pair("group", "group of 10k, 1 fails, rest cancelled: %s (ms)" % park,
                     sync + ["--mode", "group", "--tasks", "10000", "--park", park],
                     [sys.executable, os.path.join(PERF, "asyncio_group.py"), "--tasks", "10000",
                      "--park", park], "asyncio TaskGroup", goal, reps=reps)
        b.add("groupcold", "group of 10k: %s, first round (cold, ms)" % park,
              row["samples"]["taskring"], row["samples"]["anchor"], "asyncio TaskGroup", goal,
              key="first_ms", unit="ms")
    # The first round again, the engine made with tr_config.task_prefill
    # for the owner and its 10k children (paid at tr_engine_create, which
    # prefill_ms in the samples says), against asyncio's first round.
    tr_s, an_s = b.samples(sync + ["--mode", "group", "--tasks", "10000", "--park", "sleep",
                                   "--prefill", "10001"],
                           [sys.executable, os.path.join(PERF, "asyncio_group.py"), "--tasks",
                            "10000", "--park", "sleep"], reps=reps)
    b.add("groupcold", "group of 10k: sleep, first round, prefilled (ms)", tr_s, an_s,
          "asyncio TaskGroup", ("ratio_le", 0.05), key="first_ms", unit="ms")


def bench_many(b):
    # Section 9: messages between two engines on two threads, against a bare
    # liburing MSG_RING loop between two threads (64 per submit).
    n = 500000 if b.quick else 2000000
    b.pair("post", "tr_post between 2 engines (ns/msg)",
           [b.exe("bench_post"), "--mode", "post", "--messages", str(n)],
           [b.exe("baseline_msgring"), "--messages", str(n)],
           "bare MSG_RING ×64", ("ratio_le", 3))
    rows = [run_json([b.exe("bench_post"), "--mode", "call",
                      "--messages", str(n // 10)]) for _ in range(b.reps)]
    b.add("post", "tr_call round trip (ns/call)", rows, [], None, None)
    # tr_offload against libuv's uv_queue_work (4 pool threads each), at 1,
    # 16 and 128 jobs in flight.
    if os.path.exists(b.exe("uv_offload")):
        jobs = 100000 if b.quick else 400000
        for k in (1, 16, 128):
            b.pair("offload", "tr_offload, %d in flight (jobs/s)" % k,
                   [b.exe("bench_offload"), "--inflight", str(k), "--jobs", str(jobs)],
                   [b.exe("uv_offload"), "--inflight", str(k), "--jobs", str(jobs)],
                   "libuv uv_queue_work", ("ratio_ge", 1.0))
    else:
        log("uv_offload not built (libuv1-dev missing): no offload rows")
    # SIGTERM -> exit of a cluster, E engines x 25,000 parked tasks: the time
    # per task against one engine's, measured side by side.
    tasks = 5000 if b.quick else 25000
    one = [b.exe("bench_cluster"), "--engines", "1", "--tasks", str(tasks)]
    for e in (2, 4, 8):
        tr_s, an_s = b.samples([b.exe("bench_cluster"), "--engines", str(e), "--tasks", str(tasks)],
                               one)
        b.add("cluster", "cluster SIGTERM→exit, %d engines (ns/task)" % e, tr_s, an_s,
              "1 engine", ("ratio_le", 1.5), key="ns_per_task", unit="ns/task")


def make_randread_file():
    size = 256 << 20
    if os.path.exists(RANDREAD_FILE) and os.path.getsize(RANDREAD_FILE) == size:
        return
    log("creating %s (256 MiB)" % RANDREAD_FILE)
    block = bytes((i * 7 + 1) & 0xff or 1 for i in range(1 << 20))
    with open(RANDREAD_FILE, "wb") as f:
        for _ in range(256):
            f.write(block)


def fio_randread(q, seconds):
    p = subprocess.run(
        PIN + ["fio", "--name=rr", "--filename=" + RANDREAD_FILE, "--ioengine=io_uring",
         "--rw=randread", "--bs=4k", "--iodepth=%d" % q, "--size=256m", "--direct=0",
         "--time_based", "--runtime=%d" % seconds, "--numjobs=1",
         "--output-format=json"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, check=True)
    j = json.loads(p.stdout[p.stdout.index("{"):])
    job = j["jobs"][0]
    if job["error"]:
        raise RuntimeError("fio error %d" % job["error"])
    return {"bench": "randread", "impl": "fio", "params": {"qd": q}, "value": job["read"]["iops"],
            "unit": "IOPS"}


# Both readers on CPU 0: tmpfs reads always go to an io-wq worker, and
# where the scheduler puts that worker swings either program's IOPS by up
# to 7x between runs; pinned (the worker inherits the affinity), runs repeat.
PIN = ["taskset", "-c", "0"]


def bench_randread(b):
    make_randread_file()
    seconds = 2 if b.quick else 5
    for q in (1, 32, 128):
        tr_s, an_s = [], []
        for i in range(b.reps):
            order = ["tr", "fio"] if i % 2 == 0 else ["fio", "tr"]
            for who in order:
                if who == "tr":
                    tr_s.append(run_json(PIN + [b.exe("bench_randread"), "--file", RANDREAD_FILE,
                                          "--size-mb", "256", "--qd", str(q),
                                          "--seconds", str(seconds)]))
                else:
                    an_s.append(fio_randread(q, seconds))
        b.add("randread", "randread 4k Q=%d (IOPS)" % q, tr_s, an_s, "fio io_uring",
              ("ratio_ge", 1.0))


HTTP_CLIENTS = ("wrk", "ab", "h2load")


def mc_point(b, kind, client, conns, tr_s, an_s, anchor_name, keys, size=None):
    """One point of the multi-client tables: the medians of each key of
    both servers' samples, and the samples themselves."""
    med = lambda ss, k: statistics.median(x[k] for x in ss)
    p = {"kind": kind, "client": client, "conns": conns, "size": size,
         "anchor_name": anchor_name,
         "taskring": {k: med(tr_s, k) for k in keys},
         "anchor": {k: med(an_s, k) for k in keys},
         "samples": {"taskring": tr_s, "anchor": an_s}}
    b.mc.append(p)
    t, a = p["taskring"], p["anchor"]
    log("%-6s %-12s c=%-3d taskring %s  %s %s  ratio %.2fx  CPU/op %.2f vs %.2f µs  "
        "client CPU %.2f/%.2f s" % (
            kind, client, conns, fmt(t["value"], tr_s[0]["unit"]), anchor_name,
            fmt(a["value"], tr_s[0]["unit"]), t["value"] / a["value"], t[keys[2]], a[keys[2]],
            t["client_cpu_s"], a["client_cpu_s"]))
    return p


def mc_seconds(quick):
    """The length of each multi-client run (http and echo alike)."""
    return 3 if quick else 10


def bench_http(b):
    """taskring-http against nginx under each load generator, one at a
    time, alternating the servers. wrk's points also fill the goal rows
    of the main table (the figures earlier runs reported)."""
    seconds = mc_seconds(b.quick)
    bins = os.path.join(b.build, "tools")
    script = os.path.join(PERF, "http_bench.py")
    for client in HTTP_CLIENTS:
        for c in (50, 200):
            tr_s, an_s = [], []
            for i in range(b.reps):
                order = ["taskring", "nginx"] if i % 2 == 0 else ["nginx", "taskring"]
                for who in order:
                    s = run_json([sys.executable, script, "--server", who, "--client", client,
                                  "--conns", str(c), "--seconds", str(seconds), "--bin-dir", bins],
                                 timeout=seconds * 6 + 60)
                    (tr_s if who == "taskring" else an_s).append(s)
            mc_point(b, "http", client, c, tr_s, an_s, "nginx",
                     ("value", "p99_ms", "cpu_us_per_req", "client_cpu_s"))
            if client != "wrk":
                continue
            b.add("http", "http c=%d (req/s)" % c, tr_s, an_s, "nginx", ("ratio_ge", 1.3))
            b.add("httpcpu", "http c=%d (server CPU µs/req)" % c, tr_s, an_s, "nginx",
                  ("ratio_le", 1.0), key="cpu_us_per_req", unit="µs/req")
            b.add("httpp99", "http c=%d (p99 latency ms)" % c, tr_s, an_s, "nginx", None,
                  key="p99_ms", unit="ms")


def bench_scale(b):
    """taskring-http with 1 and more engines (--threads) against nginx with
    as many workers, under wrk at 200 connections: req/s and server CPU per
    request. The counts scale to the machine: 1, and half the cores (at
    least 2; the load generator gets the other half)."""
    seconds = mc_seconds(b.quick)
    bins = os.path.join(b.build, "tools")
    script = os.path.join(PERF, "http_bench.py")
    ncpu = os.cpu_count() or 1
    for w in sorted({1, max(2, ncpu // 2)}):
        tr_s, an_s = [], []
        for i in range(b.reps):
            order = ["taskring", "nginx"] if i % 2 == 0 else ["nginx", "taskring"]
            for who in order:
                s = run_json([sys.executable, script, "--server", who, "--client", "wrk",
                              "--conns", "200", "--seconds", str(seconds), "--bin-dir", bins,
                              "--workers", str(w), "--threads", str(max(1, ncpu // 2))],
                             timeout=seconds * 6 + 60)
                (tr_s if who == "taskring" else an_s).append(s)
        b.add("scale", "http %d engine(s) vs %d nginx worker(s) (req/s)" % (w, w), tr_s, an_s,
              "nginx", None)
        b.add("scalecpu", "http %d engine(s): server CPU (µs/req)" % w, tr_s, an_s, "nginx", None,
              key="cpu_us_per_req", unit="µs/req")


ECHO_SIZES = (64, 4096)


def bench_echo(b):
    """taskring-echo against perf/epoll_echo under perf/echo_client
    (ping-pong: one message in flight per connection), alternating."""
    seconds = mc_seconds(b.quick)
    script = os.path.join(PERF, "echo_bench.py")
    for size in ECHO_SIZES:
        for c in (50, 200):
            tr_s, an_s = [], []
            for i in range(b.reps):
                order = ["taskring", "epoll"] if i % 2 == 0 else ["epoll", "taskring"]
                for who in order:
                    s = run_json([sys.executable, script, "--server", who, "--conns", str(c),
                                  "--size", str(size), "--depth", "1", "--seconds", str(seconds),
                                  "--build", b.build], timeout=seconds * 6 + 60)
                    (tr_s if who == "taskring" else an_s).append(s)
            mc_point(b, "echo", "echo_client", c, tr_s, an_s, "epoll",
                     ("value", "p99_us", "cpu_us_per_rt", "client_cpu_s"), size=size)


# ---- outputs ----------------------------------------------------------------------


def load_text(mach):
    """The load average around the run; a warning when others shared the
    machine (the issue asks for runs below ~1 on these 2 cores)."""
    l = mach.get("loads") or [mach["load_start"]]
    text = "1-min load average %.2f at the start, %.2f–%.2f (median %.2f) before each program" % (
        mach["load_start"], min(l), max(l), statistics.median(l))
    if statistics.median(l) > 1.0:
        text += (" — **the machine was shared with other work during this run: rates and "
                 "latencies are approximate; CPU per request or round trip is the steadier "
                 "figure**")
    return text


def write_md(path, mach, rows, mc, quick, seconds, reps):
    lines = ["# taskring benchmarks", "",
             "Generated by `tools/dev bench%s` on %s — do not edit by hand." % (
                 " --quick" if quick else "", mach["date"]), "",
             "Machine: %s, %d cores, %.1f GiB, Linux %s; taskring %s; %s; %s; %s; %s; %s; "
             "Python %s; %s; %s." % (
                 mach["cpu"], mach["cores"], mach["mem_gib"], mach["kernel"], mach["commit"],
                 mach["fio"], mach["nginx"], mach["wrk"], mach["ab"], mach["h2load"],
                 mach["python"], mach.get("go", "?"), load_text(mach)), "",
             "Each figure is the median of its runs; taskring and its anchor alternate in the same "
             "run. ratio = taskring / anchor (for times and CPU, lower is better).", "",
             "| benchmark | taskring | anchor | ratio | goal | met? |",
             "|---|---|---|---|---|---|"]
    for r in rows:
        anchor = "%s (%s)" % (fmt(r["anchor"], r["unit"]), r["anchor_name"]) if r["anchor"] is not None else "—"
        lines.append("| %s | %s | %s | %s | %s | %s |" % (
            r["label"], fmt(r["taskring"], r["unit"]), anchor,
            ratio_text(r["ratio"]), goal_text(r["goal"], r["unit"]),
            met_text(r)))
    lines.append("")
    lines += mc_md(mc, quick, seconds, reps)
    lines.append("![taskring benchmarks](results.png)")
    lines.append("")
    with open(path, "w") as f:
        f.write("\n".join(lines))


HTTP_CMDS = {
    "wrk": "wrk -t1 -cC -dSs --latency URL",
    "ab": "ab -k -q -cC -tS -n 20000000 -e CSV URL",
    "h2load": "h2load --h1 -t1 -cC -DS --log-file=LOG URL",
}


def mc_md(mc, quick, seconds, runs):
    """The multi-client tables, with the commands that made them; runs:
    Bench.reps."""
    http = [p for p in mc if p["kind"] == "http"]
    echo = [p for p in mc if p["kind"] == "echo"]
    out = []
    if http or echo:
        out += ["## More than one client", "",
                "One load generator at a time, each with one thread, on the same 2 cores as the "
                "server; the two servers alternate, %d run%s of %d s per point, medians. "
                "Server CPU: utime + stime of the server's processes (/proc/PID/stat) over the "
                "run, per request or round trip. Client CPU: the load generator's own CPU time "
                "over the run's length (1.00 = one whole core: the client, not the server, was "
                "then the limit), in the taskring run / the anchor's run." % (
                    runs, "" if runs == 1 else "s", seconds), ""]
    if http:
        out += ["### HTTP: taskring-http vs nginx (one worker), keep-alive", "",
                "| client | c | req/s taskring | req/s nginx | ratio | p99 taskring | p99 nginx | "
                "CPU/req taskring | CPU/req nginx | CPU ratio | client CPU |",
                "|---|---|---|---|---|---|---|---|---|---|---|"]
        for p in http:
            t, a = p["taskring"], p["anchor"]
            out.append("| %s | %d | %s | %s | %.2f× | %s | %s | %s | %s | %.2f× | %.2f / %.2f |" % (
                p["client"], p["conns"], fmt(t["value"], "req/s"), fmt(a["value"], "req/s"),
                t["value"] / a["value"], fmt(t["p99_ms"], "ms"), fmt(a["p99_ms"], "ms"),
                fmt(t["cpu_us_per_req"], "µs/req"), fmt(a["cpu_us_per_req"], "µs/req"),
                t["cpu_us_per_req"] / a["cpu_us_per_req"],
                t["client_cpu_s"] / seconds, a["client_cpu_s"] / seconds))
        out += ["", "`perf/http_bench.py --server taskring|nginx --client CLIENT --conns C "
                "--seconds %d --bin-dir build-perf/tools` runs, against `URL` = "
                "`http://127.0.0.1:PORT/`: %s." % (
                    seconds, "; ".join("`%s`" % v for v in HTTP_CMDS.values())), ""]
    if echo:
        out += ["### Echo: taskring-echo vs perf/epoll_echo, ping-pong", "",
                "| size | c | rt/s taskring | rt/s epoll | ratio | p99 taskring | p99 epoll | "
                "CPU/rt taskring | CPU/rt epoll | CPU ratio | client CPU |",
                "|---|---|---|---|---|---|---|---|---|---|---|"]
        for p in echo:
            t, a = p["taskring"], p["anchor"]
            out.append("| %d B | %d | %s | %s | %.2f× | %.0f µs | %.0f µs | %.2f µs | %.2f µs | "
                       "%.2f× | %.2f / %.2f |" % (
                           p["size"], p["conns"], fmt(t["value"], "rt/s"), fmt(a["value"], "rt/s"),
                           t["value"] / a["value"], t["p99_us"], a["p99_us"], t["cpu_us_per_rt"],
                           a["cpu_us_per_rt"], t["cpu_us_per_rt"] / a["cpu_us_per_rt"],
                           t["client_cpu_s"] / seconds, a["client_cpu_s"] / seconds))
        out += ["", "`perf/echo_bench.py --server taskring|epoll --conns C --size M --depth 1 "
                "--seconds %d --build build-perf` runs `build-perf/perf/echo_client --port PORT "
                "--conns C --size M --depth 1 --seconds %d` against `taskring-echo --port 0` or "
                "`perf/epoll_echo --port 0`; every echoed byte is checked." % (seconds, seconds),
                ""]
    return out


PANELS = [
    ("nop", "NOPs, ops/s (higher is better)", False),
    ("spawn", "spawn+run+join, tasks/s", False),
    ("switch", "context switch, ns (goal <= 10)", False),
    ("cancel", "cancel+drain N sleepers, ms (log)", True),
    ("pipecancel", "cancel N pipe reads, ms (log)", True),
    ("rss", "RSS per parked task at 100k, bytes", False),
    ("sigterm", "SIGTERM with 100k parked tasks, ms", False),
    ("scope", "NOPs inside a scope each vs plain, ops/s", False),
    ("timers", "deadline moves: wheel vs heap, ns (log)", True),
    ("randread", "4 KiB random reads, IOPS", False),
    ("chan", "rendezvous channel ping-pong vs Go, ns per round trip", False),
    ("mutex", "uncontended mutex lock+unlock vs pthread, ns", False),
    ("event", "tr_event_set vs an out-of-line call, ns", False),
    ("sem", "semaphore hand-off vs yield switch, ns", False),
    ("group", "10k-child group, one fails: vs asyncio.TaskGroup, ms (log)", True),
    ("post", "messages between 2 engines vs bare MSG_RING, ns (log)", True),
    ("offload", "tr_offload vs libuv uv_queue_work, jobs/s", False),
    ("scale", "taskring-http N engines vs nginx N workers, req/s (wrk c=200)", False),
    ("scalecpu", "... server CPU per request, us", False),
    ("cluster", "cluster SIGTERM->exit per task vs 1 engine, ns", False),
]

# The multi-client panels: (kind, key, title); x = client and concurrency.
MC_PANELS = [
    ("http", "value", "HTTP keep-alive by client, req/s vs nginx"),
    ("http", "cpu_us_per_req", "HTTP server CPU per request, us"),
    ("http", "p99_ms", "HTTP p99 latency, ms"),
    ("echo", "value", "echo ping-pong, round trips/s vs epoll"),
    ("echo", "cpu_us_per_rt", "echo server CPU per round trip, us"),
    ("echo", "p99_us", "echo p99 latency, us"),
]


def write_png(path, rows, mc, tmp):
    if not shutil.which("gnuplot"):
        log("gnuplot missing: no chart")
        return
    panels = []  # (name, title, logy, [(label, taskring, anchor or None)], anchor_name)
    for panel, title, logy in PANELS:
        pr = [r for r in rows if r["panel"] == panel]
        if pr:
            panels.append((panel, title, logy,
                           [(r["label"].split(" (")[0], r["taskring"], r["anchor"]) for r in pr],
                           pr[0]["anchor_name"]))
    for kind, key, title in MC_PANELS:
        pts = [p for p in mc if p["kind"] == kind]
        if pts:
            panels.append(("mc_%s_%s" % (kind, key), title, False,
                           [("%s c=%d" % (p["client"] if kind == "http" else "%d B" % p["size"],
                                          p["conns"]), p["taskring"][key], p["anchor"][key])
                            for p in pts], pts[0]["anchor_name"]))
    if not panels:
        return
    rows_n = (len(panels) + 2) // 3
    script = ["set terminal pngcairo size 1500,%d font 'sans,9' noenhanced" % (425 * rows_n),
              "set output '%s'" % path,
              "set multiplot layout %d,3 title 'taskring (blue) vs its anchor (orange), %s'" % (
                  rows_n, "higher is better for rates, lower for times, bytes and CPU"),
              "set style data histogram", "set style histogram cluster gap 1",
              "set style fill solid 0.9 border -1", "set boxwidth 0.9",
              "set key top left", "set xtics rotate by -20", "set grid ytics"]
    for name, title, logy, entries, anchor_name in panels:
        dat = os.path.join(tmp, name + ".dat")
        with open(dat, "w") as f:
            for label, tv, av in entries:
                f.write('"%s" %g %g\n' % (label.replace('"', ""), tv, av if av is not None else 0))
        script.append("set title '%s'" % title)
        script.append("set logscale y" if logy else "unset logscale y")
        script.append("set yrange [%s:*]" % ("0.01" if logy else "0"))
        plot = "plot '%s' using 2:xtic(1) title 'taskring' lc rgb '#1f77b4'" % dat
        if any(av is not None for _, _, av in entries):
            plot += ", '' using 3 title '%s' lc rgb '#ff7f0e'" % anchor_name.replace("'", "")
        script.append(plot)
    script.append("unset multiplot")
    gp = os.path.join(tmp, "chart.gp")
    with open(gp, "w") as f:
        f.write("\n".join(script) + "\n")
    subprocess.run(["gnuplot", gp], check=True)


BEGIN, END = "<!-- bench:begin (copied from perf/RESULTS.md by tools/dev bench) -->", "<!-- bench:end -->"


def copy_table(results_md, readme):
    """The README's tables are the generated ones: RESULTS.md after its
    title, copied between the README's markers, its headings one level
    down (the README's section is itself a "##")."""
    with open(results_md) as f:
        md = f.read().splitlines()
    keep = []
    for l in md:
        if l.startswith("# "):
            continue
        keep.append("#" + l if l.startswith("##") else l)
    while keep and not keep[0].strip():
        keep.pop(0)
    with open(readme) as f:
        text = f.read()
    if BEGIN not in text or END not in text:
        log("README has no bench markers: table not copied")
        return
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    body = "\n".join(keep).rstrip("\n").replace("(results.png)", "(perf/results.png)")
    with open(readme, "w") as f:
        f.write(head + BEGIN + "\n" + body + "\n" + END + tail)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", required=True)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--out", help="where the outputs go (default perf/; with --only, "
                    "BUILD/bench-only, so that a partial run leaves perf/RESULTS.md alone)")
    ap.add_argument("--readme", help="README.md whose table (between the bench markers) is replaced")
    ap.add_argument("--only", default="",
                    help="comma-separated: nop,switch,cancel,time,randread,sync,many,scale,http,echo")
    ap.add_argument("--reps", type=int, help="rounds per point (default 3, --quick 1; sync: 5)")
    a = ap.parse_args()
    only = set(a.only.split(",")) if a.only else None
    if not a.out:
        a.out = os.path.join(os.path.abspath(a.build), "bench-only") if only else PERF
    mach = machine()
    log("machine: %s" % json.dumps(mach))
    with tempfile.TemporaryDirectory(prefix="taskring-bench.") as tmp:
        b = Bench(os.path.abspath(a.build), a.quick, tmp, a.reps)
        for name, fn in (("nop", bench_nop), ("switch", bench_switch_spawn), ("cancel", bench_cancel),
                         ("time", bench_time), ("randread", bench_randread), ("sync", bench_sync),
                         ("many", bench_many), ("scale", bench_scale),
                         ("http", bench_http),
                         ("echo", bench_echo)):
            if only and name not in only:
                continue
            log("== %s" % name)
            fn(b)
        mach["loads"] = LOADS
        mach["load_end"] = os.getloadavg()[0]
        os.makedirs(a.out, exist_ok=True)
        with open(os.path.join(a.out, "results.json"), "w") as f:
            json.dump({"machine": mach, "quick": a.quick, "rows": b.rows, "multi_client": b.mc},
                      f, indent=1)
        write_md(os.path.join(a.out, "RESULTS.md"), mach, b.rows, b.mc, a.quick, mc_seconds(a.quick),
                 b.reps)
        write_png(os.path.join(a.out, "results.png"), b.rows, b.mc, tmp)
        if a.readme and not only:
            copy_table(os.path.join(a.out, "RESULTS.md"), a.readme)
    log("wrote %s/RESULTS.md, results.json, results.png" % a.out)


if __name__ == "__main__":
    signal.signal(signal.SIGINT, signal.default_int_handler)
    main()
