#!/bin/bash
# e2e scenario 1: `vireo vhost-user blk` on a raw image behind QEMU's vhost-user-blk-pci. The
# guest writes a random pattern with dd, syncs, drops its caches, reads it back and compares
# checksums; after power-off the host reads the same range of the image file and checks the
# checksum the guest printed.
#
#   vhost_user_blk_raw_test.sh VIREO ARTIFACT_DIR
source "$(dirname "$0")/vhost_user_lib.sh"
vu_setup vhost_user_blk_raw "$1" "$2"

image="$VU_DIR/disk.raw"
truncate -s 64M "$image"

cat >"$VU_DIR/guest.sh" <<'GUEST'
set -e
echo "VIREO-E2E: vda sectors: $(cat /sys/block/vda/size)"
dd if=/dev/urandom of=/tmp/pattern bs=1M count=8 2>/dev/null
echo "VIREO-E2E: pattern sha256: $(sha256sum /tmp/pattern | cut -d' ' -f1)"
# 8 MiB at 4 MiB into the disk, flushed to the device.
dd if=/tmp/pattern of=/dev/vda bs=1M seek=4 conv=fsync 2>/dev/null
sync
echo 3 >/proc/sys/vm/drop_caches
blockdev --flushbufs /dev/vda
echo "VIREO-E2E: readback sha256: $(dd if=/dev/vda bs=1M skip=4 count=8 2>/dev/null | sha256sum | cut -d' ' -f1)"
GUEST
initrd=$(vu_initrd "$VU_DIR/guest.sh")

vu_backend "$VU_DIR/backend.log" blk --socket "$VU_SOCK" --disk "path=$image,format=raw" --once -v
vu_boot "$VU_DIR/console.log" "$initrd" \
  -chardev "socket,id=vu0,path=$VU_SOCK" -device vhost-user-blk-pci,chardev=vu0,num-queues=1
console="$VU_DIR/console.log"
vu_want "$console" "VIREO-E2E: scenario exit 0"
vu_want "$console" "VIREO-E2E: vda sectors: 131072"
pattern=$(vu_value "$console" "pattern sha256")
readback=$(vu_value "$console" "readback sha256")
[[ -n "$pattern" ]] || vu_fail "the guest printed no pattern checksum"
[[ "$pattern" == "$readback" ]] || vu_fail "guest read back $readback, wrote $pattern"
host=$(dd if="$image" bs=1M skip=4 count=8 status=none | sha256sum | cut -d' ' -f1)
[[ "$host" == "$pattern" ]] || vu_fail "the image holds $host at 4 MiB, the guest wrote $pattern"
# Nothing outside the written range changed.
zeros=$( (dd if="$image" bs=1M count=4 status=none; dd if="$image" bs=1M skip=12 status=none) |
  tr -d '\0' | wc -c)
[[ "$zeros" -eq 0 ]] || vu_fail "$zeros non-zero bytes outside the written range"
wait "$VU_BACKEND_PID" || vu_fail "the back-end (--once) exited with status $?"
grep -q "blk counters: .*writes=[1-9]" "$VU_DIR/backend.log" ||
  vu_fail "the back-end counted no writes"
vu_finish
