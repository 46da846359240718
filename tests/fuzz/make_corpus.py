#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Writes the seed corpus of fuzz_api.c (tests/fuzz/corpus/).

Each seed is a small program in fuzz_api.c's bytecode (its header comment
is the reference): two config bytes, then the driver's ops. Spawn and
at-shutdown bodies are nested programs. Run from anywhere:

    python3 tests/fuzz/make_corpus.py [outdir]
"""
import os
import sys

OPS = [
    "nop", "sleep", "read", "write", "recv", "send", "poll", "close",
    "spawn", "cancel", "cancel_all", "shield_begin", "shield_end", "yield",
    "join", "detach", "at_shutdown", "shutdown", "wait_shutdown", "misc",
    "return", "cancel_self", "fsync", "task_result",
    "scope_enter", "scope_exit", "scope_cancel", "scope_move", "scope_leave",
]
OP = {name: i for i, name in enumerate(OPS)}

# Endpoints (mod 8).
P0R, P0W, P1R, P1W, S0, S1, MFD, BAD = range(8)
# Spawn flag bits.
LATE, SELF_ENGINE_NULL, DETACHED = 0x01, 0x02, 0x80
STACK_16K, STACK_8K, STACK_ODD, BAD_FLAG = 0x04, 0x08, 0x0C, 0x10
# Cancel-all flag bits.
CA_WAIT, CA_EXCEPT, CA_BADFLAG, CA_NULLEXCEPT = 0x01, 0x02, 0x04, 0x08
# Scope-enter flag bits, scope-exit flag bits.
SC_SHIELD, SC_BADFLAG, SC_REENTER = 0x01, 0x02, 0x04
SX_OUT_OF_ORDER = 0x01
RAW_LEVEL = 0x80  # scope_cancel/scope_move: l & 0x7f, not mod the depth


def dl_none():
    return 0


def dl_passed(us=1):
    return 1 | ((us & 63) << 2)


def dl_near(units32us):
    """(units32us * 32) us ahead, 0..63 units (0-2 ms)."""
    return 2 | ((units32us & 63) << 2)


def dl_far():
    return 3


def cfg(sq=3, grace=1, kill=1, again=False, drain=0, tiny_cq=False):
    """The two header bytes. sq: index into {1,2,4,8,16,8,16,4};
    grace: into {0,2,5,10} ms; kill: into {0,1,3,5} ms; drain: into
    {0,0,1,2} ms."""
    b0 = (sq & 7) | ((grace & 3) << 3) | ((kill & 3) << 5) | (0x80 if again else 0)
    b1 = (drain & 3) | (0x04 if tiny_cq else 0)
    return bytes([b0, b1])


def op(name, *args):
    return bytes([OP[name], *args])


def spawn(flags, body):
    assert len(body) <= 48, len(body)
    return bytes([OP["spawn"], flags, len(body)]) + body


def hook(body, null_too=False):
    assert len(body) <= 32, len(body)
    return bytes([OP["at_shutdown"], len(body) | (0x80 if null_too else 0)]) + body


def prog(*parts):
    return b"".join(parts)


SEEDS = {
    # Every plain op once, on the driver.
    "ops_basic": cfg() + prog(
        op("nop"), op("sleep", 10), op("write", P0W, 8, 0), op("read", P0R, 8, 0),
        op("send", S0, 5, 0), op("recv", S1, 5, 0), op("poll", P0W, 1),
        op("close", P1R), op("close", BAD), op("fsync", MFD), op("yield"),
        op("write", MFD, 16, 1), op("read", MFD, 16, 1), op("misc", 0)),
    # Error paths: wrong ends, fd -1, recv on a pipe, G7 probes.
    "ops_errors": cfg(sq=0) + prog(
        op("read", P0W, 4, 0), op("write", P0R, 4, 0), op("read", BAD, 4, 0),
        op("recv", P0R, 4, 0), op("send", MFD, 4, 0), op("poll", BAD, 0),
        op("fsync", P0R), op("fsync", BAD), op("shield_end"), op("misc", 1),
        op("misc", 2), op("misc", 3), op("misc", 4), op("misc", 5),
        op("join", 3, 0), op("detach", 3), op("cancel", 3), op("task_result", 3)),
    # A worker parked on an empty pipe, joined, cancelled by the driver.
    "cancel_parked_read": cfg() + prog(
        spawn(0, op("read", P0R, 8, 0) + op("nop")),
        op("yield"), op("yield"), op("cancel", 0), op("join", 0, 0)),
    # A worker reads what the driver writes (real results win races).
    "read_write_race": cfg(sq=1) + prog(
        spawn(0, op("read", P1R, 4, 0) + op("read", P1R, 4, 0)),
        op("yield"), op("write", P1W, 6, 0), op("cancel", 0), op("write", P1W, 3, 0),
        op("join", 0, 0)),
    # Shields: a shielded worker keeps doing I/O after its cancel.
    "shield_io": cfg(grace=2) + prog(
        spawn(0, op("shield_begin") + op("sleep", 50) + op("send", S0, 7, 0) +
              op("recv", S0, 7, 0) + op("shield_end") + op("shield_end") + op("nop")),
        op("yield"), op("cancel", 0), op("recv", S1, 7, 0), op("send", S1, 7, 0),
        op("join", 0, 0)),
    # cancel_all with and without WAIT, with an exception and bad arguments.
    "cancel_all": cfg() + prog(
        spawn(0, op("sleep", 200)), spawn(DETACHED, op("poll", P0R, 0)),
        spawn(LATE, op("wait_shutdown") + op("nop")),
        op("yield"), op("cancel_all", CA_EXCEPT, 2), op("cancel_all", CA_BADFLAG | CA_NULLEXCEPT, 0),
        op("cancel_all", CA_WAIT | CA_EXCEPT, 2), op("join", 0, 1)),
    # Join / detach bookkeeping; two tasks join the same handle.
    "join_detach": cfg() + prog(
        spawn(0, op("sleep", 20) + op("return", 1)),
        spawn(0, op("join", 0, 0) + op("return", 3)),
        spawn(0, op("misc", 1) + op("detach", 2)),
        op("yield"), op("join", 0, 0), op("detach", 1), op("task_result", 1)),
    # Hooks that do I/O, spawn and register more hooks.
    "at_shutdown": cfg(grace=1) + prog(
        hook(op("write", P0W, 3, 0) + op("read", P0R, 3, 0) + op("misc", 0)),
        hook(op("nop") + hook(op("sleep", 5) + op("return", 3)), null_too=True),
        op("shutdown", 1), op("yield"), op("nop")),
    # Spawn options: LATE, bad stack sizes, bad flags, names, e = NULL.
    "spawn_opts": cfg() + prog(
        spawn(LATE | STACK_16K, op("yield") + op("nop")),
        spawn(STACK_8K, op("nop")), spawn(BAD_FLAG, op("nop")),
        spawn(STACK_ODD | SELF_ENGINE_NULL | 0x40, op("sleep", 1)),
        spawn(DETACHED | 0x60, op("spawn", 0, 2, OP["yield"], OP["nop"])),
        op("yield"), op("join", 0, 0), op("join", 1, 0)),
    # Shutdown mid-program: later spawns start cancelled; wait_shutdown.
    "shutdown_mid": cfg(drain=2) + prog(
        spawn(0, op("wait_shutdown") + op("write", P0W, 2, 0)),
        op("yield"), op("shutdown", 0), op("yield"),
        spawn(0, op("nop") + op("shield_begin") + op("nop")), op("join", 1, 0)),
    # A shielded worker stuck on a read: the grace period breaks it; kill.
    "grace_kill": cfg(grace=0, kill=0) + prog(
        spawn(0, op("shield_begin") + op("read", P1R, 8, 0) + op("yield") * 8),
        spawn(DETACHED, op("shield_begin") + op("poll", S0, 0) + op("nop")),
        op("yield"), op("shutdown", 0), op("nop")),
    # A tiny SQ and CQ: many ops in flight at once, cancelled together.
    "sq_full": cfg(sq=0, tiny_cq=True) + prog(
        *[spawn(DETACHED, op("read", P0R, 1, 0)) for _ in range(6)],
        op("yield"), op("yield"), op("cancel_all", CA_WAIT, 0)),
    # The driver is cancelled by its own worker; G4 on every later call.
    "self_cancel": cfg() + prog(
        op("cancel_self"), op("nop"), op("yield"), op("sleep", 1), op("read", P0R, 3, 0),
        op("close", P0R), op("shield_begin"), op("nop"), op("shield_end"), op("join", 0, 0),
        op("wait_shutdown")),
    # A second tr_engine_run after the shutdown finished.
    "second_run": cfg(again=True) + prog(op("nop"), spawn(0, op("nop")), op("detach", 0)),
    # Blocked forever until the backstop fires: join cycle and a parked poll.
    "backstop": cfg() + prog(
        spawn(0, op("join", 1, 0)), spawn(0, op("join", 0, 0)),
        op("poll", P1R, 0)),
    # Scopes: a passed deadline (level-triggered, nothing submitted), a
    # near one ending a parked read, a far one cutting nothing.
    "scope_basic": cfg() + prog(
        op("scope_enter", 0, dl_passed(5)), op("nop"), op("sleep", 10), op("scope_exit", 0),
        op("scope_enter", 0, dl_near(20)), op("read", P0R, 8, 0), op("yield"), op("scope_exit", 0),
        op("scope_enter", 0, dl_far()), op("write", P0W, 4, 0), op("read", P0R, 4, 0),
        op("scope_exit", 0), op("nop")),
    # Nesting and shields: a shield scope's own deadline under the task's
    # cancellation; a tr_shield_begin inside a scope; exits report their own.
    "scope_nesting": cfg(grace=2) + prog(
        op("scope_enter", 0, dl_far()), op("scope_enter", SC_SHIELD, dl_near(10)),
        op("cancel_self"), op("nop"), op("sleep", 200), op("scope_exit", 0),
        op("nop"), op("scope_enter", 0, dl_passed(1)), op("shield_begin"), op("nop"),
        op("scope_exit", 0), op("shield_end"), op("scope_exit", SX_OUT_OF_ORDER),
        op("scope_exit", 0), op("nop")),
    # Another task cancels the driver's scope while it waits in a read, and
    # moves a worker's deadline into the past while it sleeps.
    "scope_cross": cfg() + prog(
        spawn(0, op("scope_enter", 0, dl_far()) + op("sleep", 250) + op("nop") +
              op("scope_exit", 0)),
        spawn(0, op("yield") + op("scope_cancel", 0, 1) + op("scope_move", 1, 0, dl_passed(3)) +
              op("scope_move", 1, 0, dl_none())),
        op("scope_enter", 0, dl_far()), op("scope_enter", 0, dl_none()),
        op("read", P1R, 8, 0), op("nop"), op("scope_exit", 0), op("scope_exit", 0),
        op("join", 0, 0), op("join", 1, 0)),
    # Deadlines moved earlier, later and away; a join racing a deadline.
    "scope_move": cfg() + prog(
        spawn(0, op("sleep", 240)),
        op("scope_enter", 0, dl_far()), op("scope_move", 0, 0, dl_near(30)),
        op("scope_move", 0, 0, dl_far()), op("scope_move", 0, 0, dl_near(31)),
        op("join", 0, 0), op("scope_move", 0, 0, dl_none()), op("nop"), op("scope_exit", 0),
        op("join", 0, 0)),
    # G10: tasks (and a hook) that end inside scopes; misuse gets -EINVAL.
    "scope_leave": cfg() + prog(
        spawn(0, op("scope_enter", SC_BADFLAG, dl_near(40)) + op("scope_enter", SC_REENTER, dl_far()) +
              op("scope_leave") + op("return", 0)),
        hook(op("scope_enter", 0, dl_near(1)) + op("scope_leave") + op("nop")),
        op("scope_exit", 0), op("scope_cancel", 9, RAW_LEVEL | 3), op("scope_move", 9, RAW_LEVEL | 3, 1),
        op("scope_enter", 0, dl_far()), op("shield_begin"), op("scope_exit", 0), op("shield_end"),
        op("scope_enter", 0, dl_none()), op("shield_end"), op("scope_exit", 0), op("scope_exit", 0),
        op("join", 0, 0)),
    # MSG_WAITALL and MSG_DONTWAIT on the socket pair.
    "sock_flags": cfg(sq=2) + prog(
        spawn(0, op("recv", S1, 10, 2)), op("recv", S0, 4, 1), op("send", S0, 4, 1),
        op("yield"), op("send", S0, 6, 0), op("join", 0, 0), op("recv", S1, 32, 1)),
}


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(here, "corpus")
    os.makedirs(out, exist_ok=True)
    for name, data in sorted(SEEDS.items()):
        with open(os.path.join(out, name), "wb") as f:
            f.write(data)
    print(f"{len(SEEDS)} seeds in {out}")


if __name__ == "__main__":
    main()
