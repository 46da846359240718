#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The shared library's thread-locals use the initial-exec model (base.h,
# TR_TLS): no dynamic TLS relocation (DTPMOD/DTPOFF, TLS descriptors) and
# no call to __tls_get_addr, which the default PIC model makes at every
# read of tr__current (every blocking call) and which a SIGSEGV handler
# must not make. Usage: tls_check.sh path/to/libtaskring.so
set -euo pipefail
lib="$1"
relocs=$(readelf -rW "$lib")
if grep -Eq 'DTPMOD|DTPOFF|TLSDESC|TLS_DTP' <<<"$relocs"; then
    echo "tls_check: $lib has dynamic TLS relocations:" >&2
    grep -E 'DTPMOD|DTPOFF|TLSDESC|TLS_DTP' <<<"$relocs" >&2
    exit 1
fi
syms=$(readelf -sW --dyn-syms "$lib") # not a pipe into grep -q: SIGPIPE under pipefail
if grep -q '__tls_get_addr' <<<"$syms"; then
    echo "tls_check: $lib calls __tls_get_addr" >&2
    exit 1
fi
# And the model is in use: the thread-locals are there, as TPOFF relocations.
if ! grep -Eq 'TPOFF|TLS_TPREL' <<<"$relocs"; then
    echo "tls_check: no initial-exec TLS relocation in $lib (were the thread-locals moved?)" >&2
    exit 1
fi
echo "tls_check: $lib: initial-exec TLS only"
