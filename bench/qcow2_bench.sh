#!/usr/bin/env bash
# qcow2 throughput and convert time: `vireo img bench` against `qemu-img bench`, and
# `vireo img convert` against `qemu-img convert`, on the same images in one run.
#
#   bench/qcow2_bench.sh [BUILD_DIR]     (default: build; bench/run.sh calls it)
#
# Environment: QCOW2_RUNS (runs per case, default 5; medians are reported), QCOW2_DIR (where the
# images go, default BUILD_DIR/bench/qcow2-work: it should be a disk filesystem, not tmpfs).
# Needs qemu-img and qemu-io (qemu-utils) and about 2.2 GiB free in QCOW2_DIR.
#
# Cases (both tools get the same arguments, cache=writeback, alternating runs):
#   4k-read / 4k-write   4 KiB requests 64 KiB apart (one per cluster: qemu-img bench has no
#                        random mode, so this is the nearest), 16384 of them, 32 in flight, on
#                        a 1 GiB image whose every cluster is allocated (writes overwrite)
#   4k-alloc-write       the same writes into a freshly created, empty image (allocating)
#   1m-read / 1m-write   1 MiB sequential, 1024 requests (the whole disk), 8 in flight
#   4k-randread          vireo only (--random): 4 KiB at random 4 KiB-aligned offsets
#   convert-raw/-qcow2   1 GiB virtual qcow2 with ~100 MiB scattered data, to raw and to qcow2
# Throughput cases print MiB/s and the ratio vireo/qemu (above 1: Vireo is faster); convert
# prints seconds and the ratio vireo/qemu (below 1: Vireo is faster).
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${1:-build}
[[ "$build" = /* ]] || build="$repo/$build"
runs=${QCOW2_RUNS:-5}
work=${QCOW2_DIR:-$build/bench/qcow2-work}
vireo="$build/vireo"

die() {
  echo "qcow2 bench: $*" >&2
  exit 1
}
log() { echo "qcow2 bench: $*" >&2; }
[[ -x "$vireo" ]] || die "missing $vireo: build first"
for tool in qemu-img qemu-io python3; do
  command -v $tool >/dev/null || die "$tool not found (apt-get install qemu-utils python3)"
done
mkdir -p "$work"
trap 'rm -rf "$work"' EXIT
fs=$(stat -f -c %T "$work")
[[ "$fs" == tmpfs ]] && log "warning: $work is on tmpfs; the numbers will not include a disk"

median() { sort -g | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
# seconds CMD...: runs CMD (an img bench) and prints the time it reports.
seconds() { "$@" | sed -n 's/^Run completed in \([0-9.]*\) seconds\.$/\1/p'; }
# wall CMD...: the wall-clock seconds CMD takes.
wall() {
  local t0 t1
  t0=$(date +%s.%N)
  "$@" >/dev/null
  t1=$(date +%s.%N)
  awk "BEGIN {printf \"%.3f\", $t1 - $t0}"
}

img="$work/full.qcow2"
log "filling a 1 GiB qcow2 image in $work ($fs)"
qemu-img create -q -f qcow2 "$img" 1G
qemu-img bench -q -w -c 1024 -d 8 -s 1M --pattern=90 "$img" >/dev/null

declare -A med
# bench_case NAME BYTES_PER_REQUEST COUNT FRESH ARGS...: alternating runs of both tools.
bench_case() {
  local name=$1 bytes=$2 count=$3 fresh=$4
  shift 4
  local v=() q=() target=$img
  for ((r = 0; r < runs; r++)); do
    for tool in vireo qemu; do
      if [[ $fresh == fresh ]]; then
        target="$work/fresh.qcow2"
        qemu-img create -q -f qcow2 "$target" 1G
      fi
      if [[ $tool == vireo ]]; then
        v+=("$(seconds "$vireo" img bench "$@" "$target")")
      else
        q+=("$(seconds qemu-img bench "$@" "$target")")
      fi
    done
  done
  med[$name-vireo]=$(printf '%s\n' "${v[@]}" | median)
  med[$name-qemu]=$(printf '%s\n' "${q[@]}" | median)
  med[$name-mib]=$((bytes * count))
  log "$name: vireo ${v[*]} s, qemu ${q[*]} s"
}
bench_case 4k-read 4096 16384 full -c 16384 -d 32 -s 4k -S 64k -t writeback
bench_case 4k-write 4096 16384 full -w -c 16384 -d 32 -s 4k -S 64k -t writeback --pattern=90
bench_case 4k-alloc-write 4096 16384 fresh -w -c 16384 -d 32 -s 4k -S 64k -t writeback \
  --pattern=90
bench_case 1m-read 1048576 1024 full -c 1024 -d 8 -s 1M -t writeback
bench_case 1m-write 1048576 1024 full -w -c 1024 -d 8 -s 1M -t writeback --pattern=90
rand=()
for ((r = 0; r < runs; r++)); do
  rand+=("$(seconds "$vireo" img bench --random -c 16384 -d 32 -s 4k -t writeback "$img")")
done
med[4k-randread-vireo]=$(printf '%s\n' "${rand[@]}" | median)

# --- convert: 1 GiB virtual, ~100 MiB of data in 90 runs of 1 MiB and 2560 of 4 KiB -----------
src="$work/sparse.qcow2"
qemu-img create -q -f qcow2 "$src" 1G
python3 - <<'EOF' | qemu-io "$src" >/dev/null
import random
r = random.Random(1)
for mib in r.sample(range(1024), 90):
    print(f"write -P {mib % 250 + 1} {mib}M 1M")
for block in r.sample(range(262144), 2560):
    print(f"write -P {block % 250 + 1} {block * 4}k 4k")
EOF
declare -a cv=() cq=()
for dst_fmt in raw qcow2; do
  v=() q=()
  for ((r = 0; r < runs; r++)); do
    rm -f "$work/out.v" "$work/out.q"
    v+=("$(wall "$vireo" img convert -O $dst_fmt "$src" "$work/out.v")")
    q+=("$(wall qemu-img convert -O $dst_fmt "$src" "$work/out.q")")
  done
  qemu-img compare "$work/out.v" "$work/out.q" >/dev/null ||
    die "convert -O $dst_fmt: vireo's output differs from qemu-img's"
  med[convert-$dst_fmt-vireo]=$(printf '%s\n' "${v[@]}" | median)
  med[convert-$dst_fmt-qemu]=$(printf '%s\n' "${q[@]}" | median)
  log "convert to $dst_fmt: vireo ${v[*]} s, qemu ${q[*]} s"
done
data_mib=$(qemu-img info --output json "$src" | python3 -c 'import json,sys; print(json.load(sys.stdin)["actual-size"] >> 20)')
echo "convert source: 1 GiB virtual, 100 MiB written (90 x 1 MiB, 2560 x 4 KiB), $data_mib MiB" \
  "of clusters; the times include each tool's final flush (vireo fdatasyncs its output; qemu-img" \
  "convert's default cache=unsafe does not for raw)" >"$work/convert-note"

# --- the table ---------------------------------------------------------------------------------
mibs() { awk "BEGIN {printf \"%.0f\", $1 / 1048576 / $2}"; }
ratio() { awk "BEGIN {printf \"%.2f\", $1 / $2}"; }
echo
echo "qcow2 (medians of $runs runs; $fs at $work; $(qemu-img --version | head -1))"
cat "$work/convert-note"
printf '%-34s %-6s %10s %10s %8s\n' case unit vireo qemu-img v/q
for c in 4k-read 4k-write 4k-alloc-write 1m-read 1m-write; do
  vm=$(mibs "${med[$c-mib]}" "${med[$c-vireo]}")
  qm=$(mibs "${med[$c-mib]}" "${med[$c-qemu]}")
  printf '%-34s %-6s %10s %10s %8s\n' "bench $c" MiB/s "$vm" "$qm" "$(ratio "$vm" "$qm")"
done
printf '%-34s %-6s %10s %10s %8s\n' "bench 4k-randread (--random)" MiB/s \
  "$(mibs $((4096 * 16384)) "${med[4k-randread-vireo]}")" n/a n/a
for f in raw qcow2; do
  printf '%-34s %-6s %10s %10s %8s\n' "convert 1 GiB sparse -> $f" s \
    "${med[convert-$f-vireo]}" "${med[convert-$f-qemu]}" \
    "$(ratio "${med[convert-$f-vireo]}" "${med[convert-$f-qemu]}")"
done
