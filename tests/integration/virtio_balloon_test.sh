#!/bin/bash
# The virtio_balloon guest (tests/guests/virtio_balloon.cc) against `vireo run --balloon`, with
# the VMM's resident memory measured between the guest's steps.
#
#   virtio_balloon_test.sh VIREO GUESTS_DIR [TRANSPORT [MIB [VIREO_ARGS...]]]
#
# TRANSPORT is pci (the default) or mmio; MIB the region the guest touches (default 64);
# VIREO_ARGS go to `vireo run` as they are (e.g. --accel emu).
# The guest touches MIB MiB at CPL3 and prints "touched ..."; we read VmRSS from
# /proc/PID/status and send a byte on its COM1 (stdin: a FIFO, as vm_options_test.sh does; no
# --console, so stdin goes to the UART). It inflates the balloon with those pages and prints
# "inflated N pages"; we read VmRSS again, which must have dropped by at least 3/4 of MIB (the
# VMM discarded the pages with MADV_DONTNEED), and send another byte. It deflates, checks that
# the pages read as zero, posts statistics and must end with "PASS virtio_balloon" (status 1).
set -u
vireo=$1
guests=$2
transport=${3:-pci}
mib=${4:-64}
shift $(($# < 4 ? $# : 4))
extra=("$@")
want_drop_kib=$((mib * 1024 * 3 / 4))
tmp=$(mktemp -d)
pid=""
cleanup() {
  [[ -n "$pid" ]] && kill "$pid" 2>/dev/null
  rm -rf "$tmp"
}
trap cleanup EXIT

fail() {
  echo "FAILED (virtio_balloon, $transport): $*"
  for f in "$tmp"/out "$tmp"/err; do
    [[ -f "$f" ]] && { echo "--- $(basename "$f"):"; tr -d '\r' <"$f"; }
  done
  exit 1
}

# Waits (up to 30 s) for a stdout line matching $1; fails if the VMM exits first.
wait_for() {
  for _ in $(seq 600); do
    tr -d '\r' <"$tmp/out" | grep -Eq -- "$1" && return 0
    kill -0 "$pid" 2>/dev/null || fail "vireo exited before printing '$1'"
    sleep 0.05
  done
  fail "no line matching '$1' within 30 s"
}

rss_kib() {
  local v
  v=$(sed -nE 's/^VmRSS:[[:space:]]*([0-9]+) kB/\1/p' "/proc/$pid/status" 2>/dev/null)
  [[ -n "$v" ]] || fail "cannot read VmRSS of pid $pid"
  echo "$v"
}

mkfifo "$tmp/in"
exec 3<>"$tmp/in"
"$vireo" run --kernel "$guests/virtio_balloon.elf" --balloon --transport "$transport" \
  --memory 256M --cmdline "vballoon.mib=$mib" "${extra[@]}" <&3 >"$tmp/out" 2>"$tmp/err" &
pid=$!

wait_for "^touched [0-9]+ pages at "
touched=$(rss_kib)
printf 'g' >&3

wait_for "^inflated [0-9]+ pages$"
inflated=$(rss_kib)
printf 'g' >&3

wait "$pid"
status=$?
pid=""
exec 3>&-
drop=$((touched - inflated))
echo "VmRSS: $touched KiB after touching $mib MiB, $inflated KiB after inflating" \
  "(dropped $drop KiB, wanted >= $want_drop_kib)"
[[ $status -eq 1 ]] || fail "exit status $status, wanted 1"
tr -d '\r' <"$tmp/out" | grep -q "^inflated $((mib * 256)) pages$" ||
  fail "the guest did not inflate $((mib * 256)) pages"
tr -d '\r' <"$tmp/out" | grep -q "^PASS virtio_balloon$" || fail "no PASS line"
if [[ "$transport" == pci ]]; then
  tr -d '\r' <"$tmp/out" | grep -q "^virtio: transport pci$" || fail "not over virtio-pci"
fi
((drop >= want_drop_kib)) ||
  fail "VmRSS dropped by $drop KiB after inflating $mib MiB, wanted >= $want_drop_kib KiB:" \
    "the VMM did not give the ballooned pages back to the host"
echo "ok: virtio_balloon over $transport"
