#!/usr/bin/env bash
# Differential random workload: thousands of random writes, zero writes and discards of random
# sizes and offsets (half byte-granular) go to a Vireo qcow2 and to a raw reference. Along the
# way every discard and every random verify read is checked against the reference; afterwards
#   - Vireo reads the whole qcow2 equal to the reference (qcow2_driver compare),
#   - `qemu-img compare` agrees, and `qemu-img check` is clean (exit 0, no leaks),
#   - Vireo's own Check() is clean.
# The seed is printed; QCOW2_TEST_SEED=N reruns with another, QCOW2_TEST_OPS=N changes the count.
# Usage: random_workload_test.sh QCOW2_DRIVER single|backing|threads
source "$(dirname "$0")/lib.sh"
MODE=${1:?single, backing or threads}
SIZE=$((64 << 20))
OPS=${QCOW2_TEST_OPS:-5000}

judge() {  # judge NAME IMG REF
  local name=$1 img=$2 ref=$3
  step "$name: Vireo reads the qcow2 equal to the raw reference"
  drv compare "$img" "$ref" || fail_later "$name: Vireo's read-back differs from the reference"
  step "$name: qemu-img compare equal, qemu-img check clean"
  qcompare "$img" "$ref" || fail_later "$name: qemu-img compare says the contents differ"
  qcheck "$img" || fail_later "$name: qemu-img check exit $? (expected 0: no errors, no leaks)"
  step "$name: Vireo's Check() clean"
  drv check "$img" >"$WORK/vcheck.out" || { cat "$WORK/vcheck.out" >&2; fail_later "$name: Vireo's Check() not clean"; }
}

workload() {  # workload NAME IMG REF SEED [driver workload options]
  local name=$1 img=$2 ref=$3 seed=$4
  shift 4
  step "$name: $OPS random operations per thread, seed $seed $*"
  if drv workload "$img" "$ref" --ops "$OPS" --seed "$seed" "$@"; then
    judge "$name" "$img" "$ref"
  else
    fail_later "$name: the workload failed (seed $seed; rerun with QCOW2_TEST_SEED=$seed)"
  fi
}

case $MODE in
  single)
    seed=$(seed_for 4242)
    for spec in "3 65536" "2 4096" "3 512"; do
      set -- $spec
      name="v$1_c$2"
      drv create "$WORK/$name.qcow2" "$SIZE" --version "$1" --cluster-size "$2" || fail "create $name"
      raw_zero "$WORK/$name.raw" "$SIZE"
      workload "$name" "$WORK/$name.qcow2" "$WORK/$name.raw" "$seed"
    done
    ;;
  backing)
    seed=$(seed_for 5151)
    # The backing file has data everywhere the workload may go, so fall-through, copy-on-write
    # from the backing file and zero writes over backing data all get exercised.
    qemu-img create -q -f qcow2 -o cluster_size=16k "$WORK/base.qcow2" "$SIZE"
    qemu-io -f qcow2 -c "write -P 0x3c 0 24M" -c "write -P 0x4d 30M 30M" -c "write -z 40M 1M" \
      "$WORK/base.qcow2" >/dev/null
    qemu-img create -q -f raw "$WORK/base.raw" "$SIZE"
    qemu-io -f raw -c "write -P 0x5e 1M 60M" "$WORK/base.raw" >/dev/null
    for spec in "3 65536 qcow2" "2 4096 raw" "3 4096 raw"; do
      set -- $spec
      name="v$1_c$2_over_$3"
      drv create "$WORK/$name.qcow2" "$SIZE" --version "$1" --cluster-size "$2" \
        --backing "base.$3" --backing-format "$3" || fail "create $name"
      raw_copy_of "$WORK/$name.qcow2" "$WORK/$name.raw"
      workload "$name" "$WORK/$name.qcow2" "$WORK/$name.raw" "$seed"
    done
    ;;
  threads)
    seed=$(seed_for 6262)
    # Four threads on disjoint ranges whose boundaries fall inside clusters: the image must keep
    # concurrent writes to different sectors of one cluster (and its L2 table) apart.
    for spec in "3 65536" "3 4096" "2 512"; do
      set -- $spec
      name="threads_v$1_c$2"
      drv create "$WORK/$name.qcow2" "$SIZE" --version "$1" --cluster-size "$2" || fail "create $name"
      raw_zero "$WORK/$name.raw" "$SIZE"
      OPS=$((OPS / 2)) workload "$name" "$WORK/$name.qcow2" "$WORK/$name.raw" "$seed" --threads 4
    done
    qemu-img create -q -f raw "$WORK/base.raw" "$SIZE"
    qemu-io -f raw -c "write -P 0x5e 0 64M" "$WORK/base.raw" >/dev/null
    name=threads_over_raw
    drv create "$WORK/$name.qcow2" "$SIZE" --cluster-size 65536 --backing base.raw --backing-format raw
    raw_copy_of "$WORK/$name.qcow2" "$WORK/$name.raw"
    OPS=$((OPS / 2)) workload "$name" "$WORK/$name.qcow2" "$WORK/$name.raw" "$seed" --threads 4
    ;;
  *) fail "unknown mode $MODE" ;;
esac
finish
