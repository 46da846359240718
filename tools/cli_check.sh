#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# tools/cli_check.sh — every tool keeps the command-line conventions
# (tools/cli.h): --help prints usage on stdout and exits 0, --version
# prints "<tool> MAJOR.MINOR" (taskring.h) and exits 0, a bad value, an
# unknown option or a stray argument is refused on stderr with exit 2 — and
# none of them starts serving. Prints one line per case and a tally; exit
# status 1 if any case failed.
#
#   tools/cli_check.sh [BIN_DIR]   (default: build/tools)
#
# Bounded: every run has a 5 s timeout (a tool that starts serving instead
# of refusing is killed there and fails its case).
set -uo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BIN="${1:-$ROOT/build/tools}"
major=$(sed -n 's/^#define TR_VERSION_MAJOR \([0-9]*\)/\1/p' "$ROOT/include/taskring.h")
minor=$(sed -n 's/^#define TR_VERSION_MINOR \([0-9]*\)/\1/p' "$ROOT/include/taskring.h")
pass=0
fail=0
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# case <want-status> <stdout-pattern|-> <stderr-pattern|-> <tool> [args...]
case_() {
    local want=$1 outpat=$2 errpat=$3 tool=$4
    shift 4
    local rc=0
    timeout 5 "$BIN/$tool" "$@" >"$tmp/out" 2>"$tmp/err" </dev/null || rc=$?
    local ok=1 why=""
    [[ $rc == "$want" ]] || { ok=0; why="status $rc, want $want"; }
    if [[ $outpat == - ]]; then
        [[ -s $tmp/out ]] && { ok=0; why+=" stdout not empty"; }
    elif ! grep -qE -- "$outpat" "$tmp/out"; then
        ok=0
        why+=" stdout lacks /$outpat/"
    fi
    if [[ $errpat == - ]]; then
        [[ -s $tmp/err ]] && { ok=0; why+=" stderr not empty"; }
    elif ! grep -qE -- "$errpat" "$tmp/err"; then
        ok=0
        why+=" stderr lacks /$errpat/"
    fi
    if ((ok)); then
        pass=$((pass + 1))
        local shown="$tmp/err"
        [[ -s $shown ]] || shown="$tmp/out"
        printf 'cli: ok: %s %s -> %s: %s\n' "$tool" "$*" "$rc" "$(head -1 "$shown")"
    else
        fail=$((fail + 1))
        printf 'cli: FAILED: %s %s:%s\n' "$tool" "$*" "$why"
    fi
}

for t in taskring-echo taskring-http taskring-load taskring-demo taskring-fanout; do
    case_ 0 "^usage: $t \[options\]" - $t --help
    case_ 0 "^$t $major\.$minor\$" - $t --version
    case_ 2 - "unknown option '--bogus'" $t --bogus
    case_ 2 - "unexpected argument 'extra'" $t extra
done
for t in taskring-echo taskring-http taskring-load taskring-fanout; do
    case_ 2 - "--port: not a decimal number" $t --port abc
    case_ 2 - "--port: out of range" $t --port 99999
    case_ 2 - "--port: not a decimal number" $t --port=-1
    case_ 2 - "--port needs a value" $t --port
done
for t in taskring-echo taskring-http taskring-load; do
    case_ 2 - "--addr: not an IPv4 or IPv6" $t --addr localhost --port 1
done
case_ 2 - "missing --port" taskring-http
case_ 2 - "--grace-ms: not a decimal number" taskring-echo --grace-ms 5s
case_ 2 - "--kill-ms: out of range" taskring-echo --kill-ms 99999999999
case_ 2 - "takes no value" taskring-echo --stubborn=1
case_ 2 - "--idle-timeout-ms: not a decimal number" taskring-echo --idle-timeout-ms 1s
case_ 2 - "--idle-timeout-ms: out of range" taskring-echo --idle-timeout-ms 3600001
case_ 2 - "--header-timeout-ms: not a decimal number" taskring-http --port 0 --header-timeout-ms=-1
case_ 2 - "--header-timeout-ms needs a value" taskring-http --port 0 --header-timeout-ms
case_ 2 - "--idle-timeout-ms: out of range" taskring-http --port 0 --idle-timeout-ms 99999999999
case_ 2 - "--conns: out of range" taskring-load --conns 0
case_ 2 - "--seconds: not a decimal number" taskring-load --seconds 1.5
case_ 2 - "--backends: out of range" taskring-fanout --backends 9
case_ 2 - "--workers: out of range" taskring-fanout --workers 0
case_ 2 - "--deadline-ms: not a decimal number" taskring-fanout --deadline-ms 1s
case_ 2 - "takes no value" taskring-fanout --backend-fail=1
echo "cli: $pass cases passed, $fail failed"
((fail == 0))
