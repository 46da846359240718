#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""slowloris_check.py — do the servers' time limits hold off slow clients?

slowloris  taskring-http --header-timeout-ms H (default 3000): C connections
           (default 2000) each send one byte of a request head every B s
           (default 2), never completing it, in W waves one after the other
           (default 2), while a normal client (its own process) makes a
           keep-alive GET every 5 ms and times each one. Every slow
           connection must be closed by the server (EOF, after a 408 or
           not) within H + 1 s of its first byte, the normal client's p99
           latency must stay under 5 ms (--p99-ms) with no error, and the
           server's RSS (/proc/PID/status VmRSS) must come back to within
           --rss-margin-kib of its baseline (taken with the normal client
           connected, before any slow one) once they are gone; with
           --rss reuse, only the last wave must have left no more than the
           first (the memory kept is reused, nothing leaks).
edges      taskring-http --header-timeout-ms H --idle-timeout-ms I (1000 and
           2500; --quick 600 and 1200), one connection per case, all at
           once: a head completed at 0.7 H is served, and so is the next
           request's, at 0.7 H of its own deadline; a body that stalls gets
           408 at I; three pipelined requests and a partial head get three
           answers, then 408 at H; an idle keep-alive connection is closed
           without a word at I; a client that reads nothing for (H + I) / 2
           behind 100,000 pipelined requests (its answers outgrow the socket
           buffers) still gets every answer; one that never reads is reset
           after I; a SIGTERM with connections idle, mid-head, mid-body and
           silent ends the server with exit 0 and its report.
echo       taskring-echo --idle-timeout-ms I (default 2000): K connections
           (default 50) go quiet after one echoed line and one never speaks;
           each must be closed (EOF, nothing sent) within I + 1 s of its last
           input and not before I, while an active connection sending a
           line every I/4 keeps being echoed for 2 I, and one that floods
           and never reads is reset after I.

Every server ends by SIGTERM with exit 0, and its last line must count the
timeouts. Prints the figures measured; exit status 1 unless every check
passed. --quick (CI): 200 slow connections, H 1000 ms, a byte every 0.5 s;
the shorter edges; 20 quiet echo connections, I 500 ms.

    tools/slowloris_check.py [--bin-dir build/tools] [--quick] [--only PART]
                             [--conns 2000] [--header-ms 3000] [--every 2]
                             [--waves 2] [--rss baseline|reuse]

