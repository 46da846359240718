#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Description: taskring-fanout (tools/fanout.c) end to end on loopback, in
# three runs of the server, each stopped by SIGTERM with exit status 0, the
# engine's report (quiescent, no task failed or killed) and exact counts:
#   1. every backend answers: pipelined lines are answered in order, each
#      answer holding every backend's part in backend order; 5 connections
#      at once through 2 workers (2 served, 2 queued, the rest waiting) are
#      all answered; a line too long is refused.
#   2. the last backend is an hour late, the deadline 50 ms: "timeout".
#   3. the first backend hangs up, the last is an hour late and so is the
#      deadline: the answer is the failure, so it cancelled the slow sibling.
# No sleeps: a run waits for the readiness line, an answer is a blocking
# read of a line, and every wait is bounded (10 s). No timing assertions.
# Usage: fanout_check.sh <taskring-fanout>
set -u
bin="$1"
tmp=$(mktemp -d)
pid=""
fails=0
cleanup() {
    [[ -n $pid ]] && kill -KILL "$pid" 2>/dev/null
    rm -rf "$tmp"
}
trap cleanup EXIT

check() { # check <what> <got> <want>
    if [[ $2 == "$3" ]]; then
        echo "ok: $1: $2"
    else
        echo "FAILED: $1: got '$2', want '$3'"
        fails=$((fails + 1))
    fi
}

# start ARGS...: the server on an ephemeral port, its stdout on fd $out;
# returns when it printed its readiness line (sets port), 1 if it did not.
start() {
    rm -f "$tmp/out"
    mkfifo "$tmp/out"
    "$bin" --port 0 "$@" >"$tmp/out" 2>"$tmp/err" &
    pid=$!
    exec {out}<"$tmp/out"
    local line=""
    IFS= read -r -t 10 line <&"$out"
    if [[ $line =~ listening\ on\ 127\.0\.0\.1:([0-9]+) ]]; then
        port=${BASH_REMATCH[1]}
        echo "ok: started $*: $line"
        return 0
    fi
    echo "FAILED: $*: no readiness line (got '$line')"
    fails=$((fails + 1))
    return 1
}

# connect: a connection to the server on fd $c; 1 (a failed case) if refused.
connect() {
    exec {c}<>"/dev/tcp/127.0.0.1/$port" && return 0
    echo "FAILED: connect to 127.0.0.1:$port"
    fails=$((fails + 1))
    return 1
}

# ask <fd> <line>: sends a line on a connection, sets $answer to the reply
# ("<none>" when none came in 10 s or the connection ended).
ask() {
    printf '%s\n' "$2" >&"$1"
    answer="<none>"
    IFS= read -r -t 10 answer <&"$1" || answer="<none>"
}

# stop <counts>: SIGTERM, then the exit status, the report and the counts.
stop() {
    kill -TERM "$pid"
    local line last="" st=0 n=0
    # Up to the EOF of the server's stdout (its exit); bounded by 100 lines.
    while ((n < 100)); do
        IFS= read -r -t 10 line <&"$out" || { st=$?; break; }
        last=$line
        n=$((n + 1))
    done
    exec {out}<&-
    if ((st > 128)); then
        echo "FAILED: no exit within 10 s of SIGTERM"
        kill -KILL "$pid"
    fi
    wait "$pid"
    check "exit status after SIGTERM" "$?" 0
    pid=""
    check "counts" "$last" "taskring-fanout: $1"
    local pat
    for pat in 'shutdown report \(trigger: signal TERM' 'tasks ended: .* 0 failed, 0 killed' \
        'audit: 0 tasks live, 0 ops in flight: quiescent'; do
        check "report /$pat/" "$(grep -cE -- "$pat" "$tmp/err")" 1
    done
}

run_normal() {
    start --backends 3 --workers 2 || return
    connect || { stop "-"; return; }
    printf 'hello\nworld\n\n' >&"$c" # pipelined: answered in order
    for want in hello world ""; do
        IFS= read -r -t 10 answer <&"$c" || answer="<none>"
        check "pipelined '$want'" "$answer" "ok b0($want) b1($want) b2($want)"
    done
    exec {c}>&-
    # More connections than workers and queue: each is answered once the
    # ones before it have closed (the pool takes them in order).
    local conns=() i
    for i in 1 2 3 4 5; do
        connect || break
        conns+=("$c")
        printf 'conn%s\n' "$i" >&"$c"
    done
    for i in "${!conns[@]}"; do
        c=${conns[$i]}
        IFS= read -r -t 10 answer <&"$c" || answer="<none>"
        check "connection $((i + 1)) of 5, 2 workers" "$answer" \
            "ok b0(conn$((i + 1))) b1(conn$((i + 1))) b2(conn$((i + 1)))"
        exec {c}>&-
    done
    if connect; then
        ask "$c" "$(printf 'x%.0s' {1..300})"
        check "a line too long" "$answer" "error request too long"
        exec {c}>&-
    fi
    stop "7 connections, 8 requests: 8 ok, 0 timed out, 0 failed"
}

run_deadline() {
    start --backend-delay-ms 3600000 --deadline-ms 50 || return
    if connect; then
        ask "$c" "slow"
        check "deadline" "$answer" "timeout 50 ms"
        ask "$c" "again"
        check "deadline, same connection" "$answer" "timeout 50 ms"
        exec {c}>&-
    fi
    stop "1 connections, 2 requests: 0 ok, 2 timed out, 0 failed"
}

run_failure() {
    start --backend-fail --backend-delay-ms 3600000 --deadline-ms 3600000 || return
    if connect; then
        ask "$c" "doomed"
        check "failure cancels the slow sibling" "$answer" "error backend-0: Protocol error"
        exec {c}>&-
    fi
    stop "1 connections, 1 requests: 0 ok, 0 timed out, 1 failed"
}

run_normal
run_deadline
run_failure
echo "fanout_check: $fails failed"
((fails == 0))
