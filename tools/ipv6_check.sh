#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# tools/ipv6_check.sh — both servers on an IPv6 literal, checked with
# outside clients: taskring-http --addr ::1 with `curl -6`, taskring-echo
# --addr ::1 with socat (or nc), and taskring-load --addr ::1 against it.
# Then each server gets SIGTERM and must exit 0. Prints one line per check;
# exit status 1 if any failed, 77 if curl or socat/nc is missing (skipped).
# IPV6_CLIENT=nc picks nc (netcat-openbsd) over socat.
#
#   tools/ipv6_check.sh [BIN_DIR]   (default: build/tools)
#
# Bounded: every wait has a timeout (5 s at most).
set -uo pipefail
BIN="${1:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/build/tools}"
command -v curl >/dev/null || { echo "ipv6: curl missing, skipped"; exit 77; }
tool="${IPV6_CLIENT:-}" # socat or nc; default: socat if installed
if [[ -z $tool ]]; then
    command -v socat >/dev/null && tool=socat || tool=nc
fi
if ! command -v "$tool" >/dev/null; then
    echo "ipv6: neither socat nor nc, skipped"
    exit 77
fi
tmp=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null; rm -rf "$tmp"' EXIT
fail=0
check() { # check <what> <ok?>
    if [[ $2 == 1 ]]; then echo "ipv6: ok: $1"; else echo "ipv6: FAILED: $1"; fail=1; fi
}
# wait_port <file>: the port of the "listening on [::1]:PORT" line, within 5 s.
wait_port() {
    for _ in $(seq 100); do
        p=$(sed -n 's/.*listening on \[::1\]:\([0-9]*\).*/\1/p' "$1" | head -1)
        [[ -n $p ]] && { echo "$p"; return 0; }
        sleep 0.05
    done
    return 1
}
stop() { # stop <pid> <name>
    kill -TERM "$1"
    local rc=0
    timeout 10 tail --pid="$1" -f /dev/null
    wait "$1" || rc=$?
    check "$2 exits 0 after SIGTERM (status $rc)" "$((rc == 0))"
}

"$BIN/taskring-http" --addr ::1 --port 0 2>"$tmp/http.err" &
hp=$!
port=$(wait_port "$tmp/http.err") || { echo "ipv6: taskring-http never listened:"; cat "$tmp/http.err"; exit 1; }
body=$(curl -6 -s -m 5 "http://[::1]:$port/")
check "curl -6 http://[::1]:$port/ -> '$body'" "$([[ $body == 'Hello, world!' ]] && echo 1 || echo 0)"
code=$(curl -6 -s -m 5 -o /dev/null -w '%{http_code}' -X POST "http://[::1]:$port/")
check "curl -6 -X POST http://[::1]:$port/ -> $code" "$([[ $code == 405 ]] && echo 1 || echo 0)"
v4=$(curl -4 -s -m 2 "http://127.0.0.1:$port/" 2>/dev/null)
check "nothing on 127.0.0.1:$port (it listens on ::1 only)" "$([[ -z $v4 ]] && echo 1 || echo 0)"
stop $hp taskring-http

"$BIN/taskring-echo" --addr ::1 --port 0 >"$tmp/echo.out" 2>"$tmp/echo.err" &
ep=$!
port=$(wait_port "$tmp/echo.out") || { echo "ipv6: taskring-echo never listened:"; cat "$tmp/echo.out"; exit 1; }
if [[ $tool == socat ]]; then
    got=$(printf 'hello over ipv6\n' | timeout 5 socat -t 1 - "TCP6:[::1]:$port")
    how="socat TCP6:[::1]:$port"
else
    got=$(printf 'hello over ipv6\n' | timeout 5 nc -6 -q 1 ::1 "$port")
    how="nc -6 ::1 $port"
fi
check "$how echoed '$got'" "$([[ $got == 'hello over ipv6' ]] && echo 1 || echo 0)"
load=$(timeout 10 "$BIN/taskring-load" --addr ::1 --port "$port" --conns 20 --seconds 1 | tail -1)
check "taskring-load --addr ::1: $load" "$([[ $load == *"0 mismatches"* && $load == *"20 stopped by us, 0 failed"* ]] && echo 1 || echo 0)"
stop $ep taskring-echo
grep -h "reset by peer" "$tmp/echo.out" | sed 's/^/ipv6:   /'
exit $fail
