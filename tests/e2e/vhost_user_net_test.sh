#!/bin/bash
# e2e scenario 4: `vireo vhost-user net` on a tap inside a network namespace made by the test,
# behind QEMU's virtio-net-pci with a vhost-user netdev. In the namespace the tap is 10.0.3.1/24
# and runs busybox's udhcpd, httpd and an nc listener. The guest gets its address by DHCP,
# pings the host, downloads a file over HTTP and uploads one with nc; both transfers are checked
# by SHA-256 on the other side.
#
#   vhost_user_net_test.sh VIREO ARTIFACT_DIR
source "$(dirname "$0")/vhost_user_lib.sh"
vu_setup vhost_user_net "$1" "$2"

if [[ ! -c /dev/net/tun ]]; then
  echo "SKIP: vhost_user_net needs /dev/net/tun"
  exit 77
fi
ns="vireo-vu-$$"
if ! ip netns add "$ns" 2>/dev/null; then
  echo "SKIP: vhost_user_net cannot create a network namespace (ip netns add: no CAP_NET_ADMIN?)"
  exit 77
fi
# Killing the namespace's processes: the nc pipeline's sleep and nc are not our children.
trap 'vu_cleanup; ip netns pids "$ns" 2>/dev/null | xargs -r kill 2>/dev/null; ip netns del "$ns" 2>/dev/null' EXIT
tap=vtap0
host_ip=10.0.3.1
in_ns() { ip netns exec "$ns" "$@"; }

mkdir -p "$VU_DIR/www"
dd if=/dev/urandom of="$VU_DIR/www/down.bin" bs=1M count=4 status=none
down_sha=$(sha256sum "$VU_DIR/www/down.bin" | cut -d' ' -f1)
cat >"$VU_DIR/udhcpd.conf" <<CONF
start 10.0.3.15
end 10.0.3.20
interface $tap
max_leases 6
lease_file $VU_DIR/udhcpd.leases
pidfile $VU_DIR/udhcpd.pid
option subnet 255.255.255.0
CONF
touch "$VU_DIR/udhcpd.leases"
# busybox udhcpc calls this with the lease in the environment.
cat >"$VU_DIR/dhcp.sh" <<'SCRIPT'
#!/bin/sh
case "$1" in
  bound|renew) ifconfig "$interface" "$ip" netmask "$subnet" up ;;
esac
SCRIPT
chmod +x "$VU_DIR/dhcp.sh"

cat >"$VU_DIR/guest.sh" <<GUEST
set -e
ip link set lo up
ip link set eth0 up
udhcpc -i eth0 -f -q -n -t 20 -T 1 -s /data/dhcp.sh >/tmp/udhcpc.log 2>&1 || { cat /tmp/udhcpc.log; exit 1; }
echo "VIREO-E2E: address: \$(ip -4 addr show eth0 | grep -o 'inet [0-9./]*')"
ping -c 3 -W 5 $host_ip >/tmp/ping.log && echo "VIREO-E2E: ping: ok" || { cat /tmp/ping.log; exit 1; }
wget -q -O /tmp/down http://$host_ip:8080/down.bin
echo "VIREO-E2E: down sha256: \$(sha256sum /tmp/down | cut -d' ' -f1)"
dd if=/dev/urandom of=/tmp/up bs=1M count=8 2>/dev/null
echo "VIREO-E2E: up sha256: \$(sha256sum /tmp/up | cut -d' ' -f1)"
nc $host_ip 5001 </tmp/up
echo "VIREO-E2E: upload: sent"
GUEST
initrd=$(vu_initrd "$VU_DIR/guest.sh" "$VU_DIR/dhcp.sh")

VU_WRAP="ip netns exec $ns" vu_backend "$VU_DIR/backend.log" net --socket "$VU_SOCK" --tap "$tap" \
  --once -v
# The back-end created the tap before it listened.
in_ns ip link set lo up
in_ns ip addr add "$host_ip/24" dev "$tap"
in_ns ip link set "$tap" up
in_ns "$VU_BUSYBOX" udhcpd -f "$VU_DIR/udhcpd.conf" >"$VU_DIR/udhcpd.log" 2>&1 &
vu_pids+=($!)
in_ns "$VU_BUSYBOX" httpd -f -p "$host_ip:8080" -h "$VU_DIR/www" >"$VU_DIR/httpd.log" 2>&1 &
vu_pids+=($!)
# nc ends when either side does; the sleep keeps its stdin open until the guest has sent all.
in_ns sh -c "sleep 600 | '$VU_BUSYBOX' nc -l -p 5001 >'$VU_DIR/up.bin'" &
vu_pids+=($!)

# vectors=0 (INTx): QEMU 7.2 under TCG segfaults in msix_set_vector_notifiers when it starts a
# vhost-user netdev on an MSI-X virtio-net-pci (before any back-end reply is involved).
vu_boot "$VU_DIR/console.log" "$initrd" -chardev "socket,id=vu0,path=$VU_SOCK" \
  -netdev vhost-user,id=n0,chardev=vu0 \
  -device virtio-net-pci,netdev=n0,mac=52:54:00:12:34:56,vectors=0
console="$VU_DIR/console.log"
vu_want "$console" "VIREO-E2E: scenario exit 0"
vu_want "$console" "VIREO-E2E: address: inet 10.0.3.15/24"
vu_want "$console" "VIREO-E2E: ping: ok"
vu_want "$console" "VIREO-E2E: down sha256: $down_sha"
up=$(vu_value "$console" "up sha256")
got=$(sha256sum "$VU_DIR/up.bin" | cut -d' ' -f1)
[[ -n "$up" && "$got" == "$up" ]] ||
  vu_fail "the host received $(stat -c %s "$VU_DIR/up.bin") bytes with sha256 $got, the guest sent '$up'"
wait "$VU_BACKEND_PID" || vu_fail "the back-end (--once) exited with status $?"
grep -q "net counters: rx_packets=[1-9].* tx_packets=[1-9]" "$VU_DIR/backend.log" ||
  vu_fail "the back-end counted no packets both ways"
vu_finish
