#!/bin/bash
# The virtio_vsock guest (tests/guests/virtio_vsock.cc) against a host side in Python
# (virtio_vsock_host.py) over Vireo's Unix-socket vsock backend.
#
#   virtio_vsock_test.sh VIREO GUESTS_DIR [TRANSPORT [VIREO_ARGS...]]
#
# TRANSPORT is mmio (the default) or pci; VIREO_ARGS go to `vireo run` as they are (e.g.
# --accel emu). vireo runs with --vsock cid=3,uds=TMP/v.sock; the host
# side listens on TMP/v.sock_5000, then (a) connects to TMP/v.sock with "CONNECT 1234", sends
# "ping" and expects "pong", and (b) accepts the guest's connection to host port 5000, expects
# "hello host" and answers "hello guest". Both vireo and the host side must succeed.
# Exits 77 (skipped) when python3 is missing.
set -u

vireo=$1
guests=$2
transport=${3:-mmio}
shift $(($# < 3 ? $# : 3))
extra=("$@")
here="$(dirname "$0")"
run_guest="$here/run_guest.sh"

if ! command -v python3 >/dev/null 2>&1; then
  echo "SKIP: python3 not found (the host side of the test is a Python script)"
  exit 77
fi

tmp=$(mktemp -d)
host=""
cleanup() {
  [[ -n "$host" ]] && kill "$host" 2>/dev/null && wait "$host" 2>/dev/null
  rm -rf "$tmp"
}
trap cleanup EXIT

python3 "$here/virtio_vsock_host.py" "$tmp/v.sock" 1234 5000 40 >"$tmp/host.out" 2>&1 &
host=$!
# The listener for the guest's connection must exist before the guest connects.
for ((i = 0; i < 100; i++)); do
  [[ -S "$tmp/v.sock_5000" ]] && break
  sleep 0.05
done

checks=(--status 1 --stdout "^guest cid: 3$" --stdout "^accepted host port [0-9]+ on port 1234$"
        --stdout "^received: ping$" --stdout "^connected to host port 5000$"
        --stdout "^received: hello guest$" --stdout "^PASS virtio_vsock$")
[[ "$transport" == pci ]] && checks+=(--stdout "^virtio: transport pci$")
"$run_guest" "${checks[@]}" -- "$vireo" run --kernel "$guests/virtio_vsock.elf" \
  --transport "$transport" --vsock "cid=3,uds=$tmp/v.sock" \
  --cmdline "vsock.port=1234 vsock.host_port=5000" "${extra[@]}"
status=$?
wait "$host"
host_status=$?
host=""
if [[ $host_status -ne 0 ]] || ! grep -q "^host: done$" "$tmp/host.out"; then
  echo "virtio_vsock_test.sh: the host side failed (status $host_status):" >&2
  status=1
fi
sed 's/^/  /' "$tmp/host.out"
exit $status
