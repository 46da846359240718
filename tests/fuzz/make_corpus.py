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
    "sem", "mutex", "cond", "event", "chan", "group",
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

# Primitives and groups (fuzz_sync.c): the sub-op byte of each.
SEM_INIT, SEM_ACQ, SEM_TRY, SEM_REL, SEM_MISUSE, SEM_QUICK = 0, 1, 3, 4, 6, 7
MTX_INIT, MTX_LOCK, MTX_TRY, MTX_UNLOCK, MTX_MISUSE = 0, 1, 3, 4, 6
CV_INIT, CV_WAIT, CV_SIGNAL, CV_BCAST, CV_MISUSE = 0, 1, 3, 4, 5
EV_INIT, EV_SET, EV_CLEAR, EV_WAIT, EV_MISUSE = 0, 1, 2, 3, 5
CH_CREATE, CH_SEND, CH_TRYSEND, CH_RECV, CH_TRYRECV, CH_END = 0, 1, 3, 4, 6, 7
CH_SHARED, CH_ELEM0, CH_NULLOUT = 0x04, 0x08, 0x10  # create: refused first
CH_DESTROY = 0x01  # CH_END: destroy (else close)
G_INIT, G_SPAWN, G_CANCEL, G_WAIT, G_FAILURES, G_MISUSE = 0, 1, 3, 4, 5, 6
GS_LATE, GS_NOFN, GS_16K = 0x01, 0x02, 0x04


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


def sem(sub, k=0):
    return bytes([OP["sem"], sub, k])


def mutex(sub):
    return bytes([OP["mutex"], sub])


def cond(sub):
    return bytes([OP["cond"], sub])


def event(sub):
    return bytes([OP["event"], sub])


def chan(ch, sub, a=0):
    return bytes([OP["chan"], (sub << 1) | (ch & 1), a])


def gspawn(flags, body):
    assert len(body) <= 48, len(body)
    return bytes([OP["group"], G_SPAWN, flags, len(body)]) + body