Loopback only. Bounded: every wait has a deadline (at most H + 10 s).
"""
import argparse
import collections
import multiprocessing
import os
import re
import resource
import selectors
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
nan = float("nan")
REQ = b"GET / HTTP/1.1\r\nHost: check\r\n\r\n"
OK_BODY = b"Hello, world!"
# A head that never ends: the request line, then one field value that grows.
SLOW_HEAD = b"GET / HTTP/1.1\r\nHost: check\r\nX-Slow: "


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return -1


def start(exe, args, stream, logdir, tag):
    """Starts exe --port 0 args; returns (proc, port, out_file, err_file)."""
    out = open(os.path.join(logdir, tag + ".out"), "w+")
    err = open(os.path.join(logdir, tag + ".err"), "w+")
    p = subprocess.Popen([exe, "--port", "0"] + args, stdout=out, stderr=err)
    f = out if stream == "stdout" else err
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        f.seek(0)
        m = re.search(r"listening on 127\.0\.0\.1:(\d+)", f.read())
        if m:
            return p, int(m.group(1)), out, err
        if p.poll() is not None:
            break
        time.sleep(0.02)
    p.kill()
    p.wait()
    raise SystemExit(f"slowloris: {exe} never listened")


def stop(p, out, err, name):
    """SIGTERM; returns (exit status, the last counts line or '')."""
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
    return rc, (last[-1] if last else ""), "shutdown report" in text


def pct(xs, q):
    if not xs:
        return float("nan")
    s = sorted(xs)
    return s[min(len(s) - 1, int(q * len(s)))]


def read_answer(s, buf=b""):
    """Reads one whole 200 answer (ends with the body) from a blocking
    socket; returns the bytes after it."""
    while True:
        i = buf.find(OK_BODY)
        if i >= 0:
            return buf[i + len(OK_BODY):]
        chunk = s.recv(4096)
        if not chunk:
            raise ConnectionError("EOF before the answer")
        buf += chunk


# ---- slowloris ---------------------------------------------------------------------


def normal_client(port, interval, stop_ev, conn):
    """Its own process: a keep-alive GET every interval s until stop_ev; sends
    back (latencies in s, the error that ended it or None)."""
    lat, why = [], None
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=5)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        nxt = time.monotonic()
        # Bounded by stop_ev (the parent sets it) and the parent's deadline.
        while not stop_ev.is_set():
            t0 = time.perf_counter()
            s.sendall(REQ)
            rest = read_answer(s)
            lat.append(time.perf_counter() - t0)
            if rest:
                raise ConnectionError("bytes after an answer")
            nxt += interval
            time.sleep(max(0.0, nxt - time.monotonic()))
        s.close()
    except (OSError, ConnectionError) as e:
        why = repr(e)
    conn.send((lat, why))
    conn.close()


class Slow:
    __slots__ = ("sock", "t_conn", "t_first", "sent", "closed_at", "answer", "how")

    def __init__(self, sock, t_conn):
        self.sock, self.t_conn, self.t_first, self.sent = sock, t_conn, None, 0
        self.closed_at, self.answer, self.how = None, b"", None


def slow_byte(c):
    i = c.sent
    return SLOW_HEAD[i:i + 1] if i < len(SLOW_HEAD) else b"a"


def slow_wave(a, port, pid):
    """Opens a.conns slow connections at once and feeds each a head byte
    every a.every s until the server closes them all (or H + 10 s pass).
    Returns (the connections, seconds to open them, peak RSS in KiB)."""
    H = a.header_ms / 1000.0
    sel = selectors.DefaultSelector()
    slow = []
    t_open = time.monotonic()
    for _ in range(a.conns):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setblocking(False)
        c = Slow(s, time.monotonic())
        s.connect_ex(("127.0.0.1", port))
        slow.append(c)
        sel.register(s, selectors.EVENT_WRITE, c)
    sends = collections.deque()  # (when, conn): one period for all, so in time order
    open_n, peak = a.conns, 0
    hard_end = time.monotonic() + H + a.every + 10
    next_rss = 0.0
    # Bounded by hard_end; every pass waits at most 50 ms.
    while open_n and time.monotonic() < hard_end:
        now = time.monotonic()
        timeout = 0.05 if not sends else min(0.05, max(0.0, sends[0][0] - now))
        for key, _ in sel.select(timeout=timeout):
            c = key.data
            now = time.monotonic()
            if c.t_first is None:  # connected (or refused)
                if c.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR):
                    c.closed_at, c.how = now, "refused"
                    sel.unregister(c.sock)
                    c.sock.close()
                    open_n -= 1
                    continue
                c.sock.send(slow_byte(c))
                c.sent, c.t_first = 1, now
                sends.append((now + a.every, c))
                sel.modify(c.sock, selectors.EVENT_READ, c)
                continue
            try:
                chunk = c.sock.recv(4096)
            except ConnectionResetError:
                chunk, c.how = b"", "reset"
            if chunk:
                c.answer += chunk
                continue
            c.closed_at = now
            c.how = c.how or ("408+EOF" if c.answer.startswith(b"HTTP/1.1 408 ") else "EOF")
            sel.unregister(c.sock)
            c.sock.close()
            open_n -= 1
        now = time.monotonic()
        while sends and sends[0][0] <= now:
            _, c = sends.popleft()
            if c.closed_at is not None:
                continue
            try:
                c.sock.send(slow_byte(c))
                c.sent += 1
                sends.append((now + a.every, c))
            except OSError:
                pass  # the server is gone from this one: its EOF or reset is read above
        if now >= next_rss:
            peak = max(peak, rss_kib(pid))
            next_rss = now + 0.25
    t_opened = max((c.t_first or t_open) for c in slow) - t_open
    for c in slow:
        if c.closed_at is None:
            c.how = "still open"
            sel.unregister(c.sock)
            c.sock.close()
    sel.close()
    return slow, t_opened, peak


def settled_rss(pid, target, margin):
    """RSS once it is within margin of target, or has not dropped for 1.5 s
    (the engine gives idle stacks back after they have stayed free for 1 s),
    or after 5 s; returns (KiB, seconds waited)."""
    t0 = time.monotonic()
    rss = low = rss_kib(pid)
    low_at = t0
    # Bounded: 5 s at most, a sample every 0.1 s.
    while rss - target > margin and time.monotonic() < min(t0 + 5, low_at + 1.5):
        time.sleep(0.1)
        rss = rss_kib(pid)
        if rss < low:
            low, low_at = rss, time.monotonic()
    return rss, time.monotonic() - t0


def run_slowloris(a, http, logdir):
    ok = True
    H = a.header_ms / 1000.0
    p, port, out, err = start(http, ["--header-timeout-ms", str(a.header_ms)], "stderr", logdir,
                              "http-slowloris")
    ctx = multiprocessing.get_context("fork")
    stop_ev = ctx.Event()
    parent_end, child_end = ctx.Pipe()
    cl = ctx.Process(target=normal_client, args=(port, 0.005, stop_ev, child_end))
    cl.start()
    time.sleep(0.5)
    base = rss_kib(p.pid)
    afters = []
    for w in range(1, a.waves + 1):
        slow, t_opened, peak = slow_wave(a, port, p.pid)
        # The lingering closes end at our EOFs; then the RSS may settle.
        time.sleep(0.2)
        rss, settle = settled_rss(p.pid, base, a.rss_margin_kib)
        afters.append(rss)
        first = [c.closed_at - c.t_first for c in slow if c.t_first is not None and c.closed_at]
        conn = [c.closed_at - c.t_conn for c in slow if c.t_first is not None and c.closed_at]
        late = [c for c in slow if c.how in ("still open", "refused") or
                c.closed_at - c.t_first > H + 1.0]
        hows = collections.Counter(c.how for c in slow)
        close_ok = not late and len(first) == a.conns
        ok &= close_ok
        print(f"slowloris: wave {w}: {a.conns} slow connections (a head byte every {a.every:g} s, "
              f"opened in {t_opened:.2f} s) against --header-timeout-ms {a.header_ms}: closed "
              f"{min(first, default=nan):.2f} / {pct(first, 0.5):.2f} / "
              f"{max(first, default=nan):.2f} s (min / median / max) after their first byte "
              f"(limit {H + 1:.1f} s; {min(conn, default=nan):.2f} / "
              f"{max(conn, default=nan):.2f} s after the connect); "
              + ", ".join(f"{n} {h}" for h, n in sorted(hows.items()))
              + f" -> {'ok' if close_ok else 'FAILED'}")
        held = f" ({(peak - base) / max(1, a.conns):.1f} KiB per slow connection)" if w == 1 else ""
        print(f"slowloris: wave {w}: server RSS: baseline {base} KiB, peak {peak} KiB{held}, "
              f"after {rss} KiB ({rss - base:+d} KiB, {settle + 0.2:.1f} s after the last close)")

    stop_ev.set()
    lat, why = parent_end.recv() if parent_end.poll(10) else ([], "no report")
    cl.join(5)
    rc, last, report = stop(p, out, err, "taskring-http")

    p99 = pct(lat, 0.99) * 1000
    lat_ok = why is None and len(lat) > 100 and p99 < a.p99_ms
    ok &= lat_ok
    print(f"slowloris: normal client meanwhile: {len(lat)} keep-alive GETs, latency p50 "
          f"{pct(lat, 0.5) * 1000:.2f} ms, p99 {p99:.2f} ms, max "
          f"{max(lat, default=nan) * 1000:.2f} ms (p99 limit {a.p99_ms:g} ms)"
          f"{'; ended by ' + why if why else ''} -> {'ok' if lat_ok else 'FAILED'}")
    # "baseline": back to the RSS before any slow connection (the issue's
    # acceptance). "reuse": the last wave left no more than the first (what
    # the memory of a wave is kept for, the engine's stack pool, is reused
    # by the next: nothing leaks).
    grown = afters[-1] - afters[0]
    back = afters[-1] - base
    if a.rss == "baseline":
        rss_ok = back <= a.rss_margin_kib
    else:
        rss_ok = len(afters) >= 2 and grown <= a.rss_margin_kib
    ok &= rss_ok
    print(f"slowloris: RSS after the slow connections: {back:+d} KiB against the baseline, "
          f"{grown:+d} KiB against wave 1's (margin {a.rss_margin_kib} KiB, checked: "
          f"{a.rss}) -> {'ok' if rss_ok else 'FAILED'}")
    m = re.search(r"(\d+) request timeouts \(408\)", last)
    end_ok = rc == 0 and report and m and int(m.group(1)) == a.conns * a.waves
    ok &= bool(end_ok)
    print(f"slowloris: SIGTERM -> exit {rc}; {last or '(no counts line)'} -> "
          f"{'ok' if end_ok else 'FAILED'}")
    return ok


# ---- edges -------------------------------------------------------------------------


def recv_all(s, limit):
    """Reads until EOF or limit s; returns (bytes, 'EOF'|'reset'|'open')."""
    s.settimeout(0.1)
    data, end = b"", time.monotonic() + limit
    while time.monotonic() < end:
        try:
            chunk = s.recv(65536)
        except socket.timeout:
            continue
        except ConnectionResetError:
            return data, "reset"
        if not chunk:
            return data, "EOF"
        data += chunk
    return data, "open"


def edge_late_head(port, H, I):
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    s.sendall(REQ[:5])
    time.sleep(0.7 * H)
    s.sendall(REQ[5:])
    read_answer(s)
    time.sleep(0.5 * H)  # the next request: its own deadline, from its first byte
    s.sendall(REQ[:5])
    time.sleep(0.7 * H)
    s.sendall(REQ[5:])
    read_answer(s)
    data, how = recv_all(s, I + 2)
    s.close()
    return how == "EOF" and data == b"", f"served twice, then a quiet {how}"


def edge_body_stall(port, H, I):
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    t0 = time.monotonic()
    s.sendall(b"POST / HTTP/1.1\r\nHost: check\r\nContent-Length: 10\r\n\r\nabc")
    data, how = recv_all(s, I + 2)
    t = time.monotonic() - t0
    s.close()
    ok = data.startswith(b"HTTP/1.1 408 ") and b"Connection: close" in data and how == "EOF"
    return ok and I <= t < I + 1, f"{data[:28]!r} then {how} at {t:.2f} s"


def edge_pipelined_partial(port, H, I):
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    t0 = time.monotonic()
    s.sendall(REQ * 3 + b"GET / HT")
    data, how = recv_all(s, H + 2)
    t = time.monotonic() - t0
    s.close()
    n200, n408 = data.count(b"HTTP/1.1 200 "), data.count(b"HTTP/1.1 408 ")
    ok = n200 == 3 and n408 == 1 and how == "EOF" and H <= t < H + 1
    return ok, f"{n200} answers, {n408} 408, {how} at {t:.2f} s"


def edge_idle(port, H, I):
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    t0 = time.monotonic()  # the server's idle time starts after this, at its recv
    s.sendall(REQ)
    read_answer(s)
    data, how = recv_all(s, I + 2)
    t = time.monotonic() - t0
    s.close()
    return data == b"" and how == "EOF" and I <= t < I + 1, f"quiet {how} {t:.2f} s after the request"


def edge_slow_reader(port, H, I):
    # Answers to n requests (8.5 MB) outgrow the socket buffers: the server's
    # sends block while the client reads nothing, longer than H, shorter than I.
    n, pause = 100000, (H + I) / 2
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    th = threading.Thread(target=lambda: s.sendall(REQ * n), daemon=True)
    th.start()
    time.sleep(pause)
    got, tail, how = 0, b"", "open"
    try:
        # Bounded: each pass reads bytes, or ends at EOF or the 5 s timeout.
        while got < n:
            chunk = s.recv(65536)
            if not chunk:
                how = "EOF"
                break
            buf = tail + chunk  # a body split between two chunks counts once
            got += buf.count(OK_BODY)
            tail = buf[-(len(OK_BODY) - 1):]
    except OSError as e:
        how = repr(e)
    th.join(5)
    s.close()
    return got == n, f"{got}/{n} answers, after {pause:.2f} s without reading ({how})"


def tcp_state(s):
    return s.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 8)[0]


def _flood(s):
    """Sends requests (or lines) until the peer is gone; never reads."""
    try:
        s.sendall(REQ * 200000)
    except OSError:
        pass


def edge_never_reader(port, H, I):
    # Sends requests and never reads: once the server's sends stall, I
    # without progress must end the connection (lingering close, then the
    # reset of a close with our requests unread).
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    t0 = time.monotonic()
    threading.Thread(target=lambda: _flood(s), daemon=True).start()
    state = tcp_state(s)
    # Bounded: I + 4 s. 1 = ESTABLISHED; 7 CLOSE (reset), 8 CLOSE_WAIT (EOF).
    while state == 1 and time.monotonic() < t0 + I + 4:
        time.sleep(0.05)
        state = tcp_state(s)
    t = time.monotonic() - t0
    s.close()
    ok = state in (7, 8) and I <= t < I + 1 + 2
    return ok, f"{'reset' if state == 7 else 'EOF' if state == 8 else 'still open'} {t:.2f} s after the first request"


def edge_sigterm(http, logdir):
    p, port, out, err = start(http, ["--header-timeout-ms", "5000", "--idle-timeout-ms", "5000"],
                              "stderr", logdir, "http-sigterm")
    socks = [socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(4)]
    socks[0].sendall(REQ)
    read_answer(socks[0])  # idle now
    socks[1].sendall(REQ[:7])  # mid-head
    socks[2].sendall(b"POST / HTTP/1.1\r\nHost: check\r\nContent-Length: 9\r\n\r\nab")  # mid-body
    # socks[3]: connected, nothing sent
    time.sleep(0.3)
    t0 = time.monotonic()
    rc, last, report = stop(p, out, err, "taskring-http")
    t = time.monotonic() - t0
    for s in socks:
        s.close()
    ok = rc == 0 and report and " 4 cancelled" in last
    return ok, f"exit {rc} in {t * 1000:.0f} ms, report {'yes' if report else 'NO'}; {last}"


def run_edges(a, http, logdir):
    H, I = a.edge_header_ms / 1000.0, a.edge_idle_ms / 1000.0
    p, port, out, err = start(http, ["--header-timeout-ms", str(a.edge_header_ms),
                                     "--idle-timeout-ms", str(a.edge_idle_ms)],
                              "stderr", logdir, "http-edges")
    cases = [("a head done at 0.7 H, twice", edge_late_head),
             ("a body that stalls (408 at I)", edge_body_stall),
             ("3 pipelined + a partial head (408 at H)", edge_pipelined_partial),
             ("an idle keep-alive connection (closed at I)", edge_idle),
             ("a slow reader (served)", edge_slow_reader),
             ("a reader that never reads (closed after I)", edge_never_reader)]
    res = {}

    def one(name, fn):
        try:
            res[name] = fn(port, H, I)
        except (OSError, ConnectionError) as e:
            res[name] = (False, repr(e))

    ths = [threading.Thread(target=one, args=c, daemon=True) for c in cases]
    for t in ths:
        t.start()
    for t in ths:
        t.join(I + 15)
    print(f"edges: taskring-http --header-timeout-ms {a.edge_header_ms} --idle-timeout-ms "
          f"{a.edge_idle_ms} (H, I), one connection per case, all at once:")
    ok = True
    for name, _ in cases:
        good, what = res.get(name, (False, "did not finish"))
        ok &= good
        print(f"edges:   {name}: {what} -> {'ok' if good else 'FAILED'}")
    rc, last, report = stop(p, out, err, "taskring-http")
    ok &= rc == 0
    print(f"edges: SIGTERM -> exit {rc}; {last or '(no counts line)'}")
    good, what = edge_sigterm(http, logdir)
    ok &= good
    print(f"edges: SIGTERM with connections idle, mid-head, mid-body, silent: {what} -> "
          f"{'ok' if good else 'FAILED'}")
    return ok


# ---- echo --------------------------------------------------------------------------


def run_echo(a, echo, logdir):
    I = a.echo_idle_ms / 1000.0
    p, port, out, err = start(echo, ["--idle-timeout-ms", str(a.echo_idle_ms)], "stdout", logdir,
                              "echo-idle")
    idle = []
    for i in range(a.echo_conns):
        s = socket.create_connection(("127.0.0.1", port), timeout=5)
        line = f"line {i}\n".encode()
        t = time.monotonic()
        s.sendall(line)
        got = b""
        while len(got) < len(line):
            got += s.recv(4096)
        idle.append([s, t, None, got == line])
    # A client that floods and never reads: the echo's send stalls, and I
    # later it must be reset (its own thread, meanwhile).
    never = {}

    def never_reader():
        ns = socket.create_connection(("127.0.0.1", port), timeout=5)
        t0 = time.monotonic()
        threading.Thread(target=lambda: _flood(ns), daemon=True).start()
        st = tcp_state(ns)
        # Bounded: I + 4 s.
        while st == 1 and time.monotonic() < t0 + I + 4:
            time.sleep(0.02)
            st = tcp_state(ns)
        never["t"], never["state"] = time.monotonic() - t0, st
        ns.close()

    nth = threading.Thread(target=never_reader, daemon=True)
    nth.start()
    # Its clock starts before the connect: the server may accept it (and
    # start its idle time) before create_connection returns here, by a few
    # ms on a loaded machine (a CI run saw 0.492 s measured from after it).
    t_silent = time.monotonic()
    silent = socket.create_connection(("127.0.0.1", port), timeout=5)
    idle.append([silent, t_silent, None, True])
    act = socket.create_connection(("127.0.0.1", port), timeout=5)
    sel = selectors.DefaultSelector()
    for k, c in enumerate(idle):
        c[0].setblocking(False)
        sel.register(c[0], selectors.EVENT_READ, k)
    t_end = time.monotonic() + 2 * I
    act_ok, act_n, nxt = True, 0, time.monotonic()
    hard_end = time.monotonic() + I + 10
    left = len(idle)
    # Bounded by hard_end; the active connection's period bounds each wait.
    while (left or time.monotonic() < t_end) and time.monotonic() < hard_end:
        now = time.monotonic()
        if now >= nxt and now < t_end and act_ok:
            msg = f"active {act_n}\n".encode()
            try:
                act.sendall(msg)
                got = b""
                while len(got) < len(msg):
                    chunk = act.recv(4096)
                    if not chunk:
                        break
                    got += chunk
                act_ok = got == msg
                act_n += 1
            except OSError:
                act_ok = False
            nxt = now + I / 4
        for key, _ in sel.select(timeout=min(0.02, I / 8)):
            c = idle[key.data]
            try:
                chunk = c[0].recv(4096)
            except ConnectionResetError:
                chunk = b""
                c[3] = False
            if chunk:
                c[3] = False  # nothing may come: no goodbye, no echo
                continue
            c[2] = time.monotonic() - c[1]
            sel.unregister(c[0])
            c[0].close()
            left -= 1
    sel.close()
    act.close()
    nth.join(I + 6)
    waits = [c[2] for c in idle if c[2] is not None]
    in_time = all(c[2] is not None and I <= c[2] <= I + 1.0 and c[3] for c in idle)
    nt, nst = never.get("t", nan), never.get("state", 1)
    never_ok = nst == 7 and I <= nt < I + 3
    ok = in_time and act_ok and act_n >= 8
    rc, last, report = stop(p, out, err, "taskring-echo")
    m = re.search(r"(\d+) idle timeouts", last)
    end_ok = rc == 0 and m and int(m.group(1)) == len(idle) + 1
    print(f"echo: {len(idle) - 1} quiet connections and 1 silent one against --idle-timeout-ms "
          f"{a.echo_idle_ms}: {len(waits)} closed (EOF, nothing sent) "
          f"{min(waits, default=float('nan')):.3f} / {max(waits, default=float('nan')):.3f} s "
          f"(min / max) after their last input (window {I:g} .. {I + 1:g} s); the active one "
          f"echoed {act_n} lines over {2 * I:g} s -> {'ok' if ok else 'FAILED'}")
    print(f"echo: a client that floods and never reads: "
          f"{'reset' if nst == 7 else 'EOF' if nst == 8 else 'still open'} {nt:.2f} s after it "
          f"connected (window {I:g} .. {I + 3:g} s) -> {'ok' if never_ok else 'FAILED'}")
    print(f"echo: SIGTERM -> exit {rc}; {last or '(no counts line)'} -> "
          f"{'ok' if end_ok else 'FAILED'}")
    return ok and never_ok and bool(end_ok)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    ap.add_argument("--bin-dir", default=os.path.join(HERE, "..", "build", "tools"))
    ap.add_argument("--quick", action="store_true",
                    help="CI size: 200 slow connections, H 1000 ms, a byte every 0.5 s; "
                    "20 echo connections, I 500 ms")
    ap.add_argument("--only", choices=["slowloris", "edges", "echo"])
    ap.add_argument("--conns", type=int)
    ap.add_argument("--header-ms", type=int)
    ap.add_argument("--every", type=float, help="seconds between a slow client's bytes")
    ap.add_argument("--p99-ms", type=float, default=5.0)
    ap.add_argument("--rss-margin-kib", type=int, default=1024)
    ap.add_argument("--waves", type=int, default=2, help="slow waves, one after the other")
    ap.add_argument("--rss", choices=["baseline", "reuse"], default="baseline",
                    help="baseline: RSS back to before the waves (the acceptance); "
                    "reuse: the last wave left no more than the first")
    ap.add_argument("--edge-header-ms", type=int)
    ap.add_argument("--edge-idle-ms", type=int)
    ap.add_argument("--echo-conns", type=int)
    ap.add_argument("--echo-idle-ms", type=int)
    a = ap.parse_args()
    q = a.quick
    a.conns = a.conns or (200 if q else 2000)
    a.header_ms = a.header_ms or (1000 if q else 3000)
    a.every = a.every or (0.5 if q else 2.0)
    a.edge_header_ms = a.edge_header_ms or (600 if q else 1000)
    a.edge_idle_ms = a.edge_idle_ms or (1200 if q else 2500)
    a.echo_conns = a.echo_conns or (20 if q else 50)
    a.echo_idle_ms = a.echo_idle_ms or (500 if q else 2000)
    # This process holds every slow connection, and the servers inherit the
    # limit: lift the soft one.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    need = a.conns + 256
    if hard != resource.RLIM_INFINITY and hard < need:
        raise SystemExit(f"slowloris: need {need} fds, the hard limit is {hard}")
    if soft != resource.RLIM_INFINITY and soft < need:
        resource.setrlimit(resource.RLIMIT_NOFILE, (need, hard))
    http = os.path.join(a.bin_dir, "taskring-http")
    echo = os.path.join(a.bin_dir, "taskring-echo")
    ok = True
    with tempfile.TemporaryDirectory(prefix="slowloris-") as logdir:
        if a.only in (None, "slowloris"):
            ok &= run_slowloris(a, http, logdir)
        if a.only in (None, "edges"):
            ok &= run_edges(a, http, logdir)
        if a.only in (None, "echo"):
            ok &= run_echo(a, echo, logdir)
    print(f"slowloris: {'all checks passed' if ok else 'FAILED'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
