#!/usr/bin/env bash
# Write check: Vireo applies a scripted set of writes, zero writes, discards, flushes and a grow
# to a qcow2 and (mirrored) to a raw reference. The reference decides:
#   - `qemu-img check` finds no errors and no leaks (exit 0),
#   - `qemu-img compare` says the qcow2 reads exactly as the raw reference,
#   - and Vireo's own Check() and read-back agree.
# Cases: fresh images made by Qcow2Image::Create (v2 and v3, cluster sizes 512 B to 2 MiB, lazy
# refcounts), and overlays on raw and qcow2 backing files written by qemu-io (overlay made by
# Vireo and by qemu-img).
# Usage: write_check_test.sh QCOW2_DRIVER
source "$(dirname "$0")/lib.sh"
SIZE=$((1 << 30))   # Sparse; large enough that 64 KiB clusters cross an L2 table (512 MiB).

script_for() {  # script_for CLUSTER_SIZE > FILE
  local c=$1 M=$((1 << 20))
  local l2span=$((c / 8 * c))   # Guest bytes one L2 table covers.
  cat <<S
# one full cluster, then a write straddling it and the next (copy-on-write of a partial cluster)
write 0 $c 1
write $((c / 2)) $c 2
# tiny unaligned write into a fresh cluster, and a multi-cluster write
write $((3 * c + 100)) 7 3
write $((10 * c)) $((5 * c)) 4
verify 0 $((16 * c))
# zero writes: full cluster over data, partial, over unallocated space
zero $((11 * c)) $c
zero $((12 * c + 512)) 1000
zero $((40 * c)) $((4 * c))
# discards: a full cluster, an unaligned range, then a write into the discarded cluster
discard $((13 * c)) $c
discard $((14 * c + 1)) $c
write $((13 * c)) 100 5
flush
# across the end of the first L2 table (where the disk is that large), and around 512 MiB
$([ "$l2span" -lt "$SIZE" ] && echo "write $((l2span - 1000)) 3000 6")
write $((512 * M - 700)) 1400 7
# the last cluster and the last byte
write $((SIZE - c)) $c 8
write $((SIZE - 1)) 1 9
# free clusters, then allocate again so freed clusters are reused
discard $((10 * c)) $((3 * c))
write $((100 * c)) $((20 * c)) 10
zero 0 $((2 * c))
write $((c + 3)) 5000 11
verify 0 $((128 * c))
flush
# grow the disk and write into the new space
resize $((SIZE + 3 * c + 512))
write $((SIZE + c)) $((2 * c)) 12
verify $((SIZE - c)) $((4 * c + 512))
S
}

run_case() {  # run_case NAME IMG REF CLUSTER
  local name=$1 img=$2 ref=$3 c=$4
  script_for "$c" >"$WORK/$name.script"
  step "$name: Vireo applies the script (and checks each discard/verify on the way)"
  if ! drv script "$img" "$ref" "$WORK/$name.script"; then
    fail_later "$name: Vireo failed a scripted operation"
    return
  fi
  step "$name: qemu-img check: no errors, no leaks"
  if qcheck "$img"; then ok "$name clean"; else fail_later "$name: qemu-img check exit $? on Vireo's image"; fi
  step "$name: qemu-img compare against the raw reference"
  if qcompare "$img" "$ref"; then ok "$name equal"; else fail_later "$name: contents differ from the reference"; fi
  step "$name: Vireo's Check() and read-back agree"
  if drv check "$img" >"$WORK/vcheck.out"; then ok "$name Vireo check clean"; else
    cat "$WORK/vcheck.out" >&2
    fail_later "$name: Vireo's own Check() is not clean"
  fi
  if drv compare "$img" "$ref" >/dev/null; then ok "$name Vireo reads the reference"; else
    fail_later "$name: Vireo reads different contents than it wrote"
  fi
  rm -f "$ref"
}

for version in 2 3; do
  for c in 512 4096 65536 2097152; do
    name="v${version}_c$c"
    drv create "$WORK/$name.qcow2" "$SIZE" --version "$version" --cluster-size "$c" \
      || { fail_later "$name: Qcow2Image::Create failed"; continue; }
    qcheck "$WORK/$name.qcow2" || fail_later "$name: qemu-img check rejects a freshly created image"
    raw_zero "$WORK/$name.raw" "$SIZE"
    run_case "$name" "$WORK/$name.qcow2" "$WORK/$name.raw" "$c"
  done
done
if drv create "$WORK/lazy.qcow2" "$SIZE" --version 3 --lazy-refcounts; then
  raw_zero "$WORK/lazy.raw" "$SIZE"
  run_case lazy "$WORK/lazy.qcow2" "$WORK/lazy.raw" 65536
else
  fail_later "lazy: Qcow2Image::Create failed"
fi

# Backing files written by qemu-io: reads fall through, writes allocate in the top layer.
qemu-img create -q -f raw "$WORK/base.raw" "$SIZE"
qemu-io -f raw -c "write -P 0x5a 0 4M" -c "write -P 0x6b 510M 4M" -c "write -P 0x7c $((SIZE - (1 << 20))) 1M" \
  "$WORK/base.raw" >/dev/null
qemu-img create -q -f qcow2 -o cluster_size=4k "$WORK/base.qcow2" "$SIZE"
qemu-io -f qcow2 -c "write -P 0x5a 0 4M" -c "write -P 0x6b 510M 4M" -c "write -z 1M 64k" \
  -c "write -P 0x7c $((SIZE - (1 << 20))) 1M" "$WORK/base.qcow2" >/dev/null
for fmt in raw qcow2; do
  for version in 2 3; do
    name="over_${fmt}_v$version"
    drv create "$WORK/$name.qcow2" "$SIZE" --version "$version" --cluster-size 65536 \
      --backing "base.$fmt" --backing-format "$fmt" || { fail_later "$name: create failed"; continue; }
    raw_copy_of "$WORK/$name.qcow2" "$WORK/$name.raw"
    run_case "$name" "$WORK/$name.qcow2" "$WORK/$name.raw" 65536
  done
  name="qemu_over_$fmt"
  qemu-img create -q -f qcow2 -o cluster_size=4k -b "base.$fmt" -F "$fmt" "$WORK/$name.qcow2"
  raw_copy_of "$WORK/$name.qcow2" "$WORK/$name.raw"
  run_case "$name" "$WORK/$name.qcow2" "$WORK/$name.raw" 4096
done
finish