def group(sub, *args):
    return bytes([OP["group"], sub, *args])


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
    # Semaphore of 1: a worker waits for the unit the driver holds, another
    # is cut short by a deadline (took nothing); misuse; a second init
    # while one waits (-EBUSY).
    "sync_sem": cfg() + prog(
        sem(SEM_MISUSE), sem(SEM_ACQ), sem(SEM_INIT, 1), sem(SEM_ACQ), sem(SEM_TRY),
        spawn(0, sem(SEM_ACQ) + op("yield") + sem(SEM_REL)),
        spawn(0, op("scope_enter", 0, dl_near(2)) + sem(SEM_ACQ) + op("scope_exit", 0)),
        op("yield"), sem(SEM_INIT, 2), op("sleep", 40), sem(SEM_REL), sem(SEM_QUICK),
        op("join", 0, 0), op("join", 1, 0), sem(SEM_TRY), sem(SEM_REL)),
    # Mutex and condition: a waiter cut short returns with the mutex held;
    # relock -EDEADLK, unlock by a non-owner -EPERM, init of a held one
    # -EBUSY, a wait without the mutex -EPERM.
    "sync_mutex_cond": cfg() + prog(
        mutex(MTX_LOCK), mutex(MTX_INIT), cond(CV_INIT), cond(CV_WAIT), mutex(MTX_LOCK),
        mutex(MTX_LOCK), mutex(MTX_TRY), mutex(MTX_INIT),
        spawn(0, mutex(MTX_UNLOCK) + mutex(MTX_LOCK) + cond(CV_WAIT) + mutex(MTX_UNLOCK)),
        spawn(0, op("scope_enter", 0, dl_near(3)) + mutex(MTX_LOCK) + cond(CV_WAIT) +
              op("scope_exit", 0) + mutex(MTX_UNLOCK)),
        mutex(MTX_UNLOCK), op("yield"), op("yield"), cond(CV_SIGNAL), op("sleep", 30),
        cond(CV_BCAST), cond(CV_MISUSE), mutex(MTX_MISUSE), op("join", 0, 0), op("join", 1, 0)),
    # Channels: a rendezvous and a buffered one, numbered messages, a
    # receiver cancelled while it waits, close (senders -EPIPE, receivers
    # drain then -EPIPE), destroy while waited on (-EBUSY).
    "sync_chan": cfg() + prog(
        chan(0, CH_SEND), chan(0, CH_CREATE, CH_SHARED | CH_ELEM0 | CH_NULLOUT | 0),
        chan(1, CH_CREATE, 2),
        spawn(0, chan(0, CH_RECV) + chan(0, CH_RECV) + chan(1, CH_RECV) + chan(1, CH_RECV) +
              chan(1, CH_RECV)),
        spawn(0, chan(0, CH_RECV)),
        op("yield"), chan(0, CH_SEND), chan(0, CH_TRYSEND), chan(1, CH_SEND), chan(1, CH_SEND),
        chan(1, CH_TRYSEND), chan(0, CH_END, CH_DESTROY), op("cancel", 1), op("yield"),
        chan(0, CH_SEND), chan(1, CH_END), chan(1, CH_SEND), chan(1, CH_END), chan(1, CH_TRYRECV),
        op("join", 0, 0), op("join", 1, 0), chan(0, CH_END, CH_DESTROY), chan(0, CH_SEND)),
    # An event: waiters woken by a set, one cut short; clear, misuse.
    "sync_event": cfg() + prog(
        event(EV_WAIT), event(EV_INIT),
        spawn(0, event(EV_WAIT) + event(EV_WAIT)),
        spawn(0, op("scope_enter", 0, dl_near(1)) + event(EV_WAIT) + op("scope_exit", 0)),
        op("yield"), event(EV_INIT), op("sleep", 30), event(EV_SET), event(EV_CLEAR),
        event(EV_MISUSE), op("join", 0, 0), op("join", 1, 0)),
    # A group: a child fails for real (-EIO), the rest are cancelled, a
    # spawn into the cancelling group is refused, the wait returns the
    # failure; calls by a non-owner -EPERM; a done group -EINVAL.
    "sync_group": cfg() + prog(
        group(G_WAIT), group(G_INIT), group(G_INIT), group(G_SPAWN, GS_LATE, 0),
        group(G_SPAWN, GS_NOFN, 0),
        gspawn(0, op("sleep", 200) + op("nop")),
        gspawn(GS_16K, op("yield") + op("return", 3)),
        gspawn(0, group(G_MISUSE, 0) + group(G_FAILURES, 0, 8) + op("sleep", 250)),
        op("yield"), op("yield"), group(G_FAILURES, 0, 8),
        gspawn(0, op("nop")), group(G_WAIT), group(G_FAILURES, 0, 8), group(G_WAIT),
        group(G_CANCEL, 0), group(G_INIT), gspawn(0, op("return", 2)), group(G_CANCEL, 0),
        gspawn(0, op("nop")), group(G_WAIT)),
    # A group inside a scope whose deadline passes: its children are
    # cancelled (no failure), the owner's wait still waits for them all
    # and returns -ETIMEDOUT; the scope could not be left before.
    "sync_group_scope": cfg() + prog(
        op("scope_enter", 0, dl_near(8)), group(G_INIT), op("scope_exit", 0),
        gspawn(0, op("sleep", 250) + op("nop")),
        gspawn(0, op("shield_begin") + op("sleep", 100) + op("shield_end") + op("return", 2)),
        group(G_WAIT), group(G_FAILURES, 0, 8), op("scope_exit", 0), op("nop")),
    # The kill rung among primitives: a shielded receiver and a shielded
    # owner whose children hold the semaphore and the mutex, a shutdown
    # with no grace, children killed before their owner (G10).
    "sync_kill": cfg(grace=0, kill=0) + prog(
        sem(SEM_INIT, 1), mutex(MTX_INIT), chan(0, CH_CREATE, 0),
        spawn(0, op("shield_begin") + chan(0, CH_RECV) + chan(0, CH_RECV) + op("yield") * 4),
        spawn(0, op("shield_begin") + group(G_INIT) +
              gspawn(0, op("shield_begin") + sem(SEM_ACQ) + mutex(MTX_LOCK) + op("sleep", 250)) +
              gspawn(0, op("shield_begin") + mutex(MTX_LOCK) + op("sleep", 250)) +
              group(G_WAIT)),
        op("yield"), chan(0, CH_SEND), op("shutdown", 0), chan(0, CH_SEND), op("nop")),
    # An owner that returns without waiting: the engine cancels and waits
    # for its children (groups_abandoned), its struct no longer live.
    "sync_group_abandon": cfg() + prog(
        spawn(0, group(G_INIT) + gspawn(0, op("sleep", 100)) + gspawn(0, op("nop"))),
        op("yield"), op("yield"), group(G_CANCEL, 1), group(G_FAILURES, 1, 8), op("sleep", 60),
        group(G_CANCEL, 1), op("join", 0, 0)),
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
