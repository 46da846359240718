#!/bin/sh
# SPDX-License-Identifier: MIT
# Description: taskring-stress's command line: --help prints the usage on
# stdout and exits 0, --version prints TR_VERSION_MAJOR.MINOR and exits 0,
# invalid values, missing values, unknown options and stray arguments are
# refused with a message on stderr and exit 2, before any round runs.
# Usage: stress_cli.sh <taskring-stress> <include/taskring.h>
set -u
bin="$1"
header="$2"
fails=0

# expect <status> <stdout pattern> <stderr pattern> -- args...
expect() {
    want="$1" out_pat="$2" err_pat="$3"
    shift 4
    out=$("$bin" "$@" 2>/tmp/stress_cli.$$) && rc=0 || rc=$?
    err=$(cat /tmp/stress_cli.$$)
    rm -f /tmp/stress_cli.$$
    ok=1
    [ "$rc" -eq "$want" ] || ok=0
    printf '%s\n' "$out" | grep -Eq -- "$out_pat" || ok=0
    printf '%s\n' "$err" | grep -Eq -- "$err_pat" || ok=0
    if [ $ok -eq 1 ]; then
        echo "ok: taskring-stress $* -> $rc"
    else
        echo "FAILED: taskring-stress $*: status $rc (want $want)"
        echo "  stdout: $out"
        echo "  stderr: $err"
        fails=$((fails + 1))
    fi
}

major=$(sed -n 's/^#define TR_VERSION_MAJOR \([0-9]*\).*/\1/p' "$header")
minor=$(sed -n 's/^#define TR_VERSION_MINOR \([0-9]*\).*/\1/p' "$header")

expect 0 '^usage: taskring-stress' '^$' -- --help
expect 0 '^usage: taskring-stress' '^$' -- -h
expect 0 "^taskring-stress $major\\.$minor\$" '^$' -- --version
for bad in -1 0 abc 1x '' 604801 99999999999999999999; do
    expect 2 '^$' "--seconds: '$bad' is not" -- --seconds "$bad"
done
expect 2 '^$' "--seconds: '-1' is not" -- --seconds=-1
for bad in -5 0x 12x '' 18446744073709551616; do
    expect 2 '^$' "--seed: '$bad' is not" -- --seed "$bad"
done
expect 2 '^$' '--seconds needs a value' -- --seconds
expect 2 '^$' '--seed needs a value' -- --seed
expect 2 '^$' "unknown option '--bogus'" -- --bogus
expect 2 '^$' "unexpected argument 'extra'" -- --seconds 1 extra

[ $fails -eq 0 ] && echo "all command-line checks passed"
exit $((fails > 0))
