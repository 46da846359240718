#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""readiness_check.py — is "listening" an honest readiness line?

For each server (taskring-echo, taskring-http, taskring-fanout), N times
(default 20): start it on an ephemeral port, read its output line by line
and send SIGTERM the instant the "listening" line appears. A server that
prints that line only once SIGTERM starts the graceful shutdown exits 0,
its stderr holds the engine's shutdown report, and its output the server's
last line (counting connections). One that prints it earlier dies by the
signal (exit -15 here, 143 in a shell). Prints one tally line per server and
exits 1 unless every try of every server passed.

    tools/readiness_check.py [--bin-dir build/tools] [--tries 20]

Bounded: each try waits at most 10 s for the line and 10 s for the exit.
"""
import argparse
import os
import re
import selectors
import signal
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))

SERVERS = {
    # name: (argv after the program, the stream that carries the readiness line)
    "taskring-echo": (["--port", "0"], "stdout"),
    "taskring-http": (["--port", "0"], "stderr"),
    "taskring-fanout": (["--port", "0"], "stdout"),
}


def one_try(exe, args, stream):
    """Returns (ok, why)."""
    p = subprocess.Popen([exe] + args, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    sel = selectors.DefaultSelector()
    sel.register(p.stdout, selectors.EVENT_READ, "stdout")
    sel.register(p.stderr, selectors.EVENT_READ, "stderr")
    out = {"stdout": b"", "stderr": b""}
    deadline = time.monotonic() + 10
    signalled = False
    # Read raw chunks (os.read): the line is acted on the moment its bytes
    # arrive, with no buffering of ours in between.
    while not signalled and time.monotonic() < deadline:
        for key, _ in sel.select(timeout=0.1):
            chunk = os.read(key.fileobj.fileno(), 65536)
            if not chunk:
                sel.unregister(key.fileobj)
                continue
            out[key.data] += chunk
            if key.data == stream and b"listening on " in out[stream]:
                p.send_signal(signal.SIGTERM)
                signalled = True
                break
        if p.poll() is not None and not signalled:
            break
    if not signalled:
        p.kill()
        p.wait()
        return False, "never printed the listening line"
    # Drain both pipes until the process exits (or 10 s pass).
    deadline = time.monotonic() + 10
    while sel.get_map() and time.monotonic() < deadline:
        for key, _ in sel.select(timeout=0.1):
            chunk = os.read(key.fileobj.fileno(), 65536)
            if not chunk:
                sel.unregister(key.fileobj)
            else:
                out[key.data] += chunk
    try:
        rc = p.wait(timeout=max(0.1, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()
        return False, "did not exit within 10 s of SIGTERM"
    err = out["stderr"].decode(errors="replace")
    if rc != 0:
        return False, f"exit {rc}"
    if "shutdown report" not in err:
        return False, "exit 0 but no shutdown report"
    if not re.search(r"^taskring-(echo|http|fanout): \d+ connections", err + out["stdout"].decode(errors="replace"), re.M):
        return False, "exit 0 but no final counts line"
    return True, "exit 0 with the report"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    ap.add_argument("--bin-dir", default=os.path.join(HERE, "..", "build", "tools"))
    ap.add_argument("--tries", type=int, default=20)
    a = ap.parse_args()
    all_ok = True
    for name, (args, stream) in SERVERS.items():
        exe = os.path.join(a.bin_dir, name)
        ok = 0
        whys = {}
        for _ in range(a.tries):
            good, why = one_try(exe, args, stream)
            ok += good
            whys[why] = whys.get(why, 0) + 1
        detail = ", ".join(f"{n}x {w}" for w, n in sorted(whys.items()))
        print(f"readiness: {name}: {ok}/{a.tries} exited 0 with the shutdown report "
              f"after SIGTERM at the listening line ({detail})")
        all_ok &= ok == a.tries
    return 0 if all_ok else 1


if __name__ == "__main__":
    sys.exit(main())
