#!/bin/bash
# The e2e suite's second mode: Debian's kernel booted by `vireo run --accel emu` (2 vCPUs) with
# Vireo's own virtio devices on one transport, every vhost-user scenario run in ONE boot (a boot
# on the software CPU takes minutes, so the scenarios share it):
#   raw disk    dd of a random pattern, fsync, drop caches, read back; the host finds the same
#               SHA-256 in the image at 4 MiB and zeros everywhere else
#   qcow2 disk  qemu-img made it over a raw backing file; the guest sees the backing data,
#               mke2fs, writes files with a manifest, unmounts, drops caches, mounts again and
#               verifies them; `qemu-img check` is clean and the backing file unchanged
#   discard     discard=on: write-back cache and discard support seen, blkdiscard of the second
#               half and fstrim of an ext2 in the first; the image's allocation shrinks by 40 MiB
#               and the device counted flushes and discards (control API counters)
#   net         a tap in a network namespace made by the test (vireo runs in it): DHCP, ping, an
#               HTTP download and an nc upload checked by SHA-256, packets counted both ways;
#               skipped with a printed reason (the rest still runs) without namespaces or tun
#   rng         /dev/hwrng gives 4 KiB of varied bytes and virtio_rng is the current source
#   smp         nproc is 2; two busy processes share a counter token through a pipe and the
#               total is exact; both CPUs accumulated busy time
#   end         mmio: the guest powers off (vireo exits 0). pci: the guest reboots, Vireo
#               restarts the VM, the second boot verifies the qcow2 files again and powers off
#               (vireo exits 0, stderr reports the reset and the restart). END=reset (env
#               VIREO_E2E_EMU_END) reboots under --no-reboot instead: vireo exits 0 and reports
#               "guest reset ..., not restarting".
#
#   emu_suite_test.sh mmio|pci VIREO ARTIFACT_DIR
#
# Exits 0 pass, 1 fail, 77 skip (qemu-img missing). Logs and images stay in
# ARTIFACT_DIR/emu/e2e_emu_TRANSPORT/. VIREO_E2E_BOOT_TIMEOUT bounds the vireo run (default 900 s).
transport=${1:-}
[[ $# -eq 3 && ( $transport == mmio || $transport == pci ) ]] ||
  { echo "usage: emu_suite_test.sh mmio|pci VIREO ARTIFACT_DIR" >&2; exit 2; }
# shellcheck disable=SC2034  # read by vhost_user_lib.sh
VU_NEEDS_QEMU=0 VU_SUBDIR=emu
source "$(dirname "$0")/vhost_user_lib.sh"
VU_BOOT_TIMEOUT=${VIREO_E2E_BOOT_TIMEOUT:-900}
vu_setup "e2e_emu_$transport" "$2" "$3"
if ! command -v qemu-img >/dev/null; then
  echo "SKIP: e2e_emu_$transport needs qemu-img (scripts/install-deps.sh installs qemu-utils)"
  exit 77
fi
end=poweroff
[[ $transport == pci ]] && end=reboot
end=${VIREO_E2E_EMU_END:-$end}
[[ $end == poweroff || $end == reboot || $end == reset ]] ||
  { echo "VIREO_E2E_EMU_END must be poweroff, reboot or reset, not '$end'" >&2; exit 2; }
console="$VU_DIR/console.log"
stderr_log="$VU_DIR/vireo.stderr.log"
api_sock="$VU_DIR/api.sock"
allocated_kib() { echo $(($(stat -c '%b * %B' "$1") / 1024)); }

# --- Images ---------------------------------------------------------------------------------
raw="$VU_DIR/raw.img"
truncate -s 64M "$raw"
base="$VU_DIR/base.raw"
top="$VU_DIR/top.qcow2"
dd if=/dev/urandom of="$base" bs=1M count=1 status=none
truncate -s 64M "$base"
base_sha=$(sha256sum "$base" | cut -d' ' -f1)
backing_sha=$(dd if="$base" bs=1M count=1 status=none | sha256sum | cut -d' ' -f1)
qemu-img create -q -f qcow2 -b "$base" -F raw "$top" 64M
discard="$VU_DIR/discard.raw"
# Real data, so every block is allocated and discarded ranges must read back as zeros.
dd if=/dev/urandom of="$discard" bs=1M count=64 status=none
discard_before=$(allocated_kib "$discard")

# --- Network namespace (optional) -----------------------------------------------------------
net=1
net_skip=""
ns="vireo-emu-$$"
if [[ ! -c /dev/net/tun ]]; then
  net_skip="no /dev/net/tun"
elif ! ip netns add "$ns" 2>/dev/null; then
  net_skip="cannot create a network namespace (ip netns add: no CAP_NET_ADMIN?)"
fi
if [[ -n "$net_skip" ]]; then
  net=0
  echo "$VU_NAME: SKIP net part: $net_skip (the other scenarios still run)"
else
  # The namespace's processes (nc's sleep is not our child) go with it.
  trap 'vu_cleanup; ip netns pids "$ns" 2>/dev/null | xargs -r kill 2>/dev/null; ip netns del "$ns" 2>/dev/null' EXIT
fi
tap=vtap0
host_ip=10.0.3.1
in_ns() { ip netns exec "$ns" "$@"; }
if ((net)); then
  mkdir -p "$VU_DIR/www"
  dd if=/dev/urandom of="$VU_DIR/www/down.bin" bs=1M count=1 status=none
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
fi
# busybox udhcpc calls this with the lease in the environment.
cat >"$VU_DIR/dhcp.sh" <<'SCRIPT'
#!/bin/sh
case "$1" in
  bound|renew) ifconfig "$interface" "$ip" netmask "$subnet" up ;;
esac
SCRIPT
chmod +x "$VU_DIR/dhcp.sh"
smp_rounds=20
printf 'NET=%s\nEND=%s\nHOST_IP=%s\nBACKING_SHA=%s\nSMP_ROUNDS=%s\n' "$net" "$end" "$host_ip" \
  "$backing_sha" "$smp_rounds" >"$VU_DIR/config"

# --- The guest ------------------------------------------------------------------------------
# Each part runs in a subshell with set -e and reports "VIREO-E2E: <part> exit <status>", so one
# failing part leaves the others' evidence on the console.
cat >"$VU_DIR/guest.sh" <<'GUEST'
. /data/config
mkdir -p /mnt
# disk SERIAL: the /dev node of the virtio disk with that serial (probe order is not fixed).
disk() {
  for d in /sys/block/vd*; do
    [ "$(cat "$d/serial" 2>/dev/null)" = "$1" ] && { echo "/dev/${d##*/}"; return 0; }
  done
  echo "VIREO-E2E: no disk with serial $1" >&2
  return 1
}
sha() { sha256sum "$@" | cut -d' ' -f1; }
uptime_s() { cut -d. -f1 /proc/uptime; }
part() {
  name=$1
  shift
  t0=$(uptime_s)
  # Not `|| status=$?`: a subshell on the left of || runs with set -e ignored.
  (set -e; "$@")
  status=$?
  echo "VIREO-E2E: $name exit $status"
  # For reading the log only (guest clock; no check depends on it).
  echo "VIREO-E2E: $name took $(($(uptime_s) - t0)) s, uptime $(uptime_s) s"
}

qcow=$(disk vqcow)
if mount -t ext2 -o ro "$qcow" /mnt 2>/dev/null && [ -f /mnt/manifest ]; then
  # The second boot after the guest rebooted: the files must still be there.
  echo "VIREO-E2E: boot: 2"
  echo "VIREO-E2E: scenario starts at uptime $(uptime_s) s"
  part reboot_verify sh -c 'cd /mnt && sha256sum -c manifest >/tmp/check 2>&1 || { cat /tmp/check; exit 1; }
    echo "VIREO-E2E: files verified after reboot: $(wc -l <manifest)"'
  umount /mnt
  exit 0
fi
umount /mnt 2>/dev/null
echo "VIREO-E2E: boot: 1"
echo "VIREO-E2E: scenario starts at uptime $(uptime_s) s"

raw_part() {
  d=$(disk vraw)
  echo "VIREO-E2E: raw sectors: $(cat "/sys/block/${d#/dev/}/size")"
  dd if=/dev/urandom of=/tmp/pattern bs=1M count=1 2>/dev/null
  echo "VIREO-E2E: pattern sha256: $(sha /tmp/pattern)"
  # 1 MiB at 4 MiB into the disk, flushed to the device.
  dd if=/tmp/pattern of="$d" bs=1M seek=4 conv=fsync 2>/dev/null
  sync
  echo 3 >/proc/sys/vm/drop_caches
  blockdev --flushbufs "$d"
  echo "VIREO-E2E: readback sha256: $(dd if="$d" bs=1M skip=4 count=1 2>/dev/null | sha)"
}

qcow2_part() {
  echo "VIREO-E2E: backing data: $(dd if="$qcow" bs=1M count=1 2>/dev/null | sha)"
  [ "$(dd if="$qcow" bs=1M count=1 2>/dev/null | sha)" = "$BACKING_SHA" ]
  mke2fs -q "$qcow" >/dev/null
  mount -t ext2 "$qcow" /mnt || mount -t ext4 "$qcow" /mnt
  mkdir /mnt/dir
  dd if=/dev/urandom of=/mnt/dir/random bs=1k count=512 2>/dev/null
  cp -r /lib/modules/*/kernel/drivers/virtio /mnt/virtio
  (cd /mnt && find dir virtio -type f | sort | xargs sha256sum >/mnt/manifest)
  echo "VIREO-E2E: files written: $(wc -l </mnt/manifest)"
  umount /mnt
  sync
  echo 3 >/proc/sys/vm/drop_caches
  blockdev --flushbufs "$qcow"
  mount -t ext2 -o ro "$qcow" /mnt || mount -t ext4 -o ro "$qcow" /mnt
  (cd /mnt && sha256sum -c manifest >/tmp/check 2>&1) || { cat /tmp/check; exit 1; }
  echo "VIREO-E2E: files verified after remount: $(wc -l </mnt/manifest)"
  umount /mnt
}

discard_part() {
  d=$(disk vdisc)
  n=${d#/dev/}
  echo "VIREO-E2E: write_cache: $(cat "/sys/block/$n/queue/write_cache")"
  echo "VIREO-E2E: discard_max_bytes: $(cat "/sys/block/$n/queue/discard_max_bytes")"
  blkdiscard -o 33554432 -l 33554432 "$d"
  echo "VIREO-E2E: blkdiscard: done"
  mke2fs -q "$d" 32768 >/dev/null
  mount -t ext2 "$d" /mnt || mount -t ext4 "$d" /mnt
  dd if=/dev/zero of=/mnt/big bs=1M count=2 conv=fsync 2>/dev/null
  rm /mnt/big
  sync
  trimmed=$(fstrim -v /mnt)
  echo "VIREO-E2E: fstrim: $trimmed"
  umount /mnt
}

net_part() {
  ip link set lo up
  ip link set eth0 up
  udhcpc -i eth0 -f -q -n -t 30 -T 2 -s /data/dhcp.sh >/tmp/udhcpc.log 2>&1 || { cat /tmp/udhcpc.log; exit 1; }
  echo "VIREO-E2E: address: $(ip -4 addr show eth0 | grep -o 'inet [0-9./]*')"
  ping -c 3 -W 10 "$HOST_IP" >/tmp/ping.log && echo "VIREO-E2E: ping: ok" || { cat /tmp/ping.log; exit 1; }
  wget -q -O /tmp/down "http://$HOST_IP:8080/down.bin"
  echo "VIREO-E2E: down sha256: $(sha /tmp/down)"
  dd if=/dev/urandom of=/tmp/up bs=1M count=1 2>/dev/null
  echo "VIREO-E2E: up sha256: $(sha /tmp/up)"
  nc "$HOST_IP" 5001 </tmp/up
  echo "VIREO-E2E: upload: sent"
}

rng_part() {
  current=$(cat /sys/class/misc/hw_random/rng_current)
  echo "VIREO-E2E: rng_current: $current"
  bytes=$(dd if=/dev/hwrng bs=512 count=8 2>/dev/null | wc -c)
  echo "VIREO-E2E: hwrng bytes: $bytes"
  distinct=$(dd if=/dev/hwrng bs=256 count=1 2>/dev/null | od -An -v -tx1 | tr ' ' '\n' | grep . | sort -u | wc -l)
  echo "VIREO-E2E: hwrng distinct byte values in 256: $distinct"
  case "$current" in virtio_rng*) ;; *) exit 1 ;; esac
  [ "$bytes" -eq 4096 ] && [ "$distinct" -gt 64 ]
}

# busy ticks (user + nice + system) of cpu0 and cpu1 from /proc/stat
cpu_ticks() { awk '/^cpu[01] / { printf "%s=%d ", $1, $2 + $3 + $4 }' /proc/stat; }
smp_part() {
  rounds=$SMP_ROUNDS
  # One 8-byte token holds the counter. Both workers spin, then take the token (a read of the
  # pipe consumes it, so only one holds it), add one and put it back: the total is exact only
  # if no update is lost or doubled while both CPUs run them.
  mkfifo /tmp/token
  exec 5<>/tmp/token
  printf '%8d' 0 >&5
  worker() {
    r=0
    while [ $r -lt $rounds ]; do
      i=0
      while [ $i -lt 200 ]; do i=$((i + 1)); done
      v=$(dd bs=8 count=1 <&5 2>/dev/null)
      set -- $v
      printf '%8d' $(($1 + 1)) >&5
      r=$((r + 1))
    done
  }
  before=$(cpu_ticks)
  worker &
  a=$!
  worker &
  b=$!
  wait $a
  wait $b
  after=$(cpu_ticks)
  total=$(dd bs=8 count=1 <&5 2>/dev/null)
  set -- $total
  echo "VIREO-E2E: smp counter: $1 of $((2 * rounds))"
  echo "VIREO-E2E: smp ticks before: $before"
  echo "VIREO-E2E: smp ticks after: $after"
  [ "$1" -eq $((2 * rounds)) ]
}

echo "VIREO-E2E: cpus online: $(cat /sys/devices/system/cpu/online)"
part raw raw_part
part qcow2 qcow2_part
part discard discard_part
echo "VIREO-E2E: disks done"
if [ "$NET" = 1 ]; then part net net_part; fi
part rng rng_part
part smp smp_part
case "$END" in
  reboot | reset)
    echo "VIREO-E2E: rebooting"
    sync
    reboot -f
    sleep 30
    echo "VIREO-E2E: reboot -f returned"
    ;;
esac
exit 0
GUEST

# Only the modules this transport needs (the base initramfs loads 17, about a second each on
# the software CPU): the scenario cpio replaces modules.load.
release=$(<"$VU_ART/kernel-release")
grep -v -e virtio_console -e "virtio_$([[ $transport == pci ]] && echo mmio || echo pci)" \
  "$VU_ART/modules.load" >"$VU_DIR/modules.load"
[[ $transport == mmio ]] && sed -i '/virtio_pci_/d' "$VU_DIR/modules.load"
modules=$(grep -c . "$VU_DIR/modules.load")
initrd=$(vu_initrd "$VU_DIR/guest.sh" "$VU_DIR/dhcp.sh" "$VU_DIR/config")
# vu_initrd puts files under /data; add modules.load at its place in the tree and repack.
mkdir -p "$VU_DIR/initrd-root/lib/modules/$release"
cp "$VU_DIR/modules.load" "$VU_DIR/initrd-root/lib/modules/$release/modules.load"
(cd "$VU_DIR/initrd-root" && find . | LC_ALL=C sort | "$VU_BUSYBOX" cpio -o -H newc -R 0:0 2>/dev/null) |
  gzip -1n >"$VU_DIR/scenario.cpio.gz"
cat "$VU_ART/initramfs.cpio.gz" "$VU_DIR/scenario.cpio.gz" >"$initrd"

# --- Boot -----------------------------------------------------------------------------------
cmd=("$VU_VIREO" run --accel emu --kernel "$VU_ART/vmlinuz" --initrd "$initrd"
  --cmdline "console=ttyS0 panic=-1 quiet" --cpus 2 --memory 512M --transport "$transport"
  --serial "file:$console" --api-socket "$api_sock" -v
  --disk "path=$raw,format=raw,serial=vraw"
  --disk "path=$top,format=qcow2,serial=vqcow"
  --disk "path=$discard,format=raw,discard=on,serial=vdisc"
  --rng)
((net)) && cmd+=(--net "tap=$tap,mac=52:54:00:12:34:56")
[[ $end == reset ]] && cmd+=(--no-reboot)
wrap=()
((net)) && wrap=(ip netns exec "$ns")
vu_log "running: timeout $VU_BOOT_TIMEOUT$(printf ' %q' "${wrap[@]}" "${cmd[@]}")"
start=$(date +%s)
"${wrap[@]}" timeout --kill-after=10 "$VU_BOOT_TIMEOUT" "${cmd[@]}" </dev/null \
  >"$VU_DIR/vireo.stdout.log" 2>"$stderr_log" &
vireo_pid=$!
vu_pids+=("$vireo_pid")

# The control API's device counters, sampled every second while the VM runs (one JSON line each;
# counters restart with each boot, so the checks take each counter's maximum).
python3 - "$api_sock" "$VU_DIR/counters.jsonl" <<'PY' &
import socket, sys, time
path, out = sys.argv[1], sys.argv[2]
while True:
    time.sleep(1)
    try:
        s = socket.socket(socket.AF_UNIX)
        s.settimeout(5)
        s.connect(path)
        s.sendall(b"GET /api/v1/vm/counters HTTP/1.1\r\nHost: vm\r\nConnection: close\r\n\r\n")
        data = b""
        while chunk := s.recv(65536):
            data += chunk
        s.close()
        head, _, body = data.partition(b"\r\n\r\n")
        if head.startswith(b"HTTP/1.1 200"):
            with open(out, "a") as f:
                f.write(body.decode().replace("\n", " ").strip() + "\n")
    except OSError:
        pass
PY
vu_pids+=($!)

if ((net)); then
  # Vireo creates the tap at start-up, long before the guest's driver comes up.
  for ((i = 0; i < 600; i++)); do
    in_ns ip link show "$tap" >/dev/null 2>&1 && break
    kill -0 "$vireo_pid" 2>/dev/null || break
    sleep 0.1
  done
  if in_ns ip link show "$tap" >/dev/null 2>&1; then
    in_ns ip link set lo up
    in_ns ip addr add "$host_ip/24" dev "$tap"
    in_ns ip link set "$tap" up
    in_ns "$VU_BUSYBOX" udhcpd -f "$VU_DIR/udhcpd.conf" >"$VU_DIR/udhcpd.log" 2>&1 &
    vu_pids+=($!)
    in_ns "$VU_BUSYBOX" httpd -f -p "$host_ip:8080" -h "$VU_DIR/www" >"$VU_DIR/httpd.log" 2>&1 &
    vu_pids+=($!)
    # nc ends when either side does; the sleep keeps its stdin open until the guest has sent all.
    in_ns sh -c "sleep 1200 | '$VU_BUSYBOX' nc -l -p 5001 >'$VU_DIR/up.bin'" &
    vu_pids+=($!)
  else
    vu_fail "vireo never created the tap $tap in namespace $ns"
  fi
fi

status=0
wait "$vireo_pid" || status=$?
elapsed=$(($(date +%s) - start))
vu_log "vireo exited with status $status after ${elapsed}s"
vu_cleanup

# --- Checks ---------------------------------------------------------------------------------
case "$status" in
  0) ;;
  124 | 137) vu_fail "vireo timed out after ${elapsed}s" ;;
  *) vu_fail "vireo exit status $status, wanted 0: $(tail -n 3 "$stderr_log" | tr '\n' ' ')" ;;
esac
text=$(tr -d '\r' <"$console")
grep -q "Kernel panic" <<<"$text" && vu_fail "kernel panic: $(grep -m1 "Kernel panic" <<<"$text")"
vu_want "$console" "VIREO-E2E: init reached"
vu_want "$console" "VIREO-E2E: nproc: 2"
vu_want "$console" "VIREO-E2E: cpus online: 0-1"
[[ $(grep -cFx "VIREO-E2E: modules loaded: $modules/$modules" <<<"$text") -ge 1 ]] ||
  vu_fail "console has no line: VIREO-E2E: modules loaded: $modules/$modules"
vu_want "$console" "VIREO-E2E: boot: 1"
for p in raw qcow2 discard rng smp; do vu_want "$console" "VIREO-E2E: $p exit 0"; done

# raw
vu_want "$console" "VIREO-E2E: raw sectors: 131072"
pattern=$(vu_value "$console" "pattern sha256")
readback=$(vu_value "$console" "readback sha256")
[[ -n "$pattern" ]] || vu_fail "the guest printed no pattern checksum"
[[ "$pattern" == "$readback" ]] || vu_fail "guest read back $readback, wrote $pattern"
host=$(dd if="$raw" bs=1M skip=4 count=1 status=none | sha256sum | cut -d' ' -f1)
[[ "$host" == "$pattern" ]] || vu_fail "raw.img holds $host at 4 MiB, the guest wrote $pattern"
zeros=$( (dd if="$raw" bs=1M count=4 status=none; dd if="$raw" bs=1M skip=5 status=none) |
  tr -d '\0' | wc -c)
[[ "$zeros" -eq 0 ]] || vu_fail "$zeros non-zero bytes outside the written range of raw.img"

# qcow2
vu_want "$console" "VIREO-E2E: backing data: $backing_sha"
written=$(vu_value "$console" "files written")
[[ -n "$written" && "$written" -gt 2 && "$(vu_value "$console" "files verified after remount")" == "$written" ]] ||
  vu_fail "after remount the guest verified '$(vu_value "$console" "files verified after remount")' of '$written' files"
if ! qemu-img check -f qcow2 "$top" >"$VU_DIR/qemu-img-check.log" 2>&1; then
  vu_fail "qemu-img check: $(tr '\n' ' ' <"$VU_DIR/qemu-img-check.log")"
fi
[[ "$(sha256sum "$base" | cut -d' ' -f1)" == "$base_sha" ]] || vu_fail "the backing file changed"

# discard
vu_want "$console" "VIREO-E2E: write_cache: write back"
vu_want "$console" "VIREO-E2E: blkdiscard: done"
max=$(vu_value "$console" discard_max_bytes)
[[ -n "$max" && "$max" -gt 0 ]] || vu_fail "the guest sees no discard support (discard_max_bytes '$max')"
discard_after=$(allocated_kib "$discard")
vu_log "discard.raw allocated: ${discard_before} KiB before, ${discard_after} KiB after"
# The second half (32 MiB) went by blkdiscard; fstrim frees most of the first half's free space.
((discard_after <= discard_before - 40 * 1024)) ||
  vu_fail "discard.raw allocation went from ${discard_before} KiB to ${discard_after} KiB; expected at least 40 MiB less"
nonzero=$(dd if="$discard" bs=1M skip=32 status=none | tr -d '\0' | wc -c)
[[ "$nonzero" -eq 0 ]] || vu_fail "$nonzero non-zero bytes in discard.raw's discarded second half"

# Device counters: each counter's maximum over the samples, as "DEVICE KEY VALUE" lines.
python3 - "$VU_DIR/counters.jsonl" >"$VU_DIR/counters.max" <<'PY' || true
import json, sys
best = {}
for line in open(sys.argv[1]):
    for dev in json.loads(line).get("devices", []):
        for key, value in dev["counters"].items():
            k = (dev["name"], key)
            best[k] = max(best.get(k, 0), value)
for (name, key), value in sorted(best.items()):
    print(name, key, value)
PY
counter() { awk -v d="$1" -v k="$2" '$1 == d && $2 == k { print $3 }' "$VU_DIR/counters.max"; }
vu_log "counters (max over $(wc -l <"$VU_DIR/counters.jsonl" 2>/dev/null || echo 0) samples): $(tr '\n' ',' <"$VU_DIR/counters.max")"
# Devices are named by type and order on the command line: raw, qcow2, discard.
mapfile -t blk_names < <(awk '$2 == "writes" { print $1 }' "$VU_DIR/counters.max")
if [[ ${#blk_names[@]} -ne 3 ]]; then
  vu_fail "the control API showed ${#blk_names[@]} block devices (${blk_names[*]}), wanted 3"
else
  [[ "$(counter "${blk_names[0]}" writes)" -gt 0 ]] || vu_fail "${blk_names[0]} (raw) counted no writes"
  [[ "$(counter "${blk_names[1]}" writes)" -gt 0 ]] || vu_fail "${blk_names[1]} (qcow2) counted no writes"
  [[ "$(counter "${blk_names[2]}" flushes)" -gt 0 ]] || vu_fail "${blk_names[2]} (discard) counted no flushes"
  [[ "$(counter "${blk_names[2]}" discards)" -gt 0 ]] || vu_fail "${blk_names[2]} (discard) counted no discards"
  for d in "${blk_names[@]}"; do
    [[ "$(counter "$d" io_errors)" -eq 0 && "$(counter "$d" bad_requests)" -eq 0 ]] ||
      vu_fail "$d counted I/O errors or bad requests"
  done
fi

# net
if ((net)); then
  vu_want "$console" "VIREO-E2E: net exit 0"
  vu_want "$console" "VIREO-E2E: address: inet 10.0.3.15/24"
  vu_want "$console" "VIREO-E2E: ping: ok"
  vu_want "$console" "VIREO-E2E: down sha256: $down_sha"
  up=$(vu_value "$console" "up sha256")
  got=$(sha256sum "$VU_DIR/up.bin" 2>/dev/null | cut -d' ' -f1)
  [[ -n "$up" && "$got" == "$up" ]] ||
    vu_fail "the host received $(stat -c %s "$VU_DIR/up.bin" 2>/dev/null) bytes with sha256 $got, the guest sent '$up'"
  net_name=$(awk '$2 == "rx_packets" { print $1; exit }' "$VU_DIR/counters.max")
  [[ -n "$net_name" && "$(counter "$net_name" rx_packets)" -gt 0 && "$(counter "$net_name" tx_packets)" -gt 0 ]] ||
    vu_fail "the net device counted no packets both ways (${net_name:-no net device in the counters})"
fi

# rng
vu_want "$console" "VIREO-E2E: hwrng bytes: 4096"
[[ "$(vu_value "$console" rng_current)" == virtio_rng* ]] ||
  vu_fail "the guest's current rng is '$(vu_value "$console" rng_current)', not virtio_rng"

# smp
vu_want "$console" "VIREO-E2E: smp counter: $((2 * smp_rounds)) of $((2 * smp_rounds))"
ticks_before=$(vu_value "$console" "smp ticks before")
ticks_after=$(vu_value "$console" "smp ticks after")
for c in cpu0 cpu1; do
  b=$(grep -o "$c=[0-9]*" <<<"$ticks_before" | cut -d= -f2)
  a=$(grep -o "$c=[0-9]*" <<<"$ticks_after" | cut -d= -f2)
  [[ -n "$b" && -n "$a" && "$a" -gt "$b" ]] ||
    vu_fail "$c gained no busy time during the stress (ticks '$b' -> '$a')"
done

# end
case "$end" in
  poweroff)
    vu_want "$console" "VIREO-E2E: scenario exit 0"
    vu_want "$console" "VIREO-E2E: powering off"
    ! grep -q "guest reset" "$stderr_log" ||
      vu_fail "the guest reset instead of powering off: $(grep -m1 "guest reset" "$stderr_log")"
    ;;
  reset)
    vu_want "$console" "VIREO-E2E: rebooting"
    grep -q "guest reset (.*), not restarting (--no-reboot)" "$stderr_log" ||
      vu_fail "vireo's stderr does not report the guest reset under --no-reboot"
    ;;
  reboot)
    vu_want "$console" "VIREO-E2E: rebooting"
    grep -q "guest reset (.*): restarting" "$stderr_log" ||
      vu_fail "vireo's stderr does not report restarting after the guest reset"
    vu_want "$console" "VIREO-E2E: boot: 2"
    vu_want "$console" "VIREO-E2E: reboot_verify exit 0"
    [[ "$(vu_value "$console" "files verified after reboot")" == "$written" ]] ||
      vu_fail "after the reboot the guest verified '$(vu_value "$console" "files verified after reboot")' of '$written' files"
    vu_want "$console" "VIREO-E2E: scenario exit 0"
    vu_want "$console" "VIREO-E2E: powering off"
    ;;
esac
vu_log "transport $transport, end $end, net $([[ $net == 1 ]] && echo on || echo "skipped: $net_skip"), ${elapsed}s"
vu_finish
