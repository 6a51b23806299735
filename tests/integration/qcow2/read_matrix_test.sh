#!/usr/bin/env bash
# Read matrix: images written by qemu-img/qemu-io with a matrix of options are read back by
# Vireo identically.
#   read: Vireo reads the whole disk into a raw file; `qemu-img compare` (the reference reads
#         the qcow2) must say the two are identical.
#   map:  Vireo's Map() must agree with `qemu-img map` on what lives in the top layer: the same
#         data extents at the same host offsets, zero clusters as zero, compressed as compressed.
# Usage: read_matrix_test.sh QCOW2_DRIVER read|map
source "$(dirname "$0")/lib.sh"
MODE=${1:?read or map}
SIZE=$((32 << 20))

# The writes every image gets: aligned and unaligned data, data at the end of the disk,
# zero writes (zero clusters in v3, or dropped in v2) and discards, overlapping each other.
PATTERN_A=(
  -c "write -P 0x11 0 64k" -c "write -P 0x22 100k 3k" -c "write -P 0x33 1M 2M"
  -c "write -P 0x44 5000k 513" -c "write -P 0x77 12345 6789" -c "write -P 0x55 31M 1M"
  -c "write -P 0x66 8M 4M" -c "write -z 1536k 256k" -c "discard 2304k 512k"
  -c "write -z 9M 1M" -c "discard 10M 1M" -c "write -P 0x88 10M 4k"
)
# Later writes (over snapshots, compressed clusters, backing data).
PATTERN_B=(
  -c "write -P 0x99 0 8k" -c "write -P 0xaa 1100k 100k" -c "write -z 8M 64k"
  -c "discard 8256k 2M" -c "write -P 0xbb 20M 3M" -c "write -P 0xcc 2047k 2k"
)

qio() {  # qio FORMAT IMAGE ARGS...: qemu-io writes, quiet unless they fail
  local fmt=$1 img=$2
  shift 2
  qemu-io -f "$fmt" "$@" "$img" >"$WORK/qio.out" 2>&1 || { cat "$WORK/qio.out" >&2; fail "qemu-io on $img"; }
}
mk() {  # mk NAME CREATE-OPTIONS [SIZE]: a fresh qcow2 with PATTERN_A written
  qemu-img create -q -f qcow2 -o "$2" "$WORK/$1.qcow2" "${3:-$SIZE}"
  qio qcow2 "$WORK/$1.qcow2" "${PATTERN_A[@]}"
}

CASES=()
for compat in 0.10 1.1; do
  for cs in 512 4k 64k 2M; do
    mk "c${compat}_${cs}" "compat=$compat,cluster_size=$cs"
    CASES+=("c${compat}_${cs}")
  done
done
# Refcount widths other than 16 bits, an odd disk size, metadata preallocation, lazy refcounts.
mk refbits1 "compat=1.1,refcount_bits=1" && CASES+=(refbits1)
mk refbits64 "compat=1.1,refcount_bits=64,cluster_size=4k" && CASES+=(refbits64)
mk oddsize "compat=1.1,cluster_size=64k" $((SIZE + 3 * 512)) && CASES+=(oddsize)
qio qcow2 "$WORK/oddsize.qcow2" -c "write -P 0x15 $((SIZE - 512)) 2048"
mk prealloc "compat=1.1,preallocation=metadata" && CASES+=(prealloc)
mk lazy "compat=1.1,lazy_refcounts=on" && CASES+=(lazy)

# Compressed clusters, zlib and zstd, then partly overwritten (copy-on-write of a compressed
# cluster) and not.
for ct in zlib zstd; do
  for cs in 4k 64k; do
    qemu-img convert -q -c -O qcow2 -o "compat=1.1,cluster_size=$cs,compression_type=$ct" \
      "$WORK/c1.1_64k.qcow2" "$WORK/comp_${ct}_${cs}.qcow2"
    cp "$WORK/comp_${ct}_${cs}.qcow2" "$WORK/comp_${ct}_${cs}_over.qcow2"
    qio qcow2 "$WORK/comp_${ct}_${cs}_over.qcow2" "${PATTERN_B[@]}"
    CASES+=("comp_${ct}_${cs}" "comp_${ct}_${cs}_over")
  done
done
qemu-img convert -q -c -O qcow2 -o compat=0.10 "$WORK/c1.1_64k.qcow2" "$WORK/comp_v2.qcow2"
CASES+=(comp_v2)

