#!/usr/bin/env bash
# vhost-user-blk: `vireo vhost-user blk` against `qemu-storage-daemon --export vhost-user-blk`,
# serving the same raw image to the same guest (Debian's kernel under QEMU TCG, the e2e
# artifacts) through the same QEMU vhost-user-blk-pci front-end. Inside the guest, busybox dd
# with O_DIRECT measures sequential 1 MiB writes and reads and 4 KiB writes and reads (QD1);
# the guest times each case with /proc/uptime (10 ms resolution; every case runs for seconds).
#
#   bench/vhost_user_blk.sh [BUILD_DIR]      (default: build; bench/run.sh calls it)
#
# Environment: VU_BOOTS (guest boots per back-end, interleaved, default 2), VU_REPS (repetitions
# of every case per boot, default 3), VU_SEQ_MIB (MiB per sequential case, default 1024),
# VU_RND_MIB (MiB per 4 KiB case, default 32), VU_DIR (where the image goes, default /dev/shm).
# Needs qemu-system-x86_64 and qemu-storage-daemon (scripts/install-deps.sh --bench installs
# them); no KVM. Writes BUILD_DIR/bench/vhost-user-blk-<UTC time>.{jsonl,txt} and copies them
# to vhost-user-blk-latest.*. docs/performance.md explains the numbers.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${1:-build}
[[ "$build" = /* ]] || build="$repo/$build"
boots=${VU_BOOTS:-2}
reps=${VU_REPS:-3}
seq_mib=${VU_SEQ_MIB:-1024}
rnd_mib=${VU_RND_MIB:-32}
img_dir=${VU_DIR:-/dev/shm}
vireo="$build/vireo"
art="$build/e2e"

die() {
  echo "bench-vhost-user: $*" >&2
  exit 1
}
log() { echo "bench-vhost-user: $*" >&2; }
[[ -x "$vireo" ]] || die "missing $vireo: build first"
for tool in qemu-system-x86_64 qemu-storage-daemon; do
  command -v "$tool" >/dev/null || die "$tool not found (scripts/install-deps.sh --bench)"
done
"$repo/tests/e2e/linux-guest.sh" "$art" >&2 || die "cannot build the guest artifacts"

stamp=$(date -u +%Y%m%dT%H%M%SZ)
outdir="$build/bench"
mkdir -p "$outdir"
jsonl="$outdir/vhost-user-blk-$stamp.jsonl"
txt="$outdir/vhost-user-blk-$stamp.txt"
work=$(mktemp -d /tmp/vireo-bench-vu.XXXXXX)
image="$img_dir/vireo-bench-vu-$stamp.img"
pids=()
cleanup() {
  local p
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work" "$image"
}
trap cleanup EXIT
sock="$work/blk.sock"
size_mib=$((seq_mib + rnd_mib + 16))
dd if=/dev/zero of="$image" bs=1M count="$size_mib" status=none

# The guest: each case prints "VIREO-BENCH: <case> <rep> <bytes> <centiseconds>".
cat >"$work/scenario.sh" <<GUEST
t() { cut -d' ' -f1 /proc/uptime | tr -d .; }
run() { # run CASE REP BYTES dd-args...
  local name=\$1 rep=\$2 bytes=\$3 t0 t1
  shift 3
  t0=\$(t)
  dd "\$@" 2>/dev/null || echo "VIREO-BENCH: \$name failed"
  t1=\$(t)
  echo "VIREO-BENCH: \$name \$rep \$bytes \$((t1 - t0))"
}
seq=\$(($seq_mib * 1048576))
rnd=\$(($rnd_mib * 1048576))
for rep in \$(seq 1 $reps); do
  run seq_write_1m \$rep \$seq if=/dev/zero of=/dev/vda bs=1M count=$seq_mib oflag=direct
  run seq_read_1m \$rep \$seq if=/dev/vda of=/dev/null bs=1M count=$seq_mib iflag=direct
  run write_4k_qd1 \$rep \$rnd if=/dev/zero of=/dev/vda bs=4k count=$((rnd_mib * 256)) seek=$((seq_mib * 256)) oflag=direct
  run read_4k_qd1 \$rep \$rnd if=/dev/vda of=/dev/null bs=4k count=$((rnd_mib * 256)) skip=$((seq_mib * 256)) iflag=direct
done
GUEST
root="$work/root"
mkdir -p "$root"
cp "$work/scenario.sh" "$root/scenario.sh"
(cd "$root" && find . | LC_ALL=C sort | "$art/busybox" cpio -o -H newc -R 0:0 2>/dev/null) |
  gzip -1n >"$work/scenario.cpio.gz"
cat "$art/initramfs.cpio.gz" "$work/scenario.cpio.gz" >"$work/initrd.cpio.gz"

wait_socket() {
  local i
  for ((i = 0; i < 100; i++)); do
    [[ -S "$sock" ]] && return 0
    sleep 0.1
  done
  return 1
}
# start_backend LABEL: starts the back-end for LABEL on $sock; sets backend_pid.
start_backend() {
  rm -f "$sock"
  case "$1" in
    vireo)
      "$vireo" vhost-user blk --socket "$sock" --disk "path=$image,format=raw,cache=writeback" \
        --once >"$work/backend.log" 2>&1 &
      ;;
    qsd)
      # The same caching as Vireo's cache=writeback (host page cache); io_uring like Vireo.
      qemu-storage-daemon \
        --blockdev "driver=file,node-name=file0,filename=$image,cache.direct=off,aio=io_uring" \
        --blockdev driver=raw,node-name=disk0,file=file0 \
        --export "type=vhost-user-blk,id=exp0,node-name=disk0,addr.type=unix,addr.path=$sock,writable=on,num-queues=1" \
        >"$work/backend.log" 2>&1 &
      ;;
  esac
  backend_pid=$!
  pids+=("$backend_pid")
  wait_socket || die "$1 never listened on $sock: $(tail -n 3 "$work/backend.log" | tr '\n' ' ')"
}
# boot LABEL: one guest boot against LABEL's back-end; appends its samples to $work/samples.
boot() {
  start_backend "$1"
  local console="$work/console-$1.log" status=0
  timeout 600 qemu-system-x86_64 -accel tcg -m 256M -smp 1 -nodefaults -no-user-config \
    -object memory-backend-memfd,id=mem,size=256M,share=on -machine memory-backend=mem \
    -kernel "$art/vmlinuz" -initrd "$work/initrd.cpio.gz" \
    -append "console=ttyS0 panic=-1 quiet" -display none -serial "file:$console" -no-reboot \
    -chardev "socket,id=vu0,path=$sock" -device vhost-user-blk-pci,chardev=vu0,num-queues=1 \
    </dev/null >"$work/qemu.log" 2>&1 || status=$?
  kill "$backend_pid" 2>/dev/null || true
  wait "$backend_pid" 2>/dev/null || true
  [[ $status -eq 0 ]] || die "QEMU with $1 exited $status: $(tail -n 3 "$work/qemu.log" | tr '\n' ' ')"
  grep -q "VIREO-BENCH: .* failed" "$console" && die "a case failed with $1: $(grep failed "$console")"
  tr -d '\r' <"$console" | sed -n "s/^VIREO-BENCH: /$1 /p" >>"$work/samples"
}

log "image $image (${size_mib} MiB); $boots boots per back-end, $reps repetitions per boot"
: >"$work/samples"
for ((b = 1; b <= boots; b++)); do
  for label in vireo qsd; do
    log "boot $b/$boots: $label"
    boot "$label"
  done
done

# Per back-end and case: median MB/s (MiB/s) over every sample, and IOPS for the 4 KiB cases.
cases="seq_write_1m seq_read_1m write_4k_qd1 read_4k_qd1"
median() { sort -g | awk '{a[NR]=$1} END {if (NR == 0) print "n/a"; else print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
mibs() { # mibs LABEL CASE: one MiB/s value per sample
  awk -v l="$1" -v c="$2" '$1 == l && $2 == c && $5 > 0 {printf "%.2f\n", $4 / 1048576 / ($5 / 100)}' "$work/samples"
}
{
  printf '{"bench": "vhost_user_blk_host", "date_utc": "%s", "qemu": "%s", "cpus": %s, "boots": %s, "reps": %s, "seq_mib": %s, "rnd_mib": %s, "image_dir": "%s"}\n' \
    "$stamp" "$(qemu-system-x86_64 --version | head -1)" "$(nproc)" "$boots" "$reps" "$seq_mib" \
    "$rnd_mib" "$img_dir"
  for c in $cases; do
    for l in vireo qsd; do
      printf '{"bench": "vhost_user_blk", "label": "%s", "case": "%s", "mib_s": [%s], "median_mib_s": %s}\n' \
        "$l" "$c" "$(mibs "$l" "$c" | paste -sd, -)" "$(mibs "$l" "$c" | median)"
    done
  done
} >"$jsonl"
{
  echo "vhost-user-blk inside a TCG guest, $stamp: median of $((boots * reps)) samples per cell"
  printf '%-14s %14s %14s %14s\n' case "vireo MiB/s" "qsd MiB/s" "vireo/qsd"
  for c in $cases; do
    v=$(mibs vireo "$c" | median)
    q=$(mibs qsd "$c" | median)
    r=$(awk -v v="$v" -v q="$q" 'BEGIN {if (q > 0 && v > 0) printf "%.2f", v / q; else print "n/a"}')
    extra=""
    if [[ "$c" == *4k* ]]; then
      extra=$(awk -v v="$v" -v q="$q" 'BEGIN {printf "  (IOPS %.0f vs %.0f)", v * 256, q * 256}')
    fi
    printf '%-14s %14s %14s %14s%s\n' "$c" "$v" "$q" "$r" "$extra"
  done
} | tee "$txt"
cp "$jsonl" "$outdir/vhost-user-blk-latest.jsonl"
cp "$txt" "$outdir/vhost-user-blk-latest.txt"
