#!/bin/bash
# e2e scenario 3: flush and discard from the guest reach the image. The back-end runs with
# discard=on on a fully allocated 64 MiB raw image. The guest checks it sees a write-back cache
# (so the kernel sends FLUSH) and discard support, blkdiscards the second half of the disk, then
# makes an ext2 filesystem in the first half, writes and fsyncs a file (FLUSH), deletes it and
# runs fstrim (DISCARD through the filesystem). The host checks that the image's allocated size
# shrank and that the back-end counted flushes and discards.
#
#   vhost_user_blk_discard_test.sh VIREO ARTIFACT_DIR
source "$(dirname "$0")/vhost_user_lib.sh"
vu_setup vhost_user_blk_discard "$1" "$2"

image="$VU_DIR/disk.raw"
# Real data, so every block is allocated (fallocate's unwritten extents would do too, but data
# also shows that discarded ranges read back as zeros).
dd if=/dev/urandom of="$image" bs=1M count=64 status=none
allocated_kib() { echo $(($(stat -c '%b * %B' "$1") / 1024)); }
before=$(allocated_kib "$image")

cat >"$VU_DIR/guest.sh" <<'GUEST'
set -e
echo "VIREO-E2E: write_cache: $(cat /sys/block/vda/queue/write_cache)"
echo "VIREO-E2E: discard_max_bytes: $(cat /sys/block/vda/queue/discard_max_bytes)"
blkdiscard -o 33554432 -l 33554432 /dev/vda
echo "VIREO-E2E: blkdiscard: done"
mke2fs -q /dev/vda 32768
mkdir -p /mnt
mount -t ext2 /dev/vda /mnt || mount -t ext4 /dev/vda /mnt
dd if=/dev/urandom of=/mnt/big bs=1M count=16 conv=fsync 2>/dev/null
rm /mnt/big
sync
echo "VIREO-E2E: fstrim: $(fstrim -v /mnt)"
umount /mnt
GUEST
initrd=$(vu_initrd "$VU_DIR/guest.sh")

vu_backend "$VU_DIR/backend.log" blk --socket "$VU_SOCK" --disk "path=$image,discard=on" --once -v
vu_boot "$VU_DIR/console.log" "$initrd" \
  -chardev "socket,id=vu0,path=$VU_SOCK" -device vhost-user-blk-pci,chardev=vu0,num-queues=1
console="$VU_DIR/console.log"
vu_want "$console" "VIREO-E2E: scenario exit 0"
vu_want "$console" "VIREO-E2E: write_cache: write back"
vu_want "$console" "VIREO-E2E: blkdiscard: done"
max=$(vu_value "$console" discard_max_bytes)
[[ -n "$max" && "$max" -gt 0 ]] || vu_fail "the guest sees no discard support (discard_max_bytes '$max')"

after=$(allocated_kib "$image")
vu_log "image allocated: ${before} KiB before, ${after} KiB after"
# The second half (32 MiB) went by blkdiscard; fstrim frees most of the first half's free space.
((after <= before - 40 * 1024)) ||
  vu_fail "allocated size went from ${before} KiB to ${after} KiB; expected at least 40 MiB less"
nonzero=$(dd if="$image" bs=1M skip=32 status=none | tr -d '\0' | wc -c)
[[ "$nonzero" -eq 0 ]] || vu_fail "$nonzero non-zero bytes in the discarded second half"
wait "$VU_BACKEND_PID" || vu_fail "the back-end (--once) exited with status $?"
counters=$(grep -o "blk counters: .*" "$VU_DIR/backend.log" || true)
vu_log "${counters:-no counters}"
grep -q "flushes=[1-9]" <<<"$counters" || vu_fail "the back-end counted no flushes"
grep -q "discards=[1-9]" <<<"$counters" || vu_fail "the back-end counted no discards"
vu_finish
