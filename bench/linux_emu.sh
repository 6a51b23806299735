#!/usr/bin/env bash
# Debian Linux on the software CPU against QEMU TCG: the same kernel (bzImage), busybox
# initramfs, 512 MiB and vCPU count, booted by `vireo run --accel emu` and by
# `qemu-system-x86_64 -accel tcg`, 1 and 2 vCPUs, in one run. Each boot measures:
#   init_s   host wall time from the VMM's start to the initramfs' "init reached" line
#   dd_w_s   guest: dd 32 MiB to the virtio-blk disk (raw file, virtio-pci), conv=fsync
#   dd_r_s   guest: dd the same 32 MiB back after dropping caches
#   md5_s    guest: busybox md5sum of a 16 MiB file in tmpfs (CPU-bound)
#   total_s  host wall time to the VMM's exit (the guest powers off)
# Guest times come from /proc/uptime (both VMMs give the guest the host's time). The ratios
# vireo/qemu are of times: below 1, Vireo is faster.
#
#   bench/linux_emu.sh [BUILD_DIR]     (default: build; bench/run.sh calls it)
#
# Environment: LINUX_EMU_RUNS (boots per engine and vCPU count, default 1: a boot on the
# software CPU takes minutes; medians when more).
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${1:-build}
[[ "$build" = /* ]] || build="$repo/$build"
runs=${LINUX_EMU_RUNS:-1}
vireo="$build/vireo"
qemu_bin=${QEMU:-qemu-system-x86_64}
die() {
  echo "linux emu bench: $*" >&2
  exit 1
}
[[ -x "$vireo" ]] || die "missing $vireo: build first"
command -v "$qemu_bin" >/dev/null || die "$qemu_bin not found (scripts/install-deps.sh --bench)"
art="$build/e2e"
mkdir -p "$art"
"$repo/tests/e2e/linux-guest.sh" "$art" >"$art.linux-guest.log" 2>&1 ||
  die "building the Debian guest artifacts failed (log: $art.linux-guest.log)"
scratch=$(mktemp -d /tmp/vireo-linux-bench.XXXXXX)
trap 'rm -rf "$scratch"' EXIT

# The scenario the base initramfs' /init runs after loading its modules (linux-guest.sh).
mkdir -p "$scratch/root"
cat >"$scratch/root/scenario.sh" <<'GUEST'
set -e
now() { cut -d' ' -f1 /proc/uptime; }
lap() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", b - a}'; }
t0=$(now)
dd if=/dev/zero of=/dev/vda bs=1M count=32 conv=fsync 2>/dev/null
t1=$(now)
echo 3 >/proc/sys/vm/drop_caches
dd if=/dev/vda of=/dev/null bs=1M count=32 2>/dev/null
t2=$(now)
dd if=/dev/urandom of=/tmp/big bs=1M count=16 2>/dev/null
t3=$(now)
md5sum /tmp/big >/dev/null
t4=$(now)
echo "VIREO-BENCH: dd_w_s=$(lap "$t0" "$t1") dd_r_s=$(lap "$t1" "$t2") md5_s=$(lap "$t3" "$t4")"
GUEST
(cd "$scratch/root" && find . | LC_ALL=C sort | "$art/busybox" cpio -o -H newc -R 0:0 2>/dev/null) |
  gzip -1n >"$scratch/scenario.cpio.gz"
cat "$art/initramfs.cpio.gz" "$scratch/scenario.cpio.gz" >"$scratch/initrd.cpio.gz"
cmdline="console=ttyS0 panic=-1 quiet"

# stamp CMD...: runs CMD with its stdout (the serial console) read line by line; prints
# "init_s total_s" and leaves the console in $scratch/console.
stamp() {
  python3 - "$@" <<'PY'
import os, subprocess, sys, time
start = time.monotonic()
init = None
p = subprocess.Popen(sys.argv[1:], stdout=subprocess.PIPE, stdin=subprocess.DEVNULL,
                     stderr=subprocess.STDOUT)
with open(os.environ["CONSOLE"], "wb") as log:
    for line in p.stdout:
        log.write(line)
        if init is None and b"VIREO-E2E: init reached" in line:
            init = time.monotonic() - start
status = p.wait()
total = time.monotonic() - start
print(f"{init if init is not None else -1:.2f} {total:.2f} {status}")
PY
}

# boot ENGINE CPUS: prints "init_s dd_w_s dd_r_s md5_s total_s".
boot() {
  local engine=$1 cpus=$2 disk="$scratch/disk.raw" result
  rm -f "$disk"
  truncate -s 64M "$disk"
  export CONSOLE="$scratch/console"
  case $engine in
    vireo)
      result=$(stamp "$vireo" run --accel emu --kernel "$art/vmlinuz" \
        --initrd "$scratch/initrd.cpio.gz" --cmdline "$cmdline" --cpus "$cpus" --memory 512M \
        --no-reboot --disk "path=$disk,format=raw") ;;
    qemu)
      result=$(stamp "$qemu_bin" -accel tcg -smp "$cpus" -m 512M -nodefaults -no-user-config \
        -display none -serial stdio -no-reboot -kernel "$art/vmlinuz" \
        -initrd "$scratch/initrd.cpio.gz" -append "$cmdline" \
        -drive "file=$disk,format=raw,if=virtio") ;;
  esac
  local init total status
  read -r init total status <<<"$result"
  local line
  line=$(tr -d '\r' <"$CONSOLE" | sed -n 's/^VIREO-BENCH: //p' | head -n 1)
  if [[ "$status" != 0 || "$init" == -1.00 || -z "$line" ]]; then
    tail -n 20 "$CONSOLE" >&2
    die "$engine with $cpus vCPUs: exit status $status, init at $init s, results '${line}'"
  fi
  local kv dd_w="" dd_r="" md5=""
  for kv in $line; do
    case $kv in
      dd_w_s=*) dd_w=${kv#*=} ;;
      dd_r_s=*) dd_r=${kv#*=} ;;
      md5_s=*) md5=${kv#*=} ;;
    esac
  done
  echo "$init $dd_w $dd_r $md5 $total"
}

median() { sort -g | awk '{v[NR]=$1} END {print v[int((NR+1)/2)]}'; }
names=(init_s dd_w_s dd_r_s md5_s total_s)
printf '%-6s %-8s %9s %9s %9s\n' vcpus case vireo_s qemu_s ratio
for cpus in 1 2; do
  declare -A med=()
  for engine in vireo qemu; do
    : >"$scratch/rows"
    for ((i = 0; i < runs; i++)); do boot "$engine" "$cpus" >>"$scratch/rows"; done
    for k in 0 1 2 3 4; do
      med[$engine.$k]=$(awk -v c=$((k + 1)) '{print $c}' "$scratch/rows" | median)
    done
  done
  for k in 0 1 2 3 4; do
    awk -v n="$cpus" -v c="${names[$k]}" -v v="${med[vireo.$k]}" -v q="${med[qemu.$k]}" \
      'BEGIN {printf "%-6s %-8s %9.2f %9.2f %8.2fx\n", n, c, v, q, (q > 0 ? v / q : 0)}'
  done
done
echo "(load average $(cut -d' ' -f1-3 /proc/loadavg); $runs boot(s) per engine and vCPU count)"
