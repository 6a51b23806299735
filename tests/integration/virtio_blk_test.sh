#!/bin/bash
# The virtio_blk guest against a disk image file, then the file's bytes checked on the host.
#
#   virtio_blk_test.sh CASE VIREO GUESTS_DIR WORK_DIR [TRANSPORT [VIREO_ARGS...]]
#
# TRANSPORT is mmio (the default) or pci; with pci the guest must also report that it found the
# disk over virtio-pci. VIREO_ARGS go to `vireo run` as they are (e.g. --accel emu).
# The image is 1 MiB (2048 sectors) of zeros with "VIREO-BLK-SIG-01" at offset 0. The guest fills
# sector k of the range it is given with the byte (k & 0xff) ^ 0xa5 (tests/guests/virtio_blk.cc).
# Cases:
#   rw           interrupt mode, sectors 100-119 written; the file must equal the original with
#                exactly that range replaced by the pattern
#   rw-poll      polling, sectors 0-32 (over the signature)
#   rw-indirect  INDIRECT_DESC and EVENT_IDX, the last 8 sectors
#   ro           readonly=on: the guest's write must fail with IOERR; the file must be unchanged
#   serial       serial=vireo-disk-7: GET_ID must return it; the file must be unchanged
#   qcow2        as rw, on a qcow2 image (made by qemu-img) over the raw image as its backing
#                file: the backing file must be unchanged, the qcow2 must read (through
#                qemu-img) as the expected bytes, and `qemu-img check` must find no errors or leaks
set -u

case=$1
vireo=$2
guests=$3
work=$4
transport=${5:-mmio}
shift $(($# < 5 ? $# : 5))
extra=("$@")
run_guest="$(dirname "$0")/run_guest.sh"

mkdir -p "$work"
suffix=""
[[ "$transport" != mmio ]] && suffix="_$transport"
# Distinct files per argument set, so variants of one case can run at the same time.
[[ ${#extra[@]} -gt 0 ]] && suffix="${suffix}_$(printf '%s' "${extra[*]}" | tr -cs 'a-zA-Z0-9' '_')"
img="$work/virtio_blk_${case}${suffix}.img"
orig="$work/virtio_blk_${case}${suffix}.orig"
want="$work/virtio_blk_${case}${suffix}.want"
head -c 1048576 /dev/zero >"$orig"
printf 'VIREO-BLK-SIG-01' | dd of="$orig" conv=notrunc status=none
cp "$orig" "$img"
cp "$orig" "$want"

# Writes the guest's pattern for sectors START..START+COUNT-1 into $want.
expect_pattern() {
  local start=$1 count=$2 k b
  for ((k = start; k < start + count; k++)); do
    b=$(((k & 255) ^ 0xa5))
    head -c 512 /dev/zero | tr '\0' "\\$(printf %03o "$b")" |
      dd of="$want" bs=512 seek="$k" conv=notrunc status=none
  done
}

disk="path=$img"
cmdline=""
checks=(--status 1 --stdout "^capacity: 2048 sectors" --stdout "^sector 0: VIREO-BLK-SIG-01$"
        --stdout "^out-of-range read: IOERR$" --stdout "^PASS virtio_blk$")
case "$case" in
  rw)
    cmdline="vblk.write=100,20"
    checks+=(--stdout "^verified sectors 100-119$" --stdout "^interrupts: [1-9]")
    expect_pattern 100 20
    ;;
  rw-poll)
    cmdline="vblk.mode=poll vblk.write=0,33"
    checks+=(--stdout "^verified sectors 0-32$" --stdout "^interrupts: 0$")
    expect_pattern 0 33
    ;;
  rw-indirect)
    cmdline="vblk.indirect=1 vblk.event_idx=1 vblk.write=2040,8"
    checks+=(--stdout "^verified sectors 2040-2047$")
    expect_pattern 2040 8
    ;;
  ro)
    disk="$disk,readonly=on"
    cmdline="vblk.expect_ro=1"
    checks+=(--stdout "^capacity: 2048 sectors, read-only"
             --stdout "^write to read-only disk: IOERR$")
    ;;
  serial)
    disk="$disk,serial=vireo-disk-7"
    checks+=(--stdout "^serial: vireo-disk-7$")
    ;;
  qcow2)
    command -v qemu-img >/dev/null || { echo "SKIP: qemu-img (qemu-utils) is not installed"; exit 77; }
    top="$work/virtio_blk_${case}${suffix}.qcow2"
    rm -f "$top"
    qemu-img create -q -f qcow2 -o cluster_size=4096 -b "$img" -F raw "$top" || exit 1
    disk="path=$top,format=qcow2"
    cmdline="vblk.write=100,20"
    checks+=(--stdout "^verified sectors 100-119$")
    expect_pattern 100 20
    ;;
  *)
    echo "virtio_blk_test.sh: unknown case $case" >&2
    exit 2
    ;;
esac

[[ "$transport" == pci ]] && checks+=(--stdout "^virtio: transport pci$")
args=(run --kernel "$guests/virtio_blk.elf" --transport "$transport" --disk "$disk")
[[ -n "$cmdline" ]] && args+=(--cmdline "$cmdline")
args+=("${extra[@]}")
"$run_guest" "${checks[@]}" -- "$vireo" "${args[@]}" || exit 1

if [[ "$case" == qcow2 ]]; then
  cmp "$orig" "$img" || { echo "FAILED: the backing file was written"; exit 1; }
  qemu-img check "$top" || { echo "FAILED: qemu-img check found problems in the qcow2 image"; exit 1; }
  qemu-img convert -f qcow2 -O raw "$top" "$img.converted" || exit 1
  rm -f "$top"
  mv "$img.converted" "$img"
fi

if ! cmp "$want" "$img"; then
  echo "FAILED: the disk image differs from what the guest should have left"
  cmp -l "$want" "$img" | head -n 8
  exit 1
fi
echo "ok: disk image as expected ($case, $transport)"
rm -f "$img" "$orig" "$want"
