#!/bin/bash
# The virtio_net guest (tests/guests/virtio_net.cc) against a tap in a private network namespace:
# the guest ARPs for the host's address and pings it, and the namespace's kernel answers.
#
#   virtio_net_test.sh VIREO GUESTS_DIR [TRANSPORT [VIREO_ARGS...]]
#
# TRANSPORT is mmio (the default) or pci; VIREO_ARGS go to `vireo run` as they are (e.g.
# --accel emu). vireo runs inside a new namespace (vireo-test-PID), where
# it creates the tap vtap0; once the tap exists this script gives it 10.0.2.1/24 and brings it up
# (the guest, 10.0.2.15, repeats its ARP request until then). The namespace is deleted on exit.
# Exits 77 (skipped) when no namespace can be made (no CAP_NET_ADMIN) or there is no /dev/net/tun.
set -u

vireo=$1
guests=$2
transport=${3:-mmio}
shift $(($# < 3 ? $# : 3))
extra=("$@")
run_guest="$(dirname "$0")/run_guest.sh"

ns="vireo-test-$$"
tap=vtap0
host_ip=10.0.2.1
guest_ip=10.0.2.15

if [[ ! -c /dev/net/tun ]]; then
  echo "SKIP: no /dev/net/tun"
  exit 77
fi
if ! ip netns add "$ns" 2>/dev/null; then
  echo "SKIP: cannot create a network namespace (ip netns add $ns failed: no CAP_NET_ADMIN?)"
  exit 77
fi
configurer=""
cleanup() {
  [[ -n "$configurer" ]] && kill "$configurer" 2>/dev/null && wait "$configurer" 2>/dev/null
  ip netns del "$ns" 2>/dev/null
}
trap cleanup EXIT

# Waits (up to 30 s) for vireo to create the tap, then configures it.
(
  for ((i = 0; i < 300; i++)); do
    if ip -n "$ns" link show "$tap" >/dev/null 2>&1; then
      ip -n "$ns" link set lo up
      ip -n "$ns" addr add "$host_ip/24" dev "$tap" && ip -n "$ns" link set "$tap" up
      exit $?
    fi
    sleep 0.1
  done
  echo "virtio_net_test.sh: tap $tap never appeared in $ns" >&2
  exit 1
) &
configurer=$!

checks=(--status 1 --stdout "^mac: ([0-9a-f]{2}:){5}[0-9a-f]{2}$"
        --stdout "^arp reply from ([0-9a-f]{2}:){5}[0-9a-f]{2}$"
        --stdout "^icmp echo reply from $host_ip seq [1-5]$" --stdout "^PASS virtio_net$")
[[ "$transport" == pci ]] && checks+=(--stdout "^virtio: transport pci$")
"$run_guest" "${checks[@]}" -- ip netns exec "$ns" "$vireo" run --kernel "$guests/virtio_net.elf" \
  --transport "$transport" --net "tap=$tap" --cmdline "vnet.ip=$guest_ip vnet.host=$host_ip" "${extra[@]}"
status=$?
if wait "$configurer"; then
  configurer=""
else
  configurer=""
  echo "virtio_net_test.sh: configuring the tap failed" >&2
  status=1
fi
exit $status