# Backing files: raw and qcow2, a three-level chain, and a backing file shorter than the disk.
qemu-img create -q -f raw "$WORK/base.raw" "$SIZE"
qio raw "$WORK/base.raw" "${PATTERN_A[@]}"
for compat in 0.10 1.1; do
  qemu-img create -q -f qcow2 -o "compat=$compat" -b base.raw -F raw "$WORK/over_raw_$compat.qcow2"
  qio qcow2 "$WORK/over_raw_$compat.qcow2" "${PATTERN_B[@]}"
  CASES+=("over_raw_$compat")
done
qemu-img create -q -f qcow2 -o cluster_size=4k -b c1.1_64k.qcow2 -F qcow2 "$WORK/over_qcow2.qcow2"
qio qcow2 "$WORK/over_qcow2.qcow2" "${PATTERN_B[@]}"
qemu-img create -q -f qcow2 -b over_qcow2.qcow2 -F qcow2 "$WORK/over_over.qcow2"
qio qcow2 "$WORK/over_over.qcow2" -c "write -P 0xdd 3M 1M" -c "write -z 20M 1M" -c "discard 100k 64k"
CASES+=(over_qcow2 over_over)
qemu-img create -q -f qcow2 -o compat=1.1 "$WORK/short_base.qcow2" $((SIZE / 2))
qio qcow2 "$WORK/short_base.qcow2" -c "write -P 0xee 0 16M"
qemu-img create -q -f qcow2 -b short_base.qcow2 -F qcow2 "$WORK/over_short.qcow2" "$SIZE"
qio qcow2 "$WORK/over_short.qcow2" -c "write -P 0x12 15M 2M"
CASES+=(over_short)
# No backing format in the header: Vireo has to probe the backing file.
qemu-img create -q -f qcow2 -o compat=1.1 "$WORK/noformat.qcow2" "$SIZE"
python3 - "$WORK/noformat.qcow2" <<'PY'
import struct, sys
# Point the header at "base.raw" without a backing format extension (qemu-img create insists
# on -F nowadays). The name goes after the end-of-extensions marker, inside cluster 0.
path = sys.argv[1]
with open(path, "r+b") as f:
    hdr = bytearray(f.read(4096))
    name = b"base.raw"
    off = 2048
    hdr[off:off + len(name)] = name
    struct.pack_into(">QI", hdr, 8, off, len(name))
    f.seek(0); f.write(hdr)
PY
qio qcow2 "$WORK/noformat.qcow2" -c "write -P 0x13 4M 1M"
CASES+=(noformat)

# Internal snapshots: the current state after two snapshots and writes over shared clusters,
# and the state after qemu-img applies the first snapshot again.
for compat in 0.10 1.1; do
  mk "snap_$compat" "compat=$compat,cluster_size=4k"
  qemu-img snapshot -c s1 "$WORK/snap_$compat.qcow2"
  qio qcow2 "$WORK/snap_$compat.qcow2" "${PATTERN_B[@]}"
  qemu-img snapshot -c s2 "$WORK/snap_$compat.qcow2"
  qio qcow2 "$WORK/snap_$compat.qcow2" -c "write -P 0x14 0 1M" -c "discard 1M 1M" -c "write -z 20M 2M"
  cp "$WORK/snap_$compat.qcow2" "$WORK/snap_applied_$compat.qcow2"
  qemu-img snapshot -a s1 "$WORK/snap_applied_$compat.qcow2"
  CASES+=("snap_$compat" "snap_applied_$compat")
done

echo "read matrix ($MODE): ${#CASES[@]} images: ${CASES[*]}"
for c in "${CASES[@]}"; do
  img="$WORK/$c.qcow2"
  qcheck "$img" || fail "qemu-img check does not like the generated image $c (test set-up)"
  if [ "$MODE" = read ]; then
    step "$c: Vireo reads the disk qemu-io wrote; qemu-img compare judges"
    if ! drv read "$img" "$WORK/$c.out.raw"; then
      fail_later "$c: Vireo could not read the image"
    elif ! qcompare "$img" "$WORK/$c.out.raw"; then
      fail_later "$c: what Vireo read differs from what qemu-img reads"
    else
      ok "$c identical"
    fi
    rm -f "$WORK/$c.out.raw"
  else
    step "$c: Vireo's map agrees with qemu-img map"
    if ! drv map "$img" >"$WORK/$c.vmap"; then
      fail_later "$c: Vireo's Map failed"
      continue
    fi
    qemu-img map -f qcow2 --output=json "$img" >"$WORK/$c.qmap"
    if python3 "$HERE/map_compare.py" "$WORK/$c.qmap" "$WORK/$c.vmap"; then
      ok "$c maps agree"
    else
      fail_later "$c: the maps disagree"
    fi
  fi
done
finish
